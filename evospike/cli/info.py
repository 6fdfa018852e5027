"""``evospike info PATH``: describe a network (with its memory estimate) or a results file."""

from __future__ import annotations

import argparse
from pathlib import Path

from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    info = subparsers.add_parser("info", help="describe a network or results file")
    info.add_argument("path")
    info.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a keyword argument of the model's build(), e.g. --param scale=0.1 "
                           "(repeatable; .py models only)")
    info.set_defaults(handler=info_command)


def info_command(args: argparse.Namespace) -> int:
    import h5py

    from evospike.ir.network import Network
    from evospike.results import Results

    path = Path(args.path)
    if not path.exists():
        raise EvoSpikeError(f"'{path}' does not exist")
    if path.is_dir():
        raise EvoSpikeError(f"'{path}' is a folder, not a network or results file")
    if args.param and path.suffix != ".py":
        raise EvoSpikeError(f"--param: '{path}' is not a .py model (parameters go to its build())")
    if path.suffix == ".py":
        from evospike.model_loading import load_model, parse_params

        _describe_with_memory(load_model(path, params=parse_params(args.param)))
        return 0
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
    except OSError as exc:
        reason = " ".join(str(exc).split())  # HDF5's messages can span lines
        raise EvoSpikeError(f"'{path}' is not an HDF5 file: {reason}") from None
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt == "evospike-network":
        _describe_with_memory(Network.load(path))
    elif fmt == "evospike-results":
        print(Results.load(path).summary())
    else:
        raise EvoSpikeError(f"'{path}' is neither an EvoSpike network nor a results file "
                            f"(format attribute: {fmt!r})")
    return 0


def _describe_with_memory(net) -> None:
    """The network, then its memory estimate (one trial, one simulated second of recordings)
    against the memory this machine has available."""
    from evospike.memory_estimate import describe_memory, estimate_memory
    from evospike.model_loading import describe_network

    print(describe_network(net))
    print("memory estimate (1 trial, 1 s of recordings):")
    print(describe_memory(estimate_memory(net, n_trials=1, duration_ms=1000.0)))
