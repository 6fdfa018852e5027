"""The fixed_pt description of a network: Lava's integer parameters, from the quantizer.

`evospike.fixed_point.quantize` (profile "loihi2") maps a network of `CubaLIF` populations onto
the integers Lava's bit-accurate LIF, Sparse and DelaySparse models compute with (its
docstring has the equations, the units and the scale of each population). The torch backend's
``precision="fixed"`` takes the same integers from the same function, so the two run the same
numbers; this module only lays them out as the worker's job (`Plan`).
"""

from __future__ import annotations

import numpy as np

from evospike.fixed_point import FixedPointNetwork
from evospike.hardware.loihi import learning
from evospike.ir.network import Network

from .compiler import LavaPopulation, Plan, _plan_common


def plan_fixed(network: Network, notes: list[str], weight_range: str = "w_max") -> Plan:
    """The fixed_pt plan of a network of CubaLIF populations and LIF populations that reduce
    to them exactly (the quantizer does that; LIF with two synaptic time constants has been
    merged by `convert` before)."""
    # STDP (evospike.hardware.loihi.learning): the quantizer runs fixed weights, the rule
    # is planned afterwards
    fp: FixedPointNetwork = learning.quantize_for_learning(network, "loihi2", weight_range)
    plan = Plan(network, "fixed_pt", notes=list(notes) + list(fp.notes))
    for name, p in fp.populations.items():
        plan.populations[name] = LavaPopulation(
            name, p.size, "LIFRefractory" if p.refractory_steps >= 1 else "LIF",
            max(p.refractory_steps, 1), p.du, p.dv, p.vth,
            np.asarray(p.bias_mant, dtype=np.int64), np.asarray(p.bias_exp, dtype=np.int64),
            lambda seed, p=p: p.initial_state(seed, fp.profile),
            np.broadcast_to(np.asarray(p.v_offset, dtype=np.float64), (p.size,)).copy())
        plan.scales[name] = float(p.scale)
    # delays from the quantizer: one step longer onto a reduced LIF (see its docstring)
    weights = {name: (proj.weights, proj.weight_exp, proj.num_weight_bits, proj.delays)
               for name, proj in fp.projections.items()}
    _plan_common(plan, network, weights)
    plans = learning.plan_learning(network, fp, plan.notes)  # STDP
    for conn in plan.connections:
        conn.learning = plans.get(conn.projection)
    return plan
