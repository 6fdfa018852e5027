"""AEG energy budgets (EvoSpikeNet's energy-driven computing) as IR processes.

Every neuron of a population with an `EnergyBudget` has an energy store (pJ). A spike of neuron
``i`` costs the energy of the spike and of every synaptic event it causes, at the rates of a
hardware profile (`evospike.hardware.energy_costs`)::

    cost_i = E(neuron_update_active) + fanout_i * E(ac)          (pJ)

``fanout_i``: the synapses with a non-zero weight leaving neuron ``i`` over every projection of
the network (what `evospike.energy` counts as SynOps; a spike is charged when it is emitted,
whatever its delay). At the end of step n, with ``s_i`` = 1 for a neuron that spiked::

    e_i[n] = min(e_i[n-1] - s_i cost_i + recharge_pj_per_ms * dt, capacity_pj)
    P[n]   = min(P[n-1] - sum_i s_i cost_i + population_recharge_pj_per_ms * dt,
                 population_capacity_pj)                          (the population's budget)
    may fire in step n + 1  <=>  e_i[n] >= cost_i  and  P[n] >= cost_i

A neuron without the energy to fire still integrates (its fire mask is off, see
``backends/torch/processes.py``). The population store is optional (None: unlimited). Stores
may go below zero when several neurons fire in one step on a shared store that held enough for
each alone; they then stay blocked until recharged. ``spent_pj`` accumulates the energy spent
by the population over the run: the run's energy estimate on the profile.

`GlobalEnergyBudget` is one store shared by the populations of several `EnergyBudget` nodes
(the same charging and recharge rule, the same costs), with its own fire mask on each of them.

States of `EnergyBudget` (per neuron): ``energy_pj``; ``population_energy_pj`` and ``spent_pj``
(the same in every neuron). States of `GlobalEnergyBudget` (size 1): ``energy_pj``,
``spent_pj``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError
from evospike.ir.checks import check_name
from evospike.ir.modulators import _finite
from evospike.ir.schedule import Phase


def _nonneg(kind: str, name: str, field_name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    value = _finite(kind, name, field_name, value)
    if value < 0:
        raise ValidationError(kind, name, field_name, "must be >= 0", value)
    return value


def _profile(kind: str, name: str, profile: str):
    from evospike.hardware.energy_costs import PROFILES

    if profile not in PROFILES:
        raise ValidationError(kind, name, "profile",
                              f"is not a hardware energy profile ({', '.join(PROFILES)})",
                              profile)
    prof = PROFILES[profile]
    for op in ("ac", "neuron_update_active"):
        if op not in prof.costs:
            raise ValidationError(kind, name, "profile", f"has no cost for '{op}' operations",
                                  profile)
    return prof


def spike_costs_pj(net, population: str, profile: str) -> np.ndarray:
    """``cost_i`` (pJ) of a spike of each neuron of ``population``: the spike plus its fan-out
    of synaptic events (non-zero weights, over every projection leaving it), shape (size,)."""
    from evospike.hardware.energy_costs import get_profile

    prof = get_profile(profile)
    size = net.populations[population].size
    fanout = np.zeros(size, dtype=np.int64)
    for proj in net.projections.values():
        if proj.pre == population:
            fanout += np.bincount(proj.pre_indices()[proj.weights != 0], minlength=size)
    return prof.cost_pJ("neuron_update_active") + fanout * prof.cost_pJ("ac")


@dataclass
class EnergyBudget:
    """Energy stores of population ``population`` priced on hardware profile ``profile`` (a
    name of `evospike.hardware.energy_costs.PROFILES`): per neuron ``capacity_pj`` and
    ``recharge_pj_per_ms``, starting at ``initial_fraction`` of the capacity; optionally one
    store for the whole population (``population_capacity_pj``,
    ``population_recharge_pj_per_ms``). See the module docstring."""

    name: str
    population: str
    capacity_pj: float
    recharge_pj_per_ms: float
    profile: str = "loihi2"
    initial_fraction: float = 1.0
    population_capacity_pj: float | None = None
    population_recharge_pj_per_ms: float | None = None

    kind: ClassVar[str] = "EnergyBudget"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.ENERGY
    state_names: ClassVar[tuple[str, ...]] = ("energy_pj", "population_energy_pj", "spent_pj")

    def __post_init__(self) -> None:
        kind, name = self.kind, str(self.name)
        check_name(kind, self.name)
        if not isinstance(self.population, str):
            raise ValidationError(kind, name, "population", "must be a population's name",
                                  self.population)
        _profile(kind, name, self.profile)
        self.capacity_pj = _nonneg(kind, name, "capacity_pj", self.capacity_pj)
        self.recharge_pj_per_ms = _nonneg(kind, name, "recharge_pj_per_ms",
                                          self.recharge_pj_per_ms)
        self.initial_fraction = _nonneg(kind, name, "initial_fraction", self.initial_fraction)
        if self.initial_fraction > 1:
            raise ValidationError(kind, name, "initial_fraction", "must lie in [0, 1]",
                                  self.initial_fraction)
        self.population_capacity_pj = _nonneg(kind, name, "population_capacity_pj",
                                              self.population_capacity_pj, allow_none=True)
        self.population_recharge_pj_per_ms = _nonneg(
            kind, name, "population_recharge_pj_per_ms", self.population_recharge_pj_per_ms,
            allow_none=True)
        if (self.population_capacity_pj is None) != (self.population_recharge_pj_per_ms is None):
            raise ValidationError(kind, name, "population_recharge_pj_per_ms",
                                  "and population_capacity_pj must be given together",
                                  self.population_recharge_pj_per_ms)

    def state_size(self, net) -> int:
        return net.populations[self.population].size

    def check(self, net) -> None:
        from evospike.ir.gating import _target_population

        _target_population(self, net)


@dataclass
class GlobalEnergyBudget:
    """One energy store (``capacity_pj``, ``recharge_pj_per_ms``, starting at
    ``initial_fraction`` of the capacity) shared by the populations of the `EnergyBudget` nodes
    ``budgets`` (priced with their profiles). See the module docstring."""

    name: str
    budgets: tuple[str, ...]
    capacity_pj: float
    recharge_pj_per_ms: float
    initial_fraction: float = 1.0

    kind: ClassVar[str] = "GlobalEnergyBudget"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.GLOBAL_ENERGY
    state_names: ClassVar[tuple[str, ...]] = ("energy_pj", "spent_pj")

    def __post_init__(self) -> None:
        kind, name = self.kind, str(self.name)
        check_name(kind, self.name)
        if isinstance(self.budgets, str):
            self.budgets = (self.budgets,)
        self.budgets = tuple(self.budgets)
        if not self.budgets or not all(isinstance(b, str) for b in self.budgets):
            raise ValidationError(kind, name, "budgets",
                                  "must name one or more EnergyBudget processes", self.budgets)
        self.capacity_pj = _nonneg(kind, name, "capacity_pj", self.capacity_pj)
        self.recharge_pj_per_ms = _nonneg(kind, name, "recharge_pj_per_ms",
                                          self.recharge_pj_per_ms)
        self.initial_fraction = _nonneg(kind, name, "initial_fraction", self.initial_fraction)
        if self.initial_fraction > 1:
            raise ValidationError(kind, name, "initial_fraction", "must lie in [0, 1]",
                                  self.initial_fraction)

    def state_size(self, net) -> int:
        return 1

    def check(self, net) -> None:
        for budget in self.budgets:
            if budget not in net.processes or net.processes[budget].kind != "EnergyBudget":
                raise ValidationError(self.kind, self.name, "budgets",
                                      "names no EnergyBudget of the network (add it first)",
                                      budget)
        if len(set(self.budgets)) != len(self.budgets):
            raise ValidationError(self.kind, self.name, "budgets", "names a budget twice",
                                  self.budgets)
        for other in net.processes.values():
            if isinstance(other, GlobalEnergyBudget) and set(other.budgets) & set(self.budgets):
                raise ValidationError(self.kind, self.name, "budgets",
                                      f"shares a budget with global budget '{other.name}'",
                                      sorted(set(other.budgets) & set(self.budgets)))

    def populations(self, net) -> list[str]:
        return [net.processes[b].population for b in self.budgets]


ENERGY_PROCESSES: dict[str, type] = {"EnergyBudget": EnergyBudget,
                                     "GlobalEnergyBudget": GlobalEnergyBudget}


def energy_spent_pj(net, results) -> dict[str, float]:
    """The run's energy estimate per `EnergyBudget` of ``net`` (pJ, summed over the trials of
    ``results``): every recorded spike of the budget's population priced at its profile's
    rates (``cost_i`` above), and under ``"total"`` their sum. Equals the final ``spent_pj`` of
    each budget; needs the spikes of the budgets' populations recorded."""
    from evospike.errors import EvoSpikeError

    out: dict[str, float] = {}
    for name, node in net.processes.items():
        if not isinstance(node, EnergyBudget):
            continue
        if node.population not in results.spikes_by_node:
            raise EvoSpikeError(f"energy budget '{name}': the results hold no spikes of "
                                f"'{node.population}' (network.record_spikes(...))")
        neurons = results.spikes_by_node[node.population].neuron.astype(np.int64)
        out[name] = float(spike_costs_pj(net, node.population, node.profile)[neurons].sum())
    out["total"] = float(sum(out.values()))
    return out


def energy_meta(net, results) -> dict:
    """What a runner puts into ``Results.meta`` for the energy budgets of ``net``: the run's
    energy estimate per budget and in total (``energy_pj``, pJ, see `energy_spent_pj`) with the
    profiles used, or why it is missing. Empty without budgets."""
    budgets = {name: node for name, node in net.processes.items()
               if isinstance(node, EnergyBudget)}
    if not budgets:
        return {}
    missing = sorted({b.population for b in budgets.values()} - set(results.spikes_by_node))
    if missing:
        return {"energy_pj_note": "no energy estimate: the spikes of " + ", ".join(missing) +
                " were not recorded"}
    return {"energy_pj": energy_spent_pj(net, results),
            "energy_profiles": {name: b.profile for name, b in budgets.items()}}
