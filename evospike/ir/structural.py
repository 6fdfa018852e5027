"""Structural plasticity: synapses of a projection are pruned and grown while the network runs.

`StructuralPlasticity` is a process node (``Network.processes``). Changes are buffered and
applied once per interval of ``every_steps`` steps, at the end of steps n with
``(n + 1) % every_steps == 0`` (after plasticity, homeostasis and the modulators of that step),
so the connectivity is rebuilt only then. One update, per trial:

1. **Prune** (``prune``) among the synapses present:

   - ``"weight"``: every synapse with ``|w| < prune_below`` (weight unit of the projection);
   - ``"saliency"``: the ``floor(prune_fraction * n)`` synapses of lowest saliency
     ``S = |w| * c_pre``, with ``c_pre`` the presynaptic neuron's spike count over the interval
     (how much the synapse delivered: a synapse that is weak or never used goes first); ties go
     to the lower (pre, post) pair.

2. **Grow** (``grow``), at most ``grow_per_update`` synapses, with weight ``grow_weight``, delay
   ``grow_delay_steps`` (default: the projection's delay), never onto a pair that is connected
   (or was pruned in this update), never i -> i on a projection from a population onto itself:

   - ``"coactive"``: pairs (i, j) where presynaptic i and postsynaptic j both fired at least
     ``min_spikes`` times in the interval, highest ``c_pre[i] * c_post[j]`` first, ties to the
     lower (i, j). Deterministic;
   - ``"random"``: candidate pairs drawn at random, each (i, j) with probability
     ``grow_probability``, kept when the distance between i and j is at most ``max_distance``
     (neurons of each side placed evenly on [0, 1): ``x_i = i / n_pre``, ``y_j = j / n_post``),
     in the order drawn. The draws come from a NumPy generator keyed by
     ``(seed, trial seed, update index)``, so every backend draws the same pairs.

   Growth stops at the limits: ``max_per_neuron`` synapses onto one postsynaptic neuron,
   ``max_total`` synapses in the projection (None: no limit).

The decisions are made by `plan_update` (NumPy, shared by every backend) from the synapses
present as (pre, post, weight) triples, so they do not depend on how a backend orders them.

State (StateMonitor): ``n_synapses``, the number of synapses present during the step (a change
made at the end of step n shows from step n + 1 on). A `WeightMonitor` on the projection is
refused: its snapshots need a fixed synapse layout (record ``n_synapses`` instead, or a
WeightMonitor on a projection without structural plasticity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError
from evospike.ir.checks import check_name
from evospike.ir.schedule import Phase

PRUNE_RULES = ("weight", "saliency")
GROW_RULES = ("coactive", "random")


def _optional_positive_int(kind: str, name: str, field: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValidationError(kind, name, field, "must be a positive integer or None", value)
    return int(value)


def _real(kind: str, name: str, field: str, value, low: float, high: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or not low <= value <= high:
        raise ValidationError(kind, name, field, f"must be a finite number in [{low}, {high}]",
                              value)
    return float(value)


@dataclass
class StructuralPlasticity:
    """Prune and grow the synapses of ``projection`` every ``every_steps`` steps (see the module
    docstring for the rules and their units)."""

    name: str
    projection: str
    every_steps: int = 100
    prune: str | None = "weight"
    prune_below: float = 0.0
    prune_fraction: float = 0.0
    grow: str | None = None
    grow_weight: float = 0.0
    grow_per_update: int = 0
    grow_delay_steps: int | None = None
    min_spikes: int = 1
    grow_probability: float = 0.0
    max_distance: float = 1.0
    max_per_neuron: int | None = None
    max_total: int | None = None
    seed: int = 0

    kind: ClassVar[str] = "StructuralPlasticity"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.STRUCTURAL
    state_names: ClassVar[tuple[str, ...]] = ("n_synapses",)

    def __post_init__(self) -> None:
        kind = self.kind
        check_name(kind, self.name)
        if not isinstance(self.projection, str) or not self.projection:
            raise ValidationError(kind, self.name, "projection", "must name a projection",
                                  self.projection)
        every = _optional_positive_int(kind, self.name, "every_steps", self.every_steps)
        if every is None:
            raise ValidationError(kind, self.name, "every_steps", "must be a positive integer",
                                  None)
        self.every_steps = every
        if self.prune not in (None, *PRUNE_RULES):
            raise ValidationError(kind, self.name, "prune", f"must be None or one of "
                                  f"{PRUNE_RULES}", self.prune)
        if self.grow not in (None, *GROW_RULES):
            raise ValidationError(kind, self.name, "grow", f"must be None or one of {GROW_RULES}",
                                  self.grow)
        if self.prune is None and self.grow is None:
            raise ValidationError(kind, self.name, "prune/grow",
                                  "must set at least one of prune and grow", None)
        self.prune_below = _real(kind, self.name, "prune_below", self.prune_below, 0.0)
        self.prune_fraction = _real(kind, self.name, "prune_fraction", self.prune_fraction,
                                    0.0, 1.0)
        if self.prune == "weight" and self.prune_below == 0.0:
            raise ValidationError(kind, self.name, "prune_below",
                                  "must be > 0 for prune='weight' (nothing is below 0)", 0.0)
        if self.prune == "saliency" and self.prune_fraction == 0.0:
            raise ValidationError(kind, self.name, "prune_fraction",
                                  "must be > 0 for prune='saliency'", 0.0)
        self.grow_weight = _real(kind, self.name, "grow_weight", self.grow_weight, -np.inf)
        if isinstance(self.grow_per_update, bool) or int(self.grow_per_update) != \
                self.grow_per_update or self.grow_per_update < 0:
            raise ValidationError(kind, self.name, "grow_per_update", "must be an integer >= 0",
                                  self.grow_per_update)
        self.grow_per_update = int(self.grow_per_update)
        if self.grow is not None and self.grow_per_update == 0:
            raise ValidationError(kind, self.name, "grow_per_update",
                                  f"must be >= 1 for grow={self.grow!r}", 0)
        self.grow_delay_steps = _optional_positive_int(kind, self.name, "grow_delay_steps",
                                                       self.grow_delay_steps)
        if isinstance(self.min_spikes, bool) or int(self.min_spikes) != self.min_spikes or \
                self.min_spikes < 1:
            raise ValidationError(kind, self.name, "min_spikes", "must be an integer >= 1",
                                  self.min_spikes)
        self.min_spikes = int(self.min_spikes)
        self.grow_probability = _real(kind, self.name, "grow_probability",
                                      self.grow_probability, 0.0, 1.0)
        if self.grow == "random" and self.grow_probability == 0.0:
            raise ValidationError(kind, self.name, "grow_probability",
                                  "must be > 0 for grow='random'", 0.0)
        self.max_distance = _real(kind, self.name, "max_distance", self.max_distance, 0.0, 1.0)
        self.max_per_neuron = _optional_positive_int(kind, self.name, "max_per_neuron",
                                                     self.max_per_neuron)
        self.max_total = _optional_positive_int(kind, self.name, "max_total", self.max_total)
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise ValidationError(kind, self.name, "seed", "must be an integer >= 0", self.seed)
        self.seed = int(self.seed)

    def state_size(self, net) -> int:
        return 1

    def check(self, net) -> None:
        """Validate the references into ``net`` (called when the node is added)."""
        if self.projection not in net.projections:
            raise ValidationError(self.kind, self.name, "projection",
                                  "is not a projection of the network", self.projection)
        proj = net.projections[self.projection]
        if any(isinstance(p, StructuralPlasticity) and p.projection == self.projection
               for p in net.processes.values()):
            raise ValidationError(self.kind, self.name, "projection",
                                  "already has a StructuralPlasticity process", self.projection)
        for other in net.processes.values():
            if other.kind == "TerminalAttractorPruning" and self.projection in other.projections:
                raise ValidationError(self.kind, self.name, "projection",
                                      f"is pruned by TerminalAttractorPruning '{other.name}', "
                                      "which needs a fixed set of synapses", self.projection)
        for mon in net.weight_monitors.values():
            if mon.projection == self.projection:
                raise ValidationError(self.kind, self.name, "projection",
                                      f"has WeightMonitor '{mon.name}', whose snapshots need a "
                                      "fixed synapse layout; remove it and record this node's "
                                      "'n_synapses' instead", self.projection)
        rules = [r for r in net.plasticity.values() if r.projection == self.projection]
        if self.grow is not None and rules:
            rule = rules[0]
            if not rule.w_min <= self.grow_weight <= rule.w_max:
                raise ValidationError(self.kind, self.name, "grow_weight",
                                      f"must lie within rule '{rule.name}''s bounds "
                                      f"[{rule.w_min}, {rule.w_max}]", self.grow_weight)
        if self.grow_delay_steps is not None and proj.n_synapses and rules and \
                self.grow_delay_steps != int(proj.delays[0]):
            raise ValidationError(self.kind, self.name, "grow_delay_steps",
                                  f"must equal the plastic projection's delay "
                                  f"({int(proj.delays[0])} steps)", self.grow_delay_steps)
        if self.grow_delay_steps is not None and proj.n_synapses and \
                self.grow_delay_steps > int(proj.delays.max()):
            raise ValidationError(self.kind, self.name, "grow_delay_steps",
                                  "must not exceed the projection's longest delay "
                                  f"({int(proj.delays.max())} steps): the delay buffers are "
                                  "sized when the network is compiled", self.grow_delay_steps)

    def delay_steps(self, net) -> int:
        """The delay of grown synapses, in steps."""
        if self.grow_delay_steps is not None:
            return self.grow_delay_steps
        proj = net.projections[self.projection]
        return int(proj.delays[0]) if proj.n_synapses else 1

    def is_update_step(self, step: int) -> bool:
        return (step + 1) % self.every_steps == 0


@dataclass
class StructuralPlan:
    """One trial's decisions of one update: ``remove`` (bool, one per synapse given to
    `plan_update`), ``grow_pre``/``grow_post`` (the new pairs, in the order chosen)."""

    remove: np.ndarray
    grow_pre: np.ndarray
    grow_post: np.ndarray


def plan_update(node: StructuralPlasticity, n_pre: int, n_post: int, recurrent: bool,
                pre: np.ndarray, post: np.ndarray, weights: np.ndarray,
                pre_counts: np.ndarray, post_counts: np.ndarray, update_index: int,
                trial_seed: int) -> StructuralPlan:
    """The decisions of one update in one trial (see the module docstring).

    ``pre``, ``post``, ``weights``: the synapses present, (k,) each; ``pre_counts`` (n_pre,)
    and ``post_counts`` (n_post,): spikes in the interval; ``recurrent``: the projection goes
    from a population onto itself (no i -> i growth); ``update_index``: 0 for the first update.
    """
    pre = np.asarray(pre, np.int64)
    post = np.asarray(post, np.int64)
    weights = np.asarray(weights, np.float64)
    k = pre.size
    remove = np.zeros(k, dtype=bool)
    if node.prune == "weight":
        remove = np.abs(weights) < node.prune_below
    elif node.prune == "saliency":
        n_cut = int(np.floor(node.prune_fraction * k + 1e-9))
        if n_cut:
            score = np.abs(weights) * np.asarray(pre_counts, np.float64)[pre]
            order = np.lexsort((post, pre, score))
            remove[order[:n_cut]] = True
    grow_pre = np.zeros(0, np.int64)
    grow_post = np.zeros(0, np.int64)
    if node.grow is not None:
        taken = set((pre * n_post + post).tolist())  # connected, or pruned just now
        keep = ~remove
        in_degree = np.bincount(post[keep], minlength=n_post)
        total = int(keep.sum())
        if node.grow == "coactive":
            cp = np.asarray(pre_counts, np.int64)
            cq = np.asarray(post_counts, np.int64)
            ai = np.flatnonzero(cp >= node.min_spikes)
            aj = np.flatnonzero(cq >= node.min_spikes)
            ii, jj = np.meshgrid(ai, aj, indexing="ij")
            ii, jj = ii.ravel(), jj.ravel()
            score = cp[ii] * cq[jj]
            order = np.lexsort((jj, ii, -score))
            candidates = zip(ii[order].tolist(), jj[order].tolist(), strict=True)
        else:
            rng = np.random.default_rng([node.seed, int(trial_seed), int(update_index)])
            n_draw = int(rng.binomial(n_pre * n_post, node.grow_probability))
            flat = rng.integers(0, n_pre * n_post, n_draw)
            ii, jj = np.divmod(flat, n_post)
            near = np.abs(ii / n_pre - jj / n_post) <= node.max_distance
            candidates = zip(ii[near].tolist(), jj[near].tolist(), strict=True)
        gp, gq = [], []
        for i, j in candidates:
            if len(gp) >= node.grow_per_update:
                break
            if node.max_total is not None and total >= node.max_total:
                break
            if (recurrent and i == j) or (i * n_post + j) in taken:
                continue
            if node.max_per_neuron is not None and in_degree[j] >= node.max_per_neuron:
                continue
            taken.add(i * n_post + j)
            in_degree[j] += 1
            total += 1
            gp.append(i)
            gq.append(j)
        grow_pre, grow_post = np.asarray(gp, np.int64), np.asarray(gq, np.int64)
    return StructuralPlan(remove, grow_pre, grow_post)


# ------------------------------------------------------------------------ terminal attractor

def check_terminal_attractor_pruning(self, net) -> None:
    """Validate a `TerminalAttractorPruning` node's references into ``net``: its projections
    exist, each has a plasticity rule (its update is the gradient), none is named twice across
    pruning nodes, and the modulator carrying E exists."""
    kind = "TerminalAttractorPruning"
    if self.modulator not in net.processes or net.processes[self.modulator].kind != "Modulator":
        raise ValidationError(kind, self.name, "modulator",
                              "is not a Modulator of the network (add it first)", self.modulator)
    for proj in self.projections:
        if proj not in net.projections:
            raise ValidationError(kind, self.name, "projections",
                                  "names a projection the network does not have", proj)
        if not any(r.projection == proj for r in net.plasticity.values()):
            raise ValidationError(kind, self.name, "projections",
                                  "names a projection without a plasticity rule (its update "
                                  "is the gradient the pruning scores with)", proj)
        if net.projections[proj].n_synapses == 0:
            raise ValidationError(kind, self.name, "projections", "names a projection with no "
                                  "synapses", proj)
        for other in net.processes.values():
            if other.kind == kind and proj in other.projections:
                raise ValidationError(kind, self.name, "projections",
                                      f"names a projection that '{other.name}' already prunes",
                                      proj)
        if any(isinstance(p, StructuralPlasticity) and p.projection == proj
               for p in net.processes.values()):
            raise ValidationError(kind, self.name, "projections",
                                  "names a projection with StructuralPlasticity (the pruner "
                                  "needs a fixed set of synapses)", proj)
