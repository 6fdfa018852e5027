"""Brian2 equations, thresholds and resets emitted from the IR's neuron models.

The emitted model follows `evospike.dynamics` step for step:

- linear sub-threshold dynamics with Brian2's ``exact`` integrator (LIF, adaptive LIF), the
  injected current a parameter ``i_ext`` held constant over each step;
- Loihi's CUBA-LIF, which is discrete, as code run every step in the state-update slot;
- Izhikevich's (v, u) with ``euler`` and its synaptic currents decayed exactly every step;
- AdEx's (v, w) likewise with ``euler`` (the exponent clamped at the spike cut with ``clip``),
  its currents in pA carried as volt (the same numbers, as Izhikevich's are);
- CondLIF's v with ``exponential_euler`` (the conductances held at their step-start values,
  as `evospike.dynamics.cond_lif_voltage`), its conductances decayed exactly by the same method;
  CondAdEx's (v, w) with ``euler`` and its conductances decayed exactly every step; the
  conductances (nS) carried as volt, the same numbers;
- refractoriness through Brian2's own ``refractory`` (v held; fire again ``tau_refrac`` after
  the last spike).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evospike.ir.neurons import (
    LIF,
    AdaptiveLIF,
    AdEx,
    CondAdEx,
    CondLIF,
    CubaLIF,
    Izhikevich,
    NeuronModel,
)


@dataclass
class EmittedModel:
    """Everything needed to build one NeuronGroup.

    ``params`` maps a Brian2 parameter name to (IR value, Brian2 unit name) with unit name
    ``"ms"``, ``"mV"`` or ``""`` (dimensionless); ``state_units`` maps IR state -> unit name.
    ``step_code`` is code run every step in the state-update slot (after integration).
    ``i_ext`` is the injected current of the step; ``i_const`` its constant part."""

    equations: str
    threshold: str
    reset: str
    method: str | None
    params: dict[str, tuple[object, str]]
    state_units: dict[str, str]
    refractory: str | None = None
    step_code: str = ""
    channel_code: dict[str, str] = field(default_factory=dict)  # channel -> on_pre statement


def _refractory(model) -> str | None:
    return "tau_refrac" if np.any(np.asarray(model.tau_refrac_ms) > 0) else None


def emit_lif(model: LIF, units: str = "mV") -> EmittedModel:
    """``units``: the network's unit system; in ``"dimensionless"`` the voltages and currents
    are plain numbers (Brian2 unit ``1``), the time constants still in ms."""
    adaptive = isinstance(model, AdaptiveLIF)
    refractory = _refractory(model)
    unless = " (unless refractory)" if refractory else ""
    eqs = [
        f"dv/dt = (v_rest - v + i_exc + i_inh + i_bias + i_ext) / tau_m : volt{unless}",
        "di_exc/dt = -i_exc / tau_syn_exc : volt",
        "di_inh/dt = -i_inh / tau_syn_inh : volt",
        "i_ext : volt",
        "i_const : volt (constant)",
    ]
    params = {"tau_m": (model.tau_m_ms, "ms"), "v_rest": (model.v_rest_mV, "mV"),
              "v_reset": (model.v_reset_mV, "mV"), "v_thresh": (model.v_thresh_mV, "mV"),
              "tau_syn_exc": (model.tau_syn_exc_ms, "ms"),
              "tau_syn_inh": (model.tau_syn_inh_ms, "ms"), "i_bias": (model.i_bias_mV, "mV"),
              "tau_refrac": (model.tau_refrac_ms, "ms")}
    threshold = "v > v_thresh"
    reset = "v = v - (v_thresh - v_reset)" if model.reset == "subtract" else "v = v_reset"
    state_units = {"v": "mV", "i_exc": "mV", "i_inh": "mV"}
    if adaptive:
        eqs.append("dtheta/dt = -theta / tau_adapt : volt")
        params["tau_adapt"] = (model.tau_adapt_ms, "ms")
        params["delta_thresh"] = (model.delta_thresh_mV, "mV")
        threshold = "v > v_thresh + theta"
        reset += "\ntheta = theta + delta_thresh"
        state_units["theta"] = "mV"
    eqs += [f"{name} : {'second' if unit == 'ms' else 'volt'} (constant)"
            for name, (_, unit) in params.items()]
    if units == "dimensionless":
        # the same equations with the voltage unit dropped: Brian2 then checks that every
        # term is a plain number over a time constant, as the model means
        eqs = [line.replace(": volt", ": 1") for line in eqs]
        params = {name: (value, "" if unit == "mV" else unit)
                  for name, (value, unit) in params.items()}
        state_units = {state: "" for state in state_units}
    v_gate = " * int(not_refractory_post)" if refractory else ""
    return EmittedModel("\n".join(eqs), threshold, reset, "exact", params, state_units,
                        refractory,
                        channel_code={"exc": "i_exc_post += w", "inh": "i_inh_post += w",
                                      "v": f"v_post += w{v_gate}"})


def emit_cuba(model: CubaLIF) -> EmittedModel:
    refractory = _refractory(model)
    params = {"du": (model.du, ""), "dv": (model.dv, ""), "bias": (model.bias, ""),
              "v_thresh": (model.v_thresh, ""), "v_reset": (model.v_reset, ""),
              "tau_refrac": (model.tau_refrac_ms, "ms")}
    eqs = ["u : 1", "v : 1", "i_ext : 1", "i_const : 1 (constant)"] + [
        f"{name} : {'second' if unit == 'ms' else '1'} (constant)"
        for name, (_, unit) in params.items()]
    # v uses the decayed u of the same step; a refractory neuron keeps its v
    if refractory:
        step = ("v = int(not_refractory) * ((1 - dv) * v + (1 - du) * u + bias + i_ext)"
                " + (1 - int(not_refractory)) * v\nu = (1 - du) * u")
    else:
        step = "v = (1 - dv) * v + (1 - du) * u + bias + i_ext\nu = (1 - du) * u"
    reset = "v = v - (v_thresh - v_reset)" if model.reset == "subtract" else "v = v_reset"
    v_gate = " * int(not_refractory_post)" if refractory else ""
    return EmittedModel("\n".join(eqs), "v > v_thresh", reset, None, params,
                        {"u": "", "v": ""}, refractory, step_code=step,
                        channel_code={"exc": f"u_post += w\nv_post += w{v_gate}",
                                      "inh": f"u_post += w\nv_post += w{v_gate}",
                                      "v": f"v_post += w{v_gate}"})


def emit_izhikevich(model: Izhikevich) -> EmittedModel:
    eqs = [
        "dv/dt = ((0.04 * v / mV + 5) * v / mV + 140 - u / mV + (i_exc + i_inh + i_bias"
        " + i_ext) / mV) * mV / ms : volt",
        "du/dt = a / ms * (b * v - u) : volt",
        "i_exc : volt",
        "i_inh : volt",
        "i_ext : volt",
        "i_const : volt (constant)",
        "a : 1 (constant)", "b : 1 (constant)", "c : volt (constant)", "d : volt (constant)",
        "v_peak : volt (constant)", "i_bias : volt (constant)",
        "decay_exc : 1 (constant)", "decay_inh : 1 (constant)",
    ]
    # u and the currents are in mV/ms in the IR; carried as volt here (times 1 ms), the same
    # numbers, so that Brian2's unit checks hold.
    params = {"a": (model.a, ""), "b": (model.b, ""), "c": (model.c_mV, "mV"),
              "d": (model.d, "mV"), "v_peak": (model.v_peak_mV, "mV"),
              "i_bias": (model.i_bias, "mV")}
    return EmittedModel("\n".join(eqs), "v > v_peak", "v = c\nu = u + d", "euler", params,
                        {"v": "mV", "u": "mV", "i_exc": "mV", "i_inh": "mV"}, None,
                        step_code="i_exc = i_exc * decay_exc\ni_inh = i_inh * decay_inh",
                        channel_code={"exc": "i_exc_post += w", "inh": "i_inh_post += w",
                                      "v": "v_post += w"})


def emit_adex(model: AdEx) -> EmittedModel:
    refractory = _refractory(model)
    unless = " (unless refractory)" if refractory else ""
    # w_adapt, the currents, b and I_e are in pA in the IR; carried as volt (the same numbers) so
    # that the backend's "weights in volt" path serves every channel; C, g_L and a are then
    # plain numbers (pA / pF = mV/ms, nS * mV = pA)
    eqs = [
        "dv/dt = (g_L * (E_L - v) + g_L * Delta_T * exp((clip(v, -inf * mV, v_peak) - V_T)"
        f" / Delta_T) - w_adapt + i_exc + i_inh + I_e + i_ext) / (C * ms) : volt{unless}",
        "dw_adapt/dt = (a * (v - E_L) - w_adapt) / tau_w : volt",
        "i_exc : volt",
        "i_inh : volt",
        "i_ext : volt",
        "i_const : volt (constant)",
        "decay_exc : 1 (constant)", "decay_inh : 1 (constant)",
    ]
    params = {"C": (model.C_pF, ""), "g_L": (model.g_L_nS, ""), "E_L": (model.E_L_mV, "mV"),
              "V_T": (model.V_T_mV, "mV"), "Delta_T": (model.Delta_T_mV, "mV"),
              "a": (model.a_nS, ""), "tau_w": (model.tau_w_ms, "ms"), "b": (model.b_pA, "mV"),
              "v_reset": (model.V_reset_mV, "mV"), "v_peak": (model.V_peak_mV, "mV"),
              "I_e": (model.I_e_pA, "mV"), "tau_refrac": (model.tau_refrac_ms, "ms")}
    eqs += [f"{name} : {'second' if unit == 'ms' else 'volt' if unit == 'mV' else '1'}"
            " (constant)" for name, (_, unit) in params.items()]
    v_gate = " * int(not_refractory_post)" if refractory else ""
    units = {"v": "mV", "w_adapt": "mV", "i_exc": "mV", "i_inh": "mV"}
    return EmittedModel("\n".join(eqs), "v >= v_peak", "v = v_reset\nw_adapt = w_adapt + b",
                        "euler", params, units, refractory,
                        step_code="i_exc = i_exc * decay_exc\ni_inh = i_inh * decay_inh",
                        channel_code={"exc": "i_exc_post += w", "inh": "i_inh_post += w",
                                      "v": f"v_post += w{v_gate}"})


def _cond_syn_terms() -> str:
    # g_exc, g_inh hold nS numbers as volt (the backend's "weights in volt" path), so
    # g * (E - v) / mV is the synaptic current in pA as volt, like every term of these equations
    return "g_exc * (E_exc - v) / mV + g_inh * (E_inh - v) / mV"


def emit_cond_lif(model: CondLIF) -> EmittedModel:
    """CondLIF with ``exponential_euler``: Brian2 solves each step ``dv/dt = A v + B`` with A, B
    from the step-start state, ``v' = -B/A + (v + B/A) exp(A dt)``, which is
    `evospike.dynamics.cond_lif_voltage`; the conductances' linear decay it solves exactly."""
    refractory = _refractory(model)
    unless = " (unless refractory)" if refractory else ""
    eqs = [
        f"dv/dt = (g_L * (E_L - v) + {_cond_syn_terms()} + I_e + i_ext) / (C * ms)"
        f" : volt{unless}",
        "dg_exc/dt = -g_exc / tau_syn_exc : volt",
        "dg_inh/dt = -g_inh / tau_syn_inh : volt",
        "i_ext : volt",
        "i_const : volt (constant)",
    ]
    params = {"C": (model.C_pF, ""), "g_L": (model.g_L_nS, ""), "E_L": (model.E_L_mV, "mV"),
              "E_exc": (model.E_exc_mV, "mV"), "E_inh": (model.E_inh_mV, "mV"),
              "v_thresh": (model.V_th_mV, "mV"), "v_reset": (model.V_reset_mV, "mV"),
              "tau_syn_exc": (model.tau_syn_exc_ms, "ms"),
              "tau_syn_inh": (model.tau_syn_inh_ms, "ms"), "I_e": (model.I_e_pA, "mV"),
              "tau_refrac": (model.tau_refrac_ms, "ms")}
    eqs += [f"{name} : {'second' if unit == 'ms' else 'volt' if unit == 'mV' else '1'}"
            " (constant)" for name, (_, unit) in params.items()]
    return EmittedModel("\n".join(eqs), "v > v_thresh", "v = v_reset", "exponential_euler",
                        params, {"v": "mV", "g_exc": "mV", "g_inh": "mV"}, refractory,
                        channel_code={"exc": "g_exc_post += w", "inh": "g_inh_post += w"})


def emit_cond_adex(model: CondAdEx) -> EmittedModel:
    """CondAdEx: `emit_adex`'s equations with the conductance current, ``euler``; the
    conductances decay exactly after integration (``step_code``, with Brian2's own ``dt``)."""
    refractory = _refractory(model)
    unless = " (unless refractory)" if refractory else ""
    eqs = [
        "dv/dt = (g_L * (E_L - v) + g_L * Delta_T * exp((clip(v, -inf * mV, v_peak) - V_T)"
        f" / Delta_T) - w_adapt + {_cond_syn_terms()} + I_e + i_ext) / (C * ms)"
        f" : volt{unless}",
        "dw_adapt/dt = (a * (v - E_L) - w_adapt) / tau_w : volt",
        "g_exc : volt",
        "g_inh : volt",
        "i_ext : volt",
        "i_const : volt (constant)",
    ]
    params = {"C": (model.C_pF, ""), "g_L": (model.g_L_nS, ""), "E_L": (model.E_L_mV, "mV"),
              "V_T": (model.V_T_mV, "mV"), "Delta_T": (model.Delta_T_mV, "mV"),
              "a": (model.a_nS, ""), "tau_w": (model.tau_w_ms, "ms"), "b": (model.b_pA, "mV"),
              "v_reset": (model.V_reset_mV, "mV"), "v_peak": (model.V_peak_mV, "mV"),
              "E_exc": (model.E_exc_mV, "mV"), "E_inh": (model.E_inh_mV, "mV"),
              "tau_syn_exc": (model.tau_syn_exc_ms, "ms"),
              "tau_syn_inh": (model.tau_syn_inh_ms, "ms"),
              "I_e": (model.I_e_pA, "mV"), "tau_refrac": (model.tau_refrac_ms, "ms")}
    eqs += [f"{name} : {'second' if unit == 'ms' else 'volt' if unit == 'mV' else '1'}"
            " (constant)" for name, (_, unit) in params.items()]
    units = {"v": "mV", "w_adapt": "mV", "g_exc": "mV", "g_inh": "mV"}
    return EmittedModel("\n".join(eqs), "v >= v_peak", "v = v_reset\nw_adapt = w_adapt + b",
                        "euler", params, units, refractory,
                        step_code="g_exc = g_exc * exp(-dt / tau_syn_exc)\n"
                                  "g_inh = g_inh * exp(-dt / tau_syn_inh)",
                        channel_code={"exc": "g_exc_post += w", "inh": "g_inh_post += w"})


def emit(model: NeuronModel, units: str = "mV") -> EmittedModel:
    """The Brian2 form of ``model`` in a network of unit system ``units`` (`Network.units`:
    the IR refuses there a model other than LIF or CubaLIF in ``"dimensionless"``)."""
    if isinstance(model, LIF):
        return emit_lif(model, units)
    if isinstance(model, CubaLIF):
        return emit_cuba(model)
    if isinstance(model, Izhikevich):
        return emit_izhikevich(model)
    if isinstance(model, AdEx):
        return emit_adex(model)
    if isinstance(model, CondLIF):
        return emit_cond_lif(model)
    if isinstance(model, CondAdEx):
        return emit_cond_adex(model)
    raise TypeError(model.kind)


def unsupported_reason(model: NeuronModel) -> str | None:
    """Why Brian2 cannot carry ``model`` exactly as the IR means it, or None."""
    if getattr(model, "reset", None) == "subtract_after_decay":
        # Brian2 runs a group's reset in the step of its threshold; deferring the subtraction
        # to after the next state update would need an extra state and a custom operation
        # placed between the state updater and the synaptic effects, which is not emitted
        return ("reset='subtract_after_decay' (snnTorch's convention): Brian2's reset runs in "
                "the spike's own step, not after the next step's decay")
    if isinstance(model, LIF):
        tm = np.asarray(model.tau_m_ms)
        for name in ("tau_syn_exc_ms", "tau_syn_inh_ms"):
            if np.any(np.isclose(tm, np.asarray(getattr(model, name)), rtol=1e-9, atol=0)):
                return (f"tau_m_ms equals {name}: Brian2's exact integrator solves the general "
                        "case symbolically and divides by their difference")
    return None
