"""What every backend's runner does around its own stepping, written once: the duration check,
the progress bar, the handling of an interrupted run call, and the assembly of `Results` with
the metadata common to all backends.

Framework-free (no torch, brian2 or lava import): each runner passes in what only it knows
(its library's version, how many steps it really ran, what it recorded).

The interrupt contract, the same on every backend: a KeyboardInterrupt (Ctrl-C, or SIGTERM /
SIGHUP turned into one by the command line) stops the run call; the runner keeps the steps it
actually completed and what it recorded in them, marks its results incomplete (for good: a
later ``run`` continues, but the results still say that steps were lost or cut short), and
returns them instead of raising.
"""

from __future__ import annotations

import math
import numbers
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

import evospike
from evospike.connectivity import ConnectivityLog
from evospike.errors import ValidationError
from evospike.results import Results, SpikeData, TraceData, WeightData
from evospike.units import steps_of

if TYPE_CHECKING:
    from evospike.ir.network import Network

#: steps per chunk of the runners that step on the host: inputs are realised a chunk at a time
CHUNK_STEPS = 1000


def steps_for(duration_ms: float, dt_ms: float, network: str) -> int:
    """Steps in a run call of ``duration_ms`` on network ``network``: a whole number, >= 0 (a
    zero-length call just returns the results so far). Anything else is one line naming the
    network and the value, raised before any work is done."""
    if (isinstance(duration_ms, bool) or not isinstance(duration_ms, numbers.Real)
            or not math.isfinite(duration_ms) or duration_ms < 0):
        raise ValidationError("Run", network, "duration_ms", "must be a finite number of ms >= 0",
                              duration_ms)
    return steps_of(float(duration_ms), dt_ms, "Run", network, "duration_ms")


class ProgressBar:
    """A tqdm bar when ``show``, nothing otherwise. It appears only for calls lasting longer
    than ``delay`` seconds (short runs in scripts and tests print nothing); with ``lazy`` it
    starts at the first update, so that its rate and time left exclude what came before
    (Brian2 compiles its code before its first report)."""

    def __init__(self, total: int, show: bool, label: str, unit: str = "step",
                 delay: float = 2.0, lazy: bool = False):
        self.total = total
        self.show = show
        self.label = label
        self.unit = unit
        self.delay = delay
        self._bar = None
        self._closed = False
        if show and not lazy:
            self._open()

    def _open(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total, unit=self.unit, desc=self.label, leave=False,
                         delay=self.delay)

    def update(self, n: int) -> None:
        """``n`` more units done."""
        if self.show and not self._closed:
            if self._bar is None:
                self._open()
            self._bar.update(n)

    def show_at(self, done: int, total: int | None = None) -> None:
        """``done`` units done in all (of ``total``, when the total has changed)."""
        if self.show and not self._closed:
            if self._bar is None:
                self._open()
            if total is not None:
                self._bar.total = total
            self._bar.n = done
            self._bar.refresh()

    def close(self) -> None:
        self._closed = True
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunCall:
    """The body of one ``run`` call: measures its wall time and turns a KeyboardInterrupt
    raised inside it into ``interrupted = True`` (the call returns the results it has rather
    than losing them in a traceback). ``sync`` waits for queued device work first, so the
    wall time is that of the work, not of its submission. Other exceptions pass through."""

    def __init__(self, sync: Callable[[], None] | None = None):
        self.sync = sync
        self.interrupted = False
        self.wall_time_s = 0.0
        self._t0 = 0.0

    def __enter__(self) -> RunCall:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        try:
            if self.sync is not None:
                self.sync()
        finally:
            self.wall_time_s = time.perf_counter() - self._t0
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = True
            return True
        return False


@dataclass(frozen=True)
class ChunkedRun:
    """What `run_chunks` did: the step it reached (absolute), whether it reached the end it
    was asked for, and its wall time."""

    reached: int
    complete: bool
    wall_time_s: float


def run_chunks(start: int, n_steps: int, advance: Callable[[int, int], int],
               reached: Callable[[], int], *, chunk: int = CHUNK_STEPS, progress: bool = False,
               label: str = "", sync: Callable[[], None] | None = None) -> ChunkedRun:
    """Run steps [start, start + n_steps) as chunks aligned on multiples of ``chunk``.

    ``advance(step0, n)`` runs steps [step0, step0 + n) and returns how many it completed;
    fewer than ``n`` means the backend stopped early, and the loop ends there, incomplete.
    ``reached()`` says which step the backend has completed, asked after a KeyboardInterrupt
    (it may land inside a chunk: only the backend knows how far it got)."""
    end = start + n_steps
    step = start
    stopped = False
    with ProgressBar(n_steps, progress, label) as bar, RunCall(sync) as call:
        while step < end:
            n = min(chunk - step % chunk, end - step)
            done = advance(step, n)
            step += done
            bar.update(done)
            if done < n:
                stopped = True
                break
    if call.interrupted:
        step = reached()
    return ChunkedRun(step, not (call.interrupted or stopped) and step == end,
                      call.wall_time_s)


def _flat(parts: Iterable[np.ndarray]) -> np.ndarray:
    parts = [np.asarray(p, np.int64) for p in parts]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class ResultsBuilder:
    """Assembles one `Results`: the metadata every backend records, then what it recorded.

    Recorded data is kept only within the steps run (``n_steps``): a step cut short by an
    interrupt may have recorded part of itself (a spike, a sample) without being counted as
    run, and a results file holds whole steps (`Results.load` checks it)."""

    def __init__(self, network: str, backend: str, *, engine: str, engine_note: str,
                 device: str, precision: str, dt_ms: float, n_steps: int, seeds: Sequence[int],
                 wall_time_s: float, complete: bool, versions: Mapping[str, str],
                 units: str = "mV", schedule: str = "evospike", **extra: object):
        n_steps = int(n_steps)
        self.n_steps = n_steps
        self.n_trials = len(seeds)
        #: the keys every backend writes; ``extra`` adds the backend's own (build times,
        #: fixed-point scales, what an interruption kept, ...)
        self.meta: dict = {
            "network": network, "backend": backend, "engine": engine,
            "engine_note": engine_note, "device": device, "precision": precision,
            "units": str(units), "schedule": str(schedule), "dt_ms": float(dt_ms),
            "n_steps": n_steps,
            "duration_ms": n_steps * float(dt_ms),
            "seeds": np.asarray(seeds, dtype=np.int64), "n_trials": self.n_trials,
            "wall_time_s": float(wall_time_s), "complete": bool(complete),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra,
            # evospike, numpy and python always; the backend names its own libraries
            "versions": {"evospike": evospike.__version__, **versions,
                         "numpy": np.__version__, "python": platform.python_version()},
        }
        self.results = Results(self.meta)

    # ------------------------------------------------------------------ spikes
    def spikes(self, node: str, size: int, step: np.ndarray, neuron: np.ndarray,
               trial: np.ndarray) -> None:
        """Spikes of ``node`` as (step, neuron, trial) triples, in any order."""
        step, neuron, trial = (np.asarray(a, np.int64) for a in (step, neuron, trial))
        keep = step < self.n_steps
        step, neuron, trial = step[keep], neuron[keep], trial[keep]
        order = np.lexsort((neuron, step, trial))
        self.results.spikes_by_node[node] = SpikeData(int(size), step[order],
                                                      neuron[order].astype(np.int32),
                                                      trial[order].astype(np.int32))

    def spikes_flat(self, node: str, size: int,
                    parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Spikes of ``node`` recorded as chunks of (steps, flat) with flat = trial * size +
        neuron (the batched engines' layout)."""
        parts = list(parts)
        steps, flat = _flat(p[0] for p in parts), _flat(p[1] for p in parts)
        trial, neuron = np.divmod(flat, size)
        self.spikes(node, size, steps, neuron, trial)

    def spikes_by_trial(self, node: str, size: int,
                        per_trial: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Spikes of ``node`` recorded as (steps, neurons) per trial, trial 0 first."""
        trial = _flat(np.full(len(s), k, np.int64) for k, (s, _) in enumerate(per_trial))
        self.spikes(node, size, _flat(s for s, _ in per_trial), _flat(n for _, n in per_trial),
                    trial)

    # ------------------------------------------------------------------ samples
    def _within_run(self, steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        steps = np.asarray(steps, np.int64)
        keep = steps < self.n_steps
        return steps[keep], np.asarray(values)[:, keep]

    def trace(self, name: str, target: str, variable: str, steps: np.ndarray,
              neurons: np.ndarray, values: np.ndarray) -> None:
        """A state trace: ``values`` is (trials, samples, neurons)."""
        steps, values = self._within_run(steps, values)
        self.results.traces[name] = TraceData(target, variable, steps, np.asarray(neurons),
                                              values)

    def weights(self, name: str, projection: str, steps: np.ndarray,
                values: np.ndarray) -> None:
        """Weight snapshots: ``values`` is (trials, snapshots, synapses)."""
        steps, values = self._within_run(steps, values)
        self.results.weights[name] = WeightData(projection, steps, values)

    def connectivity(self, log: ConnectivityLog) -> None:
        """Which neurons the synapses connect, from the snapshots a backend took (those
        within the steps run; `evospike.connectivity`)."""
        self.results.connectivity = log.connectivity(self.n_steps)
        self.results.alive = log.alive(self.n_steps)

    def stacked(self, samples: Sequence[np.ndarray], width: int,
                dtype: type | None = None) -> np.ndarray:
        """Samples recorded one (trials, width) array at a time, as (trials, samples, width);
        an empty (trials, 0, width) when none was recorded."""
        if samples:
            out = np.stack(samples, axis=1)
            return out if dtype is None else out.astype(dtype)
        return np.zeros((self.n_trials, 0, width), dtype or np.float64)

    # ------------------------------------------------------------------ the end
    def build(self, energy_of: Network | None = None) -> Results:
        """The `Results`; with ``energy_of``, the energy estimate of its energy budgets
        (computed from the spikes just added) joins the metadata."""
        if energy_of is not None and energy_of.processes:
            from evospike.ir.energy_budget import energy_meta

            self.meta.update(energy_meta(energy_of, self.results))
        return self.results
