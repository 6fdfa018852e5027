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
    run.add_argument("--duration", default="1000ms", help="simulated time, e.g. 1000ms or 2s")
    run.add_argument("--dt", default=None, help="time step, e.g. 0.1ms (default: the model's)")
    run.add_argument("--seed", type=int, default=0, help="seed of the first trial")
    run.add_argument("--trials", type=int, default=1,
                     help="independent trials run as a batch (seeds seed, seed+1, ...)")
    run.add_argument("--precision", default=None, choices=["float32", "float64", "fixed"],
                     help="torch: float32 (default), float64 or fixed (Loihi 2's integer "
                          "arithmetic, bit-exact with Lava fixed_pt); brian2 runs float64")
    run.add_argument("--engine", default=None, choices=["auto", "eager", "native"],
                     help="torch engine: native CPU kernel, eager torch ops, or auto")
    run.add_argument("--target", default=None, choices=BRIAN2_TARGETS,
                     help="brian2 code generation target (default: cython if it works)")
    run.add_argument("--select-tag", default=None, choices=["fixed_pt", "floating_pt"],
                     help="lava: Loihi2SimCfg select_tag (default fixed_pt)")
    run.add_argument("--plastic-weight-range", default=None, choices=["w_max", "initial"],
                     help="lava and torch fixed: 8-bit weights of plastic projections span "
                          "[0, w_max] (default) or are sized from the initial weights")
    run.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                     help=f"torch CPU threads of the eager engine (default {DEFAULT_THREADS}: "
                          "faster than more for the small per-step tensors of most networks)")
    run.add_argument("--out", default="results.h5",
                     help="results file (default results.h5); checked to be writable, and not "
                          "to be the model, before the run")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from evospike.backends import get_backend
    from evospike.memory_estimate import check_fits, estimate_memory
    from evospike.model_loading import load_model
    from evospike.units import parse_duration_ms, run_steps

    # everything that can be refused without the model is refused before loading it, and
    # everything else before compiling: a mistake must not cost a simulation
    duration = parse_duration_ms(args.duration, "--duration")
    dt = parse_duration_ms(args.dt, "--dt") if args.dt is not None else None
    if args.trials < 1:
        raise EvoSpikeError(f"--trials must be at least 1 (got {args.trials})")
    check_seeds(args.seed, args.trials)
    backend = get_backend(args.backend)
    if args.backend == "torch":
        check_threads(args.threads)
        if args.device is not None:
            check_torch_device(args.device)
    out = check_out(args.out, args.model)
    net = load_model(args.model, dt)
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
    with torch_threads(args.threads if args.backend == "torch" else None) as threads:
        runner = backend.compile(net, seeds=seeds, progress=not args.no_progress, **options)
        if args.backend == "torch" and args.engine in (None, "auto"):
            announce_native_fallback(getattr(runner, "engine_note", ""), args.precision,
                                      getattr(runner, "engine", ""))
        try:
            results = runner.run(duration)
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
    if threads is not None:
        results.meta["threads"] = threads
    with SIGNALS.deferred():  # a signal now must not cost the results already computed
        results.save(out)
    print(results.summary())
    print(f"wrote {out}")
    if not results.complete or SIGNALS.received:
        cause = SIGNALS.cause()
        print(f"interrupted{cause}: the results hold what was recorded until then"
              + ("" if results.complete else " (marked incomplete)"), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
