"""TorchRunner: drives a compiled network through time in chunks of steps, records what the
monitors ask for, and returns `Results`. Calling `run` again continues the same simulation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.dynamics import LinearStep
from evospike.realize import current_values, poisson_events
from evospike.results import Results
from evospike.run_loop import ResultsBuilder, run_chunks, steps_for

from . import eager
from .compiler import CompiledNetwork
from .connectivity import ConnectivityRecorder
from .processes import TModulator


def source_spikes(src, seeds, dt_ms: float, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The spikes of compiled source ``src`` in steps [start, start + n) of every trial (one
    per seed): flat indices ``trial * size + neuron`` in step order, and pointers (n + 1,) so
    that step ``start + k``'s spikes are ``flat[ptr[k]:ptr[k + 1]]``."""
    all_steps, all_flat = [], []
    for trial, seed in enumerate(seeds):
        if src.fixed_steps is not None:
            lo, hi = np.searchsorted(src.fixed_steps, [start, start + n])
            steps, neurons = src.fixed_steps[lo:hi], src.fixed_neurons[lo:hi]
        else:
            steps, neurons = poisson_events(src.node, seed, dt_ms, start, n)
        all_steps.append(steps)
        all_flat.append(neurons + trial * src.size)
    steps = np.concatenate(all_steps)
    flat = np.concatenate(all_flat)
    order = np.argsort(steps, kind="stable")
    return flat[order], np.searchsorted(steps[order], np.arange(start, start + n + 1))

@dataclass
class _Recorder:
    #: per node, chunks of (steps, flat) with flat = trial * size + neuron
    spikes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    trace_steps: dict[str, list[int]] = field(default_factory=dict)
    trace_values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    weight_steps: dict[str, list[int]] = field(default_factory=dict)
    weight_values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add_spikes(self, node: str, steps: np.ndarray, flat: np.ndarray) -> None:
        self.spikes.setdefault(node, []).append((steps.astype(np.int64), flat.astype(np.int64)))


@dataclass
class ChunkInputs:
    """The inputs of steps [start, start + n): source spikes as flat indices (trial * size +
    neuron) sorted by step with per-step pointers, and injected currents per step."""

    start: int
    n: int
    source_flat: dict[str, np.ndarray]
    source_ptr: dict[str, np.ndarray]
    currents: dict[str, np.ndarray]  # population -> (n, size)
    rewards: dict[str, np.ndarray] = field(default_factory=dict)  # modulator -> (n,)


class TorchRunner:
    """Runs a `CompiledNetwork`. ``engine`` is ``"eager"`` or ``"native"`` (see TorchConfig)."""

    def __init__(self, cn: CompiledNetwork, engine: str, engine_note: str = "",
                 device_options: dict | None = None):
        self.cn = cn
        self.engine = engine
        self.engine_note = engine_note
        self.step = 0
        self.wall_time_s = 0.0
        self.complete = True
        self._rec = _Recorder()
        self._conn = ConnectivityRecorder(cn)
        self._native = None
        if engine == "native":
            from .native.engine import NativeEngine

            self._native = NativeEngine(cn, cn.config.threads)
        self._device = None
        if engine == "device":  # static shapes, no host sync inside a chunk (device_engine.py)
            from .device_engine import DeviceEngine

            self._device = DeviceEngine(cn, **(device_options or {}))
            self.engine_note = self._device.describe()

    # ------------------------------------------------------------------ inputs
    def _chunk_inputs(self, start: int, n: int) -> ChunkInputs:
        cn = self.cn
        dt = cn.network.dt_ms
        flat, ptr = {}, {}
        for src in cn.sources.values():
            flat[src.name], ptr[src.name] = source_spikes(src, cn.config.seeds, dt, start, n)
        currents = {}
        for pop in cn.populations.values():
            if pop.currents:
                currents[pop.name] = sum(current_values(c, pop.size, dt, start, n)
                                         for c in pop.currents)
        rewards = {name: proc.reward_per_step(dt, start, n)
                   for name, proc in cn.processes.items() if isinstance(proc, TModulator)}
        return ChunkInputs(start, n, flat, ptr, currents, rewards)

    # ------------------------------------------------------------------ recording
    def _sample_due(self, step: int) -> bool:
        return any(step % m.every_steps == 0 for m in self.cn.state_monitors.values()) or any(
            step % m.every_steps == 0 for m in self.cn.weight_monitors.values())

    def _record_samples(self, step: int) -> None:
        cn, rec = self.cn, self._rec
        for name, mon in cn.state_monitors.items():
            if step % mon.every_steps == 0:
                if mon.target in cn.processes:
                    state = cn.processes[mon.target].state(mon.variable)
                else:
                    pop = cn.populations[mon.target]
                    state = pop.x[pop.step.state_names.index(mon.variable)]
                idx = torch.as_tensor(mon.neurons, device=state.device)
                rec.trace_steps.setdefault(name, []).append(step)
                rec.trace_values.setdefault(name, []).append(
                    state[:, idx].to(torch.float64).cpu().numpy())
        for name, mon in cn.weight_monitors.items():
            if step % mon.every_steps == 0:
                w = cn.projections[mon.projection].weights.to(torch.float64).cpu().numpy()
                rec.weight_steps.setdefault(name, []).append(step)
                rec.weight_values.setdefault(name, []).append(
                    np.broadcast_to(w, (len(cn.config.seeds), w.shape[-1])).copy())

    def _recorded_nodes(self) -> list[str]:
        return [m.target for m in self.cn.spike_monitors]

    # ------------------------------------------------------------------ engines
    def _run_chunk_eager(self, inp: ChunkInputs) -> None:
        cn = self.cn
        device = cn.device
        recorded = self._recorded_nodes()
        src_tensors = {k: torch.as_tensor(v, device=device) for k, v in inp.source_flat.items()}
        cur_tensors = {k: torch.as_tensor(v, dtype=cn.dtype, device=device)
                       for k, v in inp.currents.items()}
        fired_log: dict[str, list[torch.Tensor]] = {node: [] for node in recorded}
        try:
            for offset in range(inp.n):
                step = inp.start + offset
                source_fired = {k: src_tensors[k][int(p[offset]):int(p[offset + 1])]
                                for k, p in inp.source_ptr.items()}
                currents = {k: v[offset] for k, v in cur_tensors.items()}
                rewards = {k: float(v[offset]) for k, v in inp.rewards.items()}
                fired = eager.run_step(cn, step, currents, source_fired, rewards)
                for node in recorded:
                    fired_log[node].append(fired[node])
                self.step = step + 1
                self._conn.after(step)
                if self._sample_due(step):
                    self._record_samples(step)
        finally:
            # an interrupt (Ctrl-C, SIGTERM) lands mid-chunk: keep the spikes of the steps done
            self._keep_eager_spikes(inp.start, fired_log)

    def _keep_eager_spikes(self, start: int, fired_log: dict[str, list[torch.Tensor]]) -> None:
        for node, log in fired_log.items():
            self._rec.add_spikes(node, *logged_spikes(start, self.step, log))

    def _run_chunk_native(self, inp: ChunkInputs) -> None:
        start, end = inp.start, inp.start + inp.n
        cursor = start
        while cursor < end:
            stop = end
            if self.cn.state_monitors or self.cn.weight_monitors:
                stop = cursor + 1
                while stop < end and not self._sample_due(stop - 1):
                    stop += 1
            spikes = self._native.run(inp, cursor, stop - cursor)
            try:
                for node, (steps, flat) in spikes.items():
                    if node in self._recorded_nodes():
                        self._rec.add_spikes(node, steps, flat)
            finally:  # an interrupt here must not leave spikes recorded past self.step
                self.step = stop
            if self._sample_due(stop - 1):
                self._record_samples(stop - 1)
            self._conn.after(stop - 1)
            cursor = stop

    # ------------------------------------------------------------------ public
    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms`` and return everything recorded since compilation.

        Ctrl-C (and, under the command line, SIGTERM or SIGHUP) stops the run after the step or
        kernel call in progress and returns what was recorded until then, with
        ``complete = False``."""
        cn = self.cn
        n_steps = steps_for(duration_ms, cn.network.dt_ms, cn.network.name)
        done = run_chunks(self.step, n_steps, self._advance, lambda: self.step,
                          progress=cn.config.progress if progress is None else progress,
                          label=f"{cn.network.name} ({self.engine})",
                          sync=torch.cuda.synchronize if cn.device.type == "cuda" else None)
        self.wall_time_s += done.wall_time_s
        self.complete = self.complete and done.complete
        return self.results()

    def _advance(self, start: int, n: int) -> int:
        inp = self._chunk_inputs(start, n)
        if self._native is not None:
            self._run_chunk_native(inp)
        elif self._device is not None:
            for reached in self._device.run(inp, self._rec):
                self.step = reached
                self._conn.after(reached - 1)
            self.engine_note = self._device.describe()
        else:
            self._run_chunk_eager(inp)
        return n

    def results(self) -> Results:
        cn, rec = self.cn, self._rec
        out = ResultsBuilder(
            cn.network.name, "torch", engine=self.engine, engine_note=self.engine_note,
            device=str(cn.device), precision=cn.config.precision, dt_ms=cn.network.dt_ms,
            n_steps=self.step, seeds=cn.config.seeds, wall_time_s=self.wall_time_s,
            complete=self.complete, versions={"torch": torch.__version__},
            units=cn.network.units, schedule=cn.network.schedule,
            threads=self._native.threads if self._native else torch.get_num_threads(),
            threading=self._native.describe_threads() if self._native else
            f"{self.engine} engine, torch intra-op threads")
        for node in self._recorded_nodes():
            out.spikes_flat(node, cn.network.size_of(node), rec.spikes.get(node, []))
        for name, mon in cn.state_monitors.items():
            out.trace(name, mon.target, mon.variable, rec.trace_steps.get(name, []),
                      mon.neurons, out.stacked(rec.trace_values.get(name, []), mon.neurons.size))
        for name, mon in cn.weight_monitors.items():
            nnz = cn.projections[mon.projection].weights.shape[-1]
            out.weights(name, mon.projection, rec.weight_steps.get(name, []),
                        out.stacked(rec.weight_values.get(name, []), nnz))
        out.connectivity(self._conn.log)
        # energy budgets: the run's energy estimate on their profiles
        return out.build(energy_of=cn.network)

    def memory_report(self) -> dict:
        """Bytes held by the compiled network: synapses (CSR, weights, delays), neuron state,
        delay buffers; and bytes per synapse."""
        cn = self.cn

        def nbytes(t: torch.Tensor | None) -> int:
            return 0 if t is None else t.numel() * t.element_size()

        synapse = sum(nbytes(p.indices) + nbytes(p.weights) + nbytes(p.delays)
                      for p in cn.projections.values())
        rows = sum(nbytes(p.indptr) for p in cn.projections.values())
        state = sum(nbytes(p.x) + nbytes(p.refrac) + nbytes(p.spiked) +
                    sum(nbytes(t) for t in p.consts.values()) for p in cn.populations.values())
        buffers = sum(nbytes(p.buf) for p in cn.populations.values())
        n_syn = sum(p.indices.numel() for p in cn.projections.values())
        plastic = sum(nbytes(p.plastic.x) + nbytes(p.plastic.y) + nbytes(p.plastic.col_ptr) +
                      nbytes(p.plastic.col_syn) + nbytes(p.plastic.col_pre)
                      for p in cn.plastic)
        total = synapse + rows + state + buffers + plastic
        return {
            "synapses": n_syn, "synapse_bytes": synapse, "row_pointer_bytes": rows,
            "state_bytes": state, "delay_buffer_bytes": buffers, "plasticity_bytes": plastic,
            "total_bytes": total,
            "bytes_per_synapse": synapse / n_syn if n_syn else 0.0,
            "total_bytes_per_synapse": total / n_syn if n_syn else 0.0,
        }


def logged_spikes(start: int, reached: int,
                  log: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, flat indices) of the spikes logged one tensor per step from ``start``, up to
    step ``reached`` (exclusive): a step cut short by an interrupt counts as not run, so what
    it logged is not kept."""
    del log[reached - start:]
    counts = np.array([t.numel() for t in log], dtype=np.int64)
    flat = torch.cat(log).cpu().numpy() if log else np.zeros(0, np.int64)
    return np.repeat(np.arange(start, start + len(counts)), counts), flat


def is_linear(cn: CompiledNetwork) -> bool:
    return all(isinstance(p.step, LinearStep) for p in cn.populations.values())
