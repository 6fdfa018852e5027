"""Spike-train statistics for backend validation.

Two kinds of comparison, after NetworkUnit (Gutzen et al. 2018, "Reproducible neural network
simulations: statistical methods for model validation on the level of network activity data",
Front. Neuroinform. 12:90):

* exact agreement: spike-by-spike matching of two rasters of the same network run with the
  same seed (:func:`match_spikes`); meaningful as long as the dynamics are not chaotic;
* statistical agreement: distributions over neurons (or neuron pairs) of firing rate, ISI
  variability and count correlation (:func:`spike_statistics`), compared with two-sample
  distances (:func:`compare_distributions`).

All times are integer steps of ``dt_ms`` as stored in :class:`~evospike.results.Results`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from evospike.errors import EvoSpikeError
from evospike.results import Results

STATISTICS = ("rate_hz", "isi_cv", "isi_lv", "count_correlation")


# ----------------------------------------------------------------------------- exact matching
@dataclass
class SpikeMatch:
    """One-to-one matching of the spikes of raster ``a`` and raster ``b`` of one node.

    ``fraction_matched`` is ``2 n_matched / (n_a + n_b)`` (1.0 when both are empty).
    ``divergence_step`` is the earliest step of a spike, in either raster, left without a
    partner (None when every spike is matched); ``divergence_ms`` is the same in ms.
    ``divergence_neuron`` and ``divergence_side`` (``"a"`` or ``"b"``: whose spike) say where;
    among spikes of one step the lowest neuron counts.
    ``fraction_matched_before_divergence`` is 1.0 by construction when any spike precedes the
    divergence and NaN when none does; ``n_before_divergence`` counts those spikes (a + b).
    """

    node: str
    tolerance_steps: int
    n_a: int
    n_b: int
    n_matched: int
    fraction_matched: float
    divergence_step: int | None
    divergence_ms: float | None
    divergence_neuron: int | None
    divergence_side: str | None
    fraction_matched_before_divergence: float
    n_before_divergence: int

    @property
    def identical(self) -> bool:
        """Every spike of either raster has a partner in the other."""
        return self.n_matched == self.n_a == self.n_b


def _by_neuron(steps: np.ndarray, neurons: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps sorted by (neuron, step) and the offsets of each neuron's run in them."""
    order = np.lexsort((steps, neurons))
    s = np.asarray(steps, dtype=np.int64)[order]
    bounds = np.searchsorted(np.asarray(neurons)[order], np.arange(size + 1))
    return s, bounds


def _match_train(a: list[int], b: list[int], tol: int) -> tuple[int, int | None, int | None]:
    """Maximum one-to-one matching of two sorted trains with |a_i - b_j| <= tol.

    Returns (n_matched, first unmatched step of a, first unmatched step of b). Matching the
    earliest remaining spikes whenever they are within tolerance is optimal here (an exchange
    argument: both trains are sorted and every window has the same width), so this greedy
    scan gives the largest possible number of pairs, not just some one-to-one matching.
    """
    i = j = matched = 0
    first_a: int | None = None
    first_b: int | None = None
    while i < len(a) and j < len(b):
        if a[i] < b[j] - tol:  # no later b can reach a[i] either
            if first_a is None:
                first_a = a[i]
            i += 1
        elif b[j] < a[i] - tol:
            if first_b is None:
                first_b = b[j]
            j += 1
        else:
            matched += 1
            i += 1
            j += 1
    if i < len(a) and first_a is None:
        first_a = a[i]
    if j < len(b) and first_b is None:
        first_b = b[j]
    return matched, first_a, first_b


def match_spikes(a: Results, b: Results, node: str, tolerance_steps: int = 1,
                 trial: int = 0) -> SpikeMatch:
    """Match the spikes of ``node`` in ``a`` and ``b`` neuron by neuron, one to one.

    A spike of ``a`` matches at most one spike of ``b`` of the same neuron whose step differs
    by at most ``tolerance_steps`` (steps of ``dt_ms``; 0 asks for the same step). Both runs
    must share ``dt_ms``, otherwise steps are not comparable.
    """
    if tolerance_steps < 0:
        raise EvoSpikeError(f"tolerance_steps must be >= 0 (got {tolerance_steps})")
    if not np.isclose(a.dt_ms, b.dt_ms, rtol=1e-9, atol=0.0):
        raise EvoSpikeError(f"cannot match spikes of '{node}': dt differs "
                            f"({a.dt_ms} ms vs {b.dt_ms} ms)")
    size_a, size_b = a._node(node).size, b._node(node).size
    if size_a != size_b:
        raise EvoSpikeError(f"cannot match spikes of '{node}': sizes differ "
                            f"({size_a} vs {size_b} neurons)")
    sa, na = a.spike_steps(node, trial)
    sb, nb = b.spike_steps(node, trial)
    steps_a, bounds_a = _by_neuron(sa, na, size_a)
    steps_b, bounds_b = _by_neuron(sb, nb, size_b)
    counts_a, counts_b = np.diff(bounds_a), np.diff(bounds_b)

    n_matched = 0
    best: tuple[int, int, str] | None = None  # (step, neuron, side) of the first unmatched
    for k in np.flatnonzero((counts_a > 0) | (counts_b > 0)):
        ta = steps_a[bounds_a[k]:bounds_a[k + 1]]
        tb = steps_b[bounds_b[k]:bounds_b[k + 1]]
        # Fast path: agreeing neurons are the common case for a correct backend, and the
        # Python scan below is what costs time on large rasters.
        if ta.size == tb.size and np.array_equal(ta, tb):
            n_matched += int(ta.size)
            continue
        m, first_a, first_b = _match_train(ta.tolist(), tb.tolist(), tolerance_steps)
        n_matched += m
        for step, side in ((first_a, "a"), (first_b, "b")):
            if step is None:
                continue
            # Earliest step first, then lowest neuron; within one neuron the two sides
            # cannot tie (an unmatched spike of a and of b at one step would be matched).
            if best is None or (step, int(k)) < best[:2]:
                best = (step, int(k), side)

    n_a, n_b = int(sa.size), int(sb.size)
    frac = 1.0 if n_a + n_b == 0 else 2.0 * n_matched / (n_a + n_b)
    if best is None:
        div_step = div_neuron = div_side = None
        n_before = n_a + n_b
    else:
        div_step, div_neuron, div_side = best
        n_before = int(np.count_nonzero(sa < div_step) + np.count_nonzero(sb < div_step))
    return SpikeMatch(
        node=node, tolerance_steps=int(tolerance_steps), n_a=n_a, n_b=n_b,
        n_matched=int(n_matched), fraction_matched=float(frac),
        divergence_step=None if div_step is None else int(div_step),
        divergence_ms=None if div_step is None else float(div_step * a.dt_ms),
        divergence_neuron=div_neuron, divergence_side=div_side,
        # Every spike before the first unmatched one is matched, by definition of the latter.
        fraction_matched_before_divergence=1.0 if n_before else float("nan"),
        n_before_divergence=n_before,
    )


# ----------------------------------------------------------------------------- statistics
def _isi_measures(steps: np.ndarray, neurons: np.ndarray, size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron ISI CV and LV for neurons with at least 3 spikes (2 ISIs).

    Computed on intervals in steps: both measures are dimensionless, so dt cancels.
    """
    order = np.lexsort((steps, neurons))
    s = np.asarray(steps, dtype=np.float64)[order]
    n = np.asarray(neurons, dtype=np.int64)[order]
    same = n[1:] == n[:-1]
    isi = np.diff(s)[same]
    owner = n[1:][same]
    n_isi = np.bincount(owner, minlength=size)
    total = np.bincount(owner, weights=isi, minlength=size)
    keep = n_isi >= 2
    # A zero mean ISI needs several spikes in one step, which no supported neuron model
    # produces; such a neuron gets no CV rather than a division by zero.
    mean = np.divide(total, n_isi, out=np.zeros(size), where=n_isi > 0)
    keep_cv = keep & (mean > 0)
    # Two-pass variance (deviations from the per-neuron mean) rather than E[x^2] - E[x]^2:
    # a regular train must come out at exactly 0, not at a tiny rounding residue.
    ss = np.bincount(owner, weights=(isi - mean[owner]) ** 2, minlength=size)
    var = np.divide(ss, n_isi, out=np.zeros(size), where=n_isi > 0)
    cv = np.sqrt(var[keep_cv]) / mean[keep_cv]

    # LV (Shinomoto et al. 2003): 3/(n-1) sum_i ((I_i - I_{i+1}) / (I_i + I_{i+1}))^2 over
    # consecutive ISIs of one neuron; 0 for a regular train, 1 for a Poisson process.
    pair = owner[1:] == owner[:-1]
    i1, i2 = isi[:-1][pair], isi[1:][pair]
    pair_owner = owner[1:][pair]
    denom = i1 + i2
    ok = denom > 0
    terms = 3.0 * ((i1[ok] - i2[ok]) / denom[ok]) ** 2
    n_terms = np.bincount(pair_owner[ok], minlength=size)
    lv_sum = np.bincount(pair_owner[ok], weights=terms, minlength=size)
    keep_lv = keep & (n_terms > 0)
    lv = lv_sum[keep_lv] / n_terms[keep_lv]
    return cv, lv


def _sample_pairs(n: int, max_pairs: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_pairs`` distinct unordered pairs (i < j) of ``range(n)``."""
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = np.triu_indices(n, k=1)
        return i, j
    chosen: set[tuple[int, int]] = set()
    # Rejection sampling in batches: the pair space can be far too large to enumerate
    # (1e5 neurons -> 5e9 pairs), while max_pairs is small.
    while len(chosen) < max_pairs:
        draw = rng.integers(0, n, size=(2 * (max_pairs - len(chosen)) + 8, 2))
        for x, y in draw.tolist():
            if x != y:
                chosen.add((min(x, y), max(x, y)))
                if len(chosen) == max_pairs:
                    break
    pairs = np.array(sorted(chosen), dtype=np.int64)
    return pairs[:, 0], pairs[:, 1]


def _count_correlations(steps: np.ndarray, neurons: np.ndarray, size: int, dt_ms: float,
                        n_steps: int, bin_ms: float, max_pairs: int, seed: int) -> np.ndarray:
    """Pearson correlation of binned spike counts for sampled pairs of active neurons."""
    active = np.flatnonzero(np.bincount(neurons, minlength=size) > 0)
    if active.size < 2 or n_steps == 0:
        return np.zeros(0)
    per_bin = bin_ms / dt_ms
    if abs(per_bin - round(per_bin)) < 1e-9 and round(per_bin) >= 1:
        # Integer steps per bin: bin with integer division so that no spike lands in the
        # wrong bin through rounding of step * dt / bin.
        k = int(round(per_bin))
        bins, n_bins = steps // k, -(-n_steps // k)
    else:
        bins = np.floor(steps * dt_ms / bin_ms).astype(np.int64)
        n_bins = int(np.ceil(n_steps * dt_ms / bin_ms - 1e-9))
    rng = np.random.default_rng(seed)
    pi, pj = _sample_pairs(active.size, max_pairs, rng)
    involved = np.unique(np.concatenate([pi, pj]))
    row_of = np.full(size, -1, dtype=np.int64)
    row_of[active[involved]] = np.arange(involved.size)
    rows = row_of[neurons]
    sel = rows >= 0
    # Sparse counts: a dense (neurons x bins) matrix of a long run would not fit in memory.
    x = sparse.csr_matrix((np.ones(int(sel.sum()), dtype=np.int64), (rows[sel], bins[sel])),
                          shape=(involved.size, n_bins))
    x.sum_duplicates()
    s1 = np.asarray(x.sum(axis=1)).ravel()
    s2 = np.asarray(x.multiply(x).sum(axis=1)).ravel()
    ri = np.searchsorted(involved, pi)
    rj = np.searchsorted(involved, pj)
    sxy = np.asarray(x[ri].multiply(x[rj]).sum(axis=1)).ravel()
    # Integer moments n*sum(x^2) - sum(x)^2 are exact, so zero variance is detected exactly.
    var = n_bins * s2 - s1 * s1
    cov = n_bins * sxy - s1[ri] * s1[rj]
    ok = (var[ri] > 0) & (var[rj] > 0)
    r = cov[ok] / (np.sqrt(var[ri][ok].astype(np.float64)) * np.sqrt(var[rj][ok]))
    return np.clip(r, -1.0, 1.0)


def spike_statistics(res: Results, node: str, trial: int = 0, bin_ms: float = 5.0,
                     max_pairs: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Distributions over neurons of activity statistics of ``node`` in ``trial``.

    Returns a dict of 1-D arrays:

    * ``rate_hz``: mean firing rate of every neuron (silent ones included), in Hz;
    * ``isi_cv``: coefficient of variation of the inter-spike intervals (std / mean, population
      std), for neurons with at least 3 spikes; dimensionless, ~0 regular, ~1 Poisson;
    * ``isi_lv``: local variation of the ISIs (Shinomoto et al. 2003), same neurons; ~0
      regular, ~1 Poisson, and unlike the CV insensitive to slow rate changes;
    * ``count_correlation``: Pearson correlation coefficients of spike counts in ``bin_ms``
      (ms) bins, for up to ``max_pairs`` pairs of neurons that fired at least once, drawn with
      ``numpy.random.default_rng(seed)``; pairs where either count series is constant are
      skipped (the coefficient is undefined).
    """
    if bin_ms <= 0:
        raise EvoSpikeError(f"bin_ms must be > 0 (got {bin_ms})")
    if max_pairs < 0:
        raise EvoSpikeError(f"max_pairs must be >= 0 (got {max_pairs})")
    size = res._node(node).size
    steps, neurons = res.spike_steps(node, trial)
    steps = np.asarray(steps, dtype=np.int64)
    cv, lv = _isi_measures(steps, neurons, size)
    corr = _count_correlations(steps, neurons, size, res.dt_ms, res.n_steps, bin_ms, max_pairs,
                               seed)
    return {"rate_hz": np.asarray(res.rates_hz(node, trial), dtype=np.float64),
            "isi_cv": cv, "isi_lv": lv, "count_correlation": corr}


# ----------------------------------------------------------------------------- distances
def compare_distributions(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Two-sample distances between the distributions of ``x`` and ``y``.

    Non-finite entries are dropped. Returns ``ks`` (Kolmogorov-Smirnov statistic, the largest
    gap between the two ECDFs, in [0, 1]), ``ks_p`` (its p-value; reported only, since with
    thousands of neurons it flags differences too small to matter), ``wasserstein`` (earth
    mover's distance, in the units of the data), ``effect_size`` (Cohen's d, (mean_x - mean_y)
    over the pooled sample std; 0 when both samples are constant and equal, +-inf when they are
    constant and differ), ``n_x``, ``n_y``, ``mean_x``, ``mean_y``. When either sample is empty
    the distances are NaN.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    nx, ny = int(x.size), int(y.size)
    out = {"ks": float("nan"), "ks_p": float("nan"), "wasserstein": float("nan"),
           "effect_size": float("nan"), "n_x": nx, "n_y": ny,
           "mean_x": float(x.mean()) if nx else float("nan"),
           "mean_y": float(y.mean()) if ny else float("nan")}
    if nx == 0 or ny == 0:
        return out
    with warnings.catch_warnings():
        # The exact KS p-value can fail to converge and fall back to the asymptotic one with a
        # warning; the p-value is informational here, the statistic itself is unaffected.
        warnings.filterwarnings("ignore", message=".*[Ee]xact calculation.*")
        ks = stats.ks_2samp(x, y)
    out["ks"] = float(ks.statistic)
    out["ks_p"] = float(ks.pvalue)
    out["wasserstein"] = float(stats.wasserstein_distance(x, y))
    vx = float(x.var(ddof=1)) if nx > 1 else 0.0
    vy = float(y.var(ddof=1)) if ny > 1 else 0.0
    dof = nx + ny - 2
    pooled = np.sqrt(((nx - 1) * vx + (ny - 1) * vy) / dof) if dof > 0 else 0.0
    diff = out["mean_x"] - out["mean_y"]
    if pooled > 0:
        out["effect_size"] = float(diff / pooled)
    else:
        out["effect_size"] = 0.0 if diff == 0 else float(np.copysign(np.inf, diff))
    return out
