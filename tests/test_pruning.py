"""Terminal-attractor dynamic pruning (evospike.pruning, evospike.pruning_torch)."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from evospike.errors import EvoSpikeError, ValidationError
from evospike.pruning import (
    DEFAULTS,
    TerminalAttractorPruner,
    TerminalAttractorPruning,
    attractor_coefficient,
    attractor_gain_for_settling_time,
    bottom_k,
    pruning_rate,
    settling_time,
    stability_factor,
)
from evospike.pruning_torch import TerminalAttractorOptimizer, _bottom_k_torch
from tests.conftest import load_example

# --------------------------------------------------------------------------- toy problem

CURVATURE = np.array([0.5, 1.0, 1.5, 2.0])  # E(w) = 1/2 sum d_i w_i^2, minimum E = 0 at w = 0
W0 = np.array([1.0, -0.6, 0.4, 0.3])


def quad(w):
    return 0.5 * float(np.sum(CURVATURE * w * w)), CURVATURE * w


def run_attractor(h: float, target: float, max_steps: int, **params) -> tuple[int, float]:
    """Pure attractor flow on the quadratic through the NumPy core (no base update, no
    pruning). Returns the first step count n with E <= target (-1 if never) and E0."""
    pruner = TerminalAttractorPruner({"w": (4,)}, r_target=0.0, attractor_lr=h,
                                     **{"clip_norm": math.inf, "fade_k": math.inf, **params})
    w = W0.copy()
    e0 = quad(w)[0]
    for n in range(max_steps):
        e, g = quad(w)
        if e <= target:
            return n, e0
        pruner.step(e, {"w": w}, {"w": g})
    return -1, e0


def run_gradient_descent(h: float, steps: int) -> float:
    w = W0.copy()
    for _ in range(steps):
        w -= h * quad(w)[1]
    return quad(w)[0]


# --------------------------------------------------------------------------- finite time

def test_attractor_reaches_target_within_the_predicted_finite_time():
    h, target = 1e-3, 1e-4
    n, e0 = run_attractor(h, target, 5000)
    predicted = settling_time(e0, gamma=1.0, beta=0.5, e_target=target)
    t_star = settling_time(e0, gamma=1.0, beta=0.5)  # all the way to E = 0
    assert n > 0
    # forward Euler of dE/dt = -gamma E^beta loses O(h) per unit time: 1 % and two steps
    assert abs(n * h - predicted) <= 0.01 * predicted + 2 * h
    assert n * h <= t_star + 2 * h
    # plain gradient descent with the same step has not got there by t* (and is far off)
    assert run_gradient_descent(h, int(t_star / h)) > 20 * target


def test_attractor_with_fade_follows_the_faded_flow():
    h, target, k = 1e-3, 1e-2, 10.0
    n, e0 = run_attractor(h, target, 20000, fade_k=k)
    predicted = settling_time(e0, gamma=1.0, beta=0.5, e_target=target, fade_k=k)
    assert predicted > settling_time(e0, e_target=target)  # the fade slows the approach
    assert abs(n * h - predicted) <= 0.01 * predicted + 2 * h


def test_settling_time_can_be_specified_through_gamma():
    h, t_star, target = 1e-3, 0.5, 1e-5
    e0 = quad(W0)[0]
    gamma = attractor_gain_for_settling_time(e0, t_star, beta=0.5)
    assert settling_time(e0, gamma=gamma, beta=0.5) == pytest.approx(t_star)
    n, _ = run_attractor(h, target, 5000, gamma=gamma)
    assert n > 0 and n * h <= t_star + 2 * h
    assert n * h >= settling_time(e0, gamma=gamma, e_target=target) * 0.99 - 2 * h


def test_attractor_norm_is_clipped():
    pruner = TerminalAttractorPruner({"w": (4,)}, r_target=0.0, attractor_lr=0.1,
                                     clip_norm=0.5, fade_k=math.inf)
    w = W0 * 1e-3  # tiny gradient: the unclipped Psi ~ E^beta / |g| would be large
    e, g = quad(w)
    rec = pruner.step(e, {"w": w}, {"w": g})
    assert rec.attractor_norm == pytest.approx(0.1 * 0.5)
    assert attractor_coefficient(0.0, 1.0) == 0.0 and attractor_coefficient(1.0, 0.0) == 0.0


def test_torch_wrapper_finite_time_and_agreement_with_numpy_core():
    h, target = 2e-3, 1e-3
    d = torch.tensor(CURVATURE, dtype=torch.float64)
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    opt = TerminalAttractorOptimizer(torch.optim.SGD([w], lr=0.0), {"w": w}, r_target=0.0,
                                     attractor_lr=h, clip_norm=math.inf, fade_k=math.inf)
    n_torch = -1
    for n in range(5000):
        opt.zero_grad()
        loss = 0.5 * (d * w * w).sum()
        if loss.item() <= target:
            n_torch = n
            break
        loss.backward()
        opt.step(loss)
    n_numpy, e0 = run_attractor(h, target, 5000)
    assert n_torch == n_numpy
    predicted = settling_time(e0, e_target=target)
    assert abs(n_torch * h - predicted) <= 0.01 * predicted + 2 * h


def test_adamw_plus_attractor_reaches_the_target_where_adamw_alone_does_not():
    h, target = 1e-3, 1e-4
    d = torch.tensor(CURVATURE, dtype=torch.float64)
    t_star = settling_time(quad(W0)[0])

    def run(attractor_lr: float) -> tuple[int, float]:
        w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
        opt = TerminalAttractorOptimizer(torch.optim.AdamW([w], lr=1e-3, weight_decay=0.0),
                                         {"w": w}, r_target=0.0, attractor_lr=attractor_lr,
                                         clip_norm=math.inf, fade_k=math.inf)
        for n in range(int(t_star / h) + 2):
            opt.zero_grad()
            loss = 0.5 * (d * w * w).sum()
            if loss.item() <= target:
                return n, loss.item()
            loss.backward()
            opt.step(loss)
        return -1, loss.item()

    n_ta, _ = run(h)
    assert 0 < n_ta and n_ta * h <= t_star + 2 * h
    n_plain, e_plain = run(0.0)
    assert n_plain == -1 and e_plain > 10 * target


# --------------------------------------------------------------------------- schedule

def test_schedule_formula():
    assert pruning_rate(5, 0.3, warmup=10, tau=20) == 0.0
    assert pruning_rate(10, 0.3, warmup=10, tau=20) == 0.0
    assert pruning_rate(30, 0.3, 10, 20) == pytest.approx(0.3 * (1 - math.exp(-1)))
    assert pruning_rate(30, 0.3, 10, 20, alpha=0.5) == pytest.approx(0.15 * (1 - math.exp(-1)))
    losses = [1.0, 2.0, 3.0, 2.0]
    expected = 1 / (1 + 0.7 * np.std(losses) / np.mean(losses))
    assert stability_factor(losses, 0.7) == pytest.approx(expected)
    assert stability_factor([0.0, 0.0], 1.0) == 1.0 and stability_factor([], 1.0) == 1.0
    assert stability_factor([2.0, 2.0, 2.0], 5.0) == 1.0


def test_global_threshold_breaks_ties_deterministically():
    scores = np.array([0.5, 0.1, 0.1, 0.1, 0.9, 0.1])
    none_pruned = np.zeros(6, bool)
    pruned, theta = bottom_k(scores, none_pruned, 2)
    assert list(np.flatnonzero(pruned)) == [1, 2] and theta == 0.1  # lower index first
    already = np.array([0, 0, 0, 1, 0, 1], bool)
    pruned, _ = bottom_k(scores, already, 2)
    assert list(np.flatnonzero(pruned)) == [3, 5]  # at equal score, the pruned stay pruned
    pruned, theta = bottom_k(scores, none_pruned, 0)
    assert not pruned.any() and math.isnan(theta)
    # the torch ranking is the same one, on many random ties
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, 500).astype(float)
    was = rng.random(500) < 0.3
    for k in (0, 1, 77, 250, 500):
        ref, ref_theta = bottom_k(s, was, k)
        got, got_theta = _bottom_k_torch(torch.tensor(s), torch.tensor(was), k)
        assert np.array_equal(got.numpy(), ref)
        assert (math.isnan(ref_theta) and math.isnan(got_theta)) or got_theta == ref_theta


def _train_mlp(steps: int, prune: bool, **pruning):
    example = load_example("pruning_digits")
    torch.set_num_threads(1)
    return example.train("mlp", prune, steps=steps, seed=0, progress=False, **pruning)


def test_pruned_fraction_follows_the_schedule():
    run = _train_mlp(300, True, warmup_steps=50, tau_steps=60, lambda_stability=1.0,
                     loss_window=20)
    opt = run["optimizer"]
    losses = run["losses"]
    n = opt.n_total
    for t in (0, 49, 50, 51, 60, 90, 150, 220, 299):
        window = losses[max(0, t - 19):t + 1]
        alpha = 1 / (1 + 1.0 * np.std(window) / np.mean(window))
        expected = 0.0 if t < 50 else 0.3 * (1 - math.exp(-(t - 50) / 60)) * alpha
        rec = opt.history[t]
        assert rec.rate == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert rec.pruned_fraction == math.floor(expected * n + 1e-9) / n
    assert opt.history[90].rate > 0.1  # the schedule did rise
    # the masks, the weights and the record agree
    n_masked = sum(int((~m).sum()) for m in opt.masks.values())
    assert n_masked == opt.n_pruned == opt.history[-1].n_pruned
    for key, param in opt.pruned_parameters.items():
        assert torch.all(param[~opt.masks[key]] == 0)


def test_mask_updates_only_every_update_interval():
    run = _train_mlp(160, True, warmup_steps=20, tau_steps=30, update_interval=25)
    frac = run["optimizer"].history_array("pruned_fraction")
    changes = np.flatnonzero(np.diff(frac)) + 1
    assert len(changes) > 0 and all(c % 25 == 0 for c in changes)


# --------------------------------------------------------------------------- accuracy

def test_mlp_pruned_to_30_percent_keeps_its_accuracy():
    """Margin: within 2 percentage points of the dense network (450 test images)."""
    dense = _train_mlp(500, False)
    pruned = _train_mlp(500, True, tau_steps=40, lambda_stability=0.0)
    opt = pruned["optimizer"]
    assert 0.299 <= opt.pruned_fraction <= 0.3
    assert dense["accuracy"] > 0.93
    assert pruned["accuracy"] >= dense["accuracy"] - 0.02
    assert opt.history_array("n_regrown").sum() > 0  # connections did come back
    for key, param in opt.pruned_parameters.items():
        assert torch.all(param[~opt.masks[key]] == 0)


@pytest.mark.slow
def test_snn_pruned_by_the_default_schedule_keeps_its_accuracy():
    """The surrogate-gradient SNN of the example, default lambda: the schedule stops at
    R_target * alpha (~0.29); within 2 percentage points of the dense network."""
    example = load_example("pruning_digits")
    torch.set_num_threads(1)
    dense = example.train("snn", False, steps=600, progress=False)
    pruned = example.train("snn", True, steps=600, progress=False)
    opt = pruned["optimizer"]
    assert 0.28 <= opt.pruned_fraction <= 0.3
    assert dense["accuracy"] > 0.95
    assert pruned["accuracy"] >= dense["accuracy"] - 0.02


# --------------------------------------------------------------------------- regrowth

def _regrowth_case(regrowth: bool):
    pruner = TerminalAttractorPruner({"a": (3,), "b": (2,)}, r_target=0.4, warmup_steps=0,
                                     tau_steps=1e-6, lambda_stability=0.0,
                                     saliency_momentum=0.0, attractor_lr=0.0,
                                     regrowth=regrowth)
    w = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([4.0, 5.0])}
    g = {"a": np.array([0.01, 1.0, 1.0]), "b": np.array([1.0, 0.02])}
    pruner.step(1.0, w, g)  # t = 0: R(0) = 0 even without warm-up
    assert pruner.n_pruned == 0
    pruner.step(1.0, w, g)  # scores a: .01 2 3, b: 4 .1 -> R = 0.4 prunes a[0] and b[1]
    assert np.array_equal(pruner.masks["a"], [False, True, True])
    assert np.array_equal(pruner.masks["b"], [True, False])
    assert w["a"][0] == 0.0 and w["b"][1] == 0.0
    # the gradient at the pruned b[1] grows: |shadow * g| = 5 * 1 = 5 rises above a[1]'s 2
    g = {"a": np.array([0.01, 1.0, 1.0]), "b": np.array([1.0, 1.0])}
    rec = pruner.step(1.0, w, g)
    return pruner, w, rec


def test_a_pruned_connection_regrows_when_its_score_rises():
    pruner, w, rec = _regrowth_case(True)
    assert rec.n_regrown == 1 and rec.n_newly_pruned == 1 and rec.n_pruned == 2
    assert np.array_equal(pruner.masks["b"], [True, True])
    assert w["b"][1] == 5.0  # restored from its shadow weight
    assert np.array_equal(pruner.masks["a"], [False, False, True])  # a[1] went instead
    assert w["a"][1] == 0.0 and pruner.shadow["a"][1] == 2.0
    assert rec.threshold == 2.0


def test_without_regrowth_a_pruned_connection_stays_pruned():
    pruner, w, rec = _regrowth_case(False)
    assert rec.n_regrown == 0
    assert np.array_equal(pruner.masks["b"], [True, False]) and w["b"][1] == 0.0


# --------------------------------------------------------------------------- torch vs NumPy

@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_torch_wrapper_matches_numpy_core(device):
    """Same gradients, same constants: the SGD-wrapped torch layer and the NumPy core give the
    same masks, weights and records."""
    rng = np.random.default_rng(0)
    shapes = {"l1": (6, 5), "l2": (4, 6)}
    w_np = {k: rng.normal(size=s) for k, s in shapes.items()}
    params = {k: torch.nn.Parameter(torch.tensor(v, device=device)) for k, v in w_np.items()}
    bias = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64, device=device))
    consts = dict(r_target=0.5, warmup_steps=3, tau_steps=5, loss_window=4,
                  saliency_momentum=0.8, attractor_lr=0.05, clip_norm=0.7, fade_k=3.0)
    lr = 0.1
    core = TerminalAttractorPruner(shapes, **consts)
    opt = TerminalAttractorOptimizer(torch.optim.SGD([*params.values(), bias], lr=lr),
                                     params, **consts)
    for _ in range(25):
        g_np = {k: rng.normal(size=s) for k, s in shapes.items()}
        loss = float(rng.uniform(0.2, 1.0))
        for k, p in params.items():
            p.grad = torch.tensor(g_np[k], device=device)
        bias.grad = torch.zeros_like(bias)  # present, but adds nothing to |g|
        rec_t = opt.step(loss)
        rec_n = core.step(loss, w_np, g_np, base_update={k: -lr * np.where(
            core.masks[k], g, 0.0) for k, g in g_np.items()})
        for k in shapes:
            assert np.array_equal(opt.masks[k].cpu().numpy(), core.masks[k])
            np.testing.assert_allclose(params[k].detach().cpu().numpy(), w_np[k], atol=1e-12)
        assert rec_t.n_pruned == rec_n.n_pruned and rec_t.n_regrown == rec_n.n_regrown
        assert rec_t.attractor_norm == pytest.approx(rec_n.attractor_norm, rel=1e-9)
    assert core.n_pruned > 0 and core.history_array("n_regrown").sum() > 0


def test_state_dict_resumes_exactly():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))

    def make():
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                                    torch.nn.Linear(16, 3))
        opt = TerminalAttractorOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-2),
                                         {"0": model[0].weight, "2": model[2].weight},
                                         warmup_steps=5, tau_steps=10)
        return model, opt

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step(loss)

    model, opt = make()
    train(model, opt, 20)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved = opt.state_dict()
    train(model, opt, 15)
    model2, opt2 = make()
    model2.load_state_dict(saved_model)
    opt2.load_state_dict(saved)
    train(model2, opt2, 15)
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [vars(r) for r in opt.history] == [vars(r) for r in opt2.history]


# --------------------------------------------------------------------------- IR node

def test_ir_node_is_plain_validated_data():
    rule = TerminalAttractorPruning("ta", ["in->hid", "hid->out"], modulator="error",
                                    t_warmup_ms=500, tau_ms=1000, update_interval_ms=10)
    assert rule.projections == ("in->hid", "hid->out") and rule.t_warmup_ms == 500.0
    assert TerminalAttractorPruning.from_dict(rule.to_dict()) == rule
    assert rule.to_dict()["projections"] == ["in->hid", "hid->out"]
    pruner = rule.make_pruner({"in->hid": (30,), "hid->out": (20,)})
    assert pruner.params["warmup_steps"] == 50.0 and pruner.params["tau_steps"] == 100.0
    assert pruner.params["update_interval"] == 1
    with pytest.raises(ValidationError, match="shapes"):
        rule.make_pruner({"in->hid": (30,)})
    code = ("import sys, evospike.pruning; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------- validation

BAD = [
    ("r_target", 1.0), ("r_target", -0.1), ("r_target", float("nan")), ("r_target", "0.3"),
    ("warmup_steps", -1), ("tau_steps", 0.0), ("lambda_stability", -0.5),
    ("loss_window", 1), ("loss_window", 2.5), ("saliency_momentum", 1.0),
    ("update_interval", 0), ("regrowth", 1), ("gamma", 0.0), ("beta", 1.0), ("beta", 0.0),
    ("eps", 0.0), ("attractor_lr", -1e-3), ("clip_norm", -1.0), ("fade_k", 0.0),
    ("gamma", math.inf), ("unknown_constant", 3),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_bad_constants_are_refused_by_name(field, value):
    w = torch.nn.Parameter(torch.ones(3, 3))
    makers = [
        lambda: TerminalAttractorPruner({"w": (3, 3)}, **{field: value}),
        lambda: TerminalAttractorOptimizer(torch.optim.SGD([w], lr=0.1), {"w": w},
                                           **{field: value}),
    ]
    ir_field = {"warmup_steps": "t_warmup_ms", "tau_steps": "tau_ms"}.get(field, field)
    if field not in ("update_interval", "unknown_constant"):
        makers.append(lambda: TerminalAttractorPruning("ta", ["p"], "err", **{ir_field: value}))
    for make in makers:
        with pytest.raises(ValidationError) as info:
            make()
        if ir_field != field and "TerminalAttractorPruning '" in str(info.value):
            assert ir_field in str(info.value)
        else:
            assert field in str(info.value)
        assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_bad_inputs_are_refused_by_name():
    w = torch.nn.Parameter(torch.ones(2, 2))
    other = torch.nn.Parameter(torch.ones(2))
    opt = TerminalAttractorOptimizer(torch.optim.SGD([w], lr=0.1), {"w": w})
    with pytest.raises(ValidationError, match=r"pruned\['w'\]\.grad is None"):
        opt.step(1.0)
    w.grad = torch.ones_like(w)
    for loss in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValidationError, match=rf"loss must be finite.*{loss}"):
            opt.step(loss)
    with pytest.raises(ValidationError, match=r"pruned\['x'\] is not a parameter of the wrapped"):
        TerminalAttractorOptimizer(torch.optim.SGD([w], lr=0.1), {"x": other})
    with pytest.raises(ValidationError, match="must name at least one parameter"):
        TerminalAttractorOptimizer(torch.optim.SGD([w], lr=0.1), {})
    with pytest.raises(ValidationError, match="optimizer must be a torch.optim.Optimizer"):
        TerminalAttractorOptimizer("adam", {"w": w})
    pruner = TerminalAttractorPruner({"w": (2,)})
    with pytest.raises(ValidationError, match=r"grads\['w'\] must have shape \(2,\)"):
        pruner.step(1.0, {"w": np.ones(2)}, {"w": np.ones(3)})
    with pytest.raises(ValidationError, match=r"grads\['w'\] must be finite.*nan at index 1"):
        pruner.step(1.0, {"w": np.ones(2)}, {"w": np.array([1.0, np.nan])})
    with pytest.raises(ValidationError, match="weights must have exactly the groups"):
        pruner.step(1.0, {"v": np.ones(2)}, {"w": np.ones(2)})
    with pytest.raises(ValidationError, match="projections names a projection twice"):
        TerminalAttractorPruning("ta", ["p", "p"], "err")
    with pytest.raises(ValidationError, match="modulator must name"):
        TerminalAttractorPruning("ta", ["p"], "")
    with pytest.raises(EvoSpikeError, match="e_target > 0"):
        settling_time(1.0, fade_k=10.0)
    assert set(DEFAULTS) >= {"gamma", "beta", "eps", "clip_norm", "fade_k", "attractor_lr"}


def test_example_writes_its_figure(tmp_path, capsys):
    example = load_example("pruning_digits")
    out = tmp_path / "pruning.png"
    example.main(["--model", "mlp", "--steps", "150", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "test accuracy dense" in text and "final pruned fraction" in text
