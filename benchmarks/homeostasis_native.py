"""Homeostasis and metaplasticity on the native kernel: native vs eager engine.

Two workloads, each run on both engines of the torch backend in the same process, one after the
other, on the same network description (float32, one trial, 1 intra-op thread):

* ``threshold_1000x100``: 1000 Poisson inputs at 10 Hz all-to-all onto 100 LIF neurons (100,000
  plastic synapses, pair-based STDP, dt 0.1 ms) with threshold homeostasis on the layer (target
  10 Hz).
* ``scaling_meta_1000x100``: the same network with synaptic scaling of the plastic projection
  (every 100 steps) instead, a reward Modulator (events of both signs every 100 ms and the output
  spike count), the STDP gated by it, and metaplasticity of ``tau_plus_ms`` and ``a_minus``
  driven by the reward (a time constant: the kernel calls back into torch for the new trace decay
  in each step where it changed).

Timed: ``meta["wall_time_s"]`` of ``runner.run`` (simulation only; compile apart), the median of
``--repeats`` runs, each on a freshly compiled network. The homeostasis / metaplasticity states
and the modulator level are recorded every 100 steps, the weights at the end; the script checks
that both engines give identical spikes, weights and states. Ratios are (eager time) / (native
time): above 1 means native is faster. Results go to
``benchmarks/results/homeostasis_native_<hostname>.json`` (atomically).

    python benchmarks/homeostasis_native.py
    python benchmarks/homeostasis_native.py --duration-ms 3000 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DT_MS = 0.1
SAMPLE_STEPS = 100


def network(variant: str, duration_ms: float, seed: int = 0):
    """1000 Poisson inputs all-to-all onto 100 LIF neurons with STDP; ``variant``
    "threshold" (threshold homeostasis) or "scaling_meta" (synaptic scaling, a reward
    modulator gating the STDP, metaplasticity of tau_plus_ms and a_minus)."""
    from evospike import LIF, AllToAll, Network, RewardEvents, SpikeCountDrive

    rng = np.random.default_rng(seed)
    net = Network(f"{variant}_1000x100", DT_MS)
    inputs = net.poisson_source("in", 1000, 10.0)
    out = net.population("out", 100, LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0, v_thresh_mV=-54.0,
                                         v_reset_mV=-65.0, v_rest_mV=-65.0, tau_refrac_ms=2.0))
    proj = net.connect(inputs, out, AllToAll(), weight=rng.uniform(0.0, 0.6, 100_000),
                       delay_ms=DT_MS, name="in->out")
    stdp = dict(tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.01, a_minus=0.0105, w_min=0.0,
                w_max=1.2)
    if variant == "threshold":
        net.stdp(proj, **stdp)
        net.homeostasis(out, target_rate_hz=10.0, tau_rate_ms=500.0, threshold_rate=0.5)
        net.record_state("out.homeostasis", "theta", every_steps=SAMPLE_STEPS)
    else:
        times = np.arange(50.0, duration_ms, 100.0)
        net.modulator("reward", 50.0, [RewardEvents(times, np.where(np.arange(times.size) % 2,
                                                                    -1.0, 1.0)),
                                       SpikeCountDrive("out", 0.002)])
        rule = net.stdp(proj, modulator="reward", modulation="gate", gate_threshold=-0.5,
                        **stdp)
        net.homeostasis(out, target_rate_hz=10.0, tau_rate_ms=500.0, mechanism="scaling",
                        projections=("in->out",), scaling_rate=0.05, every_steps=100)
        net.metaplasticity(rule, "reward", "tau_plus_ms", eta=50.0, tau_baseline_ms=200.0,
                           p_min=5.0, p_max=40.0)
        net.metaplasticity(rule, "reward", "a_minus", eta=0.01, tau_baseline_ms=200.0,
                           p_min=0.0, p_max=0.05)
        net.record_state("reward", "level", every_steps=SAMPLE_STEPS)
        for param in ("tau_plus_ms", "a_minus"):
            net.record_state(f"in->out.stdp.{param}.meta", "value", every_steps=SAMPLE_STEPS)
    net.record_state("out.homeostasis", "rate_hz", every_steps=SAMPLE_STEPS)
    net.record_spikes(out)
    net.record_weights(proj, every_steps=int(round(duration_ms / DT_MS)) - 1)
    return net


def run_once(variant: str, duration_ms: float, engine: str) -> tuple[float, Any]:
    """(simulation time, results) of one freshly compiled run."""
    from evospike.backends import get_backend

    runner = get_backend("torch").compile(network(variant, duration_ms), engine=engine,
                                          precision="float32", seeds=(0,), progress=False)
    assert runner.engine == engine, runner.engine_note
    res = runner.run(duration_ms)
    return res.meta["wall_time_s"], res


def identical(a, b) -> bool:
    """Same spikes, every weight sample and every state sample, bit for bit."""
    same = all(np.array_equal(a.spikes_by_node[n].step, b.spikes_by_node[n].step) and
               np.array_equal(a.spikes_by_node[n].neuron, b.spikes_by_node[n].neuron)
               for n in a.spikes_by_node)
    same &= all(np.array_equal(a.weights[n].values, b.weights[n].values) for n in a.weights)
    return same and all(np.array_equal(a.traces[n].values, b.traces[n].values)
                        for n in a.traces)


def bench(variant: str, duration_ms: float, repeats: int) -> dict[str, Any]:
    steps = int(round(duration_ms / DT_MS))
    entry: dict[str, Any] = {"workload": f"{variant}_1000x100", "synapses": 100_000,
                             "duration_ms": duration_ms, "dt_ms": DT_MS, "steps": steps}
    results = {}
    for engine in ("native", "eager"):
        times = []
        for _ in range(repeats):
            wall, results[engine] = run_once(variant, duration_ms, engine)
            times.append(wall)
        sim = statistics.median(times)
        entry[engine] = {"run_s": times, "sim_s": sim, "us_per_step": sim / steps * 1e6}
    a, b = results["native"], results["eager"]
    entry["identical"] = identical(a, b)
    entry["output_rate_hz"] = a.spikes_by_node["out"].step.size / (100 * duration_ms * 1e-3)
    w = a.weights["in->out.weights"].values
    entry["mean_abs_weight_change"] = float(np.abs(w[:, -1] - w[:, 0]).mean())
    if "in->out.stdp.tau_plus_ms.meta.value" in a.traces:
        tau = a.traces["in->out.stdp.tau_plus_ms.meta.value"].values
        entry["tau_plus_ms_range"] = [float(tau.min()), float(tau.max())]
    entry["ratio_eager_over_native"] = entry["eager"]["sim_s"] / entry["native"]["sim_s"]
    return entry


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
    parser.add_argument("--duration-ms", type=float, default=2000.0,
                        help="simulated time of each workload")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    from evospike.atomic import atomic_path

    torch.set_num_threads(1)
    info = machine()
    entries = []
    for variant in ("threshold", "scaling_meta"):
        t0 = time.perf_counter()
        entry = bench(variant, args.duration_ms, args.repeats)
        entries.append(entry)
        print(f"{entry['workload']}: {entry['synapses']} plastic synapses, {entry['steps']} "
              f"steps ({entry['duration_ms']:.0f} ms); output {entry['output_rate_hz']:.1f} Hz, "
              f"mean |dw| {entry['mean_abs_weight_change']:.4f}")
        for engine in ("native", "eager"):
            e = entry[engine]
            print(f"  {engine:6s} sim {e['sim_s']:.3f} s ({e['us_per_step']:.1f} us/step)")
        print(f"  eager / native: {entry['ratio_eager_over_native']:.1f}x; identical results: "
              f"{entry['identical']}; bench {time.perf_counter() - t0:.0f} s")
        if not entry["identical"]:
            print("  WARNING: the engines disagree")
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"homeostasis_native_{info['hostname']}.json")
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps({"machine": info, "args": vars(args),
                                         "entries": entries}, indent=1))
    print(f"wrote {out}")
    return 0 if all(e["identical"] for e in entries) else 1


if __name__ == "__main__":
    raise SystemExit(main())
