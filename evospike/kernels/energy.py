"""AEG energy budgets (`evospike.ir.energy_budget`), at the end of step n, ``s_i`` = 1 for a
neuron that spiked::

    e_i[n] = min(e_i[n-1] - s_i cost_i + recharge, capacity)
    P[n]   = min(P[n-1] - sum_i s_i cost_i + population_recharge, population_capacity)
    may fire in step n + 1  <=>  e_i[n] >= cost_i  and  P[n] >= cost_i

and a `GlobalEnergyBudget`'s store likewise, charged the spikes of all its populations, with
``G[n] >= cost_i`` as its fire mask. Recharges are per step (pJ/ms * dt)."""

from __future__ import annotations

from typing import NamedTuple

from .array import Array, clip, expand_last, sum_last


class BudgetStep(NamedTuple):
    energy: Array  # (..., n) pJ
    pool: Array  # (...) pJ, the population's store (inf: none)
    spent: Array  # (...) pJ, cumulative
    allowed: Array  # (..., n) bool: the fire mask of the next step


def charge(store: Array, spent: Array | float, recharge: float, capacity: float) -> Array:
    """``min(store - spent + recharge, capacity)``."""
    return clip(store - spent + recharge, None, capacity)


def budget_step(energy: Array, pool: Array, spent: Array, charged: Array, cost: Array, *,
                recharge: float, capacity: float, pool_recharge: float,
                pool_capacity: float | None) -> BudgetStep:
    """One end-of-step update of an `EnergyBudget`: ``charged`` is what each neuron spent in
    the step (``s_i cost_i``); the pool is left alone where ``pool_capacity`` is None."""
    total = sum_last(charged)
    energy = charge(energy, charged, recharge, capacity)
    if pool_capacity is not None:
        pool = charge(pool, total, pool_recharge, pool_capacity)
    allowed = (energy >= cost) & (expand_last(pool, energy) >= cost)
    return BudgetStep(energy, pool, spent + total, allowed)


def global_mask(store: Array, cost: Array) -> Array:
    """``G >= cost_i`` (boolean, (..., n)) for one member population."""
    return expand_last(store, cost) >= cost


def global_step(store: Array, spent: Array, total: Array, *, recharge: float,
                capacity: float) -> tuple[Array, Array]:
    """One end-of-step update of a `GlobalEnergyBudget`: ``total`` is what all its
    populations spent in the step. Returns (store, cumulative spent)."""
    return charge(store, total, recharge, capacity), spent + total
