"""Torch state and step functions of the process nodes (`evospike.ir.modulators`, and
`Homeostasis`/`Metaplasticity` of `evospike.ir.plasticity`): modulators, homeostasis,
metaplasticity, and the modulation of plasticity rules. Every state carries the trial dimension
first: each trial of a batch learns and adapts on its own.

The order within a step is the IR's (`evospike.ir.schedule`): plasticity rules read the
modulator levels of the previous step; at the end of the step the processes update in the order
of the ``phase`` their IR node kind declares (`CompiledNetwork.process_order`).

A new process kind needs: its IR node (a dataclass with ``name``, ``kind``, ``phase``,
``collection = "processes"``, ``state_names``, ``state_size(net)`` and ``check(net)``, and an
entry in the serializer's ``RECORD_TYPES``), a `TorchProcess` subclass and its compile function
registered with ``@NODE_COMPILERS.register(Kind)`` (backends/torch/registry.py) in its own
module, which backends/torch/compiler.py imports. A process acts on the simulation through:

- ``update(cn, step, fired, rewards)`` at the end of every step (``fired``: flat indices of
  the spikes of this step per node; ``rewards``: this step's reward drive per modulator);
- the population masks `set_masks` installs: ``integrate`` (a masked neuron neither integrates
  nor fires; its inputs are dropped) and ``fire`` (it integrates but cannot fire), read in the
  next step;
- `remove_synapses` (backends/torch/structure.py) for changes to the connectivity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.ir.modulators import (
    Modulator,
    NoveltyDrive,
    RewardEvents,
    RewardSeries,
    SpikeCountDrive,
)
from evospike.ir.plasticity import Homeostasis, Metaplasticity

from .registry import NODE_COMPILERS, CompileContext


class TorchProcess:
    """The torch state of one process node (see the module docstring)."""


    def state(self, variable: str) -> torch.Tensor:
        """State ``variable`` as a (trials, size) tensor (for StateMonitor)."""
        raise NotImplementedError(f"{type(self).__name__} records no state '{variable}'")

    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no update")


def set_masks(pop, name: str, integrate: torch.Tensor | None = None,
              fire: torch.Tensor | None = None) -> None:
    """Install (or replace) process ``name``'s masks on torch population ``pop``: bool
    (trials, n) tensors, True where the neuron may integrate / fire. None removes a mask."""
    for masks, value in ((pop.integrate_masks, integrate), (pop.fire_masks, fire)):
        if value is None:
            masks.pop(name, None)
        else:
            masks[name] = value


@dataclass
class TModulator(TorchProcess):
    node: Modulator
    decay: float
    level: torch.Tensor  # (trials,)
    count_drives: list[tuple[str, float]] = field(default_factory=list)  # (node, gain)
    novelty: NoveltyDrive | None = None
    novelty_size: int = 1
    rate_hz: torch.Tensor | None = None  # (trials,)
    expected_hz: torch.Tensor | None = None
    rate_decay: float = 0.0
    expect_decay: float = 0.0

    def state(self, variable: str) -> torch.Tensor:
        tensor = {"level": self.level, "rate_hz": self.rate_hz,
                  "expected_hz": self.expected_hz}[variable]
        return tensor.unsqueeze(1)

    def reward_per_step(self, dt_ms: float, start: int, n: int) -> np.ndarray:
        """The reward drives of steps [start, start + n), shape (n,)."""
        total = np.zeros(n)
        for drive in self.node.drives:
            if isinstance(drive, (RewardEvents, RewardSeries)):
                total += drive.per_step(dt_ms, start, n)
        return total


    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        """m[n] = m[n-1] decay + drives of step n (`evospike.ir.modulators`)."""
        trials, dt_ms = len(cn.config.seeds), cn.network.dt_ms
        sizes = {name: cn.network.size_of(name) for name in fired}
        reward = rewards.get(self.node.name, 0.0)
        self.level.mul_(self.decay)
        if reward != 0.0:
            self.level.add_(reward)
        for node, gain in self.count_drives:
            counts = _counts_per_trial(fired[node], sizes[node], trials, self.level.dtype)
            self.level.add_(gain * counts)
        if self.novelty is not None:
            counts = _counts_per_trial(fired[self.novelty.population], self.novelty_size, trials,
                                       self.level.dtype)
            rate = counts / (self.novelty_size * dt_ms * 1e-3)
            self.rate_hz.mul_(self.rate_decay).add_((1.0 - self.rate_decay) * rate)
            self.expected_hz.mul_(self.expect_decay).add_(
                (1.0 - self.expect_decay) * self.rate_hz)
            self.level.add_(self.novelty.gain * (self.rate_hz - self.expected_hz).abs())


def _counts_per_trial(flat: torch.Tensor, size: int, trials: int, dtype) -> torch.Tensor:
    return torch.bincount(flat // size, minlength=trials).to(dtype)


@dataclass
class THomeostasis(TorchProcess):
    node: Homeostasis
    rate_hz: torch.Tensor  # (trials, n)
    theta: torch.Tensor  # (trials, n), added to the threshold of the population
    rate_decay: float
    spike_increment: float  # Hz added per spike: 1000 / tau_rate_ms

    def state(self, variable: str) -> torch.Tensor:
        return {"rate_hz": self.rate_hz, "theta": self.theta}[variable]


    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        h = self.node
        spiked = cn.populations[h.population].spiked
        dt_ms, projections = cn.network.dt_ms, cn.projections
        self.rate_hz.add_(spiked.to(self.rate_hz.dtype) * self.spike_increment)
        if h.mechanism == "threshold":
            self.theta.add_(h.threshold_rate * (self.rate_hz - h.target_rate_hz) * dt_ms * 1e-3)
        elif step % h.every_steps == 0:
            factor = 1.0 + h.scaling_rate * (h.target_rate_hz - self.rate_hz) * \
                h.every_steps * dt_ms * 1e-3  # (trials, n_post)
            for name in h.projections:
                proj = projections[name]
                post = proj.indices.to(torch.int64)
                if proj.weights.dim() == 1:  # scaling makes the weights per trial
                    proj.weights = proj.weights.unsqueeze(0).repeat(factor.shape[0], 1)
                proj.weights.mul_(factor[:, post])
                if proj.plastic is not None:
                    rule = proj.plastic.rule
                    proj.weights.clamp_(rule.w_min, rule.w_max)
        self.rate_hz.mul_(self.rate_decay)


@dataclass
class TMetaplasticity(TorchProcess):
    node: Metaplasticity
    value: torch.Tensor  # (trials,): the adapted parameter
    baseline: torch.Tensor  # (trials,)
    baseline_decay: float

    def state(self, variable: str) -> torch.Tensor:
        return {"value": self.value, "baseline": self.baseline}[variable].unsqueeze(1)


    def update(self, cn, step: int, fired: dict[str, torch.Tensor],
               rewards: dict[str, float]) -> None:
        m = self.node
        level = cn.processes[m.modulator].level
        dt_ms = cn.network.dt_ms
        plastic = cn.projections[cn.network.plasticity[m.rule].projection].plastic
        self.baseline.mul_(self.baseline_decay).add_((1.0 - self.baseline_decay) * level)
        self.value.add_(m.eta * (level - self.baseline) * dt_ms * 1e-3).clamp_(m.p_min, m.p_max)
        plastic.set_parameter(m.parameter, self.value, dt_ms)


@NODE_COMPILERS.register(Modulator)
def compile_modulator(node: Modulator, net, ctx: CompileContext) -> TModulator:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    out = TModulator(node, float(np.exp(-net.dt_ms / node.tau_ms)),
                     torch.full((trials,), node.initial, dtype=dtype, device=device))
    for drive in node.drives:
        if isinstance(drive, SpikeCountDrive):
            out.count_drives.append((drive.population, drive.gain))
        elif isinstance(drive, NoveltyDrive):
            out.novelty = drive
            out.novelty_size = net.size_of(drive.population)
            out.rate_hz = torch.zeros((trials,), dtype=dtype, device=device)
            out.expected_hz = torch.zeros((trials,), dtype=dtype, device=device)
            out.rate_decay = float(np.exp(-net.dt_ms / drive.tau_rate_ms))
            out.expect_decay = float(np.exp(-net.dt_ms / drive.tau_expect_ms))
    return out


@NODE_COMPILERS.register(Homeostasis)
def compile_homeostasis(node: Homeostasis, net, ctx: CompileContext) -> THomeostasis:
    """The rate estimates and thresholds; the threshold mechanism adds ``theta`` to its
    population's firing threshold."""
    n = net.populations[node.population].size
    zeros = torch.zeros((ctx.trials, n), dtype=ctx.dtype, device=ctx.device)
    out = THomeostasis(node, zeros.clone(), zeros.clone(),
                       float(np.exp(-net.dt_ms / node.tau_rate_ms)), 1000.0 / node.tau_rate_ms)
    if node.mechanism == "threshold":
        ctx.populations[node.population].threshold_offset = out.theta
    return out


@NODE_COMPILERS.register(Metaplasticity)
def compile_metaplasticity(node: Metaplasticity, net, ctx: CompileContext) -> TMetaplasticity:
    trials, dtype, device = ctx.trials, ctx.dtype, ctx.device
    start = float(getattr(net.plasticity[node.rule], node.parameter))
    return TMetaplasticity(node, torch.full((trials,), start, dtype=dtype, device=device),
                           torch.zeros((trials,), dtype=dtype, device=device),
                           float(np.exp(-net.dt_ms / node.tau_baseline_ms)))
