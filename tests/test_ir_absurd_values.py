"""Absurd neuron parameters are refused by the IR, once, for every backend (issue 13).

A model checks its own parameters when it is built (type, finiteness, sign, plausible range);
the checks that need the time step (a time constant shorter than dt, a refractory period that
is not whole steps) run when the model is placed in a network's population. Every error is a
`ValidationError` whose message names the model or population, the field and the value.
"""

import numpy as np
import pytest

from evospike import LIF, AdaptiveLIF, CubaLIF, Izhikevich, Network, Population
from evospike.errors import ValidationError
from evospike.ir.neurons import NEURON_MODELS


def _refused(build, head: str, field: str, value: str, *words: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        build()
    msg = str(info.value)
    assert msg.startswith(head + ":"), msg
    assert field in msg.split(":", 1)[1], msg
    assert f"(got {value}" in msg, msg
    for word in words:
        assert word in msg, msg
    return info.value


# ---------------------------------------------------------------- on construction, no network
@pytest.mark.parametrize(("build", "field", "value", "word"), [
    pytest.param(lambda: LIF(tau_m_ms="20"), "tau_m_ms", "'20'", "not str", id="str"),
    pytest.param(lambda: LIF(v_thresh_mV=b"-50"), "v_thresh_mV", "b'-50'", "not bytes",
                 id="bytes"),
    pytest.param(lambda: LIF(tau_m_ms=True), "tau_m_ms", "True", "not bool", id="bool"),
    pytest.param(lambda: LIF(v_rest_mV=np.bool_(False)), "v_rest_mV", "np.False_", "not bool",
                 id="numpy-bool"),
    pytest.param(lambda: LIF(tau_m_ms=[20.0, "x"]), "tau_m_ms", "[20.0, 'x']", "array of",
                 id="list-with-str"),
    pytest.param(lambda: LIF(tau_m_ms=np.array([True, False])), "tau_m_ms",
                 "array([ True, False])", "array of bool", id="bool-array"),
    pytest.param(lambda: LIF(tau_m_ms=[[1.0], [2.0, 3.0]]), "tau_m_ms", "[[1.0], [2.0, 3.0]]",
                 "ragged", id="ragged"),
    pytest.param(lambda: LIF(tau_m_ms=1 + 2j), "tau_m_ms", "(1+2j)", "not complex",
                 id="complex"),
    pytest.param(lambda: LIF(tau_m_ms=float("inf")), "tau_m_ms", "inf", "finite", id="inf"),
    pytest.param(lambda: LIF(tau_m_ms=0.0), "tau_m_ms", "0.0", "(0.0,", id="tau-zero"),
    pytest.param(lambda: LIF(tau_syn_inh_ms=-5.0), "tau_syn_inh_ms", "-5.0", "(0.0,",
                 id="tau-negative"),
    pytest.param(lambda: LIF(tau_refrac_ms=-1.0), "tau_refrac_ms", "-1.0", "[0.0,",
                 id="refractory-negative"),
    # LIF's millivolt ranges wait for the network's units (Network.units): they are tested
    # where the model is placed, in tests/test_units_mode.py
    pytest.param(lambda: AdaptiveLIF(tau_adapt_ms=-100.0), "tau_adapt_ms", "-100.0", "(0.0,",
                 id="alif-tau-adapt-negative"),
    pytest.param(lambda: AdaptiveLIF(v_rest_mV="-65"), "v_rest_mV", "'-65'", "not str",
                 id="alif-str"),
    pytest.param(lambda: Izhikevich(c_mV=-6500.0), "c_mV", "-6500.0", "units slip",
                 id="izh-c-absurd"),
    pytest.param(lambda: Izhikevich(tau_syn_exc_ms=None), "tau_syn_exc_ms", "", "NoneType",
                 id="izh-none"),
    pytest.param(lambda: CubaLIF(dv="0.1"), "dv", "'0.1'", "not str", id="cuba-str"),
    pytest.param(lambda: CubaLIF(v_thresh=-1.0, v_reset=-2.0), "v_thresh", "-1.0", "(0.0,",
                 id="cuba-thresh-negative"),
    pytest.param(lambda: LIF(reset=0), "reset", "0", "one of", id="reset-not-str"),
])
def test_a_model_refuses_absurd_parameters_when_built(build, field, value, word):
    kind = build.__code__.co_names[0]  # the model class the lambda calls first
    if value:
        _refused(build, f"{kind} 'model'", field, value, word)
    else:  # None has no "(got ...)" part: the message names the type instead
        with pytest.raises(ValidationError) as info:
            build()
        assert str(info.value).startswith(f"{kind} 'model': {field}") and word in str(info.value)


def test_a_refused_string_is_not_converted():
    # float("20") would have made this a valid LIF: the slip must not pass silently
    err = _refused(lambda: LIF(tau_m_ms="20"), "LIF 'model'", "tau_m_ms", "'20'")
    assert (err.kind, err.name, err.field, err.value) == ("LIF", "model", "tau_m_ms", "20")


def test_accepted_parameters_are_stored_as_floats_and_float_arrays():
    model = LIF(tau_m_ms=np.int64(10), v_rest_mV=np.float32(-60.0), i_bias_mV=[1, 2, 3],
                tau_syn_exc_ms=np.array(4.0))
    assert type(model.tau_m_ms) is float and model.tau_m_ms == 10.0
    assert type(model.v_rest_mV) is float and model.v_rest_mV == -60.0
    assert type(model.tau_syn_exc_ms) is float
    assert model.i_bias_mV.dtype == np.float64 and model.i_bias_mV.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("cls", list(NEURON_MODELS.values()), ids=list(NEURON_MODELS))
def test_every_model_is_valid_with_its_defaults_at_the_usual_time_step(cls):
    net = Network("defaults", dt_ms=0.1)
    net.population("p", 4, cls())
    assert "p" in net.populations


def test_a_drive_may_exceed_the_voltage_range_but_not_by_volts():
    # i_bias is a drive (R * I), which can sit far above threshold; a voltage cannot
    assert LIF(i_bias_mV=500.0).i_bias_mV == 500.0
    _refused(lambda: Network("n").population("p", 2, LIF(i_bias_mV=5000.0)), "Population 'p'",
             "LIF.i_bias_mV", "5000.0")


def test_a_model_changed_after_construction_is_checked_again_in_its_population():
    model = LIF()
    model.v_rest_mV = "-65"
    _refused(lambda: Population("exc", 3, model), "Population 'exc'", "LIF.v_rest_mV",
             "'-65'", "not str")


# ---------------------------------------------------------------- placed in a network (dt)
@pytest.mark.parametrize(("model", "field", "value"), [
    pytest.param(lambda: LIF(tau_m_ms=0.02), "LIF.tau_m_ms", "0.02", id="lif-tau-m-seconds"),
    pytest.param(lambda: LIF(tau_syn_exc_ms=[5.0, 5.0, 0.005]), "LIF.tau_syn_exc_ms",
                 "'0.005 at index 2'", id="lif-tau-syn-array"),
    pytest.param(lambda: AdaptiveLIF(tau_adapt_ms=0.05), "AdaptiveLIF.tau_adapt_ms", "0.05",
                 id="alif-tau-adapt"),
    pytest.param(lambda: Izhikevich(tau_syn_inh_ms=0.01), "Izhikevich.tau_syn_inh_ms", "0.01",
                 id="izh-tau-syn"),
])
def test_a_time_constant_below_dt_is_refused_in_the_population(model, field, value):
    net = Network("net", dt_ms=0.1)
    _refused(lambda: net.population("exc", 3, model()), "Population 'exc'", field, value,
             "dt = 0.1 ms", "seconds")
    assert net.populations == {}  # nothing half-added


@pytest.mark.parametrize(("model", "field", "value"), [
    pytest.param(lambda: LIF(tau_refrac_ms=0.25), "LIF.tau_refrac_ms", "0.25", id="lif"),
    pytest.param(lambda: LIF(tau_refrac_ms=[2.0, 2.05, 2.0]), "LIF.tau_refrac_ms", "2.05",
                 id="lif-array"),
    pytest.param(lambda: CubaLIF(tau_refrac_ms=1.5), "CubaLIF.tau_refrac_ms", "1.5",
                 id="cuba"),
    pytest.param(lambda: AdaptiveLIF(tau_refrac_ms=0.15), "AdaptiveLIF.tau_refrac_ms", "0.15",
                 id="alif"),
])
def test_a_refractory_period_of_a_fraction_of_a_step_is_refused_for_every_backend(
        model, field, value):
    net = Network("net", dt_ms=0.1 if "Cuba" not in field else 1.0)
    _refused(lambda: net.population("exc", 3, model()), "Population 'exc'", field, value,
             "whole number", "time steps")
    assert net.populations == {}


def test_network_add_and_load_refuse_as_the_dsl_does(tmp_path):
    net = Network("net", dt_ms=0.1)
    _refused(lambda: net.add(Population("p", 2, LIF(tau_m_ms=0.05))), "Population 'p'",
             "LIF.tau_m_ms", "0.05")
    # loading re-adds every population through the same check: a model valid at its own
    # network's time step loads back unchanged
    fine = Network("fine", dt_ms=0.05)
    fine.population("p", 2, LIF(tau_syn_exc_ms=0.05, tau_refrac_ms=0.05))
    path = tmp_path / "fine.h5"
    fine.save(path)
    assert Network.load(path).populations["p"].model.tau_syn_exc_ms == 0.05


def test_time_constants_at_dt_and_whole_refractory_periods_pass():
    net = Network("net", dt_ms=0.1)
    pop = net.population("p", 3, LIF(tau_m_ms=0.1, tau_syn_exc_ms=[0.1, 5.0, 7.0],
                                     tau_refrac_ms=0.3))
    assert pop.model.tau_refrac_ms == pytest.approx(0.3)
    net.population("q", 2, CubaLIF(tau_refrac_ms=0.0))
