"""Reward-modulated STDP on Loihi 2's learning engine: an IR `RewardModulatedSTDP` rule -> a
``Loihi3FLearningRule`` (Lava ``LearningDense`` / ``LearningSparse``) whose third factor, the
reward, comes from the post-synaptic neuron; fixed point (``fixed_pt``) only.

Lava 0.10's fixed-point ``LearningLIF`` never reads its third-factor port nor sends its
``y`` traces, and a Loihi3F connection overwrites its post traces every step with what the
neuron sends. The post-synaptic population therefore runs as a neuron process of our own
(``three_factor_neuron`` in ``backends/lava/worker.py``): Lava's bit-accurate LIF arithmetic,
unchanged (with the refractory rule of the worker's fixed-point ``LIFRefractory`` where the
population has one), plus

- a post trace ``s`` in 1/64 trace units, decaying as Loihi's neuron state does
  (``s = (s * (4096 - d)) >> 12`` with ``d = round(4096 (1 - exp(-dt / tau_minus)))``) and
  raised by ``TRACE_IMPULSE << 6`` (saturating at ``127 << 6``) when the neuron fires; it is
  sent each step as ``y1 = min((s + 32) >> 6, 127)``;
- the reward: the modulator's level at the start of step n, ``m[n-1]``, as an integer
  ``r = round(m / reward_scale)`` in -127..127, sent as ``y2 = max(r, 0)`` and
  ``y3 = max(-r, 0)`` (Loihi's traces are unsigned 7-bit numbers). The level is computed on
  the host (``modulator_levels``), so only modulators whose drives do not depend on the
  network's spikes (`RewardEvents`, `RewardSeries`) are carried. ``reward_scale`` is the
  peak of ``|m|`` over the whole drive divided by 127: the integers never saturate.

The connection's rule, with ``t`` the synaptic tag (Lava's ``tag_1``, the eligibility, in
units of ``tag_quantum`` weight units; -257..255)::

    dt = -cm * x0 * y1 + cp * y0 * x1 - cd * u_k * t
    dw = cw * u_k * t * y2 - cw * u_k * t * y3

- ``cp = a_plus / (tag_quantum * TRACE_IMPULSE)``, ``cm`` likewise with ``a_minus``;
  ``tag_quantum = max(a_plus, a_minus) / TAG_UNITS_PER_PAIR``, so a coincident pair of the
  larger term moves the tag by 8 units and the tag holds about 32 such pairs;
- ``u_k`` is 1 every ``2^k`` steps: the tag decays by ``cd ~ 1 - exp(-2^k dt / tau_eligibility)``
  every ``2^k`` steps (the smallest ``k`` whose representable ``cd`` is within 10 %;
  Loihi's scaling factors stop at 2^-7 per application);
- ``cw = 32 * 2^k * learning_rate_per_ms * dt * reward_scale * tag_quantum / quantum``
  (``quantum``: weight units per mantissa step; the 32 undoes the right shift by 5 bits the
  learning engine applies to a product of a 9-bit tag, a 7-bit trace and a 4-bit mantissa),
  so every ``2^k`` steps ``w += 2^k lr dt m e`` as the IR's rule does each step.

What differs from the IR's float rule, besides the STDP differences listed in `learning`:
the weight follows the tag of the previous step (Lava's learning engine reads every synaptic
variable before it writes any); the tag decays and the weight moves every ``2^k`` steps;
the tag saturates at 32 coincident pairs' worth; products are truncated to the learning
engine's 15-bit accumulator and stochastically rounded; the reward has 127 levels per sign.

The Lava backend writes this plan into the worker's job; the torch backend's
``precision="fixed"`` runs the same plan (``backends/torch/fixed_learning.py``) and the same
neuron, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.modulators import Modulator, RewardEvents, RewardSeries
from evospike.ir.network import Network
from evospike.ir.plasticity import RewardModulatedSTDP

from .constants import (
    DECAY_UNITY,
    MAX_DECIMATION,
    PRODUCT_SHIFT,
    REWARD_MAX,
    TAG_MAX,
    TRACE_IMPULSE,
)

#: tag units a coincident pair of the larger pair term adds: the tag (-257..255) then holds
#: about 32 such pairs; stochastic rounding keeps the finer part unbiased
TAG_UNITS_PER_PAIR = 8
#: largest relative error accepted for the tag decay before a longer decimation is tried
DECAY_TOLERANCE = 0.10
#: likewise for the weight factor (at most two more doublings are tried)
COEFFICIENT_TOLERANCE = 0.06
#: the longest decimation keeps the tag's decay per update at most this (2^k dt <= 0.69 tau)
MAX_DECAY_PER_UPDATE = 0.5


@dataclass
class RewardPlan:
    """The post-synaptic neuron's side of a three-factor connection."""

    post: str
    modulator: Modulator
    trace_decay: int  # 12-bit decay of the post trace per step
    trace_impulse: int  # trace units per post spike
    scale: float  # modulator level per reward unit

    def table(self, dt_ms: float, n_steps: int) -> np.ndarray:
        """(n_steps,) int64: the reward ``r`` the neuron sends in steps 0..n_steps - 1."""
        levels = modulator_levels(self.modulator, dt_ms, n_steps)
        out = np.rint(levels / self.scale).astype(np.int64)
        # the scale comes from the peak over the whole drive: nothing can exceed 127
        assert np.all(np.abs(out) <= REWARD_MAX), "reward scale below the modulator's peak"
        return out


def drive_end_step(mod: Modulator, dt_ms: float) -> int:
    """The first step after which no drive adds anything (the level only decays)."""
    end = 0
    for drive in mod.drives:
        if isinstance(drive, RewardEvents) and drive.times_ms.size:
            end = max(end, int(np.floor(drive.times_ms.max() / dt_ms + 1e-9)) + 1)
        elif isinstance(drive, RewardSeries):
            end = max(end, drive.start_step + drive.values.size)
    return end


def modulator_levels(mod: Modulator, dt_ms: float, n_steps: int) -> np.ndarray:
    """(n_steps,) float64: the level ``m[n-1]`` a rule reads in step n (``m[-1]`` is the
    initial level), for a modulator driven only by `RewardEvents` and `RewardSeries`."""
    drive = np.zeros(n_steps)
    for d in mod.drives:
        drive += d.per_step(dt_ms, 0, n_steps)
    decay = float(np.exp(-dt_ms / mod.tau_ms))
    out = np.empty(n_steps)
    level = float(mod.initial)
    for n in range(n_steps):
        out[n] = level
        level = level * decay + float(drive[n])
    return out


def reward_scale(mod: Modulator, dt_ms: float) -> float:
    """Modulator level per reward unit: the peak of ``|m|`` over all time / 127 (1 if the
    level stays 0)."""
    peak = float(np.abs(modulator_levels(mod, dt_ms, drive_end_step(mod, dt_ms) + 1)).max())
    return peak / REWARD_MAX if peak > 0 else 1.0


def spike_dependent_drives(mod: Modulator) -> list[str]:
    return [d.kind for d in mod.drives if not isinstance(d, (RewardEvents, RewardSeries))]


def decay_plan(tau_eligibility_ms: float, dt_ms: float, mant_exp) -> tuple[int, int, int,
                                                                           float] | None:
    """(k, mantissa, exponent, relative error) of the tag decay applied every 2^k steps, or
    None if even 2^9 steps decay less than 2^-7 of the tag."""
    best = None
    for k in range(MAX_DECIMATION + 1):
        target = 1.0 - np.exp(-(2 ** k) * dt_ms / tau_eligibility_ms)
        if target < 2.0 ** -8:  # below half the smallest factor: rounds to nothing
            continue
        m, e = mant_exp(target)
        err = abs(m * 2.0 ** e - target) / target
        if best is None or err < best[3]:
            best = (k, m, e, err)
        if err <= DECAY_TOLERANCE:
            return k, m, e, err
    return best


def trace_decay(tau_ms: float, dt_ms: float) -> int:
    return int(round(DECAY_UNITY * (1.0 - np.exp(-dt_ms / tau_ms))))


def rstdp_refusals(rule: RewardModulatedSTDP, net: Network, tag: str, mant_exp) -> list[str]:
    """Why the three-factor parts of ``rule`` cannot run on Lava (the STDP parts are checked
    by `learning.stdp_refusals`)."""
    label = f"RewardModulatedSTDP '{rule.name}'"
    out = []
    if rule.learning_rate_per_ms == 0:
        out.append(f"{label}: learning_rate_per_ms is 0 (nothing to learn)")
    if decay_plan(rule.tau_eligibility_ms, net.dt_ms, mant_exp) is None:
        out.append(f"{label}: tau_eligibility_ms={rule.tau_eligibility_ms} is too long for "
                   f"Loihi 2's learning engine (the tag decays at least 2^-7 every "
                   f"2^{MAX_DECIMATION} steps)")
    mod = net.processes.get(rule.modulator)
    if not isinstance(mod, Modulator):
        return out + [f"{label}: modulator '{rule.modulator}' is not a Modulator"]
    proj = net.projections.get(rule.projection)
    if proj is None:
        return out
    for other in net.plasticity.values():
        if other is rule or not isinstance(other, RewardModulatedSTDP) or \
                other.name > rule.name:
            continue
        oproj = net.projections.get(other.projection)
        if oproj is None or oproj.post != proj.post:
            continue
        if other.modulator != rule.modulator or other.tau_minus_ms != rule.tau_minus_ms:
            out.append(f"{label}: population '{proj.post}' also learns through "
                       f"RewardModulatedSTDP '{other.name}' with another modulator or "
                       "tau_minus_ms (one post trace and one reward per neuron)")
    return out


def modulator_refusals(mod: Modulator, net: Network, tag: str) -> list[str]:
    label = f"Modulator '{mod.name}'"
    readers = [r for r in net.plasticity.values() if getattr(r, "modulator", None) == mod.name]
    out = []
    if not any(isinstance(r, RewardModulatedSTDP) for r in readers):
        out.append(f"{label}: read by no RewardModulatedSTDP rule (on Lava a modulator runs "
                   "only as the reward of reward-modulated STDP)")
    dependent = spike_dependent_drives(mod)
    if dependent:
        out.append(f"{label}: drives {dependent} depend on the network's spikes (the reward "
                   "is computed before the run; RewardEvents and RewardSeries map)")
    if tag != "fixed_pt":
        out.append(f"{label}: carried in fixed_pt only (the reward of Loihi 2's learning "
                   "engine)")
    return out


@dataclass
class ThreeFactorMapping:
    """The integers of one rule's tag and weight products."""

    tag_quantum: float
    decimate: int
    tag_products: tuple[tuple[str, tuple[str, ...], int, int], ...]
    weight_products: tuple[tuple[str, tuple[str, ...], int, int], ...]
    reward: RewardPlan


def plan_three_factor(rule: RewardModulatedSTDP, net: Network, quantum: float, mant_exp,
                      notes: list[str]) -> ThreeFactorMapping:
    """The tag and weight products of ``rule`` (see the module docstring); appends what the
    mapping approximates to ``notes``."""
    label = f"RewardModulatedSTDP '{rule.name}'"
    dt = net.dt_ms
    largest = max(rule.a_plus, rule.a_minus)
    tag_quantum = largest / TAG_UNITS_PER_PAIR
    tag_products: list[tuple[str, tuple[str, ...], int, int]] = []
    for sign, dep, trace, a, field in ((-1, "x0", "y1", rule.a_minus, "a_minus"),
                                       (1, "y0", "x1", rule.a_plus, "a_plus")):
        if a == 0:
            continue
        target = a / (tag_quantum * TRACE_IMPULSE)
        m, e = mant_exp(target)
        got = m * 2.0 ** e
        if abs(got - target) > 0.5 * target:
            raise EvoSpikeError(f"{label}: {field}={a} is {target:.3g} of the larger pair term, "
                                "below what Loihi 2's learning engine represents (2^-7)")
        notes.append(f"{label}: {field} {a:.6g} -> {got * tag_quantum * TRACE_IMPULSE:.6g} "
                     f"(rel. error {abs(got - target) / target:.2%})")
        tag_products.append((dep, (trace,), sign * m, e))
    planned = decay_plan(rule.tau_eligibility_ms, dt, mant_exp)
    assert planned is not None  # refused before
    mod = net.processes[rule.modulator]
    scale = reward_scale(mod, dt)
    # a learning rate below the engine's smallest weight factor is reached by applying the
    # weight (and tag decay) products less often, 2^k steps at a time; up to two more
    # doublings are taken when they represent the rate more closely (mantissas are 3 bits)
    candidates = []
    for k in range(planned[0], MAX_DECIMATION + 1):
        if 1.0 - np.exp(-(2 ** k) * dt / rule.tau_eligibility_ms) > MAX_DECAY_PER_UPDATE:
            break  # updates this sparse would no longer follow the eligibility's decay
        coefficient = (2 ** PRODUCT_SHIFT) * (2 ** k) * rule.learning_rate_per_ms * dt * \
            scale * tag_quantum / quantum
        m, e = mant_exp(abs(coefficient))
        got = m * 2.0 ** e
        err = abs(got - abs(coefficient)) / abs(coefficient)
        if err <= 0.5:
            candidates.append((err, k, coefficient, m, e, got))
        if candidates and (err <= COEFFICIENT_TOLERANCE or k >= candidates[0][1] + 2):
            break
        if not candidates and abs(coefficient) > 1:
            break
    if not candidates:
        raise EvoSpikeError(
            f"{label}: learning_rate_per_ms={rule.learning_rate_per_ms} moves the weight by "
            f"too little or too much per update for Loihi 2's learning engine (weight quantum "
            f"{quantum:.4g}, tau_eligibility_ms={rule.tau_eligibility_ms}: its factors span "
            "2^-7 .. 7 * 2^8 per tag and reward unit); a lower w_max (a finer quantum) or "
            "plastic_weight_range='initial' may bring it into range")
    _, k, coefficient, m, e, got = min(candidates, key=lambda c: (c[0], c[1]))
    target = 1.0 - np.exp(-(2 ** k) * dt / rule.tau_eligibility_ms)
    md, ed = mant_exp(target)
    effective = -(2 ** k) * dt / np.log(1.0 - md * 2.0 ** ed)
    notes.append(f"{label}: eligibility decays every {2 ** k} step(s) by {md} * 2^{ed} "
                 f"(tau_eligibility {rule.tau_eligibility_ms:.6g} -> {effective:.6g} ms); "
                 f"1 tag unit = {tag_quantum:.6g} weight units, saturating at {TAG_MAX}")
    tag_products.append(("u", ("t",), -md, ed))
    sign = 1 if coefficient > 0 else -1
    notes.append(f"{label}: learning_rate_per_ms {rule.learning_rate_per_ms:.6g} -> "
                 f"{rule.learning_rate_per_ms * got / abs(coefficient):.6g} (rel. error "
                 f"{abs(got - abs(coefficient)) / abs(coefficient):.2%}), the weight moving "
                 f"every {2 ** k} step(s); reward unit {scale:.6g} of modulator '{mod.name}'")
    weight_products = (("u", ("t", "y2"), sign * m, e), ("u", ("t", "y3"), -sign * m, e))
    proj = net.projections[rule.projection]
    reward = RewardPlan(proj.post, mod, trace_decay(rule.tau_minus_ms, dt), TRACE_IMPULSE, scale)
    return ThreeFactorMapping(tag_quantum, k, tuple(tag_products), weight_products, reward)


def rule_string(products, decimate: int | None) -> str:
    """Lava's string of ``products`` ((dependency, factors, signed mantissa, exponent))."""
    terms = []
    for dep, factors, mant, exp in products:
        dep_name = f"u{decimate}" if dep == "u" else dep
        body = " * ".join([f"{abs(mant)} * 2^{exp}", dep_name, *factors])
        terms.append(("- " if mant < 0 else "+ ") + body)
    text = " ".join(terms)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def level_monitors(net: Network, carried: dict[str, Modulator]) -> dict:
    """The StateMonitors of ``level`` of the ``carried`` modulators: name -> monitor. Their
    values come from the host (`level_trace`), the level the reward table is made from."""
    return {k: m for k, m in net.state_monitors.items()
            if m.target in carried and m.variable == "level"}


def level_trace(mod: Modulator, dt_ms: float, n_steps: int, every_steps: int,
                trials: int) -> tuple[np.ndarray, np.ndarray]:
    """(sample steps, values (trials, samples, 1)): the level ``m[n]`` after each sampled
    step n, as the float engines record it."""
    steps = np.arange(0, n_steps, every_steps, dtype=np.int64)
    levels = modulator_levels(mod, dt_ms, n_steps + 1)[1:]
    values = np.broadcast_to(levels[steps][None, :, None], (trials, steps.size, 1)).copy()
    return steps, values
