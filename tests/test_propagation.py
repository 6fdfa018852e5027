"""Spike propagation: event-driven CSR gathers against a dense reference, delays, batches."""

import numpy as np
import pytest
import torch

from evospike import CubaLIF, FixedProbability, FromArrays, Network, Normal
from evospike.backends.torch import TorchConfig
from evospike.backends.torch.compiler import compile_network
from evospike.backends.torch.eager import propagate
from tests.conftest import run_on

BIG = 1e12  # a threshold no test input reaches: the neurons only integrate


def _dense(proj) -> np.ndarray:
    W = np.zeros((proj.n_pre, proj.n_post))
    np.add.at(W, (proj.pre_indices(), proj.indices), proj.weights)
    return W


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_propagation_equals_dense_product(backend, precision, seed):
    rng = np.random.default_rng(seed)
    n_pre, n_post = 300, 200
    fired = np.nonzero(rng.random(n_pre) < 0.3)[0]
    net = Network("dense", dt_ms=1.0)
    src = net.spike_source("src", n_pre, fired, np.zeros(fired.size))
    # du = 0, dv = 0: u accumulates its input without decay, so u at step 1 is exactly W^T s
    post = net.population("post", n_post, CubaLIF(du=0.0, dv=0.0, v_thresh=BIG))
    proj = net.connect(src, post, FixedProbability(0.2, seed=seed), weight=Normal(0.0, 1.0),
                       delay_ms=1.0)
    net.record_state(post, "u")
    res = run_on(backend, net, 3.0, precision=precision)
    s = np.zeros(n_pre)
    s[fired] = 1.0
    expected = s @ _dense(proj)
    u = res.traces["post.u"].values[0]
    np.testing.assert_array_equal(u[0], 0.0)  # nothing arrives in the step of the spike
    tol = 1e-12 if precision == "float64" else 1e-4
    np.testing.assert_allclose(u[1], expected, atol=tol)
    np.testing.assert_allclose(u[2], expected, atol=tol)  # and nothing more later
    assert np.abs(expected).max() > 1.0


def test_eager_propagate_batched_matches_dense_per_trial():
    rng = np.random.default_rng(5)
    n_pre, n_post, trials = 50, 40, 3
    net = Network("batched", dt_ms=1.0)
    a = net.population("a", n_pre, CubaLIF(v_thresh=BIG))
    b = net.population("b", n_post, CubaLIF(v_thresh=BIG))
    proj = net.connect(a, b, FixedProbability(0.3, seed=3), weight=Normal(0, 1), delay_ms=2.0)
    cn = compile_network(net, TorchConfig(precision="float64", seeds=(0, 1, 2)))
    spikes = rng.random((trials, n_pre)) < 0.4
    fired = torch.as_tensor(np.nonzero(spikes.ravel())[0])
    buf = cn.populations["b"].buf
    propagate(cn.projections[proj.name], fired, buf, step=7)
    slot = (7 + 2) % buf.shape[0]
    expected = spikes.astype(float) @ _dense(proj)
    np.testing.assert_allclose(buf[slot, 0].numpy(), expected, atol=1e-12)
    others = [s for s in range(buf.shape[0]) if s != slot]
    assert torch.count_nonzero(buf[others]) == 0


def test_delays_arrive_exactly_d_steps_later(backend):
    delays = np.array([1, 2, 7, 13, 13, 40])
    n_post = delays.size
    net = Network("delays", dt_ms=0.5)
    src = net.spike_source("src", 1, [0, 0], [2.5, 30.0])  # steps 5 and 60
    # du = 1: u holds exactly this step's input and forgets it at the next step
    post = net.population("post", n_post, CubaLIF(du=1.0, dv=1.0, v_thresh=BIG))
    net.connect(src, post, FromArrays(np.zeros(n_post, int), np.arange(n_post),
                                      weights=np.arange(1, n_post + 1, dtype=float),
                                      delays_ms=delays * 0.5))
    net.record_state(post, "u")
    res = run_on(backend, net, 60.0, precision="float64")
    u = res.traces["post.u"].values[0]
    for j, d in enumerate(delays):
        arrived = np.nonzero(u[:, j])[0]
        np.testing.assert_array_equal(arrived, [5 + d, 60 + d])
        np.testing.assert_array_equal(u[arrived, j], j + 1.0)


def test_heterogeneous_delays_many_synapses_match_reference(backend):
    rng = np.random.default_rng(11)
    n_pre, n_post, n_steps = 40, 30, 60
    times = rng.integers(0, 30, 80)
    neurons = rng.integers(0, n_pre, 80)
    keep = np.unique(np.stack([times, neurons], 1), axis=0)
    times, neurons = keep[:, 0], keep[:, 1]
    i = rng.integers(0, n_pre, 500)
    j = rng.integers(0, n_post, 500)
    w = rng.normal(size=500)
    d = rng.integers(1, 20, 500)
    net = Network("hetero", dt_ms=1.0)
    src = net.spike_source("src", n_pre, neurons, times.astype(float))
    post = net.population("post", n_post, CubaLIF(du=1.0, dv=1.0, v_thresh=BIG))
    net.connect(src, post, FromArrays(i, j, weights=w, delays_ms=d.astype(float)))
    net.record_state(post, "u")
    res = run_on(backend, net, float(n_steps), precision="float64")
    expected = np.zeros((n_steps, n_post))
    for t, n in zip(times, neurons, strict=True):
        for k in np.nonzero(i == n)[0]:
            if t + d[k] < n_steps:
                expected[t + d[k], j[k]] += w[k]
    np.testing.assert_allclose(res.traces["post.u"].values[0], expected, atol=1e-12)
