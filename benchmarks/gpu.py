"""The device engine's benchmark (issue 17): prints one table of what the issue lists.

Rows: CUBA (``examples/cuba.py``, p = 80 / N) at 4k, 64k and 1M neurons; a batch of 64 CUBA 4k
trials; STDP on CUBA 64k; CUBA 4k with an epigenetic gate and an energy budget; the
Potjans-Diesmann microcircuit at full scale (``examples/microcircuit.py``). Each row runs on the
device engine (``engine="device"``, float32) on the chosen device; a network the device engine
refuses is shown with its refusal (today: plasticity and processes), then timed on the eager
engine on the same device, and labelled so. Columns: simulated time, wall time of the run
(compilation excluded), real-time factor (wall / simulated), synaptic events per second (each
spike times the out-degree of its neuron, over every projection and trial).

With CUDA (``--device cuda``, the default when available) every row runs; the issue's budget is
8 minutes on one H200. Without CUDA this is a smoke run only: CUBA 4k on the CPU, device
engine against eager engine, 200 ms simulated; its numbers are CPU numbers and say nothing
about a GPU. No GPU figure in docs/BENCHMARKS.md comes from a smoke run.

    python benchmarks/gpu.py                 # CUDA if available, else the CPU smoke run
    python benchmarks/gpu.py --rows cuba-4k cuba-64k --duration-ms 500
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_example",
                                                  ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cuba(n: int, record: bool = True):
    net = _example("cuba").build(n, connection_probability=min(1.0, 80.0 / n))
    if not record:
        net.spike_monitors.clear()
    return net


def cuba_stdp(n: int):
    net = cuba(n)
    ee = next(p for p in net.projections.values() if p.pre == "exc" and p.post == "exc")
    net.stdp(ee, tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.01, a_minus=0.012, w_min=0.0,
             w_max=3.0)
    return net


def cuba_gate_energy(n: int):
    net = cuba(n)
    net.poisson_source("context", 20, 20.0)
    w = np.full((net.populations["exc"].size, 20), 0.05)
    net.epigenetic_gate("exc", "context", w, tau_context_ms=20.0, tau_ms=10.0, theta_act=0.2)
    net.energy_budget("inh", capacity_pj=400.0, recharge_pj_per_ms=20.0)
    return net


def microcircuit():
    return _example("microcircuit").build(scale=1.0)


#: row -> (network builder, seeds)
ROWS = {
    "cuba-4k": (lambda: cuba(4000), (0,)),
    "cuba-64k": (lambda: cuba(64000), (0,)),
    "cuba-1M": (lambda: cuba(1_000_000), (0,)),
    "cuba-4k-x64": (lambda: cuba(4000), tuple(range(64))),
    "stdp-cuba-64k": (lambda: cuba_stdp(64000), (0,)),
    "gate-energy-4k": (lambda: cuba_gate_energy(4000), (0,)),
    "microcircuit": (microcircuit, (0,)),
}


def synaptic_events(net, res) -> int:
    """Spikes x out-degree, summed over every projection and trial."""
    total = 0
    for proj in net.projections.values():
        if proj.pre not in res.spikes_by_node:
            continue
        out_degree = np.diff(proj.indptr)
        neurons = res.spikes_by_node[proj.pre].neuron
        total += int(out_degree[neurons].sum())
    return total


def run_row(name: str, device: str, engine: str, duration_ms: float) -> dict:
    from evospike.backends.torch import compile as torch_compile
    from evospike.errors import UnsupportedError

    build, seeds = ROWS[name]
    net = build()
    for pop in net.populations:  # the event count needs every spike
        if not any(m.target == pop for m in net.spike_monitors):
            net.record_spikes(pop)
    refusal = ""
    try:
        runner = torch_compile(net, engine=engine, device=device, precision="float32",
                               seeds=seeds, progress=False)
    except UnsupportedError as exc:
        if engine != "device":
            raise
        refusal = "; ".join(exc.reasons)
        engine = "eager"
        runner = torch_compile(net, engine=engine, device=device, precision="float32",
                               seeds=seeds, progress=False)
    res = runner.run(duration_ms)
    wall = float(res.meta["wall_time_s"])
    events = synaptic_events(net, res)
    sim_s = duration_ms * 1e-3
    return {"row": name, "engine": engine, "trials": len(seeds), "sim_s": sim_s, "wall_s": wall,
            "rtf": wall / sim_s, "events_per_s": events / wall if wall else float("nan"),
            "note": refusal}


def table(rows: list[dict]) -> str:
    head = f"{'network':<16}{'engine':<8}{'trials':>7}{'sim s':>8}{'wall s':>9}{'RTF':>9}" \
           f"{'syn. events/s':>15}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['row']:<16}{r['engine']:<8}{r['trials']:>7}{r['sim_s']:>8.2f}"
                     f"{r['wall_s']:>9.3f}{r['rtf']:>9.3f}{r['events_per_s']:>15.3e}")
        if r["note"]:
            lines.append(f"  (device engine refused: {r['note'][:200]})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=None)
    ap.add_argument("--duration-ms", type=float, default=None)
    args = ap.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if gpu:
        machine = torch.cuda.get_device_name(torch.device(args.device))
        rows, duration = args.rows or list(ROWS), args.duration_ms or 1000.0
        plan = [(row, "device") for row in rows]
    else:
        machine = platform.processor() or platform.machine()
        rows, duration = args.rows or ["cuba-4k"], args.duration_ms or 200.0
        plan = [(row, engine) for row in rows for engine in ("device", "eager")]
        print("no CUDA device: a smoke run on the CPU (device engine vs eager engine); these "
              "are CPU figures, not GPU ones")
    print(f"device: {args.device} ({machine}), torch {torch.__version__}, float32, "
          f"{duration:g} ms simulated per row")
    out = []
    for row, engine in plan:
        t0 = time.perf_counter()
        out.append(run_row(row, args.device, engine, duration))
        print(f"  {row} ({engine}) done in {time.perf_counter() - t0:.1f} s", flush=True)
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
