"""The terminal-attractor pruning steps written once (evospike.pruning's kernels): NumPy arrays
and torch tensors give the same masks, thresholds, scores and weight updates to the last bit,
and the NumPy pruner and the torch optimizer wrapper, both built on them, agree to the last bit
when they are given the same float64 inputs."""

import math

import numpy as np
import pytest
import torch

from evospike.errors import EvoSpikeError
from evospike.pruning import (
    NUMPY_OPS,
    TerminalAttractorPruner,
    _kept_count,
    attract,
    move_masks,
    pruning_rate,
    select_bottom_k,
    smoothed_saliency,
    validate_parameters,
)
from evospike.pruning_torch import TORCH_OPS, TerminalAttractorOptimizer

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]
SHAPES = {"a": (5, 4), "b": (9,)}


def grid(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values k/64 with |k| <= 64: their squares and sums of squares are exact in float64, so
    ``|g|^2`` (a sum each library adds in its own order) is the same number in both."""
    return rng.integers(-64, 65, size=shape) / 64.0


def as_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class KernelRun:
    """The rule's state over the arrays of one library, stepped by calling the kernels
    directly (the same order of steps as the pruner: score, attract, move the masks)."""

    def __init__(self, ops, convert, weights, regrowth):
        self.ops, self.convert, self.regrowth = ops, convert, regrowth
        self.w = {k: convert(v.copy()) for k, v in weights.items()}
        self.masks = {k: convert(np.ones(s, bool)) for k, s in SHAPES.items()}
        self.shadow = {k: convert(np.zeros(s)) for k, s in SHAPES.items()}
        self.scores = None
        self.n_pruned = 0

    def step(self, loss, grads, rate, params):
        g = {k: self.convert(v) for k, v in grads.items()}
        self.scores = smoothed_saliency(self.scores, self.w, g, self.masks, self.shadow,
                                        regrowth=self.regrowth,
                                        momentum=params["saliency_momentum"], ops=self.ops)
        xp = self.ops.xp
        kept = [xp.where(self.masks[k], g[k], 0.0) for k in SHAPES]
        norm_sq = self.ops.squared_norm(kept)
        coef = attract([self.w[k] for k in SHAPES], kept, loss, norm_sq, params)
        k_prune = _kept_count(rate, sum(math.prod(s) for s in SHAPES.values()))
        if not self.regrowth:
            k_prune = max(k_prune, self.n_pruned)
        theta, n_regrown, n_new = move_masks(self.scores, self.masks, self.w, self.shadow,
                                             k_prune, self.ops)
        self.n_pruned = k_prune
        return norm_sq, coef, theta, n_regrown, n_new


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("regrowth", [True, False])
def test_kernels_give_the_same_bits_on_numpy_and_torch(device, regrowth):
    rng = np.random.default_rng(7)
    params = validate_parameters("test", "kernels", r_target=0.6, warmup_steps=2, tau_steps=4,
                                 loss_window=4, saliency_momentum=0.75, update_interval=1,
                                 regrowth=regrowth, gamma=1.0, beta=0.5, eps=1e-8,
                                 attractor_lr=0.05, clip_norm=0.7, fade_k=3.0,
                                 lambda_stability=1.0)
    weights = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    runs = [KernelRun(NUMPY_OPS, np.asarray, weights, regrowth),
            KernelRun(TORCH_OPS, lambda a: torch.tensor(a, device=device), weights, regrowth)]
    regrown = 0
    for t in range(14):
        grads = {k: grid(rng, s) for k, s in SHAPES.items()}
        grads["b"][:4] = 0.0  # four connections tie at score 0: the tie-break decides
        if t % 4 == 1:
            grads["a"][0] = 0.0
        loss = float(rng.uniform(0.1, 2.0))
        rate = pruning_rate(t, params["r_target"], 2, 4)
        (norm_n, coef_n, theta_n, *counts_n), (norm_t, coef_t, theta_t, *counts_t) = (
            run.step(loss, grads, rate, params) for run in runs)
        assert norm_n == norm_t and coef_n == coef_t and counts_n == counts_t
        assert theta_n == theta_t or (math.isnan(theta_n) and math.isnan(theta_t))
        for k in SHAPES:
            for field in ("w", "masks", "shadow", "scores"):
                got_n, got_t = getattr(runs[0], field)[k], getattr(runs[1], field)[k]
                assert isinstance(got_t, torch.Tensor) and got_t.device.type == device
                assert np.array_equal(as_numpy(got_n), as_numpy(got_t)), (t, field, k)
        regrown += counts_n[0]
    # the run exercised what it claims to: pruning, the attractor, and regrowth where it is on
    assert runs[0].n_pruned > 0 and coef_n > 0 and (regrown > 0) == regrowth


@pytest.mark.parametrize("device", DEVICES)
def test_numpy_pruner_and_torch_optimizer_agree_to_the_bit(device):
    """The two classes on the same float64 weights and gradients (the torch base optimizer makes
    no step of its own: SGD at lr 0), so every difference would come from the rule."""
    rng = np.random.default_rng(11)
    consts = dict(r_target=0.5, warmup_steps=3, tau_steps=5, loss_window=4,
                  saliency_momentum=0.8, attractor_lr=0.05, clip_norm=0.7, fade_k=3.0)
    w_np = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    params = {k: torch.nn.Parameter(torch.tensor(v, device=device)) for k, v in w_np.items()}
    core = TerminalAttractorPruner(SHAPES, **consts)
    opt = TerminalAttractorOptimizer(torch.optim.SGD(list(params.values()), lr=0.0), params,
                                     **consts)
    for _ in range(25):
        g_np = {k: grid(rng, s) for k, s in SHAPES.items()}
        loss = float(rng.uniform(0.2, 1.0))
        for k, p in params.items():
            p.grad = torch.tensor(g_np[k], device=device)
        rec_t = opt.step(loss)
        rec_n = core.step(loss, w_np, g_np)
        assert vars(rec_t) == pytest.approx(vars(rec_n), rel=0, abs=0, nan_ok=True)
        for k in SHAPES:
            assert np.array_equal(as_numpy(opt.masks[k]), core.masks[k])
            assert np.array_equal(as_numpy(params[k]), w_np[k])
            assert np.array_equal(as_numpy(opt.shadow[k]), core.shadow[k])
            assert np.array_equal(as_numpy(opt.scores[k]), core.scores[k])
    assert core.n_pruned > 0 and core.history_array("n_regrown").sum() > 0
    assert core.history_array("attractor_norm").max() > 0


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_kernels_follow_the_rule_on_a_hand_example(lib):
    """Hand-computed numbers, the same for both libraries: a shared mistake fails here."""
    ops, conv = (NUMPY_OPS, np.asarray) if lib == "numpy" else (TORCH_OPS, torch.tensor)
    masks = {"a": conv(np.array([True, True, False])), "b": conv(np.array([True, True]))}
    shadow = {"a": conv(np.array([0.0, 0.0, 4.0])), "b": conv(np.array([0.0, 0.0]))}
    w = {"a": conv(np.array([1.0, -2.0, 0.0])), "b": conv(np.array([3.0, 0.5]))}
    g = {"a": conv(np.array([0.5, 0.25, 1.0])), "b": conv(np.array([-0.125, 1.0]))}
    first = smoothed_saliency(None, w, g, masks, shadow, regrowth=True, momentum=0.5, ops=ops)
    # |w g|, with the shadow weight 4 for the pruned a[2]
    assert as_numpy(first["a"]).tolist() == [0.5, 0.5, 4.0]
    assert as_numpy(first["b"]).tolist() == [0.375, 0.5]
    prev = {"a": conv(np.array([1.5, 0.5, 2.0])), "b": conv(np.array([0.375, 0.0]))}
    avg = smoothed_saliency(prev, w, g, masks, shadow, regrowth=True, momentum=0.75, ops=ops)
    assert as_numpy(avg["a"]).tolist() == [1.25, 0.5, 2.5]  # 0.75 prev + 0.25 now
    frozen = smoothed_saliency(prev, w, g, masks, shadow, regrowth=False, momentum=0.75,
                               ops=ops)
    assert as_numpy(frozen["a"]).tolist() == [1.25, 0.5, -math.inf]  # may not regrow

    # bottom 2 of [1.25, .5, 2.5 | .375, .25]: b[0] and b[1] go, a[2] comes back
    scores = {"a": avg["a"], "b": conv(np.array([0.375, 0.25]))}
    theta, n_regrown, n_new = move_masks(scores, masks, w, shadow, 2, ops)
    assert (theta, n_regrown, n_new) == (0.375, 1, 2)
    assert as_numpy(masks["a"]).tolist() == [True, True, True]
    assert as_numpy(masks["b"]).tolist() == [False, False]
    assert as_numpy(w["a"]).tolist() == [1.0, -2.0, 4.0]  # restored from its shadow
    assert as_numpy(w["b"]).tolist() == [0.0, 0.0]
    assert as_numpy(shadow["b"]).tolist() == [3.0, 0.5]

    # attractor: c = eta * gamma E^beta / (|g|^2 + eps), clipped to |c g| <= C
    ws, gs = [conv(np.array([1.0, 1.0]))], [conv(np.array([0.5, 0.5]))]
    coef = attract(ws, gs, 4.0, 0.5, {"attractor_lr": 0.5, "gamma": 1.0, "beta": 0.5,
                                      "eps": 0.0, "clip_norm": math.inf, "fade_k": math.inf})
    assert coef == 0.5 * 2.0 / 0.5
    assert as_numpy(ws[0]).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_select_bottom_k_ranks_score_then_pruned_then_index(lib):
    ops, conv = (NUMPY_OPS, np.asarray) if lib == "numpy" else (TORCH_OPS, torch.tensor)
    scores = conv(np.array([0.5, 0.1, 0.1, 0.1, 0.9, 0.1, -math.inf]))
    pruned = conv(np.array([0, 0, 0, 1, 0, 1, 1], bool))
    out, theta = select_bottom_k(scores, pruned, 3, ops)
    assert np.flatnonzero(as_numpy(out)).tolist() == [3, 5, 6] and theta == 0.1
    out, theta = select_bottom_k(scores, conv(np.zeros(7, bool)), 4, ops)
    assert np.flatnonzero(as_numpy(out)).tolist() == [1, 2, 3, 6] and theta == 0.1
    out, theta = select_bottom_k(scores, pruned, 0, ops)
    assert not as_numpy(out).any() and math.isnan(theta)
    with pytest.raises(EvoSpikeError, match=r"k must lie in \[0, 7\] \(got 8\)"):
        select_bottom_k(scores, pruned, 8, ops)
