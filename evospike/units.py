"""Units. EvoSpike stores plain floats whose unit is part of the name (``tau_m_ms``,
``v_thresh_mV``, ``rate_hz``); this module parses the strings a user types on the command line
("1000ms", "1 s", "0.1ms") and checks values against ranges that would be absurd."""

from __future__ import annotations

import math
import re

from evospike.errors import ValidationError

_TIME_UNITS_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3, "min": 60_000.0}
# the sign is part of the number so that "-5ms" is refused as negative, not as unreadable
_TIME_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*$")


def parse_duration_ms(text: str | float | int, what: str = "duration",
                      allow_zero: bool = False) -> float:
    """Parse ``"1000ms"``, ``"1s"``, ``"250 us"`` or a bare number (milliseconds) into ms.
    A duration must be positive; ``allow_zero`` also admits 0 (a point in time, such as the
    start of a plot window)."""
    if isinstance(text, (int, float)):
        value, unit = float(text), "ms"
    else:
        match = _TIME_RE.match(str(text))
        if not match:
            raise ValidationError("Argument", what, "value", "is not a time like '1000ms' or '1s'",
                                  text)
        value, unit = float(match.group(1)), match.group(2) or "ms"
        if unit not in _TIME_UNITS_MS:
            raise ValidationError(
                "Argument", what, "unit",
                f"'{unit}' is unknown (use one of {sorted(_TIME_UNITS_MS)})", text,
            )
    ms = value * _TIME_UNITS_MS[unit]
    if not math.isfinite(ms) or ms < 0 or (ms == 0 and not allow_zero):
        raise ValidationError("Argument", what, "value",
                              "must be a finite time >= 0" if allow_zero else
                              "must be a positive, finite time", text)
    return ms


def steps_of(duration_ms: float, dt_ms: float, kind: str, name: str, field: str) -> int:
    """Whole number of time steps in ``duration_ms``; refuses durations that are not a whole
    number of steps instead of rounding them silently."""
    exact = duration_ms / dt_ms
    steps = round(exact)
    if abs(exact - steps) > 1e-6 * max(1.0, abs(exact)):
        raise ValidationError(
            kind, name, field,
            f"is not a whole number of {dt_ms} ms time steps ({exact:.6g} steps)", duration_ms,
        )
    return int(steps)


def run_steps(duration_ms: float, dt_ms: float, what: str = "duration",
              shown: object = None) -> int:
    """The number of steps a run of ``duration_ms`` takes at ``dt_ms``: at least one, and a
    whole number (checked before a run starts, so a mistyped duration costs no compile time).
    ``shown`` is the value as the user typed it, for the message."""
    shown = duration_ms if shown is None else shown
    exact = duration_ms / dt_ms
    steps = round(exact)
    if steps < 1:
        raise ValidationError("Argument", what, "value",
                              f"is shorter than one time step ({dt_ms} ms)", shown)
    if abs(exact - steps) > 1e-6 * max(1.0, abs(exact)):
        raise ValidationError("Argument", what, "value",
                              f"is not a whole number of {dt_ms} ms time steps "
                              f"({exact:.6g} steps)", shown)
    return int(steps)
