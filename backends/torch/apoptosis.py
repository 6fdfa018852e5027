"""Torch state and step of `Apoptosis` (`evospike.ir.apoptosis`): per trial and neuron the spike
count of the running period, the rates of the last ``window`` periods, health, survival, the
run of low-survival evaluations, and who is alive. Phase 45 (after the memory tiers).

A dead neuron gets an ``integrate`` mask (`processes.set_masks`): it neither integrates nor
fires from the next step on and its inputs are lost. Its synapses leave the connectivity at the
evaluation that kills it, through `structure.remove_synapses` (a synapse removed in only some
trials of a batch stays in the shared CSR there, absent, at weight 0). Processes holding
per-synapse state are told through their ``synapses_changed(cn, change)``.

Neurogenesis refills a dead neuron's slot: initial state (drawn as at compilation, from the
trial's seed), a fresh history, and new synapses through `structure.add_synapses`, each
possible synapse of every projection into and out of the population drawn with that
projection's initial density, its weight drawn from the projection's initial weights (NumPy
generator seeded with (seed, trial seed, step)); no self-synapses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.ir.apoptosis import Apoptosis
from evospike.kernels import apoptosis as kernels
from evospike.realize import initial_state

from . import structure
from .processes import TorchProcess, set_masks
from .registry import NODE_COMPILERS, CompileContext


@dataclass
class TApoptosis(TorchProcess):
    node: Apoptosis
    population: str
    counts: torch.Tensor  # (trials, n) spikes in the running period
    history: torch.Tensor  # (trials, n, window) rates (Hz) of the last periods, newest last
    filled: torch.Tensor  # (trials, n) int64: periods in the history
    last_spike: torch.Tensor  # (trials, n) int64: step of the last spike (or of birth)
    low: torch.Tensor  # (trials, n) int64: evaluations in a row with A < floor
    alive: torch.Tensor  # (trials, n) bool
    died_at: torch.Tensor  # (trials, n) int64: evaluation index of death
    survival: torch.Tensor  # (trials, n) A
    health: torch.Tensor  # (trials, n) H
    deaths: torch.Tensor  # (trials, n) float: deaths of this slot so far
    births: torch.Tensor  # (trials, n) float
    evaluation: int = 0
    log: list = field(default_factory=list)  # (step, deaths, births) per evaluation, all trials

    def state(self, variable: str) -> torch.Tensor:
        if variable == "alive":
            return self.alive.to(self.survival.dtype)
        return {"survival": self.survival, "health": self.health, "deaths": self.deaths,
                "births": self.births}[variable]

    def update(self, cn, step: int, fired, rewards) -> None:
        node = self.node
        spiked = cn.populations[self.population].spiked
        self.counts.add_(spiked.to(self.counts.dtype))
        self.last_spike.masked_fill_(spiked, step)
        if (step + 1) % node.every_steps:
            return
        dt_ms = cn.network.dt_ms
        rate = self.counts / (node.every_steps * dt_ms * 1e-3)
        self.counts.zero_()
        ev = kernels.evaluate(node, self.history, self.filled, self.low, self.alive, rate,
                              (step - self.last_spike).to(rate.dtype) * dt_ms)
        self.history, self.filled, self.low = ev.history, ev.filled, ev.low
        self.health, self.survival, self.alive, die = ev.health, ev.survival, ev.alive, ev.died
        self.deaths.add_(die.to(self.deaths.dtype))
        self.died_at.masked_fill_(die, self.evaluation)
        n_died = int(die.sum())
        if n_died:
            self._remove_synapses(cn, die)
        n_born = 0
        if node.neurogenesis:
            reborn = ~self.alive & (self.evaluation - self.died_at >= node.rebirth_after)
            n_born = int(reborn.sum())
            if n_born:
                self._rebirth(cn, step, reborn)
        pop = cn.populations[self.population]
        set_masks(pop, node.name, integrate=None if bool(self.alive.all()) else self.alive.clone())
        self.log.append((step, n_died, n_born))
        self.evaluation += 1

    # ------------------------------------------------------------------ connectivity
    def _touching(self, cn) -> list:
        return [p for p in cn.projections.values()
                if p.pre == self.population or p.post == self.population]

    def _remove_synapses(self, cn, die: torch.Tensor) -> None:
        for proj in self._touching(cn):
            counts = proj.indptr[1:] - proj.indptr[:-1]
            nnz = int(proj.indices.numel())
            if nnz == 0:
                continue
            mask = torch.zeros((die.shape[0], nnz), dtype=torch.bool, device=die.device)
            if proj.pre == self.population:
                pre = torch.repeat_interleave(torch.arange(proj.n_pre, device=die.device), counts,
                                              output_size=nnz)
                mask |= die[:, pre]
            if proj.post == self.population:
                mask |= die[:, proj.indices.to(torch.int64)]
            if bool(mask.any()):
                _notify(cn, structure.remove_synapses(cn, proj.name, mask))

    def _rebirth(self, cn, step: int, reborn: torch.Tensor) -> None:
        node, pop = self.node, cn.populations[self.population]
        net = cn.network
        ir_pop = net.populations[self.population]
        seeds = cn.config.seeds
        for trial in range(reborn.shape[0]):
            neurons = reborn[trial].nonzero().squeeze(1)
            if neurons.numel() == 0:
                continue
            init = initial_state(ir_pop, seeds[trial])
            for k, state in enumerate(pop.step.state_names):
                values = torch.as_tensor(np.array(np.broadcast_to(init[state], (ir_pop.size,))),
                                         dtype=pop.x.dtype, device=pop.x.device)
                pop.x[k, trial, neurons] = values[neurons]
            pop.refrac[trial, neurons] = 0
            rng = np.random.default_rng([node.seed, int(seeds[trial]), step])
            only = torch.zeros(reborn.shape[0], dtype=torch.bool, device=reborn.device)
            only[trial] = True
            for proj in self._touching(cn):
                pre, post, weight = _fresh_synapses(net.projections[proj.name], self.population,
                                                    neurons.cpu().numpy(), rng)
                if pre.size:
                    _notify(cn, structure.add_synapses(cn, proj.name, pre, post, weight,
                                                       trials=only))
        self.alive |= reborn
        self.births.add_(reborn.to(self.births.dtype))
        self.low.masked_fill_(reborn, 0)
        self.filled.masked_fill_(reborn, 0)
        self.counts.masked_fill_(reborn, 0.0)
        self.history.masked_fill_(reborn.unsqueeze(-1), 0.0)
        self.last_spike.masked_fill_(reborn, step)
        self.survival = torch.where(reborn, torch.ones_like(self.survival), self.survival)
        self.health = torch.where(reborn, torch.zeros_like(self.health), self.health)


def _fresh_synapses(ir_proj, population: str, neurons: np.ndarray, rng: np.random.Generator):
    """Random synapses of reborn ``neurons`` on IR projection ``ir_proj``: every possible
    partner with the projection's initial density, weights drawn from its initial weights."""
    density = ir_proj.n_synapses / max(ir_proj.n_pre * ir_proj.n_post, 1)
    pres, posts = [], []
    for neuron in neurons:
        if ir_proj.pre == population:
            partners = np.nonzero(rng.random(ir_proj.n_post) < density)[0]
            if ir_proj.post == population:
                partners = partners[partners != neuron]
            pres.append(np.full(partners.size, neuron))
            posts.append(partners)
        if ir_proj.post == population:
            partners = np.nonzero(rng.random(ir_proj.n_pre) < density)[0]
            if ir_proj.pre == population:
                partners = partners[partners != neuron]
            pres.append(partners)
            posts.append(np.full(partners.size, neuron))
    pre = np.concatenate(pres) if pres else np.zeros(0, np.int64)
    post = np.concatenate(posts) if posts else np.zeros(0, np.int64)
    weights = rng.choice(ir_proj.weights, pre.size) if ir_proj.n_synapses else \
        np.zeros(pre.size)
    return pre.astype(np.int64), post.astype(np.int64), weights


def _notify(cn, change) -> None:
    for proc in list(cn.processes.values()):
        hook = getattr(proc, "synapses_changed", None)
        if hook is not None:
            hook(cn, change)


@NODE_COMPILERS.register(Apoptosis)
def compile_apoptosis(node: Apoptosis, net, ctx: CompileContext) -> TApoptosis:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    n = net.populations[node.population].size
    zeros = torch.zeros((trials, n), dtype=dtype, device=device)
    ints = torch.zeros((trials, n), dtype=torch.int64, device=device)
    return TApoptosis(
        node, node.population, zeros.clone(),
        torch.zeros((trials, n, node.window), dtype=dtype, device=device), ints.clone(),
        torch.full((trials, n), -1, dtype=torch.int64, device=device), ints.clone(),
        torch.ones((trials, n), dtype=torch.bool, device=device), ints.clone(),
        torch.ones((trials, n), dtype=dtype, device=device), zeros.clone(), zeros.clone(),
        zeros.clone())
