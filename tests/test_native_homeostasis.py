"""The native CPU kernel carries Homeostasis (adaptive threshold, synaptic scaling) and
Metaplasticity (each of the four rule parameters) exactly like the eager engine: the same
networks on both engines, several trials, native runs split into segments, spikes, weights
(recorded every step) and the processes' states compared bit for bit in float64 and float32."""

import numpy as np
import pytest

from evospike import LIF, AdaptiveLIF, AllToAll, CubaLIF, Izhikevich, Network, OneToOne
from evospike.backends import get_backend
from evospike.ir.modulators import NoveltyDrive, RewardEvents, RewardSeries, SpikeCountDrive

DT = 0.1
T_MS = 150.0
SEGMENTS = 3  # 500 steps each: every_steps below does not divide it


def _net(*, model: str = "lif", homeo: str | None = None, meta: str | None = None,
         rule: str = "stdp", modulation: str | None = None, dependence: str = "additive",
         pairing: str = "all", every_steps: int = 37, record_every: int = 1, seed: int = 1,
         n_pre: int = 24, n_post: int = 6) -> Network:
    """Poisson inputs onto a layer (LIF, AdaptiveLIF, CubaLIF or Izhikevich); ``pre->post`` is
    plastic (``rule``: "stdp", modulated by ``modulation`` if given, or "rstdp"), ``drive->post``
    keeps the layer firing. A modulator ``m`` takes rewards, punishments and the layer's spikes.
    ``homeo``: "threshold", "scaling" (both projections, every ``every_steps`` steps) or None;
    ``meta``: the rule parameter that adapts to ``m``, or None."""
    rng = np.random.default_rng(seed)
    net = Network(f"native_homeo_{model}", DT)
    pre = net.poisson_source("pre", n_pre, 40.0)
    drive = net.poisson_source("drive", n_post, 30.0)
    lif = dict(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_thresh_mV=-50.0, v_reset_mV=-65.0,
               v_rest_mV=-65.0, tau_refrac_ms=1.0)
    if model == "lif":
        layer, w_drive = LIF(**lif), 100.0
    elif model == "adaptive":
        layer, w_drive = AdaptiveLIF(**lif, tau_adapt_ms=30.0, delta_thresh_mV=0.5), 100.0
    elif model == "cuba":
        layer, w_drive = CubaLIF(du=0.2, dv=0.1, v_thresh=40.0), 60.0
    else:
        layer, w_drive = Izhikevich(), 30.0
    initial = {"v": -65.0} if model in ("lif", "adaptive", "izhikevich") else {}
    post = net.population("post", n_post, layer, initial=initial)
    net.connect(drive, post, OneToOne(), weight=w_drive, delay_ms=0.1, name="drive->post")
    proj = net.connect(pre, post, AllToAll(), weight=rng.uniform(0.5, 2.0, n_pre * n_post),
                       delay_ms=0.3, name="pre->post")
    times = np.sort(rng.uniform(5.0, T_MS, 10))
    net.modulator("m", 30.0, [RewardEvents(times, rng.choice([1.5, -1.0, 0.7, -2.0], 10)),
                              RewardSeries(np.full(200, 0.02), start_step=600),
                              SpikeCountDrive("post", 0.03)], initial=0.3)
    common = dict(tau_plus_ms=15.0, tau_minus_ms=25.0, a_plus=0.2, a_minus=0.22, w_min=0.0,
                  w_max=4.0, pairing=pairing)
    if rule == "rstdp":
        r = net.reward_stdp(proj, "m", tau_eligibility_ms=40.0, learning_rate_per_ms=0.05,
                            **common)
    else:
        r = net.stdp(proj, modulator="m" if modulation else None,
                     modulation=modulation or "gate", gate_threshold=0.25, scale_gain=1.5,
                     weight_dependence=dependence, **common)
    if homeo == "threshold":
        net.homeostasis(post, target_rate_hz=15.0, tau_rate_ms=50.0, threshold_rate=2.0)
        for var in ("theta", "rate_hz"):
            net.record_state("post.homeostasis", var, every_steps=record_every)
    elif homeo == "scaling":
        net.homeostasis(post, target_rate_hz=15.0, tau_rate_ms=50.0, mechanism="scaling",
                        projections=("drive->post", "pre->post"), scaling_rate=0.5,
                        every_steps=every_steps)
        net.record_state("post.homeostasis", "rate_hz", every_steps=record_every)
        net.record_weights("drive->post", every_steps=record_every)
    if meta is not None:
        lo, hi = (5.0, 40.0) if meta.startswith("tau") else (0.0, 1.0)
        net.metaplasticity(r, "m", meta, eta=30.0 if meta.startswith("tau") else 3.0,
                           tau_baseline_ms=30.0, p_min=lo, p_max=hi)
        for var in ("value", "baseline"):
            net.record_state(f"{r.name}.{meta}.meta", var, every_steps=record_every)
    net.record_spikes(post, "pre")
    net.record_weights(proj, every_steps=record_every)
    net.record_state("m", "level", every_steps=record_every)
    return net


def _run(args: dict, engine: str, precision: str = "float64", seeds=(0, 1, 2),
         segments: int = 1):
    runner = get_backend("torch").compile(_net(**args), engine=engine, precision=precision,
                                          seeds=seeds, progress=False)
    assert runner.engine == engine
    for _ in range(segments):
        res = runner.run(T_MS / segments)
    return res


def _same(native, eager) -> None:
    """Bit for bit: spikes, every weight sample, every state sample."""
    for node in ("post", "pre"):
        a, b = native.spikes_by_node[node], eager.spikes_by_node[node]
        for field in ("step", "neuron", "trial"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert native.spikes_by_node["post"].step.size > 30, "the layer should fire"
    assert set(native.weights) == set(eager.weights) and set(native.traces) == set(eager.traces)
    for name in native.weights:
        np.testing.assert_array_equal(native.weights[name].steps, eager.weights[name].steps)
        np.testing.assert_array_equal(native.weights[name].values, eager.weights[name].values)
    for name in native.traces:
        np.testing.assert_array_equal(native.traces[name].steps, eager.traces[name].steps)
        np.testing.assert_array_equal(native.traces[name].values, eager.traces[name].values)


def _moved(res, name: str) -> float:
    """Largest change of recorded trace or weights ``name`` over the run."""
    data = res.traces[name] if name in res.traces else res.weights[name]
    return float(np.abs(data.values[:, -1] - data.values[:, 0]).max())


CASES = {
    "threshold-stdp-lif": dict(homeo="threshold"),
    "threshold-adaptive-lif-gated": dict(homeo="threshold", model="adaptive", modulation="gate"),
    "threshold-cuba-rstdp": dict(homeo="threshold", model="cuba", rule="rstdp", seed=2),
    "scaling-stdp-lif": dict(homeo="scaling"),
    "scaling-rstdp-nearest": dict(homeo="scaling", rule="rstdp", pairing="nearest",
                                  every_steps=23, seed=3),
    "scaling-izhikevich-multiplicative": dict(homeo="scaling", model="izhikevich",
                                              dependence="multiplicative", every_steps=41),
    "meta-tau_plus-stdp": dict(meta="tau_plus_ms"),
    "meta-tau_minus-stdp-scaled": dict(meta="tau_minus_ms", modulation="scale", seed=4),
    "meta-a_plus-stdp-multiplicative": dict(meta="a_plus", dependence="multiplicative"),
    "meta-a_minus-stdp-gated": dict(meta="a_minus", modulation="gate", seed=5),
    "meta-tau_plus-rstdp": dict(meta="tau_plus_ms", rule="rstdp"),
    "meta-tau_minus-rstdp-cuba": dict(meta="tau_minus_ms", rule="rstdp", model="cuba"),
    "meta-a_plus-rstdp": dict(meta="a_plus", rule="rstdp", seed=6),
    "meta-a_minus-rstdp-nearest": dict(meta="a_minus", rule="rstdp", pairing="nearest"),
    "threshold-and-meta-tau_plus-rstdp": dict(homeo="threshold", meta="tau_plus_ms",
                                              rule="rstdp"),
    "scaling-and-meta-a_minus-gated": dict(homeo="scaling", meta="a_minus",
                                           modulation="gate", every_steps=29),
}


@pytest.mark.parametrize("case", list(CASES))
def test_native_matches_eager_bit_for_bit_in_float64(case):
    args = CASES[case]
    eager = _run(args, "eager")
    native = _run(args, "native", segments=SEGMENTS)
    _same(native, eager)
    assert _moved(native, "pre->post.weights") > 1e-2, "the rule should move the weights"
    if args.get("homeo") == "threshold":
        assert _moved(native, "post.homeostasis.theta") > 0.05
    if args.get("homeo") == "scaling":
        assert _moved(native, "drive->post.weights") > 1e-3, "scaling should move the weights"
        w = native.weights["drive->post.weights"].values
        assert not np.array_equal(w[0, -1], w[1, -1]), "each trial scales on its own"
    if args.get("meta"):
        rule = "rstdp" if args.get("rule") == "rstdp" else "stdp"
        assert _moved(native, f"pre->post.{rule}.{args['meta']}.meta.value") > 1e-3


@pytest.mark.parametrize("case", ["threshold-adaptive-lif-gated", "scaling-rstdp-nearest",
                                  "meta-tau_plus-rstdp", "meta-a_minus-stdp-gated",
                                  "scaling-and-meta-a_minus-gated"])
def test_native_matches_eager_bit_for_bit_in_float32(case):
    eager = _run(CASES[case], "eager", precision="float32")
    native = _run(CASES[case], "native", precision="float32", segments=SEGMENTS)
    _same(native, eager)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_long_kernel_calls_with_sparse_recording(precision):
    """Sparse samples, so the kernel runs many steps per call: scaling steps and tau changes
    (the decay refreshed through the callback) fall inside calls, not only at their ends."""
    args = dict(homeo="scaling", meta="tau_minus_ms", rule="rstdp", every_steps=31,
                record_every=97, seed=7)
    eager = _run(args, "eager", precision=precision, seeds=(4, 5))
    native = _run(args, "native", precision=precision, seeds=(4, 5), segments=2)
    _same(native, eager)
    assert native.weights["pre->post.weights"].steps.size == 16


def test_homeostasis_with_novelty_and_several_processes():
    """Two layers, each with its own homeostasis (threshold on one, scaling on the other), two
    modulators (one with a novelty drive) and metaplasticity of two parameters of one rule."""
    def build() -> Network:
        rng = np.random.default_rng(8)
        net = Network("two_layers", DT)
        src = net.poisson_source("in", 20, 50.0)
        model = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, tau_refrac_ms=1.0)
        a = net.population("a", 8, model, initial={"v": -65.0})
        b = net.population("b", 5, model, initial={"v": -65.0})
        p_in = net.connect(src, a, AllToAll(), weight=rng.uniform(1.0, 6.0, 160), delay_ms=0.2,
                           name="in->a")
        net.connect(a, b, AllToAll(), weight=rng.uniform(20.0, 40.0, 40), delay_ms=0.5,
                    name="a->b")
        net.modulator("reward", 40.0, [RewardEvents([30.0, 60.0, 100.0], [1.0, -1.5, 2.0])])
        net.modulator("novel", 20.0, [NoveltyDrive("a", gain=0.01, tau_rate_ms=10.0,
                                                   tau_expect_ms=60.0)])
        rule = net.stdp(p_in, modulator="novel", modulation="scale", scale_gain=0.5,
                        tau_plus_ms=12.0, tau_minus_ms=20.0, a_plus=0.3, a_minus=0.3,
                        w_max=8.0)
        net.metaplasticity(rule, "reward", "a_plus", eta=2.0, tau_baseline_ms=25.0,
                           p_min=0.0, p_max=1.0)
        net.metaplasticity(rule, "novel", "tau_plus_ms", eta=50.0, tau_baseline_ms=25.0,
                           p_min=4.0, p_max=30.0)
        net.homeostasis(a, target_rate_hz=20.0, tau_rate_ms=30.0, threshold_rate=3.0)
        net.homeostasis(b, target_rate_hz=10.0, tau_rate_ms=40.0, mechanism="scaling",
                        projections=("a->b",), scaling_rate=1.0, every_steps=13)
        for target, var in (("a.homeostasis", "theta"), ("b.homeostasis", "rate_hz"),
                            ("novel", "level"), ("in->a.stdp.a_plus.meta", "value"),
                            ("in->a.stdp.tau_plus_ms.meta", "value")):
            net.record_state(target, var)
        net.record_weights("in->a", every_steps=1)
        net.record_weights("a->b", every_steps=1)
        net.record_spikes(a, b)
        return net

    res = {}
    for engine in ("eager", "native"):
        runner = get_backend("torch").compile(build(), engine=engine, precision="float64",
                                              seeds=(1, 2), progress=False)
        for _ in range(1 if engine == "eager" else 4):
            res[engine] = runner.run(120.0 if engine == "eager" else 30.0)
    a, b = res["native"], res["eager"]
    for node in ("a", "b"):
        np.testing.assert_array_equal(a.spikes_by_node[node].step, b.spikes_by_node[node].step)
        np.testing.assert_array_equal(a.spikes_by_node[node].neuron,
                                      b.spikes_by_node[node].neuron)
    assert a.spikes_by_node["b"].step.size > 10
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name].values, b.weights[name].values)
    for name in a.traces:
        np.testing.assert_array_equal(a.traces[name].values, b.traces[name].values)
    assert _moved(a, "in->a.stdp.tau_plus_ms.meta.value") > 1e-3
    assert _moved(a, "a->b.weights") > 1e-3


def test_auto_picks_native_and_unsupported_processes_fall_back_with_their_reason():
    torch_backend = get_backend("torch")
    runner = torch_backend.compile(_net(homeo="scaling", meta="tau_plus_ms", rule="rstdp"),
                                   engine="auto", progress=False)
    assert runner.engine == "native"
    assert runner.run(5.0).meta["engine"] == "native"
    runner = torch_backend.compile(_net(homeo="threshold", meta="a_plus"), engine="auto",
                                   progress=False)
    assert runner.engine == "native"

    net = _net(homeo="threshold", meta="a_plus")
    net.apoptosis("post")
    with pytest.raises(Exception, match=r"only Modulators, Homeostasis and Metaplasticity, "
                                        r"not the other process kinds \(Apoptosis "
                                        r"'post.apoptosis'\)"):
        torch_backend.compile(net, engine="native", progress=False)
    auto = torch_backend.compile(net, engine="auto", progress=False)
    assert auto.engine == "eager" and "Apoptosis 'post.apoptosis'" in auto.engine_note


def test_an_error_in_the_decay_callback_is_raised_not_dropped():
    """ctypes prints and drops an exception raised in a callback; the engine raises it when the
    kernel returns instead, so a run never goes on with a stale trace decay unnoticed."""
    runner = get_backend("torch").compile(_net(meta="tau_plus_ms"), engine="native",
                                          precision="float64", seeds=(0,), progress=False)
    plastic = runner.cn.projections["pre->post"].plastic

    def broken(name, value, dt_ms):
        raise RuntimeError("no decay today")

    plastic.set_parameter = broken
    with pytest.raises(RuntimeError, match="no decay today"):
        runner._native.run(runner._chunk_inputs(0, 200), 0, 200)
