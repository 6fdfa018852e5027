"""Apoptosis and neurogenesis restore a stable rate distribution.

100 LIF neurons receive 200 Poisson inputs (10 Hz, connection probability 0.1) and weak
recurrent excitation. Five neurons are broken by their wiring: neurons 0-4 get their input
weights multiplied by 6 (they run away, far above 100 Hz), neurons 5-9 get input weights of 0
(they never fire). `Apoptosis` evaluates every 100 ms (window of 5 periods): a neuron silent for
more than 300 ms or above 100 Hz is pathological (H = 1, A = exp(-5 * 0.3) = 0.22 < floor 0.5),
and after 2 such evaluations in a row it dies: it stops integrating and its synapses leave the
CSR. With neurogenesis a fresh neuron takes the slot one evaluation later, with new random
synapses drawn with each projection's initial density and weights.

Measured (seed 0, 3 s simulated, dt 0.5 ms; ``python examples/apoptosis.py``): neurons above
100 Hz: 5 in the first 200 ms (before the first deaths), 0 in the last second; neurons without
a spike: 12 in the first 200 ms (the 5 unwired ones and 7 slow ones that happened to be quiet),
0 in the last second; 21 deaths and 21 births (besides the 10 broken neurons, some slow ones
that stayed silent for 300 ms died and were replaced, and some newborns died again); the
standard deviation of the rates fell from 33.2 to 9.7 Hz and the highest rate from 205 to 46 Hz.
The figure (apoptosis.png) shows the raster and the rate histograms of the first 200 ms and
of the last second.

    python examples/apoptosis.py            # writes apoptosis.png
"""

from __future__ import annotations

import numpy as np

from evospike import LIF, FixedProbability, Network

N = 100
N_IN = 200
DT_MS = 0.5
EVERY = 200  # steps per evaluation: 100 ms
RUNAWAY = np.arange(0, 5)
DEAD = np.arange(5, 10)
DURATION_MS = 3000.0
BEFORE_MS = 200.0  # the first deaths come at the second evaluation (200 ms)
AFTER_MS = 1000.0
CEILING_HZ = 100.0


def build(with_apoptosis: bool = True, seed: int = 0) -> Network:
    net = Network("apoptosis" if with_apoptosis else "no_apoptosis", DT_MS)
    src = net.poisson_source("in", N_IN, 10.0)
    pop = net.population("pop", N, LIF(tau_m_ms=20.0, tau_syn_exc_ms=5.0, tau_refrac_ms=2.0),
                         initial={"v": -65.0})
    proj = FixedProbability(0.1, seed=seed + 1)
    inp = net.connect(src, pop, proj, weight=14.0, delay_ms=DT_MS, name="in->pop")
    w = inp.weights.copy()
    post = inp.indices
    w[np.isin(post, RUNAWAY)] *= 6.0
    w[np.isin(post, DEAD)] = 0.0
    inp.weights[:] = w
    net.connect(pop, pop, FixedProbability(0.05, seed=seed + 2), weight=0.5, delay_ms=DT_MS,
                name="pop->pop")
    if with_apoptosis:
        net.apoptosis(pop, every_steps=EVERY, window=5, silent_ms=300.0, ceiling_hz=CEILING_HZ,
                      patience=2, neurogenesis=True, rebirth_after=1, seed=seed)
        for var in ("survival", "alive", "deaths", "births"):
            net.record_state("pop.apoptosis", var, every_steps=EVERY)
    net.record_spikes(pop)
    return net


def rates_hz(results, start_ms: float, stop_ms: float) -> np.ndarray:
    times, neurons = results.spikes("pop")
    inside = (times >= start_ms) & (times < stop_ms)
    return np.bincount(neurons[inside], minlength=N) / ((stop_ms - start_ms) * 1e-3)


def run(seed: int = 0, progress: bool = True) -> dict:
    from evospike.backends import get_backend

    runner = get_backend("torch").compile(build(True, seed), seeds=(seed,), progress=progress)
    res = runner.run(DURATION_MS)
    before = rates_hz(res, 0.0, BEFORE_MS)
    after = rates_hz(res, DURATION_MS - AFTER_MS, DURATION_MS)
    return {"results": res, "before": before, "after": after,
            "runaway_before": int((before > CEILING_HZ).sum()),
            "runaway_after": int((after > CEILING_HZ).sum()),
            "silent_before": int((before == 0).sum()), "silent_after": int((after == 0).sum()),
            "deaths": int(res.traces["pop.apoptosis.deaths"].values[0, -1].sum()),
            "births": int(res.traces["pop.apoptosis.births"].values[0, -1].sum()),
            "std_before": float(before.std()), "std_after": float(after.std()),
            "max_before": float(before.max()), "max_after": float(after.max())}


def plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_h) = plt.subplots(1, 2, figsize=(11, 4))
    times, neurons = out["results"].spikes("pop")
    ax_r.plot(times, neurons, ",k")
    ax_r.set_xlabel("time (ms)")
    ax_r.set_ylabel("neuron (0-4 runaway, 5-9 silent at the start)")
    bins = np.linspace(0, max(out["max_before"], out["max_after"]) + 5, 40)
    ax_h.hist(out["before"], bins, alpha=0.6, label=f"first {BEFORE_MS:.0f} ms")
    ax_h.hist(out["after"], bins, alpha=0.6,
              label=f"last {AFTER_MS:.0f} ms ({out['deaths']} deaths, {out['births']} births)")
    ax_h.set_xlabel("rate (Hz)")
    ax_h.set_ylabel("neurons")
    ax_h.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    result = run()
    plot(result, "apoptosis.png")
    print(f"neurons above {CEILING_HZ:.0f} Hz: first {BEFORE_MS:.0f} ms "
          f"{result['runaway_before']}, last {AFTER_MS:.0f} ms {result['runaway_after']}; "
          "without a spike: "
          f"{result['silent_before']}, {result['silent_after']}; deaths {result['deaths']}, "
          f"births {result['births']}; "
          f"rate std {result['std_before']:.1f} -> {result['std_after']:.1f} Hz, max "
          f"{result['max_before']:.0f} -> {result['max_after']:.0f} Hz")
    print("wrote apoptosis.png")
