"""Insight Engine timings (issue 20): first render of a 1e6-spike results file, and the live
mode at 1e5 neurons (the cost of a page refresh, and how much following a run slows it).

    python benchmarks/insight_timing.py            # prints a Markdown table

1. First render: a results file with 1e6 spikes (10,000 neurons, 10 s at ~10 Hz) is opened
   as ``evospike insight`` does; timed: reading and checking the file, the server computing
   every view, and, where chromium is installed, a headless browser from navigation until
   the raster is drawn (the page's JavaScript is cached by then: a second visit).
2. Live: a 1e5-neuron LIF network driven by Poisson input runs on the torch backend (eager
   engine, CPU) once plainly and once under `run_live`, with a thread that polls twice a
   second and renders every view of the last second for each new snapshot, as an open page
   does; the runs alternate, and the medians are compared.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evospike.insight.app import Replay, build_app, render_views  # noqa: E402
from evospike.insight.data import open_data  # noqa: E402
from evospike.insight.live import LiveFeed, LiveStats, run_live  # noqa: E402
from evospike.insight.server import bind, serve_in_background, url_of  # noqa: E402
from evospike.results import Results, SpikeData  # noqa: E402


def million_spike_file(path: Path) -> int:
    rng = np.random.default_rng(0)
    n_neurons, n_steps, n_spikes = 10_000, 100_000, 1_000_000
    step = np.sort(rng.integers(0, n_steps, n_spikes))
    neuron = rng.integers(0, n_neurons, n_spikes).astype(np.int32)
    res = Results({"network": "bench", "backend": "torch", "precision": "float32",
                   "dt_ms": 0.1, "n_steps": n_steps, "duration_ms": n_steps * 0.1,
                   "n_trials": 1, "seeds": np.array([0]), "complete": True,
                   "wall_time_s": 1.0})
    res.spikes_by_node["exc"] = SpikeData(n_neurons, step, neuron, np.zeros(n_spikes, np.int32))
    res.save(path)
    return n_spikes


def browser_first_render(url: str) -> float | None:
    binary = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                "--window-size=1300,900"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    script = ("var g = document.querySelector('#graph-raster .js-plotly-plot');"
              "return !!(g && g._fullData && g._fullData.length);")
    try:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            d.get(url)
            while not d.execute_script(script):
                time.sleep(0.01)
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:])
    finally:
        d.quit()


def first_render() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "million.h5"
        n = million_spike_file(path)
        t0 = time.perf_counter()
        data = open_data(path)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        render_views(data, None, 0, None, None)
        t_views = time.perf_counter() - t0
        server = bind(build_app(Replay(data)), "127.0.0.1", 0)
        serve_in_background(server)
        try:
            t_browser = browser_first_render(url_of(server))
        finally:
            server.shutdown()
    return {"spikes": n, "load_s": t_load, "views_s": t_views, "browser_s": t_browser}


def big_network(n: int):
    from evospike import LIF, FixedProbability, Network, Uniform

    net = Network("live_bench", dt_ms=0.1)
    cell = LIF(tau_m_ms=20.0, v_rest_mV=-65.0, v_thresh_mV=-50.0, v_reset_mV=-65.0,
               tau_refrac_ms=2.0, tau_syn_exc_ms=5.0)
    exc = net.population("exc", n, cell, initial={"v": Uniform(-65.0, -55.0)})
    drive = net.poisson_source("drive", 1000, rate_hz=20.0)
    net.connect(drive, exc, FixedProbability(0.02, seed=0), weight=7.0, delay_ms=1.0,
                target="exc")
    net.record_spikes(exc)
    net.record_state(exc, "v", neurons=list(range(8)), every_steps=10)
    return net


def live(n_neurons: int = 100_000, steps: int = 5000, repeats: int = 2,
         every_steps: int = 1000) -> dict:
    from evospike.backends import get_backend

    net = big_network(n_neurons)
    dt = net.dt_ms

    def compile_():
        return get_backend("torch").compile(net, seeds=(0,), engine="eager", progress=False)

    plain, followed, refresh = [], [], []
    spikes = 0
    snapshots = 0
    for _ in range(repeats):
        runner = compile_()
        t0 = time.perf_counter()
        res = runner.run(steps * dt, progress=False)
        plain.append(time.perf_counter() - t0)
        spikes = res.spikes_by_node["exc"].step.size

        runner = compile_()
        feed, stats = LiveFeed("bench"), LiveStats()
        stop = threading.Event()

        def page(feed: LiveFeed = feed, stop: threading.Event = stop) -> None:
            # an open page: it polls twice a second and, as the page's callbacks do, redraws
            # every view of the last second when a new snapshot has come
            seen = 0
            while not stop.wait(0.5):
                data = feed.current()
                if data is None or feed.version == seen:
                    continue
                seen = feed.version
                end = data.duration_ms
                t = time.perf_counter()
                render_views(data, "exc", 0, [max(0.0, end - 1000.0), end], None)
                refresh.append(time.perf_counter() - t)

        poller = threading.Thread(target=page)
        poller.start()
        t0 = time.perf_counter()
        run_live(runner, steps * dt, dt, feed, stats, every_steps=every_steps)
        followed.append(time.perf_counter() - t0)
        stop.set()
        poller.join()
        snapshots = stats.snapshots
    p, f = statistics.median(plain), statistics.median(followed)
    return {"neurons": n_neurons, "steps": steps, "spikes": spikes, "plain_s": p,
            "live_s": f, "slowdown": f / p - 1.0, "snapshots": snapshots,
            "refresh_s": statistics.median(refresh) if refresh else float("nan"),
            "refresh_max_s": max(refresh) if refresh else float("nan")}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    fr = first_render()
    lv = live()
    lv_fine = live(every_steps=250)  # `--insight-every 250`: a hand-over every 250 steps
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)"
    print(f"Insight timings ({machine}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')})\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| 1e6-spike file: read and check | {fr['load_s']:.3f} s |")
    print(f"| 1e6-spike file: server computes every view | {fr['views_s']:.3f} s |")
    shown = "not measured (no chromium)" if fr["browser_s"] is None else \
        f"{fr['browser_s']:.3f} s"
    print(f"| 1e6-spike file: headless chromium, navigation to raster drawn | {shown} |")
    print(f"| live, {lv['neurons']} neurons, {lv['steps']} steps ({lv['spikes']} spikes): "
          f"plain run | {lv['plain_s']:.2f} s |")
    print(f"| same run followed live ({lv['snapshots']} snapshots, page polling at 2 Hz) | "
          f"{lv['live_s']:.2f} s ({100 * lv['slowdown']:+.1f} %) |")
    print(f"| same run followed live, hand-over every 250 steps ({lv_fine['snapshots']} "
          f"snapshots) | {lv_fine['live_s']:.2f} s ({100 * lv_fine['slowdown']:+.1f} %) |")
    print(f"| one page redraw (every view, last 1000 ms), median / max | "
          f"{lv['refresh_s'] * 1e3:.0f} ms / {lv['refresh_max_s'] * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
