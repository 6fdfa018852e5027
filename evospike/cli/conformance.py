"""``evospike conformance``: every conformance spec on every backend, printed as a matrix
(pass / refused with the backend's reason / FAIL); exit status 1 when a cell fails."""

from __future__ import annotations

import argparse
import shlex
import sys


def register(subparsers) -> None:
    from evospike.conformance.__main__ import add_arguments

    p = subparsers.add_parser("conformance", help="every node kind on every backend: pass, "
                                                  "refused (with the reason) or FAIL")
    add_arguments(p)
    p.set_defaults(handler=_conformance)


def _conformance(args: argparse.Namespace) -> int:
    from evospike.conformance.__main__ import run

    return run(args, shlex.join(["evospike", *sys.argv[1:]]))
