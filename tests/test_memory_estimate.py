"""The up-front memory estimate (issue 13): a projection that cannot fit is refused before a
synapse is drawn, and the estimate matches the arrays the IR actually holds."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import evospike.memory_estimate as me
from evospike import (
    LIF,
    AllToAll,
    FixedInDegree,
    FixedProbability,
    FromArrays,
    Network,
    OneToOne,
)
from evospike.errors import EvoSpikeError, ValidationError
from evospike.memory_estimate import (
    MemoryLimitError,
    NetworkSpec,
    PopulationSpec,
    ProjectionSpec,
    available_memory_bytes,
    check_fits,
    connect_peak_bytes,
    describe_memory,
    estimate_memory,
)


def _no_build(monkeypatch, cls):
    """Make ``cls.build`` fail loudly, so a test proves the refusal came before building."""
    def build(*args, **kwargs):
        raise AssertionError(f"{cls.__name__}.build ran: the memory check came too late")
    monkeypatch.setattr(cls, "build", build)


# ---------------------------------------------------------------- refusing before building
def test_a_million_squared_at_p_01_is_refused_before_any_synapse_is_drawn(monkeypatch):
    _no_build(monkeypatch, FixedProbability)
    net = Network("big")
    net.population("exc", 1_000_000, LIF())
    with pytest.raises(MemoryLimitError) as info:
        net.connect("exc", "exc", FixedProbability(0.1, seed=1))
    err = info.value
    msg = str(err)
    assert isinstance(err, EvoSpikeError) and isinstance(err, MemoryError)
    assert msg.startswith("Projection 'exc->exc': connectivity needs an estimated "), msg
    # 1e11 synapses x 16 bytes once built: the figure is given in GB
    assert "1600 GB once built" in msg and "available" in msg, msg
    assert "(got FixedProbability(p=0.1) on 1000000 x 1000000)" in msg, msg
    assert err.needed_bytes > 1.6e12 and err.available_bytes == available_memory_bytes() or \
        abs(err.available_bytes - available_memory_bytes()) < 2e9
    assert net.projections == {}


@pytest.mark.parametrize("connector", [
    AllToAll(), FixedInDegree(100_000, seed=1), FixedProbability(0.1, allow_self_connections=False)
], ids=["all-to-all", "fixed-in-degree", "fixed-probability-no-self"])
def test_other_connectors_are_refused_before_building_too(monkeypatch, connector):
    _no_build(monkeypatch, type(connector))
    net = Network("big")
    net.population("a", 1_000_000, LIF())
    with pytest.raises(MemoryLimitError, match=r"'a->a'.* GB .*available"):
        net.connect("a", "a", connector)


def test_the_refusal_threshold_is_the_peak_memory_of_building(monkeypatch):
    net = Network("small")
    net.population("a", 300, LIF())
    net.population("b", 200, LIF())
    connector = FixedProbability(0.1, seed=3)
    expected, final, peak = connect_peak_bytes(connector, 300, 200, False)
    assert expected == pytest.approx(0.1 * 300 * 200)
    assert final < peak
    monkeypatch.setattr(me, "available_memory_bytes", lambda: peak - 1)
    with pytest.raises(MemoryLimitError) as info:
        net.connect("a", "b", connector)
    assert info.value.available_bytes == peak - 1 and info.value.needed_bytes == peak
    assert "'a->b'" in str(info.value) and "available" in str(info.value)
    monkeypatch.setattr(me, "available_memory_bytes", lambda: peak)
    proj = net.connect("a", "b", connector)
    assert proj.n_synapses > 0


def test_a_connector_that_cannot_say_its_size_is_not_checked(monkeypatch):
    class Custom(AllToAll):
        def expected_synapses(self, n_pre, n_post, same_population):
            return None

    monkeypatch.setattr(me, "available_memory_bytes", lambda: 1)
    net = Network("n")
    net.population("a", 3, LIF())
    assert net.connect("a", "a", Custom()).n_synapses == 9


@pytest.mark.parametrize(("connector", "n", "same"), [
    (FixedProbability(0.1, seed=1), 3000, False),
    (FixedProbability(0.1, seed=1, allow_self_connections=False), 3000, True),
    (FixedInDegree(300, seed=1), 3000, False),
    (AllToAll(), 1000, False),
    (AllToAll(allow_self_connections=False), 1000, True),
    (OneToOne(), 100_000, False),
    (FromArrays(np.random.default_rng(0).integers(0, 3000, 900_000),
                np.random.default_rng(1).integers(0, 3000, 900_000)), 3000, False),
], ids=["fixedprob", "fixedprob-no-self", "indegree", "all", "all-no-self", "one", "arrays"])
def test_the_declared_peak_bounds_the_measured_peak_of_connect(connector, n, same):
    net = Network("n")
    net.population("a", n, LIF())
    net.population("b", n, LIF())
    expected, final, peak = connect_peak_bytes(connector, n, n, same)
    tracemalloc.start()
    try:
        proj = net.connect("a", "a" if same else "b", connector)
        _, measured = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert proj.n_synapses == pytest.approx(expected, rel=0.01)
    # the estimate must not let a projection through that then runs out of memory, and must
    # not be so loose that it refuses what would fit
    assert measured <= peak <= 2.5 * measured, (measured, peak)


# ---------------------------------------------------------------- the estimate itself
def _ir_nbytes(net: Network) -> int:
    """Bytes of every array the IR holds."""
    total = 0
    for proj in net.projections.values():
        total += sum(a.nbytes for a in (proj.indptr, proj.indices, proj.weights, proj.delays))
    for pop in net.populations.values():
        total += sum(v.nbytes for v in pop.model.parameters().values()
                     if isinstance(v, np.ndarray))
        total += sum(v.nbytes for v in pop.initial.values() if isinstance(v, np.ndarray))
    for src in net.sources.values():
        total += sum(getattr(src, a).nbytes for a in ("rate_hz", "neurons", "times_ms")
                     if isinstance(getattr(src, a, None), np.ndarray))
    return total


def _small() -> Network:
    net = Network("small", dt_ms=0.1)
    exc = net.population("exc", 400, LIF(tau_m_ms=np.linspace(10.0, 30.0, 400)),
                         initial={"v": np.full(400, -60.0)})
    inh = net.population("inh", 100, LIF())
    src = net.poisson_source("drive", 50, np.full(50, 5.0))
    net.connect(exc, inh, FixedProbability(0.1, seed=1), delay_ms=0.5)
    net.connect(inh, exc, FixedInDegree(20, seed=2), weight=-2.0, target="inh")
    net.connect(src, exc, FixedProbability(0.2, seed=3))
    return net


def test_the_estimate_of_a_built_network_matches_its_ir_arrays():
    net = _small()
    est = estimate_memory(net)
    actual = _ir_nbytes(net)
    assert est.connectivity_bytes + est.parameter_bytes == actual
    assert est.n_synapses == net.n_synapses and est.n_neurons == 500


def test_the_estimate_from_sizes_alone_is_within_20_percent_of_the_built_network():
    spec = NetworkSpec("small", 0.1, {"exc": 400, "inh": 100}, {"drive": 50}, [
        ProjectionSpec("exc", "inh", FixedProbability(0.1, seed=1), max_delay_steps=5),
        ProjectionSpec("inh", "exc", FixedInDegree(20, seed=2), target="inh"),
        ProjectionSpec("drive", "exc", FixedProbability(0.2, seed=3)),
    ])
    built = _small()
    est, exact = estimate_memory(spec), estimate_memory(built)
    assert est.connectivity_bytes == pytest.approx(exact.connectivity_bytes, rel=0.2)
    projections = sum(sum(a.nbytes for a in (p.indptr, p.indices, p.weights, p.delays))
                      for p in built.projections.values())
    assert est.connectivity_bytes == pytest.approx(projections, rel=0.2)
    # state and delay buffers do not depend on the draw: equal for the spec and the network
    assert est.state_bytes == exact.state_bytes
    assert est.buffer_bytes == exact.buffer_bytes


def test_state_buffers_and_recordings_scale_with_trials_and_duration():
    net = _small()
    net.record_spikes("exc")
    net.record_state("inh", "v", every_steps=10)
    one = estimate_memory(net, n_trials=1, duration_ms=1000.0)
    four = estimate_memory(net, n_trials=4, duration_ms=2000.0, assumed_rate_hz=10.0)
    assert four.state_bytes == 4 * one.state_bytes
    assert four.buffer_bytes > one.buffer_bytes
    assert four.recording_bytes == 8 * one.recording_bytes
    # 400 neurons at 10 Hz, 16 bytes per spike; 100 traces of 8 bytes at 1000 samples/s
    assert one.recording_bytes_per_s == 400 * 10 * 16 + 100 * 8 * 1000
    assert estimate_memory(net).recording_bytes == 0  # no duration: per second only
    assert one.total_bytes == (one.connectivity_bytes + one.parameter_bytes + one.state_bytes +
                               one.plasticity_bytes + one.buffer_bytes + one.recording_bytes)


def test_plastic_projections_count_their_per_trial_weights():
    net = _small()
    plain = estimate_memory(net, n_trials=2)
    net.stdp("exc->inh", w_max=5.0)
    nnz = net.projections["exc->inh"].n_synapses
    assert estimate_memory(net, n_trials=2).plasticity_bytes - plain.plasticity_bytes >= \
        nnz * 2 * 8


def test_describe_memory_gives_one_line_per_component():
    est = estimate_memory(_small(), n_trials=2, duration_ms=500.0)
    text = describe_memory(est, available=8_000_000_000)
    lines = text.splitlines()
    labels = [line.split("  ")[0].strip() for line in lines]
    assert labels == ["connectivity", "parameters", "neuron state", "plasticity", "buffers",
                      "recordings", "total", "available"]
    assert "8 GB" in lines[-1] and "2 trials" in lines[2] and "500 ms" in lines[5]


def test_check_fits_refuses_a_run_that_cannot_fit_with_the_components():
    est = estimate_memory(_small(), n_trials=2, duration_ms=1000.0)
    check_fits(est, "small", available=est.total_bytes)
    with pytest.raises(MemoryLimitError) as info:
        check_fits(est, "small", available=est.total_bytes - 1)
    msg = str(info.value)
    assert msg.startswith("Network 'small': the run needs an estimated "), msg
    assert "connectivity" in msg and "available" in msg


def test_available_memory_reads_meminfo_and_falls_back_to_sysconf(monkeypatch):
    first = available_memory_bytes()
    assert isinstance(first, int) and first > 0

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(me, "open", no_proc, raising=False)
    import os

    expected = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert available_memory_bytes() == pytest.approx(expected, rel=0.2)


@pytest.mark.parametrize(("kwargs", "field", "value"), [
    (dict(n_trials=0), "n_trials", "0"),
    (dict(n_trials=2.0), "n_trials", "2.0"),
    (dict(duration_ms=-5.0), "duration_ms", "-5.0"),
    (dict(assumed_rate_hz=float("nan")), "assumed_rate_hz", "nan"),
])
def test_bad_arguments_are_refused_by_name(kwargs, field, value):
    with pytest.raises(ValidationError) as info:
        estimate_memory(_small(), **kwargs)
    msg = str(info.value)
    assert msg.startswith("estimate_memory 'arguments': " + field) and f"(got {value})" in msg


def test_a_bad_spec_is_refused_by_name():
    with pytest.raises(ValidationError, match=r"NetworkSpec 's': populations\['a'\].size .*"
                                              r"\(got 0\)"):
        estimate_memory(NetworkSpec("s", populations={"a": PopulationSpec(0)}))
    with pytest.raises(ValidationError, match=r"ProjectionSpec 'a->a': n_synapses"):
        estimate_memory(NetworkSpec("s", populations={"a": 3},
                                    projections=[ProjectionSpec("a", "a")]))
    with pytest.raises(ValidationError, match=r"network_or_spec .*\(got 'str'\)"):
        estimate_memory("net.h5")


def test_the_module_imports_no_framework():
    code = ("import sys, evospike.memory_estimate; "
            "print(sorted(m for m in ('torch', 'brian2', 'lava') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


MODEL = '''
from evospike import LIF, FixedProbability, Network


def build():
    net = Network("mem", dt_ms=0.1)
    a = net.population("a", 400, LIF())
    net.connect(a, a, FixedProbability(0.1, seed=1), weight=0.1, delay_ms=0.1)
    net.record_spikes(a)
    return net
'''


def test_info_prints_the_memory_estimate_of_a_model(tmp_path, capsys):
    from evospike.cli import main

    model = tmp_path / "model.py"
    model.write_text(MODEL)
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "memory estimate" in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    # 16000 synapses: at least their indices, weights and delays
    assert "kB" in total or "MB" in total
    assert "available" in out


def test_run_refuses_a_run_that_cannot_fit_before_compiling(tmp_path, capsys, monkeypatch):
    from evospike.cli import main

    model = tmp_path / "model.py"
    model.write_text(MODEL)
    out = tmp_path / "r.h5"
    # enough to build the connectivity, not for 5000 trials of state and recordings
    monkeypatch.setattr(me, "available_memory_bytes", lambda: 5_000_000)
    assert main(["run", str(model), "--duration", "10ms", "--out", str(out), "--trials",
                 "5000", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evospike: error:")
    assert "available" in err[0] and "'mem'" in err[0] and "build()" not in err[0]
    assert not out.exists()
