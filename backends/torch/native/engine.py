"""The native engine: hands whole chunks of steps to the C kernel (kernel.c), which updates
the torch backend's tensors in place. CPU only; the eager engine covers every other case.

It carries plain, modulated and three-factor (reward-modulated) STDP and the `Modulator`
processes those read: the kernel updates the same tensors the eager engine's `TModulator`
holds (level, rate_hz, expected_hz) and the rule's eligibility, so StateMonitors and weight
monitors read them unchanged between chunks. The reward drives (events, series) do not depend
on the simulation and come precomputed per step (`ChunkInputs.rewards`); spike-count and novelty
drives are counted in the kernel.

It also carries `Homeostasis` (the rate estimate, the adaptive threshold it adds to the firing
threshold, synaptic scaling of the listed projections) and `Metaplasticity` (a rule's amplitude
or time constant adapting to a modulator's level), in place on the eager engine's tensors
(THomeostasis.rate_hz / theta, TMetaplasticity.value / baseline, the rule's per-trial a_plus,
a_minus, decay_x, decay_y). A time constant's new trace decay exp(-dt / tau) is computed by the
eager engine's own `TPlastic.set_parameter`, called back from the kernel in the steps where the
value changed, so that it is torch's exp and rounds the same. Every other process kind (gating,
memory tiers, apoptosis, energy budgets, structural plasticity, pruning) is refused
(`native_unavailable_reason`) and runs on the eager engine.

What the kernel carries is declared, node kind by node kind, in `CARRIED` (neuron models,
sources, projections, plasticity rules, processes, monitors); any other kind, a subclass of a
carried one included (it may compute something else), is refused by name: ``engine="native"``
fails naming it, ``engine="auto"`` runs the eager engine and says why in ``engine_note``."""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from evospike.dynamics import LinearStep
from evospike.ir.modulators import Modulator
from evospike.ir.neurons import LIF, AdaptiveLIF, AdEx, CubaLIF, Izhikevich
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
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP
from evospike.native_build import NativeBuildError
from evospike.registry import Registry, label

from ..processes import THomeostasis, TMetaplasticity, TModulator
from .build import load_kernel

MAX_STATES = 4

#: the node kinds kernel.c carries; the engine reads each from the torch backend's tensors
CARRIED = Registry("native kernel", "update")
CARRIED.carry(Population, LIF, AdaptiveLIF, CubaLIF, Izhikevich)  # linear step, Izhikevich
CARRIED.carry(PoissonSource, SpikeTimesSource, CurrentInput, Projection)
CARRIED.carry(STDP, RewardModulatedSTDP)  # plain, modulated and three-factor pair STDP
CARRIED.carry(Modulator, Homeostasis, Metaplasticity)
CARRIED.carry(SpikeMonitor, StateMonitor, WeightMonitor)
CARRIED.refuse(AdEx, "no exponential integrate-and-fire update in kernel.c")
CARRIED.refuse(PoissonInput, "kernel.c draws no per-step afferent counts (the eager engine "
               "carries it)")
REFRESH = ctypes.CFUNCTYPE(None)  # Meta.refresh: recompute a rule's decays after a tau change
I32, I64 = ctypes.c_int32, ctypes.c_int64
P = ctypes.c_void_p


def _real(precision: str):
    return ctypes.c_float if precision == "float32" else ctypes.c_double


def _structs(precision: str):
    R = _real(precision)

    class Pop(ctypes.Structure):
        _fields_ = [
            ("kind", I32), ("k", I32), ("n", I32), ("trials", I32), ("x", P), ("P", P),
            ("q", P), ("G", P), ("pn", I32), ("Bc", P), ("nch", I32), ("v_index", I32),
            ("theta_index", I32), ("v_thresh", P), ("v_reset", P), ("theta_jump", P),
            ("reset_subtract", I32), ("has_refractory", I32), ("refrac", P),
            ("hold_steps", P), ("buf", P), ("slots", I32),
            ("current", P), ("izh", P * 8), ("izh_n", I32 * 8), ("ch_exc", I32),
            ("ch_inh", I32), ("ch_v", I32), ("dt_ms", R), ("fired", P), ("n_fired", I64),
            ("record", I32), ("out_step", P), ("out_flat", P), ("out_cap", I64),
            ("out_count", I64), ("theta_h", P),
        ]

    class Proj(ctypes.Structure):
        _fields_ = [
            ("pre_is_source", I32), ("pre", I32), ("post", I32), ("n_pre", I32),
            ("n_post", I32), ("indptr", P), ("indices", P), ("weights", P), ("delays16", P),
            ("delays32", P), ("uniform_delay", I32), ("channel", I32),
            ("plastic", I32), ("nnz", I64), ("wt", P), ("x", P), ("y", P), ("decay_x", P),
            ("decay_y", P), ("a_plus", P), ("a_minus", P), ("w_min", R), ("w_max", R),
            ("nearest", I32), ("multiplicative", I32), ("col_ptr", P), ("col_syn", P),
            ("col_pre", P), ("pending", P), ("pending_n", P), ("mod_level", P),
            ("modulation", I32), ("gate_threshold", R), ("scale_gain", R),
            ("three_factor", I32), ("elig", P), ("decay_e", R), ("lr_dt", R),
            ("w_stride", I64),
        ]

    class Src(ctypes.Structure):
        _fields_ = [
            ("n", I32), ("flat", P), ("ptr", P), ("record", I32), ("out_step", P),
            ("out_flat", P), ("out_cap", I64), ("out_count", I64),
        ]

    class Mod(ctypes.Structure):
        _fields_ = [
            ("level", P), ("decay", R), ("reward", P), ("n_counts", I32),
            ("count_is_source", P), ("count_node", P), ("count_gain", P), ("novelty", I32),
            ("nov_is_source", I32), ("nov_node", I32), ("nov_gain", R), ("nov_denom", R),
            ("rate_decay", R), ("rate_in", R), ("expect_decay", R), ("expect_in", R),
            ("rate_hz", P), ("expected_hz", P),
        ]

    class Homeo(ctypes.Structure):
        _fields_ = [
            ("pop", I32), ("scaling", I32), ("rate_hz", P), ("theta", P), ("increment", R),
            ("decay", R), ("target", R), ("threshold_rate", R), ("scaling_rate", R),
            ("every", R), ("dt_ms", R), ("milli", R), ("every_steps", I64), ("n_scaled", I32),
            ("scaled", P), ("factor", P),
        ]

    class Meta(ctypes.Structure):
        _fields_ = [
            ("value", P), ("baseline", P), ("level", P), ("baseline_decay", R),
            ("baseline_in", R), ("eta", R), ("dt_ms", R), ("milli", R), ("p_min", R),
            ("p_max", R), ("amplitude", P), ("refresh", REFRESH),
        ]

    return Pop, Proj, Src, Mod, Homeo, Meta


def native_unavailable_reason(cn) -> str | None:
    """None if the native kernel can run ``cn``; otherwise why not."""
    if cn.device.type != "cpu":
        return f"it runs on the CPU only (device is {cn.device})"
    reasons = refusals(cn.network)
    if reasons:
        return "; ".join(reasons)
    for pop in cn.populations.values():
        if len(pop.step.state_names) > MAX_STATES:
            return f"population '{pop.name}' has more than {MAX_STATES} state variables"
    try:
        load_kernel(cn.config.precision)
    except (NativeBuildError, OSError) as exc:
        return str(exc)
    return None


def refusals(network) -> list[str]:
    """What the kernel does not carry in ``network``, one line per group, every node named
    (empty: it carries every node)."""
    net, out = network, []
    procs = [p for p in net.processes.values() if not CARRIED.carries(p)]
    if procs:
        out.append("of the processes it carries only Modulators, Homeostasis and "
                   "Metaplasticity, not the other process kinds ("
                   + ", ".join(label(p) for p in procs) + ")")
    for pop in net.populations.values():
        if CARRIED.carries(pop) and not CARRIED.carries(pop.model):
            out.append(f"population '{pop.name}' has {pop.model.kind} neurons, which the C "
                       f"kernel does not carry ({CARRIED.reason(pop.model)})")
        elif getattr(pop.model, "reset", None) == "subtract_after_decay":
            out.append(f"population '{pop.name}' has reset='subtract_after_decay', which the C "
                       "kernel does not carry (the eager engine does)")
    others = [n for n in net.nodes()
              if n.collection != "processes" and not CARRIED.carries(n)]
    out += [f"{label(n)}: {CARRIED.reason(n)}" for n in others]
    return out


def _ptr(t) -> int | None:
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        assert t.is_contiguous() and t.device.type == "cpu"
        return t.data_ptr()
    return t.ctypes.data


class NativeEngine:
    def __init__(self, cn):
        self.cn = cn
        self.lib = load_kernel(cn.config.precision)
        self.np_dtype = np.float32 if cn.config.precision == "float32" else np.float64
        Pop, Proj, Src, Mod, Homeo, Meta = _structs(cn.config.precision)
        self._keep: list = []  # arrays (and callbacks) the structs point into
        self._callback_error: BaseException | None = None  # raised in a Meta.refresh call
        trials = len(cn.config.seeds)
        homeos = [p for p in cn.process_order if isinstance(p, THomeostasis)]
        for proc in homeos:
            for name in proc.node.projections if proc.node.mechanism == "scaling" else ():
                proj = cn.projections[name]
                if proj.weights.dim() == 1:
                    # scaling makes the weights per trial; the eager engine does it in its
                    # first step (step 0 is a scaling step), where they are still equal
                    proj.weights = proj.weights.unsqueeze(0).repeat(trials, 1)
        recorded = {m.target for m in cn.spike_monitors}
        pops = list(cn.populations.values())
        self.pop_names = [p.name for p in pops]
        self.src_names = list(cn.sources)
        self.pops = (Pop * max(1, len(pops)))()
        for slot, pop in enumerate(pops):
            self._fill_pop(self.pops[slot], pop, pop.name in recorded)
        self.srcs = (Src * max(1, len(self.src_names)))()
        for slot, name in enumerate(self.src_names):
            s = self.srcs[slot]
            s.n = cn.sources[name].size
            s.record = int(name in recorded)
        projs = list(cn.projections.values())
        self.projs = (Proj * max(1, len(projs)))()
        for slot, proj in enumerate(projs):
            c = self.projs[slot]
            c.pre_is_source = int(proj.pre in cn.sources)
            c.pre = self.src_names.index(proj.pre) if c.pre_is_source else \
                self.pop_names.index(proj.pre)
            c.post = self.pop_names.index(proj.post)
            c.n_pre, c.n_post = proj.n_pre, proj.n_post
            c.indptr, c.indices, c.weights = (_ptr(proj.indptr), _ptr(proj.indices),
                                              _ptr(proj.weights))
            c.w_stride = proj.weights.shape[1] if proj.weights.dim() == 2 else 0
            if proj.delays is not None:
                if proj.delays.dtype == torch.int16:
                    c.delays16 = _ptr(proj.delays)
                else:
                    c.delays32 = _ptr(proj.delays)
            c.uniform_delay = proj.uniform_delay
            c.channel = proj.channel_slot
            if proj.plastic is not None:
                self._fill_plastic(c, proj)
        self.n_pops, self.n_srcs, self.n_projs = len(pops), len(self.src_names), len(projs)
        # Modulators, Homeostasis, Metaplasticity (native_unavailable_reason refuses the
        # others); the kernel runs each kind in the eager engine's phase order
        self.mod_names = [n for n, p in cn.processes.items() if isinstance(p, TModulator)]
        self.mods = (Mod * max(1, len(self.mod_names)))()
        for slot, name in enumerate(self.mod_names):
            self._fill_modulator(self.mods[slot], cn.processes[name])
        self.homeos = (Homeo * max(1, len(homeos)))()
        for slot, proc in enumerate(homeos):
            self._fill_homeostasis(self.homeos[slot], proc, [p.name for p in projs])
        metas = [p for p in cn.process_order if isinstance(p, TMetaplasticity)]
        self.metas = (Meta * max(1, len(metas)))()
        for slot, proc in enumerate(metas):
            self._fill_metaplasticity(self.metas[slot], proc)
        self.n_homeos, self.n_metas = len(homeos), len(metas)
        # recording buffers, allocated once: (struct, node, steps, flat indices); the kernel
        # stops at a step boundary before they could overflow and the caller empties them
        self._buffers = []
        named = [*zip(self.pops[: self.n_pops], self.pop_names, strict=True),
                 *zip(self.srcs[: self.n_srcs], self.src_names, strict=True)]
        for s, name in named:
            if s.record:
                cap = max(1 << 16, 8 * s.n)
                steps, flat = np.empty(cap, np.int64), np.empty(cap, np.int64)
                s.out_step, s.out_flat, s.out_cap = steps.ctypes.data, flat.ctypes.data, cap
                self._buffers.append((s, name, steps, flat))

    def _fill_plastic(self, c, proj) -> None:
        pl, rule = proj.plastic, proj.plastic.rule
        trials = proj.weights.shape[0]
        c.plastic, c.nnz, c.wt = 1, proj.weights.shape[1], _ptr(proj.weights)
        c.x, c.y = _ptr(pl.x), _ptr(pl.y)
        # per trial, in place: metaplasticity changes them during the run
        for key in ("decay_x", "decay_y", "a_plus", "a_minus"):
            setattr(c, key, _ptr(getattr(pl, key)))
        c.w_min, c.w_max = rule.w_min, rule.w_max
        c.nearest = int(rule.pairing == "nearest")
        c.multiplicative = int(rule.weight_dependence == "multiplicative")
        c.col_ptr, c.col_syn, c.col_pre = _ptr(pl.col_ptr), _ptr(pl.col_syn), _ptr(pl.col_pre)
        # spikes on their way, carried over from the eager representation (empty at start)
        pending = self._arr(np.zeros((proj.uniform_delay, trials, proj.n_pre)), np.int64)
        counts = self._arr(np.zeros((proj.uniform_delay, trials)), np.int64)
        for slot, fired in enumerate(pl.pending):
            for flat in fired.numpy():
                b = flat // proj.n_pre
                pending[slot, b, counts[slot, b]] = flat
                counts[slot, b] += 1
        c.pending, c.pending_n = _ptr(pending), _ptr(counts)
        if rule.modulator is not None:
            # the level tensor the eager engine reads and the kernel updates in place
            c.mod_level = _ptr(self.cn.processes[rule.modulator].level)
            c.modulation = {"gate": 1, "scale": 2}[rule.modulation]
            c.gate_threshold, c.scale_gain = rule.gate_threshold, rule.scale_gain
        if pl.eligibility is not None:
            c.three_factor, c.elig = 1, _ptr(pl.eligibility)
            c.decay_e, c.lr_dt = pl.decay_e, pl.learning_rate_dt

    def _node_slot(self, node: str) -> tuple[int, int]:
        """(1 if a source else 0, its index) of population or source ``node``."""
        if node in self.src_names:
            return 1, self.src_names.index(node)
        return 0, self.pop_names.index(node)

    def _fill_modulator(self, m, proc: TModulator) -> None:
        """Point the kernel at the modulator's own tensors; the constants are the eager
        engine's (TModulator.update), computed the same way so they round the same."""
        m.level, m.decay = _ptr(proc.level), proc.decay
        if proc.count_drives:
            kinds, nodes = zip(*(self._node_slot(node) for node, _ in proc.count_drives),
                               strict=True)
            m.n_counts = len(proc.count_drives)
            m.count_is_source = _ptr(self._arr(kinds, np.int32))
            m.count_node = _ptr(self._arr(nodes, np.int32))
            m.count_gain = _ptr(self._arr([gain for _, gain in proc.count_drives]))
        if proc.novelty is not None:
            nov, dt_ms = proc.novelty, self.cn.network.dt_ms
            m.novelty = 1
            m.nov_is_source, m.nov_node = self._node_slot(nov.population)
            m.nov_gain = nov.gain
            m.nov_denom = proc.novelty_size * dt_ms * 1e-3
            m.rate_decay, m.rate_in = proc.rate_decay, 1.0 - proc.rate_decay
            m.expect_decay, m.expect_in = proc.expect_decay, 1.0 - proc.expect_decay
            m.rate_hz, m.expected_hz = _ptr(proc.rate_hz), _ptr(proc.expected_hz)

    def _fill_homeostasis(self, h, proc: THomeostasis, proj_names: list[str]) -> None:
        """Point the kernel at the process's own tensors; the constants are those of
        THomeostasis.update, rounded to the precision as torch rounds a Python scalar."""
        node, dt_ms = proc.node, self.cn.network.dt_ms
        h.pop = self.pop_names.index(node.population)
        h.scaling = int(node.mechanism == "scaling")
        h.rate_hz, h.theta = _ptr(proc.rate_hz), _ptr(proc.theta)
        h.increment, h.decay = proc.spike_increment, proc.rate_decay
        h.target, h.threshold_rate = node.target_rate_hz, node.threshold_rate
        h.scaling_rate, h.every, h.every_steps = node.scaling_rate, node.every_steps, \
            node.every_steps
        h.dt_ms, h.milli = dt_ms, 1e-3
        if h.scaling:
            h.n_scaled = len(node.projections)
            h.scaled = _ptr(self._arr([proj_names.index(p) for p in node.projections],
                                      np.int32))
            h.factor = _ptr(self._arr(np.zeros(self.cn.network.size_of(node.population))))
        else:
            pop = self.pops[h.pop]
            pop.theta_h = _ptr(proc.theta)  # the population's threshold_offset

    def _fill_metaplasticity(self, m, proc: TMetaplasticity) -> None:
        """Point the kernel at the process's and the rule's tensors (TMetaplasticity.update)."""
        node, cn = proc.node, self.cn
        plastic = cn.projections[cn.network.plasticity[node.rule].projection].plastic
        m.value, m.baseline = _ptr(proc.value), _ptr(proc.baseline)
        m.level = _ptr(cn.processes[node.modulator].level)
        m.baseline_decay, m.baseline_in = proc.baseline_decay, 1.0 - proc.baseline_decay
        m.eta, m.dt_ms, m.milli = node.eta, cn.network.dt_ms, 1e-3
        m.p_min, m.p_max = node.p_min, node.p_max
        if node.parameter in ("a_plus", "a_minus"):
            m.amplitude = _ptr(getattr(plastic, node.parameter))
        else:
            # the new decay exp(-dt / tau) with torch's exp, as the eager engine computes it
            # (a C exp may round differently); called only in steps where the value changed
            def refresh(plastic=plastic, name=node.parameter, value=proc.value,
                        dt_ms=cn.network.dt_ms) -> None:
                try:
                    plastic.set_parameter(name, value, dt_ms)
                except BaseException as exc:
                    # ctypes would print and drop it: a Ctrl-C here must not skip the update
                    # (it arrives once, so redo it); raised when the kernel returns (`run`)
                    self._callback_error = self._callback_error or exc
                    if isinstance(exc, KeyboardInterrupt):
                        plastic.set_parameter(name, value, dt_ms)

            callback = REFRESH(refresh)
            self._keep.append(callback)
            m.refresh = callback

    def _arr(self, values, dtype=None) -> np.ndarray:
        arr = np.ascontiguousarray(values, dtype=dtype or self.np_dtype)
        self._keep.append(arr)
        return arr

    def _fill_pop(self, s, pop, record: bool) -> None:
        trials = pop.x.shape[1]
        s.k, s.n, s.trials = len(pop.step.state_names), pop.size, trials
        s.x = _ptr(pop.x)
        s.refrac = _ptr(pop.refrac)
        c = pop.consts
        if pop.buf is not None:
            s.buf, s.slots, s.nch = _ptr(pop.buf), pop.buf.shape[0], pop.buf.shape[1]
        s.ch_exc = s.ch_inh = s.ch_v = -1
        for slot, ch in enumerate(pop.channels):
            setattr(s, {"exc": "ch_exc", "inh": "ch_inh", "v": "ch_v"}[CHANNELS[ch]], slot)
        if isinstance(pop.step, LinearStep):
            st = pop.step
            s.kind = 0
            s.P, s.q, s.G = _ptr(c["P"]), _ptr(c["q"]), _ptr(c["G"])
            s.pn = c["P"].shape[-1]
            bc = st.B[:, pop.channels] if pop.channels else np.zeros((s.k, 0))
            s.Bc = _ptr(self._arr(bc))
            s.v_index = st.v_index
            s.theta_index = -1 if st.theta_index is None else st.theta_index
            # one value per neuron, so the kernel's loops index without branching
            per_neuron = {key: self._arr(np.broadcast_to(c[key].numpy(), (pop.size,)),
                                         np.int32 if key == "hold_steps" else None)
                          for key in ("v_thresh", "v_reset", "theta_jump", "hold_steps")
                          if key in c}
            s.v_thresh = _ptr(per_neuron["v_thresh"])
            s.v_reset = _ptr(per_neuron["v_reset"])
            if "theta_jump" in per_neuron:
                s.theta_jump = _ptr(per_neuron["theta_jump"])
            s.reset_subtract = int(st.reset_subtract)
            s.has_refractory = int(pop.has_refractory)
            s.hold_steps = _ptr(per_neuron["hold_steps"])
        else:
            s.kind = 1
            for j, key in enumerate(("a", "b", "c", "d", "v_peak", "i_bias", "decay_exc",
                                     "decay_inh")):
                s.izh[j] = _ptr(c[key])
                s.izh_n[j] = c[key].numel()
            s.dt_ms = self.cn.network.dt_ms
        s.fired = _ptr(self._arr(np.zeros(trials * pop.size, dtype=np.int64), np.int64))
        s.record = int(record)

    def _point_inputs(self, inp, first: int, stop: int, keep: list) -> None:
        """Point currents and source step pointers at chunk offsets [first, stop)."""
        for slot, name in enumerate(self.pop_names):
            cur = inp.currents.get(name)
            if cur is None:
                self.pops[slot].current = None
                continue
            arr = np.ascontiguousarray(cur[first:stop], dtype=self.np_dtype)
            keep.append(arr)
            self.pops[slot].current = arr.ctypes.data
        for slot, name in enumerate(self.src_names):
            ptr = np.ascontiguousarray(inp.source_ptr[name][first:stop + 1], dtype=np.int64)
            keep.append(ptr)
            self.srcs[slot].ptr = ptr.ctypes.data
        for slot, name in enumerate(self.mod_names):
            reward = np.ascontiguousarray(inp.rewards[name][first:stop], dtype=np.float64)
            keep.append(reward)
            self.mods[slot].reward = reward.ctypes.data

    def run(self, inp, start: int, n_steps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Run steps [start, start + n_steps) of chunk ``inp``; returns recorded spikes per node
        as (steps, flat indices).

        Trials are run one after another, each through all the steps: they never interact, and
        one trial's state stays in cache where a whole batch's would not."""
        offset = start - inp.start
        keep: list = []
        for slot, name in enumerate(self.src_names):
            flat = np.ascontiguousarray(inp.source_flat[name], dtype=np.int64)
            keep.append(flat)
            self.srcs[slot].flat = flat.ctypes.data
        out: dict[str, list] = {}
        trials = len(self.cn.config.seeds)
        for trial in range(trials):
            done = 0
            while done < n_steps:
                for s, _, _, _ in self._buffers:
                    s.out_count = 0
                self._point_inputs(inp, offset + done, offset + n_steps, keep)
                ran = self.lib.evospike_run(
                    self.pops, self.n_pops, self.srcs, self.n_srcs, self.projs, self.n_projs,
                    self.mods, len(self.mod_names), ctypes.c_int64(start + done),
                    ctypes.c_int64(n_steps - done), ctypes.c_int32(trial),
                    ctypes.c_int32(trial + 1), self.homeos, self.n_homeos, self.metas,
                    self.n_metas)
                if self._callback_error is not None:
                    error, self._callback_error = self._callback_error, None
                    raise error
                for s, name, steps, flat in self._buffers:
                    out.setdefault(name, []).append(
                        (steps[: s.out_count].copy(), flat[: s.out_count].copy()))
                if ran == 0:
                    raise RuntimeError("native kernel made no progress (recording buffer too "
                                       "small)")
                done += ran
        return {name: (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))
                for name, parts in out.items()}
