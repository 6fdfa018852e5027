"""The native engine: hands whole chunks of steps to the C kernel (kernel.c), which updates
the torch backend's tensors in place. CPU only; the eager engine covers every other case.

It carries plain, modulated and three-factor (reward-modulated) STDP and the `Modulator`
processes those read: the kernel updates the same tensors the eager engine's `TModulator`
holds (level, rate_hz, expected_hz) and the rule's eligibility, so StateMonitors and weight
monitors read them unchanged between chunks. The reward drives (events, series) do not depend
on the simulation and come precomputed per step (`ChunkInputs.rewards`); spike-count and novelty
drives are counted in the kernel. Every other process kind is refused
(`native_unavailable_reason`) and runs on the eager engine."""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from evospike.dynamics import LinearStep
from evospike.ir.nodes import CHANNELS

from ..processes import TModulator
from .build import NativeBuildError, load_kernel

MAX_STATES = 4
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
            ("out_count", I64),
        ]

    class Proj(ctypes.Structure):
        _fields_ = [
            ("pre_is_source", I32), ("pre", I32), ("post", I32), ("n_pre", I32),
            ("n_post", I32), ("indptr", P), ("indices", P), ("weights", P), ("delays16", P),
            ("delays32", P), ("uniform_delay", I32), ("channel", I32),
            ("plastic", I32), ("nnz", I64), ("wt", P), ("x", P), ("y", P), ("decay_x", R),
            ("decay_y", R), ("a_plus", R), ("a_minus", R), ("w_min", R), ("w_max", R),
            ("nearest", I32), ("multiplicative", I32), ("col_ptr", P), ("col_syn", P),
            ("col_pre", P), ("pending", P), ("pending_n", P), ("mod_level", P),
            ("modulation", I32), ("gate_threshold", R), ("scale_gain", R),
            ("three_factor", I32), ("elig", P), ("decay_e", R), ("lr_dt", R),
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

    return Pop, Proj, Src, Mod


def native_unavailable_reason(cn) -> str | None:
    """None if the native kernel can run ``cn``; otherwise why not."""
    if cn.device.type != "cpu":
        return f"it runs on the CPU only (device is {cn.device})"
    others = {n: p for n, p in cn.processes.items() if not isinstance(p, TModulator)}
    if others:
        names = ", ".join(f"{type(p.node).__name__} '{n}'" for n, p in others.items())
        return (f"of the processes it carries only Modulators, not homeostasis, "
                f"metaplasticity or the other process kinds ({names})")
    for pop in cn.populations.values():
        if len(pop.step.state_names) > MAX_STATES:
            return f"population '{pop.name}' has more than {MAX_STATES} state variables"
    try:
        load_kernel(cn.config.precision)
    except (NativeBuildError, OSError) as exc:
        return str(exc)
    return None


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
        Pop, Proj, Src, Mod = _structs(cn.config.precision)
        self._keep: list = []  # arrays the structs point into
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
        # every process is a Modulator here (native_unavailable_reason refuses the others)
        self.mod_names = list(cn.processes)
        self.mods = (Mod * max(1, len(self.mod_names)))()
        for slot, name in enumerate(self.mod_names):
            self._fill_modulator(self.mods[slot], cn.processes[name])
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
        # constant across trials here: metaplasticity (per-trial values) runs on eager only
        c.decay_x, c.decay_y = float(pl.decay_x[0, 0]), float(pl.decay_y[0, 0])
        c.a_plus, c.a_minus, c.w_min, c.w_max = rule.a_plus, rule.a_minus, rule.w_min, rule.w_max
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
                    ctypes.c_int32(trial + 1))
                for s, name, steps, flat in self._buffers:
                    out.setdefault(name, []).append(
                        (steps[: s.out_count].copy(), flat[: s.out_count].copy()))
                if ran == 0:
                    raise RuntimeError("native kernel made no progress (recording buffer too "
                                       "small)")
                done += ran
        return {name: (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))
                for name, parts in out.items()}
