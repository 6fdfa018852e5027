"""The cortical microcircuit of Potjans & Diesmann (2014), Cereb Cortex 24:785-806.

Eight populations (excitatory and inhibitory cells of layers 2/3, 4, 5 and 6; 77,169 neurons at
full scale), about 3e8 synapses, current-based LIF neurons with exponential synaptic currents
(NEST's ``iaf_psc_exp``), driven by a Poisson background (K_ext afferents at 8 Hz onto every
neuron) or by the DC current of the same mean.

Parameters and rules are those of NEST's PyNEST example ``pynest/examples/Potjans_2014``
(network_params.py, helpers.py, network.py; removed from the NEST tree in commit 09c1a3ccf, read
at its parent e0a07455), written again here:

- connectivity: "fixed total number" of synapses per pair of populations,
  ``Q = ln(1 - C) / ln(1 - 1 / (N_pre N_post))`` from the connection probability C, pre and
  post neurons drawn uniformly with replacement (multapses and autapses allowed);
- weights: PSP amplitude 0.15 mV converted to a current amplitude (87.81 pA), L4e -> L2/3e
  doubled, inhibitory ones g = -4 times as large, each synapse drawn from a normal law of 10 %
  relative SD, redrawn while its sign is wrong;
- delays: normal with mean 1.5 ms (excitatory) / 0.75 ms (inhibitory) and 50 % relative SD,
  redrawn below 0.05 ms, rounded to the 0.1 ms grid (so at least one step);
- initial membrane potentials: normal per population (the example's "optimized" values);
- downscaling: ``scale`` multiplies the neuron numbers, ``k_scale`` the in-degrees. When
  ``k_scale < 1`` the weights grow by 1/sqrt(k_scale) (keeping the input variance) and a DC
  current makes up the mean input the lost synapses would have brought at the full-scale
  rates, as the NEST example does.

Currents are held as R_m I in mV (EvoSpike's LIF convention): R_m = tau_m / C_m = 40 MOhm,
so 1 pA is 0.04 mV.

The published mean rates (`FULL_SCALE_RATES_HZ`) are NEST's ``full_mean_rates`` (network_params.py:
one full-scale run with Poisson background); `REFERENCE_0P1_RATES_HZ` are the mean rates of NEST's
reference data (``reference_data/rate*.dat``: N_scaling = K_scaling = 0.1, Poisson background,
spikes of 500-1500 ms).

Downscaled networks: with the Poisson background, 5 % of the neurons and a quarter of the
in-degrees already fire at the published rates. With the DC background the in-degrees cannot
shrink as far: the compensating DC assumes the full-scale rates, and without the background's
noise a network at ``k_scale`` 0.1 falls into its silent state (at scales 0.05 and 0.1 here);
``k_scale`` 0.25 (scale 0.05) or 0.5 (scale 0.1) gives rates near the published ones. Full
in-degrees in a small network (``k_scale`` 1 at ``scale`` 0.1) raise them: every neuron then
shares much of its input with its neighbours.

``build()`` without arguments is the full-scale network (2.99e8 synapses; about 4.8 GB in the
IR, float64 weights). ``benchmarks/microcircuit_report.py --scale 0.1`` runs a smaller one and
compares its rates with the published ones; from Python (``examples`` is not a package)::

    import runpy
    build = runpy.run_path("examples/microcircuit.py")["build"]
    net = build(scale=0.1, k_scale=0.5, background="dc")
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evospike import LIF, Network, ValidationError
from evospike.connectors import Connector
from evospike.ir.distributions import Normal
from evospike.memory_estimate import (
    MemoryEstimate,
    NetworkSpec,
    PopulationSpec,
    ProjectionSpec,
    estimate_memory,
)

POPULATIONS = ("L23e", "L23i", "L4e", "L4i", "L5e", "L5i", "L6e", "L6i")
#: neurons per population at full scale
FULL_SIZES = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
#: connection probabilities, row = target population, column = source population
CONN_PROBS = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443],
])
#: external (background) in-degree per population, and the rate of each afferent (Hz)
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
BG_RATE_HZ = 8.0
#: mean excitatory PSP amplitude (mV), relative inhibitory weight, weight SD / mean
PSP_EXC_MV = 0.15
G = -4.0
WEIGHT_REL_SD = 0.1
#: mean delays (ms) of excitatory and inhibitory sources, delay SD / mean
DELAY_EXC_MS = 1.5
DELAY_INH_MS = 0.75
DELAY_REL_SD = 0.5
#: neuron: membrane capacitance (pF), time constants (ms), potentials (mV), refractory period
C_M_PF = 250.0
TAU_M_MS = 10.0
TAU_SYN_MS = 0.5
E_L_MV = -65.0
V_TH_MV = -50.0
V_RESET_MV = -65.0
T_REF_MS = 2.0
#: initial membrane potential per population ("optimized" in the NEST example), mean and SD
V0_MEAN_MV = np.array([-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43])
V0_SD_MV = np.array([5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48])
#: mean rates of the full-scale network (Hz): NEST example, network_params.py full_mean_rates
FULL_SCALE_RATES_HZ = np.array([0.903, 2.965, 4.414, 5.876, 7.569, 8.633, 1.105, 7.829])
#: mean rates (Hz) and mean ISI CVs of NEST's reference data (N_scaling = K_scaling = 0.1,
#: Poisson background, 500-1500 ms; CV over neurons with >= 3 spikes in that second), computed
#: from reference_data/rate*.dat and spike_recorder-*.dat of the NEST example
REFERENCE_0P1_RATES_HZ = np.array([0.402, 2.017, 3.880, 4.958, 6.575, 7.726, 0.831, 6.986])
REFERENCE_0P1_CV = np.array([0.59, 0.55, 0.58, 0.59, 0.60, 0.62, 0.51, 0.62])
#: R_m = tau_m / C_m: mV per pA
MV_PER_PA = TAU_M_MS / C_M_PF
BACKGROUNDS = ("poisson", "dc")

_EXCITATORY = np.array([name.endswith("e") for name in POPULATIONS])


def full_synapse_numbers() -> np.ndarray:
    """Synapses from each source (column) onto each target population (row) at full scale:
    ``ln(1 - C) / ln(1 - 1 / (N_post N_pre))``, the expected number of distinct pairs of a
    Bernoulli(C) draw inverted for draws with replacement (a float matrix)."""
    prod = np.outer(FULL_SIZES, FULL_SIZES).astype(np.float64)
    return np.log1p(-CONN_PROBS) / np.log1p(-1.0 / prod)


def psc_per_psp() -> float:
    """Current amplitude (pA) of an exponential synaptic current whose PSP peaks at 1 mV
    (for C_m, tau_m, tau_syn above): 1 / max_t of the PSP of a 1 pA current."""
    tau_m, tau_s = TAU_M_MS, TAU_SYN_MS
    t_peak = tau_m * tau_s / (tau_m - tau_s) * math.log(tau_m / tau_s)
    # PSP(t) = I R_m tau_s / (tau_s - tau_m) (e^{-t/tau_s} - e^{-t/tau_m}) for a 1 pA current
    peak = MV_PER_PA * tau_s / (tau_s - tau_m) * (math.exp(-t_peak / tau_s) -
                                                  math.exp(-t_peak / tau_m))
    return 1.0 / peak


@dataclass(frozen=True)
class Derived:
    """The quantities `build` uses for a given scale (weights and currents in mV, R_m I)."""

    sizes: np.ndarray  # neurons per population
    synapses: np.ndarray  # (target, source) synapse counts
    weights_mV: np.ndarray  # (target, source) mean weights
    k_ext: np.ndarray  # background afferents per neuron (Poisson background)
    weight_ext_mV: float  # weight of one background afferent
    dc_mV: np.ndarray  # DC per population: background (DC mode) plus downscaling compensation


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ValidationError("microcircuit", "build", name, "must be a number in (0, 1]", value)
    return float(value)


def derive(scale: float = 1.0, k_scale: float = 1.0, background: str = "poisson") -> Derived:
    """Population sizes, synapse counts, weights and DC currents for ``scale`` (neurons) and
    ``k_scale`` (in-degrees), as the NEST example derives them."""
    scale, k_scale = _fraction("scale", scale), _fraction("k_scale", k_scale)
    if background not in BACKGROUNDS:
        raise ValidationError("microcircuit", "build", "background",
                              f"must be one of {BACKGROUNDS}", background)
    sizes = np.round(FULL_SIZES * scale).astype(np.int64)
    if np.any(sizes < 1):
        small = POPULATIONS[int(np.argmin(sizes))]
        raise ValidationError("microcircuit", "build", "scale",
                              f"leaves population {small} without neurons", scale)
    full = full_synapse_numbers()
    synapses = np.round(full * scale * k_scale).astype(np.int64)
    psc = psc_per_psp()
    psp = np.where(_EXCITATORY[None, :], PSP_EXC_MV, G * PSP_EXC_MV) * np.ones((8, 1))
    psp[POPULATIONS.index("L23e"), POPULATIONS.index("L4e")] = 2.0 * PSP_EXC_MV
    weights_pa = psp * psc
    weight_ext_pa = PSP_EXC_MV * psc
    if background == "dc":  # the mean current of K_ext afferents at bg_rate
        dc_pa = BG_RATE_HZ * K_EXT * weight_ext_pa * TAU_SYN_MS * 1e-3
    else:
        dc_pa = np.zeros(8)
    if k_scale != 1.0:
        # the lost synapses' mean input at the full-scale rates comes back as DC; the weights
        # grow by 1/sqrt(k) so that the input's variance stays
        shrink = 1.0 - math.sqrt(k_scale)
        in_degree = full / FULL_SIZES[:, None]
        recurrent = np.sum(weights_pa * in_degree * FULL_SCALE_RATES_HZ[None, :], axis=1)
        dc_pa = dc_pa + 1e-3 * TAU_SYN_MS * shrink * recurrent
        if background == "poisson":
            dc_pa = dc_pa + 1e-3 * TAU_SYN_MS * shrink * weight_ext_pa * K_EXT * BG_RATE_HZ
        weights_pa = weights_pa / math.sqrt(k_scale)
        weight_ext_pa = weight_ext_pa / math.sqrt(k_scale)
    k_ext = np.round(K_EXT * k_scale).astype(np.int64)
    return Derived(sizes, synapses, weights_pa * MV_PER_PA, k_ext, weight_ext_pa * MV_PER_PA,
                   dc_pa * MV_PER_PA)


@dataclass(frozen=True)
class FixedTotalNumber(Connector):
    """Exactly ``n`` synapses, each from a presynaptic and to a postsynaptic neuron drawn
    uniformly and independently (with replacement: multapses and autapses occur), as NEST's
    ``fixed_total_number`` rule."""

    n: int = 0

    #: peak working memory of `build` per synapse: the int64 sort key and one int64 draw added
    #: to it (tracemalloc on a 10^7-synapse build: 16.1 B)
    build_bytes_per_synapse: ClassVar[float] = 16.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 0:
            raise ValidationError("FixedTotalNumber", "connector", "n",
                                  "must be a non-negative integer", self.n)

    def expected_synapses(self, n_pre: int, n_post: int, same_population: bool) -> float:
        return float(self.n)

    def drops_self_connections(self, same_population: bool) -> bool:
        return False  # autapses are part of the rule

    def build(self, n_pre: int, n_post: int, same_population: bool,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if not self.allow_self_connections:
            raise ValidationError("FixedTotalNumber", "connector", "allow_self_connections",
                                  "must be True: the rule draws with replacement", False)
        key = rng.integers(0, n_pre, self.n, dtype=np.int64)
        key *= n_post
        key += rng.integers(0, n_post, self.n, dtype=np.int64)
        key.sort()  # row-major order: by presynaptic neuron, then postsynaptic
        rows = key // n_post
        counts = np.bincount(rows, minlength=n_pre)
        del rows
        indptr = np.zeros(n_pre + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        key %= n_post
        return indptr, key


def _redrawn_normal(rng: np.random.Generator, mean: float, sd: float, n: int,
                    bad) -> np.ndarray:
    """``n`` normal draws, each drawn again while ``bad(value)`` (NEST's ``redraw``)."""
    values = rng.normal(mean, sd, n)
    wrong = np.flatnonzero(bad(values))
    while wrong.size:
        values[wrong] = rng.normal(mean, sd, wrong.size)
        wrong = wrong[bad(values[wrong])]
    return values


def build(scale: float = 1.0, k_scale: float = 1.0, background: str = "poisson",
          seed: int = 55, dt_ms: float = 0.1, record: bool = True) -> Network:
    """The microcircuit with ``scale`` x the neurons and ``k_scale`` x the in-degrees
    (compensated as described above), background ``"poisson"`` (a `PoissonInput` of K_ext
    afferents at 8 Hz per neuron, NEST's Poisson counts) or ``"dc"`` (its mean as a current).
    ``seed`` fixes the connectivity, weights and delays (initial potentials and Poisson input
    come from the run's seed). Pairs of populations with no synapse at this scale get no
    projection. ``record``: record the spikes of every population."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError("microcircuit", "build", "seed", "must be an integer >= 0", seed)
    d = derive(scale, k_scale, background)
    net = Network("microcircuit", dt_ms=dt_ms)
    for i, name in enumerate(POPULATIONS):
        cell = LIF(tau_m_ms=TAU_M_MS, v_rest_mV=E_L_MV, v_reset_mV=V_RESET_MV,
                   v_thresh_mV=V_TH_MV, tau_syn_exc_ms=TAU_SYN_MS, tau_syn_inh_ms=TAU_SYN_MS,
                   tau_refrac_ms=T_REF_MS, i_bias_mV=float(d.dc_mV[i]))
        net.population(name, int(d.sizes[i]), cell,
                       initial={"v": Normal(float(V0_MEAN_MV[i]), float(V0_SD_MV[i]))})
    half_step = 0.5 * dt_ms
    for i, post in enumerate(POPULATIONS):  # target
        for j, pre in enumerate(POPULATIONS):  # source
            n = int(d.synapses[i, j])
            if n == 0:
                continue
            # one stream per projection for the synapses, another for their weights and delays
            stream = np.random.SeedSequence([int(seed), i, j])
            conn_seed, value_seed = stream.generate_state(2, dtype=np.uint32)
            rng = np.random.default_rng(int(value_seed))
            w = float(d.weights_mV[i, j])
            weights = _redrawn_normal(rng, w, abs(w) * WEIGHT_REL_SD, n,
                                      (lambda v: v < 0) if w > 0 else (lambda v: v > 0))
            mean_delay = DELAY_EXC_MS if _EXCITATORY[j] else DELAY_INH_MS
            delays = _redrawn_normal(rng, mean_delay, mean_delay * DELAY_REL_SD, n,
                                     lambda v: v < half_step)
            # to the time grid, as NEST rounds a delay to whole steps; >= 0.05 ms gives >= 1
            steps = np.maximum(1.0, np.rint(delays / dt_ms))
            net.connect(pre, post, FixedTotalNumber(n=n, seed=int(conn_seed)),
                        weight=weights, delay_ms=steps * dt_ms,
                        target="exc" if _EXCITATORY[j] else "inh")
    if background == "poisson":
        for i, name in enumerate(POPULATIONS):
            if d.k_ext[i] > 0:
                net.poisson_input(name, int(d.k_ext[i]), BG_RATE_HZ, d.weight_ext_mV,
                                  channel="exc", counts="poisson", name=f"background->{name}")
    if record:
        net.record_spikes(*POPULATIONS)
    return net


def memory_estimate(scale: float = 1.0, k_scale: float = 1.0, n_trials: int = 1,
                    duration_ms: float | None = None) -> MemoryEstimate:
    """`evospike.memory_estimate` of the network `build` would make (DC background), from the
    derived synapse counts alone, without drawing a synapse. The delay buffers are sized for
    delays up to 10 SD above the excitatory mean (9 ms), which no draw reaches in practice."""
    d = derive(scale, k_scale, "dc")
    max_delay = int(math.ceil((DELAY_EXC_MS * (1 + 10 * DELAY_REL_SD)) / 0.1))
    spec = NetworkSpec("microcircuit", 0.1,
                       {name: PopulationSpec(int(d.sizes[i]), 3)
                        for i, name in enumerate(POPULATIONS)},
                       projections=[ProjectionSpec(pre, post, n_synapses=float(d.synapses[i, j]),
                                                   max_delay_steps=max_delay,
                                                   target="exc" if _EXCITATORY[j] else "inh")
                                    for i, post in enumerate(POPULATIONS)
                                    for j, pre in enumerate(POPULATIONS) if d.synapses[i, j]],
                       record_spikes=POPULATIONS)
    return estimate_memory(spec, n_trials, duration_ms,
                           assumed_rate_hz=float(np.dot(FULL_SCALE_RATES_HZ, FULL_SIZES) /
                                                 FULL_SIZES.sum()))


def population_statistics(results, start_ms: float = 0.0, min_spikes: int = 3
                          ) -> dict[str, tuple[float, float, int]]:
    """Per population of a run of this network: (mean rate in Hz over [start_ms, end), mean ISI
    CV over the neurons with at least ``min_spikes`` spikes there, how many such neurons). The
    CV is NaN when no neuron has enough spikes."""
    out = {}
    end_ms = results.duration_ms
    if not 0.0 <= start_ms < end_ms:
        raise ValidationError("microcircuit", "population_statistics", "start_ms",
                              f"must lie in [0, {end_ms}) ms (the run's duration)", start_ms)
    first = int(round(start_ms / results.dt_ms))
    for name in POPULATIONS:
        steps, neurons = results.spike_steps(name)
        keep = steps >= first
        steps, neurons = np.asarray(steps[keep], dtype=np.int64), neurons[keep]
        size = results.spikes_by_node[name].size
        rate = steps.size / (size * (end_ms - start_ms) * 1e-3)
        order = np.lexsort((steps, neurons))
        steps, neurons = steps[order], neurons[order]
        same = neurons[1:] == neurons[:-1]
        isi = np.diff(steps)[same].astype(np.float64)
        owner = neurons[1:][same]
        n_isi = np.bincount(owner, minlength=size)
        ok = n_isi >= min_spikes - 1
        mean = np.bincount(owner, weights=isi, minlength=size)[ok] / n_isi[ok]
        sq = np.bincount(owner, weights=isi * isi, minlength=size)[ok] / n_isi[ok]
        cv = np.sqrt(np.maximum(sq - mean * mean, 0.0)) / mean
        out[name] = (float(rate), float(cv.mean()) if cv.size else float("nan"), int(cv.size))
    return out
