"""Brian2's ``order`` numbers from the IR's schedule (`evospike.ir.schedule`).

Every end-of-step object a node builds runs at ``when="end"`` with the order
``(rank + 1) * PHASE_STRIDE + sub_step``, ``rank`` being the node's place in the IR's schedule
(orders below ``PHASE_STRIDE`` stay free for Brian2's own objects): Brian2 then runs the nodes in
the schedule's order (ties would otherwise fall to object names), and a node's sub-steps stay
together. The monitors come after every node."""

from __future__ import annotations

from evospike.ir.schedule import PHASE_STRIDE, ranks, record_rank


def order_of(net, node_name: str, sub_step: int = 0) -> int:
    """The Brian2 ``order`` of sub-step ``sub_step`` of node ``node_name`` of IR network ``net``."""
    if not 0 <= sub_step < PHASE_STRIDE:
        raise ValueError(f"sub_step {sub_step} of '{node_name}' outside [0, {PHASE_STRIDE})")
    return (ranks(net)[node_name] + 1) * PHASE_STRIDE + sub_step


def record_order(net) -> int:
    """The Brian2 ``order`` of the monitors: after every scheduled node."""
    return (record_rank(net) + 1) * PHASE_STRIDE
