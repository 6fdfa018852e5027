"""Brunel (2000) model A: a sparse network of excitatory and inhibitory LIF neurons with delta
synapses, in its four states by name.

Source: N. Brunel, "Dynamics of sparsely connected networks of excitatory and inhibitory spiking
neurons", J. Comput. Neurosci. 8:183-208 (2000), model A (sections 2 and 5, Fig. 8), with the
parameters of Brian2's example ``examples/frompapers/Brunel_2000.py`` (S. Schmitt, 2022), which
reproduces Fig. 8 and is the reference the tests compare against.

Model A: ``N_E = 10000`` excitatory and ``N_I = N_E / 4`` inhibitory neurons, identical;
``tau dV/dt = -V`` (tau 20 ms, rest 0 mV), a spike when ``V > theta = 20 mV``, then ``V = V_r =
10 mV`` held for ``tau_rp = 2 ms`` during which the neuron is insensitive to input (the paper;
EvoSpike's LIF gates channel ``v`` by refractoriness, as NEST's ``iaf_psc_delta`` does). Each
neuron receives exactly ``C_E = eps N_E = 1000`` excitatory and ``C_I = eps N_I = 250``
inhibitory connections (eps = 0.1, no self-connections); a spike moves the membrane of its
targets by ``J = 0.1 mV`` (excitatory) or ``-g J`` (inhibitory) after ``D = 1.5 ms``. The
external drive is ``C_ext = C_E`` afferents per neuron, each a Poisson train at
``nu_ext = eta nu_thr``, ``nu_thr = theta / (J C_E tau)`` (the rate that alone brings the mean
membrane to threshold: 10 Hz per afferent here), weight ``J``: a `PoissonInput` (the binomial
count of C_ext afferents per step, Brian2's ``PoissonInput``).

The four states of Fig. 8 (``STATES``):

    SR      g = 3,   eta = 2    synchronous regular: neurons fire regularly at high rates, locked
                                to a population rhythm set by the delay
    AI      g = 5,   eta = 2    asynchronous irregular: stationary population rate, irregular
                                neurons at low rates
    SIfast  g = 6,   eta = 4    synchronous irregular, fast: the population rate oscillates
                                (about 180 Hz in the paper) while each neuron fires irregularly,
                                far below the rhythm
    SIslow  g = 4.5, eta = 0.9  synchronous irregular, slow: a slow oscillation of the population
                                rate, neurons irregular at very low rates

J is 0.1 mV in all four, as in Brian2's example (``J_mV`` overrides it; the paper's own text
was not at hand to check J per panel). With it, the AI rate agrees with the paper's
mean-field stationary rate (37.95 Hz; 38.3 Hz simulated at full scale).

Scaling: ``scale`` multiplies N_E and N_I (1.0 is the paper's 12,500 neurons) and keeps the
in-degrees C_E, C_I and C_ext fixed, so the connection probability becomes ``0.1 / scale``. The
paper's mean-field theory depends on C_E, J, g, eta, D and the neuron, not on N (in the sparse
limit), so this keeps every neuron's input statistics; what a smaller network changes is the
amount of shared input (pairs of neurons share a fraction eps of their inputs), which makes the
population rate noisier and the states' boundaries less sharp. ``scale`` must leave N_E above
C_E (scale > 0.1).

Timing: ``schedule="evospike"`` (the default) delivers a spike sent in step n in step n + D/dt
before that step's threshold; ``schedule="brian2"`` is Brian2's default order (delivery in the
synapses slot after the threshold: one step more latency), which is what Brian2's example runs
(see docs/PORTING.md). The population rhythm of SR is set by that latency.

    evospike run examples/brunel.py --duration 1000ms --out brunel_ai.h5   # AI, full scale
    evospike plot brunel_ai.h5 --t-start 900ms --t-stop 1000ms

``evospike run`` calls ``build()`` with its defaults (AI, scale 1); for another state, build it
from Python and run or save it::

    from examples.brunel import build
    build("SR", scale=0.25).save("brunel_sr.h5")      # then: evospike run brunel_sr.h5

``examples/brunel_figure.py`` runs all four states and draws a figure like Fig. 8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evospike import LIF, FixedInDegree, Network, Uniform
from evospike.errors import EvoSpikeError
from evospike.results import Results

TAU_MS = 20.0
THETA_MV = 20.0
V_RESET_MV = 10.0
TAU_RP_MS = 2.0
J_MV = 0.1
DELAY_MS = 1.5
N_E_FULL = 10_000
GAMMA = 0.25  # N_I / N_E
EPSILON = 0.1
C_E = int(EPSILON * N_E_FULL)  # 1000
C_I = int(EPSILON * GAMMA * N_E_FULL)  # 250


@dataclass(frozen=True)
class State:
    """One of Fig. 8's states: relative inhibition ``g`` and external drive ``eta``
    (nu_ext / nu_thr)."""

    g: float
    eta: float
    description: str


STATES = {
    "SR": State(3.0, 2.0, "synchronous regular"),
    "AI": State(5.0, 2.0, "asynchronous irregular"),
    "SIfast": State(6.0, 4.0, "synchronous irregular, fast oscillation"),
    "SIslow": State(4.5, 0.9, "synchronous irregular, slow oscillation"),
}


def nu_thr_hz(j_mv: float = J_MV) -> float:
    """The external rate per afferent that alone holds the mean membrane at threshold,
    ``theta / (J C_E tau)``, in Hz."""
    return THETA_MV / (j_mv * C_E * TAU_MS * 1e-3)


def build(state: str = "AI", scale: float = 1.0, schedule: str = "evospike",
          dt_ms: float = 0.1, seed: int = 1, J_mV: float = J_MV) -> Network:  # noqa: N803
    """Brunel's model A in ``state`` (a key of `STATES`) with ``scale`` x (10000 + 2500)
    neurons, in-degrees fixed (see the module docstring). ``seed`` draws the connectivity;
    the initial voltages (uniform in [0, theta)) and the external drive come from the run
    seed."""
    if state not in STATES:
        raise EvoSpikeError(f"examples/brunel.py: unknown state {state!r} (choose one of "
                            f"{', '.join(STATES)})")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or \
            not math.isfinite(scale) or scale <= 0:
        raise EvoSpikeError(f"examples/brunel.py: scale must be a positive number (got {scale!r})")
    n_e = int(round(N_E_FULL * scale))
    n_i = int(round(GAMMA * N_E_FULL * scale))
    if n_e <= C_E or n_i <= C_I:
        raise EvoSpikeError(f"examples/brunel.py: scale {scale!r} gives {n_e} excitatory "
                            f"neurons, not more than the in-degree C_E = {C_E} (keep scale > "
                            f"{C_E / N_E_FULL:g})")
    g, eta = STATES[state].g, STATES[state].eta
    cell = LIF(tau_m_ms=TAU_MS, v_rest_mV=0.0, v_reset_mV=V_RESET_MV, v_thresh_mV=THETA_MV,
               tau_refrac_ms=TAU_RP_MS)
    net = Network(f"brunel_{state}", dt_ms=dt_ms, schedule=schedule)
    start = {"v": Uniform(0.0, THETA_MV)}
    exc = net.population("exc", n_e, cell, initial=start)
    inh = net.population("inh", n_i, cell, initial=start)
    for k, (pre, weight, k_in) in enumerate(((exc, J_mV, C_E), (inh, -g * J_mV, C_I))):
        for m, post in enumerate((exc, inh)):
            net.connect(pre, post, FixedInDegree(k_in, seed=seed * 100 + 10 * k + m,
                                                 allow_self_connections=False),
                        weight=weight, delay_ms=DELAY_MS, target="v")
    nu_ext = eta * nu_thr_hz(J_mV)
    for post in (exc, inh):
        net.poisson_input(post, C_E, nu_ext, J_mV, channel="v", name=f"ext->{post.name}")
    net.record_spikes(exc, inh)
    return net


# --------------------------------------------------------------------------- read-outs
def pooled_spikes(res: Results, trial: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(steps, neurons, size) of ``trial``'s spikes of exc and inh together (inh numbered
    after exc)."""
    steps, neurons, size = [], [], 0
    for node in ("exc", "inh"):
        s, n = res.spike_steps(node, trial)
        steps.append(np.asarray(s, np.int64))
        neurons.append(np.asarray(n, np.int64) + size)
        size += res.spikes_by_node[node].size
    return np.concatenate(steps), np.concatenate(neurons), size


def _window(steps: np.ndarray, neurons: np.ndarray, dt_ms: float, n_steps: int,
            t_start_ms: float) -> tuple[np.ndarray, np.ndarray, int]:
    first = int(round(t_start_ms / dt_ms))
    if not 0 <= first < n_steps:
        raise EvoSpikeError(f"examples/brunel.py: t_start_ms {t_start_ms:g} is not within the "
                            f"run (0 to {n_steps * dt_ms:g} ms)")
    keep = steps >= first
    return steps[keep] - first, neurons[keep], n_steps - first


def population_rate(steps: np.ndarray, size: int, dt_ms: float, n_steps: int,
                    bin_ms: float = 0.1) -> np.ndarray:
    """The population rate (Hz per neuron) in bins of ``bin_ms`` (a whole number of steps) of
    spikes at ``steps`` (0 to ``n_steps``) of ``size`` neurons; an incomplete last bin is
    left out."""
    per_bin = max(1, int(round(bin_ms / dt_ms)))
    n_bins = n_steps // per_bin
    inside = steps < n_bins * per_bin
    counts = np.bincount(steps[inside] // per_bin, minlength=n_bins)
    return counts / (size * per_bin * dt_ms * 1e-3)


def spike_signature(steps: np.ndarray, neurons: np.ndarray, size: int, dt_ms: float,
                    n_steps: int, t_start_ms: float = 200.0) -> dict[str, float]:
    """The read-outs that tell Brunel's states apart, over [t_start_ms, end) of a raster of
    ``size`` neurons (spike ``k`` of neuron ``neurons[k]`` in step ``steps[k]``, ``n_steps``
    steps of ``dt_ms`` run):

    - ``rate_hz``: mean firing rate per neuron;
    - ``cv``: mean ISI coefficient of variation of the neurons with at least 3 spikes
      (0 regular, about 1 Poisson);
    - ``isi_ms``: the mean inter-spike interval, over all intervals of all neurons;
    - ``chi``: synchrony, Golomb's chi computed on spike counts in 1 ms bins,
      ``chi^2 = Var_t(mean_i c_i) / mean_i Var_t(c_i)``: 1 when every neuron fires in the same
      bins, about 1/sqrt(N) for independent neurons;
    - ``peak_hz``: the frequency of the largest peak of the population rate's power spectrum
      (0.1 ms bins, mean removed, Hann-windowed 200 ms segments averaged) between 5 and 500 Hz;
    - ``peak_power``: that peak's power over the mean power of the band (how clear the rhythm
      is; about 1 when there is none).
    """
    steps, neurons, n = _window(np.asarray(steps, np.int64), np.asarray(neurons, np.int64),
                                dt_ms, n_steps, t_start_ms)
    rate = steps.size / (size * n * dt_ms * 1e-3)

    order = np.lexsort((steps, neurons))
    s, who = steps[order].astype(np.float64), neurons[order]
    same = who[1:] == who[:-1]
    isi, owner = np.diff(s)[same], who[1:][same]
    count = np.bincount(owner, minlength=size)
    mean = np.bincount(owner, isi, minlength=size) / np.maximum(count, 1)
    var = np.bincount(owner, (isi - mean[owner]) ** 2, minlength=size) / np.maximum(count, 1)
    keep = count >= 2
    cv = float(np.mean(np.sqrt(var[keep]) / mean[keep])) if keep.any() else float("nan")
    isi_ms = float(isi.mean() * dt_ms) if isi.size else float("nan")

    per_bin = max(1, int(round(1.0 / dt_ms)))
    n_bins = n // per_bin
    inside = steps < n_bins * per_bin
    b, cell = steps[inside] // per_bin, neurons[inside]
    # each neuron's count variance over the bins, from the (neuron, bin) pairs that are not
    # empty: a dense neurons x bins matrix of a long run would not fit in memory
    key, c = np.unique(cell * n_bins + b, return_counts=True)
    s1 = np.bincount(key // n_bins, c, minlength=size)
    s2 = np.bincount(key // n_bins, c.astype(np.float64) ** 2, minlength=size)
    var_i = s2 / n_bins - (s1 / n_bins) ** 2
    pop = np.bincount(b, minlength=n_bins) / size
    chi = float(np.sqrt(pop.var() / var_i.mean())) if var_i.mean() > 0 else float("nan")

    x = population_rate(steps, size, dt_ms, n, dt_ms)
    x = x - x.mean()
    seg = min(x.size, int(round(200.0 / dt_ms)))
    n_seg = x.size // seg
    windows = x[: n_seg * seg].reshape(n_seg, seg) * np.hanning(seg)
    power = (np.abs(np.fft.rfft(windows, axis=1)) ** 2).mean(axis=0)
    freq = np.fft.rfftfreq(seg, dt_ms * 1e-3)
    band = (freq >= 5.0) & (freq <= 500.0)
    k = int(np.argmax(np.where(band, power, -np.inf)))
    mean_power = power[band].mean()
    peak_power = float(power[k] / mean_power) if mean_power > 0 else float("nan")
    return {"rate_hz": float(rate), "cv": cv, "isi_ms": isi_ms, "chi": chi,
            "peak_hz": float(freq[k]), "peak_power": peak_power}


def signature(res: Results, trial: int = 0, t_start_ms: float = 200.0) -> dict[str, float]:
    """`spike_signature` of ``trial`` of a run of `build`'s network (exc and inh together)."""
    steps, neurons, size = pooled_spikes(res, trial)
    return spike_signature(steps, neurons, size, res.dt_ms, res.n_steps, t_start_ms)
