"""Torch state and step functions of the AEG energy budgets (`evospike.ir.energy_budget`): each
budget charges the spikes of its population at the end of the step, recharges, and installs a
fire mask (a neuron without the energy to fire integrates but cannot fire in the next step)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from evospike.ir.energy_budget import EnergyBudget, GlobalEnergyBudget, spike_costs_pj
from evospike.kernels import energy as kernels

from .processes import TorchProcess, set_masks
from .registry import NODE_COMPILERS, CompileContext


@dataclass
class TEnergyBudget(TorchProcess):
    node: EnergyBudget
    cost: torch.Tensor  # (n,) pJ per spike of each neuron
    energy: torch.Tensor  # (trials, n) pJ
    pool: torch.Tensor  # (trials,) pJ, the population's store (inf: none)
    spent: torch.Tensor  # (trials,) pJ, cumulative
    recharge_step: float  # pJ per step, per neuron
    pool_recharge_step: float
    pool_capacity: float

    def state(self, variable: str) -> torch.Tensor:
        if variable == "energy_pj":
            return self.energy
        if variable == "population_energy_pj":
            return self.pool.unsqueeze(1).expand_as(self.energy)
        if variable == "spent_pj":
            return self.spent.unsqueeze(1).expand_as(self.energy)
        raise KeyError(variable)

    def charged(self, fired: dict[str, torch.Tensor]) -> torch.Tensor:
        """The energy each neuron spent in this step, (trials, n) pJ."""
        trials, n = self.energy.shape
        spent = torch.zeros(trials * n, dtype=self.energy.dtype, device=self.energy.device)
        flat = fired[self.node.population]
        spent[flat] = self.cost[flat % n]
        return spent.view(trials, n)

    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        b = self.node
        out = kernels.budget_step(
            self.energy, self.pool, self.spent, self.charged(fired), self.cost,
            recharge=self.recharge_step, capacity=b.capacity_pj,
            pool_recharge=self.pool_recharge_step,
            pool_capacity=None if b.population_capacity_pj is None else self.pool_capacity)
        self.energy, self.pool, self.spent = out.energy, out.pool, out.spent
        set_masks(cn.populations[b.population], b.name, fire=out.allowed)


@NODE_COMPILERS.register(EnergyBudget)
def compile_energy_budget(node: EnergyBudget, net, ctx: CompileContext) -> TEnergyBudget:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    cost = torch.as_tensor(spike_costs_pj(net, node.population, node.profile), dtype=dtype,
                           device=device)
    n = cost.numel()
    pool_cap = float("inf") if node.population_capacity_pj is None else \
        node.population_capacity_pj
    pool_recharge = 0.0 if node.population_recharge_pj_per_ms is None else \
        node.population_recharge_pj_per_ms * net.dt_ms
    return TEnergyBudget(
        node, cost,
        torch.full((trials, n), node.capacity_pj * node.initial_fraction, dtype=dtype,
                   device=device),
        torch.full((trials,), pool_cap * node.initial_fraction if math.isfinite(pool_cap)
                   else pool_cap, dtype=dtype, device=device),
        torch.zeros((trials,), dtype=dtype, device=device),
        node.recharge_pj_per_ms * net.dt_ms, pool_recharge, pool_cap)


@dataclass
class TGlobalEnergyBudget(TorchProcess):
    node: GlobalEnergyBudget
    members: list[tuple[str, str]]  # (budget process, population)
    energy: torch.Tensor  # (trials,)
    spent: torch.Tensor  # (trials,)
    recharge_step: float

    def state(self, variable: str) -> torch.Tensor:
        return {"energy_pj": self.energy, "spent_pj": self.spent}[variable].unsqueeze(1)

    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        total = torch.zeros_like(self.energy)
        for budget, _ in self.members:
            total = total + cn.processes[budget].charged(fired).sum(dim=1)
        self.energy, self.spent = kernels.global_step(
            self.energy, self.spent, total, recharge=self.recharge_step,
            capacity=self.node.capacity_pj)
        for budget, population in self.members:
            set_masks(cn.populations[population], self.node.name,
                      fire=kernels.global_mask(self.energy, cn.processes[budget].cost))


@NODE_COMPILERS.register(GlobalEnergyBudget)
def compile_global_energy_budget(node: GlobalEnergyBudget, net,
                                 ctx: CompileContext) -> TGlobalEnergyBudget:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    members = [(b, net.processes[b].population) for b in node.budgets]
    return TGlobalEnergyBudget(
        node, members,
        torch.full((trials,), node.capacity_pj * node.initial_fraction, dtype=dtype,
                   device=device),
        torch.zeros((trials,), dtype=dtype, device=device), node.recharge_pj_per_ms * net.dt_ms)
