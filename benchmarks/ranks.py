"""Strong scaling of partitioned simulation (``evospike run --ranks N``) on CUBA.

CUBA with N neurons at the published scaling rule (p = 80 / N), float32, the eager engine on
one torch thread per rank. For each rank count: the wall time of the run as rank 0 measures it
(from the first step to the last exchange, start-up excluded), the time every rank spent in the
spike exchange (``all_gather`` over gloo, packing and sorting included), the rest (neuron
updates and delivery), the number of spikes, and whether the spikes equal those of 1 rank.
The one-process eager engine (``TorchRunner``, one thread) is the reference row.

    nice python benchmarks/ranks.py --n 64000 --duration-ms 200 --ranks 1 2

Results go to ``benchmarks/results/ranks_<hostname>_n<N>_d<delay>.json`` (written
atomically). State the machine's load with the figures: the processes share its cores with
whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import cuba  # noqa: E402

from evospike.backends.torch import compile as torch_compile  # noqa: E402
from evospike.backends.torch.distributed import RanksRunner  # noqa: E402
from evospike.ir.nodes import Projection  # noqa: E402


def spikes_key(res) -> tuple:
    d = [res.spikes_by_node[n] for n in ("exc", "inh")]
    return tuple(np.concatenate([x.step * 10**9 + x.neuron for x in d]).tolist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64000)
    ap.add_argument("--duration-ms", type=float, default=200.0)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--delay-steps", type=int, default=1,
                    help="every synapse's delay in steps (CUBA's own: 1 step, 0.1 ms); a "
                         "longer one lengthens the exchange window")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    net = cuba.build(args.n, connection_probability=80 / args.n)
    if args.delay_steps != 1:
        for p in list(net.projections.values()):
            net.projections[p.name] = Projection(
                p.name, p.pre, p.post, p.n_pre, p.n_post, p.indptr, p.indices, p.weights,
                np.full(p.n_synapses, args.delay_steps, np.int32), p.target)
    build_s = time.perf_counter() - t0
    rows = []
    runner = torch_compile(net, engine="eager", progress=False)
    res = runner.run(args.duration_ms)
    ref = spikes_key(res)
    n_spikes = len(ref)
    rows.append({"ranks": "serial eager", "wall_s": res.meta["wall_time_s"],
                 "spikes": n_spikes,
                 "rate_hz": n_spikes / args.n / (args.duration_ms / 1000)})
    mem = runner.memory_report()
    del runner
    for ranks in args.ranks:
        res = RanksRunner(net, ranks, timeout_s=300).run(args.duration_ms)
        exch = json.loads(res.meta["exchange_s_per_rank"])
        wall = float(res.meta["wall_time_s"])
        rows.append({"ranks": ranks, "wall_s": wall, "exchange_s_per_rank": exch,
                     "compute_s_rank0": wall - exch[0],
                     "launch_wall_s": float(res.meta["wall_time_s_launch"]),
                     "windows": int(res.meta["n_steps"]) // int(res.meta["exchange_window_steps"]),
                     "capacity": int(res.meta["exchange_capacity"]),
                     "identical_to_serial": spikes_key(res) == ref})
    out = {"machine": platform.node(), "cpu_count": os.cpu_count(),
           "load_avg_at_end": os.getloadavg(), "n": args.n, "synapses": net.n_synapses,
           "duration_ms": args.duration_ms, "delay_steps": args.delay_steps, "build_s": build_s,
           "bytes_per_synapse": mem["bytes_per_synapse"],
           "total_bytes_per_synapse": mem["total_bytes_per_synapse"],
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows}
    print(json.dumps(out, indent=1))
    path = (Path(__file__).parent / "results" /
            f"ranks_{socket.gethostname()}_n{args.n}_d{args.delay_steps}.json")
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
