"""``evospike map MODEL --hardware loihi2``: the cores a network needs and the limits it
breaks (exit status 1 when it breaks one)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("map", help="cores a network needs on neuromorphic hardware and "
                                          "the limits it breaks")
    p.add_argument("model", help=".py file defining build() -> Network, or a saved network .h5")
    p.add_argument("--hardware", default="loihi2", choices=["loihi2"],
                   help="hardware profile (default loihi2)")
    p.add_argument("--limits", action="store_true", help="also print the profile's limits "
                                                          "and their sources")
    p.add_argument("--quantization", action="store_true",
                   help="also print the fixed-point form's quantization error of every "
                        "parameter (evospike.fixed_point, Loihi 2 profile)")
    p.set_defaults(handler=_map)


def _map(args: argparse.Namespace) -> int:
    from evospike.mapping import get_hardware, map_network
    from evospike.model_loading import load_model

    net = load_model(args.model)
    report = map_network(net, args.hardware)
    if args.limits:
        print(get_hardware(args.hardware).table())
    print(report.text())
    if args.quantization:
        from evospike.fixed_point import FixedPointUnsupported, quantize

        try:
            print("quantization (Loihi 2 fixed point), values in the float model's units:")
            print(quantize(net, "loihi2").error_table())
        except FixedPointUnsupported as exc:
            print(f"no fixed-point form: {exc}")
    return 0 if report.fits else 1
