"""The page's component tree: controls shared by every view (population, trial, time window,
rate bin), then one section per view. Each graph keeps Plotly's modebar, whose camera button
downloads the view as a PNG (named ``insight-<view>.png``)."""

from __future__ import annotations

from pathlib import Path

from dash import dcc, html

#: the views fed from a results file, in page order
RESULT_VIEWS = ("raster", "rates", "distributions", "traces", "weights")
FOLLOW_MS_DEFAULT = 1000.0
LIVE_INTERVAL_MS = 500

_CONTROL = {"display": "inline-block", "verticalAlign": "top", "marginRight": "18px"}
_MESSAGE = {"color": "#c0392b", "fontWeight": "bold", "margin": "6px 0"}


def graph(view: str) -> dcc.Graph:
    return dcc.Graph(id=f"graph-{view}", config={
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": f"insight-{view}", "scale": 2},
    })


def section(view: str, heading: str, *children) -> html.Section:
    return html.Section(id=f"view-{view}", style={"marginTop": "14px"},
                        children=[html.H3(heading, style={"margin": "4px 0"}), *children])


def controls(live: bool) -> html.Div:
    items = [
        html.Div([html.Label("population"),
                  dcc.Dropdown(id="population", clearable=False, style={"width": "220px"})],
                 style=_CONTROL),
        html.Div([html.Label("trial"),
                  dcc.Dropdown(id="trial", clearable=False, value=0,
                               style={"width": "90px"})], style=_CONTROL),
        html.Div([html.Label("rate bin (ms)"),
                  dcc.Input(id="bin-ms", type="number", debounce=True,
                            style={"width": "90px"})], style=_CONTROL),
    ]
    if live:
        items.append(html.Div([
            html.Label("follow the run"),
            dcc.Checklist(id="follow", options=[{"label": " last", "value": "on"}],
                          value=["on"], inline=True),
            dcc.Input(id="follow-ms", type="number", value=FOLLOW_MS_DEFAULT, debounce=True,
                      style={"width": "90px"}), html.Span(" ms")], style=_CONTROL))
    items.append(html.Div([html.Label("time window (ms)"),
                           dcc.RangeSlider(id="window", min=0, max=1, value=[0, 1],
                                           allowCross=False,
                                           tooltip={"placement": "bottom"})],
                          style={"marginTop": "8px"}))
    return html.Div(items, id="controls")


def page(live: bool, report_path: Path | None, history_path: Path | None) -> html.Div:
    views = [
        section("raster", "Spike raster", graph("raster")),
        section("rates", "Population rates", graph("rates")),
        section("distributions", "Rate and ISI distributions", graph("distributions")),
        section("traces", "State traces", graph("traces")),
        section("weights", "Weights", graph("weights")),
        section("connectivity", "Connectivity",
                html.Div([html.Label("connectivity at (ms)"),
                          dcc.Slider(id="conn-at", min=0, max=1, value=None,
                                     tooltip={"placement": "bottom"}, updatemode="drag")]),
                graph("connectivity")),
    ]
    if report_path is not None:
        shown = f"{report_path.parent.name}/{report_path.name}"
        views.append(section("report", f"Validation report ({shown})", graph("report"),
                             html.Div(id="report-table"),
                             html.Img(id="report-rasters", style={"maxWidth": "100%"})))
    if history_path is not None:
        views.append(section("training", f"Training ({history_path.name})", graph("training")))
    extra = [dcc.Interval(id="tick", interval=LIVE_INTERVAL_MS)] if live else []
    return html.Div(style={"fontFamily": "sans-serif", "margin": "10px 24px"}, children=[
        html.H2("EvoSpike Insight" + (" - live" if live else ""), style={"margin": "4px 0"}),
        html.Div(id="title"),
        html.Div(id="status"),
        html.Div(id="page-message", style=_MESSAGE),
        controls(live),
        *views,
        # live: -1, so that the first poll differs and fills the page before any data (Dash
        # does not run a callback whose input an initial no_update left unchanged)
        dcc.Store(id="version", data=-1 if live else 0),
        *extra,
    ])
