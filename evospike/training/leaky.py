"""The neurons the field trains, in snnTorch's units: `Leaky` (no synaptic current) and
`Synaptic` (CubaLIF: a current that decays by ``alpha`` feeding a membrane that decays by
``beta``), whole sequences at a time, zero latency, with learnable ``beta``, ``alpha`` and
threshold.

Units. One call of snnTorch's ``Leaky`` is one step, and its input ``x[t]`` is added to the
membrane *undecayed*: ``mem = beta * mem + x``. These layers take ``x`` in exactly those units
(a snnTorch user's weights, initialisation and learning rate carry over unchanged). The
IR-faithful `evospike.training.neuron` layers instead integrate a current over the step, so one
unit of their weight moves the membrane by the per-step current-to-voltage factor
``gamma = P[v, i]`` (0.0099 of the threshold at tau_m 10 ms, tau_syn 5 ms, dt 0.1 ms) in the
step after it arrives: multiply their weights by ``gamma`` (and divide their learning rate by
it) to compare with snnTorch (docs/TRAINING.md, "Weight scales").

One step ``t`` of a layer (per neuron; ``s[t-1]`` is the previous step's spike, a constant for
the gradient as in snnTorch, and ``theta`` the threshold)::

    syn[t] = alpha * syn[t-1] + x[t]                  (Synaptic; Leaky: drive d[t] = x[t])
    p[t]   = beta * m[t-1] + d[t] - s[t-1] * theta    reset "subtract_after_decay" (snnTorch
                                                      ``reset_mechanism="subtract"``, default)
    p[t]   = beta * (1 - s[t-1]) * m[t-1] + d[t]      reset "zero_after_decay", Leaky (snnTorch
                                                      ``"zero"``)
    p[t]   = (1 - s[t-1]) * (beta * m[t-1] + d[t])    reset "zero_after_decay", Synaptic
    p[t]   = beta * m[t-1] + d[t]                     "subtract", "value", "none"
    s[t]   = p[t] > theta                             (strict; surrogate gradient at theta)
    m[t]   = p[t] - s[t] * theta                      "subtract" (ours: in the spike's step)
    m[t]   = 0 if s[t] else p[t]                      "value" (ours: reset to 0 in the step)
    m[t]   = p[t]                                     the other modes

The layer returns ``(s, m)``: ``m`` is snnTorch's ``mem`` (for the deferred resets, the spike
step's membrane before its reset). ``beta`` and ``alpha`` are clamped to [0, 1] in the forward,
as snnTorch does; a learnable threshold is clamped to at least `MIN_THRESHOLD`. For the
deferred modes the reset is detached, as in snnTorch; for "subtract"/"value" ``detach_reset``
chooses (SpikingJelly's option).

The time loop is one autograd node with BPTT written out (`leaky_sequence`); on the CPU both
loops run in a C kernel (`evospike.training.native`) when a compiler is there; the torch loops
below are the reference and the CUDA path. The gradients of ``beta``, ``alpha`` and the
threshold are reductions over time and batch done after the loop.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from evospike.errors import ValidationError

from . import native
from .layers import sparse_rows, spike_linear
from .neuron import SURROGATES, surrogate_backward

#: the reset conventions of `Leaky`/`Synaptic` (see the module docstring)
RESETS = ("subtract_after_decay", "zero_after_decay", "subtract", "value", "none")
#: a learnable threshold is kept at least this high (a threshold at or below the reset level of
#: 0 would fire every step and has no IR equivalent)
MIN_THRESHOLD = 1e-3
_DEFERRED = ("subtract_after_decay", "zero_after_decay")


def _mode_code(reset: str, synaptic: bool, detach_reset: bool) -> int:
    """The kernel's reset code: 0 SAD, 1 ZAD Leaky, 2 ZAD Synaptic, 3 subtract, 4 value,
    5 none; +8 when the same-step reset is not detached."""
    code = {"subtract_after_decay": 0, "zero_after_decay": 2 if synaptic else 1,
            "subtract": 3, "value": 4, "none": 5}[reset]
    if reset in ("subtract", "value") and not detach_reset:
        code += 8
    return code


def _shift(z: torch.Tensor) -> torch.Tensor:
    """z[t-1] at index t (zero at t = 0)."""
    return torch.cat([torch.zeros_like(z[:1]), z[:-1]], dim=0)


def _forward_torch(x, beta, theta, alpha, mode):
    T = x.shape[0]
    base = mode & 7
    p_all = torch.empty_like(x)
    m = torch.zeros_like(x[0])
    s = torch.zeros_like(x[0])
    syn = torch.zeros_like(x[0]) if alpha is not None else None
    syn_all = torch.empty_like(x) if alpha is not None else None
    m_all = torch.empty_like(x) if base in (3, 4) else None
    for t in range(T):
        if syn is not None:
            syn = alpha * syn + x[t]
            syn_all[t] = syn
            d = syn
        else:
            d = x[t]
        if base == 0:
            p = beta * m + d - s * theta
        elif base == 1:
            p = beta * ((1 - s) * m) + d
        elif base == 2:
            p = beta * m + d
            p = p - p * s
        else:
            p = beta * m + d
        p_all[t] = p
        s = (p > theta).to(x.dtype)
        if base == 3:
            m = p - s * theta
            m_all[t] = m
        elif base == 4:
            m = torch.where(s.bool(), torch.zeros_like(p), p)
            m_all[t] = m
        else:
            m = p
    spikes = (p_all > theta).to(x.dtype)
    return p_all, spikes, m_all, syn_all


def _backward_torch(gs, gm, p_all, spikes, m_all, syn_all, beta, theta, alpha, mode, sg):
    """BPTT (see `_LeakySequence.backward`); returns g_x, g_beta, g_theta, g_alpha (full
    (T, ...) arrays before the reductions for the three parameters)."""
    T = p_all.shape[0]
    base, attached = mode & 7, bool(mode & 8)
    s_prev = _shift(spikes)
    # r[t]: factor of beta * m[t-1] in p[t]; q[t]: factor of the drive d[t]
    r = 1 - s_prev if base in (1, 2) else None
    q = 1 - s_prev if base == 2 else None
    m_post = m_all if m_all is not None else p_all
    coef = 1 - spikes if base == 4 else None  # d m / d p (direct)
    dm_ds = None
    if attached:
        dm_ds = -theta.expand_as(p_all) if base == 3 else -p_all
    br = beta * (r if r is not None else torch.ones_like(p_all))  # d p[t] / d m[t-1]
    zero = torch.zeros_like(p_all[0])
    g_p = torch.empty_like(p_all)
    G_m = torch.empty_like(p_all)
    g_next = zero
    for t in range(T - 1, -1, -1):
        gmt = gm[t] if gm is not None else zero
        G = gmt + br[t + 1] * g_next if t + 1 < T else gmt.clone()
        G_m[t] = G
        gst = gs[t] if gs is not None else zero
        if dm_ds is not None:
            gst = gst + G * dm_ds[t]
        g = gst * sg[t] + (G * coef[t] if coef is not None else G)
        g_p[t] = g
        g_next = g
    g_stot = gs if gs is not None else torch.zeros_like(p_all)
    if dm_ds is not None:
        g_stot = g_stot + G_m * dm_ds
    g_d = g_p * q if q is not None else g_p
    if alpha is not None:
        g_syn = torch.empty_like(p_all)
        acc = zero
        for t in range(T - 1, -1, -1):
            acc = g_d[t] + alpha * acc
            g_syn[t] = acc
        g_x = g_syn
        g_alpha = g_syn * _shift(syn_all)
    else:
        g_x, g_alpha = g_d, None
    m_prev = _shift(m_post)
    g_beta = g_p * (m_prev * r if r is not None else m_prev)
    g_theta = -g_stot * sg
    if base == 3:
        g_theta = g_theta - G_m * spikes
    if base == 0:
        g_theta = g_theta - g_p * s_prev
    return g_x, g_beta, g_theta, g_alpha


def _per_neuron(n_shape, dtype, *params):
    """The parameters as contiguous per-neuron arrays of ``n_shape`` (None stays None)."""
    return [None if v is None else v.to(dtype).expand(n_shape).contiguous() for v in params]


def _save(ctx, outputs, b, th, a, mode, surrogate, surrogate_alpha, shapes, *extra):
    p_all, spikes, m_all, syn_all = outputs
    ctx.mode, ctx.surrogate, ctx.surrogate_alpha = mode, surrogate, surrogate_alpha
    ctx.shapes = shapes
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(p_all, spikes, m_all, syn_all, b, th, a, *extra)
    mem = m_all if m_all is not None else p_all
    # the returned membrane may be p_all itself: hand out a view autograd can track
    return spikes, mem.view_as(mem)


def _neuron_grads(ctx, gs, gm):
    """(g_x, g_bias, g_beta, g_theta, g_alpha) of a saved `_save`; the last four summed to the
    parameters' shapes (None for a missing alpha / bias)."""
    p_all, spikes, m_all, syn_all, b, th, a = ctx.saved_tensors[:7]
    if ctx.kernel:
        g_x, g_beta, g_theta, g_alpha, g_bias = native.leaky_backward(
            gs, gm, p_all, m_all, syn_all, b, th, a, ctx.mode, ctx.surrogate,
            ctx.surrogate_alpha)
    else:
        sg = surrogate_backward(ctx.surrogate)(torch.ones_like(p_all), p_all - th,
                                               ctx.surrogate_alpha)
        g_x, g_beta, g_theta, g_alpha = _backward_torch(
            gs, gm, p_all, spikes, m_all, syn_all, b, th, a, ctx.mode, sg)
        # per-neuron sums over time and batch
        g_beta = g_beta.sum(dim=(0, 1))
        g_theta = g_theta.sum(dim=(0, 1))
        g_alpha = g_alpha.sum(dim=(0, 1)) if g_alpha is not None else None
        g_bias = g_x.sum(dim=(0, 1))
    beta_shape, theta_shape, alpha_shape, bias_shape = ctx.shapes
    return (g_x, None if bias_shape is None else g_bias.sum_to_size(bias_shape),
            g_beta.sum_to_size(beta_shape), g_theta.sum_to_size(theta_shape),
            None if alpha_shape is None else g_alpha.sum_to_size(alpha_shape))


def _shapes(beta, theta, alpha, bias):
    return (beta.shape, theta.shape, None if alpha is None else alpha.shape,
            None if bias is None else bias.shape)


class _LeakySequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, beta, theta, alpha, mode, surrogate, surrogate_alpha):
        b, th, a, bi = _per_neuron(x.shape[2:], x.dtype, beta, theta, alpha, bias)
        ctx.kernel = native.available(x)
        with torch.no_grad():
            if ctx.kernel:  # the bias is added inside the kernel's loop, in the same rounding
                out = native.leaky_forward(x, b, th, a, mode, bi)
            else:
                out = _forward_torch(x + bi if bi is not None else x, b, th, a, mode)
        return _save(ctx, out, b, th, a, mode, surrogate, surrogate_alpha,
                     _shapes(beta, theta, alpha, bias))

    @staticmethod
    def backward(ctx, gs, gm):
        g_x, g_bias, g_beta, g_theta, g_alpha = _neuron_grads(ctx, gs, gm)
        need = ctx.needs_input_grad
        return (g_x if need[0] else None, g_bias if need[1] else None,
                g_beta if need[2] else None, g_theta if need[3] else None,
                g_alpha if need[4] else None, None, None, None)


class _LeakyLinear(torch.autograd.Function):
    """`leaky_sequence(spike_linear(s_in, weight), ...)` with the product fused into the
    kernel's time loop (`native.leaky_linear_forward`): the same numbers, without the
    (T, B, N) product tensor. CPU kernel only; the weight gradient is the event-driven one."""

    @staticmethod
    def forward(ctx, s_in, weight, rows, bias, beta, theta, alpha, mode, surrogate,
                surrogate_alpha):
        T, B = s_in.shape[:2]
        N = weight.shape[0]
        b, th, a, bi = _per_neuron((N,), s_in.dtype, beta, theta, alpha, bias)
        ctx.kernel = True
        ctx.rows, ctx.in_shape = rows, s_in.shape
        with torch.no_grad():
            out = native.leaky_linear_forward(rows, weight, T, B, b, th, a, mode, bi)
        return _save(ctx, out, b, th, a, mode, surrogate, surrogate_alpha,
                     _shapes(beta, theta, alpha, bias), weight)

    @staticmethod
    def backward(ctx, gs, gm):
        need = ctx.needs_input_grad
        p_all, _, m_all, syn_all, b, th, a, weight = ctx.saved_tensors
        if need[1]:  # the BPTT fused with the weight gradient (the same numbers)
            g_w, g_x, g_beta, g_theta, g_alpha, g_bias = native.leaky_linear_backward(
                ctx.rows, gs, gm, p_all, m_all, syn_all, b, th, a, ctx.mode, ctx.surrogate,
                ctx.surrogate_alpha, want_g_x=need[0])
            beta_shape, theta_shape, alpha_shape, bias_shape = ctx.shapes
            g_bias = None if bias_shape is None else g_bias.sum_to_size(bias_shape)
            g_beta = g_beta.sum_to_size(beta_shape)
            g_theta = g_theta.sum_to_size(theta_shape)
            g_alpha = None if alpha_shape is None else g_alpha.sum_to_size(alpha_shape)
        else:
            g_w = None
            g_x, g_bias, g_beta, g_theta, g_alpha = _neuron_grads(ctx, gs, gm)
        g_s = (g_x @ weight.to(g_x.dtype)).reshape(ctx.in_shape) if need[0] else None
        return (g_s, g_w, None, g_bias if need[3] else None, g_beta if need[4] else None,
                g_theta if need[5] else None, g_alpha if need[6] else None, None, None, None)


def leaky_sequence(x: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor,
                   reset: str = "subtract_after_decay", alpha: torch.Tensor | None = None,
                   surrogate: str = "atan", surrogate_alpha: float = 2.0,
                   detach_reset: bool = True, bias: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a `Leaky` (``alpha`` None) or `Synaptic` layer over all steps.

    ``x`` (T, B, *shape): the input of each step in snnTorch's units (added to the membrane
    undecayed, or to the synaptic current); ``bias`` (broadcastable to ``shape``) is added to
    every step's input, inside the loop (the same numbers as ``x + bias``, without the extra
    (T, B, *shape) tensor and its backward sum). ``beta``, ``threshold``, ``alpha``: tensors of
    shape () (one per layer) or broadcastable to ``shape`` (one per neuron), already clamped
    to their ranges. Returns ``(spikes, mem)``, both (T, B, *shape); see the module docstring
    for the step and the reset modes."""
    if reset not in RESETS:
        raise ValidationError("Layer", "leaky", "reset", f"must be one of {RESETS}", reset)
    if surrogate not in SURROGATES:
        raise ValidationError("Layer", "leaky", "surrogate", f"must be one of {SURROGATES}",
                              surrogate)
    mode = _mode_code(reset, alpha is not None, detach_reset)
    return _LeakySequence.apply(x, bias, beta, threshold, alpha, mode, surrogate,
                                float(surrogate_alpha))


def _param(name: str, field: str, value: object, low: float, high: float | None,
           low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        where = f"in {'(' if low_open else '['}{low}, {high}]" if high is not None else \
            f"> {low}"
        raise ValidationError("Layer", name, field, f"must be a number {where}", value)
    return float(value)


class LeakyLayer(nn.Module):
    """A fully connected projection (``nn.Linear``'s weights, bias and initialisation) feeding
    a `Leaky` (``alpha`` None) or `Synaptic` population, zero latency: the input of step ``t``
    reaches the membrane in step ``t``, as in snnTorch. The projection of all steps is one
    matrix product (event-driven when the input is sparse spikes).

    ``learn_beta`` / ``learn_threshold`` / ``learn_alpha`` make the parameter trainable;
    ``per_neuron`` gives each neuron its own (else one per layer)."""

    kind = "leaky"

    def __init__(self, name: str, in_shape: tuple[int, ...], size: int, *, beta: float = 0.95,
                 threshold: float = 1.0, reset: str = "subtract_after_decay",
                 alpha: float | None = None, learn_beta: bool = False,
                 learn_threshold: bool = False, learn_alpha: bool = False,
                 per_neuron: bool = False, bias: bool = True, surrogate: str = "atan",
                 surrogate_alpha: float = 2.0, detach_reset: bool = True):
        super().__init__()
        self.name = name
        self.in_shape = tuple(in_shape)
        self.out_shape = (int(size),)
        if reset not in RESETS:
            raise ValidationError("Layer", name, "reset", f"must be one of {RESETS}", reset)
        if surrogate not in SURROGATES:
            raise ValidationError("Layer", name, "surrogate", f"must be one of {SURROGATES}",
                                  surrogate)
        self.reset = reset
        self.surrogate = surrogate
        self.surrogate_alpha = _param(name, "surrogate_alpha", surrogate_alpha, 0.0, None,
                                      low_open=True)
        self.detach_reset = bool(detach_reset)
        self.synaptic = alpha is not None
        if self.synaptic:
            self.kind = "synaptic"
        shape = (int(size),) if per_neuron else ()

        def make(field, value, learn):
            t = torch.full(shape, value, dtype=torch.get_default_dtype())
            if learn:
                return nn.Parameter(t)
            self.register_buffer(field, t)
            return None

        beta_v = _param(name, "beta", beta, 0.0, 1.0)
        theta_v = _param(name, "threshold", threshold, 0.0, None, low_open=True)
        p = make("beta", beta_v, learn_beta)
        if p is not None:
            self.beta = p
        p = make("threshold", theta_v, learn_threshold)
        if p is not None:
            self.threshold = p
        if self.synaptic:
            alpha_v = _param(name, "alpha", alpha, 0.0, 1.0)
            p = make("alpha", alpha_v, learn_alpha)
            if p is not None:
                self.alpha = p
        fan_in = int(np.prod(in_shape))
        lin = nn.Linear(fan_in, int(size), bias=bias)  # snnTorch users' initialisation
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone()) if bias else None

    @property
    def size(self) -> int:
        return self.out_shape[0]

    def decays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(beta, threshold, alpha) as the forward uses them: clamped to their ranges."""
        beta = self.beta.clamp(0.0, 1.0)
        theta = self.threshold
        if isinstance(theta, nn.Parameter):
            theta = theta.clamp(min=MIN_THRESHOLD)
        alpha = self.alpha.clamp(0.0, 1.0) if self.synaptic else None
        return beta, theta, alpha

    def project(self, s_in: torch.Tensor) -> torch.Tensor:
        """The input of every step without the bias, (T, B, size): one product over all
        steps (the bias is added inside `leaky_sequence`)."""
        T, B = s_in.shape[:2]
        return spike_linear(s_in.reshape(T, B, -1), self.weight)

    def forward(self, s_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta, theta, alpha = self.decays()
        T, B = s_in.shape[:2]
        flat = s_in.reshape(T, B, -1)
        rows = sparse_rows(flat, self.weight)
        if rows is not None and self.size >= native.block_width(flat.dtype):
            # the event-driven product fused into the time loop (the same numbers)
            mode = _mode_code(self.reset, alpha is not None, self.detach_reset)
            return _LeakyLinear.apply(flat, self.weight, rows, self.bias, beta, theta, alpha,
                                      mode, self.surrogate, self.surrogate_alpha)
        z = spike_linear(flat, self.weight, rows) if rows is not None else \
            nn.functional.linear(flat.reshape(T * B, -1), self.weight).reshape(T, B, -1)
        return leaky_sequence(z, beta, theta, self.reset, alpha, self.surrogate,
                              self.surrogate_alpha, self.detach_reset, self.bias)


#: the resets of `RecurrentLeakyLayer` (snnTorch's RLeaky / RSynaptic "subtract", "zero",
#: "none")
RECURRENT_RESETS = ("subtract_after_decay", "zero_after_decay", "none")


class RecurrentLeakyLayer(LeakyLayer):
    """snnTorch's ``RLeaky`` / ``RSynaptic`` with ``all_to_all=True`` (``alpha`` given:
    RSynaptic) behind the layer's own fully connected input: each step adds the layer's own
    spikes of the step before through an ``nn.Linear(size, size)`` (``recurrent``,
    ``recurrent_bias``; snnTorch's initialisation)::

        rec[t] = V s[t-1] + b_V                       (s[-1] = 0: rec[0] = b_V)
        RLeaky:     base = beta * m[t-1] + x[t] + rec[t]
        RSynaptic:  syn[t] = alpha * syn[t-1] + x[t] + rec[t];  base = beta * m[t-1] + syn[t]
        p[t] = base - s[t-1] * theta      "subtract_after_decay" (snnTorch "subtract")
        p[t] = base - s[t-1] * base       "zero_after_decay" (snnTorch "zero"; for RLeaky
                                          this zeroes the input of that step too, unlike
                                          `Leaky`'s "zero")
        s[t] = p[t] > theta;  m[t] = p[t]

    as snnTorch computes it, operation for operation (``x[t]`` is the projection of the input
    plus its bias). The reset term's ``s[t-1]`` is detached (snnTorch's ``mem_reset``); the
    recurrent one is not: the gradient flows back through the recurrent spikes. The time loop
    runs step by step with autograd (the recurrent product of each step needs the spikes of
    the step before); the input projection of all steps is still one product."""

    def __init__(self, name: str, in_shape: tuple[int, ...], size: int, *,
                 recurrent_bias: bool = True, **kwargs):
        reset = kwargs.get("reset", "subtract_after_decay")
        if reset not in RECURRENT_RESETS:
            raise ValidationError("Layer", name, "reset",
                                  f"must be one of {RECURRENT_RESETS} for a recurrent layer",
                                  reset)
        super().__init__(name, in_shape, size, **kwargs)
        self.kind = "rsynaptic" if self.synaptic else "rleaky"
        lin = nn.Linear(int(size), int(size), bias=recurrent_bias)  # RLeaky's own recurrent
        self.recurrent = nn.Parameter(lin.weight.detach().clone())
        self.recurrent_bias = (nn.Parameter(lin.bias.detach().clone()) if recurrent_bias
                               else None)

    def forward(self, s_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .neuron import SpikeFunction

        beta, theta, alpha = self.decays()
        z = self.project(s_in)
        if self.bias is not None:
            z = z + self.bias
        zero = torch.zeros_like(z[0])
        m, s, syn = zero, zero, zero
        spikes, mems = [], []
        for t in range(z.shape[0]):
            rec = nn.functional.linear(s, self.recurrent, self.recurrent_bias)
            reset = s.detach()
            if alpha is not None:
                syn = alpha * syn + z[t] + rec
                base = beta * m + syn
            else:
                base = beta * m + z[t] + rec
            if self.reset == "subtract_after_decay":
                p = base - reset * theta
            elif self.reset == "zero_after_decay":
                p = base - reset * base
            else:
                p = base
            s = SpikeFunction.apply(p - theta, self.surrogate, self.surrogate_alpha)
            m = p
            spikes.append(s)
            mems.append(m)
        return torch.stack(spikes), torch.stack(mems)


def reference_step(x_t, state, beta, theta, alpha, reset, surrogate, surrogate_alpha,
                   detach_reset=True):
    """One step with autograd, the plain-torch reference of `leaky_sequence` (used by the
    tests and as documentation). ``state`` is ``(m, s, syn)``; returns ``(s, m, state)``."""
    from .neuron import SpikeFunction

    m, s_prev, syn = state
    if alpha is not None:
        syn = alpha * syn + x_t
        d = syn
    else:
        d = x_t
    sp = s_prev.detach()
    if reset == "subtract_after_decay":
        p = beta * m + d - sp * theta
    elif reset == "zero_after_decay":
        p = beta * ((1 - sp) * m) + d if alpha is None else (beta * m + d) * (1 - sp)
    else:
        p = beta * m + d
    s = SpikeFunction.apply(p - theta, surrogate, surrogate_alpha)
    sr = s.detach() if detach_reset else s
    if reset == "subtract":
        m = p - sr * theta
    elif reset == "value":
        m = p * (1 - sr)
    else:
        m = p
    return s, m, (m, s, syn)


__all__ = ["RECURRENT_RESETS", "RESETS", "LeakyLayer", "RecurrentLeakyLayer", "leaky_sequence",
           "reference_step"]
