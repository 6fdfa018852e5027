"""``evospike validate MODEL``: compare a backend against the reference (Brian2) and write a
report (exit status 1 when the comparison fails)."""

from __future__ import annotations

import argparse
import sys

from evospike.cli.checks import (
    BRIAN2_TARGETS,
    DEFAULT_THREADS,
    announce_native_fallback,
    check_threads,
    check_torch_device,
    torch_threads,
)
from evospike.cli.main import EXIT_INTERRUPTED, SIGNALS
from evospike.errors import EvoSpikeError

#: what ``validate`` writes into --out-dir
REPORT_FILES = ("report.json", "report.md", "comparison.png")


def register(subparsers) -> None:
    val = subparsers.add_parser("validate", help="compare a backend against the reference "
                                                 "(Brian2)")
    val.add_argument("model", help=".py file defining build() -> Network, or a saved network .h5")
    val.add_argument("--against", default="brian2", help="reference backend (default brian2)")
    val.add_argument("--backend", default="torch", help="candidate backend (default torch)")
    val.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a keyword argument of the model's build(), e.g. --param scale=0.1 "
                          "(repeatable)")
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
    val.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                     help=f"torch CPU threads of the eager engine, NEST's local_num_threads "
                          f"(default {DEFAULT_THREADS})")
    val.add_argument("--out-dir", default="validation",
                     help="folder for report.json, report.md and comparison.png; a folder that "
                          "already holds a report is refused unless --overwrite")
    val.add_argument("--overwrite", action="store_true",
                     help="replace the report already in --out-dir")
    val.add_argument("--no-progress", action="store_true")
    val.set_defaults(handler=validate_command)


def _options(args, backend: str) -> dict:
    """The CLI options that apply to ``backend`` (each backend refuses the others)."""
    per_backend = {"torch": ("device", "precision", "engine"), "brian2": ("target",),
                   "lava": ("select_tag",), "nest": ("threads",)}
    return {key: getattr(args, key) for key in per_backend.get(backend, ())
            if getattr(args, key, None) is not None}


def validate_command(args: argparse.Namespace) -> int:
    from evospike.atomic import check_writable_dir
    from evospike.model_loading import load_model, parse_params
    from evospike.units import parse_duration_ms, run_steps
    from evospike.validation.runs import check_options, run_pair, validate_runs

    # every option is checked before the first simulation: a validation can run for minutes
    duration = parse_duration_ms(args.duration, "--duration")
    candidate_options = _options(args, args.backend)
    reference_options = _options(args, args.against)
    check_options(candidate=args.backend, reference=args.against,
                  candidate_options=candidate_options, reference_options=reference_options,
                  seed=args.seed, n_reference_seeds=args.reference_seeds,
                  tolerance_steps=args.tolerance_steps, margin=args.margin)
    uses_torch = "torch" in (args.backend, args.against)
    if uses_torch or "nest" in (args.backend, args.against):
        check_threads(args.threads)
    if uses_torch and args.device is not None:
        check_torch_device(args.device)
    out = check_writable_dir(args.out_dir, "--out-dir")
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not args.overwrite:
        raise EvoSpikeError(f"--out-dir '{args.out_dir}' already holds a report "
                            f"({', '.join(existing)}): pass --overwrite to replace it, or "
                            "choose another --out-dir")
    params = parse_params(args.param)
    net = load_model(args.model, params=params)  # fail early, with one line, on a bad model file
    run_steps(duration, net.dt_ms, "--duration", args.duration)
    with torch_threads(args.threads if uses_torch else None):
        if uses_torch and args.engine in (None, "auto"):
            announce_native_fallback("", args.precision, "eager")
        runs = run_pair(lambda: _recording_all(load_model(args.model, params=params)),
                        candidate=args.backend,
                        reference=args.against, duration_ms=duration, seed=args.seed,
                        n_reference_seeds=args.reference_seeds,
                        candidate_options=candidate_options,
                        reference_options=reference_options,
                        progress=not args.no_progress)
    interrupted = [r for r in (runs.candidate, runs.reference, *runs.reference_seeds)
                   if not r.complete]
    if interrupted or SIGNALS.received:
        print(f"evospike: interrupted{SIGNALS.cause()}: no report written", file=sys.stderr)
        return EXIT_INTERRUPTED
    report = validate_runs(runs, tolerance_steps=args.tolerance_steps, margin=args.margin)
    with SIGNALS.deferred():
        report.to_json(out / "report.json")
        report.to_markdown(out / "report.md")
        report.plot(out / "comparison.png")
    kind = ("feed-forward: exact agreement required" if runs.require_exact else
            f"recurrent ({', '.join(runs.recurrent)}): verdict on the statistics")
    print(f"{args.backend} against {args.against}, {kind}")
    print(f"schedule {runs.reference.schedule}" + (
        " (Brian2 ran untouched, in its default schedule)"
        if runs.reference.schedule == "brian2" and args.against == "brian2" else ""))
    print(report.table())
    print(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'comparison.png'}")
    return report.exit_status()


def _recording_all(net):
    if not net.spike_monitors:
        net.record_spikes(*net.populations)
    return net
