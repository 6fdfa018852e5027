"""A figure like Fig. 8 of Brunel (2000): for each state of examples/brunel.py, the spikes of 50
excitatory neurons above the population rate (0.1 ms bins, all neurons), over the last
``window`` ms of a run. Runs the four states on torch (eager engine), or reads results that
``evospike run`` wrote.

    python examples/brunel_figure.py --scale 0.25 --duration 600 --out brunel.png
    python examples/brunel_figure.py --results SR=sr.h5 AI=ai.h5 ... --out brunel.png

Each run's read-outs (`examples.brunel.signature`: rate, ISI CV, synchrony chi, rhythm) are
printed too. For one state's plain raster and rate, ``evospike plot r.h5 --t-start 500ms``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brunel import STATES, build, pooled_spikes, population_rate, signature  # noqa: E402

from evospike.errors import EvoSpikeError  # noqa: E402
from evospike.results import Results  # noqa: E402


def run_states(scale: float, duration_ms: float, schedule: str, seed: int) -> dict[str, Results]:
    """Each state of `STATES` run for ``duration_ms`` on torch eager (one trial, ``seed``)."""
    from evospike.backends import get_backend

    out = {}
    for state in STATES:
        net = build(state, scale=scale, schedule=schedule)
        print(f"{state}: {net.n_neurons} neurons, {net.n_synapses} synapses, "
              f"{duration_ms:g} ms ...", flush=True)
        out[state] = get_backend("torch").compile(net, engine="eager", seeds=(seed,),
                                                  progress=False).run(duration_ms)
    return out


def draw(results: dict[str, Results], window_ms: float, path: str) -> None:
    """One column per state: raster of 50 excitatory neurons over the rate; written to ``path``
    (the format its extension names)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(3.2 * len(results), 4.5),
                             gridspec_kw={"height_ratios": [3, 1]}, sharex="col",
                             squeeze=False)
    for col, (state, res) in enumerate(results.items()):
        start = max(0.0, res.duration_ms - window_ms)
        sig = signature(res, 0, min(start, res.duration_ms / 2))
        steps, neurons, size = pooled_spikes(res, 0)
        show = (neurons < 50) & (steps * res.dt_ms >= start)
        top, bottom = axes[0, col], axes[1, col]
        top.plot(steps[show] * res.dt_ms, neurons[show], "|", ms=3, color="k")
        top.set_title(f"{state}: {sig['rate_hz']:.1f} Hz, CV {sig['cv']:.2f}, "
                      f"chi {sig['chi']:.2f}", fontsize=8)
        top.set_yticks([])
        first = int(round(start / res.dt_ms))
        keep = steps >= first
        rate = population_rate(steps[keep] - first, size, res.dt_ms, res.n_steps - first)
        bottom.plot(start + np.arange(rate.size) * res.dt_ms, rate, lw=0.5, color="k")
        bottom.axhline(sig["rate_hz"], ls="--", lw=0.7, color="grey")
        bottom.set_xlabel("t (ms)")
        bottom.set_xlim(start, res.duration_ms)
    axes[1, 0].set_ylabel("rate (Hz)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.25)
    p.add_argument("--duration", type=float, default=600.0, help="ms")
    p.add_argument("--window", type=float, default=200.0, help="ms shown, at the end of the run")
    p.add_argument("--schedule", default="evospike", choices=["evospike", "brian2"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--results", nargs="*", default=None, metavar="STATE=FILE",
                   help="draw these results files instead of running")
    p.add_argument("--out", default="brunel.png")
    args = p.parse_args(argv)
    try:
        if args.results:
            results = {}
            for item in args.results:
                state, sep, path = item.partition("=")
                if not sep or state not in STATES:
                    raise EvoSpikeError(f"--results: expected STATE=FILE with STATE one of "
                                        f"{', '.join(STATES)} (got {item!r})")
                results[state] = Results.load(path)
        else:
            results = run_states(args.scale, args.duration, args.schedule, args.seed)
        for state, res in results.items():
            start = min(200.0, res.duration_ms / 2)
            sig = signature(res, 0, start)
            print(f"{state:7s} " + ", ".join(f"{k} {v:.3g}" for k, v in sig.items()))
        draw(results, args.window, args.out)
    except EvoSpikeError as exc:
        print(f"brunel_figure: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
