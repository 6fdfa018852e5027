"""IR -> Brian2 objects. One builder per IR node type (`NODE_BUILDERS`); every node Brian2 cannot
carry is listed by `refusals` before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evospike.ir.network import Network
from evospike.ir.nodes import (
    CurrentInput,
    PoissonSource,
    Population,
    Projection,
    SpikeTimesSource,
)
from evospike.ir.plasticity import STDP
from evospike.realize import initial_state, spike_time_steps

from .equations import EmittedModel, emit, unsupported_reason


@dataclass
class Brian2Config:
    """How the Brian2 backend runs a network.

    ``target``: ``"auto"`` (cython when a C compiler works, numpy otherwise), ``"cython"`` or
    ``"numpy"`` (runtime mode), or ``"cpp_standalone"`` (one compiled C++ program for the whole
    run: fastest for long runs, one seed, no continuation). ``seeds``: one per trial; Brian2
    runs trials one after another.
    """

    target: str = "auto"
    seeds: tuple[int, ...] = (0,)
    progress: bool = True
    device: str = "cpu"  # Brian2's runtime mode runs on the CPU; anything else is refused
    precision: str = "float64"  # Brian2 computes in float64; anything else is refused
    engine: str = "auto"  # the torch backend's notion; only "auto" is accepted here


@dataclass
class Built:
    """One trial's Brian2 objects."""

    seed: int
    network: object
    groups: dict[str, object] = field(default_factory=dict)
    sources: dict[str, object] = field(default_factory=dict)
    synapses: dict[str, object] = field(default_factory=dict)
    spike_monitors: dict[str, object] = field(default_factory=dict)
    state_monitors: dict[str, object] = field(default_factory=dict)
    weight_monitors: dict[str, object] = field(default_factory=dict)
    emitted: dict[str, EmittedModel] = field(default_factory=dict)
    current_tables: dict[str, list[CurrentInput]] = field(default_factory=dict)
    table_names: dict[str, str] = field(default_factory=dict)  # population -> TimedArray name


def _unit(b2, name: str):
    return {"ms": b2.ms, "mV": b2.mV, "": 1}[name]


def build_population(b2, pop: Population, net: Network, built: Built) -> None:
    em = emit(pop.model)
    dt = net.dt_ms * b2.ms
    kwargs = {"method": em.method} if em.method else {}
    if em.refractory:
        kwargs["refractory"] = em.refractory
    group = b2.NeuronGroup(pop.size, em.equations, threshold=em.threshold, reset=em.reset,
                           dt=dt, **kwargs)
    for name, (value, unit) in em.params.items():
        setattr(group, name, np.broadcast_to(np.asarray(value, float), (pop.size,)) *
                _unit(b2, unit))
    if pop.model.kind == "Izhikevich":
        decay = {"decay_exc": pop.model.tau_syn_exc_ms, "decay_inh": pop.model.tau_syn_inh_ms}
        for name, tau in decay.items():
            setattr(group, name, np.broadcast_to(np.exp(-net.dt_ms / np.asarray(tau, float)),
                                                 (pop.size,)))
    constant = np.zeros(pop.size)
    varying = []
    for cur in net.currents.values():
        if cur.target != pop.name:
            continue
        if cur.series is None and cur.start_ms == 0.0 and cur.stop_ms is None:
            constant = constant + np.broadcast_to(np.asarray(cur.amplitude), (pop.size,))
        else:
            varying.append(cur)
    ext_unit = b2.mV if em.state_units.get("v") == "mV" else 1
    group.i_ext = constant * ext_unit
    group.i_const = constant * ext_unit
    built.current_tables[pop.name] = varying
    for state, value in initial_state(pop, built.seed).items():
        setattr(group, state, value * _unit(b2, em.state_units[state]))
    objects = [group]
    if varying:
        # the table itself is handed over at each run (it covers the steps run so far)
        table = f"_evospike_current_{len(built.table_names)}"
        built.table_names[pop.name] = table
        objects.append(group.run_regularly(f"i_ext = i_const + {table}(t, i)", when="start"))
    if em.step_code:
        objects.append(group.run_regularly(em.step_code, when="groups", order=1))
    built.groups[pop.name] = group
    built.emitted[pop.name] = em
    built.network.add(*objects)


def build_source(b2, src, net: Network, built: Built) -> None:
    if isinstance(src, SpikeTimesSource):
        steps, neurons = spike_time_steps(src, net.dt_ms)
    else:
        steps, neurons = np.zeros(0, np.int64), np.zeros(0, np.int64)  # set per segment
    group = b2.SpikeGeneratorGroup(src.size, neurons, steps * net.dt_ms * b2.ms,
                                   dt=net.dt_ms * b2.ms, sorted=False)
    built.sources[src.name] = group
    built.network.add(group)


def build_projection(b2, proj: Projection, net: Network, built: Built) -> None:
    pre = built.groups.get(proj.pre) or built.sources[proj.pre]
    post = built.groups[proj.post]
    post_model = built.emitted[proj.post]
    in_volts = post_model.state_units.get("v") == "mV"
    rules = [r for r in net.plasticity.values() if r.projection == proj.name]
    if rules:
        model, on_pre, on_post, namespace = stdp_code(rules[0], in_volts)
        syn = b2.Synapses(pre, post, model=model, dt=net.dt_ms * b2.ms, namespace=namespace,
                          on_pre=post_model.channel_code[proj.target] + "\n" + on_pre,
                          on_post=on_post)
    else:
        syn = b2.Synapses(pre, post, model=f"w : {'volt' if in_volts else '1'} (constant)",
                          on_pre=post_model.channel_code[proj.target], dt=net.dt_ms * b2.ms)
    syn.connect(i=proj.pre_indices(), j=proj.indices.astype(np.int64))
    syn.w = proj.weights * (b2.mV if in_volts else 1)
    # EvoSpike applies events after integration and before the threshold of their arrival step.
    # Brian2's pathway, moved to that slot, sees the spikes of the previous step: one step of
    # the delay is spent there.
    syn.pre.when = "before_thresholds"
    syn.delay = (proj.delays.astype(float) - 1.0) * net.dt_ms * b2.ms
    built.synapses[proj.name] = syn
    built.network.add(syn)


def stdp_code(rule: STDP, in_volts: bool) -> tuple[str, str, str, dict]:
    """Brian2 model, on_pre and on_post of pair-based STDP (`evospike.ir.plasticity`):
    event-driven traces, the transmitted weight read before the arrival's own update."""
    import brian2 as b2

    unit = "volt" if in_volts else "1"
    scale = b2.mV if in_volts else 1
    model = (f"w : {unit}\n"
             "dx/dt = -x / tau_plus : 1 (event-driven)\n"
             "dy/dt = -y / tau_minus : 1 (event-driven)")
    raise_trace = "{0} += 1" if rule.pairing == "all" else "{0} = 1"
    additive = rule.weight_dependence == "additive"
    depress = "w - a_minus * y" if additive else "w - a_minus * y * (w - w_min)"
    potentiate = "w + a_plus * x" if additive else "w + a_plus * x * (w_max - w)"
    on_pre = f"w = clip({depress}, w_min, w_max)\n" + raise_trace.format("x")
    on_post = raise_trace.format("y") + f"\nw = clip({potentiate}, w_min, w_max)"
    namespace = {
        "tau_plus": rule.tau_plus_ms * b2.ms, "tau_minus": rule.tau_minus_ms * b2.ms,
        "a_plus": rule.a_plus * (scale if additive else 1),
        "a_minus": rule.a_minus * (scale if additive else 1),
        "w_min": rule.w_min * scale, "w_max": rule.w_max * scale,
    }
    return model, on_pre, on_post, namespace


NODE_BUILDERS: dict[type, Callable] = {
    Population: build_population,
    PoissonSource: build_source,
    SpikeTimesSource: build_source,
    Projection: build_projection,
    STDP: None,  # built with its projection (build_projection)
}


def refusals(net: Network) -> list[str]:
    """Every node the Brian2 backend cannot carry, with the reason (empty: it runs)."""
    out = []
    for node in [*net.populations.values(), *net.sources.values(), *net.projections.values(),
                 *net.plasticity.values()]:
        if type(node) not in NODE_BUILDERS:
            out.append(f"{type(node).__name__} '{node.name}': no Brian2 builder for this node "
                       "type")
    for pop in net.populations.values():
        reason = unsupported_reason(pop.model)
        if reason:
            out.append(f"Population '{pop.name}' ({pop.model.kind}): {reason}")
    return out


def build_trial(b2, net: Network, seed: int) -> Built:
    built = Built(seed, b2.Network())
    for pop in net.populations.values():
        NODE_BUILDERS[type(pop)](b2, pop, net, built)
    for src in net.sources.values():
        NODE_BUILDERS[type(src)](b2, src, net, built)
    for proj in net.projections.values():
        NODE_BUILDERS[type(proj)](b2, proj, net, built)
    dt = net.dt_ms * b2.ms
    for mon in net.spike_monitors:
        group = built.groups.get(mon.target) or built.sources[mon.target]
        built.spike_monitors[mon.target] = b2.SpikeMonitor(group)
    for name, mon in net.state_monitors.items():
        built.state_monitors[name] = b2.StateMonitor(
            built.groups[mon.target], mon.variable, record=mon.neurons.astype(np.int64),
            dt=mon.every_steps * dt, when="end")
    for name, mon in net.weight_monitors.items():
        built.weight_monitors[name] = b2.StateMonitor(
            built.synapses[mon.projection], "w", record=True, dt=mon.every_steps * dt,
            when="end")
    built.network.add(*built.spike_monitors.values(), *built.state_monitors.values(),
                      *built.weight_monitors.values())
    return built
