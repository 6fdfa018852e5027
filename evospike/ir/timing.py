"""Timing conventions a network declares (`Network.schedule`): when in a step the events due
in that step act, and what that means for delays, resets and refractoriness.

``"evospike"`` (the default; `evospike.dynamics` and `evospike.ir.schedule`): in step ``n``
the events due in step ``n`` are added, undecayed, to the state that step ``n`` has just
integrated, before its threshold; a spike of step ``n`` with delay ``D >= 1`` is due in step
``n + D``. An event on channel ``v`` reaching a refractory neuron (steps ``n+1 .. n+R-1`` after
a spike in step ``n``, ``R = tau_refrac / dt``) is dropped.

``"brian2"``: Brian2's default schedule (``start, groups, thresholds, synapses, resets, end``)
in these terms. Step ``n``: (1) every population integrates the state left by step ``n - 1``
(a refractory neuron keeps ``v``), (2) thresholds, (3) the events due in step ``n`` are added
to the state, after the threshold (the spikes of step ``n`` itself with delay 0 included: each
Brian2 pathway pushes this step's spikes before it delivers; a ``PoissonInput`` lands here too,
its default slot being ``synapses``), (4) resets. An event thus acts on the state that step
``n + 1`` integrates: it is first seen by the threshold of step ``n + 1``, decayed by one step.
A spike of step ``n`` with Brian2 ``delay = D * dt`` (``D >= 0``) is due in step ``n + D``.
Consequences, all Brian2's:

- an event on ``v`` in the step its target fires is overwritten by a reset to a value
  (``v = v_reset``), and kept by a reset by subtraction;
- a population with a refractory period (``refractory=tau_refrac`` with ``tau_refrac > 0`` for
  any of its neurons) gates its ``v`` events with ``int(not_refractory_post)``: they are
  dropped in the spike's own step and in the ``R - 1`` steps after it, i.e. up to and
  including the step before the one in which the neuron integrates again; events on the
  synaptic currents are never dropped.

The set of values is `SCHEDULES`; `CARRIED_BY` names, per schedule, the engines that run it
(every other engine refuses the network before the run, naming the schedule).
"""

from __future__ import annotations

#: the timing conventions a `Network` may declare
SCHEDULES = ("evospike", "brian2")

#: the shortest delay, in steps, each schedule gives meaning to (Brian2 delivers a delay of 0
#: in the step of the spike, after the threshold; EvoSpike's arrivals precede the threshold)
MIN_DELAY_STEPS = {"evospike": 1, "brian2": 0}

#: per schedule, the engines that carry it (named as in the refusal lines)
CARRIED_BY = {
    "evospike": ("torch eager", "torch native", "torch fixed point", "brian2", "lava"),
    "brian2": ("torch eager", "brian2"),
}

#: the neuron models whose Brian2-schedule delivery is written (eager.deliver_after_threshold
#: and the Brian2 backend); a new model kind is refused under "brian2" until it is added here
BRIAN2_SCHEDULE_MODELS = ("LIF", "AdaptiveLIF", "CubaLIF", "Izhikevich", "AdEx")


def schedule_refusals(network, engine: str) -> list[str]:
    """One line if ``engine`` (a name as in `CARRIED_BY`) does not carry ``network``'s declared
    schedule, naming the engines that do; empty otherwise."""
    schedule = network.schedule
    carried = CARRIED_BY.get(schedule, ())
    if engine in carried:
        return []
    return [f"Network '{network.name}': schedule '{schedule}' is not carried by {engine} "
            f"(carried by: {', '.join(carried)})"]


def brian2_schedule_refusals(network) -> list[str]:
    """The nodes that the engines carrying ``schedule="brian2"`` (torch eager, Brian2) do not
    carry under it, one line each (empty under another schedule, or when it runs).

    Plasticity rules and process nodes are refused: EvoSpike's rules transmit with the weight
    found at arrival and update at the end of the step, Brian2's ``on_pre``/``on_post`` run
    in the ``synapses`` slot after the threshold; that order has not been derived for every
    rule and process, so none is run under a convention it was not written for."""
    if network.schedule != "brian2":
        return []
    head = f"Network '{network.name}': schedule 'brian2'"
    out = []
    for pop in network.populations.values():
        if pop.model.kind not in BRIAN2_SCHEDULE_MODELS:
            out.append(f"{head} does not carry Population '{pop.name}' ({pop.model.kind}): "
                       f"its delivery after the threshold is written for "
                       f"{', '.join(BRIAN2_SCHEDULE_MODELS)}")
        elif getattr(pop.model, "reset", None) == "subtract_after_decay":
            out.append(f"{head} does not carry Population '{pop.name}' with "
                       "reset='subtract_after_decay' (snnTorch's convention; Brian2 resets in "
                       "the spike's own step)")
    for rule in network.plasticity.values():
        out.append(f"{head} does not carry plasticity rule {type(rule).__name__} "
                   f"'{rule.name}' (its order relative to Brian2's synapses slot is not "
                   "defined; use schedule='evospike')")
    for proc in network.processes.values():
        out.append(f"{head} does not carry process {type(proc).__name__} '{proc.name}' "
                   "(written for the 'evospike' step order; use schedule='evospike')")
    return out
