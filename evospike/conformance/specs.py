"""The conformance specs: one per IR node kind (and per variant a backend may treat apart), each a
small network that exercises it and a reference check of its results.

A check never accepts "it ran": it recomputes what the IR's docstrings define, in NumPy, and
compares (``_close``/``_equal`` raise `AssertionError` naming the record and the first
difference). Neuron and input specs integrate the model from its parameters; plasticity and
process specs replay their equations on the run's own recorded spikes (the spikes themselves
are compared between backends by the matrix). ``fixed_check``: a check for the fixed-point
columns, whose integers follow no float reference; where it is None those columns rely on their
bit-exact comparison with each other (torch-fixed against Lava).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evospike.connectors import AllToAll, FromArrays, OneToOne
from evospike.ir.modulators import RewardEvents, RewardSeries, SpikeCountDrive
from evospike.ir.network import PROCESS_TYPES, Network
from evospike.ir.neurons import (
    LIF,
    NEURON_MODELS,
    AdaptiveLIF,
    AdEx,
    CondAdEx,
    CondLIF,
    CubaLIF,
    Izhikevich,
)
from evospike.ir.nodes import CHANNELS, PoissonInput, PoissonSource, SpikeTimesSource
from evospike.ir.plasticity import PAIRINGS, STDP, WEIGHT_DEPENDENCES, RewardModulatedSTDP
from evospike.results import Results

Check = Callable[[Network, Results], None]


@dataclass(frozen=True)
class Spec:
    """``name``: the row and pytest id; ``title``: the node kinds it is about; ``doc``: what the
    check compares with."""

    name: str
    title: str
    build: Callable[[], Network]
    duration_ms: float
    check: Check
    doc: str
    fixed_check: Check | None = None


# --------------------------------------------------------------------------- node kinds
def ir_node_kinds() -> set[str]:
    """Every node kind (and variant) the IR defines, read from the IR itself, so that a new kind
    without a spec fails the suite's coverage test."""
    kinds = {f"Population[{k}]" for k in NEURON_MODELS}
    kinds |= {f"Projection[target={c}]" for c in CHANNELS} | {"Projection[delay>1]"}
    kinds |= {PoissonSource.__name__, SpikeTimesSource.__name__}
    kinds |= {f"{PoissonInput.__name__}[channel={c}]" for c in CHANNELS}
    kinds |= {"CurrentInput[constant]", "CurrentInput[series]"}
    kinds |= {"SpikeMonitor", "StateMonitor", "WeightMonitor"}
    rules = [STDP, *_subclasses(STDP)]
    kinds |= {r.__name__ for r in rules}
    kinds |= {f"STDP[weight_dependence={d}]" for d in WEIGHT_DEPENDENCES}
    kinds |= {f"STDP[pairing={p}]" for p in PAIRINGS}
    kinds |= {t.__name__ for t in PROCESS_TYPES}
    return kinds


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def kinds_in(net: Network) -> set[str]:
    """The node kinds a built network contains (what a spec really exercises)."""
    kinds = {f"Population[{p.model.kind}]" for p in net.populations.values()}
    for proj in net.projections.values():
        kinds.add(f"Projection[target={proj.target}]")
        if proj.n_synapses and int(proj.delays.max()) > 1:
            kinds.add("Projection[delay>1]")
    kinds |= {type(s).__name__ for s in net.sources.values()}
    kinds |= {f"{type(i).__name__}[channel={i.channel}]" for i in net.inputs.values()}
    for cur in net.currents.values():
        kinds.add("CurrentInput[series]" if cur.series is not None else "CurrentInput[constant]")
    if net.spike_monitors:
        kinds.add("SpikeMonitor")
    if net.state_monitors:
        kinds.add("StateMonitor")
    if net.weight_monitors:
        kinds.add("WeightMonitor")
    for rule in net.plasticity.values():
        kinds.add(type(rule).__name__)
        if type(rule) is STDP:
            kinds.add(f"STDP[weight_dependence={rule.weight_dependence}]")
            kinds.add(f"STDP[pairing={rule.pairing}]")
    kinds |= {type(p).__name__ for p in net.processes.values()}
    return kinds


# --------------------------------------------------------------------------- check helpers
def _close(what: str, got, want, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, reference {want.shape}")
    bad = ~np.isclose(got, want, rtol=rtol, atol=atol)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {got[idx]!r} at {idx}, reference {want[idx]!r} "
                             f"({int(bad.sum())} of {bad.size} differ)")


def _equal(what: str, got, want) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, reference {want.shape}: "
                             f"{got.tolist()[:8]} vs {want.tolist()[:8]}")
    bad = got != want
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {got[idx]!r} at {idx}, reference {want[idx]!r} "
                             f"({int(bad.sum())} of {bad.size} differ)")


def _active(what: str, count: int, least: int = 1) -> None:
    if count < least:  # a reference check on a silent network would prove nothing
        raise AssertionError(f"{what}: only {count} events; the spec needs at least {least}")


def _trace(res: Results, name: str) -> np.ndarray:
    """Trial 0's samples of a trace, (samples, neurons), sampled every step from step 0."""
    tr = res.traces[name]
    _equal(f"'{name}' sample steps", tr.steps, np.arange(res.n_steps))
    return np.asarray(tr.values[0], dtype=np.float64)


def _weights(res: Results, name: str) -> np.ndarray:
    w = res.weights[name]
    _equal(f"'{name}' snapshot steps", w.steps, np.arange(res.n_steps))
    return np.asarray(w.values[0], dtype=np.float64)


def _spike_matrix(res: Results, node: str, size: int) -> np.ndarray:
    """(steps, size) 0/1 array of trial 0's spikes of ``node``."""
    out = np.zeros((res.n_steps, size))
    steps, neurons = res.spike_steps(node)
    np.add.at(out, (steps, neurons), 1.0)
    return out


def _arrivals(net: Network, proj_name: str, n_steps: int) -> np.ndarray:
    """(steps, n_post) summed weights arriving per step through a static projection from a
    spike-times source (a spike in step s through a synapse of delay d arrives in s + d)."""
    proj = net.projections[proj_name]
    src = net.sources[proj.pre]
    out = np.zeros((n_steps, proj.n_post))
    pre = proj.pre_indices()
    for neuron, t in zip(src.neurons, src.times_ms, strict=True):
        step = int(np.floor(t / net.dt_ms + 1e-9))
        for syn in np.nonzero(pre == neuron)[0]:
            arrive = step + int(proj.delays[syn])
            if arrive < n_steps:
                out[arrive, proj.indices[syn]] += proj.weights[syn]
    return out


def _lif_reference(model: LIF, size: int, dt: float, n_steps: int, drive: np.ndarray,
                   v_events: np.ndarray | None = None, v0: float | None = None):
    """LIF / AdaptiveLIF without synaptic currents: ``tau_m dv/dt = v_rest - v + i_bias + I``,
    solved exactly over each step with ``I = drive[n]`` held constant; threshold ``v > v_thresh
    (+ theta)``, reset to ``v_reset``, held for ``tau_refrac / dt - 1`` further steps.
    Returns (v, theta, spikes) per step."""
    p = {k: np.broadcast_to(np.asarray(getattr(model, k), dtype=np.float64), (size,))
         for k in ("tau_m_ms", "v_rest_mV", "v_reset_mV", "v_thresh_mV", "tau_refrac_ms",
                   "i_bias_mV")}
    adaptive = isinstance(model, AdaptiveLIF)
    a = np.exp(-dt / p["tau_m_ms"])
    hold_steps = np.rint(p["tau_refrac_ms"] / dt).astype(int)
    v = np.broadcast_to(p["v_rest_mV"] if v0 is None else v0, (size,)).astype(np.float64)
    theta = np.zeros(size)
    hold = np.zeros(size, dtype=int)
    vs, thetas, spikes = np.zeros((n_steps, size)), np.zeros((n_steps, size)), \
        np.zeros((n_steps, size))
    for n in range(n_steps):
        v_inf = p["v_rest_mV"] + p["i_bias_mV"] + drive[n]
        free = hold == 0
        v = np.where(free, v_inf + (v - v_inf) * a, v)
        if v_events is not None:
            v = np.where(free, v + v_events[n], v)
        hold = np.maximum(hold - 1, 0)
        if adaptive:
            theta = theta * np.exp(-dt / np.asarray(model.tau_adapt_ms))
        fired = free & (v > p["v_thresh_mV"] + theta)
        v = np.where(fired, p["v_reset_mV"], v)
        hold = np.where(fired, np.maximum(hold_steps - 1, 0), hold)
        if adaptive:
            theta = theta + fired * np.asarray(model.delta_thresh_mV)
        vs[n], thetas[n], spikes[n] = v, theta, fired
    return vs, thetas, spikes


def _current_drive(net: Network, pop: str, n_steps: int) -> np.ndarray:
    """(steps, size) injected current of ``pop`` per step, from the IR's CurrentInput nodes."""
    size = net.populations[pop].size
    out = np.zeros((n_steps, size))
    dt = net.dt_ms
    for cur in net.currents.values():
        if cur.target != pop:
            continue
        first = int(np.ceil(cur.start_ms / dt - 1e-9))
        if cur.series is not None:
            series = np.broadcast_to(cur.series.reshape(len(cur.series), -1),
                                     (len(cur.series), size))
            last = min(n_steps, first + len(series))
            out[first:last] += series[:last - first]
        else:
            last = n_steps if cur.stop_ms is None else int(np.ceil(cur.stop_ms / dt - 1e-9))
            out[first:min(last, n_steps)] += np.asarray(cur.amplitude)
    return out


# --------------------------------------------------------------------------- neurons
LIF_CELL = LIF(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-70.0, v_thresh_mV=-55.0,
               tau_refrac_ms=np.array([0.0, 2.0, 1.0]), i_bias_mV=np.array([2.0, 0.0, 0.0]))


def build_lif() -> Network:
    net = Network("lif", dt_ms=0.1)
    net.population("p", 3, LIF_CELL)
    net.inject_current("p", np.array([14.0, 25.0, 40.0]), start_ms=2.0, stop_ms=25.0)
    net.record_spikes("p")
    net.record_state("p", "v")
    return net


def check_lif(net: Network, res: Results) -> None:
    n = res.n_steps
    v, _, spikes = _lif_reference(LIF_CELL, 3, net.dt_ms, n, _current_drive(net, "p", n))
    _active("LIF reference spikes", int(spikes.sum()), 5)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 3), spikes)
    _close("'p.v'", _trace(res, "p.v"), v)


ALIF_CELL = AdaptiveLIF(tau_m_ms=8.0, v_rest_mV=-65.0, v_reset_mV=-65.0, v_thresh_mV=-55.0,
                        tau_refrac_ms=0.5, tau_adapt_ms=15.0,
                        delta_thresh_mV=np.array([1.0, 4.0]))


def build_adaptive_lif() -> Network:
    net = Network("adaptive_lif", dt_ms=0.1)
    net.population("p", 2, ALIF_CELL)
    net.inject_current("p", 30.0, start_ms=1.0)
    net.record_spikes("p")
    net.record_state("p", "v")
    net.record_state("p", "theta")
    return net


def check_adaptive_lif(net: Network, res: Results) -> None:
    n = res.n_steps
    v, theta, spikes = _lif_reference(ALIF_CELL, 2, net.dt_ms, n, _current_drive(net, "p", n))
    _active("AdaptiveLIF reference spikes", int(spikes.sum()), 5)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 2), spikes)
    _close("'p.v'", _trace(res, "p.v"), v)
    _close("'p.theta'", _trace(res, "p.theta"), theta)


CUBA_CELL = CubaLIF(du=0.25, dv=0.1, bias=0.6, v_thresh=8.0, v_reset=0.0)


def build_cuba_lif() -> Network:
    net = Network("cuba_lif", dt_ms=1.0)
    src = net.spike_source("in", 2, [0, 1, 0, 0, 1, 0], [3.0, 4.0, 5.0, 17.0, 18.0, 30.0])
    net.population("p", 2, CUBA_CELL)
    net.connect(src, "p", AllToAll(), weight=np.array([2.5, 1.0, -1.5, 3.0]), delay_ms=1.0)
    net.record_spikes("p", "in")
    net.record_state("p", "u")
    net.record_state("p", "v")
    return net


def check_cuba_lif(net: Network, res: Results) -> None:
    """Loihi's discrete update as CubaLIF's docstring writes it, from the input events."""
    n = res.n_steps
    a_in = _arrivals(net, "in->p", n)
    u, v = np.zeros(2), np.zeros(2)
    us, vs, spikes = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2))
    for k in range(n):
        u = (1 - CUBA_CELL.du) * u + a_in[k]
        v = (1 - CUBA_CELL.dv) * v + u + CUBA_CELL.bias
        fired = v > CUBA_CELL.v_thresh
        v = np.where(fired, CUBA_CELL.v_reset, v)
        us[k], vs[k], spikes[k] = u, v, fired
    _active("CubaLIF reference spikes", int(spikes.sum()), 3)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 2), spikes)
    _close("'p.u'", _trace(res, "p.u"), us)
    _close("'p.v'", _trace(res, "p.v"), vs)


def check_cuba_fixed(net: Network, res: Results) -> None:
    """In fixed point the spikes must still be the float model's where it never sits near the
    threshold: the reference spikes are compared (the integer state traces are compared bit for
    bit between the two fixed-point engines)."""
    n = res.n_steps
    a_in = _arrivals(net, "in->p", n)
    u, v = np.zeros(2), np.zeros(2)
    spikes = np.zeros((n, 2))
    for k in range(n):
        u = (1 - CUBA_CELL.du) * u + a_in[k]
        v = (1 - CUBA_CELL.dv) * v + u + CUBA_CELL.bias
        spikes[k] = v > CUBA_CELL.v_thresh
        v = np.where(spikes[k] > 0, CUBA_CELL.v_reset, v)
    _equal("spikes of 'p' (fixed point)", _spike_matrix(res, "p", 2), spikes)


IZH_CELL = Izhikevich(a=0.02, b=0.2, c_mV=-65.0, d=np.array([8.0, 2.0]), i_bias=np.array(
    [10.0, 14.0]))


def build_izhikevich() -> Network:
    net = Network("izhikevich", dt_ms=0.1)
    net.population("p", 2, IZH_CELL)
    net.record_spikes("p")
    net.record_state("p", "v")
    net.record_state("p", "u")
    return net


def check_izhikevich(net: Network, res: Results) -> None:
    """Forward Euler of (v, u) over each step, as Izhikevich's docstring states."""
    dt, n = net.dt_ms, res.n_steps
    v = np.full(2, -65.0)
    u = IZH_CELL.b * v
    vs, us, spikes = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2))
    for k in range(n):
        dv = 0.04 * v * v + 5 * v + 140 - u + IZH_CELL.i_bias
        du = IZH_CELL.a * (IZH_CELL.b * v - u)
        v, u = v + dt * dv, u + dt * du
        fired = v > IZH_CELL.v_peak_mV
        v = np.where(fired, IZH_CELL.c_mV, v)
        u = np.where(fired, u + IZH_CELL.d, u)
        vs[k], us[k], spikes[k] = v, u, fired
    _active("Izhikevich reference spikes", int(spikes.sum()), 4)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 2), spikes)
    _close("'p.v'", _trace(res, "p.v"), vs, rtol=1e-9, atol=1e-8)
    _close("'p.u'", _trace(res, "p.u"), us, rtol=1e-9, atol=1e-8)


ADEX_CELL = AdEx(I_e_pA=np.array([700.0, 1000.0]), tau_refrac_ms=0.5)


def build_adex() -> Network:
    net = Network("adex", dt_ms=0.1)
    net.population("p", 2, ADEX_CELL)
    net.record_spikes("p")
    net.record_state("p", "v")
    net.record_state("p", "w_adapt")
    return net


def check_adex(net: Network, res: Results) -> None:
    """Forward Euler of (v, w) with the exponent clamped at V_peak; spike at v >= V_peak, reset,
    w += b, v held for the refractory steps while w integrates (AdEx's docstring)."""
    m, dt, n = ADEX_CELL, net.dt_ms, res.n_steps
    v, w = np.full(2, m.E_L_mV), np.zeros(2)
    hold = np.zeros(2, dtype=int)
    hold_steps = int(round(m.tau_refrac_ms / dt))
    vs, ws, spikes = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2))
    for k in range(n):
        exp_term = m.g_L_nS * m.Delta_T_mV * np.exp((np.minimum(v, m.V_peak_mV) - m.V_T_mV) /
                                                    m.Delta_T_mV)
        dv = (-m.g_L_nS * (v - m.E_L_mV) + exp_term - w + m.I_e_pA) / m.C_pF
        dw = (m.a_nS * (v - m.E_L_mV) - w) / m.tau_w_ms
        free = hold == 0
        v = np.where(free, v + dt * dv, v)
        w = w + dt * dw
        hold = np.maximum(hold - 1, 0)
        fired = free & (v >= m.V_peak_mV)
        v = np.where(fired, m.V_reset_mV, v)
        w = np.where(fired, w + m.b_pA, w)
        hold = np.where(fired, max(hold_steps - 1, 0), hold)
        vs[k], ws[k], spikes[k] = v, w, fired
    _active("AdEx reference spikes", int(spikes.sum()), 3)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 2), spikes)
    _close("'p.v'", _trace(res, "p.v"), vs, rtol=1e-9, atol=1e-8)
    _close("'p.w_adapt'", _trace(res, "p.w_adapt"), ws, rtol=1e-9, atol=1e-8)


# --------------------------------------------------------------------------- projections, inputs
QUIET = LIF(tau_m_ms=10.0, tau_syn_exc_ms=3.0, tau_syn_inh_ms=6.0, v_thresh_mV=100.0)


def build_projections() -> Network:
    net = Network("projections", dt_ms=0.1)
    src = net.spike_source("in", 3, [0, 1, 2, 0, 2, 1], [0.0, 0.35, 1.0, 2.0, 2.25, 4.0])
    net.population("syn", 2, QUIET)
    net.population("direct", 2, QUIET)
    pre, post = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 0, 1])
    net.connect(src, "syn", FromArrays(pre, post, weights=np.array([1.0, 2.0, 0.5, 3.0, 1.5]),
                                       delays_ms=np.array([0.1, 0.3, 0.5, 0.2, 0.7])),
                name="in->syn.exc")
    net.connect(src, "syn", AllToAll(), weight=-2.0, delay_ms=0.2, target="inh",
                name="in->syn.inh")
    net.connect(src, "direct", AllToAll(),
                weight=np.array([1.0, -0.5, 0.25, 2.0, -1.0, 0.75]), delay_ms=0.4,
                target="v", name="in->direct.v")
    net.record_state("syn", "i_exc")
    net.record_state("syn", "i_inh")
    net.record_state("direct", "v")
    return net


def check_projections(net: Network, res: Results) -> None:
    """Each event adds its weight to its channel's state in step emission + delay; the currents
    then decay exactly (``i *= exp(-dt / tau_syn)``) and channel ``v`` lands on the membrane."""
    n, dt = res.n_steps, net.dt_ms
    for name, state, tau in (("in->syn.exc", "i_exc", QUIET.tau_syn_exc_ms),
                             ("in->syn.inh", "i_inh", QUIET.tau_syn_inh_ms)):
        arr = _arrivals(net, name, n)
        _active(f"events of '{name}'", int(np.count_nonzero(arr)), 3)
        ref = np.zeros((n, 2))
        i = np.zeros(2)
        for k in range(n):
            i = i * np.exp(-dt / tau) + arr[k]
            ref[k] = i
        _close(f"'syn.{state}'", _trace(res, f"syn.{state}"), ref)
    v, _, _ = _lif_reference(QUIET, 2, dt, n, np.zeros((n, 2)),
                             v_events=_arrivals(net, "in->direct.v", n))
    _close("'direct.v'", _trace(res, "direct.v"), v)


def build_poisson() -> Network:
    net = Network("poisson", dt_ms=0.1)
    src = net.poisson_source("noise", 6, np.array([100.0, 300.0, 0.0, 800.0, 50.0, 500.0]),
                             start_ms=2.0, stop_ms=35.0)
    net.population("p", 6, QUIET)
    net.connect(src, "p", OneToOne(), weight=0.5, delay_ms=0.1, target="v")
    net.record_spikes("noise")
    net.record_state("p", "v")
    return net


def check_poisson(net: Network, res: Results) -> None:
    """The source's spikes are the IR's keyed draws for the run's seed (`realize`), at most one
    per neuron and step, none outside [start, stop); they reach ``p`` one step later."""
    from evospike.realize import poisson_events

    seed = int(res.meta.get("seeds", [0])[0]) if "seeds" in res.meta else 0
    steps, neurons = poisson_events(net.sources["noise"], seed, net.dt_ms, 0, res.n_steps)
    _active("Poisson draws", steps.size, 20)
    got_s, got_n = res.spike_steps("noise")
    _equal("spike steps of 'noise'", got_s, steps)
    _equal("spike neurons of 'noise'", got_n, neurons)
    events = np.zeros((res.n_steps, 6))
    keep = steps + 1 < res.n_steps
    np.add.at(events, (steps[keep] + 1, neurons[keep]), 0.5)
    v, _, _ = _lif_reference(QUIET, 6, net.dt_ms, res.n_steps, np.zeros((res.n_steps, 6)),
                             v_events=events)
    _close("'p.v'", _trace(res, "p.v"), v)


def build_poisson_input() -> Network:
    net = Network("poisson_input", dt_ms=0.1)
    net.population("pe", 3, QUIET)
    net.population("pv", 3, QUIET)
    net.poisson_input("pe", 40, np.array([50.0, 400.0, 0.0]), 0.25, channel="exc",
                      name="drive.exc")
    net.poisson_input("pe", 10, 300.0, -0.5, channel="inh", start_ms=1.0, stop_ms=20.0,
                      counts="poisson", name="drive.inh")
    net.poisson_input("pv", 25, 200.0, 0.125, channel="v", start_ms=0.5, name="drive.v")
    net.record_state("pe", "i_exc")
    net.record_state("pe", "i_inh")
    net.record_state("pv", "v")
    return net


def check_poisson_input(net: Network, res: Results) -> None:
    """In step n each neuron's channel receives count x weight, the count being the IR's keyed
    draw for the seed (`realize.poisson_input_counts`), in the step it is drawn for (as a spike
    arriving then); currents decay exactly, channel ``v`` lands on the membrane."""
    from evospike.realize import poisson_input_counts

    seed = int(res.meta.get("seeds", [0])[0]) if "seeds" in res.meta else 0
    n, dt = res.n_steps, net.dt_ms

    def drive(name: str) -> np.ndarray:
        inp = net.inputs[name]
        counts = poisson_input_counts(inp, 3, seed, dt, 0, n)
        _active(f"events of '{name}'", int(np.count_nonzero(counts)), 10)
        return counts * inp.weight

    for name, state, tau in (("drive.exc", "i_exc", QUIET.tau_syn_exc_ms),
                             ("drive.inh", "i_inh", QUIET.tau_syn_inh_ms)):
        arr = drive(name)
        ref = np.zeros((n, 3))
        i = np.zeros(3)
        for k in range(n):
            i = i * np.exp(-dt / tau) + arr[k]
            ref[k] = i
        _close(f"'pe.{state}'", _trace(res, f"pe.{state}"), ref)
    v, _, _ = _lif_reference(QUIET, 3, dt, n, np.zeros((n, 3)), v_events=drive("drive.v"))
    _close("'pv.v'", _trace(res, "pv.v"), v)


SPIKE_TIMES = np.array([0.0, 0.05, 0.1, 0.29, 0.31, 1.0, 2.449, 2.45, 7.0])


def build_spike_times() -> Network:
    net = Network("spike_times", dt_ms=0.1)
    net.spike_source("in", 3, [0, 1, 2, 0, 1, 2, 0, 1, 2], SPIKE_TIMES)
    net.population("p", 3, QUIET)
    net.connect("in", "p", OneToOne(), weight=1.0, delay_ms=0.3, target="v")
    net.record_spikes("in")
    net.record_state("p", "v")
    return net


def check_spike_times(net: Network, res: Results) -> None:
    """A spike at time t belongs to step floor(t / dt) (SpikeTimesSource's docstring)."""
    src = net.sources["in"]
    want = sorted(zip(np.floor(src.times_ms / net.dt_ms + 1e-9).astype(int), src.neurons,
                      strict=True))
    got_s, got_n = res.spike_steps("in")
    _equal("spikes of 'in' (step, neuron)", list(zip(got_s.tolist(), got_n.tolist(), strict=True)),
           [(int(s), int(i)) for s, i in want])
    v, _, _ = _lif_reference(QUIET, 3, net.dt_ms, res.n_steps, np.zeros((res.n_steps, 3)),
                             v_events=_arrivals(net, "in->p", res.n_steps))
    _close("'p.v'", _trace(res, "p.v"), v)


def build_current_series() -> Network:
    net = Network("current_series", dt_ms=0.1)
    net.population("p", 2, LIF(tau_m_ms=6.0, v_thresh_mV=-52.0,
                                 v_reset_mV=-66.0, tau_refrac_ms=0.3))
    t = np.arange(200)
    series = np.stack([40.0 * np.sin(t / 15.0) ** 2, 8.0 + 0.2 * t], axis=1)
    net.inject_current("p", series=series, start_ms=0.5)
    net.record_spikes("p")
    net.record_state("p", "v")
    return net


def check_current_series(net: Network, res: Results) -> None:
    """The series gives the current of each step from start on (zero after its end), held
    constant within the step and integrated exactly with the membrane."""
    n = res.n_steps
    model = net.populations["p"].model
    v, _, spikes = _lif_reference(model, 2, net.dt_ms, n, _current_drive(net, "p", n))
    _active("reference spikes", int(spikes.sum()), 4)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 2), spikes)
    _close("'p.v'", _trace(res, "p.v"), v)


def build_monitors() -> Network:
    net = Network("monitors", dt_ms=0.1)
    net.population("p", 3, LIF_CELL)
    net.inject_current("p", np.array([14.0, 25.0, 40.0]), start_ms=1.0)
    src = net.spike_source("in", 2, [0, 1], [1.0, 2.0])
    net.connect(src, "p", AllToAll(), weight=np.array([0.5, -1.0, 2.0, 0.25, 3.0, -0.75]),
                delay_ms=0.2, target="v", name="in->p")
    net.record_state("p", "v", neurons=[2, 0], every_steps=7, name="p.v.sub")
    net.record_weights("in->p", every_steps=13)
    net.record_spikes("p")
    return net


def check_monitors(net: Network, res: Results) -> None:
    """A StateMonitor samples the listed neurons, in their order, at steps 0, k, 2k, ...; a
    WeightMonitor snapshots every weight, in CSR order, at steps 0, k, 2k, ... (a static
    projection keeps its initial weights)."""
    n = res.n_steps
    tr = res.traces["p.v.sub"]
    _equal("'p.v.sub' steps", tr.steps, np.arange(0, n, 7))
    _equal("'p.v.sub' neurons", tr.neurons, [2, 0])
    w = res.weights["in->p.weights"]
    _equal("'in->p.weights' steps", w.steps, np.arange(0, n, 13))
    want = np.broadcast_to(net.projections["in->p"].weights, (len(w.steps), 6))
    _close("'in->p.weights' values", w.values[0], want, rtol=0, atol=0)
    v, _, spikes = _lif_reference(LIF_CELL, 3, net.dt_ms, n, _current_drive(net, "p", n),
                                  v_events=_arrivals(net, "in->p", n))
    _close("'p.v.sub' values", tr.values[0], v[::7][:, [2, 0]])
    _equal("spikes of 'p'", _spike_matrix(res, "p", 3), spikes)
    _active("spikes of 'p'", res.spike_steps("p")[0].size, 3)


# --------------------------------------------------------------------------- plasticity
POST_CELL = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_thresh_mV=-55.0, v_reset_mV=-65.0)
PRE_TIMES = ([0, 1, 0, 1, 0, 1, 0, 1], [1.0, 2.0, 6.0, 9.5, 14.0, 18.0, 25.0, 26.0])
DRIVE_TIMES = ([0, 1, 0, 1, 1, 0], [3.0, 3.5, 8.0, 12.0, 19.0, 24.0])
STDP_COMMON = dict(tau_plus_ms=5.0, tau_minus_ms=8.0, a_plus=0.1, a_minus=0.12, w_min=0.0,
                   w_max=1.0)


def _plastic_net(name: str) -> Network:
    """Two pre inputs onto two LIF neurons that a second input makes fire at chosen times; the
    pre -> post projection (delay 2 steps) is the one that learns."""
    net = Network(name, dt_ms=0.1)
    net.spike_source("pre", 2, *PRE_TIMES)
    net.spike_source("drive", 2, *DRIVE_TIMES)
    net.population("post", 2, POST_CELL)
    net.connect("drive", "post", OneToOne(), weight=30.0, delay_ms=0.1, target="v",
                name="drive->post")
    net.connect("pre", "post", AllToAll(), weight=np.array([0.3, 0.6, 0.95, 0.05]),
                delay_ms=0.2, name="pre->post")
    net.record_spikes("post")
    net.record_weights("pre->post", every_steps=1)
    return net


def _stdp_reference(net: Network, res: Results, rule: STDP, level: np.ndarray | None = None,
                    a_plus: np.ndarray | None = None, least_post: int = 3) -> np.ndarray:
    """The trace-form pair rule of `evospike.ir.plasticity`, step by step, from the recorded post
    spikes and the pre spikes' arrival steps; (steps, synapses) weights after each step.
    ``level``: the modulator's level after each step (three-factor rules read ``m[n-1]``);
    ``a_plus``: the rule's a_plus in force in each step (metaplasticity); ``least_post``: the
    post spikes below which the protocol would test nothing."""
    proj = net.projections[rule.projection]
    n, dt = res.n_steps, net.dt_ms
    pre, post = proj.pre_indices(), proj.indices.astype(int)
    src = net.sources[proj.pre]
    arrive = np.zeros((n, proj.n_pre), dtype=bool)
    for i, t in zip(src.neurons, src.times_ms, strict=True):
        k = int(np.floor(t / dt + 1e-9)) + int(proj.delays[0])
        if k < n:
            arrive[k, i] = True
    fired = _spike_matrix(res, proj.post, proj.n_post) > 0
    _active("post spikes", int(fired.sum()), least_post)
    w = proj.weights.astype(np.float64).copy()
    x, y = np.zeros(proj.n_pre), np.zeros(proj.n_post)
    three = isinstance(rule, RewardModulatedSTDP)
    e = np.zeros_like(w)
    mult = rule.weight_dependence == "multiplicative"
    out = np.zeros((n, w.size))

    def raise_(trace, mask):
        return np.where(mask, 1.0, trace) if rule.pairing == "nearest" else trace + mask

    for k in range(n):
        ap = rule.a_plus if a_plus is None else a_plus[k]
        x *= np.exp(-dt / rule.tau_plus_ms)
        y *= np.exp(-dt / rule.tau_minus_ms)
        if three:
            e *= np.exp(-dt / rule.tau_eligibility_ms)
        syn = arrive[k][pre]
        dep = rule.a_minus * y[post] * ((w - rule.w_min) if mult else 1.0)
        if three:
            e = e - np.where(syn, rule.a_minus * y[post], 0.0)
        else:
            w = np.clip(w - np.where(syn, dep, 0.0), rule.w_min, rule.w_max)
        x = raise_(x, arrive[k])
        y = raise_(y, fired[k])
        syn = fired[k][post]
        pot = ap * x[pre] * ((rule.w_max - w) if mult else 1.0)
        if three:
            e = e + np.where(syn, ap * x[pre], 0.0)
            m_prev = level[k - 1] if k > 0 else 0.0
            w = np.clip(w + rule.learning_rate_per_ms * dt * m_prev * e, rule.w_min, rule.w_max)
        else:
            w = np.clip(w + np.where(syn, pot, 0.0), rule.w_min, rule.w_max)
        out[k] = w
    return out


def _stdp_spec(dependence: str, pairing: str) -> tuple[Callable[[], Network], Check]:
    def build() -> Network:
        net = _plastic_net(f"stdp_{dependence}_{pairing}")
        net.stdp("pre->post", weight_dependence=dependence, pairing=pairing, **STDP_COMMON)
        return net

    def check(net: Network, res: Results) -> None:
        rule = net.plasticity["pre->post.stdp"]
        ref = _stdp_reference(net, res, rule)
        got = _weights(res, "pre->post.weights")
        if np.abs(ref[-1] - ref[0]).max() < 0.05:
            raise AssertionError("the reference weights hardly move: the spec tests nothing")
        _close("'pre->post' weights", got, ref)

    return build, check


REWARD = dict(times=[4.0, 11.0, 20.0], amounts=[1.0, -0.6, 1.5], tau_ms=6.0)


def _reward_level(net: Network, n: int, drive_counts: np.ndarray | None = None,
                  gain: float = 0.0, series: np.ndarray | None = None,
                  series_start: int = 0) -> np.ndarray:
    """``m[n] = m[n-1] exp(-dt / tau) + drives of step n`` (Modulator's docstring)."""
    dt = net.dt_ms
    add = np.zeros(n)
    for t, amount in zip(REWARD["times"], REWARD["amounts"], strict=True):
        k = int(np.floor(t / dt + 1e-9))
        if k < n:
            add[k] += amount
    if series is not None:
        last = min(n, series_start + len(series))
        add[series_start:last] += series[:last - series_start]
    if drive_counts is not None:
        add += gain * drive_counts
    m, out = 0.0, np.zeros(n)
    for k in range(n):
        m = m * np.exp(-dt / REWARD["tau_ms"]) + add[k]
        out[k] = m
    return out


def build_reward_stdp() -> Network:
    net = _plastic_net("reward_stdp")
    net.modulator("reward", REWARD["tau_ms"], [RewardEvents(REWARD["times"], REWARD["amounts"])])
    net.reward_stdp("pre->post", "reward", tau_eligibility_ms=10.0, learning_rate_per_ms=0.5,
                    **STDP_COMMON)
    net.record_state("reward", "level")
    return net


def check_reward_stdp(net: Network, res: Results) -> None:
    level = _reward_level(net, res.n_steps)
    _close("'reward.level'", _trace(res, "reward.level")[:, 0], level)
    ref = _stdp_reference(net, res, net.plasticity["pre->post.rstdp"], level=level)
    if np.abs(ref[-1] - ref[0]).max() < 0.02:
        raise AssertionError("the reference weights hardly move: the spec tests nothing")
    _close("'pre->post' weights", _weights(res, "pre->post.weights"), ref)


def build_modulator() -> Network:
    net = Network("modulator", dt_ms=0.1)
    net.population("p", 3, LIF_CELL)
    net.inject_current("p", np.array([14.0, 25.0, 40.0]))
    series = np.cos(np.arange(50) / 5.0) * 0.2
    net.modulator("reward", REWARD["tau_ms"], [
        RewardEvents(REWARD["times"], REWARD["amounts"]), RewardSeries(series, start_step=30),
        SpikeCountDrive("p", 0.05)])
    net.record_state("reward", "level")
    net.record_spikes("p")
    return net


def check_modulator(net: Network, res: Results) -> None:
    counts = _spike_matrix(res, "p", 3).sum(axis=1)
    _active("spikes of 'p'", int(counts.sum()), 5)
    series = np.cos(np.arange(50) / 5.0) * 0.2
    level = _reward_level(net, res.n_steps, counts, 0.05, series, 30)
    _close("'reward.level'", _trace(res, "reward.level")[:, 0], level)


HOMEO = dict(target_rate_hz=50.0, tau_rate_ms=20.0, threshold_rate=0.5)


def build_homeostasis() -> Network:
    net = Network("homeostasis", dt_ms=0.1)
    net.population("p", 3, LIF_CELL)
    net.inject_current("p", np.array([14.0, 25.0, 40.0]))
    net.homeostasis("p", **HOMEO)
    net.record_state("p.homeostasis", "theta")
    net.record_state("p.homeostasis", "rate_hz")
    net.record_spikes("p")
    return net


def check_homeostasis(net: Network, res: Results) -> None:
    """The rate estimate and adaptive threshold of Homeostasis's docstring, from the recorded
    spikes; and the spikes themselves, from LIF with that threshold added from the next step."""
    dt, n = net.dt_ms, res.n_steps
    fired = _spike_matrix(res, "p", 3)
    _active("spikes of 'p'", int(fired.sum()), 10)
    r, theta = np.zeros(3), np.zeros(3)
    rs, thetas = np.zeros((n, 3)), np.zeros((n, 3))
    for k in range(n):
        r = r + fired[k] * 1000.0 / HOMEO["tau_rate_ms"]
        theta = theta + HOMEO["threshold_rate"] * (r - HOMEO["target_rate_hz"]) * dt * 1e-3
        r = r * np.exp(-dt / HOMEO["tau_rate_ms"])
        rs[k], thetas[k] = r, theta
    _close("'p.homeostasis.theta'", _trace(res, "p.homeostasis.theta"), thetas)
    _close("'p.homeostasis.rate_hz'", _trace(res, "p.homeostasis.rate_hz"), rs)
    if np.abs(thetas).max() < 0.05:
        raise AssertionError("the reference threshold hardly moves: the spec tests nothing")


META = dict(eta=2.0, tau_baseline_ms=5.0, p_min=0.0, p_max=0.3)


def build_metaplasticity() -> Network:
    net = _plastic_net("metaplasticity")
    net.modulator("reward", REWARD["tau_ms"], [RewardEvents(REWARD["times"], REWARD["amounts"])])
    net.stdp("pre->post", **STDP_COMMON)
    net.metaplasticity("pre->post.stdp", "reward", "a_plus", **META)
    net.record_state("pre->post.stdp.a_plus.meta", "value")
    net.record_state("pre->post.stdp.a_plus.meta", "baseline")
    return net


def check_metaplasticity(net: Network, res: Results) -> None:
    """``baseline = b baseline + (1 - b) m[n]``, ``p = clip(p + eta (m[n] - baseline) dt_s)``,
    the new a_plus in force from the next step; the weights follow the rule with it."""
    dt, n = net.dt_ms, res.n_steps
    level = _reward_level(net, n)
    b = np.exp(-dt / META["tau_baseline_ms"])
    base, p = 0.0, STDP_COMMON["a_plus"]
    values, bases = np.zeros(n), np.zeros(n)
    for k in range(n):
        base = base * b + (1 - b) * level[k]
        p = float(np.clip(p + META["eta"] * (level[k] - base) * dt * 1e-3, META["p_min"],
                          META["p_max"]))
        values[k], bases[k] = p, base
    name = "pre->post.stdp.a_plus.meta"
    _close(f"'{name}.value'", _trace(res, f"{name}.value")[:, 0], values)
    _close(f"'{name}.baseline'", _trace(res, f"{name}.baseline")[:, 0], bases)
    in_force = np.concatenate([[STDP_COMMON["a_plus"]], values[:-1]])
    ref = _stdp_reference(net, res, net.plasticity["pre->post.stdp"], a_plus=in_force)
    _close("'pre->post' weights", _weights(res, "pre->post.weights"), ref)


# --------------------------------------------------------------------------- processes
def build_structural() -> Network:
    net = Network("structural", dt_ms=0.1)
    net.spike_source("in", 4, [0, 1, 2, 3, 0, 1], [0.5, 1.0, 1.5, 2.0, 12.0, 13.0])
    net.population("p", 3, QUIET)
    w = np.array([0.1, 0.5, 2.0, 0.05, 1.0, 0.2, 0.8, 0.29, 3.0, 0.31, 0.01, 1.5])
    net.connect("in", "p", AllToAll(), weight=w, delay_ms=0.1, target="v", name="in->p")
    net.structural_plasticity("in->p", every_steps=50, prune="weight", prune_below=0.3)
    net.record_state("in->p.structural", "n_synapses", neurons=[0])
    net.record_state("p", "v")
    return net


def check_structural(net: Network, res: Results) -> None:
    """Pruning by weight bound at the end of step 49 (``(n + 1) % every_steps == 0``): the count
    shows the change from step 50 on, and events through pruned synapses stop arriving."""
    n = res.n_steps
    proj = net.projections["in->p"]
    keep = np.abs(proj.weights) >= 0.3
    count = np.where(np.arange(n) < 50, proj.n_synapses, int(keep.sum()))
    _close("'in->p.structural.n_synapses'",
           _trace(res, "in->p.structural.n_synapses")[:, 0], count, rtol=0, atol=0)
    full = _arrivals(net, "in->p", n)
    kept = Network("kept", net.dt_ms)
    kept.add(net.sources["in"])
    kept.add(net.populations["p"])
    pre, post = proj.pre_indices()[keep], proj.indices[keep]
    kept.connect("in", "p", FromArrays(pre, post, weights=proj.weights[keep]), delay_ms=0.1,
                 target="v", name="in->p")
    events = np.where(np.arange(n)[:, None] < 50, full, _arrivals(kept, "in->p", n))
    v, _, _ = _lif_reference(QUIET, 3, net.dt_ms, n, np.zeros((n, 3)), v_events=events)
    _close("'p.v'", _trace(res, "p.v"), v)


def build_tiers() -> Network:
    net = _plastic_net("memory_tiers")
    net.modulator("reward", REWARD["tau_ms"], [RewardEvents(REWARD["times"], REWARD["amounts"])])
    net.stdp("pre->post", **STDP_COMMON)
    net.memory_tiers("pre->post", tau_short_ms=8.0, tau_mid_ms=30.0, modulator="reward",
                     tau_importance_ms=5.0, every_steps=20, threshold=0.001, short_to_mid=0.5,
                     reactivations_to_long=2, mid_to_long=0.5)
    for var in ("short", "mid", "long", "importance", "access"):
        net.record_state("pre->post.tiers", var)
    return net


def check_tiers(net: Network, res: Results) -> None:
    """MemoryTiers' per-step update (steps 1-5 of its docstring, capacity 1: no eviction),
    replayed from the recorded weights (``dw`` is what the rule changed in the step) and the
    modulator's level; the weight is the sum of the tiers."""
    dt, n = net.dt_ms, res.n_steps
    node = net.processes["pre->post.tiers"]
    w = _weights(res, "pre->post.weights")
    w0 = net.projections["pre->post"].weights
    level = _reward_level(net, n)
    tiers = {k: _trace(res, f"pre->post.tiers.{k}")
             for k in ("short", "mid", "long", "importance", "access")}
    _close("weights vs short + mid + long", w, tiers["short"] + tiers["mid"] + tiers["long"],
           rtol=1e-12, atol=1e-12)
    short, mid, long = np.zeros_like(w0), np.zeros_like(w0), w0.astype(np.float64).copy()
    imp, access = np.zeros_like(w0), np.zeros_like(w0)
    ref = {k: np.zeros((n, w0.size)) for k in tiers}
    for k in range(n):
        # the rule's change this step, recovered from the recorded weight: the tiers add it to
        # short and decay, w[k] = (short + dw) decay_s + mid decay_m + long before any move
        decay_s, decay_m = np.exp(-dt / node.tau_short_ms), np.exp(-dt / node.tau_mid_ms)
        dw_rule = (w[k] - mid * decay_m - long) / decay_s - short
        imp = imp * np.exp(-dt / node.tau_importance_ms) + np.abs(dw_rule)
        short = (short + dw_rule) * decay_s
        mid = mid * decay_m
        if k % node.every_steps == 0:
            cand = imp * level[k] > node.threshold
            moved = node.short_to_mid * short
            mid = np.where(cand, mid + moved, mid)
            short = np.where(cand, short - moved, short)
            access = np.where(cand, access + 1, access)
            imp = np.where(cand, 0.0, imp)
            promote = access >= node.reactivations_to_long
            up = node.mid_to_long * mid
            long = np.where(promote, long + up, long)
            mid = np.where(promote, mid - up, mid)
            access = np.where(promote, 0.0, access)
        for key, value in (("short", short), ("mid", mid), ("long", long), ("importance", imp),
                           ("access", access)):
            ref[key][k] = value
    if ref["access"].max() < 1 or np.abs(ref["mid"]).max() < 1e-4:
        raise AssertionError("no consolidation happened in the reference: the spec tests nothing")
    for key in ("short", "mid", "long", "importance", "access"):
        _close(f"'pre->post.tiers.{key}'", tiers[key], ref[key], rtol=1e-7, atol=1e-9)


APOP = dict(every_steps=200, window=3, silent_ms=25.0, ceiling_hz=400.0, patience=2, tau_a=0.7,
            lambda_a=5.0, floor=0.5, tau=0.5, variance_scale_hz2=2500.0)


def build_apoptosis() -> Network:
    net = Network("apoptosis", dt_ms=0.1)
    net.population("p", 4, LIF(tau_m_ms=10.0, v_thresh_mV=-55.0, v_reset_mV=-70.0,
                               tau_refrac_ms=0.5))
    # neuron 0 silent, 1-2 steady, 3 runaway (above the ceiling)
    net.inject_current("p", np.array([0.0, 60.0, 80.0, 2000.0]))
    net.apoptosis("p", **APOP)
    for var in ("survival", "health", "alive", "deaths"):
        net.record_state("p.apoptosis", var)
    net.record_spikes("p")
    return net


def check_apoptosis(net: Network, res: Results) -> None:
    """Apoptosis's evaluations (its docstring, steps 1-4) from the recorded spikes: health,
    survival, death after ``patience`` bad evaluations; a dead neuron never fires again."""
    dt, n, every = net.dt_ms, res.n_steps, APOP["every_steps"]
    fired = _spike_matrix(res, "p", 4)
    alive_t = _trace(res, "p.apoptosis.alive")
    health_t, surv_t = _trace(res, "p.apoptosis.health"), _trace(res, "p.apoptosis.survival")
    history: list[np.ndarray] = []
    low, alive = np.zeros(4), np.ones(4)
    last_spike = np.full(4, -1)
    died_at = np.full(4, n)
    evaluations = 0
    for k in range(n):
        last_spike = np.where(fired[k] > 0, k, last_spike)
        if (k + 1) % every:
            continue
        evaluations += 1
        rate = fired[k + 1 - every:k + 1].sum(axis=0) / (every * dt * 1e-3)
        history = (history + [rate])[-APOP["window"]:]
        var = np.var(np.stack(history), axis=0) if len(history) >= 2 else np.zeros(4)
        h = 1.0 / (1.0 + np.exp(-(var / APOP["variance_scale_hz2"] - APOP["tau"])))
        silent = (k - last_spike) * dt > APOP["silent_ms"]
        h = np.where(silent | (rate > APOP["ceiling_hz"]), 1.0, h)
        a = np.where(h <= APOP["tau_a"], 1.0, np.exp(-APOP["lambda_a"] * (h - APOP["tau_a"])))
        low = np.where(a < APOP["floor"], low + 1, 0)
        dies = (alive > 0) & (low >= APOP["patience"])
        died_at = np.where(dies, k, died_at)
        alive = np.where(dies, 0.0, alive)
        living = alive > 0
        _close(f"health after evaluation {evaluations}", health_t[k, living], h[living])
        _close(f"survival after evaluation {evaluations}", surv_t[k, living], a[living])
        _close(f"alive after evaluation {evaluations}", alive_t[k], alive, rtol=0, atol=0)
    if alive.sum() != 2:
        raise AssertionError(f"the reference should kill neurons 0 and 3, alive: {alive}")
    for i in range(4):
        if np.any(fired[died_at[i] + 1:, i]):
            raise AssertionError(f"neuron {i} fired after its death at step {died_at[i]}")


GATE_W = np.array([[0.02, -0.01], [-0.02, 0.01], [0.0, 0.0]])


def build_gate() -> Network:
    net = Network("gate", dt_ms=0.1)
    net.spike_source("ctx", 2, [0] * 8 + [1] * 8,
                     [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] +
                     [16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0])
    net.population("p", 3, LIF_CELL)
    net.inject_current("p", np.array([14.0, 25.0, 40.0]))
    net.epigenetic_gate("p", "ctx", GATE_W, bias=np.array([-1.0, 0.5, -3.0]), tau_context_ms=3.0,
                        tau_ms=2.0, theta_act=0.4)
    for var in ("gate", "open", "activation_ratio"):
        net.record_state("p.gate", var)
    net.record_spikes("p")
    return net


def check_gate(net: Network, res: Results) -> None:
    """EpigeneticGate's equations from the context source's spikes; a closed neuron does not
    fire in the next step (its mask is computed at the end of a step)."""
    dt, n = net.dt_ms, res.n_steps
    node = net.processes["p.gate"]
    src = net.sources["ctx"]
    s = np.zeros((n, 2))
    steps = np.floor(src.times_ms / dt + 1e-9).astype(int)
    s[steps[steps < n], src.neurons[steps < n]] = 1.0
    a, d = np.exp(-dt / node.tau_context_ms), np.exp(-dt / node.tau_ms)
    c, m = np.zeros(2), np.ones(3)
    gates, opens = np.zeros((n, 3)), np.zeros((n, 3))
    for k in range(n):
        c = a * c + (1 - a) * s[k] * 1000.0 / dt
        g = 1.0 / (1.0 + np.exp(-(GATE_W @ c + node.bias)))
        m = d * m + (1 - d) * g
        gates[k], opens[k] = m, m > node.theta_act
    _close("'p.gate.gate'", _trace(res, "p.gate.gate"), gates)
    _close("'p.gate.open'", _trace(res, "p.gate.open"), opens, rtol=0, atol=0)
    _close("'p.gate.activation_ratio'", _trace(res, "p.gate.activation_ratio"),
           np.repeat(opens.mean(axis=1, keepdims=True), 3, axis=1))
    if opens.min() > 0 or opens.max() < 1:
        raise AssertionError("the reference gate never switches: the spec tests nothing")
    fired = _spike_matrix(res, "p", 3)
    closed_next = np.vstack([np.zeros((1, 3)), 1 - opens[:-1]]) > 0
    if np.any(fired[closed_next] > 0):
        raise AssertionError("a neuron fired in a step its gate had closed")
    _active("spikes of 'p'", int(fired.sum()), 3)


def build_participation() -> Network:
    net = Network("participation", dt_ms=0.1)
    net.population("p", 8, LIF(tau_m_ms=10.0, v_thresh_mV=-55.0))
    net.inject_current("p", 30.0)
    net.modulator("reward", REWARD["tau_ms"], [RewardEvents(REWARD["times"], REWARD["amounts"])])
    net.participation("p", "reward", base_fraction=0.4, gain=0.5, min_fraction=0.1,
                      max_fraction=0.9, seed=3)
    net.record_state("p.participation", "participating")
    net.record_state("p.participation", "fraction", neurons=[0])
    net.record_spikes("p")
    return net


def check_participation(net: Network, res: Results) -> None:
    """``f[n] = clip(base + gain h[n])``; neuron j takes part in step n + 1 iff ``u_j[n + 1] <
    f[n]``, with u from the IR's keyed stream (`participation_uniforms`); in step 0 all do."""
    from evospike.ir.gating import participation_uniforms

    node = net.processes["p.participation"]
    n = res.n_steps
    level = _reward_level(net, n)
    f = np.clip(node.base_fraction + node.gain * level, node.min_fraction, node.max_fraction)
    _close("'p.participation.fraction'", _trace(res, "p.participation.fraction")[:, 0], f)
    seed = 0
    u = _uniforms(participation_uniforms, node, seed, 8, n)
    part = np.ones((n, 8))
    part[1:] = u[1:] < f[:-1, None]
    got = _trace(res, "p.participation.participating")
    # the state recorded after step n is the subset of step n + 1 (the mask it computed)
    _close("'p.participation.participating'", got[:-1], part[1:], rtol=0, atol=0)
    fired = _spike_matrix(res, "p", 8)
    if np.any(fired[part == 0] > 0):
        raise AssertionError("a neuron fired in a step it did not take part in")
    _active("spikes of 'p'", int(fired.sum()), 5)


def _uniforms(fn, node, seed: int, size: int, n: int) -> np.ndarray:
    from evospike.ir.gating import PARTICIPATION_BLOCK_STEPS as B

    blocks = [fn(node, seed, size, b) for b in range((n + B - 1) // B)]
    return np.concatenate(blocks)[:n]


def _energy_net(name: str, global_budget: bool) -> Network:
    net = Network(name, dt_ms=0.1)
    net.population("p", 3, LIF_CELL)
    net.population("q", 2, QUIET)
    net.inject_current("p", np.array([14.0, 25.0, 40.0]))
    net.connect("p", "q", AllToAll(), weight=np.array([1.0, 0.0, 2.0, 1.0, 0.5, 0.0]),
                delay_ms=0.1, name="p->q")
    net.energy_budget("p", 400.0, 15.0, profile="loihi2", initial_fraction=0.5,
                      population_capacity_pj=900.0, population_recharge_pj_per_ms=40.0)
    for var in ("energy_pj", "population_energy_pj", "spent_pj"):
        net.record_state("p.energy", var)
    if global_budget:
        net.energy_budget("q", 10.0, 0.0, profile="loihi2")
        net.global_energy_budget(["p.energy", "q.energy"], 700.0, 25.0, initial_fraction=0.8)
        net.record_state("global.energy", "energy_pj")
        net.record_state("global.energy", "spent_pj")
    net.record_spikes("p")
    return net


def _energy_reference(net: Network, res: Results, global_budget: bool) -> dict:
    """EnergyBudget's (and GlobalEnergyBudget's) stores from the recorded spikes, with each
    spike's cost from the IR (`spike_costs_pj`)."""
    from evospike.ir.energy_budget import spike_costs_pj

    dt, n = net.dt_ms, res.n_steps
    node = net.processes["p.energy"]
    cost = spike_costs_pj(net, "p", node.profile)
    fired = _spike_matrix(res, "p", 3)
    _active("spikes of 'p'", int(fired.sum()), 5)
    e = np.full(3, node.capacity_pj * node.initial_fraction)
    pool = node.population_capacity_pj * node.initial_fraction
    spent = 0.0
    glob_node = net.processes.get("global.energy")
    glob = glob_node.capacity_pj * glob_node.initial_fraction if glob_node else np.inf
    gspent = 0.0
    out = {k: np.zeros((n, 3)) for k in ("energy", "pool", "spent")}
    out["global"], out["gspent"] = np.zeros(n), np.zeros(n)
    allowed = np.ones((n + 1, 3), dtype=bool)
    for k in range(n):
        used = fired[k] * cost
        e = np.minimum(e - used + node.recharge_pj_per_ms * dt, node.capacity_pj)
        pool = min(pool - used.sum() + node.population_recharge_pj_per_ms * dt,
                   node.population_capacity_pj)
        spent += used.sum()
        if glob_node is not None:
            glob = min(glob - used.sum() + glob_node.recharge_pj_per_ms * dt,
                       glob_node.capacity_pj)
            gspent += used.sum()
        out["energy"][k], out["pool"][k], out["spent"][k] = e, pool, spent
        out["global"][k], out["gspent"][k] = glob, gspent
        allowed[k + 1] = (e >= cost) & (pool >= cost) & (glob >= cost)
    if np.any(fired[allowed[:n] == 0] > 0):
        raise AssertionError("a neuron of 'p' fired without the energy to fire")
    if allowed.all():
        raise AssertionError("the reference budget never blocks a spike: the spec tests nothing")
    return out


def check_energy(net: Network, res: Results) -> None:
    ref = _energy_reference(net, res, False)
    _close("'p.energy.energy_pj'", _trace(res, "p.energy.energy_pj"), ref["energy"])
    _close("'p.energy.population_energy_pj'", _trace(res, "p.energy.population_energy_pj"),
           ref["pool"])
    _close("'p.energy.spent_pj'", _trace(res, "p.energy.spent_pj"), ref["spent"])


def check_global_energy(net: Network, res: Results) -> None:
    ref = _energy_reference(net, res, True)
    _close("'global.energy.energy_pj'", _trace(res, "global.energy.energy_pj")[:, 0],
           ref["global"])
    _close("'global.energy.spent_pj'", _trace(res, "global.energy.spent_pj")[:, 0],
           ref["gspent"])
    _close("'p.energy.energy_pj'", _trace(res, "p.energy.energy_pj"), ref["energy"])


TAP = dict(r_target=0.5, t_warmup_ms=2.0, tau_ms=5.0, update_interval_ms=1.0,
           lambda_stability=0.0, regrowth=False, saliency_momentum=0.0)


def build_pruning() -> Network:
    net = _plastic_net("pruning")
    net.modulator("error", 50.0, initial=1.0)
    net.stdp("pre->post", **STDP_COMMON)
    net.terminal_attractor_pruning("pre->post", "error", **TAP)
    for var in ("pruned_fraction", "rate"):
        net.record_state("pruning", var)
    return net


def check_pruning(net: Network, res: Results) -> None:
    """With lambda = 0 (alpha = 1) the schedule is ``R(t) = R_target (1 - exp(-(t - t_w) /
    tau))`` after the warm-up, and exactly ``floor(R N)`` of the N synapses are pruned."""
    rate = _trace(res, "pruning.rate")[:, 0]
    frac = _trace(res, "pruning.pruned_fraction")[:, 0]
    dt = net.dt_ms
    every = int(round(TAP["update_interval_ms"] / dt))
    # the core's clock t counts its calls from 0 (`evospike.pruning`): the update at the end of
    # interval u (u = 1, 2, ...) sees t = (u - 1) intervals
    updates = (np.arange(res.n_steps) + 1) // every
    elapsed = (updates - 1) * TAP["update_interval_ms"]
    want = np.where((updates < 1) | (elapsed < TAP["t_warmup_ms"]), 0.0,
                    TAP["r_target"] * (1 - np.exp(-(elapsed - TAP["t_warmup_ms"]) /
                                                  TAP["tau_ms"])))
    _close("'pruning.rate'", rate, want)
    n_syn = net.projections["pre->post"].n_synapses
    _close("'pruning.pruned_fraction'", frac, np.floor(want * n_syn + 1e-9) / n_syn)
    if frac.max() == 0:
        raise AssertionError("nothing was pruned: the spec tests nothing")


# --------------------------------------------------------------------------- Loihi variants
# The node kinds above in the shapes Loihi 2 carries (CubaLIF, or LIF with one synaptic time
# constant; synaptic input into the current only; constant currents from time 0; delay-1,
# additive, all-pairs STDP onto CubaLIF), so that the fixed-point columns run them too. The
# float columns are checked against the float reference as everywhere. The fixed-point columns
# are compared bit for bit with each other by the matrix; their own check holds them to the
# same float reference to the precision of their integers, and to what the IR's docstrings
# imply about where and in which direction things happen.

#: fixed-point state tolerance, a fraction of the threshold span (v_thresh - v_reset), for the
#: CubaLIF specs: their weights and decays are exactly representable in Loihi's integers
#: (multiples of 1/4 and 1/8, 12-bit decays), so what remains is each decay's rounding toward
#: zero, one integer unit per step, which accumulates to at most (1 + 1/du) / dv = 40 units of
#: v against a span of over 2^19 units: below 1e-4 of it
FIXED_CUBA_TOL = 1e-4
#: the same for plain LIF reduced to Loihi's neuron: there du and dv are rounded to 12 bits and
#: each weight times the current's one-step gain onto v to an 8-bit mantissa (2^-9 of each
#: event's effect); 2e-3 of the span is twice what the lif-loihi network shows
FIXED_LIF_TOL = 2e-3
#: fixed-point learning against the float rule on the same spikes: Loihi's engine pairs a pre
#: spike at its emission (one step before the IR's arrival), rounds a_plus/a_minus to m * 2^e
#: and rounds traces and weights stochastically, so a change lands within this many weight
#: quanta (w_max / 255) plus this fraction of the float rule's change (as in
#: tests/test_lava_learning.py and tests/test_lava_three_factor.py)
FIXED_LEARNING_QUANTA, FIXED_LEARNING_FRACTION = 2.5, 0.35


def _fixed_scale(res: Results, pop: str) -> float:
    """Integer units of ``u`` and ``v`` per float unit of population ``pop`` (the fixed-point
    engines' ``meta['fixed_scales']``)."""
    scales = res.meta.get("fixed_scales")
    if isinstance(scales, (str, bytes)):
        scales = json.loads(scales)
    if not isinstance(scales, dict) or pop not in scales:
        raise AssertionError(f"fixed-point results without meta['fixed_scales'][{pop!r}] "
                             f"(got {scales!r})")
    return float(scales[pop])


def _param(model, name: str, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(model, name), dtype=np.float64), (size,))


def _cuba_reference(model: CubaLIF, size: int, a_in: np.ndarray,
                    i_ext: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """CubaLIF's discrete update (its docstring) from the synaptic input ``a_in`` (steps, size)
    arriving in each step and the injected current ``i_ext``; no refractory period. Returns u,
    v (after the reset), v_pre (before it) and spikes per step."""
    du, dv, bias, vth, vr = (_param(model, k, size) for k in
                             ("du", "dv", "bias", "v_thresh", "v_reset"))
    n = a_in.shape[0]
    i_ext = np.zeros((n, size)) if i_ext is None else i_ext
    u, v = np.zeros(size), np.zeros(size)
    out = {k: np.zeros((n, size)) for k in ("u", "v", "v_pre", "spikes")}
    for k in range(n):
        u = (1 - du) * u + a_in[k]
        v = (1 - dv) * v + u + bias + i_ext[k]
        out["v_pre"][k] = v
        fired = v > vth
        v = np.where(fired, vr, v)
        out["u"][k], out["v"][k], out["spikes"][k] = u, v, fired
    return out


def _lif_syn_reference(model: LIF, size: int, dt: float, a_in: np.ndarray,
                       drive: np.ndarray) -> dict[str, np.ndarray]:
    """LIF with one synaptic time constant ``tau_s`` (both channels), solved in closed form
    over each step: with ``i`` the summed current at the step's start and ``v_inf = v_rest +
    i_bias + I``, ``v(dt) = v_inf + (v - v_inf - K) e^(-dt/tau_m) + K e^(-dt/tau_s)``, ``K =
    i tau_s / (tau_s - tau_m)``; then ``i = i e^(-dt/tau_s) + a_in`` (events land in the
    current after the step's integration and reach v from the next step); threshold, reset,
    voltage held for ``tau_refrac / dt - 1`` further steps (`evospike.dynamics`). Returns v,
    v_pre (before the reset) and spikes per step."""
    tm, ts = _param(model, "tau_m_ms", size), _param(model, "tau_syn_exc_ms", size)
    if np.any(_param(model, "tau_syn_inh_ms", size) != ts) or np.any(ts == tm):
        raise AssertionError("this reference needs one synaptic time constant, unlike tau_m")
    v_rest, v_reset = _param(model, "v_rest_mV", size), _param(model, "v_reset_mV", size)
    vth, i_bias = _param(model, "v_thresh_mV", size), _param(model, "i_bias_mV", size)
    hold_steps = np.rint(_param(model, "tau_refrac_ms", size) / dt).astype(int)
    em, es = np.exp(-dt / tm), np.exp(-dt / ts)
    n = a_in.shape[0]
    v, i, hold = v_rest.copy(), np.zeros(size), np.zeros(size, dtype=int)
    out = {k: np.zeros((n, size)) for k in ("v", "v_pre", "spikes")}
    for k in range(n):
        v_inf = v_rest + i_bias + drive[k]
        gain = i * ts / (ts - tm)
        free = hold == 0
        v = np.where(free, v_inf + (v - v_inf - gain) * em + gain * es, v)
        i = i * es + a_in[k]
        hold = np.maximum(hold - 1, 0)
        out["v_pre"][k] = v
        fired = free & (v > vth)
        v = np.where(fired, v_reset, v)
        hold = np.where(fired, np.maximum(hold_steps - 1, 0), hold)
        out["v"][k], out["spikes"][k] = v, fired
    return out


def _all_arrivals(net: Network, pop: str, n_steps: int) -> np.ndarray:
    """(steps, size) summed weights arriving at ``pop`` per step through every (static)
    projection from a spike-times source onto it, whatever its channel."""
    out = np.zeros((n_steps, net.populations[pop].size))
    for name, proj in net.projections.items():
        if proj.post == pop:
            out += _arrivals(net, name, n_steps)
    return out


def _threshold_margin(what: str, net: Network, pop: str, v_pre: np.ndarray,
                      tol: float) -> None:
    """The fixed point may sit ``tol`` away from the float state; where the float reference
    comes closer than that to the threshold, rounding alone could decide a spike, and the spike
    comparison would test luck: the spec must keep a margin (a failure here is the spec's)."""
    model = net.populations[pop].model
    vth = _param(model, "v_thresh" if isinstance(model, CubaLIF) else "v_thresh_mV",
                 v_pre.shape[1])
    margin = float(np.abs(v_pre - vth).min())
    if margin <= tol:
        raise AssertionError(f"{what}: the float reference comes within {margin:.3g} of the "
                             f"threshold of '{pop}' (fixed-point tolerance {tol:.3g}): the "
                             "spec needs a wider margin")


def _span(net: Network, pop: str) -> float:
    model = net.populations[pop].model
    if isinstance(model, CubaLIF):
        return float(np.ravel(np.asarray(model.v_thresh) - np.asarray(model.v_reset))[0])
    return float(np.ravel(np.asarray(model.v_thresh_mV) - np.asarray(model.v_reset_mV))[0])


def _fixed_state(res: Results, net: Network, pop: str, var: str,
                 values: np.ndarray) -> np.ndarray:
    """A fixed-point trace of ``pop`` in the float model's units: ``u / scale``, ``v / scale +
    v_reset`` (Lava resets to 0; `evospike.fixed_point`)."""
    model = net.populations[pop].model
    out = np.asarray(values, dtype=np.float64) / _fixed_scale(res, pop)
    if var == "v":
        out = out + float(np.ravel(model.v_reset if isinstance(model, CubaLIF)
                                   else model.v_reset_mV)[0])
    return out


def _compare_states(net: Network, res: Results, pop: str, ref: dict[str, np.ndarray],
                    names: dict[str, str], fixed: bool, tol_frac: float) -> None:
    """Spikes of ``pop`` equal the reference's; each every-step trace ``names[var]`` equals
    ``ref[var]`` (to 1e-9 in float; to ``tol_frac`` of the threshold span in fixed point, with
    the threshold margin that makes the spike comparison meaningful)."""
    size = net.populations[pop].size
    tol = tol_frac * _span(net, pop)
    if fixed:
        _threshold_margin(f"'{pop}'", net, pop, ref["v_pre"], tol)
    _equal(f"spikes of '{pop}'" + (" (fixed point)" if fixed else ""),
           _spike_matrix(res, pop, size), ref["spikes"])
    for var, name in names.items():
        if fixed:
            _close(f"'{name}' (fixed point, in float units)",
                   _fixed_state(res, net, pop, var, _trace(res, name)), ref[var], rtol=0,
                   atol=tol)
        else:
            _close(f"'{name}'", _trace(res, name), ref[var])


def _check_source_spikes(net: Network, res: Results, name: str) -> tuple[np.ndarray, ...]:
    """A spike-times source's recorded spikes are its own, in step floor(t / dt)."""
    src = net.sources[name]
    want = sorted(zip(np.floor(src.times_ms / net.dt_ms + 1e-9).astype(int).tolist(),
                      np.asarray(src.neurons).tolist(), strict=True))
    got_s, got_n = res.spike_steps(name)
    _equal(f"spikes of '{name}' (step, neuron)",
           list(zip(got_s.tolist(), got_n.tolist(), strict=True)), want)
    return got_s, got_n


# poisson-source-loihi: Poisson draws onto a CubaLIF layer through its current
LOIHI_CELL = CubaLIF(du=0.25, dv=0.125, v_thresh=2.0, v_reset=0.0)
LOIHI_RATES = np.array([100.0, 300.0, 0.0, 800.0, 50.0, 500.0])


def build_poisson_loihi() -> Network:
    net = Network("poisson_loihi", dt_ms=1.0)
    src = net.poisson_source("noise", 6, LOIHI_RATES, start_ms=5.0, stop_ms=60.0)
    net.population("p", 6, LOIHI_CELL)
    net.connect(src, "p", OneToOne(), weight=0.75, delay_ms=1.0, name="noise->p")
    net.record_spikes("noise", "p")
    net.record_state("p", "u")
    net.record_state("p", "v")
    return net


def _check_poisson_loihi(net: Network, res: Results, fixed: bool) -> None:
    """The source's spikes are the IR's keyed draws for the run's seed (the same in fixed
    point: EvoSpike draws them for every backend); each adds 0.75 to its neuron's u one step
    later; u, v and spikes follow CubaLIF's update; a neuron whose source is silent (rate 0)
    stays at rest and never fires."""
    from evospike.realize import poisson_events

    seed = int(res.meta.get("seeds", [0])[0]) if "seeds" in res.meta else 0
    steps, neurons = poisson_events(net.sources["noise"], seed, net.dt_ms, 0, res.n_steps)
    _active("Poisson draws", steps.size, 40)
    got_s, got_n = res.spike_steps("noise")
    _equal("spike steps of 'noise'", got_s, steps)
    _equal("spike neurons of 'noise'", got_n, neurons)
    a_in = np.zeros((res.n_steps, 6))
    keep = steps + 1 < res.n_steps
    np.add.at(a_in, (steps[keep] + 1, neurons[keep]), 0.75)
    ref = _cuba_reference(LOIHI_CELL, 6, a_in)
    _active("reference spikes of 'p'", int(ref["spikes"].sum()), 5)
    _compare_states(net, res, "p", ref, {"u": "p.u", "v": "p.v"}, fixed, FIXED_CUBA_TOL)
    silent = LOIHI_RATES == 0
    if np.any(_spike_matrix(res, "p", 6)[:, silent]) or \
            np.any(_trace(res, "p.v")[:, silent] != 0):
        raise AssertionError("a neuron of 'p' without input moved or fired")


# projections-loihi: excitatory and inhibitory projections with delays > 1 onto CubaLIF
def build_projections_loihi() -> Network:
    net = Network("projections_loihi", dt_ms=1.0)
    src = net.spike_source("in", 3, [0, 1, 2, 0, 2, 1, 0],
                           [0.0, 3.0, 6.0, 12.0, 13.0, 20.0, 30.0])
    net.population("p", 2, CubaLIF(du=0.25, dv=0.125, v_thresh=3.0))
    net.connect(src, "p", FromArrays([0, 0, 1, 2, 2], [0, 1, 1, 0, 1],
                                     weights=np.array([1.5, 2.0, 0.5, 3.0, 1.0]),
                                     delays_ms=np.array([1.0, 3.0, 5.0, 2.0, 7.0])),
                name="in->p.exc")
    net.connect(src, "p", AllToAll(), weight=-1.0, delay_ms=4.0, target="inh",
                name="in->p.inh")
    net.record_spikes("in", "p")
    net.record_state("p", "u")
    net.record_state("p", "v")
    return net


def _check_projections_loihi(net: Network, res: Results, fixed: bool) -> None:
    """Each event's weight lands in u in step emission + delay (both channels feed u; the
    inhibitory weights are negative); u, v and spikes follow CubaLIF's update; ``p`` fires
    only after excitatory input arrived."""
    _check_source_spikes(net, res, "in")
    n = res.n_steps
    for name in ("in->p.exc", "in->p.inh"):
        _active(f"events of '{name}'", int(np.count_nonzero(_arrivals(net, name, n))), 3)
    a_in = _all_arrivals(net, "p", n)
    ref = _cuba_reference(net.populations["p"].model, 2, a_in)
    _active("reference spikes of 'p'", int(ref["spikes"].sum()), 2)
    _compare_states(net, res, "p", ref, {"u": "p.u", "v": "p.v"}, fixed, FIXED_CUBA_TOL)
    first_exc = int(np.nonzero(_arrivals(net, "in->p.exc", n).any(axis=1))[0][0])
    if np.any(_spike_matrix(res, "p", 2)[:first_exc]):
        raise AssertionError("'p' fired before any excitatory input arrived")


# lif-loihi: LIF with one synaptic time constant (reduced to Loihi's neuron), constant current
LIF_LOIHI = LIF(tau_m_ms=20.0, v_rest_mV=-65.0, v_reset_mV=-70.0, v_thresh_mV=-55.0,
                tau_syn_exc_ms=5.0, tau_syn_inh_ms=5.0, tau_refrac_ms=2.0,
                i_bias_mV=np.array([2.0, 0.0, 0.0]))


def build_lif_loihi() -> Network:
    net = Network("lif_loihi", dt_ms=1.0)
    src = net.spike_source("in", 2, [0, 1, 0, 0, 1, 0, 1],
                           [5.0, 8.0, 20.0, 21.0, 22.0, 40.0, 41.0])
    net.population("p", 3, LIF_LOIHI)
    net.inject_current("p", np.array([16.0, 6.0, 0.0]))
    net.connect(src, "p", AllToAll(), weight=np.array([20.0, 30.0, 40.0, 10.0, 20.0, 30.0]),
                delay_ms=1.0, name="in->p.exc")
    net.connect(src, "p", FromArrays([1, 1], [0, 2], weights=np.array([-15.0, -10.0])),
                delay_ms=2.0, target="inh", name="in->p.inh")
    net.record_spikes("in", "p")
    net.record_state("p", "v")
    return net


def _check_lif_loihi(net: Network, res: Results, fixed: bool) -> None:
    """v and spikes against LIF solved in closed form with one synaptic current (constant
    current and bias from time 0, uniform refractory period); a neuron with no bias, no current
    and no input yet stays at rest."""
    _check_source_spikes(net, res, "in")
    n = res.n_steps
    a_in = _all_arrivals(net, "p", n)
    ref = _lif_syn_reference(LIF_LOIHI, 3, net.dt_ms, a_in, _current_drive(net, "p", n))
    _active("reference spikes of 'p'", int(ref["spikes"].sum()), 5)
    if not ref["spikes"][:, 1:].any():
        raise AssertionError("only the biased neuron fires: the input tests nothing")
    _compare_states(net, res, "p", ref, {"v": "p.v"}, fixed, FIXED_LIF_TOL)
    first = int(np.nonzero(a_in[:, 2])[0][0])
    v2 = _trace(res, "p.v")[:first + 1, 2]
    if fixed:
        v2 = _fixed_state(res, net, "p", "v", v2)
    _close("'p.v' of neuron 2 before its input", v2, np.full(first + 1, -65.0), rtol=0,
           atol=FIXED_LIF_TOL * _span(net, "p") if fixed else 1e-9)


# monitors-loihi: subsampled u/v monitors, spike monitors, a constant current
MON_CELL = CubaLIF(du=0.25, dv=0.125, bias=np.array([0.25, 0.0, 0.75]), v_thresh=4.0)


def build_monitors_loihi() -> Network:
    net = Network("monitors_loihi", dt_ms=1.0)
    net.population("p", 3, MON_CELL)
    net.inject_current("p", np.array([0.125, 0.25, 0.0]))
    src = net.spike_source("in", 2, [0, 1, 0, 1], [3.0, 9.0, 17.0, 24.0])
    net.connect(src, "p", AllToAll(), weight=np.array([1.5, 0.5, 0.0, 1.0, 2.0, 0.5]),
                delay_ms=1.0, name="in->p")
    net.record_state("p", "u", neurons=[2, 0], every_steps=3, name="p.u.sub")
    net.record_state("p", "v", neurons=[1, 2], every_steps=5, name="p.v.sub")
    net.record_spikes("p", "in")
    return net


def _check_monitors_loihi(net: Network, res: Results, fixed: bool) -> None:
    """A StateMonitor samples the listed neurons, in their order, at steps 0, k, 2k, ...; the
    values are CubaLIF's update with bias and constant current; spike monitors record the
    source's and the population's spikes."""
    _check_source_spikes(net, res, "in")
    n = res.n_steps
    ref = _cuba_reference(MON_CELL, 3, _all_arrivals(net, "p", n), _current_drive(net, "p", n))
    _active("reference spikes of 'p'", int(ref["spikes"].sum()), 4)
    tol = FIXED_CUBA_TOL * _span(net, "p")
    if fixed:
        _threshold_margin("'p'", net, "p", ref["v_pre"], tol)
    _equal("spikes of 'p'", _spike_matrix(res, "p", 3), ref["spikes"])
    for name, var, every, neurons in (("p.u.sub", "u", 3, [2, 0]), ("p.v.sub", "v", 5, [1, 2])):
        tr = res.traces[name]
        _equal(f"'{name}' steps", tr.steps, np.arange(0, n, every))
        _equal(f"'{name}' neurons", tr.neurons, neurons)
        want = ref[var][::every][:, neurons]
        if fixed:
            _close(f"'{name}' values (fixed point, in float units)",
                   _fixed_state(res, net, "p", var, tr.values[0]), want, rtol=0, atol=tol)
        else:
            _close(f"'{name}' values", tr.values[0], want)


# stdp-loihi: delay-1 additive all-pairs STDP onto CubaLIF, recorded by a WeightMonitor
LOIHI_STDP = dict(tau_plus_ms=5.0, tau_minus_ms=5.0, a_plus=0.1, a_minus=0.12, w_min=0.0,
                  w_max=2.55)
KICK_CELL = CubaLIF(du=1.0, dv=0.5, v_thresh=10.0)
#: per repetition (every 20 ms from 5 ms): pre 0 fires, post 0 fires 5 steps later, pre 1 5
#: steps after that, post 1 5 steps after pre 1 (and 5 before the next pre 0): pre 0 -> post 0
#: and pre 1 -> post 1 pair pre-before-post (potentiation), pre 1 -> post 0 and (from the
#: second repetition) pre 0 -> post 1 post-before-pre (depression)
STDP_REPS = np.arange(4) * 20.0 + 5.0
STDP_DIRECTIONS = np.array([1.0, -1.0, -1.0, 1.0])  # synapses (0,0), (0,1), (1,0), (1,1)


def build_stdp_loihi() -> Network:
    net = Network("stdp_loihi", dt_ms=1.0)
    reps = STDP_REPS
    k = len(reps)
    net.spike_source("pre", 2, [0] * k + [1] * k, [*reps, *(reps + 10.0)])
    # a kick sent in step s arrives in s + 1 and makes its neuron fire then
    net.spike_source("kick", 2, [0] * k + [1] * k, [*(reps + 4.0), *(reps + 14.0)])
    net.population("post", 2, KICK_CELL)
    net.connect("kick", "post", OneToOne(), weight=12.0, delay_ms=1.0, name="kick->post")
    net.connect("pre", "post", AllToAll(), weight=1.0, delay_ms=1.0, name="pre->post")
    net.stdp("pre->post", **LOIHI_STDP)
    net.record_spikes("pre", "post")
    net.record_weights("pre->post", every_steps=1)
    return net


def _kicked(net: Network, res: Results, post: str, kick: str) -> None:
    """``post`` fires exactly in the steps its kicks arrive (the plastic input alone stays far
    below the threshold): the spikes the learning pairs with are where the protocol puts
    them."""
    src = net.sources[kick]
    want = sorted(zip((np.floor(src.times_ms / net.dt_ms + 1e-9).astype(int) + 1).tolist(),
                      np.asarray(src.neurons).tolist(), strict=True))
    got_s, got_n = res.spike_steps(post)
    _equal(f"spikes of '{post}' (step, neuron)",
           list(zip(got_s.tolist(), got_n.tolist(), strict=True)), want)


def _learning_agrees(what: str, got: np.ndarray, ref: np.ndarray, directions: np.ndarray,
                     w_max: float, fixed: bool, quiet_until: int) -> None:
    """Weights (steps, synapses): each synapse moves in the direction the protocol implies
    (and the float rule computes), none before step ``quiet_until``, all within [0, w_max];
    in float every step equals the rule's, in fixed point the final change is the rule's to
    FIXED_LEARNING_QUANTA weight quanta plus FIXED_LEARNING_FRACTION of it."""
    ref_change = ref[-1] - ref[0]
    if np.any(np.sign(ref_change) != directions) or np.abs(ref_change).min() < 0.05:
        raise AssertionError(f"{what}: the float rule's changes {ref_change} do not follow the "
                             f"protocol's directions {directions} by 0.05: the spec tests "
                             "nothing")
    if np.any(got < 0) or np.any(got > w_max + 1e-12):
        raise AssertionError(f"{what}: weights outside [0, {w_max}]: {got.min()}..{got.max()}")
    _close(f"{what} before step {quiet_until} (nothing to pair yet)", got[:quiet_until],
           np.broadcast_to(got[0], got[:quiet_until].shape), rtol=0, atol=0)
    change = got[-1] - got[0]
    if np.any(np.sign(change) != directions):
        raise AssertionError(f"{what}: final changes {change}, the protocol implies signs "
                             f"{directions}")
    if not fixed:
        _close(what, got, ref)
        return
    bound = FIXED_LEARNING_QUANTA * w_max / 255 + FIXED_LEARNING_FRACTION * np.abs(ref_change)
    bad = np.abs(change - ref_change) > bound
    if np.any(bad):
        i = int(np.argmax(bad))
        raise AssertionError(f"{what}: synapse {i} changes by {change[i]:.4g}, the float rule "
                             f"by {ref_change[i]:.4g} (allowed {bound[i]:.3g})")


def _check_stdp_loihi(net: Network, res: Results, fixed: bool) -> None:
    """Weights against the trace-form pair rule replayed on the recorded spikes; pre-before-
    post synapses potentiate, post-before-pre ones depress, nothing moves before the first
    post spike; the post spikes are where the kicks put them."""
    _check_source_spikes(net, res, "pre")
    _kicked(net, res, "post", "kick")
    rule = net.plasticity["pre->post.stdp"]
    ref = _stdp_reference(net, res, rule)
    first_post = int(res.spike_steps("post")[0].min())
    _learning_agrees("'pre->post' weights", _weights(res, "pre->post.weights"), ref,
                     STDP_DIRECTIONS, rule.w_max, fixed, first_post)


# reward-stdp-loihi: RewardModulatedSTDP onto CubaLIF, one population rewarded, one punished
LOIHI_RSTDP = dict(tau_plus_ms=10.0, tau_minus_ms=10.0, a_plus=0.1, a_minus=0.1,
                   tau_eligibility_ms=100.0, learning_rate_per_ms=0.15, w_min=0.0, w_max=2.55)
#: pre 0 fires 5 steps before both posts' kicked spike (step 10), pre 1 four steps after it:
#: synapse 0's eligibility is positive, synapse 1's negative; the reward (+1 for 'win', -1 for
#: 'lose') arrives in step 30
RSTDP_REWARD_MS = 30.0
RSTDP_DIRECTIONS = {"win": np.array([1.0, -1.0]), "lose": np.array([-1.0, 1.0])}


def build_reward_stdp_loihi() -> Network:
    net = Network("reward_stdp_loihi", dt_ms=1.0)
    net.spike_source("pre", 2, [0, 1], [5.0, 14.0])
    net.spike_source("kick", 2, [0, 1], [9.0, 9.0])
    for i, (post, mod, amount) in enumerate((("win", "reward", 1.0),
                                             ("lose", "punishment", -1.0))):
        net.population(post, 1, KICK_CELL)
        net.connect("kick", post, FromArrays([i], [0], weights=np.array([12.0])),
                    delay_ms=1.0, name=f"kick->{post}")
        net.connect("pre", post, AllToAll(), weight=1.0, delay_ms=1.0, name=f"pre->{post}")
        net.modulator(mod, 20.0, [RewardEvents([RSTDP_REWARD_MS], [amount])])
        net.reward_stdp(f"pre->{post}", mod, **LOIHI_RSTDP)
        net.record_state(mod, "level")
        net.record_weights(f"pre->{post}", every_steps=1)
        net.record_spikes(post)
    net.record_spikes("pre")
    return net


def _modulator_level(net: Network, name: str, n: int) -> np.ndarray:
    """``m[n] = m[n-1] exp(-dt / tau) + drives of step n`` (Modulator's docstring), for
    modulators driven by RewardEvents (an event at t falls into step floor(t / dt))."""
    mod = net.processes[name]
    add = np.zeros(n)
    for drive in mod.drives:
        if not isinstance(drive, RewardEvents):
            raise AssertionError(f"this reference takes RewardEvents only, not {drive.kind}")
        amounts = np.broadcast_to(drive.amounts, np.shape(drive.times_ms))
        for t, amount in zip(np.atleast_1d(drive.times_ms), np.atleast_1d(amounts),
                             strict=True):
            k = int(np.floor(t / net.dt_ms + 1e-9))
            if k < n:
                add[k] += amount
    m, out = mod.initial, np.zeros(n)
    for k in range(n):
        m = m * np.exp(-net.dt_ms / mod.tau_ms) + add[k]
        out[k] = m
    return out


def _check_reward_stdp_loihi(net: Network, res: Results, fixed: bool) -> None:
    """Each modulator's level against its decay and reward events (the fixed-point engines
    compute it on the host in float: to 1e-9 there too); the weights against eligibility x
    m[n-1] x learning rate replayed on the recorded spikes; the reward's sign decides the
    direction (pre-before-post up and post-before-pre down where rewarded, the reverse where
    punished) and nothing moves until the reward arrives."""
    _check_source_spikes(net, res, "pre")
    n = res.n_steps
    reward_step = int(np.floor(RSTDP_REWARD_MS / net.dt_ms + 1e-9))
    for post, mod in (("win", "reward"), ("lose", "punishment")):
        _equal(f"spikes of '{post}'", res.spike_steps(post)[0], [10])
        level = _modulator_level(net, mod, n)
        _close(f"'{mod}.level'", _trace(res, f"{mod}.level")[:, 0], level)
        rule = net.plasticity[f"pre->{post}.rstdp"]
        ref = _stdp_reference(net, res, rule, level=level, least_post=1)
        _learning_agrees(f"'pre->{post}' weights", _weights(res, f"pre->{post}.weights"), ref,
                         RSTDP_DIRECTIONS[post], rule.w_max, fixed, reward_step + 1)


# --------------------------------------------------------------------------- the specs
def _float(check: Callable[[Network, Results, bool], None]) -> Check:
    return lambda net, res: check(net, res, False)


def _fixed(check: Callable[[Network, Results, bool], None]) -> Check:
    return lambda net, res: check(net, res, True)


_STDP = {(d, p): _stdp_spec(d, p) for d, p in (("additive", "all"), ("multiplicative", "all"),
                                               ("additive", "nearest"))}

SPECS: list[Spec] = [
    Spec("lif", "LIF, CurrentInput (constant)", build_lif, 30.0, check_lif,
         "v and spikes against LIF integrated exactly with a current switched on and off, "
         "per-neuron refractory periods and bias"),
    Spec("adaptive-lif", "AdaptiveLIF", build_adaptive_lif, 30.0, check_adaptive_lif,
         "v, theta and spikes against the exact update with the threshold jump and decay"),
    Spec("cuba-lif", "CubaLIF, SpikeTimesSource", build_cuba_lif, 40.0, check_cuba_lif,
         "u, v and spikes against Loihi's discrete update from the input events",
         fixed_check=check_cuba_fixed),
    Spec("izhikevich", "Izhikevich", build_izhikevich, 30.0, check_izhikevich,
         "v, u and spikes against forward Euler of Izhikevich's equations"),
    Spec("adex", "AdEx", build_adex, 30.0, check_adex,
         "v, w and spikes against forward Euler of the AdEx equations, refractory hold"),
    Spec("projections", "Projection (exc, inh, v; delays > 1)", build_projections, 10.0,
         check_projections,
         "i_exc, i_inh and v against each event's weight landing at emission + delay"),
    Spec("poisson-source", "PoissonSource", build_poisson, 40.0, check_poisson,
         "the spikes are the IR's keyed draws for the seed; v receives them a step later"),
    Spec("poisson-input", "PoissonInput (exc, inh, v; binomial and Poisson counts)",
         build_poisson_input, 30.0, check_poisson_input,
         "i_exc, i_inh and v against count x weight landing in the step of its keyed draw"),
    Spec("spike-times-source", "SpikeTimesSource", build_spike_times, 10.0, check_spike_times,
         "spikes in step floor(t / dt); v receives them after the delay"),
    Spec("current-series", "CurrentInput (series)", build_current_series, 30.0,
         check_current_series, "v and spikes against exact integration of a per-step current"),
    Spec("monitors", "StateMonitor, WeightMonitor, SpikeMonitor", build_monitors, 20.0,
         check_monitors, "sample steps, neuron order and values of subsampled monitors"),
    Spec("stdp-additive", "STDP (additive, all pairs)", _STDP[("additive", "all")][0], 30.0,
         _STDP[("additive", "all")][1],
         "weights every step against the trace-form pair rule from the recorded spikes"),
    Spec("stdp-multiplicative", "STDP (multiplicative)", _STDP[("multiplicative", "all")][0],
         30.0, _STDP[("multiplicative", "all")][1],
         "weights every step against the soft-bounded pair rule"),
    Spec("stdp-nearest", "STDP (nearest pairing)", _STDP[("additive", "nearest")][0], 30.0,
         _STDP[("additive", "nearest")][1],
         "weights every step against the rule with traces set (not added) to 1"),
    Spec("reward-stdp", "RewardModulatedSTDP, Modulator", build_reward_stdp, 30.0,
         check_reward_stdp,
         "level and weights against eligibility x m[n-1] x learning rate"),
    Spec("modulator", "Modulator (events, series, spike count)", build_modulator, 30.0,
         check_modulator, "level against its decay plus every drive of the step"),
    Spec("homeostasis", "Homeostasis (threshold)", build_homeostasis, 30.0, check_homeostasis,
         "rate estimate and threshold offset against their equations from the spikes"),
    Spec("metaplasticity", "Metaplasticity", build_metaplasticity, 30.0, check_metaplasticity,
         "parameter, baseline and the weights learnt with the adapted a_plus"),
    Spec("structural", "StructuralPlasticity", build_structural, 20.0, check_structural,
         "synapse count and v: pruned synapses stop delivering after the update step"),
    Spec("pruning", "TerminalAttractorPruning", build_pruning, 20.0, check_pruning,
         "schedule R(t) and the pruned fraction floor(R N) / N"),
    Spec("memory-tiers", "MemoryTiers", build_tiers, 30.0, check_tiers,
         "short, mid, long, importance and access against the tier update and consolidation"),
    Spec("apoptosis", "Apoptosis", build_apoptosis, 100.0, check_apoptosis,
         "health, survival and death per evaluation from the spikes; the dead stay silent"),
    Spec("epigenetic-gate", "EpigeneticGate", build_gate, 30.0, check_gate,
         "gate, open and activation ratio against their equations; closed neurons silent"),
    Spec("participation", "NeuromodulatedParticipation", build_participation, 30.0,
         check_participation, "fraction and subsets from the keyed uniforms; outsiders silent"),
    Spec("energy-budget", "EnergyBudget", lambda: _energy_net("energy", False), 30.0,
         check_energy, "stores and spending from the spikes; no spike without energy"),
    Spec("global-energy-budget", "GlobalEnergyBudget", lambda: _energy_net("global", True),
         30.0, check_global_energy, "the shared store and spending; no spike without energy"),
    # the Loihi variants: what the fixed-point columns (torch-fixed, Lava) carry
    Spec("poisson-source-loihi", "PoissonSource onto CubaLIF (Loihi)", build_poisson_loihi,
         80.0, _float(_check_poisson_loihi),
         "the keyed draws; u, v and spikes of CubaLIF fed through its current (fixed point: "
         "to 1e-4 of the threshold span); a silent input leaves its neuron at rest",
         fixed_check=_fixed(_check_poisson_loihi)),
    Spec("projections-loihi", "Projection (exc, inh; delays > 1) onto CubaLIF (Loihi)",
         build_projections_loihi, 40.0, _float(_check_projections_loihi),
         "u, v and spikes with each event landing in u at emission + delay (fixed point: to "
         "1e-4 of the threshold span); no spike before excitatory input",
         fixed_check=_fixed(_check_projections_loihi)),
    Spec("lif-loihi", "LIF (one synaptic tau), CurrentInput (constant) (Loihi)",
         build_lif_loihi, 60.0, _float(_check_lif_loihi),
         "v and spikes against LIF with one synaptic current solved in closed form (fixed "
         "point, reduced to Loihi's neuron: to 2e-3 of the threshold span)",
         fixed_check=_fixed(_check_lif_loihi)),
    Spec("monitors-loihi", "StateMonitor (u, v), SpikeMonitor (Loihi)", build_monitors_loihi,
         40.0, _float(_check_monitors_loihi),
         "sample steps, neuron order and values of subsampled u/v monitors (fixed point: to "
         "1e-4 of the threshold span); spikes",
         fixed_check=_fixed(_check_monitors_loihi)),
    Spec("stdp-loihi", "STDP (delay 1, additive, all pairs) onto CubaLIF, WeightMonitor "
         "(Loihi)", build_stdp_loihi, 85.0, _float(_check_stdp_loihi),
         "weights every step against the pair rule on the recorded spikes; fixed point: each "
         "synapse moves the way the pairing protocol implies, none before the first pairing, "
         "by the rule's change to 2.5 quanta + 35 %",
         fixed_check=_fixed(_check_stdp_loihi)),
    Spec("reward-stdp-loihi", "RewardModulatedSTDP, Modulator (RewardEvents) onto CubaLIF "
         "(Loihi)", build_reward_stdp_loihi, 120.0, _float(_check_reward_stdp_loihi),
         "levels and weights against eligibility x m[n-1]; fixed point: the reward's sign sets "
         "each synapse's direction, nothing moves before the reward, the rule's change to 2.5 "
         "quanta + 35 %",
         fixed_check=_fixed(_check_reward_stdp_loihi)),
]


# --------------------------------------------------------------------------- conductance models
COND_LIF = CondLIF(I_e_pA=np.array([400.0, 600.0]), tau_refrac_ms=2.0)
COND_ADEX = CondAdEx(C_pF=200.0, g_L_nS=10.0, E_L_mV=-70.0, V_T_mV=-50.0, V_reset_mV=-58.0,
                     a_nS=2.0, tau_w_ms=30.0, b_pA=40.0, I_e_pA=np.array([250.0, 420.0]),
                     tau_refrac_ms=0.5)
COND_IN = ([0, 1, 0, 1, 0, 1, 1], [1.0, 1.5, 3.0, 6.0, 6.2, 12.0, 20.0])  # neurons, times ms
COND_W = {"exc": (8.0, 2), "inh": (4.0, 1)}  # channel: (weight nS, delay steps)


def build_conductance() -> Network:
    net = Network("conductance", dt_ms=0.1)
    src = net.spike_source("in", 2, *COND_IN)
    for name, model in (("cl", COND_LIF), ("ca", COND_ADEX)):
        net.population(name, 2, model)
        for channel, (w, d) in COND_W.items():
            net.connect(src, name, AllToAll(), weight=w, delay_ms=d * 0.1, target=channel,
                        name=f"in->{name}.{channel}")
        net.record_spikes(name)
        for state in model.state_names:
            net.record_state(name, state)
    return net


def check_conductance(net: Network, res: Results) -> None:
    """CondLIF: v by exponential Euler with the step-start conductances; CondAdEx: (v, w) by
    forward Euler with the step-start synaptic current; conductances decay exactly, events add
    after the update of their arrival step (emission + delay); v held while refractory."""
    dt, n = net.dt_ms, res.n_steps
    arrive = {ch: np.zeros(n) for ch in COND_W}
    for t in COND_IN[1]:
        for ch, (w, d) in COND_W.items():
            if round(t / dt) + d < n:
                arrive[ch][round(t / dt) + d] += w  # all-to-all: every target gets it
    for name, m in (("cl", COND_LIF), ("ca", COND_ADEX)):
        adex = name == "ca"
        v, w = np.full(2, m.E_L_mV), np.zeros(2)
        ge, gi = np.zeros(2), np.zeros(2)
        hold = np.zeros(2, dtype=int)
        hold_steps = int(round(m.tau_refrac_ms / dt))
        de, di = np.exp(-dt / m.tau_syn_exc_ms), np.exp(-dt / m.tau_syn_inh_ms)
        out = {s: np.zeros((n, 2)) for s in m.state_names}
        spikes = np.zeros((n, 2))
        for k in range(n):
            syn = ge * (m.E_exc_mV - v) + gi * (m.E_inh_mV - v)
            if adex:
                arg = (np.minimum(v, m.V_peak_mV) - m.V_T_mV) / m.Delta_T_mV
                dv = (m.g_L_nS * (m.E_L_mV - v) + m.g_L_nS * m.Delta_T_mV * np.exp(arg) - w
                      + syn + m.I_e_pA) / m.C_pF
                w = w + dt * (m.a_nS * (v - m.E_L_mV) - w) / m.tau_w_ms
                v_new = v + dt * dv
            else:
                g_tot = m.g_L_nS + ge + gi
                v_inf = (m.g_L_nS * m.E_L_mV + ge * m.E_exc_mV + gi * m.E_inh_mV
                         + m.I_e_pA) / g_tot
                v_new = v_inf + (v - v_inf) * np.exp(-dt * g_tot / m.C_pF)
            ge, gi = ge * de + arrive["exc"][k], gi * di + arrive["inh"][k]
            free = hold == 0
            v = np.where(free, v_new, v)
            hold = np.maximum(hold - 1, 0)
            fired = free & ((v >= m.V_peak_mV) if adex else (v > m.V_th_mV))
            v = np.where(fired, m.V_reset_mV, v)
            if adex:
                w = np.where(fired, w + m.b_pA, w)
            hold = np.where(fired, max(hold_steps - 1, 0), hold)
            spikes[k] = fired
            for state, value in (("v", v), ("w_adapt", w), ("g_exc", ge), ("g_inh", gi)):
                if state in out:
                    out[state][k] = value
        _active(f"{m.kind} reference spikes", int(spikes.sum()), 3)
        _equal(f"spikes of '{name}'", _spike_matrix(res, name, 2), spikes)
        for state, want in out.items():
            _close(f"'{name}.{state}'", _trace(res, f"{name}.{state}"), want, rtol=1e-9,
                   atol=1e-8)


SPECS.append(Spec(
    "conductance", "CondLIF, CondAdEx (conductance synapses, exc and inh, delays > 1)",
    build_conductance, 40.0, check_conductance,
    "v, w, g and spikes against exponential Euler (CondLIF) / forward Euler (CondAdEx) with "
    "the step-start conductances, exact conductance decay, refractory hold"))


# --------------------------------------------------------------------------- timing convention
def build_schedule_brian2() -> Network:
    """A feed-forward network declared in Brian2's schedule: delays of 0, 1 and 3 steps onto
    ``v`` and ``exc``, a refractory population with a reset to a value (v events gated) and a
    population without refractoriness reset by subtraction."""
    net = Network("schedule_brian2", dt_ms=0.1, schedule="brian2")
    steps = np.arange(2, 190, 4)
    net.spike_source("in", 3, np.arange(steps.size) % 3, steps * 0.1)
    net.population("a", 3, LIF(tau_m_ms=10.0, tau_syn_exc_ms=3.0, v_rest_mV=-65.0,
                               v_reset_mV=-70.0, v_thresh_mV=-58.0,
                               tau_refrac_ms=np.array([0.3, 0.1, 0.5])))
    net.population("b", 2, LIF(tau_m_ms=12.0, tau_syn_exc_ms=2.0, v_rest_mV=-65.0,
                               v_reset_mV=-66.0, v_thresh_mV=-60.0, reset="subtract"))
    # every input neuron reaches every neuron of a: v events fall inside refractory periods
    net.connect("in", "a", AllToAll(), weight=4.0, delay_ms=0.0, target="v", name="in->a.v")
    net.connect("in", "a", OneToOne(), weight=5.0, delay_ms=0.1, target="exc", name="in->a.exc")
    net.connect("a", "b", FromArrays([0, 1, 2, 2], [0, 1, 0, 1]), weight=4.0, delay_ms=0.0,
                target="v", name="a->b.v")
    net.connect("a", "b", FromArrays([0, 1, 2], [1, 0, 1]), weight=3.0, delay_ms=0.3,
                target="exc", name="a->b.exc")
    net.record_spikes("a", "b")
    net.record_state("a", "v")
    net.record_state("b", "v")
    return net


def check_schedule_brian2(net: Network, res: Results) -> None:
    """Brian2's default schedule, written out from its rules: integrate (v held while
    refractory), threshold, add the events due this step (this step's spikes with delay 0
    included; ``v`` events dropped at a neuron that fired, when it resets to a value or is
    refractory-gated, and while it is refractory), reset."""
    from evospike.realize import spike_time_steps

    n, dt = res.n_steps, net.dt_ms
    spikes: dict[str, np.ndarray] = {}
    src = net.sources["in"]
    spikes["in"] = np.zeros((n, src.size))
    s_steps, s_neurons = spike_time_steps(src, dt)
    keep = s_steps < n
    spikes["in"][s_steps[keep], s_neurons[keep]] = 1.0
    for name in ("a", "b"):  # feed-forward: a pre population is computed first
        pop = net.populations[name]
        m, size = pop.model, pop.size
        events = {"v": np.zeros((n, size)), "exc": np.zeros((n, size))}
        for proj in net.projections.values():
            if proj.post != name:
                continue
            pre = spikes[proj.pre]
            for s, (i, j) in enumerate(zip(proj.pre_indices(), proj.indices, strict=True)):
                d = int(proj.delays[s])
                events[proj.target][d:, j] += pre[:n - d, i] * proj.weights[s]
        p = {k: np.broadcast_to(np.asarray(getattr(m, k), np.float64), (size,))
             for k in ("tau_m_ms", "tau_syn_exc_ms", "v_rest_mV", "v_reset_mV", "v_thresh_mV",
                       "tau_refrac_ms")}
        a, e = np.exp(-dt / p["tau_m_ms"]), np.exp(-dt / p["tau_syn_exc_ms"])
        k_ie = p["tau_syn_exc_ms"] / (p["tau_syn_exc_ms"] - p["tau_m_ms"]) * (e - a)
        hold_steps = np.rint(p["tau_refrac_ms"] / dt).astype(int)
        gated = bool(np.any(p["tau_refrac_ms"] > 0))
        v, ie, hold = p["v_rest_mV"].copy(), np.zeros(size), np.zeros(size, int)
        vs, fired_all = np.zeros((n, size)), np.zeros((n, size))
        for k in range(n):
            free = hold == 0
            v = np.where(free, p["v_rest_mV"] + (v - p["v_rest_mV"]) * a + ie * k_ie, v)
            ie = ie * e
            hold = np.maximum(hold - 1, 0)
            fired = free & (v > p["v_thresh_mV"])
            if gated:
                open_v = free & ~fired
            else:
                open_v = ~fired if m.reset == "value" else np.ones(size, bool)
            v = v + np.where(open_v, events["v"][k], 0.0)
            ie = ie + events["exc"][k]
            if m.reset == "value":
                v = np.where(fired, p["v_reset_mV"], v)
            else:
                v = v - fired * (p["v_thresh_mV"] - p["v_reset_mV"])
            hold = np.where(fired, np.maximum(hold_steps - 1, 0), hold)
            vs[k], fired_all[k] = v, fired
        spikes[name] = fired_all
        _active(f"reference spikes of '{name}'", int(fired_all.sum()), 5)
        _equal(f"spikes of '{name}'", _spike_matrix(res, name, size), fired_all)
        _close(f"'{name}.v'", _trace(res, f"{name}.v"), vs)


SPECS.append(Spec(
    "schedule-brian2", "Network(schedule='brian2'): Brian2's default schedule",
    build_schedule_brian2, 20.0, check_schedule_brian2,
    "v and spikes against Brian2's order written out: events after the threshold, delays 0 "
    "to 3, v events gated by refractoriness, reset to a value and by subtraction"))
