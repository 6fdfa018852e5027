"""``evospike plot RESULTS``: raster and rate plot of a results file (PNG, PDF, SVG)."""

from __future__ import annotations

import argparse
from pathlib import Path

from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    plot = subparsers.add_parser("plot", help="raster and rate plot of a results file (PNG, PDF, "
                                              "SVG)")
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
    plot.set_defaults(handler=plot_command)


def plot_command(args: argparse.Namespace) -> int:
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
