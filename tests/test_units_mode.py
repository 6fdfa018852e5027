"""Issue 15: the network's unit system (``Network.units``), Izhikevich's per-neuron initial
``u``, and the PoissonSource rate message."""

from __future__ import annotations

import numpy as np
import pytest

from evospike import Network
from evospike.connectors import AllToAll
from evospike.errors import EvoSpikeError, UnsupportedError, ValidationError
from evospike.ir.neurons import LIF, AdaptiveLIF, AdEx, CubaLIF, Izhikevich
from evospike.ir.nodes import PoissonSource
from evospike.model_loading import describe_network
from evospike.realize import initial_state
from evospike.results import Results
from tests.conftest import run_on

DT = 1.0
BETA = 0.9  # snnTorch's Leaky(beta=0.9): v <- beta * v + input


def _snntorch_lif(**overrides) -> LIF:
    # beta = exp(-dt / tau_m): the exact propagator of the LIF is snnTorch's decay
    params = dict(tau_m_ms=-DT / np.log(BETA), v_rest_mV=0.0, v_reset_mV=0.0,
                  v_thresh_mV=0.5, tau_syn_exc_ms=1.0, tau_syn_inh_ms=1.0)
    return LIF(**{**params, **overrides})


def _snn(units: str = "dimensionless", model: LIF | None = None) -> Network:
    net = Network("snn", dt_ms=DT, units=units)
    times = np.arange(40) * DT
    src = net.spike_source("in", 3, np.arange(40) % 3, times)
    pop = net.population("p", 4, model or _snntorch_lif())
    # weights straight onto v: each input spike adds w, as a snnTorch layer's input does
    net.connect(src, pop, AllToAll(), weight=np.linspace(0.05, 0.4, 12), target="v")
    net.record_spikes(pop)
    net.record_state(pop, "v")
    return net


def _snntorch_reference(net: Network, n_steps: int) -> list[tuple[int, int]]:
    """The same network stepped by hand the snnTorch way (decay, add input, spike when above
    threshold, reset to zero), as (step, neuron) pairs. Input sent in step k arrives in step
    k + 1 (the projection's one-step delay)."""
    proj = net.projections["in->p"]
    src = net.sources["in"]
    w = np.zeros((3, 4))
    for pre in range(3):
        for k in range(proj.indptr[pre], proj.indptr[pre + 1]):
            w[pre, proj.indices[k]] = proj.weights[k]
    fired_in = np.zeros((n_steps + 1, 3))
    fired_in[np.floor(src.times_ms / DT).astype(int), src.neurons] = 1.0
    v, out = np.zeros(4), []
    for step in range(n_steps):
        v = BETA * v + (fired_in[step - 1] @ w if step >= 1 else 0.0)
        spiking = v > 0.5
        out += [(step, int(n)) for n in np.flatnonzero(spiking)]
        v[spiking] = 0.0
    return out


def _pairs(res: Results) -> list[tuple[int, int]]:
    steps, neurons = res.spike_steps("p")
    return list(zip(steps.tolist(), neurons.tolist(), strict=True))


# ------------------------------------------------------------------ dimensionless mode
@pytest.mark.parametrize("backend", ["torch-eager", "torch-native", "brian2"])
def test_a_dimensionless_snntorch_lif_runs_with_the_same_spikes_everywhere(backend):
    net = _snn()
    res = run_on(backend, net, 40.0)
    expected = _snntorch_reference(net, 40)
    assert expected, "the test network must fire"
    assert _pairs(res) == expected
    assert res.meta["units"] == "dimensionless"


@pytest.mark.parametrize("model", [_snntorch_lif(), AdaptiveLIF(
    v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=0.5, delta_thresh_mV=0.1)], ids=["lif", "alif"])
def test_brian2_emits_unitless_equations_for_a_dimensionless_network(model):
    from evospike.backends.brian2.equations import emit

    em = emit(model, "dimensionless")
    assert "volt" not in em.equations
    assert set(em.state_units.values()) == {""}
    assert {unit for _, unit in em.params.values()} == {"ms", ""}
    # the time constants keep their unit: dv/dt is a plain number per second
    assert "tau_m : second (constant)" in em.equations
    assert emit(model).state_units["v"] == "mV"


def test_the_same_network_in_millivolts_is_refused_as_volts():
    with pytest.raises(ValidationError) as info:
        _snn(units="mV")
    assert str(info.value).startswith("Population 'p': LIF.voltages look like volts")


def test_the_millivolt_ranges_do_not_bind_a_dimensionless_model():
    # 500 is a units slip in mV, an ordinary number in a dimensionless model
    model = LIF(v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=500.0, i_bias_mV=5000.0)
    Network("free", units="dimensionless").population("p", 2, model)
    with pytest.raises(ValidationError, match=r"^Population 'p': LIF.i_bias_mV must lie in"):
        Network("physio").population("p", 2, model)


@pytest.mark.parametrize(("build", "field", "value", "word"), [
    pytest.param(lambda: LIF(v_rest_mV=500.0), "v_rest_mV", "500.0", "units slip",
                 id="v-rest-500"),
    pytest.param(lambda: LIF(v_thresh_mV=1500.0), "v_thresh_mV", "1500.0", "1000.0",
                 id="v-thresh-1500"),
    pytest.param(lambda: LIF(v_reset_mV=[-65.0, -650.0]), "v_reset_mV", "'-650.0 at index 1'",
                 "units slip", id="v-reset-array-one-absurd"),
    pytest.param(lambda: LIF(i_bias_mV=5000.0), "i_bias_mV", "5000.0", "[-1000.0",
                 id="drive-in-volts"),
])
def test_a_lif_units_slip_is_refused_where_it_meets_a_millivolt_network(build, field, value,
                                                                         word):
    model = build()  # a bare LIF does not know its network's units yet
    with pytest.raises(ValidationError) as info:
        Network("physio").population("p", 2, model)
    text = str(info.value)
    assert text.startswith(f"Population 'p': {model.kind}.{field}")
    assert f"(got {value})" in text and word in text


@pytest.mark.parametrize("model", [Izhikevich(), AdEx()], ids=["izhikevich", "adex"])
def test_a_model_written_in_millivolts_is_refused_in_a_dimensionless_network(model):
    with pytest.raises(ValidationError) as info:
        Network("free", units="dimensionless").population("p", 2, model)
    assert str(info.value).startswith(f"Population 'p': {model.kind}.units {model.kind}'s "
                                      "equations are written in millivolts")


def test_checks_that_are_not_about_units_still_apply_when_built():
    # a negative threshold jump is wrong in any unit system
    with pytest.raises(ValidationError, match=r"^AdaptiveLIF 'model': delta_thresh_mV"):
        AdaptiveLIF(v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=0.5, delta_thresh_mV=-0.1)
    with pytest.raises(ValidationError, match=r"^LIF 'model': tau_m_ms"):
        LIF(tau_m_ms=-1.0, v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=0.5)
    with pytest.raises(ValidationError, match=r"^LIF 'model': v_thresh_mV must be above"):
        LIF(v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=-0.5)


def test_models_written_in_millivolts_keep_their_checks_when_built():
    with pytest.raises(ValidationError, match=r"^Izhikevich 'model': c_mV .*units slip"):
        Izhikevich(c_mV=-6500.0)


def test_cuba_lif_runs_in_either_unit_system():
    for units in ("mV", "dimensionless"):
        net = Network("cuba", units=units)
        net.population("p", 2, CubaLIF(v_thresh=0.5))
        assert net.populations["p"].model.v_thresh == 0.5


@pytest.mark.parametrize("units", ["volts", "MV", "", None, 1])
def test_an_unknown_unit_system_is_refused(units):
    with pytest.raises(ValidationError) as info:
        Network("n", units=units)
    assert str(info.value).startswith("Network 'n': units must be one of ('mV', "
                                      "'dimensionless')")


def test_fixed_point_and_lava_refuse_a_dimensionless_network_by_name():
    from evospike.backends import get_backend

    with pytest.raises(EvoSpikeError, match=r"Network 'snn': units 'dimensionless'"):
        get_backend("torch").compile(_snn(), precision="fixed", progress=False)
    with pytest.raises(UnsupportedError, match=r"Network 'snn': units 'dimensionless'"):
        get_backend("lava").compile(_snn(), progress=False)


def test_units_round_trip_through_save_and_load(tmp_path):
    path = tmp_path / "snn.h5"
    _snn().save(path)
    loaded = Network.load(path)
    assert loaded.units == "dimensionless"
    assert loaded.populations["p"].model.v_thresh_mV == 0.5
    _snn(model=_snntorch_lif(v_thresh_mV=1.0), units="mV").save(path)
    assert Network.load(path).units == "mV"


def test_a_network_file_without_units_loads_as_millivolts(tmp_path):
    import h5py

    path = tmp_path / "old.h5"
    Network("old").save(path)
    with h5py.File(path, "a") as f:
        del f.attrs["units"]  # as written before the attribute existed
    assert Network.load(path).units == "mV"


def test_a_network_file_with_unknown_units_is_refused(tmp_path):
    import h5py

    path = tmp_path / "bad.h5"
    Network("bad").save(path)
    with h5py.File(path, "a") as f:
        f.attrs["units"] = "volts"
    with pytest.raises(EvoSpikeError, match="units"):
        Network.load(path)


def test_results_meta_and_info_show_the_units(tmp_path):
    res = run_on("torch-eager", _snn(), 5.0)
    path = tmp_path / "r.h5"
    res.save(path)
    assert Results.load(path).meta["units"] == "dimensionless"
    assert run_on("torch-eager", _snn("mV", _snntorch_lif(v_thresh_mV=1.0)),
                  5.0).meta["units"] == "mV"
    assert "units dimensionless" in describe_network(_snn())
    assert "units mV" in describe_network(Network("physio"))


# ------------------------------------------------------------------ Izhikevich initial u
B = np.array([0.2, 0.25, -0.1, 0.0])


def test_izhikevich_default_u_is_b_times_v0_per_neuron():
    net = Network("izh")
    pop = net.population("p", 4, Izhikevich(b=B))
    state = initial_state(pop, seed=0)
    np.testing.assert_array_equal(state["u"], B * state["v"])
    assert state["u"].tolist() == (B * -65.0).tolist()


@pytest.mark.parametrize("backend", ["torch-eager", "brian2"])
def test_izhikevich_per_neuron_u0_reaches_the_backends(backend):
    net = Network("izh", dt_ms=0.1)
    # a slow u: one step moves it by dt * a * (b v - u), far below the tolerance
    pop = net.population("p", 4, Izhikevich(a=1e-9, b=B))
    net.record_state(pop, "u")
    res = run_on(backend, net, 0.1)
    np.testing.assert_allclose(res.traces["p.u"].values[0, 0, :], B * -65.0, atol=1e-6)


# ------------------------------------------------------------------ PoissonSource message
def test_a_poisson_source_above_10_khz_says_what_it_is():
    with pytest.raises(ValidationError) as info:
        PoissonSource("drive", 3, 20_000.0)
    text = str(info.value)
    assert text.startswith("PoissonSource 'drive': rate_hz is above 10 kHz")
    assert "one spike train, Bernoulli per time step" in text and "1/dt" in text
    assert "many separate source neurons" in text and "no neuron sustains" not in text


def test_lif_starts_each_neuron_at_its_own_rest():
    """The default initial v of an LIF is each neuron's own v_rest (per-neuron arrays kept)."""
    from evospike import LIF, Network
    from evospike.realize import initial_state

    net = Network("rest", dt_ms=0.1)
    rest = np.array([-70.0, -65.0, -60.0])
    pop = net.population("p", 3, LIF(v_rest_mV=rest, v_reset_mV=-70.0, v_thresh_mV=-50.0))
    np.testing.assert_array_equal(initial_state(pop, seed=0)["v"], rest)
