"""Exact one-step propagators of the neuron models, shared by every backend.

A model with linear sub-threshold dynamics ``dx/dt = A x + c + D i_ext`` is advanced over one
step of ``dt`` exactly: ``x' = P x + q + G i_ext + B a_in`` with ``P = exp(A dt)``,
``q = Q c``, ``G = Q D`` and ``Q = integral_0^dt exp(A s) ds`` (computed together through the
exponential of an augmented matrix), ``i_ext`` the injected current held constant over the step,
and ``a_in`` the synaptic events arriving in the step, one column of ``B`` per channel.
Models that are already discrete (Loihi's CUBA-LIF) give their update matrices directly.

Within a step every backend does, in this order: (1) take the events due this step,
(2) advance the state (refractory neurons keep their voltage; with
``reset="subtract_after_decay"`` the previous step's spikes subtract now), (3) threshold,
(4) reset and start the refractory period, (5) send the new spikes, which arrive
``delay >= 1`` steps later.

Refractoriness (Brian2's rule): with ``R = tau_refrac / dt``, a neuron that fires in step n
keeps its reset voltage through steps n .. n+R-1 (in steps n+1 .. n+R-1 it is not integrated
and events on channel ``v`` are ignored), integrates again from step n+R and may fire then: the
shortest interval between two spikes is ``tau_refrac``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from evospike.errors import ValidationError
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
from evospike.ir.nodes import CHANNELS
from evospike.units import steps_of


@dataclass
class LinearStep:
    """One step of a linear model for ``n`` neurons (arrays broadcast over a last axis of 1
    when all neurons share parameters). Shapes: P (k, k, n|1), q / G (k, n|1), B (k, channels)."""

    state_names: tuple[str, ...]
    P: np.ndarray
    q: np.ndarray
    G: np.ndarray
    B: np.ndarray
    v_index: int
    v_thresh: np.ndarray
    theta_index: int | None
    theta_jump: np.ndarray | None
    reset_subtract: bool
    v_reset: np.ndarray
    hold_steps: np.ndarray  # steps after the spike step with the voltage held (R - 1)
    #: reset="subtract_after_decay": the previous step's spikes subtract v_thresh - v_reset
    #: after this step's decay, before the threshold (reset_subtract is then False)
    reset_after_decay: bool = False


@dataclass
class IzhikevichStep:
    """Izhikevich parameters plus the exact decay of its two synaptic currents per step."""

    state_names: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    v_peak: np.ndarray
    i_bias: np.ndarray
    decay_exc: np.ndarray
    decay_inh: np.ndarray
    dt_ms: float


@dataclass
class AdExStep:
    """AdEx parameters (see `evospike.ir.neurons.AdEx`, units pF, nS, mV, pA, ms) plus the exact
    decay of its two synaptic currents per step. Arrays broadcast over neurons: (1,) or (n,)."""

    state_names: tuple[str, ...]
    C: np.ndarray
    g_L: np.ndarray
    E_L: np.ndarray
    V_T: np.ndarray
    Delta_T: np.ndarray
    a: np.ndarray
    tau_w: np.ndarray
    b: np.ndarray
    v_reset: np.ndarray
    v_peak: np.ndarray
    I_e: np.ndarray
    decay_exc: np.ndarray
    decay_inh: np.ndarray
    hold_steps: np.ndarray  # steps after the spike step with the voltage held (R - 1)
    dt_ms: float


def adex_euler(xp, v, w, drive, p, dt_ms: float):
    """One forward-Euler step of the AdEx (v, w) equations; the one place their math is
    written, called by every engine with its array module ``xp`` (numpy or torch).

    ``drive`` is the total current in pA (synaptic + ``I_e`` + injected), ``p`` holds the
    parameters as arrays of ``xp`` under the `AdExStep` field names. The exponent's argument is
    clamped at ``V_peak``: a voltage above the cut (set as an initial state, or pushed there by a
    ``v``-channel event) must spike and reset, not overflow ``exp``. Returns (v', w')."""
    arg = (xp.minimum(v, p["v_peak"]) - p["V_T"]) / p["Delta_T"]
    dv = (p["g_L"] * (p["E_L"] - v) + p["g_L"] * p["Delta_T"] * xp.exp(arg) - w + drive) / p["C"]
    dw = (p["a"] * (v - p["E_L"]) - w) / p["tau_w"]
    return v + dt_ms * dv, w + dt_ms * dw


@dataclass
class ConductanceStep:
    """Parameters of a conductance-based model (`CondLIF`; `CondAdEx` adds its own in
    `CondAdExStep`), units pF, nS, mV, pA, ms, plus the exact per-step decay of the two
    conductances and ``dt_over_C`` (dt / C, 1/nS). Arrays broadcast over neurons: (1,) or (n,).
    ``v_thresh`` is `CondLIF`'s ``V_th`` (spike when ``v > v_thresh``)."""

    state_names: tuple[str, ...]
    C: np.ndarray
    g_L: np.ndarray
    E_L: np.ndarray
    E_exc: np.ndarray
    E_inh: np.ndarray
    I_e: np.ndarray
    v_thresh: np.ndarray
    v_reset: np.ndarray
    dt_over_C: np.ndarray
    decay_exc: np.ndarray
    decay_inh: np.ndarray
    hold_steps: np.ndarray  # steps after the spike step with the voltage held (R - 1)
    dt_ms: float


@dataclass
class CondAdExStep(ConductanceStep):
    """`CondAdEx`: `ConductanceStep` plus AdEx's parameters (names as in `AdExStep`); its
    threshold is ``v >= v_peak`` (``v_thresh`` holds ``v_peak`` too)."""

    V_T: np.ndarray = None  # type: ignore[assignment]
    Delta_T: np.ndarray = None  # type: ignore[assignment]
    a: np.ndarray = None  # type: ignore[assignment]
    tau_w: np.ndarray = None  # type: ignore[assignment]
    b: np.ndarray = None  # type: ignore[assignment]
    v_peak: np.ndarray = None  # type: ignore[assignment]


def cond_lif_voltage(xp, v, g_exc, g_inh, drive, p, dt_ms: float):
    """One exponential-Euler step of `CondLIF`'s voltage; the one place its math is written,
    called by every engine with its array module ``xp`` (numpy or torch).

    The conductances ``g_exc``, ``g_inh`` (nS) are held at their step-start values, so that
    over the step ``C dv/dt = g_tot (v_inf - v)`` is linear with constant coefficients and is
    solved exactly: ``v' = v_inf + (v - v_inf) exp(-dt g_tot / C)``. ``drive``: the injected
    current (pA, ``I_e`` + injected); ``p``: parameters under the `ConductanceStep` names.
    (``dt_ms`` is carried in ``p["dt_over_C"]``; the argument keeps the engines' signature.)"""
    g_tot = p["g_L"] + g_exc + g_inh
    v_inf = (p["g_L"] * p["E_L"] + g_exc * p["E_exc"] + g_inh * p["E_inh"] + drive) / g_tot
    return v_inf + (v - v_inf) * xp.exp(-(p["dt_over_C"] * g_tot))


def cond_adex_euler(xp, v, w, g_exc, g_inh, drive, p, dt_ms: float):
    """One forward-Euler step of `CondAdEx`'s (v, w): `adex_euler` with the synaptic current
    ``g_exc (E_exc - v) + g_inh (E_inh - v)`` (pA) of the step-start state added to ``drive``."""
    syn = g_exc * (p["E_exc"] - v) + g_inh * (p["E_inh"] - v)
    return adex_euler(xp, v, w, syn + drive, p, dt_ms)


def _col(value) -> np.ndarray:
    """A parameter as a row vector over neurons: shape (1,) if shared, (n,) otherwise."""
    return np.atleast_1d(np.asarray(value, dtype=np.float64))


def _exact(A: np.ndarray, c: np.ndarray, D: np.ndarray, dt: float):
    """P, q, G for stacks A (m, k, k), c (m, k), D (m, k)."""
    m, k, _ = A.shape
    M = np.zeros((m, k + 2, k + 2))
    M[:, :k, :k] = A
    M[:, :k, k] = c
    M[:, :k, k + 1] = D
    E = scipy.linalg.expm(M * dt)
    return E[:, :k, :k], E[:, :k, k], E[:, :k, k + 1]


def _channel_matrix(model: NeuronModel, per_channel: dict[str, list[float]] | None = None):
    names = model.state_names
    B = np.zeros((len(names), len(CHANNELS)))
    for ch_index, channel in enumerate(CHANNELS):
        if per_channel and channel in per_channel:
            B[:, ch_index] = per_channel[channel]
        elif channel in model.channel_targets:
            B[names.index(model.channel_targets[channel]), ch_index] = 1.0
    return B


def _refractory(model, population: str, dt_ms: float) -> np.ndarray:
    """Steps after the spike step in which the voltage is held: R - 1 for R = tau_refrac/dt."""
    taus = _col(model.tau_refrac_ms)
    steps = np.array([steps_of(float(t), dt_ms, "Population", population,
                               f"{model.kind}.tau_refrac_ms") for t in taus], dtype=np.int64)
    return np.maximum(steps - 1, 0)


def _lif_step(model: LIF, population: str, dt_ms: float) -> LinearStep:
    adaptive = isinstance(model, AdaptiveLIF)
    names = model.state_names
    k = len(names)
    params = [model.tau_m_ms, model.tau_syn_exc_ms, model.tau_syn_inh_ms, model.v_rest_mV,
              model.i_bias_mV] + ([model.tau_adapt_ms] if adaptive else [])
    cols = [_col(p) for p in params]
    n = max(c.shape[0] for c in cols)
    table = np.stack([np.broadcast_to(c, (n,)) for c in cols], axis=1)
    unique, inverse = np.unique(table, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    m = unique.shape[0]
    tm, te, ti, vr, ib = (unique[:, j] for j in range(5))
    A = np.zeros((m, k, k))
    A[:, 0, 0] = -1.0 / tm
    A[:, 0, 1] = 1.0 / tm
    A[:, 0, 2] = 1.0 / tm
    A[:, 1, 1] = -1.0 / te
    A[:, 2, 2] = -1.0 / ti
    if adaptive:
        A[:, 3, 3] = -1.0 / unique[:, 5]
    c = np.zeros((m, k))
    c[:, 0] = (vr + ib) / tm
    D = np.zeros((m, k))
    D[:, 0] = 1.0 / tm
    P, q, G = _exact(A, c, D, dt_ms)
    if n == 1 or m == 1:
        P, q, G = P[0][..., None], q[0][:, None], G[0][:, None]
    else:
        P, q, G = P[inverse].transpose(1, 2, 0), q[inverse].T, G[inverse].T
    return LinearStep(
        state_names=names, P=P, q=q, G=G, B=_channel_matrix(model), v_index=0,
        v_thresh=_col(model.v_thresh_mV),
        theta_index=3 if adaptive else None,
        theta_jump=_col(model.delta_thresh_mV) if adaptive else None,
        reset_subtract=model.reset == "subtract", v_reset=_col(model.v_reset_mV),
        hold_steps=_refractory(model, population, dt_ms),
        reset_after_decay=model.reset == "subtract_after_decay",
    )


def _cuba_step(model: CubaLIF, population: str, dt_ms: float) -> LinearStep:
    du, dv, bias = _col(model.du), _col(model.dv), _col(model.bias)
    n = max(du.shape[0], dv.shape[0], bias.shape[0])
    du, dv, bias = (np.broadcast_to(a, (n,)) for a in (du, dv, bias))
    P = np.zeros((2, 2, n))
    P[0, 0] = 1.0 - du
    P[1, 0] = 1.0 - du
    P[1, 1] = 1.0 - dv
    q = np.stack([np.zeros(n), bias])
    G = np.stack([np.zeros(n), np.ones(n)])
    B = _channel_matrix(model, {"exc": [1.0, 1.0], "inh": [1.0, 1.0], "v": [0.0, 1.0]})
    return LinearStep(
        state_names=model.state_names, P=P, q=q, G=G, B=B, v_index=1,
        v_thresh=_col(model.v_thresh), theta_index=None, theta_jump=None,
        reset_subtract=model.reset == "subtract", v_reset=_col(model.v_reset),
        hold_steps=_refractory(model, population, dt_ms),
        reset_after_decay=model.reset == "subtract_after_decay",
    )


def _izh_step(model: Izhikevich, population: str, dt_ms: float) -> IzhikevichStep:
    if dt_ms > 1.0:
        raise ValidationError("Population", population, "dt_ms",
                              "must be <= 1 ms for Izhikevich neurons (forward Euler on the "
                              "quadratic voltage equation diverges at larger steps)", dt_ms)
    return IzhikevichStep(
        state_names=model.state_names, a=_col(model.a), b=_col(model.b), c=_col(model.c_mV),
        d=_col(model.d), v_peak=_col(model.v_peak_mV), i_bias=_col(model.i_bias),
        decay_exc=np.exp(-dt_ms / _col(model.tau_syn_exc_ms)),
        decay_inh=np.exp(-dt_ms / _col(model.tau_syn_inh_ms)), dt_ms=dt_ms,
    )


def _adex_step(model: AdEx, population: str, dt_ms: float) -> AdExStep:
    # the time-step limit (dt <= C / g_L) is checked by the model itself when it is placed
    return AdExStep(
        state_names=model.state_names, C=_col(model.C_pF), g_L=_col(model.g_L_nS),
        E_L=_col(model.E_L_mV), V_T=_col(model.V_T_mV), Delta_T=_col(model.Delta_T_mV),
        a=_col(model.a_nS), tau_w=_col(model.tau_w_ms), b=_col(model.b_pA),
        v_reset=_col(model.V_reset_mV), v_peak=_col(model.V_peak_mV), I_e=_col(model.I_e_pA),
        decay_exc=np.exp(-dt_ms / _col(model.tau_syn_exc_ms)),
        decay_inh=np.exp(-dt_ms / _col(model.tau_syn_inh_ms)),
        hold_steps=_refractory(model, population, dt_ms), dt_ms=dt_ms,
    )


def _cond_step(model: CondLIF | CondAdEx, population: str, dt_ms: float) -> ConductanceStep:
    C = _col(model.C_pF)
    common = dict(
        state_names=model.state_names, C=C, g_L=_col(model.g_L_nS), E_L=_col(model.E_L_mV),
        E_exc=_col(model.E_exc_mV), E_inh=_col(model.E_inh_mV), I_e=_col(model.I_e_pA),
        v_reset=_col(model.V_reset_mV), dt_over_C=dt_ms / C,
        decay_exc=np.exp(-dt_ms / _col(model.tau_syn_exc_ms)),
        decay_inh=np.exp(-dt_ms / _col(model.tau_syn_inh_ms)),
        hold_steps=_refractory(model, population, dt_ms), dt_ms=dt_ms,
    )
    if isinstance(model, CondLIF):
        return ConductanceStep(v_thresh=_col(model.V_th_mV), **common)
    return CondAdExStep(
        v_thresh=_col(model.V_peak_mV), V_T=_col(model.V_T_mV),
        Delta_T=_col(model.Delta_T_mV), a=_col(model.a_nS), tau_w=_col(model.tau_w_ms),
        b=_col(model.b_pA), v_peak=_col(model.V_peak_mV), **common)


#: the step records `one_step` returns, one per family of update rule
Step = LinearStep | IzhikevichStep | AdExStep | ConductanceStep


def one_step(model: NeuronModel, population: str, dt_ms: float) -> Step:
    """The per-step update of ``model`` at time step ``dt_ms``."""
    if isinstance(model, LIF):  # includes AdaptiveLIF
        return _lif_step(model, population, dt_ms)
    if isinstance(model, CubaLIF):
        return _cuba_step(model, population, dt_ms)
    if isinstance(model, Izhikevich):
        return _izh_step(model, population, dt_ms)
    if isinstance(model, AdEx):
        return _adex_step(model, population, dt_ms)
    if isinstance(model, (CondLIF, CondAdEx)):
        return _cond_step(model, population, dt_ms)
    raise ValidationError("Population", population, "model", "has no update rule", model.kind)
