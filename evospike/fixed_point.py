"""The fixed-point form of a network: the integers Loihi 2 (Lava's ``fixed_pt`` process models)
runs, and the quantizer that maps a float IR network onto them.

Plain data (dataclasses of NumPy arrays); no torch, no lava. The torch backend's
``precision="fixed"`` (``backends/torch/fixed.py``) and the Lava backend both take their
integers from `quantize`, so the two run the same numbers.

**The integer model** (Lava 0.10 ``PyLifModelBitAcc`` + ``PySparseModelBitAcc`` /
``PyDelaySparseModelBitAcc``; ``P`` is the `FixedPointProfile`, Loihi 2 values in brackets).
Per neuron, per step ``t``, with ``a`` the synaptic input arriving in step ``t``::

    dec(x, d)  = sign(x * (2**12 - d)) * (|x * (2**12 - d)| >> 12)       # rounds toward 0
    u'  = dec(u, du + P.du_offset[1]) + int32(a << P.act_shift[6])      # int32 arithmetic
    u   = wrap(u') [24-bit: u' - 2**24 if u' > 2**23; u' + 2**24 if u' <= -2**23]
          (or saturate to +-(2**(bits-1) - 1) where P.u_overflow == "saturate")
    v   = clip(dec(v, dv + P.dv_offset[0]) + u + (bias_mant << bias_exp),
               -(2**23 - 1), 2**23 - 1)
    held neurons (refractory) keep their v (u goes on integrating)
    spike = v > (vth << P.vth_shift[6]);  v[spike] = 0;  refractory until t + refractory_steps

The synaptic input of a projection with weight mantissas ``w`` and exponent ``e``: in the
step ``t`` a set of presynaptic neurons fires, and for every postsynaptic neuron ``j`` and
every delay ``d`` the sum ``S = sum of w over the fired synapses onto j with delay d`` becomes
``S << e`` (``e >= 0``) or ``S >> -e`` (``e < 0``: an arithmetic shift, rounding toward minus
infinity, applied to that per-step, per-delay sum, not per synapse), arriving in step
``t + d``. Sums of different projections, delays and sending steps add after their shifts.

**Timing.** A step of the IR, ``n`` (0-based), is Lava's time step ``n + 1``. A projection's
delay ``d >= 1`` (IR steps: a spike in step n arrives in step n + d) is Lava's ``Sparse``
(``d == 1``) or ``DelaySparse`` with Lava delay ``d - 1`` (Lava's connection processes send,
at each step, what they accumulated the step before: one step of latency, so Lava delay 0
lands one step later). Source spikes of step ``n`` are sent at Lava time step ``n + 1``.
Loihi 2's delays reach 63 (Lava) = 64 IR steps. State monitors sample ``u``/``v`` after the
step's reset at steps ``n % every == 0``.

**Units.** Every population has one ``scale``: integer units of ``u`` and ``v`` per unit of
the float model's ``u``/``v``, the largest power of two that keeps the threshold within
``2**(state_bits - 1 - headroom_bits)`` units, the bias within its mantissa and exponent, and
``u``/``v`` within their bits even if every presynaptic neuron fired in every step (but never
below ``2**-8`` of the first bound; a note says so then); ``quantize(..., scales=...)``
overrides it. The float voltage is ``v / scale + v_offset`` (``v_offset``: the IR reset
voltage; Lava resets to 0), the float current ``u / scale``. A float weight ``W`` onto the
population is ``W * scale`` integer units of ``u``, i.e. ``w << e << act_shift``; the
threshold is ``vth << vth_shift`` units; the bias (the IR bias minus ``dv * v_reset`` plus
constant injected currents) ``bias_mant << bias_exp`` units per step. Weight exponents are
negative only when a projection's largest weight is below 8 mantissa units at exponent 0 and
no (pre, post) pair repeats in it.

**Plain LIF** populations are reduced to this neuron exactly where that is possible (one
synaptic time constant in use, value reset, no input on channel ``v``): ``du = 1 -
exp(-dt/tau_syn)``, ``dv = 1 - exp(-dt/tau_m)``, weights times ``P_vs`` (the exact one-step
gain of the current onto the voltage) and delays one step longer (the exact integrator lets an
event reach ``v`` a step after it reaches the current). Anything else is refused by name
(`FixedPointUnsupported`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.hardware.loihi import constants as loihi
from evospike.ir.distributions import Normal, Uniform
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, CubaLIF
from evospike.ir.nodes import PoissonSource, Population, SpikeTimesSource, StateMonitor
from evospike.realize import current_is_constant, initial_state
from evospike.units import steps_of

#: why the conductance-based models have no fixed-point form
_NO_CONDUCTANCE = ("conductance synapses: Loihi 2 has no reversal-potential (conductance-based) "
                   "synapse, its LIF adds current only")

SIGN_MODES = ("excitatory", "inhibitory", "mixed")


@dataclass(frozen=True)
class FixedPointProfile:
    """Bit widths and rules of one fixed-point target. See the module docstring for the
    equations they enter. The defaults are Loihi 2's (`evospike.hardware.loihi.constants`)."""

    name: str
    description: str
    #: u and v are signed ``state_bits``-bit integers
    state_bits: int
    #: "wrap" (Loihi: one wrap-around by 2**state_bits) or "saturate"
    u_overflow: str
    #: du, dv are unsigned ``decay_bits``-bit; decay unity is 2**decay_bits
    decay_bits: int = loihi.DECAY_BITS
    du_offset: int = loihi.DU_OFFSET
    dv_offset: int = loihi.DV_OFFSET
    act_shift: int = loihi.ACT_SHIFT
    vth_shift: int = loihi.VTH_SHIFT
    vth_max: int = loihi.VTH_MAX
    bias_mant_min: int = loihi.BIAS_MANT_MIN
    bias_mant_max: int = loihi.BIAS_MANT_MAX
    bias_exp_min: int = loihi.BIAS_EXP_MIN
    bias_exp_max: int = loihi.BIAS_EXP_MAX
    #: "sign_mode": 8-bit magnitudes, one sign per projection (mixed signs lose the lowest bit,
    #: Lava's truncate_weights); "twos_complement": signed ``weight_bits``-bit mantissas
    weight_encoding: str = "sign_mode"
    weight_bits: int = loihi.WEIGHT_BITS
    weight_exp_min: int = loihi.WEIGHT_EXP_MIN
    weight_exp_max: int = loihi.WEIGHT_EXP_MAX
    #: largest delay in IR steps (None: unlimited)
    max_delay_steps: int | None = loihi.MAX_DELAY_STEPS
    #: the threshold is placed at most at 2**(state_bits - 1 - headroom_bits) integer units
    headroom_bits: int = 2
    #: the shifted synaptic input and its sum with the decayed u wrap as int32 (NumPy's int32
    #: arithmetic in Lava's model); False only for wider experimental profiles
    wrap_int32: bool = True

    @property
    def state_max(self) -> int:
        return 2 ** (self.state_bits - 1) - 1

    @property
    def decay_unity(self) -> int:
        return 2 ** self.decay_bits


LOIHI2 = FixedPointProfile(
    "loihi2", f"Intel Loihi 2 as Lava's fixed_pt models compute it ({loihi.STATE_BITS}-bit u/v, "
    f"{loihi.DECAY_BITS}-bit decays, {loihi.WEIGHT_BITS}-bit weight mantissas with a shared "
    f"exponent, {loihi.BIAS_MANT_BITS}-bit bias mantissa, {loihi.VTH_BITS}-bit threshold)",
    state_bits=loihi.STATE_BITS, u_overflow="wrap")

INT8_INT16 = FixedPointProfile(
    "int8-int16", "EvoSpikeNet's spec: INT8 weights (two's complement, shared exponent), "
    "INT16 membrane and current (saturating), 12-bit decays, no MSB-alignment shifts",
    state_bits=16, u_overflow="saturate", act_shift=0, vth_shift=0, vth_max=2 ** 15 - 1,
    bias_mant_min=-(2 ** 15), bias_mant_max=2 ** 15 - 1, bias_exp_max=0,
    weight_encoding="twos_complement", max_delay_steps=None)

PROFILES: dict[str, FixedPointProfile] = {p.name: p for p in (LOIHI2, INT8_INT16)}


def get_profile(profile: str | FixedPointProfile) -> FixedPointProfile:
    if isinstance(profile, FixedPointProfile):
        return profile
    if profile not in PROFILES:
        raise EvoSpikeError(f"fixed point: no profile {profile!r} (profiles: "
                            f"{', '.join(PROFILES)})")
    return PROFILES[profile]


class FixedPointUnsupported(UnsupportedError):
    """Nodes the fixed-point form cannot carry (all of them, with the reason)."""

    def __init__(self, reasons: list[str]):
        super().__init__("fixed point", reasons)


# --------------------------------------------------------------------------- the form
@dataclass
class FixedPopulation:
    """One population of Loihi's CUBA-LIF in integers.

    ``du``, ``dv``: Lava's 12-bit decays (u decays by ``(du + du_offset) / 4096`` per step,
    v by ``(dv + dv_offset) / 4096``). ``vth``: Lava's threshold (spike when ``v > vth <<
    vth_shift``). ``bias_mant``, ``bias_exp``: int64 (size,) each; the bias is ``bias_mant <<
    bias_exp`` integer units per step. ``refractory_steps``: after a spike in step n, ``v``
    stays 0 through step ``n + refractory_steps`` (Lava ``LIFRefractory``'s
    ``refractory_period``; 0: plain ``LIF``). ``scale``: integer units per float unit;
    ``v_offset`` (size,): float ``v = v_int / scale + v_offset``. ``source_model``: the IR
    model it came from ("CubaLIF" or "LIF")."""

    name: str
    size: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    refractory_steps: int
    scale: float
    v_offset: np.ndarray
    source_model: str
    ir_population: Population = field(repr=False)
    #: float u = sum of gain * (IR state) (LIF: P_vs * (i_exc + i_inh) / decay_syn)
    u_from: tuple[tuple[str, float], ...] = (("u", 1.0),)

    def initial_state(self, seed: int, profile: FixedPointProfile = LOIHI2
                      ) -> dict[str, np.ndarray]:
        """Initial ``u`` and ``v`` (int64, (size,)) of trial ``seed``: the IR's draw
        (`evospike.realize.initial_state`), scaled and rounded to the nearest integer."""
        state = initial_state(self.ir_population, seed)
        u = sum(gain * state[name] for name, gain in self.u_from)
        v = state["v"] - self.v_offset
        out = {"u": np.round(np.asarray(u, float) * self.scale).astype(np.int64),
               "v": np.round(v * self.scale).astype(np.int64)}
        for key, value in out.items():
            if value.size and np.abs(value).max() > profile.state_max:
                raise EvoSpikeError(f"fixed point: Population '{self.name}': initial {key} "
                                    f"{int(np.abs(value).max())} integer units does not fit "
                                    f"{profile.state_bits} bits")
        return out


@dataclass
class FixedProjection:
    """Synapses in integers, CSR by presynaptic neuron as in the IR (``indptr``, ``indices``).

    ``weights``: int64 (nnz,) mantissas, exactly the integers to give Lava's
    ``Sparse``/``DelaySparse`` (its ``clip_weights``/``truncate_weights`` leave them unchanged,
    whatever subset of synapses one Lava process holds); ``weight_exp``: the shared exponent;
    ``num_weight_bits``: 8. ``sign_mode``: "excitatory", "inhibitory" or "mixed" (mixed
    mantissas are even and within +-254). ``delays``: int64 (nnz,) in IR steps (>= 1; Lava's
    delay is ``delays - 1``)."""

    name: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    weight_exp: int
    num_weight_bits: int
    sign_mode: str
    delays: np.ndarray

    @property
    def n_synapses(self) -> int:
        return int(self.indptr[-1])

    def pre_indices(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_pre), np.diff(self.indptr))


@dataclass
class QuantizationError:
    """One row of the error table. For per-neuron or per-synapse fields the row shows the entry
    with the largest absolute error (``index``) among ``count`` entries; values are in the
    float model's units."""

    node: str
    field: str
    float_value: float
    quantized_value: float
    abs_error: float
    rel_error: float
    count: int = 1
    index: int | None = None


@dataclass
class FixedPointNetwork:
    """A network in integers: populations, projections, the IR's spike sources (their spikes
    are drawn by `evospike.realize` exactly as for every backend), monitors, and the
    quantization error of every parameter."""

    name: str
    dt_ms: float
    profile: FixedPointProfile
    populations: dict[str, FixedPopulation] = field(default_factory=dict)
    projections: dict[str, FixedProjection] = field(default_factory=dict)
    sources: dict[str, PoissonSource | SpikeTimesSource] = field(default_factory=dict)
    spike_monitors: list[str] = field(default_factory=list)
    state_monitors: dict[str, StateMonitor] = field(default_factory=dict)
    errors: list[QuantizationError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def size_of(self, name: str) -> int:
        if name in self.populations:
            return self.populations[name].size
        return self.sources[name].size

    def error_table(self) -> str:
        """The quantization errors as a text table."""
        head = (f"{'node':<20} {'field':<14} {'float':>14} {'quantized':>14} {'abs err':>11} "
                f"{'rel err':>9}  entries")
        lines = [head, "-" * len(head)]
        for e in self.errors:
            where = "" if e.index is None else f" (worst at {e.index})"
            lines.append(f"{e.node:<20} {e.field:<14} {e.float_value:>14.6g} "
                         f"{e.quantized_value:>14.6g} {e.abs_error:>11.3g} {e.rel_error:>9.2e}"
                         f"  {e.count}{where}")
        return "\n".join(lines)

    def max_rel_error(self, field_name: str) -> float:
        rows = [e.rel_error for e in self.errors if e.field == field_name]
        return max(rows) if rows else 0.0


# --------------------------------------------------------------------------- quantizer
def _error_row(node: str, name: str, exact, quantized) -> QuantizationError:
    exact = np.atleast_1d(np.asarray(exact, dtype=np.float64))
    quantized = np.broadcast_to(np.atleast_1d(np.asarray(quantized, dtype=np.float64)),
                                exact.shape)
    err = np.abs(quantized - exact)
    k = int(np.argmax(err)) if err.size else 0
    if not err.size:
        return QuantizationError(node, name, 0.0, 0.0, 0.0, 0.0, 0)
    ref = abs(float(exact[k]))
    rel = float(err[k]) / ref if ref > 0 else (0.0 if err[k] == 0 else math.inf)
    return QuantizationError(node, name, float(exact[k]), float(quantized[k]), float(err[k]),
                             rel, int(exact.size), k if exact.size > 1 else None)


def _uniform(values, what: str, reasons: list[str]) -> float | None:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if np.all(arr == arr[0]):
        return float(arr[0])
    reasons.append(f"{what} differs between neurons (Loihi's LIF has one value per "
                   "population)")
    return None


@dataclass
class _Float:
    """A population as Loihi's CUBA-LIF in float, before quantization (v shifted so that
    the reset is 0)."""

    pop: Population
    du: float
    dv: float
    vth: float
    bias: np.ndarray
    v_offset: np.ndarray
    refractory_steps: int
    u_from: tuple[tuple[str, float], ...]
    #: channel -> (weight factor, extra delay steps)
    channel_map: dict[str, tuple[float, int]]
    model: str


def _lif_gain(model: LIF, channel: str, dt_ms: float) -> float:
    """Exact one-step gain of channel ``channel``'s current onto ``v`` (evospike.dynamics)."""
    from evospike.dynamics import one_step

    tau_m = float(np.ravel(model.tau_m_ms)[0])
    tau_s = float(np.ravel(getattr(model, f"tau_syn_{channel}_ms"))[0])
    step = one_step(LIF(tau_m_ms=tau_m, tau_syn_exc_ms=tau_s, tau_syn_inh_ms=tau_s,
                        v_rest_mV=0.0, v_reset_mV=-1.0, v_thresh_mV=1.0), "gain", dt_ms)
    return float(step.P[0, 1, 0])


def _as_cuba(net: Network, pop: Population, reasons: list[str]) -> _Float | None:
    m = pop.model
    n = pop.size
    label = f"Population '{pop.name}'"
    before = len(reasons)
    dt = net.dt_ms
    currents = [c for c in net.currents.values() if c.target == pop.name]
    for cur in currents:
        if not current_is_constant(cur):
            reasons.append(f"CurrentInput '{cur.name}': changes over time (the fixed-point "
                           "neuron takes a constant bias only)")
    i_const = sum((np.broadcast_to(np.asarray(c.amplitude, float), (n,)) for c in currents),
                  np.zeros(n))
    incoming = [p for p in net.projections.values() if p.post == pop.name and p.n_synapses]
    if any(p.target == "v" for p in incoming):
        reasons.append(f"{label}: projections onto channel 'v' (Loihi's LIF takes synaptic "
                       "input only into its current u)")
    if not isinstance(m, (CubaLIF, LIF)) or type(m).__name__ == "AdaptiveLIF":
        why = {"AdaptiveLIF": "adaptive thresholds have no Loihi LIF counterpart",
               "Izhikevich": "no Izhikevich neuron in Loihi's fixed-point LIF",
               "AdEx": "no exponential spike initiation or adaptation current in Loihi's "
                       "fixed-point LIF",
               "CondLIF": _NO_CONDUCTANCE, "CondAdEx": _NO_CONDUCTANCE}.get(
            m.kind, "only CubaLIF (and LIF that reduces to it) is carried")
        reasons.append(f"{label}: {m.kind} neurons ({why})")
        return None
    if m.reset != "value":
        reasons.append(f"{label}: reset='{m.reset}' (Loihi's LIF resets v to a value)")
    taus = np.atleast_1d(np.asarray(m.tau_refrac_ms, float))
    if not np.all(taus == taus[0]):
        reasons.append(f"{label}: tau_refrac_ms differs between neurons (one refractory "
                       "period per population)")
    r = steps_of(float(taus[0]), dt, "Population", pop.name, f"{m.kind}.tau_refrac_ms")
    refractory = max(r - 1, 0)
    if isinstance(m, CubaLIF):
        du = _uniform(m.du, f"{label}: CubaLIF.du", reasons)
        dv = _uniform(m.dv, f"{label}: CubaLIF.dv", reasons)
        span = _uniform(np.asarray(m.v_thresh, float) - np.asarray(m.v_reset, float),
                        f"{label}: CubaLIF.v_thresh - v_reset", reasons)
        if len(reasons) > before:
            return None
        v_reset = np.broadcast_to(np.asarray(m.v_reset, float), (n,)).copy()
        bias = np.broadcast_to(np.asarray(m.bias, float), (n,)) - dv * v_reset + i_const
        return _Float(pop, du, dv, span, bias, v_reset, refractory, (("u", 1.0),),
                      {"exc": (1.0, 0), "inh": (1.0, 0)}, "CubaLIF")
    # plain LIF: reduce exactly or refuse
    tau_m = _uniform(m.tau_m_ms, f"{label}: LIF.tau_m_ms", reasons)
    span = _uniform(np.asarray(m.v_thresh_mV, float) - np.asarray(m.v_reset_mV, float),
                    f"{label}: LIF.v_thresh_mV - v_reset_mV", reasons)
    used = sorted({p.target for p in incoming if p.target in ("exc", "inh")}) or ["exc"]
    taus_s = {ch: _uniform(getattr(m, f"tau_syn_{ch}_ms"), f"{label}: LIF.tau_syn_{ch}_ms",
                           reasons) for ch in used}
    if len(used) == 2 and None not in taus_s.values() and taus_s["exc"] != taus_s["inh"]:
        reasons.append(f"{label}: LIF with excitatory and inhibitory synaptic time constants "
                       f"{taus_s['exc']:g} and {taus_s['inh']:g} ms both in use (Loihi's LIF "
                       "has one synaptic current; it reduces exactly only with one)")
    for state in ("i_exc", "i_inh"):
        if isinstance(pop.initial.get(state), (Uniform, Normal)):
            reasons.append(f"{label}: a random initial {state} (the reduction needs it as "
                           "numbers)")
    if len(reasons) > before:
        return None
    tau_s = taus_s[used[0]]
    decay_s = math.exp(-dt / tau_s)
    a = math.exp(-dt / tau_m)
    v_reset = np.broadcast_to(np.asarray(m.v_reset_mV, float), (n,)).copy()
    rest = np.broadcast_to(np.asarray(m.v_rest_mV, float) + np.asarray(m.i_bias_mV, float),
                           (n,))
    # the exact integrator's gain of a held current onto v over one step is (1 - a)
    bias = (1.0 - a) * (rest + i_const - v_reset)
    gains = {ch: _lif_gain(m, ch, dt) for ch in ("exc", "inh")}
    return _Float(pop, 1.0 - decay_s, 1.0 - a, span, bias, v_reset, refractory,
                  (("i_exc", gains["exc"] / decay_s), ("i_inh", gains["inh"] / decay_s)),
                  {"exc": (gains["exc"], 1), "inh": (gains["inh"], 1)}, "LIF")


def _pow2_floor(x: float) -> float:
    return float(2.0 ** math.floor(math.log2(x)))


def _bias_parts(values: np.ndarray, prof: FixedPointProfile, pop: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mantissa and exponent per neuron with ``mant << exp`` nearest to ``values``."""
    exp = np.full(values.shape, prof.bias_exp_max, dtype=np.int64)
    done = np.zeros(values.shape, dtype=bool)
    for e in range(prof.bias_exp_min, prof.bias_exp_max + 1):
        m = np.round(values / 2.0 ** e)
        fits = ~done & (m <= prof.bias_mant_max) & (m >= prof.bias_mant_min)
        exp[fits] = e
        done |= fits
    mant = np.round(values / 2.0 ** exp)
    if np.any((mant > prof.bias_mant_max) | (mant < prof.bias_mant_min)):
        raise EvoSpikeError(f"fixed point: Population '{pop}': bias {float(np.abs(values).max())}"
                            f" integer units exceeds the profile's {prof.bias_mant_max} << "
                            f"{prof.bias_exp_max}")
    return mant.astype(np.int64), exp


def _weight_limits(prof: FixedPointProfile, sign_mode: str) -> tuple[int, int, int]:
    """(lowest, highest mantissa, step) for a sign mode."""
    if prof.weight_encoding == "twos_complement":
        top = 2 ** (prof.weight_bits - 1)
        return -top, top - 1, 1
    top = 2 ** prof.weight_bits - 1
    if sign_mode == "excitatory":
        return 0, top, 1
    if sign_mode == "inhibitory":
        return -top, 0, 1
    # mixed: Lava's truncate_weights drops the lowest bit; +-254 keeps any subset of the
    # synapses unchanged whatever sign mode Lava infers for it
    return -(top - 1), top - 1, 2


def quantize_weights(target_units: np.ndarray, prof: FixedPointProfile, exp_floor: int
                     ) -> tuple[np.ndarray, int, str]:
    """(mantissas, weight_exp, sign_mode) with ``mant << exp`` nearest to ``target_units``
    (weights in units of ``2**act_shift`` integer units of u). ``exp_floor``: the lowest
    exponent allowed."""
    t = np.asarray(target_units, dtype=np.float64)
    if t.size == 0 or not np.any(t):
        return np.zeros(t.shape, np.int64), 0, "excitatory"
    sign = "excitatory" if t.min() >= 0 else "inhibitory" if t.max() <= 0 else "mixed"
    lo, hi, step = _weight_limits(prof, sign)
    exp = prof.weight_exp_min
    while exp < prof.weight_exp_max:
        scaled = np.round(t / 2.0 ** exp / step) * step
        if scaled.min() >= lo and scaled.max() <= hi:
            break
        exp += 1
    exp = max(exp, exp_floor)
    mant = np.round(t / 2.0 ** exp / step) * step
    if mant.min() < lo or mant.max() > hi:  # never clipped silently
        raise EvoSpikeError(f"fixed point: weights of {float(np.abs(t).max()):.6g} units need "
                            f"an exponent above the {prof.name} profile's {prof.weight_exp_max}"
                            " (pass a smaller scale for the postsynaptic population)")
    return mant.astype(np.int64), int(exp), sign


#: Network fields the quantizer reads or refuses by name below
_KNOWN_FIELDS = {"name", "dt_ms", "units", "populations", "sources", "projections", "currents",
                 "spike_monitors", "state_monitors", "weight_monitors", "plasticity",
                 "processes",
                 # checked by the backends (schedule_refusals); notes with no dynamics
                 "schedule", "metadata"}


def _refusals_other(net: Network) -> list[str]:
    out = []
    # CubaLIF is unit-free (its scale is set by its threshold); the LIF reduction reads mV
    if net.units != "mV" and any(type(p.model) is not CubaLIF for p in net.populations.values()):
        out.append(f"Network '{net.name}': units {net.units!r} (the fixed-point mode carries "
                   "networks in mV only, unless every population is CubaLIF)")
    for f in fields(net):  # node kinds added to the IR later are refused, never skipped
        value = getattr(net, f.name)
        if f.name not in _KNOWN_FIELDS and value:
            items = value.values() if isinstance(value, dict) else value
            for node in items if isinstance(items, (list, tuple, type({}.values()))) else [
                    value]:
                label = getattr(node, "name", f.name)
                out.append(f"{type(node).__name__} '{label}': not carried by the fixed-point "
                           "mode")
    for name in net.plasticity:
        # STDP that Loihi 2's learning engine carries is planned by backends/lava/learning.py
        out.append(f"{type(net.plasticity[name]).__name__} '{name}': plasticity (the "
                   "quantizer runs fixed weights; only the STDP of "
                   "evospike.backends.lava.learning is carried in fixed point)")
    for name, proc in net.processes.items():
        out.append(f"{type(proc).__name__} '{name}': neuromodulatory/structural processes "
                   "are not carried by the fixed-point mode")
    for name in net.weight_monitors:
        out.append(f"WeightMonitor '{name}': weights are fixed in the fixed-point mode")
    for name, mon in net.state_monitors.items():
        if mon.target in net.processes:
            continue
        pop = net.populations.get(mon.target)
        if pop is None:
            continue
        if isinstance(pop.model, LIF) and mon.variable != "v":
            out.append(f"StateMonitor '{name}': {mon.variable} of LIF population "
                       f"'{mon.target}' (the reduced neuron holds one current u; only v "
                       "carries over)")
    return out


def quantize(network: Network, profile: str | FixedPointProfile = "loihi2",
             scales: dict[str, float] | None = None,
             weight_exp_floors: dict[str, int] | None = None) -> FixedPointNetwork:
    """The fixed-point form of ``network`` on ``profile`` ("loihi2" or "int8-int16").

    ``scales`` (population -> integer units per float unit) overrides the scale chosen for a
    population (by default the largest power of two that keeps the threshold within the
    profile's headroom, the bias within its mantissa, and u and v in range even if every
    presynaptic neuron fired every step). ``weight_exp_floors`` (projection -> exponent):
    the lowest weight exponent a projection may take, in place of the default rule (0, or
    the profile's minimum for weights below 8 mantissa units): for a plastic projection
    whose weights must be able to grow to a bound.

    Refuses (`FixedPointUnsupported`, every node at once) what the integer model cannot
    carry: neuron models other than CubaLIF and reducible LIF, per-neuron decays or thresholds,
    subtractive reset, input on channel ``v``, time-varying currents, plasticity and processes,
    delays beyond the profile's range."""
    prof = get_profile(profile)
    reasons = _refusals_other(network)
    floats: dict[str, _Float] = {}
    for pop in network.populations.values():
        f = _as_cuba(network, pop, reasons)
        if f is not None:
            floats[pop.name] = f
    for proj in network.projections.values():
        if prof.max_delay_steps is not None and proj.n_synapses and proj.post in floats:
            extra = floats[proj.post].channel_map[proj.target][1] if \
                proj.target in floats[proj.post].channel_map else 0
            longest = int(proj.delays.max()) + extra
            if longest > prof.max_delay_steps:
                reasons.append(f"Projection '{proj.name}': delay of {longest} steps "
                               f"(the {prof.name} profile reaches {prof.max_delay_steps})")
    if reasons:
        raise FixedPointUnsupported(reasons)

    out = FixedPointNetwork(network.name, network.dt_ms, prof)
    unity = prof.decay_unity
    thresh_units = 2.0 ** (prof.state_bits - 1 - prof.headroom_bits)
    for name, f in floats.items():
        n = f.pop.size
        du = int(np.clip(round(f.du * unity) - prof.du_offset, 0, unity - 1))
        dv = int(np.clip(round(f.dv * unity) - prof.dv_offset, 0, unity - 1))
        # The largest power-of-two scale that keeps (1) the threshold below the headroom, (2)
        # the bias within its mantissa and exponent, (3) u and v in range even if every
        # presynaptic neuron fired in every step (u then tends to the sum of its weights over
        # du), but (4) never below 2**-8 of (1): the threshold keeps >= 2**(bits-1-headroom-
        # vth_shift-8) levels, and a note says that (3) no longer holds.
        cap = thresh_units / f.vth
        peak_bias = float(np.max(np.abs(f.bias))) if n else 0.0
        limit = cap
        if peak_bias > 0:
            limit = min(limit, prof.bias_mant_max * 2.0 ** prof.bias_exp_max / peak_bias)
        pos, neg = np.zeros(n), np.zeros(n)
        for proj in network.projections.values():
            if proj.post == name and proj.n_synapses:
                w = proj.weights * f.channel_map.get(proj.target, (1.0, 0))[0]
                pos += np.bincount(proj.indices, np.maximum(w, 0.0), minlength=n)
                neg += np.bincount(proj.indices, np.maximum(-w, 0.0), minlength=n)
        u_bound = max(float(pos.max(initial=0.0)), float(neg.max(initial=0.0))) / (
            (du + prof.du_offset) / unity)
        range_limit = prof.state_max / (f.vth + u_bound + peak_bias) if u_bound > 0 else limit
        if scales is not None and name in scales:
            s = float(scales[name])
        else:
            s = _pow2_floor(min(limit, max(range_limit, cap / 2 ** 8)))
            if range_limit < cap / 2 ** 8:
                out.notes.append(f"Population '{name}': u can exceed its {prof.state_bits}-bit "
                                 f"range if its inputs fire densely (worst-case |u| "
                                 f"{u_bound:.3g}, {u_bound / f.vth:.3g} x the threshold)")
        vth = int(round(f.vth * s / 2 ** prof.vth_shift))
        if not 0 <= vth <= prof.vth_max:
            raise EvoSpikeError(f"fixed point: Population '{name}': threshold {vth} is outside "
                                f"0..{prof.vth_max}")
        mant, exp = _bias_parts(f.bias * s, prof, name)
        out.populations[name] = FixedPopulation(
            name, n, du, dv, vth, mant, exp, f.refractory_steps, s, f.v_offset, f.model,
            f.pop, f.u_from)
        out.errors += [
            _error_row(name, "du", f.du, (du + prof.du_offset) / unity),
            _error_row(name, "dv", f.dv, (dv + prof.dv_offset) / unity),
            _error_row(name, "v_thresh", f.vth, vth * 2 ** prof.vth_shift / s),
            _error_row(name, "bias", f.bias, mant * 2.0 ** exp / s),
        ]
    for proj in network.projections.values():
        f = floats[proj.post]
        gain, extra = f.channel_map.get(proj.target, (1.0, 0))
        s = out.populations[proj.post].scale
        exact = proj.weights * gain
        target = exact * s / 2 ** prof.act_shift
        peak = float(np.max(np.abs(target))) if target.size else 0.0
        pre = proj.pre_indices()
        pairs = pre * proj.n_post + proj.indices.astype(np.int64)
        repeated = np.unique(pairs).size < pairs.size
        # A negative exponent floors each step's sum; it is used only where the weights are
        # too small for a useful mantissa at exponent 0, and never where one (pre, post) pair
        # repeats (Lava then splits the projection and would floor each part on its own).
        floor = 0 if (peak >= 8 or repeated) else prof.weight_exp_min
        if weight_exp_floors and proj.name in weight_exp_floors:
            floor = int(weight_exp_floors[proj.name])
        try:
            mant, wexp, sign = quantize_weights(target, prof, floor)
        except EvoSpikeError as exc:
            raise EvoSpikeError(f"Projection '{proj.name}': {exc}") from None
        out.projections[proj.name] = FixedProjection(
            proj.name, proj.pre, proj.post, proj.n_pre, proj.n_post, proj.indptr.copy(),
            proj.indices.astype(np.int64), mant, wexp, prof.weight_bits, sign,
            proj.delays.astype(np.int64) + extra)
        if proj.n_synapses:
            out.errors.append(_error_row(proj.name, "weights", exact,
                                         mant * 2.0 ** (wexp + prof.act_shift) / s))
        if extra:
            out.notes.append(f"Projection '{proj.name}': delays one step longer and weights "
                             f"times {gain:.6g} (exact reduction of LIF '{proj.post}')")
    out.sources = dict(network.sources)
    out.spike_monitors = [m.target for m in network.spike_monitors]
    out.state_monitors = {k: m for k, m in network.state_monitors.items()
                          if m.target in out.populations}
    return out


def fixed_refusals(network: Network, profile: str | FixedPointProfile = "loihi2") -> list[str]:
    """What `quantize` would refuse, as a list (empty: the network is carried)."""
    try:
        quantize(network, profile)
    except FixedPointUnsupported as exc:
        return exc.reasons
    return []


__all__ = ["FixedPointProfile", "LOIHI2", "INT8_INT16", "PROFILES", "get_profile",
           "FixedPopulation", "FixedProjection", "FixedPointNetwork", "QuantizationError",
           "FixedPointUnsupported", "quantize", "quantize_weights", "fixed_refusals"]
