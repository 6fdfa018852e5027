"""CUBA benchmark: EvoSpike's torch backend against Brian2 on the same network.

The network is the Vogels-Abbott current-based (CUBA) network of Brian2's published example
(``examples/cuba.py``): LIF neurons, 80 % excitatory, taum 20 ms, taue 5 ms, taui 10 ms,
Vt -50 mV, Vr -60 mV, El -49 mV, refractory 5 ms, we = 1.62 mV onto ge, wi = -9 mV onto gi,
initial v uniform in [Vr, Vt), dt 0.1 ms, no external input. EvoSpike's synaptic delays are at
least one step, so both simulators use a 0.1 ms delay.

Sizes follow the published scaling rule: N neurons with connection probability p = 80 / N
(80 synapses per neuron on average, so N = 4000 gives the usual p = 0.02), weights unchanged.

Measured for every size (all single-threaded except torch's eager engine, which uses torch's
intra-op threads, and Brian2's standalone ``make -j``):

* EvoSpike, native engine (compiled C kernel, float32): build (``build``) and compile
  (``compile``: realising the connectivity and laying out tensors) timed separately from the
  simulation (``runner.run``; ``meta["wall_time_s"]``). One warm-up compile and run of a tiny
  network comes first, so the one-off build of the C kernel (cached in ~/.cache/evospike) is not
  counted. The network is run for 1 s of biological time, then ``--repeats`` more 1 s runs
  continue it; the simulation time is the median over all these runs.
* EvoSpike, native engine with a batch of ``--batch`` (default 64) independent trials (seeds
  0, 1, ...) in one run; the time per trial is the batch's simulation time / batch.
* EvoSpike, eager engine (torch operations), one 1 s run (only up to ``--eager-max-n``).
* EvoSpike, native engine, the same network silenced (El = -60 mV instead of -49 mV, so no
  neuron reaches threshold): the same neuron updates, connectivity and delay buffers but no
  spikes, hence no synaptic propagation; it splits the per-step cost into neuron update and
  spike work.
* Brian2 runtime mode, cython target: objects + connect + initialisation (``build``), then a
  first 1 s ``run`` (code generation + compilation + simulation), then ``--repeats`` more 1 s
  runs on the same network. Simulation time: the median of Brian2's own measurement of the
  continued runs (the time spent in its run loop, ``device._last_run_time``); their wall time,
  which adds the per-run code generation Brian2 redoes on every ``run``, is reported as well.
  Compile time is reported as (first run wall) - (continued run wall). By default Brian2's
  cython cache is a fresh temporary folder (``--brian2-warm-cache`` uses the usual one); the
  generated code names its objects (``neurongroup_1``, ...), so every network of every size
  is compiled anew, also within one process.
* Brian2 runtime mode, numpy target, the same way with one continued run (only up to
  ``--numpy-max-n``).
* Brian2 C++ standalone, in a subprocess (this script with ``--standalone-child``): a fresh
  project folder, a first and a continued 1 s run, ``device.build`` (code generation, ``make``,
  one execution), then ``--repeats`` more executions of the compiled binary. Simulation time:
  the median over the executions of Brian2's timing of the continued run's loop
  (``device._last_run_time``, CPU time of the loop; single thread, no OpenMP). Also reported:
  ``make`` time, time running the binary (includes creating the synapses), build wall time.
* Memory: EvoSpike's ``memory_report()`` (bytes per synapse: int32 target index + float32
  weight; the uniform delay is not stored per synapse). Brian2: the bytes of the per-synapse
  arrays of the Synapses objects (``_synaptic_pre`` and ``_synaptic_post``, int32; the
  homogeneous delay is one scalar), measured from the arrays, plus an estimate of 4 bytes per
  synapse for the per-source synapse lists of the spike queue (C++ ``vector<int>``; capacity
  slack not counted).
* The mean firing rate over the first second of every run, as a sanity check (5-6 Hz).

Ratios are (other simulation time) / (EvoSpike native simulation time): above 1 means EvoSpike
is faster. Results go to ``benchmarks/results/cuba_<hostname>.json`` (written atomically;
entries for sizes not run this time are kept).

    python benchmarks/cuba.py                       # N = 4000
    python benchmarks/cuba.py --sizes 16000 64000   # scaling, p = 80 / N
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
DURATION_MS = 1000.0
DT_MS = 0.1
SYNAPSES_PER_NEURON = 80
SPIKE_QUEUE_BYTES_PER_SYNAPSE = 4  # Brian2 SpikeQueue: vector<int> of synapse ids per source
BATCH = 64  # trials in the batched run (--batch)


def connection_probability(n_neurons: int) -> float:
    """The published scaling rule: 80 synapses per neuron on average."""
    return SYNAPSES_PER_NEURON / n_neurons


# --------------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    """CPU model, core count and library versions of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import brian2
    import Cython
    import numpy
    import torch

    import evospike

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "hostname": socket.gethostname(),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_modified": [line[3:] for line in git("status", "--porcelain").splitlines()],
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(), "evospike": evospike.__version__,
            "torch": torch.__version__, "brian2": brian2.__version__,
            "numpy": numpy.__version__, "cython": Cython.__version__,
        },
    }


# --------------------------------------------------------------------------- EvoSpike
def load_example() -> ModuleType:
    """``examples/cuba.py`` as a module."""
    spec = importlib.util.spec_from_file_location("cuba_example", ROOT / "examples" / "cuba.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def warm_up_evospike(example: ModuleType) -> float:
    """Compile and run a tiny network on both engines so one-off costs (building the C kernel
    if it is not cached, torch's lazy initialisation) are not counted. Returns the seconds."""
    from evospike.backends import get_backend

    tb = get_backend("torch")
    t0 = time.perf_counter()
    for engine in ("native", "eager"):
        tb.compile(example.build(100, connection_probability=0.1), engine=engine,
                   progress=False).run(10.0)
    return time.perf_counter() - t0


def bench_evospike(example: Any, n: int, engine: str, seeds: tuple[int, ...],
                   repeats: int) -> dict[str, Any]:
    """Build, compile and run EvoSpike's CUBA with ``n`` neurons; see the module docstring."""
    from evospike.backends import get_backend

    tb = get_backend("torch")
    t0 = time.perf_counter()
    net = example.build(n, dt_ms=DT_MS, connection_probability=connection_probability(n))
    t1 = time.perf_counter()
    runner = tb.compile(net, engine=engine, seeds=seeds, progress=False)
    t2 = time.perf_counter()
    runs, calls, previous = [], [], 0.0
    first = None
    for k in range(1 + repeats):
        ta = time.perf_counter()
        res = runner.run(DURATION_MS)
        calls.append(time.perf_counter() - ta)
        runs.append(res.meta["wall_time_s"] - previous)
        previous = res.meta["wall_time_s"]
        if k == 0:
            first = res
    sizes = {node: d.size for node, d in first.spikes_by_node.items()}
    n_spikes = sum(d.step.size for d in first.spikes_by_node.values())
    mem = runner.memory_report()
    sim = statistics.median(runs)
    return {
        "engine": runner.engine, "precision": runner.cn.config.precision, "trials": len(seeds),
        "build_s": t1 - t0, "compile_s": t2 - t1, "run_s": runs, "sim_s": sim,
        "sim_per_trial_s": sim / len(seeds), "run_call_wall_s": calls,
        "sim_wall_s": statistics.median(calls),
        "us_per_step": sim / round(DURATION_MS / DT_MS) * 1e6,
        "rate_hz": n_spikes / (sum(sizes.values()) * len(seeds) * DURATION_MS * 1e-3),
        "rate_exc_hz": first.mean_rate_hz("exc"), "rate_inh_hz": first.mean_rate_hz("inh"),
        "synapses": mem["synapses"], "bytes_per_synapse": mem["bytes_per_synapse"],
        "total_bytes_per_synapse": mem["total_bytes_per_synapse"], "memory": mem,
    }


def build_silenced(n: int) -> Any:
    """``examples/cuba.py``'s network with El = -60 mV (= Vr): no neuron ever fires."""
    from evospike import LIF, FixedProbability, Network, Uniform

    n_exc = int(n * 0.8)
    cell = LIF(tau_m_ms=20.0, v_rest_mV=-60.0, v_reset_mV=-60.0, v_thresh_mV=-50.0,
               tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0, tau_refrac_ms=5.0)
    net = Network("cuba_silenced", dt_ms=DT_MS)
    start = {"v": Uniform(-60.0, -50.0)}
    exc = net.population("exc", n_exc, cell, initial=start)
    inh = net.population("inh", n - n_exc, cell, initial=start)
    p = connection_probability(n)
    for k, (pre, w, channel) in enumerate(((exc, 1.62, "exc"), (inh, -9.0, "inh"))):
        for j, post in enumerate((exc, inh)):
            net.connect(pre, post, FixedProbability(p, seed=100 + 10 * k + j), weight=w,
                        delay_ms=DT_MS, target=channel)
    net.record_spikes(exc, inh)
    return net


class _Silenced:
    """Stands in for the example module in `bench_evospike`."""

    @staticmethod
    def build(n: int, dt_ms: float, connection_probability: float) -> Any:
        return build_silenced(n)


# --------------------------------------------------------------------------- Brian2
def build_brian2(n: int, seed: int = 1) -> tuple[Any, Any, list[Any], dict[str, Any]]:
    """Brian2's CUBA with ``n`` neurons and p = 80 / n: (Network, SpikeMonitor, [Synapses],
    namespace)."""
    import brian2 as b2
    from brian2 import ms, mV

    b2.seed(seed)
    ns = {"taum": 20 * ms, "taue": 5 * ms, "taui": 10 * ms, "Vt": -50 * mV, "Vr": -60 * mV,
          "El": -49 * mV, "we": (60 * 0.27 / 10) * mV, "wi": (-20 * 4.5 / 10) * mV}
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    group = b2.NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,
                           method="exact", namespace=ns)
    group.v = "Vr + rand() * (Vt - Vr)"
    n_exc = int(n * 0.8)
    p = connection_probability(n)
    exc = b2.Synapses(group, group, on_pre="ge += we", delay=0.1 * ms, namespace=ns)
    inh = b2.Synapses(group, group, on_pre="gi += wi", delay=0.1 * ms, namespace=ns)
    exc.connect(condition=f"i < {n_exc}", p=p)
    inh.connect(condition=f"i >= {n_exc}", p=p)
    monitor = b2.SpikeMonitor(group)
    return b2.Network(group, exc, inh, monitor), monitor, [exc, inh], ns


def brian2_synapse_bytes(synapses: list[Any]) -> dict[str, Any]:
    """Bytes of the per-synapse arrays of ``synapses`` (measured), plus the spike queue's
    per-source synapse lists (estimated at 4 B/synapse)."""
    n_syn = sum(len(s) for s in synapses)
    arrays: dict[str, int] = {}
    for s in synapses:
        for name, var in s.variables.items():
            if name in ("i", "j", "_presynaptic_idx", "_postsynaptic_idx"):
                continue  # aliases of _synaptic_pre / _synaptic_post
            if getattr(var, "owner", None) is None or var.owner.name != s.name:
                continue
            if getattr(var, "scalar", True) or not hasattr(var, "get_value"):
                continue
            arr = var.get_value()
            if arr.ndim == 1 and arr.shape[0] == len(s):
                arrays[name] = arrays.get(name, 0) + arr.nbytes
        delay = s.pre.variables["delay"]  # one scalar when homogeneous
        key = "delay (scalar)" if delay.scalar else "delay"
        arrays[key] = arrays.get(key, 0) + delay.get_value().nbytes
    measured = sum(arrays.values())
    queue = SPIKE_QUEUE_BYTES_PER_SYNAPSE * n_syn
    return {
        "synapses": n_syn, "arrays_bytes": arrays, "measured_bytes": measured,
        "measured_bytes_per_synapse": measured / n_syn,
        "spike_queue_estimate_bytes": queue,
        "bytes_per_synapse": (measured + queue) / n_syn,
    }


def bench_brian2_runtime(n: int, target: str, repeats: int) -> dict[str, Any]:
    """Brian2 runtime mode with codegen ``target`` ('cython' or 'numpy'); see the docstring."""
    import brian2 as b2
    from brian2 import second

    b2.prefs.codegen.target = target
    b2.defaultclock.dt = DT_MS * b2.ms
    t0 = time.perf_counter()
    net, monitor, synapses, ns = build_brian2(n)
    t1 = time.perf_counter()
    net.run(DURATION_MS * 1e-3 * second, namespace=ns)
    t2 = time.perf_counter()
    first_spikes = monitor.num_spikes
    walls, loops = [], []
    for _ in range(repeats):
        ta = time.perf_counter()
        net.run(DURATION_MS * 1e-3 * second, namespace=ns)
        walls.append(time.perf_counter() - ta)
        loops.append(float(b2.get_device()._last_run_time))
    sim, wall = statistics.median(loops), statistics.median(walls)
    mem = brian2_synapse_bytes(synapses)
    return {
        "target": target, "build_s": t1 - t0, "first_run_s": t2 - t1,
        "continued_run_wall_s": walls, "continued_run_loop_s": loops,
        "sim_s": sim, "sim_wall_s": wall, "compile_s": (t2 - t1) - wall,
        "us_per_step": sim / round(DURATION_MS / DT_MS) * 1e6,
        "rate_hz": first_spikes / (n * DURATION_MS * 1e-3),
        "synapses": mem["synapses"], "bytes_per_synapse": mem["bytes_per_synapse"],
        "memory": mem,
    }


def standalone_child(n: int, repeats: int, out: Path) -> None:
    """Runs in a subprocess: Brian2 C++ standalone; writes its measurements to ``out``."""
    import brian2 as b2
    from brian2 import second

    project = tempfile.mkdtemp(prefix="cuba_standalone_")
    b2.set_device("cpp_standalone", build_on_run=False, directory=project)
    b2.defaultclock.dt = DT_MS * b2.ms
    t0 = time.perf_counter()
    net, monitor, synapses, ns = build_brian2(n)
    for _ in range(2):  # a first and a continued 1 s run; Brian2 times the last one
        net.run(DURATION_MS * 1e-3 * second, namespace=ns)
    t1 = time.perf_counter()
    device = b2.get_device()
    device.build(directory=project, compile=True, run=True, with_output=False)
    t2 = time.perf_counter()
    loops, binary = [float(device._last_run_time)], [device.timers["run_binary"]]
    for _ in range(repeats):  # run the compiled binary again: more samples of the same run
        device.run(directory=project, with_output=False)
        loops.append(float(device._last_run_time))
        binary.append(device.timers["run_binary"])
    n_first = int((monitor.t[:] < DURATION_MS * 1e-3 * second).sum())
    mem = brian2_synapse_bytes(synapses)
    sim = statistics.median(loops)
    result = {
        "target": "cpp_standalone", "project": project, "objects_s": t1 - t0,
        "device_build_s": t2 - t1, "make_s": device.timers["compile"]["make"],
        "run_binary_s": binary, "continued_run_loop_s": loops, "binary_runs": 1 + repeats,
        "sim_s": sim, "us_per_step": sim / round(DURATION_MS / DT_MS) * 1e6,
        "rate_hz": n_first / (n * DURATION_MS * 1e-3),
        "synapses": mem["synapses"], "bytes_per_synapse": mem["bytes_per_synapse"],
        "memory": mem,
    }
    out.write_text(json.dumps(result))


def bench_brian2_standalone(n: int, repeats: int) -> dict[str, Any]:
    """Runs `standalone_child` in a subprocess; on failure returns why."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "standalone.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--standalone-child", str(n),
               "--repeats", str(repeats), "--child-out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"target": "cpp_standalone", "error": "\n".join(tail),
                    "returncode": proc.returncode}
        result = json.loads(out.read_text())
    shutil.rmtree(result.pop("project"), ignore_errors=True)
    result["subprocess_wall_s"] = wall
    return result


# --------------------------------------------------------------------------- report
def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def table(entry: dict[str, Any]) -> str:
    """A markdown table of one size's results."""
    n, runs = entry["n"], entry["runs"]
    base = runs["evospike_native"].get("sim_s")
    head = ("| simulator | build (s) | compile (s) | sim 1 s (s) | run() wall (s) | µs/step | "
            "sim / EvoSpike native | rate (Hz) | B/synapse |")
    lines = [f"N = {n}, p = {entry['p']:.5f}, {entry['synapses_evospike']} synapses "
             f"(EvoSpike) / {entry.get('synapses_brian2', '-')} (Brian2)", "", head,
             "|" + "---|" * 9]
    labels = {
        "evospike_native": "EvoSpike native (float32)",
        "evospike_native_batch": f"EvoSpike native, batch of {entry.get('batch', BATCH)} "
                                  "trials (per trial)",
        "evospike_eager": "EvoSpike eager (float32)",
        "evospike_native_silenced": "EvoSpike native, silenced (no spikes)",
        "brian2_cython": "Brian2 runtime cython",
        "brian2_numpy": "Brian2 runtime numpy",
        "brian2_standalone": "Brian2 C++ standalone",
    }
    for key, label in labels.items():
        r = runs.get(key)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error'].splitlines()[-1][:60]} |"
                         + " |" * 7)
            continue
        wall = None
        if key.startswith("evospike"):
            setup, compile_s = r["build_s"], r["compile_s"]
            sim, wall = r["sim_per_trial_s"], r["sim_wall_s"] / r["trials"]
        elif key == "brian2_standalone":
            setup, compile_s, sim = r["objects_s"], r["make_s"], r["sim_s"]
        else:
            setup, compile_s, sim = r["build_s"], r["compile_s"], r["sim_s"]
            wall = r["sim_wall_s"]
        per_step = sim / round(DURATION_MS / DT_MS) * 1e6
        ratio = sim / base if base else None
        lines.append(f"| {label} | {_fmt(setup)} | {_fmt(compile_s)} | {_fmt(sim)} | "
                     f"{_fmt(wall)} | {_fmt(per_step, '.1f')} | {_fmt(ratio, '.2f')} | "
                     f"{_fmt(r['rate_hz'], '.2f')} | {_fmt(r['bytes_per_synapse'], '.1f')} |")
    return "\n".join(lines)


def write_json(path: Path, machine: dict[str, Any], entries: dict[str, Any]) -> None:
    """Merge ``entries`` (size -> result) into the JSON file at ``path``, atomically."""
    from evospike.atomic import atomic_path

    data: dict[str, Any] = {"benchmark": "cuba", "sizes": {}}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    data["machine"] = machine
    data.setdefault("sizes", {}).update({str(k): v for k, v in entries.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")


# --------------------------------------------------------------------------- main
def _step(runs: dict[str, Any], key: str, fn: Any, *args: Any) -> None:
    """``runs[key] = fn(*args)``, timed and printed; an exception is recorded, not raised."""
    t = time.perf_counter()
    load_before = os.getloadavg()[0]
    print(f"  {key} ...", end="", flush=True)
    try:
        runs[key] = fn(*args)
    except Exception as exc:  # report and continue with the other simulators
        runs[key] = {"error": f"{type(exc).__name__}: {exc}"}
    r = runs[key]
    # 1-minute load average before and after: other work on the machine skews the timings
    r["loadavg_1min"] = [load_before, os.getloadavg()[0]]
    msg = (r["error"].strip().splitlines() or ["failed"])[-1] if "error" in r else \
        f"sim {r['sim_s']:.3f} s, rate {r['rate_hz']:.2f} Hz"
    print(f" {time.perf_counter() - t:.1f} s ({msg}; load {load_before:.1f} -> "
          f"{r['loadavg_1min'][1]:.1f})", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000])
    ap.add_argument("--repeats", type=int, default=3,
                    help="continued 1 s runs after the first (default 3)")
    ap.add_argument("--batch", type=int, default=BATCH,
                    help="trials in the batched EvoSpike run (default 64)")
    ap.add_argument("--eager-max-n", type=int, default=4000)
    ap.add_argument("--numpy-max-n", type=int, default=4000)
    ap.add_argument("--no-standalone", action="store_true")
    ap.add_argument("--brian2-warm-cache", action="store_true",
                    help="use Brian2's usual cython cache instead of a fresh temporary one")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--standalone-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.standalone_child is not None:
        standalone_child(args.standalone_child, args.repeats, args.child_out)
        return 0

    import brian2 as b2

    b2.prefs.logging.file_log = False
    b2.BrianLogger.log_level_error()
    cache = None
    if not args.brian2_warm_cache:
        cache = tempfile.TemporaryDirectory(prefix="cuba_cython_cache_")
        b2.prefs.codegen.runtime.cython.cache_dir = cache.name

    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, "
          f"torch threads {machine['torch_threads']}")
    print(f"evospike: commit {machine['git_commit']}, modified: "
          f"{', '.join(machine['git_modified']) or 'none'}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()))
    example = load_example()
    warm = warm_up_evospike(example)
    print(f"EvoSpike warm-up (tiny network, native + eager): {warm:.2f} s, not counted")

    entries: dict[int, Any] = {}
    for n in args.sizes:
        print(f"\n== N = {n}, p = 80/N = {connection_probability(n):.5f}", flush=True)
        runs: dict[str, Any] = {}

        _step(runs, "evospike_native", bench_evospike, example, n, "native", (0,), args.repeats)
        _step(runs, "evospike_native_batch", bench_evospike, example, n, "native",
              tuple(range(args.batch)), args.repeats)
        if n <= args.eager_max_n:
            _step(runs, "evospike_eager", bench_evospike, example, n, "eager", (0,), 0)
        _step(runs, "evospike_native_silenced", bench_evospike, _Silenced, n, "native", (0,),
              args.repeats)
        _step(runs, "brian2_cython", bench_brian2_runtime, n, "cython", args.repeats)
        if "error" not in runs["brian2_cython"]:
            runs["brian2_cython"]["cython_cache"] = (
                "user cache" if args.brian2_warm_cache else "fresh temporary folder")
        if n <= args.numpy_max_n:
            _step(runs, "brian2_numpy", bench_brian2_runtime, n, "numpy", 1)
        if not args.no_standalone:
            _step(runs, "brian2_standalone", bench_brian2_standalone, n, args.repeats)

        base = runs["evospike_native"].get("sim_s")
        ratios = {}
        for key, r in runs.items():
            if base and "error" not in r and key != "evospike_native":
                sim = r.get("sim_per_trial_s", r["sim_s"])
                ratios[key] = sim / base
        b2_syn = next((r["synapses"] for k, r in runs.items()
                       if k.startswith("brian2") and "error" not in r), None)
        entries[n] = {
            "n": n, "p": connection_probability(n), "dt_ms": DT_MS, "duration_ms": DURATION_MS,
            "repeats": args.repeats, "batch": args.batch,
            "synapses_evospike": runs["evospike_native"].get("synapses"),
            "synapses_brian2": b2_syn, "runs": runs,
            "ratio_sim_over_evospike_native": ratios, "machine": machine,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        print()
        print(table(entries[n]), flush=True)
        print("ratios (sim time / EvoSpike native sim time): "
              + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))

    path = args.out or RESULTS_DIR / f"cuba_{socket.gethostname()}.json"
    write_json(path, machine, entries)
    print(f"\nwrote {path}")
    if cache is not None:
        cache.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
