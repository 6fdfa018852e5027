"""IR -> NEST 3.10 objects. One builder per IR node kind (`backends/nest/registry.py`); every
node NEST cannot carry, or cannot carry with EvoSpike's semantics, is listed by `refusals`
before anything is built.

The mapping, and why it is exact (checked against NEST's sources, models/iaf_psc_exp.cpp,
iaf_psc_delta.cpp and izhikevich.cpp, and by experiment):

- ``LIF`` with input on ``exc``/``inh`` (or none) -> ``iaf_psc_exp``; with input on ``v`` only
  -> ``iaf_psc_delta``. Parameters: ``E_L = v_rest_mV``, ``V_reset``, ``V_th``, ``tau_m``,
  ``tau_syn_ex/in``, and ``C_m = tau_m`` (pF, numerically): our currents are R*I in mV
  (``tau_m dv/dt = v_rest - v + i``), NEST's are pA (``dV/dt = (E_L - V)/tau_m + I/C_m``), so
  ``I[pA] = i[mV] * C_m / tau_m`` and with ``C_m = tau_m`` a weight, a bias and an injected
  current keep their numbers (1 mV -> 1 pA). Both integrate exactly, from the state at the
  start of the step, then add the step's arrivals before the threshold.
- Timing: a spike of step n is stamped (n+1) dt in NEST and, with delay d dt, read in NEST's
  update of step n + d (``get_rel_delivery_steps``) after the state was propagated, before the
  threshold: EvoSpike's arrival step. A generator spike stamped (n+1) dt stands for a source
  spike of step n.
- Refractoriness: NEST holds V_m for ``t_ref / dt`` steps after the spike step; EvoSpike holds
  it for R - 1 (R = tau_refrac / dt, `evospike.dynamics`), so ``t_ref = (R - 1) dt``. Synaptic
  currents evolve during it in both; ``iaf_psc_delta`` drops ``v`` events arriving while
  refractory (``refractory_input = False``), as EvoSpike does.
- Threshold: NEST fires at ``V_m >= V_th``, EvoSpike at ``v > v_thresh``: they differ only
  when a voltage equals the threshold exactly.
- NEST routes an event to the excitatory or inhibitory current by the sign of its weight, not
  by a channel: a population whose two synaptic time constants differ is carried only when
  every ``exc`` weight is >= 0 and every ``inh`` weight is <= 0.
- ``Izhikevich`` -> ``izhikevich`` (``consistent_integration = True``: forward Euler from the
  state at the start of the step, events added to ``v``): ours, for input on ``v`` only.
- ``CondLIF`` -> ``iaf_cond_exp``, ``CondAdEx`` -> ``aeif_cond_exp``: the same units (pF, nS,
  mV, pA), the same event timing (added to g after the step's integration), inhibitory
  increments negated (NEST routes by sign). Not step for step: NEST integrates with adaptive
  RKF45 (`CONDUCTANCE_MODELS`); ``NestConfig.step_exact`` refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
from evospike.realize import (
    current_is_constant,
    current_values,
    initial_state,
    poisson_input_counts,
    spike_time_steps,
)
from evospike.units import steps_of

from .registry import NODE_BUILDERS

#: NEST's time grid: 1000 tics per ms (its default); dt must be a whole number of tics
TIC_MS = 1e-3


@dataclass
class NestConfig:
    """How the NEST backend runs a network. ``seeds``: one per trial (every trial is a copy of
    the network inside one NEST kernel); ``threads``: NEST's ``local_num_threads``."""

    seeds: tuple[int, ...] = (0,)
    progress: bool = True
    threads: int = 1
    device: str = "cpu"  # NEST's wheel runs on the CPU; anything else is refused
    precision: str = "float64"  # NEST computes in double precision; anything else is refused
    engine: str = "auto"  # the torch backend's notion; only "auto" is accepted here
    #: refuse the models NEST integrates differently from EvoSpike (CondLIF, CondAdEx: GSL's
    #: adaptive RKF45 against our one step per dt), so that every run agrees step for step;
    #: the conformance column sets it, `validate` and `run` do not (they compare statistics)
    step_exact: bool = False


@dataclass
class Trial:
    """One trial's NEST nodes (global ids) and recording devices."""

    seed: int
    pops: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, object] = field(default_factory=dict)  # source -> spike_generators
    source_ids: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, object] = field(default_factory=dict)  # PoissonInput -> generators
    spike_recorders: dict[str, object] = field(default_factory=dict)
    multimeters: dict[str, object] = field(default_factory=dict)


# ------------------------------------------------------------------ what maps to what
#: StateMonitor variable -> NEST recordable, per NEST model
RECORDABLES = {
    "iaf_psc_exp": {"v": "V_m", "i_exc": "I_syn_ex", "i_inh": "I_syn_in"},
    "iaf_psc_delta": {"v": "V_m"},
    "izhikevich": {"v": "V_m", "u": "U_m"},
    "iaf_cond_exp": {"v": "V_m", "g_exc": "g_ex", "g_inh": "g_in"},
    "aeif_cond_exp": {"v": "V_m", "w_adapt": "w", "g_exc": "g_ex", "g_inh": "g_in"},
}

#: conductance models: the NEST model and why it is not step for step ours
CONDUCTANCE_MODELS = {
    CondLIF: ("iaf_cond_exp", "NEST integrates iaf_cond_exp with GSL's adaptive RKF45 "
              "(absolute tolerance 1e-3), EvoSpike by exponential Euler with the step-start "
              "conductances (error up to 0.2 mV on the COBA cell): statistical agreement only"),
    CondAdEx: ("aeif_cond_exp", "NEST integrates aeif_cond_exp with GSL's adaptive RKF45 "
               "(tolerance 1e-6) and detects the spike inside the step, EvoSpike by one "
               "forward-Euler step per dt: statistical agreement only"),
}


def input_channels(net: Network, pop: str) -> set[str]:
    """The channels on which ``pop`` receives events (projections and Poisson inputs)."""
    out = {p.target for p in net.projections.values() if p.post == pop}
    return out | {i.channel for i in net.inputs.values() if i.target == pop}


def nest_model(pop: Population, net: Network) -> str:
    """The NEST model that carries ``pop`` (call after `refusals` found nothing)."""
    if isinstance(pop.model, Izhikevich):
        return "izhikevich"
    if type(pop.model) in CONDUCTANCE_MODELS:
        return CONDUCTANCE_MODELS[type(pop.model)][0]
    return "iaf_psc_delta" if "v" in input_channels(net, pop.name) else "iaf_psc_exp"


def _per_neuron(value, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (size,))


def hold_steps(model: LIF | CondLIF | CondAdEx, pop: str, dt_ms: float) -> np.ndarray:
    """Steps after the spike step in which v is held (R - 1), per neuron."""
    taus = np.atleast_1d(np.asarray(model.tau_refrac_ms, dtype=np.float64))
    steps = np.array([steps_of(float(t), dt_ms, "Population", pop, f"{model.kind}.tau_refrac_ms")
                      for t in taus], dtype=np.float64)
    return np.maximum(steps - 1.0, 0.0)


def population_params(pop: Population, net: Network) -> dict[str, np.ndarray]:
    """NEST parameters of ``pop``, one value per neuron (see the module docstring)."""
    m, n = pop.model, pop.size
    constant = np.zeros(n)
    for cur in net.currents.values():
        if cur.target == pop.name and current_is_constant(cur):
            constant = constant + _per_neuron(cur.amplitude, n)
    if isinstance(m, Izhikevich):
        params = {"a": m.a, "b": m.b, "c": m.c_mV, "d": m.d, "V_th": m.v_peak_mV,
                  "I_e": _per_neuron(m.i_bias, n) + constant}
    elif isinstance(m, (CondLIF, CondAdEx)):
        # the same units on both sides (pF, nS, mV, pA, ms): every number carries over
        params = {"C_m": m.C_pF, "g_L": m.g_L_nS, "E_L": m.E_L_mV, "V_reset": m.V_reset_mV,
                  "E_ex": m.E_exc_mV, "E_in": m.E_inh_mV, "tau_syn_ex": m.tau_syn_exc_ms,
                  "tau_syn_in": m.tau_syn_inh_ms,
                  "t_ref": hold_steps(m, pop.name, net.dt_ms) * net.dt_ms,
                  "I_e": _per_neuron(m.I_e_pA, n) + constant}
        if isinstance(m, CondLIF):
            params["V_th"] = m.V_th_mV
        else:
            params.update(V_th=m.V_T_mV, V_peak=m.V_peak_mV, Delta_T=m.Delta_T_mV, a=m.a_nS,
                          b=m.b_pA, tau_w=m.tau_w_ms)
    else:
        params = {"E_L": m.v_rest_mV, "V_reset": m.v_reset_mV, "V_th": m.v_thresh_mV,
                  "tau_m": m.tau_m_ms, "C_m": m.tau_m_ms,
                  "t_ref": hold_steps(m, pop.name, net.dt_ms) * net.dt_ms,
                  "I_e": _per_neuron(m.i_bias_mV, n) + constant}
        if nest_model(pop, net) == "iaf_psc_exp":
            params.update(tau_syn_ex=m.tau_syn_exc_ms, tau_syn_in=m.tau_syn_inh_ms)
    return {k: _per_neuron(v, n) for k, v in params.items()}


def varying_current_table(net: Network, pop: Population) -> np.ndarray | None:
    """The summed time-varying injected current of ``pop`` over every step in which it can
    change, plus one: shape (steps, size); None when it has none."""
    varying = [c for c in net.currents.values()
               if c.target == pop.name and not current_is_constant(c)]
    if not varying:
        return None
    dt = net.dt_ms
    horizon = 2
    for cur in varying:
        first = int(np.ceil(cur.start_ms / dt - 1e-9))
        if cur.series is not None:
            horizon = max(horizon, first + cur.series.shape[0] + 1)
        else:
            last = first if cur.stop_ms is None else int(np.ceil(cur.stop_ms / dt - 1e-9))
            horizon = max(horizon, first + 1, last + 1)
    return sum(current_values(c, pop.size, dt, 0, horizon) for c in varying)


# ------------------------------------------------------------------ refusals
def _sign_problems(net: Network, pop: Population) -> list[str]:
    """NEST's iaf_psc_exp picks the excitatory or inhibitory current by the weight's sign."""
    m = pop.model
    if np.all(np.asarray(m.tau_syn_exc_ms) == np.asarray(m.tau_syn_inh_ms)):
        return []  # the two currents are one: the routing cannot matter
    out = []
    wrong = {"exc": lambda w: w < 0, "inh": lambda w: w > 0}
    for proj in net.projections.values():
        if proj.post == pop.name and proj.target in wrong and np.any(
                wrong[proj.target](proj.weights)):
            out.append(f"Projection '{proj.name}': {proj.target} weights of sign "
                       f"{'-' if proj.target == 'exc' else '+'} onto '{pop.name}' (NEST's "
                       "iaf_psc_exp routes an event to its excitatory or inhibitory current by "
                       "the sign of the weight, and the two time constants of "
                       f"'{pop.name}' differ)")
    for inp in net.inputs.values():
        if inp.target == pop.name and inp.channel in wrong and wrong[inp.channel](inp.weight):
            out.append(f"PoissonInput '{inp.name}': weight {inp.weight} on channel "
                       f"'{inp.channel}' has the other channel's sign (NEST routes events by "
                       "the sign of the weight)")
    return out


def _initial_current_problems(pop: Population, states: tuple[str, ...]) -> list[str]:
    out = []
    for state in states:
        value = pop.initial.get(state, 0.0)
        if hasattr(value, "draw") or np.any(np.asarray(value) != 0.0):
            out.append(f"Population '{pop.name}': initial {state} other than 0 (NEST's "
                       f"{nest_model_name(pop)} cannot set its synaptic currents)")
    return out


def nest_model_name(pop: Population) -> str:
    return "izhikevich" if isinstance(pop.model, Izhikevich) else "iaf_psc_exp"


#: NEST refuses an aeif model whose exponential could overflow at V_peak (aeif_cond_exp.cpp:
#: (V_peak - V_th) / Delta_T < log(DBL_MAX / 1e20))
_AEIF_MAX_EXP_ARG = float(np.log(np.finfo(np.float64).max / 1e20))


def _population_problems(net: Network, pop: Population) -> list[str]:
    m = pop.model
    channels = input_channels(net, pop.name)
    out = []
    if isinstance(m, CondAdEx):
        arg = (np.asarray(m.V_peak_mV, np.float64) - np.asarray(m.V_T_mV, np.float64)) / \
            np.asarray(m.Delta_T_mV, np.float64)
        if np.any(arg >= _AEIF_MAX_EXP_ARG):
            out.append(f"Population '{pop.name}' (CondAdEx): (V_peak - V_T) / Delta_T reaches "
                       f"{float(np.max(arg)):.0f}; NEST's aeif_cond_exp refuses >= "
                       f"{_AEIF_MAX_EXP_ARG:.0f} (exp overflow at the spike)")
    if isinstance(m, (CondLIF, CondAdEx)):
        return out  # channels exc/inh, weights >= 0 and initial g are all NEST's (the IR)
    if isinstance(m, Izhikevich):
        if channels - {"v"}:
            out.append(f"Population '{pop.name}' (Izhikevich): input on channel(s) "
                       f"{sorted(channels - {'v'})}; NEST's izhikevich has delta synapses "
                       "only (events add to v), not exponential currents")
        out += _initial_current_problems(pop, ("i_exc", "i_inh"))
        return out
    if m.reset != "value":
        out.append(f"Population '{pop.name}' (LIF): reset='{m.reset}'; NEST's iaf_psc_exp "
                   "and iaf_psc_delta reset to a value only")
    if "v" in channels and channels - {"v"}:
        out.append(f"Population '{pop.name}' (LIF): input on channel 'v' and on "
                   f"{sorted(channels - {'v'})}; NEST has no LIF with both delta and "
                   "exponential-current synapses (iaf_psc_delta or iaf_psc_exp)")
    elif "v" not in channels:
        out += _sign_problems(net, pop)
    out += _initial_current_problems(pop, ("i_exc", "i_inh"))
    return out


def _current_problems(net: Network, pop: Population) -> list[str]:
    table = varying_current_table(net, pop)
    if table is None or np.array_equal(table[0], table[1]):
        return []
    names = [c.name for c in net.currents.values()
             if c.target == pop.name and not current_is_constant(c)]
    return [f"CurrentInput '{names[0]}': the current onto '{pop.name}' changes between steps 0 "
            "and 1; NEST's step_current_generator can change a current from step 2 on only "
            "(a change at t > 0 acts one step later)"]


def _monitor_problems(net: Network, mon: StateMonitor) -> list[str]:
    if mon.target not in net.populations:
        return [f"StateMonitor '{mon.name}': records '{mon.target}', not a population"]
    pop = net.populations[mon.target]
    if not NODE_BUILDERS.carries(pop.model):
        return []  # the population is refused by name
    model = nest_model(pop, net)
    if mon.variable not in RECORDABLES[model]:
        return [f"StateMonitor '{mon.name}': {mon.variable} of '{mon.target}' is not a state "
                f"of NEST's {model} (records: {sorted(RECORDABLES[model])})"]
    return []


def _step_zero_problem(net: Network, inp: PoissonInput) -> str | None:
    """Why the events of step 0 of ``inp`` cannot reach NEST (None: they can).

    No event reaches a NEST neuron in step 0 (a generator's first spike time is dt and the
    shortest delay one step); for ``iaf_psc_delta`` the step-0 counts are carried exactly by
    the initial membrane potential instead (`step_zero_offset`)."""
    if inp.start_ms >= net.dt_ms * (1 - 1e-9):
        return None
    pop = net.populations[inp.target]
    if not NODE_BUILDERS.carries(pop.model):
        return None  # the population is refused by name
    model = nest_model(pop, net)
    if model == "iaf_psc_delta":
        return None
    why = {"iaf_psc_exp": "its synaptic currents cannot be set, which carrying them as an "
                          "initial state would need",
           "izhikevich": "its forward-Euler step is not linear in v, so no initial v carries "
                         "them exactly",
           "iaf_cond_exp": "a conductance set at the start would act on v within step 0, "
                           "EvoSpike's step-0 events act from step 1",
           "aeif_cond_exp": "a conductance set at the start would act on v within step 0, "
                            "EvoSpike's step-0 events act from step 1"}[model]
    return (f"PoissonInput '{inp.name}': starts at {inp.start_ms} ms; NEST cannot deliver an "
            f"event in step 0 (a generator's first spike time is dt, the shortest delay one "
            f"step), and for NEST's {model} {why}: start it at >= {net.dt_ms} ms")


def step_zero_offset(net: Network, inp: PoissonInput, seed: int) -> np.ndarray | None:
    """The initial-V_m increment, per target neuron, that carries the step-0 counts of ``inp``
    onto an ``iaf_psc_delta`` population exactly: NEST's step is ``V' = P33 (V - E_L) + E_L +
    P30 I + events`` (iaf_psc_delta.cpp), linear in V with slope ``P33 = exp(-dt / tau_m)``, so
    starting from ``V + w k / P33`` gives after step 0 the potential EvoSpike has after adding
    the step's ``k`` events of weight ``w`` (to rounding). None when ``inp`` starts later."""
    if inp.start_ms >= net.dt_ms * (1 - 1e-9):
        return None
    pop = net.populations[inp.target]
    counts = poisson_input_counts(inp, pop.size, seed, net.dt_ms, 0, 1)[0]
    p33 = np.exp(-net.dt_ms / _per_neuron(pop.model.tau_m_ms, pop.size))
    return float(inp.weight) * counts / p33


def refusals(net: Network, step_exact: bool = False) -> list[str]:
    """Every node the NEST backend cannot carry with EvoSpike's semantics, with the reason
    (empty: it runs). ``step_exact``: refuse also the models NEST integrates differently
    (`CONDUCTANCE_MODELS`), whose agreement is statistical only."""
    out = NODE_BUILDERS.refusals(net)
    if step_exact:
        for pop in net.populations.values():
            if type(pop.model) in CONDUCTANCE_MODELS:
                model, why = CONDUCTANCE_MODELS[type(pop.model)]
                out.append(f"Population '{pop.name}': {pop.model.kind} -> {model} is not step "
                           f"for step: {why}")
    schedule = getattr(net, "schedule", "evospike")
    if schedule != "evospike":
        out.append(f"Network '{net.name}': schedule '{schedule}' (the NEST mapping matches "
                   "EvoSpike's schedule only: events act before the threshold of their step)")
    tics = net.dt_ms / TIC_MS
    if abs(tics - round(tics)) > 1e-6:
        out.append(f"Network '{net.name}': dt {net.dt_ms} ms is not a whole number of NEST's "
                   f"time tics ({TIC_MS} ms)")
    for pop in net.populations.values():
        if NODE_BUILDERS.carries(pop.model):
            out += _population_problems(net, pop)
            out += _current_problems(net, pop)
    for inp in net.inputs.values():
        problem = _step_zero_problem(net, inp)
        if problem is not None:
            out.append(problem)
    for mon in net.state_monitors.values():
        out += _monitor_problems(net, mon)
    return out


# ------------------------------------------------------------------ builders
NODE_BUILDERS.carry(LIF, Izhikevich, CondLIF, CondAdEx, CurrentInput, SpikeMonitor,
                    StateMonitor)
NODE_BUILDERS.refuse(AdaptiveLIF, "NEST has no LIF with exponential currents whose threshold "
                     "jumps by delta_thresh and relaxes with tau_adapt exactly as ours")
NODE_BUILDERS.refuse(CubaLIF, "Loihi's discrete CUBA-LIF (decay fractions per step) is not a "
                     "NEST model")
NODE_BUILDERS.refuse(AdEx, "NEST's aeif_psc_exp integrates with adaptive-step RKF45 (GSL), "
                     "ours with forward Euler per step: not comparable step for step")
NODE_BUILDERS.refuse(STDP, "not mapped: NEST's stdp_synapse applies, when a presynaptic "
                     "spike is delivered, the potentiation owed to the postsynaptic spikes since "
                     "the previous one and this spike's depression, and then transmits the "
                     "spike with the updated weight; EvoSpike potentiates at the postsynaptic "
                     "spike and transmits with the weight before the arrival's update, so the "
                     "transmitted weights differ")
NODE_BUILDERS.refuse(RewardModulatedSTDP, "not mapped: NEST's stdp_dopamine_synapse reads "
                     "dopamine as a trace of volume-transmitter spikes (n += 1/tau_n per spike, "
                     "minus a baseline b) and integrates dw/dt = c (n - b) in closed form "
                     "between spikes, updating w only at pre- and dopamine spikes; EvoSpike's "
                     "modulator is a level with its own dynamics and w += rate dt m e is "
                     "applied, and clipped, every step")
# the backend carries static synapses only (the plasticity rules are refused above), so a
# projection's weights are those it was built with: the runner records them as they are
NODE_BUILDERS.carry(WeightMonitor)


@NODE_BUILDERS.register(Population)
def build_population(nest, pop: Population, net: Network, trial: Trial) -> None:
    model = nest_model(pop, net)
    nodes = nest.Create(model, pop.size)
    params = population_params(pop, net)
    if model == "izhikevich":
        params["consistent_integration"] = True
    state = initial_state(pop, trial.seed)
    params["V_m"] = state["v"]
    if model == "izhikevich":
        params["U_m"] = state["u"]
    if model in ("iaf_cond_exp", "aeif_cond_exp"):
        params.update(g_ex=state["g_exc"], g_in=state["g_inh"])
    if model == "aeif_cond_exp":
        params["w"] = state["w_adapt"]
    nodes.set({k: (v if isinstance(v, bool) else v.tolist()) for k, v in params.items()})
    trial.pops[pop.name] = np.asarray(nodes.tolist(), dtype=np.int64)
    table = varying_current_table(net, pop)
    if table is not None:
        _build_current(nest, net, table, trial.pops[pop.name])


def _build_current(nest, net: Network, table: np.ndarray, ids: np.ndarray) -> None:
    """Steps 0 and 1 are carried by I_e (set by `population_params` only for constant
    currents, so added here); each later change by a step_current_generator whose amplitude
    time (n - 1) dt acts in step n (measured: NEST's current input lags one step)."""
    dt = net.dt_ms
    base = table[0]
    nodes = nest.NodeCollection(ids.tolist())
    nodes.set({"I_e": (np.asarray(nodes.get("I_e"), dtype=np.float64).reshape(-1) +
                       base).tolist()})
    delta = table - base
    columns, which = np.unique(delta.T, axis=0, return_inverse=True)
    for k, column in enumerate(columns):
        change = np.nonzero(np.diff(column))[0] + 1  # steps whose value differs from before
        if change.size == 0:
            continue
        gen = nest.Create("step_current_generator", params={
            "amplitude_times": ((change - 1) * dt).tolist(),
            "amplitude_values": column[change].tolist()})
        targets = ids[np.asarray(which).ravel() == k]
        nest.Connect(gen, nest.NodeCollection(targets.tolist()), syn_spec={"delay": dt})


@NODE_BUILDERS.register(PoissonSource, SpikeTimesSource)
def build_source(nest, src, net: Network, trial: Trial) -> None:
    """One spike_generator per source neuron; the spikes are EvoSpike's (`evospike.realize`),
    a spike of step n stamped (n + 1) dt. Poisson spikes are fed per run call (`feed`)."""
    gens = nest.Create("spike_generator", src.size)
    trial.sources[src.name] = gens
    trial.source_ids[src.name] = np.asarray(gens.tolist(), dtype=np.int64)
    if isinstance(src, SpikeTimesSource):
        steps, neurons = spike_time_steps(src, net.dt_ms)
        set_generator_spikes(gens, src.size, steps + 1, neurons, net.dt_ms)


def set_generator_spikes(gens, size: int, stamps: np.ndarray, neurons: np.ndarray, dt: float,
                         counts: np.ndarray | None = None) -> None:
    """Give generator k the spikes stamped ``stamps`` (in steps) of neuron k (each generator's
    list replaces the spikes it had not yet sent)."""
    order = np.lexsort((stamps, neurons))
    stamps, neurons = stamps[order], neurons[order]
    bounds = np.searchsorted(neurons, np.arange(size + 1))
    status = []
    for k in range(size):
        s = stamps[bounds[k]:bounds[k + 1]]
        entry = {"spike_times": np.round(s * dt, 9).tolist()}
        if counts is not None:
            entry["spike_multiplicities"] = counts[order][bounds[k]:bounds[k + 1]].tolist()
        status.append(entry)
    gens.set(status)


@NODE_BUILDERS.register(PoissonInput)
def build_poisson_input(nest, inp: PoissonInput, net: Network, trial: Trial) -> None:
    """One spike_generator per target neuron, with multiplicities (EvoSpike's counts, fed per
    run call), connected with the input's weight and a one-step delay: counts of step m are
    stamped m dt (m >= 1, `refusals`)."""
    ids = trial.pops[inp.target]
    gens = nest.Create("spike_generator", ids.size)
    trial.inputs[inp.name] = gens
    weight = nest_weights(net, inp.target, inp.channel, float(inp.weight))
    nest.Connect(np.asarray(gens.tolist(), dtype=np.int64), ids, "one_to_one",
                 {"weight": np.full(ids.size, weight), "delay": np.full(ids.size, net.dt_ms)})
    offset = step_zero_offset(net, inp, trial.seed)
    if offset is not None:  # iaf_psc_delta only (`refusals`): step 0's counts, in V_m
        nodes = nest.NodeCollection(ids.tolist())
        v = np.asarray(nodes.get("V_m"), dtype=np.float64).reshape(-1)
        nodes.set({"V_m": (v + offset).tolist()})


def nest_weights(net: Network, post: str, channel: str, weights):
    """EvoSpike weights -> NEST weights. NEST routes an event by its weight's sign (> 0:
    excitatory); a conductance model's inhibitory increments are >= 0 in EvoSpike (the
    reversal potential inhibits), so they are negated."""
    model = net.populations[post].model
    if channel == "inh" and isinstance(model, (CondLIF, CondAdEx)):
        return -np.asarray(weights, dtype=np.float64) if np.ndim(weights) else -weights
    return weights


@NODE_BUILDERS.register(Projection)
def build_projection(nest, proj: Projection, net: Network, trial: Trial) -> None:
    """CSR synapses, one NEST connection each (``one_to_one`` over arrays), with their own
    weights and delays (steps -> ms)."""
    if proj.indices.size == 0:
        return
    pre = trial.pops.get(proj.pre)
    if pre is None:
        pre = trial.source_ids[proj.pre]
    post = trial.pops[proj.post]
    nest.Connect(pre[proj.pre_indices()], post[proj.indices.astype(np.int64)], "one_to_one",
                 {"synapse_model": "static_synapse",
                  "weight": nest_weights(net, proj.post, proj.target,
                                         np.asarray(proj.weights, dtype=np.float64)),
                  "delay": np.asarray(proj.delays, dtype=np.float64) * net.dt_ms})


def build_trial(nest, net: Network, seed: int) -> Trial:
    """Every node of ``net`` for one trial, with its recorders (one kernel holds all trials)."""
    trial = Trial(seed)
    for node in [*net.populations.values(), *net.sources.values(), *net.inputs.values(),
                 *net.projections.values()]:
        NODE_BUILDERS.lookup(node)(nest, node, net, trial)
    for mon in net.spike_monitors:
        rec = nest.Create("spike_recorder")
        ids = trial.pops.get(mon.target)
        if ids is None:
            ids = trial.source_ids[mon.target]
        nest.Connect(nest.NodeCollection(ids.tolist()), rec)
        trial.spike_recorders[mon.target] = rec
    for name, mon in net.state_monitors.items():
        model = nest_model(net.populations[mon.target], net)
        # every step is sampled and `every_steps` applied when reading: a NEST multimeter's
        # grid starts at its interval, EvoSpike's at step 0
        mm = nest.Create("multimeter", params={
            "record_from": [RECORDABLES[model][mon.variable]], "interval": net.dt_ms})
        watched = trial.pops[mon.target][np.unique(mon.neurons)]  # a NodeCollection is sorted
        nest.Connect(mm, nest.NodeCollection(watched.tolist()))
        trial.multimeters[name] = mm
    return trial
