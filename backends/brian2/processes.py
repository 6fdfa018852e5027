"""Brian2 objects for the process nodes and the plasticity rules that read them.

Everything follows the IR's order within a step (`evospike.ir.plasticity`), placed in Brian2's
schedule: the spike pathways run before the thresholds (``on_pre``) and in the synapses slot
(``on_post``), reading a modulator's level through a linked variable before the modulator moves;
at the end of the step, in this order: the three-factor weight update (order 3), synaptic
scaling (4), homeostasis (5), the modulators (6), metaplasticity (7), then the monitors (10).
"""

from __future__ import annotations

import numpy as np

from evospike.errors import UnsupportedError
from evospike.ir.modulators import (
    Modulator,
    NoveltyDrive,
    RewardEvents,
    RewardSeries,
    SpikeCountDrive,
)
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP

from .names import object_name
from .registry import NODE_BUILDERS
from .schedule import order_of


def add_homeostasis(em, h: Homeostasis) -> None:
    """Rate estimate ``rate_h`` (Hz) and threshold offset ``theta_h`` in the population's own
    equations: raised in the reset of a spiking neuron, updated at the end of the step."""
    unit = "volt" if em.state_units.get("v") == "mV" else "1"
    em.equations += f"\nrate_h : 1\ntheta_h : {unit}"
    if h.mechanism == "threshold":
        # raise the comparison itself: masks added by other processes may already wrap it
        if "v_thresh" not in em.threshold:
            raise UnsupportedError("brian2", [f"Homeostasis '{h.name}': threshold homeostasis "
                                              f"needs a v_thresh threshold (got "
                                              f"{em.threshold!r})"])
        em.threshold = em.threshold.replace("v_thresh", "(v_thresh + theta_h)", 1)
    em.reset += f"\nrate_h += {1000.0 / h.tau_rate_ms!r}"
    em.state_units = {**em.state_units, "theta_h": "mV" if unit == "volt" else ""}


def homeostasis_code(h: Homeostasis, dt_ms: float, in_volts: bool) -> str:
    lines = []
    if h.mechanism == "threshold":
        gain = h.threshold_rate * dt_ms * 1e-3
        lines.append(f"theta_h += {gain!r} * (rate_h - {h.target_rate_hz!r})"
                     + (" * mV" if in_volts else ""))
    lines.append(f"rate_h *= {float(np.exp(-dt_ms / h.tau_rate_ms))!r}")
    return "\n".join(lines)


def scaling_code(h: Homeostasis, dt_ms: float, rule: STDP | None) -> str:
    factor = (f"(1 + {h.scaling_rate * h.every_steps * dt_ms * 1e-3!r} * "
              f"({h.target_rate_hz!r} - rate_h_post))")
    if rule is None:
        return f"w = w * {factor}"
    return f"w = clip(w * {factor}, w_min, w_max)"


@NODE_BUILDERS.register(Modulator, phase=10)
def build_modulator(b2, mod: Modulator, net, built) -> object:
    """A one-neuron group holding the level; spike counts arrive through synapses during the
    step, the update runs at its end."""
    dt = net.dt_ms * b2.ms
    name = object_name("proc", net, mod.name)
    variables = ["level : 1", "reward_in : 1"]
    terms = ["level * decay", "reward_in"]
    namespace = {"decay": float(np.exp(-net.dt_ms / mod.tau_ms))}
    objects = []
    after = []
    for k, drive in enumerate(mod.drives):
        if isinstance(drive, RewardSeries):
            table = np.concatenate([np.zeros(drive.start_step), drive.values, [0.0]])
            namespace[f"reward_series_{k}"] = b2.TimedArray(table, dt=dt,
                                                            name=f"{name}_series{k}")
            terms.append(f"reward_series_{k}(t)")
        elif isinstance(drive, RewardEvents):
            steps = np.floor(drive.times_ms / net.dt_ms + 1e-9).astype(np.int64)
            gen = b2.SpikeGeneratorGroup(steps.size, np.arange(steps.size), steps * dt,
                                         clock=built.clock, name=f"{name}_events{k}")
            objects.append((gen, drive.amounts))
        elif isinstance(drive, SpikeCountDrive):
            variables.append(f"count_{k} : 1")
            terms.append(f"{drive.gain!r} * count_{k}")
            objects.append((drive.population, f"count_{k}_post += 1", k))
            after.append(f"count_{k} = 0")
        elif isinstance(drive, NoveltyDrive):
            size = net.size_of(drive.population)
            variables += ["rate_hz : 1", "expected_hz : 1", f"count_{k} : 1"]
            a = float(np.exp(-net.dt_ms / drive.tau_rate_ms))
            b = float(np.exp(-net.dt_ms / drive.tau_expect_ms))
            after = [
                f"rate_hz = rate_hz * {a!r} + {1 - a!r} * count_{k} / "
                f"{size * net.dt_ms * 1e-3!r}",
                f"expected_hz = expected_hz * {b!r} + {1 - b!r} * rate_hz",
                f"level += {drive.gain!r} * abs(rate_hz - expected_hz)",
                f"count_{k} = 0",
            ] + after
            objects.append((drive.population, f"count_{k}_post += 1", k))
    group = b2.NeuronGroup(1, "\n".join(variables), clock=built.clock, namespace=namespace,
                           name=name)
    group.level = mod.initial
    code = "\n".join([f"level = {' + '.join(terms)}", *after, "reward_in = 0"])
    built.network.add(group, group.run_regularly(code, when="end", order=order_of(net, mod.name),
                                                 name=f"{name}_update"))
    for item in objects:
        if not isinstance(item[0], str):
            gen, amounts = item
            syn = b2.Synapses(gen, group, "amount : 1 (constant)",
                              on_pre="reward_in_post += amount", clock=built.clock,
                              name=f"{gen.name}_in")
            syn.connect(i=np.arange(amounts.size), j=np.zeros(amounts.size, np.int64))
            syn.amount = amounts
            built.network.add(gen, syn)
        else:
            source_name, statement, k = item
            source = built.groups.get(source_name) or built.sources[source_name]
            n = net.size_of(source_name)
            syn = b2.Synapses(source, group, on_pre=statement, clock=built.clock,
                              name=f"{name}_count{k}")
            syn.connect(i=np.arange(n), j=np.zeros(n, np.int64))
            built.network.add(syn)
    built.processes[mod.name] = group
    return group


@NODE_BUILDERS.register(Metaplasticity, phase=20)
def build_metaplasticity(b2, meta: Metaplasticity, net, built) -> object:
    name = object_name("proc", net, meta.name)
    group = b2.NeuronGroup(1, "value : 1\nbaseline : 1\nlevel_m : 1 (linked)",
                           clock=built.clock, name=name)
    group.level_m = b2.linked_var(built.processes[meta.modulator], "level")
    group.value = float(getattr(net.plasticity[meta.rule], meta.parameter))
    bd = float(np.exp(-net.dt_ms / meta.tau_baseline_ms))
    code = (f"baseline = baseline * {bd!r} + {1 - bd!r} * level_m\n"
            f"value = clip(value + {meta.eta * net.dt_ms * 1e-3!r} * (level_m - baseline), "
            f"{meta.p_min!r}, {meta.p_max!r})")
    built.network.add(group, group.run_regularly(code, when="end", order=order_of(net, meta.name),
                                                 name=f"{name}_update"))
    built.processes[meta.name] = group
    return group


def plastic_synapse_code(rule: STDP, in_volts: bool, metas: dict[str, Metaplasticity]):
    """Brian2 model, on_pre, on_post and namespace of a plasticity rule: pair-based STDP,
    optionally modulated (gate/scale), or three-factor with its eligibility; parameters that
    metaplasticity adapts are linked to their process's ``value``; the traces of an adapted time
    constant are clock-driven (decayed every step with the current value)."""
    import brian2 as b2

    unit = "volt" if in_volts else "1"
    scale = b2.mV if in_volts else 1
    additive = rule.weight_dependence == "additive"
    lines = [f"w : {unit}", "mod_index : integer (constant)"]
    namespace = {"w_min": rule.w_min * scale, "w_max": rule.w_max * scale}
    for trace, tau in (("x", "tau_plus"), ("y", "tau_minus")):
        if f"{tau}_ms" in metas:
            lines.append(f"{tau}_dyn : 1 (linked)")
            lines.append(f"d{trace}/dt = -{trace} / ({tau}_dyn * ms) : 1 (clock-driven)")
        else:
            lines.append(f"d{trace}/dt = -{trace} / {tau} : 1 (event-driven)")
            namespace[tau] = getattr(rule, f"{tau}_ms") * b2.ms
    # additive amplitudes are in the weight's unit; multiplicative ones are fractions
    in_weight_unit = additive or isinstance(rule, RewardModulatedSTDP)
    amp_unit = scale if in_weight_unit else 1
    amplitude = {}
    for amp in ("a_plus", "a_minus"):
        if amp in metas:
            lines.append(f"{amp}_dyn : 1 (linked)")
            amplitude[amp] = f"{amp}_dyn" + (" * mV" if in_weight_unit and in_volts else "")
        else:
            amplitude[amp] = amp
            namespace[amp] = getattr(rule, amp) * amp_unit
    if rule.modulator is not None:
        lines.append("level_mod : 1 (linked)")
    raise_trace = "{0} += 1" if rule.pairing == "all" else "{0} = 1"
    if isinstance(rule, RewardModulatedSTDP):
        lines.append(f"del_e/dt = -el_e / tau_e : {unit} (clock-driven)")
        namespace["tau_e"] = rule.tau_eligibility_ms * b2.ms
        on_pre = f"el_e = el_e - {amplitude['a_minus']} * y\n" + raise_trace.format("x")
        on_post = raise_trace.format("y") + f"\nel_e = el_e + {amplitude['a_plus']} * x"
        update = (f"w = clip(w + {rule.learning_rate_per_ms!r} * (dt / ms) * level_mod * el_e, "
                  "w_min, w_max)")
        return "\n".join(lines), on_pre, on_post, namespace, update
    factor = ""
    if rule.modulator is not None:
        factor = (f" * int(level_mod > {rule.gate_threshold!r})" if rule.modulation == "gate"
                  else f" * (1 + {rule.scale_gain!r} * level_mod)")
    if additive:
        depress = f"w - {amplitude['a_minus']} * y{factor}"
        potentiate = f"w + {amplitude['a_plus']} * x{factor}"
    else:
        depress = f"w - {amplitude['a_minus']} * y * (w - w_min){factor}"
        potentiate = f"w + {amplitude['a_plus']} * x * (w_max - w){factor}"
    on_pre = f"w = clip({depress}, w_min, w_max)\n" + raise_trace.format("x")
    on_post = raise_trace.format("y") + f"\nw = clip({potentiate}, w_min, w_max)"
    return "\n".join(lines), on_pre, on_post, namespace, None
