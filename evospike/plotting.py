"""Figures a person would rather look at than read (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evospike.atomic import atomic_path

if TYPE_CHECKING:
    from evospike.results import Results


def raster_and_rate(res: Results, path: Path, trial: int, max_neurons: int,
                    bin_ms: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = list(res.spikes_by_node)
    fig, (ax_r, ax_p) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
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
    ax_p.set_xlabel("time (ms)")
    ax_p.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
    ax_p.set_xlim(0, max(res.duration_ms, bin_ms))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
