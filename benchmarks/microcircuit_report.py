"""Potjans & Diesmann (2014) microcircuit: per-population rates and irregularity at a given scale,
against the published values, with build and simulation times.

The network is ``examples/microcircuit.py`` (``build(scale, k_scale, background)``). Two runs by
default, each on a freshly built network:

* ``native-dc``: the native engine (compiled C kernel, float32) with DC background (the mean of
  the Poisson background as a current);
* ``eager-poisson``: the eager engine (torch operations, float32, ``--threads`` intra-op
  threads) with the Poisson background (a `PoissonInput` of K_ext afferents at 8 Hz per neuron).

Each runs ``--transient-ms`` + ``--duration-ms`` of biological time from the published initial
potentials; rates and ISI CVs (neurons with >= 3 spikes) are taken after the transient. Compared
with: the full-scale mean rates of NEST's example (``full_mean_rates``, one full-scale NEST run)
and, at ``--scale 0.1``, the mean rates of NEST's reference data (N_scaling = K_scaling = 0.1,
Poisson background), both listed in the example. Times: build (``build()``: drawing the
synapses), compile (``compile``: tensors, kernel layout) and simulation (``runner.run`` wall
time), and the real-time factor (simulation wall time / biological time). Peak resident memory of
the process (``ru_maxrss``) is reported after each run (it only grows: the largest run dominates).

Writes ``benchmarks/results/microcircuit_<hostname>.json`` (atomically) and a bar chart of rates
and CVs, ``benchmarks/results/microcircuit_<hostname>.png``.

    nice python benchmarks/microcircuit_report.py --scale 0.1 --k-scale 0.5
    python benchmarks/microcircuit_report.py --scale 1 --k-scale 1 --runs native-dc --threads 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"native-dc": ("native", "dc"), "eager-poisson": ("eager", "poisson")}


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def machine() -> dict[str, Any]:
    """CPU, cores, versions and git state: the same record as ``benchmarks/cuba.py``'s."""
    info = _load(ROOT / "benchmarks" / "cuba.py", "cuba_benchmark").machine_info()
    return {**info, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def run_one(mc: ModuleType, label: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from evospike.backends import get_backend

    engine, background = RUNS[label]
    t0 = time.perf_counter()
    net = mc.build(args.scale, args.k_scale, background, seed=args.seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner = get_backend("torch").compile(net, engine=engine, progress=False,
                                          seeds=(args.trial_seed,))
    compile_s = time.perf_counter() - t0
    total_ms = args.transient_ms + args.duration_ms
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        res = runner.run(total_ms)
    finally:
        torch.set_num_threads(before)
    sim_s = float(res.meta["wall_time_s"])
    stats = mc.population_statistics(res, args.transient_ms)
    return {
        "run": label, "engine": runner.engine, "background": background,
        "neurons": net.n_neurons, "synapses": net.n_synapses,
        "build_s": build_s, "compile_s": compile_s, "sim_s": sim_s,
        "simulated_ms": total_ms, "real_time_factor": sim_s / (total_ms * 1e-3),
        "peak_rss_bytes": peak_rss_bytes(),
        "populations": {name: {"size": net.populations[name].size, "rate_hz": rate,
                               "isi_cv": None if np.isnan(cv) else cv, "cv_neurons": n}
                        for name, (rate, cv, n) in stats.items()},
    }


def print_run(mc: ModuleType, entry: dict[str, Any], scale: float) -> None:
    print(f"\n{entry['run']}: {entry['neurons']} neurons, {entry['synapses']} synapses; build "
          f"{entry['build_s']:.1f} s, compile {entry['compile_s']:.1f} s, simulation "
          f"{entry['sim_s']:.2f} s for {entry['simulated_ms']:.0f} ms (real-time factor "
          f"{entry['real_time_factor']:.2f}); peak RSS {entry['peak_rss_bytes'] / 1e9:.2f} GB")
    ref = abs(scale - 0.1) < 1e-12
    print(f"  {'population':10s} {'N':>6s} {'rate Hz':>8s} {'published':>9s} {'ratio':>6s}"
          + (f" {'NEST 0.1':>8s}" if ref else "") + f" {'CV ISI':>7s} {'n CV':>5s}")
    for i, (name, p) in enumerate(entry["populations"].items()):
        pub = mc.FULL_SCALE_RATES_HZ[i]
        cv = "nan" if p["isi_cv"] is None else f"{p['isi_cv']:.2f}"
        print(f"  {name:10s} {p['size']:6d} {p['rate_hz']:8.3f} {pub:9.3f} "
              f"{p['rate_hz'] / pub:6.2f}"
              + (f" {mc.REFERENCE_0P1_RATES_HZ[i]:8.3f}" if ref else "")
              + f" {cv:>7s} {p['cv_neurons']:5d}")


def plot(mc: ModuleType, entries: list[dict[str, Any]], scale: float, k_scale: float,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(mc.POPULATIONS)
    x = np.arange(len(names))
    bars = [("published (NEST, full scale)", mc.FULL_SCALE_RATES_HZ, None)]
    if abs(scale - 0.1) < 1e-12:
        bars.append(("NEST reference data, scale 0.1, k_scale 0.1 (Poisson)",
                     mc.REFERENCE_0P1_RATES_HZ, mc.REFERENCE_0P1_CV))
    for e in entries:
        pops = e["populations"]
        bars.append((f"EvoSpike {e['run']}", np.array([pops[n]["rate_hz"] for n in names]),
                     np.array([np.nan if pops[n]["isi_cv"] is None else pops[n]["isi_cv"]
                               for n in names])))
    width = 0.8 / len(bars)
    fig, (ax_rate, ax_cv) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for k, (label, rates, cvs) in enumerate(bars):
        offset = (k - (len(bars) - 1) / 2) * width
        ax_rate.bar(x + offset, rates, width, label=label)
        if cvs is not None:
            ax_cv.bar(x + offset, cvs, width, label=label, color=f"C{k}")
    ax_rate.set_ylabel("mean rate (Hz)")
    ax_rate.set_title(f"Potjans & Diesmann microcircuit, scale {scale:g}, k_scale {k_scale:g}")
    ax_rate.legend(fontsize=8)
    ax_cv.set_ylabel("mean ISI CV")
    ax_cv.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax_cv.set_xticks(x, names)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of the neurons")
    parser.add_argument("--k-scale", type=float, default=0.5,
                        help="fraction of the in-degrees (compensated; with DC background "
                             "values below ~0.25 let the network fall silent at small scales)")
    parser.add_argument("--duration-ms", type=float, default=1000.0,
                        help="biological time measured, after the transient")
    parser.add_argument("--transient-ms", type=float, default=200.0)
    parser.add_argument("--runs", default="native-dc,eager-poisson",
                        help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=55, help="connectivity seed")
    parser.add_argument("--trial-seed", type=int, default=0,
                        help="initial potentials and Poisson input")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/)")
    parser.add_argument("--png", default=None, help="chart path (default beside the JSON)")
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown or not runs:
        parser.error(f"--runs: unknown run {', '.join(unknown) or '(none given)'} "
                     f"(known: {', '.join(RUNS)})")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1 (got {args.threads})")
    from evospike.atomic import atomic_path
    from evospike.errors import EvoSpikeError

    mc = _load(ROOT / "examples" / "microcircuit.py", "microcircuit_example")
    try:
        estimate = mc.memory_estimate(args.scale, args.k_scale,
                                      duration_ms=args.transient_ms + args.duration_ms)
    except EvoSpikeError as exc:
        parser.error(str(exc))
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores; scale {args.scale:g}, k_scale "
          f"{args.k_scale:g}; estimated IR memory {estimate.total_bytes / 1e9:.2f} GB "
          f"({estimate.n_synapses} synapses)")
    entries = []
    for label in runs:
        entry = run_one(mc, label, args)
        entries.append(entry)
        print_run(mc, entry, args.scale)
    def by_population(values: np.ndarray) -> dict[str, float]:
        return dict(zip(mc.POPULATIONS, values.tolist(), strict=True))

    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"microcircuit_{info['hostname']}.json")
    png = Path(args.png) if args.png else out.with_suffix(".png")
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps({
            "machine": info, "args": vars(args),
            "memory_estimate_bytes": estimate.total_bytes,
            "published_full_scale_rates_hz": by_population(mc.FULL_SCALE_RATES_HZ),
            "nest_reference_0p1_rates_hz": by_population(mc.REFERENCE_0P1_RATES_HZ),
            "runs": entries}, indent=1))
    with atomic_path(png) as tmp:
        plot(mc, entries, args.scale, args.k_scale, Path(tmp))
    print(f"\nwrote {out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
