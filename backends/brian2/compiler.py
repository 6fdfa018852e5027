"""IR -> Brian2 objects. One builder per IR node kind, registered in the backend's one registry
(`backends/brian2/registry.py`, ``build(b2, node, network, built)``); the process modules
register their own builders, and importing them here is what fills the registry. Every node
Brian2 cannot carry is listed by `refusals` before anything runs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.memory import MemoryTiers
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, AdaptiveLIF, AdEx, CondAdEx, CondLIF, CubaLIF, Izhikevich
from evospike.ir.nodes import (
    CurrentInput,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP
from evospike.ir.timing import brian2_schedule_refusals
from evospike.realize import (
    POISSON_CHUNK_STEPS,
    initial_state,
    poisson_input_counts,
    spike_time_steps,
)

# the modules that register their process kinds' builders (imported for that)
from . import apoptosis, energy_budget, gating, structural  # noqa: F401
from .equations import EmittedModel, emit, unsupported_reason
from .memory import monitored_variable as tiers_monitored_variable
from .memory import tiers_model, tiers_objects, tiers_of
from .names import clock_for, object_name
from .processes import add_homeostasis, homeostasis_code, plastic_synapse_code, scaling_code
from .registry import DEFAULT_PHASE, NODE_BUILDERS
from .schedule import order_of, record_order


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
    processes: dict[str, object] = field(default_factory=dict)  # process name -> group
    trace_vars: dict[str, tuple[str, str]] = field(default_factory=dict)  # monitor -> var, unit
    clock: object = None  # the step clock, named alike in every trial (see `object_name`)


def _unit(b2, name: str):
    return {"ms": b2.ms, "mV": b2.mV, "": 1}[name]


# the neuron models `equations.emit` writes; currents and monitors are the runner's and
# build_population's; a rule is built with its projection (build_projection), as are memory
# tiers (backends/brian2/memory.py)
NODE_BUILDERS.carry(LIF, AdaptiveLIF, CubaLIF, Izhikevich, AdEx, CondLIF, CondAdEx)
NODE_BUILDERS.carry(CurrentInput, SpikeMonitor, StateMonitor, WeightMonitor)
NODE_BUILDERS.carry(STDP, RewardModulatedSTDP, MemoryTiers)
# TerminalAttractorPruning has no builder: refused by name (`refusals`)


@NODE_BUILDERS.register(Population)
def build_population(b2, pop: Population, net: Network, built: Built) -> None:
    em = emit(pop.model, net.units)
    # processes that live in this population's own equations edit its model first
    hooked = [(node, hook) for node in net.processes.values()
              if getattr(node, "population", None) == pop.name and
              (hook := NODE_BUILDERS.extra(node, "population_hook")) is not None]
    for node, (edit, _) in hooked:
        edit(em, node, net)
    kwargs = {"method": em.method} if em.method else {}
    if em.refractory:
        kwargs["refractory"] = em.refractory
    group = b2.NeuronGroup(pop.size, em.equations, threshold=em.threshold, reset=em.reset,
                           clock=built.clock, name=object_name("pop", net, pop.name), **kwargs)
    for name, (value, unit) in em.params.items():
        setattr(group, name, np.broadcast_to(np.asarray(value, float), (pop.size,)) *
                _unit(b2, unit))
    if pop.model.kind in ("Izhikevich", "AdEx"):  # currents decayed exactly, by step_code
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
        objects.append(group.run_regularly(f"i_ext = i_const + {table}(t, i)", when="start",
                                           name=object_name("pop", net, pop.name, "currents")))
    if em.step_code:
        objects.append(group.run_regularly(em.step_code, when="groups", order=1,
                                           name=object_name("pop", net, pop.name, "step")))
    for node, (_, make_objects) in hooked:
        objects += make_objects(b2, group, em, node, net)
    built.groups[pop.name] = group
    built.emitted[pop.name] = em
    built.network.add(*objects)


@NODE_BUILDERS.register(PoissonSource, SpikeTimesSource)
def build_source(b2, src, net: Network, built: Built) -> None:
    if isinstance(src, SpikeTimesSource):
        steps, neurons = spike_time_steps(src, net.dt_ms)
    else:
        steps, neurons = np.zeros(0, np.int64), np.zeros(0, np.int64)  # set per segment
    group = b2.SpikeGeneratorGroup(src.size, neurons, steps * net.dt_ms * b2.ms,
                                   clock=built.clock, sorted=False,
                                   name=object_name("src", net, src.name))
    built.sources[src.name] = group
    built.network.add(group)


# one statement of a channel's on_pre code: ``<state>_post += w`` (gated by refractoriness)
_CHANNEL_LINE = re.compile(r"(\w+)_post \+= w( \* int\(not_refractory_post\))?")


@NODE_BUILDERS.register(PoissonInput)
def build_poisson_input(b2, inp: PoissonInput, net: Network, built: Built) -> None:
    """A NetworkOperation in the synapses' slot (``before_thresholds`` under schedule
    "evospike", Brian2's ``synapses`` under "brian2", the default slot of Brian2's own
    PoissonInput) that adds the step's counts x weight to the states the channel's on_pre code
    adds a synaptic weight to, gated alike; the counts are EvoSpike's keyed draws
    (`realize.poisson_input_counts`)."""
    if not isinstance(b2.get_device(), b2.devices.RuntimeDevice):
        raise UnsupportedError("brian2", [f"PoissonInput '{inp.name}': carried by the runtime "
                                          "targets (cython, numpy) only, not C++ standalone"])
    group, em = built.groups[inp.target], built.emitted[inp.target]
    targets = []
    for line in em.channel_code[inp.channel].splitlines():
        match = _CHANNEL_LINE.fullmatch(line.strip())
        if match is None:
            raise UnsupportedError("brian2", [f"PoissonInput '{inp.name}': channel "
                                              f"'{inp.channel}' of '{inp.target}' has on_pre "
                                              f"code it cannot follow: {line!r}"])
        state = match.group(1)
        scale = 1e-3 if em.state_units.get(state) == "mV" else 1.0  # Brian2 stores volts
        targets.append((state, scale, match.group(2) is not None))
    size, dt_s, seed = net.populations[inp.target].size, net.dt_ms * 1e-3, built.seed
    held: dict[str, object] = {"chunk": -1, "drive": None}

    def add_events(t) -> None:
        step = int(round(float(t / b2.second) / dt_s))
        chunk = step // POISSON_CHUNK_STEPS
        if chunk != held["chunk"]:
            counts = poisson_input_counts(inp, size, seed, net.dt_ms,
                                          chunk * POISSON_CHUNK_STEPS, POISSON_CHUNK_STEPS)
            held.update(chunk=chunk, drive=counts * inp.weight)
        drive = held["drive"][step - chunk * POISSON_CHUNK_STEPS]
        for state, scale, gated in targets:
            values = group.variables[state].get_value()
            if gated:
                values += drive * scale * group.variables["not_refractory"].get_value()
            else:
                values += drive * scale

    built.network.add(b2.NetworkOperation(
        add_events, clock=built.clock, name=object_name("input", net, inp.name),
        when="synapses" if net.schedule == "brian2" else "before_thresholds"))


@NODE_BUILDERS.register(Projection)
def build_projection(b2, proj: Projection, net: Network, built: Built) -> None:
    pre = built.groups.get(proj.pre) or built.sources[proj.pre]
    post = built.groups[proj.post]
    post_model = built.emitted[proj.post]
    in_volts = post_model.state_units.get("v") == "mV"
    rules = [r for r in net.plasticity.values() if r.projection == proj.name]
    rule = rules[0] if rules else None
    scaling = [h for h in net.processes.values() if isinstance(h, Homeostasis) and
               h.mechanism == "scaling" and proj.name in h.projections]
    update = None
    metas = {}
    if rule is not None:
        metas = {m.parameter: m for m in net.processes.values()
                 if isinstance(m, Metaplasticity) and m.rule == rule.name}
        model, on_pre, on_post, namespace, update = plastic_synapse_code(rule, in_volts, metas)
        tiers = tiers_of(net, proj.name)  # memory tiers: variables of these synapses
        if tiers is not None:
            model += tiers_model(tiers, in_volts)
        syn = b2.Synapses(pre, post, model=model, clock=built.clock, namespace=namespace,
                          name=object_name("proj", net, proj.name),
                          on_pre=post_model.channel_code[proj.target] + "\n" + on_pre,
                          on_post=on_post, method="exact")
    else:
        constant = "" if scaling else " (constant)"
        syn = b2.Synapses(pre, post, model=f"w : {'volt' if in_volts else '1'}{constant}",
                          name=object_name("proj", net, proj.name),
                          on_pre=post_model.channel_code[proj.target], clock=built.clock)
    syn.connect(i=proj.pre_indices(), j=proj.indices.astype(np.int64))
    syn.w = proj.weights * (b2.mV if in_volts else 1)
    if rule is not None:
        syn.mod_index = 0
        if rule.modulator is not None:
            syn.level_mod = b2.linked_var(built.processes[rule.modulator], "level",
                                          index="mod_index")
        for parameter, meta in metas.items():
            setattr(syn, f"{parameter.removesuffix('_ms')}_dyn",
                    b2.linked_var(built.processes[meta.name], "value", index="mod_index"))
        if update is not None:
            built.network.add(syn.run_regularly(update, when="end", order=order_of(net, rule.name),
                                                name=object_name("proj", net, proj.name, "update")))
        if tiers is not None:  # memory tiers (backends/brian2/memory.py)
            built.network.add(*tiers_objects(b2, syn, tiers, rule, net, built, in_volts))
    for h in scaling:
        scale_name = object_name("proc", net, h.name,
                                 f"scaling{list(net.projections).index(proj.name)}")
        built.network.add(syn.run_regularly(scaling_code(h, net.dt_ms, rule),
                                            clock=clock_for(b2, scale_name,
                                                            h.every_steps * net.dt_ms * b2.ms,
                                                            built.clock),
                                            when="end", order=order_of(net, h.name, 0),
                                            name=scale_name))
    if net.schedule == "brian2":
        # Brian2's own schedule (evospike.ir.timing): the pathway untouched, in the synapses
        # slot after the thresholds, delivering a delay of D steps as D * dt
        syn.delay = proj.delays.astype(float) * net.dt_ms * b2.ms
    else:
        # EvoSpike applies events after integration and before the threshold of their arrival
        # step. Brian2's pathway, moved to that slot, sees the spikes of the previous step: one
        # step of the delay is spent there.
        syn.pre.when = "before_thresholds"
        syn.delay = (proj.delays.astype(float) - 1.0) * net.dt_ms * b2.ms
    built.synapses[proj.name] = syn
    built.network.add(syn)


def _homeostasis_objects(b2, group, em, node: Homeostasis, net: Network) -> list:
    code = homeostasis_code(node, net.dt_ms, em.state_units.get("v") == "mV")
    return [group.run_regularly(code, when="end", order=order_of(net, node.name, 1),
                                name=object_name("proc", net, node.name))]


# homeostasis lives in its population's equations (no builder of its own)
NODE_BUILDERS.carry(Homeostasis, population_hook=(
    lambda em, node, net: add_homeostasis(em, node), _homeostasis_objects))


def refusals(net: Network) -> list[str]:
    """Every node the Brian2 backend cannot carry, with the reason (empty: it runs)."""
    out = NODE_BUILDERS.refusals(net) + brian2_schedule_refusals(net)
    for pop in net.populations.values():
        if not NODE_BUILDERS.carries(pop.model):
            continue  # refused by name above
        reason = unsupported_reason(pop.model)
        if reason:
            out.append(f"Population '{pop.name}' ({pop.model.kind}): {reason}")
    return out


def _monitored(net: Network, built: Built, mon) -> tuple[object, str, str]:
    """The Brian2 group, variable and unit name ("mV" or "") a state monitor records."""
    if mon.target in built.groups:
        return (built.groups[mon.target], mon.variable,
                built.emitted[mon.target].state_units[mon.variable])
    proc = net.processes[mon.target]
    if isinstance(proc, Homeostasis):
        variable = {"rate_hz": "rate_h", "theta": "theta_h"}[mon.variable]
        unit = built.emitted[proc.population].state_units.get(variable, "")
        return built.groups[proc.population], variable, unit
    if isinstance(proc, MemoryTiers):  # variables of the projection's synapses
        post = net.projections[proc.projection].post
        in_volts = built.emitted[post].state_units.get("v") == "mV"
        return (built.processes[mon.target],
                *tiers_monitored_variable(proc, mon.variable, in_volts))
    return built.processes[mon.target], mon.variable, ""


def _sample_clock(b2, built: Built, every_steps: int, monitor: str) -> object:
    if every_steps == 1:
        return built.clock
    return b2.Clock(every_steps * built.clock.dt, name=f"{monitor}_clock")


def build_trial(b2, net: Network, seed: int) -> Built:
    built = Built(seed, b2.Network(), clock=b2.Clock(net.dt_ms * b2.ms, name="evospike_clock"))
    for node in [*net.populations.values(), *net.sources.values(), *net.inputs.values()]:
        NODE_BUILDERS.lookup(node)(b2, node, net, built)
    # modulators read populations and sources; metaplasticity reads modulators; plastic
    # synapses read both (each kind's registered ``phase``)
    for proc in sorted(net.processes.values(),
                       key=lambda p: NODE_BUILDERS.extra(p, "phase", DEFAULT_PHASE)):
        build = NODE_BUILDERS.lookup(proc)
        if build is not None:
            build(b2, proc, net, built)
    for proj in net.projections.values():
        NODE_BUILDERS.lookup(proj)(b2, proj, net, built)
    for mon in net.spike_monitors:
        group = built.groups.get(mon.target) or built.sources[mon.target]
        built.spike_monitors[mon.target] = b2.SpikeMonitor(group, name=f"{group.name}_spikes")
    for name, mon in net.state_monitors.items():
        group, variable, unit = _monitored(net, built, mon)
        built.trace_vars[name] = (variable, unit)
        monitor = object_name("trace", net, name)
        built.state_monitors[name] = b2.StateMonitor(
            group, variable, record=mon.neurons.astype(np.int64), name=monitor,
            clock=_sample_clock(b2, built, mon.every_steps, monitor),
            when="end", order=record_order(net))
    for name, mon in net.weight_monitors.items():
        monitor = object_name("weights", net, name)
        built.weight_monitors[name] = b2.StateMonitor(
            built.synapses[mon.projection], "w", record=True, name=monitor,
            clock=_sample_clock(b2, built, mon.every_steps, monitor),
            when="end", order=record_order(net))
    built.network.add(*built.spike_monitors.values(), *built.state_monitors.values(),
                      *built.weight_monitors.values())
    return built
