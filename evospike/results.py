"""Results: one HDF5 layout for every backend.

Layout (format ``evospike-results``, version 1)::

    /                     attrs: format, version, network, backend, engine, device, precision,
                          dt_ms, n_steps, duration_ms, seeds, n_trials, wall_time_s, complete,
                          created, versions (JSON: evospike, numpy, torch, ...)
    /spikes/<node>        attrs: size; datasets step (int64), neuron (int32), trial (int32)
    /traces/<monitor>     attrs: target, variable; datasets steps (S,), neurons (m,),
                          values (trials, S, m)
    /weights/<monitor>    attrs: projection; datasets steps (S,), values (trials, S, synapses)
    /connectivity/<proj>  optional (`evospike.connectivity`): attrs pre, post, n_pre, n_post;
                          datasets steps (S,), counts (trials, S), and for small projections
                          pre (E,), post (E,), present (trials, S, E) bool
    /alive/<population>   optional: datasets steps (S,), alive (trials, S, n) bool

Times are stored as integer steps; ``time_ms = step * dt_ms``. A spike in step n is the
threshold crossing during [n dt, (n+1) dt).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import h5py
import numpy as np

from evospike.atomic import atomic_h5, open_h5
from evospike.connectivity import AliveData, ConnectivityData
from evospike.errors import EvoSpikeError, ValidationError, first_bad
from evospike.ir.timing import SCHEDULES

FORMAT = "evospike-results"
#: metadata entries that are dicts, stored as JSON strings
JSON_META = ("versions", "energy_pj", "energy_profiles")
VERSION = 1


@dataclass
class SpikeData:
    size: int
    step: np.ndarray
    neuron: np.ndarray
    trial: np.ndarray


@dataclass
class TraceData:
    target: str
    variable: str
    steps: np.ndarray
    neurons: np.ndarray
    values: np.ndarray  # (trials, samples, neurons)


@dataclass
class WeightData:
    projection: str
    steps: np.ndarray
    values: np.ndarray  # (trials, samples, synapses)


class RunMeta:
    """Read-outs of a run's metadata ``meta`` (a dict), shared by `Results` and the reduced
    summaries of a run (`evospike.validation.report.RunSummary`)."""

    meta: dict

    @property
    def dt_ms(self) -> float:
        return float(self.meta["dt_ms"])

    @property
    def n_steps(self) -> int:
        return int(self.meta["n_steps"])

    @property
    def duration_ms(self) -> float:
        return self.n_steps * self.dt_ms

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", True))

    @property
    def schedule(self) -> str:
        """The timing convention the run followed (`evospike.ir.timing`); results written
        before it was recorded ran in EvoSpike's order: "evospike"."""
        return str(self.meta.get("schedule", "evospike"))


@dataclass
class Results(RunMeta):
    """What a run recorded. ``meta`` holds the run metadata (backend, dt_ms, n_steps, seeds,
    wall_time_s, complete, versions, ...)."""

    meta: dict
    spikes_by_node: dict[str, SpikeData] = field(default_factory=dict)
    traces: dict[str, TraceData] = field(default_factory=dict)
    weights: dict[str, WeightData] = field(default_factory=dict)
    #: which neurons the synapses connect, over the run (`evospike.connectivity`); empty in
    #: files written before it was recorded, and on backends that do not record it
    connectivity: dict[str, ConnectivityData] = field(default_factory=dict)
    alive: dict[str, AliveData] = field(default_factory=dict)

    # ------------------------------------------------------------- accessors
    @property
    def n_trials(self) -> int:
        return int(self.meta["n_trials"])

    def _node(self, node: str) -> SpikeData:
        if node not in self.spikes_by_node:
            raise EvoSpikeError(f"no spikes were recorded for '{node}' "
                                f"(recorded: {sorted(self.spikes_by_node)})")
        return self.spikes_by_node[node]

    def spikes(self, node: str, trial: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(times_ms, neurons) of ``node``'s spikes in ``trial``, sorted by time then neuron."""
        d = self._node(node)
        sel = d.trial == trial
        return d.step[sel] * self.dt_ms, d.neuron[sel].astype(np.int64)

    def spike_steps(self, node: str, trial: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(steps, neurons) of ``node``'s spikes in ``trial``."""
        d = self._node(node)
        sel = d.trial == trial
        return d.step[sel], d.neuron[sel].astype(np.int64)

    def rates_hz(self, node: str, trial: int = 0) -> np.ndarray:
        """Mean firing rate of every neuron of ``node`` over the run, in Hz."""
        d = self._node(node)
        counts = np.bincount(d.neuron[d.trial == trial], minlength=d.size)
        return counts / (self.duration_ms * 1e-3) if self.n_steps else counts * 0.0

    def mean_rate_hz(self, node: str) -> float:
        """Population mean rate over all trials, in Hz."""
        d = self._node(node)
        if self.n_steps == 0:
            return 0.0
        return d.step.size / (d.size * self.n_trials * self.duration_ms * 1e-3)

    def trial(self, k: int) -> Results:
        """The results of trial ``k`` alone, as a one-trial `Results`."""
        if not 0 <= k < self.n_trials:
            raise EvoSpikeError(f"trial {k} is out of range: these results hold "
                                f"{self.n_trials} trial(s)")
        meta = dict(self.meta, n_trials=1, seeds=np.asarray(self.meta["seeds"])[[k]])
        out = Results(meta)
        for name, d in self.spikes_by_node.items():
            sel = d.trial == k
            out.spikes_by_node[name] = SpikeData(d.size, d.step[sel], d.neuron[sel],
                                                 np.zeros(int(sel.sum()), np.int32))
        for name, t in self.traces.items():
            out.traces[name] = TraceData(t.target, t.variable, t.steps, t.neurons,
                                         t.values[k:k + 1])
        for name, w in self.weights.items():
            out.weights[name] = WeightData(w.projection, w.steps, w.values[k:k + 1])
        out.connectivity = {n: c.trial(k) for n, c in self.connectivity.items()}
        out.alive = {n: a.trial(k) for n, a in self.alive.items()}
        return out

    # ------------------------------------------------------------- HDF5
    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file + rename)."""
        with atomic_h5(path) as f:
            for key, value in self.meta.items():
                if isinstance(value, dict):
                    value = json.dumps(value)
                f.attrs[key] = value
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            g = f.create_group("spikes")
            for name, d in self.spikes_by_node.items():
                s = g.create_group(name)
                s.attrs["size"] = d.size
                s.create_dataset("step", data=d.step.astype(np.int64), compression="gzip",
                                 compression_opts=1)
                s.create_dataset("neuron", data=d.neuron.astype(np.int32), compression="gzip",
                                 compression_opts=1)
                s.create_dataset("trial", data=d.trial.astype(np.int32), compression="gzip",
                                 compression_opts=1)
            g = f.create_group("traces")
            for name, t in self.traces.items():
                s = g.create_group(name)
                s.attrs.update(target=t.target, variable=t.variable)
                s.create_dataset("steps", data=t.steps)
                s.create_dataset("neurons", data=t.neurons)
                s.create_dataset("values", data=t.values)
            g = f.create_group("weights")
            for name, w in self.weights.items():
                s = g.create_group(name)
                s.attrs["projection"] = w.projection
                s.create_dataset("steps", data=w.steps)
                s.create_dataset("values", data=w.values)
            _save_connectivity(f, self.connectivity, self.alive)

    @staticmethod
    def load(path: str | os.PathLike) -> Results:
        """Read a results file, checked as strictly as a network file: every problem is one
        `ValidationError` naming the file, the field and the value (see ``_FileReader``)."""
        with open_h5(path, "results", FORMAT) as f:
            return _FileReader(path, f).results()

    # ------------------------------------------------------------- reporting
    def summary(self) -> str:
        m = self.meta
        lines = [
            f"results of network '{m.get('network', '?')}' "
            f"({'complete' if self.complete else 'INCOMPLETE: interrupted'})",
            f"  backend {m.get('backend')} ({m.get('engine', '')}, {m.get('device', '')}, "
            f"{m.get('precision', '')}), dt {self.dt_ms} ms, {self.n_steps} steps "
            f"= {self.duration_ms:g} ms, {self.n_trials} trial(s), seeds {m.get('seeds')}, "
            f"schedule {self.schedule}",
            f"  wall time {float(m.get('wall_time_s', 0.0)):.3f} s"
            + (f", {m['threads']} CPU thread(s)" if "threads" in m else "")
            + (f" ({m['threading']})" if "threading" in m else ""),
        ]
        for name, d in self.spikes_by_node.items():
            lines.append(f"  {name:<16} {d.size:>8} neurons  {d.step.size:>10} spikes  "
                         f"mean rate {self.mean_rate_hz(name):8.3f} Hz")
        for name, t in self.traces.items():
            lines.append(f"  trace {name}: {t.variable} of {t.neurons.size} neurons of "
                         f"{t.target}, {t.steps.size} samples")
        for name, w in self.weights.items():
            lines.append(f"  weights {name}: {w.values.shape[-1]} synapses of {w.projection}, "
                         f"{w.steps.size} snapshots")
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike, trial: int = 0, max_neurons: int = 500,
             bin_ms: float = 5.0, t_start_ms: float | None = None,
             t_stop_ms: float | None = None) -> Path:
        """Raster (up to ``max_neurons`` per node) above the population rate and the recorded
        states, over [``t_start_ms``, ``t_stop_ms``) (default: the whole run). The file format
        follows the extension: .png, .pdf or .svg."""
        from evospike.plotting import raster_and_rate

        return raster_and_rate(self, Path(path), trial, max_neurons, bin_ms,
                               t_start_ms=t_start_ms, t_stop_ms=t_stop_ms)


#: root attributes every results file has, and the text attributes it may have
_REQUIRED_META = ("version", "dt_ms", "n_steps", "n_trials", "seeds")
_TEXT_META = ("network", "backend", "engine", "engine_note", "device", "precision", "created",
              "model", "schedule", "threading")


def _plain(value: object) -> object:
    """An attribute as a plain Python value (str, int, float, bool) where it is a scalar, so
    type checks and messages see ``0``, not ``np.int64(0)``; arrays stay arrays."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
        return value.decode(errors="replace") if isinstance(value, bytes) else value
    return value


class _FileReader:
    """Reads one open results file and checks it on the way: dtypes, shapes, ranges and the
    agreement between spikes, traces and the run's metadata. A results file is input like a
    network file; a bad one must stop here with its field named, not surface later as a
    negative rate in ``info`` or an IndexError deep in an analysis."""

    def __init__(self, path: str | os.PathLike, f: h5py.File):
        self.path = str(path)
        self.f = f

    def fail(self, field: str, problem: str, value: object = None) -> NoReturn:
        raise ValidationError("results file", self.path, field, problem, value)

    # ------------------------------------------------------------- metadata
    def meta(self) -> dict:
        meta = {}
        for key in self.f.attrs:
            try:
                value = self.f.attrs[key]
            except (OSError, TypeError) as exc:
                self.fail(key, f"could not be read ({exc})")
            if isinstance(value, h5py.Empty):
                self.fail(key, "is empty")
            value = _plain(value)
            if key in JSON_META:
                value = self._json(key, value)
            meta[key] = value
        for key in _REQUIRED_META:
            if key not in meta:
                self.fail(key, "is missing (a results file records it for every run)")
        version = self._int(meta, "version")
        if not 1 <= version <= VERSION:
            self.fail("version", f"is not a results format version this EvoSpike reads "
                                 f"(1 to {VERSION})", version)
        dt = self._real(meta, "dt_ms")
        if dt <= 0:
            self.fail("dt_ms", "must be a positive number of ms", dt)
        if self._int(meta, "n_steps") < 0:
            self.fail("n_steps", "must not be negative", meta["n_steps"])
        n_trials = self._int(meta, "n_trials")
        if n_trials < 1:
            self.fail("n_trials", "must be at least 1", n_trials)
        seeds = meta["seeds"]
        if (not isinstance(seeds, np.ndarray) or seeds.ndim != 1
                or seeds.dtype.kind not in "iu"):
            self.fail("seeds", "must be a list of integers, one per trial", seeds)
        if seeds.size != n_trials:
            self.fail("seeds", f"must hold one seed per trial (n_trials is {n_trials})",
                      seeds.tolist())
        if "duration_ms" in meta:
            duration = self._real(meta, "duration_ms")
            expected = meta["n_steps"] * dt
            if abs(duration - expected) > 1e-9 * max(1.0, abs(expected)):
                self.fail("duration_ms", f"disagrees with n_steps x dt_ms = {expected:g} ms",
                          duration)
        if "complete" in meta and not (isinstance(meta["complete"], bool)
                                       or meta["complete"] in (0, 1)):
            self.fail("complete", "must be true or false", meta["complete"])
        for key in meta:
            if key.endswith("_time_s") and self._real(meta, key) < 0:
                self.fail(key, "must not be negative", meta[key])
        for key in _TEXT_META:
            if key in meta and not isinstance(meta[key], str):
                self.fail(key, "must be text", meta[key])
        if "schedule" in meta and meta["schedule"] not in SCHEDULES:
            self.fail("schedule", f"must be one of {SCHEDULES}", meta["schedule"])
        return meta

    def _json(self, key: str, value: object) -> dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                self.fail(key, f"is not valid JSON ({exc.msg})", value)
        if not isinstance(value, dict):
            self.fail(key, "must be a JSON object", value)
        return value

    def _int(self, meta: dict, key: str) -> int:
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "must be an integer", value)
        return value

    def _real(self, meta: dict, key: str) -> float:
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, "must be a number", value)
        if not math.isfinite(value):
            self.fail(key, "must be finite", value)
        return float(value)

    # ------------------------------------------------------------- groups and datasets
    def groups(self, parent: h5py.Group, where: str) -> list[tuple[str, h5py.Group]]:
        out = []
        for name in parent:
            item = parent.get(name)
            if not isinstance(item, h5py.Group):
                self.fail(f"{where}{name}", "must be a group")
            out.append((name, item))
        return out

    def text_attr(self, g: h5py.Group, where: str, key: str) -> str:
        if key not in g.attrs:
            self.fail(f"{where} attribute {key}", "is missing")
        value = _plain(g.attrs[key])
        if not isinstance(value, str):
            self.fail(f"{where} attribute {key}", "must be text", value)
        return value

    def array(self, g: h5py.Group, where: str, key: str, ndim: int, kinds: str) -> np.ndarray:
        """Dataset ``key`` of ``g``, of ``ndim`` dimensions and a dtype kind in ``kinds``
        ("iu": integers, "fiu": real numbers)."""
        field = f"{where}/{key}"
        item = g.get(key)
        if item is None:
            self.fail(field, "is missing")
        if not isinstance(item, h5py.Dataset):
            self.fail(field, "must be a dataset")
        if item.dtype.kind not in kinds:
            wanted = "integers" if kinds == "iu" else "real numbers"
            self.fail(field, f"must hold {wanted}", f"dtype {item.dtype}")
        if item.ndim != ndim:
            self.fail(field, f"must have {ndim} dimension(s)", f"shape {item.shape}")
        try:
            return item[()]
        except OSError as exc:
            self.fail(field, f"could not be read ({exc})")

    def steps(self, g: h5py.Group, where: str, key: str, n_steps: int) -> np.ndarray:
        """Sample steps of a trace or weight monitor: within the steps run, increasing."""
        steps = self.array(g, where, key, 1, "iu")
        bad = (steps < 0) | (steps >= n_steps)
        if bad.any():
            self.fail(f"{where}/{key}", f"must lie in [0, {n_steps}) (the steps run)",
                      first_bad(steps, bad))
        if steps.size > 1 and (np.diff(steps) <= 0).any():
            bad = np.concatenate([[False], np.diff(steps) <= 0])
            self.fail(f"{where}/{key}", "must increase", first_bad(steps, bad))
        return steps

    def connectivity(self, res: Results) -> None:
        """The optional ``connectivity`` and ``alive`` groups (`evospike.connectivity`); a file
        written before they existed has neither, and loads with none."""
        n_trials, last = res.n_trials, max(res.n_steps, 1)
        for key in ("connectivity", "alive"):
            if key in self.f and not isinstance(self.f.get(key), h5py.Group):
                self.fail(key, "must be a group")
        for name, s in self.groups(self.f.get("connectivity") or {}, "connectivity/"):
            where = f"connectivity/{name}"
            pre_node, post_node = (self.text_attr(s, where, k) for k in ("pre", "post"))
            sizes = []
            for key in ("n_pre", "n_post"):
                value = _plain(s.attrs.get(key))
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    self.fail(f"{where} attribute {key}", "must be a positive integer", value)
                sizes.append(value)
            steps = self.steps(s, where, "steps", last)
            if steps.size == 0:
                self.fail(f"{where}/steps", "must hold at least the first snapshot (step 0)")
            counts = self.array(s, where, "counts", 2, "iu")
            if counts.shape != (n_trials, steps.size):
                self.fail(f"{where}/counts", f"must have shape (n_trials, snapshots) = "
                                             f"{(n_trials, steps.size)}", f"shape {counts.shape}")
            data = ConnectivityData(pre_node, post_node, sizes[0], sizes[1], steps, counts)
            if "present" in s:
                present = self.array(s, where, "present", 3, "b")
                for key, size in (("pre", sizes[0]), ("post", sizes[1])):
                    idx = self.array(s, where, key, 1, "iu")
                    bad = (idx < 0) | (idx >= size)
                    if bad.any():
                        self.fail(f"{where}/{key}", f"must lie in [0, {size})",
                                  first_bad(idx, bad))
                    setattr(data, key, idx)
                shape = (n_trials, steps.size, data.pre.size)
                if data.post.size != data.pre.size or present.shape != shape:
                    self.fail(f"{where}/present", f"must have shape (n_trials, snapshots, "
                                                  f"pairs) = {shape}, with as many post as pre",
                              f"shape {present.shape}, {data.post.size} post")
                data.present = present
            res.connectivity[name] = data
        for name, s in self.groups(self.f.get("alive") or {}, "alive/"):
            where = f"alive/{name}"
            steps = self.steps(s, where, "steps", last)
            alive = self.array(s, where, "alive", 3, "b")
            if alive.shape[:2] != (n_trials, steps.size):
                self.fail(f"{where}/alive", f"must have shape (n_trials, snapshots, neurons) = "
                                            f"({n_trials}, {steps.size}, ...)",
                          f"shape {alive.shape}")
            res.alive[name] = AliveData(steps, alive)

    # ------------------------------------------------------------- the whole file
    def results(self) -> Results:
        res = Results(self.meta())
        n_steps, n_trials = res.n_steps, res.n_trials
        for key in ("spikes", "traces", "weights"):
            if key not in self.f:
                self.fail(key, "group is missing")
            if not isinstance(self.f.get(key), h5py.Group):
                self.fail(key, "must be a group")
        for name, s in self.groups(self.f["spikes"], "spikes/"):
            where = f"spikes/{name}"
            if "size" not in s.attrs:
                self.fail(f"{where} attribute size", "is missing")
            size = _plain(s.attrs["size"])
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                self.fail(f"{where} attribute size", "must be a positive integer", size)
            step, neuron, trial = (self.array(s, where, k, 1, "iu")
                                   for k in ("step", "neuron", "trial"))
            if not step.size == neuron.size == trial.size:
                self.fail(where, "step, neuron and trial must have one entry per spike",
                          f"{step.size}, {neuron.size} and {trial.size} entries")
            for key, values, stop, what in (("step", step, n_steps, "the steps run"),
                                            ("neuron", neuron, size, f"size {size}"),
                                            ("trial", trial, n_trials, f"n_trials {n_trials}")):
                bad = (values < 0) | (values >= stop)
                if bad.any():
                    self.fail(f"{where}/{key}", f"must lie in [0, {stop}) ({what})",
                              first_bad(values, bad))
            res.spikes_by_node[name] = SpikeData(size, step, neuron, trial)
        for name, s in self.groups(self.f["traces"], "traces/"):
            where = f"traces/{name}"
            target = self.text_attr(s, where, "target")
            variable = self.text_attr(s, where, "variable")
            steps = self.steps(s, where, "steps", n_steps)
            neurons = self.array(s, where, "neurons", 1, "iu")
            if (neurons < 0).any():
                self.fail(f"{where}/neurons", "must not be negative",
                          first_bad(neurons, neurons < 0))
            # the target's size is known when its spikes were recorded too (a modulator's
            # level trace has no spikes: its neuron indices are checked for sign only)
            if target in res.spikes_by_node:
                size = res.spikes_by_node[target].size
                if (neurons >= size).any():
                    self.fail(f"{where}/neurons", f"must lie in [0, {size}) (size of "
                                                  f"'{target}')", first_bad(neurons,
                                                                            neurons >= size))
            values = self.array(s, where, "values", 3, "fiu")
            if values.shape != (n_trials, steps.size, neurons.size):
                self.fail(f"{where}/values", f"must have shape (n_trials, samples, neurons) = "
                                             f"{(n_trials, steps.size, neurons.size)}",
                          f"shape {values.shape}")
            res.traces[name] = TraceData(target, variable, steps, neurons, values)
        for name, s in self.groups(self.f["weights"], "weights/"):
            where = f"weights/{name}"
            projection = self.text_attr(s, where, "projection")
            steps = self.steps(s, where, "steps", n_steps)
            values = self.array(s, where, "values", 3, "fiu")
            if values.shape[:2] != (n_trials, steps.size):
                self.fail(f"{where}/values", f"must have shape (n_trials, snapshots, synapses) "
                                             f"= ({n_trials}, {steps.size}, ...)",
                          f"shape {values.shape}")
            res.weights[name] = WeightData(projection, steps, values)
        self.connectivity(res)
        return res


def _save_connectivity(f: h5py.File, connectivity: dict[str, ConnectivityData],
                       alive: dict[str, AliveData]) -> None:
    """The optional groups, written only when there is something in them."""
    if connectivity:
        g = f.create_group("connectivity")
        for name, c in connectivity.items():
            s = g.create_group(name)
            s.attrs.update(pre=c.pre_node, post=c.post_node, n_pre=c.n_pre, n_post=c.n_post)
            s.create_dataset("steps", data=np.asarray(c.steps, np.int64))
            s.create_dataset("counts", data=np.asarray(c.counts, np.int64))
            if c.present is not None:
                s.create_dataset("pre", data=np.asarray(c.pre, np.int32))
                s.create_dataset("post", data=np.asarray(c.post, np.int32))
                s.create_dataset("present", data=np.asarray(c.present, bool),
                                 compression="gzip", compression_opts=1)
    if alive:
        g = f.create_group("alive")
        for name, a in alive.items():
            s = g.create_group(name)
            s.create_dataset("steps", data=np.asarray(a.steps, np.int64))
            s.create_dataset("alive", data=np.asarray(a.alive, bool), compression="gzip",
                             compression_opts=1)
