"""A small C kernel for the time loops of `lif_sequence` on the CPU (forward and BPTT), built
with the system C compiler on first use and cached by `evospike.native_build`, like the torch
backend's native kernel (``~/.cache/evospike/native``). It does exactly what the torch loops in
`neuron` do, with the whole (batch x neurons) row of each step in one pass and no per-step
Python overhead. The surrogate derivatives are SpikingJelly's formulas evaluated inline (a
separate vectorised call of SpikingJelly's function cost a fifth of a training step); the tests
check the kernel's gradients against the torch loops, which call SpikingJelly's functions
themselves. Without a compiler, or on CUDA, the torch loops run instead (`available` says
whether the kernel runs).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

import torch

from evospike.native_build import NativeBuildError, load_library

SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <math.h>

/* Forward: a (T, M) arrivals; drive_kind 0 none, 1 per-neuron (period N over M), 2 per-step
   (T, M). Writes u_pre (T, M): the membrane before the threshold of each step. */
void lif_forward(int64_t T, int64_t M, int64_t N, const REAL *a, const REAL *drive,
                 int drive_kind, REAL alpha, REAL beta, REAL gamma, REAL theta, REAL u_reset,
                 int subtract, int delayed, REAL *u_pre, REAL *spikes, REAL *u_post, REAL *u,
                 REAL *i)
{
    /* delayed: a[t] was sent in step t and arrives in step t + 1 (nothing arrives in step 0) */
    REAL jump = theta - u_reset;
    for (int64_t m = 0; m < M; m++) { u[m] = 0; i[m] = 0; }
    for (int64_t t = 0; t < T; t++) {
        const REAL *at = delayed ? (t ? a + (t - 1) * M : 0) : a + t * M;
        REAL *ut = u_pre + t * M;
        REAL *st = spikes + t * M;
        REAL *pt = u_post ? u_post + t * M : 0;
        const REAL *dt = drive_kind == 2 ? drive + t * M : drive;
        for (int64_t m = 0; m < M; m++) {
            REAL up = u[m] * beta;
            up = up + gamma * i[m];
            if (drive_kind == 1) up = up + dt[m % N];
            else if (drive_kind == 2) up = up + dt[m];
            i[m] = (at ? at[m] : (REAL)0) + alpha * i[m];
            ut[m] = up;
            int fired = up > theta;
            st[m] = fired ? (REAL)1 : (REAL)0;
            if (fired) u[m] = subtract ? up - jump : u_reset;
            else u[m] = up;
            if (pt) pt[m] = u[m];
        }
    }
}

/* Event-driven products with a spike matrix s (R, F), mostly zeros: out (R, H) = s W^T with
   Wt = W^T (F, H), touching only the weight rows of the inputs that spiked; and the weight
   gradient gWt (F, H) = s^T g, likewise. */
void spike_matmul(int64_t R, int64_t F, int64_t H, const REAL *s, const REAL *Wt, REAL *out)
{
    for (int64_t r = 0; r < R; r++) {
        REAL *o = out + r * H;
        for (int64_t h = 0; h < H; h++) o[h] = 0;
        const REAL *sr = s + r * F;
        for (int64_t j = 0; j < F; j++) {
            REAL v = sr[j];
            if (v == 0) continue;
            const REAL *w = Wt + j * H;
            for (int64_t h = 0; h < H; h++) o[h] += v * w[h];
        }
    }
}

void spike_weight_grad(int64_t R, int64_t F, int64_t H, const REAL *s, const REAL *g,
                       REAL *gWt)
{
    for (int64_t k = 0; k < F * H; k++) gWt[k] = 0;
    for (int64_t r = 0; r < R; r++) {
        const REAL *sr = s + r * F;
        const REAL *gr = g + r * H;
        for (int64_t j = 0; j < F; j++) {
            REAL v = sr[j];
            if (v == 0) continue;
            REAL *acc = gWt + j * H;
            for (int64_t h = 0; h < H; h++) acc[h] += v * gr[h];
        }
    }
}

/* The surrogate derivatives, SpikingJelly's formulas (activation_based/surrogate.py); the
   Python side checks them against SpikingJelly's own functions. */
static REAL surrogate(int kind, REAL x, REAL a)
{
    switch (kind) {
    case 0: { REAL h = a / 2; REAL ax = (REAL)3.14159265358979323846 * h * x;
              return h / (1 + ax * ax); }                                      /* atan */
    case 1: { REAL sgx = 1 / (1 + EXP(-a * x)); return (1 - sgx) * sgx * a; }  /* sigmoid */
    case 2: { REAL d = FABS(x) + 1; return a / (d * d); }                      /* super_spike */
    case 3: { REAL ax = FABS(x); return ax > 1 / a ? (REAL)0 : -(a * a) * ax + a; }
    default: return a / 2 * EXP(-a * FABS(x));                                 /* piecewise_exp */
    }
}

/* Backward: grad_s / grad_u may be NULL. mode: 0 value+detach, 1 value, 2 subtract+detach,
   3 subtract. */
void lif_backward(int64_t T, int64_t M, const REAL *grad_s, const REAL *grad_u,
                  const REAL *u_pre, int sg_kind, REAL sg_alpha, REAL alpha, REAL beta,
                  REAL gamma, REAL theta, REAL u_reset, int mode, int delayed, REAL *g_a,
                  REAL *g_pre, REAL *g_i, REAL *g_next)
{
    REAL jump = theta - u_reset;
    for (int64_t m = 0; m < M; m++) { g_i[m] = 0; g_next[m] = 0; }
    if (delayed) for (int64_t m = 0; m < M; m++) g_a[(T - 1) * M + m] = 0;
    for (int64_t t = T - 1; t >= 0; t--) {
        const REAL *up = u_pre + t * M;
        const REAL *gst = grad_s ? grad_s + t * M : 0;
        const REAL *gut = grad_u ? grad_u + t * M : 0;
        REAL *gat = delayed ? (t ? g_a + (t - 1) * M : 0) : g_a + t * M;
        REAL *gpt = g_pre + t * M;
        for (int64_t m = 0; m < M; m++) {
            REAL gi = g_i[m] * alpha + gamma * g_next[m];
            g_i[m] = gi;
            if (gat) gat[m] = gi;
            REAL gpost = g_next[m] * beta;
            if (gut) gpost = gpost + gut[m];
            REAL s = up[m] > theta ? (REAL)1 : (REAL)0;
            REAL sg = (gst || (mode & 1)) ? surrogate(sg_kind, up[m] - theta, sg_alpha) : 0;
            REAL coef;
            if (mode == 0) coef = 1 - s;
            else if (mode == 1) coef = (1 - s) + sg * (u_reset - up[m]);
            else if (mode == 2) coef = 1;
            else coef = 1 - sg * jump;
            REAL src = gst ? gst[m] * sg : (REAL)0;
            REAL g = src + gpost * coef;
            gpt[m] = g;
            g_next[m] = g;
        }
    }
}
"""

FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
         "-std=c99"]
_REALS = {torch.float32: "float", torch.float64: "double"}
_MATH = {torch.float32: ["-DEXP=expf", "-DFABS=fabsf"],
         torch.float64: ["-DEXP=exp", "-DFABS=fabs"]}
#: surrogate name -> its case in the kernel's ``surrogate``
SURROGATE_KINDS = {"atan": 0, "sigmoid": 1, "super_spike": 2, "piecewise_quadratic": 3,
                   "piecewise_exp": 4}
_CTYPES = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}


@cache
def _library(dtype: torch.dtype) -> ctypes.CDLL | None:
    """The kernel for ``dtype``, or None when it cannot be built or loaded (no compiler, a
    compiler error, no writable cache): the torch loops run instead."""
    flags = FLAGS + [f"-DREAL={_REALS[dtype]}", *_MATH[dtype]]
    try:
        return load_library(f"evospike_train_lif_{_REALS[dtype]}", SOURCE, flags,
                            libraries=["-lm"], label="the training kernel")
    except (NativeBuildError, OSError):
        return None


def available(tensor: torch.Tensor) -> bool:
    """True when the kernel can run the loops of ``tensor`` (CPU, float32/64, compiler)."""
    return (tensor.device.type == "cpu" and tensor.dtype in _REALS
            and os.environ.get("EVOSPIKE_TRAIN_KERNEL", "1") != "0"
            and _library(tensor.dtype) is not None)


def _ptr(t: torch.Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def forward(a: torch.Tensor, drive: torch.Tensor | None, c, membrane: bool = True,
            delayed: bool = False):
    """(u_pre, spikes, u_post or None), each (T, B, *shape), for arrivals ``a`` (sent one step
    before they arrive when ``delayed``); ``drive`` None, per neuron (``shape``) or per step
    (like ``a``)."""
    lib = _library(a.dtype)
    real = _CTYPES[a.dtype]
    a = a.contiguous()
    T = a.shape[0]
    M = a[0].numel()
    N = int(torch.Size(a.shape[2:]).numel()) if a.dim() > 2 else M
    kind = 0
    if drive is not None:
        if drive.dim() == a.dim():
            kind, drive = 2, drive.to(a.dtype).contiguous()
        else:
            kind, drive = 1, drive.to(a.dtype).expand(a.shape[2:]).contiguous()
    u_pre = torch.empty_like(a)
    spikes = torch.empty_like(a)
    u_post = torch.empty_like(a) if membrane else None
    state = torch.empty(2, M, dtype=a.dtype)
    lib.lif_forward(ctypes.c_int64(T), ctypes.c_int64(M), ctypes.c_int64(N), _ptr(a),
                    _ptr(drive), ctypes.c_int(kind), real(c.alpha), real(c.beta),
                    real(c.gamma), real(c.theta), real(c.u_reset), ctypes.c_int(c.subtract),
                    ctypes.c_int(delayed), _ptr(u_pre), _ptr(spikes), _ptr(u_post),
                    _ptr(state[0]), _ptr(state[1]))
    return u_pre, spikes, u_post


def backward(grad_s, grad_u, u_pre: torch.Tensor, c, delayed: bool = False):
    """(g_a, g_pre), both like ``u_pre`` (g_a with respect to the arrivals as passed to
    `forward`)."""
    lib = _library(u_pre.dtype)
    real = _CTYPES[u_pre.dtype]
    T = u_pre.shape[0]
    M = u_pre[0].numel()
    grad_s = None if grad_s is None else grad_s.to(u_pre.dtype).contiguous()
    grad_u = None if grad_u is None else grad_u.to(u_pre.dtype).contiguous()
    mode = (2 if c.subtract else 0) + (0 if c.detach_reset else 1)
    g_a = torch.empty_like(u_pre)
    g_pre = torch.empty_like(u_pre)
    scratch = torch.empty(2, M, dtype=u_pre.dtype)
    lib.lif_backward(ctypes.c_int64(T), ctypes.c_int64(M), _ptr(grad_s), _ptr(grad_u),
                     _ptr(u_pre), ctypes.c_int(SURROGATE_KINDS[c.surrogate]),
                     real(c.surrogate_alpha), real(c.alpha), real(c.beta), real(c.gamma),
                     real(c.theta), real(c.u_reset), ctypes.c_int(mode), ctypes.c_int(delayed),
                     _ptr(g_a), _ptr(g_pre), _ptr(scratch[0]), _ptr(scratch[1]))
    return g_a, g_pre


#: below this fraction of non-zero inputs the event-driven product beats the dense one
SPARSE_BELOW = 0.15


def spike_matmul(s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``s @ weight.T`` for a mostly-zero ``s`` (R, F); ``weight`` (H, F)."""
    lib = _library(s.dtype)
    s = s.contiguous()
    wt = weight.detach().t().contiguous()
    R, F = s.shape
    H = wt.shape[1]
    out = torch.empty(R, H, dtype=s.dtype)
    lib.spike_matmul(ctypes.c_int64(R), ctypes.c_int64(F), ctypes.c_int64(H), _ptr(s), _ptr(wt),
                     _ptr(out))
    return out


def spike_weight_grad(s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g.T @ s`` (H, F) for a mostly-zero ``s`` (R, F) and ``g`` (R, H)."""
    lib = _library(s.dtype)
    s = s.contiguous()
    g = g.to(s.dtype).contiguous()
    R, F = s.shape
    H = g.shape[1]
    gwt = torch.empty(F, H, dtype=s.dtype)
    lib.spike_weight_grad(ctypes.c_int64(R), ctypes.c_int64(F), ctypes.c_int64(H), _ptr(s),
                          _ptr(g), _ptr(gwt))
    return gwt.t()
