"""The native kernel on several threads (issue 16): a batch's trials in parallel, and one
trial's network split across threads, give the eager engine's spikes and states bit for bit for
1, 2 and 3 threads (float32 and float64, recurrent networks with per-synapse delays, rows in
and out of target order, multapses); PoissonInput and the conductance models (CondLIF, CondAdEx)
on the kernel equal the eager engine bit for bit; the threads option and what the results say
about the threads that ran."""

import numpy as np
import pytest
import torch

from evospike import (
    LIF,
    CondAdEx,
    CondLIF,
    FixedProbability,
    FromArrays,
    Network,
    OneToOne,
    Uniform,
)
from evospike.backends import get_backend
from evospike.backends.torch.native import engine as native_engine
from evospike.errors import EvoSpikeError

DT = 0.1
T_MS = 60.0  # 600 steps
SEEDS = (0, 1, 2, 3)


@pytest.fixture(autouse=True)
def _split_small_networks(monkeypatch):
    # the test networks are small: split them across threads anyway
    monkeypatch.setattr(native_engine, "MIN_NEURONS_PER_THREAD", 1)


def _cuba_like(n: int = 400) -> Network:
    """A recurrent CUBA-like network, busy (tens of spikes per step) so that additions onto one
    target in one step are many and their order shows in float sums: excitatory and inhibitory
    LIF populations with random weights and per-synapse delays, a Poisson drive, and an
    excitatory projection whose rows are out of target order and hold multapses (the same pair
    several times)."""
    rng = np.random.default_rng(5)
    n_e, n_i = n * 4 // 5, n // 5
    net = Network("threads_cuba", DT)
    lif = dict(tau_m_ms=20.0, tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0, v_thresh_mV=-50.0,
               v_reset_mV=-60.0, v_rest_mV=-49.0, tau_refrac_ms=2.0)
    exc = net.population("exc", n_e, LIF(**lif), initial={"v": rng.uniform(-60.0, -50.0, n_e)})
    inh = net.population("inh", n_i, LIF(**lif), initial={"v": rng.uniform(-60.0, -50.0, n_i)})
    drive = net.poisson_source("drive", n_e, 200.0)
    net.connect(drive, exc, OneToOne(), weight=Uniform(4.0, 9.0), delay_ms=DT)
    for pre, post, w, target in ((exc, exc, Uniform(0.05, 0.3), "exc"),
                                 (exc, inh, Uniform(0.05, 0.3), "exc"),
                                 (inh, exc, Uniform(-0.3, -0.05), "inh"),
                                 (inh, inh, Uniform(-0.3, -0.05), "inh")):
        m = net.connect(pre, post, FixedProbability(0.8, seed=len(net.projections)),
                        weight=w, delay_ms=DT, target=target)
        # per-synapse delays of 1 to 5 steps, in the projection's CSR order
        m.delays = rng.integers(1, 6, m.n_synapses).astype(m.delays.dtype)
    # unsorted rows with multapses: pairs drawn with replacement, in random order
    i = rng.integers(0, n_e, 6 * n_e)
    j = rng.integers(0, n_i, 6 * n_e)
    m = net.connect(exc, inh, FromArrays(i, j), weight=rng.uniform(0.1, 0.5, i.size),
                    delay_ms=rng.integers(1, 4, i.size) * DT, name="exc->inh arrays")
    # each row's synapses in a random order (the connector sorts them by target)
    order = np.concatenate([a + rng.permutation(b - a)
                            for a, b in zip(m.indptr[:-1], m.indptr[1:], strict=True)])
    m.indices, m.weights, m.delays = m.indices[order], m.weights[order], m.delays[order]
    net.record_spikes(exc, inh)
    return net


def _run(net: Network, engine: str, precision: str, seeds, threads=None, t_ms: float = T_MS):
    runner = get_backend("torch").compile(net, engine=engine, precision=precision, seeds=seeds,
                                          threads=threads, progress=False)
    return runner, runner.run(t_ms)


def _assert_same(native, eager, trials: list[int]) -> None:
    """Spikes, and every state (and the delay buffers) at the end, bit for bit; ``trials``: the
    eager trials the native run's trials are."""
    (rn, a), (re_, b) = native, eager
    for node, d in a.spikes_by_node.items():
        e = b.spikes_by_node[node]
        keep = np.isin(e.trial, trials)
        np.testing.assert_array_equal(d.step, e.step[keep], err_msg=node)
        np.testing.assert_array_equal(d.neuron, e.neuron[keep], err_msg=node)
    for name, pop in rn.cn.populations.items():
        other = re_.cn.populations[name]
        assert torch.equal(pop.x, other.x[:, trials]), f"states of '{name}' differ"
        if pop.buf is not None:
            assert torch.equal(pop.buf, other.buf[:, :, trials]), f"buffer of '{name}' differs"


@pytest.fixture(scope="module", params=["float32", "float64"])
def cuba_eager(request):
    net = _cuba_like()
    return request.param, _run(net, "eager", request.param, SEEDS)


def test_the_test_network_covers_both_propagation_paths(cuba_eager):
    precision, (runner, res) = cuba_eager
    cn = runner.cn
    sorted_rows = {name: native_engine._rows_sorted(p.indptr.numpy(), p.indices.numpy())
                   for name, p in cn.projections.items()}
    assert sorted_rows["exc->exc"] and not sorted_rows["exc->inh arrays"]
    assert cn.projections["exc->exc"].delays is not None  # per-synapse delays
    steps = res.spikes_by_node["exc"].step.size / len(SEEDS) / round(T_MS / DT)
    assert steps > 2  # spikes per step: busy enough for the order of float sums to matter


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_one_trial_split_across_threads_equals_eager(cuba_eager, threads):
    precision, eager = cuba_eager
    native = _run(_cuba_like(), "native", precision, (2,), threads)
    assert native[0]._native.threading == ("one" if threads == 1 else "network")
    assert native[0]._native.threads == threads
    _assert_same(native, eager, [2])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batch_trials_in_parallel_equal_eager(cuba_eager, threads):
    precision, eager = cuba_eager
    native = _run(_cuba_like(), "native", precision, SEEDS, threads)
    assert native[0]._native.threading == ("one" if threads == 1 else "trials")
    _assert_same(native, eager, list(range(len(SEEDS))))
    assert native[1].meta["threads"] == threads


def test_split_network_with_few_trials_and_segments(cuba_eager):
    """Two trials on three threads (each trial split), run in segments cut by a state
    monitor sampling every 7 steps."""
    precision, _ = cuba_eager
    net = _cuba_like()
    net.record_state("exc", "v", neurons=np.arange(0, 320, 13), every_steps=7)
    eager = _run(net, "eager", precision, (1, 3), t_ms=20.0)
    native = _run(net, "native", precision, (1, 3), 3, t_ms=20.0)
    assert native[0]._native.threading == "network"
    _assert_same(native, eager, [0, 1])
    np.testing.assert_array_equal(native[1].traces["exc.v"].values,
                                  eager[1].traces["exc.v"].values)


def _plastic_net() -> Network:
    net = Network("threads_stdp", DT)
    src = net.poisson_source("in", 60, 40.0)
    post = net.population("post", 48, LIF(tau_m_ms=10.0, v_thresh_mV=-55.0, v_reset_mV=-65.0,
                                          v_rest_mV=-65.0, tau_refrac_ms=1.0),
                          initial={"v": -65.0})
    proj = net.connect(src, post, FixedProbability(0.5, seed=3),
                       weight=Uniform(2.0, 6.0), delay_ms=0.3)
    net.connect(post, post, FixedProbability(0.2, seed=4), weight=-1.0, delay_ms=0.2,
                target="inh")
    net.stdp(proj, tau_plus_ms=15.0, tau_minus_ms=25.0, a_plus=0.2, a_minus=0.22, w_min=0.0,
             w_max=8.0)
    net.record_spikes(src, post)
    net.record_weights(proj, every_steps=250)
    return net


@pytest.mark.parametrize("seeds, threads", [((0,), 2), ((0, 1, 2), 2), ((0, 1, 2), 3)])
def test_plastic_projections_stay_exact_on_threads(seeds, threads):
    eager = _run(_plastic_net(), "eager", "float32", seeds, t_ms=60.0)
    native = _run(_plastic_net(), "native", "float32", seeds, threads, t_ms=60.0)
    assert native[0]._native.threads == threads
    _assert_same(native, eager, list(range(len(seeds))))
    np.testing.assert_array_equal(native[1].weights["in->post.weights"].values,
                                  eager[1].weights["in->post.weights"].values)


# ------------------------------------------------------------------ PoissonInput
def _poisson_net() -> Network:
    net = Network("threads_poisson", DT)
    lif = dict(tau_m_ms=10.0, tau_syn_exc_ms=2.0, tau_syn_inh_ms=4.0, v_thresh_mV=-50.0,
               v_reset_mV=-65.0, v_rest_mV=-65.0, tau_refrac_ms=2.0)
    a = net.population("a", 70, LIF(**lif), initial={"v": -65.0})
    b = net.population("b", 40, LIF(**lif), initial={"v": -65.0})
    net.poisson_input("a", 100, 250.0, 1.3, channel="exc", name="to_a")
    net.poisson_input("a", 50, 80.0, -0.7, channel="inh", name="inh_a", counts="poisson")
    net.poisson_input("b", 30, np.linspace(100.0, 400.0, 40), 0.6, channel="v", name="to_b",
                      start_ms=20.0, stop_ms=130.0)
    net.connect(a, b, FixedProbability(0.3, seed=1), weight=0.8, delay_ms=0.5)
    net.connect(b, a, FixedProbability(0.3, seed=2), weight=-0.5, delay_ms=0.2, target="inh")
    net.record_spikes(a, b)
    net.record_state("b", "v", every_steps=9)  # segments that do not divide a chunk
    return net


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("seeds, threads", [((4,), 1), ((4,), 2), ((4, 5, 6), 2)])
def test_poisson_input_on_the_kernel_equals_eager(precision, seeds, threads):
    # 150 ms: the draws' chunks of 1000 steps change inside the run
    eager = _run(_poisson_net(), "eager", precision, seeds, t_ms=150.0)
    native = _run(_poisson_net(), "native", precision, seeds, threads, t_ms=150.0)
    assert native[0].engine == "native"
    assert native[1].spikes_by_node["a"].step.size > 100
    assert native[1].spikes_by_node["b"].step.size > 50
    _assert_same(native, eager, list(range(len(seeds))))
    np.testing.assert_array_equal(native[1].traces["b.v"].values, eager[1].traces["b.v"].values)


# ------------------------------------------------------------------ conductance models
def _cond_net(model: str) -> Network:
    rng = np.random.default_rng(9)
    net = Network(f"threads_{model}", DT)
    cell = dict(C_pF=200.0, g_L_nS=10.0, E_L_mV=-60.0, E_exc_mV=0.0, E_inh_mV=-80.0,
                tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0, tau_refrac_ms=2.0)
    if model == "condlif":
        neuron = CondLIF(**cell, V_th_mV=-50.0, V_reset_mV=-60.0,
                         I_e_pA=rng.uniform(0.0, 150.0, 90))
    else:
        neuron = CondAdEx(**cell, V_reset_mV=-58.0, a_nS=2.0, b_pA=40.0, tau_w_ms=80.0,
                          I_e_pA=rng.uniform(0.0, 200.0, 90))
    pop = net.population("cells", 90, neuron,
                         initial={"v": rng.uniform(-60.0, -52.0, 90)})
    src = net.poisson_source("drive", 90, 30.0)
    net.connect(src, pop, OneToOne(), weight=6.0, delay_ms=DT, target="exc")
    net.poisson_input("cells", 40, 50.0, 1.5, channel="exc", name="bg")
    net.connect(pop, pop, FixedProbability(0.1, seed=6), weight=20.0, delay_ms=0.5,
                target="inh")
    net.inject_current(pop, rng.uniform(0.0, 60.0, 90), name="dc")
    net.record_spikes(pop)
    net.record_state(pop, "v", every_steps=11)
    net.record_state(pop, "g_inh", every_steps=11)
    return net


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("model", ["condlif", "condadex"])
@pytest.mark.parametrize("seeds, threads", [((1,), 1), ((1, 2), 2)])
def test_conductance_models_on_the_kernel_equal_eager(precision, model, seeds, threads):
    eager = _run(_cond_net(model), "eager", precision, seeds, t_ms=80.0)
    native = _run(_cond_net(model), "native", precision, seeds, threads, t_ms=80.0)
    assert native[0].engine == "native"
    assert native[1].spikes_by_node["cells"].step.size > 50
    _assert_same(native, eager, list(range(len(seeds))))
    for key in ("cells.v", "cells.g_inh"):
        np.testing.assert_array_equal(native[1].traces[key].values, eager[1].traces[key].values)


def test_conductance_models_are_refused_without_torchs_exp(monkeypatch):
    monkeypatch.setattr(native_engine, "torch_exp_function",
                        lambda precision: (None, "no vmsExp here"))
    with pytest.raises(EvoSpikeError, match=r"population 'cells' \(ConductanceStep\): no vmsExp"):
        get_backend("torch").compile(_cond_net("condlif"), engine="native", progress=False)
    auto = get_backend("torch").compile(_cond_net("condlif"), progress=False)
    assert auto.engine == "eager" and "no vmsExp here" in auto.engine_note


def test_torchs_exp_is_found_and_checked():
    for precision in ("float32", "float64"):
        address, why = native_engine.torch_exp_function(precision)
        assert address is not None, why


# ------------------------------------------------------------------ options and metadata
def test_threads_option_is_checked_and_reported():
    net = _poisson_net()
    for bad in (0, -2, 1.5, True):
        with pytest.raises(EvoSpikeError, match=f"threads must be a whole number.*{bad!r}"):
            get_backend("torch").compile(net, threads=bad, progress=False)
    runner, res = _run(net, "native", "float32", (0, 1), 2, t_ms=5.0)
    assert res.meta["threads"] == 2 and "trials in parallel" in res.meta["threading"]
    assert "2 CPU thread(s) (native kernel, trials in parallel)" in res.summary()
    # by default: every core over the trials, a single trial not split
    cores = native_engine.available_cores()
    runner, res = _run(net, "native", "float32", tuple(range(cores)), None, t_ms=5.0)
    assert res.meta["threads"] == cores
    runner, res = _run(net, "native", "float32", (0,), None, t_ms=5.0)
    assert res.meta["threads"] == 1 and runner._native.threading == "one"


def test_small_networks_are_not_split(monkeypatch):
    monkeypatch.setattr(native_engine, "MIN_NEURONS_PER_THREAD", 1024)
    runner, res = _run(_poisson_net(), "native", "float32", (0,), 4, t_ms=1.0)
    assert runner._native.threading == "one" and res.meta["threads"] == 1


def test_rows_sorted():
    indptr = np.array([0, 3, 3, 5])
    assert native_engine._rows_sorted(indptr, np.array([0, 2, 2, 1, 4]))
    assert not native_engine._rows_sorted(indptr, np.array([0, 2, 1, 1, 4]))
    assert not native_engine._rows_sorted(indptr, np.array([0, 2, 3, 4, 1]))


def test_cli_threads_reach_the_kernel(tmp_path, capsys):
    from evospike.cli.main import main

    model = tmp_path / "model.py"
    model.write_text(
        "from evospike import LIF, Network\n"
        "def build():\n"
        "    net = Network('cli_threads', 0.1)\n"
        "    net.population('p', 8, LIF(v_rest_mV=-40.0, v_thresh_mV=-50.0))\n"
        "    net.record_spikes('p')\n"
        "    return net\n")
    out = tmp_path / "r.h5"
    assert main(["run", str(model), "--duration", "2ms", "--trials", "3", "--threads", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert "2 CPU thread(s) (native kernel, trials in parallel)" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "2 CPU thread(s) (native kernel, trials in parallel)" in capsys.readouterr().out
    assert main(["run", str(model), "--threads", "0", "--out", str(out)]) == 2
    assert "evospike: error: --threads must be at least 1 (got 0)" in capsys.readouterr().err
