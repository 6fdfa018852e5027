"""A small C kernel for the training loops on the CPU, built with the system C compiler on
first use and cached by `evospike.native_build`, like the torch backend's native kernel
(``~/.cache/evospike/native``):

- the time loops of `lif_sequence` (forward and BPTT) and of the snnTorch-style `Leaky` /
  `Synaptic` layers (`leaky_forward` / `leaky_backward`: one vectorisable loop over the
  neurons per step and batch row, specialised per reset mode, the per-step bias and the
  gradients of beta, alpha, threshold and bias fused in);
- the event-driven products with spike matrices (`SpikeRows`): the non-zeros of each row
  (and, for the weight gradient, of each column) as index lists, and the product / weight
  gradient summed over those lists only, blocked over the output columns (a block's
  accumulators in vector registers, its slice of the other operand in the core's cache);
- both fused for a `Leaky` / `Synaptic` layer on sparse input (`leaky_linear_forward` /
  `leaky_linear_backward`): the product of each step feeds the neuron update directly, and
  the BPTT of each block of neurons feeds the weight gradient, the same numbers as the
  separate kernels without the (T, B, N) tensors in between.

Each output is summed in a fixed order (ascending input / row index, from 0), so the result
is the same bit for bit with any number of threads: threads (`threads`, torch's own setting)
own disjoint output blocks or neurons and never merge partial sums. The neuron loops do
exactly what the torch loops in `neuron` / `leaky` do, operation for operation. The surrogate
derivatives are SpikingJelly's formulas evaluated inline; the tests check the kernel against
the torch loops, which call SpikingJelly's functions themselves. Without a compiler, or on
CUDA, the torch code runs instead (`available` says whether the kernel runs).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

import torch

from evospike.native_build import NativeBuildError, load_library

SOURCE = r"""
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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


/* ---- threads: a fixed split of [0, n) into contiguous ranges, one per thread (thread
   `slot` gets range slot and that slot's scratch). Each range writes outputs no other range
   writes, so the result does not depend on the thread count. */
typedef void (*range_fn)(void *ctx, int64_t lo, int64_t hi, int slot);
struct job { range_fn fn; void *ctx; int64_t lo, hi; int slot; };

static void *run_job(void *arg)
{
    struct job *j = (struct job *)arg;
    j->fn(j->ctx, j->lo, j->hi, j->slot);
    return 0;
}

#define MAX_THREADS 256
static int thread_count(int threads, int64_t n)
{
    if (threads > n) threads = (int)n;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    return threads < 1 ? 1 : threads;
}

static void parallel(int threads, int64_t n, range_fn fn, void *ctx)
{
    if (n <= 0) return;
    threads = thread_count(threads, n);
    if (threads == 1) { fn(ctx, 0, n, 0); return; }
    pthread_t tid[MAX_THREADS];
    struct job jobs[MAX_THREADS];
    int started[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        jobs[i].fn = fn; jobs[i].ctx = ctx; jobs[i].slot = i;
        jobs[i].lo = n * i / threads; jobs[i].hi = n * (i + 1) / threads;
    }
    for (int i = 1; i < threads; i++)
        started[i] = pthread_create(&tid[i], 0, run_job, &jobs[i]) == 0;
    run_job(&jobs[0]);
    /* a thread that could not start: its range runs here, with the same result */
    for (int i = 1; i < threads; i++) {
        if (started[i]) pthread_join(tid[i], 0);
        else run_job(&jobs[i]);
    }
}

/* ---- event-driven products with a spike matrix S (R, F), mostly zeros, held as row lists
   (CSR: row r's non-zeros are idx[ptr[r] .. ptr[r+1]), values val, or all 1 when val is
   NULL) and column lists (CSC, for the weight gradient). Row r of S is at
   s + (r / B) * st + (r % B) * sb: (T, B, F) with any strides of T and B. */
int64_t spike_count(int64_t T, int64_t B, int64_t F, const REAL *s, int64_t st, int64_t sb,
                    int64_t *ptr, int *binary)
{
    int64_t total = 0;
    int bin = 1;
    ptr[0] = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const REAL *row = s + t * st + b * sb;
            int64_t c = 0;
            int ones = 1;
            for (int64_t j = 0; j < F; j++) {
                c += row[j] != 0;
                ones &= (row[j] == 0) | (row[j] == 1);
            }
            bin &= ones;
            total += c;
            ptr[t * B + b + 1] = total;
        }
    *binary = bin;
    return total;
}

/* bit q set where p[q] != 0, q < 64 */
static inline uint64_t nonzero_mask64(const REAL *p)
{
#if defined(__AVX512F__)
    uint64_t mask = 0;
    if (sizeof(REAL) == 4) {
        for (int q = 0; q < 64; q += 16)
            mask |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps((const float *)(p + q)),
                                                 _mm512_setzero_ps(), _CMP_NEQ_UQ) << q;
    } else {
        for (int q = 0; q < 64; q += 8)
            mask |= (uint64_t)_mm512_cmp_pd_mask(_mm512_loadu_pd((const double *)(p + q)),
                                                 _mm512_setzero_pd(), _CMP_NEQ_UQ) << q;
    }
    return mask;
#else
    uint64_t mask = 0;
    for (int q = 0; q < 64; q++) mask |= (uint64_t)(p[q] != 0) << q;
    return mask;
#endif
}

void spike_fill(int64_t T, int64_t B, int64_t F, const REAL *s, int64_t st, int64_t sb,
                const int64_t *ptr, int32_t *idx, REAL *val)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const REAL *restrict row = s + t * st + b * sb;
            int32_t *restrict out = idx + ptr[t * B + b];
            int64_t c = 0, j0 = 0;
            /* 64 inputs at a time: a bit mask of the non-zero ones (a vectorisable compare),
               then one step per set bit */
            for (; j0 + 64 <= F; j0 += 64) {
                uint64_t mask = nonzero_mask64(row + j0);
                while (mask) {
                    out[c++] = (int32_t)(j0 + __builtin_ctzll(mask));
                    mask &= mask - 1;
                }
            }
            for (int64_t j = j0; j < F; j++) if (row[j] != 0) out[c++] = (int32_t)j;
            if (val) {
                REAL *v = val + ptr[t * B + b];
                for (int64_t k = 0; k < c; k++) v[k] = row[out[k]];
            }
        }
}

/* CSC of the CSR: colptr (F + 1), rows (nnz; ascending within a column), cval (or NULL) */
void spike_transpose(int64_t R, int64_t F, const int64_t *ptr, const int32_t *idx,
                     const REAL *val, int64_t *colptr, int32_t *rows, REAL *cval,
                     int64_t *fill)
{
    for (int64_t j = 0; j <= F; j++) colptr[j] = 0;
    for (int64_t k = 0; k < ptr[R]; k++) colptr[idx[k] + 1]++;
    for (int64_t j = 0; j < F; j++) colptr[j + 1] += colptr[j];
    for (int64_t j = 0; j < F; j++) fill[j] = colptr[j];
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = ptr[r]; k < ptr[r + 1]; k++) {
            int64_t at = fill[idx[k]]++;
            rows[at] = (int32_t)r;
            if (val) cval[at] = val[k];
        }
}

/* Output columns are done HB at a time: the block's accumulators stay in vector registers
   (GCC/Clang vector extensions: 64-byte vectors, split by the compiler where the CPU has
   narrower ones) and the block's columns of the other operand (F x HB or R x HB) stay in the
   core's cache. Each output is a sum over its non-zeros in ascending order starting from 0
   (with v * w rounded before the add), whatever HB or the number of threads. */
#define VBYTES 64
typedef REAL vreal __attribute__((vector_size(VBYTES)));
#define VW ((int64_t)(VBYTES / sizeof(REAL)))
#define NV 8
#define HB (NV * VW)

static inline vreal vload(const REAL *p) { vreal v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(REAL *p, vreal v) { memcpy(p, &v, sizeof v); }

/* part[l * ps + h] (h < HB) = sum over list l (at[ptr[l] .. ptr[l+1]), ascending) of
   val[k] * src[at[k] * H + h0 + h] (val NULL: 1), for the lists l0 .. l1. The sources are
   taken ch at a time (lists are ascending, so a cursor per list marks where the next chunk
   starts): the chunk's block of src (ch x HB) stays in the nearest cache while every list
   adds its entries from it to its partial sums, which go to part and come back for the next
   chunk (the weight gradient, whose src rows are H apart, measured up to 2x faster so; the
   forward takes ch = F, one pass). The sum of each output is still in ascending order from
   0: chunking changes the memory traffic, not the arithmetic. cursor: scratch (l1 - l0). */

static inline __attribute__((always_inline)) void
add_block(vreal *acc, const REAL *p, const REAL *val, int64_t k)
{
    if (val) {
        const REAL v = val[k];
#pragma GCC unroll 16
        for (int q = 0; q < NV; q++) acc[q] += v * vload(p + q * VW);
    } else {
#pragma GCC unroll 16
        for (int q = 0; q < NV; q++) acc[q] += vload(p + q * VW);
    }
}

static inline __attribute__((always_inline)) void
gather_lists(const int has_val, int64_t l0, int64_t l1, const int64_t *restrict ptr,
             const int32_t *restrict at, const REAL *restrict val, const REAL *restrict src,
             int64_t H, int64_t h0, int64_t n_src, int64_t ch, REAL *restrict part,
             int64_t ps, int64_t *restrict cursor)
{
    const REAL *vals = has_val ? val : 0;
    for (int64_t c0 = 0; c0 < n_src; c0 += ch) {
        const int32_t c1 = (int32_t)(c0 + ch < n_src ? c0 + ch : n_src);
        for (int64_t l = l0; l < l1; l++) {
            int64_t k = cursor[l - l0];
            const int64_t end = ptr[l + 1];
            REAL *restrict o = part + (l - l0) * ps;
            vreal acc[NV];
            if (c0 == 0) {
#pragma GCC unroll 16
                for (int q = 0; q < NV; q++) acc[q] = (vreal){0};
            } else {
                if (k == end || at[k] >= c1) continue;  /* nothing in this chunk */
#pragma GCC unroll 16
                for (int q = 0; q < NV; q++) acc[q] = vload(o + q * VW);
            }
            for (; k < end && at[k] < c1; k++)
                add_block(acc, src + (int64_t)at[k] * H + h0, vals, k);
#pragma GCC unroll 16
            for (int q = 0; q < NV; q++) vstore(o + q * VW, acc[q]);
            cursor[l - l0] = k;
        }
    }
}

static void chunked_gather(int64_t l0, int64_t l1, const int64_t *restrict ptr,
                           const int32_t *restrict at, const REAL *restrict val,
                           const REAL *restrict src, int64_t H, int64_t h0, int64_t n_src,
                           int64_t ch, REAL *restrict part, int64_t ps,
                           int64_t *restrict cursor)
{
    for (int64_t l = l0; l < l1; l++) cursor[l - l0] = ptr[l];
    if (ch < 1) ch = n_src;
    if (val) gather_lists(1, l0, l1, ptr, at, val, src, H, h0, n_src, ch, part, ps, cursor);
    else gather_lists(0, l0, l1, ptr, at, val, src, H, h0, n_src, ch, part, ps, cursor);
}

/* the same sums for an output narrower than HB (H < HB), straight, into part (stride ps) */
static void narrow_gather(int64_t l0, int64_t l1, const int64_t *restrict ptr,
                          const int32_t *restrict at, const REAL *restrict val,
                          const REAL *restrict src, int64_t H, REAL *restrict part, int64_t ps)
{
    for (int64_t l = l0; l < l1; l++) {
        REAL *restrict o = part + (l - l0) * ps;
        for (int64_t h = 0; h < H; h++) o[h] = 0;
        for (int64_t k = ptr[l]; k < ptr[l + 1]; k++) {
            const REAL *restrict p = src + (int64_t)at[k] * H;
            if (val) { const REAL v = val[k]; for (int64_t h = 0; h < H; h++) o[h] += v * p[h]; }
            else for (int64_t h = 0; h < H; h++) o[h] += p[h];
        }
    }
}

/* Block blk of H columns: columns h0 .. h0 + HB, of which the first skip belong to the block
   before. When H >= HB every block is a whole one: the last ends at H and overlaps the one
   before (it recomputes those columns, the same sums in the same order, and does not write
   them). */
static void block_of(int64_t H, int64_t blk, int64_t *h0, int64_t *skip)
{
    *h0 = blk * HB;
    *skip = 0;
    if (*h0 + HB > H) { *skip = *h0 - (H - HB); *h0 = H - HB; }
}

struct spmm { int64_t R, F, H; const int64_t *ptr; const int32_t *idx; const REAL *val;
              const REAL *src; REAL *out; REAL *part; int64_t *cursor; int64_t ch; };

/* forward: lists = rows r of S, entries = inputs j, src = Wt (F, H), out (R, H) */
static void spmm_blocks(void *arg, int64_t lo, int64_t hi, int slot)
{
    const struct spmm *c = (const struct spmm *)arg;
    const int64_t H = c->H, R = c->R;
    const int64_t F = c->F;
    REAL *part = c->part + (int64_t)slot * (R + F) * HB;
    REAL *wb = part + R * HB;
    int64_t *cursor = c->cursor + (int64_t)slot * R;
    for (int64_t blk = lo; blk < hi; blk++) {
        int64_t h0, skip;
        block_of(H, blk, &h0, &skip);
        /* the block's weights as a compact (F, HB) array (W^T's columns h0 .. h0 + HB), and
           the sums in a compact (R, HB) array copied into out after (measured faster than
           W^T itself and out, whose rows are H apart) */
        for (int64_t h = 0; h < HB; h++) {
            const REAL *restrict w = c->src + (h0 + h) * F;
            for (int64_t j = 0; j < F; j++) wb[j * HB + h] = w[j];
        }
        chunked_gather(0, R, c->ptr, c->idx, c->val, wb, HB, 0, F, c->ch, part, HB, cursor);
        for (int64_t r = 0; r < R; r++)
            memcpy(c->out + r * H + h0 + skip, part + r * HB + skip,
                   sizeof(REAL) * (size_t)(HB - skip));
    }
}

int64_t block_width(void) { return HB; }

/* out (R, H) = S W^T from the row lists of S, W (H, F); part (threads, R + F, HB) and
   cursor (threads, R) scratch */
void spike_matmul(int64_t R, int64_t F, int64_t H, const int64_t *ptr, const int32_t *idx,
                  const REAL *val, const REAL *W, REAL *out, REAL *part, int64_t *cursor,
                  int64_t ch, int threads)
{
    if (H < HB) {
        REAL *wt = part;  /* W^T (F, H) */
        for (int64_t h = 0; h < H; h++)
            for (int64_t j = 0; j < F; j++) wt[j * H + h] = W[h * F + j];
        narrow_gather(0, R, ptr, idx, val, wt, H, out, H);
        return;
    }
    struct spmm c = {R, F, H, ptr, idx, val, W, out, part, cursor, ch};
    parallel(threads, (H + HB - 1) / HB, spmm_blocks, &c);
}

/* weight gradient: lists = columns j of S, entries = rows r, src = G (R, H), out gW (H, F) */
static void spwg_blocks(void *arg, int64_t lo, int64_t hi, int slot)
{
    const struct spmm *c = (const struct spmm *)arg;
    const int64_t H = c->H, F = c->F;
    REAL *part = c->part + (int64_t)slot * F * HB;
    int64_t *cursor = c->cursor + (int64_t)slot * F;
    for (int64_t blk = lo; blk < hi; blk++) {
        int64_t h0, skip;
        block_of(H, blk, &h0, &skip);
        chunked_gather(0, F, c->ptr, c->idx, c->val, c->src, H, h0, c->R, c->ch, part, HB,
                       cursor);
        /* into the weight's (H, F) layout */
        for (int64_t h = skip; h < HB; h++) {
            REAL *restrict o = c->out + (h0 + h) * F;
            for (int64_t j = 0; j < F; j++) o[j] = part[j * HB + h];
        }
    }
}

/* gW (H, F) = G^T S from the column lists of S (colptr, rows, cval), G (R, H); part
   (threads, F, HB) and cursor (threads, F) scratch */
void spike_weight_grad(int64_t R, int64_t F, int64_t H, const int64_t *colptr,
                       const int32_t *rows, const REAL *cval, const REAL *G, REAL *gW,
                       REAL *part, int64_t *cursor, int64_t ch, int threads)
{
    if (H < HB) {
        narrow_gather(0, F, colptr, rows, cval, G, H, part, H);
        for (int64_t h = 0; h < H; h++)
            for (int64_t j = 0; j < F; j++) gW[h * F + j] = part[j * H + h];
        return;
    }
    struct spmm c = {R, F, H, colptr, rows, cval, G, gW, part, cursor, ch};
    parallel(threads, (H + HB - 1) / HB, spwg_blocks, &c);
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


/* ---- Leaky / Synaptic layers (evospike.training.leaky): x (T, B, N) inputs plus a per-neuron
   bias (NULL: none; added to x[t] as the layer's own x + bias would), per-neuron beta,
   theta, alpha (N; alpha NULL for Leaky). mode & 7: 0 subtract after decay, 1 zero after decay
   (Leaky), 2 zero after decay (Synaptic), 3 subtract, 4 value, 5 none; mode & 8: the same-step
   reset carries a gradient. Writes p (T, B, N) the membrane before the threshold, spikes,
   m_out (modes 3, 4: the membrane after the reset) and syn_out (Synaptic). The state of step
   t - 1 is read back from these outputs (zero before step 0). Threads own disjoint ranges of
   the N neurons; each neuron's arithmetic is the same whatever the split, in the order of the
   torch loops of `leaky.py` (so the two agree bit for bit). */
struct lk { int64_t T, B, N; const REAL *x, *bias, *beta, *theta, *alpha; int mode, sg_kind;
            REAL sg_alpha; REAL *p, *s, *m, *syn; const REAL *zero;
            /* backward */ const REAL *gs, *gm, *m_post; REAL *g_x, *g_beta, *g_theta,
            *g_alpha, *g_bias, *g_next, *acc, *sg; };

static inline __attribute__((always_inline)) void
leaky_fwd_row(const int base, const int synaptic, int64_t n0, int64_t n1,
              const REAL *restrict x, const REAL *restrict bias, const REAL *restrict beta,
              const REAL *restrict theta,
              const REAL *restrict alpha, const REAL *restrict m_prev,
              const REAL *restrict s_prev, const REAL *restrict syn_prev, REAL *restrict p,
              REAL *restrict s, REAL *restrict m, REAL *restrict syn)
{
    for (int64_t n = n0; n < n1; n++) {
        REAL d = x[n] + bias[n], b = beta[n], th = theta[n], pk;
        if (synaptic) { REAL y = alpha[n] * syn_prev[n] + d; syn[n] = y; d = y; }
        if (base == 0) { pk = b * m_prev[n] + d; pk = pk - s_prev[n] * th; }
        else if (base == 1) pk = b * ((1 - s_prev[n]) * m_prev[n]) + d;
        else if (base == 2) { pk = b * m_prev[n] + d; pk = pk - pk * s_prev[n]; }
        else pk = b * m_prev[n] + d;
        p[n] = pk;
        REAL sp = pk > th ? (REAL)1 : (REAL)0;
        s[n] = sp;
        if (base == 3) m[n] = pk - sp * th;
        else if (base == 4) m[n] = sp != 0 ? (REAL)0 : pk;
    }
}

#define LEAKY_FWD_CASE(BASE, SYN) \
    leaky_fwd_row(BASE, SYN, n0, n1, xr, bias, c->beta, c->theta, c->alpha, mp, sp, yp, \
                  c->p + i, c->s + i, c->m ? c->m + i : 0, c->syn ? c->syn + i : 0)

/* step t of batch row b for the neurons n0 .. n1; xr[n] is neuron n's input */
static void leaky_fwd_step(const struct lk *c, int64_t t, int64_t b, int64_t n0, int64_t n1,
                           const REAL *xr)
{
    const int64_t M = c->B * c->N;
    const int base = c->mode & 7, synaptic = c->alpha != 0;
    const REAL *msrc = c->m ? c->m : c->p;
    const REAL *bias = c->bias ? c->bias : c->zero;  /* x + 0 is x */
            const int64_t i = t * M + b * c->N;
            /* the rows of step t - 1, offset so that index n addresses neuron n */
            const REAL *mp = t ? msrc + i - M : c->zero;
            const REAL *sp = t ? c->s + i - M : c->zero;
            const REAL *yp = t && synaptic ? c->syn + i - M : c->zero;
            switch (base * 2 + synaptic) {
            case 0: LEAKY_FWD_CASE(0, 0); break;
            case 1: LEAKY_FWD_CASE(0, 1); break;
            case 2: LEAKY_FWD_CASE(1, 0); break;
            case 3: LEAKY_FWD_CASE(1, 1); break;
            case 4: LEAKY_FWD_CASE(2, 0); break;
            case 5: LEAKY_FWD_CASE(2, 1); break;
            case 6: LEAKY_FWD_CASE(3, 0); break;
            case 7: LEAKY_FWD_CASE(3, 1); break;
            case 8: LEAKY_FWD_CASE(4, 0); break;
            case 9: LEAKY_FWD_CASE(4, 1); break;
            case 10: LEAKY_FWD_CASE(5, 0); break;
            default: LEAKY_FWD_CASE(5, 1); break;
            }
}

static void leaky_fwd_range(void *arg, int64_t n0, int64_t n1, int slot)
{
    const struct lk *c = (const struct lk *)arg;
    (void)slot;
    for (int64_t t = 0; t < c->T; t++)
        for (int64_t b = 0; b < c->B; b++)
            leaky_fwd_step(c, t, b, n0, n1, c->x + (t * c->B + b) * c->N);
}

/* the split: ranges of at least 64 neurons (a thread per handful of neurons costs more than
   it saves) */
static int neuron_threads(int threads, int64_t N)
{
    int64_t most = N / 64;
    if (most < 1) most = 1;
    return threads < most ? threads : (int)most;
}

void leaky_forward(int64_t T, int64_t B, int64_t N, const REAL *x, const REAL *bias,
                   const REAL *beta, const REAL *theta, const REAL *alpha, int mode,
                   REAL *p_out, REAL *s_out, REAL *m_out, REAL *syn_out, const REAL *zero,
                   int threads)
{
    struct lk c = {0};
    c.T = T; c.B = B; c.N = N; c.x = x; c.bias = bias; c.beta = beta; c.theta = theta;
    c.alpha = alpha;
    c.mode = mode; c.p = p_out; c.s = s_out; c.m = m_out; c.syn = syn_out; c.zero = zero;
    parallel(neuron_threads(threads, N), N, leaky_fwd_range, &c);
}

/* Leaky / Synaptic layer fed by an event-driven projection, fused: per block of HB neurons
   (threads own whole blocks), batch row by batch row and step by step, the projection of the
   step (the sums of spike_matmul, the same numbers) lands in a row buffer and goes straight
   into the neuron update, so the (T, B, N) projection is never stored. S's rows are
   r = t * B + b (SpikeRows); W (N, F); part: per thread (F + 1) * HB scratch. N >= HB. */
struct lkl { struct lk n; const int64_t *ptr; const int32_t *idx; const REAL *val;
             const REAL *W; int64_t F; REAL *part; };

static void leaky_linear_blocks(void *arg, int64_t lo, int64_t hi, int slot)
{
    const struct lkl *c = (const struct lkl *)arg;
    const int64_t N = c->n.N, F = c->F;
    REAL *wb = c->part + (int64_t)slot * (F + 1) * HB;
    REAL *zrow = wb + F * HB;
    for (int64_t blk = lo; blk < hi; blk++) {
        int64_t h0, skip, cursor;
        block_of(N, blk, &h0, &skip);
        for (int64_t h = 0; h < HB; h++) {
            const REAL *restrict w = c->W + (h0 + h) * F;
            for (int64_t j = 0; j < F; j++) wb[j * HB + h] = w[j];
        }
        for (int64_t b = 0; b < c->n.B; b++)
            for (int64_t t = 0; t < c->n.T; t++) {
                const int64_t r = t * c->n.B + b;
                chunked_gather(r, r + 1, c->ptr, c->idx, c->val, wb, HB, 0, F, F, zrow, HB,
                               &cursor);
                leaky_fwd_step(&c->n, t, b, h0 + skip, h0 + HB, zrow - h0);
            }
    }
}

void leaky_linear_forward(int64_t T, int64_t B, int64_t N, int64_t F, const int64_t *ptr,
                          const int32_t *idx, const REAL *val, const REAL *W,
                          const REAL *bias, const REAL *beta, const REAL *theta,
                          const REAL *alpha, int mode, REAL *p_out, REAL *s_out, REAL *m_out,
                          REAL *syn_out, const REAL *zero, REAL *part, int threads)
{
    struct lkl c;
    memset(&c, 0, sizeof c);
    c.n.T = T; c.n.B = B; c.n.N = N; c.n.bias = bias; c.n.beta = beta; c.n.theta = theta;
    c.n.alpha = alpha; c.n.mode = mode; c.n.p = p_out; c.n.s = s_out; c.n.m = m_out;
    c.n.syn = syn_out; c.n.zero = zero;
    c.ptr = ptr; c.idx = idx; c.val = val; c.W = W; c.F = F; c.part = part;
    parallel(threads, (N + HB - 1) / HB, leaky_linear_blocks, &c);
}

/* the surrogate derivative of a row, sg[n] = surrogate(p[n] - theta[n]), one loop per kind
   so that each vectorises */
static void surrogate_row(int kind, REAL a, int64_t n0, int64_t n1, const REAL *restrict p,
                          const REAL *restrict theta, REAL *restrict sg)
{
    switch (kind) {
    case 0: {
        const REAL h = a / 2, c = (REAL)3.14159265358979323846 * h;
        for (int64_t n = n0; n < n1; n++) {
            REAL ax = c * (p[n] - theta[n]);
            sg[n] = h / (1 + ax * ax);
        }
        break;
    }
    default:
        for (int64_t n = n0; n < n1; n++) sg[n] = surrogate(kind, p[n] - theta[n], a);
    }
}

static inline __attribute__((always_inline)) void
leaky_bwd_row(const int base, const int synaptic, const int attached, int64_t n0, int64_t n1,
              int last, int first, const REAL *restrict gs, const REAL *restrict gm,
              const REAL *restrict p, const REAL *restrict p_prev,
              const REAL *restrict m_prev_row, const REAL *restrict syn_prev,
              const REAL *restrict sg, const REAL *restrict beta, const REAL *restrict theta,
              const REAL *restrict alpha, REAL *restrict g_next, REAL *restrict acc,
              REAL *restrict g_x, REAL *restrict g_beta, REAL *restrict g_theta,
              REAL *restrict g_alpha, REAL *restrict g_bias)
{
    /* branch-free, so that every case vectorises: before step 0 the rows of the step before
       (p_prev, m_prev_row, syn_prev) are zeros, and after the last step g_next is zero, so
       their terms add exactly 0 */
    (void)last;
    for (int64_t n = n0; n < n1; n++) {
        REAL b = beta[n], th = theta[n], pk = p[n];
        REAL s = pk > th ? (REAL)1 : (REAL)0;
        REAL s_prev = (!first & (p_prev[n] > th)) ? (REAL)1 : (REAL)0;
        REAL G = gm[n];
        REAL r_next = (base == 1 || base == 2) ? 1 - s : (REAL)1;
        G = G + b * r_next * g_next[n];
        REAL sgk = sg[n];
        REAL gst = gs[n];
        if (attached) gst = gst + G * (base == 3 ? -th : -pk);
        REAL coef = base == 4 ? 1 - s : (REAL)1;
        REAL g = gst * sgk + G * coef;
        g_next[n] = g;
        REAL gd = base == 2 ? g * (1 - s_prev) : g;
        REAL gx = gd;
        if (synaptic) {
            REAL y = gd + alpha[n] * acc[n];
            acc[n] = y;
            gx = y;
            g_alpha[n] += gx * syn_prev[n];
        }
        g_x[n] = gx;
        g_bias[n] += gx;
        REAL mprev = m_prev_row[n];
        REAL r = (base == 1 || base == 2) ? 1 - s_prev : (REAL)1;
        g_beta[n] += g * (mprev * r);
        REAL gth = -gst * sgk;
        if (base == 3) gth = gth - G * s;
        if (base == 0) gth = gth - g * s_prev;
        g_theta[n] += gth;
    }
}

/* where a backward step writes: g_x, the (t, b) rows of g_next / acc / sg, and the per-neuron
   sums; each indexed by the neuron n */
struct lkout { REAL *g_x, *g_next, *acc, *sg, *g_beta, *g_theta, *g_alpha, *g_bias; };

#define LEAKY_BWD_CASE(BASE, SYN, ATT) \
    leaky_bwd_row(BASE, SYN, ATT, n0, n1, last, first, gs, gm, c->p + i, pp, mp, yp, o->sg, \
                  c->beta, c->theta, c->alpha, o->g_next, o->acc, o->g_x, \
                  o->g_beta, o->g_theta, o->g_alpha, o->g_bias)

/* step t of batch row b of the BPTT, neurons n0 .. n1 */
static void leaky_bwd_step(const struct lk *c, int64_t t, int64_t b, int64_t n0, int64_t n1,
                           const struct lkout *o)
{
    const int64_t N = c->N, M = c->B * N;
    const int base = c->mode & 7, attached = (c->mode & 8) != 0, synaptic = c->alpha != 0;
            const int64_t i = t * M + b * N;
            const int last = t == c->T - 1, first = t == 0;
            const REAL *gs = c->gs ? c->gs + i : c->zero;
            const REAL *gm = c->gm ? c->gm + i : c->zero;
            const REAL *pp = first ? c->zero : c->p + i - M;
            const REAL *mp = first ? c->zero : (c->m_post ? c->m_post : c->p) + i - M;
            const REAL *yp = first || !synaptic ? c->zero : c->syn + i - M;
            surrogate_row(c->sg_kind, c->sg_alpha, n0, n1, c->p + i, c->theta, o->sg);
            switch ((base * 2 + synaptic) * 2 + attached) {
            case 0: LEAKY_BWD_CASE(0, 0, 0); break;
            case 2: LEAKY_BWD_CASE(0, 1, 0); break;
            case 4: LEAKY_BWD_CASE(1, 0, 0); break;
            case 6: LEAKY_BWD_CASE(1, 1, 0); break;
            case 8: LEAKY_BWD_CASE(2, 0, 0); break;
            case 10: LEAKY_BWD_CASE(2, 1, 0); break;
            case 12: LEAKY_BWD_CASE(3, 0, 0); break;
            case 13: LEAKY_BWD_CASE(3, 0, 1); break;
            case 14: LEAKY_BWD_CASE(3, 1, 0); break;
            case 15: LEAKY_BWD_CASE(3, 1, 1); break;
            case 16: LEAKY_BWD_CASE(4, 0, 0); break;
            case 17: LEAKY_BWD_CASE(4, 0, 1); break;
            case 18: LEAKY_BWD_CASE(4, 1, 0); break;
            case 19: LEAKY_BWD_CASE(4, 1, 1); break;
            case 20: LEAKY_BWD_CASE(5, 0, 0); break;
            default: LEAKY_BWD_CASE(5, 1, 0); break;
            }
}

static void zero_sums(const struct lkout *o, int synaptic, int64_t n0, int64_t n1)
{
    for (int64_t n = n0; n < n1; n++) {
        o->g_beta[n] = 0; o->g_theta[n] = 0; o->g_bias[n] = 0;
        if (synaptic) o->g_alpha[n] = 0;
    }
}

static void leaky_bwd_range(void *arg, int64_t n0, int64_t n1, int slot)
{
    const struct lk *c = (const struct lk *)arg;
    (void)slot;
    const int64_t N = c->N, M = c->B * N;
    struct lkout o = {0, 0, 0, c->sg, c->g_beta, c->g_theta, c->g_alpha, c->g_bias};
    zero_sums(&o, c->alpha != 0, n0, n1);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t n = n0; n < n1; n++) { c->g_next[b * N + n] = 0; c->acc[b * N + n] = 0; }
    for (int64_t t = c->T - 1; t >= 0; t--)
        for (int64_t b = 0; b < c->B; b++) {
            o.g_x = c->g_x + t * M + b * N;
            o.g_next = c->g_next + b * N;
            o.acc = c->acc + b * N;
            leaky_bwd_step(c, t, b, n0, n1, &o);
        }
}

/* The BPTT of leaky_linear_forward fused with the weight gradient: per block of HB neurons
   (threads own whole blocks), the block's g_x of every step goes to a compact (R, HB) array
   and from there straight into the event-driven weight gradient (spike_weight_grad's sums,
   the same numbers); g_x itself is written only when g_x_out is given. A last block that
   overlaps the one before recomputes those neurons into scratch sums, not into the outputs.
   Scratch per thread: (R + F + 2 B + 5) * HB reals and F cursors. */
struct lklb { struct lk n; const int64_t *colptr; const int32_t *rows; const REAL *cval;
              int64_t F, ch; REAL *gW, *g_x_out, *part; int64_t *cursor; };

static void leaky_linear_bwd_blocks(void *arg, int64_t lo, int64_t hi, int slot)
{
    const struct lklb *c = (const struct lklb *)arg;
    const struct lk *n = &c->n;
    const int64_t N = n->N, F = c->F, B = n->B, R = n->T * B;
    const int synaptic = n->alpha != 0;
    REAL *gblk = c->part + (int64_t)slot * (R + F + 2 * B + 5) * HB;
    REAL *part = gblk + R * HB, *gn = part + F * HB, *acc = gn + B * HB, *sg = acc + B * HB;
    REAL *dummy = sg + HB;  /* 4 x HB sums of the overlapped neurons, discarded */
    int64_t *cursor = c->cursor + (int64_t)slot * F;
    for (int64_t blk = lo; blk < hi; blk++) {
        int64_t h0, skip;
        block_of(N, blk, &h0, &skip);
        struct lkout own = {0, 0, 0, sg - h0, n->g_beta, n->g_theta, n->g_alpha, n->g_bias};
        struct lkout over = {0, 0, 0, sg - h0, dummy - h0, dummy + HB - h0,
                             dummy + 2 * HB - h0, dummy + 3 * HB - h0};
        zero_sums(&own, synaptic, h0 + skip, h0 + HB);
        zero_sums(&over, 1, h0, h0 + skip);
        for (int64_t k = 0; k < 2 * B * HB; k++) gn[k] = 0;  /* gn and acc */
        for (int64_t t = n->T - 1; t >= 0; t--)
            for (int64_t b = 0; b < B; b++) {
                REAL *row = gblk + (t * B + b) * HB;
                own.g_x = over.g_x = row - h0;
                own.g_next = over.g_next = gn + b * HB - h0;
                own.acc = over.acc = acc + b * HB - h0;
                if (skip) leaky_bwd_step(n, t, b, h0, h0 + skip, &over);
                leaky_bwd_step(n, t, b, h0 + skip, h0 + HB, &own);
                if (c->g_x_out)
                    memcpy(c->g_x_out + (t * B + b) * N + h0 + skip, row + skip,
                           sizeof(REAL) * (size_t)(HB - skip));
            }
        chunked_gather(0, F, c->colptr, c->rows, c->cval, gblk, HB, 0, R, c->ch, part, HB,
                       cursor);
        for (int64_t h = skip; h < HB; h++) {
            REAL *restrict o = c->gW + (h0 + h) * F;
            for (int64_t j = 0; j < F; j++) o[j] = part[j * HB + h];
        }
    }
}

void leaky_linear_backward(int64_t T, int64_t B, int64_t N, int64_t F, const int64_t *colptr,
                           const int32_t *rows, const REAL *cval, int64_t ch, const REAL *gs,
                           const REAL *gm, const REAL *p, const REAL *m_post, const REAL *syn,
                           const REAL *beta, const REAL *theta, const REAL *alpha, int mode,
                           int sg_kind, REAL sg_alpha, REAL *gW, REAL *g_x_out, REAL *g_beta,
                           REAL *g_theta, REAL *g_alpha, REAL *g_bias, const REAL *zero,
                           REAL *part, int64_t *cursor, int threads)
{
    struct lklb c;
    memset(&c, 0, sizeof c);
    c.n.T = T; c.n.B = B; c.n.N = N; c.n.p = (REAL *)p; c.n.m_post = m_post;
    c.n.syn = (REAL *)syn; c.n.beta = beta; c.n.theta = theta; c.n.alpha = alpha;
    c.n.mode = mode; c.n.sg_kind = sg_kind; c.n.sg_alpha = sg_alpha; c.n.gs = gs; c.n.gm = gm;
    c.n.g_beta = g_beta; c.n.g_theta = g_theta; c.n.g_alpha = g_alpha; c.n.g_bias = g_bias;
    c.n.zero = zero;
    c.colptr = colptr; c.rows = rows; c.cval = cval; c.F = F; c.ch = ch; c.gW = gW;
    c.g_x_out = g_x_out; c.part = part; c.cursor = cursor;
    parallel(threads, (N + HB - 1) / HB, leaky_linear_bwd_blocks, &c);
}

/* BPTT of leaky_forward: gs / gm (T, B, N) may be NULL; g_x (T, B, N); g_beta, g_theta,
   g_alpha, g_bias (N): the per-neuron sums over time and batch (g_bias: of g_x). g_next,
   acc: (B, N) and sg (N) scratch; zero: N zeros. */
void leaky_backward(int64_t T, int64_t B, int64_t N, const REAL *gs, const REAL *gm,
                   const REAL *p, const REAL *m_post, const REAL *syn, const REAL *beta,
                   const REAL *theta, const REAL *alpha, int mode, int sg_kind, REAL sg_alpha,
                   REAL *g_x, REAL *g_beta, REAL *g_theta, REAL *g_alpha, REAL *g_bias,
                   REAL *g_next, REAL *acc, REAL *sg, const REAL *zero, int threads)
{
    struct lk c = {0};
    c.T = T; c.B = B; c.N = N; c.p = (REAL *)p; c.m_post = m_post; c.syn = (REAL *)syn;
    c.beta = beta; c.theta = theta; c.alpha = alpha; c.mode = mode; c.sg_kind = sg_kind;
    c.sg_alpha = sg_alpha; c.gs = gs; c.gm = gm; c.g_x = g_x; c.g_beta = g_beta;
    c.g_theta = g_theta; c.g_alpha = g_alpha; c.g_bias = g_bias; c.g_next = g_next;
    c.acc = acc; c.sg = sg;
    c.zero = zero;
    parallel(neuron_threads(threads, N), N, leaky_bwd_range, &c);
}
"""

FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
         "-std=c99", "-pthread"]
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
                            libraries=["-lm", "-lpthread"], label="the training kernel")
    except (NativeBuildError, OSError):
        return None


def available(tensor: torch.Tensor) -> bool:
    """True when the kernel can run the loops of ``tensor`` (CPU, float32/64, compiler)."""
    return (tensor.device.type == "cpu" and tensor.dtype in _REALS
            and os.environ.get("EVOSPIKE_TRAIN_KERNEL", "1") != "0"
            and _library(tensor.dtype) is not None)


def _ptr(t: torch.Tensor | None):
    """The address of ``t``'s data; the caller keeps ``t`` alive until the call returns."""
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


def threads() -> int:
    """How many threads the kernels may use: torch's own setting (`torch.set_num_threads`)."""
    return max(1, int(torch.get_num_threads()))


#: the event-driven products are chosen below these fractions of non-zero inputs (outputs at
#: least the kernel's block width / narrower outputs); see `sparse_pays`
SPARSE_BELOW = 0.25
SPARSE_NARROW_BELOW = 0.03


def block_width(dtype: torch.dtype) -> int:
    """HB of the kernel: the output columns one pass of the products covers."""
    lib = _library(dtype)
    lib.block_width.restype = ctypes.c_int64
    return int(lib.block_width())


def _scratch(n: int, lists: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The products' per-thread scratch: partial sums (n, lists, HB) and cursors (n, lists)."""
    return (torch.empty(n * lists * block_width(dtype), dtype=dtype),
            torch.empty(n * lists, dtype=torch.int64))


class SpikeRows:
    """The non-zeros of a spike tensor ``s`` (T, B, F) (any strides of T and B), as lists per
    row ``r = t * B + b``: ``ptr`` (R + 1), ``idx`` (int32 input indices, ascending in a row)
    and ``val`` (their values; None when every non-zero is 1). The column lists the weight
    gradient needs are built on first use (`columns`)."""

    def __init__(self, s: torch.Tensor):
        if s.dim() != 3 or s.stride(2) != 1:
            s = s.reshape(s.shape[0], -1, s.shape[-1]).contiguous()
        self.lib = _library(s.dtype)
        self.dtype = s.dtype
        T, B, F = s.shape
        self.R, self.F = T * B, F
        self.ptr = torch.empty(self.R + 1, dtype=torch.int64)
        binary = ctypes.c_int(1)
        self.lib.spike_count.restype = ctypes.c_int64
        self.nnz = int(self.lib.spike_count(
            ctypes.c_int64(T), ctypes.c_int64(B), ctypes.c_int64(F), _ptr(s),
            ctypes.c_int64(s.stride(0)), ctypes.c_int64(s.stride(1)), _ptr(self.ptr),
            ctypes.byref(binary)))
        self._source = (s, T, B)
        self.binary = bool(binary.value)
        self.idx: torch.Tensor | None = None
        self.val: torch.Tensor | None = None
        self._columns = None

    def chunk(self, n_src: int) -> int:
        """How many rows of ``g`` the weight gradient takes at a time: about a dozen
        non-zeros per list and chunk, at least 96 rows (measured on 784 x 1000 products at
        2-25 % density; the forward takes all of W's block in one pass, which measured
        fastest at every density)."""
        return int(min(n_src, max(96, round(12 / max(self.density, 1e-6)))))

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.R * self.F)

    def fill(self) -> SpikeRows:
        """Build the row lists (after `__init__` counted them)."""
        if self.idx is None:
            s, T, B = self._source
            self.idx = torch.empty(max(1, self.nnz), dtype=torch.int32)
            self.val = None if self.binary else torch.empty(max(1, self.nnz), dtype=s.dtype)
            self.lib.spike_fill(ctypes.c_int64(T), ctypes.c_int64(B), ctypes.c_int64(self.F),
                                _ptr(s), ctypes.c_int64(s.stride(0)),
                                ctypes.c_int64(s.stride(1)), _ptr(self.ptr), _ptr(self.idx),
                                _ptr(self.val))
            self._source = None  # the lists replace the dense tensor
        return self

    def columns(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(colptr (F + 1), rows (int32, ascending in a column), values or None)."""
        if self._columns is None:
            self.fill()
            colptr = torch.empty(self.F + 1, dtype=torch.int64)
            rows = torch.empty(max(1, self.nnz), dtype=torch.int32)
            cval = None if self.val is None else torch.empty_like(self.val)
            scratch = torch.empty(self.F, dtype=torch.int64)
            self.lib.spike_transpose(ctypes.c_int64(self.R), ctypes.c_int64(self.F),
                                     _ptr(self.ptr), _ptr(self.idx), _ptr(self.val),
                                     _ptr(colptr), _ptr(rows), _ptr(cval), _ptr(scratch))
            self._columns = (colptr, rows, cval)
        return self._columns

    def matmul(self, weight: torch.Tensor) -> torch.Tensor:
        """``S @ weight.T`` (R, H) for ``weight`` (H, F)."""
        self.fill()
        w = weight.detach().to(self.dtype).contiguous()
        H = w.shape[0]
        out = torch.empty(self.R, H, dtype=self.dtype)
        n = threads()
        part, cursor = _scratch(n, self.R + self.F, self.dtype)
        self.lib.spike_matmul(ctypes.c_int64(self.R), ctypes.c_int64(self.F), ctypes.c_int64(H),
                              _ptr(self.ptr), _ptr(self.idx), _ptr(self.val), _ptr(w),
                              _ptr(out), _ptr(part), _ptr(cursor),
                              ctypes.c_int64(self.F), ctypes.c_int(n))
        return out

    def weight_grad(self, g: torch.Tensor) -> torch.Tensor:
        """``g.T @ S`` (H, F) for ``g`` (R, H): the gradient of ``weight`` in `matmul`."""
        colptr, rows, cval = self.columns()
        g = g.to(self.dtype).reshape(self.R, -1).contiguous()
        H = g.shape[1]
        gw = torch.empty(H, self.F, dtype=self.dtype)
        n = threads()
        part, cursor = _scratch(n, self.F, self.dtype)
        self.lib.spike_weight_grad(ctypes.c_int64(self.R), ctypes.c_int64(self.F),
                                   ctypes.c_int64(H), _ptr(colptr), _ptr(rows), _ptr(cval),
                                   _ptr(g), _ptr(gw), _ptr(part), _ptr(cursor),
                                   ctypes.c_int64(self.chunk(self.R)), ctypes.c_int(n))
        return gw


def spike_matmul(s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``s @ weight.T`` for a mostly-zero ``s`` (R, F); ``weight`` (H, F)."""
    return SpikeRows(s.reshape(1, *s.shape)).matmul(weight)


def spike_weight_grad(s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g.T @ s`` (H, F) for a mostly-zero ``s`` (R, F) and ``g`` (R, H)."""
    return SpikeRows(s.reshape(1, *s.shape)).weight_grad(g)


def _zeros(n: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(max(1, n), dtype=dtype)


def leaky_forward(x: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor,
                  alpha: torch.Tensor | None, mode: int, bias: torch.Tensor | None = None):
    """(p, spikes, m_post or None, syn or None), each like ``x`` (T, B, *shape), of
    `evospike.training.leaky` for the input ``x + bias``; ``beta``/``theta``/``alpha``/``bias``
    have ``shape`` (contiguous)."""
    lib = _library(x.dtype)
    x = x.contiguous()
    T, B = x.shape[:2]
    N = beta.numel()
    p = torch.empty_like(x)
    spikes = torch.empty_like(x)
    m_out = torch.empty_like(x) if mode & 7 in (3, 4) else None
    syn = torch.empty_like(x) if alpha is not None else None
    zero = _zeros(N, x.dtype)
    lib.leaky_forward(ctypes.c_int64(T), ctypes.c_int64(B), ctypes.c_int64(N), _ptr(x),
                      _ptr(bias), _ptr(beta), _ptr(theta), _ptr(alpha), ctypes.c_int(mode), _ptr(p),
                      _ptr(spikes), _ptr(m_out), _ptr(syn), _ptr(zero),
                      ctypes.c_int(threads()))
    return p, spikes, m_out, syn


def leaky_linear_forward(rows: SpikeRows, weight: torch.Tensor, T: int, B: int,
                         beta: torch.Tensor, theta: torch.Tensor, alpha: torch.Tensor | None,
                         mode: int, bias: torch.Tensor | None = None):
    """`leaky_forward` of ``rows @ weight.T`` (+ ``bias``) without storing the product: the
    same numbers as `SpikeRows.matmul` then `leaky_forward`. Needs ``weight.shape[0]`` of at
    least the kernel's block width."""
    rows.fill()
    dtype = rows.dtype
    w = weight.detach().to(dtype).contiguous()
    N = w.shape[0]
    lib = _library(dtype)
    hb = block_width(dtype)
    shape = (T, B, N)
    p = torch.empty(shape, dtype=dtype)
    spikes = torch.empty(shape, dtype=dtype)
    m_out = torch.empty(shape, dtype=dtype) if mode & 7 in (3, 4) else None
    syn = torch.empty(shape, dtype=dtype) if alpha is not None else None
    zero = _zeros(N, dtype)
    n = threads()
    part = torch.empty(n * (rows.F + 1) * hb, dtype=dtype)
    lib.leaky_linear_forward(ctypes.c_int64(T), ctypes.c_int64(B), ctypes.c_int64(N),
                             ctypes.c_int64(rows.F), _ptr(rows.ptr), _ptr(rows.idx),
                             _ptr(rows.val), _ptr(w), _ptr(bias), _ptr(beta), _ptr(theta),
                             _ptr(alpha), ctypes.c_int(mode), _ptr(p), _ptr(spikes),
                             _ptr(m_out), _ptr(syn), _ptr(zero), _ptr(part),
                             ctypes.c_int(n))
    return p, spikes, m_out, syn


def leaky_linear_backward(rows: SpikeRows, gs, gm, p: torch.Tensor, m_post, syn,
                          beta: torch.Tensor, theta: torch.Tensor, alpha, mode: int,
                          surrogate: str, surrogate_alpha: float, want_g_x: bool):
    """The BPTT of `leaky_linear_forward` fused with the weight gradient: (g_w (N, F), g_x
    (T, B, N) or None, g_beta, g_theta, g_alpha or None, g_bias), the same numbers as
    `leaky_backward` then `SpikeRows.weight_grad`."""
    colptr, crows, cval = rows.columns()
    dtype = p.dtype
    lib = _library(dtype)
    real = _CTYPES[dtype]
    T, B = p.shape[:2]
    N = beta.numel()
    F = rows.F
    hb = block_width(dtype)
    gs = None if gs is None else gs.to(dtype).contiguous()
    gm = None if gm is None else gm.to(dtype).contiguous()
    g_w = torch.empty(N, F, dtype=dtype)
    g_x = torch.empty_like(p) if want_g_x else None
    sums = torch.empty(4, N, dtype=dtype)
    zero = _zeros(N, dtype)
    n = threads()
    part = torch.empty(n * (rows.R + F + 2 * B + 5) * hb, dtype=dtype)
    cursor = torch.empty(n * F, dtype=torch.int64)
    lib.leaky_linear_backward(
        ctypes.c_int64(T), ctypes.c_int64(B), ctypes.c_int64(N), ctypes.c_int64(F),
        _ptr(colptr), _ptr(crows), _ptr(cval), ctypes.c_int64(rows.chunk(rows.R)), _ptr(gs),
        _ptr(gm), _ptr(p), _ptr(m_post), _ptr(syn), _ptr(beta), _ptr(theta), _ptr(alpha),
        ctypes.c_int(mode), ctypes.c_int(SURROGATE_KINDS[surrogate]), real(surrogate_alpha),
        _ptr(g_w), _ptr(g_x), _ptr(sums[0]), _ptr(sums[1]), _ptr(sums[2]), _ptr(sums[3]),
        _ptr(zero), _ptr(part), _ptr(cursor), ctypes.c_int(n))
    shape = beta.shape
    return (g_w, g_x, sums[0].reshape(shape), sums[1].reshape(shape),
            sums[2].reshape(shape) if alpha is not None else None, sums[3].reshape(shape))


def leaky_backward(gs, gm, p: torch.Tensor, m_post, syn, beta: torch.Tensor,
                   theta: torch.Tensor, alpha, mode: int, surrogate: str, surrogate_alpha: float):
    """(g_x like ``p``, g_beta, g_theta, g_alpha or None, g_bias: the last four of ``beta``'s
    shape; g_bias is the sum of g_x over time and batch)."""
    lib = _library(p.dtype)
    real = _CTYPES[p.dtype]
    T, B = p.shape[:2]
    N = beta.numel()
    gs = None if gs is None else gs.to(p.dtype).contiguous()
    gm = None if gm is None else gm.to(p.dtype).contiguous()
    g_x = torch.empty_like(p)
    sums = torch.empty(4, N, dtype=p.dtype)
    scratch = torch.empty(2, B * N, dtype=p.dtype)
    sg = torch.empty(N, dtype=p.dtype)
    zero = _zeros(N, p.dtype)
    lib.leaky_backward(ctypes.c_int64(T), ctypes.c_int64(B), ctypes.c_int64(N), _ptr(gs),
                       _ptr(gm), _ptr(p), _ptr(m_post), _ptr(syn), _ptr(beta), _ptr(theta),
                       _ptr(alpha), ctypes.c_int(mode), ctypes.c_int(SURROGATE_KINDS[surrogate]),
                       real(surrogate_alpha), _ptr(g_x), _ptr(sums[0]), _ptr(sums[1]),
                       _ptr(sums[2]), _ptr(sums[3]), _ptr(scratch[0]), _ptr(scratch[1]),
                       _ptr(sg),
                       _ptr(zero), ctypes.c_int(threads()))
    shape = beta.shape
    return (g_x, sums[0].reshape(shape), sums[1].reshape(shape),
            sums[2].reshape(shape) if alpha is not None else None, sums[3].reshape(shape))


def sparse_pays(density: float, outputs: int, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the event-driven product (and its weight gradient) beats torch's dense ones
    at ``density`` (the fraction of non-zero inputs) for ``outputs`` output columns.
    Measured on one core (Xeon, AVX-512; forward + weight gradient, index building included)
    for R = 3200 rows: with outputs >= the kernel's block width (128 in float32) the sparse
    pair costs about the dense one at 25-30 % density (784 -> 1000: 29 vs 51 ms at 10 %,
    60 vs 52 ms at 30 %; 200 -> 256: 4.1 vs 3.6 ms at 30 %); narrower outputs run without
    the blocking and only pay at a few per cent (1000 -> 100: 4.1 vs 7.8 ms at 2 %, 9.2 vs
    7.9 ms at 10 %), and below 32 outputs never (1000 -> 10: 3.0 vs 1.8 ms at 2 %)."""
    if outputs >= block_width(dtype):
        return density < SPARSE_BELOW
    return sparse_possible(outputs) and density < SPARSE_NARROW_BELOW


def sparse_possible(outputs: int) -> bool:
    """False where no density makes the event-driven product pay (under 32 outputs), so that
    the non-zeros need not even be counted."""
    return outputs >= 32
