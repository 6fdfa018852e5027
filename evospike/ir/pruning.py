"""Terminal-attractor pruning as a node of the IR: which projections one global saliency
threshold covers, the error signal it reads, and the rule's constants, validated on
construction. The constants' table (`DEFAULTS`) and their checks (`validate_parameters`) live
here, with the node that declares them; the algorithm (saliency, threshold, schedule R(t),
regrowth, attractor term; its formulas and the sources of every default) is
`evospike.pruning`, whose NumPy core `TerminalAttractorPruner` a backend steps
(`TerminalAttractorPruning.make_pruner`). Plain data: NumPy and the IR only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from evospike.errors import ValidationError
from evospike.ir.checks import check_name
from evospike.ir.schedule import Phase

if TYPE_CHECKING:
    from evospike.pruning import TerminalAttractorPruner

__all__ = ["DEFAULTS", "TerminalAttractorPruning", "validate_parameters"]

#: Defaults shared by the node, the NumPy core and the torch wrapper (`evospike.pruning`'s
#: docstring has the table: each constant's meaning and source).
DEFAULTS: dict[str, object] = {
    "r_target": 0.3,
    "warmup_steps": 100.0,
    "tau_steps": 200.0,
    "lambda_stability": 1.0,
    "loss_window": 20,
    "saliency_momentum": 0.9,
    "update_interval": 1,
    "regrowth": True,
    "gamma": 1.0,
    "beta": 0.5,
    "eps": 1e-8,
    "attractor_lr": 1e-2,
    "clip_norm": 1.0,
    "fade_k": 10.0,
}


# --------------------------------------------------------------------------- validation
def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _check_real(kind: str, name: str, field_name: str, value: object, *, low: float,
                high: float = math.inf, low_open: bool = False, high_open: bool = False,
                allow_inf: bool = False) -> float:
    """Return ``value`` as a float if it lies in the interval, else raise naming the field."""
    lo = "(" if low_open else "["
    hi = ")" if high_open or high == math.inf else "]"
    interval = f"{lo}{low:g}, {high:g}{hi}"
    if not _is_real(value):
        raise ValidationError(kind, name, field_name, f"must be a number in {interval}", value)
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not (allow_inf and v > 0)):
        problem = f"must be a finite number in {interval}" if not allow_inf else (
            f"must be a number in {interval} (inf disables it)")
        raise ValidationError(kind, name, field_name, problem, value)
    bad = (v < low or (low_open and v == low) or v > high or (high_open and v == high))
    if bad:
        extra = " (inf disables it)" if allow_inf else ""
        raise ValidationError(kind, name, field_name, f"must lie in {interval}{extra}", value)
    return v


def _check_int(kind: str, name: str, field_name: str, value: object, *, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValidationError(kind, name, field_name, f"must be an integer >= {low}", value)
    if value < low:
        raise ValidationError(kind, name, field_name, f"must be an integer >= {low}", value)
    return int(value)


def validate_parameters(kind: str, name: str, **values: object) -> dict[str, object]:
    """Check the rule's constants (any subset of `DEFAULTS`' keys, plus ``t_warmup_ms``,
    ``tau_ms``, ``update_interval_ms`` of the IR node) and return them normalised (floats,
    ints, bools). A bad value raises `ValidationError` naming ``kind``, ``name``, the field and
    the value."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if key == "r_target":
            out[key] = _check_real(kind, name, key, value, low=0.0, high=1.0, high_open=True)
        elif key in ("warmup_steps", "t_warmup_ms"):
            out[key] = _check_real(kind, name, key, value, low=0.0)
        elif key in ("tau_steps", "tau_ms", "update_interval_ms"):
            out[key] = _check_real(kind, name, key, value, low=0.0, low_open=True)
        elif key == "lambda_stability":
            out[key] = _check_real(kind, name, key, value, low=0.0)
        elif key == "loss_window":
            out[key] = _check_int(kind, name, key, value, low=2)
        elif key == "saliency_momentum":
            out[key] = _check_real(kind, name, key, value, low=0.0, high=1.0, high_open=True)
        elif key == "update_interval":
            out[key] = _check_int(kind, name, key, value, low=1)
        elif key == "regrowth":
            if not isinstance(value, (bool, np.bool_)):
                raise ValidationError(kind, name, key, "must be True or False", value)
            out[key] = bool(value)
        elif key == "gamma":
            out[key] = _check_real(kind, name, key, value, low=0.0, low_open=True)
        elif key == "beta":
            out[key] = _check_real(kind, name, key, value, low=0.0, high=1.0, low_open=True,
                                   high_open=True)
        elif key == "eps":
            out[key] = _check_real(kind, name, key, value, low=0.0, low_open=True)
        elif key == "attractor_lr":
            out[key] = _check_real(kind, name, key, value, low=0.0)
        elif key in ("clip_norm", "fade_k"):
            out[key] = _check_real(kind, name, key, value, low=0.0, low_open=True,
                                   allow_inf=True)
        else:
            raise ValidationError(kind, name, key, "is not a parameter of the rule", value)
    return out


# --------------------------------------------------------------------------- IR node
@dataclass(frozen=True)
class TerminalAttractorPruning:
    """Plain-data description of terminal-attractor pruning for projections of a network.

    Inside a simulation the rule runs every ``update_interval_ms``: E is the state of the
    modulator ``modulator`` (an error signal, >= 0), the gradient of a synapse is minus the
    update its projection's own plasticity rule proposed over the interval, and one global
    threshold covers all ``projections``. Times are in ms of simulated time; the other fields
    are the constants of `evospike.pruning`'s table (``loss_window`` counts update intervals,
    ``attractor_lr`` is the attractor's step per update, in the projections' weight unit per
    unit of normalised gradient). `make_pruner` builds the NumPy core that carries it out.
    """

    name: str
    projections: tuple[str, ...]
    modulator: str
    r_target: float = 0.3
    t_warmup_ms: float = 1000.0
    tau_ms: float = 2000.0
    update_interval_ms: float = 10.0
    lambda_stability: float = 1.0
    loss_window: int = 20
    saliency_momentum: float = 0.9
    regrowth: bool = True
    gamma: float = 1.0
    beta: float = 0.5
    eps: float = 1e-8
    attractor_lr: float = 1e-2
    clip_norm: float = 1.0
    fade_k: float = 10.0

    KIND = "TerminalAttractorPruning"

    # the process-node interface (Network, StateMonitor, serializer); state per trial:
    # pruned_fraction, rate (R(t)), threshold (NaN while nothing is pruned), alpha
    kind: ClassVar[str] = "TerminalAttractorPruning"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.PRUNING
    state_names: ClassVar[tuple[str, ...]] = ("pruned_fraction", "rate", "threshold", "alpha")

    def state_size(self, net) -> int:
        return 1

    def check(self, net) -> None:
        """Validate the references into ``net`` (see `evospike.ir.structural`)."""
        from evospike.ir.structural import check_terminal_attractor_pruning

        check_terminal_attractor_pruning(self, net)

    def __post_init__(self) -> None:
        kind = self.KIND
        check_name(kind, self.name)
        projections = self.projections
        if isinstance(projections, str) or not isinstance(projections, Iterable):
            raise ValidationError(kind, self.name, "projections",
                                  "must be a sequence of projection names", projections)
        projections = tuple(projections)
        if not projections:
            raise ValidationError(kind, self.name, "projections",
                                  "must name at least one projection", projections)
        for proj in projections:
            if not isinstance(proj, str) or not proj:
                raise ValidationError(kind, self.name, "projections",
                                      "entries must be non-empty strings", proj)
        if len(set(projections)) != len(projections):
            dup = next(p for p in projections if projections.count(p) > 1)
            raise ValidationError(kind, self.name, "projections", "names a projection twice",
                                  dup)
        object.__setattr__(self, "projections", projections)
        if not isinstance(self.modulator, str) or not self.modulator:
            raise ValidationError(kind, self.name, "modulator",
                                  "must name the modulator that carries the error E",
                                  self.modulator)
        values = {k: getattr(self, k) for k in (
            "r_target", "t_warmup_ms", "tau_ms", "update_interval_ms", "lambda_stability",
            "loss_window", "saliency_momentum", "regrowth", "gamma", "beta", "eps",
            "attractor_lr", "clip_norm", "fade_k")}
        for key, value in validate_parameters(kind, self.name, **values).items():
            object.__setattr__(self, key, value)

    def to_dict(self) -> dict[str, object]:
        """Plain types only (str, float, int, bool, list of str), for a serializer."""
        out = asdict(self)
        out["projections"] = list(self.projections)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TerminalAttractorPruning:
        return cls(**dict(data))

    def make_pruner(self, shapes: Mapping[str, tuple[int, ...]]) -> TerminalAttractorPruner:
        """The NumPy core for this rule, to be stepped once per ``update_interval_ms``:
        warm-up and tau are converted from ms to update intervals. ``shapes`` maps each of
        ``projections`` to the shape of its weight array (for CSR: ``(n_synapses,)``)."""
        # the algorithm is not the IR's: imported when a backend builds it (evospike.pruning
        # imports this module for the node and its constants)
        from evospike.pruning import TerminalAttractorPruner

        if set(shapes) != set(self.projections):
            raise ValidationError(self.KIND, self.name, "shapes",
                                  f"must have exactly the projections {list(self.projections)}",
                                  sorted(shapes))
        dt = self.update_interval_ms
        return TerminalAttractorPruner(
            {k: shapes[k] for k in self.projections}, name=self.name,
            r_target=self.r_target, warmup_steps=self.t_warmup_ms / dt,
            tau_steps=self.tau_ms / dt, lambda_stability=self.lambda_stability,
            loss_window=self.loss_window, saliency_momentum=self.saliency_momentum,
            update_interval=1, regrowth=self.regrowth, gamma=self.gamma, beta=self.beta,
            eps=self.eps, attractor_lr=self.attractor_lr, clip_norm=self.clip_norm,
            fade_k=self.fade_k)
