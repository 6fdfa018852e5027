"""The run loop and results builder the runners share (evospike.run_loop): the duration check,
the chunked loop and its interrupt contract, the common metadata, and every backend using them
(torch eager, native and fixed, Brian2, Lava)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from evospike import AllToAll, CubaLIF, Network
from evospike.backends import get_backend
from evospike.errors import ValidationError
from evospike.results import Results
from evospike.run_loop import ProgressBar, ResultsBuilder, run_chunks, steps_for
from tests.test_lava_backend import LAVA_MISSING


# ------------------------------------------------------------------ steps_for
@pytest.mark.parametrize("duration, problem", [
    (-1.0, "must be a finite number of ms >= 0"),
    (math.nan, "must be a finite number of ms >= 0"),
    (math.inf, "must be a finite number of ms >= 0"),
    ("10ms", "must be a finite number of ms >= 0"),
    (True, "must be a finite number of ms >= 0"),
    (0.15, "is not a whole number of 0.1 ms time steps"),
])
def test_steps_for_refuses_bad_durations_in_one_line(duration, problem):
    with pytest.raises(ValidationError) as info:
        steps_for(duration, 0.1, "net")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Run 'net': duration_ms ") and problem in message
    assert repr(duration)[:4] in message or str(duration) in message


def test_steps_for_counts_whole_steps():
    assert steps_for(2.0, 0.1, "net") == 20
    assert steps_for(np.float64(0.3), 0.1, "net") == 3
    assert steps_for(0, 0.1, "net") == 0  # a zero-length call returns the results so far


# ------------------------------------------------------------------ run_chunks
def test_run_chunks_aligns_chunks_on_multiples():
    calls = []

    def advance(step0: int, n: int) -> int:
        calls.append((step0, n))
        return n

    out = run_chunks(1500, 2700, advance, lambda: pytest.fail("asked only after an interrupt"),
                     chunk=1000)
    assert calls == [(1500, 500), (2000, 1000), (3000, 1000), (4000, 200)]
    assert out.reached == 4200 and out.complete and out.wall_time_s >= 0.0


def test_run_chunks_interrupt_keeps_the_steps_the_backend_reached():
    position = {"step": 0}

    def advance(step0: int, n: int) -> int:
        for step in range(step0, step0 + n):
            if step == 1234:  # lands inside the second chunk
                raise KeyboardInterrupt
            position["step"] = step + 1
        return n

    out = run_chunks(0, 5000, advance, lambda: position["step"], chunk=1000)
    assert out.reached == 1234 and not out.complete


def test_run_chunks_stops_when_the_backend_stops_early():
    calls = []

    def advance(step0: int, n: int) -> int:
        calls.append(step0)
        return 7 if step0 == 1000 else n

    out = run_chunks(0, 3000, advance, lambda: pytest.fail("no interrupt"), chunk=1000)
    assert calls == [0, 1000] and out.reached == 1007 and not out.complete


def test_run_chunks_lets_other_errors_through():
    def advance(step0: int, n: int) -> int:
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed"):
        run_chunks(0, 10, advance, lambda: 0)


@pytest.mark.parametrize("show", [True, False])
def test_progress_bar_shows_only_when_asked(show, capsys):
    # lazy: each bar opens (and prints its label) at its first update
    with ProgressBar(10, show, "counted", delay=0.0, lazy=True) as bar:
        bar.update(4)
    with ProgressBar(10, show, "reported", delay=0.0, lazy=True) as bar:
        bar.show_at(8)
    with ProgressBar(10, show, "at-once", delay=0.0):  # not lazy: opens at once
        pass
    err = capsys.readouterr().err
    assert ("counted" in err, "reported" in err, "at-once" in err) == (show, show, show)


# ------------------------------------------------------------------ ResultsBuilder
def test_results_builder_keeps_whole_steps_sorted_and_loads(tmp_path):
    out = ResultsBuilder("net", "test", engine="e", engine_note="", device="cpu",
                         precision="float64", dt_ms=0.5, n_steps=10, seeds=(7, 8),
                         wall_time_s=1.5, complete=False, versions={"lib": "1.0"},
                         build_time_s=0.25)
    # flat = trial * size + neuron; step 10 was cut short by an interrupt: not kept
    out.spikes_flat("a", 3, [(np.array([9, 2, 10]), np.array([0, 4, 1])),
                             (np.array([2]), np.array([3]))])
    out.spikes_by_trial("b", 2, [(np.array([5, 1]), np.array([1, 0])),
                                 (np.array([10]), np.array([1]))])
    out.trace("t", "a", "v", [0, 5, 10], np.array([0, 2]),
              np.arange(12.0).reshape(2, 3, 2))
    out.weights("w", "a->b", [4, 8], np.ones((2, 2, 3)))
    res = out.build()
    m = res.meta
    assert m["n_steps"] == 10 and m["duration_ms"] == 5.0 and m["n_trials"] == 2
    assert m["complete"] is False and m["build_time_s"] == 0.25
    assert m["seeds"].tolist() == [7, 8] and m["seeds"].dtype == np.int64
    assert set(m["versions"]) == {"evospike", "lib", "numpy", "python"}
    a = res.spikes_by_node["a"]
    # sorted by trial, then step, then neuron
    assert a.trial.tolist() == [0, 1, 1] and a.step.tolist() == [9, 2, 2]
    assert a.neuron.tolist() == [0, 0, 1]
    assert a.neuron.dtype == np.int32 and a.trial.dtype == np.int32 and a.step.dtype == np.int64
    b = res.spikes_by_node["b"]
    assert b.step.tolist() == [1, 5] and b.neuron.tolist() == [0, 1] and b.trial.tolist() == [0, 0]
    t = res.traces["t"]
    assert t.steps.tolist() == [0, 5] and t.values.shape == (2, 2, 2)
    np.testing.assert_array_equal(t.values, np.arange(12.0).reshape(2, 3, 2)[:, :2])
    res.save(tmp_path / "r.h5")
    back = Results.load(tmp_path / "r.h5")
    assert back.meta["versions"] == m["versions"] and not back.complete


def test_results_builder_stacks_samples_or_gives_an_empty_trace():
    out = ResultsBuilder("net", "test", engine="e", engine_note="", device="cpu",
                         precision="fixed", dt_ms=1.0, n_steps=3, seeds=(0, 1),
                         wall_time_s=0.0, complete=True, versions={})
    assert out.stacked([], 4, np.int64).shape == (2, 0, 4)
    stacked = out.stacked([np.zeros((2, 4)), np.ones((2, 4))], 4, np.int64)
    assert stacked.shape == (2, 2, 4) and stacked.dtype == np.int64
    assert stacked[:, 1].tolist() == [[1] * 4] * 2


# ------------------------------------------------------------------ every backend
def _tiny() -> Network:
    """Spike times into a biased CubaLIF population: every backend and engine carries it."""
    net = Network("tiny", dt_ms=1.0)
    src = net.spike_source("in", 2, [0, 1, 0, 1], [3, 5, 20, 33])
    n = net.population("n", 4, CubaLIF(du=0.2, dv=0.1, bias=0.5, v_thresh=4.0))
    net.connect(src, n, AllToAll(), weight=1.5)
    net.record_spikes(n, src)
    net.record_state(n, "v", neurons=[0, 1])
    return net


ENGINES = {
    "torch-eager": ("torch", {"engine": "eager"}, "torch"),
    "torch-native": ("torch", {"engine": "native"}, "torch"),
    "torch-fixed": ("torch", {"precision": "fixed"}, "torch"),
    "brian2": ("brian2", {"target": "numpy"}, "brian2"),
    "lava": ("lava", {}, "lava-nc"),
}
#: the metadata every backend writes, with its type after a save and a load
COMMON_META = {"network": str, "backend": str, "engine": str, "engine_note": str, "device": str,
               "precision": str, "dt_ms": float, "n_steps": int, "duration_ms": float,
               "seeds": np.ndarray, "n_trials": int, "wall_time_s": float, "complete": bool,
               "created": str, "versions": dict}


def _compile(engine: str, net: Network, seeds: tuple[int, ...]):
    backend, options, _ = ENGINES[engine]
    if backend == "lava" and LAVA_MISSING is not None:
        pytest.skip(f"no Lava environment: {LAVA_MISSING}")
    return get_backend(backend).compile(net, seeds=seeds, progress=False, **options)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_backend_writes_the_common_meta(engine, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lava's own warnings are not the subject here
        res = _compile(engine, _tiny(), (3, 4)).run(50.0)
    res.save(tmp_path / "r.h5")
    back = Results.load(tmp_path / "r.h5")
    for meta in (res.meta, back.meta):
        missing = set(COMMON_META) - set(meta)
        assert not missing, f"{engine}: {sorted(missing)}"
        for key, kind in COMMON_META.items():
            assert isinstance(meta[key], kind), (engine, key, type(meta[key]))
        assert meta["backend"] == ENGINES[engine][0] and meta["network"] == "tiny"
        assert meta["n_steps"] == 50 and meta["duration_ms"] == 50.0 and meta["dt_ms"] == 1.0
        assert meta["seeds"].tolist() == [3, 4] and meta["n_trials"] == 2
        assert meta["complete"] is True and meta["wall_time_s"] >= 0.0
        assert {"evospike", "numpy", "python", ENGINES[engine][2]} <= set(meta["versions"])
    spikes = back.spikes_by_node["n"]
    assert spikes.step.size > 0 and spikes.step.max() < 50
    assert back.traces[next(iter(back.traces))].steps.tolist() == list(range(50))
    # the source's spikes are the inputs themselves, on every backend
    assert back.spike_steps("in", 1)[0].tolist() == [3, 5, 20, 33]


def _stop_at(engine: str, runner, monkeypatch, step: int) -> None:
    """Raise KeyboardInterrupt as step ``step`` starts, in the engine's own step function."""
    if engine == "torch-eager":
        from evospike.backends.torch import eager

        original = eager.run_step

        def run_step(cn, at, *args):
            if at == step:
                raise KeyboardInterrupt
            return original(cn, at, *args)

        monkeypatch.setattr(eager, "run_step", run_step)
    elif engine == "torch-native":
        from evospike.backends.torch.native.engine import NativeEngine

        original = NativeEngine.run

        def run(self, inp, start, n_steps):  # one kernel call a step: v is sampled each step
            if start <= step < start + n_steps:
                raise KeyboardInterrupt
            return original(self, inp, start, n_steps)

        monkeypatch.setattr(NativeEngine, "run", run)
    elif engine == "torch-fixed":
        from evospike.backends.torch import fixed

        original = fixed.step_population

        def step_population(p, prof, at, a_in):
            if at == step:
                raise KeyboardInterrupt
            return original(p, prof, at, a_in)

        monkeypatch.setattr(fixed, "step_population", step_population)
    else:  # Brian2 steps in its own loop: an operation raising inside the step
        b2 = runner.b2
        dt = runner.net.dt_ms * b2.ms

        def op(t):
            if int(round(float(t / dt))) == step:
                raise KeyboardInterrupt

        runner.trials[0].network.add(b2.NetworkOperation(op, dt=dt, when="start"))


@pytest.mark.parametrize("engine", ["torch-eager", "torch-native", "torch-fixed", "brian2"])
def test_an_interrupted_run_keeps_the_steps_done(engine, monkeypatch, tmp_path):
    full = _compile(engine, _tiny(), (3,)).run(40.0)
    runner = _compile(engine, _tiny(), (3,))
    _stop_at(engine, runner, monkeypatch, 17)
    cut = runner.run(40.0)
    assert not cut.complete and cut.meta["complete"] is False
    assert cut.n_steps == 17 and cut.duration_ms == 17.0
    for node in ("n", "in"):
        steps, neurons = full.spike_steps(node)
        got_steps, got_neurons = cut.spike_steps(node)
        np.testing.assert_array_equal(got_steps, steps[steps < 17])
        np.testing.assert_array_equal(got_neurons, neurons[steps < 17])
    assert full.spike_steps("n")[0].min() < 17 < full.spike_steps("n")[0].max()
    trace = next(iter(cut.traces.values()))
    assert trace.steps.tolist() == list(range(17))
    np.testing.assert_array_equal(trace.values,
                                  next(iter(full.traces.values())).values[:, :17])
    cut.save(tmp_path / "cut.h5")
    assert not Results.load(tmp_path / "cut.h5").complete
    if engine.startswith("torch"):  # a second call continues; the loss stays on record
        monkeypatch.undo()
        more = runner.run(10.0)
        assert more.n_steps == 27 and not more.complete
