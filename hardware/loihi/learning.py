"""STDP on Loihi 2's learning engine: an IR `STDP` rule -> the integers of a
``Loihi2FLearningRule`` (Lava ``LearningDense`` for all-to-all projections, ``LearningSparse``
for any other: only the synapses that exist learn), in fixed point (``fixed_pt``) only.

The plan made here (`plan_learning`) is what both engines of the chip's arithmetic execute:
the Lava backend writes it into the worker's job (``backends/lava``), the torch backend's
``precision="fixed"`` runs it itself (``backends/torch/fixed_learning.py``), bit for bit.

The mapping (``plan_stdp``), with ``I`` = ``TRACE_IMPULSE`` (16) trace units per spike and ``q``
the weight quantum (one weight mantissa step in the projection's weight unit, from
`evospike.fixed_point`):

- pre trace ``x1``: impulse ``I``, ``x1_tau = tau_plus_ms / dt``; post trace ``y1``: impulse
  ``I``, ``y1_tau = tau_minus_ms / dt`` (Lava's trace taus are whole steps, 1..255);
- ``dw = -mm * 2^em * x0 * y1 + mp * 2^ep * y0 * x1`` with ``mp * 2^ep`` the representable
  value (mantissa 1..7, exponent -7..8) nearest ``a_plus / (q I)`` and likewise for
  ``a_minus``: a post spike potentiates by the pre trace, a pre spike depresses by the post
  trace, as the IR's all-to-all additive rule does;
- the learning epoch is one step (``t_epoch = 1``); the random generators of Lava's stochastic
  rounding are seeded (``rng_seed`` = ``RNG_SEED``), so a run is reproducible.

What differs from the IR's float rule, by construction of Loihi 2's learning engine: traces are
7-bit integers (0..127, stochastically rounded after each decay); weight changes are rounded
stochastically to whole mantissas; the pre spike is paired at its emission step (the IR pairs
at its arrival, one step later for delay 1); a pre and a post spike in the same step both
count (the IR counts such a pair as pre-before-post only); the weight saturates at the 8-bit
mantissa ceiling ``255 q`` (the IR clips at ``w_max``, which must be at least that ceiling).

Refused by name (``stdp_refusals``): ``floating_pt``; nearest-spike pairing (Lava's impulse
adds, it never resets a trace); multiplicative weight dependence; STDP gated or scaled by a
modulator; ``w_min`` other than 0 or negative initial weights (the excitatory sign mode clips
at 0); projections that repeat a (pre, post) pair (a Lava learning connection holds one
synapse per pair), have delays other than one step, a target channel other than ``exc``, or
end on a population that is not CubaLIF; time constants that are not whole steps in 1..255;
``a_plus`` and ``a_minus`` both 0.

`RewardModulatedSTDP` maps onto a ``Loihi3FLearningRule`` with a post-synaptic neuron of our
own that sends the reward; `three_factor` has that mapping.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.fixed_point import FixedPointNetwork, get_profile, quantize
from evospike.ir.modulators import Modulator
from evospike.ir.network import Network
from evospike.ir.neurons import CubaLIF
from evospike.ir.nodes import WeightMonitor
from evospike.ir.plasticity import STDP, RewardModulatedSTDP

from . import three_factor
from .constants import (
    LEARNING_EXP_MAX,
    LEARNING_EXP_MIN,
    LEARNING_MANT_MAX,
    MAX_TRACE_TAU,
    TRACE_IMPULSE,
    WEIGHT_MANT_MAX,
)

#: seed of Lava's trace random generators (Lava draws one from the clock when none is given)
RNG_SEED = 1


@dataclass
class LearningPlan:
    """What the worker needs to build one learning connection."""

    rule: str
    dw: str
    x1_tau: int
    y1_tau: int
    x1_impulse: int
    y1_impulse: int
    rng_seed: int
    quantum: float  # weight units per mantissa step
    #: (dependency, factors, signed mantissa, exponent) of each product of ``dw``, in its order
    products: tuple[tuple[str, tuple[str, ...], int, int], ...] = ()
    #: RewardModulatedSTDP (three_factor.py): Lava's ``dt`` and its products, the decimation
    #: exponent k of ``u_k``, and what the post-synaptic neuron sends
    dt: str = ""
    tag_products: tuple[tuple[str, tuple[str, ...], int, int], ...] = ()
    decimate: int = 0
    reward: three_factor.RewardPlan | None = None
    tag_quantum: float = 0.0
    #: all-to-all: ``LearningDense``; otherwise ``LearningSparse`` (only existing synapses
    #: learn)
    dense: bool = True


def _tau_steps(tau_ms: float, dt_ms: float) -> int | None:
    steps = tau_ms / dt_ms
    k = int(round(steps))
    if abs(steps - k) > 1e-9 * max(1.0, steps) or not 1 <= k <= MAX_TRACE_TAU:
        return None
    return k


CARRIED_RULES = (STDP, RewardModulatedSTDP)


def rules_by_projection(network: Network) -> dict[str, STDP]:
    """Projection -> its STDP or RewardModulatedSTDP rule (the rules Lava may carry)."""
    return {r.projection: r for r in network.plasticity.values() if type(r) in CARRIED_RULES}


def stdp_refusals(rule: STDP, net: Network, tag: str) -> list[str]:
    """Why ``rule`` (STDP or RewardModulatedSTDP) cannot run on the lava backend (empty: it
    can)."""
    label = f"{type(rule).__name__} '{rule.name}'"
    out = []
    if tag != "fixed_pt":
        out.append(f"{label}: carried in fixed_pt only (Loihi 2's learning engine)")
    if isinstance(rule, RewardModulatedSTDP):
        out += three_factor.rstdp_refusals(rule, net, tag, _mant_exp)
    elif rule.modulator is not None:
        out.append(f"{label}: a modulator ('{rule.modulator}') is not carried by the lava "
                   f"backend (modulation '{rule.modulation}'; RewardModulatedSTDP is)")
    if rule.pairing != "all":
        out.append(f"{label}: pairing='{rule.pairing}' (Lava's trace impulses add; only "
                   "all-to-all pairing maps)")
    if rule.weight_dependence != "additive":
        out.append(f"{label}: weight_dependence='{rule.weight_dependence}' (only the additive "
                   "rule maps)")
    if rule.a_plus == 0 and rule.a_minus == 0:
        out.append(f"{label}: a_plus and a_minus are both 0 (nothing to learn)")
    if rule.w_min != 0:
        out.append(f"{label}: w_min={rule.w_min} (Lava's excitatory weights saturate at 0)")
    for field in ("tau_plus_ms", "tau_minus_ms"):
        if _tau_steps(getattr(rule, field), net.dt_ms) is None:
            out.append(f"{label}: {field}={getattr(rule, field)} is not a whole number of "
                       f"steps in 1..{MAX_TRACE_TAU} (dt {net.dt_ms} ms)")
    proj = net.projections.get(rule.projection)
    if proj is None:
        return out + [f"{label}: projection '{rule.projection}' does not exist"]
    if sum(1 for r in net.plasticity.values() if r.projection == proj.name) > 1:
        out.append(f"{label}: projection '{proj.name}' carries more than one rule")
    pre, post = proj.pre_indices(), proj.indices.astype(np.int64)
    pairs = np.unique(pre * proj.n_post + post)
    if pairs.size != proj.n_synapses:
        out.append(f"{label}: projection '{proj.name}' repeats a (pre, post) pair (a Lava "
                   "learning connection holds one synapse per pair)")
    if proj.n_synapses and (np.any(proj.delays != 1)):
        out.append(f"{label}: projection '{proj.name}' has delays other than one step")
    if proj.target != "exc":
        out.append(f"{label}: projection '{proj.name}' targets channel '{proj.target}' (only "
                   "'exc' maps)")
    if proj.n_synapses and np.any(proj.weights < 0):
        out.append(f"{label}: projection '{proj.name}' has negative weights (excitatory "
                   "sign mode only)")
    post_pop = net.populations.get(proj.post)
    if post_pop is None or not isinstance(post_pop.model, CubaLIF):
        out.append(f"{label}: projection '{proj.name}' must end on a CubaLIF population")
    return out


def weight_monitor_refusals(mon: WeightMonitor, net: Network, tag: str) -> list[str]:
    if mon.projection not in rules_by_projection(net):
        return [f"WeightMonitor '{mon.name}': projection '{mon.projection}' has no STDP rule the "
                "lava backend carries (its weights are fixed)"]
    return []


def learning_refusals(net: Network, tag: str) -> list[str]:
    """Every reason the learning parts of ``net`` (rules, their modulators, weight monitors)
    cannot run on Lava's learning engine."""
    out = [r for rule in rules_by_projection(net).values()
           for r in stdp_refusals(rule, net, tag)]
    out += [r for mod in _carried_modulators(net).values()
            for r in three_factor.modulator_refusals(mod, net, tag)]
    out += [r for mon in net.weight_monitors.values()
            for r in weight_monitor_refusals(mon, net, tag)]
    return out


def _carried_modulators(net: Network) -> dict[str, Modulator]:
    """The modulators read by the RewardModulatedSTDP rules Lava may carry."""
    names = {r.modulator for r in rules_by_projection(net).values()
             if isinstance(r, RewardModulatedSTDP)}
    return {n: net.processes[n] for n in names if isinstance(net.processes.get(n), Modulator)}


def _mant_exp(value: float) -> tuple[int, int] | None:
    """(m, e) with m in 1..7, e in -7..8 and m * 2**e nearest ``value`` (> 0): the scaling
    factors of the learning engine's products."""
    best = None
    for e in range(LEARNING_EXP_MIN, LEARNING_EXP_MAX + 1):
        for m in range(1, LEARNING_MANT_MAX + 1):
            err = abs(m * 2.0 ** e - value)
            if best is None or err < best[0]:
                best = (err, m, e)
    assert best is not None
    return best[1], best[2]


def plan_stdp(rule: STDP, net: Network, quantum: float, notes: list[str]) -> LearningPlan:
    """The Lava rule for ``rule``; ``quantum``: weight units per mantissa step. Appends the
    quantization of the learning rates to ``notes``."""
    terms: list[str] = []
    products: list[tuple[str, str, int, int]] = []
    for sign, dep, trace, a, field in (("-", "x0", "y1", rule.a_minus, "a_minus"),
                                       ("", "y0", "x1", rule.a_plus, "a_plus")):
        if a == 0:
            continue
        target = a / (quantum * TRACE_IMPULSE)
        m, e = _mant_exp(target)
        got = m * 2.0 ** e
        if abs(got - target) > 0.5 * target:
            raise EvoSpikeError(
                f"STDP '{rule.name}': {field}={a} is {target:.3g} weight mantissas per trace "
                f"unit, outside what Loihi 2's learning engine represents (2^-7 .. 7 * 2^8)")
        notes.append(f"STDP '{rule.name}': {field} {a:.6g} -> {got * quantum * TRACE_IMPULSE:.6g}"
                     f" (rel. error {abs(got - target) / target:.2%})")
        terms.append(f"{sign}{m} * 2^{e} * {dep} * {trace}")
        products.append((dep, (trace,), -m if sign else m, e))
    dw = " + ".join(terms).replace("+ -", "- ")
    _check_ceiling(rule, quantum, notes)
    return LearningPlan("STDP", dw, _tau_steps(rule.tau_plus_ms, net.dt_ms) or 0,
                        _tau_steps(rule.tau_minus_ms, net.dt_ms) or 0, TRACE_IMPULSE,
                        TRACE_IMPULSE, RNG_SEED, quantum, tuple(products))


def _check_ceiling(rule: STDP, quantum: float, notes: list[str]) -> None:
    label = f"{type(rule).__name__} '{rule.name}'"
    ceiling = WEIGHT_MANT_MAX * quantum
    if rule.w_max < ceiling * (1 - 1e-9):
        raise EvoSpikeError(
            f"{label}: w_max={rule.w_max} is below the weight ceiling Lava saturates "
            f"at ({ceiling:.6g} = 255 mantissas of {quantum:.6g}); raise w_max to it")
    if rule.w_max > ceiling * (1 + 1e-9):
        notes.append(f"{label}: weights saturate at {ceiling:.6g} (255 mantissas), "
                     f"below w_max={rule.w_max}")


def plan_rstdp(rule: RewardModulatedSTDP, net: Network, quantum: float,
               notes: list[str]) -> LearningPlan:
    """The Loihi3F rule for ``rule`` (see `three_factor`)."""
    mapping = three_factor.plan_three_factor(rule, net, quantum, _mant_exp, notes)
    _check_ceiling(rule, quantum, notes)
    return LearningPlan(
        "RewardModulatedSTDP", three_factor.rule_string(mapping.weight_products,
                                                        mapping.decimate),
        _tau_steps(rule.tau_plus_ms, net.dt_ms) or 0, 0, TRACE_IMPULSE, 0, RNG_SEED, quantum,
        mapping.weight_products, three_factor.rule_string(mapping.tag_products,
                                                          mapping.decimate),
        mapping.tag_products, mapping.decimate, mapping.reward, mapping.tag_quantum)


def plan_learning(network: Network, fp: FixedPointNetwork,
                  notes: list[str]) -> dict[str, LearningPlan]:
    """Projection name -> its Lava learning plan, for the carried STDP rules of ``network``
    quantized as ``fp`` (an `evospike.fixed_point.FixedPointNetwork`). The Lava backend and
    the torch backend's fixed-point mode both take their learning integers from here."""
    out = {}
    for name, rule in rules_by_projection(network).items():
        proj = fp.projections[name]
        quantum = 2.0 ** (proj.weight_exp + fp.profile.act_shift) / fp.populations[
            proj.post].scale
        plan = plan_rstdp if isinstance(rule, RewardModulatedSTDP) else plan_stdp
        out[name] = plan(rule, network, quantum, notes)
        out[name].dense = network.projections[name].n_synapses == proj.n_pre * proj.n_post
    return out


#: how the 8-bit weights of a plastic projection are sized (``plastic_weight_range``)
WEIGHT_RANGES = ("w_max", "initial")


def quantize_for_learning(network: Network, profile, weight_range: str = "w_max"
                          ) -> FixedPointNetwork:
    """`evospike.fixed_point.quantize` of ``network`` without its carried learning rules,
    with each plastic projection's weight range set by ``weight_range``:

    - ``"w_max"`` (default): the 255 weight mantissas span exactly [0, w_max], so Loihi's
      learning engine saturates where the IR clips. The post-synaptic population's scale is
      lowered from the quantizer's power of two (by less than 2x) to the value that makes
      ``255 q == w_max``. Where that cannot hold (two plastic projections onto one population
      with different bounds, an exponent out of range, initial weights above w_max) the
      projection falls back to ``"initial"`` and a note says why.
    - ``"initial"``: the weights are sized from their initial values (the finest quantum
      that holds them), saturating at 255 mantissas, which may lie below w_max (noted) or,
      if above it, is refused (`plan_learning`)."""
    if weight_range not in WEIGHT_RANGES:
        raise EvoSpikeError(f"plastic_weight_range must be one of {WEIGHT_RANGES} (got "
                            f"{weight_range!r})")
    base = without_learning(network)
    fp = quantize(base, profile)
    rules = rules_by_projection(network)
    if weight_range == "initial" or not rules:
        return fp
    prof = get_profile(profile)
    scales: dict[str, float] = {}
    floors: dict[str, int] = {}
    skipped: list[str] = []
    for name, rule in rules.items():
        proj = fp.projections.get(name)
        if proj is None or rule.w_max <= 0:
            continue
        label = f"{type(rule).__name__} '{rule.name}'"
        s_auto = fp.populations[proj.post].scale
        exp = math.floor(math.log2(s_auto * rule.w_max / (WEIGHT_MANT_MAX *
                                                           2.0 ** prof.act_shift)))
        scale = WEIGHT_MANT_MAX * 2.0 ** (exp + prof.act_shift) / rule.w_max
        if not prof.weight_exp_min <= exp <= prof.weight_exp_max:
            skipped.append(f"{label}: w_max={rule.w_max} needs weight exponent {exp}, outside "
                           f"{prof.weight_exp_min}..{prof.weight_exp_max}")
        elif proj.post in scales and scales[proj.post] != scale:
            skipped.append(f"{label}: population '{proj.post}' is already scaled for another "
                           "plastic projection's w_max")
        else:
            scales[proj.post], floors[name] = scale, exp
    fp = quantize(base, profile, scales=scales, weight_exp_floors=floors)
    for name, exp in floors.items():
        proj, rule = fp.projections[name], rules[name]
        label = f"{type(rule).__name__} '{rule.name}'"
        if proj.weight_exp != exp:
            skipped.append(f"{label}: initial weights above w_max={rule.w_max} need a larger "
                           "weight exponent")
        else:
            fp.notes.append(f"{label}: weights span [0, w_max={rule.w_max:.6g}] in 255 "
                            f"mantissas (population '{proj.post}' scaled "
                            f"{fp.populations[proj.post].scale:.6g} units per unit)")
    fp.notes.extend(f"{s}; the weight range is sized from the initial weights" for s in skipped)
    return fp


def without_learning(network: Network) -> Network:
    """``network`` without its carried learning rules, their modulators (unless recorded) and
    weight monitors (for the quantizer, which runs fixed weights: the learning part is planned
    here)."""
    carried = rules_by_projection(network)
    plasticity = {k: r for k, r in network.plasticity.items()
                  if carried.get(r.projection) is not r}
    drop = {n for n in _carried_modulators(network) if not any(
        getattr(r, "modulator", None) == n for r in plasticity.values())}
    processes = {k: p for k, p in network.processes.items() if k not in drop}
    # the level of a dropped modulator is recorded from the host (three_factor.level_trace)
    levels = three_factor.level_monitors(network, {n: network.processes[n] for n in drop})
    monitors = {k: m for k, m in network.state_monitors.items() if k not in levels}
    return dataclasses.replace(network, plasticity=plasticity, weight_monitors={},
                               processes=processes, state_monitors=monitors)


def modulator_level_monitors(network: Network) -> dict:
    """StateMonitor name -> (monitor, Modulator) for the recorded levels of the modulators
    Lava's learning engine carries (their values come from the host)."""
    carried = _carried_modulators(network)
    return {k: (m, carried[m.target])
            for k, m in three_factor.level_monitors(network, carried).items()}
