"""``evospike run MODEL``: simulate a model on a backend and write its results (HDF5)."""

from __future__ import annotations

import argparse
import sys

from evospike.cli.checks import (
    BRIAN2_TARGETS,
    DEFAULT_THREADS,
    announce_native_fallback,
    check_out,
    check_seeds,
    check_threads,
    check_torch_device,
    torch_threads,
)
from evospike.cli.main import EXIT_INTERRUPTED, SIGNALS
from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="simulate a model and write results (HDF5)")
    run.add_argument("model", help=".py file defining build() -> Network, or a saved network .h5")
    run.add_argument("--backend", default="torch", help="backend to run on (default: torch)")
    run.add_argument("--device", default=None, help="torch device: cpu, cuda, cuda:1, ...")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a keyword argument of the model's build(), e.g. --param scale=0.1 "
                          "(repeatable)")
    run.add_argument("--duration", default="1000ms", help="simulated time, e.g. 1000ms or 2s")
    run.add_argument("--dt", default=None, help="time step, e.g. 0.1ms (default: the model's)")
    run.add_argument("--seed", type=int, default=0, help="seed of the first trial")
    run.add_argument("--trials", type=int, default=1,
                     help="independent trials run as a batch (seeds seed, seed+1, ...)")
    run.add_argument("--precision", default=None, choices=["float32", "float64", "fixed"],
                     help="torch: float32 (default), float64 or fixed (Loihi 2's integer "
                          "arithmetic, bit-exact with Lava fixed_pt); brian2 runs float64")
    run.add_argument("--engine", default=None, choices=["auto", "eager", "native", "device"],
                     help="torch engine: native CPU kernel, eager torch ops, device (static "
                          "shapes, the GPU strategy), or auto")
    run.add_argument("--target", default=None, choices=BRIAN2_TARGETS,
                     help="brian2 code generation target (default: cython if it works)")
    run.add_argument("--select-tag", default=None, choices=["fixed_pt", "floating_pt"],
                     help="lava: Loihi2SimCfg select_tag (default fixed_pt)")
    run.add_argument("--plastic-weight-range", default=None, choices=["w_max", "initial"],
                     help="lava and torch fixed: 8-bit weights of plastic projections span "
                          "[0, w_max] (default) or are sized from the initial weights")
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads: torch's native kernel uses at most this many (default: "
                          "every core), its eager engine this many torch threads (default "
                          f"{DEFAULT_THREADS}: faster than more for the small per-step tensors "
                          f"of most networks); nest: local_num_threads (default "
                          f"{DEFAULT_THREADS})")
    run.add_argument("--ranks", type=int, default=None,
                     help="torch: partition the network over this many local processes "
                          "(gloo), spikes exchanged once per minimum delay; the same spikes "
                          "for any number of ranks (docs/SCALING.md)")
    run.add_argument("--rank-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="--ranks: timeout of every collective; a rank that dies or stops "
                          "answering ends the run within it (default 60)")
    run.add_argument("--out", default="results.h5",
                     help="results file (default results.h5); checked to be writable, and not "
                          "to be the model, before the run")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--insight", action="store_true",
                     help="follow the run live in the Insight web page (Dash), which stays up "
                          "after the run until Ctrl-C")
    run.add_argument("--insight-port", type=int, default=8050,
                     help="port of the --insight page (default 8050; 0: any free port)")
    run.add_argument("--insight-host", default="127.0.0.1",
                     help="address of the --insight page (default 127.0.0.1)")
    run.add_argument("--insight-every", type=int, default=None, metavar="STEPS",
                     help="hand the --insight page new data every STEPS steps (default 1000, "
                          "a run chunk; lengthened when publishing would cost over 2 %%)")
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from evospike.backends import get_backend
    from evospike.memory_estimate import check_fits, estimate_memory
    from evospike.model_loading import load_model, parse_params
    from evospike.units import parse_duration_ms, run_steps

    # everything that can be refused without the model is refused before loading it, and
    # everything else before compiling: a mistake must not cost a simulation
    duration = parse_duration_ms(args.duration, "--duration")
    dt = parse_duration_ms(args.dt, "--dt") if args.dt is not None else None
    if args.trials < 1:
        raise EvoSpikeError(f"--trials must be at least 1 (got {args.trials})")
    check_seeds(args.seed, args.trials)
    backend = get_backend(args.backend)
    if args.backend in ("torch", "nest") and args.threads is not None:
        check_threads(args.threads)
    if args.backend == "torch":
        if args.device is not None:
            check_torch_device(args.device)
    ranks_runner = None
    if args.ranks is not None:  # partitioned over local processes: options checked now
        from evospike.backends.torch.distributed import ranks_runner_for

        ranks_runner = ranks_runner_for(args)
    out = check_out(args.out, args.model)
    live = _start_live(args) if args.insight else None  # its port is checked before the model
    net = load_model(args.model, dt, parse_params(args.param))
    run_steps(duration, net.dt_ms, "--duration", args.duration)
    if not net.populations and not net.sources:
        raise EvoSpikeError(f"model '{args.model}': network '{net.name}' has no populations "
                            "or spike sources: there is nothing to simulate")
    note = None
    if not net.spike_monitors:
        net.record_spikes(*net.populations)
        note = (f"note: the model records no spikes; recording all populations "
                f"({', '.join(net.populations)})")
    seeds = tuple(range(args.seed, args.seed + args.trials))
    check_fits(estimate_memory(net, n_trials=len(seeds), duration_ms=duration), net.name)
    if note:  # after the memory check: a refused run prints its one error line alone
        print(note, file=sys.stderr)
    options = {key: getattr(args, key) for key in ("device", "precision", "engine", "target",
                                                        "select_tag", "plastic_weight_range")
               if getattr(args, key) is not None}
    if args.backend == "nest":
        options["threads"] = args.threads or DEFAULT_THREADS  # NEST's local_num_threads
    if args.backend == "torch" and args.threads is not None:
        options["threads"] = args.threads  # the native kernel's most threads
    eager_threads = args.threads or DEFAULT_THREADS
    with torch_threads(eager_threads if args.backend == "torch" else None) as threads:
        runner = (backend.compile(net, seeds=seeds, progress=not args.no_progress, **options)
                  if ranks_runner is None else ranks_runner(net, seeds))
        if args.backend == "torch" and args.engine in (None, "auto"):
            announce_native_fallback(getattr(runner, "engine_note", ""), args.precision,
                                      getattr(runner, "engine", ""))
        try:
            results = (runner.run(duration) if live is None
                       else live.run(runner, duration, net.dt_ms))
        except EvoSpikeError as exc:
            # a backend that failed mid-run may hand back what it had recorded (the Lava
            # backend's WorkerError.partial): saved, marked incomplete, before the error
            partial = getattr(exc, "partial", None)
            if partial is None:
                raise
            partial.meta["model"] = str(args.model)
            with SIGNALS.deferred():
                partial.save(out)
            raise EvoSpikeError(f"{exc}; the {partial.meta['n_steps']} steps recorded before "
                                f"are saved in {out} (marked incomplete)") from None
    results.meta["model"] = str(args.model)
    if threads is not None:  # the torch runner says itself how many threads ran
        results.meta.setdefault("threads", threads)
    with SIGNALS.deferred():  # a signal now must not cost the results already computed
        results.save(out)
    print(results.summary())
    print(f"wrote {out}")
    if not results.complete or SIGNALS.received:
        cause = SIGNALS.cause()
        print(f"interrupted{cause}: the results hold what was recorded until then"
              + ("" if results.complete else " (marked incomplete)"), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if live is None else live.linger()


def _start_live(args: argparse.Namespace):
    from evospike.cli.insight import start_live

    return start_live(args)
