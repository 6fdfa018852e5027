"""LavaRunner: writes the job file, runs the worker under the Lava interpreter, reads back what
it recorded and returns the common `Results`.

The worker runs in its own process group (its own session), so a timeout, a crash or Ctrl-C
ends it together with every process Lava forked; none is ever left running. Lava keeps its
state inside the worker, so a second `run` call replays the simulation from step 0 to the new
end (inputs and initial state are drawn from the seeds, so the replay is the same run) and
returns everything since compilation, as the other backends do.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import h5py
import numpy as np

import evospike
from evospike.errors import EvoSpikeError
from evospike.results import Results, SpikeData, TraceData, WeightData
from evospike.units import steps_of

from . import learning, three_factor
from .compiler import LavaConfig, Plan
from .environment import LavaPython

WORKER = Path(__file__).with_name("worker.py")
JOB_FORMAT = "evospike-lava-job"
OUT_FORMAT = "evospike-lava-output"
#: seconds the worker gets to write what it has after SIGTERM, before the group is killed
GRACE_S = 20.0


class WorkerError(EvoSpikeError):
    """The Lava worker failed or timed out; the message holds the tail of its stderr."""


def write_job(plan: Plan, seeds: tuple[int, ...], n_steps: int, chunk_steps: int,
              path: Path, cache_delay_weights: bool = True) -> None:
    net = plan.network
    fixed = plan.select_tag == "fixed_pt"
    with h5py.File(path, "w") as f:
        f.attrs.update(format=JOB_FORMAT, version=1, select_tag=plan.select_tag,
                       n_steps=n_steps, chunk_steps=max(1, min(chunk_steps, n_steps)),
                       n_trials=len(seeds), cache_delay_weights=int(cache_delay_weights))
        g = f.create_group("populations")
        for name, p in plan.populations.items():
            s = g.create_group(name)
            s.attrs.update(size=p.size, process=p.process, refractory_period=p.refractory_period,
                           du=p.du, dv=p.dv, vth=p.vth, component=plan.components[name])
            dtype = np.int64 if fixed else np.float64
            s.create_dataset("bias_mant", data=np.asarray(p.bias_mant, dtype=dtype))
            s.create_dataset("bias_exp", data=np.asarray(p.bias_exp, dtype=dtype))
        g = f.create_group("connections")
        rewards = {}
        for c in plan.connections:
            s = g.create_group(c.name)
            s.attrs.update(pre=c.pre, post=c.post, n_pre=c.n_pre, n_post=c.n_post,
                           process=c.process, weight_exp=c.weight_exp,
                           num_weight_bits=c.num_weight_bits, component=plan.components[c.post])
            for key, arr in (("post", c.post_idx), ("pre", c.pre_idx), ("weights", c.weights),
                             ("delays", c.delays)):
                s.create_dataset(key, data=arr)
            if c.learning is not None:  # STDP (learning.py)
                lp = c.learning
                s.attrs.update(learning=1, dw=lp.dw, x1_tau=lp.x1_tau, y1_tau=lp.y1_tau,
                               x1_impulse=lp.x1_impulse, y1_impulse=lp.y1_impulse,
                               rng_seed=lp.rng_seed, dense=int(lp.dense))
                if lp.reward is not None:  # RewardModulatedSTDP (three_factor.py)
                    s.attrs.update(three_factor=1, dt=lp.dt)
                    rewards[lp.reward.post] = lp.reward
        # RewardModulatedSTDP (three_factor.py): the post-synaptic neurons send the reward
        for name, rp in rewards.items():
            s = f["populations"][name]
            s.attrs.update(three_factor=1, trace_decay=rp.trace_decay,
                           trace_impulse=rp.trace_impulse)
            s.create_dataset("reward", data=rp.table(net.dt_ms, n_steps))
        g = f.create_group("weight_monitors")  # STDP (learning.py)
        for name, mon in net.weight_monitors.items():
            g.create_group(name).attrs.update(connection=mon.projection,
                                              every_steps=mon.every_steps)
        used_sources = {c.pre for c in plan.connections if c.pre in plan.sources}
        g = f.create_group("sources")
        for name in used_sources:
            s = g.create_group(name)
            s.attrs.update(size=net.size_of(name), component=plan.components[name])
        g = f.create_group("traces")
        levels = learning.modulator_level_monitors(net)  # computed on the host
        for name, mon in net.state_monitors.items():
            if name in levels:
                continue
            s = g.create_group(name)
            s.attrs.update(target=mon.target, variable=mon.variable, every_steps=mon.every_steps)
            s.create_dataset("neurons", data=mon.neurons)
        recorded = [m.target for m in net.spike_monitors if m.target in plan.populations]
        f.create_group("spike_monitors").attrs["names"] = np.array(recorded, dtype="S")
        for k, seed in enumerate(seeds):
            t = f.create_group(f"trials/{k}")
            for name, p in plan.populations.items():
                state = p.initial(seed)
                t.create_dataset(f"initial/{name}/u", data=state["u"])
                t.create_dataset(f"initial/{name}/v", data=state["v"])
            for name in used_sources:
                steps, neurons = plan.source_events(name, seed, n_steps)
                t.create_dataset(f"inputs/{name}/step", data=steps.astype(np.int64))
                t.create_dataset(f"inputs/{name}/neuron", data=neurons.astype(np.int64))


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def run_worker(python: Path, job: Path, out: Path, timeout_s: float | None,
               on_progress=None, stderr_path: Path | None = None) -> bool:
    """Run the worker on ``job``; True if it finished, False if interrupted (Ctrl-C: it was
    asked to stop and wrote what it had). Raises `WorkerError` on a crash or a timeout. The
    worker's process group is gone when this returns."""
    stderr_path = stderr_path or job.with_suffix(".stderr")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("PYTHONPATH", "PYTHONHOME"):  # the worker needs nothing of ours, and 3.11
        env.pop(key, None)                    # paths would break the 3.10 interpreter
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen([str(python), str(WORKER), str(job), str(out)],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                text=True, env=env, start_new_session=True)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    interrupted = False
    try:
        while True:
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line.startswith("progress ") and on_progress is not None:
                done, total = (int(x) for x in line.split()[1:3])
                on_progress(done, total)
            if deadline is not None and time.monotonic() > deadline and proc.poll() is None:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
                raise WorkerError(f"lava backend: the worker ran past timeout_s={timeout_s} s "
                                  f"and was stopped (with its children){_tail(stderr_path)}")
        proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # the worker itself: finish the chunk, write
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    finally:
        # whatever happened, nothing of the worker's group survives this call
        _kill_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if interrupted:
        return False
    if proc.returncode != 0:
        raise WorkerError(f"lava backend: the worker failed (exit status {proc.returncode})"
                          f"{_tail(stderr_path)}")
    if not out.exists():
        raise WorkerError("lava backend: the worker exited without writing its results"
                          f"{_tail(stderr_path)}")
    return True


def _tail(path: Path, n: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            tail = "".join(deque(f, maxlen=n)).rstrip()
    except OSError:
        return ""
    return f"; its stderr ended with:\n{tail}" if tail else " (its stderr was empty)"


class LavaRunner:
    def __init__(self, plan: Plan, cfg: LavaConfig, python: LavaPython):
        self.plan = plan
        self.cfg = cfg
        self.python = python
        self.step = 0
        self.wall_time_s = 0.0
        self.worker_meta: dict = {}
        self.complete = True
        self._out: dict | None = None

    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms``; returns everything recorded since compilation (the
        worker replays the run from step 0: see the module docstring)."""
        net = self.plan.network
        n_new = steps_of(duration_ms, net.dt_ms, "Run", net.name, "duration_ms")
        end = self.step + n_new
        show = self.cfg.progress if progress is None else progress
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="evospike_lava_") as tmp:
            job, out = Path(tmp) / "job.h5", Path(tmp) / "out.h5"
            write_job(self.plan, self.cfg.seeds, end, self.cfg.chunk_steps, job,
                      self.cfg.cache_delay_weights)
            bar = None
            if show:
                from tqdm.auto import tqdm

                bar = tqdm(total=end * len(self.cfg.seeds), unit="step",
                           desc=f"{net.name} lava {self.plan.select_tag}", leave=False)

            def on_progress(done: int, total: int) -> None:
                if bar is not None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

            try:
                finished = run_worker(self.python.path, job, out, self.cfg.timeout_s,
                                      on_progress)
            finally:
                if bar is not None:
                    bar.close()
                self.wall_time_s += time.perf_counter() - t0
            if not out.exists():  # interrupted before it wrote anything
                self.complete = False
                return self.results()
            self._read(out)
            if not finished or not self.worker_meta.get("complete", True):
                self.complete = False
        return self.results()

    def _read(self, path: Path) -> None:
        with h5py.File(path, "r") as f:
            self.worker_meta = {k: (v.item() if isinstance(v, np.generic) else v)
                                for k, v in f.attrs.items()}
            self.worker_meta["complete"] = bool(self.worker_meta.get("complete", 1))
            self.step = int(f.attrs["steps_done"])
            trials = []
            for k in range(int(f.attrs["trials_done"])):
                g = f[f"trials/{k}"]
                spikes = {name: (s["step"][()], s["neuron"][()])
                          for name, s in g.get("spikes", {}).items()}
                traces = {name: s["values"][()] for name, s in g.get("traces", {}).items()}
                # STDP (learning.py): weight snapshots, (samples, n_post, n_pre) mantissas
                traces.update({("weights", name): s["values"][()]
                               for name, s in g.get("weights", {}).items()})
                trials.append((spikes, traces))
            self._out = {"trials": trials}

    def results(self) -> Results:
        plan, net = self.plan, self.plan.network
        trials = (self._out or {"trials": []})["trials"]
        wm = self.worker_meta
        meta = {
            "network": net.name, "backend": "lava",
            "engine": f"Loihi2SimCfg(select_tag={plan.select_tag!r})",
            "engine_note": "; ".join(plan.notes), "device": "cpu (Lava simulation)",
            "precision": plan.select_tag, "dt_ms": net.dt_ms, "n_steps": self.step,
            "duration_ms": self.step * net.dt_ms, "seeds": np.asarray(self.cfg.seeds),
            "n_trials": len(self.cfg.seeds), "wall_time_s": self.wall_time_s,
            "build_time_s": float(wm.get("build_time_s", 0.0)),
            "worker_wall_time_s": float(wm.get("wall_time_s", 0.0)),
            "complete": self.complete, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"evospike": evospike.__version__,
                         "lava-nc": str(wm.get("lava_version", "")),
                         "numpy (worker)": str(wm.get("numpy_version", "")),
                         "python": platform.python_version(),
                         "lava python": str(self.python.path)},
        }
        if plan.select_tag == "fixed_pt":
            meta["trace_units"] = ("fixed_pt traces hold Lava's integer u and v; divide by "
                                   "fixed_scales[population] for the network's units")
            meta["fixed_scales"] = {k: float(v) for k, v in plan.scales.items()}
        res = Results(meta)
        n_trials = len(self.cfg.seeds)
        for mon in net.spike_monitors:
            steps, neurons, tr = [], [], []
            for k in range(n_trials):
                if mon.target in plan.sources:
                    s, n = plan.source_events(mon.target, self.cfg.seeds[k], self.step)
                elif k < len(trials) and mon.target in trials[k][0]:
                    s, n = trials[k][0][mon.target]
                else:
                    s, n = np.zeros(0, np.int64), np.zeros(0, np.int64)
                steps.append(np.asarray(s, np.int64))
                neurons.append(np.asarray(n, np.int64))
                tr.append(np.full(len(s), k, np.int64))
            step, neuron, trial = (np.concatenate(a) for a in (steps, neurons, tr))
            order = np.lexsort((neuron, step, trial))
            res.spikes_by_node[mon.target] = SpikeData(net.size_of(mon.target), step[order],
                                                       neuron[order].astype(np.int32),
                                                       trial[order].astype(np.int32))
        levels = learning.modulator_level_monitors(net)  # RewardModulatedSTDP
        for name, (mon, mod) in levels.items():
            steps, values = three_factor.level_trace(mod, net.dt_ms, self.step,
                                                     mon.every_steps, n_trials)
            res.traces[name] = TraceData(mon.target, mon.variable, steps, mon.neurons, values)
        for name, mon in net.state_monitors.items():
            if name in levels:
                continue
            sample_steps = np.arange(0, self.step, mon.every_steps, dtype=np.int64)
            values = np.full((n_trials, sample_steps.size, mon.neurons.size), np.nan)
            for k, (_, traces) in enumerate(trials):
                if name in traces:
                    got = np.asarray(traces[name], dtype=np.float64)[:sample_steps.size]
                    values[k, :got.shape[0]] = got
            if mon.variable == "v" and plan.select_tag == "floating_pt":
                values = values + plan.populations[mon.target].v_offset[mon.neurons]
            res.traces[name] = TraceData(mon.target, mon.variable, sample_steps, mon.neurons,
                                         values)
        for name, mon in net.weight_monitors.items():  # STDP (learning.py)
            conn = next(c for c in plan.connections if c.projection == mon.projection)
            sample_steps = np.arange(0, self.step, mon.every_steps, dtype=np.int64)
            values = np.full((n_trials, sample_steps.size, conn.post_idx.size), np.nan)
            for k, (_, traces) in enumerate(trials):
                got = traces.get(("weights", name))
                if got is not None:
                    got = np.asarray(got, np.float64)[:sample_steps.size]
                    values[k, :got.shape[0]] = got[:, conn.post_idx, conn.pre_idx] * \
                        conn.learning.quantum
            res.weights[name] = WeightData(mon.projection, sample_steps, values)
        return res

    def memory_report(self) -> dict:
        """Bytes of the synapse arrays handed to Lava (post, pre, weight, delay per synapse)."""
        n = sum(c.weights.size for c in self.plan.connections)
        total = sum(c.post_idx.nbytes + c.pre_idx.nbytes + np.asarray(c.weights).nbytes +
                    c.delays.nbytes for c in self.plan.connections)
        return {"synapses": n, "synapse_bytes": total,
                "bytes_per_synapse": total / n if n else 0.0}
