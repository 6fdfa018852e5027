"""Results files are checked on load as strictly as network files; `plot` writes the format its
file name says, refuses bad output paths before work, and honours a time window (issue 13)."""

import shutil

import h5py
import numpy as np
import pytest

from evospike.cli import main
from evospike.errors import EvoSpikeError
from evospike.plotting import raster_figure
from evospike.results import Results
from tests.conftest import load_example, run_torch

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}
DURATION_MS = 50.0
N_STEPS = 500  # quickstart runs at dt 0.1 ms


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """A real two-trial run with spikes, a state trace and a weight monitor."""
    net = load_example("quickstart").build()
    net.record_weights(net.projections["exc->inh"], every_steps=100)
    res = run_torch(net, DURATION_MS, seeds=(0, 1), engine="eager")
    path = tmp_path_factory.mktemp("good") / "good.h5"
    res.save(path)
    return path


@pytest.fixture(scope="module")
def good(good_file):
    return Results.load(good_file)


def _replace(group, key, data):
    del group[key]
    group.create_dataset(key, data=data)


def _set(f, key, value):
    f.attrs[key] = value


def _lengths(f, node, lengths):
    for key, n in zip(("step", "neuron", "trial"), lengths, strict=True):
        _replace(f[f"spikes/{node}"], key, np.zeros(n, np.int64))


def _poke(f, dataset, index, value):
    data = f[dataset][()]
    data[index] = value
    _replace(f[dataset.rsplit("/", 1)[0]], dataset.rsplit("/", 1)[1], data)


# (id, corruption, what the one-line message must say: the field and the value)
CORRUPTIONS = [
    ("dt-zero", lambda f: _set(f, "dt_ms", 0.0), "dt_ms must be a positive number of ms (got 0.0)"),
    ("dt-nan", lambda f: _set(f, "dt_ms", np.nan), "dt_ms must be finite (got nan)"),
    ("dt-text", lambda f: _set(f, "dt_ms", "fast"), "dt_ms must be a number (got 'fast')"),
    ("dt-missing", lambda f: f.attrs.__delitem__("dt_ms"), "dt_ms is missing"),
    ("trials-zero", lambda f: _set(f, "n_trials", 0), "n_trials must be at least 1 (got 0)"),
    ("steps-negative", lambda f: _set(f, "n_steps", -500),
     "n_steps must not be negative (got -500)"),
    ("steps-float", lambda f: _set(f, "n_steps", 500.5), "n_steps must be an integer (got 500.5)"),
    ("version-future", lambda f: _set(f, "version", 7),
     "version is not a results format version this EvoSpike reads (1 to 1) (got 7)"),
    ("seeds-count", lambda f: _set(f, "seeds", np.array([0, 1, 2])),
     "seeds must hold one seed per trial (n_trials is 2) (got [0, 1, 2])"),
    ("duration-disagrees", lambda f: _set(f, "duration_ms", 80.0),
     "duration_ms disagrees with n_steps x dt_ms = 50 ms (got 80.0)"),
    ("complete-text", lambda f: _set(f, "complete", "maybe"),
     "complete must be true or false (got 'maybe')"),
    ("versions-json", lambda f: _set(f, "versions", "{torch: 2"), "versions is not valid JSON"),
    ("spikes-missing", lambda f: f.__delitem__("spikes"), "spikes group is missing"),
    ("weights-missing", lambda f: f.__delitem__("weights"), "weights group is missing"),
    ("node-not-group", lambda f: (f["spikes"].__delitem__("inh"),
                                  f["spikes"].create_dataset("inh", data=[1, 2])),
     "spikes/inh must be a group"),
    ("size-zero", lambda f: f["spikes/exc"].attrs.__setitem__("size", 0),
     "spikes/exc attribute size must be a positive integer (got 0)"),
    ("neuron-out-of-range", lambda f: _poke(f, "spikes/exc/neuron", 0, 32),
     "spikes/exc/neuron must lie in [0, 32) (size 32) (got '32 at index 0')"),
    ("step-negative", lambda f: _poke(f, "spikes/exc/step", 0, -3),
     "spikes/exc/step must lie in [0, 500) (the steps run) (got '-3 at index 0')"),
    ("step-beyond-run", lambda f: _poke(f, "spikes/drive/step", 4, 500),
     "spikes/drive/step must lie in [0, 500) (the steps run) (got '500 at index 4')"),
    ("trial-out-of-range", lambda f: _poke(f, "spikes/exc/trial", 1, 2),
     "spikes/exc/trial must lie in [0, 2) (n_trials 2) (got '2 at index 1')"),
    ("lengths-mismatch", lambda f: _lengths(f, "exc", (3, 2, 3)),
     "spikes/exc step, neuron and trial must have one entry per spike (got '3, 2 and 3 "
     "entries')"),
    ("step-float-dtype", lambda f: _replace(f["spikes/exc"], "step",
                                            f["spikes/exc/step"][()].astype(np.float64)),
     "spikes/exc/step must hold integers (got 'dtype float64')"),
    ("step-text-dtype", lambda f: _replace(f["spikes/exc"], "step", np.array([b"a", b"b"])),
     "spikes/exc/step must hold integers (got 'dtype |S1')"),
    ("step-2d", lambda f: _replace(f["spikes/exc"], "step",
                                   f["spikes/exc/step"][()].reshape(1, -1)),
     "spikes/exc/step must have 1 dimension(s)"),
    ("trace-steps-beyond", lambda f: _poke(f, "traces/exc.v/steps", -1, 600),
     "traces/exc.v/steps must lie in [0, 500) (the steps run) (got '600 at index 499')"),
    ("trace-neuron-range", lambda f: _poke(f, "traces/exc.v/neurons", 2, 40),
     "traces/exc.v/neurons must lie in [0, 32) (size of 'exc') (got '40 at index 2')"),
    ("trace-shape", lambda f: _replace(f["traces/exc.v"], "values",
                                       f["traces/exc.v/values"][()][:1]),
     "traces/exc.v/values must have shape (n_trials, samples, neurons) = (2, 500, 3) "
     "(got 'shape (1, 500, 3)')"),
    ("trace-neuron-negative", lambda f: _poke(f, "traces/exc.v/neurons", 1, -1),
     "traces/exc.v/neurons must not be negative (got '-1 at index 1')"),
    ("trace-target-missing", lambda f: f["traces/exc.v"].attrs.__delitem__("target"),
     "traces/exc.v attribute target is missing"),
    ("weights-steps-order", lambda f: _poke(f, "weights/exc->inh.weights/steps", 2, 100),
     "weights/exc->inh.weights/steps must increase (got '100 at index 2')"),
    ("weights-values-text", lambda f: _replace(f["weights/exc->inh.weights"], "values",
                                               np.array([b"x"])),
     "weights/exc->inh.weights/values must hold real numbers (got 'dtype |S1')"),
]


def _corrupt(good_file, tmp_path, corruption):
    bad = tmp_path / "bad.h5"
    shutil.copyfile(good_file, bad)
    with h5py.File(bad, "r+") as f:
        corruption(f)
    return bad


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("evospike: error:"), err
    assert "Traceback" not in captured.err + captured.out
    return err


@pytest.mark.parametrize("corruption, message", [c[1:] for c in CORRUPTIONS],
                         ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_results_file_is_refused_naming_file_field_and_value(
        good_file, tmp_path, capsys, corruption, message):
    bad = _corrupt(good_file, tmp_path, corruption)
    with pytest.raises(EvoSpikeError) as info:
        Results.load(bad)
    text = str(info.value)
    assert text.startswith(f"results file '{bad}': "), text
    assert message in text, text
    assert "\n" not in text
    # the command line says the same in one line and exits 2, for info and for plot
    for argv in (["info", str(bad)], ["plot", str(bad), "-o", str(tmp_path / "p.png")]):
        assert main(argv) == 2
        err = _one_line_error(capsys)
        assert str(bad) in err and message in err
    assert not (tmp_path / "p.png").exists()


def test_valid_file_loads_and_info_reports_positive_rates(good_file, good, capsys):
    assert good.n_steps == N_STEPS and good.n_trials == 2 and good.complete
    assert set(good.spikes_by_node) == {"drive", "exc", "inh"}
    assert good.weights["exc->inh.weights"].values.shape[:2] == (2, 5)
    assert main(["info", str(good_file)]) == 0
    out = capsys.readouterr().out
    assert "500 steps" in out and "-" not in out.split("mean rate")[1].split("Hz")[0]


# ------------------------------------------------------------------ plot: formats and paths
@pytest.mark.parametrize("ext", ["png", "pdf", "svg", "SVG"])
def test_plot_writes_the_format_its_extension_names(good_file, tmp_path, capsys, ext):
    out = tmp_path / f"raster.{ext}"
    assert main(["plot", str(good_file), "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""
    data = out.read_bytes()
    assert data.startswith(MAGIC[ext.lower()]), data[:16]
    if ext.lower() == "svg":
        assert b"<svg" in data[:2000]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


@pytest.mark.parametrize("name, message", [
    ("raster.jpg", "extension '.jpg' is not one of .png, .pdf, .svg"),
    ("raster", "extension '(none)' is not one of .png, .pdf, .svg"),
])
def test_plot_refuses_an_unknown_extension_before_reading(tmp_path, capsys, name, message):
    out = tmp_path / name
    # the results file does not even exist: the extension is refused first
    assert main(["plot", str(tmp_path / "missing.h5"), "-o", str(out)]) == 2
    err = _one_line_error(capsys)
    assert f"figure file '{out}'" in err and message in err
    assert not out.exists()


def test_plot_refuses_an_unwritable_output_before_reading(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["plot", str(tmp_path / "missing.h5"), "-o", str(a_file / "p.png")]) == 2
    err = _one_line_error(capsys)
    assert (f"figure file '{a_file / 'p.png'}' cannot be written: '{a_file}' is a file, "
            "not a folder") in err
    folder = tmp_path / "figure.png"
    folder.mkdir()
    assert main(["plot", str(tmp_path / "missing.h5"), "-o", str(folder)]) == 2
    err = _one_line_error(capsys)
    assert f"figure file '{folder}' is a folder, not a file" in err


def test_plot_api_refuses_an_unknown_extension(good, tmp_path):
    with pytest.raises(EvoSpikeError, match=r"figure file '.*r\.gif': extension '\.gif'"):
        good.plot(tmp_path / "r.gif")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ plot: the time window
def test_raster_figure_draws_only_the_window(good):
    import matplotlib.pyplot as plt

    fig = raster_figure(good, trial=1, t_start_ms=10.0, t_stop_ms=30.0)
    try:
        raster, rate = fig.axes[0], fig.axes[1]
        assert raster.get_xlim() == pytest.approx((10.0, 30.0))
        drawn = np.concatenate([c.get_offsets()[:, 0] for c in raster.collections])
        expected = sum(int(((t >= 10.0) & (t < 30.0)).sum())
                       for t in (good.spikes(n, 1)[0] for n in good.spikes_by_node))
        assert drawn.size == expected > 0
        assert drawn.min() >= 10.0 and drawn.max() < 30.0
        # the whole run holds spikes outside the window, so the window really cut them out
        assert sum(good.spikes(n, 1)[0].size for n in good.spikes_by_node) > expected
        centres = rate.lines[0].get_xdata()
        np.testing.assert_allclose(centres, [12.5, 17.5, 22.5, 27.5])
        trace_times = fig.axes[2].lines[0].get_xdata()
        assert trace_times.min() >= 10.0 and trace_times.max() < 30.0
        assert trace_times.size == 200  # every step of [10, 30) ms at 0.1 ms
    finally:
        plt.close(fig)


def test_raster_figure_rates_in_a_partial_last_bin(good):
    import matplotlib.pyplot as plt

    fig = raster_figure(good, trial=0, bin_ms=5.0, t_start_ms=0.0, t_stop_ms=12.0)
    try:
        rate = next(line for line in fig.axes[1].lines if line.get_label() == "drive")
        np.testing.assert_allclose(rate.get_xdata(), [2.5, 7.5, 11.0])
        times = good.spikes("drive", 0)[0]
        last = ((times >= 10.0) & (times < 12.0)).sum()
        assert last > 0
        # 100 neurons, a 2 ms bin: the rate is per its own width, not the nominal 5 ms
        assert rate.get_ydata()[-1] == pytest.approx(last / (100 * 2e-3))
    finally:
        plt.close(fig)


def test_cli_plot_window(good_file, tmp_path, capsys):
    out = tmp_path / "w.png"
    assert main(["plot", str(good_file), "-o", str(out), "--t-start", "0",
                 "--t-stop", "0.02s"]) == 0
    assert out.read_bytes().startswith(MAGIC["png"])
    capsys.readouterr()


@pytest.mark.parametrize("window, message", [
    (["--t-start", "20ms", "--t-stop", "10ms"],
     "plot window: --t-stop 10 ms must be after --t-start 20 ms"),
    (["--t-start", "20ms", "--t-stop", "20ms"],
     "plot window: --t-stop 20 ms must be after --t-start 20 ms"),
    (["--t-stop", "80ms"], "plot window: --t-stop 80 ms is outside the recorded time "
                           "(0 to 50 ms)"),
    (["--t-start", "60ms"], "plot window: --t-start 60 ms is outside the recorded time "
                            "(0 to 50 ms)"),
    (["--t-start", "soon"], "Argument '--t-start': value is not a time like '1000ms' or '1s' "
                            "(got 'soon')"),
    (["--t-stop", "0ms"], "Argument '--t-stop': value must be a positive, finite time "
                          "(got '0ms')"),
    (["--max-neurons", "0"], "--max-neurons must be at least 1 (got 0)"),
    (["--trial", "2"], "--trial 2 is out of range: the file holds 2 trial(s)"),
])
def test_cli_plot_refuses_a_bad_window(good_file, tmp_path, capsys, window, message):
    out = tmp_path / "w.png"
    assert main(["plot", str(good_file), "-o", str(out), *window]) == 2
    err = _one_line_error(capsys)
    assert message in err, err
    assert not out.exists()
