"""Partitioned simulation (`backends/torch/partition.py`, `backends/torch/distributed.py`):
the spikes of 1, 2 and 3 ranks are those of the one-process eager engine, bit for bit.

The fast tests run every partition in this process (`partition.lockstep`: the exchange
contract of ``all_gather`` without processes); the slow ones start real rank processes over
gloo on localhost."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evospike import LIF, FixedProbability, Network, Uniform
from evospike.backends.torch import compile as torch_compile
from evospike.backends.torch.distributed import TEST_EXIT_ENV, RanksRunner
from evospike.backends.torch.partition import lockstep, partition_bounds
from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.neurons import AdEx, CubaLIF, Izhikevich
from evospike.ir.nodes import Projection

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import cuba  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # the in-process partitions and the serial reference on one thread: a loaded machine
    # otherwise spends its time switching
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def serial(net: Network, duration_ms: float, precision: str = "float32", seeds=(0,)):
    return torch_compile(net, engine="eager", progress=False, precision=precision,
                         seeds=seeds).run(duration_ms)


def assert_same_spikes(ref, res, nodes) -> None:
    for node in nodes:
        a, b = ref.spikes_by_node[node], res.spikes_by_node[node]
        assert a.step.size > 0, node  # a test on silence proves nothing
        for key in ("step", "neuron", "trial"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=node)


def assert_same_state(net: Network, duration_ms: float, sims, precision: str = "float32",
                      seeds=(0,)) -> None:
    """The neuron states the partitions end with, put together, are the serial engine's bit
    for bit (spikes alone would miss a sum taken in another order: it rarely flips one)."""
    runner = torch_compile(net, engine="eager", progress=False, precision=precision,
                           seeds=seeds)
    runner.run(duration_ms)
    for name, pop in runner.cn.populations.items():
        joined = torch.cat([s.pops[name].x for s in sims], dim=-1)
        assert torch.equal(joined, pop.x), name


def feed_in(n_pre: int = 200, n_post: int = 30) -> Network:
    """Many arrivals per target and step, weights of every magnitude: the order of a sum shows
    in its last bits."""
    net = Network("fan_in", dt_ms=0.1)
    src = net.poisson_source("src", n_pre, rate_hz=300.0)
    cell = LIF(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-65.0, v_thresh_mV=-20.0,
               tau_syn_exc_ms=3.0, tau_syn_inh_ms=6.0, tau_refrac_ms=2.0)
    post = net.population("post", n_post, cell)
    net.connect(src, post, FixedProbability(0.9, seed=3), weight=Uniform(-0.37, 1.13))
    net.connect(post, post, FixedProbability(0.5, seed=4), weight=Uniform(0.01, 3.7),
                target="inh")
    net.record_spikes(post)
    return net


def small_cuba(n: int = 300) -> Network:
    return cuba.build(n, connection_probability=min(1.0, 80 / n * 1.5))


def feed_forward() -> Network:
    """Poisson source -> LIF (per-synapse delays 3-8 steps, a PoissonInput, a ramp current)
    -> Izhikevich (delays 2-6 steps) -> LIF; the smallest delay, 2 steps, is the window."""
    net = Network("ff", dt_ms=0.1)
    rng = np.random.default_rng(5)
    src = net.poisson_source("src", 80, rate_hz=40.0)
    cell = LIF(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-65.0, v_thresh_mV=-55.0,
               tau_syn_exc_ms=3.0, tau_syn_inh_ms=6.0, tau_refrac_ms=2.0)
    a = net.population("a", 150, cell, initial={"v": Uniform(-65.0, -56.0)})
    b = net.population("b", 120, Izhikevich(), initial={"v": Uniform(-70.0, -60.0)})
    c = net.population("c", 70, cell)
    net.poisson_input(a, 20, 30.0, 2.0)
    net.inject_current(b, series=np.linspace(0.0, 6.0, 500))
    for pre, post, w, lo, hi, seed in ((src, a, 8.0, 3, 9, 1), (a, b, 3.0, 2, 7, 2),
                                       (b, c, 8.0, 2, 5, 3), (a, c, Uniform(2.0, 6.0), 4, 6, 4)):
        p = net.connect(pre, post, FixedProbability(0.2, seed=seed), weight=w)
        delays = rng.integers(lo, hi, p.n_synapses).astype(np.int32)
        net.projections[p.name] = Projection(p.name, p.pre, p.post, p.n_pre, p.n_post,
                                             p.indptr, p.indices, p.weights, delays, p.target)
    net.record_spikes(a, b, c, src)
    return net


# ---------------------------------------------------------------------- fast: in-process
def test_partition_is_contiguous_and_balanced_by_incoming_synapses():
    net = feed_forward()
    bounds = partition_bounds(net, 3)
    for name, b in bounds.items():
        assert b[0] == 0 and b[-1] == net.populations[name].size
        assert np.all(np.diff(b) >= 0)
    # population a: cost 1 + in-degree per neuron, each third within one neuron's cost
    indeg = np.bincount(net.projections["src->a"].indices, minlength=150)
    cost = np.concatenate([[0], np.cumsum(1 + indeg)])
    shares = np.diff(cost[bounds["a"]])
    assert shares.max() - shares.min() <= 2 * (1 + indeg.max())


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_cuba_same_spikes_for_1_2_3_ranks_in_process(precision):
    net = small_cuba()
    ref = serial(net, 60.0, precision, seeds=(0, 1))
    for ranks in (1, 2, 3):
        res = lockstep(net, ranks, 600, seeds=(0, 1), precision=precision)[0].results(0.0, True)
        assert_same_spikes(ref, res, ["exc", "inh"])


def test_feed_forward_with_synapse_delays_same_spikes_for_1_2_3_ranks():
    net = feed_forward()
    ref = serial(net, 40.0)
    for ranks in (1, 2, 3):
        sims = lockstep(net, ranks, 400)
        assert sims[0].window == 2
        assert_same_spikes(ref, sims[0].results(0.0, True), ["a", "b", "c", "src"])


def test_sums_in_the_serial_order_state_bit_for_bit():
    net = feed_in()
    for ranks in (1, 2, 3):
        assert_same_state(net, 20.0, lockstep(net, ranks, 200))
    net = feed_forward()
    assert_same_state(net, 20.0, lockstep(net, 3, 200))


def test_cuba_lif_population_partitioned():
    net = Network("cubalif", dt_ms=1.0, units="dimensionless")
    src = net.poisson_source("src", 40, rate_hz=100.0)
    pop = net.population("p", 50, CubaLIF(du=0.2, dv=0.1, v_thresh=1.0))
    net.connect(src, pop, FixedProbability(0.3, seed=7), weight=0.6, delay_ms=1.0)
    net.connect(pop, pop, FixedProbability(0.1, seed=8), weight=0.3, delay_ms=2.0)
    net.record_spikes(pop)
    ref = serial(net, 200.0)
    for ranks in (2, 3):
        assert_same_spikes(ref, lockstep(net, ranks, 200)[0].results(0.0, True), ["p"])


def test_overflow_grows_the_buffer_and_drops_nothing():
    net = small_cuba()
    ref = serial(net, 60.0)
    sims = lockstep(net, 2, 600, capacity=1)
    stats = sims[0].stats
    assert stats.overflows > 0 and stats.capacity > 1
    assert all(s.stats.capacity == stats.capacity for s in sims)  # every rank grew alike
    res = sims[0].results(0.0, True)
    assert res.meta["exchange_overflows"] == stats.overflows
    assert_same_spikes(ref, res, ["exc", "inh"])


def test_refusals_by_name():
    net = small_cuba()
    net.stdp("exc->exc", w_max=2.0)
    net.homeostasis("inh", target_rate_hz=5.0)
    net.record_state("exc", "v", neurons=[0])
    net.population("adex", 5, AdEx())
    with pytest.raises(UnsupportedError) as err:
        RanksRunner(net, 2)
    text = str(err.value)
    for part in ("plasticity 'exc->exc.stdp'", "process 'inh.homeostasis'",
                 "state monitor", "population 'adex'", "not yet carried across ranks"):
        assert part in text, part


@pytest.mark.parametrize("ranks", [0, -1, 1.5, True])
def test_bad_rank_count(ranks):
    with pytest.raises(EvoSpikeError, match="--ranks must be a whole number"):
        RanksRunner(small_cuba(), ranks)


def test_cli_refuses_ranks_with_native_engine(tmp_path, capsys):
    from evospike.cli.main import main

    model = Path(cuba.__file__)
    code = main(["run", str(model), "--ranks", "2", "--engine", "native", "--out",
                 str(tmp_path / "r.h5")])
    assert code == 2
    assert "--ranks 2: cannot be combined with --engine native" in capsys.readouterr().err
    code = main(["run", str(model), "--ranks", "0", "--out", str(tmp_path / "r.h5")])
    assert code == 2
    assert "--ranks must be a whole number of at least 1 (got 0)" in capsys.readouterr().err


# ---------------------------------------------------------------------- slow: gloo processes
@pytest.mark.slow
def test_gloo_cuba_1000_same_spikes_for_2_and_3_ranks():
    net = cuba.build(1000, connection_probability=0.08)
    ref = serial(net, 200.0)
    for ranks in (2, 3):
        res = RanksRunner(net, ranks, timeout_s=30).run(200.0)
        assert res.complete and res.meta["ranks"] == ranks
        assert_same_spikes(ref, res, ["exc", "inh"])


@pytest.mark.slow
def test_gloo_feed_forward_with_overflow():
    net = feed_forward()
    ref = serial(net, 40.0)
    res = RanksRunner(net, 2, capacity=1, timeout_s=30).run(40.0)
    assert res.meta["exchange_overflows"] > 0
    assert_same_spikes(ref, res, ["a", "b", "c", "src"])


@pytest.mark.slow
def test_killed_rank_ends_the_run_naming_it(monkeypatch):
    monkeypatch.setenv(TEST_EXIT_ENV, "1:300")
    net = small_cuba()
    runner = RanksRunner(net, 3, timeout_s=10)
    t0 = time.monotonic()
    with pytest.raises(EvoSpikeError, match=r"rank 1 of 3 died \(exited with code 17\)") as err:
        runner.run(100.0)
    assert time.monotonic() - t0 < 10 + 5 + 30  # timeout + grace + start-up of 3 processes
    partial = err.value.partial
    assert partial is not None and not partial.complete
    assert 300 <= partial.n_steps < 1000
    assert partial.spikes_by_node["exc"].step.max() < partial.n_steps
    for pid in runner.pids:  # no rank left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
def test_cli_run_with_ranks_writes_the_serial_spikes(tmp_path, capsys):
    from evospike.cli.main import main
    from evospike.results import Results

    out = tmp_path / "r.h5"
    code = main(["run", str(Path(cuba.__file__)), "--param", "n_neurons=500", "--ranks", "2",
                 "--duration", "50ms", "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = Results.load(out)
    assert res.meta["ranks"] == 2 and res.complete
    assert_same_spikes(serial(cuba.build(500), 50.0), res, ["exc", "inh"])
