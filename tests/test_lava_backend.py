"""The Lava backend: its environment, its refusals, its worker, and Lava against torch.

Tests marked ``needs_lava`` run Lava (through the worker) and are skipped only when no Lava
environment exists (``evospike setup lava`` makes one); under CI (``CI`` set) a missing
environment is a failure (`test_lava_environment_present_in_ci`), so they cannot silently skip
there."""

from __future__ import annotations

import json
import os
import stat
import sys
import time

import numpy as np
import pytest

from evospike import CubaLIF, FixedProbability, FromArrays, Izhikevich, Network
from evospike.backends import get_backend
from evospike.backends.lava import LavaConfig, WorkerError, prepare, to_loihi_lif
from evospike.backends.lava import environment as env
from evospike.backends.lava.compiler import split_unique
from evospike.backends.lava.runner import run_worker
from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.neurons import LIF, AdaptiveLIF
from tests.conftest import ROOT, load_example, run_torch
from tests.fixed_point_networks import DURATION_MS as FIXED_DURATION_MS
from tests.fixed_point_networks import NETWORKS as FIXED_NETWORKS


def _lava_missing() -> str | None:
    try:
        env.find_python()
    except EvoSpikeError as exc:
        return str(exc)
    return None


LAVA_MISSING = _lava_missing()
needs_lava = pytest.mark.skipif(LAVA_MISSING is not None,
                                reason=f"no Lava environment: {LAVA_MISSING}")


def lava(net, duration_ms, **options):
    options.setdefault("progress", False)
    return get_backend("lava").compile(net, **options).run(duration_ms)


# --------------------------------------------------------------------------- environment
def test_lava_environment_present_in_ci():
    if LAVA_MISSING is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must have the Lava environment (README's install command runs "
                    f"`evospike setup lava`): {LAVA_MISSING}")
    pytest.skip(f"no Lava environment here: {LAVA_MISSING}")


def test_missing_environment_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(env.ENV_PYTHON, raising=False)
    monkeypatch.setenv(env.ENV_CONFIG, str(tmp_path / "none.json"))
    with pytest.raises(EvoSpikeError) as info:
        env.find_python()
    text = str(info.value)
    assert "EVOSPIKE_LAVA_PYTHON is not set" in text
    assert "evospike setup lava" in text and "none.json" in text


def test_bad_variable_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(env.ENV_PYTHON, str(tmp_path / "nope" / "python"))
    with pytest.raises(EvoSpikeError, match="EVOSPIKE_LAVA_PYTHON=.*nope.*not an executable"):
        env.find_python()


def test_record_is_found_and_variable_wins(monkeypatch, tmp_path):
    record = tmp_path / "lava.json"
    monkeypatch.delenv(env.ENV_PYTHON, raising=False)
    monkeypatch.setenv(env.ENV_CONFIG, str(record))
    env.write_record(sys.executable, None, {"lava_nc": "0.10.0"})
    found = env.find_python()
    assert str(found.path) == sys.executable and found.origin == str(record)
    assert json.loads(record.read_text())["python"] == sys.executable
    other = tmp_path / "python-other"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv(env.ENV_PYTHON, str(other))
    assert env.find_python().path == other


def test_record_pointing_nowhere_is_reported(monkeypatch, tmp_path):
    record = tmp_path / "lava.json"
    record.write_text(json.dumps({"python": str(tmp_path / "gone" / "python")}))
    monkeypatch.delenv(env.ENV_PYTHON, raising=False)
    monkeypatch.setenv(env.ENV_CONFIG, str(record))
    with pytest.raises(EvoSpikeError, match="is gone"):
        env.find_python()


def test_cli_run_without_environment_exits_2(monkeypatch, tmp_path, capsys):
    from evospike.cli import main

    monkeypatch.delenv(env.ENV_PYTHON, raising=False)
    monkeypatch.setenv(env.ENV_CONFIG, str(tmp_path / "none.json"))
    model = tmp_path / "m.py"
    model.write_text("from evospike import Network, CubaLIF\n"
                     "def build():\n    net = Network('m', dt_ms=1.0)\n"
                     "    net.population('p', 2, CubaLIF(bias=2.0))\n    return net\n")
    status = main(["run", str(model), "--backend", "lava", "--duration", "5ms",
                   "--select-tag", "floating_pt", "--out", str(tmp_path / "r.h5"),
                   "--no-progress"])
    assert status == 2
    assert "evospike setup lava" in capsys.readouterr().err


def test_setup_refuses_a_python_that_is_not_310(tmp_path):
    with pytest.raises(EvoSpikeError, match="is not a Python 3.10"):
        env.setup(prefix=tmp_path / "venv", python310=sys.executable, say=lambda m: None)


@needs_lava
def test_setup_is_idempotent_and_fast_when_done(monkeypatch, tmp_path):
    """Pointing setup at a working environment keeps it and only records it."""
    python = env.find_python().path
    prefix = python.parent.parent
    if not (prefix / "pyvenv.cfg").exists():
        pytest.skip(f"{python} is not in a venv that setup could have made")
    monkeypatch.setenv(env.ENV_CONFIG, str(tmp_path / "lava.json"))
    said = []
    assert env.setup(prefix=prefix, say=said.append) == prefix.resolve() / "bin" / "python"
    assert "already has lava-nc 0.10.0" in said[0]
    assert json.loads((tmp_path / "lava.json").read_text())["versions"]["lava_nc"] == "0.10.0"


# --------------------------------------------------------------------------- refusals
def test_refusals_name_every_node():
    net = Network("bad", dt_ms=1.0)
    net.population("izh", 3, Izhikevich())
    net.population("alif", 3, AdaptiveLIF())
    sub = net.population("sub", 3, LIF(reset="subtract"))
    post = net.population("post", 3, LIF(tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0))
    src = net.spike_source("in", 3, [0], [1.0])
    net.connect(src, post, FixedProbability(1.0, seed=1), weight=1.0, target="exc")
    net.connect(sub, post, FixedProbability(1.0, seed=1), weight=-1.0, target="inh")
    cuba = net.population("cuba", 3, CubaLIF(du=np.array([0.1, 0.2, 0.3])))
    proj = net.connect(src, cuba, FixedProbability(1.0, seed=2), weight=1.0, target="v")
    net.inject_current(cuba, series=np.ones(5), name="wiggle")
    net.stdp(proj, name="learn")
    with pytest.raises(UnsupportedError) as info:
        prepare(net, LavaConfig(select_tag="floating_pt", merge_synapses=False))
    text = str(info.value)
    for needle in ("Population 'izh': Izhikevich", "Population 'alif': AdaptiveLIF",
                   "Population 'sub': LIF reset='subtract'",
                   "Population 'post': excitatory and inhibitory synaptic time constants",
                   "Population 'cuba': CubaLIF.du differs",
                   f"Projection '{proj.name}': target channel 'v'",
                   "CurrentInput 'wiggle': a current that changes over time",
                   "STDP 'learn': carried in fixed_pt only"):  # learning.py
        assert needle in text, needle


def test_unknown_option_and_select_tag_are_refused():
    net = Network("n", dt_ms=1.0)
    net.population("p", 2, CubaLIF())
    with pytest.raises(EvoSpikeError, match="no option engine"):
        get_backend("lava").compile(net, engine="native")
    with pytest.raises(EvoSpikeError, match="select_tag must be one of"):
        get_backend("lava").compile(net, select_tag="bit_exact")


def test_duplicate_synapses_split_into_unique_groups():
    net = Network("dup", dt_ms=1.0)
    a = net.population("a", 3, CubaLIF())
    proj = net.connect(a, a, FromArrays([0, 0, 0, 1, 2], [1, 1, 1, 2, 1]), weight=1.0)
    groups = split_unique(proj)
    assert sorted(np.concatenate(groups).tolist()) == list(range(5))
    pre, post = proj.pre_indices(), proj.indices
    for g in groups:
        pairs = set(zip(pre[g].tolist(), post[g].tolist(), strict=True))
        assert len(pairs) == g.size


def test_conversion_of_cuba_merges_taus_with_a_note():
    conv = to_loihi_lif(load_example("cuba").build())
    assert conv.converted == ["exc", "inh"] and not conv.refusals
    assert any("merged into one of tau 9.8" in note for note in conv.notes)
    assert all(p.target == "exc" for p in conv.network.projections.values())


# --------------------------------------------------------------------------- the worker
def _fake_python(tmp_path, body: str):
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split()[2] != "Z"


def test_worker_crash_surfaces_stderr(tmp_path):
    python = _fake_python(tmp_path, 'echo "Traceback: lava exploded" >&2\nexit 3\n')
    with pytest.raises(WorkerError) as info:
        run_worker(python, tmp_path / "job.h5", tmp_path / "out.h5", timeout_s=30)
    assert "exit status 3" in str(info.value) and "lava exploded" in str(info.value)


def test_worker_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    python = _fake_python(tmp_path, f'echo "still working" >&2\nsleep 300 &\n'
                                    f'echo $! > {pidfile}\nwait\n')
    t0 = time.monotonic()
    with pytest.raises(WorkerError) as info:
        run_worker(python, tmp_path / "job.h5", tmp_path / "out.h5", timeout_s=1.0)
    assert time.monotonic() - t0 < 30
    assert "timeout_s=1.0" in str(info.value) and "still working" in str(info.value)
    child = int(pidfile.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the worker's child survived the timeout"


def test_interrupt_asks_the_worker_to_save_then_ends_its_group(tmp_path):
    """Ctrl-C (here raised from the progress callback) sends SIGTERM to the worker, which
    writes what it has; run_worker reports an interrupted run and nothing is left running."""
    pidfile = tmp_path / "child.pid"
    out = tmp_path / "out.h5"
    python = _fake_python(tmp_path, f'trap \'echo saved > {out}; exit 0\' TERM\n'
                                    f'sleep 300 &\necho $! > {pidfile}\n'
                                    'echo "progress 1 10"\nwhile true; do sleep 0.1; done\n')

    def interrupt(done, total):
        raise KeyboardInterrupt

    assert run_worker(python, tmp_path / "job.h5", out, timeout_s=60,
                      on_progress=interrupt) is False
    assert out.read_text().strip() == "saved"
    child = int(pidfile.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def test_backend_run_reports_worker_failure(monkeypatch, tmp_path):
    python = _fake_python(tmp_path, 'echo "no lava here" >&2\nexit 1\n')
    monkeypatch.setenv(env.ENV_PYTHON, str(python))
    net = Network("n", dt_ms=1.0)
    net.population("p", 2, CubaLIF(bias=2.0))
    net.record_spikes("p")
    with pytest.raises(WorkerError, match="no lava here"):
        lava(net, 5.0, select_tag="floating_pt")


# --------------------------------------------------------------------------- Lava vs torch
def _cuba_net(poisson: bool = True) -> Network:
    """CubaLIF populations with spike-time and Poisson inputs, per-synapse delays, a constant
    bias current, a refractory period, recurrence and duplicate synapses."""
    net = Network("cubalif", dt_ms=1.0)
    src = net.spike_source("times", 4, [0, 1, 2, 3, 0, 2], [1.0, 2.0, 3.0, 5.0, 9.0, 30.0])
    a = net.population("a", 6, CubaLIF(du=0.25, dv=0.1, v_thresh=5.0, bias=0.05),
                       initial={"v": np.linspace(0.0, 4.0, 6)})
    b = net.population("b", 5, CubaLIF(du=0.5, dv=0.05, v_thresh=3.0, v_reset=-1.0,
                                       tau_refrac_ms=3.0))
    net.connect(src, a, FixedProbability(0.7, seed=1), weight=3.0)
    rng = np.random.default_rng(3)
    pre, post = rng.integers(0, 6, 20), rng.integers(0, 5, 20)
    net.connect(a, b, FromArrays(pre, post, delays_ms=rng.integers(1, 5, 20).astype(float)),
                weight=1.5)
    net.connect(b, a, FixedProbability(0.5, seed=4), weight=-0.8, delay_ms=2.0, target="inh")
    net.inject_current(b, 0.12)
    if poisson:
        noise = net.poisson_source("noise", 5, 150.0)
        net.connect(noise, b, OneToOneLike(5), weight=1.2)
    net.record_spikes(src, a, b)
    net.record_state(a, "v")
    net.record_state(b, "u", every_steps=3)
    return net


def OneToOneLike(n: int) -> FromArrays:  # noqa: N802 - reads like a connector
    return FromArrays(np.arange(n), np.arange(n))


def _same_spikes(r1, r2, nodes, trials=1):
    for node in nodes:
        for k in range(trials):
            s1, n1 = r1.spike_steps(node, k)
            s2, n2 = r2.spike_steps(node, k)
            assert np.array_equal(s1, s2) and np.array_equal(n1, n2), (node, k)


@needs_lava
def test_floating_pt_equals_torch_float64_spike_for_spike():
    net = _cuba_net()
    seeds = (0, 5)
    r = lava(net, 60.0, select_tag="floating_pt", seeds=seeds, chunk_steps=7)
    # eager: torch's native engine drops a constant current injected into CubaLIF (reported)
    t = run_torch(_cuba_net(), 60.0, precision="float64", engine="eager", seeds=seeds)
    assert r.spike_steps("b")[0].size > 5 and r.spike_steps("a")[0].size > 5
    _same_spikes(r, t, ("times", "a", "b"), trials=2)
    for name in ("a.v", "b.u"):
        assert np.array_equal(r.traces[name].steps, t.traces[name].steps)
        np.testing.assert_allclose(r.traces[name].values, t.traces[name].values, atol=1e-9)
    assert r.meta["backend"] == "lava" and r.meta["precision"] == "floating_pt"


@needs_lava
@pytest.mark.parametrize("tag", ["floating_pt", "fixed_pt"])
def test_unconnected_populations_and_sources(tag):
    """Populations without input (each its own Lava network) and a source feeding nothing."""
    net = Network("iso", dt_ms=1.0)
    net.population("p", 3, CubaLIF(bias=np.array([0.5, 1.0, 2.0]), v_thresh=4.0))
    net.population("q", 2, CubaLIF(bias=0.7, v_thresh=3.0))
    net.poisson_source("lonely", 4, 100.0)
    net.record_spikes("p", "q", "lonely")
    net.record_state("q", "v", neurons=[1])
    r = lava(net, 30.0, select_tag=tag)
    t = run_torch(net, 30.0, precision="float64", engine="eager")
    assert r.spike_steps("p")[0].size > 10
    _same_spikes(r, t, ("p", "q", "lonely"))
    assert r.traces["q.v"].values.shape == (1, 30, 1)


@needs_lava
def test_second_run_continues_the_same_simulation():
    runner = get_backend("lava").compile(_cuba_net(), select_tag="floating_pt", progress=False)
    runner.run(25.0)
    two = runner.run(35.0)
    one = lava(_cuba_net(), 60.0, select_tag="floating_pt")
    assert two.n_steps == 60
    _same_spikes(two, one, ("a", "b"))


@needs_lava
def test_single_tau_lif_converts_exactly():
    """A LIF whose input arrives on one synaptic time constant is Lava's LIF exactly: same
    spikes and (after the voltage shift) the same voltage as the exact LIF in torch."""
    net = Network("lif", dt_ms=0.5)
    cell = LIF(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-70.0, v_thresh_mV=-55.0,
               tau_syn_exc_ms=4.0, tau_syn_inh_ms=4.0, tau_refrac_ms=2.0)
    src = net.poisson_source("in", 20, 80.0)
    pop = net.population("p", 8, cell, initial={"v": np.linspace(-70.0, -56.0, 8)})
    net.connect(src, pop, FixedProbability(0.5, seed=2), weight=4.0)
    net.connect(pop, pop, FixedProbability(0.3, seed=3), weight=-2.0, target="inh")
    net.inject_current(pop, 6.0)
    net.record_spikes(pop)
    net.record_state(pop, "v")
    r = lava(net, 100.0, select_tag="floating_pt")
    t = run_torch(net, 100.0, precision="float64", engine="eager")
    assert r.spike_steps("p")[0].size > 10
    _same_spikes(r, t, ("p",))
    np.testing.assert_allclose(r.traces["p.v"].values, t.traces["p.v"].values, atol=1e-8)
    assert r.meta["engine_note"] == ""


@needs_lava
def test_fixed_pt_cached_delays_equal_lavas_own_models():
    """The worker's DelaySparse with its delay matrix built once gives Lava's own results bit
    for bit (spikes and integer traces)."""
    fast = lava(_cuba_net(), 40.0, select_tag="fixed_pt")
    plain = lava(_cuba_net(), 40.0, select_tag="fixed_pt", cache_delay_weights=False)
    _same_spikes(fast, plain, ("a", "b"))
    for name in ("a.v", "b.u"):
        assert np.array_equal(fast.traces[name].values, plain.traces[name].values)
        assert np.all(fast.traces[name].values == np.round(fast.traces[name].values))


def _lava_integer_lif(du, dv, vth, bias, w_in, n_steps, in_steps, refractory_steps=0):
    """Loihi's integer CUBA-LIF for one neuron driven by one input line (an independent
    reference: numpy, from the arithmetic documented in lava/proc/lif/models.py), with
    EvoSpike's refractory rule (v held for refractory_steps - 1 steps after the spike step)."""
    u = v = 0
    held_until = -1
    vs, spikes = [], []
    for n in range(n_steps):
        a_in = w_in if (n - 1) in in_steps else 0
        u = int(np.sign(u * (4096 - du - 1)) * (abs(u * (4096 - du - 1)) >> 12)) + (a_in << 6)
        if n > held_until:
            v = int(np.sign(v * (4096 - dv)) * (abs(v * (4096 - dv)) >> 12)) + u + bias
            v = max(min(v, 2**23 - 1), -(2**23) + 1)
        if v > (vth << 6):
            spikes.append(n)
            v = 0
            held_until = n + refractory_steps - 1
        vs.append(v)
    return np.array(spikes), np.array(vs)


@needs_lava
@pytest.mark.parametrize("refractory", [0, 4])
def test_fixed_pt_matches_integer_reference(refractory):
    net = Network("int", dt_ms=1.0)
    src = net.spike_source("in", 1, [0, 0, 0, 0, 0], [2.0, 3.0, 4.0, 6.0, 20.0])
    cell = CubaLIF(du=0.2, dv=0.05, v_thresh=4.0, bias=0.01, tau_refrac_ms=float(refractory))
    net.population("p", 1, cell)
    net.connect(src, "p", OneToOneLike(1), weight=1.7)
    net.record_spikes("p")
    net.record_state("p", "v")
    _, plan = prepare(net, LavaConfig(select_tag="fixed_pt"))
    pop, conn = plan.populations["p"], plan.connections[0]
    assert conn.weight_exp >= 0  # the sum is shifted left: exact
    spikes, vs = _lava_integer_lif(pop.du, pop.dv, pop.vth, int(pop.bias_mant[0]) <<
                                   int(pop.bias_exp[0]),
                                   int(conn.weights[0]) << conn.weight_exp, 40,
                                   {2, 3, 4, 6, 20}, refractory)
    r = lava(net, 40.0, select_tag="fixed_pt")
    assert spikes.size >= 2
    assert np.array_equal(r.spike_steps("p")[0], spikes)
    assert np.array_equal(r.traces["p.v"].values[0, :, 0], vs)


@pytest.mark.slow
@needs_lava
def test_cuba_runs_and_validates_against_torch(tmp_path):
    """The issue's acceptance: `evospike run examples/cuba.py --backend lava --duration 200ms`
    works, and `evospike validate --backend lava --against torch` agrees (statistics)."""
    from evospike.cli import main

    model = str(ROOT / "examples" / "cuba.py")
    out = tmp_path / "r.h5"
    assert main(["run", model, "--backend", "lava", "--duration", "200ms", "--out", str(out),
                 "--no-progress"]) == 0
    from evospike.results import Results

    res = Results.load(out)
    assert res.meta["precision"] == "fixed_pt" and 3.0 < res.mean_rate_hz("exc") < 9.0
    status = main(["validate", model, "--backend", "lava", "--against", "torch",
                   "--duration", "200ms", "--no-progress", "--out-dir", str(tmp_path / "v")])
    assert status == 0, (tmp_path / "v" / "report.md").read_text()


def _isolated_net() -> Network:
    net = Network("iso", dt_ms=1.0)
    net.population("p", 3, CubaLIF(bias=np.array([0.5, 1.0, 2.0]), v_thresh=4.0))
    net.population("q", 2, CubaLIF(bias=0.7, v_thresh=3.0, tau_refrac_ms=2.0))
    net.record_spikes("p", "q")
    net.record_state("q", "v")
    net.record_state("p", "u")
    return net


def _cuba_converted() -> Network:
    net = to_loihi_lif(load_example("cuba").build(n_neurons=1000)).network
    net.record_state("exc", "v", neurons=np.arange(0, 800, 50))
    return net


@needs_lava
@pytest.mark.parametrize("build", [
    pytest.param(_cuba_net, id="cubalif-mix"), pytest.param(_isolated_net, id="isolated"),
    pytest.param(_cuba_converted, id="cuba-1000", marks=pytest.mark.slow)])
def test_fixed_pt_equals_torch_fixed_bit_for_bit(build):
    """Lava's fixed_pt and the torch backend's fixed-point mode run the same integers
    (evospike.fixed_point.quantize): identical spikes and integer traces, every step."""
    seeds = (0, 3)
    r = lava(build(), 80.0, select_tag="fixed_pt", seeds=seeds)
    t = run_torch(build(), 80.0, precision="fixed", seeds=seeds)
    assert sum(r.spike_steps(m.target, k)[0].size for m in build().spike_monitors
               for k in range(2)) > 20
    _same_spikes(r, t, [m.target for m in build().spike_monitors], trials=2)
    assert set(r.traces) == set(t.traces)
    for name in r.traces:
        assert np.array_equal(r.traces[name].steps, t.traces[name].steps)
        assert np.array_equal(r.traces[name].values, t.traces[name].values), name


@pytest.mark.slow
@needs_lava
@pytest.mark.parametrize("name", sorted(FIXED_NETWORKS))
def test_ten_networks_fixed_pt_equals_torch_fixed(name):
    """The issue's ten networks (tests/fixed_point_networks.py): torch's fixed-point mode and
    Lava's fixed_pt give identical spike rasters and identical integer u and v traces, every
    step of DURATION_MS."""
    build = FIXED_NETWORKS[name]
    r = lava(build(), FIXED_DURATION_MS, select_tag="fixed_pt", seeds=(0, 1))
    t = run_torch(build(), FIXED_DURATION_MS, precision="fixed", seeds=(0, 1))
    nodes = [m.target for m in build().spike_monitors]
    pops = [n for n in nodes if n in build().populations]
    assert sum(r.spike_steps(n, k)[0].size for n in pops for k in range(2)) > 0
    _same_spikes(r, t, nodes, trials=2)
    assert set(r.traces) == set(t.traces) and r.traces
    for trace in r.traces:
        assert r.traces[trace].values.shape == t.traces[trace].values.shape
        assert np.array_equal(r.traces[trace].values, t.traces[trace].values), trace
