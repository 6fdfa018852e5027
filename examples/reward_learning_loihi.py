"""Reward-dependent association on Loihi 2's learning engine (three-factor STDP in fixed point).

The task and the protocol of ``examples/reward_learning.py`` (two stimuli of 40 inputs each
onto 10 outputs through one all-to-all plastic projection; a reward after stimulus A, a
punishment after B), with the neuron Loihi implements: a `CubaLIF` (current decay
``du = 1 - exp(-dt / 5 ms)``, voltage decay ``dv = 1 - exp(-dt / 10 ms)``, threshold 11 above
rest, 2 ms refractory) in place of the LIF, and the LIF's weights, STDP amplitudes and bound
in mV scaled by ``dv`` into the CubaLIF's current units (the same steady-state voltage per
unit of input). In fixed point, the three-factor rule runs as Lava's ``Loihi3FLearningRule``
(`evospike.backends.lava.three_factor`): eligibility in the synaptic tag, the reward sent by
the post-synaptic neuron, 8-bit weights spanning [0, w_max].

Measured (seed 0, 100 trials, 25 s simulated, torch backend), preference for A
``(n_A - n_B) / (n_A + n_B)`` from the first block of 10 trials to the last:

- float64: -0.13 -> +0.59;
- fixed point (Loihi 2's integer neuron and learning engine): -0.11 -> +0.51
  (mean weight from A 0.083, from B 0.058, both starting at 0.073);
- fixed point, plain STDP in place of the three-factor rule: -0.11 -> +0.06.

The fixed-point run is the one Lava computes: ``--lava`` runs the three-factor network in Lava
as well and checks that it learns the same weights, bit for bit. Measured: 100 trials in Lava
(50,000 steps, about 95 s at 520 steps/s) give the same preference curve (-0.11 -> +0.51)
and identical weights; the tests check the same on smaller networks.

    python examples/reward_learning_loihi.py 100           # writes reward_learning_loihi.png
    python examples/reward_learning_loihi.py 20 --lava     # and runs it in Lava
    evospike run examples/reward_learning_loihi.py --backend lava --duration 5s
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from evospike import AllToAll, CubaLIF, Network, RewardEvents

_spec = importlib.util.spec_from_file_location(
    "reward_learning_example", Path(__file__).resolve().parent / "reward_learning.py")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

TAU_SYN_MS, TAU_M_MS = 5.0, 10.0
V_THRESH = 11.0  # -54 mV threshold, -65 mV rest and reset


def build(n_trials: int = 80, with_modulator: bool = True, dt_ms: float = 0.5,
          seed: int = 0) -> Network:
    plan = base.trial_plan(n_trials, seed)
    net = Network("reward_learning_loihi" if with_modulator else
                  "reward_learning_loihi_plain_stdp", dt_ms)
    inputs = net.spike_source("inputs", 2 * base.N_PER_GROUP,
                              *base.stimulus_spikes(plan, dt_ms, seed))
    du = 1.0 - np.exp(-dt_ms / TAU_SYN_MS)
    dv = 1.0 - np.exp(-dt_ms / TAU_M_MS)
    out = net.population("out", base.N_OUT, CubaLIF(du=du, dv=dv, v_thresh=V_THRESH,
                                                    tau_refrac_ms=2.0))
    # a weight of W mV on the LIF's synaptic current gives the CubaLIF's u a jump of W * dv
    unit = dv
    proj = net.connect(inputs, out, AllToAll(), weight=base.W0_MV * unit, delay_ms=dt_ms,
                       name="in->out")
    stdp = dict(tau_plus_ms=20.0, tau_minus_ms=20.0, a_plus=0.05 * unit, a_minus=0.055 * unit,
                w_min=0.0, w_max=base.W_MAX_MV * unit)
    if with_modulator:
        net.modulator("dopamine", 50.0,
                      [RewardEvents(np.arange(n_trials) * base.TRIAL_MS + base.REWARD_AT_MS,
                                    np.where(plan == 0, 1.0, -1.0))])
        net.reward_stdp(proj, "dopamine", tau_eligibility_ms=100.0, learning_rate_per_ms=0.02,
                        **stdp)
    else:
        net.stdp(proj, **stdp)
    net.record_spikes(out)
    net.record_weights(proj, every_steps=int(round(base.TRIAL_MS / dt_ms)))
    return net


def run_all(n_trials: int, seed: int = 0, lava: bool = False, progress: bool = True) -> dict:
    """Learning curves and weights: float64, fixed point, fixed point without the modulator
    (torch), and, with ``lava``, the fixed-point three-factor network in Lava."""
    from evospike.backends import get_backend

    plan = base.trial_plan(n_trials, seed)
    duration_ms = n_trials * base.TRIAL_MS
    runs = {"three-factor, float64": ("torch", True, {"precision": "float64"}),
            "three-factor, fixed point (Loihi 2)": ("torch", True, {"precision": "fixed"}),
            "plain STDP, fixed point": ("torch", False, {"precision": "fixed"})}
    if lava:
        runs["three-factor, Lava fixed_pt"] = ("lava", True, {})
    curves, weights = {}, {}
    for label, (backend, modulated, options) in runs.items():
        net = build(n_trials, with_modulator=modulated, seed=seed)
        res = get_backend(backend).compile(net, seeds=(seed,), progress=progress,
                                           **options).run(duration_ms)
        curves[label] = base.preference_curve(res, plan)
        weights[label] = res.weights["in->out.weights"].values[0]
    return {"curves": curves, "weights": weights}


def plot(curves: dict, weights: dict, path: str, block: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_c, ax_w) = plt.subplots(1, 2, figsize=(11, 4))
    half = base.N_PER_GROUP * base.N_OUT
    for k, (label, curve) in enumerate(curves.items()):
        color = "k" if "Lava" in label else f"C{k}"
        style = "x:" if "Lava" in label else "o-"  # Lava lies on the torch fixed-point curve
        ax_c.plot((np.arange(curve.size) + 1) * block, curve, style, color=color, label=label)
        w = weights[label]
        ax_w.plot(w[:, :half].mean(axis=1), color=color, label=f"{label}: A")
        ax_w.plot(w[:, half:].mean(axis=1), "--", color=color, label=f"{label}: B")
    ax_c.axhline(0.0, color="k", lw=0.5)
    ax_c.set_xlabel("trial")
    ax_c.set_ylabel("preference for A: (n_A - n_B) / (n_A + n_B)")
    ax_c.legend(fontsize=8)
    ax_w.set_xlabel("trial")
    ax_w.set_ylabel("mean weight (CubaLIF current units)")
    ax_w.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    trials = int(args[0]) if args else 100
    out = run_all(trials, lava="--lava" in sys.argv)
    plot(out["curves"], out["weights"], "reward_learning_loihi.png")
    for label, curve in out["curves"].items():
        print(f"{label}: preference for A, first block {curve[0]:+.2f}, last block "
              f"{curve[-1]:+.2f}")
    if "--lava" in sys.argv:
        same = np.array_equal(out["weights"]["three-factor, Lava fixed_pt"],
                              out["weights"]["three-factor, fixed point (Loihi 2)"])
        print(f"Lava learned the same weights as the torch fixed-point mode: {same}")
    print("wrote reward_learning_loihi.png")
