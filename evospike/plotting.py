"""Figures a person would rather look at than read (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evospike.atomic import atomic_path

if TYPE_CHECKING:
    from evospike.results import Results


MAX_TRACE_PANELS = 6
MAX_LINES_PER_TRACE = 5


def raster_and_rate(res: Results, path: Path, trial: int, max_neurons: int,
                    bin_ms: float) -> Path:
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
    n_bins = max(1, int(np.ceil(res.duration_ms / bin_ms)))
    edges = np.arange(n_bins + 1) * bin_ms
    for k, node in enumerate(nodes):
        color = colors[k % len(colors)]
        times, neurons = res.spikes(node, trial)
        size = res.spikes_by_node[node].size
        shown = min(size, max_neurons)
        sel = neurons < shown
        ax_r.scatter(times[sel], neurons[sel] + offset, s=1.0, color=color, marker="|",
                     label=f"{node} ({shown} of {size})")
        offset += shown
        counts, _ = np.histogram(times, bins=edges)
        ax_p.plot(edges[:-1] + bin_ms / 2, counts / (size * bin_ms * 1e-3), color=color,
                  label=node)
    ax_r.set_ylabel("neuron")
    ax_r.set_title(f"{res.meta.get('network', '')}: {res.meta.get('backend', '')} "
                   f"trial {trial}" + ("" if res.complete else " (INCOMPLETE)"))
    if nodes:
        ax_r.legend(loc="upper right", markerscale=8, fontsize="small")
        ax_p.legend(loc="upper right", fontsize="small")
    ax_p.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
    ax_p.set_xlim(0, max(res.duration_ms, bin_ms))
    for ax, (_name, trace) in zip(axes[2:], traces, strict=True):
        times = trace.steps * res.dt_ms
        values = trace.values[trial]  # (samples, recorded)
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
