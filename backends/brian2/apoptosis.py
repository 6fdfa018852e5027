"""Brian2 form of `Apoptosis` (`evospike.ir.apoptosis`), in runtime mode (cython or numpy).

The population's equations get ``alive_apo`` (1 or 0), the spike counter ``count_apo`` and the
time of the last spike ``last_apo`` (raised and set in the reset), and a frozen copy of each
model state. A dead neuron's threshold is off (``and alive_apo > 0.5``) and a ``run_regularly``
in the thresholds slot, before the threshold (order -1), puts its state back to the frozen copy
after integration and after the step's synaptic events landed: like the torch integrate mask,
it neither integrates nor fires, and its inputs are lost.

The evaluation is NumPy code in a ``network_operation`` at the end of every step (slot end,
order 9, after the memory tiers; it acts on the steps that close a period), the same arithmetic
as the torch process. A dying neuron's synapses (in and out) get weight 0, which is what removal
from the CSR does to a non-plastic projection (a dead neuron never fires and ignores its
inputs). The state (``survival``, ``health``, ``alive``, ``deaths``, ``births``) lives in a
group of its own, which the monitors read.

Refused, by name, before anything runs: neurogenesis (Brian2 cannot add synapses to a running
network), plastic projections into or out of the population (their weights keep moving, so
zeroing them is not removal), and C++ standalone mode (no network_operation there).
"""

from __future__ import annotations

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.apoptosis import Apoptosis

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


def apoptosis_edit(em, node: Apoptosis, net) -> None:
    """Variables, threshold and reset of the population's equations."""
    states = net.populations[node.population].model.state_names
    lines = ["alive_apo : 1", "count_apo : 1", "last_apo : second"]
    for state in states:
        unit = "volt" if em.state_units.get(state) == "mV" else "1"
        lines.append(f"{state}_apo_frozen : {unit}")
    em.equations += "\n" + "\n".join(lines)
    em.threshold = f"({em.threshold}) and alive_apo > 0.5"
    em.reset += "\ncount_apo += 1\nlast_apo = t"


def apoptosis_objects(b2, group, em, node: Apoptosis, net) -> list:
    group.alive_apo = 1.0
    group.last_apo = -net.dt_ms * b2.ms
    states = net.populations[node.population].model.state_names
    code = "\n".join(f"{s} = alive_apo * {s} + (1 - alive_apo) * {s}_apo_frozen"
                     for s in states)
    return [group.run_regularly(code, when="thresholds", order=-1)]


def build_apoptosis(b2, node: Apoptosis, net, built) -> object:
    reason = refusal(node, net)
    if reason is None and b2.get_device().__class__.__name__ != "RuntimeDevice":
        reason = (f"Apoptosis '{node.name}': needs a network_operation, which C++ standalone "
                  "mode does not run (use the cython or numpy target)")
    if reason is not None:
        raise UnsupportedError("brian2", [reason])
    n = net.populations[node.population].size
    dt_ms = net.dt_ms
    k = len(built.processes)
    record = b2.NeuronGroup(n, "\n".join(f"{v} : 1" for v in node.state_names),
                            dt=dt_ms * b2.ms, name=f"apoptosis_{k}")
    record.survival = 1.0
    record.alive = 1.0
    group = built.groups[node.population]
    states = net.populations[node.population].model.state_names
    st = {"history": np.zeros((n, node.window)), "filled": np.zeros(n, np.int64),
          "low": np.zeros(n, np.int64)}

    def evaluate(t) -> None:
        step = int(round(float(t / b2.ms) / dt_ms))
        if (step + 1) % node.every_steps:
            return
        counts = np.asarray(group.variables["count_apo"].get_value(), dtype=np.float64).copy()
        group.variables["count_apo"].set_value(np.zeros(n))
        last = np.round(np.asarray(group.variables["last_apo"].get_value()) * 1e3 / dt_ms)
        rate = counts / (node.every_steps * dt_ms * 1e-3)
        st["history"] = np.concatenate([st["history"][:, 1:], rate[:, None]], axis=1)
        st["filled"] = np.minimum(st["filled"] + 1, node.window)
        used = np.arange(node.window)[None, :] >= (node.window - st["filled"])[:, None]
        n_used = np.maximum(st["filled"], 1)
        mean = (st["history"] * used).sum(1) / n_used
        var = (((st["history"] - mean[:, None]) * used) ** 2).sum(1) / n_used
        var = np.where(st["filled"] >= 2, var, 0.0)
        health = 1.0 / (1.0 + np.exp(-(var / node.variance_scale_hz2 - node.tau)))
        bad = np.zeros(n, bool)
        if node.silent_ms is not None:
            bad |= (step - last) * dt_ms > node.silent_ms
        if node.ceiling_hz is not None:
            bad |= rate > node.ceiling_hz
        health = np.where(bad, 1.0, health)
        survival = np.where(health <= node.tau_a, 1.0,
                            np.exp(-node.lambda_a * (health - node.tau_a)))
        st["low"] = np.where(survival < node.floor, st["low"] + 1, 0)
        alive = np.asarray(record.variables["alive"].get_value()) > 0.5
        die = alive & (st["low"] >= node.patience)
        alive &= ~die
        record.variables["health"].set_value(np.where(alive, health, 1.0))
        record.variables["survival"].set_value(np.where(alive, survival, 0.0))
        record.variables["alive"].set_value(alive.astype(float))
        deaths = np.asarray(record.variables["deaths"].get_value()) + die
        record.variables["deaths"].set_value(deaths)
        if die.any():
            for state in states:
                frozen = np.asarray(group.variables[f"{state}_apo_frozen"].get_value()).copy()
                frozen[die] = np.asarray(group.variables[state].get_value())[die]
                group.variables[f"{state}_apo_frozen"].set_value(frozen)
            group.variables["alive_apo"].set_value(alive.astype(float))
            dead = np.nonzero(die)[0]
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

    op = b2.NetworkOperation(evaluate, dt=dt_ms * b2.ms, when="end", order=order_of(net, node.name),
                             name=f"x_apoptosis_{k}")
    built.network.add(record, op)
    built.processes[node.name] = record
    return record
