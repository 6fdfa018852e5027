"""Memory tiers against catastrophic forgetting: task A, then task B, with three-factor STDP.

Two input groups (A and B, 40 neurons each) project all-to-all onto 10 LIF output neurons
through one plastic projection (reward-modulated STDP, weights start at 1.5 mV). Trials last
250 ms; a stimulus is its group firing at 40 Hz for 100 ms, a reward event comes at 120 ms.
Task A (40 trials): stimulus A, rewarded (+1); the outputs learn to answer A. Task B (40
trials): stimulus B rewarded (+1) alternating with stimulus A punished (-1): the new task
overwrites A's association. A probe trial (stimulus A, no reward) after every 5 trials
measures how strongly the outputs still answer A.

With single-timescale weights task B erases what task A built. With `MemoryTiers` the rule
writes into ``short`` (tau 2 s); every 50 ms, consolidation moves half of ``short`` into
``mid`` (tau 60 s) where importance x dopamine level exceeds 0.02, and ``mid`` into ``long``
after 3 such reactivations. Task A's rewarded learning consolidates; task B's depression of A
comes with punishment (a negative level, so S = I * R < 0 never consolidates), stays in
``short`` and fades, while B's rewarded learning consolidates.

Measured (seed 0, 115 trials: task A and task B with their probes, then 4 s of rest and 3
final probes; 28.75 s simulated, dt 0.5 ms; ``python examples/memory_tiers.py``): mean response
to the A probe (spikes per output neuron), end of task A -> after task B and the rest: memory
tiers 8.67 -> 7.00 (retention 0.81), single timescale 7.67 -> 2.33 (retention 0.30). The
price: the tiers learn task B more slowly within its 40 trials (mean weight from B +10 % of W0
against +34 %), since unconsolidated learning fades. The figure
(memory_tiers.png) puts both networks' probe responses and mean weights in one plot.

    python examples/memory_tiers.py            # both networks, writes memory_tiers.png
"""

from __future__ import annotations

import numpy as np

from evospike import LIF, AllToAll, Network, RewardEvents

N_PER_GROUP = 40
N_OUT = 10
TRIAL_MS = 250.0
STIMULUS_MS = 100.0
REWARD_AT_MS = 120.0
RATE_HZ = 40.0
W0_MV = 1.5
W_MAX_MV = 3.0
N_A, N_B = 40, 40
N_REST = 16  # 4 s, two short-tier time constants
N_FINAL_PROBES = 3
PROBE_EVERY = 5
DT_MS = 0.5

def schedule() -> list[tuple[str, str]]:
    """(phase, kind) per trial: kind "A" or "B" (stimulus, then reward or punishment), "probe"
    (A, no reward) or "rest" (nothing)."""
    out = []
    for phase, n in (("A", N_A), ("B", N_B)):
        for k in range(n):
            # task B alternates B (rewarded) with A (now punished)
            out.append((phase, "B" if phase == "B" and k % 2 == 0 else "A"))
            if (k + 1) % PROBE_EVERY == 0:
                out.append((phase, "probe"))
    # a rest without input or reward (what is not consolidated fades), then the final probes
    out += [("rest", "rest")] * N_REST + [("rest", "probe")] * N_FINAL_PROBES
    return out


def input_spikes(plan, seed: int = 0):
    """(neurons, times_ms): the stimulus of each trial (probes show A)."""
    rng = np.random.default_rng(seed + 1)
    neurons, times = [], []
    n_stim = int(round(STIMULUS_MS / DT_MS))
    n_trial = int(round(TRIAL_MS / DT_MS))
    for k, (_, kind) in enumerate(plan):
        fired = np.zeros((n_trial, 2 * N_PER_GROUP), dtype=bool)
        group = slice(N_PER_GROUP, None) if kind == "B" else slice(0, N_PER_GROUP)
        if kind == "rest":
            continue
        fired[:n_stim, group] = rng.random((n_stim, N_PER_GROUP)) < RATE_HZ * DT_MS * 1e-3
        step, neuron = np.nonzero(fired)
        neurons.append(neuron)
        times.append(k * TRIAL_MS + step * DT_MS)
    neurons, times = np.concatenate(neurons), np.concatenate(times)
    order = np.argsort(times, kind="stable")
    return neurons[order], times[order]


def build(with_tiers: bool = True, seed: int = 0) -> Network:
    plan = schedule()
    net = Network("memory_tiers" if with_tiers else "single_timescale", DT_MS)
    inputs = net.spike_source("inputs", 2 * N_PER_GROUP, *input_spikes(plan, seed))
    out = net.population("out", N_OUT, LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0,
                                           v_thresh_mV=-54.0, v_reset_mV=-65.0,
                                           v_rest_mV=-65.0, tau_refrac_ms=2.0))
    proj = net.connect(inputs, out, AllToAll(), weight=W0_MV, delay_ms=DT_MS, name="in->out")
    # reward after A in task A and after B in task B, punishment after A in task B
    amount = np.array([0.0 if kind in ("probe", "rest") else
                       -1.0 if (phase, kind) == ("B", "A") else 1.0 for phase, kind in plan])
    given = np.nonzero(amount)[0]
    net.modulator("dopamine", 50.0, [RewardEvents(given * TRIAL_MS + REWARD_AT_MS,
                                                  amount[given])])
    net.reward_stdp(proj, "dopamine", tau_eligibility_ms=100.0, learning_rate_per_ms=0.08,
                    tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.05, a_minus=0.055,
                    w_min=0.0, w_max=W_MAX_MV)
    if with_tiers:
        net.memory_tiers(proj, tau_short_ms=2000.0, tau_mid_ms=60000.0, every_steps=100,
                         threshold=0.02, short_to_mid=0.5, reactivations_to_long=3,
                         initial_tier="long")
    net.record_spikes(out)
    net.record_weights(proj, every_steps=int(round(TRIAL_MS / DT_MS)))
    return net


def probe_responses(results, plan) -> tuple[np.ndarray, np.ndarray]:
    """(trial index, mean output spikes per neuron) of every probe trial."""
    times, _ = results.spikes("out")
    trial_of = (times // TRIAL_MS).astype(np.int64)
    in_stimulus = (times % TRIAL_MS) < STIMULUS_MS + 20.0
    counts = np.bincount(trial_of[in_stimulus], minlength=len(plan))[:len(plan)] / N_OUT
    probes = np.array([k for k, (_, kind) in enumerate(plan) if kind == "probe"])
    return probes, counts[probes]


def run_both(seed: int = 0, progress: bool = True) -> dict:
    """Both networks on the same inputs: probe responses, weights, and the summary numbers:
    ``retention`` (the mean response to the final 3 A probes, after task B and the rest, as a
    fraction of the mean of the last 3 probes of task A) and
    ``learned_b`` (gain of the mean weight from B, relative to W0)."""
    from evospike.backends import get_backend

    plan = schedule()
    a_probes = [k for k, (phase, kind) in enumerate(plan) if phase == "A" and kind == "probe"]
    out = {"probes": {}, "weights": {}, "retention": {}, "learned_b": {}, "after_a": {},
           "after_b": {}}
    for label, tiers in (("memory tiers", True), ("single timescale", False)):
        net = build(tiers, seed)
        runner = get_backend("torch").compile(net, seeds=(seed,), progress=progress)
        res = runner.run(len(plan) * TRIAL_MS)
        probes, resp = probe_responses(res, plan)
        w = res.weights["in->out.weights"].values[0]  # (trials, synapses), A's rows first
        out["probes"][label] = (probes, resp)
        out["weights"][label] = w
        after_a = resp[np.isin(probes, a_probes[-3:])].mean()
        after_b = resp[-N_FINAL_PROBES:].mean()
        out["after_a"][label] = float(after_a)
        out["after_b"][label] = float(after_b)
        out["retention"][label] = float(after_b / after_a) if after_a > 0 else 0.0
        out["learned_b"][label] = float(w[-1, N_PER_GROUP * N_OUT:].mean() / W0_MV - 1.0)
    return out


def plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_w) = plt.subplots(1, 2, figsize=(11, 4))
    boundary = N_A + N_A // PROBE_EVERY
    for (label, (probes, resp)), color in zip(out["probes"].items(), ("C0", "C3"), strict=True):
        ax_p.plot(probes, resp, "o-", color=color,
                  label=f"{label} (retention {out['retention'][label]:.2f})")
        w = out["weights"][label]
        ax_w.plot(w[:, :N_PER_GROUP * N_OUT].mean(axis=1), color=color, label=f"{label}: from A")
        ax_w.plot(w[:, N_PER_GROUP * N_OUT:].mean(axis=1), "--", color=color,
                  label=f"{label}: from B")
    for ax in (ax_p, ax_w):
        ax.axvline(boundary - 0.5, color="k", lw=0.5)
        ax.set_xlabel("trial (task A, then task B)")
    ax_p.set_ylabel("response to an A probe (spikes per output neuron)")
    ax_p.legend(fontsize=8)
    ax_w.set_ylabel("mean weight (mV)")
    ax_w.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    result = run_both()
    plot(result, "memory_tiers.png")
    for name in result["retention"]:
        print(f"{name}: A probe after task A {result['after_a'][name]:.2f}, after task B "
              f"{result['after_b'][name]:.2f} spikes/neuron (retention "
              f"{result['retention'][name]:.2f}); weight from B +{result['learned_b'][name]:.2f}"
              " x W0")
    print("wrote memory_tiers.png")
