"""The Insight Engine (issue 20): data queries, figures, the command line's bad-input lines,
live mode, and the page in a real headless browser (Debian's chromium + chromedriver through
selenium; skipped, with the reason, only where chromium is absent).

Set EVOSPIKE_INSIGHT_DOCS=1 to write the browser tests' screenshots to docs/insight/ (the
screenshots docs/INSIGHT.md shows); otherwise they go to a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dash")

from evospike.cli.main import main  # noqa: E402
from evospike.insight import figures  # noqa: E402
from evospike.insight.app import NO_SPIKES, NO_WEIGHTS, Replay, build_app, render_views  # noqa: E402
from evospike.insight.data import InsightData, load_history, load_report  # noqa: E402
from evospike.insight.live import LiveFeed, LiveStats, run_live  # noqa: E402
from evospike.insight.server import bind, serve_in_background, url_of  # noqa: E402
from evospike.results import Results, SpikeData, TraceData, WeightData  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DT = 0.1
N_STEPS = 5000


def make_results(traces: bool = True, weights: bool = True, spikes: bool = True) -> Results:
    """A two-population run of 500 ms: spikes, a membrane trace, a modulator's level (a
    process target, with no spikes of its own) and weight snapshots."""
    rng = np.random.default_rng(1)
    meta = {"network": "insight_test", "backend": "torch", "precision": "float32",
            "dt_ms": DT, "n_steps": N_STEPS, "duration_ms": N_STEPS * DT, "n_trials": 2,
            "seeds": np.array([0, 1]), "complete": True, "wall_time_s": 1.0,
            "versions": {"evospike": "test"}}
    res = Results(meta)
    if spikes:
        for name, size, n in (("exc", 40, 3000), ("inh", 10, 800)):
            step = rng.integers(0, N_STEPS, n)
            neuron = rng.integers(0, size, n)
            trial = rng.integers(0, 2, n)
            order = np.lexsort((neuron, step, trial))
            res.spikes_by_node[name] = SpikeData(size, step[order], neuron[order].astype(
                np.int32), trial[order].astype(np.int32))
    if traces:
        steps = np.arange(0, N_STEPS, 10)
        v = -65 + 5 * np.sin(steps[None, :, None] / 50.0 + np.arange(3)[None, None, :])
        res.traces["exc.v"] = TraceData("exc", "v", steps, np.arange(3),
                                        np.repeat(v, 2, axis=0))
        level = np.exp(-steps / 2000.0)[None, :, None].repeat(2, axis=0)
        res.traces["dopamine.level"] = TraceData("dopamine", "level", steps, np.arange(1), level)
    if weights:
        steps = np.arange(0, N_STEPS, 500)
        w = rng.uniform(0, 1, (2, steps.size, 60)).cumsum(axis=1) / 10
        res.weights["in->exc.weights"] = WeightData("in->exc", steps, w)
    return res


@pytest.fixture
def results_file(tmp_path) -> Path:
    path = tmp_path / "run.h5"
    make_results().save(path)
    return path


def write_report(folder: Path) -> Path:
    """A validation report in the layout `ValidationReport.to_dict` writes."""
    crit = [{"node": "exc", "name": "rate_hz", "label": "firing rate", "verdict": "pass",
             "reason": "within the seed-to-seed spread",
             "distances": {"ks": 0.04, "wasserstein": 0.3, "effect_size": 0.02},
             "reference_max": {"ks": 0.05}, "thresholds": {"ks": 0.1, "wasserstein": 0.6}},
            {"node": "exc", "name": "isi_cv", "label": "ISI CV", "verdict": "fail",
             "reason": "KS beyond the limit", "distances": {"ks": 0.3},
             "reference_max": {"ks": 0.05}, "thresholds": {"ks": 0.1}}]
    report = {"format": "evospike-validation", "version": 1, "verdict": "fail",
              "passed": False, "reason": "1 criterion failed", "warnings": [], "meta": {},
              "settings": {}, "nodes": {"exc": {"size": 40, "exact": {}, "criteria": crit,
                                                "reference_pairs": {}}}}
    path = folder / "report.json"
    path.write_text(json.dumps(report))
    return path


def write_history(folder: Path) -> Path:
    path = folder / "metrics.json"
    path.write_text(json.dumps([
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_accuracy": 1 - 0.5 / e,
         "val_accuracy": 1 - 0.6 / e, "lr": 1e-3, "epoch_wall_s": 2.0} for e in range(1, 6)]))
    return path


# ------------------------------------------------------------------ data and figures
def test_window_queries_match_brute_force():
    res = make_results()
    data = InsightData(res)
    w = data.clamp("exc", 1, 100.0, 350.0)
    steps, neurons = data.spikes(w)
    d = res.spikes_by_node["exc"]
    sel = (d.trial == 1) & (d.step * DT >= 100.0) & (d.step * DT < 350.0)
    assert np.array_equal(np.sort(steps), np.sort(d.step[sel]))
    assert steps.size == sel.sum() > 0
    rates = data.neuron_rates(w)
    assert np.allclose(rates, np.bincount(d.neuron[sel], minlength=40) / 0.25)
    # ISIs: per neuron, consecutive spike steps in the window
    expected = []
    for n in range(40):
        s = np.sort(d.step[sel & (d.neuron == n)])
        expected += list(np.diff(s) * DT)
    assert np.allclose(np.sort(data.isis(w)), np.sort(expected))
    pop = data.population_rates(w, 10.0)
    t, r = pop["exc"]
    assert t.size == 25 and np.isclose(r.sum() * 0.010 * 40, sel.sum())


def test_window_bounds_follow_the_step_convention():
    """A spike in step n is at n dt: a window [a, b) holds steps ceil(a/dt) to ceil(b/dt)-1."""
    res = make_results(traces=False, weights=False)
    steps = np.array([999, 1000, 1999, 2000])
    res.spikes_by_node["exc"] = SpikeData(40, steps, np.arange(4, dtype=np.int32),
                                          np.zeros(4, np.int32))
    data = InsightData(res)
    got, _ = data.spikes(data.clamp("exc", 0, 100.0, 200.0))
    assert got.tolist() == [1000, 1999]
    got, _ = data.spikes(data.clamp("exc", 0, 99.95, 200.05))
    assert got.tolist() == [1000, 1999, 2000]


def test_window_is_kept_within_the_run_and_bad_selections_are_named():
    data = InsightData(make_results())
    w = data.clamp("inh", 0, -5.0, 1e9)
    assert (w.start_ms, w.stop_ms) == (0.0, 500.0)
    with pytest.raises(Exception, match="population 'nope' has no recorded spikes"):
        data.clamp("nope", 0, 0, 10)
    with pytest.raises(Exception, match="trial 7 is out of range"):
        data.clamp("exc", 7, 0, 10)


def test_raster_is_webgl_below_the_limit_and_aggregated_above(monkeypatch):
    data = InsightData(make_results())
    w = data.clamp("exc", 0, 0.0, 500.0)
    n = data.spikes(w)[0].size
    fig = figures.raster(data, w)
    assert fig.data[0].type == "scattergl" and len(fig.data[0].x) == n
    monkeypatch.setattr(figures, "RASTER_POINTS", n - 1)
    fig = figures.raster(data, w)
    assert fig.data[0].type == "heatmap"
    z = np.asarray(fig.data[0].z)
    assert int(z.sum()) == n  # every spike counted once
    # ... in its own bin: the image is the 2-D histogram of (time, neuron)
    steps, neurons = data.spikes(w)
    expected, _, _ = np.histogram2d(neurons, steps, bins=(z.shape[0], z.shape[1]),
                                    range=((0, 40), (0, N_STEPS)))
    assert np.array_equal(z, expected)


def test_views_render_their_traces():
    data = InsightData(make_results())
    raster, rates, dist, traces, weights, message = render_views(data, "exc", 0, [0, 500], 5.0)
    assert message == ""
    assert {t.name for t in rates.data} == {"exc", "inh"}
    assert [t.type for t in dist.data] == ["bar", "bar"]
    names = {t.name for t in traces.data}
    assert {"exc.v[0]", "exc.v[2]", "dopamine.level[0]"} <= names
    assert [t.type for t in weights.data] == ["heatmap", "heatmap"]  # histogram + matrix
    hist = np.asarray(weights.data[0].z)
    assert hist.shape == (40, 10) and np.all(hist.sum(axis=0) == 60)


def test_views_without_their_data_say_so():
    data = InsightData(make_results(traces=False, weights=False))
    *figs, message = render_views(data, "exc", 0, None, None)
    texts = [a.text for f in figs for a in f.layout.annotations]
    assert any("records no state traces" in t for t in texts)
    assert NO_WEIGHTS in texts
    data = InsightData(make_results(spikes=False, weights=False))
    *figs, message = render_views(data, None, 0, None, None)
    assert NO_SPIKES in message
    assert {"exc.v[0]", "dopamine.level[0]"} <= {t.name for t in figs[3].data}
    # a bad rate bin is a message in the page, not an exception
    *_, message = render_views(InsightData(make_results()), "exc", 0, None, -1)
    assert "rate bin must be a positive number" in message


def test_report_and_training_figures(tmp_path):
    report = load_report(write_report(tmp_path))
    fig = figures.report_figure(report)
    assert list(fig.data[0].y) == pytest.approx([0.4, 0.5, 3.0])
    assert fig.data[0].marker.color[2] == figures.VERDICT_COLOURS["fail"]
    fig = figures.training_figure(load_history(write_history(tmp_path)))
    assert {t.name for t in fig.data} == {"train_loss", "val_loss", "train_accuracy",
                                          "val_accuracy", "lr"}


# ------------------------------------------------------------------ command line: bad input
def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


def test_cli_bad_files_are_one_line(tmp_path, capsys):
    code, err = _cli(capsys, "insight", str(tmp_path / "none.h5"))
    assert code == 2 and err == f"evospike: error: results file '{tmp_path / 'none.h5'}' " \
                                "does not exist"
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    code, err = _cli(capsys, "insight", str(bad))
    assert code == 2 and "not an HDF5 file" in err and "\n" not in err
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    code, err = _cli(capsys, "insight", str(tmp_path / "other.h5"))
    assert code == 2 and err.startswith("evospike: error:") and "\n" not in err
    good = tmp_path / "run.h5"
    make_results().save(good)
    (tmp_path / "r.json").write_text("{")
    code, err = _cli(capsys, "insight", str(good), "--report", str(tmp_path / "r.json"))
    assert code == 2 and "is not valid JSON" in err
    (tmp_path / "m.json").write_text("{}")
    code, err = _cli(capsys, "insight", str(good), "--training", str(tmp_path / "m.json"))
    assert code == 2 and "non-empty list of per-epoch records" in err
    code, err = _cli(capsys, "insight", str(good), "--port", "70000")
    assert code == 2 and "--port must be a port number" in err


def test_port_in_use_is_one_line(results_file, tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, err = _cli(capsys, "insight", str(results_file), "--port", str(port))
        assert code == 2 and f"--port {port}: 127.0.0.1:{port} is already in use" in err
        # the live page's port is checked before the model is even loaded
        model = tmp_path / "model.py"
        model.write_text("raise RuntimeError('must not be loaded')\n")
        code, err = _cli(capsys, "run", str(model), "--insight", "--insight-port", str(port),
                         "--out", str(tmp_path / "o.h5"))
        assert code == 2 and f"--insight-port {port}" in err and "already in use" in err


# ------------------------------------------------------------------ live mode
def small_network(n_exc: int = 30):
    from evospike import LIF, FixedProbability, Network, Uniform

    net = Network("live_test", dt_ms=DT)
    cell = LIF(tau_m_ms=20.0, v_rest_mV=-65.0, v_thresh_mV=-50.0, v_reset_mV=-65.0,
               tau_refrac_ms=2.0, tau_syn_exc_ms=5.0)
    exc = net.population("exc", n_exc, cell, initial={"v": Uniform(-65.0, -55.0)})
    drive = net.poisson_source("drive", 50, rate_hz=20.0)
    net.connect(drive, exc, FixedProbability(0.3, seed=0), weight=6.0, delay_ms=1.0,
                target="exc")
    net.record_spikes(exc)
    net.record_state(exc, "v", neurons=[0, 1], every_steps=10)
    return net


def _compile(net):
    from evospike.backends import get_backend

    return get_backend("torch").compile(net, seeds=(3,), engine="eager", progress=False)


def test_live_run_publishes_snapshots_and_matches_one_call(monkeypatch):
    import evospike.insight.live as live

    monkeypatch.setattr(live, "MIN_PERIOD_S", 0.0)  # a snapshot per chunk
    feed, stats = LiveFeed("test"), LiveStats()
    seen: list[int] = []
    publish = feed.publish
    monkeypatch.setattr(feed, "publish", lambda r: (seen.append(r.n_steps), publish(r)))
    res = run_live(_compile(small_network()), 3000 * DT, DT, feed, stats, budget=1e9)
    assert seen == [1000, 2000, 3000] and stats.snapshots == 3
    assert feed.finished and feed.version == 4 and "finished, step 3000 of 3000" in feed.status()
    ref = _compile(small_network()).run(3000 * DT)
    a, b = res.spikes_by_node["exc"], ref.spikes_by_node["exc"]
    assert np.array_equal(a.step, b.step) and np.array_equal(a.neuron, b.neuron)
    assert np.array_equal(res.traces["exc.v"].values, ref.traces["exc.v"].values)


def test_live_calls_lengthen_to_fit_the_budget(monkeypatch):
    import evospike.insight.live as live

    monkeypatch.setattr(live, "MIN_PERIOD_S", 0.0)
    feed = LiveFeed("test")
    seen: list[int] = []
    publish = feed.publish
    monkeypatch.setattr(feed, "publish", lambda r: (seen.append(r.n_steps), publish(r)))
    # a budget no snapshot can meet: after the first call, the rest comes in one call
    run_live(_compile(small_network()), 4000 * DT, DT, feed, budget=1e-12)
    assert seen == [1000, 4000]


# ------------------------------------------------------------------ connectivity over time
def test_connectivity_log_keeps_each_change_once():
    from evospike.connectivity import ConnectivityLog

    log = ConnectivityLog(n_trials=2)
    pre, post = np.array([0, 0, 1]), np.array([1, 2, 2])
    both = np.ones((2, 3), bool)
    log.snapshot_projection("p", "a", "b", 2, 3, 0, [3, 3], (pre, post, both))
    log.snapshot_projection("p", "a", "b", 2, 3, 5, [3, 3], (pre, post, both))  # unchanged
    cut = both.copy()
    cut[1, 0] = False
    log.snapshot_projection("p", "a", "b", 2, 3, 9, [3, 2], (pre, post, cut))
    grown = (np.array([0, 0, 1, 1]), np.array([1, 2, 2, 0]), np.ones((2, 4), bool))
    log.snapshot_projection("p", "a", "b", 2, 3, 20, [4, 4], grown)
    c = log.connectivity(n_steps=30)["p"]
    assert c.steps.tolist() == [0, 9, 20] and c.counts.tolist() == [[3, 3, 4], [3, 2, 4]]
    assert list(zip(c.pre.tolist(), c.post.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 0),
                                                                       (1, 2)]
    assert c.present[1, 1].tolist() == [False, True, False, True]
    assert c.index_at(8) == 0 and c.index_at(9) == 1 and c.index_at(10**6) == 2
    # only the snapshots within the steps run (the first always)
    assert log.connectivity(n_steps=15)["p"].steps.tolist() == [0, 9]


def _structural_run(ms: float = 350.0):
    import sys

    sys.path.insert(0, str(ROOT / "examples"))
    import structural_plasticity as sp

    from evospike.backends import get_backend

    runner = get_backend("torch").compile(sp.build(0), seeds=(0,), progress=False)
    return runner, runner.run(ms)


def test_structural_run_records_its_connectivity_over_time(tmp_path):
    from backends.torch import structure

    runner, res = _structural_run()
    c = res.connectivity["in->out"]
    assert (c.pre_node, c.post_node, c.n_pre, c.n_post) == ("inputs", "out", 60, 10)
    # a snapshot at the start and after each structural update (every 200 steps)
    assert c.steps.tolist() == [0, 199, 399, 599]
    n_syn = res.traces["in->out.structural.n_synapses"]
    for i, step in enumerate(c.steps):
        k = np.searchsorted(n_syn.steps, step + 1)  # the recorded count once it holds
        if k < n_syn.steps.size:
            assert c.counts[0, i] == n_syn.values[0, k, 0]
    assert (c.present.sum(axis=2) == c.counts).all() and np.diff(c.counts[0]).max() > 0
    now = structure.connectivity(runner.cn, "in->out")
    pre = np.repeat(np.arange(60), np.diff(now["indptr"]))[now["present"][0]]
    pairs = set(zip(pre.tolist(), now["indices"][now["present"][0]].tolist(), strict=True))
    last = c.present[0, -1]
    assert pairs == set(zip(c.pre[last].tolist(), c.post[last].tolist(), strict=True))
    assert res.connectivity["drive->out"].steps.tolist() == [0]  # static: one snapshot
    path = tmp_path / "s.h5"
    res.save(path)
    back = Results.load(path).connectivity["in->out"]
    assert np.array_equal(back.present, c.present) and np.array_equal(back.pre, c.pre)
    # files written before connectivity was recorded still load, with none
    import h5py

    with h5py.File(path, "a") as f:
        del f["connectivity"]
    assert Results.load(path).connectivity == {}
    with h5py.File(path, "w") as f:
        pass
    res.connectivity["in->out"].post = c.post + 10  # beyond n_post
    res.save(path)
    with pytest.raises(Exception, match=r"connectivity/in->out/post.*must lie in \[0, 10\)"):
        Results.load(path)


def test_connectivity_graph_follows_the_changes(monkeypatch):
    from evospike.insight.app import NO_CONNECTIVITY, render_connectivity

    _, res = _structural_run()
    data = InsightData(res)
    c = res.connectivity["in->out"]
    fig = figures.connectivity(data, 0, 150.0)  # step 300: the snapshot of step 199 holds
    by_name = {t.name.split(" (")[0]: t for t in fig.data}
    grown = int(c.counts[0, 1] - c.counts[0, 0])
    assert by_name["grown"].name == f"grown ({grown})" and grown > 0
    # every edge is a segment: two points and a gap
    assert len(by_name["grown"].x) == 3 * grown
    assert by_name["synapse"].name == f"synapse ({c.counts[0, 0] + 10})"  # + drive->out
    assert {"inputs", "out", "drive"} <= set(by_name)
    assert f"{int(c.counts[0, 1]) + 10} synapses" in fig.layout.title.text
    # large networks: one edge per projection, labelled with its count at that time
    monkeypatch.setattr(figures, "GRAPH_NEURONS", 10)
    fig = figures.connectivity(data, 0, 150.0)
    assert f"in->out: {int(c.counts[0, 1])}" in {a.text for a in fig.layout.annotations}
    res.connectivity.clear()
    notes = [a.text for a in render_connectivity(InsightData(res), 0, None).layout.annotations]
    assert notes == [NO_CONNECTIVITY]


def test_raster_zoom_sets_the_window():
    from evospike.insight.app import zoom_window

    assert zoom_window({"xaxis.range[0]": 10.5, "xaxis.range[1]": 80}, 500.0) == [10.5, 80.0]
    assert zoom_window({"xaxis.range": [-5, 900]}, 500.0) == [0.0, 500.0]
    assert zoom_window({"xaxis.autorange": True}, 500.0) == [0.0, 500.0]
    assert zoom_window({"yaxis.range[0]": 1, "yaxis.range[1]": 3}, 500.0) is None
    assert zoom_window(None, 500.0) is None


def test_live_hands_over_every_n_steps_when_asked(monkeypatch, capsys):
    import evospike.insight.live as live

    monkeypatch.setattr(live, "MIN_PERIOD_S", 0.0)
    feed = LiveFeed("test")
    seen: list[int] = []
    publish = feed.publish
    monkeypatch.setattr(feed, "publish", lambda r: (seen.append(r.n_steps), publish(r)))
    res = run_live(_compile(small_network()), 1500 * DT, DT, feed, budget=1e9, every_steps=250)
    assert seen == [250, 500, 750, 1000, 1250, 1500]
    ref = _compile(small_network()).run(1500 * DT)  # calls inside a chunk: the same run
    a, b = res.spikes_by_node["exc"], ref.spikes_by_node["exc"]
    assert np.array_equal(a.step, b.step) and np.array_equal(a.neuron, b.neuron)
    with pytest.raises(Exception, match="--insight-every must be a positive whole number"):
        run_live(_compile(small_network()), 10.0, DT, LiveFeed("x"), every_steps=0)
    code, err = _cli(capsys, "run", "model.py", "--insight", "--insight-every", "-3")
    assert code == 2 and err == ("evospike: error: --insight-every must be a positive whole "
                                 "number of steps (got -3)")


# ------------------------------------------------------------------ the page in a browser
def _chromium() -> tuple[str | None, str | None]:
    binary = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return binary, driver


needs_browser = pytest.mark.skipif(
    None in _chromium(), reason="chromium and chromedriver are not installed (apt-get install "
                                "chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                "--window-size=1300,900"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    yield d
    d.quit()


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("EVOSPIKE_INSIGHT_DOCS"):
        folder = ROOT / "docs" / "insight"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path


def _serve(app):
    server = bind(app, "127.0.0.1", 0)
    serve_in_background(server)
    return server


def _plot_data(d, view: str, timeout: float = 20.0) -> list[dict]:
    """Types, names and point counts of a view's rendered traces, once it has any."""
    script = f"""var g = document.querySelector('#graph-{view} .js-plotly-plot');
        if (!g || !g._fullData || !g._fullLayout) return null;
        return [g._fullData.map(t => [t.type, t.name || '', t.x ? t.x.length : 0]),
                (g._fullLayout.annotations || []).map(a => a.text)];"""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        out = d.execute_script(script)
        if out and (out[0] or out[1]):
            return out
        time.sleep(0.1)
    raise AssertionError(f"view {view} did not render within {timeout} s")


def _not_blank(path: Path) -> None:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert img.std() > 5.0, f"{path.name} looks blank (pixel std {img.std():.2f})"
    # something beyond the white background and the axes: many distinct grey levels
    assert np.unique(img.astype(np.uint8)).size > 20, f"{path.name} has almost no content"


def _shoot(d, view: str, folder: Path, name: str | None = None) -> Path:
    from selenium.webdriver.common.by import By

    el = d.find_element(By.ID, f"view-{view}")
    d.execute_script("arguments[0].scrollIntoView();", el)
    time.sleep(0.3)  # WebGL draws on the next animation frame
    path = folder / f"{name or view}.png"
    el.screenshot(str(path))
    _not_blank(path)
    return path


@pytest.mark.slow
@needs_browser
def test_browser_every_view_renders(browser, results_file, tmp_path, shots):
    report_dir = tmp_path / "validation"
    report_dir.mkdir()
    from evospike.results import Results as R

    R.load(results_file).plot(report_dir / "comparison.png")  # stands in for the two rasters
    report = write_report(report_dir)
    history = write_history(tmp_path)
    app = build_app(Replay(InsightData(R.load(results_file), str(results_file))),
                    load_report(report), report, load_history(history), history)
    server = _serve(app)
    try:
        browser.get(url_of(server))
        expected = {"raster": {"scattergl"}, "rates": {"scatter"}, "distributions": {"bar"},
                    "traces": {"scatter"}, "weights": {"heatmap"}, "report": {"bar"},
                    "training": {"scatter"}}
        for view, types in expected.items():
            data, _ = _plot_data(browser, view)
            assert {t[0] for t in data} == types, (view, data)
            _shoot(browser, view, shots)
        raster, _ = _plot_data(browser, "raster")
        assert raster[0][1] == "exc" and raster[0][2] > 0  # the traced population first
        traces, _ = _plot_data(browser, "traces")
        assert {"exc.v[0]", "dopamine.level[0]"} <= {t[1] for t in traces}
        from selenium.webdriver.common.by import By

        assert "fail" in browser.find_element(By.ID, "report-table").text
        img = browser.find_element(By.ID, "report-rasters")
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 100
        assert browser.find_element(By.ID, "page-message").text == ""
    finally:
        server.shutdown()


@pytest.mark.slow
@needs_browser
def test_browser_connectivity_view_draws_the_changed_synapses(browser, tmp_path, shots):
    """A structural-plasticity run's connectivity view in the page: both populations and the
    drive as node groups, the synapses as edges, the time slider's marks at the changes."""
    _, res = _structural_run()
    path = tmp_path / "s.h5"
    res.save(path)
    server = _serve(build_app(Replay(InsightData(Results.load(path), str(path)))))
    try:
        browser.get(url_of(server))
        data, notes = _plot_data(browser, "connectivity")
        names = {t[1].split(" (")[0] for t in data}
        assert {"inputs", "out", "drive", "synapse"} <= names, (data, notes)
        c = res.connectivity["in->out"]
        # every present synapse is drawn once, kept or grown at the last change, each as a
        # segment (two points and a gap); + the 10 synapses of the static drive
        drawn = sum(t[2] for t in data if t[1].split(" (")[0] in ("synapse", "grown"))
        assert drawn == 3 * (int(c.counts[0, -1]) + 10), data
        _shoot(browser, "connectivity", shots)
    finally:
        server.shutdown()


@pytest.mark.slow
@needs_browser
def test_browser_missing_data_is_a_message_in_the_page(browser):
    app = build_app(Replay(InsightData(make_results(traces=False, weights=False), "x.h5")))
    server = _serve(app)
    try:
        browser.get(url_of(server))
        _, notes = _plot_data(browser, "weights")
        assert NO_WEIGHTS in notes
        _, notes = _plot_data(browser, "traces")
        assert any("records no state traces" in n for n in notes)
        raster, _ = _plot_data(browser, "raster")
        assert raster and raster[0][0] == "scattergl"
    finally:
        server.shutdown()


@pytest.mark.slow
@needs_browser
def test_browser_live_page_follows_the_run(browser, shots, monkeypatch):
    from selenium.webdriver.common.by import By

    import evospike.insight.live as live

    monkeypatch.setattr(live, "MIN_PERIOD_S", 0.0)
    feed = LiveFeed("'live_test'")
    server = _serve(build_app(feed))
    runner = _compile(small_network(200))
    gate = threading.Event()
    run = runner.run

    def paced(duration_ms, progress=None):  # one chunk a second: the page sees each
        gate.wait(1.0)
        return run(duration_ms, progress=progress)

    runner.run = paced
    done: list = []
    worker = threading.Thread(target=lambda: done.append(
        run_live(runner, 6000 * DT, DT, feed, budget=1e9)))
    try:
        browser.get(url_of(server))
        t_end = time.monotonic() + 30
        while not any("is starting" in e.text for e in browser.find_elements(By.ID, "status")):
            assert time.monotonic() < t_end, "the live page did not come up"
            time.sleep(0.1)
        seen_status, seen_counts = set(), set()
        worker.start()
        while time.monotonic() < t_end:
            status = browser.find_element(By.ID, "status").text
            seen_status.add(status)
            data = browser.execute_script(
                "var g = document.querySelector('#graph-raster .js-plotly-plot');"
                "return g && g._fullData && g._fullData[0] ? g._fullData[0].x.length : null;")
            if data is not None:
                seen_counts.add(data)
            if "finished" in status:
                break
            time.sleep(0.2)
        running = {s for s in seen_status if "running" in s}
        assert len(running) >= 2, seen_status  # the page showed the run progressing
        assert any("finished, step 6000 of 6000" in s for s in seen_status), seen_status
        assert len(seen_counts) >= 2, seen_counts  # and its raster grew with it
        _shoot(browser, "raster", shots, name="live")
    finally:
        worker.join(60)
        server.shutdown()
    assert done and done[0].n_steps == 6000
