"""IR -> torch tensors. One compile function per IR node kind, registered in the backend's one
registry (`backends/torch/registry.py`, ``compile_fn(node, network, ctx)``); a kind without one
is refused by name before the run, listed with every other refusal. The modules of the process
kinds register their own functions; importing them here is what fills the registry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from evospike.dynamics import (
    AdExStep,
    CondAdExStep,
    ConductanceStep,
    LinearStep,
    Step,
    one_step,
)
from evospike.errors import UnsupportedError
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, AdaptiveLIF, AdEx, CondAdEx, CondLIF, CubaLIF, Izhikevich
from evospike.ir.nodes import (
    CHANNELS,
    CurrentInput,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import STDP, RewardModulatedSTDP
from evospike.ir.schedule import ranks as schedule_ranks
from evospike.ir.timing import brian2_schedule_refusals
from evospike.realize import (
    POISSON_CHUNK_STEPS,
    current_is_constant,
    initial_state,
    poisson_input_counts,
    spike_time_steps,
)

# the modules that register the process kinds' compile functions (imported for that)
from . import apoptosis, energy_budget, gating, memory, processes, structural  # noqa: F401
from .registry import NODE_COMPILERS, CompileContext


@dataclass
class TorchConfig:
    """How the torch backend runs a network.

    ``seeds``: one seed per trial of the batch (trial b draws its initial state and Poisson
    inputs from ``seeds[b]``). ``engine``: ``"eager"`` (torch operations, any device),
    ``"native"`` (compiled multi-step CPU kernel) or ``"auto"`` (native where it can run).
    ``threads``: the most CPU threads the native kernel runs on (None: every core; the eager
    engine uses torch's own thread setting)."""

    device: str = "cpu"
    precision: str = "float32"
    seeds: tuple[int, ...] = (0,)
    engine: str = "auto"
    progress: bool = True
    threads: int | None = None


@dataclass
class TPopulation:
    name: str
    size: int
    step: Step
    x: torch.Tensor  # (k, trials, n)
    refrac: torch.Tensor  # (trials, n) int32: steps of refractoriness left
    spiked: torch.Tensor  # (trials, n) bool
    consts: dict[str, torch.Tensor]
    buf: torch.Tensor | None = None  # (delay slots, channels used, trials, n)
    channels: list[int] = field(default_factory=list)  # channel index (CHANNELS) per buf slot
    currents: list[CurrentInput] = field(default_factory=list)  # time-varying injected currents
    has_refractory: bool = False
    threshold_offset: torch.Tensor | None = None  # (trials, n): homeostatic threshold, if any
    # process name -> bool (trials, n), True where the neuron may integrate / may fire
    integrate_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    fire_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    plan: list | None = None  # eager engine: the propagator's sparsity (eager._linear_plan)


@dataclass
class TSource:
    name: str
    size: int
    node: PoissonSource | SpikeTimesSource
    fixed_steps: np.ndarray | None = None  # spike-time sources: steps and neurons, precomputed
    fixed_neurons: np.ndarray | None = None


@dataclass
class TPoissonInput:
    """A `PoissonInput`: its counts x weight are added to the ``channel_slot`` row of its
    target's arrivals, the chunk of steps in use drawn once for every trial (``drive``:
    (chunk steps, trials, size), ``chunk``: which chunk it holds, -1: none yet)."""

    node: PoissonInput
    target: str
    size: int
    seeds: tuple[int, ...]
    dt_ms: float
    dtype: torch.dtype
    device: torch.device
    channel_slot: int = 0
    chunk: int = -1
    drive: torch.Tensor | None = None

    def at(self, step: int) -> torch.Tensor:
        """(trials, size) events x weight of ``step``."""
        chunk = step // POISSON_CHUNK_STEPS
        if chunk != self.chunk:
            counts = np.stack([poisson_input_counts(self.node, self.size, seed, self.dt_ms,
                                                    chunk * POISSON_CHUNK_STEPS,
                                                    POISSON_CHUNK_STEPS)
                               for seed in self.seeds], axis=1)
            self.drive = _t(counts * self.node.weight, self.dtype, self.device)
            self.chunk = chunk
        return self.drive[step - chunk * POISSON_CHUNK_STEPS]


@dataclass
class TProjection:
    name: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    indptr: torch.Tensor  # int64 (n_pre + 1)
    indices: torch.Tensor  # int32 (nnz)
    weights: torch.Tensor  # float (nnz)
    delays: torch.Tensor | None  # int16/int32 (nnz), None when all delays equal
    uniform_delay: int
    max_delay: int
    channel_slot: int = 0  # index into the post population's buffer channels
    plastic: TPlastic | None = None  # set when a plasticity rule acts on this projection


@dataclass
class TPlastic:
    """State of an STDP rule: traces, the columns (CSC) for potentiation, and the presynaptic
    spikes still on their way to the synapses (one list per step of the delay). The rule's
    amplitudes and trace decays are per trial (metaplasticity adapts them trial by trial).
    Three-factor rules add the eligibility ``e``, one per synapse and trial."""

    rule: STDP
    decay_x: torch.Tensor  # (trials, 1)
    decay_y: torch.Tensor  # (trials, 1)
    a_plus: torch.Tensor  # (trials,)
    a_minus: torch.Tensor  # (trials,)
    x: torch.Tensor  # (trials, n_pre)
    y: torch.Tensor  # (trials, n_post)
    col_ptr: torch.Tensor  # (n_post + 1,)
    col_syn: torch.Tensor  # (synapses,) synapse ids grouped by postsynaptic neuron
    col_pre: torch.Tensor  # (synapses,) their presynaptic neurons
    pending: list[torch.Tensor]  # pending[step % delay]: flat pre indices arriving then
    eligibility: torch.Tensor | None = None  # (trials, synapses), three-factor rules
    decay_e: float = 1.0
    learning_rate_dt: float = 0.0  # learning_rate_per_ms * dt_ms

    def set_parameter(self, name: str, value: torch.Tensor, dt_ms: float) -> None:
        """Metaplasticity: the rule's ``name`` now has ``value`` (trials,) in each trial."""
        if name == "a_plus":
            self.a_plus.copy_(value)
        elif name == "a_minus":
            self.a_minus.copy_(value)
        elif name == "tau_plus_ms":
            self.decay_x.copy_(torch.exp(-dt_ms / value).unsqueeze(1))
        elif name == "tau_minus_ms":
            self.decay_y.copy_(torch.exp(-dt_ms / value).unsqueeze(1))
        else:
            raise KeyError(name)


@dataclass
class CompiledNetwork:
    network: Network
    config: TorchConfig
    dtype: torch.dtype
    device: torch.device
    populations: dict[str, TPopulation]
    sources: dict[str, TSource]
    projections: dict[str, TProjection]
    spike_monitors: list[SpikeMonitor]
    state_monitors: dict[str, StateMonitor]
    weight_monitors: dict[str, WeightMonitor]
    processes: dict[str, object] = field(default_factory=dict)  # name -> TModulator, ...
    inputs: dict[str, TPoissonInput] = field(default_factory=dict)

    @property
    def process_order(self) -> list:
        """The processes in the order they update at the end of a step: the IR's schedule
        (`evospike.ir.schedule`); the backend's own bookkeeping (no IR node) comes last."""
        rank = schedule_ranks(self.network)
        last = len(rank)
        return sorted(self.processes.values(), key=lambda proc: rank.get(proc.node.name, last))

    @property
    def plastic(self) -> list[TProjection]:
        return [p for p in self.projections.values() if p.plastic is not None]


def _t(array, dtype, device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)


# the neuron models `evospike.dynamics.one_step` updates; constant currents fold into the
# population's constants, varying ones are the runner's; monitors are the runner's
NODE_COMPILERS.carry(LIF, AdaptiveLIF, CubaLIF, Izhikevich, AdEx, CondLIF, CondAdEx)
NODE_COMPILERS.carry(CurrentInput, SpikeMonitor, StateMonitor, WeightMonitor)


@NODE_COMPILERS.register(Population)
def compile_population(pop: Population, net: Network, ctx: CompileContext) -> TPopulation:
    cfg, dtype, device = ctx.cfg, ctx.dtype, ctx.device
    step = one_step(pop.model, pop.name, net.dt_ms)
    trials = len(cfg.seeds)
    inits = [initial_state(pop, seed) for seed in cfg.seeds]
    x = np.stack([np.stack([init[s] for init in inits]) for s in step.state_names])
    consts: dict[str, torch.Tensor] = {}
    if isinstance(step, LinearStep):
        q, P, G = step.q.copy(), step.P, step.G
        for cur in net.currents.values():
            if cur.target == pop.name and current_is_constant(cur):
                q = q + G * np.broadcast_to(np.asarray(cur.amplitude), (pop.size,))
        if q.shape[-1] != P.shape[-1]:
            # a constant current made q per neuron: P and G follow, so that every constant
            # has the same layout (the native kernel reads them all with one stride)
            P = np.broadcast_to(P, P.shape[:-1] + q.shape[-1:])
            G = np.broadcast_to(G, G.shape[:-1] + q.shape[-1:])
        consts.update(P=_t(P, dtype, device), q=_t(q, dtype, device),
                      G=_t(G, dtype, device), v_thresh=_t(step.v_thresh, dtype, device),
                      v_reset=_t(step.v_reset, dtype, device))
        if step.theta_jump is not None:
            consts["theta_jump"] = _t(step.theta_jump, dtype, device)
        consts["hold_steps"] = _t(step.hold_steps, torch.int32, device)
        has_refractory = bool(np.any(step.hold_steps > 0))
    elif isinstance(step, ConductanceStep):
        # CondLIF / CondAdEx: constant injected currents (pA) fold into I_e, as for AdEx
        i_e = np.broadcast_to(step.I_e, (pop.size,)).copy()
        for cur in net.currents.values():
            if cur.target == pop.name and current_is_constant(cur):
                i_e = i_e + np.broadcast_to(np.asarray(cur.amplitude), (pop.size,))
        keys = ["C", "g_L", "E_L", "E_exc", "E_inh", "v_thresh", "v_reset", "dt_over_C",
                "decay_exc", "decay_inh"]
        if isinstance(step, CondAdExStep):
            keys += ["V_T", "Delta_T", "a", "tau_w", "b", "v_peak"]
        for key in keys:
            consts[key] = _t(getattr(step, key), dtype, device)
        consts["I_e"] = _t(i_e, dtype, device)
        consts["hold_steps"] = _t(step.hold_steps, torch.int32, device)
        has_refractory = bool(np.any(step.hold_steps > 0))
    elif isinstance(step, AdExStep):
        # constant injected currents fold into I_e, as into Izhikevich's i_bias below
        i_e = np.broadcast_to(step.I_e, (pop.size,)).copy()
        for cur in net.currents.values():
            if cur.target == pop.name and current_is_constant(cur):
                i_e = i_e + np.broadcast_to(np.asarray(cur.amplitude), (pop.size,))
        for key in ("C", "g_L", "E_L", "V_T", "Delta_T", "a", "tau_w", "b", "v_reset",
                    "v_peak", "decay_exc", "decay_inh"):
            consts[key] = _t(getattr(step, key), dtype, device)
        consts["I_e"] = _t(i_e, dtype, device)
        consts["hold_steps"] = _t(step.hold_steps, torch.int32, device)
        has_refractory = bool(np.any(step.hold_steps > 0))
    else:
        i_bias = np.broadcast_to(step.i_bias, (pop.size,)).copy()
        for cur in net.currents.values():
            if cur.target == pop.name and current_is_constant(cur):
                i_bias = i_bias + np.broadcast_to(np.asarray(cur.amplitude), (pop.size,))
        for key in ("a", "b", "c", "d", "v_peak", "decay_exc", "decay_inh"):
            consts[key] = _t(getattr(step, key), dtype, device)
        consts["i_bias"] = _t(i_bias, dtype, device)
        has_refractory = False
    currents = [c for c in net.currents.values()
                if c.target == pop.name and not current_is_constant(c)]
    return TPopulation(
        name=pop.name, size=pop.size, step=step, x=_t(x, dtype, device),
        refrac=torch.zeros((trials, pop.size), dtype=torch.int32, device=device),
        spiked=torch.zeros((trials, pop.size), dtype=torch.bool, device=device),
        consts=consts, currents=currents, has_refractory=has_refractory,
    )


@NODE_COMPILERS.register(PoissonSource, SpikeTimesSource)
def compile_source(src, net: Network, ctx: CompileContext) -> TSource:
    out = TSource(src.name, src.size, src)
    if isinstance(src, SpikeTimesSource):
        out.fixed_steps, out.fixed_neurons = spike_time_steps(src, net.dt_ms)
    return out


@NODE_COMPILERS.register(PoissonInput)
def compile_poisson_input(inp: PoissonInput, net: Network, ctx: CompileContext) -> TPoissonInput:
    return TPoissonInput(inp, inp.target, net.populations[inp.target].size,
                         tuple(ctx.cfg.seeds), net.dt_ms, ctx.dtype, ctx.device)


@NODE_COMPILERS.register(Projection)
def compile_projection(proj: Projection, net: Network, ctx: CompileContext) -> TProjection:
    device = ctx.device
    delays = proj.delays
    uniform = proj.n_synapses == 0 or bool(np.all(delays == delays[0]))
    max_delay = int(delays.max()) if proj.n_synapses else 1
    delay_dtype = torch.int16 if max_delay < 2**15 else torch.int32
    return TProjection(
        name=proj.name, pre=proj.pre, post=proj.post, n_pre=proj.n_pre, n_post=proj.n_post,
        indptr=_t(proj.indptr, torch.int64, device),
        indices=_t(proj.indices, torch.int32, device),
        weights=_t(proj.weights, ctx.dtype, device),
        delays=None if uniform else _t(delays, delay_dtype, device),
        uniform_delay=int(delays[0]) if proj.n_synapses else 1, max_delay=max_delay,
    )


@NODE_COMPILERS.register(STDP, RewardModulatedSTDP)
def compile_stdp(rule: STDP, net: Network, ctx: CompileContext) -> TPlastic:
    """The rule's state on its projection (compiled already); the weights become per trial
    (each trial learns on its own); traces start at zero."""
    ir_proj = net.projections[rule.projection]
    proj, trials, dtype, device = ctx.projections[rule.projection], ctx.trials, ctx.dtype, \
        ctx.device
    proj.weights = proj.weights.unsqueeze(0).repeat(trials, 1).contiguous()
    order = np.argsort(ir_proj.indices, kind="stable")
    col_ptr = np.zeros(ir_proj.n_post + 1, dtype=np.int64)
    np.cumsum(np.bincount(ir_proj.indices, minlength=ir_proj.n_post), out=col_ptr[1:])
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    def per_trial(value: float, shape=(trials,)) -> torch.Tensor:
        return torch.full(shape, value, dtype=dtype, device=device)

    plastic = TPlastic(
        rule=rule, decay_x=per_trial(np.exp(-net.dt_ms / rule.tau_plus_ms), (trials, 1)),
        decay_y=per_trial(np.exp(-net.dt_ms / rule.tau_minus_ms), (trials, 1)),
        a_plus=per_trial(rule.a_plus), a_minus=per_trial(rule.a_minus),
        x=torch.zeros((trials, ir_proj.n_pre), dtype=dtype, device=device),
        y=torch.zeros((trials, ir_proj.n_post), dtype=dtype, device=device),
        col_ptr=_t(col_ptr, torch.int64, device), col_syn=_t(order, torch.int64, device),
        col_pre=_t(ir_proj.pre_indices()[order], torch.int64, device),
        pending=[empty] * proj.uniform_delay,
    )
    if isinstance(rule, RewardModulatedSTDP):
        plastic.eligibility = torch.zeros_like(proj.weights)
        plastic.decay_e = float(np.exp(-net.dt_ms / rule.tau_eligibility_ms))
        plastic.learning_rate_dt = rule.learning_rate_per_ms * net.dt_ms
    return plastic


def refusals(net: Network) -> list[str]:
    """Every node this backend cannot carry, with the reason (empty: it runs)."""
    return NODE_COMPILERS.refusals(net) + brian2_schedule_refusals(net)


def compile_network(net: Network, cfg: TorchConfig) -> CompiledNetwork:
    problems = refusals(net)
    if problems:
        raise UnsupportedError("torch", problems)
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.precision]
    trials = len(cfg.seeds)
    ctx = CompileContext(cfg, dtype, torch.device(cfg.device), trials)
    device = ctx.device
    pops, srcs, projs = ctx.populations, ctx.sources, ctx.projections
    for field_name, out in (("populations", pops), ("sources", srcs), ("projections", projs)):
        for node in getattr(net, field_name).values():
            out[node.name] = NODE_COMPILERS.lookup(node)(node, net, ctx)
    for rule in net.plasticity.values():
        projs[rule.projection].plastic = NODE_COMPILERS.lookup(rule)(rule, net, ctx)
    inputs = {inp.name: NODE_COMPILERS.lookup(inp)(inp, net, ctx) for inp in net.inputs.values()}
    # One ring buffer per population: a slot per delay step, a row per channel in use (a
    # PoissonInput's events arrive in the step they are drawn for, through the same rows).
    for pop in pops.values():
        incoming = [p for p in projs.values() if p.post == pop.name]
        driven = [i for i in inputs.values() if i.target == pop.name]
        pop.channels = sorted({CHANNELS.index(net.projections[p.name].target) for p in incoming}
                              | {CHANNELS.index(i.node.channel) for i in driven})
        for p in incoming:
            p.channel_slot = pop.channels.index(CHANNELS.index(net.projections[p.name].target))
        for i in driven:
            i.channel_slot = pop.channels.index(CHANNELS.index(i.node.channel))
        if incoming or driven:
            slots = max([p.max_delay for p in incoming], default=0) + 1
            pop.buf = torch.zeros((slots, len(pop.channels), trials, pop.size), dtype=dtype,
                                  device=device)
    procs = {name: NODE_COMPILERS.lookup(node)(node, net, ctx)
             for name, node in net.processes.items()}
    return CompiledNetwork(net, cfg, dtype, device, pops, srcs, projs, list(net.spike_monitors),
                           dict(net.state_monitors), dict(net.weight_monitors), procs, inputs)
