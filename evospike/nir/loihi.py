"""An imported NIR network in the form Loihi 2 (the Lava backend) carries: `for_loihi`.

The import gives every NIR neuron node EvoSpike's discrete `CubaLIF`. A node without a
synaptic current (``LIF``, ``IF``, ``LI``, ``I``, ``Threshold``) becomes one with ``du = 1``
whose inputs (and the clock's bias and leak) arrive on channel ``v``; Loihi's LIF takes
synaptic input only into its current ``u``. With ``du = 1`` the current holds exactly this
step's input (``u[t] = 0 * u[t-1] + in``), so ``v[t] = (1 - dv) v[t-1] + u[t]`` gains the same
amount in the same step: moving those projections from ``v`` to ``exc`` changes no float of
the run. On Loihi the move is exact too (its ``du`` of 4095 plus the hardware's offset of 1
clears ``u`` every step). What stays on ``v`` after that (the leak towards a nonzero ``v_leak``
of a ``CubaLIF`` node, or the ``v`` part of an input read with ``discretisation="exact"``) has
no Loihi counterpart and is refused by name.

Quantisation (12-bit decays, 8-bit weight mantissas with a per-projection exponent, 24-bit
states, the threshold and bias in Loihi's units) is `evospike.fixed_point.quantize`'s, the
same for the Lava backend and torch's ``precision="fixed"``; docs/NIR.md says how far its
spikes are from the float reading.
"""

from __future__ import annotations

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.network import Network
from evospike.ir.neurons import CubaLIF
from evospike.ir.nodes import Projection


def for_loihi(net: Network) -> Network:
    """Move the inputs of ``net``'s ``du = 1`` CubaLIF populations from channel ``v`` to
    ``exc`` (the same run, see the module docstring), in place, and return ``net``. Refuses
    (`UnsupportedError`, every case at once) a projection onto ``v`` of a population whose
    ``du`` is not 1. ``metadata["nir"]["loihi"]`` lists the projections moved."""
    moved: list[list[str]] = []
    problems: list[str] = []
    names = set(net.projections)
    kept: dict[str, Projection] = {}  # rebuilt in the same order
    for name, proj in net.projections.items():
        if proj.target != "v" or not proj.n_synapses:
            kept[name] = proj
            continue
        model = net.populations[proj.post].model
        du = np.atleast_1d(np.asarray(getattr(model, "du", np.nan), dtype=np.float64))
        if not isinstance(model, CubaLIF) or not np.all(du == 1.0):
            node = net.metadata.get("nir", {}).get("nodes", {}).get(proj.post, {}).get("type")
            problems.append(
                f"Projection '{name}': drives v of population '{proj.post}'"
                + (f" (NIR {node})" if node else "")
                + f" whose du is {du[0]:g}, not 1: Loihi's LIF takes input only into its "
                "current u, and only a population without a synaptic current (du = 1) "
                "passes it on unchanged (a CubaLIF node's leak towards a nonzero v_leak, or "
                "an input read with discretisation='exact', has no Loihi counterpart)")
            kept[name] = proj
            continue
        # the name the import gives a projection onto exc, where it is free
        new_name = name.replace(":v", "", 1) if ":v" in name else name
        if new_name != name and new_name in names:
            new_name = name
        names.discard(name)
        kept[new_name] = Projection(
            new_name, proj.pre, proj.post, proj.n_pre, proj.n_post, proj.indptr, proj.indices,
            proj.weights, proj.delays, "exc")
        names.add(new_name)
        moved.append([name, new_name])
    if problems:
        raise UnsupportedError("lava", problems)
    net.projections = kept
    net.metadata.setdefault("nir", {})["loihi"] = {
        "moved_to_exc": moved,
        "note": "inputs of du = 1 populations moved from channel v to exc (the same run)"}
    return net
