"""Reward-dependent association through three-factor plasticity (reward-modulated STDP).

Trials of 250 ms. Each trial presents one of two stimuli for 100 ms: input group A or input
group B (40 neurons each, Poisson at 40 Hz, the order random), onto 10 LIF output neurons
through one all-to-all plastic projection that starts with equal weights. Stimulus A is
followed by a reward, stimulus B by a punishment (events of +1 and -1 of the ``dopamine``
modulator at 120 ms). With three-factor STDP the pre-before-post pairs of a stimulus leave an
eligibility trace that the reward turns into potentiation (and the punishment into
depression), so the outputs come to answer A and not B. The same network with plain STDP in
place of the modulated rule (no third factor) sees A and B alike and learns no preference.

The learning curve is the preference (n_A - n_B) / (n_A + n_B), n_A and n_B the mean output
spike counts of an A and of a B trial, per block of 10 trials. Measured (seed 0, 100 trials,
25 s simulated): with three-factor STDP the preference rises from -0.10 in the first block to
+0.58 in the last (mean weights from A 1.88 mV, from B 1.26 mV, both starting at 1.5); with
plain STDP it stays within 0.17 of zero (A 2.58 mV, B 2.50 mV). The figure puts both curves
in one plot.

    python examples/reward_learning.py            # both networks, writes reward_learning.png
    evospike run examples/reward_learning.py --duration 20s --out reward.h5
"""

from __future__ import annotations

import sys

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


def trial_plan(n_trials: int, seed: int = 0) -> np.ndarray:
    """Which stimulus each trial shows: 0 for A, 1 for B (balanced, shuffled)."""
    rng = np.random.default_rng(seed)
    plan = np.arange(n_trials) % 2
    rng.shuffle(plan)
    return plan


def stimulus_spikes(plan: np.ndarray, dt_ms: float, seed: int = 0):
    """(neurons, times_ms) of the input spikes: group A is neurons [0, 40), B [40, 80)."""
    rng = np.random.default_rng(seed + 1)
    neurons, times = [], []
    n_steps = int(round(STIMULUS_MS / dt_ms))
    p = RATE_HZ * dt_ms * 1e-3
    for k, stim in enumerate(plan):
        fired = rng.random((n_steps, N_PER_GROUP)) < p
        step, neuron = np.nonzero(fired)
        neurons.append(neuron + stim * N_PER_GROUP)
        times.append(k * TRIAL_MS + step * dt_ms)
    return np.concatenate(neurons), np.concatenate(times)


def build(n_trials: int = 80, with_modulator: bool = True, dt_ms: float = 0.5,
          seed: int = 0) -> Network:
    plan = trial_plan(n_trials, seed)
    net = Network("reward_learning" if with_modulator else "reward_learning_plain_stdp", dt_ms)
    inputs = net.spike_source("inputs", 2 * N_PER_GROUP, *stimulus_spikes(plan, dt_ms, seed))
    out = net.population("out", N_OUT, LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0,
                                           v_thresh_mV=-54.0, v_reset_mV=-65.0,
                                           v_rest_mV=-65.0, tau_refrac_ms=2.0))
    proj = net.connect(inputs, out, AllToAll(), weight=W0_MV, delay_ms=dt_ms, name="in->out")
    stdp = dict(tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.05, a_minus=0.055,
                w_min=0.0, w_max=W_MAX_MV)
    if with_modulator:
        # reward after A, punishment after B
        net.modulator("dopamine", 50.0,
                      [RewardEvents(np.arange(n_trials) * TRIAL_MS + REWARD_AT_MS,
                                    np.where(plan == 0, 1.0, -1.0))])
        net.reward_stdp(proj, "dopamine", tau_eligibility_ms=100.0, learning_rate_per_ms=0.02,
                        **stdp)
        net.record_state("dopamine", "level", every_steps=int(round(5.0 / dt_ms)))
    else:
        net.stdp(proj, **stdp)
    net.record_spikes(out)
    net.record_weights(proj, every_steps=int(round(TRIAL_MS / dt_ms)))
    return net


def preference_curve(results, plan: np.ndarray, block: int = 10) -> np.ndarray:
    """(n_A - n_B) / (n_A + n_B) per block of ``block`` trials, n_A (n_B) the mean count of
    output spikes in a trial that shows A (B)."""
    times, _ = results.spikes("out")
    trial_of = (times // TRIAL_MS).astype(np.int64)
    in_stimulus = (times % TRIAL_MS) < STIMULUS_MS + 20.0
    counts = np.bincount(trial_of[in_stimulus], minlength=plan.size)[:plan.size]
    curve = []
    for start in range(0, plan.size - block + 1, block):
        sel = slice(start, start + block)
        n_a = counts[sel][plan[sel] == 0].mean()
        n_b = counts[sel][plan[sel] == 1].mean()
        curve.append((n_a - n_b) / max(n_a + n_b, 1))
    return np.asarray(curve)


def plot(curves: dict[str, np.ndarray], weights: dict[str, np.ndarray], path: str,
         block: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_c, ax_w) = plt.subplots(1, 2, figsize=(11, 4))
    for (label, curve), color in zip(curves.items(), ("C0", "C3"), strict=True):
        ax_c.plot((np.arange(curve.size) + 1) * block, curve, "o-", color=color, label=label)
        w = weights[label]
        ax_w.plot(w[:, :N_PER_GROUP * N_OUT].mean(axis=1), color=color, label=f"{label}: A")
        ax_w.plot(w[:, N_PER_GROUP * N_OUT:].mean(axis=1), "--", color=color,
                  label=f"{label}: B")
    ax_c.axhline(0.0, color="k", lw=0.5)
    ax_c.set_xlabel("trial")
    ax_c.set_ylabel("preference for A: (n_A - n_B) / (n_A + n_B)")
    ax_c.legend()
    ax_w.set_xlabel("trial")
    ax_w.set_ylabel("mean weight (mV)")
    ax_w.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_both(n_trials: int, seed: int = 0, progress: bool = True) -> dict:
    """Both networks on the same inputs: learning curves and weight trajectories."""
    from evospike.backends import get_backend

    plan = trial_plan(n_trials, seed)
    curves, weights = {}, {}
    for label, modulated in (("three-factor STDP", True), ("plain STDP (no modulator)", False)):
        net = build(n_trials, with_modulator=modulated, seed=seed)
        runner = get_backend("torch").compile(net, seeds=(seed,), progress=progress)
        res = runner.run(n_trials * TRIAL_MS)
        curves[label] = preference_curve(res, plan)
        # (input, output) synapses in CSR order: row = input neuron, so group A comes first
        weights[label] = res.weights["in->out.weights"].values[0]
    return {"curves": curves, "weights": weights}


if __name__ == "__main__":
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    out = run_both(trials)
    plot(out["curves"], out["weights"], "reward_learning.png")
    for label, curve in out["curves"].items():
        print(f"{label}: preference for A, first block {curve[0]:+.2f}, "
              f"last three blocks {curve[-3:].mean():+.2f}")
    print("wrote reward_learning.png")
