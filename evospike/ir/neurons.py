"""Neuron models of the IR: plain parameter records, no dynamics code.

Every parameter is a float or a NumPy array with one entry per neuron; the unit is in the
name. The equations are in each class docstring; `evospike.dynamics` turns them into the
exact one-step propagators that every backend uses.

Synaptic input arrives on named *channels*: ``"exc"`` and ``"inh"`` add the synaptic weight to
the excitatory / inhibitory current, ``"v"`` adds it straight to the membrane voltage. Weights
are added with their sign: an inhibitory weight is written negative, as in Brian2's CUBA example.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError, first_bad
from evospike.units import steps_of

Param = float | np.ndarray

#: "value": v = v_reset at the spike step; "subtract": v -= (v_thresh - v_reset) at the spike
#: step, before the next decay; "subtract_after_decay": the same amount subtracted in the next
#: step after the decay (snnTorch's default convention, see the LIF docstring)
RESET_MODES = ("value", "subtract", "subtract_after_decay")

#: the unit systems a network may declare (`Network.units`): ``"mV"``, the physiological models
#: with voltages in millivolts, or ``"dimensionless"``, machine-learning-style models (snnTorch,
#: NIR) whose threshold is 1.0 or 0.5 in no unit at all
UNIT_SYSTEMS = ("mV", "dimensionless")


@dataclass(frozen=True)
class _Range:
    low: float
    high: float
    low_inclusive: bool = True
    unit: str = ""
    #: appended to the message: the likely slip behind a value out of this range
    hint: str = ""
    #: the range is there to catch a units slip (volts for mV): it binds only a model in a
    #: network in mV, and is checked when the model is placed in one (`check_units`)
    about_units: bool = False


#: name of a neuron model in errors raised before it is placed in a population
MODEL_NAME = "model"


def _fail(model: NeuronModel, population: str | None, field: str, problem: str,
          value: object) -> ValidationError:
    """The error for ``field`` of ``model``: named by the model until it is placed in a
    population, by the population afterwards (so the user finds the line that built it)."""
    if population is None:
        return ValidationError(model.kind, MODEL_NAME, field, problem, value)
    return ValidationError("Population", population, f"{model.kind}.{field}", problem, value)


def _as_param(model: NeuronModel, population: str | None, field: str, value: object) -> Param:
    """``value`` as a float or a float64 array; a string, bool or None is refused rather than
    converted, because ``float("20")`` or ``True -> 1.0`` would hide a mistake."""
    problem = "must be a real number or a numeric array"
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise _fail(model, population, field, f"{problem}, not {type(value).__name__}", value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if not isinstance(value, (np.ndarray, list, tuple)):
        raise _fail(model, population, field, f"{problem}, not {type(value).__name__}", value)
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise _fail(model, population, field, f"{problem} (ragged sequence)", value) from None
    if arr.dtype.kind not in "iuf":
        raise _fail(model, population, field, f"{problem}, not an array of {arr.dtype}", value)
    return float(arr) if arr.ndim == 0 else arr.astype(np.float64)


@dataclass
class NeuronModel:
    """Base of the neuron models. Subclasses declare their parameters as dataclass fields."""

    kind: ClassVar[str] = ""
    #: state variables, in the order backends store them
    state_names: ClassVar[tuple[str, ...]] = ()
    #: channel -> state that a synaptic event on that channel adds to
    channel_targets: ClassVar[dict[str, str]] = {}
    #: parameter ranges outside which a value is refused as absurd
    ranges: ClassVar[dict[str, _Range]] = {}
    #: parameters that are voltages in mV (checked together for a volts/millivolts mix-up)
    voltage_params: ClassVar[tuple[str, ...]] = ()
    #: whether the model's equations hold in any unit, so that it may run in a network whose
    #: ``units`` is ``"dimensionless"``; its millivolt checks then wait for the network (a bare
    #: model does not know it). A model whose equations are written in mV (Izhikevich's
    #: ``0.04 v^2 + 5 v + 140``) is checked in mV when built and refused in such a network.
    unit_free: ClassVar[bool] = False

    def parameter_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "reset"]

    def parameters(self) -> dict[str, Param]:
        return {name: getattr(self, name) for name in self.parameter_names()}

    def default_initial(self) -> dict[str, float]:
        raise NotImplementedError

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.channel_targets)

    def __post_init__(self) -> None:
        self._check(None, None, None if self.unit_free else "mV")

    def validate(self, population: str, size: int, units: str | None = None) -> None:
        """Check every parameter again (the model may have been changed since it was built),
        now also that an array has one value per neuron of ``population``; with ``units``
        (`UNIT_SYSTEMS`), also the unit checks of `check_units`."""
        if units is not None:
            self.check_units(population, units)
        self._check(population, size, None if self.unit_free else "mV")

    def check_units(self, population: str, units: str) -> None:
        """The checks that need the network's unit system (``Network.units``): in ``"mV"`` the
        millivolt ranges and the volts/millivolts mix-up; in ``"dimensionless"`` none of them,
        and a model whose equations are written in mV is refused."""
        if units == "dimensionless" and not self.unit_free:
            raise _fail(self, population, "units",
                        f"{self.kind}'s equations are written in millivolts; it cannot run in a "
                        "network with units='dimensionless' (use LIF or CubaLIF there, or "
                        "units='mV')", units)
        self._check(population, None, units)

    def _check(self, population: str | None, size: int | None, units: str | None) -> None:
        """Types, finiteness, ranges and relations of the parameters; errors name ``population``
        or, for a model not yet placed in one, the model. ``units``: the network's unit system,
        None while it is not known (the unit checks then wait for `check_units`)."""
        for name in self.parameter_names():
            value = _as_param(self, population, name, getattr(self, name))
            object.__setattr__(self, name, value)
            arr = np.asarray(value)
            if arr.ndim > 1 or (size is not None and arr.ndim == 1 and arr.shape[0] != size):
                raise _fail(self, population, name,
                            "must be a scalar or have one value per neuron"
                            + ("" if size is None else f" ({size})"), arr.shape)
            if not np.all(np.isfinite(arr)):
                raise _fail(self, population, name, "must be finite",
                            first_bad(arr, ~np.isfinite(arr)))
            rng = self.ranges.get(name)
            # a millivolt range says nothing about a dimensionless model, or one whose network
            # is not yet known
            if rng is not None and rng.about_units and units != "mV":
                rng = None
            if rng is not None:
                low_ok = np.all(arr >= rng.low) if rng.low_inclusive else np.all(arr > rng.low)
                if not (low_ok and np.all(arr <= rng.high)):
                    bad = (arr < rng.low) | (arr > rng.high) | (
                        (arr == rng.low) & (not rng.low_inclusive))
                    bracket = "[" if rng.low_inclusive else "("
                    raise _fail(self, population, name,
                                f"must lie in {bracket}{rng.low}, {rng.high}] {rng.unit}".rstrip()
                                + rng.hint, first_bad(arr, bad))
        volts = [np.asarray(getattr(self, p)) for p in self.voltage_params]
        if units == "mV" and volts and all(np.all(np.abs(v) < 1.0) for v in volts) and any(
            np.any(v != 0) for v in volts
        ):
            raise _fail(self, population, "voltages",
                        "look like volts; voltage parameters are in millivolts "
                        "(e.g. v_thresh_mV=-50)",
                        {p: float(np.ravel(getattr(self, p))[0]) for p in self.voltage_params})
        self._validate_relations(population)

    def _validate_relations(self, population: str | None) -> None:
        pass

    def check_incoming(self, kind: str, name: str, channel: str, weights: object) -> None:
        """Refuse synaptic input this model cannot take, naming the sending node (``kind``
        ``name``: a Projection onto channel ``channel`` with ``weights``, or a PoissonInput with
        its weight). Called before the generic "is not a channel" check, so that a model can
        say what is missing; the base model takes any weight on any of its channels."""

    def time_constant_names(self) -> list[str]:
        """Parameters that are time constants of a decay (``tau_*_ms`` except refractory
        periods): each must be at least one time step."""
        return [p for p in self.parameter_names()
                if p.startswith("tau_") and p.endswith("_ms") and "refrac" not in p]

    def check_time_step(self, population: str, dt_ms: float) -> None:
        """The checks that need the network's time step, done once in the IR so that every
        backend refuses the same models: no time constant shorter than ``dt_ms`` (almost always
        seconds typed where milliseconds are meant), and a refractory period that is a whole
        number of steps (Brian2 would round it, torch cannot)."""
        for name in self.time_constant_names():
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            below = arr < dt_ms * (1.0 - 1e-9)
            if np.any(below):
                raise _fail(self, population, name,
                            f"is shorter than the time step dt = {dt_ms} ms (time constants "
                            "are in milliseconds: was it given in seconds?)",
                            first_bad(arr, below))
        if "tau_refrac_ms" in self.parameter_names():
            for tau in np.unique(np.asarray(self.tau_refrac_ms, dtype=np.float64)):
                steps_of(float(tau), dt_ms, "Population", population,
                         f"{self.kind}.tau_refrac_ms")


def _check_reset(model: NeuronModel, population: str | None) -> None:
    reset = model.reset  # type: ignore[attr-defined]
    if not isinstance(reset, str) or reset not in RESET_MODES:
        raise _fail(model, population, "reset", f"must be one of {RESET_MODES}", reset)
    if reset == "subtract_after_decay":
        # the deferred subtraction lands in the step after the spike, which a refractory hold
        # would swallow: the two conventions do not compose, so refuse rather than pick one
        taus = np.asarray(model.tau_refrac_ms)  # type: ignore[attr-defined]
        if np.any(taus != 0):
            raise _fail(model, population, "tau_refrac_ms",
                        "must be 0 with reset='subtract_after_decay' (snnTorch's convention "
                        "has no refractory period)", first_bad(taus, taus != 0))


def _check_thresh_above_reset(model: NeuronModel, population: str | None, thresh: str,
                              reset: str) -> None:
    t, r = np.asarray(getattr(model, thresh)), np.asarray(getattr(model, reset))
    bad = t <= r
    if np.any(bad):
        t_b, r_b = np.broadcast_arrays(t, r)
        k = np.argwhere(np.atleast_1d(bad))[0][0] if np.ndim(bad) else None
        reset_value = r_b.item() if k is None else r_b[k].item()
        raise _fail(model, population, thresh, f"must be above {reset} ({reset_value})",
                    first_bad(t_b, bad))


_TAU = _Range(0.0, 1e7, low_inclusive=False, unit="ms")
_TAU0 = _Range(0.0, 1e7, unit="ms")
#: a membrane voltage beyond +-200 mV is no neuron's: almost always a units slip
_MV = _Range(-200.0, 200.0, unit="mV",
             hint=" (a membrane voltage in millivolts: is this a units slip?)", about_units=True)
#: a drive (R * I, in mV) may push far past threshold, but not by volts
_DRIVE = _Range(-1000.0, 1000.0, unit="mV", about_units=True)
#: a threshold far above any voltage is a neuron that integrates but never fires (a readout,
#: `evospike.training.neuron.READOUT_THRESH_MV`); beyond a volt it is a units slip
_THRESH = _Range(-200.0, 1000.0, unit="mV",
                 hint=" (a threshold in millivolts: is this a units slip?)", about_units=True)


@dataclass
class LIF(NeuronModel):
    """Leaky integrate-and-fire neuron with exponential current synapses.

    ``tau_m dv/dt = (v_rest - v) + i_exc + i_inh + i_bias`` (ms, mV),
    ``tau_syn_exc di_exc/dt = -i_exc``, ``tau_syn_inh di_inh/dt = -i_inh``.

    Currents are expressed as the voltage they would hold the membrane at (R_m * I, in mV), as in
    Brian2's CUBA example. A spike is emitted when ``v > v_thresh_mV``; then ``v`` is reset and
    held, not integrated, for ``tau_refrac_ms``. States: ``v``, ``i_exc``, ``i_inh`` (mV).

    The reset, per step n with ``beta = exp(-dt / tau_m)``, ``theta = v_thresh_mV - v_reset_mV``,
    ``u[n]`` the exact decay plus input of the step (``u[n] = beta v[n-1] + ...``, see
    `evospike.dynamics`), ``s[n] = u'[n] > v_thresh_mV`` and ``v[n]`` the recorded voltage:

    - ``reset="value"`` (default): ``v[n] = v_reset_mV if s[n] else u[n]``;
    - ``reset="subtract"``: ``v[n] = u[n] - s[n] theta`` (subtracted before the next decay, so
      the next step sees ``beta (u[n] - theta)``);
    - ``reset="subtract_after_decay"``: ``u'[n] = u[n] - s[n-1] theta``, ``v[n] = u'[n]``: the
      spike of step n-1 subtracts ``theta`` in step n after the decay, and the recorded voltage
      of the spike step is not yet reset. This is snnTorch's ``Leaky``/``Synaptic``
      ``reset_mechanism="subtract"`` (``mem = beta mem + x - s_prev theta``); it differs from
      ``"subtract"`` by ``(1 - beta) theta`` per spike. It requires ``tau_refrac_ms = 0``.

    With ``"value"`` and ``"subtract"``, ``u'[n] = u[n]``. See docs/PORTING.md for snnTorch.
    """

    kind: ClassVar[str] = "LIF"
    state_names: ClassVar[tuple[str, ...]] = ("v", "i_exc", "i_inh")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "i_exc", "inh": "i_inh", "v": "v"}
    ranges: ClassVar[dict[str, _Range]] = {
        "tau_m_ms": _TAU, "tau_syn_exc_ms": _TAU, "tau_syn_inh_ms": _TAU,
        "tau_refrac_ms": _TAU0, "v_rest_mV": _MV, "v_reset_mV": _MV, "v_thresh_mV": _THRESH,
        "i_bias_mV": _DRIVE,
    }
    voltage_params: ClassVar[tuple[str, ...]] = ("v_rest_mV", "v_reset_mV", "v_thresh_mV")
    unit_free: ClassVar[bool] = True

    tau_m_ms: Param = 20.0
    v_rest_mV: Param = -65.0
    v_reset_mV: Param = -65.0
    v_thresh_mV: Param = -50.0
    tau_syn_exc_ms: Param = 5.0
    tau_syn_inh_ms: Param = 5.0
    tau_refrac_ms: Param = 0.0
    i_bias_mV: Param = 0.0
    reset: str = "value"

    def default_initial(self) -> dict[str, Param]:
        # each neuron at its own rest (v_rest may be per neuron)
        v0 = self.v_rest_mV
        v0 = float(v0) if np.ndim(v0) == 0 else np.asarray(v0, dtype=np.float64)
        return {"v": v0, "i_exc": 0.0, "i_inh": 0.0}

    def _validate_relations(self, population: str | None) -> None:
        _check_reset(self, population)
        _check_thresh_above_reset(self, population, "v_thresh_mV", "v_reset_mV")


@dataclass
class AdaptiveLIF(LIF):
    """LIF (see `LIF`) whose threshold rises by ``delta_thresh_mV`` at each spike and relaxes
    back with ``tau_adapt_ms``: spike when ``v > v_thresh_mV + theta``,
    ``tau_adapt d theta/dt = -theta``. States: ``v``, ``i_exc``, ``i_inh``, ``theta`` (mV)."""

    kind: ClassVar[str] = "AdaptiveLIF"
    state_names: ClassVar[tuple[str, ...]] = ("v", "i_exc", "i_inh", "theta")
    ranges: ClassVar[dict[str, _Range]] = {
        **LIF.ranges, "tau_adapt_ms": _TAU, "delta_thresh_mV": _Range(0.0, 1000.0, unit="mV"),
    }

    tau_adapt_ms: Param = 100.0
    delta_thresh_mV: Param = 1.0

    def default_initial(self) -> dict[str, float]:
        return {**super().default_initial(), "theta": 0.0}


@dataclass
class CubaLIF(NeuronModel):
    """The two-state current-based LIF that Intel Loihi implements (Lava's ``LIF`` process).

    Discrete time, one update per step, in the chip's arbitrary units::

        u[t] = (1 - du) * u[t-1] + a_in[t]
        v[t] = (1 - dv) * v[t-1] + u[t] + bias + i_ext[t]
        spike if v[t] > v_thresh; then v[t] = v_reset

    ``du`` and ``dv`` are decay fractions per time step (0..1), so this model's dynamics depend
    on the step count, not on ``dt``. All synaptic channels (``exc``, ``inh``) feed ``u``;
    channel ``v`` adds to ``v`` directly. States: ``u``, ``v``.
    """

    kind: ClassVar[str] = "CubaLIF"
    unit_free: ClassVar[bool] = True
    state_names: ClassVar[tuple[str, ...]] = ("u", "v")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "u", "inh": "u", "v": "v"}
    ranges: ClassVar[dict[str, _Range]] = {
        "du": _Range(0.0, 1.0), "dv": _Range(0.0, 1.0),
        "v_thresh": _Range(0.0, 1e12, low_inclusive=False), "tau_refrac_ms": _TAU0,
    }

    du: Param = 0.1
    dv: Param = 0.1
    bias: Param = 0.0
    v_thresh: Param = 10.0
    v_reset: Param = 0.0
    tau_refrac_ms: Param = 0.0
    reset: str = "value"

    def default_initial(self) -> dict[str, float]:
        return {"u": 0.0, "v": 0.0}

    def _validate_relations(self, population: str | None) -> None:
        _check_reset(self, population)
        _check_thresh_above_reset(self, population, "v_thresh", "v_reset")


@dataclass
class Izhikevich(NeuronModel):
    """Izhikevich (2003) neuron with exponential current synapses.

    ``dv/dt = 0.04 v^2 + 5 v + 140 - u + I`` (v in mV, t in ms, I in mV/ms),
    ``du/dt = a (b v - u)``, ``I = i_exc + i_inh + i_bias``; when ``v > v_peak_mV``:
    ``v = c_mV``, ``u += d``. The quadratic part has no exact solution: (v, u) are integrated
    by forward Euler over one step, the linear synaptic currents exactly. States: ``v``, ``u``,
    ``i_exc``, ``i_inh``.
    """

    kind: ClassVar[str] = "Izhikevich"
    state_names: ClassVar[tuple[str, ...]] = ("v", "u", "i_exc", "i_inh")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "i_exc", "inh": "i_inh", "v": "v"}
    ranges: ClassVar[dict[str, _Range]] = {
        "a": _Range(0.0, 10.0, low_inclusive=False), "b": _Range(-10.0, 10.0),
        "c_mV": _MV, "d": _Range(-1000.0, 1000.0), "v_peak_mV": _MV,
        "tau_syn_exc_ms": _TAU, "tau_syn_inh_ms": _TAU, "i_bias": _Range(-1e4, 1e4),
    }
    voltage_params: ClassVar[tuple[str, ...]] = ("c_mV", "v_peak_mV")

    a: Param = 0.02
    b: Param = 0.2
    c_mV: Param = -65.0
    d: Param = 8.0
    v_peak_mV: Param = 30.0
    tau_syn_exc_ms: Param = 5.0
    tau_syn_inh_ms: Param = 5.0
    i_bias: Param = 0.0

    def default_initial(self) -> dict[str, Param]:
        v0 = -65.0
        # u starts at its fixed point b * v0 for each neuron's own b (b may be per neuron)
        b = self.b
        u0 = float(b) * v0 if np.ndim(b) == 0 else np.asarray(b, dtype=np.float64) * v0
        return {"v": v0, "u": u0, "i_exc": 0.0, "i_inh": 0.0}

    def _validate_relations(self, population: str | None) -> None:
        _check_thresh_above_reset(self, population, "v_peak_mV", "c_mV")


#: a current in pA beyond +-1 uA is no single neuron's: almost always nA or A typed as pA
_PA = _Range(-1e6, 1e6, unit="pA", hint=" (currents are in picoamperes)")


@dataclass
class AdEx(NeuronModel):
    """Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005) with exponential
    current synapses. Units: pF, nS, mV, pA, ms (so pA / pF = mV/ms and nS * mV = pA)::

        C dv/dt     = -g_L (v - E_L) + g_L Delta_T exp((min(v, V_peak) - V_T) / Delta_T)
                      - w + i_exc + i_inh + I_e + i_ext
        tau_w dw/dt = a (v - E_L) - w
        tau_syn_exc di_exc/dt = -i_exc,   tau_syn_inh di_inh/dt = -i_inh

    A spike is emitted when ``v >= V_peak_mV``; then ``v = V_reset_mV`` and ``w += b_pA``, and
    ``v`` is held (not integrated) for ``tau_refrac_ms`` while ``w`` keeps integrating (Brian2's
    ``(unless refractory)``; NEST's aeif models do the same).

    Integration (`evospike.dynamics.adex_euler`): (v, w) by forward Euler over one step of the
    network's ``dt`` -- Brian2's ``euler`` method, so the Brian2 backend, which emits these
    equations, and torch take the same steps; the synaptic currents decay exactly. The exponent's
    argument is clamped at ``V_peak`` so that ``exp`` never sees a voltage above the spike cut
    (an initial state or a ``v``-channel event could put one there); a time step longer than
    ``C / g_L`` is refused (forward Euler diverges near ``2 C / g_L``).

    Defaults: the pyramidal cell of Brette & Gerstner (2005), reset to ``E_L``, cut at 0 mV.
    Synaptic channels ``exc`` / ``inh`` add the weight (pA) to ``i_exc`` / ``i_inh``; ``v`` adds
    it (mV) to the voltage. Injected currents (`Network.inject_current`) are in pA.
    States: ``v`` (mV), ``w_adapt`` (the adaptation current ``w``), ``i_exc``, ``i_inh`` (pA).
    The state is not called plain ``w`` because Brian2 names every synaptic weight ``w`` and
    refuses a postsynaptic variable of the same name.
    """

    kind: ClassVar[str] = "AdEx"
    state_names: ClassVar[tuple[str, ...]] = ("v", "w_adapt", "i_exc", "i_inh")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "i_exc", "inh": "i_inh", "v": "v"}
    ranges: ClassVar[dict[str, _Range]] = {
        "C_pF": _Range(1e-3, 1e7, unit="pF",
                       hint=" (capacitance in picofarads: is this a units slip?)"),
        "g_L_nS": _Range(1e-4, 1e6, unit="nS",
                         hint=" (conductance in nanosiemens: is this a units slip?)"),
        "E_L_mV": _MV, "V_T_mV": _MV, "V_reset_mV": _MV, "V_peak_mV": _MV,
        "Delta_T_mV": _Range(0.0, 100.0, low_inclusive=False, unit="mV"),
        "a_nS": _Range(-1e6, 1e6, unit="nS"), "tau_w_ms": _TAU, "b_pA": _PA,
        "tau_refrac_ms": _TAU0, "tau_syn_exc_ms": _TAU, "tau_syn_inh_ms": _TAU, "I_e_pA": _PA,
    }
    voltage_params: ClassVar[tuple[str, ...]] = ("E_L_mV", "V_T_mV", "V_reset_mV", "V_peak_mV")

    C_pF: Param = 281.0
    g_L_nS: Param = 30.0
    E_L_mV: Param = -70.6
    V_T_mV: Param = -50.4
    Delta_T_mV: Param = 2.0
    a_nS: Param = 4.0
    tau_w_ms: Param = 144.0
    b_pA: Param = 80.5
    V_reset_mV: Param = -70.6
    V_peak_mV: Param = 0.0
    tau_refrac_ms: Param = 0.0
    tau_syn_exc_ms: Param = 5.0
    tau_syn_inh_ms: Param = 5.0
    I_e_pA: Param = 0.0

    def default_initial(self) -> dict[str, Param]:
        # each neuron at its own rest (E_L may be per neuron), with no adaptation current
        return {"v": self.E_L_mV, "w_adapt": 0.0, "i_exc": 0.0, "i_inh": 0.0}

    def _validate_relations(self, population: str | None) -> None:
        _check_thresh_above_reset(self, population, "V_peak_mV", "V_reset_mV")
        # below V_T the exponential never takes off: the cut would act as a plain threshold
        _check_thresh_above_reset(self, population, "V_peak_mV", "V_T_mV")

    def check_time_step(self, population: str, dt_ms: float) -> None:
        super().check_time_step(population, dt_ms)
        _check_euler_limit(self, population, dt_ms)


def _check_euler_limit(model: NeuronModel, population: str, dt_ms: float) -> None:
    """Forward Euler on the membrane diverges near dt = 2 C / g_L: refuse dt > C / g_L."""
    tau_m = np.asarray(model.C_pF, dtype=np.float64) / np.asarray(  # type: ignore[attr-defined]
        model.g_L_nS, dtype=np.float64)  # type: ignore[attr-defined]
    too_long = dt_ms > tau_m * (1.0 + 1e-9)
    if np.any(too_long):
        raise _fail(model, population, "C_pF / g_L_nS",
                    f"(the membrane time constant, ms) must be at least the time step "
                    f"dt = {dt_ms} ms: forward Euler would diverge",
                    first_bad(tau_m, too_long))


#: the conductance channels of the conductance-based models, and the unit of their weights
CONDUCTANCE_CHANNELS = ("exc", "inh")


def _check_conductance_input(model: NeuronModel, kind: str, name: str, channel: str,
                             weights: object) -> None:
    """A conductance-based model takes conductance increments (nS, never negative) on
    ``exc``/``inh``; anything else is refused saying what is missing."""
    field = "target" if kind == "Projection" else "channel"
    if channel not in CONDUCTANCE_CHANNELS:
        raise ValidationError(kind, name, field,
                              f"is not a channel of {model.kind} {CONDUCTANCE_CHANNELS}: a "
                              "conductance-based neuron takes conductance increments (nS) on "
                              "'exc' and 'inh' only and has no voltage-jump synapse (use LIF "
                              "or AdEx for channel 'v')", channel)
    w = np.asarray(weights, dtype=np.float64)
    negative = w < 0
    if np.any(negative):
        raise ValidationError(kind, name, "weights" if kind == "Projection" else "weight",
                              f"must be >= 0 onto channel '{channel}' of {model.kind}: a weight "
                              "there is a conductance increment in nS, and inhibition comes "
                              "from the reversal potential E_inh_mV, not from a negative sign",
                              first_bad(w, negative))


_PF = _Range(1e-3, 1e7, unit="pF", hint=" (capacitance in picofarads: is this a units slip?)")
_NS = _Range(1e-4, 1e6, unit="nS", hint=" (conductance in nanosiemens: is this a units slip?)")


@dataclass
class CondLIF(NeuronModel):
    """Leaky integrate-and-fire neuron with exponentially decaying synaptic *conductances* and
    reversal potentials: PyNN's ``IF_cond_exp``, NEST's ``iaf_cond_exp``, the cell of the
    Vogels-Abbott COBA network (Brette et al. 2007, benchmark 1). Units: pF, nS, mV, pA, ms
    (nS * mV = pA, pA / pF = mV/ms)::

        C dv/dt = g_L (E_L - v) + g_exc (E_exc - v) + g_inh (E_inh - v) + I_e + i_ext
        tau_syn_exc dg_exc/dt = -g_exc,   tau_syn_inh dg_inh/dt = -g_inh

    A spike is emitted when ``v > V_th_mV``; then ``v = V_reset_mV`` and ``v`` is held (not
    integrated) for ``tau_refrac_ms`` while the conductances keep decaying (the LIF rule, see
    `evospike.dynamics`).

    **Weights.** Channels ``exc`` and ``inh`` only; a synaptic weight is a conductance
    increment in **nS**, added to ``g_exc`` / ``g_inh`` when the event arrives, and must be
    >= 0 (inhibition comes from ``E_inh_mV``, not from a sign). There is no ``v`` channel.
    Injected currents (`Network.inject_current`) are in pA.

    **Integration** (`evospike.dynamics.cond_lif_voltage`), per step of ``dt`` with the state
    at the step start: the conductances decay exactly, ``g' = g exp(-dt / tau_syn)``, then this
    step's events are added; ``v`` is advanced by exponential Euler with the conductances held
    at their step-start values: with ``g_tot = g_L + g_exc + g_inh`` and
    ``v_inf = (g_L E_L + g_exc E_exc + g_inh E_inh + I) / g_tot``,
    ``v' = v_inf + (v - v_inf) exp(-dt g_tot / C)``. This is exact while the conductances are
    constant, unconditionally stable, first order in ``dt`` otherwise (the error comes from
    holding the decaying conductances fixed over a step: on the COBA cell under 6 and 67 nS
    events it is at most 0.17 mV at dt = 0.1 ms and halves with dt; forward Euler's is three
    times that; tests/test_coba.py). Brian2's ``exponential_euler`` computes the same update,
    so the Brian2 backend matches it to rounding.

    Defaults: the COBA benchmark cell (200 pF, 10 nS: tau_m = 20 ms; E_L = V_reset = -60 mV,
    V_th = -50 mV, E_exc = 0 mV, E_inh = -80 mV, tau_syn 5 / 10 ms, 5 ms refractory).
    States: ``v`` (mV), ``g_exc``, ``g_inh`` (nS).
    """

    kind: ClassVar[str] = "CondLIF"
    state_names: ClassVar[tuple[str, ...]] = ("v", "g_exc", "g_inh")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "g_exc", "inh": "g_inh"}
    ranges: ClassVar[dict[str, _Range]] = {
        "C_pF": _PF, "g_L_nS": _NS, "E_L_mV": _MV, "V_th_mV": _MV, "V_reset_mV": _MV,
        "E_exc_mV": _MV, "E_inh_mV": _MV, "tau_syn_exc_ms": _TAU, "tau_syn_inh_ms": _TAU,
        "tau_refrac_ms": _TAU0, "I_e_pA": _PA,
    }
    voltage_params: ClassVar[tuple[str, ...]] = ("E_L_mV", "V_th_mV", "V_reset_mV", "E_exc_mV",
                                                 "E_inh_mV")

    C_pF: Param = 200.0
    g_L_nS: Param = 10.0
    E_L_mV: Param = -60.0
    V_th_mV: Param = -50.0
    V_reset_mV: Param = -60.0
    E_exc_mV: Param = 0.0
    E_inh_mV: Param = -80.0
    tau_syn_exc_ms: Param = 5.0
    tau_syn_inh_ms: Param = 10.0
    tau_refrac_ms: Param = 5.0
    I_e_pA: Param = 0.0

    def default_initial(self) -> dict[str, Param]:
        # each neuron at its own rest (E_L may be per neuron), no open synaptic conductance
        return {"v": self.E_L_mV, "g_exc": 0.0, "g_inh": 0.0}

    def _validate_relations(self, population: str | None) -> None:
        _check_thresh_above_reset(self, population, "V_th_mV", "V_reset_mV")

    def check_incoming(self, kind: str, name: str, channel: str, weights: object) -> None:
        _check_conductance_input(self, kind, name, channel, weights)


@dataclass
class CondAdEx(NeuronModel):
    """Adaptive exponential integrate-and-fire neuron (see `AdEx`) with exponentially decaying
    synaptic conductances and reversal potentials: NEST's ``aeif_cond_exp``, PyNN's
    ``EIF_cond_exp_isfa_ista``. Units: pF, nS, mV, pA, ms::

        C dv/dt     = -g_L (v - E_L) + g_L Delta_T exp((min(v, V_peak) - V_T) / Delta_T)
                      - w + g_exc (E_exc - v) + g_inh (E_inh - v) + I_e + i_ext
        tau_w dw/dt = a (v - E_L) - w
        tau_syn_exc dg_exc/dt = -g_exc,   tau_syn_inh dg_inh/dt = -g_inh

    Spike at ``v >= V_peak_mV``: ``v = V_reset_mV``, ``w += b_pA``, ``v`` held for
    ``tau_refrac_ms`` while ``w`` integrates and the conductances decay (as `AdEx`).

    **Weights**: as `CondLIF`: channels ``exc``/``inh`` only, conductance increments in nS,
    never negative. **Integration** (`evospike.dynamics.cond_adex_euler`): (v, w) by forward
    Euler over one step (`AdEx`'s scheme, Brian2's ``euler``: the exponential term rules out
    exponential Euler), with the synaptic current ``g (E - v)`` at the step start; the
    conductances decay exactly and this step's events are then added. Forward Euler is stable
    while ``dt (g_L + g_exc + g_inh) / C < 2``: a time step longer than ``C / g_L`` is refused,
    and the open synaptic conductance must stay well below ``C / dt`` (2000 nS for 200 pF at
    0.1 ms).

    Defaults: `AdEx`'s (Brette & Gerstner 2005) with E_exc = 0 mV, E_inh = -80 mV and 5 ms
    synaptic time constants. States: ``v`` (mV), ``w_adapt`` (pA), ``g_exc``, ``g_inh`` (nS).
    """

    kind: ClassVar[str] = "CondAdEx"
    state_names: ClassVar[tuple[str, ...]] = ("v", "w_adapt", "g_exc", "g_inh")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "g_exc", "inh": "g_inh"}
    ranges: ClassVar[dict[str, _Range]] = {**AdEx.ranges, "E_exc_mV": _MV, "E_inh_mV": _MV}
    voltage_params: ClassVar[tuple[str, ...]] = AdEx.voltage_params + ("E_exc_mV", "E_inh_mV")

    C_pF: Param = 281.0
    g_L_nS: Param = 30.0
    E_L_mV: Param = -70.6
    V_T_mV: Param = -50.4
    Delta_T_mV: Param = 2.0
    a_nS: Param = 4.0
    tau_w_ms: Param = 144.0
    b_pA: Param = 80.5
    V_reset_mV: Param = -70.6
    V_peak_mV: Param = 0.0
    tau_refrac_ms: Param = 0.0
    E_exc_mV: Param = 0.0
    E_inh_mV: Param = -80.0
    tau_syn_exc_ms: Param = 5.0
    tau_syn_inh_ms: Param = 5.0
    I_e_pA: Param = 0.0

    def default_initial(self) -> dict[str, Param]:
        return {"v": self.E_L_mV, "w_adapt": 0.0, "g_exc": 0.0, "g_inh": 0.0}

    def _validate_relations(self, population: str | None) -> None:
        _check_thresh_above_reset(self, population, "V_peak_mV", "V_reset_mV")
        _check_thresh_above_reset(self, population, "V_peak_mV", "V_T_mV")

    def check_time_step(self, population: str, dt_ms: float) -> None:
        super().check_time_step(population, dt_ms)
        _check_euler_limit(self, population, dt_ms)

    def check_incoming(self, kind: str, name: str, channel: str, weights: object) -> None:
        _check_conductance_input(self, kind, name, channel, weights)


NEURON_MODELS: dict[str, type[NeuronModel]] = {
    cls.kind: cls for cls in (LIF, AdaptiveLIF, CubaLIF, Izhikevich, AdEx, CondLIF, CondAdEx)
}

__all__ = ["NeuronModel", "LIF", "AdaptiveLIF", "CubaLIF", "Izhikevich", "AdEx", "CondLIF",
           "CondAdEx", "CONDUCTANCE_CHANNELS", "NEURON_MODELS"]
