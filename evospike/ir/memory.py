"""Multi-timescale memory tiers on a plastic projection (after EpiGen-LLM's short / mid / long
memories and consolidation score ``S = I * R``), as a process node of the IR.

Every synapse's weight is the sum of three components::

    w = short + mid + long

each decaying towards 0 with its own time constant (``tau_short_ms``: seconds, the trace of
recent learning; ``tau_mid_ms``: minutes; ``tau_long_ms``: None, it persists). The projection's
plasticity rule (three-factor STDP, or any STDP rule) keeps working on ``w`` as before; whatever
it (or any other process, e.g. synaptic scaling) changed in a step is written into ``short``.
Consolidation moves weight from ``short`` to ``mid`` where the synapse mattered while the
modulator said it was relevant, and from ``mid`` to ``long`` once it has been reactivated
often enough. The projection's initial weights start in ``initial_tier`` (``"long"`` by
default: the wiring a network is built with is its long-term memory).

Per step n, at the end of the step (process phase 40: after every plasticity rule, homeostasis
(10), the modulators (20) and metaplasticity (30)), per trial and synapse:

1. ``dw = w - w_prev`` (``w_prev``: the weight the tiers left at the end of step n - 1);
2. importance ``I = I * exp(-dt / tau_importance_ms) + src`` with ``src = |dw|``
   (``importance="dw"``) or ``|e|``, the rule's eligibility (``importance="eligibility"``,
   three-factor rules);
3. ``short = (short + dw) * exp(-dt / tau_short)``, ``mid *= exp(-dt / tau_mid)``,
   ``long *= exp(-dt / tau_long)`` (no decay when ``tau_long_ms`` is None);
4. ``w = clip(short + mid + long, w_min, w_max)`` (the rule's bounds); ``short`` absorbs what
   the clip removed, so ``w == short + mid + long`` always; ``w_prev = w``;
5. on consolidation steps (``n % every_steps == 0``), with ``R = m[n]`` the modulator's level
   (after its update of this step) and ``S = I * R``; a synapse is a *candidate* where
   ``S > threshold``. Everything below moves weight between tiers and keeps their sum:

   a. candidates: ``mid += short_to_mid * short``, ``short -= short_to_mid * short``;
      ``access += 1``; ``I = 0`` (the importance is spent: another consolidation needs new
      learning);
   b. synapses with ``access >= reactivations_to_long``: ``long += mid_to_long * mid``,
      ``mid -= mid_to_long * mid``, ``access = 0``;
   c. capacity: at most ``floor(capacity_long * n_synapses)`` synapses may hold a nonzero
      ``long``; beyond that the ones with the smallest ``|long|`` (ties: the higher synapse
      index) hand their ``long`` back to ``mid``; then likewise ``mid`` (``capacity_mid``) to
      ``short``, where it fades.

States (one value per synapse, CSR order; `StateMonitor` indices are synapse ids): ``short``,
``mid``, ``long``, ``importance``, ``access``.

`add_key_value_memory` (``Network.key_value_memory``) builds a spiking key-value memory block
from these parts: keys and values, a write signal, a plastic key -> value projection whose
``short`` tier is the short-term store (fed every step) and whose ``mid``/``long`` tiers are the
long-term store (fed by consolidation); a partial key recalls the value written under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError
from evospike.ir.checks import check_name
from evospike.ir.schedule import Phase

IMPORTANCE_SOURCES = ("dw", "eligibility")
TIERS = ("short", "mid", "long")


def _number(kind: str, name: str, field: str, value, lo: float, hi: float, *,
            lo_open: bool = False, integer: bool = False):
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and np.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi
    if ok and integer:
        ok = int(value) == value
    if not ok:
        what = "an integer" if integer else "a number"
        bounds = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise ValidationError(kind, name, field, f"must be {what} in {bounds}", value)
    return int(value) if integer else float(value)


@dataclass
class MemoryTiers:
    """Short / mid / long weight components with consolidation on plastic projection
    ``projection`` (see the module docstring for the dynamics).

    Times in ms; ``threshold`` in (importance unit x modulator level): the importance is in the
    weight's unit (``"dw"``) or the eligibility's (``"eligibility"``, also the weight's unit for
    additive rules), summed over ``tau_importance_ms``. ``modulator``: the relevance signal R
    (default: the rule's own modulator). ``short_to_mid``, ``mid_to_long``: fractions moved per
    consolidation; ``capacity_mid``, ``capacity_long``: fractions of the synapses that may hold
    a nonzero component of that tier."""

    name: str
    projection: str
    tau_short_ms: float = 2000.0
    tau_mid_ms: float = 60000.0
    tau_long_ms: float | None = None
    modulator: str | None = None
    importance: str = "dw"
    tau_importance_ms: float = 1000.0
    every_steps: int = 100
    threshold: float = 0.0
    short_to_mid: float = 0.5
    reactivations_to_long: int = 3
    mid_to_long: float = 1.0
    capacity_mid: float = 1.0
    capacity_long: float = 1.0
    initial_tier: str = "long"

    kind: ClassVar[str] = "MemoryTiers"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.MEMORY_TIERS
    state_names: ClassVar[tuple[str, ...]] = ("short", "mid", "long", "importance", "access")

    def __post_init__(self) -> None:
        kind, name = self.kind, self.name
        check_name(kind, name)
        if not isinstance(self.projection, str) or not self.projection:
            raise ValidationError(kind, name, "projection", "must name a projection",
                                  self.projection)
        for field in ("tau_short_ms", "tau_mid_ms", "tau_importance_ms"):
            setattr(self, field, _number(kind, name, field, getattr(self, field), 0.0, 1e12,
                                         lo_open=True))
        if self.tau_long_ms is not None:
            self.tau_long_ms = _number(kind, name, "tau_long_ms", self.tau_long_ms, 0.0, 1e12,
                                       lo_open=True)
        longest = self.tau_long_ms if self.tau_long_ms is not None else np.inf
        if not self.tau_short_ms < self.tau_mid_ms < longest:
            raise ValidationError(kind, name, "tau_mid_ms",
                                  f"must lie between tau_short_ms ({self.tau_short_ms}) and "
                                  f"tau_long_ms ({self.tau_long_ms}): each tier outlasts the "
                                  "one below", self.tau_mid_ms)
        if self.modulator is not None and (not isinstance(self.modulator, str) or
                                           not self.modulator):
            raise ValidationError(kind, name, "modulator",
                                  "must be the name of a Modulator or None", self.modulator)
        if self.importance not in IMPORTANCE_SOURCES:
            raise ValidationError(kind, name, "importance",
                                  f"must be one of {IMPORTANCE_SOURCES}", self.importance)
        self.every_steps = _number(kind, name, "every_steps", self.every_steps, 1, 1e12,
                                   integer=True)
        if isinstance(self.threshold, bool) or not isinstance(
                self.threshold, (int, float, np.integer, np.floating)) or \
                np.isnan(self.threshold) or self.threshold < 0:
            raise ValidationError(kind, name, "threshold",
                                  "must be a number >= 0 (inf: never consolidate)",
                                  self.threshold)
        self.threshold = float(self.threshold)
        for field in ("short_to_mid", "mid_to_long"):
            setattr(self, field, _number(kind, name, field, getattr(self, field), 0.0, 1.0,
                                         lo_open=True))
        for field in ("capacity_mid", "capacity_long"):
            setattr(self, field, _number(kind, name, field, getattr(self, field), 0.0, 1.0))
        self.reactivations_to_long = _number(kind, name, "reactivations_to_long",
                                             self.reactivations_to_long, 1, 1e9, integer=True)
        if self.initial_tier not in TIERS:
            raise ValidationError(kind, name, "initial_tier", f"must be one of {TIERS}",
                                  self.initial_tier)

    def state_size(self, net) -> int:
        return net.projections[self.projection].n_synapses

    def rule_of(self, net):
        """The plasticity rule acting on the projection."""
        for rule in net.plasticity.values():
            if rule.projection == self.projection:
                return rule
        return None

    def modulator_of(self, net) -> str:
        """The modulator whose level is the relevance R."""
        return self.modulator if self.modulator is not None else self.rule_of(net).modulator

    def capacity(self, tier: str, n_synapses: int) -> int:
        """How many synapses may hold a nonzero component of ``tier`` ("mid" or "long")."""
        fraction = {"mid": self.capacity_mid, "long": self.capacity_long}[tier]
        return int(np.floor(fraction * n_synapses + 1e-9))

    def check(self, net) -> None:
        kind = self.kind
        if self.projection not in net.projections:
            raise ValidationError(kind, self.name, "projection",
                                  "is not a projection of the network", self.projection)
        rule = self.rule_of(net)
        if rule is None:
            raise ValidationError(kind, self.name, "projection",
                                  "has no plasticity rule (add the rule first: the tiers hold "
                                  "what it learns)", self.projection)
        mod = self.modulator_of(net)
        if mod is None:
            raise ValidationError(kind, self.name, "modulator",
                                  f"is required: rule '{rule.name}' has no modulator to serve "
                                  "as the relevance R", None)
        if mod not in net.processes or net.processes[mod].kind != "Modulator":
            raise ValidationError(kind, self.name, "modulator",
                                  "is not a Modulator of the network", mod)
        if self.importance == "eligibility" and not hasattr(rule, "tau_eligibility_ms"):
            raise ValidationError(kind, self.name, "importance",
                                  f"'eligibility' needs a three-factor rule (rule '{rule.name}' "
                                  f"is {type(rule).__name__}); use 'dw'", self.importance)
        if any(getattr(p, "kind", None) == kind and p.projection == self.projection
               for p in net.processes.values()):
            raise ValidationError(kind, self.name, "projection", "already has memory tiers",
                                  self.projection)


@dataclass
class KeyValueMemory:
    """The parts of a spiking key-value memory block built by `add_key_value_memory` (names of
    nodes of the network) and its schedule of writes and reads."""

    name: str
    keys: str  # spike source: the key (and cue) volleys
    teacher: str  # spike source: the value volleys while writing
    values: str  # LIF population: the value neurons, read out by their spikes
    projection: str  # keys -> values, three-factor STDP with memory tiers
    modulator: str  # the write signal (a reward event at the end of each write)
    tiers: str
    writes: list
    reads: list
    window_ms: float

    def read_out(self, results, min_spikes: int = 1) -> list[np.ndarray]:
        """For each read: the value neurons that fired at least ``min_spikes`` times during
        the cue (and ``window_ms`` / 5 after it), sorted."""
        times, neurons = results.spikes(self.values)
        out = []
        for start, _ in self.reads:
            inside = (times >= start) & (times < start + 1.2 * self.window_ms)
            counts = np.bincount(neurons[inside], minlength=1)
            out.append(np.nonzero(counts >= min_spikes)[0])
        return out

    def recall(self, results, targets) -> list[float]:
        """Per read, how well the read-out matches ``targets[k]`` (the value neurons written
        under that key): hits / |target| - false alarms / |rest| (1: perfect, 0: nothing; an
        empty target counts as all hit)."""
        n = results.spikes_by_node[self.values].size
        scores = []
        for got, want in zip(self.read_out(results), targets, strict=True):
            want = np.unique(np.asarray(want))
            hits = np.isin(got, want).sum()
            false = got.size - hits
            hit_rate = hits / want.size if want.size else 1.0
            scores.append(float(hit_rate - false / max(n - want.size, 1)))
        return scores


def add_key_value_memory(net, name: str, n_keys: int, n_values: int, writes, reads, *,
                         window_ms: float = 50.0, volley_interval_ms: float = 10.0,
                         teacher_lag_ms: float = 2.0, w_max_mV: float = 40.0,
                         learning_rate_per_ms: float = 0.8, consolidate: bool = True,
                         tau_short_ms: float = 500.0, tau_mid_ms: float = 20000.0,
                         threshold: float = 2.0) -> KeyValueMemory:
    """A spiking key-value memory block (after the memory-augmented models: NTM, DNC, Memory
    Networks) built from ordinary IR nodes in ``net``:

    - ``<name>.keys`` (spike source, ``n_keys``): during a write or a read, its key (or cue)
      neurons fire together in volleys every ``volley_interval_ms`` for ``window_ms``;
    - ``<name>.values`` (LIF, ``n_values``): while writing, ``<name>.teacher`` makes the value
      neurons fire ``teacher_lag_ms`` after each volley (key before value: potentiation);
    - ``<name>.keys-><name>.values``: all-to-all, weights from 0 to ``w_max_mV``, three-factor
      STDP whose third factor is ``<name>.write``, a modulator raised by 1 at the end of each
      write: a pair is stored only when a write confirms it;
    - `MemoryTiers` on that projection: the rule feeds ``short`` every step (the short-term
      store, tau ``tau_short_ms``); consolidation (``S = I * R`` with R the write signal, above
      ``threshold``; ``consolidate=False`` turns it off) feeds ``mid`` and, after 3
      reactivations, ``long`` (the long-term store).

    ``writes``: [(start_ms, key_neurons, value_neurons)]; ``reads``: [(start_ms,
    cue_neurons)] (a cue may be part of a key: the values whose stored weights from the cue's
    neurons carry them over threshold fire). Returns the `KeyValueMemory` (its ``read_out`` and
    ``recall`` evaluate a run's results)."""
    from evospike.connectors import AllToAll, OneToOne
    from evospike.ir.neurons import LIF

    dt = net.dt_ms
    key_n, key_t, teach_n, teach_t = [], [], [], []
    n_volleys = int(np.floor(window_ms / volley_interval_ms + 1e-9))
    for start, keys, values in writes:
        for v in range(n_volleys):
            t = start + v * volley_interval_ms
            keys, values = np.asarray(keys), np.asarray(values)
            key_n.append(keys)
            key_t.append(np.full(keys.size, t))
            teach_n.append(values)
            teach_t.append(np.full(values.size, t + teacher_lag_ms - dt))
    for start, cue in reads:
        cue = np.asarray(cue)
        for v in range(n_volleys):
            key_n.append(cue)
            key_t.append(np.full(cue.size, start + v * volley_interval_ms))
    keys = net.spike_source(f"{name}.keys", n_keys, np.concatenate(key_n).astype(np.int64),
                            np.concatenate(key_t))
    teacher = net.spike_source(f"{name}.teacher", n_values,
                               np.concatenate(teach_n).astype(np.int64), np.concatenate(teach_t))
    values = net.population(f"{name}.values", n_values,
                            LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_rest_mV=-65.0,
                                v_reset_mV=-65.0, v_thresh_mV=-50.0, tau_refrac_ms=2.0),
                            initial={"v": -65.0})
    net.connect(teacher, values, OneToOne(), weight=200.0, delay_ms=dt, name=f"{name}.teach")
    proj = net.connect(keys, values, AllToAll(), weight=0.0, delay_ms=dt,
                       name=f"{name}.keys->values")
    write_ends = [start + window_ms for start, _, _ in writes]
    from evospike.ir.modulators import RewardEvents

    mod = net.modulator(f"{name}.write", 20.0, [RewardEvents(write_ends, 1.0)])
    net.reward_stdp(proj, mod, tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=1.0, a_minus=0.5,
                    tau_eligibility_ms=100.0, learning_rate_per_ms=learning_rate_per_ms,
                    w_min=0.0, w_max=w_max_mV)
    tiers = net.memory_tiers(proj, tau_short_ms=tau_short_ms, tau_mid_ms=tau_mid_ms,
                             tau_importance_ms=200.0, every_steps=max(1, int(round(5.0 / dt))),
                             threshold=threshold if consolidate else np.inf,
                             initial_tier="long")
    return KeyValueMemory(name, keys.name, teacher.name, values.name, proj.name, mod.name,
                          tiers.name, list(writes), list(reads), window_ms)
