"""The torch backend's fixed-point mode (``precision="fixed"``): integer state and arithmetic
exactly as Lava's ``fixed_pt`` process models compute them (``PyLifModelBitAcc``,
``PySparseModelBitAcc``, ``PyDelaySparseModelBitAcc``), on a batch of trials, CPU or CUDA.

The network is first quantized (`evospike.fixed_point.quantize`: the integers, their units and
the equations are in that module's docstring); this engine runs those integers. Every tensor
is int64 and every operation is an integer one: decays ``sign(x d) (|x d| >> 12)`` (rounding
toward zero), the synaptic input shifted left by ``act_shift`` in int32 arithmetic (wrapping
as NumPy's int32 does in Lava), the 24-bit wrap-around of ``u`` and clipping of ``v``, the
threshold ``vth << vth_shift``, and each projection's per-step, per-delay weight sum shifted
by its exponent before it is added to the postsynaptic ring buffer.

Timing (the same as the float engine's and as Lava's): step n reads the events due in step n,
advances ``u`` then ``v``, thresholds, resets ``v`` to 0, and sends the spikes, which arrive
``delay >= 1`` steps later (Lava: its connection processes' one step of latency plus a
``DelaySparse`` delay of ``delay - 1``). Traces of ``u``/``v`` are recorded in integer units
after the step's reset; ``meta["fixed_scales"]`` gives the units per float unit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.fixed_point import (
    FixedPointNetwork,
    FixedPointProfile,
    FixedPointUnsupported,
    get_profile,
)
from evospike.hardware.loihi import learning, three_factor
from evospike.ir.network import Network
from evospike.ir.nodes import PoissonSource
from evospike.ir.timing import schedule_refusals
from evospike.realize import poisson_events, spike_time_steps
from evospike.results import Results
from evospike.run_loop import ResultsBuilder, run_chunks, steps_for

from .fixed_learning import LearningProjection
from .runner import logged_spikes

_I32 = 2 ** 32


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    """int64 values as NumPy's int32 arithmetic leaves them (two's complement wrap)."""
    return torch.remainder(x + 2 ** 31, _I32) - 2 ** 31


def decay(x: torch.Tensor, factor: int, shift: int) -> torch.Tensor:
    """``sign(x * factor) * (|x * factor| >> shift)``: Loihi's decay, rounding toward zero."""
    p = x * factor
    return torch.sign(p) * (p.abs() >> shift)


@dataclass
class _Pop:
    name: str
    size: int
    u: torch.Tensor  # (trials, n) int64
    v: torch.Tensor
    refrac_end: torch.Tensor  # (trials, n): v held while refrac_end >= step
    bias: torch.Tensor  # (n,) bias_mant << bias_exp
    du_factor: int
    dv_factor: int
    vth_eff: int
    refractory_steps: int
    buf: torch.Tensor  # (slots, trials, n) int64
    spiked: torch.Tensor | None = None


@dataclass
class _Proj:
    name: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    indptr: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor  # mantissas
    delays: torch.Tensor
    weight_exp: int
    distinct_delays: list[int] = field(default_factory=list)


def step_population(p: _Pop, prof: FixedPointProfile, step: int,
                    a_in: torch.Tensor) -> torch.Tensor:
    """One step of Lava's bit-accurate LIF for population ``p`` (in place); returns the spikes
    (trials, n) bool."""
    shift = prof.decay_bits
    limit = 2 ** (prof.state_bits - 1)
    if prof.wrap_int32:
        u = _wrap32(decay(p.u, p.du_factor, shift) + _wrap32(a_in << prof.act_shift))
    else:
        u = decay(p.u, p.du_factor, shift) + (a_in << prof.act_shift)
    if prof.u_overflow == "wrap":
        # Lava: u > 2**23 -> u - 2**24; u <= -2**23 -> u + 2**24 (one wrap, exactly its tests)
        u = torch.where(u > limit, u - 2 * limit, torch.where(u <= -limit, u + 2 * limit, u))
    else:
        u = u.clamp(-(limit - 1), limit - 1)
    v = (decay(p.v, p.dv_factor, shift) + u + p.bias).clamp(-(limit - 1), limit - 1)
    if p.refractory_steps:
        v = torch.where(p.refrac_end >= step, p.v, v)
    spiked = v > p.vth_eff
    v = torch.where(spiked, torch.zeros_like(v), v)
    if p.refractory_steps:
        p.refrac_end = torch.where(spiked, torch.full_like(p.refrac_end, step +
                                                           p.refractory_steps), p.refrac_end)
    p.u, p.v = u, v
    return spiked


def propagate(proj: _Proj, fired: torch.Tensor, post: _Pop, step: int) -> None:
    """Add the shifted weight sums of the synapses of ``fired`` (flat ``trial * n_pre +
    neuron``) into ``post``'s ring buffer, ``delay`` steps ahead."""
    if fired.numel() == 0:
        return
    pre = fired % proj.n_pre
    trial = fired // proj.n_pre
    starts = proj.indptr[pre]
    counts = proj.indptr[pre + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return
    row = torch.repeat_interleave(torch.arange(pre.numel(), device=pre.device), counts,
                                  output_size=total)
    offsets = torch.cumsum(counts, 0) - counts
    syn = starts[row] + (torch.arange(total, device=pre.device) - offsets[row])
    target = trial[row] * proj.n_post + proj.indices[syn]
    w = proj.weights[syn]
    d = proj.delays[syn]
    slots, trials, n_post = post.buf.shape
    flat_buf = post.buf.view(slots, trials * n_post)
    if proj.weight_exp >= 0:  # a left shift of a sum is the sum of the shifted terms
        slot = (step + d) % slots
        post.buf.view(-1).index_add_(0, slot * (trials * n_post) + target,
                                     w << proj.weight_exp)
        return
    # a right shift floors the sum of each (post neuron, delay) of this step, as Lava does
    max_d = proj.distinct_delays[-1]
    tmp = torch.zeros((max_d + 1) * trials * n_post, dtype=torch.int64, device=w.device)
    tmp.index_add_(0, d * (trials * n_post) + target, w)
    tmp = (tmp >> -proj.weight_exp).view(max_d + 1, trials * n_post)
    for k in proj.distinct_delays:
        flat_buf[(step + k) % slots] += tmp[k]


class FixedRunner:
    """Runs a `FixedPointNetwork` on torch. ``run(duration_ms)`` returns `Results` in the
    common layout; calling it again continues the same simulation."""

    def __init__(self, fx: FixedPointNetwork, seeds: tuple[int, ...], device: str = "cpu",
                 progress: bool = True, learning: dict | None = None,
                 weight_monitors: dict | None = None):
        self.fx = fx
        self.prof = fx.profile
        self.seeds = tuple(int(s) for s in seeds)
        self.device = torch.device(device)
        self.progress = progress
        self.step = 0
        self.wall_time_s = 0.0
        self.complete = True
        trials = len(self.seeds)
        dev = self.device
        unity = self.prof.decay_unity
        slots_of: dict[str, int] = {name: 1 for name in fx.populations}
        for proj in fx.projections.values():
            if proj.n_synapses:
                slots_of[proj.post] = max(slots_of[proj.post], int(proj.delays.max()) + 1)
        self.pops: dict[str, _Pop] = {}
        for name, fp in fx.populations.items():
            init = [fp.initial_state(seed, self.prof) for seed in self.seeds]
            u = torch.as_tensor(np.stack([s["u"] for s in init]), dtype=torch.int64, device=dev)
            v = torch.as_tensor(np.stack([s["v"] for s in init]), dtype=torch.int64, device=dev)
            bias = torch.as_tensor(fp.bias_mant, device=dev) << torch.as_tensor(fp.bias_exp,
                                                                                device=dev)
            self.pops[name] = _Pop(
                name, fp.size, u, v, torch.full_like(u, -1), bias,
                unity - (fp.du + self.prof.du_offset), unity - (fp.dv + self.prof.dv_offset),
                fp.vth << self.prof.vth_shift, fp.refractory_steps,
                torch.zeros((slots_of[name], trials, fp.size), dtype=torch.int64, device=dev))
        self.out: dict[str, list[_Proj]] = {}
        # STDP (fixed_learning.py): plastic projections run Lava's learning engine
        self.learning = {name: LearningProjection.build(fx.projections[name], plan, trials, dev)
                         for name, plan in (learning or {}).items()}
        for lp in self.learning.values():
            lp.dt_ms = fx.dt_ms
        self.weight_monitors = dict(weight_monitors or {})
        #: RewardModulatedSTDP: recorded modulator levels, computed on the host
        self.level_monitors: dict = {}
        self._weight_steps: dict[str, list[int]] = {k: [] for k in self.weight_monitors}
        self._weight_values: dict[str, list[np.ndarray]] = {k: [] for k in self.weight_monitors}
        for proj in fx.projections.values():
            if not proj.n_synapses or proj.name in self.learning:
                continue
            tp = _Proj(proj.name, proj.pre, proj.post, proj.n_pre, proj.n_post,
                       torch.as_tensor(proj.indptr, dtype=torch.int64, device=dev),
                       torch.as_tensor(proj.indices, dtype=torch.int64, device=dev),
                       torch.as_tensor(proj.weights, dtype=torch.int64, device=dev),
                       torch.as_tensor(proj.delays, dtype=torch.int64, device=dev),
                       int(proj.weight_exp), sorted(int(d) for d in np.unique(proj.delays)))
            self.out.setdefault(proj.pre, []).append(tp)
        self.fixed_sources = {}
        for name, src in fx.sources.items():
            if not isinstance(src, PoissonSource):
                self.fixed_sources[name] = spike_time_steps(src, fx.dt_ms)
        self._spikes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
            n: [] for n in fx.spike_monitors}
        self._trace_steps: dict[str, list[int]] = {k: [] for k in fx.state_monitors}
        self._trace_values: dict[str, list[np.ndarray]] = {k: [] for k in fx.state_monitors}
        self._mon_idx = {k: torch.as_tensor(m.neurons, device=dev)
                         for k, m in fx.state_monitors.items()}

    def _source_chunk(self, start: int, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per source: flat indices (trial * size + neuron) sorted by step, and per-step
        pointers."""
        out = {}
        for name, src in self.fx.sources.items():
            all_steps, all_flat = [], []
            for trial, seed in enumerate(self.seeds):
                if name in self.fixed_sources:
                    steps, neurons = self.fixed_sources[name]
                    lo, hi = np.searchsorted(steps, [start, start + n])
                    steps, neurons = steps[lo:hi], neurons[lo:hi]
                else:
                    steps, neurons = poisson_events(src, seed, self.fx.dt_ms, start, n)
                all_steps.append(steps)
                all_flat.append(neurons + trial * src.size)
            steps = np.concatenate(all_steps)
            order = np.argsort(steps, kind="stable")
            out[name] = (np.concatenate(all_flat)[order],
                         np.searchsorted(steps[order], np.arange(start, start + n + 1)))
        return out

    def _run_chunk(self, start: int, n: int) -> None:
        dev = self.device
        inputs = self._source_chunk(start, n)
        src_t = {k: torch.as_tensor(f, dtype=torch.int64, device=dev)
                 for k, (f, _) in inputs.items()}
        logs: dict[str, list[torch.Tensor]] = {k: [] for k in self._spikes}
        try:
            for offset in range(n):
                step = start + offset
                fired: dict[str, torch.Tensor] = {}
                for name, p in self.pops.items():
                    slot = step % p.buf.shape[0]
                    a_in = p.buf[slot].clone()
                    p.buf[slot].zero_()
                    spiked = step_population(p, self.prof, step, a_in)
                    fired[name] = torch.nonzero(spiked.view(-1)).view(-1)
                for name, (_, ptr) in inputs.items():
                    fired[name] = src_t[name][int(ptr[offset]):int(ptr[offset + 1])]
                for name, projs in self.out.items():
                    for proj in projs:
                        propagate(proj, fired[name], self.pops[proj.post], step)
                if self.learning:  # STDP (fixed_learning.py)
                    self._learn(step, fired)
                for name in logs:
                    logs[name].append(fired[name])
                for key, mon in self.fx.state_monitors.items():
                    if step % mon.every_steps == 0:
                        state = getattr(self.pops[mon.target], mon.variable)
                        self._trace_steps[key].append(step)
                        self._trace_values[key].append(
                            state[:, self._mon_idx[key]].cpu().numpy())
                self.step = step + 1
        finally:
            # an interrupt lands mid-chunk: keep the spikes of the steps done
            for name, log in logs.items():
                self._spikes[name].append(logged_spikes(start, self.step, log))

    def _learn(self, step: int, fired: dict[str, torch.Tensor]) -> None:
        """STDP (fixed_learning.py): send the plastic projections' spikes with the weights
        learned so far, then run this step's learning phase and record the weights."""
        trials = len(self.seeds)

        def as_mask(name: str) -> torch.Tensor:
            size = self.fx.size_of(name)
            mask = torch.zeros(trials * size, dtype=torch.bool, device=self.device)
            mask[fired[name]] = True
            return mask.view(trials, size)

        for lp in self.learning.values():
            pre, post = as_mask(lp.pre), as_mask(lp.post)
            lp.propagate(pre, self.pops[lp.post].buf, step)
            lp.learn(step, pre, post)
        for key, mon in self.weight_monitors.items():
            if step % mon.every_steps == 0:
                self._weight_steps[key].append(step)
                self._weight_values[key].append(self.learning[mon.projection].weights_ir())

    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms`` (whole steps) and return everything recorded so far.
        Ctrl-C stops after the step in progress, keeping the steps done, marked incomplete."""
        n_steps = steps_for(duration_ms, self.fx.dt_ms, self.fx.name)
        done = run_chunks(self.step, n_steps, self._advance, lambda: self.step,
                          progress=self.progress if progress is None else progress,
                          label=f"{self.fx.name} (fixed)",
                          sync=torch.cuda.synchronize if self.device.type == "cuda" else None)
        self.wall_time_s += done.wall_time_s
        self.complete = self.complete and done.complete
        return self.results()

    def _advance(self, start: int, n: int) -> int:
        self._run_chunk(start, n)
        return n

    def results(self) -> Results:
        fx = self.fx
        trials = len(self.seeds)
        out = ResultsBuilder(
            fx.name, "torch", engine="fixed",
            engine_note="; ".join([f"integer engine, profile {fx.profile.name}", *fx.notes]),
            device=str(self.device), precision="fixed", dt_ms=fx.dt_ms, n_steps=self.step,
            seeds=self.seeds, wall_time_s=self.wall_time_s, complete=self.complete,
            versions={"torch": torch.__version__}, fixed_profile=fx.profile.name,
            fixed_scales=json.dumps({k: p.scale for k, p in fx.populations.items()}))
        for node, parts in self._spikes.items():
            out.spikes_flat(node, fx.size_of(node), parts)
        for key, mon in fx.state_monitors.items():
            out.trace(key, mon.target, mon.variable, self._trace_steps[key], mon.neurons,
                      out.stacked(self._trace_values[key], mon.neurons.size, np.int64))
        for key, (mon, mod) in self.level_monitors.items():  # RewardModulatedSTDP
            steps, values = three_factor.level_trace(mod, fx.dt_ms, self.step, mon.every_steps,
                                                     trials)
            out.trace(key, mon.target, mon.variable, steps, mon.neurons, values)
        for key, mon in self.weight_monitors.items():  # STDP (fixed_learning.py)
            n_syn = self.learning[mon.projection].post_idx.size
            out.weights(key, mon.projection, self._weight_steps[key],
                        out.stacked(self._weight_values[key], n_syn))
        return out.build()

    def memory_report(self) -> dict:
        def nbytes(t: torch.Tensor) -> int:
            return t.numel() * t.element_size()

        projs = [p for ps in self.out.values() for p in ps]
        synapse = sum(nbytes(p.indices) + nbytes(p.weights) + nbytes(p.delays) for p in projs)
        state = sum(nbytes(p.u) + nbytes(p.v) + nbytes(p.refrac_end) + nbytes(p.bias)
                    for p in self.pops.values())
        buffers = sum(nbytes(p.buf) for p in self.pops.values())
        n_syn = sum(p.indices.numel() for p in projs)
        total = synapse + state + buffers
        return {"synapses": n_syn, "synapse_bytes": synapse, "state_bytes": state,
                "delay_buffer_bytes": buffers, "total_bytes": total,
                "bytes_per_synapse": synapse / n_syn if n_syn else 0.0,
                "total_bytes_per_synapse": total / n_syn if n_syn else 0.0}


def compile_fixed(network: Network, seeds: tuple[int, ...], device: str = "cpu",
                  profile: str | FixedPointProfile = "loihi2",
                  progress: bool = True, plastic_weight_range: str = "w_max") -> FixedRunner:
    """Quantize ``network`` (refusing, all at once, what the integer model cannot carry) and
    return its runner."""
    if not seeds:
        raise EvoSpikeError("torch backend: seeds must name at least one trial")
    refused = schedule_refusals(network, "torch fixed point")
    if refused:  # before quantizing: the integer model is written for EvoSpike's step order
        raise UnsupportedError("torch (precision 'fixed')", refused)
    # STDP (fixed_learning.py): the rules Loihi 2's learning engine carries, with its integers
    # (evospike.hardware.loihi.learning, as the Lava backend); the quantizer runs the rest
    # (and refuses every other plasticity rule by name)
    reasons = learning.learning_refusals(network, "fixed_pt")
    if learning.rules_by_projection(network) and get_profile(profile).name != "loihi2":
        reasons.append(f"STDP: the learning engine is Loihi 2's; profile "
                       f"'{get_profile(profile).name}' has none")
    try:
        fx = learning.quantize_for_learning(network, profile, plastic_weight_range)
    except FixedPointUnsupported as exc:
        reasons = list(exc.reasons) + reasons
    if reasons:
        raise UnsupportedError("torch (precision 'fixed')", reasons) from None
    plans = learning.plan_learning(network, fx, fx.notes) if learning.rules_by_projection(
        network) else {}
    runner = FixedRunner(fx, seeds, device, progress, plans, dict(network.weight_monitors))
    runner.level_monitors = learning.modulator_level_monitors(network)
    return runner
