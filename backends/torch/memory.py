"""Torch state and step of `MemoryTiers` (`evospike.ir.memory`): per trial and synapse the
``short``, ``mid`` and ``long`` weight components, the importance and the access count, updated
at the end of every step after the plasticity rules and the modulators (phase 40).

The plasticity rule is untouched: it updates ``proj.weights`` as before, and this process reads
what changed since it last composed the weight (``w - w_prev``) and books it into ``short``, so
the eager engine needs no change for the tiers.

Connectivity changes (`backends/torch/structure.py`, e.g. apoptosis removing a dead neuron's
synapses) must reach the per-synapse state: whoever changes a projection's layout calls
``synapses_changed(cn, change)`` on every process that has it (`backends/torch/apoptosis.py`
does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evospike.ir.memory import MemoryTiers

from .processes import TorchProcess


@dataclass
class TMemoryTiers(TorchProcess):
    node: MemoryTiers
    projection: str
    modulator: str
    short: torch.Tensor  # (trials, synapses), in the weight's unit
    mid: torch.Tensor
    long: torch.Tensor
    importance: torch.Tensor
    access: torch.Tensor  # float (trials, synapses): consolidations since the last move to long
    prev: torch.Tensor  # the weight the tiers composed at the end of the previous step
    decay_short: float
    decay_mid: float
    decay_long: float  # 1.0: no decay
    decay_importance: float
    w_min: float
    w_max: float


    def state(self, variable: str) -> torch.Tensor:
        return {"short": self.short, "mid": self.mid, "long": self.long,
                "importance": self.importance, "access": self.access}[variable]

    def update(self, cn, step: int, fired, rewards) -> None:
        node = self.node
        proj = cn.projections[self.projection]
        w = proj.weights  # (trials, synapses): plastic projections keep one vector per trial
        dw = w - self.prev
        if node.importance == "dw":
            source = dw.abs()
        else:
            source = proj.plastic.eligibility.abs()
        self.importance.mul_(self.decay_importance).add_(source)
        self.short.add_(dw).mul_(self.decay_short)
        self.mid.mul_(self.decay_mid)
        if self.decay_long != 1.0:
            self.long.mul_(self.decay_long)
        total = self.short + self.mid + self.long
        clipped = total.clamp(self.w_min, self.w_max)
        self.short.add_(clipped - total)  # short absorbs the clip: w == short + mid + long
        w.copy_(clipped)
        self.prev.copy_(clipped)
        if step % node.every_steps == 0:
            self.consolidate(cn.processes[self.modulator].level)

    def consolidate(self, level: torch.Tensor) -> None:
        """Step 5 of `evospike.ir.memory`: short -> mid where ``S = I * R`` is above the
        threshold, mid -> long after enough reactivations, then the capacity limits. Moves
        weight between tiers without changing their sum."""
        node = self.node
        score = self.importance * level.unsqueeze(1)
        candidate = score > node.threshold
        moved = torch.where(candidate, self.short * node.short_to_mid,
                            torch.zeros_like(self.short))
        self.mid.add_(moved)
        self.short.sub_(moved)
        self.access.add_(candidate.to(self.access.dtype))
        self.importance.masked_fill_(candidate, 0.0)
        up = self.access >= node.reactivations_to_long
        moved = torch.where(up, self.mid * node.mid_to_long, torch.zeros_like(self.mid))
        self.long.add_(moved)
        self.mid.sub_(moved)
        self.access.masked_fill_(up, 0.0)
        n = self.short.shape[1]
        _evict(self.long, self.mid, node.capacity("long", n))
        _evict(self.mid, self.short, node.capacity("mid", n))

    def synapses_changed(self, cn, change) -> None:
        """Re-index the per-synapse state after ``change`` (a `structure.StructureChange`) on
        this projection: removed synapses drop out; added ones start in ``initial_tier`` with
        the weight they were given."""
        if change.projection != self.projection:
            return
        proj = cn.projections[self.projection]
        nnz = proj.weights.shape[-1]
        tensors = ("short", "mid", "long", "importance", "access", "prev")
        for name in tensors:
            old = getattr(self, name)
            if change.n_added == 0:
                new = old[:, change.kept]
            else:
                new = torch.zeros((old.shape[0], nnz), dtype=old.dtype, device=old.device)
                new[:, change.kept] = old
            setattr(self, name, new.contiguous())
        if change.n_added:
            w = proj.weights if proj.weights.dim() == 2 else proj.weights.unsqueeze(0)
            ids = change.new_ids
            tier = getattr(self, self.node.initial_tier)
            tier[:, ids] = w[:, ids]
            self.prev[:, ids] = w[:, ids]


def _evict(source: torch.Tensor, target: torch.Tensor, capacity: int) -> None:
    """Per trial, keep the ``capacity`` largest ``|source|`` (ties: the lower synapse index) and
    hand the rest of the nonzero entries to ``target``."""
    if capacity >= source.shape[1]:
        return
    occupied = source != 0
    if not bool((occupied.sum(dim=1) > capacity).any()):
        return
    key = torch.where(occupied, source.abs(), torch.full_like(source, -1.0))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(source.shape[1], device=source.device)
                  .unsqueeze(0).expand_as(order))
    evict = occupied & (rank >= capacity)
    target.add_(torch.where(evict, source, torch.zeros_like(source)))
    source.masked_fill_(evict, 0.0)


def compile_memory_tiers(node: MemoryTiers, net, trials: int, dtype, device) -> TMemoryTiers:
    rule = node.rule_of(net)
    w0 = torch.as_tensor(np.ascontiguousarray(net.projections[node.projection].weights),
                         dtype=dtype, device=device).unsqueeze(0).repeat(trials, 1)
    zeros = torch.zeros_like(w0)
    tiers = {tier: zeros.clone() for tier in ("short", "mid", "long")}
    tiers[node.initial_tier] = w0.clone()
    dt = net.dt_ms
    return TMemoryTiers(
        node, node.projection, node.modulator_of(net), tiers["short"], tiers["mid"],
        tiers["long"], zeros.clone(), zeros.clone(), w0.clone(),
        float(np.exp(-dt / node.tau_short_ms)), float(np.exp(-dt / node.tau_mid_ms)),
        1.0 if node.tau_long_ms is None else float(np.exp(-dt / node.tau_long_ms)),
        float(np.exp(-dt / node.tau_importance_ms)), rule.w_min, rule.w_max)
