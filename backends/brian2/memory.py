"""Brian2 form of `MemoryTiers` (`evospike.ir.memory`): the tiers are variables of the plastic
projection's own Synapses (``w_short``, ``w_mid``, ``w_long``, ``importance_t``, ``access_t``,
``w_prev``; in volt where the weight is), updated by a ``run_regularly`` at the end of every
step and a consolidation ``run_regularly`` every ``every_steps`` steps, in the IR schedule's
order (after the modulators and metaplasticity, before the monitors). The decay, the clip and
the consolidation moves are written here in Brian2's own code from the IR's equations
(`evospike.ir.memory`), independently of the torch backend. Capacity limits need a ranking over
synapses, which Brian2's per-synapse code cannot express: a ``network_operation`` (runtime mode
only) does it right after the consolidation, with the same array function as the torch backend
(`evospike.kernels.memory.evict`), so that one sub-step is shared code (`INDEPENDENCE`). In C++
standalone mode tiers with a capacity below 1 are refused by name.

`backends/brian2/compiler.py` calls `tiers_of`, `tiers_model` and `tiers_objects` from
``build_projection`` (three clearly marked lines) and `monitored_variable` from ``_monitored``.
"""

from __future__ import annotations

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.memory import MemoryTiers
from evospike.kernels import memory as kernels

from .names import clock_for, object_name
from .schedule import order_of

#: IR state name -> (Brian2 variable, carries the weight's unit)
VARIABLES = {"short": ("w_short", True), "mid": ("w_mid", True), "long": ("w_long", True),
             "importance": ("importance_t", True), "access": ("access_t", False)}


def tiers_of(net, projection: str) -> MemoryTiers | None:
    """The MemoryTiers node of ``projection``, if any."""
    for node in net.processes.values():
        if isinstance(node, MemoryTiers) and node.projection == projection:
            return node
    return None


def tiers_model(tiers: MemoryTiers, in_volts: bool) -> str:
    """Extra lines of the plastic Synapses' model."""
    unit = "volt" if in_volts else "1"
    return "\n" + "\n".join([f"w_short : {unit}", f"w_mid : {unit}", f"w_long : {unit}",
                             f"importance_t : {unit}", "access_t : 1", f"w_prev : {unit}",
                             "level_tiers : 1 (linked)"])


def _step_code(t: MemoryTiers, dt_ms: float, importance_source: str) -> str:
    d = {key: float(np.exp(-dt_ms / tau)) for key, tau in
         (("s", t.tau_short_ms), ("m", t.tau_mid_ms), ("i", t.tau_importance_ms))}
    lines = [
        "dw_tiers = w - w_prev",
        f"importance_t = importance_t * {d['i']!r} + abs({importance_source})",
        f"w_short = (w_short + dw_tiers) * {d['s']!r}",
        f"w_mid = w_mid * {d['m']!r}",
    ]
    if t.tau_long_ms is not None:
        lines.append(f"w_long = w_long * {float(np.exp(-dt_ms / t.tau_long_ms))!r}")
    lines += [
        "total_tiers = w_short + w_mid + w_long",
        "w = clip(total_tiers, w_min, w_max)",
        "w_short = w_short + (w - total_tiers)",
        "w_prev = w",
    ]
    return "\n".join(lines)


def _consolidation_code(t: MemoryTiers, in_volts: bool) -> str:
    threshold = f"{t.threshold!r}" + (" * mV" if in_volts else "")
    return "\n".join([
        f"cand_tiers = int(importance_t * level_tiers > {threshold})",
        f"moved_tiers = cand_tiers * (w_short * {t.short_to_mid!r})",
        "w_mid = w_mid + moved_tiers",
        "w_short = w_short - moved_tiers",
        "access_t = access_t + cand_tiers",
        "importance_t = importance_t * (1 - cand_tiers)",
        f"up_tiers = int(access_t >= {t.reactivations_to_long})",
        f"moved_tiers = up_tiers * (w_mid * {t.mid_to_long!r})",
        "w_long = w_long + moved_tiers",
        "w_mid = w_mid - moved_tiers",
        "access_t = access_t * (1 - up_tiers)",
    ])


def tiers_objects(b2, syn, tiers: MemoryTiers, rule, net, built, in_volts: bool) -> list:
    """Initial values, the link to the relevance modulator, and the objects that run the
    tiers."""
    scale = b2.mV if in_volts else 1
    w0 = net.projections[tiers.projection].weights * scale
    for name in ("w_short", "w_mid", "w_long"):
        setattr(syn, name, 0 * scale)
    setattr(syn, {"short": "w_short", "mid": "w_mid", "long": "w_long"}[tiers.initial_tier], w0)
    syn.w_prev = w0
    syn.level_tiers = b2.linked_var(built.processes[tiers.modulator_of(net)], "level",
                                    index="mod_index")
    source = "dw_tiers" if tiers.importance == "dw" else "el_e"
    name = object_name("proc", net, tiers.name)
    # consolidation and capacity run every ``every_steps`` steps: on one clock of their own
    every = clock_for(b2, name, tiers.every_steps * net.dt_ms * b2.ms, built.clock)
    objects = [
        syn.run_regularly(_step_code(tiers, net.dt_ms, source), when="end",
                          order=order_of(net, tiers.name, 0), name=f"{name}_step"),
        syn.run_regularly(_consolidation_code(tiers, in_volts), clock=every,
                          when="end", order=order_of(net, tiers.name, 1),
                          name=f"{name}_consolidate"),
    ]
    n = net.projections[tiers.projection].n_synapses
    caps = {tier: tiers.capacity(tier, n) for tier in ("mid", "long")}
    if min(caps.values()) < n:
        if b2.get_device().__class__.__name__ != "RuntimeDevice":
            raise UnsupportedError("brian2", [
                f"MemoryTiers '{tiers.name}': capacity limits need a network_operation, which "
                "C++ standalone mode does not run (use the cython or numpy target, or "
                "capacity_mid = capacity_long = 1)"])

        def capacity() -> None:
            long, mid, short = (np.array(syn.variables[v].get_value(), dtype=np.float64)
                                for v in ("w_long", "w_mid", "w_short"))
            long, mid = kernels.evict(long, mid, caps["long"])
            mid, short = kernels.evict(mid, short, caps["mid"])
            for name, value in (("w_long", long), ("w_mid", mid), ("w_short", short)):
                syn.variables[name].set_value(value)

        objects.append(b2.NetworkOperation(capacity, clock=every, when="end",
                                           order=order_of(net, tiers.name, 2),
                                           name=f"{name}_capacity"))
    built.processes[tiers.name] = syn
    return objects


def monitored_variable(tiers: MemoryTiers, variable: str, in_volts: bool) -> tuple[str, str]:
    """(Brian2 variable, unit name) a StateMonitor of the tiers' ``variable`` records."""
    name, has_unit = VARIABLES[variable]
    return name, "mV" if has_unit and in_volts else ""
