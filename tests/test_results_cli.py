"""Results files, interrupted runs, plots and the command line."""


import h5py
import numpy as np
import pytest

from evospike.backends import get_backend
from evospike.cli import main
from evospike.errors import EvoSpikeError
from evospike.results import Results
from tests.conftest import ROOT, load_example, run_torch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_results():
    return run_torch(load_example("quickstart").build(), 200.0, seeds=(0, 1))


def test_results_round_trip_is_exact(tmp_path, quick_results):
    path = tmp_path / "r.h5"
    quick_results.save(path)
    back = Results.load(path)
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]  # no temporary file left
    for node, d in quick_results.spikes_by_node.items():
        e = back.spikes_by_node[node]
        assert e.size == d.size
        for field in ("step", "neuron", "trial"):
            np.testing.assert_array_equal(getattr(e, field), getattr(d, field))
    t, u = quick_results.traces["exc.v"], back.traces["exc.v"]
    np.testing.assert_array_equal(t.values, u.values)
    np.testing.assert_array_equal(t.steps, u.steps)
    for key in ("backend", "engine", "dt_ms", "n_steps", "n_trials", "complete", "network"):
        assert back.meta[key] == quick_results.meta[key], key
    np.testing.assert_array_equal(back.meta["seeds"], [0, 1])
    assert back.meta["versions"]["torch"]
    np.testing.assert_allclose(back.rates_hz("exc", trial=1), quick_results.rates_hz("exc", 1))


def test_rates_and_spike_accessors(quick_results):
    times, neurons = quick_results.spikes("exc", trial=0)
    steps, neurons2 = quick_results.spike_steps("exc", trial=0)
    np.testing.assert_allclose(times, steps * 0.1)
    np.testing.assert_array_equal(neurons, neurons2)
    rates = quick_results.rates_hz("exc", trial=0)
    assert rates.shape == (32,)
    np.testing.assert_allclose(rates.sum(), times.size / 0.2)
    both = quick_results.spikes_by_node["exc"].step.size
    np.testing.assert_allclose(quick_results.mean_rate_hz("exc"), both / (32 * 2 * 0.2))
    with pytest.raises(EvoSpikeError, match="no spikes were recorded for 'nope'"):
        quick_results.spikes("nope")


def test_plot_writes_png(tmp_path, quick_results):
    out = quick_results.plot(tmp_path / "raster.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 10_000


def test_interrupted_run_keeps_what_it_recorded(tmp_path, monkeypatch):
    runner = get_backend("torch").compile(load_example("quickstart").build(), progress=False)
    original = runner._chunk_inputs
    calls = {"n": 0}

    def interrupt_on_third_chunk(start, n):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(start, n)

    monkeypatch.setattr(runner, "_chunk_inputs", interrupt_on_third_chunk)
    res = runner.run(1000.0)
    assert not res.complete
    assert res.n_steps == 2000  # two chunks of 1000 steps finished
    steps = res.spikes_by_node["exc"].step
    assert steps.size > 0 and steps.max() < 2000
    res.save(tmp_path / "partial.h5")
    back = Results.load(tmp_path / "partial.h5")
    assert back.complete is False
    assert "INCOMPLETE" in back.summary()


def test_failed_save_leaves_existing_file_intact(tmp_path, quick_results, monkeypatch):
    path = tmp_path / "r.h5"
    quick_results.save(path)
    before = path.read_bytes()

    def boom(self, name, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        quick_results.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_cli_run_info_plot(tmp_path, capsys):
    out = tmp_path / "r.h5"
    code = main(["run", str(ROOT / "examples" / "cuba.py"), "--duration", "1000ms",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    res = Results.load(out)
    assert res.n_steps == 10_000 and res.complete
    assert 3.0 < res.mean_rate_hz("exc") < 9.0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exc" in text and "mean rate" in text and "10000 steps" in text
    assert main(["plot", str(out), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_trials_and_saved_network(tmp_path, capsys):
    net = load_example("quickstart").build()
    net.save(tmp_path / "net.h5")
    assert main(["info", str(tmp_path / "net.h5")]) == 0
    assert "population exc" in capsys.readouterr().out
    out = tmp_path / "r.h5"
    assert main(["run", str(tmp_path / "net.h5"), "--duration", "100ms", "--trials", "3",
                 "--seed", "4", "--engine", "eager", "--out", str(out), "--no-progress"]) == 0
    res = Results.load(out)
    np.testing.assert_array_equal(res.meta["seeds"], [4, 5, 6])
    assert set(np.unique(res.spikes_by_node["drive"].trial)) == {0, 1, 2}


@pytest.mark.parametrize("argv, message", [
    (["run", "missing.py"], "model file 'missing.py' does not exist"),
    (["run", "EXAMPLE", "--backend", "genn"], "unknown backend 'genn'"),
    (["run", "EXAMPLE", "--duration=-5ms"], "--duration"),
    (["run", "EXAMPLE", "--dt", "0.25ms"], "dt"),
    (["run", "EXAMPLE", "--device", "cuda:7"], "cuda"),
    (["run", "EXAMPLE", "--trials", "0"], "--trials must be at least 1"),
    (["info", "nothing.h5"], "'nothing.h5' does not exist"),
    (["plot", "README"], "not an HDF5 file"),
])
def test_cli_user_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README").write_text("not hdf5")
    argv = [str(ROOT / "examples" / "quickstart.py") if a == "EXAMPLE" else a for a in argv]
    if "--device" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA; the error path needs a machine without it")
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("evospike: error:")
    assert message in err
    assert "Traceback" not in err


def test_bad_model_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("def build():\n    return 42\n")
    assert main(["run", str(bad)]) == 2
    assert "returned int, not a Network" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('oops')\n")
    assert main(["run", str(broken)]) == 2
    assert "ValueError: oops" in capsys.readouterr().err


def test_weight_monitor_snapshots_the_projection(engine):
    net = load_example("quickstart").build()
    proj = net.projections["exc->inh"]
    net.record_weights(proj, every_steps=250)
    res = run_torch(net, 100.0, engine=engine, seeds=(0, 1), precision="float64")
    w = res.weights["exc->inh.weights"]
    np.testing.assert_array_equal(w.steps, [0, 250, 500, 750])
    assert w.values.shape == (2, 4, proj.n_synapses)
    np.testing.assert_array_equal(w.values[1, 3], proj.weights)


def test_state_monitor_samples_every_k_steps(engine):
    net = load_example("quickstart").build()
    net.record_state("inh", "i_exc", neurons=[1, 5], every_steps=40)
    every = run_torch(net, 100.0, engine=engine, precision="float64")
    sparse = every.traces["inh.i_exc"]
    np.testing.assert_array_equal(sparse.steps, np.arange(0, 1000, 40))
    assert sparse.values.shape == (1, 25, 2)
    dense_net = load_example("quickstart").build()
    dense_net.record_state("inh", "i_exc", neurons=[1, 5], every_steps=1)
    dense = run_torch(dense_net, 100.0, engine=engine, precision="float64").traces["inh.i_exc"]
    np.testing.assert_array_equal(sparse.values[0], dense.values[0, ::40])
    assert np.abs(dense.values).max() > 0


def test_trial_selection(quick_results):
    one = quick_results.trial(1)
    assert one.n_trials == 1
    np.testing.assert_array_equal(one.spike_steps("exc")[0], quick_results.spike_steps("exc", 1)[0])
    np.testing.assert_array_equal(one.traces["exc.v"].values[0],
                                  quick_results.traces["exc.v"].values[1])
    np.testing.assert_array_equal(one.meta["seeds"], [1])
    with pytest.raises(EvoSpikeError, match="trial 2 is out of range"):
        quick_results.trial(2)


def test_recurrence_detection():
    from evospike import LIF, FixedProbability, Network

    net = Network("ff")
    a, b, c = (net.population(n, 5, LIF()) for n in "abc")
    src = net.poisson_source("src", 5, 10.0)
    net.connect(src, a, FixedProbability(1.0))
    net.connect(a, b, FixedProbability(1.0))
    net.connect(b, c, FixedProbability(1.0))
    assert net.recurrent_populations() == []
    net.connect(c, a, FixedProbability(1.0))
    assert sorted(net.recurrent_populations()) == ["a", "b", "c"]
    assert load_example("cuba").build(400).recurrent_populations() == ["exc", "inh"]
