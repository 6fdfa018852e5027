"""The ``evospike`` command line (``evospike --help`` lists the commands).

User errors (bad file, bad parameter, unknown backend) print one line and exit with status 2,
and are found before anything is simulated where they can be. An interrupted run (Ctrl-C,
SIGTERM from a cluster's time limit, SIGHUP from a closed terminal) saves what it recorded,
marked incomplete, and exits with 130 whichever of the three stopped it. Output cut short by a
closed pipe (``evospike info r.h5 | head -2``) exits quietly with 141, as the shell reports a
program killed by SIGPIPE."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from evospike.errors import EvoSpikeError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
#: seeds are stored as 64-bit signed integers in the results files
MAX_SEED = 2**63 - 1
#: torch CPU threads of the eager engine. One: its per-step tensors are small, and on a loaded
#: 2-core machine examples/epigenetic_gating.py (500 ms) ran 0.8 s with one thread and 9-19 s
#: with two. The native kernel and CUDA do not use these threads.
DEFAULT_THREADS = 1
BRIAN2_TARGETS = ["auto", "cython", "numpy", "cpp_standalone"]
#: modules contributing further subcommands (see ``_parser``)
COMMAND_MODULES: list[str] = [
    "evospike.backends.lava.setup_command",
    "evospike.training.cli",
    "evospike.energy_command",
    "evospike.map_command",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evospike", usage="evospike [-h] COMMAND ...",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # the command list is written into the description (one line each, see the end of this
    # function); argparse's own listing would repeat it, wrapped
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help=argparse.SUPPRESS)

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
    run.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                     help=f"torch CPU threads of the eager engine (default {DEFAULT_THREADS}: "
                          "faster than more for the small per-step tensors of most networks)")
    run.add_argument("--out", default="results.h5",
                     help="results file (default results.h5); checked to be writable, and not "
                          "to be the model, before the run")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    plot = sub.add_parser("plot", help="raster and rate plot of a results file (PNG, PDF, SVG)")
    plot.add_argument("results")
    plot.add_argument("-o", "--out", default=None,
                      help="figure file, .png, .pdf or .svg (default: the results file's name "
                           "with .png)")
    plot.add_argument("--trial", type=int, default=0)
    plot.add_argument("--max-neurons", type=int, default=500,
                      help="neurons shown per population in the raster")
    plot.add_argument("--t-start", default=None,
                      help="start of the plotted window, e.g. 200ms (default: 0)")
    plot.add_argument("--t-stop", default=None,
                      help="end of the plotted window, e.g. 1.5s (default: end of the run)")

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
    val.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                     help=f"torch CPU threads of the eager engine (default {DEFAULT_THREADS})")
    val.add_argument("--out-dir", default="validation",
                     help="folder for report.json, report.md and comparison.png; a folder that "
                          "already holds a report is refused unless --overwrite")
    val.add_argument("--overwrite", action="store_true",
                     help="replace the report already in --out-dir")
    val.add_argument("--no-progress", action="store_true")

    # Commands that live with their own subsystem: each module has
    # ``register(subparsers)``, which adds its parser and sets ``handler=`` in its defaults.
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    width = max(len(name) for name in sub.choices)
    commands = "\n".join(f"  {action.dest:<{width}}  {action.help}"
                         for action in sub._choices_actions)
    parser.description = (f"EvoSpike: simulate, validate, train and deploy spiking networks.\n\n"
                          f"commands:\n{commands}\n\n"
                          "'evospike COMMAND --help' shows a command's options.\n"
                          "Exit status: 0 done, 1 a check failed (validate, map), 2 user "
                          "error,\n130 interrupted (Ctrl-C, SIGTERM or SIGHUP; a run saves what "
                          "it recorded, marked\nincomplete), 141 output pipe closed.")
    return parser


def _run(args) -> int:
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
    _check_seeds(args.seed, args.trials)
    backend = get_backend(args.backend)
    if args.backend == "torch":
        _check_threads(args.threads)
        if args.device is not None:
            _check_torch_device(args.device)
    out = _check_out(args.out, args.model)
    net = load_model(args.model, dt)
    run_steps(duration, net.dt_ms, "--duration", args.duration)
    if not net.spike_monitors:
        net.record_spikes(*net.populations)
        print(f"note: the model records no spikes; recording all populations "
              f"({', '.join(net.populations)})", file=sys.stderr)
    seeds = tuple(range(args.seed, args.seed + args.trials))
    check_fits(estimate_memory(net, n_trials=len(seeds), duration_ms=duration), net.name)
    options = {key: getattr(args, key) for key in ("device", "precision", "engine", "target",
                                                        "select_tag", "plastic_weight_range")
               if getattr(args, key) is not None}
    with _torch_threads(args.threads if args.backend == "torch" else None) as threads:
        runner = backend.compile(net, seeds=seeds, progress=not args.no_progress, **options)
        if args.backend == "torch" and args.engine in (None, "auto"):
            _announce_native_fallback(getattr(runner, "engine_note", ""), args.precision,
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
            with _SIGNALS.deferred():
                partial.save(out)
            raise EvoSpikeError(f"{exc}; the {partial.meta['n_steps']} steps recorded before "
                                f"are saved in {out} (marked incomplete)") from None
    results.meta["model"] = str(args.model)
    if threads is not None:
        results.meta["threads"] = threads
    with _SIGNALS.deferred():  # a signal now must not cost the results already computed
        results.save(out)
    print(results.summary())
    print(f"wrote {out}")
    if not results.complete or _SIGNALS.received:
        cause = _SIGNALS.cause()
        print(f"interrupted{cause}: the results hold what was recorded until then"
              + ("" if results.complete else " (marked incomplete)"), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _check_seeds(seed: int, trials: int) -> None:
    last = seed + trials - 1
    if seed < 0 or last > MAX_SEED:
        raise EvoSpikeError(f"--seed {seed} with --trials {trials}: seeds must lie in "
                            f"0..{MAX_SEED} (results store them as 64-bit integers; the last "
                            f"trial's seed would be {last})")


def _check_threads(threads: int) -> None:
    if threads < 1:
        raise EvoSpikeError(f"--threads must be at least 1 (got {threads})")


def _check_torch_device(text: str) -> None:
    """Refuse a device the torch backend cannot run on, before the model is loaded."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise EvoSpikeError(f"--device {text!r} is not a torch device: "
                            f"{' '.join(str(exc).split())}") from None
    if device.type == "cpu":
        if device.index not in (None, 0):
            raise EvoSpikeError(f"--device {text!r}: the CPU takes no device index (it runs on "
                                "all of the CPU; use 'cpu' and --threads)")
    elif device.type == "cuda":
        if not torch.cuda.is_available():
            raise EvoSpikeError(f"--device {text!r}: CUDA is not available on this machine "
                                f"(torch {torch.__version__}); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise EvoSpikeError(f"--device {text!r}: this machine has {count} CUDA device(s), "
                                f"cuda:0 to cuda:{count - 1}")
    else:
        raise EvoSpikeError(f"--device {text!r}: the torch backend runs on 'cpu' or 'cuda' "
                            f"(or 'cuda:N'), not on '{device.type}'")


def _check_out(text: str, model: str) -> Path:
    """The results path, refused before the run if it is the model itself or not writable."""
    from evospike.atomic import check_writable

    if text.strip() and _same_file(Path(text), Path(model)):
        raise EvoSpikeError(f"--out '{text}' is the model file '{model}': the results would "
                            "replace the model; choose another --out")
    return check_writable(text, "--out")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():  # also through symlinks and relative paths
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[int | None]:
    """Run with ``threads`` torch CPU threads (None: leave torch alone); restores the previous
    count afterwards, for callers of `main` that go on using torch."""
    if threads is None:
        yield None
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _announce_native_fallback(engine_note: str, precision: str | None, engine: str) -> None:
    """Say on stderr when the torch backend runs its eager engine because the native kernel
    cannot be built: that is a fixable setup problem, and a 10-1000x slower run."""
    if engine != "eager" or precision == "fixed":
        return
    from evospike.backends.torch.native.build import NativeBuildError, load_kernel

    try:
        load_kernel(precision or "float32")
    except (NativeBuildError, OSError) as exc:
        reason = " ".join(str(exc).splitlines()[0].split()) if str(exc) else type(exc).__name__
        if engine_note and str(exc).splitlines()[0] not in engine_note:
            return  # the network keeps it off the kernel anyway; the build is not to blame
        print(f"evospike: note: the native CPU kernel cannot be built ({reason}), so the eager "
              "engine runs, often 10-1000x slower; to fix, install a C compiler (e.g. gcc) or "
              "set CC to one", file=sys.stderr)


class _Signals:
    """SIGTERM (a cluster's time limit) and SIGHUP (a closed terminal) stop a command the way
    Ctrl-C does: the first raises KeyboardInterrupt, which a runner turns into incomplete
    results. Later ones are only recorded, so that saving those results is not cut short;
    while results are saved (`deferred`), Ctrl-C is recorded too."""

    STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))

    def __init__(self) -> None:
        self.received: list[int] = []

    def cause(self) -> str:
        return f" by {signal.Signals(self.received[0]).name}" if self.received else ""

    def _interrupt(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def _record(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    @contextlib.contextmanager
    def _handling(self, signals: tuple[int, ...], handler) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may set handlers; a library caller keeps its own
            return
        previous = {sig: signal.signal(sig, handler) for sig in signals}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def interrupting(self) -> contextlib.AbstractContextManager[None]:
        self.received = []
        return self._handling(self.STOPPING, self._interrupt)

    def deferred(self) -> contextlib.AbstractContextManager[None]:
        return self._handling((signal.SIGINT, *self.STOPPING), self._record)


_SIGNALS = _Signals()


def _plot(args) -> int:
    from evospike.atomic import check_writable
    from evospike.plotting import figure_format, plot_window
    from evospike.results import Results
    from evospike.units import parse_duration_ms

    # everything that can be refused without the data is refused before reading it
    out = args.out or str(Path(args.results).with_suffix(".png"))
    figure_format(out)
    check_writable(out, "figure file")
    if args.max_neurons < 1:
        raise EvoSpikeError(f"--max-neurons must be at least 1 (got {args.max_neurons})")
    t_start = (parse_duration_ms(args.t_start, "--t-start", allow_zero=True)
               if args.t_start is not None else None)
    t_stop = (parse_duration_ms(args.t_stop, "--t-stop") if args.t_stop is not None else None)
    if t_start is not None and t_stop is not None and t_stop <= t_start:
        raise EvoSpikeError(f"plot window: --t-stop {t_stop:g} ms must be after --t-start "
                            f"{t_start:g} ms")
    results = Results.load(args.results)
    if not 0 <= args.trial < results.n_trials:
        raise EvoSpikeError(f"--trial {args.trial} is out of range: the file holds "
                            f"{results.n_trials} trial(s)")
    plot_window(results, t_start, t_stop, names=("--t-start", "--t-stop"))
    results.plot(out, trial=args.trial, max_neurons=args.max_neurons, t_start_ms=t_start,
                 t_stop_ms=t_stop)
    print(f"wrote {out}")
    return 0


def _info(args) -> int:
    import h5py

    from evospike.ir.network import Network
    from evospike.results import Results

    path = Path(args.path)
    if not path.exists():
        raise EvoSpikeError(f"'{path}' does not exist")
    if path.suffix == ".py":
        from evospike.model_loading import load_model

        _describe_with_memory(load_model(path))
        return 0
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
    except OSError as exc:
        raise EvoSpikeError(f"'{path}' is not an HDF5 file: {exc}") from None
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt == "evospike-network":
        _describe_with_memory(Network.load(path))
    elif fmt == "evospike-results":
        print(Results.load(path).summary())
    else:
        raise EvoSpikeError(f"'{path}' is neither an EvoSpike network nor a results file")
    return 0


def _describe_with_memory(net) -> None:
    """The network, then its memory estimate (one trial, one simulated second of recordings)
    against the memory this machine has available."""
    from evospike.memory_estimate import describe_memory, estimate_memory
    from evospike.model_loading import describe_network

    print(describe_network(net))
    print("memory estimate (1 trial, 1 s of recordings):")
    print(describe_memory(estimate_memory(net, n_trials=1, duration_ms=1000.0)))


def _options(args, backend: str) -> dict:
    """The CLI options that apply to ``backend`` (each backend refuses the others)."""
    per_backend = {"torch": ("device", "precision", "engine"), "brian2": ("target",),
                   "lava": ("select_tag",)}
    return {key: getattr(args, key) for key in per_backend.get(backend, ())
            if getattr(args, key, None) is not None}


#: what ``validate`` writes into --out-dir
REPORT_FILES = ("report.json", "report.md", "comparison.png")


def _validate(args) -> int:
    from evospike.atomic import check_writable_dir
    from evospike.model_loading import load_model
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
    if uses_torch:
        _check_threads(args.threads)
        if args.device is not None:
            _check_torch_device(args.device)
    out = check_writable_dir(args.out_dir, "--out-dir")
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not args.overwrite:
        raise EvoSpikeError(f"--out-dir '{args.out_dir}' already holds a report "
                            f"({', '.join(existing)}): pass --overwrite to replace it, or "
                            "choose another --out-dir")
    net = load_model(args.model)  # fail early, with one line, on a bad model file
    run_steps(duration, net.dt_ms, "--duration", args.duration)
    with _torch_threads(args.threads if uses_torch else None):
        if uses_torch and args.engine in (None, "auto"):
            _announce_native_fallback("", args.precision, "eager")
        runs = run_pair(lambda: _recording_all(load_model(args.model)), candidate=args.backend,
                        reference=args.against, duration_ms=duration, seed=args.seed,
                        n_reference_seeds=args.reference_seeds,
                        candidate_options=candidate_options,
                        reference_options=reference_options,
                        progress=not args.no_progress)
    interrupted = [r for r in (runs.candidate, runs.reference, *runs.reference_seeds)
                   if not r.complete]
    if interrupted or _SIGNALS.received:
        print(f"evospike: interrupted{_SIGNALS.cause()}: no report written", file=sys.stderr)
        return EXIT_INTERRUPTED
    report = validate_runs(runs, tolerance_steps=args.tolerance_steps, margin=args.margin)
    with _SIGNALS.deferred():
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


#: options whose value may look like a negative number or option ("--duration -5ms"); argparse
#: would read "-5ms" as an unknown option and say only "expected one argument"
_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _attach_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Rewrite ``--opt -5ms`` as ``--opt=-5ms`` for options that take one value, so the value
    reaches our own check and its one-line message."""
    takes_value: set[str] = set()
    known: set[str] = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            known.update(action.option_strings)
            if action.option_strings and action.nargs is None:
                takes_value.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (token in takes_value and following is not None and following not in known
                and _NEGATIVE_VALUE.match(following)):
            out.append(f"{token}={following}")
            i += 2
        else:
            out.append(token)
            i += 1
    return out


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (the BrokenPipeError was ours to expect,
    not another pipe's, such as a worker process's)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return True  # not a real file (a test's capture): the error came from writing to it
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _quiet_stdout() -> None:
    """Point stdout at /dev/null after the reader went away, so that Python's final flush at
    exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (a test's capture): nothing will flush it at exit


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_attach_negative_values(parser, list(
        sys.argv[1:] if argv is None else argv)))
    handlers = {"run": _run, "plot": _plot, "info": _info, "validate": _validate}
    handler = getattr(args, "handler", None) or handlers[args.command]
    try:
        with _SIGNALS.interrupting():
            code = handler(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except EvoSpikeError as exc:
        print(f"evospike: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"evospike: interrupted{_SIGNALS.cause()}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
