"""What the Insight page shows, read from files a run, a validation or a training wrote.

Nothing here simulates: every view is computed from a results file (`evospike.results`), a
validation report (``report.json``, `evospike.validation.report`) or a training history
(``metrics.json``, `evospike.training.trainer`). Every query takes a time window in ms and
answers from the spikes inside it, found by binary search (the spikes of a node are kept
sorted by trial, then step), so a window of a long run costs what the window holds.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.results import Results, TraceData, WeightData


def _check_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise EvoSpikeError(f"{what} '{path}' does not exist")
    if not p.is_file():
        raise EvoSpikeError(f"{what} '{path}' is not a file")
    return p


def load_results(path: str | os.PathLike) -> Results:
    """The results file at ``path``, checked by `Results.load` (one line naming the field
    and the value for a malformed file)."""
    _check_file(path, "results file")
    return Results.load(path)


def load_json(path: str | os.PathLike, what: str) -> object:
    p = _check_file(path, what)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvoSpikeError(f"{what} '{path}' could not be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvoSpikeError(f"{what} '{path}' is not valid JSON ({exc.msg} at line "
                            f"{exc.lineno})") from None


def load_report(path: str | os.PathLike) -> dict:
    """A validation report (``report.json`` of ``evospike validate``), its layout checked."""
    report = load_json(path, "validation report")
    if not isinstance(report, dict) or report.get("format") != "evospike-validation":
        raise EvoSpikeError(f"validation report '{path}': format is not 'evospike-validation' "
                            "(is this the report.json that 'evospike validate' writes?)")
    nodes = report.get("nodes")
    if not isinstance(nodes, dict) or not all(
            isinstance(n, dict) and isinstance(n.get("criteria"), list) for n in nodes.values()):
        raise EvoSpikeError(f"validation report '{path}': nodes must map each node to its "
                            "criteria list")
    return report


def load_history(path: str | os.PathLike) -> list[dict]:
    """A training history (``metrics.json`` of ``evospike train``: one record per epoch), or
    the directory that holds it."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    history = load_json(p, "training history")
    if not isinstance(history, list) or not history or not all(
            isinstance(r, dict) and isinstance(r.get("epoch"), int) for r in history):
        raise EvoSpikeError(f"training history '{p}': must be a non-empty list of per-epoch "
                            "records, each with an integer 'epoch' (the metrics.json that "
                            "'evospike train' writes)")
    return history


@dataclass(frozen=True)
class Window:
    """A time window [start_ms, stop_ms) of one node and trial."""

    node: str
    trial: int
    start_ms: float
    stop_ms: float


class InsightData:
    """One run's results, indexed for the page's queries."""

    def __init__(self, results: Results, source: str = ""):
        self.results = results
        self.source = source
        self._by_trial: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------- what the file has
    @property
    def dt_ms(self) -> float:
        return self.results.dt_ms

    @property
    def duration_ms(self) -> float:
        return self.results.duration_ms

    @property
    def n_trials(self) -> int:
        return self.results.n_trials

    @property
    def populations(self) -> list[str]:
        return list(self.results.spikes_by_node)

    def size(self, node: str) -> int:
        return self.results.spikes_by_node[node].size

    def n_spikes(self) -> int:
        return sum(d.step.size for d in self.results.spikes_by_node.values())

    def title(self) -> str:
        m = self.results.meta
        state = "complete" if self.results.complete else "INCOMPLETE (interrupted)"
        return (f"network '{m.get('network', '?')}' on {m.get('backend', '?')} "
                f"({m.get('precision', '')}), {self.duration_ms:g} ms, {self.n_trials} "
                f"trial(s), {self.n_spikes()} spikes, {state}")

    def clamp(self, node: str | None, trial: int | None, start_ms: float | None,
              stop_ms: float | None) -> Window:
        """The window the page asked for, kept within the run (the slider can hold a value
        from an earlier, shorter live snapshot); a node the file lacks is an error."""
        pops = self.populations
        if node is None:
            if not pops:
                raise EvoSpikeError("this results file records no spikes")
            node = pops[0]
        if node not in self.results.spikes_by_node:
            raise EvoSpikeError(f"population '{node}' has no recorded spikes in this file "
                                f"(recorded: {', '.join(pops) or 'none'})")
        trial = 0 if trial is None else int(trial)
        if not 0 <= trial < self.n_trials:
            raise EvoSpikeError(f"trial {trial} is out of range (this file holds "
                                f"{self.n_trials} trial(s))")
        end = self.duration_ms
        start = 0.0 if start_ms is None else min(max(float(start_ms), 0.0), end)
        stop = end if stop_ms is None else min(max(float(stop_ms), start), end)
        return Window(node, trial, start, stop)

    # ------------------------------------------------------------- spikes
    def _trial_spikes(self, node: str, trial: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, neurons) of one node and trial, sorted by step (computed once)."""
        key = (node, trial)
        if key not in self._by_trial:
            d = self.results.spikes_by_node[node]
            trial_sorted = d.trial.size < 2 or bool((np.diff(d.trial) >= 0).all())
            if trial_sorted:
                lo, hi = np.searchsorted(d.trial, [trial, trial + 1])
                steps, neurons = d.step[lo:hi], d.neuron[lo:hi]
            else:
                sel = d.trial == trial
                steps, neurons = d.step[sel], d.neuron[sel]
            if steps.size > 1 and (np.diff(steps) < 0).any():
                order = np.argsort(steps, kind="stable")
                steps, neurons = steps[order], neurons[order]
            self._by_trial[key] = (steps, neurons)
        return self._by_trial[key]

    def spikes(self, w: Window) -> tuple[np.ndarray, np.ndarray]:
        """(steps, neurons) of the spikes in window ``w``."""
        steps, neurons = self._trial_spikes(w.node, w.trial)
        lo, hi = np.searchsorted(steps, [self.step_at(w.start_ms), self.step_at(w.stop_ms)])
        return steps[lo:hi], neurons[lo:hi]

    def step_at(self, t_ms: float) -> int:
        return int(math.ceil(t_ms / self.dt_ms - 1e-9))

    def population_rates(self, w: Window, bin_ms: float) -> dict[str, tuple[np.ndarray,
                                                                            np.ndarray]]:
        """Per node: (bin centres in ms, population rate in Hz) over ``w``'s time span."""
        bin_steps = max(1, int(round(bin_ms / self.dt_ms)))
        first, last = self.step_at(w.start_ms), self.step_at(w.stop_ms)
        n_bins = max(1, math.ceil((last - first) / bin_steps))
        out = {}
        for node in self.populations:
            steps, _ = self.spikes(Window(node, w.trial, w.start_ms, w.stop_ms))
            counts = np.bincount((steps - first) // bin_steps, minlength=n_bins)[:n_bins]
            edges = first + np.arange(n_bins + 1) * bin_steps
            widths_s = (np.minimum(edges[1:], last) - edges[:-1]) * self.dt_ms * 1e-3
            rate = counts / (np.maximum(widths_s, 1e-12) * self.size(node))
            out[node] = ((edges[:-1] + np.minimum(edges[1:], last)) * 0.5 * self.dt_ms, rate)
        return out

    def neuron_rates(self, w: Window) -> np.ndarray:
        """Firing rate of every neuron of ``w.node`` over the window, in Hz."""
        _, neurons = self.spikes(w)
        span_s = (w.stop_ms - w.start_ms) * 1e-3
        counts = np.bincount(neurons, minlength=self.size(w.node))
        return counts / span_s if span_s > 0 else counts * 0.0

    def isis(self, w: Window) -> np.ndarray:
        """Inter-spike intervals (ms) of every neuron of ``w.node`` within the window."""
        steps, neurons = self.spikes(w)
        if steps.size < 2:
            return np.zeros(0)
        # one integer key (neuron, then step) sorts in a third of the time of a two-key
        # lexsort or a stable sort by neuron, on a million spikes
        key = neurons.astype(np.int64) * (int(steps.max()) + 1) + steps
        order = np.argsort(key)
        s, n = steps[order], neurons[order]
        same = n[1:] == n[:-1]
        return (s[1:] - s[:-1])[same] * self.dt_ms

    # ------------------------------------------------------------- states and weights
    def traces_of(self, node: str) -> dict[str, TraceData]:
        """The state traces of ``node`` and those of the network's processes (modulators,
        gates, energy stores, memory tiers: any target that records no spikes)."""
        pops = set(self.populations)
        return {name: t for name, t in self.results.traces.items()
                if t.target == node or t.target not in pops}

    @property
    def weights(self) -> dict[str, WeightData]:
        return self.results.weights

    def sample_range(self, steps: np.ndarray, w: Window) -> slice:
        lo, hi = np.searchsorted(steps, [self.step_at(w.start_ms), self.step_at(w.stop_ms)])
        return slice(int(lo), int(hi))


def open_data(path: str | os.PathLike) -> InsightData:
    return InsightData(load_results(path), str(path))
