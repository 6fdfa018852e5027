"""``evospike import MODEL.nir --dt 0.1ms -o net.h5``: read a NIR graph into a network file
(see docs/NIR.md for the conventions)."""

from __future__ import annotations

import argparse

from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    from evospike.nir.conventions import (
        ARITHMETIC,
        DISCRETISATIONS,
        PRESETS,
        RESETS,
        SPIKE_AT,
        W_IN,
    )

    p = subparsers.add_parser("import", help="read a NIR graph (.nir) into a network file")
    p.add_argument("model", help="NIR file (HDF5, as nir.write makes)")
    p.add_argument("-o", "--out", required=True, help="network file to write (.h5)")
    p.add_argument("--dt", default=None,
                   help="time step the graph is read at, e.g. 0.1ms (default: the graph's "
                        "metadata dt; snnTorch's exporter assumes 0.1ms)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="an exporter's conventions (default: snntorch)")
    p.add_argument("--discretisation", choices=DISCRETISATIONS, default=None)
    p.add_argument("--reset", choices=RESETS, default=None)
    p.add_argument("--w-in", choices=W_IN, default=None, help="CubaLIF input weight reading")
    p.add_argument("--recurrent-delay", type=int, default=None,
                   help="steps an edge that closes a cycle waits (default 1)")
    p.add_argument("--arithmetic", choices=ARITHMETIC, default=None)
    p.add_argument("--spike-at", choices=SPIKE_AT, default=None,
                   help="v > threshold (NIR) or v >= threshold (SpikingJelly)")
    p.add_argument("--max-synapses", type=int, default=None,
                   help="largest projection a convolution may unroll into")
    p.add_argument("--name", default=None, help="network name (default: nir)")
    p.add_argument("--input-spikes", default=None, metavar="SPIKES.npy",
                   help="a spike train for the graph's Input, shape (time, n_in) of 0/1 "
                        "(NumPy .npy, no pickles): the network file then runs and validates "
                        "on any backend (evospike run / validate)")
    p.add_argument("--input", default=None,
                   help="the Input that --input-spikes drives, where the graph has several")
    p.add_argument("--loihi", action="store_true",
                   help="in the form Loihi 2 (the lava backend) carries: inputs of neurons "
                        "without a synaptic current moved from v to u (the same run); what "
                        "cannot move is refused by name (evospike.nir.for_loihi)")
    p.set_defaults(handler=import_command)


def import_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evospike.atomic import check_writable
    from evospike.nir import conventions_for, for_loihi, load, with_input_spikes
    from evospike.units import parse_duration_ms

    options = {k: v for k, v in (("discretisation", args.discretisation),
                                 ("reset", args.reset), ("w_in", args.w_in),
                                 ("recurrent_delay_steps", args.recurrent_delay),
                                 ("arithmetic", args.arithmetic),
                                 ("spike_at", args.spike_at),
                                 ("max_synapses", args.max_synapses)) if v is not None}
    # options, the time step and the output path are checked before the graph is read
    conventions_for(args.preset, **options)
    dt_ms = parse_duration_ms(args.dt, "--dt") if args.dt is not None else None
    if not str(args.out).endswith(".h5"):
        raise EvoSpikeError(f"import: -o must name a network file ending in .h5 "
                            f"(got '{args.out}')")
    if not Path(args.model).is_file():
        raise EvoSpikeError(f"NIR file '{args.model}': no such file")
    spikes = None
    if args.input_spikes is not None:
        spikes = _read_spikes(args.input_spikes)
    check_writable(args.out, "network file")
    net = load(args.model, dt_ms, preset=args.preset, name=args.name, **options)
    if spikes is not None:
        with_input_spikes(net, spikes, args.input)
        net.metadata["nir"]["input_spikes"]["file"] = str(args.input_spikes)
    if args.loihi:
        for_loihi(net)
    net.save(args.out)
    meta = net.metadata.get("nir", {})
    print(f"wrote {args.out}: {len(net.populations)} populations, {net.n_synapses} synapses, "
          f"dt {net.dt_ms:g} ms, outputs {sorted(meta.get('outputs', {}))}")
    return 0


def _read_spikes(path: str):
    """A .npy array, read without pickles (a file we read never runs code)."""
    from pathlib import Path

    import numpy as np

    if not Path(path).is_file():
        raise EvoSpikeError(f"input spikes file '{path}': no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        text = " ".join(str(exc).split())
        raise EvoSpikeError(f"input spikes file '{path}': not a NumPy .npy array ({text})") \
            from None
