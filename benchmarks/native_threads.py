"""The native kernel on 1 thread and on more (issue 16): CUBA (examples/cuba.py, p = 80 / N) with
one trial split across the threads, and a batch of trials run in parallel.

For each size in ``--sizes`` (default 4000 16000) and each thread count in ``--threads``
(default 1 and every core): compile once, run 0.2 s to warm up, then ``--repeats`` runs of 1 s
of biological time that continue the simulation; the simulation time is the median of the
runner's ``wall_time_s`` over them. Then a batch of ``--batch`` (default 64) trials of CUBA
4000 for 1 s with each thread count: the time per trial is the batch's time / batch.
Spikes are checked identical across the thread counts (the kernel is deterministic for any
thread count; tests/test_native_threads.py checks it against the eager engine).

Ratios are (time on 1 thread) / (time on n threads): above 1 means the threads pay. Results go
to ``benchmarks/results/native_threads_<hostname>.json`` (written atomically).

    nice python benchmarks/native_threads.py
    nice python benchmarks/native_threads.py --sizes 4000 16000 64000 --threads 1 2
    nice python benchmarks/native_threads.py --min-per-thread 1   # split even CUBA 4000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DT_MS = 0.1


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("cuba_example", ROOT / "examples" / "cuba.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(),
            "load_avg_start": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def run(example: Any, n: int, threads: int, seeds: tuple[int, ...], repeats: int) -> dict:
    from evospike.backends import get_backend

    net = example.build(n, dt_ms=DT_MS, connection_probability=80.0 / n)
    runner = get_backend("torch").compile(net, engine="native", seeds=seeds, threads=threads,
                                          progress=False)
    res = runner.run(200.0)
    previous, times = res.meta["wall_time_s"], []
    for _ in range(repeats):
        res = runner.run(1000.0)
        times.append(res.meta["wall_time_s"] - previous)
        previous = res.meta["wall_time_s"]
    spikes = {node: (d.step.copy(), d.neuron.copy(), d.trial.copy())
              for node, d in res.spikes_by_node.items()}
    n_spikes = sum(d.step.size for d in res.spikes_by_node.values())
    sim = statistics.median(times)
    return {"n": n, "threads": runner._native.threads, "threading": runner._native.threading,
            "trials": len(seeds), "runs_s": times, "sim_s": sim,
            "sim_per_trial_s": sim / len(seeds),
            "us_per_step": sim / round(1000.0 / DT_MS) * 1e6,
            "rate_hz": n_spikes / (n * len(seeds) * (0.2 + repeats)), "_spikes": spikes}


def same_spikes(a: dict, b: dict) -> bool:
    return all(all(np.array_equal(x, y) for x, y in zip(a["_spikes"][k], b["_spikes"][k],
                                                          strict=True)) for k in a["_spikes"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-per-thread", type=int, default=None,
                    help="split a network across threads from this many neurons per thread "
                         "(default: the engine's MIN_NEURONS_PER_THREAD)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.min_per_thread is not None:
        from evospike.backends.torch.native import engine

        engine.MIN_NEURONS_PER_THREAD = args.min_per_thread
    example = load_example()
    info = machine()
    rows: list[dict] = []
    for n in args.sizes:
        got = [run(example, n, t, (0,), args.repeats) for t in args.threads]
        for g in got:
            g["identical_to_first"] = same_spikes(got[0], g)
        rows += got
    if args.batch:
        got = [run(example, 4000, t, tuple(range(args.batch)), 1) for t in args.threads]
        for g in got:
            g["identical_to_first"] = same_spikes(got[0], g)
        rows += got
    info["load_avg_end"] = os.getloadavg()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_avg_start']} -> "
          f"{info['load_avg_end']}")
    print("| network | trials | threads (how) | sim s | per trial s | us/step | 1-thread / this "
          "| rate Hz | same spikes |")
    print("|---|---|---|---|---|---|---|---|---|")
    base: dict[tuple, float] = {}
    for r in rows:
        key = (r["n"], r["trials"])
        base.setdefault(key, r["sim_per_trial_s"])
        r["speedup_vs_first"] = base[key] / r["sim_per_trial_s"]
        print(f"| CUBA {r['n']} | {r['trials']} | {r['threads']} ({r['threading']}) | "
              f"{r['sim_s']:.3f} | {r['sim_per_trial_s']:.4f} | {r['us_per_step']:.1f} | "
              f"{r['speedup_vs_first']:.2f}x | {r['rate_hz']:.1f} | {r['identical_to_first']} |")
    out = args.out or ROOT / "benchmarks" / "results" / f"native_threads_{info['host']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": info, "rows": [{k: v for k, v in r.items()
                                                          if k != "_spikes"} for r in rows]},
                              indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
