"""Results: one HDF5 layout for every backend.

Layout (format ``evospike-results``, version 1)::

    /                     attrs: format, version, network, backend, engine, device, precision,
                          dt_ms, n_steps, duration_ms, seeds, n_trials, wall_time_s, complete,
                          created, versions (JSON: evospike, numpy, torch, ...)
    /spikes/<node>        attrs: size; datasets step (int64), neuron (int32), trial (int32)
    /traces/<monitor>     attrs: target, variable; datasets steps (S,), neurons (m,),
                          values (trials, S, m)
    /weights/<monitor>    attrs: projection; datasets steps (S,), values (trials, S, synapses)

Times are stored as integer steps; ``time_ms = step * dt_ms``. A spike in step n is the
threshold crossing during [n dt, (n+1) dt).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evospike.atomic import atomic_h5, open_h5
from evospike.errors import EvoSpikeError

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


@dataclass
class Results:
    """What a run recorded. ``meta`` holds the run metadata (backend, dt_ms, n_steps, seeds,
    wall_time_s, complete, versions, ...)."""

    meta: dict
    spikes_by_node: dict[str, SpikeData] = field(default_factory=dict)
    traces: dict[str, TraceData] = field(default_factory=dict)
    weights: dict[str, WeightData] = field(default_factory=dict)

    # ------------------------------------------------------------- accessors
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
    def n_trials(self) -> int:
        return int(self.meta["n_trials"])

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", True))

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

    @staticmethod
    def load(path: str | os.PathLike) -> Results:
        with open_h5(path, "results", FORMAT) as f:
            meta = {}
            for key, value in f.attrs.items():
                if isinstance(value, bytes):
                    value = value.decode()
                if isinstance(value, np.generic):
                    value = value.item()
                if key in JSON_META and isinstance(value, str):
                    value = json.loads(value)
                meta[key] = value
            res = Results(meta)
            for name, s in f["spikes"].items():
                res.spikes_by_node[name] = SpikeData(int(s.attrs["size"]), s["step"][()],
                                                     s["neuron"][()], s["trial"][()])
            for name, s in f["traces"].items():
                res.traces[name] = TraceData(str(s.attrs["target"]), str(s.attrs["variable"]),
                                             s["steps"][()], s["neurons"][()], s["values"][()])
            for name, s in f["weights"].items():
                res.weights[name] = WeightData(str(s.attrs["projection"]), s["steps"][()],
                                               s["values"][()])
            return res

    # ------------------------------------------------------------- reporting
    def summary(self) -> str:
        m = self.meta
        lines = [
            f"results of network '{m.get('network', '?')}' "
            f"({'complete' if self.complete else 'INCOMPLETE: interrupted'})",
            f"  backend {m.get('backend')} ({m.get('engine', '')}, {m.get('device', '')}, "
            f"{m.get('precision', '')}), dt {self.dt_ms} ms, {self.n_steps} steps "
            f"= {self.duration_ms:g} ms, {self.n_trials} trial(s), seeds {m.get('seeds')}",
            f"  wall time {float(m.get('wall_time_s', 0.0)):.3f} s",
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
             bin_ms: float = 5.0) -> Path:
        """Raster (up to ``max_neurons`` per node) above the population rate, to PNG."""
        from evospike.plotting import raster_and_rate

        return raster_and_rate(self, Path(path), trial, max_neurons, bin_ms)
