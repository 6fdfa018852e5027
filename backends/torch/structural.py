"""Torch processes for structural plasticity (`evospike.ir.structural.StructuralPlasticity`) and
terminal-attractor pruning inside a simulation (`evospike.pruning.TerminalAttractorPruning`).

Structural plasticity counts the spikes of both sides of its projection over each interval of
``every_steps`` steps; at the end of the interval it asks `plan_update` (the NumPy core every
backend shares) what to prune and grow in each trial, and applies the answer through
`backends.torch.structure` (CSR rebuild; a batch shares one structure, see there). A synapse
grown onto a pair that is absent in a trial (pruned there, kept in another) is revived.

Terminal-attractor pruning runs one `TerminalAttractorPruner` (NumPy) per trial, every
``update_interval_ms``: E is the level of the node's modulator in that trial (>= 0) and the
gradient of a synapse is minus the change of its weight over the interval (the plasticity
rule's updates, and synaptic scaling where a Homeostasis process scales it). A pruned synapse
keeps weight 0: the rule may move it within a step (that proposed change is its gradient, with
which it may score its way back), and it is set back to 0 at the end of every step. Kept weights
after the attractor step are clipped to the rule's bounds. States per trial:
``pruned_fraction``, ``rate`` (R(t)), ``threshold``, ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.errors import EvoSpikeError
from evospike.ir.structural import StructuralPlasticity, plan_update
from evospike.pruning import TerminalAttractorPruning
from evospike.units import steps_of

from . import structure
from .processes import TorchProcess
from .registry import NODE_COMPILERS, CompileContext


def _counts(flat: torch.Tensor, trials: int, size: int) -> torch.Tensor:
    return torch.bincount(flat, minlength=trials * size).view(trials, size)


@dataclass
class TStructural(TorchProcess):
    node: StructuralPlasticity
    count_pre: torch.Tensor  # (trials, n_pre) int64: spikes in the interval
    count_post: torch.Tensor  # (trials, n_post)
    n_synapses: torch.Tensor  # (trials,) present synapses now
    shown: torch.Tensor  # (trials,) present during the current step (the recorded state)
    delay_steps: int
    recurrent: bool
    update_index: int = 0
    history: list = field(default_factory=list)  # (step, removed, grown) per update
    version: int = 0  # structure.structure_version when n_synapses was counted


    def state(self, variable: str) -> torch.Tensor:
        if variable != "n_synapses":
            raise KeyError(variable)
        return self.shown.unsqueeze(1)

    def update(self, cn, step: int, fired, rewards) -> None:
        node = self.node
        proj = cn.projections[node.projection]
        trials = self.count_pre.shape[0]
        if structure.structure_version(cn) != self.version:  # changed elsewhere (apoptosis)
            self._recount(cn)
        self.shown = self.n_synapses
        self.count_pre += _counts(fired[proj.pre], trials, proj.n_pre)
        self.count_post += _counts(fired[proj.post], trials, proj.n_post)
        if not node.is_update_step(step):
            return
        removed, grown = self._apply(cn, proj, trials)
        self.history.append((step, removed, grown))
        self.count_pre.zero_()
        self.count_post.zero_()
        self.update_index += 1
        self._recount(cn)

    def _recount(self, cn) -> None:
        self.n_synapses = structure.synapse_count(cn, self.node.projection).to(self.shown.dtype)
        self.version = structure.structure_version(cn)

    def _apply(self, cn, proj, trials: int) -> tuple[int, int]:
        node = self.node
        c = structure.connectivity(cn, node.projection)
        pre_all = np.repeat(np.arange(proj.n_pre), np.diff(c["indptr"]))
        post_all = c["indices"].astype(np.int64)
        cp = self.count_pre.cpu().numpy()
        cq = self.count_post.cpu().numpy()
        remove = np.zeros_like(c["present"])
        grow = []
        for b in range(trials):
            present = np.flatnonzero(c["present"][b])
            plan = plan_update(node, proj.n_pre, proj.n_post, self.recurrent, pre_all[present],
                               post_all[present], c["weights"][b][present], cp[b], cq[b],
                               self.update_index, cn.config.seeds[b])
            remove[b, present[plan.remove]] = True
            grow.append(plan)
        n_removed = int(remove.sum())
        if n_removed:
            mask = remove[0] if (remove == remove[0]).all() else remove
            structure.notify(cn, structure.remove_synapses(
                cn, node.projection, torch.as_tensor(mask, device=cn.device)))
        n_grown = sum(p.grow_pre.size for p in grow)
        if n_grown:
            self._grow(cn, proj, trials, grow)
        return n_removed, n_grown

    def _grow(self, cn, proj, trials: int, plans) -> None:
        node = self.node
        c = structure.connectivity(cn, node.projection)
        key_of = np.repeat(np.arange(proj.n_pre), np.diff(c["indptr"])) * proj.n_post + \
            c["indices"].astype(np.int64)
        first = {}  # pair -> synapse ids with that pair
        for sid, key in enumerate(key_of.tolist()):
            first.setdefault(key, []).append(sid)
        revive = np.zeros_like(c["present"])
        new_keys: dict[int, np.ndarray] = {}
        for b, plan in enumerate(plans):
            for key in (plan.grow_pre * proj.n_post + plan.grow_post).tolist():
                if key in first:  # the pair exists in the CSR, absent in this trial
                    revive[b, first[key][0]] = True
                else:
                    new_keys.setdefault(key, np.zeros(trials, dtype=bool))[b] = True
        if revive.any():
            structure.revive_synapses(cn, node.projection, torch.as_tensor(
                revive, device=cn.device), node.grow_weight)
        if new_keys:
            keys = np.fromiter(new_keys, np.int64, len(new_keys))
            where = np.stack([new_keys[k] for k in keys.tolist()], axis=1)  # (trials, k)
            pre, post = np.divmod(keys, proj.n_post)
            structure.notify(cn, structure.add_synapses(
                cn, node.projection, pre, post, node.grow_weight, self.delay_steps,
                None if where.all() else torch.as_tensor(where, device=cn.device)))


@NODE_COMPILERS.register(StructuralPlasticity)
def compile_structural(node: StructuralPlasticity, net, ctx: CompileContext) -> TStructural:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    ir = net.projections[node.projection]
    for mon in net.weight_monitors.values():
        if mon.projection == node.projection:
            raise EvoSpikeError(f"torch backend: WeightMonitor '{mon.name}' records projection "
                                f"'{node.projection}', whose synapses StructuralPlasticity "
                                f"'{node.name}' changes; record '{node.name}'.n_synapses "
                                "instead")
    count = torch.full((trials,), float(ir.n_synapses), dtype=dtype, device=device)
    return TStructural(
        node, torch.zeros((trials, ir.n_pre), dtype=torch.int64, device=device),
        torch.zeros((trials, ir.n_post), dtype=torch.int64, device=device), count, count,
        node.delay_steps(net), ir.pre == ir.post)


@dataclass
class TPruning(TorchProcess):
    node: TerminalAttractorPruning
    interval: int  # steps per update
    pruners: list  # one TerminalAttractorPruner per trial
    grad: dict[str, torch.Tensor]  # projection -> (trials, n) minus the change so far
    last: dict[str, torch.Tensor]  # projection -> weights at the end of the previous step
    pruned: dict[str, torch.Tensor]  # projection -> (trials, n) bool
    states: dict[str, torch.Tensor]  # state name -> (trials,)


    def state(self, variable: str) -> torch.Tensor:
        return self.states[variable].unsqueeze(1)

    def synapses_changed(self, cn, change) -> None:
        if change.projection in self.node.projections:
            raise EvoSpikeError(f"TerminalAttractorPruning '{self.node.name}' needs a fixed set "
                                f"of synapses, but projection '{change.projection}' changed "
                                f"({change.n_removed} removed, {change.n_added} added); do not "
                                "combine it with processes that remove or add synapses there")

    def update(self, cn, step: int, fired, rewards) -> None:
        node = self.node
        for name in node.projections:
            w = cn.projections[name].weights
            self.grad[name] -= w - self.last[name]
            w.masked_fill_(self.pruned[name], 0.0)
        if (step + 1) % self.interval == 0:
            self._prune(cn)
        for name in node.projections:
            self.last[name].copy_(cn.projections[name].weights)

    def _prune(self, cn) -> None:
        node = self.node
        level = cn.processes[node.modulator].level.detach().to(torch.float64).cpu().numpy()
        weights = {n: cn.projections[n].weights.detach().to(torch.float64).cpu().numpy()
                   for n in node.projections}
        grads = {n: self.grad[n].detach().to(torch.float64).cpu().numpy()
                 for n in node.projections}
        records = []
        for b, pruner in enumerate(self.pruners):
            w_b = {n: weights[n][b].copy() for n in node.projections}
            records.append(pruner.step(float(level[b]), w_b,
                                       {n: grads[n][b] for n in node.projections}))
            for n in node.projections:
                rule = cn.projections[n].plastic.rule
                kept = pruner.masks[n]
                w_b[n][kept] = np.clip(w_b[n][kept], rule.w_min, rule.w_max)
                weights[n][b] = w_b[n]
        for n in node.projections:
            w = cn.projections[n].weights
            w.copy_(torch.as_tensor(weights[n], dtype=w.dtype, device=w.device))
            self.pruned[n].copy_(torch.as_tensor(
                np.stack([~p.masks[n] for p in self.pruners]), device=w.device))
            self.grad[n].zero_()
        for key in self.states:
            values = [getattr(r, key) for r in records] if key != "pruned_fraction" else \
                [p.pruned_fraction for p in self.pruners]
            self.states[key].copy_(torch.as_tensor(values, dtype=self.states[key].dtype))


@NODE_COMPILERS.register(TerminalAttractorPruning)
def compile_pruning(node: TerminalAttractorPruning, net, ctx: CompileContext) -> TPruning:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    interval = steps_of(node.update_interval_ms, net.dt_ms, node.kind, node.name,
                        "update_interval_ms")
    shapes = {n: (net.projections[n].n_synapses,) for n in node.projections}
    zeros = {n: torch.zeros((trials, s[0]), dtype=dtype, device=device)
             for n, s in shapes.items()}
    last = {n: torch.as_tensor(np.broadcast_to(net.projections[n].weights, (trials, s[0])).copy(),
                               dtype=dtype, device=device) for n, s in shapes.items()}
    states = {k: torch.full((trials,), np.nan if k == "threshold" else (
        1.0 if k == "alpha" else 0.0), dtype=dtype, device=device)
        for k in ("pruned_fraction", "rate", "threshold", "alpha")}
    return TPruning(node, interval, [node.make_pruner(shapes) for _ in range(trials)],
                    {n: z.clone() for n, z in zeros.items()}, last,
                    {n: torch.zeros((trials, s[0]), dtype=torch.bool, device=device)
                     for n, s in shapes.items()}, states)
