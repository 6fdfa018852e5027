"""The ``evospike`` command line: `main` (in `evospike.cli.main`) assembles the parser from one
module per command (``run``, ``plot``, ``info``, ``validate``, ``setup``, ``train``,
``energy``, ``map``), each with ``register(subparsers)`` and its handler; the checks the
commands share are in `evospike.cli.checks`."""

from evospike.cli.main import main

__all__ = ["main"]
