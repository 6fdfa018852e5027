"""Brian2 form of `Apoptosis` (`evospike.ir.apoptosis`), in runtime mode (cython or numpy).

The population's equations get ``alive_apo`` (1 or 0), the spike counter ``count_apo`` and the
time of the last spike ``last_apo`` (raised and set in the reset), and a frozen copy of each
model state. A dead neuron's threshold is off (``and alive_apo > 0.5``) and a ``run_regularly``
in the thresholds slot, before the threshold (order -1), puts its state back to the frozen copy
after integration and after the step's synaptic events landed: like the torch integrate mask,
it neither integrates nor fires, and its inputs are lost.

The evaluation is Brian2 code (`evaluation_code`): a ``run_regularly`` on the population at
the end of every step, in the IR schedule's order (after the memory tiers), that takes effect
at the steps closing a period. It is written from the IR's equations, not from the array
functions the torch backend calls (`evospike.kernels.apoptosis`), so the comparison with torch
checks that arithmetic independently (`INDEPENDENCE`). The last ``window`` rates are
``window`` variables of the population (``hist0_apo`` the oldest). Right after it, a
``network_operation`` gives a dying neuron's synapses (in and out) weight 0, which is what
removal from the CSR does to a non-plastic projection (a dead neuron never fires and ignores
its inputs). The states live in the population's equations (``survival_apo``, ...); a group of
linked variables shows them under the IR's names (``survival``, ``health``, ``alive``,
``deaths``, ``births``), which the monitors and other processes read.

Refused, by name, before anything runs: neurogenesis (Brian2 cannot add synapses to a running
network), plastic projections into or out of the population (their weights keep moving, so
zeroing them is not removal), and C++ standalone mode (no network_operation there).
"""

from __future__ import annotations

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.apoptosis import Apoptosis

from .names import object_name
from .registry import NODE_BUILDERS
from .schedule import order_of


def refusal(node: Apoptosis, net) -> str | None:
    """Why Brian2 cannot carry ``node`` (None: it can)."""
    if node.neurogenesis:
        return (f"Apoptosis '{node.name}': neurogenesis adds synapses while the network runs, "
                "which Brian2's Synapses cannot do (run it on torch, or set neurogenesis=False)")
    plastic = sorted(r.projection for r in net.plasticity.values()
                     if node.population in (net.projections[r.projection].pre,
                                            net.projections[r.projection].post))
    if plastic:
        return (f"Apoptosis '{node.name}': plastic projections {plastic} touch population "
                f"'{node.population}'; Brian2 cannot remove their synapses during a run "
                "(their weights would keep moving)")
    return None


def _slots(node: Apoptosis) -> list[str]:
    """The population variables holding the last ``window`` rates, oldest first."""
    return [f"hist{k}_apo" for k in range(node.window)]


def apoptosis_edit(em, node: Apoptosis, net) -> None:
    """Variables, threshold and reset of the population's equations."""
    states = net.populations[node.population].model.state_names
    lines = ["alive_apo : 1", "count_apo : 1", "last_apo : second", "filled_apo : 1",
             "low_apo : 1", "health_apo : 1", "survival_apo : 1", "deaths_apo : 1",
             "died_apo : 1", *(f"{slot} : 1" for slot in _slots(node))]
    for state in states:
        unit = "volt" if em.state_units.get(state) == "mV" else "1"
        lines.append(f"{state}_apo_frozen : {unit}")
    em.equations += "\n" + "\n".join(lines)
    em.threshold = f"({em.threshold}) and alive_apo > 0.5"
    em.reset += "\ncount_apo += 1\nlast_apo = t"


def evaluation_code(node: Apoptosis, net) -> str:
    """Brian2 abstract code of one evaluation, run at the end of every step and taking effect
    only at the end of a period (``ev_apo`` = 1), written from the IR's equations
    (`evospike.ir.apoptosis`) rather than from our array functions, so that this backend
    checks them independently. Every update is ``x = ev * new + (1 - ev) * x``, exact for ``ev``
    in {0, 1}."""
    dt_ms, window = net.dt_ms, node.window
    slots = _slots(node)
    period_s = node.every_steps * dt_ms * 1e-3
    lines = [f"ev_apo = int((timestep(t, dt) + 1) % {node.every_steps} == 0)",
             f"rate_apo = count_apo / {period_s!r}"]
    # the newest rate enters the last slot, the others move one slot towards the oldest
    for k, slot in enumerate(slots):
        newer = slots[k + 1] if k + 1 < window else "rate_apo"
        lines.append(f"{slot} = ev_apo * {newer} + (1 - ev_apo) * {slot}")
    lines.append(f"filled_apo = filled_apo + ev_apo * int(filled_apo < {window})")
    # slot k holds one of the filled newest rates where k >= window - filled
    used = [f"int(filled_apo >= {window - k})" for k in range(window)]
    n_used = "clip(filled_apo, 1, inf)"
    lines.append("mean_apo = (" + " + ".join(f"{u} * {s}" for u, s in zip(used, slots,
                                                                            strict=True))
                 + f") / {n_used}")
    lines.append("var_apo = (" + " + ".join(f"((({s}) - mean_apo) * {u})**2"
                                            for u, s in zip(used, slots, strict=True))
                 + f") / {n_used} * int(filled_apo >= 2)")
    lines.append(f"h_apo = 1 / (1 + exp(-(var_apo / {node.variance_scale_hz2!r} - "
                 f"{node.tau!r})))")
    sick = []
    if node.silent_ms is not None:
        # silent steps since the last spike (or since the start, at step -1)
        sick.append(f"int(floor((t - last_apo) / dt + 0.5) * {dt_ms!r} > {node.silent_ms!r})")
    if node.ceiling_hz is not None:
        sick.append(f"int(rate_apo > {node.ceiling_hz!r})")
    if sick:
        lines.append(f"sick_apo = clip({' + '.join(sick)}, 0, 1)")
        lines.append("h_apo = sick_apo + (1 - sick_apo) * h_apo")
    lines += [
        # 1 at H <= tau_a, the exponential above it
        f"a_apo = exp(-{node.lambda_a!r} * clip(h_apo - {node.tau_a!r}, 0, inf))",
        f"low_apo = ev_apo * ((low_apo + 1) * int(a_apo < {node.floor!r})) + "
        "(1 - ev_apo) * low_apo",
        f"died_apo = ev_apo * alive_apo * int(low_apo >= {node.patience})",
        "alive_apo = alive_apo - died_apo",
        "deaths_apo = deaths_apo + died_apo",
        "health_apo = ev_apo * (alive_apo * h_apo + (1 - alive_apo)) + "
        "(1 - ev_apo) * health_apo",
        "survival_apo = ev_apo * alive_apo * a_apo + (1 - ev_apo) * survival_apo",
        "count_apo = (1 - ev_apo) * count_apo",
    ]
    # a neuron that dies keeps the state it had (restored before each threshold from now on)
    lines += [f"{s}_apo_frozen = died_apo * {s} + (1 - died_apo) * {s}_apo_frozen"
              for s in net.populations[node.population].model.state_names]
    return "\n".join(lines)


def apoptosis_objects(b2, group, em, node: Apoptosis, net) -> list:
    group.alive_apo = 1.0
    group.survival_apo = 1.0
    group.last_apo = -net.dt_ms * b2.ms
    states = net.populations[node.population].model.state_names
    code = "\n".join(f"{s} = alive_apo * {s} + (1 - alive_apo) * {s}_apo_frozen"
                     for s in states)
    name = object_name("proc", net, node.name)
    return [group.run_regularly(code, when="thresholds", order=-1, name=f"{name}_freeze"),
            group.run_regularly(evaluation_code(node, net), when="end",
                                order=order_of(net, node.name, 0), name=f"{name}_evaluate")]


@NODE_BUILDERS.register(Apoptosis, population_hook=(apoptosis_edit, apoptosis_objects))
def build_apoptosis(b2, node: Apoptosis, net, built) -> object:
    reason = refusal(node, net)
    if reason is None and b2.get_device().__class__.__name__ != "RuntimeDevice":
        reason = (f"Apoptosis '{node.name}': removing a dead neuron's synapses needs a "
                  "network_operation, which C++ standalone mode does not run (use the cython "
                  "or numpy target)")
    if reason is not None:
        raise UnsupportedError("brian2", [reason])
    n = net.populations[node.population].size
    name = object_name("proc", net, node.name)
    group = built.groups[node.population]
    # the states, under their IR names, for the monitors and for processes reading survival
    record = b2.NeuronGroup(n, "\n".join(f"{v} : 1 (linked)" for v in node.state_names
                                         if v != "births") + "\nbirths : 1",
                            clock=built.clock, name=name)
    for v in ("survival", "health", "alive", "deaths"):
        setattr(record, v, b2.linked_var(group, f"{v}_apo"))

    def remove_synapses() -> None:
        """A dying neuron's synapses (in and out) get weight 0: what leaving the CSR does to a
        non-plastic projection. Connectivity, not the evaluation's arithmetic."""
        dead = np.nonzero(np.asarray(group.variables["died_apo"].get_value()) > 0.5)[0]
        if dead.size == 0:
            return
        for name, proj in net.projections.items():
            mask = np.zeros(proj.n_synapses, bool)
            if proj.pre == node.population:
                mask |= np.isin(proj.pre_indices(), dead)
            if proj.post == node.population:
                mask |= np.isin(proj.indices, dead)
            if mask.any():
                syn = built.synapses[name]
                w = np.asarray(syn.variables["w"].get_value()).copy()
                w[mask] = 0.0
                syn.variables["w"].set_value(w)

    op = b2.NetworkOperation(remove_synapses, clock=built.clock, when="end",
                             order=order_of(net, node.name, 1), name=f"{name}_remove_synapses")
    built.network.add(record, op)
    built.processes[node.name] = record
    return record
