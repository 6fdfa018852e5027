"""STDP in the torch backend's fixed-point mode: Loihi 2's learning engine as Lava's
``PyLearningDenseModelBitApproximate`` computes it, integer for integer, on a batch of trials.

The rule's integers (trace impulses and time constants, the mantissa and exponent of each
product of ``dw``) come from `evospike.hardware.loihi.learning.plan_learning`, the same function
the Lava backend takes them from; what can and cannot map is documented there. Per step n
(after the populations stepped and every projection sent its spikes with the weights learned
up to step n - 1), with a one-step learning epoch:

1. traces decay: ``t' = floor(t e^(-1/tau)) + (r < frac(t e^(-1/tau)))`` in float64 as NumPy
   computes it, with one random number ``r`` per step for all pre traces and one for all post
   traces;
2. each neuron that spiked in step n adds its impulse: ``min(t' + I, 127)``;
3. the synaptic accumulator ``acc = w << 7`` gains, product by product in the order of ``dw``,
   ``clip((dep * trace * mant) << (exp + 7), -2^15 - 1, 2^15 - 1)`` (``dep``: the pre spike
   ``x0`` with the post trace after steps 1-2, or the post spike ``y0`` with the pre trace),
   clipped to the same range after each product;
4. ``acc = max(acc, 0)`` (excitatory sign mode), rounded stochastically to a multiple of 128
   (one random number per step for all synapses), shifted back by 7 and clipped to 0..255.

The random numbers are Lava's: NumPy ``default_rng`` generators seeded with ``rng_seed``,
``rng_seed + 2`` (pre and post trace decay, advanced twice per step before the learning phase)
and 2 (the synaptic variable, advanced once per step at the start of the learning phase). Every
trial draws the same numbers, as every Lava trial builds its processes afresh.

RewardModulatedSTDP (``evospike.hardware.loihi.three_factor`` has the mapping): the post
neuron keeps its own trace (12-bit decay, 6 fractional bits) and sends it as ``y1`` with the
step's reward as ``y2``/``y3``; the connection decays what it received with Loihi3F's
time constant 65535 (the same stochastic rounding, the post decay random number), then
updates the tag ``t`` and the weight from the values they had before the step, product by
product, each product shifted right by ``max(0, widths - 15)`` (widths: 1-bit dependency
aside, 7 per trace, 9 for the tag, 4 for the mantissa) before its exponent; the tag is
rounded stochastically with the weight's random number and clipped to -257..255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Loihi 2's learning engine, its numbers in one place (evospike.hardware.loihi.constants)
from evospike.hardware.loihi.constants import (
    ACC_MAX,
    ACC_MIN,
    ACC_SHIFT,
    ACC_WIDTH,
    CONN_VAR_SEED,
    FACTOR_WIDTH,
    MANT_WIDTH,
    ROUND_UNIT,
    TAG_MAX,
    TAG_MIN,
    THREE_FACTOR_Y_TAU,
    TRACE_FRAC_BITS,
    TRACE_MAX,
)
from evospike.hardware.loihi.constants import DECAY_BITS as DECAY_SHIFT
from evospike.hardware.loihi.constants import WEIGHT_MANT_MAX as WEIGHT_MAX


class _Stream:
    """One of Lava's random generators: value ``k`` is the ``k``-th draw (0: the draw made at
    construction), produced in blocks as the run advances."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)
        self._values = np.zeros(0)

    def at(self, k: int) -> float:
        while k >= self._values.size:
            self._values = np.concatenate([self._values, self._rng.random(4096)])
        return float(self._values[k])


@dataclass
class LearningProjection:
    """A plastic projection, delay 1, its weights per trial as a dense (trials, n_post, n_pre)
    int64 mantissa matrix (Lava's LearningDense layout; absent synapses hold 0 and, through
    ``mask``, never learn, as in Lava's LearningSparse)."""

    name: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    weights: torch.Tensor  # (trials, n_post, n_pre)
    weight_exp: int
    x_trace: torch.Tensor  # (trials, n_pre)
    y_trace: torch.Tensor  # (trials, n_post)
    x_decay: float
    y_decay: float
    x_impulse: int
    y_impulse: int
    products: tuple[tuple[str, str, int, int], ...]
    post_idx: np.ndarray  # IR synapse order -> dense entry
    pre_idx: np.ndarray
    quantum: float
    rng_x: _Stream
    rng_y: _Stream
    rng_w: _Stream
    #: RewardModulatedSTDP (hardware/loihi/three_factor.py): tag (trials, n_post, n_pre), tag
    #: products, decimation exponent, the neuron's trace (trials, n_post), reward per step
    tag: torch.Tensor | None = None
    tag_products: tuple = ()
    decimate: int = 0
    neuron_trace: torch.Tensor | None = None
    trace_keep: int = 0
    trace_impulse: int = 0
    reward: object = None
    y_decay_3f: float = 0.0
    _reward_table: np.ndarray | None = None
    dt_ms: float = 1.0
    #: (n_post, n_pre) bool, the synapses that exist (None: all-to-all, Lava's LearningDense);
    #: Lava's LearningSparse computes every pair and keeps only these
    mask: torch.Tensor | None = None

    @classmethod
    def build(cls, fproj, plan, trials: int, device: torch.device) -> LearningProjection:
        """From an `evospike.fixed_point.FixedProjection` and its ``LearningPlan``."""
        pre_idx = fproj.pre_indices()
        post_idx = fproj.indices.astype(np.int64)
        dense = np.zeros((fproj.n_post, fproj.n_pre), dtype=np.int64)
        dense[post_idx, pre_idx] = fproj.weights
        w = torch.as_tensor(dense, device=device).unsqueeze(0).repeat(trials, 1, 1)
        # the factor exactly as Lava computes it: np.exp(-t / taus) with t = 1
        x_decay = float(np.exp(-1 / np.array([plan.x1_tau]))[0])
        y_decay = float(np.exp(-1 / np.array([plan.y1_tau or THREE_FACTOR_Y_TAU]))[0])
        zeros = torch.zeros
        lp = cls(fproj.name, fproj.pre, fproj.post, fproj.n_pre, fproj.n_post, w,
                 int(fproj.weight_exp),
                 zeros((trials, fproj.n_pre), dtype=torch.int64, device=device),
                 zeros((trials, fproj.n_post), dtype=torch.int64, device=device),
                 x_decay, y_decay, int(plan.x1_impulse), int(plan.y1_impulse),
                 tuple(plan.products), post_idx, pre_idx, float(plan.quantum),
                 _Stream(plan.rng_seed), _Stream(plan.rng_seed + 2), _Stream(CONN_VAR_SEED))
        if post_idx.size != fproj.n_pre * fproj.n_post:
            mask = np.zeros((fproj.n_post, fproj.n_pre), dtype=bool)
            mask[post_idx, pre_idx] = True
            lp.mask = torch.as_tensor(mask, device=device)
        if plan.reward is not None:  # RewardModulatedSTDP (hardware/loihi/three_factor.py)
            lp.tag = torch.zeros_like(w)
            lp.tag_products = tuple(plan.tag_products)
            lp.decimate = int(plan.decimate)
            lp.neuron_trace = zeros((trials, fproj.n_post), dtype=torch.int64, device=device)
            lp.trace_keep = (1 << DECAY_SHIFT) - int(plan.reward.trace_decay)
            lp.trace_impulse = int(plan.reward.trace_impulse) << TRACE_FRAC_BITS
            lp.reward = plan.reward
        return lp

    def propagate(self, fired: torch.Tensor, post_buf: torch.Tensor, step: int) -> None:
        """Add this step's weight sums of the spikes ``fired`` (trials, n_pre) bool into the
        postsynaptic ring buffer one step ahead (Lava's Dense: sum, then shift)."""
        if not bool(fired.any()):
            return
        acc = (self.weights * fired.unsqueeze(1).to(torch.int64)).sum(-1)  # (trials, n_post)
        acc = acc << self.weight_exp if self.weight_exp >= 0 else acc >> -self.weight_exp
        post_buf[(step + 1) % post_buf.shape[0]] += acc

    @staticmethod
    def _decay(trace: torch.Tensor, factor: float, r: float) -> torch.Tensor:
        p = trace.to(torch.float64) * factor
        floor = torch.floor(p)
        return floor.to(torch.int64) + ((p - floor) > r).to(torch.int64)

    def learn(self, step: int, pre_spiked: torch.Tensor, post_spiked: torch.Tensor) -> None:
        """The learning phase of step ``step`` (0-based) given its spikes (trials, n) bool."""
        # Lava advances the trace generators twice in each step's spiking phase and the
        # synaptic one once at the start of each learning phase
        k = 2 * step + 2
        x = self._decay(self.x_trace, self.x_decay, self.rng_x.at(k))
        x = torch.where(pre_spiked, (x + self.x_impulse).clamp(0, TRACE_MAX), x)
        self.x_trace = x
        if self.reward is not None:
            self._learn_three_factor(step, k, pre_spiked, post_spiked)
            return
        y = self._decay(self.y_trace, self.y_decay, self.rng_y.at(k))
        y = torch.where(post_spiked, (y + self.y_impulse).clamp(0, TRACE_MAX), y)
        self.y_trace = y
        if bool(pre_spiked.any()) or bool(post_spiked.any()):
            values = {"x0": pre_spiked.unsqueeze(1), "y0": post_spiked.unsqueeze(2),
                      "x1": x.unsqueeze(1), "y1": y.unsqueeze(2)}
            acc = _apply(self.weights << ACC_SHIFT, self.products, values)
            self.weights = self._only_synapses(
                self._round(acc.clamp(min=0), step).clamp(0, WEIGHT_MAX), self.weights)

    def _only_synapses(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        return new if self.mask is None else torch.where(self.mask, new, old)

    def _round(self, acc: torch.Tensor, step: int) -> torch.Tensor:
        """Stochastic rounding of an accumulator to whole synaptic-variable units."""
        r = self.rng_w.at(step + 1)
        q = acc.to(torch.float64) / ROUND_UNIT
        floor = torch.floor(q)
        rounded = floor.to(torch.int64) + ((q - floor) > r).to(torch.int64)
        return (rounded * ROUND_UNIT) >> ACC_SHIFT

    def _reward_at(self, step: int) -> int:
        table = self._reward_table
        if table is None or step >= table.size:
            n = max(2 * (table.size if table is not None else 0), step + 1, 1024)
            table = self._reward_table = self.reward.table(self.dt_ms, n)
        return int(table[step])

    def _learn_three_factor(self, step: int, k: int, pre_spiked: torch.Tensor,
                            post_spiked: torch.Tensor) -> None:
        """RewardModulatedSTDP: the neuron's side, then the Loihi3F connection's."""
        s = (self.neuron_trace * self.trace_keep) >> DECAY_SHIFT
        s = torch.where(post_spiked, (s + self.trace_impulse).clamp(
            max=TRACE_MAX << TRACE_FRAC_BITS), s)
        self.neuron_trace = s
        y1 = ((s + (1 << (TRACE_FRAC_BITS - 1))) >> TRACE_FRAC_BITS).clamp(max=TRACE_MAX)
        r = self._reward_at(step)
        r_y = self.rng_y.at(k)
        y = {"y1": self._decay(y1, self.y_decay, r_y)}
        for name, level in (("y2", max(r, 0)), ("y3", max(-r, 0))):
            sent = torch.full_like(y1, level)
            y[name] = self._decay(sent, self.y_decay, r_y)
        u = (step + 1) % (1 << self.decimate) == 0
        if not (u or bool(pre_spiked.any()) or bool(post_spiked.any())):
            return
        gate = torch.ones((), dtype=torch.bool, device=self.weights.device) if u else \
            torch.zeros((), dtype=torch.bool, device=self.weights.device)
        values = {"x0": pre_spiked.unsqueeze(1), "y0": post_spiked.unsqueeze(2), "u": gate,
                  "x1": self.x_trace.unsqueeze(1), "t": self.tag,
                  **{name: v.unsqueeze(2) for name, v in y.items()}}
        if u and self.products:
            acc = _apply(self.weights << ACC_SHIFT, self.products, values)
            weights = self._round(acc.clamp(min=0), step).clamp(0, WEIGHT_MAX)
        else:
            weights = self.weights
        acc = _apply(self.tag << ACC_SHIFT, self.tag_products, values)
        self.tag = self._only_synapses(self._round(acc, step).clamp(TAG_MIN, TAG_MAX), self.tag)
        self.weights = self._only_synapses(weights, self.weights)

    def weights_ir(self) -> np.ndarray:
        """(trials, synapses) float64 weights in the IR's order and unit."""
        w = self.weights.cpu().numpy()[:, self.post_idx, self.pre_idx]
        return w.astype(np.float64) * self.quantum


def _apply(acc: torch.Tensor, products, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """Add ``products`` ((dependency, factors, signed mantissa, exponent)) to the 16-bit signed
    accumulator ``acc`` as Loihi 2's learning engine does (Lava's
    ``LearningRuleApplierBitApprox``): each factor saturated to its width, the product
    shifted right by what exceeds 15 bits, then left by ``exponent + 7``, saturated, added,
    saturated."""
    for dep, factors, mant, exp in products:
        term = values[dep].to(torch.int64)
        width = MANT_WIDTH
        for name in factors:
            bits = FACTOR_WIDTH[name]
            term = term * values[name].clamp(-(2 ** bits), 2 ** bits - 1)
            width += bits
        term = (term * mant) >> max(0, width - ACC_WIDTH)
        term = (term << (exp + ACC_SHIFT)).clamp(ACC_MIN, ACC_MAX)
        acc = (acc + term).clamp(ACC_MIN, ACC_MAX)
    return acc
