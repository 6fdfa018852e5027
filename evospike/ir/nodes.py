"""IR nodes: populations, projections, spike sources, injected currents and monitors.

Plain data (dataclasses of NumPy arrays), validated on construction; no framework imports.
Every error names the node, the field and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from evospike.errors import ValidationError, first_bad, real_array, real_number
from evospike.ir.checks import check_name
from evospike.ir.distributions import Normal, Uniform
from evospike.ir.neurons import NeuronModel
from evospike.ir.timing import MIN_DELAY_STEPS

InitialValue = float | np.ndarray | Uniform | Normal

CHANNELS = ("exc", "inh", "v")




def _check_size(kind: str, name: str, size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) < 1:
        raise ValidationError(kind, name, "size", "must be a positive integer", size)
    return int(size)


@dataclass
class Population:
    """``size`` neurons of one `NeuronModel`. ``initial`` maps state names to a scalar, one value
    per neuron, or a distribution drawn per trial from the run seed; unnamed states start at the
    model's default."""

    #: the `Network` field that holds this kind of node (`Network.add` dispatches on it)
    collection: ClassVar[str] = "populations"
    name: str
    size: int
    model: NeuronModel
    initial: dict[str, InitialValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("Population", self.name)
        self.size = _check_size("Population", self.name, self.size)
        if not isinstance(self.model, NeuronModel):
            raise ValidationError("Population", self.name, "model",
                                  "must be a neuron model such as LIF(...)", self.model)
        self.model.validate(self.name, self.size)
        clean: dict[str, InitialValue] = {}
        for state, value in self.initial.items():
            if state not in self.model.state_names:
                raise ValidationError(
                    "Population", self.name, f"initial['{state}']",
                    f"is not a state of {self.model.kind} (states: {self.model.state_names})",
                    state,
                )
            if isinstance(value, (Uniform, Normal)):
                clean[state] = value
                continue
            arr = real_array("Population", self.name, f"initial['{state}']", value)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != self.size):
                raise ValidationError("Population", self.name, f"initial['{state}']",
                                      f"must be a scalar or have {self.size} values", arr.shape)
            if not np.all(np.isfinite(arr)):
                raise ValidationError("Population", self.name, f"initial['{state}']",
                                      "must be finite", first_bad(arr, ~np.isfinite(arr)))
            clean[state] = float(arr) if arr.ndim == 0 else arr
        self.initial = clean

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added)."""
        self.model.check_units(self.name, net.units)
        self.model.check_time_step(self.name, net.dt_ms)


@dataclass
class PoissonSource:
    """``size`` independent Poisson spike trains at ``rate_hz`` (scalar or per neuron), active
    from ``start_ms`` to ``stop_ms`` (None: forever). Realised per trial from the run seed; at
    most one spike per neuron per step, with probability ``rate_hz * dt``."""

    collection: ClassVar[str] = "sources"
    name: str
    size: int
    rate_hz: float | np.ndarray
    start_ms: float = 0.0
    stop_ms: float | None = None

    def __post_init__(self) -> None:
        check_name("PoissonSource", self.name)
        self.size = _check_size("PoissonSource", self.name, self.size)
        rate = real_array("PoissonSource", self.name, "rate_hz", self.rate_hz)
        if rate.ndim > 1 or (rate.ndim == 1 and rate.shape[0] != self.size):
            raise ValidationError("PoissonSource", self.name, "rate_hz",
                                  f"must be a scalar or have {self.size} values", rate.shape)
        if not np.all(np.isfinite(rate)) or np.any(rate < 0):
            raise ValidationError("PoissonSource", self.name, "rate_hz",
                                  "must be finite and >= 0 Hz",
                                  first_bad(rate, ~np.isfinite(rate) | (rate < 0)))
        if np.any(rate > 10_000):
            raise ValidationError("PoissonSource", self.name, "rate_hz",
                                  "is above 10 kHz: a PoissonSource is one spike train, "
                                  "Bernoulli per time step, so its rate must stay well below "
                                  "1/dt; for the drive of many afferents use many separate "
                                  "source neurons (a larger size) at their own rates",
                                  first_bad(rate, rate > 10_000))
        self.rate_hz = float(rate) if rate.ndim == 0 else rate
        self.start_ms = real_number("PoissonSource", self.name, "start_ms", self.start_ms)
        if not np.isfinite(self.start_ms) or self.start_ms < 0:
            raise ValidationError("PoissonSource", self.name, "start_ms", "must be >= 0",
                                  self.start_ms)
        if self.stop_ms is not None:
            self.stop_ms = real_number("PoissonSource", self.name, "stop_ms", self.stop_ms)
        if self.stop_ms is not None and not self.stop_ms > self.start_ms:
            raise ValidationError("PoissonSource", self.name, "stop_ms",
                                  "must be after start_ms", self.stop_ms)


@dataclass
class SpikeTimesSource:
    """``size`` neurons that fire at given times: neuron ``neurons[k]`` at ``times_ms[k]``.
    A spike at time t belongs to the step that contains it, ``floor(t / dt)``."""

    collection: ClassVar[str] = "sources"
    name: str
    size: int
    neurons: np.ndarray
    times_ms: np.ndarray

    def __post_init__(self) -> None:
        check_name("SpikeTimesSource", self.name)
        self.size = _check_size("SpikeTimesSource", self.name, self.size)
        neurons = np.asarray(self.neurons)
        times = real_array("SpikeTimesSource", self.name, "times_ms", self.times_ms)
        if neurons.ndim != 1 or times.ndim != 1 or neurons.shape != times.shape:
            raise ValidationError("SpikeTimesSource", self.name, "neurons/times_ms",
                                  "must be 1-D arrays of equal length",
                                  (neurons.shape, times.shape))
        if neurons.size and not np.issubdtype(neurons.dtype, np.integer):
            raise ValidationError("SpikeTimesSource", self.name, "neurons",
                                  "must be integer indices", neurons.dtype)
        if neurons.size and (neurons.min() < 0 or neurons.max() >= self.size):
            bad = neurons[(neurons < 0) | (neurons >= self.size)][0]
            raise ValidationError("SpikeTimesSource", self.name, "neurons",
                                  f"must lie in [0, {self.size})", int(bad))
        if not np.all(np.isfinite(times)) or np.any(times < 0):
            bad = times[~np.isfinite(times) | (times < 0)][0]
            raise ValidationError("SpikeTimesSource", self.name, "times_ms",
                                  "must be finite and >= 0", float(bad))
        order = np.lexsort((neurons, times))
        self.neurons = neurons[order].astype(np.int64)
        self.times_ms = times[order]


@dataclass
class CurrentInput:
    """Current injected into ``target``, in the unit of the model's bias (mV for LIF: R*I).

    ``amplitude`` is a scalar or one value per neuron, applied from ``start_ms`` to ``stop_ms``;
    or, with ``series`` (shape (T,) or (T, size)), one value per time step from ``start_ms`` on,
    and zero after the series ends. The current is constant within a step and integrated
    exactly with the membrane."""

    collection: ClassVar[str] = "currents"
    name: str
    target: str
    amplitude: float | np.ndarray = 0.0
    start_ms: float = 0.0
    stop_ms: float | None = None
    series: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_name("CurrentInput", self.name)
        amp = real_array("CurrentInput", self.name, "amplitude", self.amplitude)
        if not np.all(np.isfinite(amp)):
            raise ValidationError("CurrentInput", self.name, "amplitude", "must be finite",
                                  first_bad(amp, ~np.isfinite(amp)))
        self.amplitude = float(amp) if amp.ndim == 0 else amp
        if self.series is not None:
            series = real_array("CurrentInput", self.name, "series", self.series)
            if series.ndim not in (1, 2) or series.shape[0] < 1:
                raise ValidationError("CurrentInput", self.name, "series",
                                      "must have shape (T,) or (T, size)", series.shape)
            if not np.all(np.isfinite(series)):
                raise ValidationError("CurrentInput", self.name, "series", "must be finite",
                                      first_bad(series, ~np.isfinite(series)))
            self.series = series
        self.start_ms = real_number("CurrentInput", self.name, "start_ms", self.start_ms)
        if self.stop_ms is not None:
            self.stop_ms = real_number("CurrentInput", self.name, "stop_ms", self.stop_ms)
        if not np.isfinite(self.start_ms) or self.start_ms < 0:
            raise ValidationError("CurrentInput", self.name, "start_ms", "must be >= 0",
                                  self.start_ms)
        if self.stop_ms is not None and not self.stop_ms > self.start_ms:
            raise ValidationError("CurrentInput", self.name, "stop_ms", "must be after start_ms",
                                  self.stop_ms)

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added)."""
        if self.target not in net.populations:
            raise ValidationError("CurrentInput", self.name, "target",
                                  "must be a population of the network", self.target)
        self.check_target_size(net.populations[self.target].size)

    def check_target_size(self, size: int) -> None:
        amp = np.asarray(self.amplitude)
        if amp.ndim == 1 and amp.shape[0] != size:
            raise ValidationError("CurrentInput", self.name, "amplitude",
                                  f"must be a scalar or have {size} values (size of "
                                  f"'{self.target}')", amp.shape)
        if self.series is not None and self.series.ndim == 2 and self.series.shape[1] != size:
            raise ValidationError("CurrentInput", self.name, "series",
                                  f"must have {size} columns (size of '{self.target}')",
                                  self.series.shape)


@dataclass
class Projection:
    """Synapses from ``pre`` to ``post`` in CSR form, rows indexed by presynaptic neuron.

    Row i holds synapses ``indptr[i]:indptr[i+1]``: targets ``indices``, ``weights`` (added to
    channel ``target`` of the postsynaptic neuron, in that state's unit) and ``delays`` in time
    steps (a spike emitted at step n is due at step n + delay; >= 1 under the network's
    schedule "evospike", >= 0 under "brian2", see `evospike.ir.timing`)."""

    collection: ClassVar[str] = "projections"
    name: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    delays: np.ndarray
    target: str = "exc"

    def __post_init__(self) -> None:
        check_name("Projection", self.name)
        kind, name = "Projection", self.name
        if self.target not in CHANNELS:
            raise ValidationError(kind, name, "target", f"must be one of {CHANNELS}", self.target)
        indptr = np.asarray(self.indptr)
        indices = np.asarray(self.indices)
        weights = real_array(kind, name, "weights", self.weights)
        delays = np.asarray(self.delays)
        if indptr.ndim != 1 or indptr.shape[0] != self.n_pre + 1:
            raise ValidationError(kind, name, "indptr",
                                  f"must have n_pre + 1 = {self.n_pre + 1} entries", indptr.shape)
        if not np.issubdtype(indptr.dtype, np.integer) or (
            indices.size and not np.issubdtype(indices.dtype, np.integer)
        ):
            raise ValidationError(kind, name, "indptr/indices", "must be integer arrays",
                                  (indptr.dtype, indices.dtype))
        falls = np.concatenate([[indptr[0] != 0], np.diff(indptr) < 0])
        if np.any(falls):
            raise ValidationError(kind, name, "indptr", "must start at 0 and never decrease",
                                  first_bad(indptr, falls))
        nnz = int(indptr[-1])
        for field_name, arr in (("indices", indices), ("weights", weights), ("delays", delays)):
            if arr.ndim != 1 or arr.shape[0] != nnz:
                raise ValidationError(kind, name, field_name,
                                      f"has {arr.size} entries, indptr says {nnz}", arr.size)
        if nnz and (indices.min() < 0 or indices.max() >= self.n_post):
            bad = indices[(indices < 0) | (indices >= self.n_post)][0]
            raise ValidationError(kind, name, "indices", f"must lie in [0, {self.n_post})",
                                  int(bad))
        if not np.all(np.isfinite(weights)):
            raise ValidationError(kind, name, "weights", "must be finite",
                                  weights[~np.isfinite(weights)][0])
        if nnz and not np.issubdtype(delays.dtype, np.integer):
            if np.all(delays == np.round(delays)):
                delays = delays.astype(np.int64)
            else:
                raise ValidationError(kind, name, "delays", "must be whole time steps",
                                      delays[delays != np.round(delays)][0])
        if nnz and delays.min() < 0:  # the network's schedule sets the minimum (check)
            raise ValidationError(kind, name, "delays", "must not be negative",
                                  int(delays.min()))
        self.indptr = indptr.astype(np.int64)
        self.indices = indices.astype(np.int32 if self.n_post < 2**31 else np.int64)
        self.weights = weights
        self.delays = delays.astype(np.int32)

    @property
    def n_synapses(self) -> int:
        return int(self.indptr[-1])

    def pre_indices(self) -> np.ndarray:
        """Presynaptic neuron of every synapse (expands ``indptr``)."""
        return np.repeat(np.arange(self.n_pre), np.diff(self.indptr))

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added): endpoint sizes, a
        population as target, a channel its model has."""
        for side, n in (("pre", self.n_pre), ("post", self.n_post)):
            endpoint = getattr(self, side)
            if net.size_of(endpoint) != n:
                raise ValidationError("Projection", self.name, f"n_{side}",
                                      f"does not match the size of '{endpoint}' "
                                      f"({net.size_of(endpoint)})", n)
        if self.post not in net.populations:
            raise ValidationError("Projection", self.name, "post",
                                  "must be a population (sources only send)", self.post)
        least = MIN_DELAY_STEPS[net.schedule]
        if self.n_synapses and self.delays.min() < least:
            raise ValidationError("Projection", self.name, "delays",
                                  f"must be >= {least} time step under schedule "
                                  f"'{net.schedule}' (its events act before the threshold: a "
                                  "spike cannot arrive in the step it is emitted; "
                                  "schedule='brian2' carries delay 0)", int(self.delays.min()))
        model = net.populations[self.post].model
        model.check_incoming("Projection", self.name, self.target, self.weights)
        if self.target not in model.channels:
            raise ValidationError("Projection", self.name, "target",
                                  f"is not a channel of {model.kind} {model.channels}",
                                  self.target)


#: how a `PoissonInput` draws its per-step counts
POISSON_INPUT_COUNTS = ("binomial", "poisson")


@dataclass
class PoissonInput:
    """``n_afferents`` (K) independent Poisson afferents at ``rate_hz`` each (scalar or one rate
    per target neuron), onto every neuron of ``target``, without a neuron per afferent.

    In each step n in [start_ms, stop_ms) neuron i receives a count c[n, i] of afferent events,
    drawn per (trial, step, neuron) from the run seed: ``Binomial(K, rate * dt)`` (each afferent
    fires at most once per step, as K `PoissonSource` neurons would; needs rate * dt <= 1) or,
    with ``counts="poisson"``, ``Poisson(K * rate * dt)`` (NEST's ``poisson_generator``).
    ``c[n, i] * weight`` is added to channel ``channel`` of neuron i in step n, exactly where a
    spike arriving in step n through a projection onto that channel lands (after the state's
    exact update, before the threshold)."""

    collection: ClassVar[str] = "inputs"
    name: str
    target: str
    n_afferents: int
    rate_hz: float | np.ndarray
    weight: float
    channel: str = "exc"
    start_ms: float = 0.0
    stop_ms: float | None = None
    counts: str = "binomial"

    def __post_init__(self) -> None:
        kind, name = "PoissonInput", self.name
        check_name(kind, name)
        k = self.n_afferents
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
            raise ValidationError(kind, name, "n_afferents", "must be a positive integer", k)
        self.n_afferents = int(k)
        rate = real_array(kind, name, "rate_hz", self.rate_hz)
        if rate.ndim > 1:
            raise ValidationError(kind, name, "rate_hz", "must be a scalar or one value per "
                                  "target neuron", rate.shape)
        if not np.all(np.isfinite(rate)) or np.any(rate < 0):
            raise ValidationError(kind, name, "rate_hz", "must be finite and >= 0 Hz",
                                  first_bad(rate, ~np.isfinite(rate) | (rate < 0)))
        self.rate_hz = float(rate) if rate.ndim == 0 else rate
        self.weight = real_number(kind, name, "weight", self.weight)
        if not np.isfinite(self.weight):
            raise ValidationError(kind, name, "weight", "must be finite", self.weight)
        if self.channel not in CHANNELS:
            raise ValidationError(kind, name, "channel", f"must be one of {CHANNELS}",
                                  self.channel)
        if self.counts not in POISSON_INPUT_COUNTS:
            raise ValidationError(kind, name, "counts", f"must be one of {POISSON_INPUT_COUNTS}",
                                  self.counts)
        self.start_ms = real_number(kind, name, "start_ms", self.start_ms)
        if not np.isfinite(self.start_ms) or self.start_ms < 0:
            raise ValidationError(kind, name, "start_ms", "must be >= 0", self.start_ms)
        if self.stop_ms is not None:
            self.stop_ms = real_number(kind, name, "stop_ms", self.stop_ms)
            if not self.stop_ms > self.start_ms:
                raise ValidationError(kind, name, "stop_ms", "must be after start_ms",
                                      self.stop_ms)

    def probability(self, dt_ms: float) -> np.ndarray:
        """Each afferent's chance of an event per step, ``rate * dt`` (scalar or per neuron)."""
        return np.asarray(self.rate_hz, dtype=np.float64) * dt_ms * 1e-3

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added): a population as target,
        a channel its model has, one rate per neuron, and (binomial counts) at most one event
        per afferent and step."""
        kind, name = "PoissonInput", self.name
        if self.target not in net.populations:
            raise ValidationError(kind, name, "target", "must be a population of the network",
                                  self.target)
        pop = net.populations[self.target]
        pop.model.check_incoming(kind, name, self.channel, self.weight)
        if self.channel not in pop.model.channels:
            raise ValidationError(kind, name, "channel",
                                  f"is not a channel of {pop.model.kind} {pop.model.channels}",
                                  self.channel)
        rate = np.asarray(self.rate_hz)
        if rate.ndim == 1 and rate.shape[0] != pop.size:
            raise ValidationError(kind, name, "rate_hz", f"must be a scalar or have {pop.size} "
                                  f"values (size of '{self.target}')", rate.shape)
        prob = self.probability(net.dt_ms)
        if self.counts == "binomial" and np.any(prob > 1.0):
            raise ValidationError(kind, name, "rate_hz",
                                  f"is above 1/dt = {1e3 / net.dt_ms:g} Hz: a binomial count "
                                  "lets each afferent fire at most once per step (use "
                                  "counts='poisson', or more afferents at a lower rate)",
                                  first_bad(rate, prob > 1.0))


@dataclass
class SpikeMonitor:
    """Record every spike of a population or source."""

    collection: ClassVar[str] = "spike_monitors"
    target: str

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added)."""
        net.size_of(self.target)
        if any(m.target == self.target for m in net.spike_monitors):
            raise ValidationError("SpikeMonitor", self.target, "target",
                                  "already has a spike monitor", self.target)


@dataclass
class StateMonitor:
    """Record state ``variable`` of ``neurons`` of ``target`` every ``every_steps`` steps,
    after the step's reset."""

    collection: ClassVar[str] = "state_monitors"
    name: str
    target: str
    variable: str
    neurons: np.ndarray
    every_steps: int = 1

    def __post_init__(self) -> None:
        check_name("StateMonitor", self.name)
        neurons = np.atleast_1d(np.asarray(self.neurons))
        if neurons.ndim != 1 or not np.issubdtype(neurons.dtype, np.integer):
            raise ValidationError("StateMonitor", self.name, "neurons",
                                  "must be a 1-D array of integer indices", self.neurons)
        self.neurons = neurons.astype(np.int64)
        if isinstance(self.every_steps, bool) or int(self.every_steps) != self.every_steps or \
                self.every_steps < 1:
            raise ValidationError("StateMonitor", self.name, "every_steps",
                                  "must be a positive integer", self.every_steps)
        self.every_steps = int(self.every_steps)

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added): a population's or a
        process's state, and neurons within its size."""
        if self.target in net.populations:
            pop = net.populations[self.target]
            kind, names, size = pop.model.kind, pop.model.state_names, pop.size
        elif self.target in net.processes:
            proc = net.processes[self.target]
            kind, names, size = proc.kind, proc.state_names, proc.state_size(net)
        else:
            raise ValidationError("StateMonitor", self.name, "target",
                                  "must be a population or process of the network",
                                  self.target)
        if self.variable not in names:
            raise ValidationError("StateMonitor", self.name, "variable",
                                  f"is not a state of {kind} {names}", self.variable)
        neurons = self.neurons
        if neurons.size and (neurons.min() < 0 or neurons.max() >= size):
            raise ValidationError("StateMonitor", self.name, "neurons",
                                  f"must lie in [0, {size})",
                                  int(neurons[(neurons < 0) | (neurons >= size)][0]))


@dataclass
class WeightMonitor:
    """Snapshot all weights of a projection every ``every_steps`` steps."""

    collection: ClassVar[str] = "weight_monitors"
    name: str
    projection: str
    every_steps: int

    def __post_init__(self) -> None:
        check_name("WeightMonitor", self.name)
        if isinstance(self.every_steps, bool) or int(self.every_steps) != self.every_steps or \
                self.every_steps < 1:
            raise ValidationError("WeightMonitor", self.name, "every_steps",
                                  "must be a positive integer", self.every_steps)
        self.every_steps = int(self.every_steps)

    def check(self, net) -> None:
        """Validate against ``net`` (called when the node is added)."""
        if self.projection not in net.projections:
            raise ValidationError("WeightMonitor", self.name, "projection",
                                  "is not a projection of the network", self.projection)


Source = PoissonSource | SpikeTimesSource
