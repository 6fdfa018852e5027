"""The firing patterns of the adaptive exponential integrate-and-fire neuron (AdEx).

Five parameter sets from Naud, Marcille, Clopath & Gerstner (2008), Biol Cybern 99:335,
Table 1, each driven by its step current from 50 ms on: tonic spiking, adaptation, initial
burst, regular bursting and irregular spiking. One population holds one neuron per set (every
AdEx parameter may be an array with a value per neuron).

    python examples/adex_patterns.py                 # writes adex_patterns.png
    evospike run examples/adex_patterns.py --duration 550ms --precision float64 --out p.h5

The torch backend runs it on its eager engine (the native C kernel does not carry AdEx and
says so in the results' engine note); ``--backend brian2`` runs Brian2's own equations.
"""

from __future__ import annotations

import sys

import numpy as np

from evospike import AdEx, Network

ONSET_MS = 50.0
#: name -> C pF, g_L nS, E_L mV, V_T mV, Delta_T mV, a nS, tau_w ms, b pA, V_reset mV, I pA
PATTERNS = {
    "tonic": (200.0, 10.0, -70.0, -50.0, 2.0, 2.0, 30.0, 0.0, -58.0, 500.0),
    "adapting": (200.0, 12.0, -70.0, -50.0, 2.0, 2.0, 300.0, 60.0, -58.0, 500.0),
    "initial burst": (130.0, 18.0, -58.0, -50.0, 2.0, 4.0, 150.0, 120.0, -50.0, 400.0),
    "regular bursting": (200.0, 10.0, -58.0, -50.0, 2.0, 2.0, 120.0, 100.0, -46.0, 210.0),
    "irregular": (100.0, 12.0, -60.0, -50.0, 2.0, -11.0, 130.0, 30.0, -48.0, 160.0),
}
FIELDS = ("C_pF", "g_L_nS", "E_L_mV", "V_T_mV", "Delta_T_mV", "a_nS", "tau_w_ms", "b_pA",
          "V_reset_mV")


def build() -> Network:
    table = np.array(list(PATTERNS.values()))
    net = Network("adex_patterns", dt_ms=0.1)
    # V_peak 0 mV: the spike cut of Naud et al.; each column of the table is one parameter,
    # one value per neuron
    cells = AdEx(V_peak_mV=0.0, **{f: table[:, k] for k, f in enumerate(FIELDS)})
    pop = net.population("cells", len(PATTERNS), cells)  # v starts at each neuron's E_L
    net.inject_current(pop, table[:, -1], start_ms=ONSET_MS, name="step")  # pA
    net.record_spikes(pop)
    net.record_state(pop, "v")
    net.record_state(pop, "w_adapt")
    return net


def main(out: str = "adex_patterns.png", duration_ms: float = 550.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evospike.backends import get_backend

    res = get_backend("torch").compile(build(), precision="float64").run(duration_ms)
    v = res.traces["cells.v"].values[0]  # (samples, neurons)
    t = res.traces["cells.v"].steps * 0.1
    steps, neurons = res.spike_steps("cells")
    fig, axes = plt.subplots(len(PATTERNS), 1, figsize=(8, 1.8 * len(PATTERNS)), sharex=True)
    for k, (name, ax) in enumerate(zip(PATTERNS, axes, strict=True)):
        trace = v[:, k].copy()
        # the cut and reset happen within one step: draw the spike up to the cut
        trace[np.searchsorted(res.traces["cells.v"].steps, steps[neurons == k])] = 0.0
        ax.plot(t, trace, lw=0.7)
        isi = np.diff(steps[neurons == k]) * 0.1
        ax.set_title(f"{name}: {isi.size + 1} spikes, ISI {isi.min():.1f}-{isi.max():.1f} ms"
                     if isi.size else name, fontsize=9)
        ax.set_ylabel("v (mV)")
    axes[-1].set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
