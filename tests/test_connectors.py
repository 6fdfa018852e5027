"""Connectors: the CSR structure they build, their statistics, seeding, and `Network.connect`."""

import numpy as np
import pytest
from scipy import stats

from evospike import (
    LIF,
    AllToAll,
    FixedInDegree,
    FixedProbability,
    FromArrays,
    Network,
    Normal,
    OneToOne,
    Uniform,
)


def _build(connector, n_pre, n_post, same=False):
    indptr, indices = connector.build(n_pre, n_post, same, connector.rng())
    return np.asarray(indptr), np.asarray(indices)


def _rows(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))


def _assert_valid_csr(indptr, indices, n_pre, n_post):
    """indptr well formed; per row, targets strictly increasing (sorted, unique), in range."""
    assert indptr.shape == (n_pre + 1,)
    assert indptr[0] == 0 and np.all(np.diff(indptr) >= 0)
    assert indices.shape == (indptr[-1],)
    if indices.size:
        assert indices.min() >= 0 and indices.max() < n_post
        rows = _rows(indptr)
        same_row = rows[1:] == rows[:-1]
        assert np.all(np.diff(indices)[same_row] > 0)


def _net(*sizes, dt_ms=0.1) -> Network:
    net = Network("c", dt_ms=dt_ms)
    for k, n in enumerate(sizes):
        net.population(f"p{k}", n, LIF())
    return net


# ---------------------------------------------------------------- AllToAll / OneToOne
def test_all_to_all_every_row_is_every_target():
    net = _net(7, 5)
    proj = net.connect("p0", "p1", AllToAll())
    assert proj.n_synapses == 35
    np.testing.assert_array_equal(proj.indptr, np.arange(8) * 5)
    for i in range(7):
        np.testing.assert_array_equal(proj.indices[proj.indptr[i]:proj.indptr[i + 1]],
                                      np.arange(5))
    np.testing.assert_array_equal(proj.weights, np.ones(35))
    np.testing.assert_array_equal(proj.delays, np.ones(35))


def test_all_to_all_without_self_connections_drops_exactly_the_diagonal():
    net = _net(6, 6)
    proj = net.connect("p0", "p0", AllToAll(allow_self_connections=False))
    pairs = set(zip(proj.pre_indices().tolist(), proj.indices.tolist(), strict=True))
    assert proj.n_synapses == 30
    assert pairs == {(i, j) for i in range(6) for j in range(6) if i != j}
    _assert_valid_csr(proj.indptr, proj.indices, 6, 6)
    # between two different populations nothing is a self-connection: the diagonal stays
    other = net.connect("p0", "p1", AllToAll(allow_self_connections=False))
    assert other.n_synapses == 36


def test_one_to_one_is_the_identity():
    net = _net(9, 9)
    proj = net.connect("p0", "p1", OneToOne())
    np.testing.assert_array_equal(proj.indptr, np.arange(10))
    np.testing.assert_array_equal(proj.indices, np.arange(9))
    np.testing.assert_array_equal(proj.pre_indices(), proj.indices)


# ---------------------------------------------------------------- FixedProbability
def test_fixed_probability_same_seed_same_csr_other_seed_other_csr():
    a = _build(FixedProbability(0.1, seed=3), 300, 200)
    b = _build(FixedProbability(0.1, seed=3), 300, 200)
    c = _build(FixedProbability(0.1, seed=4), 300, 200)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    pairs = [set(zip(_rows(x[0]).tolist(), x[1].tolist(), strict=True)) for x in (a, c)]
    assert pairs[0] != pairs[1]
    # independent draws: the overlap is about p of the synapses, not all of them
    overlap = len(pairs[0] & pairs[1]) / len(pairs[0])
    assert 0.05 < overlap < 0.15


@pytest.fixture(scope="module")
def dense_sample():
    n_pre, n_post, p = 2000, 1500, 0.05
    indptr, indices = _build(FixedProbability(p, seed=11), n_pre, n_post)
    return n_pre, n_post, p, indptr, indices


def test_fixed_probability_count_and_csr(dense_sample):
    n_pre, n_post, p, indptr, indices = dense_sample
    _assert_valid_csr(indptr, indices, n_pre, n_post)
    mean = n_pre * n_post * p
    sd = np.sqrt(n_pre * n_post * p * (1 - p))
    assert abs(indices.size - mean) < 5 * sd
    # out-degrees are Binomial(n_post, p): check their mean and variance
    out = np.diff(indptr)
    assert abs(out.mean() - n_post * p) < 5 * np.sqrt(n_post * p * (1 - p) / n_pre)
    assert abs(out.var() / (n_post * p * (1 - p)) - 1) < 5 * np.sqrt(2 / n_pre)


def test_fixed_probability_targets_are_uniform_over_columns(dense_sample):
    n_pre, n_post, p, indptr, indices = dense_sample
    counts = np.bincount(indices, minlength=n_post)
    assert counts.shape == (n_post,)
    # column counts are Binomial(n_pre, p): dispersion statistic ~ chi2 with n_post - 1 dof,
    # scaled by (1 - p); a biased or shifted sampler (e.g. never hitting column 0) blows it up
    dispersion = np.sum((counts - counts.mean()) ** 2) / counts.mean()
    expected = (n_post - 1) * (1 - p)
    assert abs(dispersion - expected) < 5 * np.sqrt(2 * (n_post - 1)) * (1 - p)
    cv = counts.std() / counts.mean()
    assert cv == pytest.approx(np.sqrt((1 - p) / (n_pre * p)), rel=0.1)
    # no trend across columns: KS of jittered column positions against U(0, 1)
    jitter = np.random.default_rng(0).random(indices.size)
    assert stats.kstest((indices + jitter) / n_post, "uniform").pvalue > 1e-4
    # and every column is reachable, including the first and the last
    assert counts[0] > 0 and counts[-1] > 0


def test_fixed_probability_first_target_distribution(dense_sample):
    """P(column 0 in a row) = p: the geometric gaps must start at position 0, not 1."""
    n_pre, n_post, p, indptr, indices = dense_sample
    nonempty = np.diff(indptr) > 0
    first = indices[indptr[:-1][nonempty]]
    hits = np.sum(first == 0)
    assert abs(hits - n_pre * p) < 5 * np.sqrt(n_pre * p * (1 - p))


def test_fixed_probability_p0_and_p1():
    indptr, indices = _build(FixedProbability(0.0, seed=1), 40, 30)
    np.testing.assert_array_equal(indptr, np.zeros(41))
    assert indices.size == 0
    full = _build(FixedProbability(1.0, seed=1), 40, 30)
    ref = _build(AllToAll(), 40, 30)
    np.testing.assert_array_equal(full[0], ref[0])
    np.testing.assert_array_equal(full[1], ref[1])
    net = _net(12)
    proj = net.connect("p0", "p0", FixedProbability(1.0, allow_self_connections=False))
    assert proj.n_synapses == 12 * 11
    assert not np.any(proj.pre_indices() == proj.indices)


def test_fixed_probability_no_self_connections_when_disallowed():
    net = _net(400)
    proj = net.connect("p0", "p0", FixedProbability(0.2, seed=5, allow_self_connections=False))
    assert not np.any(proj.pre_indices() == proj.indices)
    _assert_valid_csr(proj.indptr, proj.indices, 400, 400)
    mean = 400 * 399 * 0.2
    assert abs(proj.n_synapses - mean) < 5 * np.sqrt(mean * 0.8)


def test_fixed_probability_large_sparse():
    n, p = 20_000, 0.002
    indptr, indices = _build(FixedProbability(p, seed=2), n, n)
    _assert_valid_csr(indptr, indices, n, n)
    mean = n * n * p
    assert abs(indices.size - mean) < 5 * np.sqrt(mean * (1 - p))
    assert indices.dtype == np.int64


class _OnesThenFar:
    """Stand-in generator: row 0 draws gaps of 1 (so its first block of gaps ends before the
    last column and must be extended), every other row draws gaps of ``n_post``."""

    def __init__(self, n_post):
        self.n_post = n_post

    def geometric(self, p, size):
        if isinstance(size, tuple):
            out = np.full(size, self.n_post, dtype=np.int64)
            out[0] = 1
            return out
        return np.ones(size, dtype=np.int64)


def test_fixed_probability_extends_rows_whose_gaps_fall_short():
    n_post = 10_000  # width = 1000 + 8 * sqrt(1000) + 16 gaps per row, far below 10000
    indptr, indices = FixedProbability(0.1).build(3, n_post, False, _OnesThenFar(n_post))
    np.testing.assert_array_equal(indptr, [0, n_post, n_post + 1, n_post + 2])
    np.testing.assert_array_equal(indices[:n_post], np.arange(n_post))
    np.testing.assert_array_equal(indices[n_post:], [n_post - 1, n_post - 1])


# ---------------------------------------------------------------- FixedInDegree
def test_fixed_in_degree_exactly_k_distinct_pres():
    n_pre, n_post, k = 1000, 2500, 30  # 2 blocks of post neurons
    indptr, indices = _build(FixedInDegree(k, seed=7), n_pre, n_post)
    _assert_valid_csr(indptr, indices, n_pre, n_post)  # unique pairs: increasing per row
    np.testing.assert_array_equal(np.bincount(indices, minlength=n_post), np.full(n_post, k))
    # presynaptic partners spread evenly: out-degrees ~ Binomial(n_post, k / n_pre)
    out = np.diff(indptr)
    q = k / n_pre
    assert abs(out.var() / (n_post * q * (1 - q)) - 1) < 5 * np.sqrt(2 / n_pre)
    same = _build(FixedInDegree(k, seed=7), n_pre, n_post)
    other = _build(FixedInDegree(k, seed=8), n_pre, n_post)
    np.testing.assert_array_equal(same[1], indices)
    assert not np.array_equal(other[1], indices)


def test_fixed_in_degree_without_self_connections():
    n, k = 3000, 50  # 5 blocks: the diagonal must be excluded in every block
    net = _net(n)
    proj = net.connect("p0", "p0", FixedInDegree(k, seed=1, allow_self_connections=False))
    assert not np.any(proj.pre_indices() == proj.indices)
    np.testing.assert_array_equal(np.bincount(proj.indices, minlength=n), np.full(n, k))
    _assert_valid_csr(proj.indptr, proj.indices, n, n)


def test_fixed_in_degree_edge_cases():
    indptr, indices = _build(FixedInDegree(19, seed=3, allow_self_connections=False), 20, 20,
                             same=True)
    pairs = set(zip(_rows(indptr).tolist(), indices.tolist(), strict=True))
    assert pairs == {(i, j) for i in range(20) for j in range(20) if i != j}
    full = _build(FixedInDegree(8, seed=3), 8, 5)
    ref = _build(AllToAll(), 8, 5)
    np.testing.assert_array_equal(full[0], ref[0])
    np.testing.assert_array_equal(full[1], ref[1])
    indptr, indices = _build(FixedInDegree(0), 8, 5)
    np.testing.assert_array_equal(indptr, np.zeros(9))
    assert indices.size == 0


# ---------------------------------------------------------------- FromArrays
def test_from_arrays_synapses_survive_connect_exactly():
    rng = np.random.default_rng(4)
    n_syn, n_pre, n_post, dt = 500, 40, 30, 0.25
    i = rng.integers(0, n_pre, n_syn)
    j = rng.integers(0, n_post, n_syn)
    w = rng.normal(0.0, 1.0, n_syn)
    steps = rng.integers(1, 9, n_syn)
    d_ms = steps * dt
    net = _net(n_pre, n_post, dt_ms=dt)
    proj = net.connect("p0", "p1", FromArrays(i, j, weights=w, delays_ms=d_ms),
                       weight=99.0, delay_ms=5.0)  # overridden by the connector's arrays
    rows = proj.pre_indices()
    assert np.all(np.diff(rows) >= 0)  # CSR order: by row, then (non-strictly) by column
    assert np.all(np.diff(proj.indices)[rows[1:] == rows[:-1]] >= 0)
    assert proj.n_synapses == n_syn
    assert proj.delays.dtype == np.int32
    got = sorted(zip(proj.pre_indices().tolist(), proj.indices.tolist(),
                     proj.weights.tolist(), proj.delays.tolist(), strict=True))
    want = sorted(zip(i.tolist(), j.tolist(), w.tolist(), steps.tolist(), strict=True))
    assert got == want


def test_from_arrays_with_duplicate_pairs_keeps_each_synapse():
    i, j = np.array([2, 0, 2, 1, 2]), np.array([1, 3, 1, 0, 0])
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    net = _net(3, 4)
    proj = net.connect("p0", "p1", FromArrays(i, j, weights=w), delay_ms=0.3)
    np.testing.assert_array_equal(proj.indptr, [0, 1, 2, 5])
    np.testing.assert_array_equal(proj.indices, [3, 0, 0, 1, 1])
    np.testing.assert_array_equal(proj.weights, [2.0, 4.0, 5.0, 1.0, 3.0])
    np.testing.assert_array_equal(proj.delays, [3, 3, 3, 3, 3])


def test_from_arrays_without_weights_uses_connect_weight():
    net = _net(3, 3)
    proj = net.connect("p0", "p1", FromArrays([2, 0], [0, 1]), weight=-2.5, target="inh")
    np.testing.assert_array_equal(proj.weights, [-2.5, -2.5])
    np.testing.assert_array_equal(proj.indices, [1, 0])
    assert proj.target == "inh"


# ---------------------------------------------------------------- distributions as weights
def test_uniform_weight_is_drawn_with_the_connector_seed():
    def weights(seed):
        net = _net(50, 40)
        return net.connect("p0", "p1", FixedProbability(0.3, seed=seed),
                           weight=Uniform(0.0, 1.0))

    a, b, c = weights(9), weights(9), weights(10)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.indices, b.indices)
    n = min(a.n_synapses, c.n_synapses)
    assert not np.any(a.weights[:n] == c.weights[:n])
    assert np.all((a.weights >= 0.0) & (a.weights < 1.0))
    assert abs(a.weights.mean() - 0.5) < 5 * np.sqrt(1 / 12 / a.n_synapses)
    assert len(np.unique(a.weights)) == a.n_synapses
    # AllToAll draws nothing for its structure: the weights are the seed's first draws
    net = _net(20, 30)
    proj = net.connect("p0", "p1", AllToAll(seed=7), weight=Normal(1.0, 0.5))
    np.testing.assert_array_equal(proj.weights, np.random.default_rng(7).normal(1.0, 0.5, 600))
