"""The Brian2 reference backend against the torch backend on the same networks.

Feed-forward networks driven by fixed spike trains must give the identical raster on both
backends (float64): same inputs, same integration scheme, same order of operations."""

import numpy as np
import pytest

from evospike import (
    LIF,
    AdaptiveLIF,
    CubaLIF,
    FixedProbability,
    FromArrays,
    Izhikevich,
    Network,
    Uniform,
    UnsupportedError,
)
from evospike.backends import get_backend
from evospike.cli import main
from evospike.results import Results
from tests.conftest import ROOT, load_example, run_on

MODELS = {
    "lif": (LIF(v_rest_mV=-56.0, tau_refrac_ms=2.0), (4.0, 12.0)),
    "lif-subtract": (LIF(v_rest_mV=-56.0, reset="subtract", tau_syn_inh_ms=8.0), (4.0, 12.0)),
    "adaptive-lif": (AdaptiveLIF(v_rest_mV=-56.0, tau_refrac_ms=1.0), (4.0, 12.0)),
    "cuba-lif": (CubaLIF(du=0.2, dv=0.1, v_thresh=40.0, tau_refrac_ms=0.5), (4.0, 12.0)),
    "izhikevich": (Izhikevich(d=2.0), (3.0, 10.0)),
}
TARGET_SCALE = {"exc": 1.0, "inh": -0.5, "v": 0.4}


def _fixed_trains(n: int, rate_hz: float, duration_ms: float, seed: int):
    rng = np.random.default_rng(seed)
    steps = np.nonzero(rng.random((int(duration_ms * 10), n)) < rate_hz * 1e-4)
    return steps[1], steps[0] * 0.1


def _feedforward(model, weights, target: str) -> Network:
    net = Network("feedforward", dt_ms=0.1)
    neurons, times = _fixed_trains(60, 40.0, 300.0, seed=3)
    src = net.spike_source("trains", 60, neurons, times)
    helper = net.spike_source("excite", 60, *_fixed_trains(60, 40.0, 300.0, seed=4))
    pop = net.population("pop", 25, model)
    scale = TARGET_SCALE[target]
    net.connect(src, pop, FixedProbability(0.3, seed=1), weight=Uniform(*weights) if
                scale == 1.0 else weights[1] * scale, delay_ms=0.3, target=target)
    if target != "exc":  # keep the population firing so the other channel is exercised
        net.connect(helper, pop, FixedProbability(0.3, seed=2), weight=weights[1], delay_ms=0.2)
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=[0, 1, 2], every_steps=3)
    return net


@pytest.mark.parametrize("target", ["exc", "inh", "v"])
@pytest.mark.parametrize("model", list(MODELS))
def test_feedforward_rasters_identical(model, target):
    cell, weights = MODELS[model]
    ref = run_on("brian2", _feedforward(cell, weights, target), 300.0)
    cand = run_on("torch-native", _feedforward(cell, weights, target), 300.0,
                  precision="float64")
    rs, rn = ref.spike_steps("pop")
    cs, cn = cand.spike_steps("pop")
    assert rs.size > 30, f"too few spikes to compare ({rs.size})"
    np.testing.assert_array_equal(cs, rs)
    np.testing.assert_array_equal(cn, rn)
    np.testing.assert_allclose(cand.traces["pop.v"].values, ref.traces["pop.v"].values,
                               rtol=0, atol=1e-8)
    np.testing.assert_array_equal(cand.traces["pop.v"].steps, ref.traces["pop.v"].steps)


def test_delays_of_1_to_20_steps_agree():
    rng = np.random.default_rng(8)
    n_pre, n_post, n_syn = 40, 30, 900
    net = Network("delays", dt_ms=0.1)
    src = net.poisson_source("drive", n_pre, rate_hz=50.0)
    pop = net.population("pop", n_post, LIF(v_rest_mV=-58.0, tau_refrac_ms=1.0))
    delays_steps = rng.integers(1, 21, n_syn)
    net.connect(src, pop, FromArrays(rng.integers(0, n_pre, n_syn), rng.integers(0, n_post, n_syn),
                                     weights=rng.uniform(1.0, 6.0, n_syn),
                                     delays_ms=delays_steps * 0.1))
    net.record_spikes(pop, src)
    assert set(np.unique(net.projections["drive->pop"].delays)) == set(range(1, 21))
    ref = run_on("brian2", net, 300.0, seeds=(5,))
    cand = run_on("torch-native", net, 300.0, precision="float64", seeds=(5,))
    for node in ("drive", "pop"):
        np.testing.assert_array_equal(cand.spike_steps(node)[0], ref.spike_steps(node)[0])
        np.testing.assert_array_equal(cand.spike_steps(node)[1], ref.spike_steps(node)[1])
    assert ref.spikes_by_node["pop"].step.size > 50


def test_time_varying_current_and_segments():
    net = load_example("quickstart").build()
    net.inject_current("inh", series=np.linspace(0.0, 12.0, 1500), start_ms=20.0)
    runner = get_backend("brian2").compile(net, target="numpy", seeds=(2,), progress=False)
    runner.run(100.0)
    two = runner.run(100.0)
    net2 = load_example("quickstart").build()
    net2.inject_current("inh", series=np.linspace(0.0, 12.0, 1500), start_ms=20.0)
    one = run_on("torch-native", net2, 200.0, precision="float64", seeds=(2,))
    for node in ("exc", "inh", "drive"):
        np.testing.assert_array_equal(two.spike_steps(node)[0], one.spike_steps(node)[0])
        np.testing.assert_array_equal(two.spike_steps(node)[1], one.spike_steps(node)[1])
    assert two.n_steps == 2000 and two.spikes_by_node["inh"].step.size > 5


def test_refuses_what_brian2_cannot_integrate_before_running():
    net = Network("singular", dt_ms=0.1)
    net.population("ok", 3, LIF())
    net.population("same-tau", 3, LIF(tau_m_ms=5.0, tau_syn_exc_ms=5.0, tau_syn_inh_ms=5.0))
    with pytest.raises(UnsupportedError) as info:
        get_backend("brian2").compile(net)
    text = str(info.value)
    assert "Population 'same-tau' (LIF)" in text and "tau_syn_exc_ms" in text
    assert "'ok'" not in text


def test_cli_runs_on_brian2(tmp_path):
    out = tmp_path / "b.h5"
    assert main(["run", str(ROOT / "examples" / "quickstart.py"), "--backend", "brian2",
                 "--target", "numpy", "--duration", "50ms", "--out", str(out),
                 "--no-progress"]) == 0
    res = Results.load(out)
    assert res.meta["backend"] == "brian2" and res.meta["engine"] == "runtime/numpy"
    assert res.spikes_by_node["drive"].step.size > 0


@pytest.mark.slow
def test_cpp_standalone_matches_runtime_and_runs_once():
    runner = get_backend("brian2").compile(load_example("quickstart").build(),
                                           target="cpp_standalone", progress=False)
    standalone = runner.run(100.0)
    runtime = run_on("brian2", load_example("quickstart").build(), 100.0)
    for node in ("exc", "inh", "drive"):
        np.testing.assert_array_equal(standalone.spike_steps(node)[0], runtime.spike_steps(node)[0])
        np.testing.assert_array_equal(standalone.spike_steps(node)[1], runtime.spike_steps(node)[1])
    assert standalone.meta["engine"] == "cpp_standalone"
    assert standalone.meta["standalone_run_time_s"] > 0
    with pytest.raises(Exception, match="cannot continue"):
        runner.run(10.0)
    # the process is back in runtime mode afterwards
    assert run_on("brian2", load_example("quickstart").build(), 10.0).n_steps == 100


def test_spikes_of_a_segments_last_step_are_delivered_in_the_next():
    """Brian2 clears its spike lists at the end of a run; the spikes of the last step of one
    segment must still arrive in the next. Segments are cut right after steps in which the
    driving population fired."""
    def build() -> Network:
        net = Network("chain", dt_ms=0.1)
        a = net.population("a", 5, LIF(i_bias_mV=20.0 + np.arange(5.0)))
        b = net.population("b", 3, LIF())
        net.connect(a, b, FixedProbability(1.0, seed=0), weight=4.0, delay_ms=0.1)
        net.record_spikes(a, b)
        net.record_state(b, "v")
        return net

    one = run_on("torch-native", build(), 100.0, precision="float64")
    a_steps = np.unique(one.spike_steps("a")[0])
    cuts = [int(s) + 1 for s in a_steps[1:8:2]]  # a segment ends with a spike of 'a'
    runner = get_backend("brian2").compile(build(), target="numpy", progress=False)
    previous = 0
    for cut in [*cuts, 1000]:
        split = runner.run((cut - previous) * 0.1)
        previous = cut
    np.testing.assert_array_equal(split.spike_steps("b")[0], one.spike_steps("b")[0])
    np.testing.assert_allclose(split.traces["b.v"].values, one.traces["b.v"].values,
                               rtol=1e-9, atol=1e-9)
