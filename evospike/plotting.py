"""Figures a person would rather look at than read (matplotlib: PNG, PDF or SVG)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evospike.atomic import atomic_path, check_writable
from evospike.errors import EvoSpikeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from evospike.results import Results


MAX_TRACE_PANELS = 6
MAX_LINES_PER_TRACE = 5
#: file extension -> matplotlib format; the bytes written must be what the name says
FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def figure_format(path: str | os.PathLike) -> str:
    """The format of a figure file, from its extension; an unknown one is refused (matplotlib
    would otherwise write PNG bytes under any name)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise EvoSpikeError(f"figure file '{path}': extension {suffix or '(none)'!r} is not "
                            f"one of {', '.join(FIGURE_FORMATS)}")
    return FIGURE_FORMATS[suffix]


def plot_window(res: Results, t_start_ms: float | None, t_stop_ms: float | None,
                names: tuple[str, str] = ("t_start_ms", "t_stop_ms")) -> tuple[float, float]:
    """[t_start, t_stop) in ms, defaulting to the whole run; refused unless it is a non-empty
    part of the recorded time [0, duration]. ``names`` are what the caller calls the two
    bounds (the CLI: --t-start, --t-stop), so the message names what the user typed."""
    duration = res.duration_ms
    start = 0.0 if t_start_ms is None else float(t_start_ms)
    stop = duration if t_stop_ms is None else float(t_stop_ms)
    if not (math.isfinite(start) and start >= 0.0):
        raise EvoSpikeError(f"plot window: {names[0]} must be a finite time >= 0 "
                            f"(got {start:g} ms)")
    if not math.isfinite(stop):
        raise EvoSpikeError(f"plot window: {names[1]} must be finite (got {stop:g} ms)")
    if t_start_ms is None and t_stop_ms is None:
        return start, stop  # the whole run; an empty run plots as an empty figure
    if t_start_ms is not None and start >= duration:
        raise EvoSpikeError(f"plot window: {names[0]} {start:g} ms is outside the recorded "
                            f"time (0 to {duration:g} ms)")
    if stop <= start:
        raise EvoSpikeError(f"plot window: {names[1]} {stop:g} ms must be after {names[0]} "
                            f"{start:g} ms")
    if stop > duration + 1e-9 * max(1.0, duration):
        raise EvoSpikeError(f"plot window: {names[1]} {stop:g} ms is outside the recorded "
                            f"time (0 to {duration:g} ms)")
    return start, stop


def raster_and_rate(res: Results, path: Path, trial: int, max_neurons: int, bin_ms: float,
                    t_start_ms: float | None = None, t_stop_ms: float | None = None) -> Path:
    """Draw `raster_figure` and write it to ``path`` (atomically), in the format its
    extension names."""
    fmt = figure_format(path)
    check_writable(path, "figure file")
    fig = raster_figure(res, trial, max_neurons, bin_ms, t_start_ms, t_stop_ms)
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    return path


def raster_figure(res: Results, trial: int = 0, max_neurons: int = 500, bin_ms: float = 5.0,
                  t_start_ms: float | None = None, t_stop_ms: float | None = None) -> Figure:
    """Raster (up to ``max_neurons`` per node) above the population rate and up to
    `MAX_TRACE_PANELS` recorded states, over [``t_start_ms``, ``t_stop_ms``) (default: the
    whole run). The caller closes the figure."""
    if not 0 <= trial < res.n_trials:
        raise EvoSpikeError(f"trial {trial} is out of range: these results hold "
                            f"{res.n_trials} trial(s)")
    if isinstance(max_neurons, bool) or not isinstance(max_neurons, (int, np.integer)) \
            or max_neurons < 1:
        raise EvoSpikeError(f"max_neurons must be a positive integer (got {max_neurons!r})")
    if not (isinstance(bin_ms, (int, float)) and math.isfinite(bin_ms) and bin_ms > 0):
        raise EvoSpikeError(f"bin_ms must be a positive, finite time (got {bin_ms!r})")
    start, stop = plot_window(res, t_start_ms, t_stop_ms)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = list(res.spikes_by_node)
    # recorded states (neuron variables, modulator levels, homeostatic thresholds, ...) below
    traces = list(res.traces.items())[:MAX_TRACE_PANELS]
    fig, axes = plt.subplots(2 + len(traces), 1, figsize=(10, 7 + 1.6 * len(traces)),
                             sharex=True, gridspec_kw={"height_ratios": [3, 1] +
                                                       [1] * len(traces)})
    ax_r, ax_p = axes[0], axes[1]
    offset = 0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    end = stop if stop > start else start + bin_ms  # an empty run: one empty bin
    n_bins = max(1, math.ceil((end - start) / bin_ms - 1e-9))  # no sliver bin from rounding
    # the last bin ends at the window's end, and its rate is divided by its own width
    edges = np.minimum(start + np.arange(n_bins + 1) * bin_ms, end)
    widths_s = np.diff(edges) * 1e-3
    for k, node in enumerate(nodes):
        color = colors[k % len(colors)]
        times, neurons = res.spikes(node, trial)
        in_window = (times >= start) & (times < stop)
        times, neurons = times[in_window], neurons[in_window]
        size = res.spikes_by_node[node].size
        shown = min(size, max_neurons)
        sel = neurons < shown
        ax_r.scatter(times[sel], neurons[sel] + offset, s=1.0, color=color, marker="|",
                     label=f"{node} ({shown} of {size})")
        offset += shown
        counts, _ = np.histogram(times, bins=edges)
        ax_p.plot((edges[:-1] + edges[1:]) / 2, counts / (size * widths_s), color=color,
                  label=node)
    ax_r.set_ylabel("neuron")
    ax_r.set_title(f"{res.meta.get('network', '')}: {res.meta.get('backend', '')} "
                   f"trial {trial}" + ("" if res.complete else " (INCOMPLETE)"))
    if nodes:
        ax_r.legend(loc="upper right", markerscale=8, fontsize="small")
        ax_p.legend(loc="upper right", fontsize="small")
    ax_p.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
    ax_p.set_xlim(start, end)
    for ax, (_name, trace) in zip(axes[2:], traces, strict=True):
        times = trace.steps * res.dt_ms
        in_window = (times >= start) & (times < stop)
        times = times[in_window]
        values = trace.values[trial][in_window]  # (samples, recorded)
        if values.shape[1] <= MAX_LINES_PER_TRACE:
            for k in range(values.shape[1]):
                ax.plot(times, values[:, k], lw=0.8, label=f"{int(trace.neurons[k])}")
        else:
            ax.plot(times, values.mean(axis=1), lw=1.0, color="k",
                    label=f"mean of {values.shape[1]}")
        ax.set_ylabel(f"{trace.target}\n{trace.variable}", fontsize="small")
        ax.legend(loc="upper right", fontsize="x-small")
    if len(res.traces) > len(traces):
        axes[-1].set_title(f"({len(res.traces) - len(traces)} more recorded states not shown)",
                           fontsize="small")
    axes[-1].set_xlabel("time (ms)")
    fig.tight_layout()
    return fig
