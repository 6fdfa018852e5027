"""Terminal-attractor dynamic pruning: the framework-neutral core (NumPy, no torch import).

The method of the thesis "Dynamic Adaptive Pruning Method Incorporating Terminal Attractors"
(Ch. 2 and 4). Four parts work together during training (or, inside a simulation, while a
plasticity rule runs):

**Saliency** (first-order Taylor estimate of the loss change when a connection is toggled)::

    S_ij = |w_ij * dE/dw_ij|                       for a kept connection
    S_ij = |w_shadow_ij * dE/dw_ij|                for a pruned one (see "Regrowth")

optionally smoothed over steps by an exponential running average
``S <- rho * S + (1 - rho) * S_now`` (``saliency_momentum`` = rho; 0 gives the thesis's
instantaneous score). The running average is seeded with the first score, so it carries no
start-up bias.

**One global threshold.** The scores of all pruned groups (layers, projections) are ranked
together; the ``k = floor(R(t) * N)`` lowest (N = all prunable connections) are pruned, all
others kept. Ties are broken deterministically: at equal score a connection that is already
pruned is pruned before a kept one (no churn among equals), then the earlier position goes
first (groups in the order given, entries in C order). ``threshold`` is the largest pruned
score (NaN while nothing is pruned). Because exactly k connections are pruned, the pruned
fraction equals ``floor(R(t) N) / N``: it follows R(t) to within 1/N, from below.

**Schedule**::

    R(t) = 0                                                          t < t_warmup
    R(t) = R_target * (1 - exp(-(t - t_warmup) / tau)) * alpha(t)     t >= t_warmup
    alpha(t) = 1 / (1 + lambda * sigma_E(t) / E_avg(t))

``E_avg`` and ``sigma_E`` (population standard deviation) are taken over the last
``loss_window`` values of the loss, the current one included (``alpha = 1`` when
``E_avg = 0``, which with E >= 0 means every loss in the window is 0). A noisy or still-falling
loss lowers alpha and so the reached fraction: at the end of training the pruned fraction is
``R_target * alpha``, not ``R_target``, unless the loss has settled. ``t`` counts steps
(calls of ``step``); masks are recomputed every ``update_interval`` steps.

**Regrowth.** A pruned weight is set to 0, and the value it had when it was pruned is kept as a
*shadow weight* (the thesis: "the previous value is kept"). Its score is
``|w_shadow * dE/dw|`` with the gradient taken at w = 0 (the gradient of the masked network
with respect to the pruned entry, which backpropagation delivers anyway): the first-order
estimate of the loss change if the connection came back with its old value, the mirror image of
a kept weight's score. When that score rises above the global threshold the connection is
kept again at the next mask update and its weight restored to the shadow value. With
``regrowth=False`` a pruned connection stays pruned (the pruned count then never falls).

**Attractor term** (added to the base update)::

    Psi   = gamma * E^beta * g / (|g|^2 + eps)        g: the gradient, pruned entries zeroed,
                                                      |g| its norm over all groups together
    Psi  <- Psi * C / |Psi|     if |Psi| > C          (norm clipping)
    w    <- w + base_update - eta_TA * tanh(k E) * Psi

For the pure attractor flow ``dw/dt = -Psi`` (no clip, no fade) the loss obeys
``dE/dt = -gamma E^beta |g|^2 / (|g|^2 + eps) ~ -gamma E^beta`` and reaches 0 in the finite
time ``t* = E0^(1-beta) / (gamma (1-beta))`` (`settling_time`); one step advances the flow by
``eta_TA`` time units. The tanh fade hands over to the base update when E is tiny (there the
flow is singular and a discrete step would overshoot); it also makes the approach to E = 0
asymptotic again, so with the fade on the finite-time statement holds for a target E > 0
(`settling_time` integrates the faded flow numerically).

Constants (the thesis fixes gamma, beta, eps and R_target = 30 %; it leaves the rest open):

==================== ========= ===============================================================
name                 default   why
==================== ========= ===============================================================
r_target             0.3       the thesis's target pruning rate (Table 5.2)
warmup_steps         100       pruning on scores of a barely trained net removes the wrong
                               weights (Sec. 4.2.3); 100 steps lets small nets learn first
tau_steps            200       the fraction rises over a few hundred steps so the attractor
                               term can repair each cut before the next (Sec. 4.2.3)
lambda_stability     1.0       neutral weight: a coefficient of variation of 1 halves R(t)
loss_window          20        steps in the running mean/std of E; long enough for a std,
                               short enough to react to a loss spike
saliency_momentum    0.9       mini-batch gradients are noisy; an average over ~10 steps keeps
                               masks from flickering (0 = the thesis's instantaneous score)
update_interval      1         masks follow R(t) at every step (raise it for large models:
                               each update sorts all scores)
regrowth             True      the thesis lets pruned connections come back (Sec. 4.2.4)
gamma                1.0       the thesis (Table 5.2)
beta                 0.5       the thesis (Table 5.2); must lie in (0, 1) for finite time
eps                  1e-8      the thesis (Sec. 4.3.2)
attractor_lr         1e-2      eta_TA, step of the attractor flow per update; with C = 1 the
                               attractor moves all weights together by at most 0.01 per step,
                               a fraction of an AdamW step at lr 1e-3 over thousands of weights
clip_norm            1.0       C; the thesis's gradient-clipping value; ``inf`` disables
fade_k               10.0      k; tanh(k E) > 0.96 for E > 0.2, so the fade acts only once the
                               loss is small (cross-entropy near a perfect fit); ``inf``
                               disables
==================== ========= ===============================================================

The steps (saliency and its running average `smoothed_saliency`, the global threshold
`select_bottom_k`, pruning and regrowth `move_masks`, the attractor step `attract`) are written
once here, over NumPy arrays or torch tensors. `TerminalAttractorPruner` runs them on NumPy
arrays (a simulation backend can call it every update interval);
`evospike.pruning_torch.TerminalAttractorOptimizer` runs the same functions on a torch
optimizer's tensors, on their device, for surrogate-gradient training. Given the same float64
inputs the two agree to the last bit (tests/test_pruning_kernels.py), apart from ``|g|^2``, a sum
that each library adds in its own order. `TerminalAttractorPruning` is the plain-data IR
description of the rule for projections of a network (`evospike.ir.pruning`, with the table's
`DEFAULTS` and their checks, `validate_parameters`; all three importable from here).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evospike.errors import EvoSpikeError, ValidationError

# the IR node and the rule's constants (DEFAULTS, validate_parameters) are the IR's
# (evospike/ir/pruning.py); importable from here as before
from evospike.ir.pruning import DEFAULTS, TerminalAttractorPruning, validate_parameters

__all__ = [
    "DEFAULTS", "NUMPY_OPS", "ArrayOps", "PruningRecord", "PruningSchedule",
    "TerminalAttractorPruner", "TerminalAttractorPruning", "attract", "attractor_coefficient",
    "attractor_gain_for_settling_time", "bottom_k", "move_masks", "saliency",
    "select_bottom_k", "settling_time", "smoothed_saliency", "stability_factor", "pruning_rate",
    "validate_parameters",
]

Array = Any  # numpy.ndarray or torch.Tensor


# --------------------------------------------------------------------------- validation
def _check_loss(kind: str, name: str, loss: object) -> float:
    try:
        value = float(loss)  # a 0-d array or tensor converts; anything else is refused below
    except (TypeError, ValueError):
        raise ValidationError(kind, name, "loss", "must be a real number >= 0", loss) from None
    if not math.isfinite(value) or value < 0:
        raise ValidationError(kind, name, "loss",
                              "must be finite and >= 0 (E is the attractor's potential; "
                              "E^beta is undefined below 0)", value)
    return value


# --------------------------------------------------------------------------- pure formulas

def saliency(weights: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``|w * dE/dw|`` elementwise (same shape as ``weights``)."""
    return np.abs(np.asarray(weights) * np.asarray(grads))


def stability_factor(losses: Iterable[float], lambda_stability: float) -> float:
    """``alpha = 1 / (1 + lambda * sigma_E / E_avg)`` over ``losses`` (population std);
    1 for an empty window or a window of zeros."""
    arr = np.asarray(list(losses), dtype=np.float64)
    if arr.size == 0:
        return 1.0
    mean = float(arr.mean())
    if mean <= 0.0:
        return 1.0
    return 1.0 / (1.0 + lambda_stability * float(arr.std()) / mean)


def pruning_rate(t: float, r_target: float, warmup: float, tau: float,
                 alpha: float = 1.0) -> float:
    """``R(t)``: 0 before ``warmup``, then ``r_target (1 - exp(-(t - warmup)/tau)) alpha``.
    ``t``, ``warmup`` and ``tau`` in one unit (steps, or ms for the IR node)."""
    if t < warmup:
        return 0.0
    return r_target * (1.0 - math.exp(-(t - warmup) / tau)) * alpha


def attractor_coefficient(loss: float, grad_norm_sq: float, *, gamma: float = 1.0,
                          beta: float = 0.5, eps: float = 1e-8, clip_norm: float = 1.0,
                          fade_k: float = 10.0) -> float:
    """The scalar c with ``tanh(k E) * clip(Psi) = c * g``, so the attractor displacement of a
    step is ``-eta_TA * c * g``. ``grad_norm_sq`` is ``|g|^2`` over every parameter the
    attractor acts on."""
    if loss <= 0.0 or grad_norm_sq <= 0.0:
        return 0.0  # at the attractor (E = 0) or with no direction to move in, Psi = 0
    coef = gamma * loss ** beta / (grad_norm_sq + eps)
    psi_norm = coef * math.sqrt(grad_norm_sq)
    if psi_norm > clip_norm:
        coef *= clip_norm / psi_norm
    fade = 1.0 if math.isinf(fade_k) else math.tanh(fade_k * loss)
    return coef * fade


def settling_time(e0: float, gamma: float = 1.0, beta: float = 0.5, e_target: float = 0.0,
                  fade_k: float = math.inf) -> float:
    """Time for the attractor flow ``dE/dt = -gamma E^beta tanh(k E)`` (eps -> 0, no
    clipping) to bring the loss from ``e0`` to ``e_target``.

    Without the fade (``fade_k = inf``) it is the closed form
    ``(e0^(1-beta) - e_target^(1-beta)) / (gamma (1 - beta))``, finite even for
    ``e_target = 0`` (the thesis's Eq. 2.7 with Delta = gamma). With the fade the integral
    ``int dE / (gamma E^beta tanh(k E))`` is evaluated numerically (it diverges at 0, so
    ``e_target`` must then be > 0)."""
    if not (e0 >= e_target >= 0.0):
        raise EvoSpikeError(f"settling_time needs e0 >= e_target >= 0 (got e0={e0}, "
                            f"e_target={e_target})")
    if math.isinf(fade_k):
        return (e0 ** (1 - beta) - e_target ** (1 - beta)) / (gamma * (1 - beta))
    if e_target <= 0.0:
        raise EvoSpikeError("settling_time with a tanh fade never reaches E = 0; give "
                            f"e_target > 0 (got {e_target})")
    # substitute u = ln E: dt = E^(1-beta) / (gamma tanh(k E)) du; smooth on a log grid
    u = np.linspace(math.log(e_target), math.log(e0), 20001)
    e = np.exp(u)
    integrand = e ** (1 - beta) / (gamma * np.tanh(fade_k * e))
    return float(np.sum((integrand[1:] + integrand[:-1]) * np.diff(u)) / 2)


def attractor_gain_for_settling_time(e0: float, t_star: float, beta: float = 0.5) -> float:
    """The gain gamma with which the attractor flow reaches E = 0 at ``t_star`` from ``e0``:
    ``gamma = e0^(1-beta) / (t_star (1-beta))`` (the thesis's Eq. 2.8, which prints this
    relation inverted)."""
    if not (t_star > 0 and e0 >= 0 and 0 < beta < 1):
        raise EvoSpikeError(f"attractor_gain_for_settling_time needs t_star > 0, e0 >= 0, "
                            f"0 < beta < 1 (got t_star={t_star}, e0={e0}, beta={beta})")
    return e0 ** (1 - beta) / (t_star * (1 - beta))


# --------------------------------------------------------------------------- the steps, once
#
# Each step of the rule is written here once, over the arrays of one library: the NumPy pruner
# below passes NumPy arrays and `NUMPY_OPS`, the torch optimizer (`evospike.pruning_torch`)
# passes tensors and its `TORCH_OPS`, so a tensor stays on its device. The kernels use what
# both libraries spell alike through ``ops.xp`` (the module) and the four operations they
# spell differently through ``ops`` (`ArrayOps`). Nothing here imports torch.

class ArrayOps:
    """The array namespace of the kernels: ``xp``, the library's module, for what NumPy and
    torch spell alike (``where``, ``isfinite``, ``isnan``, ``zeros_like``, ``concatenate``;
    operators and indexing), and the four operations they spell differently, NumPy's here
    (torch's: `evospike.pruning_torch.TorchOps`)."""

    xp: Any = np

    @staticmethod
    def argsort_stable(key: np.ndarray) -> np.ndarray:
        """Indices that sort the 1-D ``key`` (numbers or bool) ascending, equal keys by index."""
        return np.argsort(key, kind="stable")

    @staticmethod
    def squared_norm(arrays: Sequence[np.ndarray]) -> float:
        """``sum |x|^2`` over all of ``arrays`` as a Python float: each array summed in its
        own dtype, the sums added as Python floats."""
        return float(sum(float(np.sum(x * x)) for x in arrays))

    @staticmethod
    def to_ints(values: Sequence[np.ndarray]) -> tuple[int, ...]:
        """0-d integer arrays as Python ints."""
        return tuple(int(v) for v in values)

    @staticmethod
    def assign(dst: np.ndarray, src: np.ndarray) -> None:
        """Write ``src`` into ``dst`` in place (cast to ``dst``'s dtype)."""
        dst[...] = src


NUMPY_OPS = ArrayOps()


def smoothed_saliency(scores: Mapping[str, Array] | None, weights: Mapping[str, Array],
                      grads: Mapping[str, Array], masks: Mapping[str, Array],
                      shadow: Mapping[str, Array], *, regrowth: bool, momentum: float,
                      ops: ArrayOps) -> dict[str, Array]:
    """The running scores after this step, by group: the step's saliency ``|w * dE/dw|``
    (``w`` the shadow weight where pruned; ``-inf`` there when ``regrowth`` is off, so such an
    entry ranks below every other and is not averaged) folded into ``scores`` with the running
    average of weight ``momentum`` (``scores`` None: this step's saliency, unaveraged)."""
    xp = ops.xp
    out = {}
    for k, mask in masks.items():
        s = abs(xp.where(mask, weights[k], shadow[k]) * grads[k])
        if not regrowth:
            s = xp.where(mask, s, -math.inf)
        if scores is not None:
            live = xp.isfinite(s)
            # both sides are evaluated; zeroing the dead entries first keeps -inf * rho out
            s = xp.where(live, momentum * xp.where(live, scores[k], 0.0)
                         + (1 - momentum) * xp.where(live, s, 0.0), s)
        out[k] = s
    return out


def select_bottom_k(scores: Array, pruned: Array, k: int, ops: ArrayOps) -> tuple[Array, float]:
    """`bottom_k` on the 1-D ``scores`` and bool ``pruned`` of one library: two stable sorts
    give the ranking score, then already-pruned first, then index."""
    n = scores.shape[0]
    if not 0 <= k <= n:
        raise EvoSpikeError(f"bottom_k: k must lie in [0, {n}] (got {k})")
    out = ops.xp.zeros_like(pruned)
    if k == 0:
        return out, math.nan
    order = ops.argsort_stable(~pruned)  # pruned first, each part by index
    order = order[ops.argsort_stable(scores[order])]
    out[order[:k]] = True
    return out, float(scores[order[k - 1]])


def bottom_k(scores: np.ndarray, pruned: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Pick the ``k`` lowest of the flat ``scores``; ties go first to entries already
    ``pruned``, then to the lower index. Returns the new pruned mask (bool, True = pruned) and
    the threshold (the largest pruned score; NaN when k = 0)."""
    return select_bottom_k(np.asarray(scores, dtype=np.float64).ravel(),
                           np.asarray(pruned, dtype=bool).ravel(), k, NUMPY_OPS)


def move_masks(scores: Mapping[str, Array], masks: dict[str, Array], weights: Mapping[str, Array],
               shadow: dict[str, Array], k_prune: int, ops: ArrayOps) -> tuple[float, int, int]:
    """Prune the ``k_prune`` lowest of ``scores`` over all groups together (`select_bottom_k`):
    a newly pruned weight goes to the shadow and is set to 0, a regrown one comes back from the
    shadow. In place: ``masks`` and ``shadow`` get new arrays, ``weights`` are written through.
    Returns (threshold, regrown count, newly pruned count)."""
    xp = ops.xp
    keys = list(masks)
    flat = xp.concatenate([scores[k].reshape(-1) for k in keys])
    was_pruned = xp.concatenate([~masks[k].reshape(-1) for k in keys])
    new_pruned, threshold = select_bottom_k(flat, was_pruned, k_prune, ops)
    regrown_counts, newly_counts = [], []
    offset = 0
    for k in keys:
        mask = masks[k]
        size = math.prod(mask.shape)
        pruned_k = new_pruned[offset:offset + size].reshape(mask.shape)
        offset += size
        newly = pruned_k & mask
        regrown = ~pruned_k & ~mask
        shadow[k] = xp.where(newly, weights[k], shadow[k])
        ops.assign(weights[k], xp.where(regrown, shadow[k], xp.where(newly, 0.0, weights[k])))
        masks[k] = ~pruned_k
        regrown_counts.append(regrown.sum())
        newly_counts.append(newly.sum())
    n_regrown, n_new = ops.to_ints([sum(regrown_counts), sum(newly_counts)])
    return threshold, n_regrown, n_new


def attract(weights: Sequence[Array], grads: Sequence[Array], loss: float, norm_sq: float,
            params: Mapping[str, object]) -> float:
    """The attractor step in place: ``w <- w - c g`` for each weight and its gradient (pruned
    entries already zeroed), ``c = eta_TA * attractor_coefficient``, ``norm_sq = |g|^2`` over
    all of ``grads``. Returns c."""
    coef = params["attractor_lr"] * attractor_coefficient(
        loss, norm_sq, gamma=params["gamma"], beta=params["beta"], eps=params["eps"],
        clip_norm=params["clip_norm"], fade_k=params["fade_k"])
    if coef:
        for w, g in zip(weights, grads, strict=True):
            w -= coef * g
    return coef


# --------------------------------------------------------------------------- schedule

class PruningSchedule:
    """R(t) with its running loss window (the part of the rule that sees only the loss).

    ``observe(E)`` appends a loss; ``alpha`` and ``rate(t)`` read the window as it is."""

    def __init__(self, r_target: float, warmup: float, tau: float, lambda_stability: float,
                 loss_window: int):
        self.r_target = r_target
        self.warmup = warmup
        self.tau = tau
        self.lambda_stability = lambda_stability
        self.window: deque[float] = deque(maxlen=loss_window)

    def observe(self, loss: float) -> None:
        self.window.append(float(loss))

    @property
    def loss_mean(self) -> float:
        return float(np.mean(self.window)) if self.window else math.nan

    @property
    def loss_std(self) -> float:
        return float(np.std(self.window)) if self.window else math.nan

    @property
    def alpha(self) -> float:
        return stability_factor(self.window, self.lambda_stability)

    def rate(self, t: float) -> float:
        return pruning_rate(t, self.r_target, self.warmup, self.tau, self.alpha)


@dataclass
class PruningRecord:
    """What one step did. ``rate`` is R(t); ``pruned_fraction`` the fraction of prunable
    connections pruned after the step; ``threshold`` the global threshold of the last mask
    update (NaN while nothing is pruned); ``n_regrown``/``n_newly_pruned`` count this step's
    mask changes; ``attractor_norm`` the norm of the attractor displacement applied."""

    step: int
    loss: float
    alpha: float
    rate: float
    pruned_fraction: float
    threshold: float
    n_pruned: int
    n_regrown: int
    n_newly_pruned: int
    attractor_norm: float


def _kept_count(rate: float, n: int) -> int:
    # floor, so the pruned fraction never exceeds R(t); the small tolerance absorbs rounding in
    # R * n that would otherwise turn an exact k into k - 1
    return int(math.floor(rate * n + 1e-9))


# --------------------------------------------------------------------------- the rule's state

class PrunerCore:
    """The state and step of the rule that the NumPy pruner and the torch optimizer wrapper
    share, over the arrays of ``ops``; each adds how it is handed weights and gradients.
    Subclasses set ``masks``, ``shadow`` (by group) and ``n_total`` after `_init_rule`."""

    KIND: str
    ops: ArrayOps
    masks: dict[str, Array]
    shadow: dict[str, Array]
    n_total: int
    history: list[PruningRecord]

    def _init_rule(self, name: object, params: Mapping[str, object]) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError(self.KIND, str(name), "name", "must be a non-empty string",
                                  name)
        self.name = name
        self.params = validate_parameters(self.KIND, name, **{**DEFAULTS, **params})
        self.scores: dict[str, Array] | None = None
        self.schedule = self._new_schedule()
        self.t = 0
        self.threshold = math.nan
        self.history = []
        self._n_pruned = 0

    def _new_schedule(self) -> PruningSchedule:
        p = self.params
        return PruningSchedule(p["r_target"], p["warmup_steps"], p["tau_steps"],
                               p["lambda_stability"], p["loss_window"])

    # -- read-outs ---------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """R(t) of the last step (0 before the first)."""
        return self.history[-1].rate if self.history else 0.0

    @property
    def n_pruned(self) -> int:
        return self._n_pruned

    @property
    def pruned_fraction(self) -> float:
        return self._n_pruned / self.n_total

    def history_array(self, field_name: str) -> np.ndarray:
        """One field of every `PruningRecord` so far, as an array."""
        if field_name not in PruningRecord.__dataclass_fields__:
            raise EvoSpikeError(f"PruningRecord has no field '{field_name}' (fields: "
                                f"{', '.join(PruningRecord.__dataclass_fields__)})")
        return np.array([getattr(r, field_name) for r in self.history])

    # -- the parts of a step -------------------------------------------------------------
    def _observe(self, loss: float, weights: Mapping[str, Array],
                 grads: Mapping[str, Array]) -> None:
        """Take the step's loss and score the connections at the weights and gradients of this
        step, before they move."""
        self.schedule.observe(loss)
        self.scores = smoothed_saliency(self.scores, weights, grads, self.masks, self.shadow,
                                        regrowth=self.params["regrowth"],
                                        momentum=self.params["saliency_momentum"], ops=self.ops)

    def _attract(self, loss: float, weights: Sequence[Array],
                 grads: Sequence[Array]) -> tuple[float, float]:
        """`attract` with ``|g|^2`` taken over ``grads``; returns (c, |g|^2)."""
        norm_sq = self.ops.squared_norm(grads)
        if not math.isfinite(norm_sq):
            raise EvoSpikeError(f"{self.KIND} '{self.name}': the gradient or its squared norm "
                                f"is not finite (|g|^2 = {norm_sq}) at step {self.t}")
        return attract(weights, grads, loss, norm_sq, self.params), norm_sq

    def _finish(self, loss: float, weights: Mapping[str, Array], coef: float,
                norm_sq: float) -> PruningRecord:
        """Move the masks (every ``update_interval`` steps) and record the step."""
        rate = self.schedule.rate(self.t)
        n_regrown = n_new = 0
        if self.t % self.params["update_interval"] == 0:
            n_regrown, n_new = self._update_masks(rate, weights)
        record = PruningRecord(self.t, loss, self.schedule.alpha, rate, self.pruned_fraction,
                               self.threshold, self._n_pruned, n_regrown, n_new,
                               coef * math.sqrt(norm_sq))
        self.history.append(record)
        self.t += 1
        return record

    def _update_masks(self, rate: float, weights: Mapping[str, Array]) -> tuple[int, int]:
        has_nan = self.ops.to_ints([self.ops.xp.isnan(s).any() for s in self.scores.values()])
        if any(has_nan):
            bad = list(self.scores)[has_nan.index(1)]
            raise EvoSpikeError(f"{self.KIND} '{self.name}': the saliency of '{bad}' is NaN "
                                f"at step {self.t} (a NaN weight or gradient)")
        k_prune = _kept_count(rate, self.n_total)
        if not self.params["regrowth"]:
            k_prune = max(k_prune, self._n_pruned)  # nothing comes back
        self.threshold, n_regrown, n_new = move_masks(self.scores, self.masks, weights,
                                                      self.shadow, k_prune, self.ops)
        self._n_pruned = k_prune
        return n_regrown, n_new


# --------------------------------------------------------------------------- NumPy core

class TerminalAttractorPruner(PrunerCore):
    """The whole rule on NumPy arrays: saliency, global threshold, schedule, regrowth and the
    attractor term. A simulation backend calls `step` once per update with the error E, the
    weights (modified in place) and the gradient (for a local rule: minus its proposed update).

    ``shapes`` maps each pruned group (layer, projection) to the shape of its weight array;
    the other arguments are the constants of the module docstring's table (steps are calls of
    `step`). Masks are True where a connection is kept.
    """

    KIND = "TerminalAttractorPruner"
    ops = NUMPY_OPS

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], *, name: str = "pruner",
                 **params: object):
        self._init_rule(name, params)
        if not isinstance(shapes, Mapping) or not shapes:
            raise ValidationError(self.KIND, name, "shapes",
                                  "must map at least one group name to a shape", shapes)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for key, shape in shapes.items():
            if not isinstance(key, str) or not key:
                raise ValidationError(self.KIND, name, "shapes", "keys must be non-empty "
                                      "strings", key)
            try:
                shp = tuple(int(s) for s in shape)
            except TypeError:
                raise ValidationError(self.KIND, name, f"shapes['{key}']",
                                      "must be a tuple of sizes", shape) from None
            if any(s < 0 for s in shp):
                raise ValidationError(self.KIND, name, f"shapes['{key}']",
                                      "must have sizes >= 0", shape)
            self.shapes[key] = shp
        self.n_total = int(sum(int(np.prod(s)) for s in self.shapes.values()))
        if self.n_total == 0:
            raise ValidationError(self.KIND, name, "shapes", "hold no connections", shapes)
        self.masks = {k: np.ones(s, dtype=bool) for k, s in self.shapes.items()}
        self.shadow = {k: np.zeros(s, dtype=np.float64) for k, s in self.shapes.items()}

    # -- the step ------------------------------------------------------------------------
    def _check_arrays(self, what: str, arrays: Mapping[str, np.ndarray]) -> None:
        if not isinstance(arrays, Mapping) or set(arrays) != set(self.shapes):
            got = sorted(arrays) if isinstance(arrays, Mapping) else arrays
            raise ValidationError(self.KIND, self.name, what,
                                  f"must have exactly the groups {sorted(self.shapes)}", got)
        for key, arr in arrays.items():
            if np.shape(arr) != self.shapes[key]:
                raise ValidationError(self.KIND, self.name, f"{what}['{key}']",
                                      f"must have shape {self.shapes[key]}", np.shape(arr))
            if not np.all(np.isfinite(arr)):
                from evospike.errors import first_bad

                raise ValidationError(self.KIND, self.name, f"{what}['{key}']",
                                      "must be finite", first_bad(arr, ~np.isfinite(arr)))

    def step(self, loss: float, weights: Mapping[str, np.ndarray],
             grads: Mapping[str, np.ndarray],
             base_update: Mapping[str, np.ndarray] | None = None) -> PruningRecord:
        """One step at the current loss E with gradient ``grads`` (dE/dw at the current, masked
        weights, pruned entries included). In place on ``weights`` (float arrays): adds
        ``base_update`` (if given) and the attractor displacement on kept entries, holds pruned
        entries at 0, and every ``update_interval`` steps moves the masks to the bottom R(t).
        """
        e = _check_loss(self.KIND, self.name, loss)
        self._check_arrays("weights", weights)
        self._check_arrays("grads", grads)
        if base_update is not None:
            self._check_arrays("base_update", base_update)
        grads = {k: np.asarray(g) for k, g in grads.items()}
        self._observe(e, weights, grads)

        # base update and attractor term, on kept connections only
        keys = list(self.shapes)
        if base_update is not None:
            for k in keys:
                weights[k] += np.where(self.masks[k], base_update[k], 0.0)
        coef, norm_sq = self._attract(e, [weights[k] for k in keys],
                                      [np.where(self.masks[k], grads[k], 0.0) for k in keys])
        for k in keys:
            weights[k][~self.masks[k]] = 0.0
        return self._finish(e, weights, coef, norm_sq)
