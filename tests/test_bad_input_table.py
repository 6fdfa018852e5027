"""The bad-input table (issue 13): across the whole surface a user touches -- the command line,
model files, network files, results files and the IR constructors -- a bad input is refused with
one line that names the object and the offending value, exit status 2 on the command line, and
no traceback.

Every row is one `pytest.param` of `TABLE`, in five groups:

- ``cli``: an argv run through `evospike.cli.main`;
- ``model``: a broken ``.py`` model run with ``evospike run``;
- ``network``: a valid saved network corrupted with h5py, given to ``evospike info`` and
  ``evospike run``;
- ``results``: a corrupted results file given to ``evospike info`` and ``evospike plot``
  (`tests/test_results_validation.py` covers the fields one by one);
- ``ir``: an IR constructor or DSL call, which must raise `ValidationError` / `EvoSpikeError`.

Each row lists fragments that must all appear in the message: the object (option, file, node)
and the value."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from evospike import (
    LIF,
    STDP,
    AdaptiveLIF,
    AdEx,
    AllToAll,
    CubaLIF,
    CurrentInput,
    FixedInDegree,
    FixedProbability,
    FromArrays,
    Homeostasis,
    Izhikevich,
    Metaplasticity,
    Modulator,
    Network,
    Normal,
    NoveltyDrive,
    OneToOne,
    PoissonSource,
    RewardEvents,
    RewardModulatedSTDP,
    RewardSeries,
    SpikeCountDrive,
    SpikeTimesSource,
    Uniform,
)
from evospike.cli import main
from evospike.errors import EvoSpikeError, ValidationError
from tests.conftest import ROOT, run_torch

TINY = '''
from evospike import LIF, FixedProbability, Network


def build():
    net = Network("tiny", dt_ms=0.1)
    a = net.population("a", 10, LIF(v_rest_mV=-49.0, v_thresh_mV=-50.0, v_reset_mV=-60.0))
    net.connect(a, a, FixedProbability(0.2, seed=1), weight=1.0, delay_ms=0.1)
    net.record_spikes(a)
    return net
'''


def _network() -> Network:
    """Every kind of node the corruptions below reach: two neuron models, both kinds of source,
    a current, a plastic projection, a modulator, homeostasis and all three monitors."""
    net = Network("probe", dt_ms=0.1)
    exc = net.population("exc", 16, LIF(tau_m_ms=20.0, v_rest_mV=-65.0, v_thresh_mV=-50.0,
                                        v_reset_mV=-65.0, tau_refrac_ms=2.0),
                         initial={"v": Uniform(-65.0, -55.0)})
    inh = net.population("inh", 4, Izhikevich(), initial={"v": -65.0})
    drive = net.poisson_source("drive", 10, rate_hz=20.0)
    cue = net.spike_source("cue", 2, [0, 1], [1.0, 2.0])
    plastic = net.connect(drive, exc, FixedProbability(0.5, seed=0), weight=6.0, delay_ms=1.0)
    net.connect(exc, inh, FixedProbability(0.5, seed=1), weight=2.0, delay_ms=1.0)
    net.connect(cue, exc, AllToAll(), weight=2.0, delay_ms=0.1)
    net.inject_current(exc, 1.0)
    net.modulator("dopamine", tau_ms=50.0, drives=[RewardEvents(times_ms=[5.0], amounts=[1.0])])
    net.stdp(plastic, a_plus=0.01, a_minus=0.012, w_max=10.0)
    net.homeostasis("exc", target_rate_hz=10.0, tau_rate_ms=1000.0)
    net.record_spikes(exc, inh)
    net.record_state(exc, "v", neurons=[0, 1])
    net.record_weights(plastic, every_steps=10)
    return net


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The valid files every row starts from, made once for the module."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "model.py").write_text(TINY)
    _network().save(d / "net.h5")
    net = _network()
    run_torch(net, 5.0, engine="eager").save(d / "results.h5")
    (d / "notes.txt").write_text("not a model\n")
    (d / "broken.yaml").write_text("train: [1, 2\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "unknown.yaml").write_text("dataset: digits\nbogus_key: 3\n")
    (d / "folder").mkdir()
    return {"dir": d, "model": d / "model.py", "net": d / "net.h5",
            "results": d / "results.h5", "txt": d / "notes.txt"}


def _one_line(capsys, code: int, fragments: tuple[str, ...]) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, (code, err)
    assert "Traceback" not in err + captured.out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evospike: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse leaving past main: fails the row on its status
        return stop.code if isinstance(stop.code, int) else -1


# ============================================================================ rows: cli
def cli(name: str, argv: str, *fragments: str):
    """``argv`` with ``{model}``, ``{net}``, ``{results}``, ``{txt}``, ``{dir}`` filled in from
    the fixture files; the fragments too."""
    return pytest.param("cli", (argv, fragments), id=f"cli-{name}")


RUN = "run {model} --no-progress --out {dir}/r.h5"
CLI_ROWS = [
    cli("no-command", "", "COMMAND"),
    cli("unknown-command", "bogus", "'bogus'", "COMMAND"),
    cli("run-no-model", "run", "run:", "model"),
    cli("run-unknown-option", RUN + " --colour red", "--colour", "red"),
    cli("run-duration-word", RUN + " --duration abc", "--duration", "'abc'"),
    cli("run-duration-unit", RUN + " --duration 5parsecs", "--duration", "'5parsecs'"),
    cli("run-duration-zero", RUN + " --duration 0ms", "--duration", "'0ms'"),
    cli("run-duration-overflow", RUN + " --duration 1e400ms", "--duration", "'1e400ms'"),
    cli("run-duration-negative", RUN + " --duration -5ms", "--duration", "'-5ms'"),
    cli("run-duration-between-steps", RUN + " --duration 0.15ms", "--duration", "0.15ms"),
    cli("run-dt-zero", RUN + " --dt 0ms", "--dt", "'0ms'"),
    cli("run-dt-not-the-models", RUN + " --dt 0.2ms", "{model}", "dt 0.1 ms", "0.2 ms"),
    cli("run-trials-zero", RUN + " --trials 0", "--trials", "(got 0)"),
    cli("run-trials-text", RUN + " --trials x", "--trials", "'x'"),
    cli("run-seed-fraction", RUN + " --seed 1.5", "--seed", "'1.5'"),
    cli("run-seed-negative", RUN + " --seed -1", "--seed -1"),
    cli("run-backend-unknown", RUN + " --backend genn", "backend 'genn'"),
    cli("run-param-not-name-value", RUN + " --param scale", "--param 'scale'", "NAME=VALUE"),
    cli("run-param-unknown", RUN + " --param scale=0.1", "--param scale", "takes no parameter",
        "'scale'"),
    cli("run-param-twice", RUN + " --param a=1 --param a=2", "--param 'a'", "twice"),
    cli("run-param-dt", RUN + " --param dt_ms=0.2", "--param dt_ms", "--dt"),
    cli("run-param-saved-network", "run {net} --no-progress --param scale=1 --out {dir}/r.h5",
        "--param scale", "saved network"),
    cli("info-param-results", "info {results} --param scale=1", "--param", "not a .py model"),
    cli("run-engine-unknown", RUN + " --engine turbo", "--engine", "'turbo'"),
    cli("run-precision-unknown", RUN + " --precision float16", "--precision", "'float16'"),
    cli("run-target-unknown", RUN + " --target fortran", "--target", "'fortran'"),
    cli("run-threads-zero", RUN + " --threads 0", "--threads", "(got 0)"),
    cli("run-threads-text", RUN + " --threads many", "--threads", "'many'"),
    cli("run-device-unknown", RUN + " --device banana", "--device 'banana'"),
    cli("run-device-meta", RUN + " --device meta", "--device 'meta'"),
    cli("run-engine-on-brian2", RUN + " --backend brian2 --engine eager", "brian2",
        "engine 'eager'"),
    cli("run-target-on-torch", RUN + " --target numpy", "torch backend", "target"),
    cli("run-fixed-refuses-izhikevich", "run {net} --no-progress --out {dir}/r.h5 "
        "--precision fixed --duration 1ms", "precision 'fixed'", "Population 'inh'",
        "Izhikevich"),
    cli("run-model-missing", "run {dir}/nope.py --out {dir}/r.h5", "'{dir}/nope.py'",
        "does not exist"),
    cli("run-model-text-file", "run {txt} --out {dir}/r.h5", "'{txt}'", ".py file"),
    cli("run-model-folder", "run {dir}/folder --out {dir}/r.h5", "'{dir}/folder'", ".py file"),
    cli("run-out-folder", "run {model} --out {dir}/folder", "--out '{dir}/folder'",
        "is a folder"),
    cli("run-out-is-model", "run {model} --out {model}", "--out '{model}'",
        "is the model file"),
    cli("run-out-empty", "run {model} --out=", "--out is empty"),
    cli("info-missing", "info {dir}/nope.h5", "'{dir}/nope.h5'", "does not exist"),
    cli("info-text-file", "info {txt}", "'{txt}'", "is not an HDF5 file"),
    cli("info-folder", "info {dir}/folder", "'{dir}/folder'", "is a folder"),
    cli("info-no-path", "info", "info:", "path"),
    cli("plot-network-file", "plot {net} -o {dir}/p.png", "'{net}'", "'evospike-network'"),
    cli("plot-extension", "plot {results} -o {dir}/p.jpg", "'{dir}/p.jpg'", "'.jpg'"),
    cli("plot-trial", "plot {results} -o {dir}/p.png --trial 5", "--trial 5", "1 trial(s)"),
    cli("plot-trial-text", "plot {results} -o {dir}/p.png --trial first", "--trial",
        "'first'"),
    cli("plot-max-neurons", "plot {results} -o {dir}/p.png --max-neurons 0", "--max-neurons",
        "(got 0)"),
    cli("plot-t-stop-unit", "plot {results} -o {dir}/p.png --t-stop 1fortnight", "--t-stop",
        "'1fortnight'"),
    cli("plot-window-outside", "plot {results} -o {dir}/p.png --t-start 60ms", "--t-start 60 ms",
        "outside the recorded time"),
    cli("validate-margin", "validate {model} --out-dir {dir}/v --margin -1", "--margin",
        "(got -1.0)"),
    cli("validate-reference-seeds", "validate {model} --out-dir {dir}/v --reference-seeds 1",
        "--reference-seeds", "(got 1)"),
    cli("validate-against-unknown", "validate {model} --out-dir {dir}/v --against genn",
        "'genn'"),
    cli("validate-precision", "validate {model} --out-dir {dir}/v --precision int4",
        "--precision", "'int4'"),
    cli("validate-out-dir-file", "validate {model} --out-dir {txt}", "--out-dir '{txt}'",
        "is a file, not a folder"),
    cli("validate-model-missing", "validate {dir}/nope.py --out-dir {dir}/v", "'{dir}/nope.py'",
        "does not exist"),
    cli("map-model-missing", "map {dir}/nope.py", "'{dir}/nope.py'", "does not exist"),
    cli("map-hardware-unknown", "map {model} --hardware truenorth", "--hardware",
        "'truenorth'"),
    cli("energy-seed-negative", "energy {model} --seed -1 --no-progress", "--seed -1"),
    cli("energy-trials-zero", "energy {model} --trials 0 --no-progress", "--trials",
        "(got 0)"),
    cli("energy-hardware-unknown", "energy {model} --hardware gpu", "--hardware", "'gpu'"),
    cli("energy-results-missing", "energy {model} --results {dir}/nope.h5 --no-progress",
        "'{dir}/nope.h5'", "does not exist"),
    cli("energy-results-file-as-model", "energy {results} --no-progress", "'{results}'",
        "is a results file"),
    cli("energy-checkpoint-missing", "energy {dir}/nope.pt", "'{dir}/nope.pt'",
        "does not exist"),
    cli("train-config-missing", "train {dir}/nope.yaml", "'{dir}/nope.yaml'", "does not exist"),
    cli("train-yaml-broken", "train {dir}/broken.yaml", "'{dir}/broken.yaml'",
        "not valid YAML at line 2, column 1"),
    cli("train-yaml-not-mapping", "train {dir}/list.yaml", "'{dir}/list.yaml'",
        "must hold a mapping"),
    cli("train-unknown-key", "train {dir}/unknown.yaml", "bogus_key", "(got 3)"),
    cli("train-check-chunk", "train {dir}/unknown.yaml --check-chunk 0", "--check-chunk",
        "(got 0)"),
    cli("train-epochs-negative", f"train {ROOT}/examples/digits.yaml --epochs -1 --out "
        "{dir}/train", "train.epochs", "(got -1)"),
    cli("train-device-unknown", f"train {ROOT}/examples/digits.yaml --device banana --out "
        "{dir}/train", "device", "'banana'"),
    cli("train-check-backend-unknown", "train {dir}/unknown.yaml --check-backend nest",
        "--check-backend", "'nest'"),
    cli("setup-unknown-environment", "setup nest", "setup:", "'nest'"),
]


# ============================================================================ rows: model files
def model(name: str, source: str | bytes, *fragments: str):
    """A model file ``<name>.py`` holding ``source``, run with ``evospike run``; ``{path}`` in a
    fragment is the file's path."""
    return pytest.param("model", (name, source, fragments), id=f"model-{name}")


HEAD = "from evospike import *\n\n\ndef build():\n    net = Network('m', dt_ms=0.1)\n"
POP = "    a = net.population('a', 5, LIF())\n"
END = "    return net\n"
MODEL_ROWS = [
    model("syntax-error", "def build(:\n    pass\n", "importing '{path}'", "SyntaxError",
          "line 1"),
    model("indentation", "def build():\nreturn 1\n", "importing '{path}'",
          "IndentationError"),
    model("import-error", "import evospike_no_such_module\n", "importing '{path}'",
          "evospike_no_such_module"),
    model("import-name", "from evospike import NoSuchThing\n", "importing '{path}'",
          "NoSuchThing"),
    model("exits-on-import", "import sys\nsys.exit('bye')\n", "importing '{path}'",
          "sys.exit('bye')"),
    model("null-bytes", b"\x00\xff\xfe garbage\x00", "importing '{path}'", "null bytes"),
    model("empty", "", "'{path}'", "defines no build()"),
    model("no-build", "from evospike import Network\nnet = Network('x')\n", "'{path}'",
          "defines no build()"),
    model("build-not-callable", "build = 5\n", "'{path}'", "defines no build()"),
    model("build-raises", "def build():\n    raise RuntimeError('boom\\nsecond line')\n",
          "build() in '{path}'", "RuntimeError: boom second line"),
    model("build-returns-none", "def build():\n    pass\n", "build() in '{path}'",
          "returned NoneType"),
    model("build-returns-int", "def build():\n    return 42\n", "build() in '{path}'",
          "returned int"),
    model("build-returns-class", "from evospike import Network\n\n\ndef build():\n"
          "    return Network\n", "build() in '{path}'", "returned type"),
    model("build-needs-arguments", "def build(n_neurons, scale):\n    pass\n",
          "build() in '{path}'", "requires n_neurons, scale"),
    model("build-recursion", "def build():\n    return build()\n", "build() in '{path}'",
          "RecursionError"),
    model("negative-tau", HEAD + "    net.population('a', 5, LIF(tau_m_ms=-20.0))\n" + END,
          "build() in '{path}'", "LIF 'model'", "tau_m_ms", "(got -20.0)"),
    model("volts-for-millivolts", HEAD + "    net.population('a', 5, LIF(v_rest_mV=-0.065, "
          "v_reset_mV=-0.065, v_thresh_mV=-0.05))\n" + END, "build() in '{path}'",
          "look like volts", "-0.05"),
    model("tau-in-seconds", HEAD + "    net.population('a', 5, LIF(tau_m_ms=0.02))\n" + END,
          "Population 'a'", "LIF.tau_m_ms", "(got 0.02)"),
    model("connector-p", HEAD + POP + "    net.connect(a, a, FixedProbability(1.5))\n" + END,
          "build() in '{path}'", "FixedProbability", "p must lie in [0, 1]", "(got 1.5)"),
    model("connector-p-text", HEAD + POP + "    net.connect(a, a, FixedProbability('0.5'))\n"
          + END, "FixedProbability", "p must be a real number", "(got '0.5')"),
    model("unknown-population", HEAD + POP + "    net.connect(a, 'ghost', AllToAll())\n" + END,
          "build() in '{path}'", "Network 'm'", "(got 'ghost')"),
    model("weight-text", HEAD + POP + "    net.connect(a, a, AllToAll(), weight='1.0')\n" + END,
          "Projection 'a->a'", "weight", "(got '1.0')"),
    model("delay-fraction", HEAD + POP + "    net.connect(a, a, AllToAll(), delay_ms=0.25)\n"
          + END, "Projection 'a->a'", "delay_ms", "(got 0.25)"),
    model("poisson-rate", HEAD + "    net.poisson_source('p', 3, rate_hz=5e4)\n" + END,
          "PoissonSource 'p'", "rate_hz", "(got 50000.0)"),
    model("dt-absurd", "from evospike import Network\n\n\ndef build():\n"
          "    return Network('m', dt_ms=500.0)\n", "Network 'm'", "dt_ms", "(got 500.0)"),
    model("stdp-bounds", HEAD + POP + "    p = net.connect(a, a, AllToAll(), weight=0.5)\n"
          "    net.stdp(p, w_max=0.1)\n" + END, "STDP 'a->a.stdp'", "w_max", "(got 0.5)"),
    model("missing-modulator", HEAD + POP + "    p = net.connect(a, a, AllToAll(), weight=0.5)\n"
          "    net.reward_stdp(p, 'dopamine')\n" + END, "RewardModulatedSTDP 'a->a.rstdp'",
          "(got 'dopamine')"),
    model("state-variable", HEAD + POP + "    net.record_state(a, 'u')\n" + END,
          "StateMonitor 'a.u'", "(got 'u')"),
    model("huge-population", HEAD + "    net.population('a', 10**12, LIF())\n" + END,
          "Network 'm'", "GB", "more than"),
    model("huge-projection", HEAD + "    a = net.population('a', 10**6, LIF())\n"
          "    net.connect(a, a, AllToAll())\n" + END, "Projection 'a->a'",
          "AllToAll on 1000000 x 1000000"),
    model("nothing-to-simulate", HEAD + END, "'{path}'", "network 'm'", "nothing to simulate"),
]


# ============================================================================ rows: network files
def _replace(group: h5py.Group, key: str, data) -> None:
    del group[key]
    group.create_dataset(key, data=data)


def _poke(f: h5py.File, dataset: str, index: int, value) -> None:
    data = f[dataset][()]
    data[index] = value
    folder, key = dataset.rsplit("/", 1)
    _replace(f[folder], key, data)


def _attr(path: str, key: str, value):
    return lambda f: f[path].attrs.__setitem__(key, value)


def _drop_attr(path: str, key: str):
    return lambda f: f[path].attrs.__delitem__(key)


def network(name: str, corrupt, *fragments: str):
    """The fixture network with ``corrupt(h5py file)`` applied, given to ``info`` and ``run``;
    ``{path}`` in a fragment is the corrupted file."""
    return pytest.param("network", (corrupt, fragments), id=f"network-{name}")


PROJ = "projections/exc->inh"
NETWORK_ROWS = [
    network("format-missing", _drop_attr("/", "format"), "'{path}'", "format attribute: ''"),
    network("format-other", _attr("/", "format", "nir"), "'{path}'", "'nir'"),
    network("version-future", _attr("/", "version", 9), "'{path}'", "version 9"),
    network("version-zero", _attr("/", "version", 0), "'{path}'", "version 0"),
    network("version-text", _attr("/", "version", "one"), "'{path}'", "version",
            "(got 'one')"),
    network("version-missing", _drop_attr("/", "version"), "'{path}'", "version is missing"),
    network("dt-text", _attr("/", "dt_ms", "fast"), "'{path}'", "dt_ms", "(got 'fast')"),
    network("dt-negative", _attr("/", "dt_ms", -0.1), "Network 'probe'", "dt_ms", "(got -0.1)"),
    network("dt-nan", _attr("/", "dt_ms", np.nan), "Network 'probe'", "dt_ms", "(got nan)"),
    network("name-missing", _drop_attr("/", "name"), "'{path}'", "name is missing"),
    network("populations-missing", lambda f: f.__delitem__("populations"), "'{path}'",
            "'populations'"),
    network("monitors-missing", lambda f: f.__delitem__("monitors"), "'{path}'", "'monitors'"),
    network("neuron-kind-unknown", _attr("populations/exc", "model", "Hodgkin"), "'{path}'",
            "populations/exc", "'Hodgkin'"),
    network("size-zero", _attr("populations/exc", "size", 0), "Population 'exc'", "size",
            "(got 0)"),
    network("size-fraction", _attr("populations/exc", "size", 16.5), "'{path}'",
            "populations/exc attribute size", "(got 16.5)"),
    network("size-text", _attr("populations/exc", "size", "many"), "populations/exc",
            "(got 'many')"),
    network("param-nan", lambda f: _replace(f["populations/exc/params"], "tau_m_ms", np.nan),
            "LIF", "tau_m_ms", "(got nan)"),
    network("param-text", lambda f: _replace(f["populations/exc/params"], "tau_m_ms",
                                             b"twenty"), "LIF", "tau_m_ms", "(got b'twenty')"),
    network("param-unknown", lambda f: f["populations/exc/params"].create_dataset("tau_x",
                                                                                  data=1.0),
            "'{path}'", "populations/exc/params", "'tau_x'"),
    network("param-missing", lambda f: f["populations/exc/params"].__delitem__("tau_m_ms"),
            "'{path}'", "populations/exc/params", "'tau_m_ms'"),
    network("param-matrix", lambda f: _replace(f["populations/exc/params"], "tau_m_ms",
                                               np.ones((2, 2))), "LIF", "tau_m_ms",
            "(got (2, 2))"),
    network("param-per-neuron-length", lambda f: _replace(f["populations/exc/params"],
                                                          "tau_m_ms", np.full(3, 20.0)),
            "Population 'exc'", "LIF.tau_m_ms", "(got (3,))"),
    network("reset-unknown", _attr("populations/exc", "reset", "explode"), "LIF", "reset",
            "(got 'explode')"),
    network("distribution-unknown", _attr("populations/exc/initial/v", "distribution",
                                          "Cauchy"), "populations/exc/initial/v", "'Cauchy'"),
    network("distribution-args", _attr("populations/exc/initial/v", "args", np.array([1.0])),
            "populations/exc/initial/v", "args", "(got [1.0])"),
    network("distribution-reversed", _attr("populations/exc/initial/v", "args",
                                           np.array([-50.0, -60.0])), "Uniform", "high",
            "(got -60.0)"),
    network("initial-nan", lambda f: _replace(f["populations/inh/initial"], "v", np.nan),
            "Population 'inh'", "initial['v']", "(got nan)"),
    network("initial-unknown-state", lambda f: f["populations/inh/initial"].create_dataset(
        "w9", data=1.0), "Population 'inh'", "(got 'w9')"),
    network("index-out-of-range", lambda f: _poke(f, f"{PROJ}/indices", 0, 4),
            "Projection 'exc->inh'", "indices", "(got 4)"),
    network("index-negative", lambda f: _poke(f, f"{PROJ}/indices", 0, -1),
            "Projection 'exc->inh'", "indices", "(got -1)"),
    network("indptr-not-monotone", lambda f: _poke(f, f"{PROJ}/indptr", 3, 0),
            "Projection 'exc->inh'", "indptr", "never decrease", "'0 at index 3'"),
    network("indptr-last-falls", lambda f: _poke(f, f"{PROJ}/indptr", -1, 30),
            "Projection 'exc->inh'", "indptr", "'30 at index 16'"),
    network("indptr-short", lambda f: _replace(f[PROJ], "indptr", f[f"{PROJ}/indptr"][()][:-1]),
            "Projection 'exc->inh'", "indptr", "17 entries", "(got (16,))"),
    network("weight-nan", lambda f: _poke(f, f"{PROJ}/weights", 2, np.nan),
            "Projection 'exc->inh'", "weights", "nan"),
    network("weight-inf", lambda f: _poke(f, f"{PROJ}/weights", 2, np.inf),
            "Projection 'exc->inh'", "weights", "inf"),
    network("weights-short", lambda f: _replace(f[PROJ], "weights",
                                                f[f"{PROJ}/weights"][()][:-1]),
            "Projection 'exc->inh'", "weights has 32 entries"),
    network("weights-text", lambda f: _replace(f[PROJ], "weights", np.array([b"x"] * 33)),
            "Projection 'exc->inh'", "weights", "|S1"),
    network("delay-negative", lambda f: _poke(f, f"{PROJ}/delays", 1, -2),
            "Projection 'exc->inh'", "delays", "(got -2)"),
    network("delay-zero", lambda f: _poke(f, f"{PROJ}/delays", 1, 0),
            "Projection 'exc->inh'", "delays", "(got 0)"),
    network("delay-fraction", lambda f: _replace(f[PROJ], "delays",
                                                 f[f"{PROJ}/delays"][()] + 0.5),
            "Projection 'exc->inh'", "delays", "10.5"),
    network("indices-float", lambda f: _replace(f[PROJ], "indices",
                                                f[f"{PROJ}/indices"][()].astype(float)),
            "Projection 'exc->inh'", "indices", "float64"),
    network("indices-missing", lambda f: f[PROJ].__delitem__("indices"), "'{path}'",
            "projections/exc->inh", "'indices'"),
    network("pre-unknown", _attr(PROJ, "pre", "ghost"), "Network 'probe'", "(got 'ghost')"),
    network("n-post-wrong", _attr(PROJ, "n_post", 5), "Projection 'exc->inh'", "n_post",
            "(got 5)"),
    network("channel-unknown", _attr(PROJ, "target", "dopamine"), "Projection 'exc->inh'",
            "target", "(got 'dopamine')"),
    network("poisson-negative", lambda f: _replace(f["sources/drive"], "rate_hz", -5.0),
            "PoissonSource 'drive'", "rate_hz", "(got -5.0)"),
    network("source-type-unknown", _attr("sources/drive", "type", "laser"), "sources/drive",
            "'laser'"),
    network("spike-time-nan", lambda f: _poke(f, "sources/cue/times_ms", 0, np.nan),
            "SpikeTimesSource 'cue'", "times_ms", "(got nan)"),
    network("spike-neuron-out-of-range", lambda f: _poke(f, "sources/cue/neurons", 1, 7),
            "SpikeTimesSource 'cue'", "neurons", "(got 7)"),
    network("current-target-unknown", _attr("currents/current->exc", "target", "ghost"),
            "CurrentInput 'current->exc'", "(got 'ghost')"),
    network("rule-unknown", _attr("plasticity/drive->exc.stdp", "rule", "BCM"),
            "plasticity/drive->exc.stdp", "'BCM'"),
    network("rule-parameter-unknown", _attr("plasticity/drive->exc.stdp", "zeta", 1.0),
            "plasticity/drive->exc.stdp", "'zeta'"),
    network("rule-w-max", _attr("plasticity/drive->exc.stdp", "w_max", -1.0),
            "STDP 'drive->exc.stdp'", "w_max", "(got -1.0)"),
    network("rule-pairing", _attr("plasticity/drive->exc.stdp", "pairing", "some"),
            "STDP 'drive->exc.stdp'", "pairing", "(got 'some')"),
    network("process-kind-unknown", _attr("processes/dopamine", "kind", "Serotonin"),
            "processes/dopamine", "'Serotonin'"),
    network("process-kind-missing", _drop_attr("processes/dopamine", "kind"),
            "processes/dopamine", "kind is missing"),
    network("modulator-tau", _attr("processes/dopamine", "tau_ms", -5.0),
            "Modulator 'dopamine'", "tau_ms", "(got -5.0)"),
    network("drive-kind-unknown", _attr("processes/dopamine/drives/0", "kind", "Magic"),
            "processes/dopamine/drives/0", "'Magic'"),
    network("homeostasis-mechanism", _attr("processes/exc.homeostasis", "mechanism", "prayer"),
            "Homeostasis 'exc.homeostasis'", "(got 'prayer')"),
    network("monitor-target-unknown", _attr("monitors", "spikes", ["exc", "ghost"]),
            "Network 'probe'", "(got 'ghost')"),
    network("monitor-every-zero", _attr("monitors/state/exc.v", "every_steps", 0),
            "StateMonitor 'exc.v'", "every_steps", "(got 0)"),
    network("monitor-neuron", lambda f: _poke(f, "monitors/state/exc.v/neurons", 0, 99),
            "StateMonitor 'exc.v'", "neurons", "(got 99)"),
]
#: whole-file damage, done to the bytes rather than through h5py
FILE_ROWS = [
    pytest.param("file", ("empty", b"", ("'{path}'", "is not an HDF5 file")), id="network-empty"),
    pytest.param("file", ("text", b"hello, I am not HDF5\n",
                          ("'{path}'", "is not an HDF5 file")), id="network-not-hdf5"),
    pytest.param("file", ("truncated", None, ("'{path}'", "is not an HDF5 file")),
                 id="network-truncated"),
]


# ============================================================================ rows: results files
def results(name: str, corrupt, *fragments: str):
    return pytest.param("results", (corrupt, fragments), id=f"results-{name}")


RESULTS_ROWS = [
    # info reads it as a network (and finds it incomplete), plot refuses its format
    results("format-network", _attr("/", "format", "evospike-network"), "'{path}'",
            "network"),
    results("format-missing", _drop_attr("/", "format"), "'{path}'", "format attribute: ''"),
    results("dt-negative", _attr("/", "dt_ms", -1.0), "results file '{path}'", "dt_ms",
            "(got -1.0)"),
    results("trials-text", _attr("/", "n_trials", "two"), "results file '{path}'",
            "n_trials", "'two'"),
    results("spikes-missing", lambda f: f.__delitem__("spikes"), "results file '{path}'",
            "spikes"),
    results("trace-neuron-negative", lambda f: _poke(f, "traces/exc.v/neurons", 0, -4),
            "results file '{path}'", "traces/exc.v/neurons", "-4 at index 0"),
]


# ============================================================================ rows: IR
def ir(name: str, call, *fragments: str, error: type = ValidationError):
    return pytest.param("ir", (call, error, fragments), id=f"ir-{name}")


def _net() -> Network:
    net = Network("n", dt_ms=0.1)
    net.population("a", 4, LIF())
    net.population("b", 3, LIF())
    return net


IR_ROWS = [
    ir("network-dt-text", lambda: Network("n", dt_ms="0.1"), "Network 'n'", "dt_ms",
       "(got '0.1')"),
    ir("network-dt-bool", lambda: Network("n", dt_ms=True), "Network 'n'", "dt_ms",
       "(got True)"),
    ir("network-name-number", lambda: Network(5), "Network '5'", "name", "(got 5)"),
    ir("lif-tau-text", lambda: LIF(tau_m_ms="20"), "LIF 'model'", "tau_m_ms", "(got '20')"),
    ir("lif-threshold-below-reset", lambda: LIF(v_thresh_mV=-70.0, v_reset_mV=-65.0),
       "LIF 'model'", "v_thresh_mV", "(got -70.0)"),
    ir("alif-tau-adapt", lambda: AdaptiveLIF(tau_adapt_ms=0.0), "AdaptiveLIF 'model'",
       "tau_adapt_ms", "(got 0.0)"),
    ir("izhikevich-text", lambda: Izhikevich(a="0.02"), "Izhikevich 'model'", "a",
       "(got '0.02')"),
    ir("cubalif-nan", lambda: CubaLIF(du=float("nan")), "CubaLIF 'model'", "du", "(got nan)"),
    ir("adex-capacitance", lambda: AdEx(C_pF=-1.0), "AdEx 'model'", "C_pF", "(got -1.0)"),
    ir("adex-delta-t", lambda: AdEx(Delta_T_mV=0.0), "AdEx 'model'", "Delta_T_mV",
       "(got 0.0)"),
    ir("population-size-zero", lambda: _net().population("c", 0, LIF()), "Population 'c'",
       "size", "(got 0)"),
    ir("population-size-fraction", lambda: _net().population("c", 2.5, LIF()),
       "Population 'c'", "size", "(got 2.5)"),
    ir("population-name-slash", lambda: _net().population("a/b", 2, LIF()), "Population 'a/b'",
       "name", "(got 'a/b')"),
    ir("population-name-taken", lambda: _net().population("a", 2, LIF()), "Network 'n'",
       "name", "(got 'a')"),
    ir("population-model-class", lambda: _net().population("c", 2, LIF), "Population 'c'",
       "model", "LIF"),
    ir("initial-unknown-state", lambda: _net().population("c", 2, LIF(), initial={"w": 1.0}),
       "Population 'c'", "initial['w']", "(got 'w')"),
    ir("initial-text", lambda: _net().population("c", 2, LIF(), initial={"v": "x"}),
       "Population 'c'", "initial['v']", "(got 'x')"),
    ir("uniform-reversed", lambda: Uniform(1.0, 0.0), "Uniform", "high", "(got 0.0)"),
    ir("uniform-text", lambda: Uniform("a", 1.0), "Uniform", "low", "(got 'a')"),
    ir("normal-std-negative", lambda: Normal(0.0, -1.0), "Normal", "std", "(got -1.0)"),
    ir("normal-mean-nan", lambda: Normal(float("nan"), 1.0), "Normal", "mean", "(got nan)"),
    ir("poisson-rate-text", lambda: PoissonSource("p", 3, "fast"), "PoissonSource 'p'",
       "rate_hz", "(got 'fast')"),
    ir("poisson-start-text", lambda: PoissonSource("p", 3, 1.0, start_ms="0"),
       "PoissonSource 'p'", "start_ms", "(got '0')"),
    ir("poisson-stop-before-start", lambda: PoissonSource("p", 3, 1.0, start_ms=5.0,
                                                          stop_ms=2.0),
       "PoissonSource 'p'", "stop_ms", "(got 2.0)"),
    ir("poisson-rate-length", lambda: PoissonSource("p", 3, [1.0, 2.0]), "PoissonSource 'p'",
       "rate_hz", "(got (2,))"),
    ir("spike-times-text", lambda: SpikeTimesSource("s", 3, [0], ["x"]),
       "SpikeTimesSource 's'", "times_ms", "(got ['x'])"),
    ir("spike-times-fraction-neuron", lambda: SpikeTimesSource("s", 3, [0.5], [1.0]),
       "SpikeTimesSource 's'", "neurons", "float64"),
    ir("current-text", lambda: CurrentInput("c", "a", amplitude="x"), "CurrentInput 'c'",
       "amplitude", "(got 'x')"),
    ir("current-start-negative", lambda: CurrentInput("c", "a", start_ms=-1.0),
       "CurrentInput 'c'", "start_ms", "(got -1.0)"),
    ir("fixed-probability-above-one", lambda: FixedProbability(2.0), "FixedProbability",
       "p", "(got 2.0)"),
    ir("fixed-probability-nan", lambda: FixedProbability(float("nan")), "FixedProbability",
       "p", "(got nan)"),
    ir("fixed-probability-text", lambda: FixedProbability("0.5"), "FixedProbability", "p",
       "(got '0.5')"),
    ir("fixed-probability-none", lambda: FixedProbability(None), "FixedProbability", "p",
       "NoneType"),
    ir("seed-negative", lambda: FixedProbability(0.5, seed=-1), "FixedProbability", "seed",
       "(got -1)"),
    ir("seed-text", lambda: AllToAll(seed="x"), "AllToAll", "seed", "(got 'x')"),
    ir("in-degree-negative", lambda: FixedInDegree(-1), "FixedInDegree", "k", "(got -1)"),
    ir("in-degree-too-large", lambda: _net().connect("a", "b", FixedInDegree(10)),
       "Projection 'a->b'", "FixedInDegree.k", "(got 10)"),
    ir("one-to-one-sizes", lambda: _net().connect("a", "b", OneToOne()), "Projection 'a->b'",
       "OneToOne", "(got (4, 3))"),
    ir("from-arrays-lengths", lambda: FromArrays([0, 1], [0]), "FromArrays", "i/j",
       "(got ((2,), (1,)))"),
    ir("from-arrays-range", lambda: _net().connect("a", "b", FromArrays([0], [7])),
       "Projection 'a->b'", "FromArrays.j", "(got 7)"),
    ir("connect-unknown-post", lambda: _net().connect("a", "ghost", AllToAll()),
       "Network 'n'", "(got 'ghost')"),
    ir("connect-connector-text", lambda: _net().connect("a", "b", "all"), "Projection 'a->b'",
       "connector", "(got 'all')"),
    ir("connect-weight-text", lambda: _net().connect("a", "b", AllToAll(), weight="1"),
       "Projection 'a->b'", "weight", "(got '1')"),
    ir("connect-weight-nan", lambda: _net().connect("a", "b", AllToAll(),
                                                    weight=float("nan")),
       "Projection 'a->b'", "weights", "nan"),
    ir("connect-delay-zero", lambda: _net().connect("a", "b", AllToAll(), delay_ms=0.0),
       "Projection 'a->b'", "delays", "(got 0)"),
    ir("connect-delay-text", lambda: _net().connect("a", "b", AllToAll(), delay_ms="1ms"),
       "Projection 'a->b'", "delay_ms", "(got '1ms')"),
    ir("connect-channel", lambda: _net().connect("a", "b", AllToAll(), target="gaba"),
       "Projection 'a->b'", "target", "(got 'gaba')"),
    ir("inject-unknown", lambda: _net().inject_current("ghost", 1.0), "Network 'n'",
       "(got 'ghost')"),
    ir("inject-length", lambda: _net().inject_current("a", [1.0, 2.0]),
       "CurrentInput 'current->a'", "amplitude", "(got (2,))"),
    ir("record-state-variable", lambda: _net().record_state("a", "q"), "StateMonitor 'a.q'",
       "variable", "(got 'q')"),
    ir("record-state-neuron", lambda: _net().record_state("a", "v", neurons=[9]),
       "StateMonitor 'a.v'", "neurons", "(got 9)"),
    ir("record-weights-unknown", lambda: _net().record_weights("ghost", every_steps=10),
       "WeightMonitor 'ghost.weights'", "(got 'ghost')"),
    ir("stdp-tau-negative", lambda: STDP("s", "p", tau_plus_ms=-1.0), "STDP 's'",
       "tau_plus_ms", "(got -1.0)"),
    ir("stdp-tau-text", lambda: STDP("s", "p", tau_plus_ms="20"), "STDP 's'", "tau_plus_ms",
       "(got '20')"),
    ir("stdp-amplitude-bool", lambda: STDP("s", "p", a_plus=True), "STDP 's'", "a_plus",
       "(got True)"),
    ir("stdp-amplitude-negative", lambda: STDP("s", "p", a_minus=-0.1), "STDP 's'",
       "a_minus", "(got -0.1)"),
    ir("stdp-bounds", lambda: STDP("s", "p", w_min=1.0, w_max=0.5), "STDP 's'", "w_max",
       "(got 0.5)"),
    ir("stdp-pairing", lambda: STDP("s", "p", pairing="near"), "STDP 's'", "pairing",
       "(got 'near')"),
    ir("stdp-unknown-projection", lambda: _net().stdp("ghost"), "STDP 'ghost.stdp'",
       "(got 'ghost')"),
    ir("reward-stdp-eligibility", lambda: RewardModulatedSTDP("r", "p", modulator="m",
                                                              tau_eligibility_ms=-1.0),
       "RewardModulatedSTDP 'r'", "tau_eligibility_ms", "(got -1.0)"),
    ir("homeostasis-rate-negative", lambda: Homeostasis("h", "a", target_rate_hz=-1.0),
       "Homeostasis 'h'", "target_rate_hz", "(got -1.0)"),
    ir("homeostasis-rate-text", lambda: Homeostasis("h", "a", target_rate_hz="10"),
       "Homeostasis 'h'", "target_rate_hz", "(got '10')"),
    ir("homeostasis-every-zero", lambda: Homeostasis("h", "a", every_steps=0),
       "Homeostasis 'h'", "every_steps", "(got 0)"),
    ir("metaplasticity-parameter", lambda: Metaplasticity("m", "r", "d", parameter="w_max"),
       "Metaplasticity 'm'", "parameter", "(got 'w_max')"),
    ir("metaplasticity-eta-text", lambda: Metaplasticity("m", "r", "d", eta="1"),
       "Metaplasticity 'm'", "eta", "(got '1')"),
    ir("modulator-tau-zero", lambda: Modulator("d", tau_ms=0.0), "Modulator 'd'", "tau_ms",
       "(got 0.0)"),
    ir("modulator-initial-inf", lambda: Modulator("d", tau_ms=50.0, initial=float("inf")),
       "Modulator 'd'", "initial", "(got inf)"),
    ir("modulator-drive-text", lambda: Modulator("d", tau_ms=50.0, drives=["reward"]),
       "Modulator 'd'", "drives", "(got 'reward')"),
    ir("reward-time-negative", lambda: Modulator("d", 50.0, [RewardEvents([-1.0], [1.0])]),
       "Modulator 'd'", "RewardEvents.times_ms", "-1.0 at index 0"),
    ir("reward-series-start", lambda: Modulator("d", 50.0, [RewardSeries([1.0],
                                                                         start_step=-1)]),
       "Modulator 'd'", "RewardSeries.start_step", "(got -1)"),
    ir("spike-count-gain-nan", lambda: Modulator("d", 50.0, [SpikeCountDrive("a",
                                                                             gain=np.nan)]),
       "Modulator 'd'", "SpikeCountDrive.gain", "(got nan)"),
    ir("novelty-time-constants", lambda: Modulator("d", 50.0, [NoveltyDrive(
        "a", tau_rate_ms=100.0, tau_expect_ms=50.0)]), "Modulator 'd'",
       "NoveltyDrive.tau_expect_ms", "(got 50.0)"),
    ir("energy-budget-capacity", lambda: _net().energy_budget("a", capacity_pj=-1.0,
                                                              recharge_pj_per_ms=1.0),
       "EnergyBudget", "capacity_pj", "-1.0"),
    ir("memory-tiers-unknown", lambda: _net().memory_tiers("ghost"),
       "MemoryTiers 'ghost.tiers'", "(got 'ghost')"),
]

TABLE = CLI_ROWS + MODEL_ROWS + NETWORK_ROWS + FILE_ROWS + RESULTS_ROWS + IR_ROWS


def test_the_table_covers_the_surface():
    groups = [row.values[0] for row in TABLE]
    assert len(TABLE) >= 120
    assert {g: groups.count(g) for g in set(groups)} == {
        "cli": len(CLI_ROWS), "model": len(MODEL_ROWS), "network": len(NETWORK_ROWS),
        "file": len(FILE_ROWS), "results": len(RESULTS_ROWS), "ir": len(IR_ROWS)}
    assert len({row.id for row in TABLE}) == len(TABLE)  # every row has its own id


def _fill(text: str, files: dict[str, Path], path: Path | None = None) -> str:
    return text.format(**{k: str(v) for k, v in files.items()},
                       path="" if path is None else str(path))


def _copy_corrupted(source: Path, tmp_path: Path, corrupt) -> Path:
    bad = tmp_path / f"bad{source.suffix}"
    shutil.copyfile(source, bad)
    with h5py.File(bad, "r+") as f:
        corrupt(f)
    return bad


@pytest.mark.parametrize("group, spec", TABLE)
def test_bad_input_is_refused_in_one_line(group, spec, files, tmp_path, capsys):
    capsys.readouterr()
    if group == "cli":
        argv, fragments = spec
        code = _cli(_fill(argv, files).split())
        _one_line(capsys, code, tuple(_fill(f, files) for f in fragments))
    elif group == "model":
        name, source, fragments = spec
        path = tmp_path / f"{name}.py"
        (path.write_bytes if isinstance(source, bytes) else path.write_text)(source)
        code = _cli(["run", str(path), "--duration", "1ms", "--no-progress", "--out",
                     str(tmp_path / "r.h5")])
        _one_line(capsys, code, tuple(_fill(f, files, path) for f in fragments))
        assert not (tmp_path / "r.h5").exists()
    elif group in ("network", "file"):
        if group == "network":
            corrupt, fragments = spec
            bad = _copy_corrupted(files["net"], tmp_path, corrupt)
        else:
            kind, data, fragments = spec
            bad = tmp_path / "bad.h5"
            whole = files["net"].read_bytes()
            bad.write_bytes(whole[: len(whole) // 2] if data is None else data)
        wanted = tuple(_fill(f, files, bad) for f in fragments)
        for argv in (["info", str(bad)],
                     ["run", str(bad), "--duration", "1ms", "--no-progress", "--out",
                      str(tmp_path / "r.h5")]):
            _one_line(capsys, _cli(argv), wanted)
        assert not (tmp_path / "r.h5").exists()
    elif group == "results":
        corrupt, fragments = spec
        bad = _copy_corrupted(files["results"], tmp_path, corrupt)
        wanted = tuple(_fill(f, files, bad) for f in fragments)
        figure = tmp_path / "p.png"
        for argv in (["info", str(bad)], ["plot", str(bad), "-o", str(figure)]):
            _one_line(capsys, _cli(argv), wanted)
        assert not figure.exists()
    else:
        call, error, fragments = spec
        with pytest.raises(EvoSpikeError) as info:
            call()
        assert isinstance(info.value, error), repr(info.value)
        message = str(info.value)
        assert "\n" not in message, message
        for fragment in fragments:
            assert fragment in message, (fragment, message)


def test_a_valid_input_passes_every_check(files, tmp_path, capsys):
    """The fixtures themselves are valid, so each row fails for its own corruption only."""
    assert main(["info", str(files["net"])]) == 0
    assert main(["info", str(files["results"])]) == 0
    out = tmp_path / "r.h5"
    assert main(["run", str(files["net"]), "--duration", "1ms", "--no-progress", "--out",
                 str(out)]) == 0
    assert main(["run", str(files["model"]), "--duration", "1ms", "--no-progress", "--out",
                 str(out)]) == 0
    assert main(["plot", str(files["results"]), "-o", str(tmp_path / "p.png")]) == 0
    capsys.readouterr()
