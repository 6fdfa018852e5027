"""Three-factor (reward-modulated) STDP on the torch backend: native kernel against eager engine.

Two workloads, each run on both engines of the torch backend in the same process, one after the
other, on the same compiled network description (float32, one trial, 1 intra-op thread):

* ``reward_learning``: the network of ``examples/reward_learning.py`` (80 spike-time inputs in
  two groups onto 10 LIF neurons, all-to-all, 800 plastic synapses, dt 0.5 ms, a dopamine
  Modulator with reward/punishment events), ``--trials`` trials of 250 ms.
* ``rstdp_1000x100``: 1000 Poisson inputs at 10 Hz all-to-all onto 100 LIF neurons (100,000
  plastic synapses, RewardModulatedSTDP, dt 0.1 ms), a Modulator driven by reward events of
  both signs every 100 ms and by the output spike count, for ``--duration-ms``.

Timed: ``meta["wall_time_s"]`` of ``runner.run`` (simulation only; compile apart), the median
of ``--repeats`` runs, each on a freshly compiled network. Each workload records the weights at
its end and the modulator level, and the script checks that both engines give the same
weights, spikes and levels (they agree bit for bit on this machine). Ratios are
(eager time) / (native time): above 1 means native is faster. Results go to
``benchmarks/results/rstdp_native_<hostname>.json`` (atomically).

    python benchmarks/rstdp_native.py
    python benchmarks/rstdp_native.py --duration-ms 2000 --trials 40 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reward_learning(trials: int):
    """(network, duration in ms) of examples/reward_learning.py with the modulator."""
    example = _load("reward_learning_example", ROOT / "examples" / "reward_learning.py")
    return example.build(trials, with_modulator=True), trials * example.TRIAL_MS


def rstdp_1000x100(duration_ms: float, seed: int = 0):
    """1000 Poisson inputs all-to-all onto 100 LIF neurons, three-factor STDP."""
    from evospike import LIF, AllToAll, Network, RewardEvents, SpikeCountDrive

    rng = np.random.default_rng(seed)
    dt_ms = 0.1
    net = Network("rstdp_1000x100", dt_ms)
    inputs = net.poisson_source("in", 1000, 10.0)
    out = net.population("out", 100, LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0, v_thresh_mV=-54.0,
                                         v_reset_mV=-65.0, v_rest_mV=-65.0, tau_refrac_ms=2.0))
    proj = net.connect(inputs, out, AllToAll(), weight=rng.uniform(0.0, 0.6, 100_000),
                       delay_ms=dt_ms, name="in->out")
    times = np.arange(50.0, duration_ms, 100.0)
    net.modulator("dopamine", 50.0, [RewardEvents(times, np.where(np.arange(times.size) % 2,
                                                                  -1.0, 1.0)),
                                     SpikeCountDrive("out", 0.002)])
    net.reward_stdp(proj, "dopamine", tau_eligibility_ms=100.0, learning_rate_per_ms=0.02,
                    tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.01, a_minus=0.0105,
                    w_min=0.0, w_max=1.2)
    net.record_spikes(out)
    net.record_weights(proj, every_steps=int(round(duration_ms / dt_ms)) - 1)
    net.record_state("dopamine", "level", every_steps=50)
    return net, duration_ms


def run_once(build, engine: str) -> tuple[float, Any]:
    from evospike.backends import get_backend

    net, duration_ms = build()
    runner = get_backend("torch").compile(net, engine=engine, precision="float32",
                                          seeds=(0,), progress=False)
    assert runner.engine == engine, runner.engine_note
    res = runner.run(duration_ms)
    return res.meta["wall_time_s"], res


def bench(name: str, build, repeats: int) -> dict[str, Any]:
    net, duration_ms = build()
    synapses = sum(p.n_synapses for p in net.projections.values())
    dt_ms = net.dt_ms
    entry: dict[str, Any] = {"workload": name, "synapses": int(synapses),
                             "duration_ms": duration_ms, "dt_ms": dt_ms,
                             "steps": int(round(duration_ms / dt_ms))}
    results = {}
    for engine in ("native", "eager"):
        times = []
        for _ in range(repeats):
            wall, res = run_once(build, engine)
            times.append(wall)
        results[engine] = res
        sim = statistics.median(times)
        entry[engine] = {"run_s": times, "sim_s": sim,
                         "us_per_step": sim / entry["steps"] * 1e6}
    a, b = results["native"], results["eager"]
    weights = next(iter(a.weights))
    level = next(iter(a.traces))
    pop = next(iter(a.spikes_by_node))
    entry["identical"] = bool(
        np.array_equal(a.weights[weights].values, b.weights[weights].values)
        and np.array_equal(a.traces[level].values, b.traces[level].values)
        and np.array_equal(a.spikes_by_node[pop].step, b.spikes_by_node[pop].step))
    entry["max_weight_difference"] = float(np.abs(a.weights[weights].values -
                                                  b.weights[weights].values).max())
    entry["output_spikes"] = int(a.spikes_by_node[pop].step.size)
    w = a.weights[weights].values[0]
    entry["mean_weight_change"] = float(np.abs(w[-1] - w[0]).mean())
    entry["ratio_eager_over_native"] = entry["eager"]["sim_s"] / entry["native"]["sim_s"]
    return entry


def machine() -> dict[str, Any]:
    """CPU, cores, versions and git state: the same record as ``benchmarks/cuba.py``'s."""
    mod = _load("cuba_benchmark", ROOT / "benchmarks" / "cuba.py")
    return {**mod.machine_info(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40,
                        help="trials of 250 ms of the reward_learning example")
    parser.add_argument("--duration-ms", type=float, default=2000.0,
                        help="simulated time of the 1000 x 100 network")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    from evospike.atomic import atomic_path

    torch.set_num_threads(1)
    info = machine()
    entries = []
    for name, build in (("reward_learning", lambda: reward_learning(args.trials)),
                        ("rstdp_1000x100", lambda: rstdp_1000x100(args.duration_ms))):
        t0 = time.perf_counter()
        entry = bench(name, build, args.repeats)
        entries.append(entry)
        print(f"{name}: {entry['synapses']} plastic synapses, {entry['steps']} steps "
              f"({entry['duration_ms']:.0f} ms), {entry['output_spikes']} output spikes, "
              f"mean |dw| {entry['mean_weight_change']:.4f}")
        for engine in ("native", "eager"):
            e = entry[engine]
            print(f"  {engine:6s} sim {e['sim_s']:.3f} s ({e['us_per_step']:.1f} us/step)")
        print(f"  eager / native: {entry['ratio_eager_over_native']:.1f}x; identical results: "
              f"{entry['identical']} (max |dw| {entry['max_weight_difference']:.2e}); "
              f"bench {time.perf_counter() - t0:.0f} s")
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"rstdp_native_{info['hostname']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps({"machine": info, "args": vars(args),
                                         "entries": entries}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
