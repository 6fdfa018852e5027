"""Trainable layers. Each is one IR population (LIF, `NeuronSpec`) plus the projection(s) that
feed it, and knows how to list its synapses for export.

Time runs along the first axis: a layer takes the presynaptic spikes ``(T, B, *in_shape)`` and
returns its spikes and normalised membrane ``(T, B, *out_shape)``. Every projection has a delay
of one step, as in the IR: spikes of step ``n`` arrive in step ``n + 1``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evospike.errors import ValidationError

from . import native
from .neuron import StepConstants, lif_sequence, lif_step


class _SpikeLinear(torch.autograd.Function):
    """``s @ W.T`` with the event-driven C products (`native.SpikeRows`) for the forward and
    the weight gradient; the input gradient ``g @ W`` stays a dense product."""

    @staticmethod
    def forward(ctx, s, weight, rows):
        ctx.save_for_backward(weight)
        ctx.rows, ctx.in_shape = rows, s.shape
        T, B = s.shape[:2]
        return rows.matmul(weight).reshape(T, B, -1)

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        g_s = (g @ weight.to(g.dtype)).reshape(ctx.in_shape) if ctx.needs_input_grad[0] \
            else None
        g_w = ctx.rows.weight_grad(g) if ctx.needs_input_grad[1] else None
        return g_s, g_w, None


def sparse_rows(s: torch.Tensor, weight: torch.Tensor) -> native.SpikeRows | None:
    """The non-zeros of ``s`` (T, B, F) when the event-driven product with ``weight`` pays
    (CPU kernel, `native.sparse_pays` for the density and output width), else None."""
    if native.available(s) and weight.dtype == s.dtype and \
            native.sparse_possible(weight.shape[0]):
        rows = native.SpikeRows(s)
        if native.sparse_pays(rows.density, weight.shape[0], s.dtype):
            return rows
    return None


def spike_linear(s: torch.Tensor, weight: torch.Tensor,
                 rows: native.SpikeRows | None = None) -> torch.Tensor:
    """``F.linear(s, weight)`` over (T, B, F) spikes; on the CPU event-driven when few inputs
    spiked (`sparse_rows`; ``rows``: already counted), a dense product otherwise."""
    T, B = s.shape[:2]
    if rows is None:
        rows = sparse_rows(s.reshape(T, B, -1), weight)
    if rows is not None:
        return _SpikeLinear.apply(s, weight, rows)
    return F.linear(s.reshape(T * B, -1), weight).reshape(T, B, -1)


def delay_one_step(z: torch.Tensor) -> torch.Tensor:
    """Shift along time by one step: what was sent in step n arrives in step n + 1."""
    return torch.cat([torch.zeros_like(z[:1]), z[:-1]], dim=0)


class SpikingLayer(nn.Module):
    """Base of the layers: ``name`` (the IR population's name), shapes, step constants."""

    kind = ""

    def __init__(self, name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 consts: StepConstants, bias: bool):
        super().__init__()
        self.name = name
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.consts = consts
        self.spiking = self.kind != "readout"
        self.bias = nn.Parameter(torch.zeros(self.bias_shape())) if bias else None

    def bias_shape(self) -> tuple[int, ...]:
        return self.out_shape

    def full_bias(self) -> torch.Tensor | None:
        """The per-neuron voltage drive (normalised, per step), shape ``out_shape``."""
        return self.bias

    @property
    def size(self) -> int:
        return int(np.prod(self.out_shape))

    def synapses(self) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """``[(source, pre, post, weight), ...]`` in normalised units; ``source`` is "in" (the
        previous layer) or "self" (recurrent)."""
        raise NotImplementedError


class Linear(SpikingLayer):
    """All-to-all from the previous layer: ``a[n] = W s_in[n-1]``."""

    kind = "linear"

    def __init__(self, name, in_shape, size, consts, bias=True, weight_gain=1.0):
        super().__init__(name, in_shape, (size,), consts, bias)
        fan_in = int(np.prod(in_shape))
        self.weight = nn.Parameter(torch.empty(size, fan_in).uniform_(-1, 1)
                                   * (weight_gain / math.sqrt(fan_in)))

    def forward(self, s_in: torch.Tensor):
        z = spike_linear(s_in, self.weight)
        return lif_sequence(z, self.consts, bias=self.full_bias(), membrane=not self.spiking,
                            delayed=True)

    def synapses(self):
        w = self.weight.detach().cpu().double().numpy()
        post, pre = np.meshgrid(np.arange(w.shape[0]), np.arange(w.shape[1]), indexing="ij")
        return [("in", pre.ravel(), post.ravel(), w.ravel())]


class Recurrent(Linear):
    """`Linear` plus all-to-all recurrent synapses within the layer:
    ``a[n] = W s_in[n-1] + V s[n-1]``. Its time loop runs step by step with autograd."""

    kind = "recurrent"

    def __init__(self, name, in_shape, size, consts, bias=True, weight_gain=1.0,
                 recurrent_gain=0.5):
        super().__init__(name, in_shape, size, consts, bias, weight_gain)
        self.recurrent = nn.Parameter(torch.empty(size, size).uniform_(-1, 1)
                                      * (recurrent_gain / math.sqrt(size)))

    def forward(self, s_in: torch.Tensor):
        T = s_in.shape[0]
        ff = delay_one_step(spike_linear(s_in, self.weight))
        u = torch.zeros_like(ff[0])
        i = torch.zeros_like(ff[0])
        s = torch.zeros_like(ff[0])
        spikes, us = [], []
        for n in range(T):
            a_n = ff[n] + F.linear(s, self.recurrent) if n else ff[n]
            s, u, i = lif_step(u, i, a_n, None, self.bias, self.consts)
            spikes.append(s)
            us.append(u)
        return torch.stack(spikes), torch.stack(us)

    def synapses(self):
        out = super().synapses()
        v = self.recurrent.detach().cpu().double().numpy()
        post, pre = np.meshgrid(np.arange(v.shape[0]), np.arange(v.shape[1]), indexing="ij")
        return out + [("self", pre.ravel(), post.ravel(), v.ravel())]


def conv_output_hw(h: int, w: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    return (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1


class Conv2d(SpikingLayer):
    """2-D convolution over ``(C, H, W)`` spikes; the bias is per channel. Exported as a sparse
    projection with the shared kernel expanded to every position (zero padding: no synapse)."""

    kind = "conv"

    def __init__(self, name, in_shape, channels, kernel, stride, padding, consts, bias=True,
                 weight_gain=1.0):
        if len(in_shape) != 3:
            raise ValidationError("Layer", name, "input shape",
                                  "must be (channels, height, width) for a conv layer",
                                  tuple(in_shape))
        c_in, h, w = in_shape
        ho, wo = conv_output_hw(h, w, kernel, stride, padding)
        if ho < 1 or wo < 1:
            raise ValidationError("Layer", name, "kernel/stride/padding",
                                  f"leave no output for an input of {h}x{w}",
                                  (kernel, stride, padding))
        self.kernel, self.stride, self.padding = kernel, stride, padding
        super().__init__(name, in_shape, (channels, ho, wo), consts, bias)
        fan_in = c_in * kernel * kernel
        self.weight = nn.Parameter(torch.empty(channels, c_in, kernel, kernel).uniform_(-1, 1)
                                   * (weight_gain / math.sqrt(fan_in)))

    def bias_shape(self):
        return (self.out_shape[0],)

    def full_bias(self):
        if self.bias is None:
            return None
        return self.bias.view(-1, 1, 1).expand(self.out_shape)

    def forward(self, s_in: torch.Tensor):
        T, B = s_in.shape[:2]
        z = F.conv2d(s_in.reshape(T * B, *self.in_shape), self.weight, stride=self.stride,
                     padding=self.padding)
        z = z.reshape(T, B, *self.out_shape)
        return lif_sequence(z, self.consts, bias=self.full_bias(), membrane=not self.spiking,
                            delayed=True)

    def synapses(self):
        w = self.weight.detach().cpu().double().numpy()
        c_out, c_in, k, _ = w.shape
        _, h, wd = self.in_shape
        _, ho, wo = self.out_shape
        co, ci, ky, kx, oy, ox = np.meshgrid(np.arange(c_out), np.arange(c_in), np.arange(k),
                                             np.arange(k), np.arange(ho), np.arange(wo),
                                             indexing="ij")
        iy = oy * self.stride - self.padding + ky
        ix = ox * self.stride - self.padding + kx
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
        pre = (ci * h + iy) * wd + ix
        post = (co * ho + oy) * wo + ox
        weight = w[co, ci, ky, kx]
        return [("in", pre[inside], post[inside], weight[inside])]


class Readout(Linear):
    """The non-spiking output: a `Linear` layer whose neurons' threshold is at the top of the
    IR's range; the prediction is the class whose membrane is highest on average over time."""

    kind = "readout"
