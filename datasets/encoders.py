"""Spike encoders: turn values into spike trains, time first.

Every encoder returns a float32 tensor ``[T, *shape]`` on the input's device and checks its
arguments (out-of-range values are refused, never clipped). Random encoders draw from
``generator`` if given, else from a new generator seeded with ``seed``, else from torch's global
generator; the same seed gives the same spikes.

- `rate_encode`: each step an independent Bernoulli draw with probability ``gain * x`` (or a
  Poisson count with mean ``gain * x``);
- `latency_encode`: one spike per value, earlier for larger values (time to first spike);
- `delta_encode` / `delta_decode`: level-crossing (send-on-delta) spikes of a signal, up and
  down channels, and the staircase they reconstruct;
- `tas_probabilities` / `tas_encode`: EvoSpikeNet's time-adaptive spike (TAS) encoding of token
  embeddings, ``P(s_it) = sigmoid(alpha * |e_i| / tau_window_i)``.
"""

from __future__ import annotations

import math

import torch

from evospike.errors import ValidationError


def _as_tensor(name: str, x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32,
                                                  torch.int64, torch.uint8, torch.bool)):
        raise ValidationError("encoder", name, "x", "must be a real-valued tensor", t.dtype)
    t = t.float() if not t.is_floating_point() else t
    if not torch.isfinite(t).all():
        raise ValidationError("encoder", name, "x", "has a non-finite value",
                              t[~torch.isfinite(t)][:3].tolist())
    return t


def _check_steps(name: str, n_steps) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValidationError("encoder", name, "n_steps", "must be an integer >= 1", n_steps)
    return n_steps


def _generator(device: torch.device, seed: int | None,
               generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None:
        return generator
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def rate_encode(x, n_steps: int, *, gain: float = 1.0, method: str = "bernoulli",
                seed: int | None = None, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Rate code: ``[n_steps, *x.shape]`` spikes whose mean per step is ``gain * x``.

    ``method="bernoulli"``: each step spikes (1) with probability ``p = gain * x``, which must
    lie in [0, 1]; ``"poisson"``: each step holds a Poisson count with mean ``gain * x >= 0``
    (can exceed 1 spike per step; the count over T steps is then Poisson(T * gain * x)).
    """
    x = _as_tensor("rate_encode", x)
    n_steps = _check_steps("rate_encode", n_steps)
    if not (math.isfinite(gain) and gain > 0):
        raise ValidationError("encoder", "rate_encode", "gain", "must be positive", gain)
    p = x * gain
    g = _generator(x.device, seed, generator)
    shape = (n_steps, *x.shape)
    if method == "bernoulli":
        bad = (p < 0) | (p > 1)
        if bad.any():
            raise ValidationError("encoder", "rate_encode", "gain * x",
                                  "must lie in [0, 1] (a spike probability per step)",
                                  p[bad][:3].tolist())
        u = torch.rand(shape, generator=g, device=x.device)
        return (u < p.unsqueeze(0)).float()
    if method == "poisson":
        if (p < 0).any():
            raise ValidationError("encoder", "rate_encode", "gain * x",
                                  "must be >= 0 (a mean count per step)", p[p < 0][:3].tolist())
        return torch.poisson(p.unsqueeze(0).expand(shape).contiguous(), generator=g).float()
    raise ValidationError("encoder", "rate_encode", "method", "must be 'bernoulli' or 'poisson'",
                          method)


def latency_encode(x, n_steps: int, *, threshold: float = 0.0) -> torch.Tensor:
    """Latency (time-to-first-spike) code: ``[n_steps, *x.shape]``, one spike per value.

    ``x`` in [0, 1]; the value spikes at step ``round((1 - x) * (n_steps - 1))`` (x = 1 at step
    0, x = 0 at the last step), so larger values spike earlier. Values ``<= threshold`` do not
    spike at all (``threshold=0`` silences exact zeros, e.g. blank pixels; ``threshold < 0``
    lets every value spike).
    """
    x = _as_tensor("latency_encode", x)
    n_steps = _check_steps("latency_encode", n_steps)
    bad = (x < 0) | (x > 1)
    if bad.any():
        raise ValidationError("encoder", "latency_encode", "x", "must lie in [0, 1]",
                              x[bad][:3].tolist())
    if not (math.isfinite(threshold) and threshold < 1):
        raise ValidationError("encoder", "latency_encode", "threshold", "must be below 1",
                              threshold)
    steps = torch.round((1.0 - x) * (n_steps - 1)).long()
    out = torch.zeros((n_steps, *x.shape), device=x.device)
    out.scatter_(0, steps.unsqueeze(0), 1.0)
    out *= (x > threshold).float().unsqueeze(0)
    return out


def delta_encode(signal, threshold: float, *, time_dim: int = 0) -> torch.Tensor:
    """Level-crossing (send-on-delta) code of a signal: ``[T, *other_dims, 2]``.

    The signal's axis ``time_dim`` (length T) becomes the first axis; the last axis holds the
    up (0) and down (1) channels. A reference level starts at the first sample; whenever the
    signal has risen ``threshold`` above it, an up spike is sent and the level moves up by
    ``threshold`` (down alike). A step that crosses k levels holds the count k (so
    `delta_decode` stays within ``threshold`` of the signal); step 0 never spikes. For an ECG
    beat batch ``[B, 1, L]`` use ``time_dim=-1``: the result is ``[L, B, 1, 2]``.
    """
    s = _as_tensor("delta_encode", signal)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValidationError("encoder", "delta_encode", "threshold", "must be positive",
                              threshold)
    if s.ndim == 0:
        raise ValidationError("encoder", "delta_encode", "signal", "must have a time axis",
                              tuple(s.shape))
    s = torch.movedim(s, time_dim, 0)
    out = torch.zeros((*s.shape, 2), device=s.device)
    level = s[0].clone()
    for t in range(1, s.shape[0]):
        diff = s[t] - level
        # levels crossed since the last spike; rounding toward zero keeps the hysteresis
        k = torch.trunc(diff / threshold)
        out[t, ..., 0] = k.clamp(min=0)
        out[t, ..., 1] = (-k).clamp(min=0)
        level = level + k * threshold
    return out


def delta_decode(spikes, threshold: float, initial) -> torch.Tensor:
    """The staircase a `delta_encode` spike train describes: ``[T, *other_dims]``,
    ``initial + threshold * cumsum(up - down)`` (``initial``: the first sample, shape
    ``other_dims``). It differs from the encoded signal by less than ``threshold`` everywhere.
    """
    sp = _as_tensor("delta_decode", spikes)
    if sp.ndim < 1 or sp.shape[-1] != 2:
        raise ValidationError("encoder", "delta_decode", "spikes",
                              "must end in an (up, down) axis of size 2", tuple(sp.shape))
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValidationError("encoder", "delta_decode", "threshold", "must be positive",
                              threshold)
    init = torch.as_tensor(initial, dtype=sp.dtype, device=sp.device)
    return init + threshold * torch.cumsum(sp[..., 0] - sp[..., 1], dim=0)


def tas_probabilities(embeddings, *, alpha: float = 1.0, tau_window=1.0, offset: float = 0.0,
                      mode: str = "token") -> torch.Tensor:
    """Per-step spike probability of EvoSpikeNet's TAS encoding (differentiable).

    ``P(s_it) = sigmoid(alpha * |e_i| / tau_window_i - offset)``: a token's spike density rises
    with its salience ``|e_i|``. ``embeddings``: ``[..., L, D]`` (L tokens of dimension D).
    ``mode="token"``: ``|e_i|`` is the L2 norm of token i's embedding, result ``[..., L]``;
    ``mode="feature"``: ``|e_id|`` per component, result ``[..., L, D]``. ``tau_window``: a
    positive window per token, broadcastable to ``[..., L]`` (a scalar for all). ``alpha`` > 0.
    ``offset`` (not in the spec, default 0) shifts the sigmoid: with offset 0 the spec's
    formula gives at least 0.5 even for zero salience; an offset lets density fall towards 0.
    """
    e = torch.as_tensor(embeddings)
    if not e.is_floating_point():
        raise ValidationError("encoder", "tas", "embeddings", "must be floating point", e.dtype)
    if e.ndim < 2:
        raise ValidationError("encoder", "tas", "embeddings", "must have shape [..., L, D]",
                              tuple(e.shape))
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValidationError("encoder", "tas", "alpha", "must be positive", alpha)
    if not math.isfinite(offset):
        raise ValidationError("encoder", "tas", "offset", "must be finite", offset)
    tau = torch.as_tensor(tau_window, dtype=e.dtype, device=e.device)
    if not (torch.isfinite(tau).all() and (tau > 0).all()):
        raise ValidationError("encoder", "tas", "tau_window", "must be positive and finite",
                              tau.flatten()[:3].tolist())
    if mode == "token":
        salience = e.norm(dim=-1)
    elif mode == "feature":
        salience = e.abs()
        tau = tau.unsqueeze(-1) if tau.ndim else tau
    else:
        raise ValidationError("encoder", "tas", "mode", "must be 'token' or 'feature'", mode)
    try:
        return torch.sigmoid(alpha * salience / tau - offset)
    except RuntimeError as exc:
        raise ValidationError("encoder", "tas", "tau_window",
                              f"does not broadcast to the token axis of {tuple(e.shape)}: "
                              f"{exc}", tuple(tau.shape)) from None


def tas_encode(embeddings, n_steps: int, *, alpha: float = 1.0, tau_window=1.0,
               offset: float = 0.0, mode: str = "token", seed: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """TAS spike trains: ``[n_steps, ...probabilities' shape]`` of Bernoulli draws with the
    `tas_probabilities` of each token (``mode="token"``: ``[T, ..., L]``, present token i at
    step t as ``spikes[t, ..., i, None] * e_i``; ``"feature"``: ``[T, ..., L, D]``)."""
    n_steps = _check_steps("tas_encode", n_steps)
    p = tas_probabilities(embeddings, alpha=alpha, tau_window=tau_window, offset=offset,
                          mode=mode).detach()
    g = _generator(p.device, seed, generator)
    u = torch.rand((n_steps, *p.shape), generator=g, device=p.device, dtype=p.dtype)
    return (u < p.unsqueeze(0)).float()
