"""An interrupted Brian2 run is kept honestly: the steps actually simulated, marked incomplete,
exit 130 (issue 13). Brian2's own SIGINT handler stops a run at the end of a step without an
exception; SIGTERM (through the CLI) raises KeyboardInterrupt inside a step. Also: the trials
of one runner share their generated code, so Cython compiles it once, and the first Cython
build says that it is compiling."""

import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from evospike import LIF, FixedProbability, Network
from evospike.backends import get_backend
from evospike.errors import EvoSpikeError
from evospike.results import Results

#: the steady model: every "pop" neuron fires regularly (v_rest + i_bias = -45 mV over a
#: -50 mV threshold, reset to -65 mV: one spike per tau_m ln 4 = 27.73 ms, i.e. every 278
#: steps), so the spike count says how many steps really ran
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
ISI_MS = 20.0 * np.log(4.0)
REQUESTED_STEPS = 1_000_000  # 100 s at 0.1 ms: far longer than the test waits


def _poisson_network() -> Network:
    """Poisson input (fed per run, by seed) into a recurrent population with a trace."""
    net = Network("noisy", dt_ms=0.1)
    src = net.poisson_source("drive", 40, 80.0)
    pop = net.population("pop", 30, LIF(v_rest_mV=-60.0, tau_refrac_ms=1.0))
    net.connect(src, pop, FixedProbability(0.3, seed=2), weight=6.0, delay_ms=0.2)
    net.connect(pop, pop, FixedProbability(0.1, seed=3), weight=2.0, delay_ms=0.3)
    net.record_spikes(pop)
    net.record_state(pop, "v", neurons=[0, 1], every_steps=1)
    return net


def _stop_at(runner, trial: int, step: int, hard: bool) -> None:
    """Interrupt ``trial`` during ``step`` as a signal would: ``hard`` raises KeyboardInterrupt
    inside the step (as the CLI's SIGTERM handler does), after its spikes and samples were
    recorded; otherwise do what Brian2's SIGINT handler does (set the stop flag)."""
    b2 = runner.b2
    dt = runner.net.dt_ms * b2.ms

    def op(t):
        if int(round(float(t / dt))) == step:
            if hard:
                raise KeyboardInterrupt
            b2.Network._globally_stopped = True

    # last in the step, after the monitors have recorded it
    runner.trials[trial].network.add(b2.NetworkOperation(op, dt=dt, when="end", order=10**6))


def _same_spikes(got: Results, want: Results, node: str = "pop") -> None:
    assert got.n_steps == want.n_steps
    for k in range(want.n_trials):
        for a, b in zip(got.spike_steps(node, k), want.spike_steps(node, k), strict=True):
            np.testing.assert_array_equal(a, b)


def _brian2(net: Network, seeds=(0,), **options):
    return get_backend("brian2").compile(net, seeds=seeds, target="numpy", progress=False,
                                         **options)


# ------------------------------------------------------------ in-process interruptions
@pytest.mark.parametrize("hard", [False, True], ids=["sigint-stop", "keyboardinterrupt"])
def test_stop_inside_the_first_trial_keeps_the_steps_simulated(hard):
    whole = _brian2(_poisson_network(), seeds=(4,)).run(300.0)
    steps = whole.spike_steps("pop")[0]
    cut = int(steps[steps > 500][0])  # a step with spikes: recorded before the interrupt
    runner = _brian2(_poisson_network(), seeds=(4, 5, 6))
    _stop_at(runner, 0, cut, hard)
    res = runner.run(300.0)
    assert not runner.b2.Network._globally_running  # later Ctrl-Cs still reach Python
    # a stop flag ends the run after the step; an exception inside it loses that step
    done = cut if hard else cut + 1
    assert not res.complete
    assert res.n_steps == done and res.duration_ms == pytest.approx(done * 0.1)
    assert res.n_trials == 1 and list(res.meta["seeds"]) == [4]
    assert "trial 0 (seed 4)" in res.meta["interrupted"]
    # what was kept is exactly the first `done` steps of the uninterrupted run
    got_steps, got_neurons = res.spike_steps("pop")
    keep = steps < done
    np.testing.assert_array_equal(got_steps, steps[keep])
    np.testing.assert_array_equal(got_neurons, whole.spike_steps("pop")[1][keep])
    trace, full = next(iter(res.traces.values())), next(iter(whole.traces.values()))
    np.testing.assert_array_equal(trace.steps, np.arange(done))
    np.testing.assert_array_equal(trace.values, full.values[:, :done])


def test_trials_that_finished_are_kept_whole():
    runner = _brian2(_poisson_network(), seeds=(4, 5, 6))
    _stop_at(runner, 1, 500, hard=False)
    res = runner.run(200.0)
    assert not res.complete
    assert res.n_steps == 2000 and res.n_trials == 1 and list(res.meta["seeds"]) == [4]
    assert "trial 1 (seed 5) at step 501" in res.meta["interrupted"]
    _same_spikes(res, _brian2(_poisson_network(), seeds=(4,)).run(200.0))


def test_a_run_stopped_at_a_step_boundary_continues_exactly():
    """Brian2's stop ends a step cleanly: running on gives the uninterrupted simulation."""
    runner = _brian2(_poisson_network())
    _stop_at(runner, 0, 900, hard=False)
    first = runner.run(200.0)
    assert first.n_steps == 901 and not first.complete
    res = runner.run(200.0)
    assert res.n_steps == 901 + 2000 and not res.complete  # the interruption stays on record
    _same_spikes(res, _brian2(_poisson_network()).run(290.1))


def test_a_run_interrupted_inside_a_step_cannot_continue():
    runner = _brian2(_poisson_network())
    _stop_at(runner, 0, 100, hard=True)
    assert runner.run(50.0).n_steps == 100
    with pytest.raises(EvoSpikeError, match="interrupted inside a step"):
        runner.run(10.0)


# ------------------------------------------------------------------ the CLI, end to end
def _interrupted_cli_run(tmp_path, signum: int) -> tuple[int, str, Results]:
    model = tmp_path / "steady.py"
    model.write_text(MODEL)
    out, log = tmp_path / "r.h5", tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "evospike.cli", "run", str(model),
                                 "--backend", "brian2", "--target", "numpy",
                                 "--duration", "100s", "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 180
            # wait for 1 % (10 000 steps): the progress bar shows 0 % from the start
            while (not re.search(r"trial 0: +[1-9]\d*%", log.read_text())
                   and proc.poll() is None):
                assert time.monotonic() < deadline, "no progress after 180 s"
                time.sleep(0.2)
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signum)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, log.read_text(), Results.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_run_interrupted_saves_the_steps_simulated(tmp_path, signum):
    code, err, res = _interrupted_cli_run(tmp_path, signum)
    assert code == 130, err
    assert "Traceback" not in err
    assert not res.complete
    assert 0 < res.n_steps < REQUESTED_STEPS
    steps, neurons = res.spike_steps("pop")
    assert steps.max() < res.n_steps
    # the rate is that of the steps that ran: every neuron fired once per ISI of them
    expected = res.n_steps * 0.1 / ISI_MS
    counts = np.bincount(neurons, minlength=20)
    assert np.all(np.abs(counts - expected) <= 1.5), (counts, expected)
    assert res.rates_hz("pop") == pytest.approx(counts / (res.n_steps * 1e-4))
    assert res.mean_rate_hz("pop") == pytest.approx(1000.0 / ISI_MS, rel=0.1)


# -------------------------------------------------------- compiled once, said once
def test_trials_generate_identical_code():
    """Brian2 names arrays after their owner and caches compiled Cython by the code's text:
    trials built side by side must name their objects alike, or each trial compiles again."""
    runner = _brian2(_poisson_network(), seeds=(0, 1, 2))
    runner.run(0.2)

    def code(built) -> dict[str, str]:
        # code objects (not their arrays) are renamed _1, _2 ... per trial
        return {re.sub(r"_\d+$", "", co.name): str(co.code)
                for obj in built.network.sorted_objects for co in obj._code_objects}

    first = code(runner.trials[0])
    assert len(first) >= 8
    for built in runner.trials[1:]:
        assert code(built) == first


def test_cython_compilation_is_announced_once(capsys, monkeypatch):
    from evospike.backends.brian2 import runner as brian2_runner

    monkeypatch.setattr(brian2_runner, "_cython_notice_shown", False)
    brian2_runner.compile_notice("numpy", True)
    brian2_runner.compile_notice("cython", False)
    assert capsys.readouterr().err == ""
    brian2_runner.compile_notice("cython", True)
    brian2_runner.compile_notice("cython", True)
    err = capsys.readouterr().err
    assert err.count("compiling Brian2 code with Cython") == 1


# ------------------------------------------------------------------------------ validate
@pytest.mark.parametrize("interrupted", ["candidate", "reference"])
def test_validate_stops_at_an_interrupted_run(monkeypatch, interrupted):
    """Nothing is judged on incomplete results, and an interrupted candidate does not start
    the reference (minutes of Brian2 for nothing)."""
    from evospike.validation import runs

    started = []

    class Backend:
        def __init__(self, name):
            self.name = name

        def compile(self, net, seeds, progress, **options):
            started.append(self.name)
            return self

        def run(self, duration_ms):
            meta = {"dt_ms": 0.1, "n_steps": 10, "n_trials": 1, "seeds": np.array([0]),
                    "complete": self.name != interrupted}
            return Results(meta)

    monkeypatch.setattr(runs, "get_backend",
                        lambda name: Backend("candidate" if name == "torch" else "reference"))
    with pytest.raises(KeyboardInterrupt, match=f"{interrupted} run"):
        runs.run_pair(_poisson_network, candidate="torch", reference="brian2",
                      duration_ms=1.0, seed=0, n_reference_seeds=2, candidate_options={},
                      reference_options={})
    assert started == (["candidate"] if interrupted == "candidate" else
                       ["candidate", "reference"])
