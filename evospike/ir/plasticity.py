"""Plasticity rules of the IR: plain, validated parameter records attached to a projection by
name. Backends compile them; the rule's dynamics are defined here, once, for all of them.

Pair-based STDP (trace form). Each presynaptic neuron has a trace ``x`` (time constant
``tau_plus_ms``), each postsynaptic neuron a trace ``y`` (``tau_minus_ms``). In step n, after
the neurons have fired:

1. both traces decay by one step (``x *= exp(-dt / tau_plus)``, ``y *= exp(-dt / tau_minus)``);
2. for every presynaptic spike *arriving* in step n (emitted at n - delay: the synapse sees it
   at its arrival, as Brian2's ``on_pre`` does), the synapse is depressed by ``y`` of its
   postsynaptic neuron (post-before-pre), then ``x`` of the presynaptic neuron is raised;
3. for every postsynaptic spike of step n, ``y`` is raised, then each of the neuron's input
   synapses is potentiated by ``x`` of its presynaptic neuron (pre-before-post; a pre spike
   arriving in the same step counts as "before").

Raising a trace adds 1 (``pairing="all"``: every pair of spikes interacts) or sets it to 1
(``pairing="nearest"``: only the nearest pairs). With these traces a pre-before-post interval
``dt`` changes the weight by ``A+ exp(-dt / tau_plus)`` and a post-before-pre interval by
``-A- exp(-|dt| / tau_minus)``, scaled by the weight dependence:

- ``"additive"``: ``w += a_plus * x`` / ``w -= a_minus * y``, then clipped to [w_min, w_max]
  (hard bounds);
- ``"multiplicative"``: ``w += a_plus * x * (w_max - w)`` / ``w -= a_minus * y * (w - w_min)``
  (soft bounds), then clipped.

A spike is transmitted with the weight the synapse has when the spike arrives, before that
arrival's own update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evospike.errors import ValidationError

PAIRINGS = ("all", "nearest")
WEIGHT_DEPENDENCES = ("additive", "multiplicative")


@dataclass
class STDP:
    """Pair-based spike-timing-dependent plasticity on projection ``projection``.

    ``a_plus``/``a_minus`` are in the projection's weight unit for the additive rule and
    dimensionless (fractions of the distance to the bound) for the multiplicative rule;
    ``w_min``/``w_max`` in the weight unit."""

    name: str
    projection: str
    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    a_plus: float = 0.01
    a_minus: float = 0.0105
    pairing: str = "all"
    weight_dependence: str = "additive"
    w_min: float = 0.0
    w_max: float = 1.0

    def __post_init__(self) -> None:
        kind = "STDP"
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValidationError(kind, str(self.name), "name",
                                  "must be a non-empty string without '/'", self.name)
        for field in ("tau_plus_ms", "tau_minus_ms"):
            value = getattr(self, field)
            if not (np.isfinite(value) and 0 < value <= 1e7):
                raise ValidationError(kind, self.name, field, "must lie in (0, 1e7] ms", value)
            setattr(self, field, float(value))
        for field in ("a_plus", "a_minus", "w_min", "w_max"):
            value = getattr(self, field)
            if not np.isfinite(value):
                raise ValidationError(kind, self.name, field, "must be finite", value)
            setattr(self, field, float(value))
        for field in ("a_plus", "a_minus"):
            if getattr(self, field) < 0:
                raise ValidationError(kind, self.name, field,
                                      "must be >= 0 (the sign is fixed by the rule)",
                                      getattr(self, field))
        if not self.w_max > self.w_min:
            raise ValidationError(kind, self.name, "w_max", f"must exceed w_min ({self.w_min})",
                                  self.w_max)
        if self.pairing not in PAIRINGS:
            raise ValidationError(kind, self.name, "pairing", f"must be one of {PAIRINGS}",
                                  self.pairing)
        if self.weight_dependence not in WEIGHT_DEPENDENCES:
            raise ValidationError(kind, self.name, "weight_dependence",
                                  f"must be one of {WEIGHT_DEPENDENCES}", self.weight_dependence)


PLASTICITY_RULES: dict[str, type] = {"STDP": STDP}
