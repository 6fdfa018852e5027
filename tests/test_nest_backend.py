"""The NEST backend (issue 18): feed-forward networks spike for spike and state to 1e-9 with
torch eager (float64); a recurrent CUBA statistically; the conductance models (iaf_cond_exp,
aeif_cond_exp) within a stated tolerance; a step-0 PoissonInput onto delta synapses; weight
monitors of static projections; refusals by name before the run; the common Results layout;
continued and interrupted runs."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("nest")

from evospike import (  # noqa: E402
    LIF,
    CondAdEx,
    CondLIF,
    FixedProbability,
    Izhikevich,
    Network,
    OneToOne,
)
from evospike.backends import get_backend  # noqa: E402
from evospike.errors import EvoSpikeError, UnsupportedError  # noqa: E402
from evospike.ir.neurons import AdaptiveLIF  # noqa: E402
from evospike.results import Results  # noqa: E402


def _torch(net: Network, ms: float, seeds=(0,)) -> Results:
    return get_backend("torch").compile(net, seeds=seeds, engine="eager", precision="float64",
                                        progress=False).run(ms)


def _nest(net: Network, ms: float, seeds=(0,), **options) -> Results:
    return get_backend("nest").compile(net, seeds=seeds, progress=False, **options).run(ms)


def _assert_same(got: Results, want: Results) -> None:
    assert got.n_steps == want.n_steps and got.n_trials == want.n_trials
    assert set(got.spikes_by_node) == set(want.spikes_by_node)
    for node in want.spikes_by_node:
        for k in range(want.n_trials):
            a, b = got.spike_steps(node, k), want.spike_steps(node, k)
            np.testing.assert_array_equal(a[0], b[0], err_msg=f"{node} trial {k} steps")
            np.testing.assert_array_equal(a[1], b[1], err_msg=f"{node} trial {k} neurons")
    assert set(got.traces) == set(want.traces)
    for name, trace in want.traces.items():
        np.testing.assert_array_equal(got.traces[name].steps, trace.steps)
        np.testing.assert_allclose(got.traces[name].values, trace.values, rtol=1e-9, atol=1e-9)


def _feed_forward(channel: str = "exc", tau_refrac_ms: float = 2.0) -> Network:
    """Poisson source -> two LIF layers, delays of 1, 5 and 12 steps; every layer fires."""
    net = Network("ff", dt_ms=0.1)
    cell = LIF(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-70.0, v_thresh_mV=-55.0,
               tau_syn_exc_ms=3.0, tau_syn_inh_ms=8.0, tau_refrac_ms=tau_refrac_ms,
               i_bias_mV=8.0)
    src = net.poisson_source("src", 50, 80.0)
    pop = net.population("pop", 40, cell)
    out = net.population("out", 30, cell)
    inh = "v" if channel == "v" else "inh"
    net.connect(src, pop, FixedProbability(0.3, seed=1), weight=4.0, delay_ms=0.1,
                target=channel)
    net.connect(src, pop, FixedProbability(0.2, seed=2), weight=-1.5, delay_ms=0.5, target=inh,
                name="src_inh")
    proj = net.connect(pop, out, FixedProbability(0.3, seed=3), weight=5.0, delay_ms=0.3,
                       target=channel)
    proj.delays[::2] = 12  # steps: two delays within one projection
    net.record_spikes(src, pop, out)
    net.record_state(pop, "v", neurons=[0, 3, 5])
    if channel != "v":
        net.record_state(out, "i_exc", neurons=[1, 2], every_steps=3)
    return net


# ------------------------------------------------------------------ spike for spike
@pytest.mark.parametrize("channel", ["exc", "v"], ids=["current synapses", "delta synapses"])
def test_feed_forward_identical_to_torch(channel):
    net = _feed_forward(channel)
    got, want = _nest(net, 100.0, seeds=(0, 1)), _torch(net, 100.0, seeds=(0, 1))
    assert want.spike_steps("out", 0)[0].size > 20  # the last layer is driven
    _assert_same(got, want)


def test_per_synapse_delays_and_refractory_input_match():
    """Each synapse its own delay (1..15 steps); delta events reaching a refractory neuron are
    dropped by both (a long refractory period with strong input makes that frequent)."""
    net = Network("delays", dt_ms=0.1)
    src = net.poisson_source("src", 20, 200.0)
    pop = net.population("pop", 10, LIF(tau_refrac_ms=3.0, v_thresh_mV=-60.0))
    rng = np.random.default_rng(4)
    proj = net.connect(src, pop, FixedProbability(0.5, seed=5), weight=3.0, target="v")
    proj.delays[:] = rng.integers(1, 16, proj.delays.size)
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=np.arange(10))
    want = _torch(net, 150.0)
    _assert_same(_nest(net, 150.0), want)
    # the dropped-input case is exercised: v sits at reset after a spike while events arrive
    assert want.spike_steps("pop")[0].size > 50


def test_izhikevich_with_delta_input_and_currents_identical():
    net = Network("izh", dt_ms=0.1)
    src = net.poisson_source("src", 20, 50.0)
    pop = net.population("pop", 8, Izhikevich(i_bias=np.linspace(0.0, 8.0, 8)))
    net.connect(src, pop, FixedProbability(0.4, seed=2), weight=6.0, delay_ms=0.3, target="v")
    net.inject_current(pop, 5.0, start_ms=20.0, stop_ms=60.0)
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=[0, 7])
    net.record_state(pop, "u", neurons=[3])
    want = _torch(net, 100.0)
    assert want.spike_steps("pop")[0].size > 10
    _assert_same(_nest(net, 100.0), want)


def test_currents_constant_windowed_and_series_identical():
    net = Network("cur", dt_ms=0.1)
    pop = net.population("pop", 3, LIF(tau_refrac_ms=1.0))
    net.inject_current(pop, np.array([18.0, 22.0, 30.0]))
    net.inject_current(pop, 6.0, start_ms=10.0, stop_ms=30.0, name="window")
    series = np.concatenate([np.zeros(2), np.linspace(0.0, 10.0, 300)])  # steps 0, 1 equal
    net.inject_current(pop, series=series, name="ramp")
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=[0, 1, 2])
    want = _torch(net, 60.0)
    assert want.spike_steps("pop")[0].size > 5
    _assert_same(_nest(net, 60.0), want)


def test_poisson_input_identical():
    net = Network("pin", dt_ms=0.1)
    pop = net.population("pop", 20, LIF(tau_refrac_ms=2.0))
    net.poisson_input(pop, 50, 100.0, weight=1.2, start_ms=0.1)
    net.poisson_input(pop, 20, 80.0, weight=-0.8, channel="inh", start_ms=5.0, name="inhib")
    net.record_spikes(pop)
    net.record_state(pop, "i_exc", neurons=[0])
    want = _torch(net, 100.0, seeds=(3,))
    assert want.spike_steps("pop")[0].size > 20
    _assert_same(_nest(net, 100.0, seeds=(3,)), want)


def test_threads_give_the_same_spikes():
    net = _feed_forward("exc")
    _assert_same(_nest(net, 50.0, threads=2), _nest(net, 50.0, threads=1))


# ------------------------------------------------------------------ recurrent, statistically
def test_recurrent_cuba_statistics_agree():
    """A recurrent network amplifies a last-bit difference, so only statistics are required:
    per-population mean rates within 5 % of torch's."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "cuba", Path(__file__).parents[1] / "examples" / "cuba.py")
    cuba = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cuba)
    net = cuba.build(n_neurons=1000, connection_probability=0.08)
    got, want = _nest(net, 300.0), _torch(net, 300.0)
    for pop in ("exc", "inh"):
        assert want.mean_rate_hz(pop) > 1.0
        assert got.mean_rate_hz(pop) == pytest.approx(want.mean_rate_hz(pop), rel=0.05)


# ------------------------------------------------------------------ refusals
def _reasons(net: Network) -> str:
    with pytest.raises(UnsupportedError) as info:
        get_backend("nest").compile(net, progress=False)
    assert info.value.backend == "nest"
    return " | ".join(info.value.reasons)


def test_refuses_what_it_cannot_carry_by_name():
    net = Network("mixed", dt_ms=0.1)
    src = net.poisson_source("src", 5, 10.0)
    ad = net.population("ad", 5, AdaptiveLIF())
    both = net.population("both", 5, LIF())
    sub = net.population("sub", 5, LIF(reset="subtract", tau_syn_inh_ms=10.0))
    net.connect(src, ad, FixedProbability(0.5, seed=1))
    net.connect(src, both, FixedProbability(0.5, seed=1), target="exc")
    net.connect(src, both, FixedProbability(0.5, seed=1), target="v", name="src_v")
    net.connect(src, sub, FixedProbability(0.5, seed=1), weight=-1.0, target="exc")
    net.stdp(net.connect(src, ad, FixedProbability(0.5, seed=2), weight=0.5, name="plastic"))
    net.record_state(both, "v", neurons=[0])
    text = _reasons(net)
    assert "AdaptiveLIF" in text and "'ad'" in text
    assert "Population 'both'" in text and "channel 'v'" in text
    assert "Population 'sub'" in text and "reset='subtract'" in text
    assert "Projection 'src->sub'" in text and "sign" in text
    assert "STDP" in text and "stdp_synapse" in text


def test_refuses_early_poisson_input_and_delta_current_monitor():
    net = Network("early", dt_ms=0.1)
    pop = net.population("pop", 4, LIF())
    cur = net.population("cur", 4, LIF())
    src = net.poisson_source("src", 4, 10.0)
    net.connect(src, pop, FixedProbability(1.0, seed=1), target="v")
    net.poisson_input(pop, 10, 10.0, weight=1.0, channel="v")  # carried: see below
    net.poisson_input(cur, 10, 10.0, weight=1.0, channel="exc")
    net.record_state(pop, "i_exc", neurons=[0])
    text = _reasons(net)
    assert "PoissonInput 'poisson_input->cur'" in text and "step 0" in text
    assert "synaptic currents cannot be set" in text
    assert "poisson_input->pop" not in text
    assert "StateMonitor" in text and "iaf_psc_delta" in text


def test_poisson_input_from_step_zero_onto_v_identical():
    """iaf_psc_delta: the counts of step 0 ride in the initial V_m (`step_zero_offset`)."""
    net = Network("pin0", dt_ms=0.1)
    pop = net.population("pop", 20, LIF(tau_refrac_ms=2.0),
                         initial={"v": np.linspace(-66.0, -52.0, 20)})
    # 4 events per step (1.3 mV: no sum of events lands exactly on the threshold, where
    # NEST fires at >= and EvoSpike at >)
    net.poisson_input(pop, 400, 100.0, weight=1.3, channel="v")
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=np.arange(20))
    want = _torch(net, 30.0, seeds=(2, 3))
    assert want.spike_steps("pop", 0)[0].size > 20
    assert want.spike_steps("pop", 0)[0][0] == 0  # a neuron pushed over threshold in step 0
    _assert_same(_nest(net, 30.0, seeds=(2, 3)), want)


def test_weight_monitor_on_static_projections():
    net = _feed_forward("exc")
    w = net.projections["pop->out"].weights
    w *= np.linspace(0.5, 1.5, w.size)  # every synapse its own weight: the order is checked
    net.record_weights("pop->out", every_steps=50, name="w_out")
    got, want = _nest(net, 20.0, seeds=(0, 1)), _torch(net, 20.0, seeds=(0, 1))
    _assert_same(got, want)
    np.testing.assert_array_equal(got.weights["w_out"].steps, want.weights["w_out"].steps)
    np.testing.assert_array_equal(got.weights["w_out"].values, want.weights["w_out"].values)
    assert got.weights["w_out"].values.shape == (2, 4, net.projections["pop->out"].n_synapses)


def test_refuses_a_current_change_in_step_one():
    net = Network("cur1", dt_ms=0.1)
    pop = net.population("pop", 2, LIF())
    net.inject_current(pop, series=np.array([0.0, 5.0, 5.0]), name="ramp")
    assert "CurrentInput 'ramp'" in _reasons(net)


def test_refuses_a_declared_brian2_schedule():
    net = Network("b2", dt_ms=0.1, schedule="brian2")
    net.population("pop", 2, LIF())
    assert "schedule 'brian2'" in _reasons(net)


def test_bad_options_are_one_line():
    net = Network("opts", dt_ms=0.1)
    net.population("pop", 2, LIF())
    for bad, word in (({"threads": 0}, "threads"), ({"precision": "float32"}, "float64"),
                      ({"device": "cuda"}, "CPU"), ({"colour": 1}, "colour")):
        with pytest.raises(EvoSpikeError, match=word):
            get_backend("nest").compile(net, progress=False, **bad)


# ------------------------------------------------------------------ runs and results
def test_results_layout_and_round_trip(tmp_path):
    net = _feed_forward("exc")
    res = _nest(net, 20.0, seeds=(4, 5))
    assert res.meta["backend"] == "nest" and res.meta["n_steps"] == 200
    assert res.meta["versions"]["nest"].startswith("3.")
    assert list(res.meta["seeds"]) == [4, 5] and res.complete
    assert res.traces["out.i_exc"].steps.tolist() == list(range(0, 200, 3))
    assert res.traces["out.i_exc"].values.shape == (2, 67, 2)
    res.save(tmp_path / "r.h5")
    back = Results.load(tmp_path / "r.h5")
    _assert_same(back, res)


def test_continued_run_equals_one_run_even_after_another_kernel():
    net = _feed_forward("exc")
    whole = _nest(net, 80.0, seeds=(0, 1))
    runner = get_backend("nest").compile(net, seeds=(0, 1), progress=False)
    runner.run(30.0)
    _nest(_feed_forward("v"), 10.0)  # another runner resets the one NEST kernel
    _assert_same(runner.run(50.0), whole)


def test_interrupt_keeps_the_steps_recorded(monkeypatch):
    """A KeyboardInterrupt between two NEST calls: the results keep the steps whose recordings
    are complete, marked incomplete, equal to the start of an uninterrupted run."""
    from evospike.backends.nest import runner as nest_runner

    net = _feed_forward("exc")
    whole = _nest(net, 100.0)
    monkeypatch.setattr(nest_runner, "CHUNK_STEPS", 300)
    r = get_backend("nest").compile(net, progress=False)
    real_run, calls = r._run_chunk, []

    def run(ms):
        calls.append(ms)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_run(ms)

    monkeypatch.setattr(r, "_run_chunk", run)
    res = r.run(100.0)
    assert not res.complete and "interrupted" in res.meta["interrupted"]
    assert res.n_steps == 600 - r.flush
    for node in whole.spikes_by_node:
        steps, neurons = whole.spike_steps(node)
        keep = steps < res.n_steps
        np.testing.assert_array_equal(res.spike_steps(node)[0], steps[keep])
        np.testing.assert_array_equal(res.spike_steps(node)[1], neurons[keep])
    name = next(iter(whole.traces))
    np.testing.assert_allclose(res.traces[name].values,
                               whole.traces[name].values[:, :res.traces[name].steps.size])


MODEL = '''
from evospike import LIF, FixedProbability, Network


def build() -> Network:
    net = Network("steady", dt_ms=0.1)
    pop = net.population("pop", 20, LIF(i_bias_mV=20.0))
    out = net.population("out", 10, LIF())
    net.connect(pop, out, FixedProbability(0.5, seed=1), weight=8.0, delay_ms=0.5)
    net.record_spikes(pop, out)
    return net
'''


def test_cli_run_backend_nest(tmp_path):
    model = tmp_path / "steady.py"
    model.write_text(MODEL)
    out = tmp_path / "r.h5"
    done = subprocess.run([sys.executable, "-m", "evospike.cli", "run", str(model), "--backend",
                           "nest", "--threads", "2", "--duration", "100ms", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "N E S T" not in done.stdout  # NEST's banner is kept quiet
    res = Results.load(out)
    assert res.meta["backend"] == "nest" and res.meta["threads"] == 2
    # v_rest + i_bias = -45 mV: one spike per tau_m ln 4 = 27.7 ms, i.e. 3 in 100 ms
    assert np.all(np.bincount(res.spike_steps("pop")[1], minlength=20) == 3)


@pytest.mark.slow
def test_cli_run_sigint_saves_the_steps_simulated(tmp_path):
    model = tmp_path / "steady.py"
    model.write_text(MODEL)
    out = tmp_path / "r.h5"
    proc = subprocess.Popen([sys.executable, "-m", "evospike.cli", "run", str(model),
                             "--backend", "nest", "--duration", "200000s", "--out",
                             str(out), "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        # far longer than 8 s of wall time even on a fast machine (NEST runs this 30-neuron
        # network at a few million steps per second)
        time.sleep(8.0)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    res = Results.load(out)
    assert not res.complete and 0 < res.n_steps < 2_000_000_000
    counts = np.bincount(res.spike_steps("pop")[1], minlength=20)
    # the steps that ran, at one spike per 278 steps (tau_m ln 4 = 27.73 ms on a 0.1 ms grid)
    assert np.all(np.abs(counts - res.n_steps / 278) <= 1.5), (counts, res.n_steps)


# ------------------------------------------------------------------ conductance models
def _cond_single(initial_g: float = 0.0) -> Network:
    """One CondLIF cell under 30 excitatory (6 nS) and 6 inhibitory (67 nS) events, threshold
    out of reach: the sub-threshold trajectory (tests/test_coba.py's drive)."""
    rng = np.random.default_rng(7)
    exc = np.sort(rng.choice(np.arange(5, 400), 30, replace=False)) * 0.1
    inh = np.sort(rng.choice(np.arange(50, 400), 6, replace=False)) * 0.1
    net = Network("cond1", dt_ms=0.1)
    e = net.spike_source("e", 1, np.zeros(exc.size, int), exc)
    i = net.spike_source("i", 1, np.zeros(inh.size, int), inh)
    pop = net.population("cell", 1, CondLIF(V_th_mV=50.0, tau_refrac_ms=0.0, I_e_pA=150.0),
                         initial={"g_exc": initial_g, "g_inh": 2.0 * initial_g})
    net.connect(e, pop, OneToOne(), weight=6.0, delay_ms=0.1, target="exc")
    net.connect(i, pop, OneToOne(), weight=67.0, delay_ms=0.3, target="inh")
    for state in ("v", "g_exc", "g_inh"):
        net.record_state(pop, state)
    return net


@pytest.mark.parametrize("initial_g", [0.0, 3.0])
def test_cond_lif_conductances_exact_and_voltage_within_the_schemes_error(initial_g):
    """The mapping is exact where both compute exactly (the conductances: event timing, nS
    weights, inhibition routed by a negated weight, initial g); v differs by EvoSpike's
    exponential-Euler error (0.17 mV against a fine reference, tests/test_coba.py), NEST's
    RKF45 being within 1e-3 mV of that reference."""
    net = _cond_single(initial_g)
    got, want = _nest(net, 50.0), _torch(net, 50.0)
    for state in ("g_exc", "g_inh"):
        np.testing.assert_allclose(got.traces[f"cell.{state}"].values,
                                   want.traces[f"cell.{state}"].values, rtol=1e-9, atol=1e-9)
    assert want.traces["cell.g_inh"].values.max() > 60.0  # the inhibitory events arrived
    dv = np.abs(got.traces["cell.v"].values - want.traces["cell.v"].values)
    assert 0.01 < dv.max() < 0.2


def test_cond_lif_without_synaptic_input_identical():
    """Without conductance events both integrate the same linear ODE exactly: spikes identical
    (refractory hold t_ref = (R - 1) dt, reset, per-neuron I_e, an injected current window),
    v within NEST's RKF45 tolerance."""
    net = Network("cond_tonic", dt_ms=0.1)
    pop = net.population("pop", 4, CondLIF(I_e_pA=np.array([110.0, 150.0, 220.0, 400.0]),
                                           tau_refrac_ms=np.array([0.0, 0.1, 2.0, 5.0])))
    net.inject_current(pop, 60.0, start_ms=20.0, stop_ms=60.0)
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=[0, 1, 2, 3])
    got, want = _nest(net, 150.0), _torch(net, 150.0)
    assert np.all(np.bincount(want.spike_steps("pop")[1], minlength=4) >= 3)
    for node_result in (got, want):
        assert node_result.spike_steps("pop")[0].size == want.spike_steps("pop")[0].size
    np.testing.assert_array_equal(got.spike_steps("pop")[0], want.spike_steps("pop")[0])
    np.testing.assert_array_equal(got.spike_steps("pop")[1], want.spike_steps("pop")[1])
    np.testing.assert_allclose(got.traces["pop.v"].values, want.traces["pop.v"].values,
                               atol=1e-2)


def _cond_feed_forward(model) -> Network:
    """Spike-times input -> 40 conductance cells, exc and inh events, fixed input times."""
    rng = np.random.default_rng(3)
    times = np.round(np.sort(rng.uniform(1.0, 299.0, 300)), 1)
    net = Network("cond_ff", dt_ms=0.1)
    src = net.spike_source("src", 50, rng.integers(0, 50, 300), times)
    pop = net.population("pop", 40, model)
    net.connect(src, pop, FixedProbability(0.3, seed=1), weight=4.0, delay_ms=0.1,
                target="exc")
    net.connect(src, pop, FixedProbability(0.2, seed=2), weight=3.0, delay_ms=0.5,
                target="inh", name="src_inh")
    net.record_spikes(pop)
    return net


def _near_fraction(got: Results, want: Results, node: str, size: int, steps: int) -> float:
    """The fraction of ``want``'s spikes with a spike of the same neuron in ``got`` within
    ``steps``."""
    sa, na = want.spike_steps(node)
    sb, nb = got.spike_steps(node)
    near = [np.any(np.abs(sb[nb == k] - t) <= steps) for k in range(size) for t in sa[na == k]]
    return float(np.mean(near))


@pytest.mark.parametrize("model", [
    CondLIF(tau_refrac_ms=2.0),
    CondAdEx(C_pF=200.0, g_L_nS=10.0, E_L_mV=-70.0, V_T_mV=-50.0, V_reset_mV=-58.0,
             a_nS=2.0, tau_w_ms=30.0, b_pA=40.0, tau_refrac_ms=0.5)], ids=["CondLIF", "CondAdEx"])
def test_cond_feed_forward_spikes_agree_within_the_stated_tolerance(model):
    """Not step for step (RKF45 against one step per dt; EvoSpike's CondLIF spikes come
    0.35 ms early on average against a fine reference, NEST's 0.06 ms): the stated tolerance
    is spike counts within 5 %, 70 % of EvoSpike's spikes within 5 steps of one of NEST's and
    80 % within 10 steps (measured: 1.7 % / 0.5 %, 77 % / 80 %, 86 % / 88 % for CondLIF /
    CondAdEx)."""
    net = _cond_feed_forward(model)
    got, want = _nest(net, 300.0), _torch(net, 300.0)
    n_want, n_got = want.spike_steps("pop")[0].size, got.spike_steps("pop")[0].size
    assert n_want > 100
    assert abs(n_got - n_want) <= 0.05 * n_want
    assert _near_fraction(got, want, "pop", 40, 5) >= 0.7
    assert _near_fraction(got, want, "pop", 40, 10) >= 0.8


def test_step_exact_refuses_the_conductance_models_by_name():
    net = _cond_feed_forward(CondLIF())
    with pytest.raises(UnsupportedError) as info:
        get_backend("nest").compile(net, progress=False, step_exact=True)
    text = " | ".join(info.value.reasons)
    assert "Population 'pop'" in text and "iaf_cond_exp" in text and "RKF45" in text
    assert "statistical" in text
