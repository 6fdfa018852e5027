"""Torch state and step functions of the participation processes (`evospike.ir.gating`):
epigenetic gating and neuromodulated participation. Both install an integrate mask on their
population (`set_masks`), so a neuron outside it neither integrates nor fires in the next step
and its inputs are dropped. Every state has the trial dimension first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evospike.ir.gating import (
    PARTICIPATION_BLOCK_STEPS,
    EpigeneticGate,
    NeuromodulatedParticipation,
    participation_uniforms,
)
from evospike.kernels import gating as kernels

from .processes import TorchProcess, set_masks
from .registry import NODE_COMPILERS, CompileContext


def _spiked(flat: torch.Tensor, trials: int, size: int, dtype, device) -> torch.Tensor:
    out = torch.zeros(trials * size, dtype=dtype, device=device)
    out[flat] = 1.0
    return out.view(trials, size)


def survival_of(cn, population: str) -> torch.Tensor | None:
    """The survival factor A (trials, n) of an apoptosis process on ``population`` (a process
    with a per-neuron state ``survival``), or None where the network has none."""
    for name, node in cn.network.processes.items():
        if getattr(node, "population", None) == population and \
                "survival" in getattr(node, "state_names", ()) and name in cn.processes:
            return cn.processes[name].state("survival")
    return None


@dataclass
class TEpigeneticGate(TorchProcess):
    node: EpigeneticGate
    gate: torch.Tensor  # (trials, n_target)
    open: torch.Tensor  # (trials, n_target) bool
    context_hz: torch.Tensor  # (trials, n_source)
    w_context_t: torch.Tensor  # (n_source, n_target)
    w_history: torch.Tensor  # (n_target,)
    bias: torch.Tensor  # (n_target,)
    context_decay: float
    gate_decay: float
    recall_decay: float
    keys: torch.Tensor | None = None  # (K, n_source), unit rows
    patterns: torch.Tensor | None = None  # (K, n_target)

    def state(self, variable: str) -> torch.Tensor:
        if variable == "gate":
            return self.gate
        if variable == "open":
            return self.open.to(self.gate.dtype)
        if variable == "activation_ratio":
            ratio = kernels.activation_ratio(self.open, self.gate)
            return ratio.unsqueeze(1).expand_as(self.gate)
        raise KeyError(variable)

    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        g = self.node
        trials, n_src = self.context_hz.shape
        spk = _spiked(fired[g.source], trials, n_src, self.gate.dtype, self.gate.device)
        history = None if g.modulator is None else cn.processes[g.modulator].level
        self.gate, self.context_hz = kernels.update_gate(
            self.gate, self.context_hz, spk, w_context_t=self.w_context_t, bias=self.bias,
            context_decay=self.context_decay, gate_decay=self.gate_decay,
            rate_scale=1000.0 / cn.network.dt_ms, history=history, w_history=self.w_history,
            keys=self.keys, patterns=self.patterns, recall_similarity=g.recall_similarity,
            recall_decay=self.recall_decay)
        self._set_open(cn)

    def _set_open(self, cn) -> None:
        self.open = kernels.open_mask(self.gate, self.node.theta_act,
                                      survival_of(cn, self.node.population))
        set_masks(cn.populations[self.node.population], self.node.name, integrate=self.open)


@NODE_COMPILERS.register(EpigeneticGate)
def compile_epigenetic_gate(node: EpigeneticGate, net, ctx: CompileContext) -> TEpigeneticGate:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    p = node.resolved(net)

    def t(arr):
        return torch.as_tensor(np.array(arr, dtype=np.float64), dtype=dtype, device=device)

    gate = t(np.broadcast_to(p["initial_gate"], (trials, p["initial_gate"].size)))
    # no mask in step 0 (see evospike.ir.gating): "open" is everywhere until the first update
    out = TEpigeneticGate(
        node, gate, torch.ones_like(gate, dtype=torch.bool),
        torch.zeros((trials, net.size_of(node.source)), dtype=dtype, device=device),
        t(p["w_context"].T), t(p["w_history"]), t(p["bias"]),
        float(np.exp(-net.dt_ms / node.tau_context_ms)), float(np.exp(-net.dt_ms / node.tau_ms)),
        float(np.exp(-net.dt_ms / node.tau_recall_ms)))
    if node.memory_keys is not None:
        keys = node.memory_keys / np.linalg.norm(node.memory_keys, axis=1, keepdims=True)
        out.keys, out.patterns = t(keys), t(node.memory_patterns)
    return out


@dataclass
class TParticipation(TorchProcess):
    node: NeuromodulatedParticipation
    seeds: tuple[int, ...]
    size: int
    participating: torch.Tensor  # (trials, n) bool: the mask of the coming step
    fraction: torch.Tensor  # (trials,)
    block: int = -1
    uniforms: torch.Tensor | None = None  # (trials, B, n): the draws of block ``block``

    def state(self, variable: str) -> torch.Tensor:
        if variable == "participating":
            return self.participating.to(self.fraction.dtype)
        if variable == "fraction":
            return self.fraction.unsqueeze(1).expand(-1, self.size)
        raise KeyError(variable)

    def draws(self, step: int) -> torch.Tensor:
        """u of step ``step`` for every trial, (trials, n)."""
        block = step // PARTICIPATION_BLOCK_STEPS
        if block != self.block:
            u = np.stack([participation_uniforms(self.node, s, self.size, block)
                          for s in self.seeds])
            self.uniforms = torch.as_tensor(u, dtype=torch.float64,
                                            device=self.participating.device)
            self.block = block
        return self.uniforms[:, step % PARTICIPATION_BLOCK_STEPS]

    def choose(self, cn, level: torch.Tensor, next_step: int) -> None:
        p = self.node
        self.fraction = kernels.participation_fraction(level, p.base_fraction, p.gain,
                                                       p.min_fraction, p.max_fraction)
        # the draws are float64 on every backend: compare in float64
        self.participating = kernels.participating(self.draws(next_step),
                                                   self.fraction.to(torch.float64))
        set_masks(cn.populations[p.population], p.name, integrate=self.participating)

    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        self.seeds = tuple(int(s) for s in cn.config.seeds)
        self.choose(cn, cn.processes[self.node.modulator].level, step + 1)


@NODE_COMPILERS.register(NeuromodulatedParticipation)
def compile_participation(node: NeuromodulatedParticipation, net,
                          ctx: CompileContext) -> TParticipation:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    size = net.populations[node.population].size
    # the trial seeds are read from the run's config at the first update (the end of step 0)
    return TParticipation(node, tuple(range(trials)), size,
                          torch.ones((trials, size), dtype=torch.bool, device=device),
                          torch.ones((trials,), dtype=dtype, device=device))
