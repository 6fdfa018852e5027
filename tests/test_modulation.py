"""Modulators, modulated and three-factor STDP, homeostasis and metaplasticity: the dynamics the
IR defines (`evospike.ir.modulators`, `evospike.ir.plasticity`), on torch and on Brian2, and the
two backends' trajectories compared on deterministic spike inputs."""

import numpy as np
import pytest

from evospike import LIF, AllToAll, FixedProbability, Network, OneToOne
from evospike.errors import ValidationError
from evospike.ir.modulators import (
    Modulator,
    NoveltyDrive,
    RewardEvents,
    RewardSeries,
    SpikeCountDrive,
)
from evospike.ir.plasticity import Homeostasis, Metaplasticity, RewardModulatedSTDP
from tests.conftest import run_on, run_torch

DT = 0.1


def _times(rng, n_neurons: int, n_spikes: int, t_max_ms: float):
    neurons = rng.integers(0, n_neurons, n_spikes)
    steps = rng.choice(int(t_max_ms / DT), n_spikes, replace=False)
    return neurons, steps * DT


def plastic_net(rule: str = "rstdp", *, modulation: str = "gate", meta: str | None = None,
                homeostasis: str | None = None, seed: int = 3, n_pre: int = 12, n_post: int = 4,
                t_max_ms: float = 300.0) -> Network:
    """Spike-time inputs onto LIF neurons that a second input makes fire; the first input's
    projection is plastic. A reward modulator (events + a series + the post population's spike
    count) is the third factor or the gate."""
    rng = np.random.default_rng(seed)
    net = Network("plastic", DT)
    pre = net.spike_source("pre", n_pre, *_times(rng, n_pre, 600, t_max_ms))
    drive = net.spike_source("drive", n_post, *_times(rng, n_post, 120, t_max_ms))
    post = net.population("post", n_post, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0,
                                              v_thresh_mV=-50.0, v_reset_mV=-65.0,
                                              v_rest_mV=-65.0, tau_refrac_ms=0.5),
                          initial={"v": -65.0})
    net.connect(drive, post, OneToOne(), weight=40.0, delay_ms=0.1, name="drive->post")
    w0 = rng.uniform(0.5, 2.0, n_pre * n_post)
    proj = net.connect(pre, post, AllToAll(), weight=w0, delay_ms=0.2, name="pre->post")
    series = np.sin(np.arange(800) * 0.01) * 0.05
    net.modulator("reward", 50.0, [RewardEvents([40.0, 95.5, 180.0], [1.0, -0.5, 2.0]),
                                   RewardSeries(series, start_step=300),
                                   SpikeCountDrive("post", 0.02)])
    common = dict(tau_plus_ms=15.0, tau_minus_ms=25.0, a_plus=0.3, a_minus=0.25, w_min=0.0,
                  w_max=5.0)
    if rule == "rstdp":
        r = net.reward_stdp(proj, "reward", tau_eligibility_ms=40.0, learning_rate_per_ms=0.05,
                            **common)
    else:
        r = net.stdp(proj, modulator="reward" if modulation else None,
                     modulation=modulation or "gate", gate_threshold=0.1, scale_gain=2.0,
                     weight_dependence=rule, **common)
    if meta is not None:
        lo, hi = (5.0, 40.0) if meta.startswith("tau") else (0.0, 1.0)
        net.metaplasticity(r, "reward", meta, eta=20.0 if meta.startswith("tau") else 2.0,
                           tau_baseline_ms=30.0, p_min=lo, p_max=hi)
        net.record_state(f"{r.name}.{meta}.meta", "value")
    if homeostasis == "threshold":
        net.homeostasis(post, target_rate_hz=20.0, tau_rate_ms=50.0, threshold_rate=2.0)
        net.record_state("post.homeostasis", "theta")
    elif homeostasis == "scaling":
        net.homeostasis(post, target_rate_hz=20.0, tau_rate_ms=50.0, mechanism="scaling",
                        projections=("drive->post",), scaling_rate=0.5, every_steps=50)
        net.record_state("post.homeostasis", "rate_hz")
        net.record_weights("drive->post", every_steps=10)
    net.record_spikes(post)
    net.record_weights(proj, every_steps=10)
    net.record_state("reward", "level")
    return net


def _compare(a, b, net) -> None:
    ta, na = a.spike_steps("post")
    tb, nb = b.spike_steps("post")
    assert ta.size > 20, "the test network should make the post neurons fire"
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(na, nb)
    for name in net.weight_monitors:
        np.testing.assert_array_equal(a.weights[name].steps, b.weights[name].steps)
        np.testing.assert_allclose(a.weights[name].values, b.weights[name].values, rtol=1e-9,
                                   atol=1e-9)
    for name in net.state_monitors:
        np.testing.assert_allclose(a.traces[name].values, b.traces[name].values, rtol=1e-9,
                                   atol=1e-9)


CASES = {
    "three-factor": dict(rule="rstdp"),
    "gated-additive": dict(rule="additive", modulation="gate"),
    "scaled-multiplicative": dict(rule="multiplicative", modulation="scale"),
    "meta-tau_plus": dict(rule="rstdp", meta="tau_plus_ms"),
    "meta-a_plus": dict(rule="additive", modulation="scale", meta="a_plus"),
    "homeostatic-threshold": dict(rule="rstdp", homeostasis="threshold"),
    "homeostatic-scaling": dict(rule="additive", modulation="gate", homeostasis="scaling"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_torch_and_brian2_trajectories_agree(case):
    net = plastic_net(**CASES[case])
    a = run_on("torch-eager", net, 300.0, precision="float64")
    b = run_on("brian2", plastic_net(**CASES[case]), 300.0)
    _compare(a, b, net)
    w = a.weights["pre->post.weights"].values if "pre->post.weights" in a.weights else None
    if w is not None:
        assert np.abs(w[0, -1] - w[0, 0]).max() > 1e-3, "the rule should have moved the weights"


def novelty_net() -> Network:
    """A population whose input rate jumps: novelty rises after the jump and fades."""
    rng = np.random.default_rng(5)
    net = Network("novelty", DT)
    early = _times(rng, 10, 60, 100.0)
    late_n, late_t = _times(rng, 10, 400, 100.0)
    src = net.spike_source("in", 10, np.concatenate([early[0], late_n]),
                           np.concatenate([early[1], late_t + 100.0]))
    pop = net.population("pop", 10, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0), initial={"v": -65.0})
    net.connect(src, pop, OneToOne(), weight=60.0, delay_ms=0.1)
    net.modulator("novelty", 20.0, [NoveltyDrive("pop", gain=0.01, tau_rate_ms=10.0,
                                                 tau_expect_ms=100.0)])
    net.modulator("count", 5.0, [SpikeCountDrive("in", 0.5)])
    for var in ("level", "rate_hz", "expected_hz"):
        net.record_state("novelty", var)
    net.record_state("count", "level")
    net.record_spikes(pop, src)
    return net


def reference_modulators(res, net) -> dict[str, np.ndarray]:
    """The modulator equations of `evospike.ir.modulators`, step by step in NumPy, from the
    recorded spikes."""
    n = res.n_steps
    pop_counts = np.bincount(res.spike_steps("pop")[0], minlength=n)
    in_counts = np.bincount(res.spike_steps("in")[0], minlength=n)
    a, b, d = np.exp(-DT / 10.0), np.exp(-DT / 100.0), np.exp(-DT / 20.0)
    r = rb = m = c = 0.0
    out = {"level": [], "rate_hz": [], "expected_hz": [], "count": []}
    for k in range(n):
        r = r * a + (1 - a) * pop_counts[k] / (10 * DT * 1e-3)
        rb = rb * b + (1 - b) * r
        m = m * d + 0.01 * abs(r - rb)
        c = c * np.exp(-DT / 5.0) + 0.5 * in_counts[k]
        for key, value in (("level", m), ("rate_hz", r), ("expected_hz", rb), ("count", c)):
            out[key].append(value)
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("backend", ["torch-eager", "brian2"])
def test_modulator_follows_its_equations(backend):
    net = novelty_net()
    res = run_on(backend, net, 200.0, precision="float64")
    ref = reference_modulators(res, net)
    for var in ("level", "rate_hz", "expected_hz"):
        np.testing.assert_allclose(res.traces[f"novelty.{var}"].values[0, :, 0], ref[var],
                                   rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.traces["count.level"].values[0, :, 0], ref["count"],
                               rtol=1e-9, atol=1e-9)
    level = res.traces["novelty.level"].values[0, :, 0]
    assert level[1200:1400].max() > 3 * level[800:1000].max(), "novelty should peak after the jump"


def test_reward_drives_add_in_their_steps():
    net = Network("rewards", DT)
    net.population("p", 1, LIF())
    net.modulator("m", 1e9, [RewardEvents([0.25, 0.25, 0.5], [1.0, 2.0, -0.5]),
                             RewardSeries(np.array([0.1, 0.2]), start_step=4)])
    net.record_state("m", "level")
    level = run_torch(net, 1.0, precision="float64").traces["m.level"].values[0, :, 0]
    np.testing.assert_allclose(level, [0, 0, 3.0, 3.0, 3.1, 2.8, 2.8, 2.8, 2.8, 2.8],
                               atol=1e-6)


def test_trials_learn_independently_and_match_single_runs():
    net = plastic_net("rstdp")
    batch = run_torch(net, 100.0, precision="float64", seeds=(0, 1), engine="eager")
    alone = run_torch(plastic_net("rstdp"), 100.0, precision="float64", seeds=(1,))
    np.testing.assert_array_equal(batch.weights["pre->post.weights"].values[1],
                                  alone.weights["pre->post.weights"].values[0])


def test_native_engine_refuses_processes_and_auto_falls_back():
    """The native kernel carries Modulators, modulated / three-factor STDP, homeostasis and
    metaplasticity (tests/test_native_three_factor.py, tests/test_native_homeostasis.py);
    other process kinds (here apoptosis) stay on eager."""
    from evospike.backends import get_backend

    torch_backend = get_backend("torch")
    for kwargs in (dict(homeostasis="threshold"), dict(meta="tau_plus_ms"),
                   dict(homeostasis="scaling", meta="a_minus")):
        runner = torch_backend.compile(plastic_net("rstdp", **kwargs), engine="auto",
                                       progress=False)
        assert runner.engine == "native"
    net = plastic_net("rstdp", homeostasis="threshold")
    net.apoptosis("post")
    with pytest.raises(Exception, match="only Modulators, Homeostasis and Metaplasticity, "
                                        "not the other process kinds .Apoptosis 'post.apoptosis'"):
        torch_backend.compile(net, engine="native", progress=False)
    runner = torch_backend.compile(net, engine="auto", progress=False)
    assert runner.engine == "eager" and "Apoptosis 'post.apoptosis'" in runner.engine_note


@pytest.mark.parametrize("weight, free_range", [(15.0, (40.0, 60.0)), (2.0, (0.0, 1.0))])
def test_homeostasis_brings_rates_to_target(weight, free_range):
    """Driven far above or below 10 Hz, the neurons settle near it under the adaptive
    threshold (mean rate over the last second of four)."""
    def build(with_homeostasis: bool) -> Network:
        net = Network("homeo", 0.5)
        src = net.poisson_source("in", 100, 20.0)
        pop = net.population("pop", 20, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0))
        net.connect(src, pop, FixedProbability(0.3, seed=1), weight=weight, delay_ms=0.5)
        if with_homeostasis:
            net.homeostasis(pop, target_rate_hz=10.0, tau_rate_ms=200.0, threshold_rate=1.0)
        net.record_spikes(pop)
        return net

    def last_second_hz(net) -> float:
        return float((run_torch(net, 4000.0).spike_steps("pop")[0] >= 6000).sum() / 20)

    assert free_range[0] <= last_second_hz(build(False)) <= free_range[1]
    assert 7.0 <= last_second_hz(build(True)) <= 13.0


def test_network_with_processes_round_trips(tmp_path):
    net = plastic_net("rstdp", meta="tau_plus_ms", homeostasis="threshold")
    net.add(Modulator("novel", 10.0, [NoveltyDrive("post")]))
    net.save(tmp_path / "n.h5")
    back = Network.load(tmp_path / "n.h5")
    assert list(back.processes) == list(net.processes)
    for name, proc in net.processes.items():
        assert repr(back.processes[name]) == repr(proc)
    assert repr(back.plasticity) == repr(net.plasticity)
    a = run_torch(net, 50.0, precision="float64")
    b = run_torch(back, 50.0, precision="float64")
    np.testing.assert_array_equal(a.weights["pre->post.weights"].values,
                                  b.weights["pre->post.weights"].values)


@pytest.mark.parametrize("build, match", [
    (lambda: Modulator("m", -1.0), r"Modulator 'm': tau_ms must lie in \(0, 1e9\] ms"),
    (lambda: Modulator("m", 10.0, [RewardEvents([1.0, -2.0], [1.0, 1.0])]),
     r"RewardEvents.times_ms must be finite and >= 0 \(got '-2.0 at index 1'\)"),
    (lambda: Modulator("m", 10.0, [RewardEvents([1.0, 2.0], [1.0, 1.0, 3.0])]),
     "RewardEvents.amounts must be a scalar or have one value per event"),
    (lambda: Modulator("m", 10.0, [RewardSeries(np.array([1.0, np.nan]))]),
     "RewardSeries.values must be finite"),
    (lambda: Modulator("m", 10.0, ["reward"]), "drives entries must be one of"),
    (lambda: Modulator("m", 10.0, [NoveltyDrive("p", tau_rate_ms=100, tau_expect_ms=50)]),
     "tau_expect_ms must exceed tau_rate_ms"),
    (lambda: RewardModulatedSTDP("r", "p"), "RewardModulatedSTDP 'r': modulator is required"),
    (lambda: RewardModulatedSTDP("r", "p", modulator="m", weight_dependence="multiplicative"),
     "weight_dependence must be 'additive'"),
    (lambda: Homeostasis("h", "p", mechanism="scaling"), "projections must name the incoming"),
    (lambda: Homeostasis("h", "p", mechanism="sleep"), "mechanism must be one of"),
    (lambda: Metaplasticity("x", "r", "m", parameter="w_max"), "parameter must be one of"),
    (lambda: Metaplasticity("x", "r", "m", parameter="tau_plus_ms", p_min=0.0),
     "p_min must be > 0 for a time constant"),
])
def test_bad_process_parameters_are_named(build, match):
    with pytest.raises(ValidationError, match=match):
        build()


def test_bad_references_are_named():
    net = plastic_net("additive", modulation=None)
    with pytest.raises(ValidationError, match="modulator is not a Modulator of the network"):
        net.stdp("drive->post", modulator="dopamine")
    with pytest.raises(ValidationError, match="SpikeCountDrive.population is not a population"):
        net.modulator("m2", 10.0, [SpikeCountDrive("nowhere")])
    with pytest.raises(ValidationError, match="projections names a projection the network does "
                                              "not have \\(got 'x'\\)"):
        net.homeostasis("post", mechanism="scaling", projections=("pre->post", "x"))
    net.population("other", 2, LIF())
    net.connect("pre", "other", AllToAll(), weight=1.0, name="pre->other")
    with pytest.raises(ValidationError, match="projections must end on 'post'"):
        net.homeostasis("post", mechanism="scaling", projections=("pre->other",))
    with pytest.raises(ValidationError, match="a_plus of rule 'pre->post.stdp' must start within"):
        net.metaplasticity("pre->post.stdp", "reward", "a_plus", p_min=0.5, p_max=1.0)
    with pytest.raises(ValidationError, match="variable is not a state of Modulator"):
        net.record_state("reward", "dopamine")


def test_brian2_refuses_nothing_it_carries_and_runs_in_segments():
    """Two Brian2 segments give the run of one (the processes keep their state)."""
    net = plastic_net("rstdp", meta="a_plus", homeostasis="threshold")
    from evospike.backends import get_backend

    runner = get_backend("brian2").compile(net, target="numpy", progress=False)
    runner.run(150.0)
    two = runner.run(150.0)
    one = run_on("brian2", plastic_net("rstdp", meta="a_plus", homeostasis="threshold"), 300.0)
    np.testing.assert_allclose(two.weights["pre->post.weights"].values,
                               one.weights["pre->post.weights"].values, rtol=1e-12)


@pytest.mark.slow
def test_reward_learning_example_learns_only_with_the_modulator():
    from tests.conftest import load_example

    example = load_example("reward_learning")
    out = example.run_both(60, progress=False)
    modulated = out["curves"]["three-factor STDP"]
    plain = out["curves"]["plain STDP (no modulator)"]
    assert modulated[-2:].mean() > 0.25
    assert abs(plain[-2:].mean()) < 0.2
    w_mod = out["weights"]["three-factor STDP"][-1]
    half = w_mod.size // 2
    assert w_mod[:half].mean() > w_mod[half:].mean() + 0.3  # A's synapses won, B's lost
