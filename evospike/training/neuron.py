"""The trainable LIF neuron: the IR's `LIF` (exponential current synapses) stepped exactly as
every backend steps it (`evospike.dynamics`), with a surrogate gradient at the threshold.

Units. Training works in *normalised* voltage ``u = (v - v_rest) / S`` with
``S = v_thresh - v_rest`` (mV), so the threshold is at ``u = 1`` whatever the millivolt values;
currents are normalised the same way. The affine map is exact, so a trained layer exports to
millivolts by multiplying weights by ``S`` (`evospike.training.export`).

One step ``n`` of a layer, with ``a[n]`` the synaptic events arriving in step ``n`` (the
presynaptic spikes of step ``n - 1`` times the weights, delay one step) and ``e[n]`` a direct
voltage drive (an injected current ``G I[n] / S``)::

    u_pre[n] = beta * u[n-1] + gamma * i[n-1] + b + e[n]     (exact propagator, dynamics.py)
    i[n]     = alpha * i[n-1] + a[n]                          (events added after integration)
    s[n]     = u_pre[n] > theta                               (strict, as every backend)
    u[n]     = u_reset if s[n] else u_pre[n]                  (or u_pre - (theta - u_reset))

with ``alpha = P[i,i]``, ``beta = P[v,v]``, ``gamma = P[v,i]`` taken from `one_step` on the IR
model, so the numbers are the backends' own. Refractory periods are not trained
(``tau_refrac_ms`` must be 0; `NeuronSpec` refuses anything else).

`lif_sequence` runs the whole time loop of a layer in one autograd node: the forward loop
without a graph, the backward loop (BPTT) written out by hand, which is what makes training
fast on the CPU (no autograd graph of T x ops); on the CPU both loops run in a small C kernel
(`evospike.training.native`) when a C compiler is there. The surrogate derivative at the
threshold is SpikingJelly's (`spikingjelly.activation_based.surrogate`), chosen by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evospike.dynamics import one_step
from evospike.errors import ValidationError
from evospike.ir.neurons import LIF

from . import native

#: surrogate name -> SpikingJelly backward function ``f(grad_output, x, alpha) -> (grad, None)``
SURROGATES = ("atan", "sigmoid", "super_spike", "piecewise_quadratic", "piecewise_exp")

#: the non-spiking readout's threshold (mV): the top of the IR's allowed voltage range
READOUT_THRESH_MV = 1000.0


def surrogate_backward(name: str):
    """SpikingJelly's surrogate-gradient function ``(grad_output, x, alpha) -> grad``."""
    try:
        from spikingjelly.activation_based import surrogate as sj
    except ImportError as exc:
        from evospike.errors import EvoSpikeError

        raise EvoSpikeError(f"training takes its surrogate gradients from SpikingJelly, which "
                            f"is not installed ({exc}); install it with "
                            f"pip install -e '.[train]'") from None

    table = {
        "atan": sj.atan_backward,
        "sigmoid": sj.sigmoid_backward,
        "super_spike": sj.super_spike_backward,
        "piecewise_quadratic": sj.piecewise_quadratic_backward,
        "piecewise_exp": sj.piecewise_exp_backward,
    }
    if name not in table:
        raise ValidationError("NeuronSpec", "neuron", "surrogate", f"must be one of {SURROGATES}",
                              name)
    fn = table[name]
    return lambda grad, x, alpha: fn(grad, x, alpha)[0]


@dataclass(frozen=True)
class NeuronSpec:
    """The LIF every trained layer uses (millivolts, milliseconds) and its surrogate gradient.

    ``surrogate`` names a SpikingJelly surrogate (see `SURROGATES`), ``surrogate_alpha`` its
    sharpness; ``detach_reset`` stops the gradient through the reset (SpikingJelly's option of
    the same name)."""

    tau_m_ms: float = 10.0
    tau_syn_ms: float = 5.0
    v_rest_mV: float = -65.0
    v_reset_mV: float = -65.0
    v_thresh_mV: float = -50.0
    reset: str = "value"
    tau_refrac_ms: float = 0.0
    surrogate: str = "atan"
    surrogate_alpha: float = 2.0
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.tau_refrac_ms != 0.0:
            raise ValidationError("NeuronSpec", "neuron", "tau_refrac_ms",
                                  "must be 0 for trained layers (refractoriness is not "
                                  "differentiated through)", self.tau_refrac_ms)
        if self.surrogate not in SURROGATES:
            raise ValidationError("NeuronSpec", "neuron", "surrogate",
                                  f"must be one of {SURROGATES}", self.surrogate)
        if not (isinstance(self.surrogate_alpha, (int, float)) and self.surrogate_alpha > 0):
            raise ValidationError("NeuronSpec", "neuron", "surrogate_alpha", "must be > 0",
                                  self.surrogate_alpha)
        if abs(self.tau_m_ms - self.tau_syn_ms) < 1e-9 * self.tau_m_ms:
            raise ValidationError("NeuronSpec", "neuron", "tau_syn_ms",
                                  "must differ from tau_m_ms (Brian2's exact integrator divides "
                                  "by their difference)", self.tau_syn_ms)
        if self.reset == "subtract_after_decay":
            # the training kernels reset in the spike's own step; refuse, never run "value"
            raise ValidationError("NeuronSpec", "neuron", "reset",
                                  "must be 'value' or 'subtract' in training (the deferred "
                                  "snnTorch reset is not carried by the training kernels)",
                                  self.reset)
        # the IR model validates the rest (ranges, threshold above reset, reset mode)
        self.ir_model(spiking=True).validate("neuron", 1, units="mV")  # trained layers are in mV

    @property
    def scale_mV(self) -> float:
        """S = v_thresh - v_rest: one normalised unit of voltage or current, in mV."""
        return self.v_thresh_mV - self.v_rest_mV

    def ir_model(self, spiking: bool = True, i_bias_mV: float | np.ndarray = 0.0) -> LIF:
        """The IR neuron model; ``spiking=False`` gives the readout, whose threshold is at the
        top of the allowed range (`READOUT_THRESH_MV`) so that it does not fire in practice
        (if it did, it would reset in training exactly as in every backend)."""
        return LIF(tau_m_ms=self.tau_m_ms, v_rest_mV=self.v_rest_mV, v_reset_mV=self.v_reset_mV,
                   v_thresh_mV=self.v_thresh_mV if spiking else READOUT_THRESH_MV,
                   tau_syn_exc_ms=self.tau_syn_ms, tau_syn_inh_ms=self.tau_syn_ms,
                   tau_refrac_ms=self.tau_refrac_ms, i_bias_mV=i_bias_mV, reset=self.reset)


@dataclass(frozen=True)
class StepConstants:
    """Normalised per-step constants of one layer (see the module docstring)."""

    alpha: float
    beta: float
    gamma: float
    drive: float  # G: injected current (mV) -> voltage per step (mV); normalised by S too
    offset: float  # rounding residue of the resting level, normalised (about 1e-16)
    theta: float
    u_reset: float
    subtract: bool
    surrogate: str
    surrogate_alpha: float
    detach_reset: bool


def step_constants(spec: NeuronSpec, dt_ms: float, spiking: bool = True) -> StepConstants:
    """The constants of `lif_sequence` for ``spec`` at ``dt_ms``, from `evospike.dynamics`."""
    model = spec.ir_model(spiking)
    step = one_step(model, "layer", dt_ms)
    P, q, G = step.P[..., 0], step.q[:, 0], step.G[:, 0]
    S = spec.scale_mV
    vr = spec.v_rest_mV
    thresh = spec.v_thresh_mV if spiking else READOUT_THRESH_MV
    return StepConstants(
        alpha=float(P[1, 1]), beta=float(P[0, 0]), gamma=float(P[0, 1]), drive=float(G[0]),
        offset=float((P[0, 0] * vr + q[0] - vr) / S), theta=(thresh - vr) / S,
        u_reset=(spec.v_reset_mV - vr) / S, subtract=spec.reset == "subtract",
        surrogate=spec.surrogate, surrogate_alpha=spec.surrogate_alpha,
        detach_reset=spec.detach_reset,
    )


def _drive(e, bias, c: StepConstants):
    """The constant-per-step and per-step voltage drive, folded into one tensor (or None).

    The propagator's rounding residue ``c.offset`` (about 1e-16 of the threshold) is kept only
    if it is not negligible, so that a layer without bias costs no addition per step."""
    const = None
    if bias is not None:
        const = bias + c.offset
    elif abs(c.offset) > 1e-12:
        const = torch.tensor(c.offset, dtype=torch.float64)
    if e is None:
        return const  # the loops cast it to the layer's dtype
    return e if const is None else e + const.to(e.dtype)


def _forward_loop(a, drive, c: StepConstants):
    """The time loop: only what depends on the previous step is done step by step (about six
    tensor operations); spikes and post-reset membranes are derived afterwards in one go."""
    T = a.shape[0]
    u = torch.zeros_like(a[0])
    i = torch.zeros_like(a[0])
    u_pre_all = torch.empty_like(a)
    per_step = drive is not None and drive.dim() == a.dim()
    const = drive if drive is not None and not per_step else None
    if const is not None:
        const = const.to(a.dtype)
    reset = torch.full_like(u, c.u_reset)
    jump = c.theta - c.u_reset
    for n in range(T):
        u_pre = u_pre_all[n]
        torch.mul(u, c.beta, out=u_pre)
        u_pre.add_(i, alpha=c.gamma)
        if per_step:
            u_pre.add_(drive[n])
        elif const is not None:
            u_pre.add_(const)
        i = torch.add(a[n], i, alpha=c.alpha)
        fired = u_pre > c.theta
        if c.subtract:
            u = u_pre - fired * jump
        else:
            u = torch.where(fired, reset, u_pre)
    spikes = (u_pre_all > c.theta).to(a.dtype)
    return spikes, u_pre_all


def _post_reset(u_pre_all, spikes, c: StepConstants):
    if c.subtract:
        return u_pre_all - spikes * (c.theta - c.u_reset)
    return torch.where(spikes.bool(), torch.full_like(u_pre_all, c.u_reset), u_pre_all)


def _backward_loop(grad_s, grad_u, u_pre_all, spikes, c: StepConstants):
    """BPTT through the loop. With ``sg`` the surrogate derivative at every step (one
    vectorised call) the recursion is ``g_pre[n] = grad_s[n] sg[n] + g_post[n] coef[n]``,
    ``g_post[n] = beta g_pre[n+1] + grad_u[n]``, ``g_i[n] = alpha g_i[n+1] + gamma g_pre[n+1]``,
    where ``coef`` is d u_post / d u_pre (1 - s, plus the reset's own term when the reset is not
    detached)."""
    T = u_pre_all.shape[0]
    x = u_pre_all - c.theta
    sg = surrogate_backward(c.surrogate)(torch.ones_like(x), x, c.surrogate_alpha)
    jump = c.theta - c.u_reset
    if c.subtract:
        coef = None if c.detach_reset else 1.0 - sg * jump
    else:
        coef = 1.0 - spikes
        if not c.detach_reset:
            coef = coef + sg * (c.u_reset - u_pre_all)
    source = grad_s * sg if grad_s is not None else torch.zeros_like(u_pre_all)
    g_a = torch.empty_like(u_pre_all)
    g_pre = torch.empty_like(u_pre_all)
    g_i = torch.zeros_like(u_pre_all[0])
    g_next = torch.zeros_like(u_pre_all[0])
    for n in range(T - 1, -1, -1):
        g_i = torch.add(g_i * c.alpha, g_next, alpha=c.gamma)
        g_a[n] = g_i
        g_post = g_next * c.beta
        if grad_u is not None:
            g_post = g_post + grad_u[n]
        if coef is None:
            g_next = torch.add(source[n], g_post, out=g_pre[n])
        else:
            g_next = torch.addcmul(source[n], g_post, coef[n], out=g_pre[n])
    return g_a, g_pre


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, e, bias, consts, membrane, delayed):
        ctx.kernel = native.available(a)
        ctx.delayed = delayed
        with torch.no_grad():
            drive = _drive(e, bias, consts)
            if ctx.kernel:
                u_pre_all, spikes, u_all = native.forward(a, drive, consts, membrane, delayed)
            else:
                if delayed:
                    a = torch.cat([torch.zeros_like(a[:1]), a[:-1]], dim=0)
                spikes, u_pre_all = _forward_loop(a, drive, consts)
                u_all = _post_reset(u_pre_all, spikes, consts) if membrane else None
        ctx.consts = consts
        ctx.has_e = e is not None
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(u_pre_all, spikes)
        return spikes, u_all

    @staticmethod
    def backward(ctx, grad_s, grad_u):
        u_pre_all, spikes = ctx.saved_tensors
        if ctx.kernel:
            g_a, g_pre = native.backward(grad_s, grad_u, u_pre_all, ctx.consts, ctx.delayed)
        else:
            g_a, g_pre = _backward_loop(grad_s, grad_u, u_pre_all, spikes, ctx.consts)
            if ctx.delayed:  # what was sent in step n arrived in step n + 1
                g_a = torch.cat([g_a[1:], torch.zeros_like(g_a[:1])], dim=0)
        g_e = g_pre if ctx.has_e and ctx.needs_input_grad[1] else None
        # the bias broadcasts over (T, B): its gradient is summed over those axes
        g_b = g_pre.sum(dim=(0, 1)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return g_a, g_e, g_b, None, None, None


def lif_sequence(a: torch.Tensor, consts: StepConstants, e: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None, membrane: bool = True,
                 delayed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a LIF layer over all steps.

    ``a`` (T, B, *shape): normalised synaptic events arriving in each step; ``e`` (same shape)
    an optional direct voltage drive per step; ``bias`` (*shape) a per-neuron voltage drive per
    step (the IR's ``i_bias_mV`` times ``G / S``). Returns ``(spikes, u)``, both (T, B, *shape):
    the spikes (0./1.; their gradient is the surrogate derivative at the threshold) and the
    normalised membrane after each step's reset (None when ``membrane`` is False: hidden layers
    need only their spikes). ``delayed``: ``a[n]`` holds what was sent in step ``n`` and
    arrives in step ``n + 1`` (a projection's one-step delay, applied without a copy)."""
    return _LIFSequence.apply(a, e, bias, consts, membrane, delayed)


class SpikeFunction(torch.autograd.Function):
    """Heaviside ``x > 0`` forward, SpikingJelly's surrogate derivative backward; used by the
    layers whose time loop cannot be fused (recurrent ones) and by the reference forward."""

    @staticmethod
    def forward(ctx, x, name, alpha):
        ctx.save_for_backward(x)
        ctx.name, ctx.alpha = name, alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return surrogate_backward(ctx.name)(grad, x, ctx.alpha), None, None


def lif_step(u, i, a_n, e_n, bias, c: StepConstants):
    """One step with autograd (the same arithmetic as `lif_sequence`); returns (s, u, i)."""
    u_pre = u * c.beta + c.gamma * i
    if bias is not None:
        u_pre = u_pre + (bias + c.offset)
    elif abs(c.offset) > 1e-12:  # as in _drive
        u_pre = u_pre + c.offset
    if e_n is not None:
        u_pre = u_pre + e_n
    i = a_n + c.alpha * i
    s = SpikeFunction.apply(u_pre - c.theta, c.surrogate, c.surrogate_alpha)
    s_reset = s.detach() if c.detach_reset else s
    if c.subtract:
        u = u_pre - s_reset * (c.theta - c.u_reset)
    else:
        u = u_pre * (1.0 - s_reset) + c.u_reset * s_reset
    return s, u, i


def time_constants_check(dt_ms: float, steps: int) -> None:
    if not (isinstance(steps, int) and steps >= 1):
        raise ValidationError("SpikingNetwork", "model", "steps", "must be a positive integer",
                              steps)
    if not (isinstance(dt_ms, (int, float)) and math.isfinite(dt_ms) and dt_ms > 0):
        raise ValidationError("SpikingNetwork", "model", "dt_ms", "must be > 0 ms", dt_ms)
