"""The Dash application: a source of data (a results file replayed, or a live feed), the page
of `evospike.insight.layout`, and the callbacks that link the views to the shared controls.

Every callback answers with a figure: a view whose data is missing, or a query that failed,
shows a message in its own panel (and the page's message line) instead of going blank.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, callback_context, html, no_update

from evospike.errors import EvoSpikeError
from evospike.insight import figures
from evospike.insight.data import InsightData, Window
from evospike.insight.layout import FOLLOW_MS_DEFAULT, RESULT_VIEWS, graph, page

log = logging.getLogger(__name__)

NO_TRACES = ("this results file records no state traces (record them with "
             "net.record_state(population, variable, ...))")
NO_WEIGHTS = ("this results file records no weights (record them with "
              "net.record_weights(projection, every_steps))")
NO_SPIKES = "this results file records no spikes"
NO_CONNECTIVITY = ("this results file records no connectivity (the torch backend records it "
                   "in every run; files written before it, and other backends, lack it)")


class Source(Protocol):
    """Where the page's data comes from. ``version`` changes whenever ``current()`` does."""

    live: bool
    version: int

    def current(self) -> InsightData | None: ...

    def status(self) -> str: ...


class Replay:
    """A results file read once."""

    live = False
    version = 1

    def __init__(self, data: InsightData):
        self.data = data

    def current(self) -> InsightData:
        return self.data

    def status(self) -> str:
        return f"replay of {self.data.source}"


def default_bin_ms(data: InsightData) -> float:
    """About 200 bins over the run, a whole number of steps, at least 1 ms where possible."""
    steps = max(1, round(max(1.0, data.duration_ms / 200) / data.dt_ms))
    return steps * data.dt_ms


def _check_bin(data: InsightData, bin_ms: object) -> float:
    if bin_ms is None or bin_ms == "":
        return default_bin_ms(data)
    value = float(bin_ms)
    if not value > 0:
        raise EvoSpikeError(f"rate bin must be a positive number of ms (got {bin_ms})")
    return max(value, data.dt_ms)


def _report_children(report: dict, path: Path) -> tuple[go.Figure, html.Table, str | None]:
    rows = [html.Tr([html.Th(h) for h in ("node", "criterion", "verdict", "reason")])]
    for node, n in report["nodes"].items():
        for c in n["criteria"]:
            verdict = str(c.get("verdict"))
            rows.append(html.Tr([html.Td(node), html.Td(str(c.get("label", c.get("name")))),
                                 html.Td(verdict, style={"color": figures.VERDICT_COLOURS.get(
                                     verdict, "#333"), "fontWeight": "bold"}),
                                 html.Td(str(c.get("reason", "")))]))
    table = html.Table(rows, className="report-table",
                       style={"borderCollapse": "collapse", "fontSize": "13px"})
    # `evospike validate` writes the two rasters next to its report
    png = path.parent / "comparison.png"
    src = None
    if png.is_file():
        raw = png.read_bytes()
        if raw.startswith(b"\x89PNG\r\n\x1a\n"):
            src = "data:image/png;base64," + base64.b64encode(raw).decode()
    return figures.report_figure(report), table, src


def build_app(source: Source, report: dict | None = None, report_path: Path | None = None,
              history: list[dict] | None = None, history_path: Path | None = None) -> Dash:
    app = Dash(__name__, title="EvoSpike Insight", update_title=None)
    figures.warm_up()
    layout = page(source.live, report_path if report is not None else None,
                  history_path if history is not None else None)
    app.layout = layout
    if report is not None:
        fig, table, src = _report_children(report, report_path or Path("."))
        _find(layout, "graph-report").figure = fig
        _find(layout, "report-table").children = table
        img = _find(layout, "report-rasters")
        if src is not None:
            img.src = src
        else:
            img.alt = "no comparison.png beside the report"
    if history is not None:
        _find(layout, "graph-training").figure = figures.training_figure(history)
    if not source.live:
        _prefill(layout, source)

    if source.live:
        @app.callback(Output("version", "data"), Input("tick", "n_intervals"),
                      State("version", "data"))
        def poll(_n: int | None, seen: int) -> object:
            return source.version if source.version != seen else no_update

    sync_states = [State("window", "value"), State("population", "value"),
                   State("bin-ms", "value")]
    if source.live:
        sync_states += [State("follow", "value"), State("follow-ms", "value")]

    @app.callback(
        Output("title", "children"), Output("status", "children"),
        Output("population", "options"), Output("population", "value"),
        Output("trial", "options"), Output("window", "max"), Output("window", "value"),
        Output("bin-ms", "value"), Output("conn-at", "max"), Output("conn-at", "marks"),
        Input("version", "data"), Input("graph-raster", "relayoutData"), *sync_states,
        # a replayed file's page comes filled in (`_prefill`): nothing to do on load
        prevent_initial_call=not source.live)
    def sync(_version: int, zoom: dict | None, window: list | None, node: str | None,
             bin_ms: object, follow: list | None = None, follow_ms: object = None) -> tuple:
        data = source.current()
        if data is None:
            return ("", source.status(), [], None, [], 1, [0, 1], no_update, 1, {})
        pops = data.populations
        end = data.duration_ms
        if node not in pops:
            node = initial_node(data)
        zoomed = None
        if any(t["prop_id"] == "graph-raster.relayoutData" for t in callback_context.triggered):
            zoomed = zoom_window(zoom, end)
        if zoomed is not None:
            # a zoom (or a double-click back out) on the raster sets every view's window
            window = zoomed
        elif source.live and follow and "on" in follow:
            span = FOLLOW_MS_DEFAULT
            if isinstance(follow_ms, (int, float)) and follow_ms > 0:
                span = float(follow_ms)
            window = [max(0.0, end - span), end]
        elif not window or window == [0, 1] or window[1] > end:
            window = [0.0 if not window else min(window[0], end), end]
        return (data.title(), source.status(), pops, node,
                list(range(data.n_trials)), end or 1, window,
                bin_ms if bin_ms not in (None, "") else default_bin_ms(data),
                end or 1, connectivity_marks(data))

    @app.callback(Output("graph-connectivity", "figure"), Input("conn-at", "value"),
                  Input("trial", "value"), Input("version", "data"),
                  prevent_initial_call=not source.live)
    def connectivity(at_ms: float | None, trial: int | None, _version: int) -> go.Figure:
        return render_connectivity(source.current(), trial, at_ms)

    @app.callback(
        *[Output(f"graph-{v}", "figure") for v in RESULT_VIEWS],
        Output("page-message", "children"),
        Input("population", "value"), Input("trial", "value"), Input("window", "value"),
        Input("bin-ms", "value"), Input("version", "data"),
        prevent_initial_call=not source.live)
    def views(node: str | None, trial: int | None, window: list | None, bin_ms: object,
              _version: int) -> tuple:
        return render_views(source.current(), node, trial, window, bin_ms)

    return app


def render_views(data: InsightData | None, node: str | None, trial: int | None,
                 window: list | None, bin_ms: object) -> tuple:
    """The figures of the result views and the page message, for the controls' values."""
    if data is None:
        wait = "waiting for the first chunk of the run"
        return (*[figures.message_figure(v, wait) for v in RESULT_VIEWS], "")
    start, stop = (window or [None, None])[:2]
    messages: list[str] = []
    out: dict[str, go.Figure] = {}
    try:
        if data.populations:
            w = data.clamp(node, trial, start, stop)
        else:
            w = Window("", int(trial or 0), 0.0, data.duration_ms)
            for view in ("raster", "rates", "distributions"):
                out[view] = figures.message_figure(view, NO_SPIKES)
            messages.append(NO_SPIKES)
        bin_value = _check_bin(data, bin_ms)
    except (EvoSpikeError, ValueError, TypeError) as exc:
        return (*[figures.message_figure(v, str(exc)) for v in RESULT_VIEWS], str(exc))
    makers = {
        "raster": lambda: figures.raster(data, w),
        "rates": lambda: figures.rates(data, w, bin_value),
        "distributions": lambda: figures.distributions(data, w),
        "traces": lambda: figures.traces(data, w),
        "weights": lambda: figures.weights(data, w),
    }
    others = sorted({t.target for t in data.results.traces.values()})
    missing = {"traces": NO_TRACES if not others else
               f"no state traces of '{w.node}' (recorded for: {', '.join(others)})",
               "weights": NO_WEIGHTS}
    for view, make in makers.items():
        if view in out:
            continue
        try:
            fig = make()
        except EvoSpikeError as exc:
            fig = figures.message_figure(view, str(exc))
            messages.append(f"{view}: {exc}")
        except Exception as exc:  # a view that breaks must say so, in the page, not blank it
            log.exception("insight view %s failed", view)
            text = f"{view} could not be drawn: {type(exc).__name__}: {exc}"
            fig = figures.message_figure(view, text)
            messages.append(text)
        out[view] = fig if fig is not None else figures.message_figure(view, missing[view])
    return (*[out[v] for v in RESULT_VIEWS], "; ".join(messages))


def initial_node(data: InsightData) -> str | None:
    """The first population whose states were recorded, so that no view opens empty."""
    pops = data.populations
    traced = [p for p in pops if any(t.target == p for t in data.results.traces.values())]
    return (traced or pops or [None])[0]


def _prefill(layout: html.Div, source: Source) -> None:
    """A replay's page with its controls set and every view drawn in the layout itself: the
    browser draws the first render from the page it loads, with no callback round trip (the
    callbacks then run only when the user changes something)."""
    data = source.current()
    end = data.duration_ms
    node, bin_ms, window = initial_node(data), default_bin_ms(data), [0.0, end]
    _find(layout, "title").children = data.title()
    _find(layout, "status").children = source.status()
    _find(layout, "population").options = data.populations
    _find(layout, "population").value = node
    _find(layout, "trial").options = list(range(data.n_trials))
    slider = _find(layout, "window")
    slider.max, slider.value = end or 1, window
    _find(layout, "bin-ms").value = bin_ms
    conn = _find(layout, "conn-at")
    conn.max, conn.marks = end or 1, connectivity_marks(data)
    *figs, message = render_views(data, node, 0, window, bin_ms)
    for view, fig in zip(RESULT_VIEWS, figs, strict=True):
        _find(layout, f"graph-{view}").figure = fig
    _find(layout, "page-message").children = message
    _find(layout, "graph-connectivity").figure = render_connectivity(data, 0, None)


def zoom_window(relayout: dict | None, end: float) -> list[float] | None:
    """The time window a raster zoom asks for (Plotly's relayoutData: the x range, or an
    autorange back to the whole run), kept within [0, end]; None for any other relayout
    (a y-only zoom, a pan of the legend, ...)."""
    if not isinstance(relayout, dict):
        return None
    if relayout.get("xaxis.autorange"):
        return [0.0, end]
    lo, hi = relayout.get("xaxis.range[0]"), relayout.get("xaxis.range[1]")
    if lo is None and isinstance(relayout.get("xaxis.range"), list):
        lo, hi = (relayout["xaxis.range"] + [None, None])[:2]
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    lo, hi = min(max(lo, 0.0), end), min(max(hi, 0.0), end)
    return [lo, hi] if hi > lo else None


def connectivity_marks(data: InsightData) -> dict:
    """Slider marks at the times the connectivity changed (at most 40, evenly picked)."""
    steps = np.unique(np.concatenate([np.zeros(0, np.int64)] + [
        c.steps for c in data.results.connectivity.values()] + [
        a.steps for a in data.results.alive.values()]))
    if steps.size > 40:
        steps = steps[np.linspace(0, steps.size - 1, 40).round().astype(int)]
    return {float(s * data.dt_ms): "" for s in steps}


def render_connectivity(data: InsightData | None, trial: int | None,
                        at_ms: float | None) -> go.Figure:
    """The connectivity graph at ``at_ms`` (the end of the run when unset), or why not."""
    if data is None:
        return figures.message_figure("connectivity", "waiting for the first chunk of the run")
    try:
        trial = 0 if trial is None else int(trial)
        if not 0 <= trial < data.n_trials:
            raise EvoSpikeError(f"trial {trial} is out of range (this file holds "
                                f"{data.n_trials} trial(s))")
        at = data.duration_ms if at_ms is None else min(max(float(at_ms), 0.0),
                                                        data.duration_ms)
        fig = figures.connectivity(data, trial, at)
    except (EvoSpikeError, ValueError, TypeError) as exc:
        return figures.message_figure("connectivity", str(exc))
    return fig if fig is not None else figures.message_figure("connectivity", NO_CONNECTIVITY)


def _find(component: object, cid: str) -> object:
    """The component with id ``cid`` in a layout tree."""
    if getattr(component, "id", None) == cid:
        return component
    children = getattr(component, "children", None)
    if isinstance(children, (list, tuple)):
        for child in children:
            found = _find(child, cid)
            if found is not None:
                return found
    elif children is not None and not isinstance(children, str):
        return _find(children, cid)
    return None


__all__ = ["Replay", "Source", "build_app", "graph", "render_connectivity", "render_views"]
