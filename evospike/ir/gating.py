"""Participation processes of the IR: which neurons of a population take part in a step.

Both nodes act through the *integrate mask* of their target population (see
``backends/torch/processes.py``): a neuron outside the mask neither integrates nor fires in that
step, and the synaptic events that arrive at it are dropped. A gated neuron therefore causes no
synaptic events at all: the saving is counted in SynOps (`evospike.energy`), not a mask applied
to outputs after the work was done. A mask computed at the end of step n applies in step n + 1;
in step 0 no mask exists yet (every neuron takes part) and ``open``/``participating`` read 1.

Epigenetic gating (`EpigeneticGate`, after EpiGen-LLM's control layer, made dynamic). Per neuron
``j`` of the target population a gate ``m_j`` in [0, 1]; per neuron ``i`` of the context source
a low-pass filtered rate ``c_i`` (Hz). At the end of step n, after the modulators have updated
(so the history ``h`` is the modulator's level ``h[n]``)::

    c[n]   = a c[n-1] + (1 - a) s[n] * 1000 / dt_ms           a = exp(-dt / tau_context_ms)
    g[n]   = sigmoid(W_c c[n] + w_h h[n] + b)                 (W_c: (n_target, n_source))
    m[n]   = d m[n-1] + (1 - d) g[n]                          d = exp(-dt / tau_ms)
    open_j = m_j[n] * A_j > theta_act                         (the integrate mask of step n+1)

``s[n]`` is 1 for a source neuron that spiked in step n. ``A`` is the survival factor of an
apoptosis process on the same population (its per-neuron state ``survival``) where the network
has one, 1 otherwise. The activation ratio (the fraction of the population that is open) is a
state of the node. With a *pattern memory* (``memory_keys`` (K, n_source) in Hz and
``memory_patterns`` (K, n_target) in [0, 1]) a familiar context restores its gate quickly: when
the cosine similarity between ``c[n]`` and the closest key reaches ``recall_similarity``, that
key's pattern replaces ``g[n]`` and the gate relaxes with ``tau_recall_ms`` instead of
``tau_ms`` (no recall while ``c`` is all zero). Keys and patterns are given, e.g. the context
rates and gates recorded in an earlier run; the memory does not write itself.

The gate weights ``w_context``, ``w_history`` and ``bias`` are plain arrays. Learning them is
the training issue's work: in a surrogate-gradient model the hard gate ``open`` becomes a
straight-through estimator (forward ``m > theta``, backward the gradient of ``m``), and the
sigmoid and the linear filters are differentiable as written.

Neuromodulated participation (`NeuromodulatedParticipation`, the dropout analogy of the
neuromodulation literature). A modulator's level ``h`` sets the fraction of the population that
takes part in each step, rising with novelty and falling when it is quiet::

    f[n]          = clip(base_fraction + gain * h[n], min_fraction, max_fraction)
    takes part in step n + 1  <=>  u_j[n + 1] < f[n]

with ``u_j[s]`` uniform in [0, 1), drawn per neuron and step from a stream keyed by (the node's
``seed``, the trial seed, the block of `PARTICIPATION_BLOCK_STEPS` steps), so that every backend
and every way of splitting a run into segments sees the same subsets (`participation_uniforms`).

Population-level states (``activation_ratio``, ``fraction``) are held once per neuron with the
same value in each, so that a node has one state size; record them with ``neurons=[0]``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError, first_bad
from evospike.ir.checks import check_name, check_population
from evospike.ir.modulators import _finite, _positive_ms
from evospike.ir.schedule import Phase

#: steps per block of participation draws (the key of the random stream)
PARTICIPATION_BLOCK_STEPS = 1000


def _array(kind: str, name: str, field_name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValidationError(kind, name, field_name, "must be finite",
                              first_bad(arr, ~np.isfinite(arr)))
    return arr


def _fits(kind: str, name: str, field_name: str, arr: np.ndarray, shape: tuple) -> None:
    try:
        np.broadcast_to(arr, shape)
    except ValueError:
        raise ValidationError(kind, name, field_name,
                              f"must be a scalar or broadcast to shape {shape}",
                              arr.shape) from None


def _in_unit(kind: str, name: str, field_name: str, value, closed_low: bool = True) -> float:
    value = _finite(kind, name, field_name, value)
    if not (0.0 <= value <= 1.0) or (not closed_low and value == 0.0):
        raise ValidationError(kind, name, field_name,
                              "must lie in [0, 1]" if closed_low else "must lie in (0, 1]", value)
    return value


def _target_population(node, net) -> None:
    check_population(node, net)
    for other in net.processes.values():
        if other.kind == node.kind and getattr(other, "population", None) == node.population:
            raise ValidationError(node.kind, node.name, "population",
                                  f"already has a {node.kind} ('{other.name}')", node.population)


def _modulator(node, net, field_name: str = "modulator") -> None:
    mod = getattr(node, field_name)
    if mod is not None and (mod not in net.processes or
                            net.processes[mod].kind != "Modulator"):
        raise ValidationError(node.kind, node.name, field_name,
                              "is not a Modulator of the network (add it first)", mod)


@dataclass
class EpigeneticGate:
    """A slow per-neuron gate on population ``population`` (see the module docstring).

    ``source``: the population or spike source whose recent activity is the context;
    ``tau_context_ms``: its rate filter (ms). ``w_context`` (n_target, n_source), ``w_history``
    (n_target,) and ``bias`` (n_target,): the gate's weights (scalars broadcast).
    ``modulator``: the history read-out (a Modulator's level; None: no history term).
    ``tau_ms``: the gate's time constant (ms). ``theta_act``: the activation threshold.
    ``initial_gate``: the gate at the start (scalar or (n_target,)). Pattern memory:
    ``memory_keys`` (K, n_source) Hz, ``memory_patterns`` (K, n_target), ``recall_similarity``
    (cosine, (0, 1]) and ``tau_recall_ms``. States (per target neuron): ``gate``, ``open``
    (1.0 / 0.0), ``activation_ratio`` (the same in every neuron)."""

    name: str
    population: str
    source: str
    w_context: np.ndarray
    w_history: np.ndarray = 0.0
    bias: np.ndarray = 0.0
    modulator: str | None = None
    tau_context_ms: float = 50.0
    tau_ms: float = 100.0
    theta_act: float = 0.2
    initial_gate: np.ndarray = 1.0
    memory_keys: np.ndarray | None = None
    memory_patterns: np.ndarray | None = None
    recall_similarity: float = 0.9
    tau_recall_ms: float = 5.0

    kind: ClassVar[str] = "EpigeneticGate"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.GATE
    state_names: ClassVar[tuple[str, ...]] = ("gate", "open", "activation_ratio")

    def __post_init__(self) -> None:
        kind, name = self.kind, str(self.name)
        check_name(kind, self.name)
        for field_name in ("population", "source"):
            if not isinstance(getattr(self, field_name), str):
                raise ValidationError(kind, name, field_name, "must be a node name",
                                      getattr(self, field_name))
        if self.modulator is not None and not isinstance(self.modulator, str):
            raise ValidationError(kind, name, "modulator", "must be a Modulator's name or None",
                                  self.modulator)
        for field_name in ("w_context", "w_history", "bias"):
            setattr(self, field_name, _array(kind, name, field_name, getattr(self, field_name)))
        if self.w_context.ndim > 2:
            raise ValidationError(kind, name, "w_context",
                                  "must be a scalar or a (n_target, n_source) matrix",
                                  self.w_context.shape)
        self.initial_gate = _array(kind, name, "initial_gate", self.initial_gate)
        bad = (self.initial_gate < 0) | (self.initial_gate > 1)
        if np.any(bad):
            raise ValidationError(kind, name, "initial_gate", "must lie in [0, 1]",
                                  first_bad(self.initial_gate, bad))
        self.tau_context_ms = _positive_ms(kind, name, "tau_context_ms", self.tau_context_ms)
        self.tau_ms = _positive_ms(kind, name, "tau_ms", self.tau_ms)
        self.tau_recall_ms = _positive_ms(kind, name, "tau_recall_ms", self.tau_recall_ms)
        self.theta_act = _in_unit(kind, name, "theta_act", self.theta_act)
        self.recall_similarity = _in_unit(kind, name, "recall_similarity",
                                          self.recall_similarity, closed_low=False)
        if (self.memory_keys is None) != (self.memory_patterns is None):
            raise ValidationError(kind, name, "memory_patterns",
                                  "and memory_keys must be given together (or neither)",
                                  None if self.memory_patterns is None else "given")
        if self.memory_keys is not None:
            keys = _array(kind, name, "memory_keys", self.memory_keys)
            patterns = _array(kind, name, "memory_patterns", self.memory_patterns)
            if keys.ndim != 2 or patterns.ndim != 2 or keys.shape[0] != patterns.shape[0] or \
                    keys.shape[0] == 0:
                raise ValidationError(kind, name, "memory_patterns",
                                      f"must be (K, n_target) with the K rows of memory_keys "
                                      f"{keys.shape}", patterns.shape)
            bad = (patterns < 0) | (patterns > 1)
            if np.any(bad):
                raise ValidationError(kind, name, "memory_patterns", "must lie in [0, 1]",
                                      first_bad(patterns, bad))
            if np.any(np.linalg.norm(keys, axis=1) == 0):
                raise ValidationError(kind, name, "memory_keys",
                                      "must not hold an all-zero key (no direction to compare)",
                                      int(np.nonzero(np.linalg.norm(keys, axis=1) == 0)[0][0]))
            self.memory_keys, self.memory_patterns = keys, patterns

    def state_size(self, net) -> int:
        return net.populations[self.population].size

    def check(self, net) -> None:
        _target_population(self, net)
        if self.source not in net.populations and self.source not in net.sources:
            raise ValidationError(self.kind, self.name, "source",
                                  "is not a population or source of the network", self.source)
        _modulator(self, net)
        n_t, n_s = net.populations[self.population].size, net.size_of(self.source)
        _fits(self.kind, self.name, "w_context", self.w_context, (n_t, n_s))
        for field_name in ("w_history", "bias", "initial_gate"):
            _fits(self.kind, self.name, field_name, getattr(self, field_name), (n_t,))
        if self.memory_keys is not None and (self.memory_keys.shape[1] != n_s or
                                             self.memory_patterns.shape[1] != n_t):
            raise ValidationError(self.kind, self.name, "memory_keys",
                                  f"must be (K, {n_s}) and memory_patterns (K, {n_t})",
                                  (self.memory_keys.shape, self.memory_patterns.shape))

    # ---------------------------------------------------------------- resolved parameters
    def resolved(self, net) -> dict[str, np.ndarray]:
        """The weights broadcast to their full shapes (float64), for the backends."""
        n_t, n_s = net.populations[self.population].size, net.size_of(self.source)
        return {"w_context": np.broadcast_to(self.w_context, (n_t, n_s)).copy(),
                "w_history": np.broadcast_to(self.w_history, (n_t,)).copy(),
                "bias": np.broadcast_to(self.bias, (n_t,)).copy(),
                "initial_gate": np.broadcast_to(self.initial_gate, (n_t,)).copy()}


@dataclass
class NeuromodulatedParticipation:
    """The fraction of population ``population`` that takes part in each step follows modulator
    ``modulator``: ``clip(base_fraction + gain * level, min_fraction, max_fraction)`` (see the
    module docstring); ``seed`` keys the random subsets. States (per neuron): ``participating``
    (1.0 / 0.0) and ``fraction`` (the same in every neuron)."""

    name: str
    population: str
    modulator: str
    base_fraction: float = 0.5
    gain: float = 1.0
    min_fraction: float = 0.05
    max_fraction: float = 1.0
    seed: int = 0

    kind: ClassVar[str] = "NeuromodulatedParticipation"
    collection: ClassVar[str] = "processes"  # the `Network` field that holds it
    phase: ClassVar[Phase] = Phase.PARTICIPATION
    state_names: ClassVar[tuple[str, ...]] = ("participating", "fraction")

    def __post_init__(self) -> None:
        kind, name = self.kind, str(self.name)
        check_name(kind, self.name)
        if not isinstance(self.modulator, str):
            raise ValidationError(kind, name, "modulator", "must be a Modulator's name",
                                  self.modulator)
        self.base_fraction = _in_unit(kind, name, "base_fraction", self.base_fraction)
        self.gain = _finite(kind, name, "gain", self.gain)
        self.min_fraction = _in_unit(kind, name, "min_fraction", self.min_fraction)
        self.max_fraction = _in_unit(kind, name, "max_fraction", self.max_fraction,
                                     closed_low=False)
        if self.min_fraction > self.max_fraction:
            raise ValidationError(kind, name, "min_fraction",
                                  f"must not exceed max_fraction ({self.max_fraction})",
                                  self.min_fraction)
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise ValidationError(kind, name, "seed", "must be an integer >= 0", self.seed)
        self.seed = int(self.seed)

    def state_size(self, net) -> int:
        return net.populations[self.population].size

    def check(self, net) -> None:
        _target_population(self, net)
        _modulator(self, net)

    def fraction(self, level: np.ndarray) -> np.ndarray:
        """The participating fraction for modulator levels ``level`` (NumPy)."""
        return np.clip(self.base_fraction + self.gain * np.asarray(level), self.min_fraction,
                       self.max_fraction)


def participation_uniforms(node: NeuromodulatedParticipation, trial_seed: int, size: int,
                           block: int) -> np.ndarray:
    """The draws ``u`` of steps ``[block * B, (block + 1) * B)`` (B =
    `PARTICIPATION_BLOCK_STEPS`), shape (B, size), uniform in [0, 1): the same on every
    backend and for every split of a run into segments."""
    key = zlib.crc32(node.name.encode())
    rng = np.random.default_rng([node.seed, int(trial_seed), key, 7, int(block)])
    return rng.random((PARTICIPATION_BLOCK_STEPS, size))


GATING_PROCESSES: dict[str, type] = {"EpigeneticGate": EpigeneticGate,
                                     "NeuromodulatedParticipation": NeuromodulatedParticipation}
