"""The network: a container of IR nodes plus the DSL that builds it.

    net = Network("cuba", dt_ms=0.1)
    exc = net.population("exc", 3200, LIF(tau_m_ms=20, ...))
    net.connect(exc, inh, FixedProbability(0.02, seed=1), weight=1.62, delay_ms=0.1)
    net.record_spikes(exc)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evospike.connectors import Connector, FromArrays
from evospike.errors import ValidationError, real_array
from evospike.ir.apoptosis import Apoptosis
from evospike.ir.distributions import Normal, Uniform
from evospike.ir.energy_budget import EnergyBudget, GlobalEnergyBudget
from evospike.ir.gating import EpigeneticGate, NeuromodulatedParticipation
from evospike.ir.memory import MemoryTiers
from evospike.ir.modulators import Modulator
from evospike.ir.neurons import UNIT_SYSTEMS, NeuronModel
from evospike.ir.nodes import (
    CHANNELS,
    CurrentInput,
    InitialValue,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP
from evospike.ir.pruning import TerminalAttractorPruning
from evospike.ir.structural import StructuralPlasticity
from evospike.ir.timing import MIN_DELAY_STEPS, SCHEDULES
from evospike.memory_estimate import check_connect
from evospike.units import steps_of

#: the fields of `Network` that hold nodes: a node class names its own (``collection``), so
#: that `Network.add` needs no list of node types (dicts are keyed by node name)
COLLECTIONS = ("populations", "sources", "projections", "currents", "plasticity", "processes",
               "spike_monitors", "state_monitors", "weight_monitors", "inputs")

#: the process kinds of this IR (``collection = "processes"``), listed for the schedule and
#: conformance checks; `Network.add` does not consult it
PROCESS_TYPES = (Modulator, Homeostasis, Metaplasticity, StructuralPlasticity,
                 TerminalAttractorPruning, MemoryTiers, Apoptosis, EpigeneticGate,
                 NeuromodulatedParticipation, EnergyBudget, GlobalEnergyBudget)

Endpoint = Population | PoissonSource | SpikeTimesSource | str


@dataclass
class Network:
    """A spiking network: populations, spike sources, projections, injected currents, monitors.

    ``dt_ms`` is the simulation time step; delays and refractory periods are whole numbers of
    steps of it."""

    name: str = "network"
    dt_ms: float = 0.1
    populations: dict[str, Population] = field(default_factory=dict)
    sources: dict[str, PoissonSource | SpikeTimesSource] = field(default_factory=dict)
    projections: dict[str, Projection] = field(default_factory=dict)
    currents: dict[str, CurrentInput] = field(default_factory=dict)
    #: inputs standing for many afferents onto a population (`PoissonInput`)
    inputs: dict[str, PoissonInput] = field(default_factory=dict)
    spike_monitors: list[SpikeMonitor] = field(default_factory=list)
    state_monitors: dict[str, StateMonitor] = field(default_factory=dict)
    weight_monitors: dict[str, WeightMonitor] = field(default_factory=dict)
    plasticity: dict[str, STDP] = field(default_factory=dict)
    processes: dict[str, Modulator | Homeostasis | Metaplasticity] = field(default_factory=dict)
    #: the unit system of the neuron parameters (`UNIT_SYSTEMS`): "mV" for physiological models
    #: (a threshold of -0.05 is then refused as volts), "dimensionless" for machine-learning
    #: models (snnTorch, NIR) whose voltages carry no unit. Set it when the network is made:
    #: populations are checked against it as they are added.
    units: str = "mV"
    #: the timing convention (`evospike.ir.timing.SCHEDULES`): "evospike" (events act before
    #: the threshold of their arrival step, delays >= 1) or "brian2" (Brian2's default
    #: schedule: events act after the threshold, delays >= 0, default delay 0). Set it when the
    #: network is made: projections are checked against it as they are added.
    schedule: str = "evospike"
    #: provenance and conventions that are not dynamics (JSON-serialisable: str, numbers,
    #: lists, dicts), e.g. ``metadata["nir"]``, the conventions `evospike.nir.load` read a NIR
    #: file with; saved and loaded with the network
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("Network", str(self.name), "name", "must be a non-empty string",
                                  self.name)
        if isinstance(self.dt_ms, bool) or not isinstance(self.dt_ms, (int, float)) or \
                not np.isfinite(self.dt_ms) or \
                not (1e-4 <= self.dt_ms <= 100.0):
            raise ValidationError("Network", self.name, "dt_ms", "must lie in [0.0001, 100] ms",
                                  self.dt_ms)
        self.dt_ms = float(self.dt_ms)
        if not isinstance(self.units, str) or self.units not in UNIT_SYSTEMS:
            raise ValidationError("Network", self.name, "units", f"must be one of {UNIT_SYSTEMS}",
                                  self.units)
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            raise ValidationError("Network", self.name, "schedule",
                                  f"must be one of {SCHEDULES}", self.schedule)

    # ------------------------------------------------------------------ lookup
    def size_of(self, name: str) -> int:
        if name in self.populations:
            return self.populations[name].size
        if name in self.sources:
            return self.sources[name].size
        raise ValidationError("Network", self.name, "node", "has no population or source named "
                              f"'{name}' (have {sorted(self.populations) + sorted(self.sources)})",
                              name)

    def _name_of(self, endpoint: Endpoint) -> str:
        name = endpoint if isinstance(endpoint, str) else endpoint.name
        self.size_of(name)
        return name

    def _claim(self, name: str) -> None:
        # one namespace for every named node: a second process of the same name would
        # otherwise replace the first without a word
        taken = [c for c in COLLECTIONS if isinstance(getattr(self, c), dict) and
                 name in getattr(self, c)]
        if taken:
            raise ValidationError("Network", self.name, "name", "is already used", name)

    # ------------------------------------------------------------------ adding nodes
    def add(self, node):
        """Add a ready-made IR node (the DSL methods below build and add them for you).

        The node's class names the field that holds it (``collection``, one of
        `COLLECTIONS`) and checks itself against the network (``check(network)``): a new node
        kind, a new plasticity rule, needs nothing here."""
        collection = getattr(type(node), "collection", None)
        if collection not in COLLECTIONS:
            raise ValidationError("Network", self.name, "node", "is not an IR node", type(node))
        held = getattr(self, collection)
        if isinstance(held, dict):
            self._claim(node.name)
        check = getattr(node, "check", None)
        if check is not None:
            check(self)
        if isinstance(held, dict):
            held[node.name] = node
        else:
            held.append(node)
        return node

    def nodes(self) -> list:
        """Every node of the network, field by field in `COLLECTIONS` order (the backends'
        registries refuse by name what they do not carry)."""
        out = []
        for collection in COLLECTIONS:
            held = getattr(self, collection)
            out.extend(held.values() if isinstance(held, dict) else held)
        return out

    def population(self, name: str, size: int, model: NeuronModel,
                   initial: dict[str, InitialValue] | None = None) -> Population:
        """Add ``size`` neurons of ``model``; ``initial`` maps states to values or distributions."""
        return self.add(Population(name, size, model, dict(initial or {})))

    def poisson_source(self, name: str, size: int, rate_hz: float | np.ndarray,
                       start_ms: float = 0.0, stop_ms: float | None = None) -> PoissonSource:
        """Add ``size`` Poisson spike trains at ``rate_hz``."""
        return self.add(PoissonSource(name, size, rate_hz, start_ms, stop_ms))

    def spike_source(self, name: str, size: int, neurons, times_ms) -> SpikeTimesSource:
        """Add neurons that fire at given times (``neurons[k]`` fires at ``times_ms[k]``)."""
        return self.add(SpikeTimesSource(name, size, np.asarray(neurons), np.asarray(times_ms)))

    def inject_current(self, target: Endpoint, amplitude: float | np.ndarray = 0.0, *,
                       start_ms: float = 0.0, stop_ms: float | None = None,
                       series: np.ndarray | None = None, name: str | None = None
                       ) -> CurrentInput:
        """Inject a constant (or per-step ``series``) current into a population."""
        target_name = self._name_of(target)
        return self.add(CurrentInput(name or f"current->{target_name}", target_name, amplitude,
                                     start_ms, stop_ms, series))

    def poisson_input(self, target: Endpoint, n_afferents: int, rate_hz: float | np.ndarray,
                      weight: float, *, channel: str = "exc", start_ms: float = 0.0,
                      stop_ms: float | None = None, counts: str = "binomial",
                      name: str | None = None) -> PoissonInput:
        """Drive every neuron of ``target`` with ``n_afferents`` Poisson afferents at
        ``rate_hz`` each, ``weight`` per afferent event onto ``channel`` (see `PoissonInput`)."""
        target_name = self._name_of(target)
        return self.add(PoissonInput(name or f"poisson_input->{target_name}", target_name,
                                     n_afferents, rate_hz, weight, channel, start_ms, stop_ms,
                                     counts))

    def connect(self, pre: Endpoint, post: Endpoint, connector: Connector, *,
                weight: float | np.ndarray | Uniform | Normal = 1.0,
                delay_ms: float | np.ndarray | None = None, target: str = "exc",
                name: str | None = None) -> Projection:
        """Connect ``pre`` to ``post`` with ``connector``.

        ``weight`` (in the unit of the target state: mV for LIF) is a scalar, one value per
        synapse in CSR order, or a distribution drawn with the connector's seed. ``delay_ms``
        must be a whole number of steps; it defaults to the shortest delay of the network's
        schedule: one step under "evospike", 0 (Brian2's default) under "brian2"."""
        pre_name, post_name = self._name_of(pre), self._name_of(post)
        proj_name = name or f"{pre_name}->{post_name}"
        if target not in CHANNELS:
            raise ValidationError("Projection", proj_name, "target",
                                  f"must be one of {CHANNELS}", target)
        if not isinstance(connector, Connector):
            raise ValidationError("Projection", proj_name, "connector",
                                  "must be a connector such as FixedProbability(0.1)", connector)
        n_pre, n_post = self.size_of(pre_name), self.size_of(post_name)
        # before drawing a synapse: a connector asked for 10^11 synapses would otherwise grow
        # for minutes until the machine runs out of memory
        check_connect(proj_name, connector, n_pre, n_post, pre_name == post_name)
        rng = connector.rng()
        try:
            indptr, indices = connector.build(n_pre, n_post, pre_name == post_name, rng)
        except ValidationError as exc:  # say which projection the connector was building
            raise ValidationError("Projection", proj_name, f"connector {exc.kind}.{exc.field}",
                                  str(exc).split(f"{exc.field} ", 1)[-1].split(" (got ")[0],
                                  exc.value) from None
        nnz = int(indptr[-1])
        order = None
        if isinstance(connector, FromArrays):
            _, order = connector.order(n_pre)
            if connector.weights is not None:
                weight = connector.weights[order]
            if connector.delays_ms is not None:
                delay_ms = connector.delays_ms[order]
        weights = self._synapse_values(proj_name, "weight", weight, nnz, rng)
        if delay_ms is None:
            delays = np.full(nnz, MIN_DELAY_STEPS[self.schedule], dtype=np.int32)
        else:
            d = real_array("Projection", proj_name, "delay_ms", delay_ms)
            if d.ndim == 0:
                delays = np.full(nnz, steps_of(float(d), self.dt_ms, "Projection", proj_name,
                                               "delay_ms"), dtype=np.int32)
            elif d.shape != (nnz,):
                raise ValidationError("Projection", proj_name, "delay_ms",
                                      f"must be a scalar or have one value per synapse ({nnz})",
                                      d.shape)
            else:
                exact = d / self.dt_ms
                steps = np.round(exact)
                off = np.abs(exact - steps) > 1e-6 * np.maximum(1.0, np.abs(exact))
                if np.any(off):
                    raise ValidationError("Projection", proj_name, "delay_ms",
                                          f"must be whole {self.dt_ms} ms time steps",
                                          float(d[off][0]))
                delays = steps.astype(np.int32)
        return self.add(Projection(proj_name, pre_name, post_name, n_pre, n_post, indptr,
                                   indices, weights, delays, target))

    @staticmethod
    def _synapse_values(proj: str, field_name: str, value, nnz: int,
                        rng: np.random.Generator) -> np.ndarray:
        if isinstance(value, (Uniform, Normal)):
            return value.draw(rng, nnz)
        arr = real_array("Projection", proj, field_name, value)
        if arr.ndim == 0:
            return np.full(nnz, float(arr))
        if arr.shape != (nnz,):
            raise ValidationError("Projection", proj, field_name,
                                  f"must be a scalar or have one value per synapse ({nnz})",
                                  arr.shape)
        return arr.copy()

    def stdp(self, projection: Projection | str, name: str | None = None, **params) -> STDP:
        """Make ``projection`` plastic with pair-based STDP (see `evospike.ir.plasticity`)."""
        proj = projection if isinstance(projection, str) else projection.name
        return self.add(STDP(name or f"{proj}.stdp", proj, **params))

    def modulator(self, name: str, tau_ms: float, drives=(), initial: float = 0.0) -> Modulator:
        """A neuromodulatory signal (see `evospike.ir.modulators`): decays with ``tau_ms``,
        raised by ``drives`` (RewardEvents, RewardSeries, SpikeCountDrive, NoveltyDrive)."""
        return self.add(Modulator(name, tau_ms, list(drives), initial))

    def reward_stdp(self, projection: Projection | str, modulator: Modulator | str,
                    name: str | None = None, **params) -> RewardModulatedSTDP:
        """Make ``projection`` plastic with three-factor STDP read out by ``modulator``."""
        proj = projection if isinstance(projection, str) else projection.name
        mod = modulator if isinstance(modulator, str) else modulator.name
        return self.add(RewardModulatedSTDP(name or f"{proj}.rstdp", proj, modulator=mod,
                                            **params))

    def homeostasis(self, population: Population | str, name: str | None = None,
                    **params) -> Homeostasis:
        """Keep ``population``'s neurons near a target rate (see `Homeostasis`)."""
        pop = self._name_of(population)
        return self.add(Homeostasis(name or f"{pop}.homeostasis", pop, **params))

    def metaplasticity(self, rule: STDP | str, modulator: Modulator | str, parameter: str,
                       name: str | None = None, **params) -> Metaplasticity:
        """Let ``parameter`` of ``rule`` adapt to ``modulator``'s reward (see `Metaplasticity`)."""
        rule_name = rule if isinstance(rule, str) else rule.name
        mod = modulator if isinstance(modulator, str) else modulator.name
        return self.add(Metaplasticity(name or f"{rule_name}.{parameter}.meta", rule_name, mod,
                                       parameter, **params))

    def structural_plasticity(self, projection: Projection | str, name: str | None = None,
                              **params) -> StructuralPlasticity:
        """Prune and grow the synapses of ``projection`` while the network runs (see
        `evospike.ir.structural`)."""
        proj = projection if isinstance(projection, str) else projection.name
        return self.add(StructuralPlasticity(name or f"{proj}.structural", proj, **params))

    def terminal_attractor_pruning(self, projections, modulator: Modulator | str,
                                   name: str = "pruning", **params) -> TerminalAttractorPruning:
        """Terminal-attractor pruning of the plastic ``projections`` (one global threshold),
        E read from ``modulator`` (see `evospike.pruning` and docs/PRUNING.md)."""
        if isinstance(projections, (str, Projection)):
            projections = (projections,)
        names = tuple(p if isinstance(p, str) else p.name for p in projections)
        mod = modulator if isinstance(modulator, str) else modulator.name
        return self.add(TerminalAttractorPruning(name, names, mod, **params))

    def memory_tiers(self, projection: Projection | str, name: str | None = None,
                     **params) -> MemoryTiers:
        """Short / mid / long weight components with consolidation on the plastic
        ``projection`` (see `evospike.ir.memory`)."""
        proj = projection if isinstance(projection, str) else projection.name
        return self.add(MemoryTiers(name or f"{proj}.tiers", proj, **params))

    def key_value_memory(self, name: str, n_keys: int, n_values: int, writes, reads,
                         **params):
        """A spiking key-value memory block: keys, values, a plastic projection with memory
        tiers and a write signal (see `evospike.ir.memory.add_key_value_memory`)."""
        from evospike.ir.memory import add_key_value_memory

        return add_key_value_memory(self, name, n_keys, n_values, writes, reads, **params)

    def apoptosis(self, population: Population | str, name: str | None = None,
                  **params) -> Apoptosis:
        """Health, survival, death and optional rebirth of ``population``'s neurons (see
        `evospike.ir.apoptosis`)."""
        pop = self._name_of(population)
        return self.add(Apoptosis(name or f"{pop}.apoptosis", pop, **params))

    def epigenetic_gate(self, population: Population | str, source: Endpoint, w_context,
                        name: str | None = None, **params) -> EpigeneticGate:
        """Gate ``population``'s neurons by the recent activity of ``source`` (and a modulator's
        history), see `evospike.ir.gating`."""
        pop, src = self._name_of(population), self._name_of(source)
        return self.add(EpigeneticGate(name or f"{pop}.gate", pop, src, w_context, **params))

    def participation(self, population: Population | str, modulator: Modulator | str,
                      name: str | None = None, **params) -> NeuromodulatedParticipation:
        """Let ``modulator`` set the fraction of ``population`` that takes part in each step
        (see `evospike.ir.gating`)."""
        pop = self._name_of(population)
        mod = modulator if isinstance(modulator, str) else modulator.name
        return self.add(NeuromodulatedParticipation(name or f"{pop}.participation", pop, mod,
                                                    **params))

    def energy_budget(self, population: Population | str, capacity_pj: float,
                      recharge_pj_per_ms: float, name: str | None = None,
                      **params) -> EnergyBudget:
        """Give ``population``'s neurons energy stores (pJ) that spikes drain at a hardware
        profile's rates (see `evospike.ir.energy_budget`)."""
        pop = self._name_of(population)
        return self.add(EnergyBudget(name or f"{pop}.energy", pop, capacity_pj,
                                     recharge_pj_per_ms, **params))

    def global_energy_budget(self, budgets, capacity_pj: float, recharge_pj_per_ms: float,
                             name: str = "global.energy", **params) -> GlobalEnergyBudget:
        """One energy store shared by the populations of ``budgets`` (EnergyBudget nodes)."""
        names = tuple(b if isinstance(b, str) else b.name for b in budgets)
        return self.add(GlobalEnergyBudget(name, names, capacity_pj, recharge_pj_per_ms,
                                           **params))

    def record_spikes(self, *targets: Endpoint) -> None:
        """Record every spike of these populations or sources."""
        for target in targets:
            self.add(SpikeMonitor(self._name_of(target)))

    def record_state(self, target: Endpoint, variable: str, neurons=None, every_steps: int = 1,
                     name: str | None = None) -> StateMonitor:
        """Record ``variable`` of ``neurons`` (default: all) every ``every_steps`` steps.
        ``target`` is a population or a process (a Modulator's ``level``, a Homeostasis's
        ``theta``, ...)."""
        target_name = target if isinstance(target, str) else target.name
        if target_name in self.processes:
            size = self.processes[target_name].state_size(self)
        else:
            size = self.size_of(self._name_of(target))
        if neurons is None:
            neurons = np.arange(size)
        return self.add(StateMonitor(name or f"{target_name}.{variable}", target_name, variable,
                                     np.asarray(neurons), every_steps))

    def record_weights(self, projection: Projection | str, every_steps: int,
                       name: str | None = None) -> WeightMonitor:
        """Snapshot the weights of ``projection`` every ``every_steps`` steps."""
        proj = projection if isinstance(projection, str) else projection.name
        return self.add(WeightMonitor(name or f"{proj}.weights", proj, every_steps))

    # ------------------------------------------------------------------ summary
    def recurrent_populations(self) -> list[str]:
        """Populations on a cycle of projections (including self-connections); empty for a
        feed-forward network, whose activity is fixed by its inputs and not chaotic."""
        edges: dict[str, set[str]] = {name: set() for name in self.populations}
        for proj in self.projections.values():
            if proj.pre in self.populations and proj.n_synapses:
                edges[proj.pre].add(proj.post)
        on_cycle = []
        for start in self.populations:
            seen, stack = set(), list(edges[start])
            while stack:
                node = stack.pop()
                if node == start:
                    on_cycle.append(start)
                    break
                if node not in seen:
                    seen.add(node)
                    stack.extend(edges[node])
        return on_cycle

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations.values())

    @property
    def n_synapses(self) -> int:
        return sum(p.n_synapses for p in self.projections.values())

    def save(self, path) -> None:
        """Write the network to HDF5 (atomically; a lossless round trip with `load`)."""
        from evospike.ir.serialize import save_network

        save_network(self, path)

    @staticmethod
    def load(path) -> Network:
        """Read a network written by `save`."""
        from evospike.ir.serialize import load_network

        return load_network(path)
