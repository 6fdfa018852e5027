"""The order of operations within one simulation step, declared once for every engine.

Step ``n`` of every backend (torch eager, the native C kernel, torch fixed point, Brian2, Lava)
runs these stages in this order:

1. **deliver**: spikes due in step ``n`` reach their targets; a plastic synapse transmits with
   the weight it has when the spike arrives, before that arrival's own update;
2. **integrate**: every population advances one step (its arrivals, its injected current, the
   integrate/fire masks the processes set at the end of step ``n - 1``) and fires;
3. **propagate**: this step's spikes enter the delay buffers; the plasticity rules update (STDP,
   modulated and three-factor STDP read the modulator levels of step ``n - 1``);
4. **processes**: every process node updates, in ascending `Phase` (below);
5. **record**: the monitors sample the state as it is at the end of step ``n``.

Each process node kind declares its ``phase`` (a class attribute of its IR dataclass); so does a
plasticity rule with end-of-step work of its own. `schedule` puts a network's nodes in the one
order every backend follows: ascending phase, nodes of the same phase in the order they were
added. A backend that orders objects by number (Brian2's ``order``) numbers them by their rank
in that list, ``rank * PHASE_STRIDE + k``, where ``0 <= k < PHASE_STRIDE`` numbers a node's
sub-steps (Brian2: a synaptic-scaling operation and a rate update): a node's sub-steps never
interleave with another node's.
"""

from __future__ import annotations

from enum import IntEnum

#: the room each phase leaves a backend for a node's sub-steps
PHASE_STRIDE = 10


class Phase(IntEnum):
    """When in step ``n`` (stage 3 and after, see the module docstring) a node updates."""

    #: plasticity rules' end-of-step work (three-factor weight update), after the pair terms
    PLASTICITY = 10
    #: homeostasis: rate estimate, adaptive threshold or synaptic scaling
    HOMEOSTASIS = 20
    #: modulator levels (rewards, spike counts, novelty) of step ``n``
    MODULATOR = 30
    #: metaplasticity: reads this step's modulator level, sets its rule's parameter
    METAPLASTICITY = 40
    #: memory tiers (decay, consolidation, capacity)
    MEMORY_TIERS = 50
    #: structural plasticity (synapse creation and removal plans)
    STRUCTURAL = 60
    #: apoptosis: health, survival factor, deaths and births
    APOPTOSIS = 70
    #: epigenetic gate: reads this step's survival factor
    GATE = 80
    #: neuromodulated participation: draws the coming step's participating subset
    PARTICIPATION = 90
    #: per-population energy budgets: spend, recharge, block
    ENERGY = 100
    #: the network-wide energy budget, after the per-population ones
    GLOBAL_ENERGY = 110
    #: terminal-attractor pruning in simulation
    PRUNING = 120
    #: connectivity bookkeeping after every change to the synapses (absent-synapse guard)
    CONNECTIVITY = 130
    #: the monitors (stage 5)
    RECORD = 140


def phase_of(node: object) -> Phase:
    """The phase ``node`` declares; a process node without one is an error of its definition."""
    phase = getattr(type(node), "phase", None)
    if not isinstance(phase, Phase):
        raise TypeError(f"{type(node).__name__} declares no Phase (class attribute 'phase'): "
                        "every process node kind says when in a step it updates "
                        "(evospike.ir.schedule)")
    return phase


def schedule(network) -> list:
    """The scheduled nodes of ``network`` (an `evospike.ir.network.Network`) in the order they
    update at the end of a step: its plasticity rules that declare a phase, then its
    processes, sorted by phase; ties keep the order in which they were added."""
    rules = [rule for rule in network.plasticity.values()
             if isinstance(getattr(type(rule), "phase", None), Phase)]
    nodes = rules + list(network.processes.values())
    return sorted(nodes, key=phase_of)  # sorted() is stable


def ranks(network) -> dict[str, int]:
    """Node name -> its position in `schedule` (0 first)."""
    return {node.name: rank for rank, node in enumerate(schedule(network))}


def record_rank(network) -> int:
    """The rank of the monitors: after every scheduled node."""
    return len(schedule(network))
