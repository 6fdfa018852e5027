"""LavaRunner: writes the job file, runs the worker under the Lava interpreter, reads back what
it recorded and returns the common `Results`.

The worker runs in its own process group (its own session), so a timeout, a crash, a kill or
Ctrl-C ends it together with every process Lava forked; none is ever left running. The host
watches the worker's pid (a dead worker is seen within `POLL_S`), not its pipe. What the
worker recorded survives it: a worker killed mid-run leaves its completed chunks on disk
(`read_partial`), and the `WorkerError` carries them as incomplete `Results` (``.partial``).

Lava keeps its state inside the worker, so a second `run` call replays the simulation from
step 0 to the new end (inputs and initial state are drawn from the seeds, so the replay is
the same run) and returns everything since compilation, as the other backends do.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from evospike.errors import EvoSpikeError
from evospike.results import Results
from evospike.run_loop import ProgressBar, ResultsBuilder, RunCall, steps_for

from . import learning, three_factor
from .compiler import LavaConfig, Plan
from .environment import LavaPython

WORKER = Path(__file__).with_name("worker.py")
JOB_FORMAT = "evospike-lava-job"
OUT_FORMAT = "evospike-lava-output"
PARTIAL_FORMAT = "evospike-lava-partial"  # the worker's manifest of what it recorded
#: seconds the worker gets to write what it has after SIGTERM, before the group is killed
GRACE_S = 20.0


class WorkerError(EvoSpikeError):
    """The Lava worker failed, was killed or timed out; the message (one line) holds the tail
    of its stderr. ``returncode``: the worker's (negative: the signal that killed it), None
    for a timeout. ``partial``: the `Results` it recorded before (marked incomplete), or
    None if it recorded nothing."""

    def __init__(self, message: str, returncode: int | None = None):
        super().__init__(message)
        self.returncode = returncode
        self.partial: Results | None = None


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


#: seconds between two looks at the worker (its exit, its progress, its stderr)
POLL_S = 0.2
#: seconds multiprocessing's resource tracker gets, once the rest of the group is killed, to
#: unlink the shared memory Lava allocated (it cleans up when its last client is gone)
TRACKER_GRACE_S = 5.0
#: one Python warning as Python prints it: ``<file>:<line>: <Category>: <message>``
_WARNING_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<category>\w*Warning): "
                           r"(?P<message>.*)$")
_TRACKER_CLEANUP = re.compile(r"resource_tracker: There appear to be \d+ leaked shared_memory "
                              r"objects to clean up at shutdown$")


class LavaWarning(UserWarning):
    """A warning of the Lava backend, or one the Lava worker printed; shown as the single
    line ``lava: <category>: <message>`` (see `show_lava_warnings`)."""

    def __init__(self, category: str, message: str):
        super().__init__(category, message)
        self.category = category
        self.message = message

    def __str__(self) -> str:
        return f"lava: {self.category}: {self.message}"


def show_lava_warnings() -> None:
    """Show each `LavaWarning` as its one line, ``lava: <category>: <message>``, instead of
    Python's ``<file>:<line>: <Category>: <message>`` and the source line under it (a user
    of the CLI needs the message, not our source). Every other warning is shown as before.
    Idempotent."""
    current = warnings.showwarning
    if getattr(current, "evospike_lava", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if not isinstance(message, LavaWarning):
            current(message, category, filename, lineno, file, line)
            return
        stream = file if file is not None else sys.stderr
        if stream is not None:  # pythonw has no stderr
            with contextlib.suppress(OSError):
                stream.write(f"{message}\n")

    show.evospike_lava = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def parse_warning(line: str) -> tuple[str, str] | None:
    """(category, message) of a Python warning line, None for any other line."""
    m = _WARNING_LINE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    return m["category"], " ".join(m["message"].split())


class StderrRelay:
    """Follows the worker's stderr file as it grows: each Python warning becomes one
    `LavaWarning` (once per distinct category and message; the source line Python prints
    under it is dropped); every other line is kept for the error message."""

    def __init__(self, path: Path, emit: Callable[[str, str], None] | None = None,
                 keep: int = 30):
        self.path = path
        self.emit = emit or (lambda category, message: warnings.warn(
            LavaWarning(category, message), stacklevel=2))
        self.offset = 0
        self.pending = b""
        self.seen: set[tuple[str, str]] = set()
        self.other: deque[str] = deque(maxlen=keep)
        self.after_warning = False

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        self.offset += len(data)
        *lines, self.pending = (self.pending + data).split(b"\n")
        for raw in lines:
            self._line(raw.decode(errors="replace"))

    def finish(self) -> None:
        self.poll()
        if self.pending:
            self._line(self.pending.decode(errors="replace"))
            self.pending = b""

    def _line(self, line: str) -> None:
        found = parse_warning(line)
        if found is not None:
            self.after_warning = True
            if _TRACKER_CLEANUP.match(found[1]):
                return  # the tracker unlinking what a killed group left: end_group's cleanup
            if found not in self.seen:
                self.seen.add(found)
                self.emit(*found)
            return
        if self.after_warning and line[:1].isspace():  # the warning's source line
            self.after_warning = False
            return
        self.after_warning = False
        if line.strip():
            self.other.append(line.rstrip())

    def tail(self, n: int = 5, limit: int = 600) -> str:
        """The last lines of stderr that were not warnings, joined into one line."""
        lines = list(self.other)[-n:]
        if not lines:
            return (" (its stderr held only warnings)" if self.seen
                    else " (its stderr was empty)")
        text = " | ".join(line.strip() for line in lines)
        if len(text) > limit:
            text = "..." + text[-limit:]
        return f"; its stderr ended with: {text}"


def _group_members(pgid: int) -> list[tuple[int, str]] | None:
    """(pid, state) of every process in the process group ``pgid``; None without /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and ")"
        if int(fields[2]) == pgid:
            out.append((int(entry.name), fields[0]))
    return out


def _is_resource_tracker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing.resource_tracker" in cmdline


def end_group(pgid: int, tracker_grace_s: float = TRACKER_GRACE_S) -> None:
    """Kill every process of the worker's process group (the worker and all Lava forked).

    Lava's processes inherit the worker's SIGTERM handler, so only SIGKILL ends them. The
    group is frozen first (SIGSTOP: nothing forks while we look), everything but
    multiprocessing's resource tracker is killed, and the tracker is left a few seconds to
    unlink the shared memory of the dead (it ignores SIGTERM and exits once its clients are
    gone; killed too, it would leave the segments in /dev/shm). Then the group is killed."""
    def signal_group(sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:  # the group's id was reused by someone else's processes
            return False
        return True

    if not signal_group(signal.SIGSTOP):
        return
    members = _group_members(pgid)
    if members is not None:
        for pid, state in members:
            if state != "Z" and not _is_resource_tracker(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        signal_group(signal.SIGCONT)
        deadline = time.monotonic() + tracker_grace_s
        while time.monotonic() < deadline:
            members = _group_members(pgid) or []
            if all(state == "Z" for _, state in members):
                break
            time.sleep(0.05)
    signal_group(signal.SIGKILL)


def _ended_by(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"failed (exit status {returncode})"


def run_worker(python: Path, job: Path, out: Path, timeout_s: float | None,
               on_progress: Callable[[int, int], None] | None = None,
               stderr_path: Path | None = None,
               on_warning: Callable[[str, str], None] | None = None) -> bool:
    """Run the worker on ``job``; True if it finished, False if interrupted (Ctrl-C: it was
    asked to stop and wrote what it had). Raises `WorkerError` on a crash, a kill or a
    timeout. The worker's warnings go to ``on_warning(category, message)`` (default: a
    `LavaWarning`) as they appear. The worker's process group is gone when this returns.

    The worker is watched by its pid, never by its pipe: Lava's forked processes inherit
    the pipe and hold it open after the worker dies, so the end of the pipe says nothing."""
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

    threading.Thread(target=pump, daemon=True).start()
    relay = StderrRelay(stderr_path, on_warning)
    progress = [0, 0]

    def take_progress() -> None:
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            if line.startswith("progress "):
                progress[:] = (int(x) for x in line.split()[1:3])
                if on_progress is not None:
                    on_progress(*progress)

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    interrupted = False
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            take_progress()
            relay.poll()
            if deadline is not None and time.monotonic() > deadline and proc.poll() is None:
                end_group(proc.pid)
                proc.wait()
                relay.finish()
                raise WorkerError(f"lava backend: the worker ran past timeout_s={timeout_s} s "
                                  f"and was stopped (with its children){relay.tail()}")
        take_progress()
    except KeyboardInterrupt:
        interrupted = True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # the worker itself: finish the chunk, write
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.wait(timeout=GRACE_S)  # a second Ctrl-C: stop waiting
    finally:
        # whatever happened, nothing of the worker's group survives this call
        end_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        relay.finish()
    if interrupted:
        return False
    if proc.returncode != 0:
        done = (f" after {progress[0]} of {progress[1]} steps" if progress[1] else
                " before its first chunk")
        raise WorkerError(f"lava backend: the worker (pid {proc.pid}) {_ended_by(proc.returncode)}"
                          f"{done}{relay.tail()}", returncode=proc.returncode)
    if not out.exists():
        raise WorkerError("lava backend: the worker exited without writing its results"
                          f"{relay.tail()}")
    return True


def read_partial(out: Path) -> tuple[int, list[tuple[dict, dict]]] | None:
    """What a worker that did not write ``out`` had recorded, from ``<out>.recorded/``: the
    steps every kept trial covers and, per trial, its spikes {population: (step, neuron)} and
    traces {monitor: (samples, all neurons of the target)}; None if it recorded nothing.

    A trial keeps the steps that all its components have run and all their recorders have
    written; of the trials started, the first k are kept, k chosen to keep the most
    trial-steps (one more trial may cost steps of the others: every trial covers the same)."""
    folder = Path(f"{out}.recorded")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != PARTIAL_FORMAT:
        return None
    n_steps, chunk = int(manifest["n_steps"]), int(manifest["chunk"])
    n_components = int(manifest["components_per_trial"])

    def parts(path: Path) -> list[np.ndarray]:
        found, k = [], 0
        while (path.parent / f"{path.name}.{k}.npy").exists():
            found.append(np.load(path.parent / f"{path.name}.{k}.npy", allow_pickle=False))
            k += 1
        return found

    trials: dict[int, list] = {}
    for entry in manifest["entries"]:
        trials.setdefault(int(entry["trial"]), []).append(entry)
    covered, data = [], []
    for k in range(len(trials)):
        entries = trials.get(k, [])
        spikes, traces, steps = {}, {}, n_steps if len(entries) == n_components else 0
        for entry in entries:
            steps = min(steps, int(entry["done"]))
            where = folder / entry["folder"]
            for name, base in entry["spikes"].items():
                got = parts(where / base)
                steps = min(steps, len(got) * chunk)
                both = np.concatenate(got, axis=1) if got else np.zeros((2, 0), np.int64)
                spikes[name] = (both[0].astype(np.int64), both[1].astype(np.int64))
            for name, base in entry["traces"].items():
                got = parts(where / base)
                steps = min(steps, len(got) * chunk)
                traces[name] = np.concatenate(got) if got else None
        covered.append(steps)
        data.append((spikes, traces))
    best_k, best_steps = 0, 0
    for k in range(1, len(covered) + 1):
        steps = min(covered[:k])
        if k * steps > best_k * best_steps:
            best_k, best_steps = k, steps
    if best_k == 0:
        return None
    kept = []
    for spikes, traces in data[:best_k]:
        spikes = {name: (s[s < best_steps], n[s < best_steps]) for name, (s, n) in spikes.items()}
        kept.append((spikes, {name: v for name, v in traces.items() if v is not None}))
    return best_steps, kept


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
        end = self.step + steps_for(duration_ms, net.dt_ms, net.name)
        show = self.cfg.progress if progress is None else progress
        with tempfile.TemporaryDirectory(prefix="evospike_lava_") as tmp:
            job, out = Path(tmp) / "job.h5", Path(tmp) / "out.h5"
            failure: WorkerError | None = None
            finished = False
            # the worker reports its progress over all trials (replayed steps included)
            with ProgressBar(end * len(self.cfg.seeds), show,
                             f"{net.name} lava {self.plan.select_tag}") as bar, \
                    RunCall() as call:
                write_job(self.plan, self.cfg.seeds, end, self.cfg.chunk_steps, job,
                          self.cfg.cache_delay_weights)
                try:
                    # a Ctrl-C inside asks the worker to stop and write what it has: False
                    finished = run_worker(self.python.path, job, out, self.cfg.timeout_s,
                                          bar.show_at)
                except WorkerError as exc:
                    failure = exc
            self.wall_time_s += call.wall_time_s
            if failure is not None:
                # keep what the dead worker recorded: the caller can save it (the CLI does)
                if self._read_partial(out):
                    self.complete = False
                    failure.partial = self.results()
                raise failure
            if not out.exists():  # interrupted before it wrote its results
                self._read_partial(out)
                self.complete = False
                return self.results()
            self._read(out)
            if not finished or not self.worker_meta.get("complete", True):
                self.complete = False
        return self.results()

    def _read_partial(self, out: Path) -> bool:
        """Take what a worker that wrote no ``out`` had recorded (`read_partial`); False if
        it had recorded no complete chunk."""
        found = read_partial(out)
        if found is None:
            return False
        steps, trials = found
        monitors = self.plan.network.state_monitors
        self.worker_meta = {"complete": False}
        self.step = steps
        self._out = {"trials": [
            (spikes, {name: values[:, monitors[name].neurons]
                      for name, values in traces.items() if name in monitors})
            for spikes, traces in trials]}
        return True

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
        fixed = ({"trace_units": "fixed_pt traces hold Lava's integer u and v; divide by "
                                 "fixed_scales[population] for the network's units",
                  "fixed_scales": {k: float(v) for k, v in plan.scales.items()}}
                 if plan.select_tag == "fixed_pt" else {})
        out = ResultsBuilder(
            net.name, "lava", engine=f"Loihi2SimCfg(select_tag={plan.select_tag!r})",
            engine_note="; ".join(plan.notes), device="cpu (Lava simulation)",
            precision=plan.select_tag, dt_ms=net.dt_ms, n_steps=self.step,
            seeds=self.cfg.seeds, wall_time_s=self.wall_time_s, complete=self.complete,
            versions={"lava-nc": str(wm.get("lava_version", "")),
                      "numpy (worker)": str(wm.get("numpy_version", "")),
                      "lava python": str(self.python.path)},
            build_time_s=float(wm.get("build_time_s", 0.0)),
            worker_wall_time_s=float(wm.get("wall_time_s", 0.0)), **fixed)
        n_trials = len(self.cfg.seeds)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        for mon in net.spike_monitors:
            if mon.target in plan.sources:  # the inputs are drawn on the host
                per_trial = [plan.source_events(mon.target, seed, self.step)
                             for seed in self.cfg.seeds]
            else:  # trials the worker did not reach spiked nowhere
                per_trial = [trials[k][0].get(mon.target, empty) if k < len(trials) else empty
                             for k in range(n_trials)]
            out.spikes_by_trial(mon.target, net.size_of(mon.target), per_trial)
        levels = learning.modulator_level_monitors(net)  # RewardModulatedSTDP
        for name, (mon, mod) in levels.items():
            steps, values = three_factor.level_trace(mod, net.dt_ms, self.step,
                                                     mon.every_steps, n_trials)
            out.trace(name, mon.target, mon.variable, steps, mon.neurons, values)
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
            out.trace(name, mon.target, mon.variable, sample_steps, mon.neurons, values)
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
            out.weights(name, mon.projection, sample_steps, values)
        return out.build()

    def memory_report(self) -> dict:
        """Bytes of the synapse arrays handed to Lava (post, pre, weight, delay per synapse)."""
        n = sum(c.weights.size for c in self.plan.connections)
        total = sum(c.post_idx.nbytes + c.pre_idx.nbytes + np.asarray(c.weights).nbytes +
                    c.delays.nbytes for c in self.plan.connections)
        return {"synapses": n, "synapse_bytes": total,
                "bytes_per_synapse": total / n if n else 0.0}
