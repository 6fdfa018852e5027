"""Up-front memory estimate of a network, so that one too big for the machine is refused in a
second with the numbers, not after minutes of swapping.

Components (bytes): **connectivity** (the CSR arrays of every projection: row pointers,
indices, weights, delays, in the IR's dtypes), **parameters** (per-neuron parameter, initial
value and input arrays held by the IR), **neuron state** (state variables, refractory counter and
spike flag per neuron and trial), **plasticity** (per-trial weights, the by-column index of a
plastic projection, traces, eligibilities), **buffers** (the delay ring buffer of every
population that receives synapses, and one chunk of Poisson draws per source) and
**recordings**, per second of simulated time (spikes at an assumed mean rate, sampled state
traces, weight snapshots).

State and buffers are counted in float64, the widest precision a backend runs in: a float32 run
needs less. NumPy only, no framework import: it runs before any backend is chosen.

Before a projection is built, `check_connect` compares the memory that building it needs
(the connector's expected synapse count times its measured working memory per synapse) with
the memory available, and refuses it when it cannot fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from evospike.errors import EvoSpikeError, ValidationError

#: bytes per synapse of a projection in the IR: int32 index, float64 weight, int32 delay
#: (indices are int64 when the postsynaptic side has 2**31 neurons or more)
SYNAPSE_BYTES = 4 + 8 + 4
#: bytes per row of a projection's CSR row pointer (int64)
ROW_POINTER_BYTES = 8
#: peak bytes per synapse of `Network.connect` once the connector has built its CSR: the int64
#: CSR from the connector, the float64 weights, the delays, and the IR's int32 copies
CONNECT_BYTES_PER_SYNAPSE = 28.0
#: interpreter and bookkeeping allocations of one `Network.connect`, whatever its size
CONNECT_FIXED_BYTES = 1_000_000
#: bytes per neuron and trial besides the state variables: refractory counter and spike flag
NEURON_OVERHEAD_BYTES = 4 + 1
#: bytes per recorded spike: a (time step, neuron) pair of int64
SPIKE_RECORD_BYTES = 16
#: float64 values
VALUE_BYTES = 8
#: steps of Poisson draws realised at once (`evospike.realize.POISSON_CHUNK_STEPS`)
POISSON_CHUNK_STEPS = 1000
#: mean firing rate assumed for recorded spikes when none is given (Hz)
DEFAULT_RATE_HZ = 10.0


class MemoryLimitError(EvoSpikeError, MemoryError):
    """A network or projection would need more memory than the machine has available.

    The message has the form ``<Kind> '<name>': <field> needs an estimated ... (got ...)``."""

    def __init__(self, kind: str, name: str, field: str, needed_bytes: float,
                 available_bytes: int, detail: str = "", value: object = None):
        self.kind = kind
        self.name = name
        self.field = field
        self.needed_bytes = float(needed_bytes)
        self.available_bytes = int(available_bytes)
        self.value = value
        shown = "" if value is None else f" (got {value})"
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{kind} '{name}': {field} needs an estimated {format_bytes(needed_bytes)}{extra}, "
            f"more than the {format_bytes(available_bytes)} of memory available on this "
            f"machine{shown}")


def format_bytes(n: float) -> str:
    """``n`` bytes in decimal units: '512 B', '3.2 MB', '1600 GB' past a terabyte."""
    n = float(n)
    if n >= 1e12:  # stay in GB, the unit memory is sold in, without an exponent
        return f"{n / 1e9:.0f} GB"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def available_memory_bytes() -> int:
    """Memory the system can give this process now without swapping: ``MemAvailable`` of
    /proc/meminfo (Linux), else free physical pages times the page size."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        # no way to know here (e.g. Windows without /proc): assume nothing is refused
        return 2**63 - 1


# ---------------------------------------------------------------------- specs
@dataclass(frozen=True)
class PopulationSpec:
    """A population to be built: ``size`` neurons with ``n_states`` state variables."""

    size: int
    n_states: int = 3


@dataclass(frozen=True)
class ProjectionSpec:
    """A projection to be built from ``pre`` to ``post``: either a ``connector`` (whose
    expected synapse count is used) or an explicit ``n_synapses``."""

    pre: str
    post: str
    connector: object | None = None
    n_synapses: float | None = None
    max_delay_steps: int = 1
    target: str = "exc"
    plastic: bool = False


@dataclass
class NetworkSpec:
    """A network described by its sizes only, to estimate before building anything.
    ``populations`` maps names to a size or a `PopulationSpec`; ``sources`` maps spike-source
    names to sizes; ``record_spikes`` names the populations and sources whose spikes are kept."""

    name: str = "spec"
    dt_ms: float = 0.1
    populations: dict[str, int | PopulationSpec] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    projections: list[ProjectionSpec] = field(default_factory=list)
    record_spikes: tuple[str, ...] = ()

    def size_of(self, name: str) -> int:
        if name in self.populations:
            return _spec_pop(self, name).size
        if name in self.sources:
            return _positive_int("NetworkSpec", self.name, f"sources['{name}']",
                                 self.sources[name])
        raise ValidationError("NetworkSpec", self.name, "node",
                              f"has no population or source named '{name}'", name)


def _positive_int(kind: str, name: str, field_name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(kind, name, field_name, "must be a positive integer", value)
    return int(value)


def _spec_pop(spec: NetworkSpec, name: str) -> PopulationSpec:
    pop = spec.populations[name]
    if not isinstance(pop, PopulationSpec):
        pop = PopulationSpec(pop)  # type: ignore[arg-type]
    _positive_int("NetworkSpec", spec.name, f"populations['{name}'].size", pop.size)
    _positive_int("NetworkSpec", spec.name, f"populations['{name}'].n_states", pop.n_states)
    return pop


# ---------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a network needs, by component; ``recording_bytes_per_s`` per second of simulated
    time (so ``recording_bytes`` is only known with ``duration_ms``)."""

    connectivity_bytes: int
    parameter_bytes: int
    state_bytes: int
    plasticity_bytes: int
    buffer_bytes: int
    recording_bytes_per_s: int
    n_synapses: int
    n_neurons: int
    n_trials: int = 1
    duration_ms: float | None = None
    assumed_rate_hz: float = DEFAULT_RATE_HZ

    @property
    def recording_bytes(self) -> int:
        if self.duration_ms is None:
            return 0
        return int(math.ceil(self.recording_bytes_per_s * self.duration_ms / 1000.0))

    @property
    def total_bytes(self) -> int:
        """Everything held at once: network, state, buffers and (with a duration) the
        recordings of the whole run."""
        return (self.connectivity_bytes + self.parameter_bytes + self.state_bytes +
                self.plasticity_bytes + self.buffer_bytes + self.recording_bytes)


def projection_bytes(n_pre: int, n_post: int, n_synapses: float) -> int:
    """Bytes of a projection's CSR arrays in the IR (row pointers, indices, weights, delays)."""
    index_bytes = 4 if n_post < 2**31 else 8
    per_synapse = SYNAPSE_BYTES - 4 + index_bytes
    return int(math.ceil(ROW_POINTER_BYTES * (n_pre + 1) + per_synapse * n_synapses))


def _plastic_bytes(n_pre: int, n_post: int, nnz: float, trials: int, modulated: bool) -> int:
    # per-trial weights (and eligibilities when a modulator reads them out), the by-column
    # synapse ids and presynaptic indices (int64), the column pointer, pre and post traces
    per_synapse = 16 + VALUE_BYTES * trials * (2 if modulated else 1)
    return int(math.ceil(nnz * per_synapse + 8 * (n_post + 1) +
                         VALUE_BYTES * trials * (n_pre + n_post)))


def _check_args(n_trials: object, duration_ms: object, rate_hz: object) -> None:
    _positive_int("estimate_memory", "arguments", "n_trials", n_trials)
    if duration_ms is not None and (isinstance(duration_ms, bool) or
                                    not isinstance(duration_ms, (int, float, np.number)) or
                                    not math.isfinite(duration_ms) or duration_ms <= 0):
        raise ValidationError("estimate_memory", "arguments", "duration_ms",
                              "must be a positive number of milliseconds or None", duration_ms)
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float, np.number)) or \
            not math.isfinite(rate_hz) or rate_hz < 0:
        raise ValidationError("estimate_memory", "arguments", "assumed_rate_hz",
                              "must be a finite rate >= 0 Hz", rate_hz)


def estimate_memory(network_or_spec, n_trials: int = 1, duration_ms: float | None = None,
                    assumed_rate_hz: float = DEFAULT_RATE_HZ) -> MemoryEstimate:
    """Estimate the memory of a `Network` (exact synapse counts) or a `NetworkSpec` (expected
    counts of its connectors) run as ``n_trials`` trials for ``duration_ms``."""
    from evospike.ir.network import Network

    _check_args(n_trials, duration_ms, assumed_rate_hz)
    if isinstance(network_or_spec, Network):
        return _estimate_network(network_or_spec, int(n_trials), duration_ms,
                                 float(assumed_rate_hz))
    if isinstance(network_or_spec, NetworkSpec):
        return _estimate_spec(network_or_spec, int(n_trials), duration_ms, float(assumed_rate_hz))
    raise ValidationError("estimate_memory", "arguments", "network_or_spec",
                          "must be a Network or a NetworkSpec", type(network_or_spec).__name__)


def _ring_buffer_bytes(size: int, incoming: list[tuple[int, str]], trials: int) -> int:
    """One slot per delay step (max delay + 1), one row per channel in use."""
    if not incoming:
        return 0
    slots = max(d for d, _ in incoming) + 1
    channels = len({t for _, t in incoming})
    return VALUE_BYTES * slots * channels * trials * size


def _estimate_network(net, trials: int, duration_ms: float | None,
                      rate_hz: float) -> MemoryEstimate:
    connectivity = sum(projection_bytes(p.n_pre, p.n_post, p.n_synapses)
                       for p in net.projections.values())
    parameters = 0
    for pop in net.populations.values():
        parameters += sum(np.asarray(v).nbytes for v in pop.model.parameters().values()
                          if isinstance(v, np.ndarray))
        parameters += sum(v.nbytes for v in pop.initial.values() if isinstance(v, np.ndarray))
    for src in net.sources.values():
        for attr in ("rate_hz", "neurons", "times_ms"):
            value = getattr(src, attr, None)
            if isinstance(value, np.ndarray):
                parameters += value.nbytes
    for cur in net.currents.values():
        for value in (cur.amplitude, cur.series):
            if isinstance(value, np.ndarray):
                parameters += value.nbytes
    state = sum(trials * pop.size * (VALUE_BYTES * len(pop.model.state_names) +
                                     NEURON_OVERHEAD_BYTES) for pop in net.populations.values())
    plastic = 0
    for rule in net.plasticity.values():
        proj = net.projections[rule.projection]
        plastic += _plastic_bytes(proj.n_pre, proj.n_post, proj.n_synapses, trials,
                                  getattr(rule, "modulator", None) is not None)
    buffers = 0
    for pop in net.populations.values():
        incoming = [(int(p.delays.max()) if p.n_synapses else 1, p.target)
                    for p in net.projections.values() if p.post == pop.name]
        # a PoissonInput's events arrive through a row of the same buffer (no delay)
        incoming += [(0, i.channel) for i in getattr(net, "inputs", {}).values()
                     if i.target == pop.name]
        buffers += _ring_buffer_bytes(pop.size, incoming, trials)
    buffers += sum(VALUE_BYTES * POISSON_CHUNK_STEPS * s.size for s in net.sources.values()
                   if hasattr(s, "rate_hz"))
    # a PoissonInput holds one chunk of counts x weight per trial (torch's TPoissonInput)
    buffers += sum(VALUE_BYTES * POISSON_CHUNK_STEPS * trials * net.size_of(i.target)
                   for i in getattr(net, "inputs", {}).values())
    steps_per_s = 1000.0 / net.dt_ms
    per_s = sum(SPIKE_RECORD_BYTES * rate_hz * net.size_of(m.target) for m in net.spike_monitors)
    per_s += sum(VALUE_BYTES * m.neurons.size * steps_per_s / m.every_steps
                 for m in net.state_monitors.values())
    per_s += sum(VALUE_BYTES * net.projections[m.projection].n_synapses * steps_per_s /
                 m.every_steps for m in net.weight_monitors.values())
    return MemoryEstimate(int(connectivity), int(parameters), int(state), int(plastic),
                          int(buffers), int(math.ceil(per_s * trials)), net.n_synapses,
                          net.n_neurons, trials, duration_ms, rate_hz)


def _expected(spec: NetworkSpec, proj: ProjectionSpec) -> float:
    n_pre, n_post = spec.size_of(proj.pre), spec.size_of(proj.post)
    if proj.n_synapses is not None:
        count = proj.n_synapses
    elif proj.connector is not None and hasattr(proj.connector, "expected_synapses"):
        count = proj.connector.expected_synapses(n_pre, n_post, proj.pre == proj.post)
    else:
        count = None
    if count is None or not math.isfinite(count) or count < 0:
        raise ValidationError("ProjectionSpec", f"{proj.pre}->{proj.post}", "n_synapses",
                              "must be given (a number >= 0) when the connector cannot say "
                              "how many synapses it builds", count)
    return float(count)


def _estimate_spec(spec: NetworkSpec, trials: int, duration_ms: float | None,
                   rate_hz: float) -> MemoryEstimate:
    pops = {name: _spec_pop(spec, name) for name in spec.populations}
    counts = [_expected(spec, p) for p in spec.projections]
    connectivity = sum(projection_bytes(spec.size_of(p.pre), spec.size_of(p.post), n)
                       for p, n in zip(spec.projections, counts, strict=True))
    state = sum(trials * p.size * (VALUE_BYTES * p.n_states + NEURON_OVERHEAD_BYTES)
                for p in pops.values())
    plastic = sum(_plastic_bytes(spec.size_of(p.pre), spec.size_of(p.post), n, trials, False)
                  for p, n in zip(spec.projections, counts, strict=True) if p.plastic)
    buffers = 0
    for name, pop in pops.items():
        incoming = [(int(p.max_delay_steps), p.target) for p in spec.projections
                    if p.post == name]
        buffers += _ring_buffer_bytes(pop.size, incoming, trials)
    buffers += sum(VALUE_BYTES * POISSON_CHUNK_STEPS * spec.size_of(s) for s in spec.sources)
    per_s = sum(SPIKE_RECORD_BYTES * rate_hz * spec.size_of(t) for t in spec.record_spikes)
    return MemoryEstimate(int(connectivity), 0, int(state), int(plastic), int(buffers),
                          int(math.ceil(per_s * trials)), int(round(sum(counts))),
                          sum(p.size for p in pops.values()), trials, duration_ms, rate_hz)


# ---------------------------------------------------------------------- refusing
def connect_peak_bytes(connector, n_pre: int, n_post: int, same_population: bool
                       ) -> tuple[float, int, int] | None:
    """(expected synapses, bytes of the finished projection, peak bytes while building it) for
    ``connector`` on ``n_pre`` x ``n_post``; None when the connector cannot say in advance."""
    count = getattr(connector, "expected_synapses", None)
    expected = None if count is None else count(n_pre, n_post, same_population)
    if expected is None:
        return None
    per_synapse = float(connector.build_bytes_per_synapse)
    if connector.drops_self_connections(same_population):
        from evospike.connectors import SELF_DROP_BYTES_PER_SYNAPSE

        per_synapse += SELF_DROP_BYTES_PER_SYNAPSE
    per_synapse = max(per_synapse, CONNECT_BYTES_PER_SYNAPSE)
    final = projection_bytes(n_pre, n_post, expected)
    working = float(getattr(connector, "build_working_bytes", lambda *a: 0.0)(n_pre, n_post))
    peak = int(math.ceil(per_synapse * expected + working + 2 * ROW_POINTER_BYTES * (n_pre + 1)
                         + CONNECT_FIXED_BYTES))
    return expected, final, max(peak, final)


def check_connect(projection: str, connector, n_pre: int, n_post: int,
                  same_population: bool) -> None:
    """Refuse to build ``projection`` when building it needs more memory than is available
    (called by `Network.connect` before the connector draws a single synapse)."""
    sizes = connect_peak_bytes(connector, n_pre, n_post, same_population)
    if sizes is None:
        return
    expected, final, peak = sizes
    available = available_memory_bytes()
    if peak > available:
        raise MemoryLimitError(
            "Projection", projection, "connectivity", peak, available,
            f"while building {expected:.3g} expected synapses; {format_bytes(final)} once "
            "built",
            f"{_describe_connector(connector)} on {n_pre} x {n_post}")


def _describe_connector(connector) -> str:
    kind = type(connector).__name__
    for attr in ("p", "k"):
        if hasattr(connector, attr):
            return f"{kind}({attr}={getattr(connector, attr)})"
    return kind


def check_fits(estimate: MemoryEstimate, name: str = "network",
               available: int | None = None) -> None:
    """Refuse (MemoryLimitError) when ``estimate.total_bytes`` exceeds the available memory."""
    available = available_memory_bytes() if available is None else int(available)
    if estimate.total_bytes > available:
        parts = ", ".join(f"{label} {format_bytes(value)}" for label, value, _ in
                          _components(estimate) if value)
        raise MemoryLimitError("Network", name, "the run", estimate.total_bytes, available,
                               parts)


def _components(est: MemoryEstimate) -> list[tuple[str, int, str]]:
    trials = f"{est.n_trials} trial{'s' if est.n_trials != 1 else ''}"
    return [
        ("connectivity", est.connectivity_bytes,
         f"{est.n_synapses:.4g} synapses: CSR row pointers, indices, weights, delays"),
        ("parameters", est.parameter_bytes, "per-neuron parameters, initial values, inputs"),
        ("neuron state", est.state_bytes, f"{est.n_neurons} neurons x {trials}"),
        ("plasticity", est.plasticity_bytes, "per-trial weights, column index, traces"),
        ("buffers", est.buffer_bytes, "delay ring buffers, Poisson chunks"),
        ("recordings", est.recording_bytes,
         f"{format_bytes(est.recording_bytes_per_s)} per simulated second at "
         f"{est.assumed_rate_hz:g} Hz" + ("" if est.duration_ms is None else
                                          f", for {est.duration_ms:g} ms")),
    ]


def describe_memory(estimate: MemoryEstimate, available: int | None = None) -> str:
    """One line per component, then the total and the memory available on this machine."""
    lines = [f"{label:<13} {format_bytes(value):>10}  ({detail})"
             for label, value, detail in _components(estimate)]
    lines.append(f"{'total':<13} {format_bytes(estimate.total_bytes):>10}")
    available = available_memory_bytes() if available is None else int(available)
    lines.append(f"{'available':<13} {format_bytes(available):>10}  (on this machine)")
    return "\n".join(lines)


__all__ = [
    "MemoryEstimate", "MemoryLimitError", "NetworkSpec", "PopulationSpec", "ProjectionSpec",
    "available_memory_bytes", "check_connect", "check_fits", "connect_peak_bytes",
    "describe_memory", "estimate_memory", "format_bytes", "projection_bytes",
]
