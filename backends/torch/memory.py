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
from evospike.kernels import memory as kernels

from .processes import TorchProcess
from .registry import NODE_COMPILERS, CompileContext


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
        source = None if node.importance == "dw" else proj.plastic.eligibility
        tiers, clipped = kernels.step(
            self._tiers(), w, self.prev, source, decay_short=self.decay_short,
            decay_mid=self.decay_mid, decay_long=self.decay_long,
            decay_importance=self.decay_importance, w_min=self.w_min, w_max=self.w_max)
        self._set(tiers)
        w.copy_(clipped)
        self.prev.copy_(clipped)
        if step % node.every_steps == 0:
            self.consolidate(cn.processes[self.modulator].level)

    def consolidate(self, level: torch.Tensor) -> None:
        """Step 5 of `evospike.ir.memory`: short -> mid where ``S = I * R`` is above the
        threshold, mid -> long after enough reactivations, then the capacity limits. Moves
        weight between tiers without changing their sum."""
        node = self.node
        tiers = kernels.consolidate(
            self._tiers(), level, threshold=node.threshold, short_to_mid=node.short_to_mid,
            reactivations_to_long=node.reactivations_to_long, mid_to_long=node.mid_to_long)
        n = self.short.shape[1]
        long, mid = kernels.evict(tiers.long, tiers.mid, node.capacity("long", n))
        mid, short = kernels.evict(mid, tiers.short, node.capacity("mid", n))
        self._set(tiers._replace(short=short, mid=mid, long=long))

    def _tiers(self) -> kernels.Tiers:
        return kernels.Tiers(self.short, self.mid, self.long, self.importance, self.access)

    def _set(self, tiers: kernels.Tiers) -> None:
        self.short, self.mid, self.long, self.importance, self.access = tiers

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


@NODE_COMPILERS.register(MemoryTiers)
def compile_memory_tiers(node: MemoryTiers, net, ctx: CompileContext) -> TMemoryTiers:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
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
