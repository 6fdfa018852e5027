"""Which neurons each synapse connects, over a run: what a results file records so that a
connectivity graph (the Insight page) can follow structural plasticity, apoptosis and
neurogenesis from the file alone.

Framework-free: a backend hands `ConnectivityLog` the synapses it has at the start and after
every step that changed them (``snapshot``); the log keeps each change once and turns them into
`ConnectivityData` per projection and `AliveData` per population with apoptosis.

What is recorded (automatic, on the backends that record it: torch eager and native):

- every projection: the number of synapses present per trial at each snapshot (``counts``);
- projections of up to `PAIR_LIMIT` synapses: also the (pre, post) neuron pair of every
  synapse that existed at any snapshot, and per trial and snapshot which of them were present
  (a pair counts once however many synapses join it);
- every population with apoptosis: which neurons are alive, per trial and snapshot.

A snapshot at step s is the connectivity after step s ran (the state monitors' convention);
the first one, at step 0, is the compiled connectivity. It holds until the next snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: projections of up to this many synapses record their neuron pairs (above: counts only)
PAIR_LIMIT = 20_000


@dataclass
class ConnectivityData:
    """One projection's synapses over the run. ``pre``/``post``/``present`` are None when the
    projection was too large to record its pairs (``counts`` is always there)."""

    pre_node: str
    post_node: str
    n_pre: int
    n_post: int
    steps: np.ndarray  # (S,) int64: snapshot steps, increasing
    counts: np.ndarray  # (trials, S) int64: synapses present
    pre: np.ndarray | None = None  # (E,) int32
    post: np.ndarray | None = None  # (E,) int32
    present: np.ndarray | None = None  # (trials, S, E) bool

    @property
    def has_pairs(self) -> bool:
        return self.present is not None

    def index_at(self, step: int) -> int:
        """The snapshot in force at ``step`` (the last one taken at or before it; the first
        one before any)."""
        return max(int(np.searchsorted(self.steps, step, side="right")) - 1, 0)

    def trial(self, k: int) -> ConnectivityData:
        return ConnectivityData(self.pre_node, self.post_node, self.n_pre, self.n_post,
                                self.steps, self.counts[k:k + 1], self.pre, self.post,
                                None if self.present is None else self.present[k:k + 1])


@dataclass
class AliveData:
    """Which neurons of a population with apoptosis are alive, per trial and snapshot."""

    steps: np.ndarray  # (S,) int64
    alive: np.ndarray  # (trials, S, n) bool

    def index_at(self, step: int) -> int:
        return max(int(np.searchsorted(self.steps, step, side="right")) - 1, 0)

    def trial(self, k: int) -> AliveData:
        return AliveData(self.steps, self.alive[k:k + 1])


@dataclass
class _Projection:
    pre_node: str
    post_node: str
    n_pre: int
    n_post: int
    pairs: bool
    steps: list
    counts: list  # (trials,) per snapshot
    keys: list  # per snapshot: list over trials of sorted unique pair keys (pairs only)


class ConnectivityLog:
    """Snapshots of a run's connectivity, taken by a backend when it changes."""

    def __init__(self, n_trials: int, pair_limit: int = PAIR_LIMIT):
        self.n_trials = n_trials
        self.pair_limit = pair_limit
        self._proj: dict[str, _Projection] = {}
        self._alive: dict[str, tuple[list, list]] = {}

    def snapshot_projection(self, name: str, pre_node: str, post_node: str, n_pre: int,
                            n_post: int, step: int, counts: np.ndarray,
                            pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
        """The synapses of ``name`` after ``step``: ``counts`` (trials,) present, and, for a
        projection whose pairs are kept, ``pairs`` = (pre (n,), post (n,), present (trials, n)
        bool) for every synapse. Whether pairs are kept is settled by the first snapshot (then
        every later one must give them). A snapshot equal to the last is dropped."""
        p = self._proj.get(name)
        if p is None:
            p = self._proj[name] = _Projection(pre_node, post_node, int(n_pre), int(n_post),
                                               pairs is not None, [], [], [])
        counts = np.asarray(counts, np.int64).reshape(self.n_trials)
        keys = None
        if p.pairs:
            if pairs is None:
                raise ValueError(f"connectivity of '{name}': its pairs were recorded so far, "
                                 "and must be given in every snapshot")
            pre, post, present = pairs
            present = np.broadcast_to(np.asarray(present, bool), (self.n_trials, pre.size))
            key = pre.astype(np.int64) * p.n_post + post.astype(np.int64)
            keys = [np.unique(key[present[k]]) for k in range(self.n_trials)]
        if p.steps:
            same = np.array_equal(p.counts[-1], counts) and (keys is None or all(
                np.array_equal(a, b) for a, b in zip(p.keys[-1], keys, strict=True)))
            if same:
                return
            if p.steps[-1] == step:  # two changes in one step: the later one holds
                p.steps.pop(), p.counts.pop()
                if p.pairs:
                    p.keys.pop()
        p.steps.append(int(step))
        p.counts.append(counts)
        if p.pairs:
            p.keys.append(keys)

    def snapshot_alive(self, population: str, step: int, alive: np.ndarray) -> None:
        """Who of ``population`` is alive after ``step``: (trials, n) bool."""
        steps, values = self._alive.setdefault(population, ([], []))
        alive = np.asarray(alive, bool)
        if values and np.array_equal(values[-1], alive):
            return
        if steps and steps[-1] == step:
            steps.pop(), values.pop()
        steps.append(int(step))
        values.append(alive.copy())

    def connectivity(self, n_steps: int) -> dict[str, ConnectivityData]:
        """Per projection, the snapshots taken within the first ``n_steps`` steps (the first
        snapshot, at step 0, always)."""
        out = {}
        for name, p in self._proj.items():
            keep = [i for i, s in enumerate(p.steps) if s < n_steps or i == 0]
            steps = np.asarray([p.steps[i] for i in keep], np.int64)
            counts = np.stack([p.counts[i] for i in keep], axis=1)
            pre = post = present = None
            if p.pairs:
                union = np.unique(np.concatenate(
                    [np.zeros(0, np.int64)] + [k for i in keep for k in p.keys[i]]))
                present = np.zeros((self.n_trials, len(keep), union.size), bool)
                for j, i in enumerate(keep):
                    for k in range(self.n_trials):
                        present[k, j, np.searchsorted(union, p.keys[i][k])] = True
                pre, post = (a.astype(np.int32) for a in np.divmod(union, p.n_post))
            out[name] = ConnectivityData(p.pre_node, p.post_node, p.n_pre, p.n_post, steps,
                                         counts, pre, post, present)
        return out

    def alive(self, n_steps: int) -> dict[str, AliveData]:
        out = {}
        for name, (steps, values) in self._alive.items():
            keep = [i for i, s in enumerate(steps) if s < n_steps or i == 0]
            out[name] = AliveData(np.asarray([steps[i] for i in keep], np.int64),
                                  np.stack([values[i] for i in keep], axis=1))
        return out
