"""Every validation error names the object, the field and the offending value.

`evospike.errors.ValidationError` documents the form ``<Kind> '<name>': <field> <problem> (got
<value>)``. Each row below builds one bad input and checks that the error is a
`ValidationError` whose head names the object, whose body names the field, and whose
``(got ...)`` part shows the offending value.
"""

import numpy as np
import pytest

from evospike import (
    LIF,
    AdaptiveLIF,
    AllToAll,
    CubaLIF,
    CurrentInput,
    FixedInDegree,
    FixedProbability,
    FromArrays,
    Izhikevich,
    Network,
    Normal,
    OneToOne,
    PoissonSource,
    Population,
    Projection,
    SpikeTimesSource,
    Uniform,
)
from evospike.errors import EvoSpikeError, ValidationError
from evospike.ir.nodes import StateMonitor, WeightMonitor
from evospike.units import parse_duration_ms

NAN = float("nan")


def _net() -> Network:
    """'pre' (10 LIF), 'post' (12 LIF), 'src' (4 Poisson), dt 0.1 ms."""
    net = Network("net", dt_ms=0.1)
    net.population("pre", 10, LIF())
    net.population("post", 12, LIF())
    net.poisson_source("src", 4, 5.0)
    return net


def _proj(**changes) -> Projection:
    """A valid 10 x 20 projection with 120 synapses (12 per row), with ``changes`` applied."""
    args = dict(name="a->b", pre="a", post="b", n_pre=10, n_post=20,
                indptr=np.arange(11, dtype=np.int64) * 12,
                indices=np.tile(np.arange(12, dtype=np.int64), 10),
                weights=np.ones(120), delays=np.ones(120, dtype=np.int64), target="exc")
    args.update(changes)
    return Projection(**args)


def _delays_with(index: int, value) -> np.ndarray:
    d = np.ones(120)
    d[index] = value
    return d


def _one_bad(n: int, index: int, good: float, bad: float) -> np.ndarray:
    arr = np.full(n, good)
    arr[index] = bad
    return arr


# id, build, object name, field, offending value as it must appear in "(got ...)"
CASES = [
    # ---- Population and neuron models
    pytest.param(lambda: Population("exc", 0, LIF()), "exc", "size", "0", id="pop-size-0"),
    pytest.param(lambda: Population("exc", 2.5, LIF()), "exc", "size", "2.5", id="pop-size-float"),
    pytest.param(lambda: Population("exc", 5, "LIF"), "exc", "model", "'LIF'", id="pop-model-str"),
    pytest.param(lambda: LIF(tau_m_ms=-1), "model", "tau_m_ms", "-1.0",
                 id="lif-tau-negative"),
    pytest.param(lambda: LIF(v_reset_mV=-65.0, v_thresh_mV=-70.0),
                 "model", "v_thresh_mV", "-70.0", id="lif-thresh-below-reset"),
    pytest.param(lambda: LIF(v_thresh_mV=[-50.0, -70.0, -50.0]),
                 "model", "v_thresh_mV", "-70.0", id="lif-thresh-below-reset-per-neuron"),
    # a bare LIF does not know its network's units (Network.units): checked where it is placed
    pytest.param(lambda: Network("n").population("p", 5, LIF(
        v_rest_mV=-0.065, v_reset_mV=-0.065, v_thresh_mV=-0.05)),
                 "p", "voltages", "-0.05", id="lif-in-volts"),
    pytest.param(lambda: Izhikevich(c_mV=-0.065, v_peak_mV=0.03),
                 "model", "voltages", "0.03", id="izh-in-volts"),
    pytest.param(lambda: LIF(reset="hard"), "model", "reset", "'hard'",
                 id="lif-reset-mode"),
    pytest.param(lambda: Population("ad", 5, AdaptiveLIF(tau_adapt_ms=np.full(3, 100.0))),
                 "ad", "AdaptiveLIF.tau_adapt_ms", "(3,)", id="alif-array-wrong-length"),
    pytest.param(lambda: AdaptiveLIF(delta_thresh_mV=-1.0),
                 "model", "delta_thresh_mV", "-1.0", id="alif-delta-negative"),
    pytest.param(lambda: LIF(tau_m_ms=[20.0, 20.0, -3.0, 20.0, 20.0]),
                 "model", "tau_m_ms", "-3.0", id="lif-array-one-out-of-range"),
    pytest.param(lambda: CubaLIF(bias=NAN), "model", "bias", "nan",
                 id="cuba-nan"),
    pytest.param(lambda: LIF(i_bias_mV=_one_bad(50, 40, 1.0, NAN)),
                 "model", "i_bias_mV", "nan", id="lif-array-nan-late"),
    pytest.param(lambda: CubaLIF(du=1.5), "model", "du", "1.5",
                 id="cuba-du-above-1"),
    pytest.param(lambda: CubaLIF(v_thresh=5.0, v_reset=5.0),
                 "model", "v_thresh", "5.0", id="cuba-thresh-equals-reset"),
    pytest.param(lambda: Izhikevich(a=0.0), "model", "a", "0.0",
                 id="izh-a-zero"),
    pytest.param(lambda: Population("exc", 5, LIF(), {"w": 0.0}), "exc", "initial['w']", "'w'",
                 id="initial-unknown-state"),
    pytest.param(lambda: Population("exc", 5, LIF(), {"v": np.zeros(3)}),
                 "exc", "initial['v']", "(3,)", id="initial-wrong-length"),
    pytest.param(lambda: Population("exc", 50, LIF(), {"v": _one_bad(50, 40, -65.0, NAN)}),
                 "exc", "initial['v']", "nan", id="initial-array-nan-late"),
    # ---- Projection (built directly)
    pytest.param(lambda: _proj(weights=np.ones(119)), "a->b", "weights has 119 entries, "
                 "indptr says 120", "119", id="proj-weights-count"),
    pytest.param(lambda: _proj(indptr=np.arange(5)), "a->b", "indptr", "(5,)",
                 id="proj-indptr-length"),
    pytest.param(lambda: _proj(indices=np.where(np.arange(120) == 7, 25, 0)),
                 "a->b", "indices", "25", id="proj-index-out-of-range"),
    # (a delay of 0 is refused when the projection joins a network whose schedule is
    # "evospike": tests/test_timing_convention.py)
    pytest.param(lambda: _proj(delays=_delays_with(3, -1)), "a->b", "delays", "-1",
                 id="proj-delay-negative"),
    pytest.param(lambda: _proj(delays=_delays_with(3, 1.5)), "a->b", "delays", "1.5",
                 id="proj-delay-fractional"),
    pytest.param(lambda: _proj(weights=np.where(np.arange(120) == 9, np.inf, 1.0)),
                 "a->b", "weights", "inf", id="proj-weight-inf"),
    pytest.param(lambda: _proj(target="gaba"), "a->b", "target", "'gaba'", id="proj-target"),
    # ---- spike sources and currents
    pytest.param(lambda: PoissonSource("poi", 5, -5.0), "poi", "rate_hz", "-5.0",
                 id="poisson-negative"),
    pytest.param(lambda: PoissonSource("poi", 5, 20_000.0), "poi", "rate_hz", "20000.0",
                 id="poisson-above-10khz"),
    pytest.param(lambda: PoissonSource("poi", 100, _one_bad(100, 50, 10.0, -5.0)),
                 "poi", "rate_hz", "-5.0", id="poisson-array-negative-late"),
    pytest.param(lambda: PoissonSource("poi", 5, 5.0, start_ms=10.0, stop_ms=5.0),
                 "poi", "stop_ms", "5.0", id="poisson-stop-before-start"),
    pytest.param(lambda: SpikeTimesSource("st", 4, np.array([0, 7]), np.array([1.0, 2.0])),
                 "st", "neurons", "7", id="spiketimes-neuron-out-of-range"),
    pytest.param(lambda: SpikeTimesSource("st", 4, np.array([0, 1]), np.array([1.0, -2.0])),
                 "st", "times_ms", "-2.0", id="spiketimes-negative-time"),
    pytest.param(lambda: CurrentInput("drive", "pre", float("inf")), "drive", "amplitude",
                 "inf", id="current-inf"),
    pytest.param(lambda: CurrentInput("drive", "pre", _one_bad(50, 40, 1.0, NAN)),
                 "drive", "amplitude", "nan", id="current-array-nan-late"),
    pytest.param(lambda: CurrentInput("drive", "pre", series=np.array([1.0, NAN, 2.0])),
                 "drive", "series", "nan", id="current-series-nan"),
    pytest.param(lambda: _net().inject_current("pre", np.ones(3), name="drive"),
                 "drive", "amplitude", "(3,)", id="current-wrong-size-for-target"),
    # ---- monitors
    pytest.param(lambda: _net().record_state("pre", "w"), "pre.w", "variable", "'w'",
                 id="statemon-unknown-variable"),
    pytest.param(lambda: _net().record_state("pre", "v", [0, 10]), "pre.v", "neurons", "10",
                 id="statemon-neuron-out-of-range"),
    pytest.param(lambda: StateMonitor("m", "pre", "v", np.arange(3), every_steps=0), "m",
                 "every_steps", "0", id="statemon-every-0"),
    pytest.param(lambda: _net().record_weights("nope", 5), "nope.weights", "projection",
                 "'nope'", id="weightmon-unknown-projection"),
    pytest.param(lambda: WeightMonitor("wm", "a->b", -2), "wm", "every_steps", "-2",
                 id="weightmon-every-negative"),
    # ---- Network and DSL
    pytest.param(lambda: Network("net", dt_ms=0), "net", "dt_ms", "0", id="network-dt-0"),
    pytest.param(lambda: _net().population("pre", 3, LIF()), "net", "name", "'pre'",
                 id="network-duplicate-name"),
    pytest.param(lambda: _net().connect("pre", "nobody", AllToAll()), "net", "node",
                 "'nobody'", id="connect-unknown-node"),
    pytest.param(lambda: _net().connect("pre", "post", AllToAll(), delay_ms=0.15),
                 "pre->post", "delay_ms", "0.15", id="connect-delay-not-whole-steps"),
    pytest.param(lambda: _net().connect("pre", "post", AllToAll(),
                                        delay_ms=np.where(np.arange(120) == 5, 0.25, 0.2)),
                 "pre->post", "delay_ms", "0.25", id="connect-per-synapse-delay-not-whole"),
    pytest.param(lambda: _net().connect("pre", "post", AllToAll(), weight=np.ones(119)),
                 "pre->post", "weight", "(119,)", id="connect-weight-array-length"),
    pytest.param(lambda: _net().connect("pre", "post", AllToAll(), weight=NAN),
                 "pre->post", "weights", "nan", id="connect-weight-nan"),
    pytest.param(lambda: _net().connect("pre", "post", AllToAll(), target="gaba"),
                 "pre->post", "target", "'gaba'", id="connect-bad-target"),
    pytest.param(lambda: _net().connect("pre", "src", AllToAll()), "pre->src", "post",
                 "'src'", id="connect-onto-source"),
    # ---- connectors and distributions
    pytest.param(lambda: FixedProbability(1.5), "connector", "p", "1.5", id="fixedprob-p-1.5"),
    pytest.param(lambda: FixedInDegree(-1), "connector", "k", "-1", id="fixedindegree-negative"),
    pytest.param(lambda: FromArrays([0, 1, 2], [0, 1, 2], weights=[1.0, 2.0]), "connector",
                 "weights", "(2,)", id="fromarrays-weights-length"),
    pytest.param(lambda: _net().connect("pre", "post", FixedInDegree(11)), "pre->post", "k",
                 "11", id="fixedindegree-k-above-pre"),
    pytest.param(lambda: _net().connect("pre", "post", OneToOne()), "pre->post", "sizes",
                 "(10, 12)", id="onetoone-unequal"),
    pytest.param(lambda: _net().connect("pre", "post", FromArrays([0, 3], [1, 12])),
                 "pre->post", "j", "12", id="fromarrays-out-of-range"),
    pytest.param(lambda: Uniform(1.0, 0.0), "1.0..0.0", "high", "0.0", id="uniform-high-low"),
    pytest.param(lambda: Normal(0.0, -1.0), "0.0+--1.0", "std", "-1.0", id="normal-std"),
    # ---- command-line units
    pytest.param(lambda: parse_duration_ms("10xs", "--duration"), "--duration", "unit",
                 "'10xs'", id="duration-unknown-unit"),
    pytest.param(lambda: parse_duration_ms("0s", "--duration"), "--duration", "positive",
                 "'0s'", id="duration-zero"),
]


@pytest.mark.parametrize(("build", "name", "field", "value"), CASES)
def test_error_names_object_field_and_value(build, name, field, value):
    with pytest.raises(ValidationError) as info:
        build()
    err = info.value
    assert isinstance(err, EvoSpikeError) and isinstance(err, ValueError)
    msg = str(err)
    head, sep, body = msg.partition(": ")
    assert sep, msg
    assert head.endswith(f"'{name}'"), msg
    assert "(got " in body, msg
    problem, _, got = body.rpartition("(got ")
    assert field in problem, msg
    assert value in got, msg


def test_error_attributes_carry_the_parts():
    model = LIF()
    model.tau_m_ms = -1.0  # changed after construction: placing it in a population re-checks
    with pytest.raises(ValidationError) as info:
        Population("exc", 5, model)
    err = info.value
    assert (err.kind, err.name, err.field, err.value) == ("Population", "exc", "LIF.tau_m_ms",
                                                          -1.0)
    assert str(err) == ("Population 'exc': LIF.tau_m_ms must lie in (0.0, 10000000.0] ms "
                        "(got -1.0)")


def test_failed_dsl_call_leaves_network_unchanged():
    net = _net()
    with pytest.raises(ValidationError):
        net.connect("pre", "post", AllToAll(), delay_ms=0.15)
    with pytest.raises(ValidationError):
        net.population("pre", 3, LIF())
    assert net.projections == {}
    assert net.populations["pre"].size == 10
    assert sorted(net.populations) == ["post", "pre"]
