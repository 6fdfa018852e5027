"""AEG energy budgets: under a tightening energy budget a network's SynOps fall and its task
accuracy degrades gracefully.

The task. Each trial (200 ms) shows one of two stimuli: the 20 inputs of the shown stimulus fire
at 40 Hz, the 20 of the other at 15 Hz (noise). The network must say which one it was.

The network. Two hidden groups of 40 LIF neurons (H1 listens mostly to S1, H2 to S2, with some
cross-talk) drive two output groups of 20 (O1 from H1, O2 from H2); the answer is the output
group with more spikes in the trial (a tie is a guess and counts as half right, so chance is
50 %). Every hidden and output neuron has
an energy store (`EnergyBudget`, Loihi 2 profile: a spike costs 81 pJ plus 23.6 pJ per synapse it
drives), 4 spikes' worth of capacity and a recharge rate ``r`` (pJ/ms); one global store
(`GlobalEnergyBudget`) shared by all of them recharges at 75 % of the sum of their rates. The
sweep lowers ``r`` from no budget at all to 0.3 pJ/ms.

Measured (seed 0, 30 trials per budget, dt 0.5 ms, ``python examples/energy_budget.py``, torch
eager on the CPU)::

    recharge (pJ/ms per neuron)   none    20      10      5       2.5     1.25    0.6     0.3
    accuracy (%)                  100.0   100.0   100.0   90.0    65.0    55.0    51.7    50.0
    SynOps per trial              11250   10980   9846    8528    7493    6892    6550    6379
    energy spent per trial (nJ)   -       187     139     82.4    42.7    22.0    11.0    5.51

SynOps fall with the budget (what remains at the tightest one, about 6.2e3, are the inputs' own
events, which no budget limits); accuracy holds while the hidden and output neurons can still
afford their spikes and then falls off gradually to chance (50 %), not at once. The energy spent
is the global budget's ``spent_pj`` (the run's estimate on the Loihi 2 profile). The figure
(energy_budget.png) plots accuracy and SynOps against the budget.

    python examples/energy_budget.py              # the sweep, writes energy_budget.png
    evospike run examples/energy_budget.py --duration 2s --out energy.h5
"""

from __future__ import annotations

import sys

import numpy as np

from evospike import LIF, Network

TRIAL_MS = 200.0
N_IN, N_HIDDEN, N_OUT = 20, 40, 20
SIGNAL_HZ, NOISE_HZ = 40.0, 15.0
PROFILE = "loihi2"
SPIKES_OF_CAPACITY = 4.0
GLOBAL_SHARE = 0.75
BUDGETS = (None, 20.0, 10.0, 5.0, 2.5, 1.25, 0.6, 0.3)  # recharge, pJ/ms per neuron


def trial_plan(n_trials: int, seed: int = 0) -> np.ndarray:
    """The stimulus of each trial, 0 or 1 (balanced, shuffled)."""
    plan = np.arange(n_trials) % 2
    np.random.default_rng(seed).shuffle(plan)
    return plan


def input_spikes(plan: np.ndarray, dt_ms: float, seed: int = 0):
    """(neurons, times_ms): S1 is neurons [0, 20), S2 [20, 40)."""
    rng = np.random.default_rng(seed + 1)
    n_steps = int(round(TRIAL_MS / dt_ms))
    neurons, times = [], []
    for k, stim in enumerate(plan):
        rate = np.where(np.arange(2 * N_IN) // N_IN == stim, SIGNAL_HZ, NOISE_HZ)
        step, neuron = np.nonzero(rng.random((n_steps, 2 * N_IN)) < rate * dt_ms * 1e-3)
        neurons.append(neuron)
        times.append(k * TRIAL_MS + step * dt_ms)
    return np.concatenate(neurons), np.concatenate(times)


def _blocks(pairs, n_pre: int, n_post: int, seed: int):
    """A FromArrays connector of random blocks ``(pre group, post group, p, weight mV)``."""
    from evospike import FromArrays

    pres, posts, weights = [], [], []
    for pre_group, post_group, p, w in pairs:
        rng = np.random.default_rng([seed, pre_group, post_group, n_pre, n_post])
        pre, post = np.nonzero(rng.random((n_pre, n_post)) < p)
        pres.append(pre + pre_group * n_pre)
        posts.append(post + post_group * n_post)
        weights.append(np.full(pre.size, float(w)))
    return FromArrays(np.concatenate(pres), np.concatenate(posts), np.concatenate(weights))


def build(n_trials: int = 30, recharge_pj_per_ms: float | None = 5.0, dt_ms: float = 0.5,
          seed: int = 0) -> Network:
    """The task network; ``recharge_pj_per_ms`` None: no energy budget."""
    from evospike.ir.energy_budget import spike_costs_pj

    plan = trial_plan(n_trials, seed)
    net = Network("energy_budget", dt_ms)
    inputs = net.spike_source("inputs", 2 * N_IN, *input_spikes(plan, dt_ms, seed))
    model = LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0, v_rest_mV=-65.0, v_reset_mV=-65.0,
                v_thresh_mV=-50.0, tau_refrac_ms=2.0)
    hidden = net.population("hidden", 2 * N_HIDDEN, model, initial={"v": -65.0})
    out = net.population("out", 2 * N_OUT, model, initial={"v": -65.0})
    net.connect(inputs, hidden, _blocks([(0, 0, 0.5, 9.0), (1, 1, 0.5, 9.0), (0, 1, 0.2, 3.0),
                                         (1, 0, 0.2, 3.0)], N_IN, N_HIDDEN, seed),
                delay_ms=dt_ms)
    net.connect(hidden, out, _blocks([(0, 0, 0.5, 6.0), (1, 1, 0.5, 6.0)], N_HIDDEN, N_OUT,
                                     seed), delay_ms=dt_ms)
    if recharge_pj_per_ms is not None:
        budgets = []
        for pop in (hidden, out):
            capacity = SPIKES_OF_CAPACITY * float(spike_costs_pj(net, pop.name, PROFILE).max())
            budgets.append(net.energy_budget(pop, capacity, recharge_pj_per_ms,
                                             profile=PROFILE))
        total_rate = recharge_pj_per_ms * (hidden.size + out.size)
        net.global_energy_budget(budgets, capacity_pj=GLOBAL_SHARE * 100.0 * total_rate,
                                 recharge_pj_per_ms=GLOBAL_SHARE * total_rate)
        every = int(round(5.0 / dt_ms))
        net.record_state("global.energy", "energy_pj", every_steps=every)
        net.record_state("global.energy", "spent_pj", every_steps=every)
        net.record_state("hidden.energy", "energy_pj", every_steps=every)
    net.record_spikes(inputs, hidden, out)
    return net


def accuracy(results, plan: np.ndarray) -> float:
    times, neurons = results.spikes("out")
    trial = (times // TRIAL_MS).astype(np.int64)
    counts = np.zeros((plan.size, 2))
    np.add.at(counts, (trial, neurons // N_OUT), 1.0)
    mine, other = counts[np.arange(plan.size), plan], counts[np.arange(plan.size), 1 - plan]
    # a tie (e.g. no output spike at all) is a guess: right half of the time
    return float(((mine > other) + 0.5 * (mine == other)).mean())


def sweep(n_trials: int = 30, budgets=BUDGETS, seed: int = 0, progress: bool = True) -> dict:
    """Accuracy, SynOps per trial and energy spent per trial (pJ) for each budget."""
    from evospike.backends import get_backend
    from evospike.energy import count_network_ops

    plan = trial_plan(n_trials, seed)
    out = {"budgets": list(budgets), "accuracy": [], "synops": [], "spent_pj": []}
    for recharge in budgets:
        net = build(n_trials, recharge, seed=seed)
        res = get_backend("torch").compile(net, progress=progress, seeds=(seed,)).run(
            n_trials * TRIAL_MS)
        out["accuracy"].append(accuracy(res, plan))
        out["synops"].append(count_network_ops(net, res, inferences_per_trial=n_trials).synops)
        spent = res.traces["global.energy.spent_pj"].values[0, -1, 0] / n_trials \
            if recharge is not None else float("nan")
        out["spent_pj"].append(float(spent))
    return out


def plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["none" if b is None else f"{b:g}" for b in out["budgets"]]
    x = np.arange(len(labels))
    fig, ax1 = plt.subplots(figsize=(8, 4.5))
    ax1.plot(x, 100 * np.asarray(out["accuracy"]), "o-", color="C0", label="accuracy")
    ax1.set_ylabel("accuracy (%)", color="C0")
    ax1.axhline(50, color="C0", lw=0.5, ls=":")  # chance
    ax1.set_ylim(0, 105)
    ax1.set_xticks(x, labels)
    ax1.set_xlabel("energy budget: recharge per neuron (pJ/ms), tightening to the right")
    ax2 = ax1.twinx()
    ax2.plot(x, np.asarray(out["synops"]) / 1e3, "s--", color="C1", label="SynOps per trial")
    ax2.set_ylabel("SynOps per trial (thousands)", color="C1")
    ax1.set_title(f"AEG energy budget ({PROFILE} costs): accuracy and SynOps")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    n_trials = int(argv[1]) if len(argv) > 1 else 30
    out = sweep(n_trials)
    print("recharge pJ/ms  accuracy %  SynOps/trial  spent nJ/trial")
    for b, acc, ops, spent in zip(out["budgets"], out["accuracy"], out["synops"],
                                  out["spent_pj"], strict=True):
        label = "none" if b is None else f"{b:g}"
        print(f"{label:>14s}  {100 * acc:10.1f}  {ops:12.4g}  {spent / 1e3:14.3g}")
    plot(out, "energy_budget.png")
    print("wrote energy_budget.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
