"""TorchRunner: drives a compiled network through time in chunks of steps, records what the
monitors ask for, and returns `Results`. Calling `run` again continues the same simulation."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field

import numpy as np
import torch

import evospike
from evospike.dynamics import LinearStep
from evospike.realize import current_values, poisson_events
from evospike.results import Results, SpikeData, TraceData, WeightData
from evospike.units import steps_of

from . import eager
from .compiler import CompiledNetwork
from .processes import TModulator

CHUNK_STEPS = 1000


@dataclass
class _Recorder:
    spike_steps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    spike_flat: dict[str, list[np.ndarray]] = field(default_factory=dict)
    trace_steps: dict[str, list[int]] = field(default_factory=dict)
    trace_values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    weight_steps: dict[str, list[int]] = field(default_factory=dict)
    weight_values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add_spikes(self, node: str, steps: np.ndarray, flat: np.ndarray) -> None:
        self.spike_steps.setdefault(node, []).append(steps.astype(np.int64))
        self.spike_flat.setdefault(node, []).append(flat.astype(np.int64))


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

    def __init__(self, cn: CompiledNetwork, engine: str, engine_note: str = ""):
        self.cn = cn
        self.engine = engine
        self.engine_note = engine_note
        self.step = 0
        self.wall_time_s = 0.0
        self.complete = True
        self._rec = _Recorder()
        self._native = None
        if engine == "native":
            from .native.engine import NativeEngine

            self._native = NativeEngine(cn)

    # ------------------------------------------------------------------ inputs
    def _chunk_inputs(self, start: int, n: int) -> ChunkInputs:
        cn = self.cn
        dt = cn.network.dt_ms
        flat, ptr = {}, {}
        for src in cn.sources.values():
            all_steps, all_flat = [], []
            for trial, seed in enumerate(cn.config.seeds):
                if src.fixed_steps is not None:
                    lo, hi = np.searchsorted(src.fixed_steps, [start, start + n])
                    steps, neurons = src.fixed_steps[lo:hi], src.fixed_neurons[lo:hi]
                else:
                    steps, neurons = poisson_events(src.node, seed, dt, start, n)
                all_steps.append(steps)
                all_flat.append(neurons + trial * src.size)
            steps = np.concatenate(all_steps)
            f = np.concatenate(all_flat)
            order = np.argsort(steps, kind="stable")
            flat[src.name] = f[order]
            ptr[src.name] = np.searchsorted(steps[order], np.arange(start, start + n + 1))
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
                if self._sample_due(step):
                    self._record_samples(step)
        finally:
            # an interrupt (Ctrl-C, SIGTERM) lands mid-chunk: keep the spikes of the steps done
            self._keep_eager_spikes(inp.start, fired_log)

    def _keep_eager_spikes(self, start: int, fired_log: dict[str, list[torch.Tensor]]) -> None:
        done = self.step - start  # steps counted as run; a step cut short records nothing
        for node, log in fired_log.items():
            del log[done:]
            counts = np.array([t.numel() for t in log], dtype=np.int64)
            flat = torch.cat(log).cpu().numpy() if log else np.zeros(0, np.int64)
            steps = np.repeat(np.arange(start, start + len(counts)), counts)
            self._rec.add_spikes(node, steps, flat)

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
            cursor = stop

    # ------------------------------------------------------------------ public
    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms`` and return everything recorded since compilation.

        Ctrl-C (and, under the command line, SIGTERM or SIGHUP) stops the run after the step or
        kernel call in progress and returns what was recorded until then, with
        ``complete = False``."""
        n_steps = steps_of(duration_ms, self.cn.network.dt_ms, "Run", self.cn.network.name,
                           "duration_ms")
        show = self.cn.config.progress if progress is None else progress
        bar = None
        if show:
            from tqdm.auto import tqdm

            # delay: the bar appears only on runs that last more than two seconds
            bar = tqdm(total=n_steps, unit="step", desc=f"{self.cn.network.name} ({self.engine})",
                       leave=False, delay=2.0)
        end = self.step + n_steps
        t0 = time.perf_counter()
        try:
            while self.step < end:
                n = min(CHUNK_STEPS - self.step % CHUNK_STEPS, end - self.step)
                inp = self._chunk_inputs(self.step, n)
                if self._native is not None:
                    self._run_chunk_native(inp)
                else:
                    self._run_chunk_eager(inp)
                if bar is not None:
                    bar.update(n)
        except KeyboardInterrupt:
            self.complete = False
        finally:
            if self.cn.device.type == "cuda":
                torch.cuda.synchronize()
            self.wall_time_s += time.perf_counter() - t0
            if bar is not None:
                bar.close()
        return self.results()

    def results(self) -> Results:
        cn, rec = self.cn, self._rec
        trials = len(cn.config.seeds)
        meta = {
            "network": cn.network.name, "backend": "torch", "engine": self.engine,
            "engine_note": self.engine_note, "device": str(cn.device),
            "precision": cn.config.precision, "dt_ms": cn.network.dt_ms, "n_steps": self.step,
            "duration_ms": self.step * cn.network.dt_ms, "seeds": np.asarray(cn.config.seeds),
            "n_trials": trials, "wall_time_s": self.wall_time_s, "complete": self.complete,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"evospike": evospike.__version__, "torch": torch.__version__,
                         "numpy": np.__version__, "python": platform.python_version()},
        }
        res = Results(meta)
        for node in self._recorded_nodes():
            size = cn.network.size_of(node)
            steps = np.concatenate(rec.spike_steps.get(node, [np.zeros(0, np.int64)]))
            flat = np.concatenate(rec.spike_flat.get(node, [np.zeros(0, np.int64)]))
            trial, neuron = np.divmod(flat, size)
            order = np.lexsort((neuron, steps, trial))
            res.spikes_by_node[node] = SpikeData(size, steps[order], neuron[order].astype(np.int32),
                                                 trial[order].astype(np.int32))
        for name, mon in cn.state_monitors.items():
            values = rec.trace_values.get(name, [])
            arr = np.stack(values, axis=1) if values else np.zeros((trials, 0, mon.neurons.size))
            res.traces[name] = TraceData(mon.target, mon.variable,
                                         np.asarray(rec.trace_steps.get(name, []), np.int64),
                                         mon.neurons, arr)
        for name, mon in cn.weight_monitors.items():
            values = rec.weight_values.get(name, [])
            nnz = cn.projections[mon.projection].weights.shape[-1]
            arr = np.stack(values, axis=1) if values else np.zeros((trials, 0, nnz))
            res.weights[name] = WeightData(mon.projection,
                                           np.asarray(rec.weight_steps.get(name, []), np.int64),
                                           arr)
        if cn.network.processes:  # energy budgets: the run's energy estimate on their profiles
            from evospike.ir.energy_budget import energy_meta

            res.meta.update(energy_meta(cn.network, res))
        return res

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


def is_linear(cn: CompiledNetwork) -> bool:
    return all(isinstance(p.step, LinearStep) for p in cn.populations.values())
