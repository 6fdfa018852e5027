"""Apoptosis evaluation (`evospike.ir.apoptosis`, steps 1-4), at the end of each period of
``every_steps`` steps, per trial and neuron::

    O      = spikes in the period / period length (Hz), appended to the last ``window`` rates
    H      = sigmoid(Var(O_recent) / variance_scale_hz2 - tau)   (0 variance with < 2 periods)
    H      = 1 where silent for longer than silent_ms or O > ceiling_hz
    A      = 1 if H <= tau_a else exp(-lambda_a (H - tau_a))
    low    = low + 1 where A < floor else 0;   dies <=> alive and low >= patience

A dead neuron reads ``H = 1``, ``A = 0``. Rebirth and synapse removal change connectivity and
stay in the engine."""

from __future__ import annotations

from typing import NamedTuple

from .array import (
    Array,
    arange_like,
    as_float,
    clip,
    exp,
    expand_last,
    shift_in,
    sigmoid,
    sum_last,
    where,
)


class Evaluation(NamedTuple):
    history: Array  # (..., n, window) rates (Hz), newest last
    filled: Array  # (..., n) int: periods in the history
    health: Array  # H (1 for the dead)
    survival: Array  # A (0 for the dead)
    low: Array  # evaluations in a row with A < floor
    died: Array  # bool: died at this evaluation
    alive: Array  # bool


def push_rate(history: Array, filled: Array, rate: Array, window: int) -> tuple[Array, Array]:
    """Append the period's rate to the history (the oldest drops out)."""
    return shift_in(history, rate), clip(filled + 1, None, window)


def rate_variance(history: Array, filled: Array) -> Array:
    """Population variance of the ``filled`` newest rates of each history (0 below two)."""
    window = history.shape[-1]
    used = as_float(arange_like(window, history) >= expand_last(window - filled, history),
                    history)
    n_used = as_float(clip(filled, 1), history)
    mean = sum_last(history * used) / n_used
    var = sum_last(((history - expand_last(mean, history)) * used) ** 2) / n_used
    return where(filled >= 2, var, 0.0, var)


def health(variance: Array, variance_scale_hz2: float, tau: float) -> Array:
    """``H = sigmoid(Var / variance_scale_hz2 - tau)``."""
    return sigmoid(variance / variance_scale_hz2 - tau)


def survival(health: Array, tau_a: float, lambda_a: float) -> Array:
    """``A = 1`` if ``H <= tau_a`` else ``exp(-lambda_a (H - tau_a))``."""
    return where(health <= tau_a, 1.0, exp(-lambda_a * (health - tau_a)), health)


def evaluate(node, history: Array, filled: Array, low: Array, alive: Array, rate: Array,
             silent_ms: Array | None = None) -> Evaluation:
    """One evaluation of `Apoptosis` ``node``. ``rate``: the period's rates (Hz);
    ``silent_ms``: how long each neuron has been silent (ms), needed where ``node.silent_ms``
    is set."""
    history, filled = push_rate(history, filled, rate, node.window)
    h = health(rate_variance(history, filled), node.variance_scale_hz2, node.tau)
    pathological = None
    if node.silent_ms is not None:
        pathological = silent_ms > node.silent_ms
    if node.ceiling_hz is not None:
        runaway = rate > node.ceiling_hz
        pathological = runaway if pathological is None else pathological | runaway
    if pathological is not None:
        h = where(pathological, 1.0, h, h)
    a = survival(h, node.tau_a, node.lambda_a)
    low = where(a < node.floor, low + 1, 0, low)
    died = alive & (low >= node.patience)
    alive = alive & ~died
    return Evaluation(history, filled, where(alive, h, 1.0, h), where(alive, a, 0.0, a), low,
                      died, alive)
