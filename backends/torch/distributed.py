"""Partitioned simulation over ``torch.distributed`` (gloo) on one machine: ``evospike run MODEL
--ranks N``. The partition, the stepping and the exchange protocol are `partition.py`; this
module is the transport (``all_gather`` over gloo) and the launch.

Launch: the calling process starts N rank processes (``python -m
evospike.backends.torch.distributed``, as torchrun starts its workers: unlike
multiprocessing's "spawn", nothing re-imports the caller's main script, so a script or notebook
without an ``if __name__ == "__main__"`` guard works), hands them the network as an IR file
(`Network.save`: plain HDF5, nothing executable) and their options as JSON in a private
temporary folder, and waits. A rank dies with its launcher (Linux: PR_SET_PDEATHSIG). Rank 0
hosts the rendezvous on 127.0.0.1 at a free port. Every collective has the process group's
``timeout``. Each rank ends by writing a small JSON status
(ok, error, its exchange time); rank 0 writes the results (HDF5) -- on a failure, what it had
recorded up to the last exchanged window, marked incomplete.

A rank that dies (or hangs) ends the run: its peers' next collective fails (a closed connection
at once, a hang after ``timeout``), they report and exit, the launcher kills whatever is still
running after ``timeout`` + a grace period, and raises one line naming the rank, with rank 0's
partial results attached (``EvoSpikeError.partial``: the command line saves them).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.network import Network
from evospike.results import Results
from evospike.run_loop import steps_for

from .partition import DEFAULT_CAPACITY, RankSim, rank_refusals

#: test hook: "RANK:STEP" makes rank RANK leave with os._exit(17) once it has reached STEP
TEST_EXIT_ENV = "EVOSPIKE_RANKS_TEST_EXIT"
#: seconds the launcher grants the surviving ranks, beyond the collective timeout, to report
GRACE_S = 5.0
EXIT_FAILED = 3


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gloo_exchange(world: int):
    """The exchange of `partition.RankSim` over the default process group: ``all_gather``."""
    import torch.distributed as dist

    def exchange(buf: torch.Tensor) -> list[torch.Tensor]:
        out = [torch.empty_like(buf) for _ in range(world)]
        dist.all_gather(out, buf)
        return out

    return exchange


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _die_with_parent() -> None:
    """Linux: the kernel kills this rank when its launcher dies, so none is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the peers' collective timeout ends an orphaned rank


def _rank_main(rank: int, world: int, port: int, workdir: str, options: dict) -> None:
    """One rank: join the group, simulate its partition, report. Runs in its own process."""
    import torch.distributed as dist

    _die_with_parent()

    # the launcher owns Ctrl-C: it ends every rank itself, none must die half-way on its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(int(options["threads"]))
    work = Path(workdir)
    status: dict = {"rank": rank, "ok": False, "error": None, "stage": "start"}
    hook = os.environ.get(TEST_EXIT_ENV, "")
    exit_at = None
    if hook:
        r, s = hook.split(":")
        exit_at = int(s) if int(r) == rank else None
    sim = None
    t0 = time.perf_counter()
    try:
        status["stage"] = "rendezvous"
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world,
                                timeout=datetime.timedelta(seconds=options["timeout_s"]))
        status["stage"] = "compile"
        net = Network.load(work / "network.h5")
        sim = RankSim(net, rank, world, tuple(options["seeds"]), options["precision"],
                      int(options["capacity"]))

        def on_window(s: RankSim) -> None:
            if exit_at is not None and s.step >= exit_at:
                os._exit(17)

        status["stage"] = "run"
        t0 = time.perf_counter()
        sim.run(int(options["n_steps"]), gloo_exchange(world), on_window)
        wall = time.perf_counter() - t0
        status.update(ok=True, stage="done", wall_time_s=wall)
        if rank == 0:
            sim.results(wall, True).save(work / "results.h5")
    except Exception as exc:  # reported to the launcher, which names the rank
        status["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        if rank == 0 and sim is not None:
            sim.results(time.perf_counter() - t0, False,
                        failure=status["error"]).save(work / "results.h5")
    finally:
        if sim is not None:
            status.update(steps=sim.step, exchange_s=sim.stats.exchange_s,
                          exchanges=sim.stats.exchanges, overflows=sim.stats.overflows,
                          events=sim.stats.events, capacity=sim.stats.capacity,
                          neurons=sum(p.size for p in sim.pops.values()),
                          synapses=sum(int(p.indices.numel()) for p in sim.projs.values()))
        _write_json(work / f"status{rank}.json", status)
    if status["ok"]:
        dist.destroy_process_group()
    else:
        os._exit(EXIT_FAILED)  # skip the group's teardown: a peer may be gone


@dataclass
class RanksRunner:
    """Runs a network on ``ranks`` local processes; ``run(duration_ms) -> Results`` (one run
    call per runner: the rank processes end with it)."""

    network: Network
    ranks: int
    seeds: tuple[int, ...] = (0,)
    precision: str = "float32"
    timeout_s: float = 60.0
    capacity: int = DEFAULT_CAPACITY
    threads: int = 1
    engine: str = "eager"
    engine_note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.ranks, bool) or not isinstance(self.ranks, int) or self.ranks < 1:
            raise EvoSpikeError(f"--ranks must be a whole number of at least 1 "
                                f"(got {self.ranks!r})")
        if not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise EvoSpikeError(f"ranks: timeout_s must be a positive number of seconds "
                                f"(got {self.timeout_s!r})")
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int) \
                or self.capacity < 1:
            raise EvoSpikeError(f"ranks: capacity must be a whole number of at least 1 "
                                f"(got {self.capacity!r})")
        problems = rank_refusals(self.network, self.precision)
        if problems:
            raise UnsupportedError("torch --ranks", problems)
        self.engine_note = f"eager engine on {self.ranks} rank(s) (gloo)"
        self._ran = False
        self.pids: list[int] = []  # of the rank processes, once started

    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        if self._ran:
            raise EvoSpikeError("ranks: a RanksRunner runs once (its rank processes have ended)")
        self._ran = True
        n_steps = steps_for(duration_ms, self.network.dt_ms, self.network.name)
        with tempfile.TemporaryDirectory(prefix="evospike-ranks-") as workdir:
            return self._launch(Path(workdir), n_steps)

    def _launch(self, work: Path, n_steps: int) -> Results:
        self.network.save(work / "network.h5")
        options = {"seeds": list(self.seeds), "precision": self.precision,
                   "capacity": self.capacity, "timeout_s": float(self.timeout_s),
                   "n_steps": n_steps, "threads": self.threads}
        _write_json(work / "options.json", options)
        port = free_port()
        procs: list[subprocess.Popen] = []
        t0 = time.perf_counter()
        try:
            for r in range(self.ranks):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", __name__, str(r), str(self.ranks), str(port),
                     str(work)], stdin=subprocess.DEVNULL))
            failed = self._wait(procs)
        finally:
            _end(procs)
            self.pids = [p.pid for p in procs]
        wall = time.perf_counter() - t0
        status = [_read_status(work, r) for r in range(self.ranks)]
        results = Results.load(work / "results.h5") if (work / "results.h5").exists() else None
        if results is not None:
            results.meta["wall_time_s_launch"] = wall
            results.meta["exchange_s_per_rank"] = json.dumps(
                [s.get("exchange_s") if s else None for s in status])
        if failed is None:
            return results
        message = _failure_message(failed, procs, status, self.ranks, self.timeout_s)
        exc = EvoSpikeError(message)
        exc.partial = results  # type: ignore[attr-defined]
        raise exc

    def _wait(self, procs: list) -> int | None:
        """Until every rank has exited; the rank that failed first (None: all succeeded).
        Once one has failed the others get the collective timeout plus a grace period."""
        failed, deadline = None, None
        while True:
            codes = [p.poll() for p in procs]
            if failed is None:
                bad = [r for r, c in enumerate(codes) if c not in (None, 0)]
                if bad:
                    # of those gone at once, the one that left by itself, not by a peer's
                    # failure (its status says so), else the lowest rank
                    hard = [r for r in bad if codes[r] != EXIT_FAILED]
                    failed = (hard or bad)[0]
                    deadline = time.monotonic() + self.timeout_s + GRACE_S
            if all(c is not None for c in codes):
                return failed
            if deadline is not None and time.monotonic() > deadline:
                return failed
            time.sleep(0.05)


def _end(procs: list) -> None:
    """No rank outlives the launcher: terminate, then kill, whatever still runs."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5.0)


def _read_status(work: Path, rank: int) -> dict | None:
    path = work / f"status{rank}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _failure_message(failed: int, procs: list, status: list, ranks: int,
                     timeout_s: float) -> str:
    st = status[failed]
    code = procs[failed].returncode
    if st is not None and st.get("error") and code == EXIT_FAILED:
        own = st["error"]
        # a rank that failed in its own code (not in a collective a peer broke) is the cause
        hung = [r for r, p in enumerate(procs) if status[r] is None and r != failed]
        if hung:
            return (f"ranks: rank {hung[0]} of {ranks} stopped answering (no report within "
                    f"the {timeout_s:g} s collective timeout; ended by the launcher); "
                    f"rank {failed}: {own}")
        return f"ranks: rank {failed} of {ranks} failed: {own}"
    how = (f"was killed by signal {-code}" if code is not None and code < 0
           else f"exited with code {code}" if code is not None else "did not exit")
    return (f"ranks: rank {failed} of {ranks} died ({how}) before the run ended; the other "
            f"ranks were stopped")


def ranks_runner_for(args) -> Callable[[Network, tuple[int, ...]], RanksRunner]:
    """``evospike run --ranks N``: the options checked before the model is loaded (one line
    naming the option and the value), and what makes the runner once it is."""
    ranks = args.ranks
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise EvoSpikeError(f"--ranks must be a whole number of at least 1 (got {ranks!r})")
    timeout = args.rank_timeout
    if not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
        raise EvoSpikeError(f"--rank-timeout must be a positive number of seconds "
                            f"(got {timeout!r})")
    clashes = [(args.backend != "torch", f"--backend {args.backend} (ranks run torch)"),
               (args.engine == "native", "--engine native (ranks run the eager engine)"),
               (args.precision == "fixed", "--precision fixed (ranks run float32 or float64)"),
               (args.device not in (None, "cpu"), f"--device {args.device} (ranks run on the "
                                                  "CPU over gloo)"),
               (bool(getattr(args, "insight", False)), "--insight (not with --ranks)")]
    for bad, what in clashes:
        if bad:
            raise EvoSpikeError(f"--ranks {ranks}: cannot be combined with {what}")

    def make(net: Network, seeds: tuple[int, ...]) -> RanksRunner:
        return RanksRunner(net, ranks, tuple(seeds), args.precision or "float32",
                           timeout_s=float(timeout), threads=args.threads or 1)

    return make


if __name__ == "__main__":  # a rank, started by RanksRunner: RANK WORLD PORT WORKDIR
    _rank_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
               json.loads((Path(sys.argv[4]) / "options.json").read_text()))
