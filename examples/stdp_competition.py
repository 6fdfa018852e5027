"""Competitive Hebbian learning through additive STDP (Song, Miller & Abbott 2000).

1000 Poisson inputs at 15 Hz drive one leaky integrate-and-fire neuron through plastic
excitatory synapses. Additive STDP with slightly stronger depression than potentiation
(A- tau- / A+ tau+ = 1.05) makes the synapses compete: the weights split into two groups, one
near zero and one near the upper bound, and the output rate settles. Measured here (300 s,
seed 0): 49 % of the weights end below 0.1 w_max and 12 % above 0.9 w_max, and the output rate
falls from ~360 Hz in the first second to ~50 Hz. Parameters follow Brian2's version of the
experiment (``examples/synapses/STDP.py``), with a current-based synapse in place of the
conductance.

    evospike run examples/stdp_competition.py --duration 300s --out stdp.h5
    python examples/stdp_competition.py 300     # 300 s (about 20 s of CPU), writes two figures
"""

import sys

import numpy as np

from evospike import LIF, FixedProbability, Network, Uniform

N_INPUTS = 1000
W_MAX_MV = 1.0  # upper bound of a synaptic weight (mV of synaptic current)


def build(dt_ms: float = 0.1) -> Network:
    net = Network("stdp_competition", dt_ms=dt_ms)
    inputs = net.poisson_source("inputs", N_INPUTS, rate_hz=15.0)
    neuron = net.population("neuron", 1, LIF(tau_m_ms=10.0, v_rest_mV=-74.0, v_reset_mV=-60.0,
                                             v_thresh_mV=-54.0, tau_syn_exc_ms=5.0))
    proj = net.connect(inputs, neuron, FixedProbability(1.0, seed=0),
                       weight=Uniform(0.0, W_MAX_MV), delay_ms=dt_ms)
    a_plus = 0.01 * W_MAX_MV
    net.stdp(proj, a_plus=a_plus, a_minus=1.05 * a_plus, tau_plus_ms=20.0, tau_minus_ms=20.0,
             pairing="all", weight_dependence="additive", w_min=0.0, w_max=W_MAX_MV)
    net.record_spikes(neuron)
    net.record_weights(proj, every_steps=int(round(1000.0 / dt_ms)))  # once a second
    return net


def plot(results, path_hist: str, path_time: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = results.weights["inputs->neuron.weights"]
    times_s = w.steps * results.dt_ms / 1000.0
    final = w.values[0, -1] / W_MAX_MV
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(final, bins=40, color="C0")
    ax.set_xlabel("weight / w_max")
    ax.set_ylabel("synapses")
    ax.set_title(f"weights after {times_s[-1]:.0f} s of additive STDP")
    fig.tight_layout()
    fig.savefig(path_hist, dpi=110)
    plt.close(fig)

    spikes_s = results.spikes("neuron")[0] / 1000.0
    edges = np.arange(0, results.duration_ms / 1000.0 + 1.0, 1.0)
    rate, _ = np.histogram(spikes_s, bins=edges)
    fig, (ax_w, ax_r) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for k in range(0, N_INPUTS, 50):
        ax_w.plot(times_s, w.values[0, :, k] / W_MAX_MV, lw=0.8, alpha=0.7)
    ax_w.set_ylabel("weight / w_max (every 50th synapse)")
    ax_r.plot(edges[:-1] + 0.5, rate, color="k")
    ax_r.set_ylabel("output rate (Hz)")
    ax_r.set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path_time, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    from evospike.backends import get_backend

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    runner = get_backend("torch").compile(build(), seeds=(0,))
    results = runner.run(seconds * 1000.0)
    results.save("stdp_competition.h5")
    plot(results, "stdp_weights_histogram.png", "stdp_weights_over_time.png")
    final = results.weights["inputs->neuron.weights"].values[0, -1] / W_MAX_MV
    print(f"fraction of weights below 0.1 w_max: {np.mean(final < 0.1):.2f}, "
          f"above 0.9 w_max: {np.mean(final > 0.9):.2f}")
    print("wrote stdp_competition.h5, stdp_weights_histogram.png, stdp_weights_over_time.png")
