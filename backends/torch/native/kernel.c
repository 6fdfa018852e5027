/* EvoSpike native CPU kernel: many time steps of a compiled network per call.
 *
 * Why it exists: at 4000 neurons and 10,000 steps per simulated second the cost of a step is
 * per-operation overhead, not arithmetic; one call into native code per chunk of steps removes
 * that overhead. It works in place on the memory of the torch backend's tensors and does, in
 * the same order and with the same roundings, exactly what the eager engine (eager.py) does:
 *
 *   per step: take this step's ring-buffer slot (plus this step's PoissonInput events) ->
 *   advance the state (exact linear propagator, forward Euler for Izhikevich, exponential Euler
 *   for CondLIF, forward Euler for CondAdEx) -> threshold -> reset / refractoriness -> walk the
 *   CSR row of every neuron that fired and add its weights into the slot `delay` steps ahead.
 *   Plastic projections then run their STDP step (modulated or three-factor rules read their
 *   modulator's level m[n-1]), and last the modulators update their levels (m[n]), as the
 *   eager engine's processes do at the end of the step (evospike/ir/modulators.py).
 *   The processes then run in the eager engine's phase order: homeostasis (rate estimate,
 *   adaptive threshold or synaptic scaling), the modulators, metaplasticity (a rule parameter
 *   adapting to a modulator's level; evospike/ir/plasticity.py).
 *
 * Threads (OpenMP; without it everything runs on one thread): a call runs one trial.
 * `evospike_run_batch` runs the trials of a batch in parallel, one per thread at a time, each
 * thread with its own scratch ("lane"): trials never interact. `evospike_run` with nthreads > 1
 * splits one trial's network across threads: each thread advances a contiguous range of every
 * population's neurons, and owns the same kind of range of every population as a target of
 * propagation: it walks every fired neuron in the serial order and adds only the synapses whose
 * target lies in its range (rows sorted by target: a binary search finds that part of a row).
 * Every target therefore receives its additions in exactly the serial order, whatever the
 * number of threads: the sums, and so the spikes, are bit-identical to one thread. Plastic
 * projections (STDP), recording and the processes run on one thread between two barriers.
 *
 * Compiled twice, with REAL = float and REAL = double, and -ffp-contract=off so that a*b+c is
 * rounded like torch's separate multiply and add. exp (conductance models) is not computed
 * here: the caller passes the very function torch's exp calls (`Pop.vexp`), checked equal to
 * torch.exp before it is used (engine.py), so that it rounds the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef REAL
#define REAL float
#endif

#define MAX_STATES 4

/* exp over an array, the signature of MKL's vmsExp / vmdExp (n, in, out, mode) */
typedef void (*VExp)(int32_t n, const REAL *in, REAL *out, int64_t mode);

/* per-neuron constants of the conductance models (kind 2: CondLIF, kind 3: CondAdEx), one
 * value per neuron each; the order of the engine's COND_KEYS */
enum { C_G_L, C_E_L, C_E_EXC, C_E_INH, C_I_E, C_DT_OVER_C, C_DECAY_EXC, C_DECAY_INH, C_C,
       C_V_T, C_DELTA_T, C_A, C_TAU_W, C_B, C_V_PEAK, N_COND };

typedef struct {
    int32_t kind;          /* 0: linear model, 1: Izhikevich, 2: CondLIF, 3: CondAdEx */
    int32_t k;             /* number of state variables */
    int32_t n;             /* neurons */
    int32_t trials;
    REAL *x;               /* [k][trials][n] */
    const REAL *P;         /* linear: [k][k][pn] */
    const REAL *q;         /* linear: [k][pn] */
    const REAL *G;         /* linear: [k][pn], response to one unit of injected current */
    int32_t pn;            /* 1: parameters shared, n: one set per neuron */
    const REAL *Bc;        /* [k][nch]: coefficient of each buffer channel on each state */
    int32_t nch;           /* channels in the ring buffer */
    int32_t v_index;
    int32_t theta_index;   /* -1: no adaptive threshold */
    const REAL *v_thresh;  /* [n] each (the engine expands shared values) */
    const REAL *v_reset;
    const REAL *theta_jump;
    int32_t reset_subtract;
    int32_t has_refractory;
    int32_t *refrac;       /* [trials][n] steps of refractoriness left */
    const int32_t *hold_steps;  /* [n] */
    REAL *buf;             /* [slots][nch][trials][n], NULL when nothing projects here */
    int32_t slots;
    const REAL *current;   /* [steps][n] injected current of this call, or NULL */
    /* Izhikevich: a, b, c, d, v_peak, i_bias, decay_exc, decay_inh, each 1 or n values */
    const REAL *izh[8];
    int32_t izh_n[8];
    int32_t ch_exc, ch_inh, ch_v;   /* buffer channel of each IR channel, -1 if unused */
    REAL dt_ms;
    /* scratch and output */
    int64_t *fired;        /* [n]: flat indices that fired in the current step (one trial) */
    int64_t n_fired;
    int32_t record;
    int64_t *out_step;     /* recorded spikes (step, flat index), capacity out_cap */
    int64_t *out_flat;
    int64_t out_cap;
    int64_t out_count;
    const REAL *theta_h;   /* [trials][n] homeostatic threshold (Homeostasis), or NULL */
    const REAL *cond[N_COND];  /* conductance models: [n] each (CondLIF leaves the AdEx ones) */
    VExp vexp;             /* conductance models: torch's exp */
    int64_t vexp_mode;
} Pop;

typedef struct {
    int32_t pre_is_source;
    int32_t pre;           /* index into pops or sources */
    int32_t post;          /* index into pops */
    int32_t n_pre, n_post;
    const int64_t *indptr;
    const int32_t *indices;
    REAL *weights;         /* [nnz], or [trials][nnz] when w_stride = nnz */
    const int16_t *delays16;   /* per-synapse delays (one of the two, or neither) */
    const int32_t *delays32;
    int32_t uniform_delay;
    int32_t channel;       /* buffer channel in the post population */
    /* pair-based STDP (evospike/ir/plasticity.py); weights are then per trial [trials][nnz] */
    int32_t plastic;
    int64_t nnz;
    REAL *wt;
    REAL *x, *y;           /* traces [trials][n_pre], [trials][n_post] */
    /* per trial [trials]: metaplasticity adapts them trial by trial */
    const REAL *decay_x, *decay_y, *a_plus, *a_minus;
    REAL w_min, w_max;
    int32_t nearest, multiplicative;
    const int64_t *col_ptr, *col_syn, *col_pre;
    int64_t *pending;      /* [uniform_delay][trials][n_pre]: spikes still on their way */
    int64_t *pending_n;    /* [uniform_delay][trials] */
    /* modulated STDP: every weight change times a factor of the modulator's level m[n-1] */
    const REAL *mod_level; /* [trials], NULL: no modulator */
    int32_t modulation;    /* 0: none, 1: gate (m > gate_threshold), 2: scale (1 + gain m) */
    REAL gate_threshold, scale_gain;
    /* three-factor STDP: pair terms go into the eligibility, then w += lr dt m[n-1] e */
    int32_t three_factor;
    REAL *elig;            /* [trials][nnz] */
    REAL decay_e, lr_dt;
    int64_t w_stride;      /* 0: one weight vector for all trials, nnz: one per trial */
    int32_t rows_sorted;   /* 1: every row's targets ascend (threads binary-search a row) */
} Proj;

typedef struct {
    int32_t n;
    const int64_t *flat;   /* spikes of this call's steps, flat indices sorted by step */
    const int64_t *ptr;    /* [steps + 1] into flat */
    int32_t record;
    int64_t *out_step;
    int64_t *out_flat;
    int64_t out_cap;
    int64_t out_count;
} Src;

/* A PoissonInput: its events x weight of each step, added to a channel of its target's ring
 * buffer slot before the state reads it (eager.py: arrivals[channel] += inp.at(step)). */
typedef struct {
    int32_t pop;           /* index into pops */
    int32_t channel;       /* buffer channel in that population */
    const REAL *drive;     /* [steps][trials][n] from this call's first step */
} Inp;

/* A Modulator (evospike/ir/modulators.py): one level per trial, updated at the end of the
 * step from its drives, in the eager engine's order: decay, reward, spike counts, novelty. */
typedef struct {
    REAL *level;           /* [trials] */
    REAL decay;
    const double *reward;  /* [steps] reward drive of this call's steps (precomputed), or NULL */
    int32_t n_counts;      /* spike-count drives */
    const int32_t *count_is_source;
    const int32_t *count_node;  /* index into pops or sources */
    const REAL *count_gain;
    int32_t novelty;       /* 1: a novelty drive */
    int32_t nov_is_source, nov_node;
    REAL nov_gain, nov_denom;   /* rate = count / nov_denom (size * dt_s) */
    REAL rate_decay, rate_in, expect_decay, expect_in;  /* a, 1 - a, b, 1 - b */
    REAL *rate_hz, *expected_hz;  /* [trials] */
} Mod;

/* Homeostasis (evospike/ir/plasticity.py) of one population, per neuron and trial, in the
 * eager engine's order (THomeostasis.update in processes.py): r += 1000 / tau_rate for each
 * spike; threshold: theta += rate (r - target) dt 1e-3; scaling (steps n % every == 0): the
 * incoming weights of the listed projections times 1 + rate (target - r) every dt 1e-3,
 * clipped for plastic ones; then r *= exp(-dt / tau_rate). */
typedef struct {
    int32_t pop;           /* index into pops */
    int32_t scaling;       /* 0: threshold mechanism, 1: synaptic scaling */
    REAL *rate_hz, *theta; /* [trials][n] */
    REAL increment, decay, target, threshold_rate, scaling_rate, every, dt_ms, milli;
    int64_t every_steps;
    int32_t n_scaled;
    const int32_t *scaled; /* indices into projs */
    REAL *factor;          /* scratch [n] (one per lane) */
} Homeo;

/* Metaplasticity: parameter p of a rule adapts to its modulator's level m[n] (read after the
 * modulators' update): baseline = baseline b + (1 - b) m; p = clip(p + eta (m - baseline) dt
 * 1e-3, p_min, p_max). An amplitude is copied into the rule's per-trial array; a time
 * constant changes the trace decay exp(-dt / p), which `refresh` computes with torch's exp in
 * the caller (the same function as the eager engine's, so the decays round the same). */
typedef struct {
    REAL *value, *baseline;     /* [trials] */
    const REAL *level;          /* the modulator's [trials] */
    REAL baseline_decay, baseline_in, eta, dt_ms, milli, p_min, p_max;
    REAL *amplitude;            /* the rule's a_plus or a_minus [trials], or NULL */
    void (*refresh)(void);      /* time constants: recompute the rule's decays, or NULL */
} Meta;

/* Everything one call works on. The batch entry takes one per thread ("lanes"): they share
 * every array but the scratch (fired lists, recording buffers, homeostasis factors). */
typedef struct {
    Pop *pops; int32_t n_pops;
    Src *srcs; int32_t n_srcs;
    Proj *projs; int32_t n_projs;
    Mod *mods; int32_t n_mods;
    Homeo *homeos; int32_t n_homeos;
    Meta *metas; int32_t n_metas;
    Inp *inps; int32_t n_inps;
} Net;

#define PAR(arr, cnt, i) ((cnt) == 1 ? (arr)[0] : (arr)[i])

#define BLOCK 256
/* thread ranges are multiples of this many neurons: no two threads write one cache line */
#define ALIGN 16

int32_t evospike_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Thread t's range [lo, hi) of n neurons split over nt threads. */
static void part(int n, int nt, int t, int *lo, int *hi) {
    int chunk = (n + nt - 1) / nt;
    chunk = (chunk + ALIGN - 1) / ALIGN * ALIGN;
    const int64_t a = (int64_t)t * chunk, z = a + chunk;
    *lo = a < n ? (int)a : n;
    *hi = z < n ? (int)z : n;
}

/* This step's slot of the ring buffer, with its PoissonInput events added (range [lo, hi) of
 * trial b); NULL when nothing projects onto the population. */
static REAL *take_slot(const Net *net, int pidx, int64_t step, int64_t s, int b, int lo,
                       int hi) {
    const Pop *p = &net->pops[pidx];
    if (!p->buf) return NULL;
    const int n = p->n, T = p->trials;
    REAL *arr = p->buf + (size_t)(step % p->slots) * p->nch * T * n;
    for (int q = 0; q < net->n_inps; ++q) {
        const Inp *in = &net->inps[q];
        if (in->pop != pidx) continue;
        REAL *restrict a = arr + ((size_t)in->channel * T + b) * n;
        const REAL *restrict d = in->drive + ((size_t)s * T + b) * n;
        for (int i = lo; i < hi; ++i) a[i] = a[i] + d[i];
    }
    return arr;
}

static void clear_slot(const Pop *p, REAL *arr, int b, int lo, int hi) {
    for (int c = 0; c < p->nch; ++c)
        memset(arr + ((size_t)c * p->trials + b) * p->n + lo, 0, sizeof(REAL) * (size_t)(hi - lo));
}

/* Neurons are updated in blocks so that the inner loops run over neurons with fixed
 * coefficients and vectorise; the additions happen in the eager engine's order. Each advance
 * function updates neurons [lo, hi) of trial b, writes the flat indices that fired, in
 * ascending order, to `fired` and returns how many. */
static int64_t advance_linear(Pop *p, REAL *arr, int64_t offset, int b, int lo, int hi,
                              int64_t *fired) {
    const int k = p->k, n = p->n, T = p->trials, pn = p->pn;
    const REAL *cur = p->current ? p->current + (size_t)offset * n : NULL;
    REAL nw[MAX_STATES][BLOCK];
    int64_t n_fired = 0;
    for (int i0 = lo; i0 < hi; i0 += BLOCK) {
        const int m = hi - i0 < BLOCK ? hi - i0 : BLOCK;
        for (int s = 0; s < k; ++s) {
            REAL *restrict acc = nw[s];
            const REAL *q = p->q + (size_t)s * pn;
            if (pn == 1) for (int i = 0; i < m; ++i) acc[i] = q[0];
            else for (int i = 0; i < m; ++i) acc[i] = q[i0 + i];
            for (int j = 0; j < k; ++j) {
                const REAL *Pj = p->P + ((size_t)s * k + j) * pn;
                const REAL *restrict xj = p->x + ((size_t)j * T + b) * n + i0;
                if (pn == 1) {
                    const REAL c = Pj[0];
                    if (c == (REAL)0) continue;
                    for (int i = 0; i < m; ++i) acc[i] = c * xj[i] + acc[i];
                } else {
                    for (int i = 0; i < m; ++i)
                        if (Pj[i0 + i] != (REAL)0) acc[i] = Pj[i0 + i] * xj[i] + acc[i];
                }
            }
            if (cur) {
                const REAL *g = p->G + (size_t)s * pn;
                for (int i = 0; i < m; ++i) {
                    const REAL gi = pn == 1 ? g[0] : g[i0 + i];
                    if (gi != (REAL)0) acc[i] = acc[i] + gi * cur[i0 + i];
                }
            }
            if (arr) {
                for (int c = 0; c < p->nch; ++c) {
                    const REAL coef = p->Bc[s * p->nch + c];
                    const REAL *restrict a = arr + ((size_t)c * T + b) * n + i0;
                    if (coef == (REAL)1) for (int i = 0; i < m; ++i) acc[i] = acc[i] + a[i];
                    else if (coef != (REAL)0)
                        for (int i = 0; i < m; ++i) acc[i] = acc[i] + coef * a[i];
                }
            }
        }
        /* threshold in a branch-free pass that vectorises; spikes are rare, so their
         * resets run in a second, sparse pass */
        const int vi = p->v_index;
        const REAL *restrict xv = p->x + ((size_t)vi * T + b) * n + i0;
        REAL *restrict nv = nw[vi];
        const REAL *restrict th = p->v_thresh + i0;
        const REAL *restrict theta = p->theta_index >= 0 ? nw[p->theta_index] : NULL;
        const REAL *restrict off = p->theta_h ? p->theta_h + (size_t)b * n + i0 : NULL;
        unsigned char sp[BLOCK];
        int any = 0;
        if (p->has_refractory) {
            int32_t *restrict rf = p->refrac + (size_t)b * n + i0;
            for (int i = 0; i < m; ++i) {
                const int held = rf[i] > 0;
                const REAL v = held ? xv[i] : nv[i];
                REAL thr = theta ? th[i] + theta[i] : th[i];
                if (off) thr = thr + off[i];
                nv[i] = v;
                sp[i] = (unsigned char)(!held & (v > thr));
                rf[i] = held ? rf[i] - 1 : 0;
                any |= sp[i];
            }
        } else {
            for (int i = 0; i < m; ++i) {
                REAL thr = theta ? th[i] + theta[i] : th[i];
                if (off) thr = thr + off[i];
                sp[i] = (unsigned char)(nv[i] > thr);
                any |= sp[i];
            }
        }
        if (any) {
            for (int i = 0; i < m; ++i) {
                if (!sp[i]) continue;
                const int neuron = i0 + i;
                if (p->reset_subtract)
                    nv[i] = nv[i] - (p->v_thresh[neuron] - p->v_reset[neuron]);
                else
                    nv[i] = p->v_reset[neuron];
                if (p->theta_index >= 0)
                    nw[p->theta_index][i] = nw[p->theta_index][i] + p->theta_jump[neuron];
                if (p->has_refractory) p->refrac[(size_t)b * n + neuron] = p->hold_steps[neuron];
                fired[n_fired++] = (int64_t)b * n + neuron;
            }
        }
        for (int s = 0; s < k; ++s)
            memcpy(p->x + ((size_t)s * T + b) * n + i0, nw[s], sizeof(REAL) * m);
    }
    return n_fired;
}

static int64_t advance_izhikevich(Pop *p, REAL *arr, int64_t offset, int b, int lo, int hi,
                                  int64_t *fired) {
    const int n = p->n, T = p->trials;
    const REAL *cur = p->current ? p->current + (size_t)offset * n : NULL;
    REAL *V = p->x, *U = p->x + (size_t)T * n, *IE = p->x + 2 * (size_t)T * n,
         *II = p->x + 3 * (size_t)T * n;
    const REAL dt = p->dt_ms;
    int64_t n_fired = 0;
    for (int i = lo; i < hi; ++i) {
        const size_t idx = (size_t)b * n + i;
        const REAL a = PAR(p->izh[0], p->izh_n[0], i), bb = PAR(p->izh[1], p->izh_n[1], i);
        const REAL v = V[idx], u = U[idx], ie = IE[idx], ii = II[idx];
        REAL drive = ie + ii;
        drive = drive + PAR(p->izh[5], p->izh_n[5], i);
        if (cur) drive = drive + cur[i];
        REAL dv = ((REAL)0.04 * v + (REAL)5.0) * v;
        dv = dv + (REAL)140.0;
        dv = dv - u;
        dv = dv + drive;
        const REAL du = a * (bb * v - u);
        REAL v_new = v + dt * dv;
        REAL u_new = u + dt * du;
        REAL ie_new = ie * PAR(p->izh[6], p->izh_n[6], i);
        REAL ii_new = ii * PAR(p->izh[7], p->izh_n[7], i);
        if (arr) {
            if (p->ch_exc >= 0) ie_new = ie_new + arr[((size_t)p->ch_exc * T + b) * n + i];
            if (p->ch_inh >= 0) ii_new = ii_new + arr[((size_t)p->ch_inh * T + b) * n + i];
            if (p->ch_v >= 0) v_new = v_new + arr[((size_t)p->ch_v * T + b) * n + i];
        }
        if (v_new > PAR(p->izh[4], p->izh_n[4], i)) {
            v_new = PAR(p->izh[2], p->izh_n[2], i);
            u_new = u_new + PAR(p->izh[3], p->izh_n[3], i);
            fired[n_fired++] = (int64_t)idx;
        }
        V[idx] = v_new; U[idx] = u_new; IE[idx] = ie_new; II[idx] = ii_new;
    }
    return n_fired;
}

/* CondLIF (kind 2) and CondAdEx (kind 3), in the order of backends/torch/conductance.py and
 * evospike/dynamics.py (cond_lif_voltage, cond_adex_euler, adex_euler): the voltage (and w)
 * from the step-start state, the conductances decayed plus this step's arrivals, the voltage
 * of refractory neurons held, threshold, reset, refractory count. */
static int64_t advance_conductance(Pop *p, REAL *arr, int64_t offset, int b, int lo, int hi,
                                   int64_t *fired) {
    const int n = p->n, T = p->trials, adex = p->kind == 3;
    const REAL *cur = p->current ? p->current + (size_t)offset * n : NULL;
    const size_t base = (size_t)b * n;
    REAL *V = p->x + base, *W = adex ? p->x + (size_t)T * n + base : NULL;
    REAL *GE = p->x + (size_t)(p->k - 2) * T * n + base, *GI = p->x + (size_t)(p->k - 1) * T * n + base;
    const REAL *const *c = p->cond;
    const REAL *off = p->theta_h ? p->theta_h + base : NULL;
    const REAL *ae = arr && p->ch_exc >= 0 ? arr + ((size_t)p->ch_exc * T + b) * n : NULL;
    const REAL *ai = arr && p->ch_inh >= 0 ? arr + ((size_t)p->ch_inh * T + b) * n : NULL;
    int32_t *rf = p->refrac + base;
    const REAL dt = p->dt_ms;
    REAL arg[BLOCK], ex[BLOCK], keep[BLOCK];
    int64_t n_fired = 0;
    for (int i0 = lo; i0 < hi; i0 += BLOCK) {
        const int m = hi - i0 < BLOCK ? hi - i0 : BLOCK;
        for (int j = 0; j < m; ++j) {
            const int i = i0 + j;
            const REAL v = V[i], ge = GE[i], gi = GI[i];
            if (adex) {
                const REAL vp = c[C_V_PEAK][i];
                const REAL vm = (v < vp || v != v) ? v : vp;  /* torch.minimum keeps a NaN */
                arg[j] = (vm - c[C_V_T][i]) / c[C_DELTA_T][i];
            } else {
                const REAL drive = cur ? c[C_I_E][i] + cur[i] : c[C_I_E][i];
                const REAL g_tot = (c[C_G_L][i] + ge) + gi;
                REAL num = c[C_G_L][i] * c[C_E_L][i] + ge * c[C_E_EXC][i];
                num = num + gi * c[C_E_INH][i];
                num = num + drive;
                keep[j] = num / g_tot;  /* v_inf */
                arg[j] = -(c[C_DT_OVER_C][i] * g_tot);
            }
        }
        p->vexp(m, arg, ex, p->vexp_mode);
        for (int j = 0; j < m; ++j) {
            const int i = i0 + j;
            const REAL v = V[i], ge = GE[i], gi = GI[i];
            REAL v_new, w_new = 0;
            if (adex) {
                const REAL drive = cur ? c[C_I_E][i] + cur[i] : c[C_I_E][i];
                const REAL syn = ge * (c[C_E_EXC][i] - v) + gi * (c[C_E_INH][i] - v);
                const REAL total = syn + drive;
                const REAL gl = c[C_G_L][i];
                REAL dv = gl * (c[C_E_L][i] - v) + gl * c[C_DELTA_T][i] * ex[j];
                dv = dv - W[i];
                dv = dv + total;
                dv = dv / c[C_C][i];
                const REAL dw = (c[C_A][i] * (v - c[C_E_L][i]) - W[i]) / c[C_TAU_W][i];
                v_new = v + dt * dv;
                w_new = W[i] + dt * dw;
            } else {
                const REAL v_inf = keep[j];
                v_new = v_inf + (v - v_inf) * ex[j];
            }
            REAL ge_new = ge * c[C_DECAY_EXC][i], gi_new = gi * c[C_DECAY_INH][i];
            if (ae) ge_new = ge_new + ae[i];
            if (ai) gi_new = gi_new + ai[i];
            int held = 0;
            if (p->has_refractory) {
                held = rf[i] > 0;
                if (held) v_new = v;
            }
            int spiked;
            if (adex) {
                spiked = v_new >= p->v_thresh[i];
            } else {
                REAL thr = p->v_thresh[i];
                if (off) thr = thr + off[i];
                spiked = v_new > thr;
            }
            spiked = spiked && !held;
            if (spiked) {
                v_new = p->v_reset[i];
                fired[n_fired++] = (int64_t)base + i;
            }
            V[i] = v_new;
            if (adex) W[i] = w_new + (REAL)spiked * c[C_B][i];
            GE[i] = ge_new;
            GI[i] = gi_new;
            if (p->has_refractory) rf[i] = spiked ? p->hold_steps[i] : (held ? rf[i] - 1 : 0);
        }
    }
    return n_fired;
}

static int64_t advance(const Net *net, int pidx, int64_t step, int64_t s, int b, int lo,
                       int hi, int64_t *fired) {
    Pop *p = &net->pops[pidx];
    REAL *arr = take_slot(net, pidx, step, s, b, lo, hi);
    int64_t count;
    if (p->kind == 0) count = advance_linear(p, arr, s, b, lo, hi, fired);
    else if (p->kind == 1) count = advance_izhikevich(p, arr, s, b, lo, hi, fired);
    else count = advance_conductance(p, arr, s, b, lo, hi, fired);
    if (arr) clear_slot(p, arr, b, lo, hi);
    return count;
}

/* First synapse in [a, z) of a target-sorted row whose target is >= j. */
static int64_t lower_bound(const int32_t *idx, int64_t a, int64_t z, int32_t j) {
    while (a < z) {
        const int64_t mid = a + (z - a) / 2;
        if (idx[mid] < j) a = mid + 1;
        else z = mid;
    }
    return a;
}

/* Add the synapses of the fired presynaptic neurons whose targets lie in [jlo, jhi) (all of
 * them: jlo = 0, jhi = n_post) into the ring buffer, in the serial order (fired neurons in
 * order, each row in its order): the order torch's index_add_ adds them in. */
static void propagate(const Proj *pr, Pop *post, const int64_t *fired, int64_t n_fired,
                      int64_t step, int b, int jlo, int jhi) {
    const int T = post->trials, n_post = post->n, slots = post->slots, nch = post->nch;
    const int whole = jlo == 0 && jhi == n_post;
    if (jlo >= jhi) return;
    for (int64_t f = 0; f < n_fired; ++f) {
        const int64_t flat = fired[f];
        const int64_t trial = flat / pr->n_pre, pre = flat % pr->n_pre;
        if (trial != b) continue;  /* source events hold every trial */
        int64_t lo = pr->indptr[pre], hi = pr->indptr[pre + 1];
        int filter = 0;
        if (!whole) {
            if (pr->rows_sorted) {
                lo = lower_bound(pr->indices, lo, hi, jlo);
                hi = lower_bound(pr->indices, lo, hi, jhi);
            } else {
                filter = 1;
            }
        }
        const REAL *weights = pr->weights + trial * pr->w_stride;
        if (pr->delays16 == NULL && pr->delays32 == NULL) {
            REAL *dst = post->buf + (((size_t)((step + pr->uniform_delay) % slots) * nch + pr->channel) * T + trial) * n_post;
            if (filter) {
                for (int64_t s = lo; s < hi; ++s) {
                    const int32_t j = pr->indices[s];
                    if (j >= jlo && j < jhi) dst[j] += weights[s];
                }
            } else {
                for (int64_t s = lo; s < hi; ++s) dst[pr->indices[s]] += weights[s];
            }
        } else {
            for (int64_t s = lo; s < hi; ++s) {
                const int32_t j = pr->indices[s];
                if (filter && (j < jlo || j >= jhi)) continue;
                const int64_t d = pr->delays16 ? pr->delays16[s] : pr->delays32[s];
                REAL *dst = post->buf + (((size_t)((step + d) % slots) * nch + pr->channel) * T + trial) * n_post;
                dst[j] += weights[s];
            }
        }
    }
}

/* Spikes reaching a plastic projection now are sent with the weights they find there. */
static void transmit_plastic(const Proj *pr, Pop *post, int64_t step, int t0, int t1) {
    const int64_t slot = step % pr->uniform_delay;
    const int T = post->trials, n_post = post->n, nch = post->nch;
    for (int b = t0; b < t1; ++b) {
        const int64_t *arr = pr->pending + (slot * T + b) * (int64_t)pr->n_pre;
        REAL *dst = post->buf + (((size_t)(step % post->slots) * nch + pr->channel) * T + b) * n_post;
        const REAL *w = pr->wt + b * pr->nnz;
        for (int64_t f = 0; f < pr->pending_n[slot * T + b]; ++f) {
            const int64_t pre = arr[f] % pr->n_pre;
            for (int64_t s = pr->indptr[pre]; s < pr->indptr[pre + 1]; ++s) dst[pr->indices[s]] += w[s];
        }
    }
}

static REAL clampr(REAL v, REAL lo, REAL hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* The factor a modulated rule multiplies its weight changes by in trial b (eager.py). */
static REAL mod_factor(const Proj *pr, int64_t b) {
    const REAL m = pr->mod_level[b];
    if (pr->modulation == 1) return m > pr->gate_threshold ? (REAL)1 : (REAL)0;
    return (REAL)1 + pr->scale_gain * m;
}

/* One step of STDP, in the eager engine's order: decay (traces, eligibility), depression by
 * the arriving spikes, pre traces, post traces, potentiation by the postsynaptic spikes; a
 * three-factor rule writes the pair terms into its eligibility (its weights then move in
 * three_factor_update). `first`: the first step of this call; on later steps the eligibility
 * was already decayed at the end of the previous step (three_factor_update). */
static void stdp_update(Proj *pr, const Pop *post, int64_t step, int first, int t0, int t1) {
    const int T = post->trials, n_pre = pr->n_pre, n_post = pr->n_post;
    const int modulated = pr->mod_level != NULL && !pr->three_factor;
    for (int b = t0; b < t1; ++b) {
        const REAL dx = pr->decay_x[b], dy = pr->decay_y[b];
        REAL *restrict x = pr->x + (int64_t)b * n_pre, *restrict y = pr->y + (int64_t)b * n_post;
        for (int i = 0; i < n_pre; ++i) x[i] *= dx;
        for (int j = 0; j < n_post; ++j) y[j] *= dy;
    }
    if (pr->three_factor && first) {
        REAL *restrict e = pr->elig;
        const REAL d = pr->decay_e;
        for (int64_t k = (int64_t)t0 * pr->nnz; k < (int64_t)t1 * pr->nnz; ++k) e[k] *= d;
    }
    const int64_t slot = step % pr->uniform_delay;
    for (int b = t0; b < t1; ++b) {
        const int64_t *arr = pr->pending + (slot * T + b) * (int64_t)n_pre;
        const int64_t count = pr->pending_n[slot * T + b];
        REAL *w = pr->wt + b * pr->nnz;
        REAL *e = pr->three_factor ? pr->elig + b * pr->nnz : NULL;
        const REAL *y = pr->y + (int64_t)b * n_post;
        const REAL factor = modulated ? mod_factor(pr, b) : (REAL)1;
        for (int64_t f = 0; f < count; ++f) {
            const int64_t pre = arr[f] % n_pre;
            for (int64_t s = pr->indptr[pre]; s < pr->indptr[pre + 1]; ++s) {
                REAL change = pr->a_minus[b] * y[pr->indices[s]];
                if (pr->multiplicative) change = change * (w[s] - pr->w_min);
                if (modulated) change = change * factor;
                if (e) e[s] = e[s] - change;
                else w[s] = clampr(w[s] - change, pr->w_min, pr->w_max);
            }
        }
        for (int64_t f = 0; f < count; ++f) {
            if (pr->nearest) pr->x[arr[f]] = (REAL)1;
            else pr->x[arr[f]] += (REAL)1;
        }
    }
    for (int64_t f = 0; f < post->n_fired; ++f) {
        if (pr->nearest) pr->y[post->fired[f]] = (REAL)1;
        else pr->y[post->fired[f]] += (REAL)1;
    }
    for (int64_t f = 0; f < post->n_fired; ++f) {
        const int64_t trial = post->fired[f] / n_post, j = post->fired[f] % n_post;
        REAL *w = pr->wt + trial * pr->nnz;
        REAL *e = pr->three_factor ? pr->elig + trial * pr->nnz : NULL;
        const REAL *x = pr->x + trial * n_pre;
        const REAL factor = modulated ? mod_factor(pr, trial) : (REAL)1;
        for (int64_t k = pr->col_ptr[j]; k < pr->col_ptr[j + 1]; ++k) {
            const int64_t s = pr->col_syn[k];
            REAL change = pr->a_plus[trial] * x[pr->col_pre[k]];
            if (pr->multiplicative) change = change * (pr->w_max - w[s]);
            if (modulated) change = change * factor;
            if (e) e[s] = e[s] + change;
            else w[s] = clampr(w[s] + change, pr->w_min, pr->w_max);
        }
    }
}

/* The end of a three-factor rule's step: w = clip(w + lr dt m[n-1] e). With `decay_next` (the
 * next step runs in this call) the same pass decays the eligibility for that step, which is
 * the next operation on it in the eager engine's order; one pass over the synapses instead of
 * two. `first`: the first step of this call, where every weight is clipped even at m = 0
 * (afterwards they stay within bounds, and a step with m = 0 changes no weight). */
static void three_factor_update(Proj *pr, int first, int decay_next, int t0, int t1) {
    const REAL lo = pr->w_min, hi = pr->w_max, d = pr->decay_e;
    const int64_t nnz = pr->nnz;
    for (int b = t0; b < t1; ++b) {
        const REAL rate = pr->lr_dt * pr->mod_level[b];
        REAL *restrict w = pr->wt + b * nnz;
        REAL *restrict e = pr->elig + b * nnz;
        if (rate == (REAL)0 && !first) {
            if (decay_next) for (int64_t s = 0; s < nnz; ++s) e[s] *= d;
        } else if (decay_next) {
            for (int64_t s = 0; s < nnz; ++s) {
                const REAL v = w[s] + rate * e[s];
                w[s] = v < lo ? lo : (v > hi ? hi : v);
                e[s] *= d;
            }
        } else {
            for (int64_t s = 0; s < nnz; ++s) {
                const REAL v = w[s] + rate * e[s];
                w[s] = v < lo ? lo : (v > hi ? hi : v);
            }
        }
    }
}

/* Spikes of node (population or source) in trial b in the current step. */
static int64_t count_spikes(const Pop *pops, const Src *srcs, int is_source, int node,
                            int64_t s, int64_t b) {
    int64_t count = 0;
    if (is_source) {
        const Src *src = &srcs[node];
        for (int64_t f = src->ptr[s]; f < src->ptr[s + 1]; ++f) count += src->flat[f] / src->n == b;
    } else {
        const Pop *p = &pops[node];
        for (int64_t f = 0; f < p->n_fired; ++f) count += p->fired[f] / p->n == b;
    }
    return count;
}

/* m[n] = m[n-1] decay + the drives of step n, per trial (TModulator.update in processes.py). */
static void modulator_update(Mod *md, const Pop *pops, const Src *srcs, int64_t s, int t0,
                             int t1) {
    for (int b = t0; b < t1; ++b) {
        REAL m = md->level[b] * md->decay;
        if (md->reward && md->reward[s] != 0.0) m = m + (REAL)md->reward[s];
        for (int c = 0; c < md->n_counts; ++c) {
            const REAL count = (REAL)count_spikes(pops, srcs, md->count_is_source[c],
                                                  md->count_node[c], s, b);
            m = m + md->count_gain[c] * count;
        }
        if (md->novelty) {
            const REAL count = (REAL)count_spikes(pops, srcs, md->nov_is_source, md->nov_node,
                                                  s, b);
            const REAL rate = count / md->nov_denom;
            const REAL r = md->rate_hz[b] * md->rate_decay + md->rate_in * rate;
            const REAL rb = md->expected_hz[b] * md->expect_decay + md->expect_in * r;
            md->rate_hz[b] = r;
            md->expected_hz[b] = rb;
            const REAL gap = r - rb;
            m = m + md->nov_gain * (gap < (REAL)0 ? -gap : gap);
        }
        md->level[b] = m;
    }
}

static void homeostasis_update(Homeo *h, const Pop *pops, Proj *projs, int64_t step, int t0,
                               int t1) {
    const Pop *p = &pops[h->pop];
    const int n = p->n;
    for (int64_t f = 0; f < p->n_fired; ++f)  /* fired holds trials [t0, t1) only */
        h->rate_hz[p->fired[f]] = h->rate_hz[p->fired[f]] + h->increment;
    const int scale_now = h->scaling && step % h->every_steps == 0;
    for (int b = t0; b < t1; ++b) {
        REAL *restrict r = h->rate_hz + (size_t)b * n;
        if (!h->scaling) {
            REAL *restrict theta = h->theta + (size_t)b * n;
            for (int i = 0; i < n; ++i) {
                REAL d = r[i] - h->target;
                d = h->threshold_rate * d;
                d = d * h->dt_ms;
                d = d * h->milli;
                theta[i] = theta[i] + d;
            }
        } else if (scale_now) {
            REAL *restrict factor = h->factor;
            for (int i = 0; i < n; ++i) {
                REAL d = h->target - r[i];
                d = h->scaling_rate * d;
                d = d * h->every;
                d = d * h->dt_ms;
                d = d * h->milli;
                factor[i] = d + (REAL)1;
            }
            for (int c = 0; c < h->n_scaled; ++c) {
                Proj *pr = &projs[h->scaled[c]];
                REAL *restrict w = pr->weights + b * pr->w_stride;
                const int64_t nnz = pr->indptr[pr->n_pre];
                if (pr->plastic) {
                    for (int64_t s = 0; s < nnz; ++s)
                        w[s] = clampr(w[s] * factor[pr->indices[s]], pr->w_min, pr->w_max);
                } else {
                    for (int64_t s = 0; s < nnz; ++s) w[s] = w[s] * factor[pr->indices[s]];
                }
            }
        }
        for (int i = 0; i < n; ++i) r[i] *= h->decay;
    }
}

static void meta_update(Meta *m, int t0, int t1) {
    int changed = 0;
    for (int b = t0; b < t1; ++b) {
        const REAL level = m->level[b];
        REAL base = m->baseline[b] * m->baseline_decay;
        base = base + m->baseline_in * level;
        m->baseline[b] = base;
        REAL d = level - base;
        d = m->eta * d;
        d = d * m->dt_ms;
        d = d * m->milli;
        const REAL v = clampr(m->value[b] + d, m->p_min, m->p_max);
        changed |= !(v == m->value[b]);
        m->value[b] = v;
        if (m->amplitude) m->amplitude[b] = v;
    }
    /* an unchanged time constant leaves its decay as it is: no call needed */
    if (changed && m->refresh) m->refresh();
}

/* The presynaptic spikes of this step reach the synapses `uniform_delay` steps later. */
static void remember(Proj *pr, int trials, const int64_t *fired, int64_t n_fired, int64_t step,
                     int t0, int t1) {
    const int64_t slot = step % pr->uniform_delay;
    for (int b = t0; b < t1; ++b) pr->pending_n[slot * trials + b] = 0;
    for (int64_t f = 0; f < n_fired; ++f) {
        const int64_t b = fired[f] / pr->n_pre;
        if (b < t0 || b >= t1) continue;
        pr->pending[(slot * trials + b) * (int64_t)pr->n_pre + pr->pending_n[slot * trials + b]++] = fired[f];
    }
}

/* Whether a recording buffer could overflow in step s of this call (one trial). */
static int must_stop(const Net *net, int64_t s) {
    for (int p = 0; p < net->n_pops; ++p) {
        const Pop *pp = &net->pops[p];
        if (pp->record && pp->out_count + pp->n > pp->out_cap) return 1;
    }
    for (int q = 0; q < net->n_srcs; ++q) {
        const Src *src = &net->srcs[q];
        if (src->record && src->out_count + (src->ptr[s + 1] - src->ptr[s]) > src->out_cap)
            return 1;
    }
    return 0;
}

/* The part of a step one thread does after the propagation: plastic projections, recording,
 * three-factor weights, processes. Returns whether the next step runs in this call. */
static int finish_step(const Net *net, int64_t step, int64_t s, int64_t s0, int64_t n_steps,
                       int b) {
    const int t0 = b, t1 = b + 1;
    Pop *pops = net->pops;
    Src *srcs = net->srcs;
    for (int r = 0; r < net->n_projs; ++r) {
        Proj *pr = &net->projs[r];
        if (!pr->plastic) continue;
        const int64_t *fired;
        int64_t n_fired;
        if (pr->pre_is_source) {
            const Src *src = &srcs[pr->pre];
            fired = src->flat + src->ptr[s];
            n_fired = src->ptr[s + 1] - src->ptr[s];
        } else {
            fired = pops[pr->pre].fired;
            n_fired = pops[pr->pre].n_fired;
        }
        stdp_update(pr, &pops[pr->post], step, s == s0, t0, t1);
        remember(pr, pops[pr->post].trials, fired, n_fired, step, t0, t1);
    }
    for (int p = 0; p < net->n_pops; ++p) {
        Pop *pp = &pops[p];
        if (!pp->record) continue;
        for (int64_t f = 0; f < pp->n_fired; ++f) {
            pp->out_step[pp->out_count] = step;
            pp->out_flat[pp->out_count++] = pp->fired[f];
        }
    }
    for (int q = 0; q < net->n_srcs; ++q) {
        Src *src = &srcs[q];
        if (!src->record) continue;
        for (int64_t f = src->ptr[s]; f < src->ptr[s + 1]; ++f) {
            if (src->flat[f] / src->n != b) continue;
            src->out_step[src->out_count] = step;
            src->out_flat[src->out_count++] = src->flat[f];
        }
    }
    /* the next step runs in this call unless the chunk ends or a buffer could overflow */
    const int next = s + 1 < n_steps && !must_stop(net, s + 1);
    /* three-factor weights move with m[n-1], before the modulators update to m[n] */
    for (int r = 0; r < net->n_projs; ++r)
        if (net->projs[r].plastic && net->projs[r].three_factor)
            three_factor_update(&net->projs[r], s == s0, next, t0, t1);
    /* the processes in the eager engine's phase order */
    for (int h = 0; h < net->n_homeos; ++h)
        homeostasis_update(&net->homeos[h], pops, net->projs, step, t0, t1);
    for (int q = 0; q < net->n_mods; ++q) modulator_update(&net->mods[q], pops, srcs, s, t0, t1);
    for (int q = 0; q < net->n_metas; ++q) meta_update(&net->metas[q], t0, t1);
    return next;
}

/* Spikes of a non-plastic projection's presynaptic node in this step, as segments in the
 * serial order: a source's events, or each thread's part of a population's fired list. */
static void propagate_all(const Net *net, int64_t step, int64_t s, int b, int tid, int nt,
                          const int64_t *seg_n) {
    for (int r = 0; r < net->n_projs; ++r) {
        const Proj *pr = &net->projs[r];
        if (pr->plastic) continue;
        Pop *post = &net->pops[pr->post];
        int jlo, jhi;
        part(post->n, nt, tid, &jlo, &jhi);
        if (pr->pre_is_source) {
            const Src *src = &net->srcs[pr->pre];
            propagate(pr, post, src->flat + src->ptr[s], src->ptr[s + 1] - src->ptr[s], step, b,
                      jlo, jhi);
        } else {
            const Pop *pre = &net->pops[pr->pre];
            for (int u = 0; u < nt; ++u) {
                int lo, hi;
                part(pre->n, nt, u, &lo, &hi);
                propagate(pr, post, pre->fired + lo, seg_n[(int64_t)pr->pre * nt + u], step, b,
                          jlo, jhi);
            }
        }
    }
}

/* Runs steps [s0, n_steps) of this call (global steps start + s) of trial b on nthreads
 * threads; returns the number of steps done. It stops early, at a step boundary, when a
 * recording buffer could overflow in the next step; the caller then empties the buffers and
 * calls again with s0 advanced. The inputs (currents, source events, rewards, PoissonInput
 * drives) are indexed by s from the call's first step. */
int64_t evospike_run(Net *net, int64_t start, int64_t s0, int64_t n_steps, int32_t b,
                     int32_t nthreads) {
    if (s0 >= n_steps || must_stop(net, s0)) return 0;
    int nt = nthreads < 1 ? 1 : nthreads;
#ifndef _OPENMP
    nt = 1;
#endif
    int any_plastic = 0;
    for (int r = 0; r < net->n_projs; ++r) any_plastic |= net->projs[r].plastic;
    int64_t *seg_n = calloc((size_t)(net->n_pops > 0 ? net->n_pops : 1) * nt, sizeof(int64_t));
    if (!seg_n) return 0;
    int64_t done = 0;
    int go = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
        const int tid = 0, team = 1;
#endif
        /* a team smaller than asked for splits the work among those that came */
        for (int64_t s = s0; s < n_steps; ++s) {
            const int64_t step = start + s;
            if (any_plastic) {
#ifdef _OPENMP
#pragma omp single
#endif
                for (int r = 0; r < net->n_projs; ++r)
                    if (net->projs[r].plastic)
                        transmit_plastic(&net->projs[r], &net->pops[net->projs[r].post], step,
                                         b, b + 1);
            }
            for (int p = 0; p < net->n_pops; ++p) {
                Pop *pp = &net->pops[p];
                int lo, hi;
                part(pp->n, team, tid, &lo, &hi);
                /* each thread's fired neurons go to its own part of the list */
                seg_n[(int64_t)p * team + tid] = advance(net, p, step, s, b, lo, hi, pp->fired + lo);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
            propagate_all(net, step, s, b, tid, team, seg_n);
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
            {
                /* the parts of the fired lists joined, in neuron order (moving left only) */
                for (int p = 0; p < net->n_pops; ++p) {
                    Pop *pp = &net->pops[p];
                    int64_t count = 0;
                    for (int u = 0; u < team; ++u) {
                        int lo, hi;
                        part(pp->n, team, u, &lo, &hi);
                        const int64_t c = seg_n[(int64_t)p * team + u];
                        if (c && lo != count)
                            memmove(pp->fired + count, pp->fired + lo, sizeof(int64_t) * c);
                        count += c;
                    }
                    pp->n_fired = count;
                }
                go = finish_step(net, step, s, s0, n_steps, b);
                done = s + 1 - s0;
            }  /* the single's barrier: every thread sees `go` */
            if (!go) break;
        }
    }
    free(seg_n);
    return done;
}

/* The trials of a batch in parallel on n_lanes threads (lane t: thread t's scratch): trial b
 * runs from its step done[b] of this call until n_steps or until its lane's recording buffer
 * could overflow; done[b] advances by the steps it ran. The caller empties the lanes' buffers
 * and calls again until every trial is done. */
void evospike_run_batch(Net *lanes, int32_t n_lanes, int64_t start, int64_t n_steps,
                        int32_t n_trials, int64_t *done) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_lanes) schedule(dynamic, 1) if (n_lanes > 1)
#endif
    for (int b = 0; b < n_trials; ++b) {
#ifdef _OPENMP
        Net *net = &lanes[omp_get_thread_num()];
#else
        Net *net = &lanes[0];
#endif
        if (done[b] < n_steps) done[b] += evospike_run(net, start, done[b], n_steps, b, 1);
    }
}
