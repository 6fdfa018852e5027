"""Brian2 objects for the AEG energy budgets (`evospike.ir.energy_budget`): the stores live in
the population's equations (``energy_pj``, ``population_energy_pj``, ``spent_pj``), the fire
masks join its threshold (``energy_ok``, and ``global_energy_ok`` for a population under a
`GlobalEnergyBudget`), and the charging runs at the end of the step as a network operation, in
the IR schedule's order (after the gates and participation), as in `backends/brian2/gating.py`.

The charging is not re-expressed in Brian2: the population store and ``spent_pj`` are sums over
the population's neurons in every step (and a `GlobalEnergyBudget` a sum over populations), a
reduction Brian2's per-neuron code cannot take within the step. The network operation calls the
same array functions as the torch backend (`evospike.kernels.energy`), so for the budgets the
Brian2 comparison checks the fire masks, the schedule and the costs, not a second copy of the
charging arithmetic (`INDEPENDENCE`)."""

from __future__ import annotations

import numpy as np

from evospike.ir.energy_budget import EnergyBudget, GlobalEnergyBudget, spike_costs_pj
from evospike.kernels import energy as kernels

from .gating import add_fire_mask, require_runtime, spike_counter, take_counts
from .names import object_name
from .registry import NODE_BUILDERS
from .schedule import order_of


def _in_global(node: EnergyBudget, net) -> bool:
    return any(isinstance(p, GlobalEnergyBudget) and node.name in p.budgets
               for p in net.processes.values())


def energy_edit(em, node: EnergyBudget, net) -> None:
    em.equations += "\nenergy_pj : 1\npopulation_energy_pj : 1\nspent_pj : 1\nenergy_ok : 1"
    add_fire_mask(em, "energy_ok")
    if _in_global(node, net):
        em.equations += "\nglobal_energy_ok : 1"
        add_fire_mask(em, "global_energy_ok")


def energy_objects(b2, group, em, node: EnergyBudget, net) -> list:
    return []


@NODE_BUILDERS.register(EnergyBudget, phase=30, population_hook=(energy_edit, energy_objects))
def build_energy(b2, node: EnergyBudget, net, built) -> object:
    require_runtime(b2, node)
    group = built.groups[node.population]
    cost = spike_costs_pj(net, node.population, node.profile)
    pool_cap = np.inf if node.population_capacity_pj is None else node.population_capacity_pj
    pool_recharge = 0.0 if node.population_recharge_pj_per_ms is None else \
        node.population_recharge_pj_per_ms * net.dt_ms
    recharge = node.recharge_pj_per_ms * net.dt_ms
    group.energy_pj = node.capacity_pj * node.initial_fraction
    state = {"pool": np.asarray(pool_cap * node.initial_fraction if np.isfinite(pool_cap)
                                else pool_cap), "spent": np.asarray(0.0)}
    group.population_energy_pj = state["pool"]
    group.spent_pj = 0.0
    group.energy_ok = 1.0
    if _in_global(node, net):
        group.global_energy_ok = 1.0
    name = object_name("proc", net, node.name)
    counter = spike_counter(b2, net, built, node.population, f"{name}_counter")

    def update():
        out = kernels.budget_step(
            np.array(group.energy_pj[:]), state["pool"], state["spent"],
            take_counts(counter) * cost, cost, recharge=recharge, capacity=node.capacity_pj,
            pool_recharge=pool_recharge,
            pool_capacity=None if node.population_capacity_pj is None else pool_cap)
        state["pool"], state["spent"] = out.pool, out.spent
        group.energy_pj[:] = out.energy
        group.population_energy_pj[:] = out.pool
        group.spent_pj[:] = out.spent
        group.energy_ok[:] = out.allowed.astype(np.float64)

    built.network.add(b2.NetworkOperation(update, clock=built.clock, when="end",
                                          order=order_of(net, node.name),
                                          name=f"{name}_update"))
    built.processes[node.name] = group
    return group


@NODE_BUILDERS.register(GlobalEnergyBudget, phase=40)
def build_global_energy(b2, node: GlobalEnergyBudget, net, built) -> object:
    require_runtime(b2, node)
    name = object_name("proc", net, node.name)
    group = b2.NeuronGroup(1, "energy_pj : 1\nspent_pj : 1", clock=built.clock, name=name)
    group.energy_pj = node.capacity_pj * node.initial_fraction
    members = []
    for k, budget in enumerate(node.budgets):
        b = net.processes[budget]
        members.append((built.groups[b.population], spike_costs_pj(net, b.population, b.profile),
                        spike_counter(b2, net, built, b.population, f"{name}_counter{k}")))
    recharge = node.recharge_pj_per_ms * net.dt_ms

    def update():
        total = 0.0
        for _, cost, counter in members:
            total = total + float((take_counts(counter) * cost).sum())
        energy, spent = kernels.global_step(
            np.asarray(float(group.energy_pj[0])), np.asarray(float(group.spent_pj[0])),
            np.asarray(total), recharge=recharge, capacity=node.capacity_pj)
        group.energy_pj[0] = energy
        group.spent_pj[0] = spent
        for pop_group, cost, _ in members:
            pop_group.global_energy_ok[:] = kernels.global_mask(energy, cost).astype(np.float64)

    built.network.add(group, b2.NetworkOperation(update, clock=built.clock, when="end",
                                                 order=order_of(net, node.name),
                                                 name=f"{name}_update"))
    built.processes[node.name] = group
    return group
