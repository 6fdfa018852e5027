"""Three-factor (reward-modulated) STDP: EvoSpike's native kernel and eager engine, and Brian2.

Two workloads, each run on both engines of the torch backend in the same process, one after the
other, on the same compiled network description (float32, one trial, 1 intra-op thread), then
on a hand-written Brian2 model of the same network:

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
(eager time) / (native time): above 1 means native is faster.

The Brian2 peer (``brian2_network``) is plain Brian2, written as its users write it: the LIF
with ``method="exact"`` and ``refractory``, the textbook event-driven pre/post traces whose
``on_pre``/``on_post`` pair terms go into an eligibility variable, a ``run_regularly`` at the end
of each step for ``w = clip(w + lr dt level elig, w_min, w_max)`` and the eligibility decay,
and a one-neuron dopamine group (a ``TimedArray`` of rewards, a ``Synapses`` counting the output
spikes) read by the synapses through a linked variable. It gets the workload as plain numbers
and arrays (``peer_spec``): same weights, parameters, reward events; Poisson inputs become a
``PoissonGroup`` (its own draws), spike-time inputs a ``SpikeGeneratorGroup``. Timed as in
``benchmarks/stdp_cuba.py``: cython target; build, then a first run (code generation and
compilation, or Brian2's cache), then ``--repeats`` runs from the stored initial state; the
median of Brian2's own loop time (``device._last_run_time``). Ratios (Brian2 time) / (EvoSpike
time): above 1 means EvoSpike is faster.

Validation (``validate``): EvoSpike (native engine, float64) and the Brian2 model run the same
network with the same input spikes (``rstdp_1000x100``: the Poisson trains drawn once and fed to
both as spike times); the output spikes, final weights and modulator levels are compared and
stored under ``brian2_agreement``. Results go to
``benchmarks/results/rstdp_native_<hostname>.json`` (atomically).

    python benchmarks/rstdp_native.py
    python benchmarks/rstdp_native.py --duration-ms 2000 --trials 40 --repeats 3
    python benchmarks/rstdp_native.py --brian2-cache-dir "$(mktemp -d)"   # a cold compile
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


def rstdp_1000x100(duration_ms: float, seed: int = 0, input_spikes=None):
    """1000 Poisson inputs all-to-all onto 100 LIF neurons, three-factor STDP. With
    ``input_spikes`` (neurons, times_ms) the inputs fire at those times instead (validation)."""
    from evospike import LIF, AllToAll, Network, RewardEvents, SpikeCountDrive

    rng = np.random.default_rng(seed)
    dt_ms = 0.1
    net = Network("rstdp_1000x100", dt_ms)
    if input_spikes is None:
        inputs = net.poisson_source("in", 1000, 10.0)
    else:
        inputs = net.spike_source("in", 1000, *input_spikes)
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


def run_once(build, engine: str) -> tuple[float, Any, np.ndarray]:
    """(simulation time, results, final weights as float64) of one freshly compiled run."""
    import torch

    from evospike.backends import get_backend

    net, duration_ms = build()
    runner = get_backend("torch").compile(net, engine=engine, precision="float32",
                                          seeds=(0,), progress=False)
    assert runner.engine == engine, runner.engine_note
    res = runner.run(duration_ms)
    (proj,) = net.projections
    final = runner.cn.projections[proj].weights.to(torch.float64).cpu().numpy().ravel()
    return res.meta["wall_time_s"], res, final


def bench(name: str, build, repeats: int) -> dict[str, Any]:
    net, duration_ms = build()
    synapses = sum(p.n_synapses for p in net.projections.values())
    dt_ms = net.dt_ms
    entry: dict[str, Any] = {"workload": name, "synapses": int(synapses),
                             "duration_ms": duration_ms, "dt_ms": dt_ms,
                             "steps": int(round(duration_ms / dt_ms))}
    results, final = {}, {}
    for engine in ("native", "eager"):
        times = []
        for _ in range(repeats):
            wall, res, final[engine] = run_once(build, engine)
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
    # mean |final - initial weight| of the native run (its final state, not a monitor sample)
    w0 = np.asarray(next(iter(net.projections.values())).weights, dtype=np.float64)
    entry["mean_weight_change"] = float(np.abs(final["native"] - w0).mean())
    entry["ratio_eager_over_native"] = entry["eager"]["sim_s"] / entry["native"]["sim_s"]
    return entry


# ---------------------------------------------------------------------------- Brian2 peer
def peer_spec(net) -> dict[str, Any]:
    """The workload as plain numbers and arrays (no EvoSpike object) for the Brian2 model, read
    once from the network description so that both simulators get the same network."""
    from evospike.ir.modulators import RewardEvents, SpikeCountDrive
    from evospike.ir.nodes import PoissonSource

    (proj,) = net.projections.values()
    (rule,) = net.plasticity.values()
    mod = net.processes[rule.modulator]
    lif = net.populations[proj.post].model
    src = net.sources[proj.pre]
    (level_monitor,) = net.state_monitors.values()
    # what the hand-written model below covers; anything else is refused, not approximated
    if not (np.all(proj.delays == proj.delays[0]) and lif.reset == "value"
            and proj.target == "exc" and rule.pairing == "all" and mod.initial == 0.0
            and not net.currents and not net.populations[proj.post].initial):
        raise NotImplementedError(
            f"the Brian2 peer of {net.name!r} models one uniform delay, reset to a value, the "
            "exc channel, all-to-all pairing, a modulator starting at 0, no injected current "
            "and the LIF's default initial state")
    spec: dict[str, Any] = {
        "dt_ms": net.dt_ms, "n_in": src.size, "n_out": proj.n_post,
        "pre": proj.pre_indices(), "post": proj.indices.astype(np.int64),
        "w0": np.asarray(proj.weights, dtype=np.float64), "delay_steps": int(proj.delays[0]),
        **{k: float(np.ravel(getattr(lif, k))[0]) for k in (
            "tau_m_ms", "v_rest_mV", "v_reset_mV", "v_thresh_mV", "tau_syn_exc_ms",
            "tau_refrac_ms")},
        **{k: float(getattr(rule, k)) for k in (
            "tau_plus_ms", "tau_minus_ms", "a_plus", "a_minus", "w_min", "w_max",
            "tau_eligibility_ms", "learning_rate_per_ms")},
        "tau_modulator_ms": float(mod.tau_ms), "reward_times_ms": np.zeros(0),
        "reward_amounts": np.zeros(0), "count_gain": None, "poisson_rate_hz": None,
        "input_neurons": None, "input_times_ms": None,
        "level_every_steps": int(level_monitor.every_steps)}
    for drive in mod.drives:
        if isinstance(drive, RewardEvents):
            times = np.atleast_1d(np.asarray(drive.times_ms, dtype=float))
            spec["reward_times_ms"] = times
            spec["reward_amounts"] = np.broadcast_to(np.asarray(drive.amounts, float),
                                                     times.shape).copy()
        elif isinstance(drive, SpikeCountDrive) and drive.population == proj.post:
            spec["count_gain"] = float(drive.gain)
        else:
            raise TypeError(f"the Brian2 peer has no model of drive {drive!r}")
    if isinstance(src, PoissonSource):
        spec["poisson_rate_hz"] = float(np.ravel(src.rate_hz)[0])
    else:
        spec["input_neurons"], spec["input_times_ms"] = src.neurons, src.times_ms
    return spec


def brian2_network(spec: dict[str, Any], duration_ms: float) -> dict[str, Any]:
    """The workload written by hand in Brian2 (cython target): the LIF with Brian2's exact
    integrator and refractoriness, the textbook event-driven STDP traces writing into an
    eligibility ``elig`` instead of the weight, and a one-neuron ``dopamine`` group.

    Step order as in EvoSpike's IR: the pair terms of step n (``on_pre``/``on_post``, synapses
    slot) go into ``elig``; at the end of the step the weight moves by ``lr dt level elig``
    with the level of step n - 1 (order 0), then the eligibility decays by one step (so that
    step n + 1's pair terms add to the decayed value, as the IR's decay at the start of the
    step does), then the level moves: decay, the reward of the step, gain x the output spikes
    of the step (order 1). Returns the Brian2 objects by role."""
    import brian2 as b2
    from brian2 import Hz, ms, mV

    dt_ms = spec["dt_ms"]
    dt = dt_ms * ms
    steps = int(round(duration_ms / dt_ms))
    b2.start_scope()
    b2.defaultclock.dt = dt
    # reward of each step (events in one step add up), zero after the run
    reward = np.zeros(steps + 1)
    at = np.floor(spec["reward_times_ms"] / dt_ms + 1e-9).astype(np.int64)
    keep = at < steps
    np.add.at(reward, at[keep], spec["reward_amounts"][keep])
    ns = {"tau_m": spec["tau_m_ms"] * ms, "v_rest": spec["v_rest_mV"] * mV,
          "v_reset": spec["v_reset_mV"] * mV, "v_thresh": spec["v_thresh_mV"] * mV,
          "tau_syn": spec["tau_syn_exc_ms"] * ms, "tau_pre": spec["tau_plus_ms"] * ms,
          "tau_post": spec["tau_minus_ms"] * ms, "a_plus": spec["a_plus"],
          "a_minus": spec["a_minus"], "w_min": spec["w_min"], "w_max": spec["w_max"],
          "lr_dt": spec["learning_rate_per_ms"] * dt_ms,
          "decay_elig": float(np.exp(-dt_ms / spec["tau_eligibility_ms"])),
          "decay_level": float(np.exp(-dt_ms / spec["tau_modulator_ms"])),
          "gain": spec["count_gain"] or 0.0,
          "reward_of_step": b2.TimedArray(reward, dt=dt)}
    out = b2.NeuronGroup(spec["n_out"], """
        dv/dt = (v_rest - v + i_exc) / tau_m : volt (unless refractory)
        di_exc/dt = -i_exc / tau_syn : volt
        """, threshold="v > v_thresh", reset="v = v_reset",
        refractory=spec["tau_refrac_ms"] * ms, method="exact", namespace=ns, name="out")
    out.v = spec["v_rest_mV"] * mV
    if spec["poisson_rate_hz"] is not None:
        inputs = b2.PoissonGroup(spec["n_in"], spec["poisson_rate_hz"] * Hz, name="inputs")
    else:
        in_steps = np.floor(spec["input_times_ms"] / dt_ms + 1e-9).astype(np.int64)
        inputs = b2.SpikeGeneratorGroup(spec["n_in"], spec["input_neurons"], in_steps * dt,
                                        name="inputs")
    dopamine = b2.NeuronGroup(1, "level : 1\ncount : 1", namespace=ns, name="dopamine")
    move_level = dopamine.run_regularly(
        "level = level * decay_level + reward_of_step(t) + gain * count\ncount = 0",
        when="end", order=1)
    plastic = b2.Synapses(inputs, out, """
        w : 1
        elig : 1
        dopamine_index : integer (constant)
        level : 1 (linked)
        dx/dt = -x / tau_pre : 1 (event-driven)
        dy/dt = -y / tau_post : 1 (event-driven)
        """, on_pre="""
        i_exc_post += w * mV
        elig = elig - a_minus * y
        x += 1
        """, on_post="""
        y += 1
        elig = elig + a_plus * x
        """, delay=spec["delay_steps"] * dt, namespace=ns, name="plastic")
    plastic.connect(i=spec["pre"], j=spec["post"])
    plastic.w = spec["w0"]
    # every synapse reads the one dopamine level (a linked variable through index 0)
    plastic.dopamine_index = 0
    plastic.level = b2.linked_var(dopamine, "level", index="dopamine_index")
    learn = plastic.run_regularly("w = clip(w + lr_dt * level * elig, w_min, w_max)\n"
                                  "elig = elig * decay_elig", when="end", order=0)
    objects = [inputs, out, dopamine, move_level, plastic, learn]
    if spec["count_gain"] is not None:
        counter = b2.Synapses(out, dopamine, on_pre="count_post += 1", name="spike_count")
        counter.connect(i=np.arange(spec["n_out"]), j=np.zeros(spec["n_out"], dtype=np.int64))
        objects.append(counter)
    spikes = b2.SpikeMonitor(out, name="out_spikes")
    levels = b2.StateMonitor(dopamine, "level", record=0, dt=spec["level_every_steps"] * dt,
                             when="end", order=2, name="level_monitor")
    return {"network": b2.Network(*objects, spikes, levels), "plastic": plastic,
            "spikes": spikes, "levels": levels}


def brian2_outcome(model: dict[str, Any], spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """Output spikes (step, neuron), final weights in the spec's synapse order, the level
    samples (step, value) of a Brian2 run."""
    dt_s = spec["dt_ms"] * 1e-3
    syn = model["plastic"]
    order_b2 = np.lexsort((np.asarray(syn.j[:]), np.asarray(syn.i[:])))
    order_spec = np.lexsort((spec["post"], spec["pre"]))
    w = np.empty(len(order_spec))
    w[order_spec] = np.asarray(syn.w[:])[order_b2]
    mon = model["levels"]
    return {"step": np.round(np.asarray(model["spikes"].t_) / dt_s).astype(np.int64),
            "neuron": np.asarray(model["spikes"].i[:], dtype=np.int64), "w": w,
            "level_step": np.round(np.asarray(mon.t_) / dt_s).astype(np.int64),
            "level": np.asarray(mon.level[0], dtype=np.float64)}


def bench_brian2(spec: dict[str, Any], duration_ms: float, repeats: int):
    """Brian2 runtime, cython target: build, a first run (code generation, compilation or the
    cache, and the simulation), then ``repeats`` runs from the stored initial state; the figure
    is the median of Brian2's own loop time (``device._last_run_time``), as in stdp_cuba.py."""
    import brian2 as b2
    from brian2 import ms

    b2.prefs.codegen.target = "cython"
    b2.seed(1)
    t0 = time.perf_counter()
    model = brian2_network(spec, duration_ms)
    net = model["network"]
    net.store("initial")
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    net.run(duration_ms * ms)
    first_wall = time.perf_counter() - t0
    outcome = brian2_outcome(model, spec)
    loops, walls = [], []
    for _ in range(repeats):
        net.restore("initial")
        t0 = time.perf_counter()
        net.run(duration_ms * ms)
        walls.append(time.perf_counter() - t0)
        loops.append(float(b2.device._last_run_time))
    sim = statistics.median(loops)
    steps = int(round(duration_ms / spec["dt_ms"]))
    entry = {"target": "cython", "brian2_version": b2.__version__, "build_s": build_s,
             "first_run_wall_s": first_wall,
             "compile_s": first_wall - statistics.median(walls), "loop_s": loops,
             "run_wall_s": walls, "sim_s": sim, "us_per_step": sim / steps * 1e6,
             "output_spikes": int(outcome["step"].size),
             "mean_weight_change": float(np.abs(outcome["w"] - spec["w0"]).mean())}
    return entry, outcome


def evospike_outcome(build, precision: str = "float64") -> dict[str, np.ndarray]:
    """The same quantities from one run of EvoSpike's torch backend, native engine."""
    import torch

    from evospike.backends import get_backend

    net, duration_ms = build()
    runner = get_backend("torch").compile(net, engine="native", precision=precision,
                                          seeds=(0,), progress=False)
    assert runner.engine == "native", runner.engine_note
    res = runner.run(duration_ms)
    (proj,) = net.projections
    spikes = next(iter(res.spikes_by_node.values()))
    trace = next(iter(res.traces.values()))
    return {"step": spikes.step.astype(np.int64), "neuron": spikes.neuron.astype(np.int64),
            "w": runner.cn.projections[proj].weights.to(torch.float64).cpu().numpy().ravel(),
            "level_step": np.asarray(trace.steps, dtype=np.int64),
            "level": np.asarray(trace.values, dtype=np.float64).ravel()}


def agreement(evo: dict[str, np.ndarray], b2: dict[str, np.ndarray], spec: dict[str, Any],
              duration_ms: float) -> dict[str, Any]:
    """How close the Brian2 run is to EvoSpike's on the same input spikes."""
    same = np.intersect1d(evo["step"] * spec["n_out"] + evo["neuron"],
                          b2["step"] * spec["n_out"] + b2["neuron"]).size
    n_evo, n_b2 = int(evo["step"].size), int(b2["step"].size)
    dw_evo, dw_b2 = evo["w"] - spec["w0"], b2["w"] - spec["w0"]
    steps = np.intersect1d(evo["level_step"], b2["level_step"])
    lev_evo = evo["level"][np.searchsorted(evo["level_step"], steps)]
    lev_b2 = b2["level"][np.searchsorted(b2["level_step"], steps)]
    rate = 1.0 / (spec["n_out"] * duration_ms * 1e-3)
    return {"duration_ms": duration_ms, "evospike": "torch native float64",
            "output_spikes": {"evospike": n_evo, "brian2": n_b2},
            "rate_hz": {"evospike": n_evo * rate, "brian2": n_b2 * rate},
            "same_spikes_fraction": same / max(n_evo, n_b2, 1),
            "mean_weight_change": {"evospike": float(dw_evo.mean()),
                                   "brian2": float(dw_b2.mean())},
            "mean_abs_weight_change": {"evospike": float(np.abs(dw_evo).mean()),
                                       "brian2": float(np.abs(dw_b2).mean())},
            "max_abs_weight_difference": float(np.abs(evo["w"] - b2["w"]).max()),
            "level_samples": int(steps.size),
            "max_abs_level_difference": float(np.abs(lev_evo - lev_b2).max())
            if steps.size else None}


def validate(build) -> dict[str, Any]:
    """Run EvoSpike (native, float64) and the hand-written Brian2 model on the same network
    with the same input spikes (a spike-time source), and compare."""
    import brian2 as b2
    from brian2 import ms

    net, duration_ms = build()
    spec = peer_spec(net)
    evo = evospike_outcome(build)
    b2.prefs.codegen.target = "cython"
    model = brian2_network(spec, duration_ms)
    model["network"].run(duration_ms * ms)
    return agreement(evo, brian2_outcome(model, spec), spec, duration_ms)


def poisson_spikes(n: int, rate_hz: float, duration_ms: float, dt_ms: float, seed: int = 1):
    """(neurons, times_ms) of ``n`` Poisson trains drawn once on the step grid (at most one
    spike per step, probability rate x dt), to feed both simulators the same input."""
    rng = np.random.default_rng(seed)
    steps = int(round(duration_ms / dt_ms))
    step, neuron = np.nonzero(rng.random((steps, n)) < rate_hz * dt_ms * 1e-3)
    return neuron.astype(np.int64), step * dt_ms


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
    parser.add_argument("--brian2-cache-dir", default=None,
                        help="Brian2's cython cache (default: its own, ~/.cython; an empty "
                             "folder times a first compilation)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    from evospike.atomic import atomic_path

    torch.set_num_threads(1)
    if args.brian2_cache_dir is not None:
        import brian2

        brian2.prefs.codegen.runtime.cython.cache_dir = args.brian2_cache_dir
    info = machine()
    entries = []
    workloads = (
        ("reward_learning", lambda: reward_learning(args.trials),
         lambda: reward_learning(args.trials)),
        ("rstdp_1000x100", lambda: rstdp_1000x100(args.duration_ms),
         lambda: rstdp_1000x100(args.duration_ms, input_spikes=poisson_spikes(
             1000, 10.0, args.duration_ms, 0.1))))
    for name, build, build_same_input in workloads:
        t0 = time.perf_counter()
        entry = bench(name, build, args.repeats)
        net, duration_ms = build()
        entry["brian2"], _ = bench_brian2(peer_spec(net), duration_ms, args.repeats)
        entry["ratio_brian2_over_native"] = entry["brian2"]["sim_s"] / entry["native"]["sim_s"]
        entry["ratio_brian2_over_eager"] = entry["brian2"]["sim_s"] / entry["eager"]["sim_s"]
        entry["brian2_agreement"] = validate(build_same_input)
        entries.append(entry)
        b2e, agree = entry["brian2"], entry["brian2_agreement"]
        print(f"{name}: {entry['synapses']} plastic synapses, {entry['steps']} steps "
              f"({entry['duration_ms']:.0f} ms); output spikes / mean |dw|: EvoSpike native "
              f"{entry['output_spikes']} / {entry['mean_weight_change']:.4f}, Brian2 "
              f"{b2e['output_spikes']} / {b2e['mean_weight_change']:.4f}")
        for engine in ("native", "eager", "brian2"):
            e = entry[engine]
            print(f"  {engine:6s} sim {e['sim_s']:.3f} s ({e['us_per_step']:.1f} us/step)")
        print(f"  eager / native: {entry['ratio_eager_over_native']:.1f}x; identical results: "
              f"{entry['identical']} (max |dw| {entry['max_weight_difference']:.2e})")
        print(f"  Brian2 cython / EvoSpike native: {entry['ratio_brian2_over_native']:.1f}x, "
              f"Brian2 / eager: {entry['ratio_brian2_over_eager']:.2f}x (Brian2 build "
              f"{b2e['build_s']:.1f} s, first run incl. code generation/compilation "
              f"{b2e['first_run_wall_s']:.1f} s)")
        print(f"  same input spikes, {agree['duration_ms']:.0f} ms: output spikes EvoSpike "
              f"{agree['output_spikes']['evospike']}, Brian2 {agree['output_spikes']['brian2']}"
              f" ({100 * agree['same_spikes_fraction']:.1f} % identical); mean dw "
              f"{agree['mean_weight_change']['evospike']:.6f} / "
              f"{agree['mean_weight_change']['brian2']:.6f}; max |w difference| "
              f"{agree['max_abs_weight_difference']:.1e}; bench {time.perf_counter() - t0:.0f} s")
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
