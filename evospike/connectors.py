"""Connectors: rules that build the CSR structure of a projection (rows = presynaptic neurons).

Each connector is seeded, so the same connector on the same populations always builds the same
synapses. ``build(n_pre, n_post, same_population)`` returns ``(indptr, indices)`` with column
indices sorted within each row, plus the generator to draw random weights from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError, real_number

CSR = tuple[np.ndarray, np.ndarray]

#: extra working memory per synapse of `Connector._drop_self` (pair list, sort order, new CSR),
#: measured with tracemalloc like `Connector.build_bytes_per_synapse`
SELF_DROP_BYTES_PER_SYNAPSE = 42.0


def _csr_from_pairs(pre: np.ndarray, post: np.ndarray, n_pre: int) -> tuple[CSR, np.ndarray]:
    order = np.lexsort((post, pre))
    counts = np.bincount(pre, minlength=n_pre)
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return (indptr, post[order].astype(np.int64)), order


def _check_seed(kind: str, seed: object) -> None:
    # numpy would refuse these only when the synapses are drawn, with a message naming neither
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(kind, "connector", "seed", "must be an integer >= 0", seed)


@dataclass(frozen=True)
class Connector:
    seed: int = 0
    allow_self_connections: bool = True

    #: peak working memory of `build`, in bytes per synapse built (temporary pair lists, sort
    #: orders, the int64 CSR it returns), measured with tracemalloc on 10^7-synapse builds;
    #: `evospike.memory_estimate` uses it to refuse a projection before building it
    build_bytes_per_synapse: ClassVar[float] = 60.0

    def __post_init__(self) -> None:
        _check_seed(type(self).__name__, self.seed)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def expected_synapses(self, n_pre: int, n_post: int, same_population: bool) -> float | None:
        """Synapses `build` makes on average, known without building them; None when the rule
        cannot say (then no memory check is made before building)."""
        return None

    def drops_self_connections(self, same_population: bool) -> bool:
        return same_population and not self.allow_self_connections

    def build_working_bytes(self, n_pre: int, n_post: int) -> float:
        """Working memory of `build` that does not grow with the synapses (its block arrays)."""
        return 0.0

    def build(self, n_pre: int, n_post: int, same_population: bool,
              rng: np.random.Generator) -> CSR:
        raise NotImplementedError

    def _drop_self(self, csr: CSR, same_population: bool) -> CSR:
        if self.allow_self_connections or not same_population:
            return csr
        indptr, indices = csr
        pre = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
        keep = pre != indices
        (new_indptr, new_indices), _ = _csr_from_pairs(pre[keep], indices[keep],
                                                       indptr.shape[0] - 1)
        return new_indptr, new_indices


@dataclass(frozen=True)
class AllToAll(Connector):
    """Every presynaptic neuron to every postsynaptic one."""

    build_bytes_per_synapse: ClassVar[float] = 16.0

    def expected_synapses(self, n_pre, n_post, same_population):
        return float(n_pre) * n_post - (n_pre if self.drops_self_connections(same_population)
                                        else 0)

    def build(self, n_pre, n_post, same_population, rng):
        indptr = np.arange(n_pre + 1, dtype=np.int64) * n_post
        indices = np.tile(np.arange(n_post, dtype=np.int64), n_pre)
        return self._drop_self((indptr, indices), same_population)


@dataclass(frozen=True)
class OneToOne(Connector):
    """Neuron i to neuron i; both sides must have the same size."""

    build_bytes_per_synapse: ClassVar[float] = 16.0

    def expected_synapses(self, n_pre, n_post, same_population):
        return float(min(n_pre, n_post))

    def drops_self_connections(self, same_population: bool) -> bool:
        return False  # refused by build instead

    def build(self, n_pre, n_post, same_population, rng):
        if n_pre != n_post:
            raise ValidationError("OneToOne", "connector", "sizes",
                                  "must be equal for one-to-one", (n_pre, n_post))
        if same_population and not self.allow_self_connections:
            raise ValidationError("OneToOne", "connector", "allow_self_connections",
                                  "cannot be False on a population onto itself: every synapse "
                                  "would be a self-connection", False)
        return np.arange(n_pre + 1, dtype=np.int64), np.arange(n_post, dtype=np.int64)


@dataclass(frozen=True)
class FixedProbability(Connector):
    """Each pair connected independently with probability ``p`` (Bernoulli, seeded).

    Drawn row by row with geometric gaps between successive targets, which is exactly a
    Bernoulli(p) per pair but costs time and memory in proportion to the synapses, not N^2."""

    p: float = 0.1

    def __init__(self, p: float, seed: int = 0, allow_self_connections: bool = True):
        object.__setattr__(self, "p", real_number("FixedProbability", "connector", "p", p))
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "allow_self_connections", allow_self_connections)
        _check_seed("FixedProbability", seed)
        if not (0.0 <= self.p <= 1.0):
            raise ValidationError("FixedProbability", "connector", "p", "must lie in [0, 1]", p)

    def expected_synapses(self, n_pre, n_post, same_population):
        pairs = float(n_pre) * n_post - (n_pre if self.drops_self_connections(same_population)
                                         else 0)
        return self.p * pairs

    def _block_shape(self, n_pre: int, n_post: int) -> tuple[int, int]:
        # rows drawn at once and gaps per row: enough gaps to cross a row almost always
        mean = n_post * self.p
        width = int(np.ceil(mean + 8 * np.sqrt(mean) + 16))
        return max(1, min(n_pre, 4_000_000 // width)), width

    def build_working_bytes(self, n_pre, n_post):
        if self.p in (0.0, 1.0):
            return 0.0
        block, width = self._block_shape(n_pre, n_post)
        # int64 gaps and positions, the mask, and nonzero's index pairs, per block entry
        return 26.0 * block * width

    def build(self, n_pre, n_post, same_population, rng):
        if self.p == 0.0:
            return np.zeros(n_pre + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if self.p == 1.0:
            return AllToAll(allow_self_connections=self.allow_self_connections).build(
                n_pre, n_post, same_population, rng)
        block, width = self._block_shape(n_pre, n_post)
        rows, cols = [], []
        for start in range(0, n_pre, block):
            stop = min(n_pre, start + block)
            gaps = rng.geometric(self.p, size=(stop - start, width))
            pos = np.cumsum(gaps, axis=1) - 1
            short = np.nonzero(pos[:, -1] < n_post)[0]
            for r in short:  # rows whose gaps did not reach the end: extend them (rare)
                extra = [pos[r]]
                last = pos[r, -1]
                while last < n_post:
                    more = last + np.cumsum(rng.geometric(self.p, size=width))
                    extra.append(more)
                    last = more[-1]
                row = np.concatenate(extra)
                row = row[row < n_post]
                rows.append(np.full(row.size, start + r, dtype=np.int64))
                cols.append(row)
            mask = pos < n_post
            mask[short] = False
            r_idx, c_idx = np.nonzero(mask)
            rows.append(r_idx.astype(np.int64) + start)
            cols.append(pos[r_idx, c_idx])
        pre = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        post = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        csr, _ = _csr_from_pairs(pre, post, n_pre)
        return self._drop_self(csr, same_population)


@dataclass(frozen=True)
class FixedInDegree(Connector):
    """Every postsynaptic neuron receives exactly ``k`` distinct presynaptic partners."""

    k: int = 1

    def __init__(self, k: int, seed: int = 0, allow_self_connections: bool = True):
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "allow_self_connections", allow_self_connections)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValidationError("FixedInDegree", "connector", "k",
                                  "must be a non-negative integer", k)
        _check_seed("FixedInDegree", seed)

    def expected_synapses(self, n_pre, n_post, same_population):
        return float(self.k) * n_post

    def drops_self_connections(self, same_population: bool) -> bool:
        return False  # excluded while drawing, not removed afterwards

    def build_working_bytes(self, n_pre, n_post):
        block = max(1, min(n_post, 2_000_000 // max(1, n_pre)))
        # float64 keys and argpartition's int64 result for a block of postsynaptic neurons
        return 24.0 * block * n_pre

    def build(self, n_pre, n_post, same_population, rng):
        available = n_pre - (0 if self.allow_self_connections or not same_population else 1)
        if self.k > available:
            raise ValidationError("FixedInDegree", "connector", "k",
                                  f"exceeds the {available} possible presynaptic partners",
                                  self.k)
        block = max(1, min(n_post, 2_000_000 // max(1, n_pre)))
        pres, posts = [], []
        for start in range(0, n_post, block):
            stop = min(n_post, start + block)
            keys = rng.random((stop - start, n_pre))
            if same_population and not self.allow_self_connections:
                keys[np.arange(stop - start), np.arange(start, stop)] = np.inf
            chosen = np.argpartition(keys, self.k - 1, axis=1)[:, : self.k] if self.k else \
                np.zeros((stop - start, 0), dtype=np.int64)
            pres.append(chosen.ravel())
            posts.append(np.repeat(np.arange(start, stop), self.k))
        pre = np.concatenate(pres).astype(np.int64)
        post = np.concatenate(posts).astype(np.int64)
        csr, _ = _csr_from_pairs(pre, post, n_pre)
        return csr


@dataclass(frozen=True)
class FromArrays(Connector):
    """Explicit synapses: ``i[k] -> j[k]``, optionally with their own ``weights`` and
    ``delays_ms`` (which then replace the ``weight``/``delay_ms`` given to ``connect``)."""

    i: np.ndarray | None = None
    j: np.ndarray | None = None
    weights: np.ndarray | None = None
    delays_ms: np.ndarray | None = None

    def __init__(self, i, j, weights=None, delays_ms=None):
        object.__setattr__(self, "seed", 0)
        object.__setattr__(self, "allow_self_connections", True)
        i_arr, j_arr = np.asarray(i), np.asarray(j)
        if i_arr.ndim != 1 or i_arr.shape != j_arr.shape:
            raise ValidationError("FromArrays", "connector", "i/j",
                                  "must be 1-D arrays of equal length", (i_arr.shape, j_arr.shape))
        if i_arr.size and not (np.issubdtype(i_arr.dtype, np.integer)
                               and np.issubdtype(j_arr.dtype, np.integer)):
            raise ValidationError("FromArrays", "connector", "i/j", "must be integer indices",
                                  (i_arr.dtype, j_arr.dtype))
        object.__setattr__(self, "i", i_arr.astype(np.int64))
        object.__setattr__(self, "j", j_arr.astype(np.int64))
        for name, arr in (("weights", weights), ("delays_ms", delays_ms)):
            if arr is not None:
                arr = np.asarray(arr, dtype=np.float64)
                if arr.shape != i_arr.shape:
                    raise ValidationError("FromArrays", "connector", name,
                                          f"must have one entry per synapse ({i_arr.size})",
                                          arr.shape)
            object.__setattr__(self, name, arr)

    build_bytes_per_synapse: ClassVar[float] = 48.0

    def expected_synapses(self, n_pre, n_post, same_population):
        return float(self.i.size)

    def drops_self_connections(self, same_population: bool) -> bool:
        return False

    def check_range(self, n_pre: int, n_post: int) -> None:
        for side, arr, n in (("i", self.i, n_pre), ("j", self.j, n_post)):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = arr[(arr < 0) | (arr >= n)][0]
                raise ValidationError("FromArrays", "connector", side,
                                      f"must lie in [0, {n})", int(bad))

    def order(self, n_pre: int) -> tuple[CSR, np.ndarray]:
        """CSR and the permutation that puts the given synapses in CSR order."""
        return _csr_from_pairs(self.i, self.j, n_pre)

    def build(self, n_pre, n_post, same_population, rng):
        self.check_range(n_pre, n_post)
        csr, _ = self.order(n_pre)
        return csr
