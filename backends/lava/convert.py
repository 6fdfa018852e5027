"""Plain LIF (exponential current synapses) -> Loihi's CUBA-LIF (Lava's ``LIF`` process).

Lava's LIF is the two-state discrete neuron of `evospike.ir.neurons.CubaLIF`: one synaptic
current ``u`` with one decay, a voltage ``v`` that resets to 0. An EvoSpike `LIF` maps onto it
**exactly** (the same spikes, up to float rounding) when its input arrives on one synaptic time
constant:

- ``dv = 1 - exp(-dt / tau_m)``, ``du = 1 - exp(-dt / tau_syn)``;
- voltages are shifted so that the reset is 0: ``v_cuba = v - v_reset``,
  ``v_thresh_cuba = v_thresh - v_reset``, ``bias = dv * (v_rest + i_bias - v_reset)``;
- a synaptic event of weight ``w`` becomes ``w * P_vs``, with ``P_vs`` the exact one-step
  gain of the current onto the voltage (``evospike.dynamics``), delivered **one step later**
  (delay + 1): the exact LIF lets an event reach the voltage one step after it reaches the
  current, Loihi in the same step, and the extra step of delay makes the two identical;
- a constant injected current ``I`` becomes ``dv * I`` (the exact gain of a held input);
- the refractory period is kept.

When a population receives input on both ``exc`` and ``inh`` with *different* time constants
(Brian2's CUBA example: 5 and 10 ms) no two-state neuron can hold it. With
``merge_synapses=True`` (the backend's default) both currents are merged into one whose time
constant keeps the variance of the membrane potential (`_matched_tau`; 9.8 ms for CUBA), each
channel's weights scaled by ``tau_syn / tau_merged`` so that every event still delivers the
same charge (the integral of its current). The spike trains then differ, their statistics
carry over (``evospike validate --backend lava --against torch`` checks it on CUBA), and the
conversion says so in its notes. With ``merge_synapses=False`` such a population is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evospike.dynamics import one_step
from evospike.ir.distributions import Normal, Uniform
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, AdaptiveLIF, CubaLIF
from evospike.ir.nodes import CurrentInput, Population, Projection


@dataclass
class Conversion:
    """The converted network plus what a reader of its results needs to know."""

    network: Network
    #: population -> voltage offset (mV) to add to a converted ``v`` to get the LIF's ``v``
    v_offset: dict[str, np.ndarray] = field(default_factory=dict)
    #: populations converted from LIF
    converted: list[str] = field(default_factory=list)
    #: one sentence per approximation made (empty when the conversion is exact)
    notes: list[str] = field(default_factory=list)
    #: nodes the conversion cannot carry, with the reason
    refusals: list[str] = field(default_factory=list)


def _uniform(values, name: str, field_name: str, refusals: list[str]) -> float | None:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if np.all(arr == arr[0]):
        return float(arr[0])
    refusals.append(f"Population '{name}': LIF.{field_name} differs between neurons; Lava's "
                    "LIF process has one decay per population")
    return None


def _shift(value, offset: float | np.ndarray):
    if isinstance(value, Uniform):
        if np.ndim(offset):
            return None
        return Uniform(value.low - float(offset), value.high - float(offset))
    if isinstance(value, Normal):
        if np.ndim(offset):
            return None
        return Normal(value.mean - float(offset), value.std)
    return np.asarray(value, dtype=np.float64) - offset


def _gain(tau_m: float, tau_s: float, dt: float) -> float:
    """Exact one-step gain of the synaptic current onto the voltage of a LIF."""
    step = one_step(LIF(tau_m_ms=tau_m, tau_syn_exc_ms=tau_s, tau_syn_inh_ms=tau_s,
                        v_rest_mV=0.0, v_reset_mV=-1.0, v_thresh_mV=1.0), "conversion", dt)
    return float(step.P[0, 1, 0])


def _matched_tau(network: Network, name: str, tau_m: float, taus: dict[str, float]) -> float:
    """The one synaptic time constant that, with every event keeping its charge
    ``Q = w tau_syn``, keeps the variance of the membrane potential.

    A current of charge Q and time constant tau_s gives a PSP whose squared integral is
    ``Q^2 / (2 (tau_m + tau_s))``; for Poisson inputs at equal rates the voltage variance is
    the sum of that over the synapses of a neuron. Matching the sum over both channels gives
    ``1 / (tau_m + tau) = sum_c A_c / (tau_m + tau_c) / sum_c A_c`` with
    ``A_c = tau_c^2 * (sum of w^2 over the synapses of channel c) / n_post``."""
    weight = {}
    for ch in ("exc", "inh"):
        sq = sum(float(np.sum(p.weights ** 2)) / p.n_post for p in network.projections.values()
                 if p.post == name and p.target == ch)
        weight[ch] = sq * taus[ch] ** 2
    total = sum(weight.values())
    if total == 0:
        return taus["exc"]
    inverse = sum(weight[ch] / (tau_m + taus[ch]) for ch in weight) / total
    return 1.0 / inverse - tau_m


def to_loihi_lif(network: Network, merge_synapses: bool = True,
                 shared_tau_ms: float | None = None, only_merged: bool = False) -> Conversion:
    """A copy of ``network`` whose `LIF` populations are `CubaLIF` (see the module docstring).

    ``only_merged``: convert only the populations whose two synaptic time constants must be
    merged, and leave the others LIF (fixed_pt: `evospike.fixed_point.quantize` reduces those
    itself, exactly). Other nodes are carried over unchanged (the backend then accepts or
    refuses them)."""
    dt = network.dt_ms
    out = Network(network.name, dt_ms=dt, units=network.units)
    conv = Conversion(out)
    scale: dict[tuple[str, str], float] = {}  # (population, channel) -> weight factor
    for pop in network.populations.values():
        model = pop.model
        if not isinstance(model, LIF) or isinstance(model, AdaptiveLIF):
            out.add(pop)
            continue
        name = pop.name
        before = len(conv.refusals)
        if model.reset != "value":
            conv.refusals.append(f"Population '{name}': LIF reset='{model.reset}'; Lava's LIF "
                                 "resets the voltage to a value")
        tau_m = _uniform(model.tau_m_ms, name, "tau_m_ms", conv.refusals)
        taus = {ch: _uniform(getattr(model, f"tau_syn_{ch}_ms"), name, f"tau_syn_{ch}_ms",
                             conv.refusals) for ch in ("exc", "inh")}
        used = sorted({p.target for p in network.projections.values()
                       if p.post == name and p.n_synapses})
        if "v" in used:
            conv.refusals.append(f"Population '{name}': projections onto channel 'v' (Lava's "
                                 "LIF takes synaptic input only into its current)")
        span = np.atleast_1d(np.asarray(model.v_thresh_mV, float) -
                             np.asarray(model.v_reset_mV, float))
        if not np.all(span == span[0]):
            conv.refusals.append(f"Population '{name}': v_thresh_mV - v_reset_mV differs "
                                 "between neurons; Lava's LIF has one threshold per population")
        for state in ("i_exc", "i_inh"):
            if isinstance(pop.initial.get(state), (Uniform, Normal)):
                conv.refusals.append(f"Population '{name}': a random initial {state} (the "
                                     "conversion needs it as numbers)")
        if len(conv.refusals) > before or tau_m is None or None in taus.values():
            out.add(pop)  # kept as it is, so the rest of the network still refers to it
            continue
        channels = [ch for ch in ("exc", "inh") if ch in used] or ["exc"]
        if only_merged and not (len(channels) == 2 and taus["exc"] != taus["inh"]):
            out.add(pop)
            continue
        tau_s = taus[channels[0]]
        if len(channels) == 2 and taus["exc"] != taus["inh"]:
            if not merge_synapses:
                conv.refusals.append(
                    f"Population '{name}': excitatory and inhibitory synaptic time constants "
                    f"differ ({taus['exc']} and {taus['inh']} ms); Lava's LIF has one synaptic "
                    "current (merge_synapses=True merges them, preserving each event's charge)")
                out.add(pop)
                continue
            tau_s = shared_tau_ms or _matched_tau(network, name, tau_m, taus)
            conv.notes.append(
                f"population '{name}': excitatory (tau {taus['exc']:g} ms) and inhibitory "
                f"(tau {taus['inh']:g} ms) synaptic currents merged into one of tau "
                f"{tau_s:.3g} ms, weights scaled by tau_syn / {tau_s:.3g} (same charge per "
                "event, same membrane variance for equal presynaptic rates): spike trains "
                "differ from the LIF's, statistics carry over")
        gain = _gain(tau_m, tau_s, dt)
        for ch in ("exc", "inh"):
            scale[(name, ch)] = gain * taus[ch] / tau_s if len(channels) == 2 else gain
        a = np.exp(-dt / tau_m)
        decay_s = np.exp(-dt / tau_s)
        v_reset = np.asarray(model.v_reset_mV, dtype=np.float64)
        bias = (1.0 - a) * (np.asarray(model.v_rest_mV, float) + np.asarray(model.i_bias_mV,
                                                                             float) - v_reset)
        cuba = CubaLIF(du=1.0 - decay_s, dv=1.0 - a, bias=bias, v_thresh=float(span[0]),
                       v_reset=0.0, tau_refrac_ms=model.tau_refrac_ms, reset="value")
        defaults = model.default_initial()
        v0 = _shift(pop.initial.get("v", defaults["v"]), v_reset)
        if v0 is None:
            conv.refusals.append(f"Population '{name}': a random initial v with per-neuron "
                                 "v_reset_mV")
            out.add(pop)
            continue
        u0 = sum(scale[(name, ch)] * np.asarray(pop.initial.get(f"i_{ch}", 0.0), float)
                 for ch in ("exc", "inh")) / decay_s
        initial = {"v": v0}
        if np.any(u0 != 0):
            initial["u"] = u0
        out.add(Population(name, pop.size, cuba, initial))
        conv.v_offset[name] = v_reset
        conv.converted.append(name)
    for src in network.sources.values():
        out.add(src)
    for proj in network.projections.values():
        factor = scale.get((proj.post, proj.target))
        if factor is None:
            out.add(proj)
            continue
        out.add(Projection(proj.name, proj.pre, proj.post, proj.n_pre, proj.n_post,
                           proj.indptr.copy(), proj.indices.copy(), proj.weights * factor,
                           proj.delays.astype(np.int64) + 1, "exc"))
    for cur in network.currents.values():
        if cur.target not in conv.v_offset:
            out.add(cur)
            continue
        model = network.populations[cur.target].model
        gain = 1.0 - np.exp(-dt / float(np.ravel(model.tau_m_ms)[0]))
        out.add(CurrentInput(cur.name, cur.target, np.asarray(cur.amplitude) * gain,
                             cur.start_ms, cur.stop_ms,
                             None if cur.series is None else cur.series * gain))
    for mon in network.spike_monitors:
        out.add(mon)
    for name, mon in network.state_monitors.items():
        if mon.target in conv.v_offset and mon.variable != "v":
            conv.refusals.append(f"StateMonitor '{name}': records {mon.variable} of converted "
                                 f"LIF population '{mon.target}'; Lava's LIF holds one merged "
                                 "current, only v carries over")
            continue
        out.state_monitors[name] = mon
    # Everything else (plasticity, weight monitors, processes) is carried over as it is, for
    # the backend to accept or refuse by name.
    for kind in ("weight_monitors", "plasticity", "processes", "inputs"):
        getattr(out, kind).update(getattr(network, kind, {}))
    return conv
