"""Apoptosis and regeneration (after EpiGen-LLM's Eq. 4-5), as a process node of the IR: each
neuron of a population carries a health score computed from its recent output; a neuron that
stays unhealthy dies for good, and optionally a fresh neuron takes its place.

Evaluated at the end of every step n with ``(n + 1) % every_steps == 0`` (process phase 45, after
the memory tiers), that is at the end of each period of ``every_steps`` steps, per trial and
neuron:

1. ``O``: the neuron's rate (Hz) in the period just ended; the last ``window`` periods are its
   recent output ``O_recent``;
2. harm ``H = sigmoid(Var(O_recent) / variance_scale_hz2 - tau)`` (population variance over the
   periods seen so far, at most ``window``; 0 with fewer than two), set to 1 for the
   pathologies: silent for longer than ``silent_ms`` (no spike since), or ``O`` above
   ``ceiling_hz`` (either check off when None);
3. survival ``A = 1`` if ``H <= tau_a`` else ``exp(-lambda_a * (H - tau_a))``;
4. ``low = low + 1`` where ``A < floor`` else 0; a living neuron with ``low >= patience`` dies:
   it neither integrates nor fires from the next step on (its inputs are lost), its synapses
   (in and out, every projection) leave the connectivity, ``A = 0``, and ``deaths`` counts it;
5. with ``neurogenesis``, a neuron dead for ``rebirth_after`` evaluations is replaced by a fresh
   one in its place: the population's initial state, an empty history (``low = 0``, silence
   counted from now), and new random synapses on every projection into and out of the
   population, each possible synapse drawn with the projection's initial density and a weight
   drawn from the projection's initial weights (seeded by ``seed``, the trial and the step);
   ``births`` counts it.

States (one per neuron): ``survival`` (A, which other processes read, e.g. a gate's
``m * A > theta_act``), ``health`` (H), ``alive`` (1 or 0), ``deaths`` and ``births`` (how often
that neuron slot died / was refilled; their sums over the population are the totals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from evospike.errors import ValidationError
from evospike.ir.checks import check_name, check_population
from evospike.ir.memory import _number
from evospike.ir.schedule import Phase


@dataclass
class Apoptosis:
    """Health, survival, death and (optionally) rebirth of the neurons of ``population`` (see
    the module docstring). ``every_steps``: steps per evaluation period; ``window``: periods in
    the recent output; ``tau``: the variance threshold (dimensionless, after dividing the
    variance by ``variance_scale_hz2``, in Hz^2); ``silent_ms``, ``ceiling_hz``: pathologies
    (None: off); ``tau_a``, ``lambda_a``: the survival curve; ``floor``, ``patience``: death
    after ``patience`` evaluations in a row with ``A < floor``."""

    name: str
    population: str
    every_steps: int = 1000
    window: int = 5
    tau: float = 0.5
    variance_scale_hz2: float = 2500.0
    silent_ms: float | None = None
    ceiling_hz: float | None = None
    tau_a: float = 0.7
    lambda_a: float = 5.0
    floor: float = 0.5
    patience: int = 3
    neurogenesis: bool = False
    rebirth_after: int = 1
    seed: int = 0

    kind: ClassVar[str] = "Apoptosis"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.APOPTOSIS
    state_names: ClassVar[tuple[str, ...]] = ("survival", "health", "alive", "deaths", "births")

    def __post_init__(self) -> None:
        kind, name = self.kind, self.name
        check_name(kind, name)
        self.every_steps = _number(kind, name, "every_steps", self.every_steps, 1, 1e12,
                                   integer=True)
        self.window = _number(kind, name, "window", self.window, 2, 1e4, integer=True)
        self.tau = _number(kind, name, "tau", self.tau, -1e6, 1e6)
        self.variance_scale_hz2 = _number(kind, name, "variance_scale_hz2",
                                          self.variance_scale_hz2, 0.0, 1e12, lo_open=True)
        if self.silent_ms is not None:
            self.silent_ms = _number(kind, name, "silent_ms", self.silent_ms, 0.0, 1e12,
                                     lo_open=True)
        if self.ceiling_hz is not None:
            self.ceiling_hz = _number(kind, name, "ceiling_hz", self.ceiling_hz, 0.0, 1e6,
                                      lo_open=True)
        self.tau_a = _number(kind, name, "tau_a", self.tau_a, 0.0, 1.0)
        self.lambda_a = _number(kind, name, "lambda_a", self.lambda_a, 0.0, 1e6)
        self.floor = _number(kind, name, "floor", self.floor, 0.0, 1.0)
        self.patience = _number(kind, name, "patience", self.patience, 1, 1e9, integer=True)
        if not isinstance(self.neurogenesis, bool):
            if self.neurogenesis in (0, 1):  # HDF5 hands booleans back as integers
                self.neurogenesis = bool(self.neurogenesis)
            else:
                raise ValidationError(kind, name, "neurogenesis", "must be True or False",
                                      self.neurogenesis)
        self.rebirth_after = _number(kind, name, "rebirth_after", self.rebirth_after, 1, 1e9,
                                     integer=True)
        self.seed = _number(kind, name, "seed", self.seed, 0, 2**63 - 1, integer=True)
        lowest = float(math.exp(-self.lambda_a * (1.0 - self.tau_a)))
        if self.floor <= lowest:
            raise ValidationError(kind, name, "floor",
                                  f"must exceed the lowest survival the curve reaches "
                                  f"(exp(-lambda_a (1 - tau_a)) = {lowest:.4g}), or no neuron "
                                  "can ever die", self.floor)

    def state_size(self, net) -> int:
        return net.populations[self.population].size

    def check(self, net) -> None:
        check_population(self, net)
        if self.silent_ms is not None and self.silent_ms < self.every_steps * net.dt_ms:
            raise ValidationError(self.kind, self.name, "silent_ms",
                                  f"must be at least one evaluation period "
                                  f"({self.every_steps * net.dt_ms} ms)", self.silent_ms)
        if any(getattr(p, "kind", None) == self.kind and p.population == self.population
               for p in net.processes.values()):
            raise ValidationError(self.kind, self.name, "population",
                                  "already has an Apoptosis process", self.population)
