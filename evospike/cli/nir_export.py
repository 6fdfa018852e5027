"""``evospike export net.h5 -o model.nir [--extensions]``: write a network file as a NIR
graph (see docs/NIR.md for what NIR can hold)."""

from __future__ import annotations

import argparse

from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a network file as a NIR graph (.nir)")
    p.add_argument("network", help="network file (.h5)")
    p.add_argument("-o", "--out", required=True, help="NIR file to write (.nir)")
    p.add_argument("--extensions", action="store_true",
                   help="embed what NIR cannot hold (plasticity, processes, ...) as EvoSpike "
                        "metadata that 'evospike import' restores")
    p.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evospike.atomic import check_writable
    from evospike.ir.network import Network
    from evospike.nir import save

    if not str(args.out).endswith(".nir"):
        raise EvoSpikeError(f"export: -o must name a NIR file ending in .nir (got '{args.out}')")
    if Path(args.out).resolve() == Path(args.network).resolve():
        raise EvoSpikeError("export: -o would overwrite the network file")
    check_writable(args.out, "NIR file")
    net = Network.load(args.network)
    save(net, args.out, extensions=args.extensions)
    print(f"wrote {args.out}")
    return 0
