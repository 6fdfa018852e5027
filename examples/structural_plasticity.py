"""Structural plasticity: weak synapses are pruned, co-active pairs grow new ones.

60 Poisson inputs onto 10 LIF outputs through a sparse (20 %) STDP projection. Inputs 0-29
(group A) fire at 30 Hz, inputs 30-59 (group B) at 5 Hz; a separate drive keeps the outputs
firing. Every 100 ms `StructuralPlasticity` prunes the synapses STDP has weakened below
0.3 mV and grows up to 10 new ones (weight 1 mV) between the inputs and outputs that fired most
together in the interval, at most 25 synapses per output. Group A, which is active with the
outputs more often, ends up with most of the connections: the figure shows the synapse count
over time (the node's recorded ``n_synapses``) and the share of synapses from A.

Measured (seed 0, 10 s simulated, torch eager on the CPU): 112 synapses grow to the limit of
250 within 2.3 s; the share from group A rises from 0.49 to 0.77; the outputs fire at 17.7 Hz.

    python examples/structural_plasticity.py [seconds]   # writes structural_plasticity.png
    evospike run examples/structural_plasticity.py --duration 5s --out structural.h5
"""

from __future__ import annotations

import sys

import numpy as np

from evospike import LIF, FixedProbability, Network, OneToOne
from evospike.backends import get_backend
from evospike.backends.torch import structure

N_IN = 60
N_OUT = 10
DT_MS = 0.5
EVERY_STEPS = 200  # 100 ms


def build(seed: int = 0) -> Network:
    net = Network("structural_plasticity", DT_MS)
    rates = np.where(np.arange(N_IN) < N_IN // 2, 30.0, 5.0)
    net.poisson_source("inputs", N_IN, rates)
    net.poisson_source("drive", N_OUT, 15.0)
    net.population("out", N_OUT, LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0, v_thresh_mV=-54.0,
                                     v_reset_mV=-65.0, v_rest_mV=-65.0, tau_refrac_ms=2.0),
                   initial={"v": -65.0})
    net.connect("drive", "out", OneToOne(), weight=60.0, delay_ms=DT_MS, name="drive->out")
    proj = net.connect("inputs", "out", FixedProbability(0.2, seed=seed + 1), weight=1.0,
                       delay_ms=DT_MS, name="in->out")
    net.stdp(proj, tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.02, a_minus=0.024,
             w_min=0.0, w_max=3.0)
    node = net.structural_plasticity(proj, every_steps=EVERY_STEPS, prune="weight",
                                     prune_below=0.3, grow="coactive", grow_per_update=10,
                                     grow_weight=1.0, min_spikes=2, max_per_neuron=25)
    net.record_state(node, "n_synapses", every_steps=EVERY_STEPS // 4)
    net.record_spikes("out")
    return net


def share_from_a(runner) -> float:
    """The fraction of present synapses whose input is in group A."""
    c = structure.connectivity(runner.cn, "in->out")
    pre = np.repeat(np.arange(N_IN), np.diff(c["indptr"]))[c["present"][0]]
    return float(np.mean(pre < N_IN // 2)) if pre.size else 0.0


def run(seconds: float = 10.0, seed: int = 0, progress: bool = True) -> dict:
    runner = get_backend("torch").compile(build(seed), seeds=(seed,), progress=progress)
    shares, times = [share_from_a(runner)], [0.0]
    for _ in range(int(seconds)):
        res = runner.run(1000.0)
        shares.append(share_from_a(runner))
        times.append(runner.step * DT_MS / 1000.0)
    trace = res.traces["in->out.structural.n_synapses"]
    return {"steps": trace.steps, "n_synapses": trace.values[0, :, 0],
            "share_times_s": np.asarray(times), "share_a": np.asarray(shares),
            "rate_hz": float(res.rates_hz("out").mean())}


def plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_n, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
    ax_n.plot(out["steps"] * DT_MS / 1000.0, out["n_synapses"])
    ax_n.set_xlabel("time (s)")
    ax_n.set_ylabel("synapses in->out")
    ax_s.plot(out["share_times_s"], out["share_a"], "o-")
    ax_s.axhline(0.5, color="k", lw=0.5)
    ax_s.set_xlabel("time (s)")
    ax_s.set_ylabel("share of synapses from group A (30 Hz)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    result = run(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
    print(f"synapses {int(result['n_synapses'][0])} -> {int(result['n_synapses'][-1])}, "
          f"share from A {result['share_a'][0]:.2f} -> {result['share_a'][-1]:.2f}, "
          f"output rate {result['rate_hz']:.1f} Hz")
    plot(result, "structural_plasticity.png")
