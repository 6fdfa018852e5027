"""IR -> a plain description of Lava processes (the job file the worker builds them from).

One checker per IR node kind, in the backend's one registry (`NODE_COMPILERS`, with one
signature: ``check(node, network, select_tag) -> reasons it cannot be carried``); a node kind
without one, or a node its checker rejects, is listed by `refusals` before anything runs. What
maps:

- `CubaLIF` population -> Lava ``LIF`` (``LIFRefractory`` for a refractory period of two steps
  or more; Lava 0.10 has it only in floating point, so in fixed_pt the worker runs it with
  Lava's bit-accurate LIF arithmetic plus that refractory rule, see
  ``worker.refractory_bit_accurate_model``). Plain `LIF` populations are first converted
  (`convert.to_loihi_lif`). In fixed_pt the integers come from `evospike.fixed_point`
  (`fixed.plan_fixed`).
- `Projection` -> ``Sparse`` (every delay one step) or ``DelaySparse`` (Lava delay = ours - 1:
  Lava's connections already take one step).
- `PoissonSource`, `SpikeTimesSource` -> ``io.source.RingBuffer`` fed with the spikes EvoSpike
  draws (`evospike.realize`), so every backend sees the same inputs.
- constant `CurrentInput` -> added to the neurons' bias.
- `SpikeMonitor` -> ``io.sink.RingBuffer``; `StateMonitor` of ``u`` / ``v`` -> ``io.sink.Read``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evospike.hardware.loihi import learning, three_factor
from evospike.hardware.loihi.constants import MAX_LAVA_DELAY
from evospike.ir.modulators import Modulator
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, AdaptiveLIF, AdEx, CondAdEx, CondLIF, CubaLIF, Izhikevich
from evospike.ir.nodes import (
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
from evospike.realize import current_is_constant, initial_state, poisson_events, spike_time_steps
from evospike.registry import Registry
from evospike.units import steps_of

SELECT_TAGS = ("fixed_pt", "floating_pt")

#: IR node kind -> check(node, network, select_tag) -> reasons it cannot be carried
NODE_COMPILERS = Registry("lava", "compiler")
#: Loihi 2 axonal delay range: DelaySparse's fixed-point model accepts Lava delays 0..63
MAX_LAVA_DELAY_FIXED = MAX_LAVA_DELAY


@dataclass
class LavaConfig:
    """How the Lava backend runs a network.

    ``select_tag``: ``"fixed_pt"`` (Lava's bit-accurate model of Loihi 2, the default) or
    ``"floating_pt"``. ``seeds``: one per trial (trials run one after another in the worker).
    ``timeout_s``: the worker is killed (with its children) after this many seconds (None: no
    limit). ``chunk_steps``: steps per Lava ``run`` call (inputs are loaded and outputs read
    back between chunks). ``merge_synapses``: allow the charge-preserving merge of unequal
    synaptic time constants when converting plain LIF (see `convert`). ``cache_delay_weights``:
    run DelaySparse with its delay-weight matrix built once instead of every step (the same
    arithmetic, see ``worker.cached_delay_models``); False runs Lava's models untouched.
    ``plastic_weight_range``: how a plastic projection's 8-bit weights are sized ("w_max":
    to span [0, w_max] exactly; "initial": from the initial weights)."""

    select_tag: str = "fixed_pt"
    seeds: tuple[int, ...] = (0,)
    progress: bool = True
    timeout_s: float | None = None
    chunk_steps: int = 500
    merge_synapses: bool = True
    cache_delay_weights: bool = True
    #: STDP / R-STDP: "w_max" (the 8-bit weights span [0, w_max]) or "initial" (sized from
    #: the initial weights), see `evospike.hardware.loihi.learning`
    plastic_weight_range: str = "w_max"
    device: str = "cpu"  # Lava's simulation runs on the CPU; anything else is refused


@dataclass
class LavaPopulation:
    name: str
    size: int
    process: str  # "LIF" | "LIFRefractory"
    refractory_period: int
    du: float
    dv: float
    vth: float
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    initial: Callable[[int], dict[str, np.ndarray]]  # seed -> {"u", "v"} in Lava's units
    v_offset: np.ndarray  # added to Lava's v to give the IR's v (floating_pt)


@dataclass
class LavaConnection:
    name: str  # Lava connection name (a projection may split into several)
    projection: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    post_idx: np.ndarray
    pre_idx: np.ndarray
    weights: np.ndarray
    delays: np.ndarray  # Lava delays (ours - 1)
    weight_exp: int = 0
    num_weight_bits: int = 8
    learning: object = None  # learning.LearningPlan (STDP, R-STDP): evospike.hardware.loihi

    @property
    def process(self) -> str:
        return "DelaySparse" if self.delays.size and self.delays.max() > 0 else "Sparse"


@dataclass
class Plan:
    """Everything the worker needs, before the per-trial parts are realised."""

    network: Network  # the network as Lava runs it (after conversion)
    select_tag: str
    populations: dict[str, LavaPopulation] = field(default_factory=dict)
    connections: list[LavaConnection] = field(default_factory=list)
    sources: dict[str, PoissonSource | SpikeTimesSource] = field(default_factory=dict)
    components: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: fixed_pt: integer units per unit of v (and u) of each population
    scales: dict[str, float] = field(default_factory=dict)

    def source_events(self, name: str, seed: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        src = self.sources[name]
        if isinstance(src, PoissonSource):
            return poisson_events(src, seed, self.network.dt_ms, 0, n_steps)
        steps, neurons = spike_time_steps(src, self.network.dt_ms)
        keep = steps < n_steps
        return steps[keep], neurons[keep]


# --------------------------------------------------------------------------- checkers
def _refractory_steps(model: CubaLIF, pop: str, dt_ms: float) -> np.ndarray:
    taus = np.atleast_1d(np.asarray(model.tau_refrac_ms, dtype=np.float64))
    return np.array([steps_of(float(t), dt_ms, "Population", pop, "CubaLIF.tau_refrac_ms")
                     for t in taus])


# neuron models: CubaLIF is Lava's LIF; plain LIF is converted to it before the check (in
# fixed_pt evospike.fixed_point reduces it exactly, or refuses it naming why)
NODE_COMPILERS.carry(CubaLIF, LIF)
NODE_COMPILERS.refuse(AdaptiveLIF, "adaptive thresholds have no Lava LIF counterpart")
NODE_COMPILERS.refuse(Izhikevich, "Lava has no Izhikevich neuron process")
NODE_COMPILERS.refuse(AdEx, "Lava has no adaptive exponential integrate-and-fire process")
for _cond in (CondLIF, CondAdEx):
    NODE_COMPILERS.refuse(_cond, "conductance synapses: Loihi 2 has no reversal-potential "
                          "(conductance-based) synapse, its LIF adds current only")
NODE_COMPILERS.refuse(PoissonInput, "Lava has no process that adds per-step afferent counts "
                      "to a neuron (use a PoissonSource with one neuron per afferent)")


@NODE_COMPILERS.register(Population)
def _check_population(pop: Population, net: Network, tag: str) -> list[str]:
    model = pop.model
    if type(model) is not CubaLIF:
        # plain LIF: fixed_pt reduces it (evospike.fixed_point); floating_pt converts it
        # first (convert.to_loihi_lif); another kind is refused by the registry, by name
        if type(model) is LIF and tag != "fixed_pt":
            return [f"Population '{pop.name}': LIF neurons (Lava's LIF process is the "
                    "CUBA-LIF neuron)"]
        if type(model) is LIF and model.reset != "value":
            # the fixed_pt reduction would refuse it too; listed here so refusals() is complete
            return [f"Population '{pop.name}': reset='{model.reset}' (Lava's LIF resets the "
                    "voltage to a value)"]
        return []
    out = []
    for name in ("du", "dv"):
        arr = np.atleast_1d(np.asarray(getattr(model, name), dtype=np.float64))
        if not np.all(arr == arr[0]):
            out.append(f"Population '{pop.name}': CubaLIF.{name} differs between neurons "
                       "(Lava's LIF has one decay per population)")
    span = np.atleast_1d(np.asarray(model.v_thresh, float) - np.asarray(model.v_reset, float))
    if not np.all(span == span[0]):
        out.append(f"Population '{pop.name}': v_thresh - v_reset differs between neurons "
                   "(Lava's LIF has one threshold per population)")
    if model.reset != "value":
        out.append(f"Population '{pop.name}': reset='{model.reset}' (Lava's LIF resets the "
                   "voltage to a value)")
    steps = _refractory_steps(model, pop.name, net.dt_ms)
    if not np.all(steps == steps[0]):
        out.append(f"Population '{pop.name}': tau_refrac_ms differs between neurons (Lava's "
                   "LIFRefractory has one refractory period per population)")
    return out


@NODE_COMPILERS.register(Projection)
def _check_projection(proj: Projection, net: Network, tag: str) -> list[str]:
    out = []
    if proj.target == "v" and proj.n_synapses:
        out.append(f"Projection '{proj.name}': target channel 'v' (Lava's LIF takes synaptic "
                   "input only into its current u)")
    if tag == "fixed_pt" and proj.n_synapses and proj.delays.max() - 1 > MAX_LAVA_DELAY_FIXED:
        out.append(f"Projection '{proj.name}': a delay of {int(proj.delays.max())} steps "
                   f"(Loihi 2 delays reach {MAX_LAVA_DELAY_FIXED + 1} steps)")
    return out


@NODE_COMPILERS.register(PoissonSource, SpikeTimesSource)
def _check_source(src, net: Network, tag: str) -> list[str]:
    return []


@NODE_COMPILERS.register(CurrentInput)
def _check_current(cur: CurrentInput, net: Network, tag: str) -> list[str]:
    if current_is_constant(cur):
        return []
    return [f"CurrentInput '{cur.name}': a current that changes over time (Lava's LIF takes a "
            "constant bias; only constant currents from time 0 map onto it)"]


@NODE_COMPILERS.register(SpikeMonitor)
def _check_spike_monitor(mon: SpikeMonitor, net: Network, tag: str) -> list[str]:
    return []


@NODE_COMPILERS.register(StateMonitor)
def _check_state_monitor(mon: StateMonitor, net: Network, tag: str) -> list[str]:
    if isinstance(net.processes.get(mon.target), Modulator) and mon.variable == "level":
        return []  # RewardModulatedSTDP: computed on the host (three_factor)
    if mon.variable not in ("u", "v"):
        return [f"StateMonitor '{mon.name}': variable '{mon.variable}' (Lava's LIF exposes u "
                "and v)"]
    return []


# STDP (evospike.hardware.loihi.learning): LearningDense with a Loihi2FLearningRule;
# RewardModulatedSTDP (evospike.hardware.loihi.three_factor): Loihi3FLearningRule, the reward
# sent by the post-synaptic neuron, fixed_pt
NODE_COMPILERS.register(STDP, RewardModulatedSTDP)(learning.stdp_refusals)
NODE_COMPILERS.register(WeightMonitor)(learning.weight_monitor_refusals)
NODE_COMPILERS.register(Modulator)(three_factor.modulator_refusals)


def refusals(network: Network, select_tag: str = "fixed_pt") -> list[str]:
    """Every node of ``network`` (as Lava would run it) that the backend cannot carry, and why:
    kinds it has no checker for, by name, then what each node's checker rejects."""
    out = NODE_COMPILERS.refusals(network)
    for node in network.nodes():
        if NODE_COMPILERS.carries(node):
            check = NODE_COMPILERS.lookup(node)
            if check is not None:
                out.extend(check(node, network, select_tag))
    return out


# --------------------------------------------------------------------------- planning
def _components(network: Network) -> dict[str, int]:
    """Connected parts of the graph of populations and sources (each runs as its own Lava
    network: Lava runs only what is connected to the process it is started from)."""
    parent = {name: name for name in list(network.populations) + list(network.sources)}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for proj in network.projections.values():
        parent[root(proj.pre)] = root(proj.post)
    roots: dict[str, int] = {}
    return {name: roots.setdefault(root(name), len(roots)) for name in parent}


def split_unique(proj: Projection) -> list[np.ndarray]:
    """Synapse index groups in which every (pre, post) pair occurs once: a Lava connection
    matrix holds one weight and one delay per pair."""
    pre = proj.pre_indices()
    post = proj.indices.astype(np.int64)
    if pre.size == 0:
        return [np.arange(0)]
    key = pre * proj.n_post + post
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(key.size), 0))
    rank = np.empty(key.size, dtype=np.int64)
    rank[order] = np.arange(key.size) - group_start
    return [np.nonzero(rank == r)[0] for r in range(int(rank.max()) + 1)]


def plan_float(network: Network, notes: list[str]) -> Plan:
    """The floating_pt description of a network of CubaLIF populations."""
    plan = Plan(network, "floating_pt", notes=list(notes))
    dt = network.dt_ms
    for pop in network.populations.values():
        m: CubaLIF = pop.model  # type: ignore[assignment]
        n = pop.size
        du = float(np.ravel(m.du)[0])
        dv = float(np.ravel(m.dv)[0])
        v_reset = np.broadcast_to(np.asarray(m.v_reset, dtype=np.float64), (n,)).copy()
        # Lava's LIF resets to 0: run v - v_reset, whose rest-free update gains -dv * v_reset
        bias = np.broadcast_to(np.asarray(m.bias, dtype=np.float64), (n,)) - dv * v_reset
        for cur in network.currents.values():
            if cur.target == pop.name:
                bias = bias + np.broadcast_to(np.asarray(cur.amplitude, float), (n,))
        steps = int(_refractory_steps(m, pop.name, dt)[0])
        vth = float(np.ravel(np.asarray(m.v_thresh, float) - np.asarray(m.v_reset, float))[0])

        def initial(seed: int, pop=pop, v_reset=v_reset) -> dict[str, np.ndarray]:
            state = initial_state(pop, seed)
            return {"u": state["u"], "v": state["v"] - v_reset}

        plan.populations[pop.name] = LavaPopulation(
            pop.name, n, "LIFRefractory" if steps >= 2 else "LIF", max(steps - 1, 1), du, dv,
            vth, np.ascontiguousarray(bias, dtype=np.float64), np.zeros(n), initial, v_reset)
    _plan_common(plan, network, {})
    return plan


def _plan_common(plan: Plan, network: Network, fixed_weights: dict) -> None:
    """Connections, sources and components (shared by both select tags). ``fixed_weights``
    maps a projection to (integer weights, weight_exp, num_weight_bits, delays in steps) in
    fixed_pt."""
    for proj in network.projections.values():
        if not proj.n_synapses:
            continue
        weights, weight_exp, bits, delays = fixed_weights.get(
            proj.name, (proj.weights, 0, 8, proj.delays))
        pre = proj.pre_indices()
        groups = split_unique(proj)
        for k, idx in enumerate(groups):
            plan.connections.append(LavaConnection(
                proj.name if len(groups) == 1 else f"{proj.name}#{k}", proj.name, proj.pre,
                proj.post, proj.n_pre, proj.n_post, proj.indices[idx].astype(np.int64),
                pre[idx], np.asarray(weights)[idx], np.asarray(delays)[idx].astype(np.int64) - 1,
                int(weight_exp), int(bits)))
    plan.sources = dict(network.sources)
    plan.components = _components(network)
