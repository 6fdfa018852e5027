"""Neuromodulatory processes of the IR: nodes with their own state and dynamics, driven by
sources and read by the rules they modulate. ``Modulator`` is the first of the family; later
processes (gating, memory tiers, apoptosis, energy budgets) join it in ``Network.processes``
through the same small interface (`ProcessNode`): a name, the names and sizes of their state
variables (so `StateMonitor` records them like neuron state) and a check against the network.

Modulator dynamics, once per step n, at the end of the step (after every neuron has fired and
every plasticity rule has used the level ``m[n-1]`` it found at the start of the step)::

    m[n] = m[n-1] * exp(-dt / tau_ms) + sum of the drives of step n

Drives (each adds to the level in the step it happens):

- `RewardEvents`: ``amounts[k]`` at ``times_ms[k]`` (a reward or punishment delivered as events);
- `RewardSeries`: ``values[j]`` in step ``start_step + j`` (a reward signal sampled every step);
- `SpikeCountDrive`: ``gain`` times the number of spikes of a population in the step;
- `NoveltyDrive`: ``gain * |r[n] - r_bar[n]|``, the gap between a population's mean rate
  ``r`` (Hz, low-pass filtered with ``tau_rate_ms``) and its running expectation ``r_bar``
  (the rate filtered again with the slower ``tau_expect_ms``)::

      r[n]     = r[n-1] * a + (1 - a) * count[n] / (size * dt_s)      a = exp(-dt / tau_rate)
      r_bar[n] = r_bar[n-1] * b + (1 - b) * r[n]                      b = exp(-dt / tau_expect)

The level is dimensionless; what a unit of it means is up to the rule that reads it (a learning
rate factor, a gate, a reward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError, first_bad
from evospike.ir.checks import check_name
from evospike.ir.schedule import Phase


def _positive_ms(kind: str, name: str, field_name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not (np.isfinite(value) and 0 < value <= 1e9):
        raise ValidationError(kind, name, field_name, "must lie in (0, 1e9] ms", value)
    return float(value)


def _finite(kind: str, name: str, field_name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value):
        raise ValidationError(kind, name, field_name, "must be a finite number", value)
    return float(value)


@dataclass
class RewardEvents:
    """Reward delivered as events: ``amounts[k]`` (dimensionless, any sign) added at
    ``times_ms[k]`` (ms, >= 0; several events in one step add up)."""

    times_ms: np.ndarray
    amounts: np.ndarray

    kind: ClassVar[str] = "RewardEvents"

    def validate(self, owner: str) -> None:
        times = np.atleast_1d(np.asarray(self.times_ms, dtype=float))
        amounts = np.atleast_1d(np.asarray(self.amounts, dtype=float))
        if amounts.size == 1 and times.size > 1:
            amounts = np.full(times.shape, amounts[0])
        if times.ndim != 1 or amounts.shape != times.shape:
            raise ValidationError("Modulator", owner, "RewardEvents.amounts",
                                  f"must be a scalar or have one value per event ({times.size})",
                                  amounts.shape)
        bad = ~np.isfinite(times) | (times < 0)
        if bad.any():
            raise ValidationError("Modulator", owner, "RewardEvents.times_ms",
                                  "must be finite and >= 0", first_bad(times, bad))
        if not np.all(np.isfinite(amounts)):
            raise ValidationError("Modulator", owner, "RewardEvents.amounts", "must be finite",
                                  first_bad(amounts, ~np.isfinite(amounts)))
        self.times_ms, self.amounts = times, amounts

    def per_step(self, dt_ms: float, start: int, n: int) -> np.ndarray:
        """The amounts falling into steps ``start .. start + n - 1`` (shape (n,))."""
        steps = np.floor(self.times_ms / dt_ms + 1e-9).astype(np.int64) - start
        inside = (steps >= 0) & (steps < n)
        return np.bincount(steps[inside], weights=self.amounts[inside], minlength=n)[:n]


@dataclass
class RewardSeries:
    """A reward signal given every step: ``values[j]`` added in step ``start_step + j``
    (dimensionless); nothing outside the series."""

    values: np.ndarray
    start_step: int = 0

    kind: ClassVar[str] = "RewardSeries"

    def validate(self, owner: str) -> None:
        values = np.asarray(self.values, dtype=float)
        if values.ndim != 1 or values.size == 0:
            raise ValidationError("Modulator", owner, "RewardSeries.values",
                                  "must be a non-empty 1-D array (one value per step)",
                                  values.shape)
        if not np.all(np.isfinite(values)):
            raise ValidationError("Modulator", owner, "RewardSeries.values", "must be finite",
                                  first_bad(values, ~np.isfinite(values)))
        if isinstance(self.start_step, bool) or int(self.start_step) != self.start_step or \
                self.start_step < 0:
            raise ValidationError("Modulator", owner, "RewardSeries.start_step",
                                  "must be an integer >= 0", self.start_step)
        self.values, self.start_step = values, int(self.start_step)

    def per_step(self, dt_ms: float, start: int, n: int) -> np.ndarray:
        out = np.zeros(n)
        lo, hi = max(start, self.start_step), min(start + n, self.start_step + self.values.size)
        if hi > lo:
            out[lo - start:hi - start] = self.values[lo - self.start_step:hi - self.start_step]
        return out


@dataclass
class SpikeCountDrive:
    """``gain`` per spike of population ``population`` in the step."""

    population: str
    gain: float = 1.0

    kind: ClassVar[str] = "SpikeCountDrive"

    def validate(self, owner: str) -> None:
        self.gain = _finite("Modulator", owner, "SpikeCountDrive.gain", self.gain)


@dataclass
class NoveltyDrive:
    """``gain * |r - r_bar|``: how far population ``population``'s rate (Hz) is from what it
    has come to expect (see the module docstring)."""

    population: str
    gain: float = 1.0
    tau_rate_ms: float = 50.0
    tau_expect_ms: float = 1000.0

    kind: ClassVar[str] = "NoveltyDrive"

    def validate(self, owner: str) -> None:
        self.gain = _finite("Modulator", owner, "NoveltyDrive.gain", self.gain)
        self.tau_rate_ms = _positive_ms("Modulator", owner, "NoveltyDrive.tau_rate_ms",
                                        self.tau_rate_ms)
        self.tau_expect_ms = _positive_ms("Modulator", owner, "NoveltyDrive.tau_expect_ms",
                                          self.tau_expect_ms)
        if self.tau_expect_ms <= self.tau_rate_ms:
            raise ValidationError("Modulator", owner, "NoveltyDrive.tau_expect_ms",
                                  f"must exceed tau_rate_ms ({self.tau_rate_ms}): the "
                                  "expectation is the slower average", self.tau_expect_ms)


Drive = RewardEvents | RewardSeries | SpikeCountDrive | NoveltyDrive
DRIVES: dict[str, type] = {d.kind: d for d in (RewardEvents, RewardSeries, SpikeCountDrive,
                                               NoveltyDrive)}


@dataclass
class Modulator:
    """A neuromodulatory signal: one level per trial, decaying with ``tau_ms`` (ms) and raised
    by its ``drives``. States: ``level`` (and ``rate_hz``/``expected_hz`` with a novelty
    drive). Read by rules through their ``modulator`` field."""

    name: str
    tau_ms: float
    drives: list = field(default_factory=list)
    initial: float = 0.0

    kind: ClassVar[str] = "Modulator"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.MODULATOR

    def __post_init__(self) -> None:
        check_name("Modulator", self.name)
        self.tau_ms = _positive_ms("Modulator", self.name, "tau_ms", self.tau_ms)
        self.initial = _finite("Modulator", self.name, "initial", self.initial)
        if not isinstance(self.drives, (list, tuple)):
            raise ValidationError("Modulator", self.name, "drives", "must be a list of drives",
                                  self.drives)
        self.drives = list(self.drives)
        for drive in self.drives:
            if not isinstance(drive, tuple(DRIVES.values())):
                raise ValidationError("Modulator", self.name, "drives",
                                      f"entries must be one of {sorted(DRIVES)}", drive)
            drive.validate(self.name)
        if sum(isinstance(d, NoveltyDrive) for d in self.drives) > 1:
            raise ValidationError("Modulator", self.name, "drives",
                                  "may hold one NoveltyDrive (use one modulator per novelty "
                                  "signal)", [d.kind for d in self.drives])

    @property
    def state_names(self) -> tuple[str, ...]:
        names = ["level"]
        if any(isinstance(d, NoveltyDrive) for d in self.drives):
            names += ["rate_hz", "expected_hz"]
        return tuple(names)

    def state_size(self, net) -> int:
        return 1

    def check(self, net) -> None:
        """Validate the references into ``net`` (called when the node is added)."""
        for drive in self.drives:
            if isinstance(drive, (SpikeCountDrive, NoveltyDrive)) and \
                    drive.population not in net.populations and \
                    drive.population not in net.sources:
                raise ValidationError("Modulator", self.name, f"{drive.kind}.population",
                                      "is not a population or source of the network",
                                      drive.population)
