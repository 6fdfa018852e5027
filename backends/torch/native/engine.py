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

It carries `PoissonInput` (the counts of EvoSpike's keyed draws, the very tensor the eager
engine adds, `TPoissonInput.drive`, handed to the kernel chunk by chunk like the injected
currents) and the conductance models `CondLIF` and `CondAdEx`; their exp is the function
torch's own exp calls (MKL's vmsExp / vmdExp in torch's CPU builds), found in the loaded torch
library and checked equal to torch.exp (`torch_exp_function`), or the populations are refused.

Threads (`threads`, default all cores): a batch of at least as many trials as threads runs
its trials in parallel, one per thread at a time; otherwise, when a number of threads is given
explicitly, each trial's network is split across the threads (neurons partitioned, the
propagation partitioned by target, in the serial order of additions: bit-identical for any
thread count), when it has at least `MIN_NEURONS_PER_THREAD` neurons per thread (fewer are
faster on one thread). The split needs idle cores (three barriers a step), so the default
(None) does not split. A network with a
Metaplasticity of a time constant runs its trials one after another (its callback recomputes
every trial's decay in torch). `NativeEngine.threads` / `.threading` say what ran.

What the kernel carries is declared, node kind by node kind, in `CARRIED` (neuron models,
sources, projections, plasticity rules, processes, monitors); any other kind, a subclass of a
carried one included (it may compute something else), is refused by name: ``engine="native"``
fails naming it, ``engine="auto"`` runs the eager engine and says why in ``engine_note``."""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch

from evospike.dynamics import CondAdExStep, ConductanceStep, LinearStep
from evospike.ir.modulators import Modulator
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
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP
from evospike.ir.timing import schedule_refusals
from evospike.native_build import NativeBuildError
from evospike.realize import POISSON_CHUNK_STEPS
from evospike.registry import Registry, label

from ..processes import THomeostasis, TMetaplasticity, TModulator
from .build import kernel_has_openmp, load_kernel, openmp_note

MAX_STATES = 4
#: a trial's network is split across threads only with at least this many neurons per thread:
#: below it the three barriers of each step cost more than the threads save (measured on a
#: loaded 2-core VM, docs/BENCHMARKS.md: CUBA 4000 split in two ran far slower, 16000 faster)
MIN_NEURONS_PER_THREAD = 4096
#: the conductance models' constants, in the order of kernel.c's C_* (one value per neuron)
COND_KEYS = ("g_L", "E_L", "E_exc", "E_inh", "I_e", "dt_over_C", "decay_exc", "decay_inh", "C",
             "V_T", "Delta_T", "a", "tau_w", "b", "v_peak")
#: MKL's VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE: the mode torch's exp calls vm?Exp with
VML_MODE = 0x2 | 0x140000 | 0x100

#: the node kinds kernel.c carries; the engine reads each from the torch backend's tensors
CARRIED = Registry("native kernel", "update")
CARRIED.carry(Population, LIF, AdaptiveLIF, CubaLIF, Izhikevich)  # linear step, Izhikevich
CARRIED.carry(CondLIF, CondAdEx)  # with torch's exp (torch_exp_function)
CARRIED.carry(PoissonSource, SpikeTimesSource, CurrentInput, PoissonInput, Projection)
CARRIED.carry(STDP, RewardModulatedSTDP)  # plain, modulated and three-factor pair STDP
CARRIED.carry(Modulator, Homeostasis, Metaplasticity)
CARRIED.carry(SpikeMonitor, StateMonitor, WeightMonitor)
CARRIED.refuse(AdEx, "no exponential integrate-and-fire update in kernel.c")
REFRESH = ctypes.CFUNCTYPE(None)  # Meta.refresh: recompute a rule's decays after a tau change
I32, I64 = ctypes.c_int32, ctypes.c_int64
P = ctypes.c_void_p


def available_cores() -> int:
    """The CPU cores this process may run on (the default number of kernel threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@cache
def torch_exp_function(precision: str) -> tuple[int | None, str]:
    """(address, "") of the C function torch's exp computes with for ``precision``, or (None,
    why not). Torch's CPU builds with MKL compute exp with MKL's vmsExp / vmdExp (ATen's
    vml.h); the kernel calls the same function, found in the loaded torch library, so the
    conductance models round as in the eager engine. Used only if it equals torch.exp on a
    probe of values spanning the range (and the special values), else refused."""
    name = "vmsExp" if precision == "float32" else "vmdExp"
    dtype = torch.float32 if precision == "float32" else torch.float64
    lib_dir = Path(torch.__file__).parent / "lib"
    func = None
    for path in sorted(lib_dir.glob("libtorch_cpu*")) + sorted(lib_dir.glob("libmkl_rt*")):
        try:
            func = getattr(ctypes.CDLL(str(path)), name)
            break
        except (OSError, AttributeError):
            continue
    if func is None:
        return None, (f"this torch build ({torch.__version__}) exposes no {name} (MKL), so "
                      "kernel.c cannot compute exp as torch.exp does")
    func.restype = None
    func.argtypes = [ctypes.c_int32, P, P, ctypes.c_int64]
    rng = np.random.default_rng(0)
    probe = np.concatenate([rng.uniform(-1.0, 1.0, 50_000), rng.uniform(-0.1, 0.0, 50_000),
                            rng.uniform(-100.0, 100.0, 50_000), [0.0, -0.0, np.inf, -np.inf,
                                                                  np.nan, 1e-300, -1e-300,
                                                                  800.0, -800.0]])
    x = torch.as_tensor(probe).to(dtype)
    want = torch.exp(x).numpy()
    got = np.empty_like(want)
    xs = np.ascontiguousarray(x.numpy())
    for lo in range(0, xs.size, 256):  # in the kernel's blocks
        hi = min(lo + 256, xs.size)
        func(hi - lo, xs[lo:].ctypes.data, got[lo:].ctypes.data, VML_MODE)
    same = (want.view(np.uint8) == got.view(np.uint8)).reshape(want.size, -1).all(axis=1)
    if not same.all():
        return None, (f"{name} of this torch build differs from torch.exp on "
                      f"{int((~same).sum())} of {same.size} probe values")
    return ctypes.cast(func, P).value, ""


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
            ("out_count", I64), ("theta_h", P), ("cond", P * len(COND_KEYS)), ("vexp", P),
            ("vexp_mode", I64),
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
            ("w_stride", I64), ("rows_sorted", I32),
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

    class Inp(ctypes.Structure):
        _fields_ = [("pop", I32), ("channel", I32), ("drive", P)]

    class Net(ctypes.Structure):
        _fields_ = [
            ("pops", P), ("n_pops", I32), ("srcs", P), ("n_srcs", I32), ("projs", P),
            ("n_projs", I32), ("mods", P), ("n_mods", I32), ("homeos", P), ("n_homeos", I32),
            ("metas", P), ("n_metas", I32), ("inps", P), ("n_inps", I32),
        ]

    return Pop, Proj, Src, Mod, Homeo, Meta, Inp, Net


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
        if isinstance(pop.step, ConductanceStep):
            address, why = torch_exp_function(cn.config.precision)
            if address is None:
                return f"population '{pop.name}' ({type(pop.step).__name__}): {why}"
    try:
        load_kernel(cn.config.precision)
    except (NativeBuildError, OSError) as exc:
        return str(exc)
    return None


def refusals(network) -> list[str]:
    """What the kernel does not carry in ``network``, one line per group, every node named
    (empty: it carries every node)."""
    net, out = network, schedule_refusals(network, "torch native")
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
    """The kernel's view of a compiled network. ``threads``: the most CPU threads to use
    (None: every core this process may use); after construction ``threads`` is the number
    that runs and ``threading`` how: "trials" (trials in parallel), "network" (each trial's
    network split across the threads) or "one"."""

    def __init__(self, cn, threads: int | None = None):
        self.cn = cn
        self.lib = load_kernel(cn.config.precision)
        self.np_dtype = np.float32 if cn.config.precision == "float32" else np.float64
        Pop, Proj, Src, Mod, Homeo, Meta, Inp, Net = _structs(cn.config.precision)
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
            c.rows_sorted = int(_rows_sorted(proj.indptr.numpy(), proj.indices.numpy()))
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
        # PoissonInputs, in the eager engine's order (cn.inputs): their drive is pointed at
        # per call
        self.inputs = list(cn.inputs.values())
        self.inps = (Inp * max(1, len(self.inputs)))()
        for slot, tinp in enumerate(self.inputs):
            self.inps[slot].pop = self.pop_names.index(tinp.target)
            self.inps[slot].channel = tinp.channel_slot
        self._plan_threads(threads, trials, metas)
        # one lane per thread of a batch (lane 0 otherwise): the structs holding scratch
        # (fired lists, recording buffers, homeostasis factors) are the lane's own copies;
        # the kernel stops at a step boundary before a buffer could overflow and the caller
        # empties them
        self.Net = Net
        self.lanes = (Net * self.threads)() if self.threading == "trials" else (Net * 1)()
        self._buffers: list[list] = []  # per lane: (struct, node, steps, flat)
        self._lane_structs: list[tuple] = []  # per lane: (pops, srcs)
        for lane in range(len(self.lanes)):
            self._make_lane(lane, Pop, Src, Homeo)

    def _plan_threads(self, threads: int | None, trials: int, metas: list) -> None:
        """How many threads run, and how (see the class docstring)."""
        most = available_cores() if threads is None else int(threads)
        if not kernel_has_openmp(self.cn.config.precision):
            most = 1  # built without OpenMP (build.py says why)
        self.threads, self.threading = 1, "one"
        serial_trials = any(m.refresh for m in self.metas[: len(metas)])
        if most > 1 and trials >= most and not serial_trials:
            self.threads, self.threading = most, "trials"
        elif most > 1 and threads is not None:
            # only when asked for: the barriers of each step make a split network much slower
            # when the cores are busy with other work (docs/BENCHMARKS.md)
            neurons = sum(p.size for p in self.cn.populations.values())
            split = min(most, neurons // max(1, MIN_NEURONS_PER_THREAD))
            if split > 1:
                self.threads, self.threading = split, "network"

    def describe_threads(self) -> str:
        """How the threads ran, for the results' metadata ("threading")."""
        text = {"trials": "native kernel, trials in parallel",
                "network": "native kernel, each trial's network split across the threads",
                "one": "native kernel, one thread"}[self.threading]
        note = openmp_note(self.cn.config.precision)
        return f"{text}; {note}" if note else text

    def _make_lane(self, lane: int, Pop, Src, Homeo) -> None:
        if lane == 0:
            pops, srcs, homeos = self.pops, self.srcs, self.homeos
        else:
            pops = type(self.pops).from_buffer_copy(self.pops)
            srcs = type(self.srcs).from_buffer_copy(self.srcs)
            homeos = type(self.homeos).from_buffer_copy(self.homeos)
            for slot, name in enumerate(self.pop_names):
                pops[slot].fired = _ptr(self._arr(np.zeros(self.cn.network.size_of(name)),
                                                  np.int64))
            for h in homeos[: self.n_homeos]:
                if h.scaling:
                    h.factor = _ptr(self._arr(np.zeros(self.cn.network.size_of(
                        self.pop_names[h.pop]))))
        self._keep += [pops, srcs, homeos]
        net = self.lanes[lane]
        net.pops, net.n_pops = ctypes.addressof(pops), self.n_pops
        net.srcs, net.n_srcs = ctypes.addressof(srcs), self.n_srcs
        net.projs, net.n_projs = ctypes.addressof(self.projs), self.n_projs
        net.mods, net.n_mods = ctypes.addressof(self.mods), len(self.mod_names)
        net.homeos, net.n_homeos = ctypes.addressof(homeos), self.n_homeos
        net.metas, net.n_metas = ctypes.addressof(self.metas), self.n_metas
        net.inps, net.n_inps = ctypes.addressof(self.inps), len(self.inputs)
        buffers = []
        named = [*zip(pops[: self.n_pops], self.pop_names, strict=True),
                 *zip(srcs[: self.n_srcs], self.src_names, strict=True)]
        for s, name in named:
            if s.record:
                cap = max(1 << 16, 8 * s.n)
                steps, flat = np.empty(cap, np.int64), np.empty(cap, np.int64)
                s.out_step, s.out_flat, s.out_cap = steps.ctypes.data, flat.ctypes.data, cap
                self._keep += [steps, flat]
                buffers.append((s, name, steps, flat))
        self._buffers.append(buffers)
        self._lane_structs.append((pops, srcs))

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
        elif isinstance(pop.step, ConductanceStep):
            s.kind = 3 if isinstance(pop.step, CondAdExStep) else 2
            for j, key in enumerate(COND_KEYS):
                if key in c:  # CondLIF has no AdEx constants
                    s.cond[j] = _ptr(self._arr(np.broadcast_to(c[key].numpy(), (pop.size,))))
            s.v_thresh = _ptr(self._arr(np.broadcast_to(c["v_thresh"].numpy(), (pop.size,))))
            s.v_reset = _ptr(self._arr(np.broadcast_to(c["v_reset"].numpy(), (pop.size,))))
            s.hold_steps = _ptr(self._arr(np.broadcast_to(c["hold_steps"].numpy(), (pop.size,)),
                                          np.int32))
            s.has_refractory = int(pop.has_refractory)
            s.dt_ms = self.cn.network.dt_ms
            s.vexp, _ = torch_exp_function(self.cn.config.precision)
            s.vexp_mode = VML_MODE
        else:
            s.kind = 1
            for j, key in enumerate(("a", "b", "c", "d", "v_peak", "i_bias", "decay_exc",
                                     "decay_inh")):
                s.izh[j] = _ptr(c[key])
                s.izh_n[j] = c[key].numel()
            s.dt_ms = self.cn.network.dt_ms
        # one trial per kernel call: a fired list holds one trial's neurons
        s.fired = _ptr(self._arr(np.zeros(pop.size, dtype=np.int64), np.int64))
        s.record = int(record)

    def _point_inputs(self, inp, first: int, stop: int, keep: list) -> None:
        """Point currents, source step pointers, rewards and PoissonInput drives at chunk
        offsets [first, stop), in every lane."""
        for slot, name in enumerate(self.pop_names):
            cur = inp.currents.get(name)
            ptr = None
            if cur is not None:
                arr = np.ascontiguousarray(cur[first:stop], dtype=self.np_dtype)
                keep.append(arr)
                ptr = arr.ctypes.data
            for pops, _ in self._lane_structs:
                pops[slot].current = ptr
        for slot, name in enumerate(self.src_names):
            flat = np.ascontiguousarray(inp.source_flat[name], dtype=np.int64)
            ptr = np.ascontiguousarray(inp.source_ptr[name][first:stop + 1], dtype=np.int64)
            keep += [flat, ptr]
            for _, srcs in self._lane_structs:
                srcs[slot].flat, srcs[slot].ptr = flat.ctypes.data, ptr.ctypes.data
        for slot, name in enumerate(self.mod_names):
            reward = np.ascontiguousarray(inp.rewards[name][first:stop], dtype=np.float64)
            keep.append(reward)
            self.mods[slot].reward = reward.ctypes.data
        for slot, tinp in enumerate(self.inputs):
            # the eager engine's own chunk of draws (TPoissonInput.at loads it)
            step = inp.start + first
            tinp.at(step)
            drive = tinp.drive
            assert drive.is_contiguous() and drive.dtype == self.cn.dtype
            keep.append(drive)
            row = step - tinp.chunk * POISSON_CHUNK_STEPS
            self.inps[slot].drive = drive.data_ptr() + row * drive.stride(0) * \
                drive.element_size()

    def _pieces(self, inp, start: int, n_steps: int) -> list[tuple[int, int]]:
        """Steps [start, start + n_steps) cut where a PoissonInput loads its next chunk of
        draws: one kernel call never spans two."""
        cuts = [start, start + n_steps]
        if self.inputs:
            first = (start // POISSON_CHUNK_STEPS + 1) * POISSON_CHUNK_STEPS
            cuts[1:1] = range(first, start + n_steps, POISSON_CHUNK_STEPS)
        return list(zip(cuts[:-1], cuts[1:], strict=True))

    def _drain(self, lanes: range, out: dict) -> None:
        for lane in lanes:
            for s, name, steps, flat in self._buffers[lane]:
                out.setdefault(name, []).append(
                    (steps[: s.out_count].copy(), flat[: s.out_count].copy()))
                s.out_count = 0

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error

    def run(self, inp, start: int, n_steps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Run steps [start, start + n_steps) of chunk ``inp``; returns recorded spikes per node
        as (steps, flat indices).

        Each kernel call runs one trial through all the steps (trials never interact, and one
        trial's state stays in cache where a whole batch's would not): one trial after
        another, split across threads ("network"), or several at once ("trials")."""
        out: dict[str, list] = {}
        trials = len(self.cn.config.seeds)
        for lo, hi in self._pieces(inp, start, n_steps):
            keep: list = []
            self._point_inputs(inp, lo - inp.start, hi - inp.start, keep)
            n = hi - lo
            if self.threading == "trials":
                done = np.zeros(trials, np.int64)
                while (done < n).any():
                    before = int(done.sum())
                    self.lib.evospike_run_batch(ctypes.addressof(self.lanes), len(self.lanes),
                                                lo, n, trials, done.ctypes.data)
                    self._raise_callback_error()
                    self._drain(range(len(self.lanes)), out)
                    if int(done.sum()) == before:
                        raise RuntimeError("native kernel made no progress (recording buffer "
                                           "too small)")
                continue
            for trial in range(trials):
                done = 0
                while done < n:
                    ran = self.lib.evospike_run(ctypes.addressof(self.lanes), lo, done, n,
                                                trial, self.threads)
                    self._raise_callback_error()
                    self._drain(range(1), out)
                    if ran == 0:
                        raise RuntimeError("native kernel made no progress (recording buffer "
                                           "too small)")
                    done += ran
        empty = np.zeros(0, np.int64)
        return {name: (np.concatenate([a for a, _ in parts] or [empty]),
                       np.concatenate([b for _, b in parts] or [empty]))
                for name, parts in out.items()}


def _rows_sorted(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether every CSR row lists its targets in ascending order (ties allowed)."""
    if indices.size < 2:
        return True
    falls = np.flatnonzero(np.diff(indices.astype(np.int64)) < 0) + 1
    # a fall is allowed only where a row starts
    return bool(np.isin(falls, indptr).all())
