"""Whole runs: batches, seeds, segments, and the two engines against each other."""

import numpy as np
import pytest

from evospike import (
    LIF,
    AdaptiveLIF,
    CubaLIF,
    FixedProbability,
    Izhikevich,
    Network,
    Normal,
    Uniform,
)
from evospike.backends import get_backend
from tests.conftest import load_example, run_torch


def _spikes(res, node, trial=0):
    return res.spike_steps(node, trial)


def _assert_same_spikes(a, b, nodes, trial_a=0, trial_b=0):
    for node in nodes:
        sa, na = _spikes(a, node, trial_a)
        sb, nb = _spikes(b, node, trial_b)
        np.testing.assert_array_equal(sa, sb, err_msg=node)
        np.testing.assert_array_equal(na, nb, err_msg=node)


@pytest.fixture(scope="module")
def quickstart():
    return load_example("quickstart")


def test_trial_of_batch_equals_same_seed_alone(engine, quickstart):
    batch = run_torch(quickstart.build(), 300.0, engine=engine, seeds=(3, 4, 5))
    alone = run_torch(quickstart.build(), 300.0, engine=engine, seeds=(4,))
    _assert_same_spikes(batch, alone, ["exc", "inh", "drive"], trial_a=1, trial_b=0)
    np.testing.assert_array_equal(batch.traces["exc.v"].values[1], alone.traces["exc.v"].values[0])
    assert alone.spikes_by_node["exc"].step.size > 50


def test_same_seed_same_spikes_other_seed_other_spikes(engine, quickstart):
    a = run_torch(quickstart.build(), 300.0, engine=engine, seeds=(7,))
    b = run_torch(quickstart.build(), 300.0, engine=engine, seeds=(7,))
    c = run_torch(quickstart.build(), 300.0, engine=engine, seeds=(8,))
    _assert_same_spikes(a, b, ["exc", "inh", "drive"])
    assert not np.array_equal(a.spike_steps("drive")[0], c.spike_steps("drive")[0])
    assert not np.array_equal(a.spike_steps("exc")[0], c.spike_steps("exc")[0])


def test_two_segments_equal_one_run(engine, quickstart):
    one = get_backend("torch").compile(quickstart.build(), engine=engine, seeds=(1, 2),
                                       progress=False).run(1000.0)
    runner = get_backend("torch").compile(quickstart.build(), engine=engine, seeds=(1, 2),
                                          progress=False)
    runner.run(500.0)
    two = runner.run(500.0)
    assert two.n_steps == one.n_steps == 10_000
    for trial in (0, 1):
        _assert_same_spikes(one, two, ["exc", "inh", "drive"], trial, trial)
    np.testing.assert_array_equal(one.traces["exc.v"].values, two.traces["exc.v"].values)


def test_cuba_engines_agree_spike_for_spike():
    cuba = load_example("cuba")
    runs = [run_torch(cuba.build(1000, connection_probability=0.08), 200.0, engine=e,
                      seeds=(0, 1)) for e in ("eager", "native")]
    for trial in (0, 1):
        _assert_same_spikes(*runs, ["exc", "inh"], trial, trial)
    assert runs[0].spikes_by_node["exc"].step.size > 100


def _zoo(dt_ms=0.1) -> Network:
    """Every model, heterogeneous parameters, random delays, Poisson and time-series drive."""
    rng = np.random.default_rng(0)
    net = Network("zoo", dt_ms=dt_ms)
    lif = net.population("lif", 60, LIF(tau_m_ms=rng.uniform(10, 30, 60), v_rest_mV=-56.0,
                                        v_reset_mV=-70.0, v_thresh_mV=-50.0, tau_refrac_ms=1.0,
                                        tau_syn_exc_ms=3.0, tau_syn_inh_ms=8.0),
                         initial={"v": Uniform(-70, -50)})
    alif = net.population("alif", 30, AdaptiveLIF(reset="subtract", tau_refrac_ms=0.5,
                                                  delta_thresh_mV=rng.uniform(0.5, 2, 30)),
                          initial={"v": Normal(-60, 3)})
    loihi = net.population("loihi", 30, CubaLIF(du=0.2, dv=rng.uniform(0.05, 0.2, 30),
                                                 bias=0.0, v_thresh=40.0))
    izh = net.population("izh", 20, Izhikevich(a=0.02, b=0.2, c_mV=-55.0, d=4.0))
    drive = net.poisson_source("drive", 50, rate_hz=rng.uniform(5, 40, 50))
    for k, pop in enumerate((lif, alif, loihi, izh)):
        net.connect(drive, pop, FixedProbability(0.3, seed=k), weight=Uniform(4.0, 12.0),
                    delay_ms=rng.integers(1, 30, size=None) * dt_ms)
    net.connect(lif, alif, FixedProbability(0.2, seed=9), weight=Normal(3, 1), target="exc")
    net.connect(alif, lif, FixedProbability(0.2, seed=10), weight=-0.5, target="inh")
    net.connect(lif, izh, FixedProbability(0.2, seed=11), weight=2.0, delay_ms=0.5, target="v")
    net.connect(izh, loihi, FixedProbability(0.3, seed=12), weight=Uniform(-1, 4))
    series = np.sin(np.arange(3000) * 0.01)[:, None] * rng.uniform(0, 6, 60)[None, :]
    net.inject_current(lif, series=series, start_ms=10.0)
    net.inject_current(izh, 5.0)
    net.inject_current(alif, 4.0, start_ms=20.0, stop_ms=150.0)
    net.record_spikes(lif, alif, loihi, izh, drive)
    for pop in ("lif", "alif", "loihi", "izh"):
        net.record_state(pop, "v", neurons=[0, 3], every_steps=7)
    return net


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_every_model_engines_agree(precision):
    eager = run_torch(_zoo(), 250.0, engine="eager", precision=precision, seeds=(0, 5))
    native = run_torch(_zoo(), 250.0, engine="native", precision=precision, seeds=(0, 5))
    for trial in (0, 1):
        _assert_same_spikes(eager, native, ["lif", "alif", "loihi", "izh", "drive"], trial, trial)
    for name, trace in eager.traces.items():
        np.testing.assert_allclose(trace.values, native.traces[name].values, rtol=0,
                                   atol=1e-9 if precision == "float64" else 1e-4, err_msg=name)
    for node in ("lif", "alif", "loihi", "izh"):
        assert eager.spikes_by_node[node].step.size > 20, node


def test_memory_per_synapse_float32_at_most_10_bytes():
    cuba = load_example("cuba")
    runner = get_backend("torch").compile(cuba.build(), progress=False)
    report = runner.memory_report()
    assert report["synapses"] > 300_000
    assert report["bytes_per_synapse"] <= 10.0
    assert report["total_bytes_per_synapse"] <= 10.0
    # heterogeneous delays cost two bytes more per synapse, still within the bound
    net = _zoo()
    report = get_backend("torch").compile(net, progress=False).memory_report()
    assert report["bytes_per_synapse"] <= 10.0


def test_cuba_fires_at_published_rate():
    cuba = load_example("cuba")
    res = run_torch(cuba.build(), 1000.0, seeds=(0,))
    for node in ("exc", "inh"):
        assert 3.0 < res.mean_rate_hz(node) < 9.0, res.summary()


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_matches_cpu():
    a = run_torch(_zoo(), 100.0, engine="eager", precision="float64", device="cpu")
    b = run_torch(_zoo(), 100.0, engine="eager", precision="float64", device="cuda")
    _assert_same_spikes(a, b, ["lif", "alif", "loihi", "izh", "drive"])
