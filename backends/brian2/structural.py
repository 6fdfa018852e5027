"""Structural plasticity on Brian2: changes between run segments.

The runner splits every run at the structural update steps (`run_segmented`): it runs up to the
end of step n with ``(n + 1) % every_steps == 0``, then edits the Synapses of each
`StructuralPlasticity` node with the decisions of `plan_update` (the NumPy core the torch
backend uses too, so both take the same decisions from the same spikes and weights):

- a pruned synapse cannot be deleted from a Brian2 Synapses object; it stays, *absent*, with
  weight 0 (its ``w`` is constant during a run on a projection without a plasticity rule, so it
  stays 0);
- a grown synapse onto a pair that is absent revives it (weight ``grow_weight``); a new pair is
  added with ``Synapses.connect`` (Brian2 accepts new synapses between runs in runtime mode).

Spike counts over the interval come from a `SpikeMonitor(record=False)` on each side; the
node's ``n_synapses`` lives in a one-neuron group (so a StateMonitor records it as on torch:
the number present during the step), set after each update.

What Brian2 refuses here, by name, before it runs: structural plasticity on a projection with a
plasticity rule (an absent synapse would keep learning: its weight is not constant), on a
projection with delays longer than one step (Brian2 delivers a spike in flight with the weight
at its arrival, torch with the weight at its emission: they would differ across an update), and
in C++ standalone mode (one program runs the whole simulation, nothing runs between segments).
Terminal-attractor pruning has no Brian2 builder and is refused by name.
"""

from __future__ import annotations

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.structural import StructuralPlasticity, plan_update

from .names import object_name
from .registry import NODE_BUILDERS


@NODE_BUILDERS.register(StructuralPlasticity)
def build_structural(b2, node: StructuralPlasticity, net, built) -> object:
    """The group holding ``n_synapses`` and the spike counters; the Synapses themselves are
    edited by `run_segmented`."""
    proj = net.projections[node.projection]
    reasons = []
    if any(r.projection == node.projection for r in net.plasticity.values()):
        reasons.append("its projection has a plasticity rule; Brian2 cannot delete a synapse, "
                       "and an absent one would keep learning (use the torch backend)")
    if proj.n_synapses and int(proj.delays.max()) > 1 or (node.grow_delay_steps or 1) > 1:
        reasons.append("delays longer than one step: a spike in flight across an update would "
                       "carry a different weight than on torch")
    from brian2.devices.device import RuntimeDevice, get_device

    if not isinstance(get_device(), RuntimeDevice):
        reasons.append("C++ standalone runs the whole simulation as one program; structural "
                       "changes happen between run segments (use the cython or numpy target)")
    for mon in net.weight_monitors.values():
        if mon.projection == node.projection:
            reasons.append(f"WeightMonitor '{mon.name}' needs a fixed synapse layout")
    if reasons:
        raise UnsupportedError("brian2", [f"StructuralPlasticity '{node.name}': {r}"
                                          for r in reasons])
    name = object_name("proc", net, node.name)
    group = b2.NeuronGroup(1, "n_synapses : 1", clock=built.clock, name=name)
    group.n_synapses = proj.n_synapses
    pre = built.groups.get(proj.pre) or built.sources[proj.pre]
    post = built.groups[proj.post]
    counters = (b2.SpikeMonitor(pre, record=False, name=f"{name}_pre_counts"),
                b2.SpikeMonitor(post, record=False, name=f"{name}_post_counts"))
    built.network.add(group, *counters)
    built.processes[node.name] = group
    # the Python side of the node (absent mask, counts at the last update, update index) lives
    # on the group's Brian2 name in this trial's registry
    _registry(built)[node.name] = {"counters": counters, "last_pre": np.zeros(proj.n_pre, int),
                                   "last_post": np.zeros(proj.n_post, int),
                                   "present": np.ones(proj.n_synapses, bool), "index": 0}
    return group


def keep_last_spikes(b2, built) -> None:
    """Brian2 clears every group's spike space at the end of a run (the threshold's
    ``after_code``), so the spikes of a segment's last step would never reach synapses whose
    pathway runs before the thresholds of the next step (all of EvoSpike's do). A network
    operation notes how many neurons of each group fired in the step; `run_segmented` puts the
    count back before the next segment starts, and the spikes go out as in one long run."""
    built.last_spike_counts = {}
    groups = {**built.groups, **built.sources}

    def note() -> None:
        for name, group in groups.items():
            built.last_spike_counts[name] = int(group.variables["_spikespace"].get_value()[-1])

    # named, like every object here: an automatic name grows with each trial built
    built.network.add(b2.NetworkOperation(note, when="end", clock=built.clock,
                                          name="evospike_last_spikes"))


def _restore_last_spikes(built) -> None:
    groups = {**built.groups, **built.sources}
    for name, count in getattr(built, "last_spike_counts", {}).items():
        groups[name].variables["_spikespace"].get_value()[-1] = count


def _registry(built) -> dict:
    if not hasattr(built, "structural"):
        built.structural = {}
    return built.structural


def update_steps(net, start: int, end: int) -> list[int]:
    """The steps in (start, end) after which a structural update happens: run boundaries."""
    cuts = set()
    for node in net.processes.values():
        if isinstance(node, StructuralPlasticity):
            e = node.every_steps
            first = (start // e + 1) * e
            cuts.update(range(first, end + 1, e))
    return sorted(cuts)


def run_segmented(b2, net, built, start: int, n_steps: int, run) -> None:
    """Run steps [start, start + n_steps) of one trial, calling ``run(k)`` for each segment of
    k steps, with the structural updates between them.

    An update decided at the end of step n (its spike counts and weights) is applied to the
    Synapses after step n + 1: Brian2 sends the spikes of step n in step n + 1, and on torch
    those spikes went out with the synapses of step n. The count ``n_synapses`` changes at once
    (it is recorded from step n + 1 on, as on torch)."""
    registry = _registry(built)
    cuts = set(update_steps(net, start, end := start + n_steps))
    applies = {c + 1 for c in cuts if c + 1 <= end}
    if any(state.get("pending") is not None for state in registry.values()):
        applies.add(start + 1)
    cursor = start
    for boundary in sorted(cuts | applies | {end}):
        if boundary > cursor:
            _restore_last_spikes(built)
            run(boundary - cursor)
            cursor = boundary
        if boundary in applies:
            for name, state in registry.items():
                if state.get("pending") is not None:
                    _apply(b2, net, built, net.processes[name], state.pop("pending"))
        if boundary in cuts:
            for node in net.processes.values():
                if isinstance(node, StructuralPlasticity) and node.is_update_step(boundary - 1):
                    registry[node.name]["pending"] = _plan(net, built, node)


def _plan(net, built, node: StructuralPlasticity) -> dict:
    state = _registry(built)[node.name]
    proj = net.projections[node.projection]
    syn = built.synapses[node.projection]
    in_volts = built.emitted[proj.post].state_units.get("v") == "mV"
    scale = 1e3 if in_volts else 1.0  # volt -> mV
    pre_mon, post_mon = state["counters"]
    count_pre = np.asarray(pre_mon.count[:], int)
    count_post = np.asarray(post_mon.count[:], int)
    cp, state["last_pre"] = count_pre - state["last_pre"], count_pre
    cq, state["last_post"] = count_post - state["last_post"], count_post
    i = np.asarray(syn.i[:], np.int64)
    j = np.asarray(syn.j[:], np.int64)
    w = np.asarray(syn.w_[:], float) * scale
    present = state["present"]
    idx = np.flatnonzero(present)
    plan = plan_update(node, proj.n_pre, proj.n_post, proj.pre == proj.post, i[idx], j[idx],
                       w[idx], cp, cq, state["index"], built.seed)
    state["index"] += 1
    n_after = int(present.sum()) - int(plan.remove.sum()) + plan.grow_pre.size
    built.processes[node.name].n_synapses = n_after
    return {"remove": idx[plan.remove], "grow_pre": plan.grow_pre, "grow_post": plan.grow_post}


def _apply(b2, net, built, node: StructuralPlasticity, plan: dict) -> None:
    state = _registry(built)[node.name]
    proj = net.projections[node.projection]
    syn = built.synapses[node.projection]
    in_volts = built.emitted[proj.post].state_units.get("v") == "mV"
    scale = 1e3 if in_volts else 1.0
    i = np.asarray(syn.i[:], np.int64)
    j = np.asarray(syn.j[:], np.int64)
    w = np.asarray(syn.w_[:], float) * scale
    present = state["present"]
    present[plan["remove"]] = False
    w[plan["remove"]] = 0.0
    slot = {}
    for s in np.flatnonzero(~present).tolist():
        slot.setdefault(int(i[s] * proj.n_post + j[s]), s)
    new_pre, new_post = [], []
    for a, b in zip(plan["grow_pre"].tolist(), plan["grow_post"].tolist(), strict=True):
        s = slot.pop(a * proj.n_post + b, None)
        if s is not None:
            present[s] = True
            w[s] = node.grow_weight
        else:
            new_pre.append(a)
            new_post.append(b)
    syn.w_[:] = w / scale
    if new_pre:
        n_old = len(syn)
        syn.connect(i=np.asarray(new_pre, np.int64), j=np.asarray(new_post, np.int64))
        weights = np.asarray(syn.w_[:], float)
        weights[n_old:] = node.grow_weight / scale
        syn.w_[:] = weights
        delays = np.asarray(syn.delay_[:], float)
        delays[n_old:] = 0.0  # one-step delays: Brian2 spends the step before the threshold
        syn.delay_[:] = delays
        present = np.concatenate([present, np.ones(len(new_pre), bool)])
    state["present"] = present
