"""Single neurons against closed-form solutions and hand-written reference loops."""

import math

import numpy as np
import pytest

from evospike import LIF, AdaptiveLIF, CubaLIF, Izhikevich, Network
from tests.conftest import run_on, run_torch


def _single(model, current=None, dt_ms=0.1, initial=None):
    net = Network("single", dt_ms=dt_ms)
    pop = net.population("n", 1, model, initial=initial or {})
    if current is not None:
        net.inject_current(pop, current)
    net.record_spikes(pop)
    net.record_state(pop, "v")
    return net


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("via_current", [False, True])
def test_lif_constant_current_spikes_at_analytic_times(backend, precision, via_current):
    tau, v_rest, v_th, drive, dt, ref_ms = 10.0, -70.0, -50.0, 25.0, 0.1, 2.0
    model = LIF(tau_m_ms=tau, v_rest_mV=v_rest, v_reset_mV=v_rest, v_thresh_mV=v_th,
                tau_refrac_ms=ref_ms, i_bias_mV=0.0 if via_current else drive)
    net = _single(model, current=drive if via_current else None)
    res = run_on(backend, net, 100.0, precision=precision)
    steps, _ = res.spike_steps("n")
    # v(t) = v_inf + (v_rest - v_inf) exp(-t / tau) crosses v_th at T*:
    v_inf = v_rest + drive
    t_cross = tau * math.log((v_rest - v_inf) / (v_th - v_inf))
    first = math.ceil(t_cross / dt) - 1  # the step during which v crosses
    # reset value kept through step n + R - 1, integration from step n + R on (Brian2's rule)
    period = math.ceil(t_cross / dt) - 1 + round(ref_ms / dt)
    expected = np.arange(first, 1000, period)
    np.testing.assert_array_equal(steps, expected)
    # between spikes the voltage follows the closed form, sampled at the end of each step
    trace = res.traces["n.v"].values[0, :, 0]
    t_end = (np.arange(first) + 1) * dt
    analytic = v_inf + (v_rest - v_inf) * np.exp(-t_end / tau)
    tol = 1e-9 if precision == "float64" else 2e-4
    np.testing.assert_allclose(trace[:first], analytic, rtol=0, atol=tol)
    # during the refractory period the voltage is held at reset
    np.testing.assert_array_equal(trace[first:first + round(ref_ms / dt)], v_rest)
    assert trace[first + round(ref_ms / dt)] > v_rest


def test_lif_exponential_synapse_matches_alpha_like_closed_form(backend):
    # One input spike of weight w into i_exc: v(t) = w ts/(tm - ts) (e^{-t/tm} - e^{-t/ts})
    tm, ts, w, dt = 20.0, 5.0, 4.0, 0.1
    net = Network("psp", dt_ms=dt)
    pop = net.population("n", 1, LIF(tau_m_ms=tm, tau_syn_exc_ms=ts, v_rest_mV=0.0,
                                     v_reset_mV=-10.0, v_thresh_mV=100.0))
    src = net.spike_source("in", 1, [0], [0.0])
    net.connect(src, pop, _one(), weight=w, delay_ms=dt)
    net.record_state(pop, "v")
    res = run_on(backend, net, 50.0, precision="float64")
    v = res.traces["n.v"].values[0, :, 0]
    # the spike of step 0 arrives in step 1 (delay one step), after that step's integration
    t = (np.arange(v.size) - 1) * dt
    expected = np.where(t > 0, w * ts / (tm - ts) * (np.exp(-t / tm) - np.exp(-t / ts)), 0.0)
    np.testing.assert_allclose(v, expected, atol=1e-12)


def _one():
    from evospike import OneToOne

    return OneToOne()


def test_cuba_lif_matches_loihi_recurrence(backend):
    du, dv, bias, vth = 0.25, 0.1, 1.0, 30.0
    in_steps = [3, 4, 20, 21, 22, 60]
    net = Network("loihi", dt_ms=1.0)
    pop = net.population("n", 1, CubaLIF(du=du, dv=dv, bias=bias, v_thresh=vth))
    src = net.spike_source("in", 1, np.zeros(len(in_steps), dtype=int), np.array(in_steps, float))
    net.connect(src, pop, _one(), weight=7.0, delay_ms=1.0)
    net.record_spikes(pop)
    net.record_state(pop, "v")
    res = run_on(backend, net, 100.0, precision="float64")
    u = v = 0.0
    spikes, vs = [], []
    for t in range(100):
        a_in = 7.0 if (t - 1) in in_steps else 0.0
        u = u * (1 - du) + a_in
        v = v * (1 - dv) + u + bias
        if v > vth:
            spikes.append(t)
            v = 0.0
        vs.append(v)
    np.testing.assert_array_equal(res.spike_steps("n")[0], spikes)
    np.testing.assert_allclose(res.traces["n.v"].values[0, :, 0], vs, atol=1e-12)
    assert len(spikes) >= 3


def test_izhikevich_regular_spiking_matches_euler_loop(backend):
    a, b, c, d, current, dt = 0.02, 0.2, -65.0, 8.0, 10.0, 0.1
    net = _single(Izhikevich(a=a, b=b, c_mV=c, d=d, i_bias=current), dt_ms=dt)
    res = run_on(backend, net, 300.0, precision="float64")
    v, u = -65.0, b * -65.0
    spikes = []
    for t in range(3000):
        dv = (0.04 * v + 5.0) * v + 140.0 - u + current
        du = a * (b * v - u)
        v, u = v + dt * dv, u + dt * du
        if v > 30.0:
            spikes.append(t)
            v, u = c, u + d
    np.testing.assert_array_equal(res.spike_steps("n")[0], spikes)
    assert 5 <= len(spikes) <= 20  # regular spiking at I = 10: tonic firing, ~30 Hz


def test_adaptive_lif_intervals_lengthen(backend):
    model = AdaptiveLIF(tau_m_ms=10.0, v_rest_mV=-70.0, v_reset_mV=-70.0, v_thresh_mV=-50.0,
                        i_bias_mV=30.0, tau_adapt_ms=200.0, delta_thresh_mV=2.0)
    net = _single(model)
    net.record_state("n", "theta")
    res = run_on(backend, net, 300.0, precision="float64")
    steps = res.spike_steps("n")[0]
    isi = np.diff(steps)
    assert isi.size > 5
    assert isi[-1] > isi[0]  # the threshold climbs with each spike
    theta = res.traces["n.theta"].values[0, :, 0]
    # theta jumps by delta at each spike and decays with tau_adapt in between
    k = steps[1]
    np.testing.assert_allclose(theta[k] - theta[k - 1] * 1.0, 2.0 + theta[k - 1] *
                               (math.exp(-0.1 / 200.0) - 1.0), atol=1e-9)


def test_reset_by_subtraction_keeps_overshoot(backend):
    model = LIF(tau_m_ms=10.0, v_rest_mV=-70.0, v_reset_mV=-70.0, v_thresh_mV=-50.0,
                i_bias_mV=60.0, reset="subtract")
    net = _single(model)
    res = run_on(backend, net, 20.0, precision="float64")
    steps = res.spike_steps("n")[0]
    v = res.traces["n.v"].values[0, :, 0]
    k = steps[0]
    # at the spike step: v = v_pre - (v_th - v_reset), where v_pre is one exact step from v[k-1]
    v_inf = -10.0
    v_pre = v_inf + (v[k - 1] - v_inf) * math.exp(-0.1 / 10.0)
    assert v_pre > -50.0
    np.testing.assert_allclose(v[k], v_pre - 20.0, atol=1e-9)


def test_refractory_sets_the_shortest_interval(backend):
    # A drive so strong that v is still above threshold after its first reset by subtraction
    # (-22.4 - 20 = -42.4 mV, held): the neuron fires again exactly R = tau_refrac / dt steps
    # later, never sooner.
    model = LIF(tau_m_ms=1.0, v_rest_mV=-70.0, v_reset_mV=-70.0, v_thresh_mV=-50.0,
                i_bias_mV=500.0, reset="subtract", tau_refrac_ms=0.5)
    res = run_on(backend, _single(model), 20.0, precision="float64")
    steps = res.spike_steps("n")[0]
    assert steps.size > 30
    isi = np.diff(steps)
    assert steps[0] == 0 and isi[0] == 5
    assert isi.min() == 5


@pytest.mark.parametrize("model", [CubaLIF(bias=0.1, v_thresh=100.0), LIF(v_thresh_mV=0.0)])
def test_constant_current_on_shared_parameters_is_the_same_on_both_engines(model):
    """A constant injected current makes the per-step offset per neuron while the propagator
    stays shared; the native kernel must read both layouts right (a regression)."""

    traces = []
    for engine in ("eager", "native"):
        net = Network("current", dt_ms=1.0)
        net.population("p", 2, model)
        net.inject_current("p", np.array([0.5, 0.25]))
        net.record_state("p", "v")
        traces.append(run_torch(net, 20.0, precision="float64", engine=engine)
                      .traces["p.v"].values)
    np.testing.assert_array_equal(traces[0], traces[1])
    assert np.all(np.diff(traces[0][0, :, 0]) != 0)  # the current moves v
