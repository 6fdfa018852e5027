"""Brian2 objects for the participation processes (`evospike.ir.gating`) and the masks they
share with the energy budgets (`backends/brian2/energy_budget.py`).

The masks live in the target population's own equations (a registered ``population_hook``),
as variables (1.0: allowed, 0.0: not) written at the end of step n and read in step n + 1:

- an *integrate mask* ``M`` freezes a masked neuron: every state is saved before the state
  update (``before_groups``) and put back after it (``after_groups``) as
  ``x = M * x + (1 - M) * x_saved`` (exact for M in {0, 1}); every incoming synaptic event is
  multiplied by ``M_post`` in ``on_pre`` (a masked neuron's inputs are dropped); the threshold
  requires ``M > 0.5``;
- a *fire mask* only joins the threshold.

This is the torch backend's ``torch.where(active, new, old)`` step for step; multiplying each
ODE's right-hand side by the mask would not be, because Brian2's exact integrator solves the
system symbolically once, with the mask inside its exponentials.

The end-of-step dynamics (context rates, gate relaxation, pattern recall, the keyed participation
draws) involve matrix products and reductions (the context drive ``W_c c``, the argmax over the
memory keys, the activation ratio) and our own keyed random stream, which Brian2's per-neuron
code cannot express. They run as a `network_operation` at the end of the step that calls the
same array functions as the torch backend (`evospike.kernels.gating`), on NumPy arrays: for
these two processes the Brian2 comparison checks the masks, the schedule and the neuron
dynamics around them, not an independent rewrite of their math (`INDEPENDENCE`). The
operation runs in the IR schedule's order (`evospike.ir.schedule`: after the modulators and
metaplasticity, the gate after an apoptosis evaluation whose survival factor it reads, before
the monitors), in NumPy on the Brian2 variables. The spikes of a step reach it through a
counting group (``cnt += 1`` in ``on_pre``, like the modulators' spike counts). Network
operations run in Brian2's runtime mode (numpy, cython); C++ standalone is refused by name
before the run.
"""

from __future__ import annotations

import re

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.gating import (
    PARTICIPATION_BLOCK_STEPS,
    EpigeneticGate,
    NeuromodulatedParticipation,
    participation_uniforms,
)
from evospike.kernels import gating as kernels

from .names import object_name
from .registry import NODE_BUILDERS
from .schedule import order_of


def _unit(em, state: str) -> str:
    return "volt" if em.state_units.get(state) == "mV" else "1"


def add_integrate_mask(em, mask: str, tag: str, states: tuple[str, ...]) -> None:
    """Declare integrate mask ``mask`` (and the saved copies of ``states``) in the emitted
    model, gate the threshold and every channel's ``on_pre`` by it."""
    em.equations += f"\n{mask} : 1"
    for s in states:
        em.equations += f"\n{s}_held_{tag} : {_unit(em, s)}"
    add_fire_mask(em, mask)
    em.channel_code = {ch: re.sub(r"\+= w\b", f"+= w * {mask}_post", code)
                       for ch, code in em.channel_code.items()}


def integrate_mask_objects(group, mask: str, tag: str, states: tuple[str, ...],
                           name: str) -> list:
    """Save the states before the state update and restore the masked ones after it
    (objects ``<name>_save`` and ``<name>_restore``)."""
    save = "\n".join(f"{s}_held_{tag} = {s}" for s in states)
    restore = "\n".join(f"{s} = {mask} * {s} + (1 - {mask}) * {s}_held_{tag}" for s in states)
    return [group.run_regularly(save, when="before_groups", name=f"{name}_save"),
            group.run_regularly(restore, when="after_groups", name=f"{name}_restore")]


def add_fire_mask(em, mask: str) -> None:
    em.threshold = f"({em.threshold}) and ({mask} > 0.5)"


def require_runtime(b2, node) -> None:
    from brian2.devices.device import RuntimeDevice

    if not isinstance(b2.get_device(), RuntimeDevice):
        raise UnsupportedError("brian2", [
            f"{node.kind} '{node.name}': its end-of-step update is a network_operation, which "
            "C++ standalone cannot run (use the cython or numpy target)"])


def spike_counter(b2, net, built, node_name: str, name: str):
    """A group of one counter per neuron of ``node_name`` (population or source), raised by
    its spikes during the step; the caller reads and clears it at the end of the step. The
    group is named ``name``, its synapses ``<name>_in``."""
    source = built.groups.get(node_name) or built.sources[node_name]
    n = net.size_of(node_name)
    counter = b2.NeuronGroup(n, "cnt : 1", clock=built.clock, name=name)
    syn = b2.Synapses(source, counter, on_pre="cnt_post += 1", clock=built.clock,
                      name=f"{name}_in")
    syn.connect(j="i")
    built.network.add(counter, syn)
    return counter


def take_counts(counter) -> np.ndarray:
    counts = np.array(counter.cnt[:], dtype=np.float64)
    counter.cnt[:] = 0
    return counts


def step_of(t, dt_ms: float, b2) -> int:
    return int(round(float(t / b2.ms) / dt_ms))


def _states(net, population: str) -> tuple[str, ...]:
    return tuple(net.populations[population].model.state_names)


# ------------------------------------------------------------------ epigenetic gate
def gate_edit(em, node: EpigeneticGate, net) -> None:
    em.equations += "\ngate : 1\nactivation_ratio : 1"
    add_integrate_mask(em, "open", "gate", _states(net, node.population))


def gate_objects(b2, group, em, node: EpigeneticGate, net) -> list:
    return integrate_mask_objects(group, "open", "gate", _states(net, node.population),
                                  object_name("proc", net, node.name, "mask"))


@NODE_BUILDERS.register(EpigeneticGate, phase=30, population_hook=(gate_edit, gate_objects))
def build_gate(b2, node: EpigeneticGate, net, built) -> object:
    require_runtime(b2, node)
    group = built.groups[node.population]
    p = node.resolved(net)
    group.gate = p["initial_gate"]
    group.open = 1.0
    group.activation_ratio = 1.0
    name = object_name("proc", net, node.name)
    counter = spike_counter(b2, net, built, node.source, f"{name}_counter")
    w_t = p["w_context"].T.copy()
    a = float(np.exp(-net.dt_ms / node.tau_context_ms))
    d = float(np.exp(-net.dt_ms / node.tau_ms))
    d_recall = float(np.exp(-net.dt_ms / node.tau_recall_ms))
    keys = None
    if node.memory_keys is not None:
        keys = node.memory_keys / np.linalg.norm(node.memory_keys, axis=1, keepdims=True)
    modulator = built.processes[node.modulator] if node.modulator is not None else None
    # an apoptosis process on the same population: its survival factor A (its group is built
    # later, so it is looked up when the step runs)
    apoptosis = [name for name, other in net.processes.items() if name != node.name and
                 getattr(other, "population", None) == node.population and
                 "survival" in getattr(other, "state_names", ())]
    state = {"context": np.zeros(net.size_of(node.source))}

    def update():
        history = None if modulator is None else np.asarray(float(modulator.level[0]))
        gate, state["context"] = kernels.update_gate(
            np.array(group.gate[:]), state["context"], take_counts(counter), w_context_t=w_t,
            bias=p["bias"], context_decay=a, gate_decay=d, rate_scale=1000.0 / net.dt_ms,
            history=history, w_history=p["w_history"], keys=keys,
            patterns=node.memory_patterns, recall_similarity=node.recall_similarity,
            recall_decay=d_recall)
        survival = None
        if apoptosis:
            survival = np.array(built.processes[apoptosis[0]].survival[:])
        is_open = kernels.open_mask(gate, node.theta_act, survival)
        group.gate[:] = gate
        group.open[:] = is_open.astype(np.float64)
        group.activation_ratio[:] = kernels.activation_ratio(is_open, gate)

    op = b2.NetworkOperation(update, clock=built.clock, when="end",
                             order=order_of(net, node.name), name=f"{name}_update")
    built.network.add(op)
    built.processes[node.name] = group
    return group


# ------------------------------------------------------------------ participation
def participation_edit(em, node: NeuromodulatedParticipation, net) -> None:
    em.equations += "\nfraction : 1"
    add_integrate_mask(em, "participating", "part", _states(net, node.population))


def participation_objects(b2, group, em, node: NeuromodulatedParticipation, net) -> list:
    return integrate_mask_objects(group, "participating", "part",
                                  _states(net, node.population),
                                  object_name("proc", net, node.name, "mask"))


@NODE_BUILDERS.register(NeuromodulatedParticipation, phase=30,
                        population_hook=(participation_edit, participation_objects))
def build_participation(b2, node: NeuromodulatedParticipation, net, built) -> object:
    require_runtime(b2, node)
    group = built.groups[node.population]
    group.participating = 1.0
    group.fraction = 1.0
    modulator = built.processes[node.modulator]
    size = net.populations[node.population].size
    cache: dict[int, np.ndarray] = {}

    def update(t):
        upcoming = step_of(t, net.dt_ms, b2) + 1
        block = upcoming // PARTICIPATION_BLOCK_STEPS
        if block not in cache:
            cache.clear()
            cache[block] = participation_uniforms(node, built.seed, size, block)
        fraction = kernels.participation_fraction(
            np.asarray(float(modulator.level[0])), node.base_fraction, node.gain,
            node.min_fraction, node.max_fraction)
        u = cache[block][upcoming % PARTICIPATION_BLOCK_STEPS]
        group.participating[:] = kernels.participating(u, fraction).astype(np.float64)
        group.fraction[:] = fraction

    op = b2.NetworkOperation(update, clock=built.clock, when="end",
                             order=order_of(net, node.name),
                             name=object_name("proc", net, node.name, "update"))
    built.network.add(op)
    built.processes[node.name] = group
    return group
