"""Partitioned simulation, the part that does not depend on how spikes travel: which neurons a
rank owns, the incoming synapses it holds, and one rank's stepping by minimum-delay windows.

Partition: every population is cut into ``ranks`` contiguous blocks, one per rank, the cuts
placed so that each block carries about the same share of the population's cost, a neuron
costing 1 + its number of incoming synapses (over every projection onto it). A rank holds the
state of its blocks and, for every projection, the synapses whose target it owns: the CSR rows
of all presynaptic neurons, filtered to its targets, in their original order.

Exactness with the one-process eager engine (`backends/torch/eager.py`): spikes reach a target
at the step ``emission + delay`` as there; the arrivals of one target are added in the order
the serial engine adds them -- emission step, then projection (network order), then
presynaptic flat index ``trial * size + neuron`` ascending, then synapse order in the row --
because every rank replays the gathered spikes of a window step by step, projection by
projection, each step's spikes sorted by flat index, through the same `eager.propagate`. The
window is the smallest delay of the network (every projection, sources' included), so no spike
is due inside the window it was emitted in. Neuron updates are elementwise and run the same
torch operations on a slice. Sources, `PoissonInput` counts and initial states are drawn by
the keyed streams of `evospike.realize` whole on every rank (identical everywhere) and sliced.

Spike exchange: each rank packs its window's spikes of the exchanged populations as int64 keys
``(offset * n_exchanged + population) * stride + flat`` into a fixed-capacity buffer whose first
entry is the true count. When a count exceeds the capacity every rank sees it in the gathered
headers, the capacity grows to the next power of two that fits, and the window is exchanged
again: nothing is dropped. ``exchange(buffer) -> list of buffers`` is the only thing a
transport provides (`gloo_exchange` in `distributed.py`, `lockstep` here for one process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.dynamics import IzhikevichStep, LinearStep
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, CubaLIF, Izhikevich
from evospike.realize import current_values
from evospike.results import Results
from evospike.run_loop import CHUNK_STEPS, ResultsBuilder

from . import eager
from .compiler import (
    NODE_COMPILERS,
    CompileContext,
    TorchConfig,
    TPoissonInput,
    TPopulation,
    TProjection,
    _t,
)
from .compiler import refusals as torch_refusals
from .runner import source_spikes

#: neuron models carried across ranks in this first version
CARRIED_MODELS = (LIF, CubaLIF, Izhikevich)
#: window length when the network has no projection (spikes are exchanged only to be recorded)
WINDOW_WITHOUT_PROJECTIONS = 100
#: events per rank and window the exchange buffers hold at first (they grow on overflow)
DEFAULT_CAPACITY = 4096

Exchange = Callable[[torch.Tensor], list[torch.Tensor]]


def rank_refusals(net: Network, precision: str = "float32", device: str = "cpu") -> list[str]:
    """What partitioned simulation does not carry yet, by name (empty: it runs)."""
    out = list(torch_refusals(net))
    for pop in net.populations.values():
        if not isinstance(pop.model, CARRIED_MODELS):
            out.append(f"population '{pop.name}': neuron model {type(pop.model).__name__} is not "
                       f"yet carried across ranks (carried: "
                       f"{', '.join(m.__name__ for m in CARRIED_MODELS)})")
    for rule in net.plasticity.values():
        out.append(f"plasticity '{rule.name}' ({type(rule).__name__}): plasticity is not yet "
                   "carried across ranks")
    for proc in net.processes.values():
        out.append(f"process '{proc.name}' ({type(proc).__name__}): processes are not yet "
                   "carried across ranks")
    for mon in net.state_monitors.values():
        out.append(f"state monitor '{mon.name}': state monitors are not yet carried across ranks")
    for mon in net.weight_monitors.values():
        out.append(f"weight monitor '{mon.name}': weight monitors are not yet carried across "
                   "ranks")
    if net.schedule != "evospike":
        out.append(f"schedule '{net.schedule}': only schedule 'evospike' (delays >= 1) is "
                   "carried across ranks")
    if precision not in ("float32", "float64"):
        out.append(f"precision '{precision}': ranks run float32 or float64")
    if device != "cpu":
        out.append(f"device '{device}': ranks run on the CPU (gloo) in this version")
    return out


def min_delay_steps(net: Network) -> int:
    """The exchange window: the smallest delay (steps) of any synapse of the network."""
    least = [int(p.delays.min()) for p in net.projections.values() if p.n_synapses]
    return min(least) if least else WINDOW_WITHOUT_PROJECTIONS


def partition_bounds(net: Network, ranks: int) -> dict[str, np.ndarray]:
    """Per population, ``ranks + 1`` cut points: rank r owns neurons [b[r], b[r+1])."""
    out = {}
    for pop in net.populations.values():
        cost = np.ones(pop.size, dtype=np.float64)
        for proj in net.projections.values():
            if proj.post == pop.name and proj.n_synapses:
                cost += np.bincount(proj.indices, minlength=pop.size)
        cum = np.concatenate([[0.0], np.cumsum(cost)])
        targets = cum[-1] * np.arange(ranks + 1) / ranks
        bounds = np.searchsorted(cum, targets, side="left").astype(np.int64)
        bounds[0], bounds[-1] = 0, pop.size
        out[pop.name] = np.maximum.accumulate(np.clip(bounds, 0, pop.size))
    return out


def _slice_population(tp: TPopulation, lo: int, hi: int) -> TPopulation:
    """``tp`` cut to neurons [lo, hi): every tensor with a neuron axis (the last) is sliced."""
    size = tp.size

    def cut(t: torch.Tensor) -> torch.Tensor:
        return t[..., lo:hi].clone() if t.shape and t.shape[-1] == size else t

    tp.consts = {k: cut(v) for k, v in tp.consts.items()}
    tp.x = cut(tp.x)
    tp.refrac = cut(tp.refrac)
    tp.spiked = cut(tp.spiked)
    tp.size = hi - lo
    return tp


def _incoming(proj, lo: int, hi: int, ctx: CompileContext) -> TProjection:
    """The synapses of ``proj`` onto targets [lo, hi), rows of every presynaptic neuron kept
    in their order (targets renumbered from 0)."""
    keep = (proj.indices >= lo) & (proj.indices < hi)
    per_row = np.add.reduceat(keep.astype(np.int64), proj.indptr[:-1]) if proj.n_synapses \
        else np.zeros(proj.n_pre, np.int64)
    per_row[np.diff(proj.indptr) == 0] = 0  # reduceat repeats a value at empty rows
    indptr = np.zeros(proj.n_pre + 1, np.int64)
    np.cumsum(per_row, out=indptr[1:])
    delays = proj.delays[keep]
    uniform = delays.size == 0 or bool(np.all(delays == delays[0]))
    max_delay = int(proj.delays.max()) if proj.n_synapses else 1
    delay_dtype = torch.int16 if max_delay < 2**15 else torch.int32
    return TProjection(
        name=proj.name, pre=proj.pre, post=proj.post, n_pre=proj.n_pre, n_post=hi - lo,
        indptr=_t(indptr, torch.int64, ctx.device),
        indices=_t(proj.indices[keep] - lo, torch.int32, ctx.device),
        weights=_t(proj.weights[keep], ctx.dtype, ctx.device),
        delays=None if uniform else _t(delays, delay_dtype, ctx.device),
        uniform_delay=int(delays[0]) if delays.size else 1, max_delay=max_delay)


@dataclass
class ExchangeStats:
    windows: int = 0
    exchanges: int = 0  # windows exchanged again after an overflow count too
    overflows: int = 0
    events: int = 0  # spikes gathered over all ranks
    exchange_s: float = 0.0  # time in the collectives (and packing/unpacking)
    capacity: int = DEFAULT_CAPACITY


@dataclass
class RankSim:
    """One rank's share of a network and its stepping. ``rank`` 0 also records spikes."""

    net: Network
    rank: int
    ranks: int
    seeds: tuple[int, ...]
    precision: str = "float32"
    capacity: int = DEFAULT_CAPACITY
    step: int = 0
    stats: ExchangeStats = field(default_factory=ExchangeStats)

    def __post_init__(self) -> None:
        problems = rank_refusals(self.net, self.precision)
        if problems:
            from evospike.errors import UnsupportedError

            raise UnsupportedError("torch --ranks", problems)
        net = self.net
        dtype = {"float32": torch.float32, "float64": torch.float64}[self.precision]
        self.dtype = dtype
        self.trials = len(self.seeds)
        ctx = CompileContext(TorchConfig(seeds=self.seeds, precision=self.precision), dtype,
                             torch.device("cpu"), self.trials)
        self.bounds = partition_bounds(net, self.ranks)
        self.lo = {name: int(b[self.rank]) for name, b in self.bounds.items()}
        self.hi = {name: int(b[self.rank + 1]) for name, b in self.bounds.items()}
        self.pops: dict[str, TPopulation] = {}
        for pop in net.populations.values():
            tp = NODE_COMPILERS.lookup(pop)(pop, net, ctx)
            self.pops[pop.name] = _slice_population(tp, self.lo[pop.name], self.hi[pop.name])
        self.sources = {src.name: NODE_COMPILERS.lookup(src)(src, net, ctx)
                        for src in net.sources.values()}
        self.projs = {p.name: _incoming(p, self.lo[p.post], self.hi[p.post], ctx)
                      for p in net.projections.values()}
        self.inputs: dict[str, TPoissonInput] = {
            inp.name: NODE_COMPILERS.lookup(inp)(inp, net, ctx) for inp in net.inputs.values()}
        from evospike.ir.nodes import CHANNELS

        # the serial compiler's buffer layout, on the local slice
        for pop in self.pops.values():
            incoming = [p for p in self.projs.values() if p.post == pop.name]
            driven = [i for i in self.inputs.values() if i.target == pop.name]
            pop.channels = sorted({CHANNELS.index(net.projections[p.name].target)
                                   for p in incoming} | {CHANNELS.index(i.node.channel)
                                                         for i in driven})
            for p in incoming:
                p.channel_slot = pop.channels.index(CHANNELS.index(
                    net.projections[p.name].target))
            for i in driven:
                i.channel_slot = pop.channels.index(CHANNELS.index(i.node.channel))
            if incoming or driven:
                slots = max([p.max_delay for p in incoming], default=0) + 1
                pop.buf = torch.zeros((slots, len(pop.channels), self.trials, pop.size),
                                      dtype=dtype)
        self.window = min_delay_steps(net)
        recorded = {m.target for m in net.spike_monitors}
        pre = {p.pre for p in net.projections.values()}
        #: populations whose spikes every rank receives (those sending, those recorded)
        self.exchanged = [name for name in net.populations if name in pre or name in recorded]
        self.stride = max([self.trials * net.populations[n].size for n in self.exchanged],
                          default=1)
        self.stats.capacity = self.capacity
        self.recorded_spikes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
            name: [] for name in (m.target for m in net.spike_monitors)}
        self._chunk = -1
        self._chunk_sources: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._chunk_currents: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ inputs
    def _inputs_of_chunk(self, step: int) -> None:
        chunk = step // CHUNK_STEPS
        if chunk == self._chunk:
            return
        start, n, dt = chunk * CHUNK_STEPS, CHUNK_STEPS, self.net.dt_ms
        self._chunk_sources = {}
        for src in self.sources.values():
            flat, ptr = source_spikes(src, self.seeds, dt, start, n)
            self._chunk_sources[src.name] = (torch.as_tensor(flat), ptr)
        self._chunk_currents = {}
        for name, pop in self.pops.items():
            if pop.currents:
                size = self.net.populations[name].size
                total = sum(current_values(c, size, dt, start, n) for c in pop.currents)
                self._chunk_currents[name] = torch.as_tensor(
                    total[:, self.lo[name]:self.hi[name]], dtype=self.dtype)
        self._chunk = chunk

    def _source_fired(self, step: int) -> dict[str, torch.Tensor]:
        self._inputs_of_chunk(step)
        k = step % CHUNK_STEPS
        return {name: flat[int(ptr[k]):int(ptr[k + 1])]
                for name, (flat, ptr) in self._chunk_sources.items()}

    # ------------------------------------------------------------------ stepping
    def _advance(self, step: int) -> dict[str, torch.Tensor]:
        """The neuron update of ``step`` on the local slice (eager.run_step's first half);
        returns the local spikes as global flat indices (trial * size + neuron)."""
        self._inputs_of_chunk(step)
        out = {}
        for name, pop in self.pops.items():
            arrivals = None
            if pop.buf is not None:
                slot = step % pop.buf.shape[0]
                arrivals = pop.buf[slot].clone()
                pop.buf[slot].zero_()
                for inp in self.inputs.values():
                    if inp.target == name:
                        arrivals[inp.channel_slot] += inp.at(step)[:, self.lo[name]:self.hi[name]]
            current = self._chunk_currents.get(name)
            current = None if current is None else current[step % CHUNK_STEPS]
            if isinstance(pop.step, LinearStep):
                eager.advance_linear(pop, arrivals, current)
            elif isinstance(pop.step, IzhikevichStep):
                eager.advance_izhikevich(pop, arrivals, current, self.net.dt_ms)
            else:  # refused before (rank_refusals)
                raise TypeError(f"population '{name}': {type(pop.step).__name__}")
            local = pop.spiked.nonzero()  # (trial, local neuron), sorted
            size = self.net.populations[name].size
            out[name] = local[:, 0] * size + local[:, 1] + self.lo[name]
        return out

    def _pack(self, window_spikes: list[dict[str, torch.Tensor]], capacity: int) -> torch.Tensor:
        n_ex = len(self.exchanged)
        keys = [(offset * n_ex + p) * self.stride + fired[name]
                for offset, fired in enumerate(window_spikes)
                for p, name in enumerate(self.exchanged)]
        keys = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.int64)
        buf = torch.zeros(capacity + 1, dtype=torch.int64)
        buf[0] = keys.numel()
        m = min(keys.numel(), capacity)
        buf[1:1 + m] = keys[:m]
        return buf

    def advance_window(self, n: int) -> list[dict[str, torch.Tensor]]:
        """The neuron updates of steps [self.step, self.step + n): local spikes per step."""
        return [self._advance(self.step + k) for k in range(n)]

    def deliver_window(self, window_spikes: list[dict[str, torch.Tensor]],
                       exchange: Exchange) -> None:
        """Exchange the window's spikes, record them (rank 0) and send them on, step by step
        as the serial engine does; the window is then done."""
        import time

        start, n = self.step, len(window_spikes)
        t0 = time.perf_counter()
        while True:
            gathered = exchange(self._pack(window_spikes, self.capacity))
            self.stats.exchanges += 1
            counts = [int(b[0]) for b in gathered]
            most = max(counts, default=0)
            if most <= self.capacity:
                break
            # every rank reads the same headers, so all grow alike and exchange again
            self.stats.overflows += 1
            self.capacity = 1 << int(np.ceil(np.log2(most)))
            self.stats.capacity = self.capacity
        keys = torch.cat([b[1:1 + c] for b, c in zip(gathered, counts, strict=True)])
        keys, _ = torch.sort(keys)
        self.stats.exchange_s += time.perf_counter() - t0
        self.stats.windows += 1
        self.stats.events += keys.numel()
        n_ex = len(self.exchanged)
        edges = torch.arange(n * n_ex + 1, dtype=torch.int64) * self.stride
        ptr = torch.searchsorted(keys, edges).tolist()
        for k in range(n):
            step = start + k
            fired = {name: keys[ptr[k * n_ex + p]:ptr[k * n_ex + p + 1]] - (k * n_ex + p)
                     * self.stride for p, name in enumerate(self.exchanged)}
            fired.update(self._source_fired(step))
            for proj in self.projs.values():
                eager.propagate(proj, fired[proj.pre], self.pops[proj.post].buf, step)
            if self.rank == 0:
                for node, log in self.recorded_spikes.items():
                    f = fired[node].numpy()
                    log.append((np.full(f.size, step, np.int64), f.astype(np.int64)))
        self.step = start + n

    def window_length(self, end: int) -> int:
        """Steps in the next window: up to the next multiple of the window, at most to end."""
        return min(self.window - self.step % self.window, end - self.step)

    def run(self, n_steps: int, exchange: Exchange,
            on_window: Callable[[RankSim], None] | None = None) -> None:
        """``n_steps`` more steps, window by window."""
        end = self.step + n_steps
        while self.step < end:
            self.deliver_window(self.advance_window(self.window_length(end)), exchange)
            if on_window is not None:
                on_window(self)

    # ------------------------------------------------------------------ results (rank 0)
    def results(self, wall_time_s: float, complete: bool, **extra: object) -> Results:
        net = self.net
        out = ResultsBuilder(
            net.name, "torch", engine="eager", engine_note=f"eager engine on {self.ranks} "
            f"rank(s), spikes exchanged every {self.window} step(s)", device="cpu",
            precision=self.precision, dt_ms=net.dt_ms, n_steps=self.step, seeds=self.seeds,
            wall_time_s=wall_time_s, complete=complete, versions={"torch": torch.__version__},
            units=net.units, schedule=net.schedule, threads=torch.get_num_threads(),
            threading=f"per rank, {self.ranks} rank process(es) exchanging spikes over gloo",
            ranks=self.ranks, exchange_window_steps=self.window,
            exchange_capacity=self.stats.capacity, exchange_overflows=self.stats.overflows,
            exchange_s_rank0=self.stats.exchange_s, **extra)
        for node, parts in self.recorded_spikes.items():
            out.spikes_flat(node, net.size_of(node), parts)
        return out.build()


def lockstep(net: Network, ranks: int, n_steps: int, seeds: Sequence[int] = (0,),
             precision: str = "float32", capacity: int = DEFAULT_CAPACITY) -> list[RankSim]:
    """All ``ranks`` partitions run in this one process, window by window; rank r's exchange
    answers with every rank's buffer packed at the capacity r asked for (the contract of
    gloo's ``all_gather``). For tests and for checking a partition without processes."""
    sims = [RankSim(net, r, ranks, tuple(seeds), precision, capacity) for r in range(ranks)]
    while sims[0].step < n_steps:
        n = sims[0].window_length(n_steps)
        spikes = [s.advance_window(n) for s in sims]
        exchange = _lockstep_exchange(sims, spikes)
        for s, w in zip(sims, spikes, strict=True):
            s.deliver_window(w, exchange)
    return sims


def _lockstep_exchange(sims: list[RankSim], spikes: list) -> Exchange:
    packed: dict[int, list[torch.Tensor]] = {}  # capacity -> every rank's buffer

    def exchange(buf: torch.Tensor) -> list[torch.Tensor]:
        cap = buf.numel() - 1
        if cap not in packed:
            packed[cap] = [s._pack(w, cap) for s, w in zip(sims, spikes, strict=True)]
        return packed[cap]

    return exchange
