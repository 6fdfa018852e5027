"""STDP on the CUBA network: EvoSpike's torch backend against Brian2, same network, same run.

The network is ``examples/cuba.py`` (Vogels-Abbott CUBA, 80 % excitatory, p = 80 / N, delay
0.1 ms) with its excitatory-to-excitatory projection made plastic: pair-based additive STDP,
all-to-all pairing, tau+ = tau- = 20 ms, A+ = 0.01 w_max, A- = 1.05 A+, hard bounds [0, w_max]
with w_max = 2 x 1.62 mV (the CUBA weight starts in the middle). Brian2 runs the textbook form
of the same rule (event-driven traces, ``on_pre``/``on_post``, ``clip``), written directly in
Brian2 as its users write it, with every other synapse static as in ``benchmarks/cuba.py``.

Timed (simulation only; compile and code generation apart):

* EvoSpike torch, native engine (C kernel, float32) and eager engine (torch ops): a first 1 s
  run, then ``--repeats`` continued 1 s runs; the median of ``meta["wall_time_s"]`` increments.
* Brian2 runtime, cython target: a first 1 s ``run`` (code generation and compilation), then
  ``--repeats`` continued runs; the median of Brian2's own loop time
  (``device._last_run_time``).

Ratios are (Brian2 time) / (EvoSpike time): above 1 means EvoSpike is faster. The firing rate
and the mean exc->exc weight after the first second are printed for both, as a sanity check
(the two simulators draw different connectivity and initial states, so these agree only in
distribution). Results go to ``benchmarks/results/stdp_cuba_<hostname>.json`` (atomically).

    python benchmarks/stdp_cuba.py                  # N = 4000
    python benchmarks/stdp_cuba.py --sizes 4000 16000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DT_MS = 0.1
DURATION_MS = 1000.0
W_EXC_MV = 1.62
W_MAX_MV = 2 * W_EXC_MV
A_PLUS_MV = 0.01 * W_MAX_MV
A_MINUS_MV = 1.05 * A_PLUS_MV


def _cuba_example():
    spec = importlib.util.spec_from_file_location("cuba_example", ROOT / "examples" / "cuba.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_evospike(n: int):
    net = _cuba_example().build(n, dt_ms=DT_MS, connection_probability=80.0 / n)
    net.stdp("exc->exc", tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=A_PLUS_MV,
             a_minus=A_MINUS_MV, pairing="all", weight_dependence="additive", w_min=0.0,
             w_max=W_MAX_MV)
    return net


def bench_evospike(n: int, engine: str, repeats: int) -> dict[str, Any]:
    import numpy as np

    from evospike.backends import get_backend

    t0 = time.perf_counter()
    runner = get_backend("torch").compile(build_evospike(n), engine=engine, progress=False)
    compile_s = time.perf_counter() - t0
    runs, previous, first = [], 0.0, None
    for k in range(1 + repeats):
        res = runner.run(DURATION_MS)
        runs.append(res.meta["wall_time_s"] - previous)
        previous = res.meta["wall_time_s"]
        if k == 0:
            first = res
            proj = runner.cn.projections["exc->exc"]
            w_mean = float(proj.weights.to(dtype=proj.weights.dtype).mean())
    n_spikes = sum(d.step.size for d in first.spikes_by_node.values())
    sim = statistics.median(runs)
    return {"engine": runner.engine, "compile_s": compile_s, "run_s": runs, "sim_s": sim,
            "us_per_step": sim / round(DURATION_MS / DT_MS) * 1e6,
            "rate_hz": n_spikes / (n * DURATION_MS * 1e-3), "w_exc_exc_mean_mV": w_mean,
            "synapses": int(np.sum([p.indices.numel() for p in runner.cn.projections.values()]))}


def bench_brian2(n: int, repeats: int) -> dict[str, Any]:
    import brian2 as b2
    import numpy as np
    from brian2 import ms, mV

    b2.prefs.codegen.target = "cython"
    b2.prefs.codegen.runtime.cython.cache_dir = tempfile.mkdtemp(prefix="evospike_b2_cache_")
    b2.start_scope()
    b2.defaultclock.dt = DT_MS * ms
    b2.seed(1)
    ns = {"taum": 20 * ms, "taue": 5 * ms, "taui": 10 * ms, "Vt": -50 * mV, "Vr": -60 * mV,
          "El": -49 * mV, "we": W_EXC_MV * mV, "wi": -9.0 * mV, "taupre": 20 * ms,
          "taupost": 20 * ms, "Apre": A_PLUS_MV * mV, "Apost": A_MINUS_MV * mV,
          "wmax": W_MAX_MV * mV}
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    n_exc = int(n * 0.8)
    p = 80.0 / n
    t0 = time.perf_counter()
    group = b2.NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,
                           method="exact", namespace=ns)
    group.v = "Vr + rand() * (Vt - Vr)"
    exc, inh = group[:n_exc], group[n_exc:]
    plastic = b2.Synapses(exc, exc, """w : volt
                          dapre/dt = -apre / taupre : volt (event-driven)
                          dapost/dt = -apost / taupost : volt (event-driven)""",
                          on_pre="""ge_post += w
                          w = clip(w - apost, 0 * mV, wmax)
                          apre += Apre""",
                          on_post="""apost += Apost
                          w = clip(w + apre, 0 * mV, wmax)""",
                          delay=DT_MS * ms, namespace=ns)
    plastic.connect(p=p)
    plastic.w = "we"
    exc_inh = b2.Synapses(exc, inh, on_pre="ge += we", delay=DT_MS * ms, namespace=ns)
    exc_inh.connect(p=p)
    inh_all = b2.Synapses(inh, group, on_pre="gi += wi", delay=DT_MS * ms, namespace=ns)
    inh_all.connect(p=p)
    monitor = b2.SpikeMonitor(group)
    net = b2.Network(group, plastic, exc_inh, inh_all, monitor)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    net.run(DURATION_MS * ms)
    first_wall = time.perf_counter() - t0
    rate = monitor.num_spikes / (n * DURATION_MS * 1e-3)
    w_mean = float(np.mean(plastic.w_) * 1e3)
    loops, walls = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.run(DURATION_MS * ms)
        walls.append(time.perf_counter() - t0)
        loops.append(float(b2.device._last_run_time))
    sim = statistics.median(loops)
    return {"target": "cython", "build_s": build_s, "first_run_wall_s": first_wall,
            "compile_s": first_wall - statistics.median(walls), "loop_s": loops,
            "run_wall_s": walls, "sim_s": sim,
            "us_per_step": sim / round(DURATION_MS / DT_MS) * 1e6, "rate_hz": rate,
            "w_exc_exc_mean_mV": w_mean,
            "synapses": len(plastic) + len(exc_inh) + len(inh_all)}


def machine() -> dict[str, Any]:
    """CPU, cores, versions and git state: the same record as ``benchmarks/cuba.py``'s."""
    spec = importlib.util.spec_from_file_location("cuba_benchmark",
                                                  ROOT / "benchmarks" / "cuba.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {**mod.machine_info(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eager-max-n", type=int, default=4000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    from evospike.atomic import atomic_path

    torch.set_num_threads(1)
    info = machine()
    entries = {}
    for n in args.sizes:
        entry = {"n": n, "native": bench_evospike(n, "native", args.repeats)}
        if n <= args.eager_max_n:
            entry["eager"] = bench_evospike(n, "eager", 1)
        entry["brian2"] = bench_brian2(n, args.repeats)
        b2 = entry["brian2"]["sim_s"]
        entry["ratio_brian2_over_native"] = b2 / entry["native"]["sim_s"]
        if "eager" in entry:
            entry["ratio_brian2_over_eager"] = b2 / entry["eager"]["sim_s"]
        entries[str(n)] = entry
        print(f"N={n}: {entry['native']['synapses']} synapses")
        for key in ("native", "eager", "brian2"):
            if key in entry:
                e = entry[key]
                print(f"  {key:7s} sim {e['sim_s']:.3f} s ({e['us_per_step']:.1f} us/step), "
                      f"rate {e['rate_hz']:.2f} Hz, mean exc->exc w after 1 s "
                      f"{e['w_exc_exc_mean_mV']:.3f} mV")
        print(f"  Brian2 cython / EvoSpike native: {entry['ratio_brian2_over_native']:.2f}x")
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"stdp_cuba_{info['hostname']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps({"machine": info, "entries": entries}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
