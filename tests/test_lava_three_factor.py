"""Reward-modulated STDP on the Lava backend (LearningDense + Loihi3FLearningRule, the reward
sent by the post-synaptic neuron, fixed_pt): the mapping, what is refused by name, the
direction of learning, the torch fixed-point mode against Lava bit for bit, and both against
the float rule."""

from __future__ import annotations

import numpy as np
import pytest

from evospike import AllToAll, CubaLIF, FixedProbability, Network, OneToOne
from evospike.backends import get_backend
from evospike.backends.lava import compiler, three_factor
from evospike.backends.lava.learning import _mant_exp
from evospike.ir.modulators import (
    Modulator,
    NoveltyDrive,
    RewardEvents,
    RewardSeries,
    SpikeCountDrive,
)
from tests.test_lava_backend import needs_lava

DT_MS = 1.0
WEIGHTS = "plastic.weights"


def _pairing(reward_ms: float | None = 30.0, amount: float = 1.0, refractory_ms: float = 0.0,
             **rule) -> Network:
    """Pre neuron 0 fires 5 steps before a kicked post spike (step 10), pre neuron 1 four
    steps after it; a reward of ``amount`` arrives at ``reward_ms`` (None: no reward)."""
    net = Network("lava_rstdp", dt_ms=DT_MS)
    pre = net.spike_source("pre", 2, [0, 1], [5.0, 14.0])
    kick = net.spike_source("kick", 1, [0], [9.0])
    post = net.population("post", 1, CubaLIF(du=1.0, dv=0.0, v_thresh=10.0,
                                             tau_refrac_ms=refractory_ms))
    proj = net.connect(pre, post, AllToAll(), weight=1.0, name="plastic")
    net.connect(kick, post, OneToOne(), weight=12.0)
    drives = [] if reward_ms is None else [RewardEvents([reward_ms], [amount])]
    net.modulator("reward", 20.0, drives)
    params = dict(a_plus=0.1, a_minus=0.1, tau_plus_ms=10.0, tau_minus_ms=10.0,
                  tau_eligibility_ms=100.0, learning_rate_per_ms=0.05, w_min=0.0, w_max=2.0)
    params.update(rule)
    net.reward_stdp(proj, "reward", **params)
    net.record_spikes(post)
    net.record_weights(proj, every_steps=1)
    return net


def _poisson(seed: int, tau_eligibility_ms: float = 200.0, series: bool = False,
             refractory_ms: float = 0.0, mixed: bool = False, sparse: bool = False) -> Network:
    """Poisson inputs onto a CubaLIF layer with a bias and lateral inhibition, all-to-all
    three-factor learning read out by rewards of both signs (events, or a series), and a
    second plastic layer learning by plain STDP."""
    rng = np.random.default_rng(seed)
    net = Network(f"lava_rstdp_poisson{seed}", dt_ms=DT_MS)
    src = net.poisson_source("in", 12, rate_hz=60.0)
    hid = net.population("hid", 4, CubaLIF(du=0.25, dv=0.1, v_thresh=10.0, bias=0.3,
                                           tau_refrac_ms=refractory_ms),
                         initial={"v": rng.uniform(0.0, 5.0, 4)})
    out = net.population("out", 3, CubaLIF(du=0.5, dv=0.2, v_thresh=8.0))
    if sparse:  # Lava's LearningSparse: only these synapses learn, some start at 0
        plastic = net.connect(src, hid, FixedProbability(0.5, seed=seed), weight=2.5,
                              name="plastic")
        plastic.weights[::4] = 0.0
    else:
        plastic = net.connect(src, hid, AllToAll(), weight=rng.uniform(1.0, 4.0, 48),
                              name="plastic")
    second = net.connect(hid, out, AllToAll(), weight=rng.uniform(2.0, 6.0, 12), name="second")
    net.connect(hid, hid, AllToAll(), weight=-1.0, target="inh", name="lateral")
    if series:
        values = np.zeros(250)
        values[[30, 90, 91, 150, 210]] = [0.8, -0.5, -0.5, 0.3, 1.0]
        drive = RewardSeries(values, start_step=10)
    else:
        drive = RewardEvents([40.0, 120.0, 200.0], [1.0, -0.7, 0.5])
    net.modulator("reward", 50.0, [drive])
    net.reward_stdp(plastic, "reward", a_plus=0.05, a_minus=0.06, tau_plus_ms=12.0,
                    tau_minus_ms=20.0, tau_eligibility_ms=tau_eligibility_ms,
                    learning_rate_per_ms=0.02, w_max=8.0)
    net.stdp(second, a_plus=0.2, a_minus=0.15, tau_plus_ms=5.0, tau_minus_ms=8.0, w_max=12.0)
    if mixed:  # plain STDP onto the three-factor neurons too (Loihi2F beside Loihi3F)
        extra = net.poisson_source("extra", 5, rate_hz=40.0)
        side = net.connect(extra, hid, AllToAll(), weight=rng.uniform(1.0, 3.0, 20),
                           name="side")
        net.stdp(side, a_plus=0.1, a_minus=0.12, tau_plus_ms=10.0, tau_minus_ms=10.0,
                 w_max=6.0)
        net.record_weights(side, every_steps=2)
    net.record_spikes(hid, out)
    net.record_weights(plastic, every_steps=1)
    net.record_weights(second, every_steps=3)
    net.record_state(hid, "v", every_steps=1)
    return net


def _fixed(net: Network, duration_ms: float, seeds=(0,)):
    return get_backend("torch").compile(net, precision="fixed", seeds=seeds,
                                        progress=False).run(duration_ms)


# --------------------------------------------------------------------------- the mapping
def test_host_reward_levels_follow_the_modulator_as_torch_runs_it():
    # the reward the neuron sends is the IR's m[n-1]: compare with the level torch records
    mod = Modulator("m", 15.0, [RewardEvents([3.0, 7.5, 7.9], [1.0, -0.4, 0.2]),
                                RewardSeries(np.linspace(-0.2, 0.3, 20), start_step=12)],
                    initial=0.25)
    ref = Network("levels", dt_ms=0.5)
    src = ref.spike_source("s", 1, [0], [1.0])
    pop = ref.population("p", 1, CubaLIF())
    ref.connect(src, pop, OneToOne(), weight=1.0)
    ref.add(mod)
    ref.record_state("m", "level")
    recorded = get_backend("torch").compile(ref, precision="float64",
                                            progress=False).run(40.0).traces["m.level"]
    levels = three_factor.modulator_levels(mod, 0.5, 80)
    # the monitor samples m[n] after step n; a rule reads m[n - 1] in step n
    np.testing.assert_array_equal(levels[1:], recorded.values[0, :79, 0])
    assert levels[0] == 0.25
    scale = three_factor.reward_scale(mod, 0.5)
    assert np.abs(levels).max() == pytest.approx(127 * scale)
    table = three_factor.RewardPlan("p", mod, 0, 16, scale).table(0.5, 80)
    assert np.abs(table).max() == 127 and table.dtype == np.int64


def test_decimation_and_factors_follow_the_rates():
    notes: list[str] = []
    net = _pairing(tau_eligibility_ms=1000.0, learning_rate_per_ms=0.005)
    rule = next(iter(net.plasticity.values()))
    mapping = three_factor.plan_three_factor(rule, net, 1.0 / 128, _mant_exp, notes)
    k = mapping.decimate
    (dep, factors, md, ed) = mapping.tag_products[-1]
    assert (dep, factors) == ("u", ("t",)) and md < 0
    # the decay applied every 2^k steps is 1 - exp(-2^k dt / tau_e), to the 10 % tolerance
    assert abs(-md * 2.0 ** ed - (1 - np.exp(-(2 ** k) / 1000.0))) <= \
        0.1 * (1 - np.exp(-(2 ** k) / 1000.0))
    (_, wf, mw, ew), (_, wf3, mw3, _) = mapping.weight_products
    assert wf == ("t", "y2") and wf3 == ("t", "y3") and mw == -mw3 > 0
    wanted = 32 * 2 ** k * 0.005 * DT_MS * mapping.reward.scale * mapping.tag_quantum / (1 / 128)
    assert abs(mw * 2.0 ** ew - wanted) <= 0.06 * wanted
    assert any("eligibility decays every" in n for n in notes)
    text = three_factor.rule_string(mapping.tag_products, k)
    assert text.startswith("-") and f"u{k} * t" in text
    # a slower learning rate is reached by decimating further
    slower = three_factor.plan_three_factor(
        next(iter(_pairing(tau_eligibility_ms=1000.0, learning_rate_per_ms=0.0005)
                  .plasticity.values())), net, 1.0 / 128, _mant_exp, [])
    assert slower.decimate > k


@pytest.mark.parametrize("change, needle", [
    (dict(learning_rate_per_ms=0.0), "learning_rate_per_ms is 0"),
    (dict(tau_eligibility_ms=1e6), "tau_eligibility_ms=1000000.0 is too long"),
    (dict(pairing="nearest"), "pairing='nearest'"),
    (dict(tau_minus_ms=2.5), "tau_minus_ms=2.5 is not a whole number"),
])
def test_unmappable_reward_stdp_is_refused_by_name(change, needle):
    text = "; ".join(compiler.refusals(_pairing(**change), "fixed_pt"))
    assert "RewardModulatedSTDP 'plastic" in text and needle in text, text


def test_spike_driven_modulators_and_floating_pt_are_refused():
    net = _pairing()
    net.processes["reward"].drives.append(SpikeCountDrive("post", 0.1))
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "Modulator 'reward': drives ['SpikeCountDrive'] depend on the network's spikes" \
        in text
    net = _pairing()
    net.processes["reward"].drives.append(NoveltyDrive("post"))
    assert "['NoveltyDrive']" in "; ".join(compiler.refusals(net, "fixed_pt"))
    text = "; ".join(compiler.refusals(_pairing(), "floating_pt"))
    assert "carried in fixed_pt only" in text and "Modulator 'reward'" in text


def test_two_rules_onto_one_population_must_share_the_reward():
    net = Network("two", dt_ms=DT_MS)
    a = net.spike_source("a", 1, [0], [5.0])
    b = net.spike_source("b", 1, [0], [6.0])
    post = net.population("post", 1, CubaLIF())
    pa = net.connect(a, post, AllToAll(), weight=1.0, name="pa")
    pb = net.connect(b, post, AllToAll(), weight=1.0, name="pb")
    net.modulator("r1", 20.0, [RewardEvents([10.0], [1.0])])
    net.modulator("r2", 20.0, [RewardEvents([10.0], [1.0])])
    net.reward_stdp(pa, "r1", a_plus=0.1, a_minus=0.1, w_max=100.0)
    net.reward_stdp(pb, "r2", a_plus=0.1, a_minus=0.1, w_max=100.0)
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "also learns through RewardModulatedSTDP" in text


# --------------------------------------------------------------------------- learning
def test_reward_sign_decides_the_direction_and_no_reward_no_change():
    up = _fixed(_pairing(amount=1.0), 200.0).weights[WEIGHTS].values[0]
    down = _fixed(_pairing(amount=-1.0), 200.0).weights[WEIGHTS].values[0]
    none = _fixed(_pairing(reward_ms=None), 200.0).weights[WEIGHTS].values[0]
    w0 = up[0, 0]  # 1.0 to the weight quantum (w_max / 255)
    assert abs(w0 - 1.0) <= 1.0 / 255
    # nothing moves before the reward arrives (step 30): eligibility alone is not learning
    np.testing.assert_array_equal(up[:30], w0)
    np.testing.assert_array_equal(none, w0)
    # pre-before-post eligibility (synapse 0) follows the reward's sign, post-before-pre
    # (synapse 1) the opposite
    assert up[-1, 0] > w0 > up[-1, 1]
    assert down[-1, 0] < w0 < down[-1, 1]


@pytest.mark.parametrize("case", [dict(), dict(amount=-1.0), dict(reward_ms=80.0),
                                  dict(tau_eligibility_ms=1000.0, learning_rate_per_ms=0.005)])
def test_fixed_point_weights_follow_the_float_rule(case):
    fixed = _fixed(_pairing(**case), 200.0).weights[WEIGHTS].values[0]
    ref = get_backend("torch").compile(_pairing(**case), precision="float64",
                                       progress=False).run(200.0).weights[WEIGHTS].values[0, -1]
    change, ref_change = fixed[-1] - fixed[0], ref - 1.0
    # the float rule moves these weights by 0.006 .. 0.05; the integer rule, with weight
    # quanta of 2/255 and its decimated, stochastically rounded updates, lands within about
    # two quanta and a third of the change
    assert np.all(np.sign(change) == np.sign(ref_change))
    assert np.all(np.abs(change - ref_change) <= 2.5 / 128 + 0.35 * np.abs(ref_change))


def test_the_mapping_is_reported():
    res = _fixed(_pairing(), 50.0)
    note = res.meta["engine_note"]
    assert "RewardModulatedSTDP 'plastic" in note and "eligibility decays every" in note
    assert "reward unit" in note


# --------------------------------------------------------------------------- torch fixed = Lava
BIT_EXACT = {
    "pairing": (lambda: _pairing(), 120.0, (0,)),
    "punishment": (lambda: _pairing(amount=-1.0, reward_ms=20.0), 120.0, (0,)),
    "poisson-events": (lambda: _poisson(1), 300.0, (0, 3)),
    "poisson-refractory": (lambda: _poisson(3, refractory_ms=3.0), 200.0, (0,)),
    "poisson-sparse": (lambda: _poisson(4, sparse=True), 300.0, (0, 1)),
    "poisson-series-fast-eligibility-mixed": (lambda: _poisson(2, 30.0, series=True,
                                                               mixed=True), 300.0, (1,)),
}


@needs_lava
@pytest.mark.parametrize("name", list(BIT_EXACT))
def test_torch_fixed_and_lava_learn_the_same_weights_bit_for_bit(name):
    build, duration_ms, seeds = BIT_EXACT[name]
    lava_res = get_backend("lava").compile(build(), progress=False, seeds=seeds,
                                           chunk_steps=60).run(duration_ms)
    torch_res = _fixed(build(), duration_ms, seeds)
    assert lava_res.weights.keys() == torch_res.weights.keys()
    wl = lava_res.weights[WEIGHTS]
    np.testing.assert_array_equal(wl.steps, torch_res.weights[WEIGHTS].steps)
    for key, w in lava_res.weights.items():
        np.testing.assert_array_equal(w.values, torch_res.weights[key].values)
    assert float(np.abs(wl.values[:, -1] - wl.values[:, 0]).max()) > 0.02  # it did learn
    for node, spikes in lava_res.spikes_by_node.items():
        other = torch_res.spikes_by_node[node]
        for field in ("step", "neuron", "trial"):
            np.testing.assert_array_equal(getattr(spikes, field), getattr(other, field))
    for key, trace in lava_res.traces.items():
        np.testing.assert_array_equal(trace.values, torch_res.traces[key].values)


def test_the_modulator_level_is_recorded_from_the_host():
    net = _pairing(reward_ms=12.0)
    net.record_state("reward", "level", every_steps=3)
    ref = _pairing(reward_ms=12.0)
    ref.record_state("reward", "level", every_steps=3)
    floating = get_backend("torch").compile(ref, precision="float64", progress=False).run(60.0)
    fixed = _fixed(net, 60.0)
    a, b = fixed.traces["reward.level"], floating.traces["reward.level"]
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.max() == pytest.approx(1.0)
    text = "; ".join(compiler.refusals(net, "fixed_pt"))
    assert "StateMonitor" not in text


@needs_lava
def test_lava_records_the_level_and_learns_with_it():
    net = _pairing(reward_ms=12.0)
    net.record_state("reward", "level", every_steps=3)
    res = get_backend("lava").compile(net, progress=False).run(60.0)
    fixed = _fixed(_pairing(reward_ms=12.0), 60.0)
    np.testing.assert_array_equal(res.traces["reward.level"].values,
                                  _fixed(net, 60.0).traces["reward.level"].values)
    np.testing.assert_array_equal(res.weights[WEIGHTS].values, fixed.weights[WEIGHTS].values)


def test_cli_runs_reward_learning_in_fixed_point_with_either_weight_range(tmp_path):
    from evospike.cli import main
    from evospike.results import Results

    model = tmp_path / "model.py"
    model.write_text(
        "from evospike import AllToAll, CubaLIF, Network, RewardEvents\n"
        "def build():\n"
        "    net = Network('cli_rstdp', dt_ms=1.0)\n"
        "    src = net.poisson_source('in', 10, rate_hz=40.0)\n"
        "    out = net.population('out', 3, CubaLIF(du=0.25, dv=0.1, v_thresh=10.0))\n"
        "    proj = net.connect(src, out, AllToAll(), weight=2.0, name='p')\n"
        "    net.modulator('da', 50.0, [RewardEvents([50.0, 150.0], 1.0)])\n"
        "    net.reward_stdp(proj, 'da', a_plus=0.05, a_minus=0.055, w_max=4.0,\n"
        "                    tau_eligibility_ms=100.0, learning_rate_per_ms=0.02)\n"
        "    net.record_weights(proj, every_steps=50)\n"
        "    return net\n")
    for weight_range in ("w_max", "initial"):
        out = tmp_path / f"{weight_range}.h5"
        assert main(["run", str(model), "--precision", "fixed", "--duration", "200ms",
                     "--plastic-weight-range", weight_range, "--out", str(out),
                     "--no-progress"]) == 0
        res = Results.load(out)
        assert "RewardModulatedSTDP 'p.rstdp'" in res.meta["engine_note"]
        assert ("weights span [0, w_max=4]" in res.meta["engine_note"]) == \
            (weight_range == "w_max")


def test_the_loihi_reward_learning_example_maps_onto_lava():
    from tests.conftest import load_example

    example = load_example("reward_learning_loihi")
    net = example.build(4)
    assert compiler.refusals(net, "fixed_pt") == []
    res = _fixed(net, 4 * example.base.TRIAL_MS)
    note = res.meta["engine_note"]
    assert "weights span [0, w_max=" in note and "eligibility decays every" in note


@pytest.mark.slow
def test_the_loihi_reward_learning_example_learns_in_fixed_point():
    # 100 trials (25 s simulated) in Loihi 2's integer arithmetic, about 20 s of CPU
    from tests.conftest import load_example

    example = load_example("reward_learning_loihi")
    plan = example.base.trial_plan(100, 0)
    curves, weights = {}, {}
    for modulated in (True, False):
        res = _fixed(example.build(100, with_modulator=modulated), 100 * example.base.TRIAL_MS)
        curves[modulated] = example.base.preference_curve(res, plan)
        weights[modulated] = res.weights["in->out.weights"].values[0, -1]
    assert curves[True][-3:].mean() > 0.25, curves[True]
    assert abs(curves[False][-3:].mean()) < 0.15, curves[False]
    half = weights[True].size // 2
    assert weights[True][:half].mean() > weights[True][half:].mean()  # A won, B lost
