"""The ``evospike`` command line: run, plot, info.

User errors (bad file, bad parameter, unknown backend) print one line and exit with status 2;
an interrupted run (Ctrl-C) saves what it recorded, marked incomplete, and exits with 130."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from evospike.errors import EvoSpikeError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
BRIAN2_TARGETS = ["auto", "cython", "numpy", "cpp_standalone"]
#: modules contributing further subcommands (see ``_parser``)
COMMAND_MODULES: list[str] = [
    "evospike.backends.lava.setup_command",
    "evospike.training.cli",
    "evospike.energy_command",
    "evospike.map_command",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evospike", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a model and write results (HDF5)")
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
    run.add_argument("--out", default="results.h5", help="results file (default results.h5)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    plot = sub.add_parser("plot", help="raster and rate plot of a results file (PNG)")
    plot.add_argument("results")
    plot.add_argument("-o", "--out", default=None, help="PNG path (default: next to results)")
    plot.add_argument("--trial", type=int, default=0)
    plot.add_argument("--max-neurons", type=int, default=500,
                      help="neurons shown per population in the raster")

    info = sub.add_parser("info", help="describe a network or results file")
    info.add_argument("path")

    val = sub.add_parser("validate", help="compare a backend against the reference (Brian2)")
    val.add_argument("model", help=".py file defining build() -> Network, or a saved network .h5")
    val.add_argument("--against", default="brian2", help="reference backend (default brian2)")
    val.add_argument("--backend", default="torch", help="candidate backend (default torch)")
    val.add_argument("--duration", default="1000ms")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--reference-seeds", type=int, default=4,
                     help="further reference runs that set the seed-to-seed variability")
    val.add_argument("--tolerance-steps", type=int, default=1,
                     help="spike-time tolerance of the exact match, in steps")
    val.add_argument("--margin", type=float, default=2.0,
                     help="a statistic passes within margin x the largest seed-to-seed distance")
    val.add_argument("--precision", default="float64", choices=["float32", "float64", "fixed"],
                     help="candidate precision (torch)")
    val.add_argument("--engine", default=None, choices=["auto", "eager", "native"])
    val.add_argument("--device", default=None)
    val.add_argument("--target", default=None, choices=BRIAN2_TARGETS,
                     help="Brian2 code generation target")
    val.add_argument("--select-tag", default=None, choices=["fixed_pt", "floating_pt"],
                     help="lava: Loihi2SimCfg select_tag (default fixed_pt)")
    val.add_argument("--out-dir", default="validation",
                     help="folder for report.json, report.md and comparison.png")
    val.add_argument("--no-progress", action="store_true")

    # Commands that live with their own subsystem: each module has
    # ``register(subparsers)``, which adds its parser and sets ``handler=`` in its defaults.
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def _run(args) -> int:
    from evospike.backends import get_backend
    from evospike.model_loading import load_model
    from evospike.units import parse_duration_ms

    duration = parse_duration_ms(args.duration, "--duration")
    dt = parse_duration_ms(args.dt, "--dt") if args.dt is not None else None
    if args.trials < 1:
        raise EvoSpikeError(f"--trials must be at least 1 (got {args.trials})")
    backend = get_backend(args.backend)
    net = load_model(args.model, dt)
    if not net.spike_monitors:
        net.record_spikes(*net.populations)
        print(f"note: the model records no spikes; recording all populations "
              f"({', '.join(net.populations)})", file=sys.stderr)
    seeds = tuple(range(args.seed, args.seed + args.trials))
    options = {key: getattr(args, key) for key in ("device", "precision", "engine", "target",
                                                        "select_tag", "plastic_weight_range")
               if getattr(args, key) is not None}
    runner = backend.compile(net, seeds=seeds, progress=not args.no_progress, **options)
    results = runner.run(duration)
    results.meta["model"] = str(args.model)
    results.save(args.out)
    print(results.summary())
    print(f"wrote {args.out}")
    if not results.complete:
        print("interrupted: the results hold what was recorded until then (marked incomplete)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _plot(args) -> int:
    from evospike.results import Results

    results = Results.load(args.results)
    if not 0 <= args.trial < results.n_trials:
        raise EvoSpikeError(f"--trial {args.trial} is out of range: the file holds "
                            f"{results.n_trials} trial(s)")
    out = args.out or str(Path(args.results).with_suffix(".png"))
    results.plot(out, trial=args.trial, max_neurons=args.max_neurons)
    print(f"wrote {out}")
    return 0


def _info(args) -> int:
    import h5py

    from evospike.ir.network import Network
    from evospike.model_loading import describe_network
    from evospike.results import Results

    path = Path(args.path)
    if not path.exists():
        raise EvoSpikeError(f"'{path}' does not exist")
    if path.suffix == ".py":
        from evospike.model_loading import load_model

        print(describe_network(load_model(path)))
        return 0
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
    except OSError as exc:
        raise EvoSpikeError(f"'{path}' is not an HDF5 file: {exc}") from None
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt == "evospike-network":
        print(describe_network(Network.load(path)))
    elif fmt == "evospike-results":
        print(Results.load(path).summary())
    else:
        raise EvoSpikeError(f"'{path}' is neither an EvoSpike network nor a results file")
    return 0


def _options(args, backend: str) -> dict:
    """The CLI options that apply to ``backend`` (each backend refuses the others)."""
    per_backend = {"torch": ("device", "precision", "engine"), "brian2": ("target",),
                   "lava": ("select_tag",)}
    return {key: getattr(args, key) for key in per_backend.get(backend, ())
            if getattr(args, key, None) is not None}


def _validate(args) -> int:
    from evospike.model_loading import load_model
    from evospike.units import parse_duration_ms
    from evospike.validation.runs import run_pair, validate_runs

    duration = parse_duration_ms(args.duration, "--duration")
    load_model(args.model)  # fail early, with one line, on a bad model file
    runs = run_pair(lambda: _recording_all(load_model(args.model)), candidate=args.backend,
                    reference=args.against, duration_ms=duration, seed=args.seed,
                    n_reference_seeds=args.reference_seeds,
                    candidate_options=_options(args, args.backend),
                    reference_options=_options(args, args.against),
                    progress=not args.no_progress)
    report = validate_runs(runs, tolerance_steps=args.tolerance_steps, margin=args.margin)
    out = Path(args.out_dir)
    report.to_json(out / "report.json")
    report.to_markdown(out / "report.md")
    report.plot(out / "comparison.png")
    kind = ("feed-forward: exact agreement required" if runs.require_exact else
            f"recurrent ({', '.join(runs.recurrent)}): verdict on the statistics")
    print(f"{args.backend} against {args.against}, {kind}")
    print(report.table())
    print(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'comparison.png'}")
    return report.exit_status()


def _recording_all(net):
    if not net.spike_monitors:
        net.record_spikes(*net.populations)
    return net


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"run": _run, "plot": _plot, "info": _info, "validate": _validate}
    handler = getattr(args, "handler", None) or handlers[args.command]
    try:
        return handler(args)
    except EvoSpikeError as exc:
        print(f"evospike: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("evospike: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
