"""Time in a NIR graph and in an EvoSpike network, and the map between them (shared by import
and export, so that a round trip finds the same map).

In NIR's reading (snnTorch, Norse), an edge acts within the step: a layer's spikes of step t
reach the next layer in step t, and only an edge that closes a cycle waits a step. In EvoSpike a
spike reaches its target at the earliest one step later. The import therefore gives each
population a *latency* ``s`` (its step t of the NIR model runs in network step t + s) and each
projection u -> v the delay ``s(v) - s(u) + m``, with ``m`` the NIR ``Delay`` nodes on the path
(plus ``recurrent_delay_steps`` on an edge that closes a cycle). Inputs and the constant-drive
clock have latency 0; a population's latency is the smallest that keeps every forward delay at
least one step: ``s(v) = max(1, max over forward edges u -> v of s(u) + 1 - m)``. Because every
constant drive (biases, leak) reaches a population through a projection with this delay, a
population rests at its initial state until step s: its output at network step t + s equals the
NIR model's at step t, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

#: an edge of the endpoint graph: (pre, post, m) with m the NIR delay steps on it
Edge = tuple[str, str, int]


def back_edges(nodes: Iterable[str], edges: Iterable[Edge]) -> set[tuple[str, str, int]]:
    """The edges that close a cycle, found by depth-first search from each node in sorted order
    (sorted so that an exported and re-imported graph, whose node order a file need not keep,
    finds the same ones)."""
    succ: dict[str, list[Edge]] = {n: [] for n in nodes}
    for e in sorted(edges):
        succ.setdefault(e[0], []).append(e)
        succ.setdefault(e[1], [])
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    back: set[Edge] = set()
    for root in sorted(succ):
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            edge = next(it, None)
            if edge is None:
                state[node] = 2
                stack.pop()
                continue
            target = edge[1]
            if state.get(target) == 1:
                back.add(edge)
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(succ[target])))
    return back


def latencies(sources: Iterable[str], populations: Iterable[str], edges: Iterable[Edge],
              back: set[Edge]) -> dict[str, int]:
    """``s`` of every node (see the module docstring): 0 for ``sources``, the longest path
    with edge weights ``1 - m`` over the forward edges for ``populations``."""
    s = {name: 0 for name in sources}
    pops = list(populations)
    forward = [e for e in edges if e not in back]
    preds: dict[str, list[Edge]] = {p: [] for p in pops}
    indegree = {p: 0 for p in pops}
    for e in forward:
        if e[1] in preds:
            preds[e[1]].append(e)
            if e[0] in indegree:  # a source's latency is known already
                indegree[e[1]] += 1
    ready = sorted(p for p in pops if indegree[p] == 0)
    while ready:
        node = ready.pop(0)
        s[node] = max([1] + [s[u] + 1 - m for u, _, m in preds[node]])
        for e in forward:
            if e[0] == node and e[1] in indegree:
                indegree[e[1]] -= 1
                if indegree[e[1]] == 0:
                    ready.append(e[1])
        ready.sort()
    return s


def network_delay(edge: Edge, s: dict[str, int], back: set[Edge],
                  recurrent_delay_steps: int) -> int:
    """The EvoSpike delay (steps) of ``edge``: ``s(v) - s(u) + m``, plus the recurrent delay on
    an edge that closes a cycle."""
    pre, post, m = edge
    return s[post] - s[pre] + m + (recurrent_delay_steps if edge in back else 0)
