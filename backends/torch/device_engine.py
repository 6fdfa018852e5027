"""The device engine (``engine="device"``): chunks of steps with static shapes and no host
synchronisation inside a chunk, the execution strategy meant for GPUs (issue 17). The same code
runs on the CPU, where it is tested bit for bit against the eager engine in float64.

Per step, for every population (the neuron update is the eager engine's own function,
`eager.advance_linear` / `eager.advance_izhikevich`, so the arithmetic is written once):

- the step's slot of the delay ring buffer is read with ``index_select`` on a device-side step
  counter (no Python integer derived from device data anywhere in a step);
- the spikes go into a fixed-capacity index buffer (``torch.nonzero_static``, ``capacity``
  entries over all trials, padded with -1); the number that fired is folded into a running
  maximum tensor, read once per chunk;
- each projection gathers the rows of those indices from a padded (ELL) copy of its CSR
  matrix: ``(n_pre + 1, L)`` targets, weights and (per-synapse) delays, ``L`` the longest row,
  row ``n_pre`` all padding; padded entries are sent to one spare element past the end of the
  post population's ring buffer, so one ``index_add_`` of a fixed size delivers everything in
  the order the eager engine adds it (fired neurons ascending, each row in CSR order), which is
  what makes float sums bit-identical on the CPU.

Sources (Poisson, spike times) are realised on the host per chunk, as in the other engines,
and staged as padded per-step index rows; injected currents and `PoissonInput` drives as
per-step rows; a StateMonitor writes its samples into a device buffer through a per-step row
map (steps not sampled write a spare row). Spikes and samples are copied to the host once per
chunk.

Overflow: when the running maximum of a chunk exceeds a population's capacity, the chunk is
re-run from a snapshot taken at its start with the capacity grown (a power of two at least
twice the maximum seen), which gives results identical to a run that never overflowed
(``DeviceEngine.reruns`` counts the re-runs).

On CUDA, a chunk of ``chunk_steps`` steps is captured once as a CUDA graph
(``torch.cuda.CUDAGraph``) and replayed; the capture is redone when a capacity changes, and
if capture fails the engine runs the same steps uncaptured and says so in its note. This path
has not run on a GPU in this repository's CI (it has none); on CUDA, ``index_add_`` uses
atomics, so float sums may differ from the eager engine in the last bits.
``torch.compile(engine.step_chunk, fullgraph=True)`` compiling on the CPU is the test that no
step breaks a graph or synchronises (tests/test_device_engine.py).

What the engine carries is declared in `CARRIED` (a registry, like the other engines'):
LIF, AdaptiveLIF, CubaLIF, Izhikevich, Poisson and spike-time sources, `PoissonInput`,
injected currents, projections with any delays, spike, state and weight monitors (weights
are constant here), under the ``"evospike"`` schedule. Everything else is refused by name
before the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from evospike.dynamics import LinearStep
from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.network import PROCESS_TYPES
from evospike.ir.neurons import LIF, AdaptiveLIF, AdEx, CondAdEx, CondLIF, CubaLIF, Izhikevich
from evospike.ir.nodes import (
    CurrentInput,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import STDP, RewardModulatedSTDP
from evospike.registry import Registry

from . import eager
from .compiler import CompiledNetwork, TPopulation, TProjection

NAME = "torch device"

#: the node kinds the device engine carries
CARRIED = Registry("torch device engine", "update")
CARRIED.carry(Population, LIF, AdaptiveLIF, CubaLIF, Izhikevich)
CARRIED.carry(PoissonSource, SpikeTimesSource, CurrentInput, PoissonInput, Projection)
CARRIED.carry(SpikeMonitor, StateMonitor)
for _model in (AdEx, CondLIF, CondAdEx):
    CARRIED.refuse(_model, "exponential and conductance models are not carried yet "
                           "(the eager engine runs them)")
for _rule in (STDP, RewardModulatedSTDP):
    CARRIED.refuse(_rule, "plasticity is not carried yet (the eager and native engines run it)")
CARRIED.carry(WeightMonitor)  # without plasticity the weights never change: read on the host
for _process in PROCESS_TYPES:
    CARRIED.refuse(_process, "processes are not carried yet (the eager engine runs them)")

#: steps per captured chunk (and per overflow check) unless the run says otherwise
CHUNK_STEPS = 250


def refusals(network) -> list[str]:
    """Every node of ``network`` the device engine does not carry, with the reason (empty: it
    runs)."""
    out = []
    if network.schedule != "evospike":
        out.append(f"Network '{network.name}': schedule '{network.schedule}' is not carried by "
                   "the torch device engine (it follows the 'evospike' schedule)")
    return out + CARRIED.refusals(network)


def refuse(network) -> None:
    """Raise `UnsupportedError` naming every node the device engine does not carry."""
    problems = refusals(network)
    if problems:
        raise UnsupportedError(NAME, problems)


#: the torch backend's options for this engine (DeviceEngine's arguments)
OPTIONS = ("spike_capacity", "device_chunk_steps", "cuda_graph")


def pop_options(overrides: dict) -> dict:
    """Take this engine's options out of the torch backend's ``overrides`` (checked), as
    `DeviceEngine` arguments; only those given."""
    out = {}
    for option in OPTIONS:
        if option not in overrides:
            continue
        value = overrides.pop(option)
        if option == "cuda_graph":
            if not isinstance(value, bool):
                raise EvoSpikeError(f"torch backend: cuda_graph must be True or False, "
                                    f"got {value!r}")
        elif not (option == "spike_capacity" and value is None) and (
                isinstance(value, bool) or not isinstance(value, (int, np.integer))
                or value < 1):
            raise EvoSpikeError(f"torch backend: {option} must be a whole number of at least "
                                f"1, got {value!r}")
        out[option] = value
    return out


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass
class _Ell:
    """A projection's synapses padded to its longest row: row ``n_pre`` is all padding."""

    proj: TProjection
    post: torch.Tensor  # (n_pre + 1, L) int32, -1 where padded
    weights: torch.Tensor  # (n_pre + 1, L)
    delays: torch.Tensor | None  # (n_pre + 1, L) int32, None when all delays are equal


def _ell(proj: TProjection) -> _Ell:
    indptr = proj.indptr.cpu().numpy()
    counts = np.diff(indptr)
    width = max(int(counts.max()) if counts.size else 0, 1)
    row = np.repeat(np.arange(proj.n_pre), counts)
    col = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
    post = np.full((proj.n_pre + 1, width), -1, dtype=np.int32)
    post[row, col] = proj.indices.cpu().numpy()
    dev = proj.indices.device
    weights = torch.zeros((proj.n_pre + 1, width), dtype=proj.weights.dtype, device=dev)
    weights[torch.as_tensor(row, device=dev), torch.as_tensor(col, device=dev)] = proj.weights
    delays = None
    if proj.delays is not None:
        d = np.zeros((proj.n_pre + 1, width), dtype=np.int32)
        d[row, col] = proj.delays.cpu().numpy()
        delays = torch.as_tensor(d, device=dev)
    return _Ell(proj, torch.as_tensor(post, device=dev), weights, delays)


class DeviceEngine:
    """Runs a `CompiledNetwork` (float32 or float64) in chunks of static-shape steps.

    ``spike_capacity``: the initial spike capacity per step of each population (over all
    trials; None: a sixty-fourth of its neurons x trials, at least 16); it grows on overflow
    and shrinks when far above use. ``device_chunk_steps``: steps per captured chunk and per
    overflow check. ``cuda_graph``: capture chunks as CUDA graphs on a CUDA device."""

    def __init__(self, cn: CompiledNetwork, spike_capacity: int | None = None,
                 device_chunk_steps: int = CHUNK_STEPS, cuda_graph: bool = True):
        capacity, chunk_steps = spike_capacity, device_chunk_steps
        refuse(cn.network)  # compile() refused already; this guards direct construction
        self.cn = cn
        self.device = cn.device
        self.dtype = cn.dtype
        self.chunk_steps = int(chunk_steps)
        self.trials = len(cn.config.seeds)
        self.reruns = 0
        self.use_graph = bool(cuda_graph) and self.device.type == "cuda"
        self.graph_note = "not captured yet" if self.use_graph else "no CUDA graph (CPU)"
        self._graph: torch.cuda.CUDAGraph | None = None
        dev, K = self.device, self.chunk_steps
        self.t = torch.zeros(1, dtype=torch.int64, device=dev)  # the step being run
        self.k = torch.zeros(1, dtype=torch.int64, device=dev)  # its offset in the chunk
        self.pops = list(cn.populations.values())
        for pop in self.pops:
            if isinstance(pop.step, LinearStep) and pop.plan is None:
                eager._linear_plan(pop)  # the propagator's sparsity, found once outside graphs
        # the ring buffers, each with one spare element that padded synapses add into
        self._bufflat: dict[str, torch.Tensor] = {}
        for pop in self.pops:
            if pop.buf is not None:
                flat = torch.zeros(pop.buf.numel() + 1, dtype=self.dtype, device=dev)
                flat[:-1].copy_(pop.buf.reshape(-1))
                pop.buf = flat[:-1].view(pop.buf.shape)
                self._bufflat[pop.name] = flat
        self._spiked = {p.name: p.spiked.clone() for p in self.pops}
        for pop in self.pops:
            pop.spiked = self._spiked[pop.name]
        self.capacity = {}
        for pop in self.pops:
            full = self.trials * pop.size
            want = max(16, -(-full // 64)) if capacity is None else int(capacity)
            self.capacity[pop.name] = max(1, min(full, want))
        self._maxcount = {p.name: torch.zeros((), dtype=torch.int64, device=dev)
                          for p in self.pops}
        self.ells = [_ell(p) for p in cn.projections.values()]
        self.recorded = [m.target for m in cn.spike_monitors]
        # staged per-chunk inputs
        self._currents = {p.name: torch.zeros((K, p.size), dtype=self.dtype, device=dev)
                          for p in self.pops if p.currents}
        self._drives = {name: torch.zeros((K, self.trials, inp.size), dtype=self.dtype,
                                          device=dev)
                        for name, inp in cn.inputs.items()}
        self.src_capacity = {name: 1 for name in cn.sources}
        self._src = {name: torch.full((K, 1), -1, dtype=torch.int64, device=dev)
                     for name in cn.sources}
        self._rows: dict[str, torch.Tensor] = {}
        self._traces: dict[str, torch.Tensor] = {}
        self._trace_index: dict[str, tuple[TPopulation, int, torch.Tensor]] = {}
        for name, mon in cn.state_monitors.items():
            pop = cn.populations[mon.target]
            samples = K // mon.every_steps + 1
            self._rows[name] = torch.full((K,), samples, dtype=torch.int64, device=dev)
            self._traces[name] = torch.zeros((samples + 1, self.trials, mon.neurons.size),
                                             dtype=self.dtype, device=dev)
            self._trace_index[name] = (pop, pop.step.state_names.index(mon.variable),
                                       torch.as_tensor(mon.neurons, device=dev))
        self._spike_rec: dict[str, torch.Tensor] = {}
        self._allocate_records()

    # ------------------------------------------------------------------ buffers
    def _allocate_records(self) -> None:
        K = self.chunk_steps
        for node in self.recorded:
            cap = self.capacity.get(node, self.src_capacity.get(node))
            self._spike_rec[node] = torch.full((K, cap), -1, dtype=torch.int64,
                                               device=self.device)
        self._graph = None  # shapes changed: a captured graph no longer fits

    def _state(self) -> list[torch.Tensor]:
        """The tensors a step changes (what a re-run restores)."""
        out = [self.t, self.k]
        for pop in self.pops:
            out += [pop.x, pop.refrac, self._spiked[pop.name]]
        return out + list(self._bufflat.values())

    # ------------------------------------------------------------------ one step
    def _propagate(self, ell: _Ell, fired: torch.Tensor) -> None:
        proj = ell.proj
        post_pop = self.cn.populations[proj.post]
        buf = post_pop.buf
        flat_buf = self._bufflat[proj.post]
        slots, channels, trials, n_post = buf.shape
        valid = fired >= 0
        safe = fired.clamp(min=0)
        pre = torch.where(valid, safe % proj.n_pre, proj.n_pre)
        trial = safe // proj.n_pre
        # index_select, not ell.post[pre]: torch's advanced-indexing kernel is far slower on
        # the CPU for whole-row gathers
        post = ell.post.index_select(0, pre)  # (capacity, L)
        weights = ell.weights.index_select(0, pre)
        target = trial.unsqueeze(1) * n_post + post.to(torch.int64)
        if ell.delays is None:
            slot = (self.t + proj.uniform_delay) % slots
        else:
            slot = (self.t + ell.delays.index_select(0, pre).to(torch.int64)) % slots
        index = (slot * channels + proj.channel_slot) * (trials * n_post) + target
        index = torch.where(post >= 0, index, flat_buf.numel() - 1)
        flat_buf.index_add_(0, index.reshape(-1), weights.reshape(-1))

    def _step(self) -> None:
        cn = self.cn
        fired: dict[str, torch.Tensor] = {}
        for pop in self.pops:
            arrivals = None
            if pop.buf is not None:
                slot = self.t % pop.buf.shape[0]
                arrivals = pop.buf.index_select(0, slot).squeeze(0)
                pop.buf.index_fill_(0, slot, 0.0)
                for name, inp in cn.inputs.items():
                    if inp.target == pop.name:
                        drive = self._drives[name].index_select(0, self.k).squeeze(0)
                        arrivals[inp.channel_slot] += drive
            current = None
            if pop.name in self._currents:
                current = self._currents[pop.name].index_select(0, self.k).squeeze(0)
            if isinstance(pop.step, LinearStep):
                eager.advance_linear(pop, arrivals, current)
            else:
                eager.advance_izhikevich(pop, arrivals, current, cn.network.dt_ms)
            kept = self._spiked[pop.name]
            kept.copy_(pop.spiked)  # the eager update returns a new tensor; keep one address
            pop.spiked = kept
            flat = kept.view(-1)
            count = self._maxcount[pop.name]
            torch.maximum(count, flat.sum(), out=count)
            fired[pop.name] = torch.nonzero_static(flat, size=self.capacity[pop.name],
                                                   fill_value=-1).squeeze(1)
        for name in cn.sources:
            fired[name] = self._src[name].index_select(0, self.k).squeeze(0)
        for node in self.recorded:
            self._spike_rec[node].index_copy_(0, self.k, fired[node].unsqueeze(0))
        for ell in self.ells:
            self._propagate(ell, fired[ell.proj.pre])
        for name, (pop, var, neurons) in self._trace_index.items():
            row = self._rows[name].index_select(0, self.k)
            self._traces[name].index_copy_(0, row, pop.x[var].index_select(1, neurons)
                                           .unsqueeze(0))
        self.t.add_(1)
        self.k.add_(1)

    def step_chunk(self, n: int) -> None:
        """Run ``n`` steps from the device-side counters (``t``, ``k``); nothing in it reads a
        value back to the host."""
        for _ in range(n):
            self._step()

    # ------------------------------------------------------------------ a chunk
    def _stage(self, inp, off: int, n: int) -> None:
        """Copy steps [inp.start + off, + n) of the chunk's inputs into the staged tensors."""
        start = inp.start + off
        for name, cur in self._currents.items():
            cur[:n].copy_(torch.as_tensor(inp.currents[name][off:off + n], dtype=self.dtype))
        for name, drive in self._drives.items():
            tin = self.cn.inputs[name]
            for j in range(n):
                drive[j].copy_(tin.at(start + j))
        grew = False
        for name in self.cn.sources:
            ptr = inp.source_ptr[name][off:off + n + 1]
            counts = np.diff(ptr)
            need = int(counts.max()) if counts.size else 0
            if need > self.src_capacity[name]:
                self.src_capacity[name] = _pow2_at_least(need)
                self._src[name] = torch.full((self.chunk_steps, self.src_capacity[name]), -1,
                                             dtype=torch.int64, device=self.device)
                grew = True
            rows = np.full((self.chunk_steps, self.src_capacity[name]), -1, dtype=np.int64)
            row = np.repeat(np.arange(n), counts)
            col = np.arange(ptr[-1] - ptr[0]) - np.repeat(ptr[:-1] - ptr[0], counts)
            rows[row, col] = inp.source_flat[name][ptr[0]:ptr[-1]]
            self._src[name].copy_(torch.as_tensor(rows))
        if grew:
            self._allocate_records()
        for name, mon in self.cn.state_monitors.items():
            rows = self._rows[name]
            spare = rows.new_full((self.chunk_steps,), self._traces[name].shape[0] - 1)
            due = np.flatnonzero((start + np.arange(n)) % mon.every_steps == 0)
            spare[torch.as_tensor(due, device=self.device)] = torch.arange(
                due.size, device=self.device)
            rows.copy_(spare)

    def _execute(self, start: int, n: int) -> None:
        self.t.fill_(start)
        self.k.zero_()
        for count in self._maxcount.values():
            count.zero_()
        for flat in self._bufflat.values():
            flat[-1:].zero_()
        if self.use_graph and n == self.chunk_steps:
            if self._graph is None:
                self._capture(start)
            if self._graph is not None:
                self._graph.replay()
                return
        self.step_chunk(n)

    def _capture(self, start: int) -> None:
        """Capture ``chunk_steps`` steps as a CUDA graph (CUDA only; not run in CI, which has
        no GPU). A warm-up run first (lazy initialisations may not happen under capture), then
        the state restored, then the capture, which records kernels without running them."""
        snapshot = [t.clone() for t in self._state()]
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step_chunk(self.chunk_steps)
            torch.cuda.current_stream().wait_stream(side)
            self._restore(snapshot)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step_chunk(self.chunk_steps)
            self._graph = graph
            self.graph_note = f"CUDA graph of {self.chunk_steps} steps"
        except RuntimeError as exc:  # e.g. an operation that synchronises under capture
            self.use_graph = False
            self.graph_note = f"CUDA graph capture failed, steps run uncaptured: {exc}"
        finally:
            self._restore(snapshot)
            for pop in self.pops:
                pop.spiked = self._spiked[pop.name]
            self.t.fill_(start)
            self.k.zero_()

    def _restore(self, snapshot: list[torch.Tensor]) -> None:
        for tensor, saved in zip(self._state(), snapshot, strict=True):
            tensor.copy_(saved)

    def run(self, inp, rec) -> Iterator[int]:
        """Run the runner's chunk ``inp`` (`runner.ChunkInputs`) in pieces of at most
        ``chunk_steps``, adding spikes and samples to ``rec`` (the runner's recorder); yields
        the step reached after each piece. An interruption inside a piece restores the state
        at its start."""
        off = 0
        while off < inp.n:
            n = min(self.chunk_steps, inp.n - off)
            start = inp.start + off
            self._stage(inp, off, n)
            snapshot = [t.clone() for t in self._state()]
            while True:
                try:
                    self._execute(start, n)
                    seen = torch.stack(list(self._maxcount.values())).tolist() \
                        if self._maxcount else []  # the one read-back of the chunk
                except BaseException:
                    self._restore(snapshot)
                    raise
                over = [(pop, int(m)) for pop, m in zip(self.pops, seen, strict=True)
                        if m > self.capacity[pop.name]]
                if not over:
                    break
                self._restore(snapshot)
                for pop, m in over:
                    self.capacity[pop.name] = min(self.trials * pop.size,
                                                  max(_pow2_at_least(m),
                                                      2 * self.capacity[pop.name]))
                self._allocate_records()
                self.reruns += 1
            self._collect(start, n, rec)
            self._fit_capacities(seen)
            off += n
            yield start + n

    def _fit_capacities(self, seen: list[int]) -> None:
        """Shrink a capacity far above what a chunk used (to twice its most, a power of two,
        at least 16): the padded gathers cost capacity x row length every step. Only by a
        factor of four or more, so that a captured graph is rarely redone."""
        changed = False
        for pop, most in zip(self.pops, seen, strict=True):
            fit = min(self.trials * pop.size, max(16, _pow2_at_least(2 * int(most))))
            if 4 * fit <= self.capacity[pop.name]:
                self.capacity[pop.name] = fit
                changed = True
        if changed:
            self._allocate_records()

    def _collect(self, start: int, n: int, rec) -> None:
        for node in self.recorded:
            rows = self._spike_rec[node][:n].cpu().numpy()
            steps, cols = np.nonzero(rows >= 0)
            rec.add_spikes(node, start + steps, rows[steps, cols])
        for name, mon in self.cn.state_monitors.items():
            due = np.flatnonzero((start + np.arange(n)) % mon.every_steps == 0)
            if due.size:
                # a copy: on the CPU, .cpu().numpy() would view the buffer the next chunk fills
                values = self._traces[name][:due.size].to(torch.float64).cpu().numpy().copy()
                for i, j in enumerate(due):
                    rec.trace_steps.setdefault(name, []).append(start + int(j))
                    rec.trace_values.setdefault(name, []).append(values[i])
        for name, mon in self.cn.weight_monitors.items():
            weights = self.cn.projections[mon.projection].weights.to(torch.float64).cpu()
            row = np.broadcast_to(weights.numpy(), (self.trials, weights.shape[-1]))
            for j in np.flatnonzero((start + np.arange(n)) % mon.every_steps == 0):
                rec.weight_steps.setdefault(name, []).append(start + int(j))
                rec.weight_values.setdefault(name, []).append(row.copy())

    def describe(self) -> str:
        caps = ", ".join(f"{k} {v}" for k, v in self.capacity.items())
        return (f"device engine: static shapes, {self.chunk_steps}-step chunks, spike "
                f"capacity per step ({caps}), {self.reruns} overflow re-runs, {self.graph_note}")

    def memory_report(self) -> dict:
        """Bytes of the padded (ELL) synapse copies, against the CSR synapses they pad."""
        ell = sum(e.post.numel() * 4 + e.weights.numel() * e.weights.element_size()
                  + (0 if e.delays is None else e.delays.numel() * 4) for e in self.ells)
        used = sum(e.proj.indices.numel() for e in self.ells)
        slots = sum(e.post.numel() for e in self.ells)
        return {"ell_bytes": ell, "ell_fill": used / slots if slots else 1.0}


__all__ = ["CARRIED", "DeviceEngine", "pop_options", "refuse", "refusals"]
