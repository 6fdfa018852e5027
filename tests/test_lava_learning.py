"""STDP on the Lava backend (LearningDense + Loihi2FLearningRule, fixed_pt): what maps, what
is refused by name, and the weights Lava learns on deterministic spike protocols."""

from __future__ import annotations

import numpy as np
import pytest

from evospike import AllToAll, CubaLIF, FromArrays, Network, OneToOne
from evospike.backends import get_backend
from evospike.backends.lava import compiler
from evospike.backends.lava.learning import _mant_exp
from evospike.errors import EvoSpikeError
from evospike.ir.modulators import Modulator
from tests.test_lava_backend import needs_lava

DT_MS = 1.0


def _protocol(pre_ms: list[tuple[int, float]], kick_ms: list[float], **stdp) -> Network:
    """Two presynaptic neurons onto one CubaLIF neuron through an all-to-all plastic
    projection (weight 1, far below the threshold 10); a strong fixed input makes the
    neuron fire one step after each ``kick_ms``."""
    net = Network("lava_stdp", dt_ms=DT_MS)
    neurons, times = zip(*pre_ms, strict=True)
    pre = net.spike_source("pre", 2, list(neurons), list(times))
    kick = net.spike_source("kick", 1, [0] * len(kick_ms), kick_ms)
    post = net.population("post", 1, CubaLIF(du=1.0, dv=0.0, v_thresh=10.0))
    proj = net.connect(pre, post, AllToAll(), weight=1.0, name="plastic")
    net.connect(kick, post, OneToOne(), weight=12.0)
    params = dict(a_plus=0.1, a_minus=0.1, tau_plus_ms=10.0, tau_minus_ms=10.0, w_min=0.0,
                  w_max=100.0)
    params.update(stdp)
    net.stdp(proj, **params)
    net.record_spikes(post)
    net.record_weights(proj, every_steps=1)
    return net


def _lava(net: Network, duration_ms: float, **options):
    options.setdefault("progress", False)
    # these networks' w_max (100) means "no bound": size the weights from their initial values
    options.setdefault("plastic_weight_range", "initial")
    return get_backend("lava").compile(net, **options).run(duration_ms)


def _fixed(net: Network, duration_ms: float, **options):
    options.setdefault("plastic_weight_range", "initial")
    return get_backend("torch").compile(net, precision="fixed", progress=False,
                                        **options).run(duration_ms)


# --------------------------------------------------------------------------- refusals
def test_learning_rates_map_to_representable_scales():
    for value in (2.0 ** -7, 0.3, 1.0, 5.5, 7 * 2.0 ** 8):
        m, e = _mant_exp(value)
        assert 1 <= m <= 7 and -7 <= e <= 8
        assert abs(m * 2.0 ** e - value) <= value / 7  # within half a mantissa step
    m, e = _mant_exp(0.375)
    assert m * 2.0 ** e == 0.375


@pytest.mark.parametrize("change, needle", [
    (dict(pairing="nearest"), "pairing='nearest'"),
    (dict(weight_dependence="multiplicative", a_plus=0.01, a_minus=0.01),
     "weight_dependence='multiplicative'"),
    (dict(w_min=0.5), "w_min=0.5"),
    (dict(a_plus=0.0, a_minus=0.0), "both 0"),
    (dict(tau_plus_ms=2.5), "tau_plus_ms=2.5 is not a whole number"),
    (dict(tau_minus_ms=300.0), "tau_minus_ms=300.0 is not a whole number"),
])
def test_unmappable_stdp_is_refused_by_name(change, needle):
    net = _protocol([(0, 5.0)], [9.0], **change)
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "STDP 'plastic.stdp'" in text and needle in text, text


def test_projection_shape_and_engine_are_checked():
    net = Network("shapes", dt_ms=DT_MS)
    pre = net.spike_source("pre", 2, [0], [5.0])
    post = net.population("post", 2, CubaLIF())
    sparse = net.connect(pre, post, FromArrays([0], [1], weights=[1.0]), name="sparse")
    net.stdp(sparse, a_plus=0.1, a_minus=0.1, w_max=100.0)
    late = net.connect(pre, post, AllToAll(), weight=1.0, delay_ms=3.0, name="late")
    net.stdp(late, a_plus=0.1, a_minus=0.1, w_max=100.0)
    fixed_only = "; ".join(compiler.refusals(net, "floating_pt"))
    assert "carried in fixed_pt only" in fixed_only
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "'sparse'" not in text  # sparse projections learn through LearningSparse
    assert "projection 'late' has delays other than one step" in text
    net = Network("repeat", dt_ms=DT_MS)
    pre = net.spike_source("pre", 2, [0], [5.0])
    post = net.population("post", 2, CubaLIF())
    twice = net.connect(pre, post, FromArrays([0, 0], [1, 1], weights=[1.0, 2.0]), name="twice")
    net.stdp(twice, a_plus=0.1, a_minus=0.1, w_max=100.0)
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "projection 'twice' repeats a (pre, post) pair" in text


def test_unlearned_weight_monitors_and_modulated_stdp_are_refused():
    net = Network("r", dt_ms=DT_MS)
    pre = net.spike_source("pre", 1, [0], [5.0])
    post = net.population("post", 1, CubaLIF())
    proj = net.connect(pre, post, AllToAll(), weight=1.0, name="p")
    fixed = net.connect(pre, post, OneToOne(), weight=1.0, name="q")
    net.add(Modulator("reward", 50.0))
    net.stdp(proj, a_plus=0.1, a_minus=0.1, w_max=100.0, modulator="reward")
    net.record_weights(fixed, every_steps=1)
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "STDP 'p.stdp': a modulator ('reward') is not carried" in text
    assert "Modulator 'reward': read by no RewardModulatedSTDP rule" in text
    assert "WeightMonitor 'q.weights'" in text and "has no STDP rule" in text


# --------------------------------------------------------------------------- Lava runs
@needs_lava
def test_pre_before_post_potentiates_and_post_before_pre_depresses():
    # neuron 0 fires 5 steps before the kicked post spike (step 10), neuron 1 fires 4 steps
    # after it: LTP on synapse 0, LTD on synapse 1, nothing before the first pairing
    net = _protocol([(0, 5.0), (1, 14.0)], [9.0])
    res = _lava(net, 30.0)
    np.testing.assert_array_equal(res.spike_steps("post")[0], [10])
    w = res.weights["plastic.weights"]
    np.testing.assert_array_equal(w.steps, np.arange(30))
    assert w.values.shape == (1, 30, 2)
    np.testing.assert_array_equal(w.values[0, :10], 1.0)
    # a_plus * exp(-5/10) = 0.061 and a_minus * exp(-4/10) = 0.067, to the weight quantum
    # (1/128 here) and the stochastic rounding of Loihi 2's learning engine
    quantum = 1.0 / 128
    assert 0.061 - 2 * quantum <= w.values[0, -1, 0] - 1.0 <= 0.061 + 2 * quantum
    assert -0.067 - 2 * quantum <= w.values[0, -1, 1] - 1.0 <= -0.067 + 2 * quantum
    assert w.values[0, 10, 0] > 1.0 and w.values[0, 14, 1] < 1.0
    assert "a_plus 0.1 -> 0.09375" in res.meta["engine_note"]
    # Lava's random generators are seeded: a second compile learns the same weights
    again = _lava(net, 30.0)
    np.testing.assert_array_equal(again.weights["plastic.weights"].values, w.values)


@needs_lava
def test_weights_saturate_at_the_mantissa_ceiling_not_below_zero():
    # many pre-before-post pairs drive synapse 0 up to 255 mantissas; post-before-pre pairs
    # drive synapse 1 down to 0 and not below
    pre = [(0, float(t)) for t in range(2, 200, 10)] + [(1, float(t)) for t in
                                                        range(8, 200, 10)]
    net = _protocol(pre, [float(t) for t in range(4, 200, 10)], a_plus=2.0, a_minus=2.0)
    res = _lava(net, 200.0)
    w = res.weights["plastic.weights"].values[0]
    ceiling = 255 / 128
    assert w[:, 0].max() == pytest.approx(ceiling) and w[-1, 0] == pytest.approx(ceiling)
    assert w[:, 1].min() == 0.0 and w[-1, 1] == 0.0
    assert "weights saturate at 1.99219" in res.meta["engine_note"]


def test_w_max_below_the_ceiling_is_an_error():
    # sized from the initial weights (1.0: quantum 1/128, ceiling 1.99), w_max=1.5 cannot
    # hold: Loihi would let the weights pass it
    net = _protocol([(0, 5.0)], [9.0], w_max=1.5)
    with pytest.raises(EvoSpikeError, match="w_max=1.5 is below the weight ceiling"):
        get_backend("lava").compile(net, progress=False, plastic_weight_range="initial")
    with pytest.raises(EvoSpikeError, match="plastic_weight_range must be one of"):
        get_backend("torch").compile(net, precision="fixed", plastic_weight_range="bounds")


@pytest.mark.parametrize("w_max", [1.5, 3.0, 1.0])
def test_by_default_the_weights_saturate_exactly_at_w_max(w_max):
    # many pre-before-post pairs: the weight climbs to w_max and stays there, on Lava's
    # learning engine as in the IR; post-before-pre pairs drive synapse 1 to 0
    pre = [(0, float(t)) for t in range(2, 200, 10)] + [(1, float(t)) for t in
                                                        range(8, 200, 10)]
    net = _protocol(pre, [float(t) for t in range(4, 200, 10)], a_plus=2.0, a_minus=2.0,
                    w_max=w_max)
    res = get_backend("torch").compile(net, precision="fixed", progress=False).run(200.0)
    w = res.weights["plastic.weights"].values[0]
    assert w[:, 0].max() == pytest.approx(w_max, rel=1e-12) and w[-1, 1] == 0.0
    assert f"weights span [0, w_max={w_max:g}] in 255 mantissas" in res.meta["engine_note"]


# --------------------------------------------------------------------------- torch fixed = Lava
def _poisson_net(seed: int) -> Network:
    """Poisson inputs onto a CubaLIF layer through all-to-all STDP with learning rates that
    are fractions of a mantissa per trace unit (so the stochastic rounding of traces and
    weights decides every update), a fixed recurrent inhibition, a bias; and a second plastic
    projection from that layer onto another."""
    rng = np.random.default_rng(seed)
    net = Network(f"lava_stdp_poisson{seed}", dt_ms=DT_MS)
    src = net.poisson_source("in", 12, rate_hz=60.0)
    hid = net.population("hid", 4, CubaLIF(du=0.25, dv=0.1, v_thresh=10.0, bias=0.3),
                         initial={"v": rng.uniform(0.0, 5.0, 4)})
    out = net.population("out", 3, CubaLIF(du=0.5, dv=0.2, v_thresh=8.0))
    first = net.connect(src, hid, AllToAll(), weight=rng.uniform(1.0, 4.0, 48), name="first")
    second = net.connect(hid, out, AllToAll(), weight=rng.uniform(2.0, 6.0, 12), name="second")
    net.connect(hid, hid, AllToAll(), weight=-1.0, target="inh", name="lateral")
    net.stdp(first, a_plus=0.05, a_minus=0.06, tau_plus_ms=12.0, tau_minus_ms=20.0,
             w_max=100.0)
    net.stdp(second, a_plus=0.2, a_minus=0.15, tau_plus_ms=5.0, tau_minus_ms=8.0, w_max=100.0)
    net.record_spikes(hid, out)
    net.record_weights(first, every_steps=7)
    net.record_weights(second, every_steps=1)
    net.record_state(hid, "v", every_steps=1)
    return net


def _saturating() -> Network:
    pre = [(0, float(t)) for t in range(2, 200, 10)] + [(1, float(t)) for t in
                                                        range(8, 200, 10)]
    return _protocol(pre, [float(t) for t in range(4, 200, 10)], a_plus=2.0, a_minus=2.0)


def test_random_streams_are_lavas_draw_by_draw():
    # Lava draws one number per advance (rng.random(1)); the torch engine draws blocks
    from evospike.backends.torch.fixed_learning import _Stream

    rng = np.random.default_rng(5)
    one_by_one = [rng.random(1)[0] for _ in range(5000)]
    stream = _Stream(5)
    assert [stream.at(k) for k in (4999, 0, 4095, 4096)] == [one_by_one[k] for k in
                                                           (4999, 0, 4095, 4096)]


def _sparse_net(seed: int) -> Network:
    """Poisson inputs onto a CubaLIF layer through a sparse plastic projection (40 % of the
    pairs, some weights exactly 0: a synapse of weight 0 still learns), run by Lava's
    LearningSparse: only the synapses that exist learn."""
    from evospike import FixedProbability

    rng = np.random.default_rng(seed)
    net = Network(f"lava_stdp_sparse{seed}", dt_ms=DT_MS)
    src = net.poisson_source("in", 20, rate_hz=50.0)
    hid = net.population("hid", 6, CubaLIF(du=0.25, dv=0.1, v_thresh=10.0, bias=0.3),
                         initial={"v": rng.uniform(0.0, 5.0, 6)})
    proj = net.connect(src, hid, FixedProbability(0.4, seed=seed), weight=3.0, name="sparse")
    proj.weights[::5] = 0.0
    net.stdp(proj, a_plus=0.05, a_minus=0.04, tau_plus_ms=12.0, tau_minus_ms=20.0,
             w_max=100.0)
    net.record_spikes(hid)
    net.record_weights(proj, every_steps=1)
    return net


def test_sparse_projections_learn_only_their_synapses():
    net = _sparse_net(1)
    res = _fixed(net, 200.0)
    w = res.weights["sparse.weights"].values[0]
    assert w.shape == (200, net.projections["sparse"].n_synapses)
    assert np.any(w[-1, ::5] > 0)  # synapses that start at 0 learn too
    assert np.any(w[-1] != w[0])


def _bounded() -> Network:
    """The saturating protocol with w_max = 1.5: by default the weights span [0, 1.5]."""
    net = _saturating()
    net.plasticity["plastic.stdp"].w_max = 1.5
    return net


BIT_EXACT = {
    "protocol": (lambda: _protocol([(0, 5.0), (1, 14.0)], [9.0]), 30.0),
    "bounded-by-w_max": (_bounded, 200.0),
    "sparse": (lambda: _sparse_net(1), 200.0),
    "saturating": (_saturating, 200.0),
    "poisson1": (lambda: _poisson_net(1), 300.0),
    "poisson2": (lambda: _poisson_net(2), 300.0),
}


def test_torch_fixed_mode_learns_without_lava():
    res = _fixed(_protocol([(0, 5.0), (1, 14.0)], [9.0]), 30.0)
    w = res.weights["plastic.weights"].values[0]
    assert w[-1, 0] > 1.0 > w[-1, 1]
    np.testing.assert_array_equal(w[:10], 1.0)


@needs_lava
@pytest.mark.parametrize("name", list(BIT_EXACT))
def test_torch_fixed_and_lava_learn_the_same_weights_bit_for_bit(name):
    build, duration_ms = BIT_EXACT[name]
    seeds = (0, 3) if name.startswith("poisson") else (0,)
    weight_range = "w_max" if name == "bounded-by-w_max" else "initial"
    lava_res = _lava(build(), duration_ms, seeds=seeds, chunk_steps=50,
                     plastic_weight_range=weight_range)
    torch_res = _fixed(build(), duration_ms, seeds=seeds, plastic_weight_range=weight_range)
    assert lava_res.weights.keys() == torch_res.weights.keys()
    moved = 0.0
    for key, wl in lava_res.weights.items():
        wt = torch_res.weights[key]
        np.testing.assert_array_equal(wl.steps, wt.steps)
        np.testing.assert_array_equal(wl.values, wt.values)
        moved = max(moved, float(np.abs(wl.values[:, -1] - wl.values[:, 0]).max()))
    assert moved > 0.05  # the weights did learn
    for node, spikes in lava_res.spikes_by_node.items():
        other = torch_res.spikes_by_node[node]
        for field in ("step", "neuron", "trial"):
            np.testing.assert_array_equal(getattr(spikes, field), getattr(other, field))
    for key, trace in lava_res.traces.items():
        np.testing.assert_array_equal(trace.values, torch_res.traces[key].values)
