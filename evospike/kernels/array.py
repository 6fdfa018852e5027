"""The few array operations that NumPy and torch spell differently, dispatched on the type of
the first array. Everything else the kernels use (``+``, ``*``, ``@``, comparisons, ``&``,
indexing with ``...``) is written the same for both."""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _torch():
    import torch

    return torch


def exp(x: Array) -> Array:
    return _torch().exp(x) if is_torch(x) else np.exp(x)


def abs_(x: Array) -> Array:
    return x.abs() if is_torch(x) else np.abs(x)


def sqrt(x: Array) -> Array:
    return x.sqrt() if is_torch(x) else np.sqrt(x)


def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``, written out (not torch.sigmoid) so that both libraries round
    alike."""
    return 1.0 / (1.0 + exp(-x))


def clip(x: Array, lo: float | None = None, hi: float | None = None) -> Array:
    if is_torch(x):
        return x.clamp(lo, hi)
    if lo is None and hi is None:
        return x
    # no infinite bound: np.clip would turn an integer array into floats
    return np.clip(x, lo, hi)


def where(cond: Array, a: Array | float, b: Array | float, like: Array) -> Array:
    """``a`` where ``cond`` else ``b``; scalars take the dtype and device of ``like``."""
    if is_torch(like):
        torch = _torch()

        def t(v):
            return v if is_torch(v) else torch.as_tensor(v, dtype=like.dtype, device=like.device)

        return torch.where(cond, t(a), t(b))
    return np.where(cond, a, b)


def as_float(mask: Array, like: Array) -> Array:
    """A boolean mask as numbers in ``like``'s dtype."""
    return mask.to(like.dtype) if is_torch(mask) else np.asarray(mask, dtype=like.dtype)


def sum_last(x: Array, keepdims: bool = False) -> Array:
    return x.sum(dim=-1, keepdim=keepdims) if is_torch(x) else x.sum(axis=-1, keepdims=keepdims)


def argmax_last(x: Array) -> Array:
    """Index of the largest entry along the last axis (the first of equal ones)."""
    return x.argmax(dim=-1) if is_torch(x) else np.argmax(x, axis=-1)


def take_last(x: Array, index: Array) -> Array:
    """``x[..., index[...]]``: one entry per row of the last axis."""
    if is_torch(x):
        return x.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return np.take_along_axis(x, np.asarray(index)[..., None], axis=-1)[..., 0]


def shift_in(history: Array, value: Array) -> Array:
    """Drop the first entry of the last axis and append ``value``."""
    if is_torch(history):
        return _torch().cat([history[..., 1:], value.unsqueeze(-1)], dim=-1)
    return np.concatenate([history[..., 1:], np.asarray(value)[..., None]], axis=-1)


def arange_like(n: int, like: Array) -> Array:
    """``0 .. n-1`` as int64, on ``like``'s device."""
    if is_torch(like):
        return _torch().arange(n, device=like.device)
    return np.arange(n)


def ranks_descending(key: Array) -> Array:
    """Per row of the last axis, each entry's place when sorted by decreasing ``key``, equal
    keys by increasing index (0: the largest)."""
    if is_torch(key):
        torch = _torch()
        order = torch.sort(key, dim=-1, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(-1, order, torch.arange(key.shape[-1], device=key.device)
                      .expand_as(order).contiguous())
        return rank
    order = np.argsort(-key, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(key.shape[-1]), order.shape),
                      axis=-1)
    return rank


def expand_last(x: Array | float, like: Array) -> Array:
    """``x[..., None]``: a per-trial value against per-neuron arrays (a float stays one)."""
    if isinstance(x, (int, float)):
        return x
    return x.unsqueeze(-1) if is_torch(x) else np.asarray(x)[..., None]
