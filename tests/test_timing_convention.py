"""The declared timing convention (`Network.schedule`, `evospike.ir.timing`).

The heart of it: a Brian2 script written as a Brian2 user writes it -- default schedule,
``delay`` in the Synapses, ``refractory`` with ``(unless refractory)``, ``v`` and current
synapses, SpikeGeneratorGroup inputs -- and the same network declared with
``schedule="brian2"`` on the torch eager engine give identical spikes and voltages."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from evospike.connectors import FromArrays
from evospike.errors import EvoSpikeError, UnsupportedError, ValidationError
from evospike.ir.network import Network
from evospike.ir.neurons import LIF
from evospike.ir.timing import CARRIED_BY, SCHEDULES
from evospike.results import Results

brian2 = pytest.importorskip("brian2")

DT_MS = 0.1
N_STEPS = 250

# four LIF populations: A refractory with reset to a value, B without refractoriness and reset
# by subtraction, C refractory (one step for half of it) with reset to a value, D without
# refractoriness and reset to a value
POPS = {
    "A": dict(n=6, tau_m=10.0, tau_e=3.0, tau_i=6.0, rest=-65.0, reset=-70.0, th=-55.0,
              refrac=np.full(6, 0.3), mode="value"),
    "B": dict(n=5, tau_m=15.0, tau_e=2.0, tau_i=4.0, rest=-60.0, reset=-65.0, th=-52.0,
              refrac=np.zeros(5), mode="subtract"),
    "C": dict(n=4, tau_m=8.0, tau_e=2.5, tau_i=5.0, rest=-65.0, reset=-65.0, th=-56.0,
              refrac=np.array([0.1, 0.1, 0.5, 0.5]), mode="value"),
    "D": dict(n=3, tau_m=12.0, tau_e=3.0, tau_i=5.0, rest=-65.0, reset=-68.0, th=-58.0,
              refrac=np.zeros(3), mode="value"),
}


def _synapses(seed: int = 3) -> dict[str, dict]:
    """pre -> post projections: (channel, i, j, weights in mV, delays in steps 0 .. 4)."""
    rng = np.random.default_rng(seed)
    sizes = {"in": 8, **{k: v["n"] for k, v in POPS.items()}}
    out = {}
    for name, pre, post, channel, w_lo, w_hi in (
            ("in_A_exc", "in", "A", "exc", 4.0, 9.0), ("in_A_v", "in", "A", "v", 2.0, 6.0),
            ("in_B_v", "in", "B", "v", 1.0, 4.0), ("A_B_v", "A", "B", "v", 3.0, 7.0),
            ("A_B_exc", "A", "B", "exc", 2.0, 6.0), ("B_C_exc", "B", "C", "exc", 5.0, 10.0),
            ("B_C_v", "B", "C", "v", 2.0, 6.0), ("in_C_inh", "in", "C", "inh", -6.0, -2.0),
            ("A_D_v", "A", "D", "v", 3.0, 8.0), ("in_D_exc", "in", "D", "exc", 3.0, 8.0)):
        i, j = np.meshgrid(np.arange(sizes[pre]), np.arange(sizes[post]), indexing="ij")
        keep = rng.random(i.size) < 0.6
        i, j = i.ravel()[keep], j.ravel()[keep]
        out[name] = dict(pre=pre, post=post, channel=channel, i=i, j=j,
                         w=rng.uniform(w_lo, w_hi, i.size),
                         d=rng.integers(0, 5, i.size))  # 0, 1 and several steps
    return out


def _input_spikes(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.sort(rng.choice(N_STEPS - 20, 70, replace=False))
    return rng.integers(0, 8, steps.size), steps


def _untouched_brian2() -> dict:
    """The network written as a Brian2 user writes it: nothing re-scheduled."""
    b2 = brian2
    b2.prefs.codegen.target = "numpy"
    b2.prefs.core.default_float_dtype = np.float64
    ms, mV = b2.ms, b2.mV
    clock = b2.Clock(DT_MS * ms)
    neurons, steps = _input_spikes()
    inp = b2.SpikeGeneratorGroup(8, neurons, steps * DT_MS * ms, clock=clock)
    eqs = """
    dv/dt = (v_rest - v + i_exc + i_inh) / tau_m : volt (unless refractory)
    di_exc/dt = -i_exc / tau_e : volt
    di_inh/dt = -i_inh / tau_i : volt
    tau_m : second (constant)
    tau_e : second (constant)
    tau_i : second (constant)
    v_rest : volt (constant)
    v_reset : volt (constant)
    v_th : volt (constant)
    t_ref : second (constant)
    """
    groups = {}
    for name, p in POPS.items():
        reset = "v = v_reset" if p["mode"] == "value" else "v = v - (v_th - v_reset)"
        extra = {"refractory": "t_ref"} if np.any(p["refrac"] > 0) else {}
        g = b2.NeuronGroup(p["n"], eqs, threshold="v > v_th", reset=reset, method="exact",
                           clock=clock, **extra)
        g.tau_m, g.tau_e, g.tau_i = p["tau_m"] * ms, p["tau_e"] * ms, p["tau_i"] * ms
        g.v_rest, g.v_reset, g.v_th = p["rest"] * mV, p["reset"] * mV, p["th"] * mV
        g.t_ref = p["refrac"] * ms
        g.v = p["rest"] * mV
        groups[name] = g
    objects = [inp, *groups.values()]
    nodes = {"in": inp, **groups}
    for s in _synapses().values():
        target = {"exc": "i_exc", "inh": "i_inh", "v": "v"}[s["channel"]]
        on_pre = f"{target}_post += w"
        if target == "v" and np.any(POPS[s["post"]]["refrac"] > 0):
            # Brian2's idiom for input ignored while the membrane is clamped
            on_pre = "v_post += w * int(not_refractory_post)"
        syn = b2.Synapses(nodes[s["pre"]], nodes[s["post"]], "w : volt (constant)",
                          on_pre=on_pre, clock=clock)
        syn.connect(i=s["i"], j=s["j"])
        syn.w = s["w"] * mV
        syn.delay = s["d"] * DT_MS * ms
        objects.append(syn)
    spikes = {name: b2.SpikeMonitor(g) for name, g in groups.items()}
    traces = {name: b2.StateMonitor(g, "v", record=True) for name, g in groups.items()}
    net = b2.Network(*objects, *spikes.values(), *traces.values())
    net.run(N_STEPS * DT_MS * ms)
    return {name: (np.round(np.asarray(m.t / ms) / DT_MS).astype(np.int64),
                   np.asarray(m.i, np.int64), np.asarray(traces[name].v / mV))
            for name, m in spikes.items()}


def _evospike(schedule: str = "brian2", delay_offset: int = 0) -> Network:
    net = Network("ported", dt_ms=DT_MS, schedule=schedule)
    neurons, steps = _input_spikes()
    net.spike_source("in", 8, neurons, steps * DT_MS)
    for name, p in POPS.items():
        net.population(name, p["n"], LIF(
            tau_m_ms=p["tau_m"], tau_syn_exc_ms=p["tau_e"], tau_syn_inh_ms=p["tau_i"],
            v_rest_mV=p["rest"], v_reset_mV=p["reset"], v_thresh_mV=p["th"],
            tau_refrac_ms=p["refrac"], reset=p["mode"]))
    for name, s in _synapses().items():
        net.connect(s["pre"], s["post"], FromArrays(s["i"], s["j"], s["w"],
                                                    (s["d"] + delay_offset) * DT_MS),
                    target=s["channel"], name=name)
    net.record_spikes(*POPS)
    for name in POPS:
        net.record_state(name, "v")
    return net


def _run(net: Network, backend: str = "torch", **options) -> Results:
    from evospike.backends import get_backend

    defaults = {"torch": {"engine": "eager", "precision": "float64"},
                "brian2": {"target": "numpy"}}[backend]
    runner = get_backend(backend).compile(net, **{**defaults, **options}, progress=False)
    return runner.run(N_STEPS * DT_MS)


@pytest.fixture(scope="module")
def reference() -> dict:
    return _untouched_brian2()


@pytest.fixture(scope="module")
def ported() -> Results:
    return _run(_evospike("brian2"))


@pytest.mark.slow  # Brian2's code generation and run
def test_untouched_brian2_script_equals_schedule_brian2(reference, ported):
    total = 0
    for name in POPS:
        steps, neurons = ported.spike_steps(name)
        b_steps, b_neurons, _ = reference[name]
        order = np.lexsort((b_neurons, b_steps))
        np.testing.assert_array_equal(steps, b_steps[order], err_msg=name)
        np.testing.assert_array_equal(neurons, b_neurons[order], err_msg=name)
        total += steps.size
    assert total > 60  # the network is active in every population, not silent
    for name in POPS:
        assert ported.spike_steps(name)[0].size > 5, name


@pytest.mark.slow  # Brian2's code generation and run
def test_voltages_equal_one_step_apart(reference, ported):
    """Brian2's StateMonitor records at ``start`` (the state the previous step left), ours at
    the end of the step: Brian2's sample k is our sample k - 1, to rounding."""
    for name in POPS:
        ours = ported.traces[f"{name}.v"].values[0]  # (steps, n)
        theirs = reference[name][2].T  # (steps, n)
        np.testing.assert_allclose(ours[:-1], theirs[1:], rtol=0, atol=1e-9, err_msg=name)


def test_refractory_gate_and_boundary_step():
    """One neuron, R = 3 steps, reset to a value, v events of 2 mV: the event in the spike's
    own step and the two after it are dropped, the one in step n + R (the neuron integrates
    again) kept; a current event in the spike step is kept."""
    net = Network("gate", dt_ms=DT_MS, schedule="brian2")
    net.spike_source("s", 2, [0, 1, 1, 1, 1, 1], np.array([5, 5, 6, 7, 8, 9]) * DT_MS)
    net.population("p", 1, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_rest_mV=-65.0,
                               v_reset_mV=-65.0, v_thresh_mV=-60.0, tau_refrac_ms=0.3))
    net.connect("s", "p", FromArrays([0], [0], [30.0]), target="v", name="kick")
    net.connect("s", "p", FromArrays([1], [0], [2.0]), target="v", name="probe")
    net.connect("s", "p", FromArrays([1], [0], [1.0]), target="exc", name="current")
    net.record_spikes("p")
    net.record_state("p", "v")
    net.record_state("p", "i_exc")
    res = _run(net)
    v = res.traces["p.v"].values[0, :, 0]
    assert list(res.spike_steps("p")[0]) == [6]  # the kick of step 5 is seen by step 6
    # steps 6 (spike), 7, 8: the 2 mV events are dropped; v stays at the reset
    np.testing.assert_array_equal(v[6:9], -65.0)
    # step 9 (= 6 + R) integrates again and keeps its event, undecayed at the step's end
    assert v[9] > -65.0 + 2.0 - 1e-9
    # the current events are never dropped: 5 of them, the last at step 9
    assert res.traces["p.i_exc"].values[0, 9, 0] > 1.0


def test_schedules_differ_where_they_should():
    """The same network with delays of one step: under "evospike" a kick arriving in step n
    fires in step n, under "brian2" in step n + 1 (after the threshold, seen by the next)."""
    out = {}
    for schedule in SCHEDULES:
        net = Network("kick", dt_ms=DT_MS, schedule=schedule)
        net.spike_source("s", 1, [0], [1.0])
        net.population("p", 1, LIF(v_thresh_mV=-60.0))
        net.connect("s", "p", FromArrays([0], [0], [10.0], [DT_MS]), target="v")
        net.record_spikes("p")
        out[schedule] = list(_run(net).spike_steps("p")[0])
    assert out == {"evospike": [11], "brian2": [12]}
    # and on the chain: the whole ported network runs differently in EvoSpike's order
    a = _run(_evospike("evospike", delay_offset=1))
    b = _run(_evospike("brian2", delay_offset=1))
    assert any(not np.array_equal(a.spike_steps(n)[0], b.spike_steps(n)[0]) for n in POPS)


def test_schedule_is_validated_and_sets_delays():
    with pytest.raises(ValidationError, match=r"Network 'x': schedule must be one of "
                                              r"\('evospike', 'brian2'\) \(got 'nest'\)"):
        Network("x", schedule="nest")
    with pytest.raises(ValidationError, match="schedule"):
        Network("x", schedule=None)  # type: ignore[arg-type]
    for schedule, default in (("evospike", 1), ("brian2", 0)):
        net = Network("d", schedule=schedule)
        net.population("p", 2, LIF())
        assert net.connect("p", "p", FromArrays([0], [1])).delays.tolist() == [default]
    net = Network("d")
    net.population("p", 2, LIF())
    with pytest.raises(ValidationError, match=r"Projection 'p->p': delays must be >= 1 time "
                                              r"step under schedule 'evospike'.*\(got 0\)"):
        net.connect("p", "p", FromArrays([0], [1]), delay_ms=0.0)
    net = Network("d", schedule="brian2")
    net.population("p", 2, LIF())
    with pytest.raises(ValidationError, match="delays must not be negative"):
        net.connect("p", "p", FromArrays([0], [1], delays_ms=[-DT_MS]))


def test_other_engines_refuse_brian2_by_name():
    net = _evospike("brian2")
    line = (r"Network 'ported': schedule 'brian2' is not carried by {} "
            r"\(carried by: torch eager, brian2\)")
    with pytest.raises(EvoSpikeError, match=line.format("torch native")):
        _run(net, engine="native")
    with pytest.raises(UnsupportedError, match=line.format("torch fixed point")):
        _run(net, engine="auto", precision="fixed")
    from evospike.backends.lava import LavaConfig, prepare

    with pytest.raises(UnsupportedError, match=line.format("lava")):
        prepare(net, LavaConfig())
    # engine "auto" runs the eager engine and says why
    res = _run(_evospike("brian2"), engine="auto")
    assert res.meta["engine"] == "eager"
    assert "schedule 'brian2' is not carried by torch native" in res.meta["engine_note"]
    assert CARRIED_BY["brian2"] == ("torch eager", "brian2")


def test_plasticity_and_processes_refused_under_brian2():
    net = _evospike("brian2")
    net.connect("A", "C", FromArrays([0, 1], [2, 3], [1.0, 1.0]), delay_ms=0.2, name="plastic")
    net.stdp("plastic")
    net.homeostasis("B")
    for backend in ("torch", "brian2"):
        with pytest.raises(UnsupportedError) as err:
            _run(net, backend)
        text = str(err.value)
        assert "schedule 'brian2' does not carry plasticity rule STDP 'plastic.stdp'" in text
        assert "does not carry process Homeostasis 'B.homeostasis'" in text


@pytest.mark.slow
def test_brian2_backend_in_brian2_schedule_equals_torch(ported):
    """The Brian2 backend builds the network untouched under "brian2"; a PoissonInput lands in
    Brian2's synapses slot on both."""
    net = _evospike("brian2")
    net.poisson_input("C", 40, 150.0, 0.8, channel="exc")
    net.poisson_input("B", 30, 100.0, 0.6, channel="v")
    a, b = _run(net, "torch"), _run(net, "brian2")
    for name in POPS:
        np.testing.assert_array_equal(a.spike_steps(name)[0], b.spike_steps(name)[0])
        np.testing.assert_array_equal(a.spike_steps(name)[1], b.spike_steps(name)[1])
        np.testing.assert_allclose(a.traces[f"{name}.v"].values,
                                   b.traces[f"{name}.v"].values, rtol=0, atol=1e-9)
    assert b.schedule == "brian2"
    # the inputs changed the run (they are not dropped)
    assert any(not np.array_equal(a.spike_steps(n)[0], ported.spike_steps(n)[0])
               for n in POPS)


def test_h5_round_trip_and_old_files(tmp_path):
    net = _evospike("brian2")
    path = tmp_path / "net.h5"
    net.save(path)
    back = Network.load(path)
    assert back.schedule == "brian2"
    assert back.projections["in_A_exc"].delays.min() == 0
    plain = Network("old")
    plain.population("p", 2, LIF())
    old = tmp_path / "old.h5"
    plain.save(old)
    with h5py.File(old, "r+") as f:
        del f.attrs["schedule"]  # as written before the field existed
    assert Network.load(old).schedule == "evospike"
    with h5py.File(path, "r+") as f:
        f.attrs["schedule"] = "nest"
    with pytest.raises(ValidationError, match="schedule must be one of"):
        Network.load(path)


def test_results_and_info_show_schedule(tmp_path, ported, capsys):
    from evospike.cli.main import main

    assert ported.meta["schedule"] == "brian2" and ported.schedule == "brian2"
    path = tmp_path / "res.h5"
    ported.save(path)
    back = Results.load(path)
    assert back.schedule == "brian2"
    assert "schedule brian2" in back.summary()
    net_path = tmp_path / "net.h5"
    _evospike("brian2").save(net_path)
    assert main(["info", str(path)]) == 0
    assert "schedule brian2" in capsys.readouterr().out
    assert main(["info", str(net_path)]) == 0
    assert "schedule brian2" in capsys.readouterr().out
    with h5py.File(path, "r+") as f:
        f.attrs["schedule"] = "sometimes"
    with pytest.raises(ValidationError, match=r"schedule must be one of .*\(got 'sometimes'\)"):
        Results.load(path)
    with h5py.File(path, "r+") as f:
        del f.attrs["schedule"]  # results written before it was recorded
    assert Results.load(path).schedule == "evospike"


def test_validation_report_states_schedule(ported):
    from evospike.validation.report import validate

    report = validate(ported, ported, [ported, ported], tolerance_steps=0)
    assert report.meta["candidate_schedule"] == report.meta["reference_schedule"] == "brian2"
    assert "timing convention (schedule): candidate brian2, reference brian2" in \
        report.markdown()
    other = _run(_evospike("evospike", delay_offset=1))
    report = validate(other, ported, [ported, ported], tolerance_steps=0)
    assert any("schedule 'evospike', the reference 'brian2'" in w for w in report.warnings)
