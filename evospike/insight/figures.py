"""The page's figures: plain functions from `InsightData` queries to Plotly figures.

Arrays go in as float32/int32 NumPy arrays, which Plotly sends to the browser as compact
typed-array blobs rather than JSON number lists. The raster is a WebGL ``scattergl`` up to
`RASTER_POINTS` spikes in the window; above that it is aggregated here, on the server, into a
2-D count image (time bins x neuron bins), so the page never ships millions of points.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from evospike.insight.data import InsightData, Window

#: spikes in the window above which the raster becomes a server-side 2-D histogram
RASTER_POINTS = 200_000
#: resolution of the aggregated raster (time bins, neuron bins at most)
IMAGE_BINS = (800, 400)
MAX_TRACE_LINES = 8
#: synapses up to which the weights view adds a synapse-by-snapshot matrix
MATRIX_SYNAPSES = 2_500
HEIGHT = 340


def warm_up() -> None:
    """Load Plotly's template and subplot machinery now (about 0.3 s, once per process), so
    that the first page load does not pay for it."""
    make_subplots(rows=1, cols=2).update_layout(template="plotly_white").to_json()


def _base(title: str, height: int = HEIGHT) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=20, t=50, b=45),
                      template="plotly_white", uirevision="keep")
    return fig


def message_figure(title: str, message: str) -> go.Figure:
    """An empty figure that says why it is empty (a view never renders blank)."""
    fig = _base(title)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def raster(data: InsightData, w: Window) -> go.Figure:
    steps, neurons = data.spikes(w)
    size = data.size(w.node)
    title = f"raster: {w.node} ({steps.size} spikes, {w.start_ms:g}-{w.stop_ms:g} ms)"
    if steps.size <= RASTER_POINTS:
        fig = _base(title, 420)
        fig.add_trace(go.Scattergl(
            x=(steps * data.dt_ms).astype(np.float32), y=neurons.astype(np.int32),
            mode="markers", marker=dict(size=2, color="#1f3a93"), name=w.node,
            hovertemplate="%{x:.2f} ms, neuron %{y}<extra></extra>"))
    else:
        fig = _base(title + " - aggregated", 420)
        first, last = data.step_at(w.start_ms), max(data.step_at(w.stop_ms),
                                                    data.step_at(w.start_ms) + 1)
        nt = min(IMAGE_BINS[0], last - first)
        nn = min(IMAGE_BINS[1], size)
        tb = ((steps - first) * nt // (last - first)).astype(np.int64)
        nb = (neurons.astype(np.int64) * nn // size)
        counts = np.bincount(nb * nt + tb, minlength=nn * nt).reshape(nn, nt)
        t_edges = (first + np.arange(nt + 1) * (last - first) / nt) * data.dt_ms
        n_edges = np.arange(nn + 1) * size / nn
        # counts as the narrowest unsigned integers: a quarter or half of float32's bytes in
        # the page (the image is most of a large file's first render)
        z = counts.astype(np.uint8 if counts.max() < 256 else np.uint16
                          if counts.max() < 65536 else np.uint32)
        fig.add_trace(go.Heatmap(
            z=z, x=((t_edges[:-1] + t_edges[1:]) / 2).astype(np.float32),
            y=((n_edges[:-1] + n_edges[1:]) / 2).astype(np.float32), colorscale="Blues",
            colorbar=dict(title="spikes"), name=w.node,
            hovertemplate="%{x:.1f} ms, neuron %{y:.0f}: %{z} spikes<extra></extra>"))
    fig.update_xaxes(title="time (ms)", range=[w.start_ms, w.stop_ms])
    fig.update_yaxes(title="neuron", range=[-0.5, size - 0.5])
    return fig


def rates(data: InsightData, w: Window, bin_ms: float) -> go.Figure:
    fig = _base(f"population rates ({bin_ms:g} ms bins, trial {w.trial})")
    for node, (t, r) in data.population_rates(w, bin_ms).items():
        fig.add_trace(go.Scatter(x=t.astype(np.float32), y=r.astype(np.float32),
                                 mode="lines", name=node,
                                 line=dict(width=3 if node == w.node else 1.5)))
    fig.update_xaxes(title="time (ms)", range=[w.start_ms, w.stop_ms])
    fig.update_yaxes(title="rate (Hz)")
    return fig


def _hist_bars(values: np.ndarray, bins: int | np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    counts, edges = np.histogram(values, bins=bins)
    return (edges[:-1] + edges[1:]) / 2, counts, np.diff(edges)


def distributions(data: InsightData, w: Window) -> go.Figure:
    """Per-neuron firing rates and inter-spike intervals of the selected population."""
    rates_hz = data.neuron_rates(w)
    isi = data.isis(w)
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"per-neuron rate ({rates_hz.size} neurons)", f"ISI ({isi.size} intervals)"))
    fig.update_layout(title=f"distributions: {w.node}", height=HEIGHT,
                      margin=dict(l=60, r=20, t=70, b=45), template="plotly_white",
                      showlegend=False, uirevision="keep")
    x, c, width = _hist_bars(rates_hz, 40)
    fig.add_trace(go.Bar(x=x, y=c, width=width, name="rate", marker_color="#1f3a93"), 1, 1)
    if isi.size:
        x, c, width = _hist_bars(isi, 50)
        fig.add_trace(go.Bar(x=x, y=c, width=width, name="ISI", marker_color="#c0392b"), 1, 2)
    else:
        fig.add_annotation(text="fewer than two spikes per neuron: no intervals",
                           showarrow=False, xref="x2 domain", yref="y2 domain", x=0.5, y=0.5)
    fig.update_xaxes(title="rate (Hz)", row=1, col=1)
    fig.update_xaxes(title="ISI (ms)", row=1, col=2)
    fig.update_yaxes(title="neurons", row=1, col=1)
    fig.update_yaxes(title="intervals", row=1, col=2)
    return fig


def traces(data: InsightData, w: Window) -> go.Figure | None:
    """One panel per recorded state of the selected population and of the processes; None
    when there is none."""
    found = data.traces_of(w.node)
    if not found:
        return None
    names = list(found)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True,
                        subplot_titles=[f"{found[n].variable} of {found[n].target} ({n})"
                                        for n in names],
                        vertical_spacing=min(0.08, 0.3 / len(names)))
    fig.update_layout(title=f"state traces (trial {w.trial})",
                      height=max(HEIGHT, 190 * len(names)), template="plotly_white",
                      margin=dict(l=60, r=20, t=70, b=45), uirevision="keep")
    for row, name in enumerate(names, start=1):
        t = found[name]
        sl = data.sample_range(t.steps, w)
        x = (t.steps[sl] * data.dt_ms).astype(np.float32)
        for k in range(min(MAX_TRACE_LINES, t.neurons.size)):
            fig.add_trace(go.Scatter(x=x, y=t.values[w.trial, sl, k].astype(np.float32),
                                     mode="lines", name=f"{name}[{int(t.neurons[k])}]",
                                     line=dict(width=1)), row, 1)
        fig.update_yaxes(title=t.variable, row=row, col=1)
    fig.update_xaxes(title="time (ms)", range=[w.start_ms, w.stop_ms], row=len(names), col=1)
    return fig


def weights(data: InsightData, w: Window) -> go.Figure | None:
    """Per weight monitor: the weight histogram at every snapshot in the window (a heatmap,
    time x weight), and, for a small projection, every synapse's weight over time."""
    found = data.weights
    if not found:
        return None
    panels: list[tuple[str, str]] = []
    for name, wd in found.items():
        panels.append((name, "hist"))
        if wd.values.shape[-1] <= MATRIX_SYNAPSES:
            panels.append((name, "matrix"))
    titles = [f"{found[n].projection} ({n}): "
              + ("weight histogram over time" if kind == "hist" else "synapse weights over time")
              for n, kind in panels]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=titles,
                        vertical_spacing=min(0.2, 0.4 / len(panels)))
    fig.update_layout(title=f"weights (trial {w.trial})", height=max(HEIGHT, 260 * len(panels)),
                      template="plotly_white", margin=dict(l=60, r=20, t=70, b=45),
                      uirevision="keep")
    for row, (name, kind) in enumerate(panels, start=1):
        wd = found[name]
        sl = data.sample_range(wd.steps, w)
        values = wd.values[w.trial, sl]
        t = (wd.steps[sl] * data.dt_ms).astype(np.float32)
        if values.size == 0:
            fig.add_annotation(text="no snapshot in this window", showarrow=False,
                               xref=f"x{row if row > 1 else ''} domain",
                               yref=f"y{row if row > 1 else ''} domain", x=0.5, y=0.5)
            continue
        if kind == "hist":
            lo, hi = float(values.min()), float(values.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
            z = np.stack([np.histogram(v, bins=edges)[0] for v in values], axis=1)
            fig.add_trace(go.Heatmap(z=z.astype(np.float32), x=t,
                                     y=((edges[:-1] + edges[1:]) / 2).astype(np.float32),
                                     colorscale="Viridis", showscale=False, name=name,
                                     hovertemplate="%{x:.1f} ms, w %{y:.3g}: %{z} synapses"
                                                   "<extra></extra>"), row, 1)
            fig.update_yaxes(title="weight", row=row, col=1)
        else:
            fig.add_trace(go.Heatmap(z=values.T.astype(np.float32), x=t,
                                     colorscale="RdBu_r", showscale=False, name=name,
                                     hovertemplate="%{x:.1f} ms, synapse %{y}: w %{z:.3g}"
                                                   "<extra></extra>"), row, 1)
            fig.update_yaxes(title="synapse", row=row, col=1)
        fig.update_xaxes(title="time (ms)", row=row, col=1)
    return fig


# ------------------------------------------------------------------ validation and training
VERDICT_COLOURS = {"pass": "#27ae60", "fail": "#c0392b", "insufficient data": "#95a5a6",
                   "info": "#2980b9"}


def report_figure(report: dict) -> go.Figure:
    """Every decisive statistic's distances as a fraction of its threshold (1 = the limit),
    coloured by verdict: one bar per node, criterion and distance."""
    fig = _base(f"validation: {report.get('verdict', '?').upper()} "
                f"({report.get('reason', '')})", 380)
    x, y, colours, text = [], [], [], []
    for node, n in report["nodes"].items():
        for c in n["criteria"]:
            for key, limit in (c.get("thresholds") or {}).items():
                value = (c.get("distances") or {}).get(key)
                if not isinstance(value, (int, float)) or not isinstance(limit, (int, float)) \
                        or limit <= 0:
                    continue
                x.append(f"{node}: {c.get('label', c.get('name'))} {key}")
                y.append(abs(value) / limit)
                colours.append(VERDICT_COLOURS.get(c.get("verdict"), "#7f8c8d"))
                text.append(f"{value:.3g} / {limit:.3g} ({c.get('verdict')})")
    if not x:
        return message_figure("validation", "the report holds no statistic with a threshold")
    fig.add_trace(go.Bar(x=x, y=y, marker_color=colours, text=text, name="distance/limit",
                         hovertemplate="%{x}: %{text}<extra></extra>"))
    fig.add_hline(y=1.0, line_dash="dash", line_color="#c0392b")
    fig.update_yaxes(title="distance / threshold")
    return fig


def training_figure(history: list[dict]) -> go.Figure:
    """Losses and accuracies per epoch, and any other per-epoch number (learning rate,
    pruned fraction, ...) in a third panel."""
    epochs = [r["epoch"] for r in history]
    keys = [k for k in history[0] if k != "epoch"
            and all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                    for r in history)]
    losses = [k for k in keys if k.endswith("loss")]
    accs = [k for k in keys if k.endswith("accuracy")]
    others = [k for k in keys if k not in losses and k not in accs and k != "epoch_wall_s"]
    rows = 2 + bool(others)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True,
                        subplot_titles=["loss", "accuracy", "other"][:rows])
    fig.update_layout(title=f"training ({len(history)} epochs)", height=200 * rows + 80,
                      template="plotly_white", margin=dict(l=60, r=20, t=70, b=45))
    for row, ks in enumerate((losses, accs, others), start=1):
        for k in ks:
            fig.add_trace(go.Scatter(x=epochs, y=[r[k] for r in history], mode="lines+markers",
                                     name=k), row, 1)
    fig.update_xaxes(title="epoch", row=rows, col=1)
    return fig


# ------------------------------------------------------------------ connectivity
#: networks up to these sizes draw every neuron and synapse; larger ones, one node per
#: population and one edge per projection, labelled with its synapse count
GRAPH_NEURONS = 1_500
GRAPH_EDGES = 5_000
_POP_COLOURS = ("#1f3a93", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50",
                "#f39c12")


def _node_layout(sizes: dict[str, int]) -> tuple[dict[str, tuple[float, float]],
                                                 dict[str, np.ndarray]]:
    """Population centres on a circle, and each population's neurons on a circle around its
    centre (radius growing with the square root of the size, so dense groups stay legible)."""
    names = list(sizes)
    k = len(names)
    centres, xy = {}, {}
    biggest = max(sizes.values())
    for i, name in enumerate(names):
        angle = np.pi / 2 - 2 * np.pi * i / k
        cx, cy = (0.0, 0.0) if k == 1 else (np.cos(angle), np.sin(angle))
        centres[name] = (cx, cy)
        n = sizes[name]
        r = 0.0 if n == 1 else (0.6 if k == 1 else 0.38) * np.sqrt(n / biggest)
        theta = 2 * np.pi * np.arange(n) / n
        xy[name] = np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)
    return centres, xy


def _segments(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line segments a[i] -> b[i] as one trace's x and y (NaN between segments)."""
    n = a.shape[0]
    x = np.full(3 * n, np.nan, np.float32)
    y = np.full(3 * n, np.nan, np.float32)
    x[0::3], y[0::3], x[1::3], y[1::3] = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    return x, y


def connectivity_detail(data: InsightData, trial: int) -> bool:
    """Whether the graph draws every neuron and synapse (small networks whose pairs were
    recorded) rather than population-to-population counts."""
    conn = data.results.connectivity
    sizes: dict[str, int] = {}
    for c in conn.values():
        sizes[c.pre_node], sizes[c.post_node] = c.n_pre, c.n_post
    return (all(c.has_pairs for c in conn.values()) and sum(sizes.values()) <= GRAPH_NEURONS
            and sum(int(c.counts[trial].max()) for c in conn.values()) <= GRAPH_EDGES)


def connectivity(data: InsightData, trial: int, at_ms: float) -> go.Figure | None:
    """The network's connectivity at ``at_ms`` in ``trial``: neurons as nodes grouped by
    population, the synapses present as edges, those grown at the last change before
    ``at_ms`` in green and those removed then in red (dotted); dead neurons (apoptosis) as grey
    crosses. Large networks: populations as nodes, projections as edges labelled with their
    synapse count then. None when the file records no connectivity."""
    conn = data.results.connectivity
    if not conn:
        return None
    step = min(data.step_at(at_ms), max(data.results.n_steps - 1, 0))
    sizes: dict[str, int] = {}
    for c in conn.values():
        sizes.setdefault(c.pre_node, c.n_pre)
        sizes.setdefault(c.post_node, c.n_post)
    centres, xy = _node_layout(sizes)
    colours = {n: _POP_COLOURS[i % len(_POP_COLOURS)] for i, n in enumerate(sizes)}
    detail = connectivity_detail(data, trial)
    total = sum(int(c.counts[trial, c.index_at(step)]) for c in conn.values())
    fig = _base(f"connectivity at {step * data.dt_ms:g} ms (trial {trial}): {total} synapses"
                + ("" if detail else ", by population"), 560)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    if detail:
        kept, grown, removed = [], [], []
        for c in conn.values():
            i = c.index_at(step)
            now = c.present[trial, i]
            before = c.present[trial, i - 1] if i > 0 else now
            for sel, out in ((now & before, kept), (now & ~before, grown),
                             (~now & before, removed)):
                out.append((xy[c.pre_node][c.pre[sel]], xy[c.post_node][c.post[sel]]))
        for parts, name, line in (
                (kept, "synapse", dict(color="rgba(90,90,90,0.35)", width=1)),
                (grown, "grown", dict(color="#27ae60", width=2)),
                (removed, "removed", dict(color="#c0392b", width=2, dash="dot"))):
            a = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 2))
            b = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 2))
            x, y = _segments(a, b)
            # Scatter, not Scattergl: WebGL draws no dotted lines
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=line, hoverinfo="skip",
                                     name=f"{name} ({a.shape[0]})"))
        for name, pts in xy.items():
            alive = np.ones(sizes[name], bool)
            if name in data.results.alive:
                a = data.results.alive[name]
                alive = a.alive[trial, a.index_at(step)]
            idx = np.arange(sizes[name])
            fig.add_trace(go.Scatter(
                x=pts[alive, 0].astype(np.float32), y=pts[alive, 1].astype(np.float32),
                mode="markers", marker=dict(size=7, color=colours[name]), name=name,
                text=[f"{name}[{i}]" for i in idx[alive]], hoverinfo="text"))
            if not alive.all():
                fig.add_trace(go.Scatter(
                    x=pts[~alive, 0].astype(np.float32), y=pts[~alive, 1].astype(np.float32),
                    mode="markers", marker=dict(size=8, color="#95a5a6", symbol="x"),
                    name=f"{name}: dead ({int((~alive).sum())})",
                    text=[f"{name}[{i}] (dead)" for i in idx[~alive]], hoverinfo="text"))
        return fig
    # aggregated: one edge per projection, its width following the synapse count
    counts = {name: int(c.counts[trial, c.index_at(step)]) for name, c in conn.items()}
    top = max(max(counts.values()), 1)
    for name, c in conn.items():
        (x0, y0), (x1, y1) = centres[c.pre_node], centres[c.post_node]
        width = 1 + 7 * np.sqrt(counts[name] / top)
        if c.pre_node == c.post_node:  # a recurrent projection: a loop above its node
            t = np.linspace(0, 2 * np.pi, 40)
            xs, ys = x0 + 0.15 * np.cos(t), y0 + 0.22 + 0.15 * np.sin(t)
        else:
            xs, ys = np.array([x0, x1]), np.array([y0, y1])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=width,
                                                                      color="#7f8c8d"),
                                 name=f"{name}: {counts[name]}", hoverinfo="name"))
        fig.add_annotation(x=float(np.mean(xs)), y=float(np.mean(ys)),
                           text=f"{name}: {counts[name]}", showarrow=False,
                           bgcolor="rgba(255,255,255,0.8)")
    for name, (cx, cy) in centres.items():
        dead = ""
        if name in data.results.alive:
            a = data.results.alive[name]
            dead = f", {int((~a.alive[trial, a.index_at(step)]).sum())} dead"
        fig.add_trace(go.Scatter(x=[cx], y=[cy], mode="markers+text",
                                 marker=dict(size=16 + 20 * np.sqrt(sizes[name] / max(
                                     sizes.values())), color=colours[name]),
                                 text=[f"{name} ({sizes[name]}{dead})"],
                                 textposition="bottom center", name=name))
    return fig
