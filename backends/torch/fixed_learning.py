"""STDP in the torch backend's fixed-point mode: Loihi 2's learning engine as Lava's
``PyLearningDenseModelBitApproximate`` computes it, integer for integer, on a batch of trials.

The rule's integers (trace impulses and time constants, the mantissa and exponent of each
product of ``dw``) come from `evospike.backends.lava.learning.plan_learning`, the same function
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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TRACE_MAX = 127
ACC_MAX = 2 ** 15 - 1
ACC_MIN = -(2 ** 15) - 1
ACC_SHIFT = 7  # W_ACCUMULATOR_S - W_WEIGHTS_S
ROUND_UNIT = 2 ** 7  # 2 ** (W_ACCUMULATOR_U - W_WEIGHTS_U)
WEIGHT_MAX = 255
CONN_VAR_SEED = 2  # Lava's ConnVarRandom default


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
    """An all-to-all plastic projection, delay 1, its weights per trial as a dense
    (trials, n_post, n_pre) int64 mantissa matrix (Lava's LearningDense layout)."""

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
        y_decay = float(np.exp(-1 / np.array([plan.y1_tau]))[0])
        zeros = torch.zeros
        return cls(fproj.name, fproj.pre, fproj.post, fproj.n_pre, fproj.n_post, w,
                   int(fproj.weight_exp),
                   zeros((trials, fproj.n_pre), dtype=torch.int64, device=device),
                   zeros((trials, fproj.n_post), dtype=torch.int64, device=device),
                   x_decay, y_decay, int(plan.x1_impulse), int(plan.y1_impulse),
                   tuple(plan.products), post_idx, pre_idx, float(plan.quantum),
                   _Stream(plan.rng_seed), _Stream(plan.rng_seed + 2), _Stream(CONN_VAR_SEED))

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
        y = self._decay(self.y_trace, self.y_decay, self.rng_y.at(k))
        x = torch.where(pre_spiked, (x + self.x_impulse).clamp(0, TRACE_MAX), x)
        y = torch.where(post_spiked, (y + self.y_impulse).clamp(0, TRACE_MAX), y)
        self.x_trace, self.y_trace = x, y
        if bool(pre_spiked.any()) or bool(post_spiked.any()):
            acc = self.weights << ACC_SHIFT
            factors = {"x0": pre_spiked.unsqueeze(1), "y0": post_spiked.unsqueeze(2),
                       "x1": x.clamp(-128, 127).unsqueeze(1),
                       "y1": y.clamp(-128, 127).unsqueeze(2)}
            for dep, trace, mant, exp in self.products:
                term = factors[dep].to(torch.int64) * factors[trace] * mant
                term = (term << (exp + ACC_SHIFT)).clamp(ACC_MIN, ACC_MAX)
                acc = (acc + term).clamp(ACC_MIN, ACC_MAX)
            acc = acc.clamp(min=0)
            r = self.rng_w.at(step + 1)
            q = acc.to(torch.float64) / ROUND_UNIT
            floor = torch.floor(q)
            rounded = floor.to(torch.int64) + ((q - floor) > r).to(torch.int64)
            self.weights = ((rounded * ROUND_UNIT) >> ACC_SHIFT).clamp(0, WEIGHT_MAX)

    def weights_ir(self) -> np.ndarray:
        """(trials, synapses) float64 weights in the IR's order and unit."""
        w = self.weights.cpu().numpy()[:, self.post_idx, self.pre_idx]
        return w.astype(np.float64) * self.quantum
