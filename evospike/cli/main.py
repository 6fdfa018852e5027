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
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator

from evospike.errors import EvoSpikeError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def _command_modules() -> tuple:
    """The modules of the commands, in the order ``evospike --help`` lists them; each has
    ``register(subparsers)``, which adds its parser and sets ``handler=`` in its defaults."""
    # imported here, not at the top: the commands import this module (SIGNALS, exit codes)
    from evospike.cli import (
        conformance,
        energy,
        info,
        insight,
        nir_export,
        nir_import,
        plot,
        run,
        setup,
        train,
        validate,
    )
    from evospike.cli import map as map_command

    return (run, plot, info, validate, setup, train, energy, map_command, conformance,
            nir_import, nir_export, insight)


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (an unknown option, a bad choice, a missing argument) as one
    `EvoSpikeError` line: argparse would print the whole usage first, over several lines.
    Subparsers are made of this class too (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str):
        # prog of a subparser is "evospike [-h] COMMAND ... run" (from the custom usage)
        command = self.prog.split()[-1] if self.prog != "evospike" else ""
        where = f"{command}: " if command else ""
        helper = f"evospike {command} --help" if command else "evospike --help"
        raise EvoSpikeError(f"{where}{' '.join(message.split())} (see '{helper}')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evospike", usage="evospike [-h] COMMAND ...",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # the command list is written into the description (one line each, see the end of this
    # function); argparse's own listing would repeat it, wrapped
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help=argparse.SUPPRESS)
    for module in _command_modules():
        module.register(sub)
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


#: the signal handling of the command running now (its handler saves results `deferred`)
SIGNALS = _Signals()


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


def _print_error(exc: EvoSpikeError) -> None:
    """The error as one line: a message that spans lines (a reason quoted from a library) is
    joined, so the promise `evospike: error: ...` on one line holds for every error."""
    print(f"evospike: error: {' '.join(str(exc).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(_attach_negative_values(parser, list(
            sys.argv[1:] if argv is None else argv)))
    except EvoSpikeError as exc:
        _print_error(exc)
        return EXIT_USER_ERROR
    try:
        with SIGNALS.interrupting():
            code = args.handler(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except EvoSpikeError as exc:
        _print_error(exc)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"evospike: interrupted{SIGNALS.cause()}", file=sys.stderr)
        return EXIT_INTERRUPTED
