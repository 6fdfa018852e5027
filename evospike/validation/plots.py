"""Validation figure: raster overlay and statistic ECDFs (matplotlib, Agg, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evospike.atomic import atomic_path
from evospike.validation.metrics import STATISTICS

if TYPE_CHECKING:
    from evospike.validation.report import ValidationReport

MAX_NODES = 2
MAX_NEURONS = 60
WINDOW_MS = 100.0


def _ecdf(ax, values: np.ndarray, **style) -> None:
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    if v.size:
        ax.step(np.concatenate([v[:1], v]), np.arange(v.size + 1) / v.size, where="post",
                **style)


def plot_report(report: ValidationReport, path: Path) -> Path:
    """Per node (first ``MAX_NODES``): candidate-over-reference raster of the first
    ``WINDOW_MS`` ms, or of ``WINDOW_MS`` ms around the first unmatched spike (marked by a
    vertical line) when that comes later; then the ECDF of every statistic for the candidate,
    the reference and the further reference seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evospike.validation.report import LABELS, UNITS

    nodes = list(report.nodes)[:MAX_NODES]
    ncols = 1 + len(STATISTICS)
    nrows = max(1, len(nodes))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 4.0 * nrows), squeeze=False,
                             gridspec_kw={"width_ratios": [2] + [1] * len(STATISTICS)})
    cand, ref = report.candidate, report.reference
    m = report.meta
    for row, node in zip(axes, nodes, strict=True):
        nr = report.nodes[node]
        ax = row[0]
        div = nr.exact.divergence_ms
        duration = float(m["duration_ms"])
        # A short window keeps single spikes visible. It shows the start, unless the first
        # unmatched spike comes later: then it is centred on that spike, the one a reader
        # looks for.
        t0 = 0.0
        if div is not None and div > 0.8 * WINDOW_MS:
            t0 = max(0.0, min(div - WINDOW_MS / 2, duration - WINDOW_MS))
        t1 = min(duration, t0 + WINDOW_MS)
        shown = min(nr.size, MAX_NEURONS)
        if cand is not None and ref is not None:
            for res, style in ((ref, dict(color="black", marker="|", s=40, linewidths=1.0,
                                          label=f"reference ({m.get('reference_backend')})")),
                               (cand, dict(color="tab:red", marker=".", s=8,
                                           label=f"candidate ({m.get('candidate_backend')})"))):
                t, n = res.spikes(node, 0)
                sel = (t >= t0) & (t <= t1) & (n < shown)
                ax.scatter(t[sel], n[sel], **style)
        if div is not None and t0 <= div <= t1:
            ax.axvline(div, color="tab:blue", linestyle="--", linewidth=1.0,
                       label=f"first unmatched spike ({div:g} ms)")
        ax.set_xlim(t0, max(t1, t0 + 1e-9))
        ax.set_ylim(-0.5, shown - 0.5)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel(f"{node}: neuron (first {shown})")
        ax.set_title(f"{node}: {100 * nr.exact.fraction_matched:.2f}% of spikes matched")
        # Below the axis: inside it the legend would hide spikes.
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=3, fontsize="x-small")

        verdicts = {c.name: c.verdict for c in nr.criteria}
        for ax, stat in zip(row[1:], STATISTICS, strict=True):
            for label, st in nr.statistics.items():
                if label == "candidate":
                    style = dict(color="tab:red", linewidth=2.0, label="candidate")
                elif label == "reference":
                    style = dict(color="black", linewidth=1.5, label="reference")
                else:
                    # Every further seed in one light colour: together they draw the band the
                    # candidate has to stay in.
                    style = dict(color="0.65", linewidth=1.0)
                _ecdf(ax, st[stat], **style)
            unit = UNITS[stat]
            ax.set_xlabel(LABELS[stat] + (f" ({unit})" if unit else ""))
            ax.set_ylabel("ECDF")
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{LABELS[stat]}: {verdicts.get(stat, '')}")
            ax.plot([], [], color="0.65", label="reference, other seeds")
            ax.legend(loc="lower right", fontsize="x-small")
    fig.suptitle(f"{m.get('network')}: {m.get('candidate_backend')} vs "
                 f"{m.get('reference_backend')}: {report.verdict.upper()}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
