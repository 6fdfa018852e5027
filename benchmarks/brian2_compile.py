"""Brian2 compilation, cold and warm, and `evospike validate`'s peak memory (issue 15, item 7).

The network is the issue's: a Brunel-like sparse network of 6,250 LIF neurons (5,000 excitatory,
1,250 inhibitory; tau 20 ms, threshold 20 mV, reset 10 mV, rest 0 mV, refractory 2 ms, delta
synapses onto ``v``), recurrent connections with probability 0.1 (about 3.9 million synapses),
J = 0.1 mV excitatory and -g J inhibitory (g = 5), delay 1.5 ms, dt 0.1 ms; each neuron driven
by 50 Poisson afferents at 400 Hz with weight J (the mean drive of Brunel's eta = 2), built two
ways:

* ``sources``: as the issue's user did, one `PoissonSource` per afferent (312,500 sources), each
  neuron's own 50 through two projections (``FromArrays``: 312,500 more synapses);
* ``input``: the same drive as a `PoissonInput` node per population (K = 50 afferents, binomial
  counts per step).

Measured, per drive, Brian2 runtime mode with the cython target, in fresh Python processes (so
no compiled module is held in memory), ``--duration-ms`` (default 100 ms) per run:

* cold: an empty Cython cache folder (``prefs.codegen.runtime.cython.cache_dir``); one process
  runs seed 0 (build, then the run: code generation, compilation, simulation), then a new
  runner with seed 1; the number of compiled modules (``*.so`` files) after each;
* warm: a second process, the same cache folder, seed 2;
* the peak resident memory of each process (``os.wait4``'s ``ru_maxrss``).

Then `evospike validate` (torch candidate against Brian2 cython, ``--reference-seeds`` further
reference runs, default 4) on the ``sources`` network saved to HDF5, ``--validate-ms`` (default
500 ms), in its own process with the ``sources`` cache folder, warm from the runs above (a
``brian_preferences`` file in its working folder points Brian2 there): its wall time, peak
resident memory and the modules it compiled.

    nice python benchmarks/brian2_compile.py            # the whole measurement (many minutes)
    python benchmarks/brian2_compile.py --validate-ms 0 # skip validate

Results go to ``benchmarks/results/brian2_compile_<host>.json`` (written atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_E, N_I = 5000, 1250
P_CONNECT = 0.1
J_MV, G = 0.1, 5.0
DELAY_MS = 1.5
K_EXT = 50
RATE_EXT_HZ = 400.0  # 50 x 400 Hz x 0.1 mV x 20 ms = 40 mV = 2 x threshold (eta = 2)
DT_MS = 0.1
DRIVES = ("sources", "input")
ROOT = Path(__file__).resolve().parents[1]


def build(drive: str = "sources"):
    """The benchmark network with the external drive ``drive`` (see the module docstring)."""
    from evospike import LIF, FixedProbability, FromArrays, Network, Uniform

    if drive not in DRIVES:
        raise SystemExit(f"brian2_compile: drive must be one of {DRIVES} (got {drive!r})")
    cell = LIF(tau_m_ms=20.0, v_rest_mV=0.0, v_reset_mV=10.0, v_thresh_mV=20.0,
               tau_refrac_ms=2.0)
    net = Network(f"brunel6250_{drive}", dt_ms=DT_MS)
    start = {"v": Uniform(0.0, 20.0)}
    exc = net.population("exc", N_E, cell, initial=start)
    inh = net.population("inh", N_I, cell, initial=start)
    for k, (pre, weight) in enumerate(((exc, J_MV), (inh, -G * J_MV))):
        for m, post in enumerate((exc, inh)):
            net.connect(pre, post, FixedProbability(P_CONNECT, seed=10 * k + m + 1,
                                                    allow_self_connections=False),
                        weight=weight, delay_ms=DELAY_MS, target="v")
    if drive == "sources":
        ext = net.poisson_source("ext", (N_E + N_I) * K_EXT, RATE_EXT_HZ)
        for offset, post in ((0, exc), (N_E, inh)):
            j = np.repeat(np.arange(post.size), K_EXT)
            i = offset * K_EXT + np.arange(post.size * K_EXT)
            net.connect(ext, post, FromArrays(i, j), weight=J_MV, delay_ms=DT_MS, target="v")
    else:
        for post in (exc, inh):
            net.poisson_input(post, K_EXT, RATE_EXT_HZ, J_MV, channel="v")
    net.record_spikes(exc, inh)
    return net


# --------------------------------------------------------------------- worker processes
def _modules(cache: str) -> int:
    return len(list(Path(cache).glob("*.so")))


def worker(drive: str, seeds: list[int], cache: str, duration_ms: float) -> dict:
    """In this process: one fresh runner per seed, each run for ``duration_ms``."""
    import brian2

    from evospike.backends import get_backend

    brian2.prefs.codegen.runtime.cython.cache_dir = cache
    out = {"drive": drive, "modules_before": _modules(cache), "runs": []}
    for seed in seeds:
        t0 = time.perf_counter()
        net = build(drive)
        t1 = time.perf_counter()
        runner = get_backend("brian2").compile(net, seeds=(seed,), target="cython",
                                               progress=False)
        t2 = time.perf_counter()
        res = runner.run(duration_ms)
        t3 = time.perf_counter()
        spikes = sum(res.spike_steps(p)[0].size for p in ("exc", "inh"))
        out["runs"].append({
            "seed": seed, "ir_build_s": t1 - t0, "brian2_build_s": t2 - t1,
            "run_s": t3 - t2, "total_s": t3 - t0, "modules_after": _modules(cache),
            "rate_hz": spikes / ((N_E + N_I) * duration_ms * 1e-3)})
        del runner, res, net
    return out


def _child(args: list[str], cwd: str | None = None) -> tuple[int, float, float, str]:
    """Run a child process; (exit status, wall s, peak RSS in MiB, stdout)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024.0, text


def measure_compile(drive: str, duration_ms: float) -> dict:
    cache = tempfile.mkdtemp(prefix=f"brian2_compile_{drive}_")
    result: dict = {"cache_dir": cache}
    for phase, seeds in (("cold", "0,1"), ("warm", "2")):
        status, wall, rss, text = _child([sys.executable, __file__, "--worker", drive,
                                          "--seeds", seeds, "--cache", cache,
                                          "--duration-ms", str(duration_ms)])
        if status != 0:
            result[phase] = {"error": text[-3000:], "status": status}
            break
        result[phase] = {**json.loads(text.strip().splitlines()[-1]), "process_wall_s": wall,
                         "peak_rss_mib": rss}
        print(f"{drive} {phase}: {json.dumps(result[phase])}", flush=True)
    return result


def measure_validate(duration_ms: float, reference_seeds: int, cache: str) -> dict:
    work = tempfile.mkdtemp(prefix="brian2_validate_")
    model = os.path.join(work, "brunel6250_sources.h5")
    build("sources").save(model)
    # Brian2 reads preferences from a brian_preferences file in the working folder
    Path(work, "brian_preferences").write_text(
        f"codegen.runtime.cython.cache_dir = {cache!r}\n")
    evospike = [sys.executable, "-c",
                "import sys; from evospike.cli.main import main; sys.exit(main())"]
    before = _modules(cache)
    status, wall, rss, text = _child(
        [*evospike, "validate", model, "--duration", f"{duration_ms}ms", "--target", "cython",
         "--reference-seeds", str(reference_seeds), "--no-progress", "--out-dir",
         os.path.join(work, "report")], cwd=work)
    # exit status 1 is a failed verdict, which still measured the runs
    out = {"duration_ms": duration_ms, "reference_seeds": reference_seeds, "status": status,
           "wall_s": wall, "peak_rss_mib": rss, "modules_before": before,
           "modules_after": _modules(cache), "output_tail": text[-2000:]}
    print(f"validate: status {status}, {wall:.1f} s, {rss:.0f} MiB", flush=True)
    return out


def machine() -> dict:
    import brian2
    import Cython
    import torch

    load = os.getloadavg()
    return {"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "brian2": brian2.__version__, "cython": Cython.__version__,
            "torch": torch.__version__, "numpy": np.__version__, "load_average_start": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-ms", type=float, default=100.0)
    parser.add_argument("--validate-ms", type=float, default=500.0,
                        help="validate's duration (0: skip validate)")
    parser.add_argument("--reference-seeds", type=int, default=4)
    parser.add_argument("--drives", nargs="+", choices=DRIVES, default=list(DRIVES))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", choices=DRIVES, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        seeds = [int(s) for s in args.seeds.split(",")]
        print(json.dumps(worker(args.worker, seeds, args.cache, args.duration_ms)))
        return
    out_path = args.out or ROOT / "benchmarks" / "results" / \
        f"brian2_compile_{socket.gethostname()}.json"
    results: dict = {"machine": machine(), "duration_ms": args.duration_ms,
                     "network": {"neurons": N_E + N_I, "p": P_CONNECT, "k_ext": K_EXT,
                                 "rate_ext_hz": RATE_EXT_HZ, "dt_ms": DT_MS},
                     "compile": {}}
    t0 = time.perf_counter()
    for drive in args.drives:
        results["compile"][drive] = measure_compile(drive, args.duration_ms)
        _write(out_path, results)
    if args.validate_ms > 0:
        # the sources network's cache folder, warm from the compile measurement (or cold
        # when that drive was not measured)
        cache = results["compile"].get("sources", {}).get("cache_dir") or \
            tempfile.mkdtemp(prefix="brian2_compile_sources_")
        results["validate"] = measure_validate(args.validate_ms, args.reference_seeds, cache)
    results["machine"]["load_average_end"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - t0
    _write(out_path, results)
    print(f"written {out_path}")


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
