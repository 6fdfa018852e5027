"""The device engine (``engine="device"``, backends/torch/device_engine.py): static shapes, no
host synchronisation inside a chunk. On the CPU it must equal the eager engine bit for bit in
float64 (spikes and every recorded state), across chunk boundaries, with batches of trials, with
per-synapse delays, and after a spike-buffer overflow and re-run; its chunk step must compile
with ``torch.compile(fullgraph=True)``; what it does not carry it refuses by name."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from evospike import (
    LIF,
    AdaptiveLIF,
    AdEx,
    CubaLIF,
    FixedProbability,
    FromArrays,
    Izhikevich,
    Network,
    Uniform,
)
from evospike.backends.torch import compile as torch_compile
from evospike.conformance.matrix import Mismatch, compare
from evospike.errors import EvoSpikeError, UnsupportedError

CELL = LIF(tau_m_ms=20.0, v_rest_mV=-49.0, v_reset_mV=-60.0, v_thresh_mV=-50.0,
           tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0, tau_refrac_ms=2.0)
SEEDS = (0, 1, 2)


def _delays(n: int, rng, dt: float = 0.1, most: int = 6) -> np.ndarray:
    return rng.integers(1, most + 1, n) * dt


def _connect(net, pre, post, n_pre, n_post, p, w, channel, seed, rng):
    """A random projection with per-synapse delays of 1..6 steps and varied weights."""
    mask = np.random.default_rng(seed).random((n_pre, n_post)) < p
    pre_idx, post_idx = np.nonzero(mask)
    weights = w * (0.5 + rng.random(pre_idx.size))
    net.connect(pre, post, FromArrays(pre_idx, post_idx), weight=weights,
                delay_ms=_delays(pre_idx.size, rng), target=channel,
                name=f"{pre}->{post}.{channel}")


def feed_forward() -> Network:
    """Poisson and spike-time sources onto LIF and CubaLIF layers, exc and inh channels and
    direct voltage events, a per-step current series and a PoissonInput."""
    rng = np.random.default_rng(1)
    net = Network("ff", dt_ms=0.1)
    net.poisson_source("in", 80, 400.0)
    net.spike_source("kick", 5, [0, 1, 2, 3, 4, 0], [0.3, 1.0, 2.2, 5.0, 9.9, 12.0])
    net.population("a", 60, CELL, initial={"v": Uniform(-60.0, -50.0)})
    net.population("b", 40, CubaLIF(du=0.25, dv=0.1, bias=0.3, v_thresh=4.0, v_reset=0.0))
    _connect(net, "in", "a", 80, 60, 0.2, 1.5, "exc", 10, rng)
    _connect(net, "in", "a", 80, 60, 0.05, -2.0, "inh", 11, rng)
    _connect(net, "kick", "a", 5, 60, 0.5, 3.0, "v", 12, rng)
    _connect(net, "a", "b", 60, 40, 0.3, 0.8, "exc", 13, rng)
    net.inject_current("b", series=np.sin(np.arange(300) / 20.0) * 0.5)
    net.poisson_input("b", 20, 50.0, 0.2)
    net.record_spikes("in", "kick", "a", "b")
    net.record_weights("a->b.exc", every_steps=7)
    for pop, var in (("a", "v"), ("a", "i_exc"), ("a", "i_inh"), ("b", "u"), ("b", "v")):
        net.record_state(pop, var, every_steps=1 if var == "v" else 3)
    return net


def recurrent() -> Network:
    """Recurrent CUBA-like excitatory / inhibitory LIF network with per-synapse delays, an
    adaptive-threshold population and an Izhikevich one in the loop."""
    rng = np.random.default_rng(2)
    net = Network("rec", dt_ms=0.1)
    net.poisson_source("drive", 40, 300.0)
    start = {"v": Uniform(-60.0, -50.0)}
    net.population("exc", 80, CELL, initial=start)
    net.population("inh", 20, CELL, initial=start)
    net.population("ad", 20, AdaptiveLIF(tau_m_ms=15.0, v_rest_mV=-48.0, v_reset_mV=-60.0,
                                         v_thresh_mV=-50.0, delta_thresh_mV=2.0,
                                         tau_adapt_ms=30.0), initial=start)
    net.population("izh", 10, Izhikevich(a=0.02, b=0.2, c_mV=-65.0, d=8.0, i_bias=5.0))
    pops = {"exc": 80, "inh": 20, "ad": 20, "izh": 10}
    seed = 20
    for pre, w, channel, posts in (("exc", 1.6, "exc", pops), ("inh", -9.0, "inh", pops),
                                   ("ad", 1.0, "exc", ("exc",)), ("izh", 2.0, "exc", ("inh",))):
        for post in posts:
            seed += 1
            _connect(net, pre, post, pops[pre], pops[post], 0.1, w, channel, seed, rng)
    _connect(net, "drive", "exc", 40, 80, 0.2, 2.0, "exc", 99, rng)
    _connect(net, "drive", "izh", 40, 10, 0.3, 4.0, "exc", 98, rng)
    net.record_spikes(*pops)
    for pop, var in (("exc", "v"), ("ad", "theta"), ("ad", "v"), ("izh", "v"), ("izh", "u")):
        net.record_state(pop, var)
    return net


def _run(net, engine, duration_ms, seeds=SEEDS, **options):
    runner = torch_compile(net, engine=engine, precision="float64", seeds=seeds,
                           progress=False, **options)
    return runner, runner.run(duration_ms)


@functools.cache
def _eager(build, duration_ms: float, seeds=SEEDS):
    """The eager engine's results (the reference), run once per module."""
    return _run(build(), "eager", duration_ms, seeds)[1]


def _active(res, node: str, least: int) -> None:
    """A comparison of silent networks proves nothing: each population must fire."""
    n = sum(res.spike_steps(node, t)[0].size for t in range(res.n_trials))
    assert n >= least, f"'{node}' fired only {n} times"


@pytest.mark.parametrize("build, nodes", [(feed_forward, ("a", "b")),
                                          (recurrent, ("exc", "inh", "ad", "izh"))],
                         ids=["feed-forward", "recurrent"])
def test_bit_identical_to_eager_across_chunks(build, nodes):
    net = build()
    want = _eager(build, 10.0)
    # chunks of 40 steps: 100 steps cross two chunk boundaries, and the second run continues
    # the first one from inside a chunk
    runner = torch_compile(net, engine="device", precision="float64", seeds=SEEDS,
                           progress=False, device_chunk_steps=40)
    runner.run(5.3)
    got = runner.run(4.7)
    assert got.meta["engine"] == "device" and got.n_steps == 100
    for node in nodes:
        _active(want, node, 10)
    compare(got, want, exact=True, what=f"{net.name}: device vs eager")


@pytest.mark.slow
def test_continued_runs_and_runner_chunk_boundary():
    """Two runs continue one simulation, across the runner's 1000-step chunk boundary."""
    net = feed_forward()
    _, want = _run(net, "eager", 110.0, seeds=(4,))
    runner = torch_compile(net, engine="device", precision="float64", seeds=(4,),
                           progress=False, device_chunk_steps=300)
    runner.run(55.3)
    got = runner.run(54.7)
    assert got.n_steps == 1100
    _active(want, "b", 10)
    compare(got, want, exact=True, what="continued device run vs eager")


def test_overflow_is_detected_and_rerun_gives_identical_results():
    net = recurrent()
    want = _eager(recurrent, 10.0)
    runner, got = _run(net, "device", 10.0, spike_capacity=1, device_chunk_steps=50)
    engine = runner._device
    assert engine.reruns >= 1, "a capacity of one spike per step must overflow"
    assert engine.capacity["exc"] > 1
    assert "overflow re-runs" in got.meta["engine_note"]
    _active(want, "exc", 20)
    compare(got, want, exact=True, what="device after overflow vs eager")
    # and a run that never overflowed agrees with it
    runner2, roomy = _run(net, "device", 10.0, spike_capacity=10_000, device_chunk_steps=50)
    assert runner2._device.reruns == 0
    compare(got, roomy, exact=True, what="overflowed vs roomy device run")


def test_comparison_would_catch_a_dropped_spike(monkeypatch):
    """The equality above is not vacuous: a device engine that drops overflowing spikes
    without re-running (its check disabled) differs from the eager engine."""
    from evospike.backends.torch import device_engine

    net = recurrent()
    want = _eager(recurrent, 10.0)
    monkeypatch.setattr(device_engine.DeviceEngine, "_fit_capacities", lambda self, seen: None)
    original = device_engine.DeviceEngine._execute

    def no_check(self, start, n):
        original(self, start, n)
        for count in self._maxcount.values():
            count.zero_()  # hides the overflow

    monkeypatch.setattr(device_engine.DeviceEngine, "_execute", no_check)
    _, got = _run(net, "device", 10.0, spike_capacity=1)
    with pytest.raises(Mismatch, match="spikes of"):
        compare(got, want, exact=True, what="unchecked overflow")


def _small_engine():
    from evospike.backends.torch.compiler import TorchConfig, compile_network
    from evospike.backends.torch.runner import TorchRunner

    net = feed_forward()
    cn = compile_network(net, TorchConfig(precision="float64", seeds=(0, 1), engine="eager"))
    runner = TorchRunner(cn, "device", device_options={"device_chunk_steps": 8,
                                                       "spike_capacity": 64})
    runner.run(0.8)  # one chunk: inputs staged for the next one, buffers warm
    return runner


def _snapshot(engine) -> list[torch.Tensor]:
    return [t.clone() for t in engine._state()]


@pytest.mark.slow
def test_step_chunk_compiles_with_fullgraph():
    """``torch.compile(step_chunk, fullgraph=True)`` raises on any graph break (a host
    read-back, a data-dependent shape, an unsupported op); the compiled steps compute what
    the uncompiled ones do."""
    runner = _small_engine()
    engine = runner._device
    engine._stage(runner._chunk_inputs(8, 8), 0, 8)
    before = _snapshot(engine)
    engine.t.fill_(8)
    engine.k.zero_()
    engine.step_chunk(4)
    plain = _snapshot(engine)
    engine._restore(before)
    engine.t.fill_(8)
    engine.k.zero_()
    torch._dynamo.reset()
    compiled = torch.compile(engine.step_chunk, fullgraph=True, backend="aot_eager")
    compiled(4)
    again = _snapshot(engine)
    for a, b in zip(plain, again, strict=True):
        assert torch.equal(a, b)
    assert int(engine.t) == 12


def test_a_graph_break_is_caught_by_fullgraph(monkeypatch):
    """The fullgraph check fails when a step reads a value back to the host (as the eager
    engine's ``int(counts.sum())`` does), so the test above can fail."""
    from evospike.backends.torch import device_engine

    def reads_back(self):
        if int(self.t) >= 0:  # a host synchronisation: breaks the graph
            self.t.add_(1)

    monkeypatch.setattr(device_engine.DeviceEngine, "_step", reads_back)
    runner = _small_engine()
    torch._dynamo.reset()
    compiled = torch.compile(runner._device.step_chunk, fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="(?i)graph break|unsupported|data-dependent|item"):
        compiled(2)


def _refusal(net, match):
    with pytest.raises(UnsupportedError, match=match) as info:
        torch_compile(net, engine="device", progress=False)
    assert info.value.backend == "torch device"
    return str(info.value)


def test_refuses_by_name_what_it_does_not_carry():
    net = Network("mixed", dt_ms=0.1)
    net.population("ok", 5, CELL)
    net.population("ex", 5, AdEx())
    proj = net.connect("ok", "ok", FixedProbability(0.5, seed=1), weight=1.0)
    net.stdp(proj, tau_plus_ms=5.0, tau_minus_ms=5.0, a_plus=0.1, a_minus=0.1, w_min=0.0,
             w_max=1.0)
    net.modulator("reward", 10.0)
    net.homeostasis("ok", target_rate_hz=5.0)
    msg = _refusal(net, "Population 'ex': AdEx neurons")
    for name in ("STDP '", "Modulator 'reward'", "Homeostasis '"):
        assert name in msg
    assert "Population 'ok'" not in msg  # carried nodes are not listed
    sched = Network("b2", dt_ms=0.1, schedule="brian2")
    sched.population("p", 3, CELL)
    _refusal(sched, "schedule 'brian2'")


@pytest.mark.parametrize("options, match", [
    ({"engine": "device", "spike_capacity": 0}, "spike_capacity must be a whole number"),
    ({"engine": "device", "device_chunk_steps": 2.5}, "device_chunk_steps must be a whole"),
    ({"engine": "device", "cuda_graph": "yes"}, "cuda_graph must be True or False"),
    ({"engine": "eager", "spike_capacity": 64}, "spike_capacity apply to engine 'device'"),
    ({"engine": "device", "precision": "fixed"}, "precision 'fixed' runs its own"),
])
def test_bad_options_are_named(options, match):
    net = Network("opts", dt_ms=0.1)
    net.population("p", 3, CELL)
    with pytest.raises(EvoSpikeError, match=match):
        torch_compile(net, progress=False, **options)
