"""Epigenetic gate and neuromodulated participation (`evospike.ir.gating`), one step at the end
of step n::

    c[n] = a c[n-1] + (1 - a) s[n] * 1000 / dt_ms
    g[n] = sigmoid(W_c c[n] + w_h h[n] + b)        (or a recalled pattern, see `recall`)
    m[n] = d m[n-1] + (1 - d) g[n]
    open = m[n] * A > theta_act

    f[n] = clip(base + gain * h[n], min_fraction, max_fraction);  takes part <=> u < f[n]

Shapes: ``(..., n_source)`` for the context, ``(..., n_target)`` for the gate, ``(...)`` for
per-trial values (the modulator level ``h``, the fraction ``f``)."""

from __future__ import annotations

from .array import (
    Array,
    argmax_last,
    as_float,
    clip,
    expand_last,
    sigmoid,
    sqrt,
    sum_last,
    take_last,
    where,
)


def context_rates(context: Array, spiked: Array, decay: float, rate_scale: float) -> Array:
    """``c = a c + (1 - a) s * rate_scale`` (Hz; ``rate_scale = 1000 / dt_ms``, ``spiked``
    1.0 where the source neuron fired)."""
    return context * decay + (1.0 - decay) * rate_scale * spiked


def gate_target(context: Array, w_context_t: Array, bias: Array, history: Array | None = None,
                w_history: Array | None = None) -> Array:
    """``g = sigmoid(c W_c^T + h w_h + b)``; ``w_context_t`` is ``W_c`` transposed,
    (n_source, n_target); no history term where ``history`` is None."""
    drive = context @ w_context_t + bias
    if history is not None:
        drive = drive + expand_last(history, drive) * w_history
    return sigmoid(drive)


def recall(context: Array, target: Array, decay: float, keys: Array, patterns: Array,
           similarity: float, recall_decay: float) -> tuple[Array, Array]:
    """Pattern memory: where the cosine between ``c`` and its closest key (``keys``: unit rows,
    (K, n_source)) reaches ``similarity`` (and ``c`` is not all zero), that key's pattern
    replaces the target and the gate relaxes with ``recall_decay``. Returns (target, decay),
    the decay per trial (it broadcasts against the gate)."""
    norm = sqrt(sum_last(context * context, keepdims=True))
    cosine = (context @ keys.T) / clip(norm, 1e-300)
    which = argmax_last(cosine)
    hit = (take_last(cosine, which) >= similarity) & (norm[..., 0] > 0)
    hit = expand_last(hit, target)
    return (where(hit, patterns[which], target, target),
            where(hit, recall_decay, decay, target))


def relax(gate: Array, target: Array, decay: Array | float) -> Array:
    """``m = d m + (1 - d) g``."""
    return gate * decay + (1.0 - decay) * target


def update_gate(gate: Array, context: Array, spiked: Array, *, w_context_t: Array,
                bias: Array, context_decay: float, gate_decay: float, rate_scale: float,
                history: Array | None = None, w_history: Array | None = None,
                keys: Array | None = None, patterns: Array | None = None,
                recall_similarity: float = 1.0,
                recall_decay: float = 0.0) -> tuple[Array, Array]:
    """One end-of-step update of the gate: returns (gate m[n], context c[n])."""
    context = context_rates(context, spiked, context_decay, rate_scale)
    target = gate_target(context, w_context_t, bias, history, w_history)
    decay = gate_decay
    if keys is not None:
        target, decay = recall(context, target, gate_decay, keys, patterns, recall_similarity,
                               recall_decay)
    return relax(gate, target, decay), context


def open_mask(gate: Array, theta_act: float, survival: Array | None = None) -> Array:
    """``m * A > theta_act`` (boolean; ``A``: an apoptosis survival factor, None: 1)."""
    level = gate if survival is None else gate * survival
    return level > theta_act


def activation_ratio(is_open: Array, like: Array) -> Array:
    """The fraction of the population that is open, (...) in ``like``'s dtype."""
    mask = as_float(is_open, like)
    return sum_last(mask) / mask.shape[-1]


def participation_fraction(level: Array, base: float, gain: float, lo: float,
                           hi: float) -> Array:
    """``f = clip(base + gain * h, lo, hi)``."""
    return clip(base + gain * level, lo, hi)


def participating(uniforms: Array, fraction: Array) -> Array:
    """``u < f`` (boolean, (..., n)); ``uniforms`` the step's draws, ``fraction`` per trial.
    Compare in float64 on every backend (the draws are float64)."""
    return uniforms < expand_last(fraction, uniforms)
