"""CUBA benchmark: EvoSpike's native engine against NEST 3.10 (1 and 2 threads), same network.

The network is ``examples/cuba.py`` (see benchmarks/cuba.py for its parameters), N neurons with
connection probability 80 / N, dt 0.1 ms, 0.1 ms delays, 1 s of biological time.

* EvoSpike native engine (float32, as benchmarks/cuba.py measures it): the median of a first
  1 s run and ``--repeats`` continued 1 s runs (``meta["wall_time_s"]`` per call), after a
  warm-up on a tiny network.
* NEST through ``--backend nest`` (iaf_psc_exp, one connection per synapse), with
  ``local_num_threads`` 1 and 2: build (``compile``: ResetKernel, nodes, ``Connect``) timed
  apart from the simulation; the simulation time is the median of the same runs (each NEST
  run call also simulates one min-delay step of flush, 1 step here). NEST computes in float64.

Ratios are (NEST simulation time) / (EvoSpike native simulation time): above 1 means EvoSpike
is faster. Results go to ``benchmarks/results/nest_cuba_<hostname>.json``.

    nice python benchmarks/nest_cuba.py                 # N = 4000
    nice python benchmarks/nest_cuba.py --sizes 4000 16000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DURATION_MS = 1000.0
DT_MS = 0.1


def _cuba_bench():
    """benchmarks/cuba.py as a module (its network, warm-up and machine description)."""
    spec = importlib.util.spec_from_file_location("cuba_bench", ROOT / "benchmarks" / "cuba.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_nest(example: Any, n: int, p: float, threads: int, repeats: int) -> dict[str, Any]:
    from evospike.backends import get_backend

    net = example.build(n, dt_ms=DT_MS, connection_probability=p)
    t0 = time.perf_counter()
    runner = get_backend("nest").compile(net, progress=False, threads=threads)
    build = time.perf_counter() - t0
    runs, previous, first = [], 0.0, None
    for _ in range(1 + repeats):
        res = runner.run(DURATION_MS)
        runs.append(res.meta["wall_time_s"] - previous)
        previous = res.meta["wall_time_s"]
        first = first or res
    sim = statistics.median(runs)
    return {"threads": threads, "build_s": build, "run_s": runs, "sim_s": sim,
            "us_per_step": sim / round(DURATION_MS / DT_MS) * 1e6,
            "rate_exc_hz": first.mean_rate_hz("exc"), "rate_inh_hz": first.mean_rate_hz("inh"),
            "nest": first.meta["versions"]["nest"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000])
    parser.add_argument("--repeats", type=int, default=2, help="continued 1 s runs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cuba = _cuba_bench()
    example = cuba.load_example()
    machine = cuba.machine_info()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores")
    warm = cuba.warm_up_evospike(example)
    print(f"EvoSpike warm-up (tiny network): {warm:.2f} s, not counted")
    entries = {}
    for n in args.sizes:
        p = cuba.connection_probability(n)
        native = cuba.bench_evospike(example, n, "native", (0,), args.repeats)
        nest = {t: bench_nest(example, n, p, t, args.repeats) for t in (1, 2)}
        base = native["sim_s"]
        print(f"N={n}: native {base:.3f} s/1 s ({native['us_per_step']:.1f} us/step, "
              f"rate {native['rate_exc_hz']:.2f} Hz)")
        for t, r in nest.items():
            print(f"  NEST {t} thread(s): build {r['build_s']:.2f} s, sim {r['sim_s']:.3f} s "
                  f"({r['us_per_step']:.1f} us/step, rate {r['rate_exc_hz']:.2f} Hz), "
                  f"{r['sim_s'] / base:.1f}x native")
        entries[str(n)] = {"evospike_native": native,
                           **{f"nest_{t}_threads": r for t, r in nest.items()},
                           "ratio_nest_over_native": {t: r["sim_s"] / base
                                                      for t, r in nest.items()}}
    out = args.out or ROOT / "benchmarks" / "results" / f"nest_cuba_{machine['hostname']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": machine, "entries": entries}, indent=1, default=str))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
