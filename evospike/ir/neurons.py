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

Param = float | np.ndarray

RESET_MODES = ("value", "subtract")


@dataclass(frozen=True)
class _Range:
    low: float
    high: float
    low_inclusive: bool = True
    unit: str = ""


def _as_param(value: object) -> Param:
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False)
    if isinstance(value, (list, tuple)):
        return np.asarray(value, dtype=np.float64)
    return float(value)  # type: ignore[arg-type]


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

    def parameter_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "reset"]

    def parameters(self) -> dict[str, Param]:
        return {name: getattr(self, name) for name in self.parameter_names()}

    def default_initial(self) -> dict[str, float]:
        raise NotImplementedError

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.channel_targets)

    def validate(self, population: str, size: int) -> None:
        """Check every parameter: finite, in range, scalar or one value per neuron."""
        for name in self.parameter_names():
            raw = getattr(self, name)
            value = _as_param(raw)
            object.__setattr__(self, name, value)
            arr = np.asarray(value)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != size):
                raise ValidationError(
                    "Population", population, f"{self.kind}.{name}",
                    f"must be a scalar or have one value per neuron ({size})", arr.shape,
                )
            if not np.all(np.isfinite(arr)):
                raise ValidationError(
                    "Population", population, f"{self.kind}.{name}", "must be finite",
                    first_bad(arr, ~np.isfinite(arr)),
                )
            rng = self.ranges.get(name)
            if rng is not None:
                low_ok = np.all(arr >= rng.low) if rng.low_inclusive else np.all(arr > rng.low)
                if not (low_ok and np.all(arr <= rng.high)):
                    bad = (arr < rng.low) | (arr > rng.high) | (
                        (arr == rng.low) & (not rng.low_inclusive))
                    bracket = "[" if rng.low_inclusive else "("
                    raise ValidationError(
                        "Population", population, f"{self.kind}.{name}",
                        f"must lie in {bracket}{rng.low}, {rng.high}] {rng.unit}".rstrip(),
                        first_bad(arr, bad),
                    )
        volts = [np.asarray(getattr(self, p)) for p in self.voltage_params]
        if volts and all(np.all(np.abs(v) < 1.0) for v in volts) and any(
            np.any(v != 0) for v in volts
        ):
            raise ValidationError(
                "Population", population, f"{self.kind} voltages",
                "look like volts; voltage parameters are in millivolts (e.g. v_thresh_mV=-50)",
                {p: float(np.ravel(getattr(self, p))[0]) for p in self.voltage_params},
            )
        self._validate_relations(population)

    def _validate_relations(self, population: str) -> None:
        pass


def _check_reset(model: NeuronModel, population: str) -> None:
    reset = model.reset  # type: ignore[attr-defined]
    if reset not in RESET_MODES:
        raise ValidationError(
            "Population", population, f"{model.kind}.reset", f"must be one of {RESET_MODES}", reset
        )


def _check_thresh_above_reset(model: NeuronModel, population: str, thresh: str, reset: str) -> None:
    t, r = np.asarray(getattr(model, thresh)), np.asarray(getattr(model, reset))
    bad = t <= r
    if np.any(bad):
        t_b, r_b = np.broadcast_arrays(t, r)
        k = np.argwhere(np.atleast_1d(bad))[0][0] if np.ndim(bad) else None
        reset_value = r_b.item() if k is None else r_b[k].item()
        raise ValidationError(
            "Population", population, f"{model.kind}.{thresh}",
            f"must be above {reset} ({reset_value})", first_bad(t_b, bad),
        )


_TAU = _Range(0.0, 1e7, low_inclusive=False, unit="ms")
_TAU0 = _Range(0.0, 1e7, unit="ms")
_MV = _Range(-1000.0, 1000.0, unit="mV")


@dataclass
class LIF(NeuronModel):
    """Leaky integrate-and-fire neuron with exponential current synapses.

    ``tau_m dv/dt = (v_rest - v) + i_exc + i_inh + i_bias`` (ms, mV),
    ``tau_syn_exc di_exc/dt = -i_exc``, ``tau_syn_inh di_inh/dt = -i_inh``.

    Currents are expressed as the voltage they would hold the membrane at (R_m * I, in mV), as in
    Brian2's CUBA example. A spike is emitted when ``v > v_thresh_mV``; then ``v`` is reset (to
    ``v_reset_mV``, or by subtracting ``v_thresh_mV - v_reset_mV`` when ``reset="subtract"``) and
    held, not integrated, for ``tau_refrac_ms``. States: ``v``, ``i_exc``, ``i_inh`` (mV).
    """

    kind: ClassVar[str] = "LIF"
    state_names: ClassVar[tuple[str, ...]] = ("v", "i_exc", "i_inh")
    channel_targets: ClassVar[dict[str, str]] = {"exc": "i_exc", "inh": "i_inh", "v": "v"}
    ranges: ClassVar[dict[str, _Range]] = {
        "tau_m_ms": _TAU, "tau_syn_exc_ms": _TAU, "tau_syn_inh_ms": _TAU,
        "tau_refrac_ms": _TAU0, "v_rest_mV": _MV, "v_reset_mV": _MV, "v_thresh_mV": _MV,
        "i_bias_mV": _MV,
    }
    voltage_params: ClassVar[tuple[str, ...]] = ("v_rest_mV", "v_reset_mV", "v_thresh_mV")

    tau_m_ms: Param = 20.0
    v_rest_mV: Param = -65.0
    v_reset_mV: Param = -65.0
    v_thresh_mV: Param = -50.0
    tau_syn_exc_ms: Param = 5.0
    tau_syn_inh_ms: Param = 5.0
    tau_refrac_ms: Param = 0.0
    i_bias_mV: Param = 0.0
    reset: str = "value"

    def default_initial(self) -> dict[str, float]:
        return {"v": float(np.ravel(self.v_rest_mV)[0]), "i_exc": 0.0, "i_inh": 0.0}

    def _validate_relations(self, population: str) -> None:
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

    def _validate_relations(self, population: str) -> None:
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

    def default_initial(self) -> dict[str, float]:
        v0 = -65.0
        return {"v": v0, "u": float(np.ravel(self.b)[0]) * v0, "i_exc": 0.0, "i_inh": 0.0}

    def _validate_relations(self, population: str) -> None:
        _check_thresh_above_reset(self, population, "v_peak_mV", "c_mV")


NEURON_MODELS: dict[str, type[NeuronModel]] = {
    cls.kind: cls for cls in (LIF, AdaptiveLIF, CubaLIF, Izhikevich)
}

__all__ = ["NeuronModel", "LIF", "AdaptiveLIF", "CubaLIF", "Izhikevich", "NEURON_MODELS"]
