"""The shared array functions of `evospike.kernels`: NumPy and torch inputs give the same
float64 results, and each function follows the IR docstring's equations on a case computed by
hand. Also: which process kinds the Brian2 comparison checks independently, and the validate
report that says so."""

import math

import numpy as np
import pytest
import torch

from evospike.ir.apoptosis import Apoptosis
from evospike.kernels import apoptosis, energy, gating, memory


def both(fn, *args, **kwargs):
    """``fn`` on NumPy arrays and on torch tensors (float64): the results, as NumPy."""
    def to_torch(x):
        return torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x

    def to_numpy(x):
        if isinstance(x, tuple):
            return tuple(to_numpy(v) for v in x)
        return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    a = fn(*args, **kwargs)
    b = fn(*(to_torch(x) for x in args), **{k: to_torch(v) for k, v in kwargs.items()})
    return to_numpy(a), to_numpy(b)


def assert_same(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
        return
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b)


def dyadic(rng, shape, scale=8):
    """Values with few binary digits: products and sums of them are exact, so a matrix product
    gives the same bits whatever order the library sums in."""
    return rng.integers(-scale, scale + 1, size=shape) / 4.0


# ------------------------------------------------------------------------------ gating
@pytest.mark.parametrize("with_memory", [False, True])
def test_gate_update_is_the_same_on_numpy_and_torch(with_memory):
    rng = np.random.default_rng(1)
    trials, n_src, n_t = 3, 5, 4
    keys = patterns = None
    if with_memory:
        keys = np.eye(3, n_src)  # unit rows
        patterns = rng.random((3, n_t))
    spiked = (rng.random((trials, n_src)) < 0.5).astype(float)
    spiked[0] = 0.0  # a trial with an all-zero context: no recall there
    kwargs = dict(w_context_t=dyadic(rng, (n_src, n_t)) / 64, bias=dyadic(rng, (n_t,)),
                  context_decay=0.5, gate_decay=0.75, rate_scale=2.0,
                  history=dyadic(rng, (trials,)), w_history=dyadic(rng, (n_t,)), keys=keys,
                  patterns=patterns, recall_similarity=0.6, recall_decay=0.25)
    gate, context = rng.random((trials, n_t)), dyadic(rng, (trials, n_src)).clip(0)
    a, b = both(gating.update_gate, gate, context, spiked, **kwargs)
    assert_same(a, b)
    assert not np.array_equal(a[0], gate)
    survival = rng.random((trials, n_t))
    assert_same(*both(gating.open_mask, a[0], 0.3, survival))
    assert_same(*both(gating.activation_ratio, a[0] > 0.5, a[0]))


def test_gate_follows_the_ir_equations():
    """One source neuron that spiked, one target neuron, a history term, by hand."""
    a_, d, dt = math.exp(-0.5 / 50.0), math.exp(-0.5 / 100.0), 0.5
    gate, context = gating.update_gate(
        np.array([0.4]), np.array([12.0]), np.array([1.0]), w_context_t=np.array([[0.02]]),
        bias=np.array([-1.0]), context_decay=a_, gate_decay=d, rate_scale=1000.0 / dt,
        history=np.asarray(0.5), w_history=np.array([2.0]))
    c = a_ * 12.0 + (1 - a_) * 1.0 * 1000.0 / dt
    g = 1.0 / (1.0 + math.exp(-(0.02 * c + 2.0 * 0.5 - 1.0)))
    assert context[0] == pytest.approx(c, rel=1e-15)
    assert gate[0] == pytest.approx(d * 0.4 + (1 - d) * g, rel=1e-15)
    # open <=> m * A > theta_act
    assert gating.open_mask(np.array([0.5, 0.5]), 0.2, np.array([0.5, 0.3])).tolist() == \
        [True, False]


def test_recall_takes_the_closest_key_and_its_time_constant():
    keys = np.array([[1.0, 0.0], [0.0, 1.0]])
    patterns = np.array([[0.0, 1.0], [1.0, 0.0]])
    target = np.array([0.5, 0.5])
    # context (1, 3): cosine 0.316 with key 0, 0.949 with key 1 -> pattern 1 at 0.9
    t, d = gating.recall(np.array([1.0, 3.0]), target, 0.99, keys, patterns, 0.9, 0.1)
    assert t.tolist() == [1.0, 0.0] and d.tolist() == [0.1]
    # below the similarity: the sigmoid's target and the gate's own decay stay
    t, d = gating.recall(np.array([1.0, 1.5]), target, 0.99, keys, patterns, 0.9, 0.1)
    assert t.tolist() == [0.5, 0.5] and d.tolist() == [0.99]


def test_participation_is_the_same_on_numpy_and_torch_and_clips():
    rng = np.random.default_rng(2)
    level = np.array([-3.0, 0.1, 0.3, 5.0])
    fraction = both(gating.participation_fraction, level, 0.5, 1.0, 0.05, 0.9)
    assert_same(*fraction)
    np.testing.assert_array_equal(fraction[0], [0.05, 0.6, 0.8, 0.9])
    u = rng.random((4, 50))
    mask = both(gating.participating, u, fraction[0])
    assert_same(*mask)
    np.testing.assert_array_equal(mask[0], u < fraction[0][:, None])


# ------------------------------------------------------------------------------ apoptosis
def _node(**kw):
    base = dict(name="apo", population="pop", every_steps=10, window=4, tau=0.5,
                variance_scale_hz2=100.0, tau_a=0.6, lambda_a=5.0, floor=0.5, patience=2)
    base.update(kw)
    return Apoptosis(**base)


def test_apoptosis_evaluation_is_the_same_on_numpy_and_torch():
    rng = np.random.default_rng(3)
    node = _node(silent_ms=20.0, ceiling_hz=300.0)
    trials, n = 2, 30
    history = rng.integers(0, 400, (trials, n, 4)) * 1.0
    filled = rng.integers(0, 5, (trials, n))
    low = rng.integers(0, 3, (trials, n))
    alive = rng.random((trials, n)) < 0.9
    rate = rng.integers(0, 400, (trials, n)) * 1.0
    silent = rng.integers(0, 60, (trials, n)) * 0.5
    a, b = both(apoptosis.evaluate, node, history, filled, low, alive, rate, silent)
    assert_same(tuple(a), tuple(b))
    ev = apoptosis.Evaluation(*a)
    assert ev.died.any() and ev.alive.sum() < alive.sum()


def test_apoptosis_follows_the_ir_equations():
    """Rates (10, 50) Hz then a third period at 30 Hz: population variance over the filled
    periods, H = sigmoid(Var / scale - tau), A = exp(-lambda (H - tau_a)) above tau_a; the
    second neuron runs away (rate above the ceiling) and dies at its second low
    evaluation."""
    node = _node(ceiling_hz=45.0, patience=2)
    history = np.zeros((2, 4))
    history[:, 2:] = [[10.0, 50.0], [20.0, 40.0]]
    filled = np.array([2, 2])
    ev = apoptosis.evaluate(node, history, filled, np.array([0, 1]), np.array([True, True]),
                            np.array([30.0, 50.0]))
    var = (20.0**2 + 20.0**2 + 0.0) / 3  # around the mean 30
    h = 1.0 / (1.0 + math.exp(-(var / 100.0 - 0.5)))
    a = math.exp(-5.0 * (h - 0.6))
    assert h > 0.6 and a < 0.5
    assert ev.filled.tolist() == [3, 3]
    np.testing.assert_array_equal(ev.history[0], [0.0, 10.0, 50.0, 30.0])
    assert ev.health[0] == pytest.approx(h, rel=1e-15)
    assert ev.survival[0] == pytest.approx(a, rel=1e-15)
    assert ev.low[0] == 1  # the first low evaluation: alive
    # the runaway neuron: H = 1, A = exp(-5 * 0.4) < floor, low 1 -> 2 = patience: dies
    assert ev.died.tolist() == [False, True] and ev.alive.tolist() == [True, False]
    assert ev.health[1] == 1.0 and ev.survival[1] == 0.0
    # fewer than two periods: no variance, H = sigmoid(-tau) <= tau_a, A = 1
    assert apoptosis.rate_variance(np.array([0.0, 0.0, 0.0, 7.0]), np.array(1)) == 0.0
    assert apoptosis.survival(np.array([0.6]), 0.6, 5.0)[0] == 1.0


# ------------------------------------------------------------------------------ energy
def test_energy_budget_step_is_the_same_on_numpy_and_torch():
    rng = np.random.default_rng(4)
    trials, n = 3, 20
    cost = rng.integers(1, 9, n) * 0.5
    charged = (rng.random((trials, n)) < 0.3) * cost
    energy_ = rng.integers(0, 20, (trials, n)) * 0.25
    for pool_capacity in (None, 40.0):
        a, b = both(energy.budget_step, energy_, np.full(trials, 30.0), np.zeros(trials),
                    charged, cost, recharge=0.5, capacity=4.0, pool_recharge=1.5,
                    pool_capacity=pool_capacity)
        assert_same(tuple(a), tuple(b))
    assert_same(*both(energy.global_step, np.array([10.0, 2.0]), np.zeros(2),
                      np.array([3.0, 5.0]), recharge=1.0, capacity=9.0))
    assert_same(*both(energy.global_mask, np.array([10.0, 2.0]), cost))


def test_energy_budget_follows_the_ir_equations():
    cost = np.array([2.0, 3.0, 1.0])
    out = energy.budget_step(np.array([5.0, 2.5, 9.5]), np.asarray(6.0), np.asarray(1.0),
                             np.array([2.0, 0.0, 1.0]), cost, recharge=0.5, capacity=9.0,
                             pool_recharge=0.25, pool_capacity=10.0)
    # e = min(e - s cost + recharge, capacity); P = min(P - sum + recharge, capacity)
    np.testing.assert_array_equal(out.energy, [3.5, 3.0, 9.0])
    assert float(out.pool) == 3.25 and float(out.spent) == 4.0
    # may fire <=> e >= cost and P >= cost
    assert out.allowed.tolist() == [True, True, True]
    out = energy.budget_step(out.energy, out.pool, out.spent, np.array([2.0, 3.0, 0.0]), cost,
                             recharge=0.0, capacity=9.0, pool_recharge=0.0, pool_capacity=10.0)
    np.testing.assert_array_equal(out.energy, [1.5, 0.0, 9.0])
    assert float(out.pool) == -1.75 and out.allowed.tolist() == [False, False, False]
    # no population store: the pool stays unlimited
    out = energy.budget_step(np.array([1.0]), np.asarray(np.inf), np.asarray(0.0),
                             np.array([0.0]), np.array([1.0]), recharge=0.0, capacity=9.0,
                             pool_recharge=0.0, pool_capacity=None)
    assert float(out.pool) == np.inf and out.allowed.tolist() == [True]
    store, spent = energy.global_step(np.asarray(4.0), np.asarray(1.0), np.asarray(3.0),
                                      recharge=0.5, capacity=2.0)
    assert float(store) == 1.5 and float(spent) == 4.0


# ------------------------------------------------------------------------------ memory
def _tiers(rng, shape):
    return memory.Tiers(dyadic(rng, shape), dyadic(rng, shape), dyadic(rng, shape),
                        dyadic(rng, shape).clip(0), rng.integers(0, 3, shape) * 1.0)


def test_memory_tiers_are_the_same_on_numpy_and_torch():
    rng = np.random.default_rng(5)
    shape = (2, 40)
    tiers = _tiers(rng, shape)
    w, prev = dyadic(rng, shape), dyadic(rng, shape)
    for source in (None, dyadic(rng, shape)):
        a, b = both(lambda *t, **k: memory.step(memory.Tiers(*t[:5]), *t[5:], **k), *tiers, w,
                    prev, source, decay_short=0.9, decay_mid=0.99, decay_long=1.0,
                    decay_importance=0.95, w_min=-1.0, w_max=1.5)
        assert_same((*a[0], a[1]), (*b[0], b[1]))
    a, b = both(lambda *t, **k: memory.consolidate(memory.Tiers(*t[:5]), t[5], **k), *tiers,
                np.array([0.5, 2.0]), threshold=0.3, short_to_mid=0.5,
                reactivations_to_long=2, mid_to_long=0.25)
    assert_same(tuple(a), tuple(b))
    source = dyadic(rng, shape)
    source[:, ::3] = 0.0
    source[0, 1] = source[0, 2] = 2.0  # ties
    assert_same(*both(memory.evict, source, dyadic(rng, shape), 7))


def test_memory_tiers_follow_the_ir_equations():
    t = memory.Tiers(np.array([0.2, 0.1]), np.array([0.5, 0.0]), np.array([0.3, 0.99]),
                     np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    out, w = memory.step(t, np.array([1.25, 1.0]), np.array([1.0, 1.0]), None,
                         decay_short=0.5, decay_mid=0.5, decay_long=1.0, decay_importance=0.5,
                         w_min=0.0, w_max=1.0)
    # dw = (0.25, 0); I = I/2 + |dw|; short = (short + dw)/2, mid/2, long kept; clip to w_max
    np.testing.assert_allclose(out.importance, [0.75, 0.0], rtol=1e-15)
    np.testing.assert_allclose(out.mid, [0.25, 0.0], rtol=1e-15)
    np.testing.assert_allclose(w, [0.225 + 0.25 + 0.3, 1.0], rtol=1e-15)
    np.testing.assert_allclose(out.short + out.mid + out.long, w, rtol=1e-15)
    np.testing.assert_allclose(out.short[1], 1.0 - 0.99, rtol=1e-12)  # short absorbed the clip
    c = memory.consolidate(out, np.asarray(0.5), threshold=0.3, short_to_mid=0.5,
                           reactivations_to_long=2, mid_to_long=0.5)
    # S = I R = (0.375, 0): synapse 0 is a candidate, synapse 1 already has access 1 -> not up
    np.testing.assert_allclose(c.mid[0], out.mid[0] + 0.5 * out.short[0], rtol=1e-15)
    assert c.access.tolist() == [1.0, 1.0] and c.importance.tolist() == [0.0, 0.0]
    np.testing.assert_allclose(c.short + c.mid + c.long, w, rtol=1e-15)
    # capacity 2: keep the 2 largest |long| (ties: lower index), the others go to mid
    long, mid = memory.evict(np.array([0.5, -2.0, 0.5, 0.0, 0.5]), np.zeros(5), 2)
    assert long.tolist() == [0.5, -2.0, 0.0, 0.0, 0.0]
    assert mid.tolist() == [0.0, 0.0, 0.5, 0.0, 0.5]


# ------------------------------------------------------------------------------ independence
def test_every_process_kind_brian2_builds_says_whether_it_is_independent():
    from evospike.backends.brian2 import INDEPENDENCE, NODE_BUILDERS
    from evospike.ir.network import PROCESS_TYPES

    built = {t.kind for t in PROCESS_TYPES if t in NODE_BUILDERS}
    assert {"Apoptosis", "EpigeneticGate", "EnergyBudget", "MemoryTiers"} <= built
    assert built - set(INDEPENDENCE) == set()
    assert INDEPENDENCE["Apoptosis"][0] == "independent"
    assert INDEPENDENCE["EpigeneticGate"][0] == "shared"


def test_validate_report_lists_the_independence_of_each_process_kind(tmp_path):
    import json

    from evospike.validation import validate
    from tests.test_validation_metrics import poisson

    cand = poisson(1, backend="torch")
    refs = [poisson(s, backend="brian2") for s in (1, 2, 3)]
    report = validate(cand, refs[0], refs[1:], process_kinds=["EnergyBudget", "Apoptosis",
                                                              "Apoptosis", "NoSuchKind"])
    assert list(report.independence) == ["Apoptosis", "EnergyBudget", "NoSuchKind"]
    data = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert data["brian2_independence"]["Apoptosis"]["comparison"] == "independent"
    assert data["brian2_independence"]["EnergyBudget"]["comparison"] == "shared"
    assert data["brian2_independence"]["NoSuchKind"]["comparison"] == "not carried"
    text = report.markdown()
    assert "## What the Brian2 comparison checks" in text
    assert "| EnergyBudget | shared | shared kernel evospike.kernels.energy" in text
    # no Brian2 run: nothing to say
    other = validate(cand, poisson(1), [poisson(2), poisson(3)], process_kinds=["Apoptosis"])
    assert other.independence == {} and "Brian2 comparison" not in other.markdown()
