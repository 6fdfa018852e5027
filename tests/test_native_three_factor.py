"""The native CPU kernel carries Modulators and modulated / three-factor STDP exactly like the
eager engine: the same networks on both engines, weights recorded every step, spikes, weights
and modulator states compared bit for bit (`np.array_equal`), in float64 and in float32."""

import numpy as np
import pytest

from evospike import LIF, AllToAll, CubaLIF, FixedProbability, Network, OneToOne
from evospike.backends import get_backend
from evospike.ir.modulators import NoveltyDrive, RewardEvents, RewardSeries, SpikeCountDrive

DT = 0.1
STDP_COMMON = dict(tau_plus_ms=15.0, tau_minus_ms=25.0, w_min=0.0)


def _net(rule: str, *, model: str = "lif", drives: str = "events", pairing: str = "all",
         modulation: str = "gate", dependence: str = "additive", seed: int = 1,
         n_pre: int = 30, n_post: int = 6, t_ms: float = 200.0) -> Network:
    """Poisson inputs onto a LIF or CubaLIF layer, the input projection plastic; a second
    Poisson input keeps the layer firing. ``rule``: "rstdp" (three-factor) or "stdp" (modulated
    by ``modulation``). ``drives``: what raises the modulator."""
    rng = np.random.default_rng(seed)
    net = Network(f"native3f_{rule}", DT)
    pre = net.poisson_source("pre", n_pre, 40.0)
    drive = net.poisson_source("drive", n_post, 30.0)
    if model == "lif":
        post = net.population("post", n_post, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0,
                                                  v_thresh_mV=-50.0, v_reset_mV=-65.0,
                                                  v_rest_mV=-65.0, tau_refrac_ms=1.0),
                              initial={"v": -65.0})
        w_drive, w_max = 100.0, 4.0
    else:
        post = net.population("post", n_post, CubaLIF(du=0.2, dv=0.1, v_thresh=40.0))
        w_drive, w_max = 60.0, 4.0
    net.connect(drive, post, OneToOne(), weight=w_drive, delay_ms=0.1, name="drive->post")
    w0 = rng.uniform(0.5, 2.0, n_pre * n_post)
    proj = net.connect(pre, post, AllToAll(), weight=w0, delay_ms=0.3, name="pre->post")
    steps = int(round(t_ms / DT))
    if drives == "events":  # rewards and punishments
        times = np.sort(rng.uniform(5.0, t_ms, 12))
        amounts = rng.choice([1.5, -1.0, 0.7, -2.0], times.size)
        mod_drives = [RewardEvents(times, amounts)]
    elif drives == "series":
        mod_drives = [RewardSeries(np.sin(np.arange(steps) * 0.003) * 0.01, start_step=100)]
    elif drives == "counts":  # spikes of the layer and of an input, and novelty
        mod_drives = [SpikeCountDrive("post", 0.05), SpikeCountDrive("drive", -0.03),
                      NoveltyDrive("post", gain=0.002, tau_rate_ms=10.0, tau_expect_ms=60.0)]
    elif drives == "punish":  # the level starts below the gate threshold and only falls
        mod_drives = [SpikeCountDrive("post", -1.0)]
    else:  # everything at once
        mod_drives = [RewardEvents([20.0, 20.0, 90.0], [1.0, 0.5, -1.5]),
                      RewardSeries(np.full(300, 0.01), start_step=500),
                      SpikeCountDrive("pre", 0.01), NoveltyDrive("drive", gain=0.001)]
    net.modulator("m", 30.0, mod_drives, initial=0.2)
    common = dict(STDP_COMMON, a_plus=0.2, a_minus=0.22, w_max=w_max, pairing=pairing)
    if rule == "rstdp":
        net.reward_stdp(proj, "m", tau_eligibility_ms=40.0, learning_rate_per_ms=0.05,
                        **common)
    else:
        net.stdp(proj, modulator="m", modulation=modulation, gate_threshold=0.25,
                 scale_gain=1.5, weight_dependence=dependence, **common)
    net.record_spikes(post, "pre")
    net.record_weights(proj, every_steps=1)
    net.record_state("m", "level")
    if drives in ("counts", "all"):
        net.record_state("m", "rate_hz")
        net.record_state("m", "expected_hz")
    return net


def _run(net_args: dict, engine: str, precision: str = "float64", seeds=(0, 1),
         duration_ms: float = 200.0, segments: int = 1):
    runner = get_backend("torch").compile(_net(**net_args), engine=engine, precision=precision,
                                          seeds=seeds, progress=False)
    assert runner.engine == engine
    for _ in range(segments):
        res = runner.run(duration_ms / segments)
    return res


def _compare(a, b) -> None:
    """Bit for bit: the README's claim for the native kernel against the eager engine."""
    for node in ("post", "pre"):
        sa, sb = a.spikes_by_node[node], b.spikes_by_node[node]
        np.testing.assert_array_equal(sa.step, sb.step)
        np.testing.assert_array_equal(sa.neuron, sb.neuron)
        np.testing.assert_array_equal(sa.trial, sb.trial)
    assert a.spikes_by_node["post"].step.size > 20, "the layer should fire"
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name].steps, b.weights[name].steps)
        np.testing.assert_array_equal(a.weights[name].values, b.weights[name].values,
                                      err_msg=name)
    assert set(a.traces) == set(b.traces) and "m.level" in a.traces
    for name in a.traces:
        np.testing.assert_array_equal(a.traces[name].steps, b.traces[name].steps)
        np.testing.assert_array_equal(a.traces[name].values, b.traces[name].values,
                                      err_msg=name)


CASES = {
    "rstdp-events-all": dict(rule="rstdp", drives="events"),
    "rstdp-events-nearest": dict(rule="rstdp", drives="events", pairing="nearest", seed=2),
    "rstdp-series-cuba": dict(rule="rstdp", drives="series", model="cuba"),
    "rstdp-counts-novelty": dict(rule="rstdp", drives="counts", seed=3),
    "rstdp-all-drives-nearest": dict(rule="rstdp", drives="all", pairing="nearest"),
    "gated-additive": dict(rule="stdp", modulation="gate", drives="events"),
    "gated-multiplicative-nearest": dict(rule="stdp", modulation="gate", drives="counts",
                                         dependence="multiplicative", pairing="nearest"),
    "scaled-additive-cuba": dict(rule="stdp", modulation="scale", drives="series",
                                 model="cuba"),
    "scaled-multiplicative": dict(rule="stdp", modulation="scale", drives="all",
                                  dependence="multiplicative"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_native_matches_eager_in_float64(case):
    args = CASES[case]
    eager = _run(args, "eager")
    native = _run(args, "native")
    _compare(native, eager)
    w = native.weights["pre->post.weights"].values
    assert np.abs(w[:, -1] - w[:, 0]).max() > 1e-2, "the rule should move the weights"
    assert not np.array_equal(w[0], w[1]), "the two trials should learn differently"
    level = native.traces["m.level"].values
    assert np.abs(level).max() > 0.1, "the modulator should move"


def test_three_seeds_and_segmented_runs_match():
    """Three trials, run in four segments on native (state carried across calls) against one
    eager run."""
    args = dict(rule="rstdp", drives="all", seed=4)
    eager = _run(args, "eager", seeds=(3, 4, 5))
    native = _run(args, "native", seeds=(3, 4, 5), segments=4)
    _compare(native, eager)


def test_gate_closed_freezes_weights_on_native():
    """A gate that never opens (level far below the threshold): modulated STDP changes
    nothing, exactly as on eager."""
    args = dict(rule="stdp", modulation="gate", drives="punish", seed=5)
    eager = _run(args, "eager", duration_ms=100.0)
    native = _run(args, "native", duration_ms=100.0)
    _compare(native, eager)
    w = native.weights["pre->post.weights"].values
    np.testing.assert_array_equal(w[:, -1], w[:, 0])
    assert native.traces["m.level"].values.max() < 0.25


@pytest.mark.parametrize("case", ["rstdp-counts-novelty", "scaled-multiplicative",
                                  "gated-additive"])
def test_float32_is_bit_identical_too(case):
    """float32: every operation is done in the eager engine's order with its roundings, so the
    two engines agree bit for bit in float32 as well."""
    eager = _run(CASES[case], "eager", precision="float32")
    native = _run(CASES[case], "native", precision="float32")
    _compare(native, eager)


def test_native_refuses_other_processes_and_auto_picks_native_for_rstdp():
    torch_backend = get_backend("torch")
    net = _net("rstdp")
    net.apoptosis("post")  # homeostasis and metaplasticity: tests/test_native_homeostasis.py
    with pytest.raises(Exception, match=r"only Modulators.*Apoptosis 'post.apoptosis'"):
        torch_backend.compile(net, engine="native", progress=False)
    auto = torch_backend.compile(net, engine="auto", progress=False)
    assert auto.engine == "eager" and "Apoptosis" in auto.engine_note

    runner = torch_backend.compile(_net("rstdp"), engine="auto", progress=False)
    assert runner.engine == "native"
    res = runner.run(10.0)
    assert res.meta["engine"] == "native"
    assert res.meta["engine_note"] == "compiled multi-step CPU kernel"


def test_modulator_without_plasticity_and_sparse_network_on_native():
    """A modulator read by no rule (only recorded), on a sparse non-plastic network, plus a
    plastic projection whose modulator is driven by a source."""
    def build() -> Network:
        net = Network("free_modulator", DT)
        src = net.poisson_source("in", 50, 20.0)
        pop = net.population("pop", 20, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0),
                             initial={"v": -65.0})
        net.connect(src, pop, FixedProbability(0.3, seed=2), weight=12.0, delay_ms=0.2)
        net.modulator("count", 5.0, [SpikeCountDrive("in", 0.5), SpikeCountDrive("pop", 1.0)])
        net.modulator("nov", 20.0, [NoveltyDrive("pop", gain=0.01, tau_rate_ms=5.0,
                                                 tau_expect_ms=50.0),
                                    RewardEvents([3.0, 7.5], [1.0, -4.0])])
        for target, var in (("count", "level"), ("nov", "level"), ("nov", "rate_hz"),
                            ("nov", "expected_hz")):
            net.record_state(target, var, every_steps=3)
        net.record_spikes(pop)
        return net

    res = {}
    for engine in ("eager", "native"):
        runner = get_backend("torch").compile(build(), engine=engine, precision="float64",
                                              seeds=(7, 8), progress=False)
        res[engine] = runner.run(150.0)
    for name in res["eager"].traces:
        np.testing.assert_array_equal(res["native"].traces[name].values,
                                      res["eager"].traces[name].values, err_msg=name)
    np.testing.assert_array_equal(res["native"].spikes_by_node["pop"].step,
                                  res["eager"].spikes_by_node["pop"].step)
    assert res["native"].traces["nov.rate_hz"].values.max() > 1.0


def test_modulator_on_a_network_of_sources_only():
    """No population at all: the kernel still runs every trial (the levels differ by seed)."""
    def build() -> Network:
        net = Network("sources_only", DT)
        net.poisson_source("in", 20, 50.0)
        net.modulator("count", 5.0, [SpikeCountDrive("in", 0.5), RewardEvents([2.0], [3.0])])
        net.record_state("count", "level")
        net.record_spikes("in")
        return net

    res = {engine: get_backend("torch").compile(build(), engine=engine, precision="float64",
                                                seeds=(1, 2), progress=False).run(30.0)
           for engine in ("eager", "native")}
    level = res["native"].traces["count.level"].values
    np.testing.assert_array_equal(level, res["eager"].traces["count.level"].values)
    assert not np.array_equal(level[0], level[1])
    np.testing.assert_array_equal(res["native"].spikes_by_node["in"].trial,
                                  res["eager"].spikes_by_node["in"].trial)


def test_kernel_stopping_early_for_full_recording_buffers_keeps_the_eligibility_exact():
    """So many recorded input spikes that the kernel returns in the middle of a chunk (its
    buffers hold 65536 spikes) and is called again: the eligibility decay it fuses into the
    end of a step must not be applied twice or lost at those boundaries."""
    def build() -> Network:
        rng = np.random.default_rng(11)
        net = Network("busy", DT)
        src = net.poisson_source("in", 2000, 500.0)  # ~100 spikes per step
        post = net.population("post", 3, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0,
                                             tau_refrac_ms=1.0), initial={"v": -65.0})
        proj = net.connect(src, post, AllToAll(), weight=rng.uniform(0.0, 0.02, 6000),
                           delay_ms=0.2, name="in->post")
        net.modulator("m", 20.0, [RewardEvents([10.0, 40.0, 70.0, 150.0],
                                               [1.0, -2.0, 1.5, 1.0]),
                                  SpikeCountDrive("post", 0.1)])
        net.reward_stdp(proj, "m", tau_eligibility_ms=30.0, learning_rate_per_ms=0.02,
                        tau_plus_ms=10.0, tau_minus_ms=10.0, a_plus=0.002, a_minus=0.0021,
                        w_min=0.0, w_max=0.05)
        net.record_spikes(src, post)
        # sparse samples, so the native engine hands the kernel long runs of steps
        net.record_weights(proj, every_steps=900)
        net.record_state("m", "level", every_steps=900)
        return net

    class CountingKernel:
        """The compiled kernel, noting how many steps each call was asked for and ran."""

        def __init__(self, lib):
            self.lib, self.calls = lib, []

        def evospike_run(self, *args):
            ran = self.lib.evospike_run(*args)
            self.calls.append((args[3] - args[2], ran))  # (n_steps - s0 asked, ran)
            return ran

    res = {}
    for engine in ("eager", "native"):
        runner = get_backend("torch").compile(build(), engine=engine, precision="float64",
                                              seeds=(0, 1), progress=False, threads=1)
        if engine == "native":
            kernel = runner._native.lib = CountingKernel(runner._native.lib)
        res[engine] = runner.run(200.0)
    assert any(0 < ran < asked for asked, ran in kernel.calls), "a call should stop early"
    a, b = res["native"], res["eager"]
    assert a.spikes_by_node["post"].step.size > 20
    for node in ("in", "post"):
        np.testing.assert_array_equal(a.spikes_by_node[node].step, b.spikes_by_node[node].step)
    np.testing.assert_array_equal(a.weights["in->post.weights"].values,
                                  b.weights["in->post.weights"].values)
    np.testing.assert_array_equal(a.traces["m.level"].values, b.traces["m.level"].values)
    w = a.weights["in->post.weights"].values
    assert np.abs(w[:, -1] - w[:, 0]).max() > 1e-3
