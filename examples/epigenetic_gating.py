"""Epigenetic gating: a network that switches between two contexts keeps its task performance
while the gate switches off the neurons the current context does not need.

The task. Each trial (200 ms) shows one of two stimuli, S1 or S2 (20 Poisson inputs each at
40 Hz), under one of two contexts, A or B, announced by a context cue (10 Poisson inputs per
context at 40 Hz). The answer depends on the context: in A, S1 means "left" and S2 "right"; in B
the mapping is reversed. The context changes every 5 trials.

The network. Four expert groups of 40 LIF neurons: A1 and B1 listen to S1, A2 and B2 to S2; the
context cue excites its own context's experts (A1, A2 for A). The experts drive two output
groups of 20 neurons, "left" (from A1 and B2) and "right" (from A2 and B1); each expert group is
also recurrent (20 % connectivity). The answer is the output group with more spikes in the last
150 ms of the trial (a tie counts as wrong). Without a gate the cue alone decides which experts
win; the other context's experts still hear the stimulus and fire, and their spikes cost
synaptic events. With an `EpigeneticGate` on the experts, whose context is the cue's activity
(``W_c``: +0.05 per Hz of the own context's cue, -0.05 of the other's; ``tau_ms`` 10 ms), the
other context's experts are closed: they neither integrate nor fire.

Measured (seed 0, 40 trials, 8 s simulated, dt 0.5 ms, ``python examples/epigenetic_gating.py``,
torch eager on the CPU): ungated 40/40 trials correct (100.0 %), 1.405e6 SynOps; gated 40/40
(100.0 %), 1.118e6 SynOps: the gate cuts the network's SynOps by 20.4 %, and those of the
experts' own spikes (expert -> output and expert -> expert) by 32.4 % (8.85e5 -> 5.98e5), while
50.8 % of the expert neurons are open on average. SynOps are counted with
`evospike.energy.count_network_ops`, which counts a spike's fan-out when it is emitted: the
input and cue spikes onto closed experts still count there (their events are dropped at the
closed neuron, but they were sent), so the saving is that of the spikes the closed experts no
longer emit. Same inputs and seed for both networks. The figure (epigenetic_gating.png) shows
the fraction of each context's experts that is open over time, and per trial how many more
spikes the correct output group fired than the wrong one.

    python examples/epigenetic_gating.py          # both networks, writes epigenetic_gating.png
    evospike run examples/epigenetic_gating.py --duration 2s --out gating.h5
"""

from __future__ import annotations

import sys

import numpy as np

from evospike import LIF, Network

TRIAL_MS = 200.0
DECIDE_FROM_MS = 50.0
BLOCK_TRIALS = 5
N_STIM, N_CUE, N_EXPERT, N_OUT = 20, 10, 40, 20
RATE_HZ = 40.0
W_STIM = 8.0  # mV: the stimulus alone drives an expert to fire (a cue makes it fire more)
EXPERTS = ("A1", "A2", "B1", "B2")  # context, stimulus


def trial_plan(n_trials: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(context, stimulus) per trial: context 0/1 (A/B) in blocks, stimulus 0/1 (S1/S2) at
    random."""
    rng = np.random.default_rng(seed)
    context = (np.arange(n_trials) // BLOCK_TRIALS) % 2
    stimulus = rng.integers(0, 2, n_trials)
    return context, stimulus


def target(context: np.ndarray, stimulus: np.ndarray) -> np.ndarray:
    """The correct output: 0 ("left") or 1 ("right")."""
    return context ^ stimulus


def _poisson(rng, active: np.ndarray, size: int, dt_ms: float, offset_of=None):
    """Spikes of inputs at RATE_HZ: in trial k, the group ``active[k]`` of ``size`` neurons
    (neurons ``active[k] * size ...``) fires."""
    neurons, times = [], []
    n_steps = int(round(TRIAL_MS / dt_ms))
    for k, group in enumerate(active):
        step, neuron = np.nonzero(rng.random((n_steps, size)) < RATE_HZ * dt_ms * 1e-3)
        neurons.append(neuron + group * size)
        times.append(k * TRIAL_MS + step * dt_ms)
    return np.concatenate(neurons), np.concatenate(times)


def _blocks(pairs, n_pre: int, n_post: int, seed: int):
    """Random blocks between groups: ``pairs`` of (pre group, post group, probability,
    weight mV) with groups of ``n_pre`` / ``n_post`` neurons; returns a FromArrays connector."""
    from evospike import FromArrays

    pres, posts, weights = [], [], []
    for pre_group, post_group, p, w in pairs:
        rng = np.random.default_rng([seed, pre_group, post_group, n_pre, n_post])
        pre, post = np.nonzero(rng.random((n_pre, n_post)) < p)
        pres.append(pre + pre_group * n_pre)
        posts.append(post + post_group * n_post)
        weights.append(np.full(pre.size, float(w)))
    return FromArrays(np.concatenate(pres), np.concatenate(posts), np.concatenate(weights))


def build(n_trials: int = 40, gated: bool = True, dt_ms: float = 0.5, seed: int = 0) -> Network:
    """The task network (see the module docstring), with or without the epigenetic gate."""
    context, stimulus = trial_plan(n_trials, seed)
    rng = np.random.default_rng(seed + 1)
    net = Network("epigenetic_gating" if gated else "context_switch_ungated", dt_ms)
    # S1 is neurons [0, 20) of "stimulus", S2 [20, 40); cue A [0, 10) of "cue", B [10, 20)
    stim = net.spike_source("stimulus", 2 * N_STIM, *_poisson(rng, stimulus, N_STIM, dt_ms))
    cue = net.spike_source("cue", 2 * N_CUE, *_poisson(rng, context, N_CUE, dt_ms))
    model = LIF(tau_m_ms=10.0, tau_syn_exc_ms=5.0, v_rest_mV=-65.0, v_reset_mV=-65.0,
                v_thresh_mV=-50.0, tau_refrac_ms=2.0)
    # one population of experts, in groups of N_EXPERT in the order of EXPERTS, so that one
    # gate covers them all
    experts = net.population("experts", 4 * N_EXPERT, model, initial={"v": -65.0})
    out = net.population("out", 2 * N_OUT, model, initial={"v": -65.0})
    # S1 -> A1, B1; S2 -> A2, B2
    w = W_STIM
    net.connect(stim, experts, _blocks([(0, 0, 0.5, w), (0, 2, 0.5, w), (1, 1, 0.5, w),
                                        (1, 3, 0.5, w)], N_STIM, N_EXPERT, seed),
                delay_ms=dt_ms)
    # cue A -> A1, A2; cue B -> B1, B2
    net.connect(cue, experts, _blocks([(0, 0, 1.0, 4.0), (0, 1, 1.0, 4.0), (1, 2, 1.0, 4.0),
                                       (1, 3, 1.0, 4.0)], N_CUE, N_EXPERT, seed),
                delay_ms=dt_ms)
    # A1 -> left, A2 -> right, B1 -> right, B2 -> left; each expert group recurrent
    net.connect(experts, out, _blocks([(0, 0, 0.5, 3.0), (1, 1, 0.5, 3.0), (2, 1, 0.5, 3.0),
                                       (3, 0, 0.5, 3.0)], N_EXPERT, N_OUT, seed),
                delay_ms=dt_ms)
    net.connect(experts, experts, _blocks([(g, g, 0.2, 1.0) for g in range(4)], N_EXPERT,
                                          N_EXPERT, seed), delay_ms=dt_ms,
                name="experts->experts")
    if gated:
        # the gate's context is the cue: +0.05 per Hz of the own context's cue, -0.05 of the
        # other's, so a context's experts open within a few tens of ms of its cue
        w_c = np.zeros((4 * N_EXPERT, 2 * N_CUE))
        for g in range(4):
            own = g // 2
            rows = slice(g * N_EXPERT, (g + 1) * N_EXPERT)
            w_c[rows, own * N_CUE:(own + 1) * N_CUE] = 0.05
            w_c[rows, (1 - own) * N_CUE:(2 - own) * N_CUE] = -0.05
        net.epigenetic_gate(experts, cue, w_c, bias=0.0, tau_context_ms=20.0, tau_ms=10.0,
                            theta_act=0.2)
        every = int(round(5.0 / dt_ms))
        net.record_state("experts.gate", "open", every_steps=every)
        net.record_state("experts.gate", "activation_ratio", neurons=[0], every_steps=every)
    net.record_spikes(experts, out, stim, cue)
    return net


def decisions(results, n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: the answer (0 left, 1 right, -1 tie) and the output counts (trials, 2)."""
    times, neurons = results.spikes("out")
    trial = (times // TRIAL_MS).astype(np.int64)
    late = (times % TRIAL_MS) >= DECIDE_FROM_MS
    counts = np.zeros((n_trials, 2))
    np.add.at(counts, (trial[late], neurons[late] // N_OUT), 1.0)
    answer = np.where(counts[:, 0] > counts[:, 1], 0, np.where(counts[:, 1] > counts[:, 0], 1, -1))
    return answer, counts


def run_both(n_trials: int = 40, seed: int = 0, progress: bool = True) -> dict:
    """Run the ungated and the gated network on the same inputs; accuracy, SynOps, and the
    gate's mean activation ratio."""
    from evospike.backends import get_backend
    from evospike.energy import count_network_ops

    context, stimulus = trial_plan(n_trials, seed)
    want = target(context, stimulus)
    out = {}
    for gated in (False, True):
        net = build(n_trials, gated, seed=seed)
        runner = get_backend("torch").compile(net, progress=progress, seeds=(seed,))
        res = runner.run(n_trials * TRIAL_MS)
        answer, counts = decisions(res, n_trials)
        ops = count_network_ops(net, res)
        expert_ops = sum(layer.effective for layer in ops.layers
                         if layer.name.startswith("experts->"))
        entry = {"accuracy": float((answer == want).mean()), "synops": ops.synops,
                 "expert_synops": expert_ops, "counts": counts, "results": res}
        if gated:
            entry["open_fraction"] = float(res.traces["experts.gate.open"].values.mean())
            entry["ratio"] = res.traces["experts.gate.activation_ratio"].values[0, :, 0]
            is_open = res.traces["experts.gate.open"].values[0]
            entry["open_by_group"] = is_open.reshape(is_open.shape[0], 4, N_EXPERT).mean(2)
            entry["trace_steps"] = res.traces["experts.gate.open"].steps
        out["gated" if gated else "ungated"] = entry
    out["synops_saving"] = 1.0 - out["gated"]["synops"] / out["ungated"]["synops"]
    out["expert_synops_saving"] = 1.0 - out["gated"]["expert_synops"] / \
        out["ungated"]["expert_synops"]
    out["want"] = want
    out["context"] = context
    return out


def plot(out: dict, path: str, dt_ms: float = 0.5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t_s = out["gated"]["trace_steps"] * dt_ms / 1000
    by_group = out["gated"]["open_by_group"]
    ax1.plot(t_s, by_group[:, :2].mean(1), lw=2, label="experts of context A (A1, A2)")
    ax1.plot(t_s, by_group[:, 2:].mean(1), "--", lw=2, label="experts of context B (B1, B2)")
    for k in np.nonzero(out["context"] == 1)[0]:
        ax1.axvspan(k * TRIAL_MS / 1000, (k + 1) * TRIAL_MS / 1000, color="0.9", lw=0)
    ax1.set_ylabel("fraction open (grey: context B)")
    ax1.set_title("epigenetic gate: experts of the current context stay open")
    ax1.legend(loc="right", fontsize=8)
    trial_t = (np.arange(out["want"].size) + 0.5) * TRIAL_MS / 1000
    for key, style in (("ungated", "o"), ("gated", "x")):
        c = out[key]["counts"]
        sign = np.where(out["want"] == 0, 1, -1)
        ax2.plot(trial_t, sign * (c[:, 0] - c[:, 1]), style, label=(
            f"{key}: {100 * out[key]['accuracy']:.1f} % correct, "
            f"{out[key]['synops']:.3g} SynOps"))
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_ylabel("correct - wrong output spikes")
    ax2.set_xlabel("time (s)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    n_trials = int(argv[1]) if len(argv) > 1 else 40
    out = run_both(n_trials)
    for key in ("ungated", "gated"):
        r = out[key]
        print(f"{key:8s} accuracy {100 * r['accuracy']:.1f} % "
              f"({int(round(r['accuracy'] * n_trials))}/{n_trials}), SynOps {r['synops']:.4g} "
              f"(from the experts {r['expert_synops']:.4g})")
    print(f"SynOps saving {100 * out['synops_saving']:.1f} % (of the experts' own "
          f"{100 * out['expert_synops_saving']:.1f} %), experts open on average "
          f"{100 * out['gated']['open_fraction']:.1f} %")
    plot(out, "epigenetic_gating.png")
    print("wrote epigenetic_gating.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
