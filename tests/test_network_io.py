"""Network HDF5 files: exact round trip, clear errors on bad files, atomic saves."""

import dataclasses
import os

import h5py
import numpy as np
import pytest

from evospike import (
    LIF,
    AdaptiveLIF,
    AdEx,
    AllToAll,
    CubaLIF,
    FixedInDegree,
    FixedProbability,
    FromArrays,
    Izhikevich,
    Network,
    Normal,
    Uniform,
)
from evospike.errors import EvoSpikeError


def _full_network() -> Network:
    """One of every node kind, with scalar, per-neuron and random values."""
    rng = np.random.default_rng(2024)
    net = Network("every node", dt_ms=0.25)
    lif = net.population("lif", 20, LIF(tau_m_ms=15.0, v_rest_mV=-70.0, v_reset_mV=-72.5,
                                        v_thresh_mV=-54.0, tau_refrac_ms=2.0, i_bias_mV=0.3,
                                        reset="subtract"),
                         initial={"v": Uniform(-72.5, -54.0), "i_exc": 0.125})
    alif = net.population(
        "alif", 12,
        AdaptiveLIF(tau_m_ms=rng.uniform(10.0, 30.0, 12), v_thresh_mV=rng.uniform(-55, -50, 12),
                    tau_adapt_ms=rng.uniform(50.0, 200.0, 12), delta_thresh_mV=0.7),
        initial={"v": rng.normal(-65.0, 1.0, 12), "theta": Normal(0.2, 0.05)},
    )
    cuba = net.population("cuba", 9, CubaLIF(du=np.linspace(0.05, 0.5, 9), dv=0.03, bias=0.1,
                                             v_thresh=12.0, v_reset=-1.0, reset="value"),
                          initial={"u": np.arange(9, dtype=np.float64) / 7})
    izh = net.population("izh", 7, Izhikevich(a=np.full(7, 0.02), b=0.25, c_mV=-60.0, d=2.0,
                                              i_bias=rng.normal(5.0, 1.0, 7)),
                         initial={"u": -15.0, "v": Normal(-65.0, 3.0)})
    adex = net.population("adex", 5, AdEx(C_pF=[200.0, 130.0, 200.0, 100.0, 281.0],
                                          a_nS=rng.uniform(-11.0, 4.0, 5), b_pA=30.0,
                                          tau_refrac_ms=0.5, I_e_pA=160.0),
                          initial={"w_adapt": Uniform(0.0, 50.0), "v": -60.0})
    poisson = net.poisson_source("poisson", 15, rng.uniform(1.0, 40.0, 15), start_ms=5.0,
                                 stop_ms=80.25)
    times = net.spike_source("times", 6, [5, 0, 3, 3, 1], [4.75, 0.5, 2.0, 9.125, 0.5])
    net.inject_current(lif, 1.5, start_ms=10.0, stop_ms=60.0)
    net.inject_current(cuba, series=rng.normal(0.0, 1.0, (40, 9)), start_ms=2.5, name="noise")
    net.inject_current(izh, rng.uniform(0.0, 3.0, 7), name="izh drive")
    net.inject_current(adex, 400.0, start_ms=20.0, name="adex step")
    p1 = net.connect(poisson, lif, FixedProbability(0.3, seed=5), weight=Normal(1.0, 0.25),
                     delay_ms=0.5)
    d_ms = rng.integers(1, 12, lif.size * alif.size) * 0.25
    net.connect(lif, alif, AllToAll(seed=6), weight=Uniform(0.0, 2.0), delay_ms=d_ms)
    net.connect(alif, lif, FixedInDegree(4, seed=7), weight=-3.0, target="inh")
    net.connect(times, cuba, FromArrays([0, 5, 3, 3], [8, 0, 2, 4], weights=[1.0, 2.0, 3.0, 4.0],
                                        delays_ms=[0.25, 1.0, 0.5, 2.5]), name="times to cuba")
    net.connect(izh, izh, FixedProbability(0.5, seed=8, allow_self_connections=False),
                weight=0.5, target="v")
    net.connect(poisson, adex, FixedProbability(0.4, seed=9), weight=Uniform(20.0, 80.0),
                target="exc")
    net.record_spikes(lif, poisson, izh, adex)
    net.record_state(adex, "w_adapt", [1, 3], every_steps=2)
    net.record_state(alif, "theta", [0, 4, 11], every_steps=4)
    net.record_state(cuba, "u")
    net.record_weights(p1, 100)
    net.record_weights("times to cuba", 7, name="w2")
    return net


def _assert_same(a, b, where="net"):
    """Exact equality, recursively: same types, same dtypes, same values."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, (where, a.dtype, b.dtype)
        assert np.array_equal(a, b), where
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), (where, type(a), type(b))
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(a), sorted(b))
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, float):
        assert isinstance(b, float) and a == b, (where, a, b)
    elif isinstance(a, (bool, int, str)) or a is None:
        assert type(a) is type(b) and a == b, (where, a, b)
    else:
        raise AssertionError(f"{where}: unexpected type {type(a)}")


def _h5_content(path) -> dict:
    """Every attribute and dataset in the file, by path, with dtypes."""
    out = {}

    def visit(name, obj):
        for key, value in obj.attrs.items():
            out[f"{name}@{key}"] = np.asarray(value).tolist()
        if isinstance(obj, h5py.Dataset):
            out[name] = (str(obj.dtype), obj.shape, obj[()].tolist())

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return out


@pytest.fixture(scope="module")
def full_network() -> Network:
    return _full_network()


# ---------------------------------------------------------------- round trip
def test_round_trip_is_exact(full_network, tmp_path):
    net = full_network
    net.save(tmp_path / "n.h5")
    back = Network.load(tmp_path / "n.h5")
    _assert_same(net, back)
    # spot checks that the comparison sees what matters
    assert back.name == "every node" and back.dt_ms == 0.25
    assert back.populations["alif"].model.tau_m_ms.dtype == np.float64
    assert back.populations["lif"].initial["v"] == Uniform(-72.5, -54.0)
    assert back.populations["izh"].initial["v"] == Normal(-65.0, 3.0)
    assert back.populations["lif"].model.reset == "subtract"
    assert back.sources["poisson"].stop_ms == 80.25
    assert back.currents["current->lif"].stop_ms == 60.0
    assert back.currents["izh drive"].stop_ms is None
    assert back.currents["noise"].series.shape == (40, 9)
    assert back.projections["lif->alif"].delays.dtype == np.int32
    assert len(np.unique(back.projections["lif->alif"].delays)) > 5
    assert [m.target for m in back.spike_monitors] == ["lif", "poisson", "izh", "adex"]
    np.testing.assert_array_equal(back.sources["times"].times_ms, [0.5, 0.5, 2.0, 4.75, 9.125])
    assert back.n_synapses == net.n_synapses and back.n_neurons == 53
    adex = back.populations["adex"].model
    assert adex.kind == "AdEx" and adex.a_nS.shape == (5,) and adex.I_e_pA == 160.0
    assert back.populations["adex"].initial["w_adapt"] == Uniform(0.0, 50.0)


def test_save_load_save_gives_the_same_content(full_network, tmp_path):
    full_network.save(tmp_path / "a.h5")
    Network.load(tmp_path / "a.h5").save(tmp_path / "b.h5")
    first, second = _h5_content(tmp_path / "a.h5"), _h5_content(tmp_path / "b.h5")
    assert len(first) > 100
    assert first == second


def test_round_trip_of_an_empty_network(tmp_path):
    net = Network("empty", dt_ms=1.0)
    net.save(tmp_path / "e.h5")
    _assert_same(net, Network.load(tmp_path / "e.h5"))


def test_comparison_detects_a_changed_value(full_network, tmp_path):
    """The exact comparison used above does fail on a one-ulp change."""
    full_network.save(tmp_path / "n.h5")
    back = Network.load(tmp_path / "n.h5")
    w = back.projections["poisson->lif"].weights
    w[3] = np.nextafter(w[3], np.inf)
    with pytest.raises(AssertionError):
        _assert_same(full_network, back)


def test_round_trip_keeps_the_order_of_nodes(tmp_path):
    net = Network("order", dt_ms=0.1)
    net.population("z", 3, LIF())
    net.population("a", 3, LIF())
    net.connect("z", "a", AllToAll(), name="z->a")
    net.connect("a", "z", AllToAll(), name="a->z")
    net.save(tmp_path / "o.h5")
    back = Network.load(tmp_path / "o.h5")
    assert list(back.populations) == ["z", "a"]
    assert list(back.projections) == ["z->a", "a->z"]


# ---------------------------------------------------------------- bad files
def test_load_missing_file(tmp_path):
    path = tmp_path / "missing.h5"
    with pytest.raises(EvoSpikeError, match="does not exist") as info:
        Network.load(path)
    assert str(path) in str(info.value)


def test_load_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5\n")
    with pytest.raises(EvoSpikeError, match="not an HDF5 file") as info:
        Network.load(path)
    assert str(path) in str(info.value)


def test_load_an_hdf5_file_that_is_not_a_network(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(5))
        f.attrs["format"] = "something-else"
    with pytest.raises(EvoSpikeError, match="not an EvoSpike network file") as info:
        Network.load(path)
    assert str(path) in str(info.value)
    assert "something-else" in str(info.value)


def test_load_a_network_of_a_newer_format_version(full_network, tmp_path):
    path = tmp_path / "future.h5"
    full_network.save(path)
    with h5py.File(path, "a") as f:
        f.attrs["version"] = 99
    with pytest.raises(EvoSpikeError, match="version 99") as info:
        Network.load(path)
    assert str(path) in str(info.value)


def test_load_a_network_file_with_missing_parts(tmp_path):
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(format="evospike-network", version=1, name="partial", dt_ms=0.1)
    with pytest.raises(EvoSpikeError) as info:
        Network.load(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- atomic saves
def test_save_leaves_no_temporary_files(full_network, tmp_path):
    full_network.save(tmp_path / "n.h5")
    full_network.save(str(tmp_path / "n.h5"))  # overwrite, path as str
    assert sorted(os.listdir(tmp_path)) == ["n.h5"]
    nested = tmp_path / "a" / "b" / "m.h5"
    full_network.save(nested)
    assert sorted(os.listdir(nested.parent)) == ["m.h5"]


def test_save_replaces_an_existing_file(full_network, tmp_path):
    path = tmp_path / "n.h5"
    full_network.save(path)
    small = Network("small", dt_ms=0.5)
    small.population("only", 2, LIF())
    small.save(path)
    back = Network.load(path)
    assert back.name == "small" and list(back.populations) == ["only"]


def _fail_on_call(monkeypatch, n: int) -> list:
    """Make the n-th h5py create_group call (File and Group alike) raise."""
    calls = []
    original = h5py.Group.create_group

    def create_group(self, *args, **kwargs):
        calls.append(args[0] if args else kwargs.get("name"))
        if len(calls) == n:
            raise RuntimeError("disk full (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_group", create_group)
    return calls


@pytest.mark.parametrize("fail_at", [1, 6])
def test_failed_save_leaves_the_existing_file_unchanged(full_network, tmp_path, monkeypatch,
                                                        fail_at):
    path = tmp_path / "n.h5"
    old = Network("old", dt_ms=0.5)
    old.population("only", 2, LIF(tau_m_ms=12.0))
    old.save(path)
    before = path.read_bytes()
    calls = _fail_on_call(monkeypatch, fail_at)
    with pytest.raises(RuntimeError, match="disk full"):
        full_network.save(path)
    assert len(calls) == fail_at  # it did fail mid-way, with the new file open
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["n.h5"]
    back = Network.load(path)
    assert back.name == "old" and back.populations["only"].model.tau_m_ms == 12.0


def test_failed_save_to_a_new_path_creates_nothing(full_network, tmp_path, monkeypatch):
    _fail_on_call(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        full_network.save(tmp_path / "new.h5")
    assert os.listdir(tmp_path) == []


def test_saved_file_has_ordinary_permissions(full_network, tmp_path):
    reference = tmp_path / "reference.h5"
    with h5py.File(reference, "w"):
        pass
    full_network.save(tmp_path / "n.h5")
    mode = os.stat(tmp_path / "n.h5").st_mode & 0o777
    assert mode == os.stat(reference).st_mode & 0o777
