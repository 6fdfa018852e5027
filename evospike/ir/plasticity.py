"""Plasticity rules of the IR: plain, validated parameter records attached to a projection by
name. Backends compile them; the rule's dynamics are defined here, once, for all of them.

Pair-based STDP (trace form). Each presynaptic neuron has a trace ``x`` (time constant
``tau_plus_ms``), each postsynaptic neuron a trace ``y`` (``tau_minus_ms``). In step n, after
the neurons have fired:

1. both traces decay by one step (``x *= exp(-dt / tau_plus)``, ``y *= exp(-dt / tau_minus)``);
2. for every presynaptic spike *arriving* in step n (emitted at n - delay: the synapse sees it
   at its arrival, as Brian2's ``on_pre`` does), the synapse is depressed by ``y`` of its
   postsynaptic neuron (post-before-pre), then ``x`` of the presynaptic neuron is raised;
3. for every postsynaptic spike of step n, ``y`` is raised, then each of the neuron's input
   synapses is potentiated by ``x`` of its presynaptic neuron (pre-before-post; a pre spike
   arriving in the same step counts as "before").

Raising a trace adds 1 (``pairing="all"``: every pair of spikes interacts) or sets it to 1
(``pairing="nearest"``: only the nearest pairs). With these traces a pre-before-post interval
``dt`` changes the weight by ``A+ exp(-dt / tau_plus)`` and a post-before-pre interval by
``-A- exp(-|dt| / tau_minus)``, scaled by the weight dependence:

- ``"additive"``: ``w += a_plus * x`` / ``w -= a_minus * y``, then clipped to [w_min, w_max]
  (hard bounds);
- ``"multiplicative"``: ``w += a_plus * x * (w_max - w)`` / ``w -= a_minus * y * (w - w_min)``
  (soft bounds), then clipped.

A spike is transmitted with the weight the synapse has when the spike arrives, before that
arrival's own update.

Modulated STDP. With ``modulator`` set, every weight change above is multiplied by a factor
read from the modulator's level ``m`` at the start of the step (``m[n-1]``, see
`evospike.ir.modulators`): ``modulation="gate"`` permits plasticity only while
``m > gate_threshold`` (factor 1, else 0: permit/deny); ``modulation="scale"`` multiplies the
learning rate by ``1 + scale_gain * m`` (novelty raises it).

Three-factor STDP (`RewardModulatedSTDP`). The pair terms above write into a per-synapse
eligibility trace ``e`` instead of the weight; ``e`` decays by ``exp(-dt / tau_eligibility)``
at the start of each step (with the spike traces). At the end of the step's plasticity::

    w = clip(w + learning_rate_per_ms * dt * m[n-1] * e, w_min, w_max)

so the weight moves only where eligibility and the modulator (a reward) meet.

Homeostasis (`Homeostasis`), per neuron of a population, in step n after it fired::

    r = r + 1000 / tau_rate_ms            for each neuron that spiked (r: rate estimate, Hz)
    theta = theta + threshold_rate * (r - target_rate_hz) * dt_s       (threshold mechanism)
    r = r * exp(-dt / tau_rate_ms)

``theta`` (mV or the model's voltage unit) is added to the firing threshold from the next step
on: a neuron firing above the target raises its threshold and slows down, one below lowers it.
The scaling mechanism multiplies every incoming weight of the listed projections, every
``every_steps`` steps (steps n with ``n % every_steps == 0``, before the rate decays), by
``1 + scaling_rate * (target_rate_hz - r_post) * every_steps * dt_s``.

Metaplasticity (`Metaplasticity`): a parameter of a rule adapts to reward, at the end of every
step (after the modulator's update, so the new value applies from the next step)::

    baseline = baseline * b + (1 - b) * m[n]                 b = exp(-dt / tau_baseline_ms)
    p = clip(p + eta * (m[n] - baseline) * dt_s, p_min, p_max)

with ``p`` one of the rule's ``tau_plus_ms``, ``tau_minus_ms``, ``a_plus`` or ``a_minus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError, real_number
from evospike.ir.checks import check_name, check_population
from evospike.ir.schedule import Phase

PAIRINGS = ("all", "nearest")
WEIGHT_DEPENDENCES = ("additive", "multiplicative")
MODULATIONS = ("gate", "scale")


@dataclass
class STDP:
    """Pair-based spike-timing-dependent plasticity on projection ``projection``.

    ``a_plus``/``a_minus`` are in the projection's weight unit for the additive rule and
    dimensionless (fractions of the distance to the bound) for the multiplicative rule;
    ``w_min``/``w_max`` in the weight unit."""

    #: the `Network` field that holds it: any class declaring "plasticity" is a rule there
    collection: ClassVar[str] = "plasticity"
    name: str
    projection: str
    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    a_plus: float = 0.01
    a_minus: float = 0.0105
    pairing: str = "all"
    weight_dependence: str = "additive"
    w_min: float = 0.0
    w_max: float = 1.0
    modulator: str | None = None
    modulation: str = "gate"
    gate_threshold: float = 0.0
    scale_gain: float = 1.0

    def __post_init__(self) -> None:
        kind = type(self).__name__
        check_name(kind, self.name)
        for field in ("tau_plus_ms", "tau_minus_ms"):
            value = real_number(kind, self.name, field, getattr(self, field))
            if not (np.isfinite(value) and 0 < value <= 1e7):
                raise ValidationError(kind, self.name, field, "must lie in (0, 1e7] ms", value)
            setattr(self, field, float(value))
        for field in ("a_plus", "a_minus", "w_min", "w_max"):
            value = real_number(kind, self.name, field, getattr(self, field))
            if not np.isfinite(value):
                raise ValidationError(kind, self.name, field, "must be finite", value)
            setattr(self, field, float(value))
        for field in ("a_plus", "a_minus"):
            if getattr(self, field) < 0:
                raise ValidationError(kind, self.name, field,
                                      "must be >= 0 (the sign is fixed by the rule)",
                                      getattr(self, field))
        if not self.w_max > self.w_min:
            raise ValidationError(kind, self.name, "w_max", f"must exceed w_min ({self.w_min})",
                                  self.w_max)
        if self.pairing not in PAIRINGS:
            raise ValidationError(kind, self.name, "pairing", f"must be one of {PAIRINGS}",
                                  self.pairing)
        if self.weight_dependence not in WEIGHT_DEPENDENCES:
            raise ValidationError(kind, self.name, "weight_dependence",
                                  f"must be one of {WEIGHT_DEPENDENCES}", self.weight_dependence)
        if self.modulator is not None and (not isinstance(self.modulator, str) or
                                           not self.modulator):
            raise ValidationError(kind, self.name, "modulator",
                                  "must be the name of a Modulator or None", self.modulator)
        if self.modulation not in MODULATIONS:
            raise ValidationError(kind, self.name, "modulation", f"must be one of {MODULATIONS}",
                                  self.modulation)
        for field in ("gate_threshold", "scale_gain"):
            value = real_number(kind, self.name, field, getattr(self, field))
            if isinstance(value, bool) or not np.isfinite(value):
                raise ValidationError(kind, self.name, field, "must be finite", value)
            setattr(self, field, float(value))

    @property
    def state_names(self) -> tuple[str, ...]:
        return ()

    def check(self, net) -> None:
        """Validate against ``net`` (called when the rule is added): one rule per projection,
        one delay for all its synapses, an existing Modulator, weights within the bounds."""
        if self.projection not in net.projections:
            raise ValidationError("STDP", self.name, "projection",
                                  "is not a projection of the network", self.projection)
        proj = net.projections[self.projection]
        if any(p.projection == self.projection for p in net.plasticity.values()):
            raise ValidationError("STDP", self.name, "projection",
                                  "already has a plasticity rule", self.projection)
        if proj.n_synapses and np.any(proj.delays != proj.delays[0]):
            raise ValidationError("STDP", self.name, "projection",
                                  "has per-synapse delays of different lengths; plastic "
                                  "projections need one delay for all synapses (per-synapse "
                                  "traces are not implemented)", self.projection)
        if self.modulator is not None and (
                self.modulator not in net.processes or
                net.processes[self.modulator].kind != "Modulator"):
            raise ValidationError(type(self).__name__, self.name, "modulator",
                                  "is not a Modulator of the network (add it first)",
                                  self.modulator)
        w = proj.weights
        if w.size and (w.min() < self.w_min or w.max() > self.w_max):
            raise ValidationError("STDP", self.name, "projection weights",
                                  f"must start within [w_min, w_max] = [{self.w_min}, "
                                  f"{self.w_max}]", float(w.min() if w.min() < self.w_min
                                                          else w.max()))


@dataclass
class RewardModulatedSTDP(STDP):
    """Three-factor STDP: pair terms into an eligibility trace, weight change = learning rate x
    modulator x eligibility (see the module docstring). ``modulator`` is required;
    ``learning_rate_per_ms`` is per ms of simulated time per unit of modulator level;
    ``tau_eligibility_ms`` in ms. Additive pair terms only."""

    tau_eligibility_ms: float = 1000.0
    learning_rate_per_ms: float = 0.001
    #: the weight update from the eligibility (the pair terms run when the spikes do)
    phase: ClassVar[Phase] = Phase.PLASTICITY

    def __post_init__(self) -> None:
        super().__post_init__()
        kind = "RewardModulatedSTDP"
        if self.modulator is None:
            raise ValidationError(kind, self.name, "modulator",
                                  "is required (the third factor, e.g. a reward Modulator)", None)
        if self.weight_dependence != "additive":
            raise ValidationError(kind, self.name, "weight_dependence",
                                  "must be 'additive' (the bounds apply to the weight update)",
                                  self.weight_dependence)
        value = real_number(kind, self.name, "tau_eligibility_ms", self.tau_eligibility_ms)
        if isinstance(value, bool) or not (np.isfinite(value) and 0 < value <= 1e9):
            raise ValidationError(kind, self.name, "tau_eligibility_ms", "must lie in (0, 1e9] ms",
                                  value)
        self.tau_eligibility_ms = float(value)
        value = real_number(kind, self.name, "learning_rate_per_ms", self.learning_rate_per_ms)
        if isinstance(value, bool) or not np.isfinite(value):
            raise ValidationError(kind, self.name, "learning_rate_per_ms", "must be finite", value)
        self.learning_rate_per_ms = float(value)


HOMEOSTASIS_MECHANISMS = ("threshold", "scaling")


@dataclass
class Homeostasis:
    """Keeps each neuron of ``population`` near ``target_rate_hz`` through slow negative
    feedback (see the module docstring). ``tau_rate_ms``: window of the rate estimate (ms).
    ``mechanism="threshold"``: adaptive threshold, ``threshold_rate`` in voltage units per
    (Hz s). ``mechanism="scaling"``: synaptic scaling of the incoming ``projections`` every
    ``every_steps`` steps, ``scaling_rate`` per (Hz s). States: ``rate_hz``, ``theta``."""

    name: str
    population: str
    target_rate_hz: float = 10.0
    tau_rate_ms: float = 1000.0
    mechanism: str = "threshold"
    threshold_rate: float = 0.1
    projections: tuple[str, ...] = ()
    scaling_rate: float = 0.01
    every_steps: int = 100

    kind: ClassVar[str] = "Homeostasis"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.HOMEOSTASIS

    def __post_init__(self) -> None:
        kind = self.kind
        check_name(kind, self.name)
        for field in ("target_rate_hz", "tau_rate_ms", "threshold_rate", "scaling_rate"):
            setattr(self, field, real_number(kind, self.name, field, getattr(self, field)))
        if not (np.isfinite(self.target_rate_hz) and 0 <= self.target_rate_hz <= 1e4):
            raise ValidationError(kind, self.name, "target_rate_hz", "must lie in [0, 1e4] Hz",
                                  self.target_rate_hz)
        if not (np.isfinite(self.tau_rate_ms) and 0 < self.tau_rate_ms <= 1e9):
            raise ValidationError(kind, self.name, "tau_rate_ms", "must lie in (0, 1e9] ms",
                                  self.tau_rate_ms)
        if self.mechanism not in HOMEOSTASIS_MECHANISMS:
            raise ValidationError(kind, self.name, "mechanism",
                                  f"must be one of {HOMEOSTASIS_MECHANISMS}", self.mechanism)
        for field in ("threshold_rate", "scaling_rate"):
            value = getattr(self, field)
            if isinstance(value, bool) or not (np.isfinite(value) and value >= 0):
                raise ValidationError(kind, self.name, field, "must be finite and >= 0", value)
        if isinstance(self.every_steps, bool) or int(self.every_steps) != self.every_steps or \
                self.every_steps < 1:
            raise ValidationError(kind, self.name, "every_steps", "must be a positive integer",
                                  self.every_steps)
        if isinstance(self.projections, str):
            self.projections = (self.projections,)
        self.projections = tuple(self.projections)
        if self.mechanism == "scaling" and not self.projections:
            raise ValidationError(kind, self.name, "projections",
                                  "must name the incoming projections to scale", self.projections)
        self.target_rate_hz = float(self.target_rate_hz)
        self.tau_rate_ms = float(self.tau_rate_ms)
        self.threshold_rate = float(self.threshold_rate)
        self.scaling_rate = float(self.scaling_rate)
        self.every_steps = int(self.every_steps)

    state_names: ClassVar[tuple[str, ...]] = ("rate_hz", "theta")

    def state_size(self, net) -> int:
        return net.populations[self.population].size

    def check(self, net) -> None:
        check_population(self, net)
        model_kind = net.populations[self.population].model.kind
        if self.mechanism == "threshold" and model_kind in ("Izhikevich", "AdEx", "CondAdEx"):
            # their spike cut v_peak is a numerical bound of the upswing, not a threshold
            raise ValidationError(self.kind, self.name, "mechanism",
                                  f"'threshold' needs a threshold model ({model_kind} has "
                                  "none)", self.mechanism)
        for proj in self.projections:
            if proj not in net.projections:
                raise ValidationError(self.kind, self.name, "projections",
                                      "names a projection the network does not have", proj)
            if net.projections[proj].post != self.population:
                raise ValidationError(self.kind, self.name, "projections",
                                      f"must end on '{self.population}'", proj)
        if any(isinstance(p, Homeostasis) and p.population == self.population
               for p in net.processes.values()):
            raise ValidationError(self.kind, self.name, "population",
                                  "already has a Homeostasis process", self.population)


METAPLASTIC_PARAMETERS = ("tau_plus_ms", "tau_minus_ms", "a_plus", "a_minus")


@dataclass
class Metaplasticity:
    """Parameter ``parameter`` of plasticity rule ``rule`` adapts to the reward signal of
    ``modulator`` (see the module docstring): ``eta`` per (unit of level x s), bounds
    ``[p_min, p_max]``, running baseline with ``tau_baseline_ms``. State: ``value``,
    ``baseline``."""

    name: str
    rule: str
    modulator: str
    parameter: str = "tau_plus_ms"
    eta: float = 1.0
    tau_baseline_ms: float = 10000.0
    p_min: float = 1.0
    p_max: float = 100.0

    kind: ClassVar[str] = "Metaplasticity"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.METAPLASTICITY
    state_names: ClassVar[tuple[str, ...]] = ("value", "baseline")

    def __post_init__(self) -> None:
        kind = self.kind
        check_name(kind, self.name)
        if self.parameter not in METAPLASTIC_PARAMETERS:
            raise ValidationError(kind, self.name, "parameter",
                                  f"must be one of {METAPLASTIC_PARAMETERS}", self.parameter)
        for field in ("eta", "p_min", "p_max"):
            value = real_number(kind, self.name, field, getattr(self, field))
            if isinstance(value, bool) or not np.isfinite(value):
                raise ValidationError(kind, self.name, field, "must be finite", value)
            setattr(self, field, float(value))
        self.tau_baseline_ms = real_number(kind, self.name, "tau_baseline_ms",
                                           self.tau_baseline_ms)
        if not (np.isfinite(self.tau_baseline_ms) and 0 < self.tau_baseline_ms <= 1e9):
            raise ValidationError(kind, self.name, "tau_baseline_ms", "must lie in (0, 1e9] ms",
                                  self.tau_baseline_ms)
        self.tau_baseline_ms = float(self.tau_baseline_ms)
        if not self.p_max > self.p_min:
            raise ValidationError(kind, self.name, "p_max", f"must exceed p_min ({self.p_min})",
                                  self.p_max)
        if self.parameter.startswith("tau") and self.p_min <= 0:
            raise ValidationError(kind, self.name, "p_min",
                                  "must be > 0 for a time constant", self.p_min)
        if self.parameter.startswith("a_") and self.p_min < 0:
            raise ValidationError(kind, self.name, "p_min",
                                  "must be >= 0 for an amplitude", self.p_min)

    def state_size(self, net) -> int:
        return 1

    def check(self, net) -> None:
        if self.rule not in net.plasticity:
            raise ValidationError(self.kind, self.name, "rule",
                                  "is not a plasticity rule of the network", self.rule)
        if self.modulator not in net.processes or \
                net.processes[self.modulator].kind != "Modulator":
            raise ValidationError(self.kind, self.name, "modulator",
                                  "is not a Modulator of the network", self.modulator)
        value = getattr(net.plasticity[self.rule], self.parameter)
        if not self.p_min <= value <= self.p_max:
            raise ValidationError(self.kind, self.name, self.parameter,
                                  f"of rule '{self.rule}' must start within [p_min, p_max] = "
                                  f"[{self.p_min}, {self.p_max}]", value)
        if any(isinstance(p, Metaplasticity) and p.rule == self.rule and
               p.parameter == self.parameter for p in net.processes.values()):
            raise ValidationError(self.kind, self.name, "parameter",
                                  f"of rule '{self.rule}' already adapts", self.parameter)


PLASTICITY_RULES: dict[str, type] = {"STDP": STDP, "RewardModulatedSTDP": RewardModulatedSTDP}
