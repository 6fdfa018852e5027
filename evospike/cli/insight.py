"""``evospike insight RESULTS.h5``: explore a results file in a web page (the Insight Engine),
and the live page of ``evospike run MODEL --insight``."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from evospike.insight.server import DEFAULT_HOST, DEFAULT_PORT


def register(subparsers) -> None:
    p = subparsers.add_parser("insight", help="explore a results file in a web page (Dash): "
                                              "raster, rates, distributions, traces, weights")
    p.add_argument("results", help="results file (.h5) written by 'evospike run'")
    p.add_argument("--report", default=None,
                   help="also show a validation report (the report.json of 'evospike "
                        "validate'; the comparison.png beside it is shown too)")
    p.add_argument("--training", default=None,
                   help="also show a training run's curves (its metrics.json, or output dir)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to serve on (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to serve on (default {DEFAULT_HOST}: this machine only)")
    p.set_defaults(handler=insight_command)


def insight_command(args: argparse.Namespace) -> int:
    from evospike.insight import require_dash
    from evospike.insight.server import bind, check_port

    check_port(args.port)
    require_dash()
    from evospike.insight.app import Replay, build_app
    from evospike.insight.data import load_history, load_report, open_data

    # everything is read and checked before the page is served: a bad file is one line here,
    # not a broken page
    data = open_data(args.results)
    report = load_report(args.report) if args.report else None
    history = load_history(args.training) if args.training else None
    app = build_app(Replay(data), report, Path(args.report) if args.report else None,
                    history, Path(args.training) if args.training else None)
    server = bind(app, args.host, args.port)
    return _serve(server, f"{data.title()}")


def _serve(server, what: str) -> int:
    from evospike.insight.server import url_of

    print(f"Insight: {what}")
    print(f"serving {url_of(server)} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Insight: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


class LiveSession:
    """The page of ``evospike run --insight``: bound before the model is loaded, served from a
    background thread while the run feeds it, and kept up after the run until Ctrl-C."""

    def __init__(self, host: str, port: int, label: str, every_steps: int | None = None):
        from evospike.insight import require_dash
        from evospike.insight.live import check_every
        from evospike.insight.server import bind, check_port
        from evospike.run_loop import CHUNK_STEPS

        check_port(port, "--insight-port")
        self.every_steps = CHUNK_STEPS if every_steps is None else check_every(every_steps)
        require_dash()
        from evospike.insight.app import build_app
        from evospike.insight.live import LiveFeed, LiveStats

        self.feed = LiveFeed(label)
        self.stats = LiveStats()
        self.server = bind(build_app(self.feed), host, port, "--insight-port")
        self._thread: threading.Thread | None = None

    def run(self, runner, duration_ms: float, dt_ms: float):
        from evospike.insight.live import run_live
        from evospike.insight.server import serve_in_background, url_of

        self._thread = serve_in_background(self.server)
        print(f"Insight: following the run live at {url_of(self.server)}", file=sys.stderr,
              flush=True)
        return run_live(runner, duration_ms, dt_ms, self.feed, self.stats,
                        every_steps=self.every_steps)

    def linger(self) -> int:
        """Keep the page up until Ctrl-C; exit status 0 (the results are saved already)."""
        from evospike.insight.server import url_of

        print(f"Insight: the run is over; the page stays at {url_of(self.server)} "
              f"(Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("Insight: stopped", file=sys.stderr)
        finally:
            self.close()
        return 0

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()


def start_live(args: argparse.Namespace) -> LiveSession:
    return LiveSession(args.insight_host, args.insight_port, f"'{args.model}'",
                       getattr(args, "insight_every", None))
