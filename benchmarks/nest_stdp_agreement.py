"""How closely EvoSpike's STDP rules agree with NEST's own (issue 18): the same small plastic
network, with the same pre- and postsynaptic spikes, run by the torch backend (eager, float64)
and by NEST 3.10 directly (pynest), and the final weights compared.

The NEST backend refuses both rules (`backends/nest/compiler.py` says why): this script
measures the closest agreement there is, so the difference is a number, not a guess.

The network: ``N_PRE`` presynaptic parrot neurons (NEST) / spike-times sources (EvoSpike),
Poisson at 10 Hz, onto ``N_POST`` LIF neurons (``iaf_psc_delta``; plastic weights in mV),
all to all, delay 0.1 ms. Each postsynaptic neuron is forced to fire by a teacher (a 40 mV
kick at Poisson times, 8 Hz) while the plastic weights (<= ``W_MAX`` = 1 mV) cannot make it
fire on their own, so both simulators see the same pre and post spikes (checked: the script
stops if they differ) and the weights differ only by the rules. After ``T_MS`` and 300 ms
without post spikes or dopamine every presynaptic neuron fires once more (2 ms apart, too
weak together to make a post neuron fire), so that NEST's lazily applied updates are all in
its weights.

* ``stdp``: EvoSpike ``STDP`` (additive, all pairs) against ``stdp_synapse`` with
  ``mu_plus = mu_minus = 0``: ``a_plus = lambda Wmax``, ``a_minus = alpha lambda Wmax``,
  bounds [0, Wmax], ``tau_minus`` set on the NEST neuron.
* ``reward``: EvoSpike ``RewardModulatedSTDP`` against ``stdp_dopamine_synapse`` with
  ``b = 0``: dopamine spikes (a parrot neuron into a ``volume_transmitter``) at the reward
  times, each raising NEST's ``n`` by ``1 / tau_n``; EvoSpike's modulator has ``tau_ms =
  tau_n`` and reward amounts ``1 / tau_n`` at the same times, ``learning_rate_per_ms = 1``
  (so ``dw/dt = m e`` against NEST's ``dw/dt = c n``), ``tau_eligibility = tau_c``, the same
  A+/A-, tau_plus, bounds.

Printed and written to ``benchmarks/results/nest_stdp_agreement.json``: per rule, the weight
change correlation (final - initial, EvoSpike against NEST), the largest and the mean absolute
difference of the final weights, relative to the mean absolute weight change.

    python benchmarks/nest_stdp_agreement.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DT = 0.1  # ms
DELAY_MS = 0.1  # of the plastic synapses
T_MS = 2000.0  # the plastic part of the run
QUIET_MS = 300.0  # then no post spike, no dopamine; every pre neuron fires at T_MS + QUIET_MS
N_PRE, N_POST = 40, 4
RATE_PRE_HZ, RATE_TEACHER_HZ = 10.0, 8.0
KICK_MV = 40.0
W_MAX = 1.0
TAU_PLUS = TAU_MINUS = 20.0
LIF = dict(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-65.0, v_thresh_mV=-50.0,
           tau_refrac_ms=2.0)
# stdp_synapse
LAMBDA, ALPHA = 0.01, 1.1
# stdp_dopamine_synapse
A_PLUS, A_MINUS, TAU_C, TAU_N = 0.02, 0.022, 500.0, 100.0
N_REWARDS = 15


def _poisson_steps(rng, rate_hz: float, n: int, t_ms: float) -> list[np.ndarray]:
    """Per neuron, sorted distinct steps of Poisson spikes in (1 ms, t_ms)."""
    out = []
    for _ in range(n):
        k = rng.poisson(rate_hz * t_ms / 1000.0)
        out.append(np.unique(rng.integers(int(1.0 / DT), int(t_ms / DT), k)))
    return out


def _inputs(seed: int = 5):
    rng = np.random.default_rng(seed)
    pre = _poisson_steps(rng, RATE_PRE_HZ, N_PRE, T_MS)
    # one last spike each, 2 ms apart (together they would make the post neurons fire), so
    # that NEST applies its pending updates
    final = int((T_MS + QUIET_MS) / DT) + np.arange(N_PRE) * int(2.0 / DT)
    pre = [np.append(s, final[k]) for k, s in enumerate(pre)]
    teacher = _poisson_steps(rng, RATE_TEACHER_HZ, N_POST, T_MS)
    rewards = np.sort(rng.choice(np.arange(int(50 / DT), int(T_MS / DT)), N_REWARDS,
                                 replace=False))
    w0 = rng.uniform(0.3, 0.7, (N_POST, N_PRE))  # [post, pre]
    return pre, teacher, rewards, w0


def run_nest(rule: str, pre, teacher, rewards, w0):
    """Final weights [post, pre], post spike steps per neuron, pre spike steps (EvoSpike's
    step n is NEST's stamp (n + 1) dt)."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest

    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.set(resolution=DT)
    # a generator spike stamped s reaches a parrot 1 step later: stamp (step + 1) dt - dt
    gens = nest.Create("spike_generator", N_PRE,
                       params=[{"spike_times": np.round(s * DT, 9).tolist()} for s in pre])
    parrots = nest.Create("parrot_neuron", N_PRE)
    nest.Connect(gens, parrots, "one_to_one", {"delay": DT})
    steps_ref = LIF["tau_refrac_ms"] / DT
    post = nest.Create("iaf_psc_delta", N_POST, params={
        "E_L": LIF["v_rest_mV"], "V_reset": LIF["v_reset_mV"], "V_th": LIF["v_thresh_mV"],
        "tau_m": LIF["tau_m_ms"], "C_m": LIF["tau_m_ms"], "V_m": LIF["v_rest_mV"],
        "t_ref": (steps_ref - 1) * DT, "tau_minus": TAU_MINUS, "refractory_input": False})
    tgen = nest.Create("spike_generator", N_POST,
                       params=[{"spike_times": np.round((s + 1) * DT, 9).tolist()}
                               for s in teacher])
    nest.Connect(tgen, post, "one_to_one", {"weight": KICK_MV, "delay": DT})
    if rule == "stdp":
        nest.CopyModel("stdp_synapse", "plastic", {
            "tau_plus": TAU_PLUS, "lambda": LAMBDA, "alpha": ALPHA, "mu_plus": 0.0,
            "mu_minus": 0.0, "Wmax": W_MAX})
    else:
        # a dopamine spike reaches the volume transmitter 2 steps after its generator stamp
        # (generator -> parrot -> transmitter, one step each) and n jumps at the delivery
        # time: stamps (r - 1) dt make n jump at r dt, the end of EvoSpike's step r - 1
        dgen = nest.Create("spike_generator", params={
            "spike_times": np.round((rewards - 1) * DT, 9).tolist()})
        dparrot = nest.Create("parrot_neuron")
        nest.Connect(dgen, dparrot, syn_spec={"delay": DT})
        vt = nest.Create("volume_transmitter")
        nest.Connect(dparrot, vt, syn_spec={"delay": DT})
        nest.CopyModel("stdp_dopamine_synapse", "plastic", {
            "volume_transmitter": vt, "A_plus": A_PLUS, "A_minus": A_MINUS,
            "tau_plus": TAU_PLUS, "tau_c": TAU_C, "tau_n": TAU_N, "b": 0.0, "Wmin": 0.0,
            "Wmax": W_MAX})
    src = np.repeat(np.asarray(parrots.tolist()), N_POST)
    tgt = np.tile(np.asarray(post.tolist()), N_PRE)
    nest.Connect(src, tgt, "one_to_one", {"synapse_model": "plastic",
                                          "weight": w0.T.reshape(-1),
                                          "delay": np.full(src.size, DELAY_MS)})
    rec_post, rec_pre = nest.Create("spike_recorder"), nest.Create("spike_recorder")
    nest.Connect(post, rec_post)
    nest.Connect(parrots, rec_pre)
    nest.Simulate(T_MS + QUIET_MS + 2.0 * N_PRE + 5.0)
    conns = nest.GetConnections(parrots, post).get(["source", "target", "weight"])
    w = np.zeros((N_POST, N_PRE))
    first_pre, first_post = int(parrots.tolist()[0]), int(post.tolist()[0])
    for s, t, x in zip(conns["source"], conns["target"], conns["weight"], strict=True):
        w[int(t) - first_post, int(s) - first_pre] = x

    def steps(rec, first, n):
        ev = rec.events
        st = np.round(np.asarray(ev["times"]) / DT).astype(int) - 1
        who = np.asarray(ev["senders"]) - first
        return [np.sort(st[who == k]) for k in range(n)]

    return w, steps(rec_post, first_post, N_POST), steps(rec_pre, first_pre, N_PRE)


def run_torch(rule: str, pre_steps, teacher, rewards, w0, shift: int = 0):
    """Final weights [post, pre] and post spike steps per neuron; ``shift``: every
    presynaptic spike that many steps earlier (see `compare`)."""
    from evospike import LIF as LIFModel
    from evospike import FromArrays, Network
    from evospike.backends import get_backend
    from evospike.ir.modulators import RewardEvents

    net = Network(f"agree_{rule}", dt_ms=DT)
    neurons = np.concatenate([np.full(s.size, k) for k, s in enumerate(pre_steps)])
    times = (np.concatenate(pre_steps) - shift) * DT
    src = net.spike_source("pre", N_PRE, neurons, times)
    t_neurons = np.concatenate([np.full(s.size, k) for k, s in enumerate(teacher)])
    tsrc = net.spike_source("teacher", N_POST, t_neurons, np.concatenate(teacher) * DT)
    post = net.population("post", N_POST, LIFModel(**LIF))
    pre_i = np.repeat(np.arange(N_PRE), N_POST)
    post_i = np.tile(np.arange(N_POST), N_PRE)
    proj = net.connect(src, post, FromArrays(pre_i, post_i), weight=w0[post_i, pre_i],
                       delay_ms=DELAY_MS, target="v", name="plastic")
    net.connect(tsrc, post, FromArrays(np.arange(N_POST), np.arange(N_POST)), weight=KICK_MV,
                delay_ms=DT, target="v", name="kick")
    if rule == "stdp":
        net.stdp(proj, tau_plus_ms=TAU_PLUS, tau_minus_ms=TAU_MINUS, a_plus=LAMBDA * W_MAX,
                 a_minus=ALPHA * LAMBDA * W_MAX, w_min=0.0, w_max=W_MAX)
    else:
        # the reward of step r - 1 joins the level at the end of that step, r dt, where NEST's
        # n jumps (see run_nest); the level then acts from step r on
        dopa = net.modulator("dopa", tau_ms=TAU_N, drives=[RewardEvents(
            (rewards - 1) * DT, np.full(rewards.size, 1.0 / TAU_N))])
        net.reward_stdp(proj, dopa, tau_plus_ms=TAU_PLUS, tau_minus_ms=TAU_MINUS,
                        a_plus=A_PLUS, a_minus=A_MINUS, w_min=0.0, w_max=W_MAX,
                        tau_eligibility_ms=TAU_C, learning_rate_per_ms=1.0)
    n_steps = int((T_MS + QUIET_MS + 2.0 * N_PRE) / DT) + 5
    net.record_weights(proj, every_steps=n_steps - 1, name="w")
    net.record_spikes(post)
    res = get_backend("torch").compile(net, engine="eager", precision="float64",
                                       progress=False).run(n_steps * DT)
    final = res.weights["w"].values[0, -1]
    w = np.zeros((N_POST, N_PRE))
    w[proj.indices.astype(int), proj.pre_indices()] = final
    s, n = res.spike_steps("post")
    return w, [np.sort(s[n == k]) for k in range(N_POST)]


def compare(rule: str, aligned: bool) -> dict:
    """``aligned``: EvoSpike's presynaptic spikes 2 delays earlier than NEST's. NEST's delay
    is dendritic: a pre spike emitted at t meets the post spikes at the synapse at t, a post
    spike at s meets it at s + d, so the pair interval is t - s - d; EvoSpike's delay is
    axonal: the interval is t + d - s. Shifting the pre spikes by 2 d gives both the same
    intervals (the shifted spikes also reach the post neuron earlier; it fires at the
    teacher's times regardless, which is checked)."""
    pre, teacher, rewards, w0 = _inputs()
    w_nest, post_nest, pre_nest = run_nest(rule, pre, teacher, rewards, w0)
    shift = 2 * int(round(DELAY_MS / DT)) if aligned else 0
    w_torch, post_torch = run_torch(rule, pre_nest, teacher, rewards, w0, shift)
    for k in range(N_POST):  # the premise: the same spikes on both sides
        if not np.array_equal(post_nest[k], post_torch[k]):
            raise SystemExit(f"{rule}: post neuron {k} fired differently in NEST and EvoSpike "
                             f"({post_nest[k][:5]} vs {post_torch[k][:5]}): no comparison")
    d_nest, d_torch = (w_nest - w0).ravel(), (w_torch - w0).ravel()
    diff = np.abs(w_torch - w_nest).ravel()
    scale = float(np.mean(np.abs(d_nest)))
    # a presynaptic spike arriving in the step of a postsynaptic spike: EvoSpike counts it as
    # before the post spike (it potentiates), NEST skips the pair (stdp_eps)
    ties = np.array([[np.intersect1d(pre_nest[j] + 1 - shift, post_nest[k]).size > 0
                      for j in range(N_PRE)] for k in range(N_POST)]).ravel()
    rest = diff[~ties]
    return {
        "rule": rule, "pre_spikes_shifted_by_steps": -shift, "synapses": int(d_nest.size),
        "post_spikes": int(sum(p.size for p in post_nest)),
        "pre_spikes": int(sum(p.size for p in pre_nest)),
        "mean_abs_change_nest": scale,
        "mean_abs_change_torch": float(np.mean(np.abs(d_torch))),
        "change_correlation": float(np.corrcoef(d_nest, d_torch)[0, 1]),
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "max_diff_over_mean_change": float(diff.max() / scale),
        "mean_diff_over_mean_change": float(diff.mean() / scale),
        "synapses_with_ties": int(ties.sum()),
        "max_abs_diff_without_ties": float(rest.max()),
        "mean_abs_diff_without_ties": float(rest.mean()),
        "change_correlation_without_ties": float(np.corrcoef(d_nest[~ties],
                                                             d_torch[~ties])[0, 1]),
        "at_bounds_nest": int(np.sum((w_nest <= 0.0) | (w_nest >= W_MAX))),
        "at_bounds_torch": int(np.sum((w_torch <= 0.0) | (w_torch >= W_MAX))),
    }


def main() -> None:
    rows = [compare(rule, aligned) for rule in ("stdp", "reward") for aligned in (False, True)]
    for r in rows:
        print(f"{r['rule']:>6}, EvoSpike's pre spikes shifted by "
              f"{r['pre_spikes_shifted_by_steps']} steps: {r['synapses']} synapses, "
              f"{r['pre_spikes']} pre / "
              f"{r['post_spikes']} post spikes; mean |dw| NEST {r['mean_abs_change_nest']:.4g}, "
              f"EvoSpike {r['mean_abs_change_torch']:.4g}; correlation of dw "
              f"{r['change_correlation']:.6f}; |w_torch - w_nest| max {r['max_abs_diff']:.3g} "
              f"({r['max_diff_over_mean_change']:.2%} of mean |dw|), mean "
              f"{r['mean_abs_diff']:.3g} ({r['mean_diff_over_mean_change']:.2%}); at bounds "
              f"{r['at_bounds_nest']} / {r['at_bounds_torch']}")
        print(f"        without the {r['synapses_with_ties']} synapses whose pre spike arrived "
              f"in the step of a post spike: correlation "
              f"{r['change_correlation_without_ties']:.6f}, |w_torch - w_nest| max "
              f"{r['max_abs_diff_without_ties']:.3g}, mean {r['mean_abs_diff_without_ties']:.3g}")
    out = ROOT / "benchmarks" / "results" / "nest_stdp_agreement.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
