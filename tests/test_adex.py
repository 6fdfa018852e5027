"""The AdEx neuron (Brette & Gerstner 2005), end to end: its firing patterns (Naud et al. 2008),
its Euler step against a hand-written loop, torch against Brian2 spike for spike, and the
backends that cannot carry it refusing it by name before running."""

import math

import numpy as np
import pytest

from evospike import AdEx, FixedProbability, Network, Uniform, UnsupportedError
from evospike.backends import get_backend
from evospike.dynamics import adex_euler, one_step
from evospike.errors import EvoSpikeError, ValidationError
from tests.conftest import run_on, run_torch

# Naud, Marcille, Clopath & Gerstner (2008), Biol Cybern 99:335, Table 1 (as in Brian2's
# examples/frompapers/Naud_et_al_2008_adex_firing_patterns.py): C pF, g_L nS, E_L mV, V_T mV,
# Delta_T mV, a nS, tau_w ms, b pA, V_reset mV, and the step current in pA
NAUD = {
    "tonic": (200.0, 10.0, -70.0, -50.0, 2.0, 2.0, 30.0, 0.0, -58.0, 500.0),
    "adapting": (200.0, 12.0, -70.0, -50.0, 2.0, 2.0, 300.0, 60.0, -58.0, 500.0),
    "initial_burst": (130.0, 18.0, -58.0, -50.0, 2.0, 4.0, 150.0, 120.0, -50.0, 400.0),
    "regular_bursting": (200.0, 10.0, -58.0, -50.0, 2.0, 2.0, 120.0, 100.0, -46.0, 210.0),
    "irregular": (100.0, 12.0, -60.0, -50.0, 2.0, -11.0, 130.0, 30.0, -48.0, 160.0),
}
FIELDS = ("C_pF", "g_L_nS", "E_L_mV", "V_T_mV", "Delta_T_mV", "a_nS", "tau_w_ms", "b_pA",
          "V_reset_mV")
DT = 0.1
ONSET_MS, STIM_MS = 50.0, 1000.0
STEADY_AFTER_MS = 500.0  # ISIs starting this long after the onset are the steady state


def _naud(name: str, **extra) -> AdEx:
    return AdEx(**dict(zip(FIELDS, NAUD[name][:-1], strict=True)), **extra)


# ------------------------------------------------------------------ firing-pattern criteria
def _features(steps: np.ndarray) -> dict[str, float]:
    """ISI statistics of one neuron's response to the step (spike steps, onset excluded)."""
    t = steps * DT - ONSET_MS
    isi = np.diff(t)
    steady = isi[t[:-1] >= STEADY_AFTER_MS]
    mean = float(steady.mean())
    # lag-p periodicity: every ISI equals the one p intervals later, within 5 % of the mean
    period = next((p for p in range(1, 5) if steady.size >= 2 * p + 2 and
                   np.max(np.abs(steady[p:] - steady[:-p])) < 0.05 * mean), None)
    onset = isi[:6]
    return {
        "n": float(isi.size),
        "cv": float(steady.std() / mean),
        "period": 0.0 if period is None else float(period),
        "spread": float(steady.max() / steady.min()),
        # how much shorter the first interval is than the steady ones
        "first_ratio": float(isi[0] / mean),
        # the largest step from one onset interval to the next: gradual (adaptation) or abrupt
        # (a burst ending)
        "onset_jump": float(np.max(onset[1:] / onset[:-1])),
    }


def _classes(f: dict[str, float]) -> set[str]:
    """Every firing class whose criterion the features meet (Naud et al. 2008, Fig. 4): the
    steady state is regular (period 1), periodic with bursts (period 2-4, long and short
    intervals) or aperiodic; the onset is immediate (tonic), gradual (adapting) or a burst."""
    regular = f["period"] == 1.0 and f["cv"] < 0.05
    out = set()
    if regular and f["first_ratio"] > 0.8:
        out.add("tonic")
    if regular and f["first_ratio"] < 0.5 and f["onset_jump"] < 2.0:
        out.add("adapting")
    if regular and f["first_ratio"] < 0.5 and f["onset_jump"] > 3.0:
        out.add("initial_burst")
    if f["period"] >= 2.0 and f["spread"] > 5.0:
        out.add("regular_bursting")
    if f["period"] == 0.0 and f["cv"] > 0.2:
        out.add("irregular")
    return out


@pytest.fixture(scope="module")
def pattern_spikes() -> dict[str, np.ndarray]:
    """One neuron per parameter set (per-neuron parameters in one population), each driven by
    its step current from ONSET_MS on; float64 on the torch backend."""
    names = list(NAUD)
    table = np.array([NAUD[n] for n in names])
    net = Network("naud", dt_ms=DT)
    pop = net.population("n", len(names), AdEx(**{f: table[:, k] for k, f in enumerate(FIELDS)}))
    net.inject_current(pop, table[:, -1], start_ms=ONSET_MS)
    net.record_spikes(pop)
    res = run_torch(net, ONSET_MS + STIM_MS, precision="float64")
    steps, neurons = res.spike_steps("n")
    assert steps.min() * DT >= ONSET_MS  # silent at rest before the step
    return {name: steps[neurons == k] for k, name in enumerate(names)}


def test_each_neuron_starts_at_its_own_rest_without_adaptation():
    from evospike.realize import initial_state

    net = Network("rest", dt_ms=DT)
    pop = net.population("n", 3, AdEx(E_L_mV=[-70.0, -58.0, -60.0]))
    init = initial_state(pop, seed=0)
    np.testing.assert_array_equal(init["v"], [-70.0, -58.0, -60.0])
    np.testing.assert_array_equal(init["w_adapt"], 0.0)


@pytest.mark.parametrize("pattern", list(NAUD))
def test_naud_parameter_set_fires_its_pattern_and_no_other(pattern_spikes, pattern):
    f = _features(pattern_spikes[pattern])
    assert f["n"] >= 10, f
    assert _classes(f) == {pattern}, f


def test_the_criteria_tell_the_patterns_apart(pattern_spikes):
    feats = {name: _features(s) for name, s in pattern_spikes.items()}
    assert feats["tonic"]["first_ratio"] > 0.9 and feats["adapting"]["first_ratio"] < 0.3
    # adaptation is gradual, an initial burst ends abruptly
    assert feats["adapting"]["onset_jump"] < 2.0 < 3.0 < feats["initial_burst"]["onset_jump"]
    # bursting repeats a short-long cycle; irregular spiking repeats nothing
    assert feats["regular_bursting"]["period"] == 2.0
    assert feats["irregular"]["period"] == 0.0 and feats["irregular"]["cv"] > 0.3


# ------------------------------------------------------------------ the integration scheme
def _euler_loop(p: dict, i_e: float, refrac_steps: int, n_steps: int):
    """The AdEx equations stepped by hand (forward Euler, Brian2's refractory rule)."""
    v, w, hold = p["E_L_mV"], 0.0, 0
    spikes, vs, ws = [], [], []
    for t in range(n_steps):
        exp_term = p["g_L_nS"] * p["Delta_T_mV"] * math.exp(
            (min(v, p["V_peak_mV"]) - p["V_T_mV"]) / p["Delta_T_mV"])
        dv = (-p["g_L_nS"] * (v - p["E_L_mV"]) + exp_term - w + i_e) / p["C_pF"]
        dw = (p["a_nS"] * (v - p["E_L_mV"]) - w) / p["tau_w_ms"]
        v_new = v if hold > 0 else v + DT * dv
        w += DT * dw
        if hold == 0 and v_new >= p["V_peak_mV"]:
            spikes.append(t)
            v_new, w, hold = p["V_reset_mV"], w + p["b_pA"], refrac_steps - 1
        else:
            hold = max(hold - 1, 0)
        v = v_new
        vs.append(v)
        ws.append(w)
    return np.array(spikes), np.array(vs), np.array(ws)


@pytest.mark.parametrize("backend", ["torch-eager", "brian2"])
def test_single_neuron_matches_a_hand_written_euler_loop(backend):
    model = _naud("adapting", tau_refrac_ms=2.0, I_e_pA=500.0)
    net = Network("single", dt_ms=DT)
    pop = net.population("n", 1, model)
    net.record_spikes(pop)
    net.record_state(pop, "v")
    net.record_state(pop, "w_adapt")
    res = run_on(backend, net, 300.0, precision="float64")
    spikes, vs, ws = _euler_loop(model.parameters(), 500.0, 20, 3000)
    assert spikes.size >= 8
    np.testing.assert_array_equal(res.spike_steps("n")[0], spikes)
    np.testing.assert_allclose(res.traces["n.v"].values[0, :, 0], vs, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.traces["n.w_adapt"].values[0, :, 0], ws, rtol=0, atol=1e-8)
    # refractory: v held at the reset value for 2 ms after each spike, w jumps by b
    k = spikes[1]
    np.testing.assert_array_equal(vs[k:k + 20], -58.0)
    assert vs[k + 20] != -58.0


def test_exponent_is_clamped_at_the_spike_cut():
    step = one_step(AdEx(V_T_mV=-50.0, Delta_T_mV=2.0, V_peak_mV=0.0), "n", DT)
    p = {k: getattr(step, k).astype(np.float32) for k in
         ("C", "g_L", "E_L", "V_T", "Delta_T", "a", "tau_w", "v_peak")}
    # far above the cut: unclamped, exp((150 + 50) / 2) = exp(100) overflows float32
    v = np.array([150.0, -60.0], dtype=np.float32)
    w = np.zeros(2, dtype=np.float32)
    with np.errstate(over="raise"):
        v_new, w_new = adex_euler(np, v, w, np.float32(0.0), p, DT)
    assert np.all(np.isfinite(v_new)) and np.all(np.isfinite(w_new))
    # below the cut the clamp changes nothing
    expected = -60.0 + DT * (30.0 * (-70.6 + 60.0) + 30.0 * 2.0 * math.exp(-5.0)) / 281.0
    assert v_new[1] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ torch against Brian2
def _feedforward() -> Network:
    """Poisson sources onto an adapting AdEx population on all three channels, with a
    refractory period and a constant current."""
    net = Network("adex-ff", dt_ms=DT)
    drive = net.poisson_source("drive", 60, rate_hz=30.0)
    brake = net.poisson_source("brake", 40, rate_hz=20.0)
    kick = net.poisson_source("kick", 40, rate_hz=20.0)
    pop = net.population("pop", 25, _naud("adapting", tau_refrac_ms=1.0),
                         initial={"v": Uniform(-70.0, -55.0)})
    net.connect(drive, pop, FixedProbability(0.3, seed=1), weight=Uniform(50.0, 150.0),
                delay_ms=0.3)
    net.connect(brake, pop, FixedProbability(0.3, seed=2), weight=-60.0, delay_ms=0.2,
                target="inh")
    net.connect(kick, pop, FixedProbability(0.3, seed=3), weight=2.0, delay_ms=0.5, target="v")
    net.inject_current(pop, 200.0)
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=[0, 1, 2], every_steps=3)
    net.record_state(pop, "w_adapt", neurons=[0, 1, 2], every_steps=3)
    return net


def test_feedforward_raster_identical_on_torch_and_brian2():
    ref = run_on("brian2", _feedforward(), 300.0, precision="float64")
    cand = run_on("torch-eager", _feedforward(), 300.0, precision="float64")
    rs, rn = ref.spike_steps("pop")
    cs, cn = cand.spike_steps("pop")
    assert rs.size > 100, f"too few spikes to compare ({rs.size})"
    np.testing.assert_array_equal(cs, rs)
    np.testing.assert_array_equal(cn, rn)
    for var in ("v", "w_adapt"):
        np.testing.assert_allclose(cand.traces[f"pop.{var}"].values,
                                   ref.traces[f"pop.{var}"].values, rtol=0, atol=1e-8)


# ------------------------------------------------------------------ refusals, before the run
def _small() -> Network:
    net = Network("adex-small", dt_ms=1.0)
    src = net.spike_source("in", 2, [0, 1], [1.0, 2.0])
    pop = net.population("cells", 3, AdEx())
    net.connect(src, pop, FixedProbability(1.0, seed=1), weight=100.0)
    net.record_spikes(pop)
    return net


def test_native_engine_refuses_adex_by_name_and_auto_runs_eager():
    with pytest.raises(EvoSpikeError, match="native engine cannot run.*'cells' has AdEx"):
        get_backend("torch").compile(_small(), engine="native", progress=False)
    runner = get_backend("torch").compile(_small(), progress=False)
    assert runner.engine == "eager"
    assert "population 'cells' has AdEx neurons" in runner.engine_note


def test_fixed_point_refuses_adex_by_name():
    with pytest.raises(UnsupportedError) as info:
        get_backend("torch").compile(_small(), precision="fixed", progress=False)
    assert "Population 'cells': AdEx neurons (no exponential spike initiation" in str(info.value)


@pytest.mark.parametrize("tag", ["floating_pt", "fixed_pt"])
def test_lava_refuses_adex_by_name(tag):
    with pytest.raises(UnsupportedError) as info:
        get_backend("lava").compile(_small(), select_tag=tag, progress=False)
    assert ("Population 'cells': AdEx neurons (Lava has no adaptive exponential "
            "integrate-and-fire process)") in str(info.value)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(("build", "needle"), [
    pytest.param(lambda: AdEx(C_pF=2e-10), "C_pF must lie in [0.001", id="farads-as-pF"),
    pytest.param(lambda: AdEx(g_L_nS=3e-8), "units slip", id="siemens-as-nS"),
    pytest.param(lambda: AdEx(Delta_T_mV=0.0), "Delta_T_mV must lie in (0.0", id="delta-t-0"),
    pytest.param(lambda: AdEx(V_peak_mV=-55.0, V_T_mV=-50.0), "V_peak_mV must be above V_T_mV",
                 id="cut-below-v-t"),
    pytest.param(lambda: AdEx(V_reset_mV=5.0), "V_peak_mV must be above V_reset_mV",
                 id="reset-above-cut"),
    pytest.param(lambda: AdEx(b_pA=8e6), "b_pA must lie in", id="b-absurd"),
    pytest.param(lambda: AdEx(E_L_mV=-0.07, V_T_mV=-0.05, V_reset_mV=-0.07, V_peak_mV=0.0),
                 "look like volts", id="volts"),
])
def test_absurd_parameters_are_refused_with_the_field_named(build, needle):
    with pytest.raises(ValidationError, match=r"^AdEx 'model': ") as info:
        build()
    assert needle in str(info.value)


def test_time_step_beyond_the_membrane_time_constant_is_refused():
    net = Network("coarse", dt_ms=1.0)
    with pytest.raises(ValidationError, match=r"Population 'fast': AdEx.C_pF / g_L_nS .*"
                                              r"dt = 1.0 ms.*\(got 0.5\)"):
        net.population("fast", 2, AdEx(C_pF=10.0, g_L_nS=20.0))
    net.population("ok", 2, AdEx(C_pF=20.0, g_L_nS=20.0))  # tau_m = dt is allowed


def test_threshold_homeostasis_is_refused_for_adex():
    net = _small()
    with pytest.raises(ValidationError, match="'threshold' needs a threshold model "
                                              r"\(AdEx has none\)"):
        net.homeostasis("cells", target_rate_hz=5.0, mechanism="threshold")
