"""EvoSpike's own neuron models as NIR nodes, and back (shared by export and import, so that
both sides compute the same NIR parameters from a model).

- `LIF` with exponential current synapses (inputs on ``exc``/``inh``, one synaptic time
  constant) is NIR's ``CubaLIF``, written in voltages relative to rest (``v' = v - v_rest``, so
  that NIR's implicit start at 0 is our start at rest):
  ``tau_mem = tau_m``, ``tau_syn = tau_syn_exc`` (s), ``r = 1``, ``v_leak = i_bias``,
  ``v_threshold = v_thresh - v_rest``, ``v_reset = v_reset - v_rest``, ``w_in = tau_syn``:
  read literally (an input spike of weight w is a Dirac impulse ``w delta(t)``) NIR's
  ``tau_syn dI/dt = -I + w_in S`` then makes I jump by w, which is our model. Read with
  ``discretisation="exact", w_in="dirac"``, the import reproduces our exact integration.
- A delta-synapse `LIF` (inputs on ``v`` only) is NIR's ``LIF`` with ``tau = tau_m``,
  ``r = tau_m`` (s) (v jumps by w per impulse) and the same offsets.
- A discrete `CubaLIF` is what forward Euler at ``dt`` makes of NIR's ODEs: with inputs on
  ``exc``/``inh`` NIR's ``CubaLIF`` with ``tau_syn = dt/du``, ``tau_mem = dt/dv``,
  ``r = 1/dv``, ``w_in = 1/du`` (snnTorch's unit gains), ``v_leak = bias/dv``; with inputs on
  ``v`` only NIR's ``LIF`` (``tau = dt/dv``, ``r = 1/dv``) or, with ``dv = 0``, ``IF``.

Each node carries ``metadata["evospike"]``: the model's parameters verbatim and the
conventions to read it with. `restore` gives the model back exactly when the node's NIR
parameters are still those the model maps to (a file edited since, by hand or by training in
another tool, is read by its NIR parameters instead).
"""

from __future__ import annotations

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.neurons import LIF, CubaLIF

#: how close a node's NIR parameters must be to the model's for `restore` to use the model
RTOL, ATOL = 1e-12, 1e-15


def _col(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()


def nir_parameters(model, n: int, dt_s: float, synaptic: bool,
                   name: str) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """(NIR node type, its parameters, the conventions that read it back) for population
    ``name`` of ``n`` neurons. ``synaptic``: its inputs arrive on ``exc``/``inh`` (else on
    ``v`` only). Raises `EvoSpikeError` naming the population for what NIR cannot hold."""
    def refuse(problem: str) -> EvoSpikeError:
        return EvoSpikeError(f"NIR export: population '{name}' {problem}")

    if type(model) is LIF:
        rest = _col(model.v_rest_mV, n)
        common = dict(v_leak=_col(model.i_bias_mV, n),
                      v_threshold=_col(model.v_thresh_mV, n) - rest,
                      v_reset=_col(model.v_reset_mV, n) - rest)
        tau_m = _col(model.tau_m_ms, n) * 1e-3
        if synaptic:
            tau_s = _col(model.tau_syn_exc_ms, n) * 1e-3
            return "CubaLIF", dict(tau_syn=tau_s, tau_mem=tau_m, r=np.ones(n), w_in=tau_s,
                                   **common), {"discretisation": "exact", "w_in": "dirac"}
        return "LIF", dict(tau=tau_m, r=tau_m.copy(), **common), {
            "discretisation": "exact", "w_in": "dirac"}
    if type(model) is CubaLIF:
        du, dv, bias = _col(model.du, n), _col(model.dv, n), _col(model.bias, n)
        thr, reset = _col(model.v_thresh, n), _col(model.v_reset, n)
        euler = {"discretisation": "euler", "w_in": "equation"}
        if synaptic:
            if np.any(du == 0) or np.any(dv == 0):
                raise refuse("has du = 0 or dv = 0: NIR's CubaLIF needs finite time "
                             "constants")
            return "CubaLIF", dict(tau_syn=dt_s / du, tau_mem=dt_s / dv, r=1.0 / dv,
                                   w_in=1.0 / du, v_leak=bias / dv, v_threshold=thr,
                                   v_reset=reset), euler
        if np.all(dv == 0):
            if np.any(bias != 0):
                raise refuse("has a bias and dv = 0: NIR's IF has no constant drive")
            return "IF", dict(r=np.full(n, 1.0 / dt_s), v_threshold=thr, v_reset=reset), euler
        if np.any(dv == 0):
            raise refuse("mixes leaky (dv > 0) and non-leaky (dv = 0) neurons; NIR's LIF "
                         "and IF are separate nodes")
        return "LIF", dict(tau=dt_s / dv, r=1.0 / dv, v_leak=bias / dv, v_threshold=thr,
                           v_reset=reset), euler
    raise refuse(f"is a {model.kind}; NIR export writes LIF (exponential or delta synapses) "
                 "and CubaLIF populations")


def model_metadata(model, conventions: dict[str, str]) -> dict:
    """``metadata["evospike"]`` of the node written from ``model``."""
    params = {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64))
              for k, v in model.parameters().items()}
    return {"model": model.kind, "reset": model.reset, "parameters": params,
            "conventions": dict(conventions)}


def node_metadata(node_obj) -> dict:
    meta = getattr(node_obj, "metadata", None)
    ext = meta.get("evospike") if isinstance(meta, dict) else None
    return ext if isinstance(ext, dict) else {}


def as_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return as_text(value.item())
    return str(value)


def restore(node_obj, kind: str, n: int, dt_s: float) -> tuple[object, str] | None:
    """(model, the channel its inputs arrive on) when ``node_obj`` was written by `save` from
    one of our models and its NIR parameters are still what that model maps to; else None."""
    ext = node_metadata(node_obj)
    if "model" not in ext or not isinstance(ext.get("parameters"), dict):
        return None
    cls = {"LIF": LIF, "CubaLIF": CubaLIF}.get(as_text(ext["model"]))
    if cls is None:
        return None
    params = {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64))
              for k, v in ext["parameters"].items()}
    try:
        model = cls(reset=as_text(ext.get("reset", "value")), **params)
    except (TypeError, ValueError, EvoSpikeError):
        return None
    synaptic = kind == "CubaLIF"
    try:
        want_kind, want, _ = nir_parameters(model, n, dt_s, synaptic, "?")
    except EvoSpikeError:
        return None
    if want_kind != kind:
        return None
    for field, value in want.items():
        have = np.asarray(getattr(node_obj, field, None), dtype=np.float64).ravel()
        if have.size not in (1, n) or not np.allclose(np.broadcast_to(have, (n,)), value,
                                                      rtol=RTOL, atol=ATOL):
            return None
    return model, ("exc" if synaptic else "v")
