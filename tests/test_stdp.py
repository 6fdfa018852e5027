"""Pair-based STDP: the pair rule itself, torch against Brian2 weight trajectories, batches."""

import math

import numpy as np
import pytest

from evospike import STDP, FixedProbability, FromArrays, Network, OneToOne, Uniform
from evospike.errors import ValidationError
from evospike.ir.neurons import LIF
from tests.conftest import load_example, run_on

VARIANTS = [(p, d) for p in ("all", "nearest") for d in ("additive", "multiplicative")]


def _pair(pre_ms: float, post_ms: float, delay_ms: float = 0.1) -> Network:
    """One plastic synapse (weight 0: it does not drive the neuron) whose postsynaptic neuron
    is made to fire at ``post_ms`` by a strong one-to-one input."""
    net = Network("pair", dt_ms=0.1)
    pre = net.spike_source("pre", 1, [0], [pre_ms])
    kick = net.spike_source("kick", 1, [0], [post_ms - 0.1])
    post = net.population("post", 1, LIF(v_rest_mV=-65.0, tau_syn_exc_ms=0.5))
    proj = net.connect(pre, post, OneToOne(), weight=0.5, delay_ms=delay_ms)
    net.connect(kick, post, OneToOne(), weight=100.0, delay_ms=0.1, target="v")
    net.stdp(proj, a_plus=0.1, a_minus=0.12, tau_plus_ms=17.0, tau_minus_ms=34.0,
             w_min=0.0, w_max=1.0)
    net.record_spikes(post)
    net.record_weights(proj, every_steps=1)
    return net


@pytest.mark.parametrize("pre_ms, post_ms", [(10.0, 25.0), (30.0, 12.0), (10.0, 10.1)])
def test_pair_rule_matches_the_stdp_window(backend, pre_ms, post_ms):
    res = run_on(backend, _pair(pre_ms, post_ms), 60.0, precision="float64")
    post_steps = res.spike_steps("post")[0]
    np.testing.assert_array_equal(post_steps, [round(post_ms / 0.1)])
    arrive = round(pre_ms / 0.1) + 1  # one step of delay
    w_end = res.weights["pre->post.weights"].values[0, -1, 0]
    gap_ms = (post_steps[0] - arrive) * 0.1
    if gap_ms >= 0:  # pre (as it arrives) before or with post: potentiation
        expected = 0.5 + 0.1 * math.exp(-gap_ms / 17.0)
    else:
        expected = 0.5 - 0.12 * math.exp(gap_ms / 34.0)
    np.testing.assert_allclose(w_end, expected, atol=1e-12)


def _driven(pairing: str, dependence: str, delay_ms: float) -> Network:
    rng = np.random.default_rng(1)
    net = Network("stdp", dt_ms=0.1)
    n_pre = 40
    steps = np.nonzero(rng.random((3000, n_pre)) < 30e-4)
    src = net.spike_source("in", n_pre, steps[1], steps[0] * 0.1)
    post = net.population("post", 5, LIF(v_rest_mV=-60.0, tau_refrac_ms=2.0))
    proj = net.connect(src, post, FixedProbability(0.5, seed=2), weight=Uniform(2.0, 6.0),
                       delay_ms=delay_ms)
    if dependence == "additive":
        net.stdp(proj, a_plus=0.3, a_minus=0.33, tau_plus_ms=15.0, tau_minus_ms=25.0,
                 pairing=pairing, weight_dependence=dependence, w_min=0.0, w_max=8.0)
    else:
        net.stdp(proj, a_plus=0.05, a_minus=0.06, pairing=pairing,
                 weight_dependence=dependence, w_min=0.0, w_max=8.0)
    net.record_spikes(post)
    net.record_weights(proj, every_steps=50)
    return net


@pytest.mark.parametrize("delay_ms", [0.1, 0.7])
@pytest.mark.parametrize("pairing, dependence", VARIANTS)
def test_weight_trajectories_agree_with_brian2(pairing, dependence, delay_ms):
    torch_res = run_on("torch-eager", _driven(pairing, dependence, delay_ms), 300.0,
                       precision="float64")
    brian_res = run_on("brian2", _driven(pairing, dependence, delay_ms), 300.0)
    wt = torch_res.weights["in->post.weights"].values
    wb = brian_res.weights["in->post.weights"].values
    np.testing.assert_allclose(wt, wb, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(torch_res.spike_steps("post")[0],
                                  brian_res.spike_steps("post")[0])
    assert np.abs(wt[0, -1] - wt[0, 0]).max() > 0.5  # the weights did move
    assert torch_res.spikes_by_node["post"].step.size > 10


def test_trials_learn_independently():
    net = Network("batch", dt_ms=0.1)
    src = net.poisson_source("in", 30, rate_hz=40.0)
    post = net.population("post", 4, LIF(v_rest_mV=-58.0))
    proj = net.connect(src, post, FixedProbability(0.6, seed=3), weight=3.0)
    net.stdp(proj, a_plus=0.2, a_minus=0.22, w_max=6.0)
    net.record_weights(proj, every_steps=500)
    batch = run_on("torch-eager", net, 200.0, seeds=(4, 9))
    alone = run_on("torch-eager", net, 200.0, seeds=(9,))
    w_batch = batch.weights["in->post.weights"].values
    np.testing.assert_array_equal(w_batch[1], alone.weights["in->post.weights"].values[0])
    assert not np.array_equal(w_batch[0, -1], w_batch[1, -1])


def test_plastic_networks_refuse_what_is_not_there():
    net = Network("refuse", dt_ms=0.1)
    src = net.poisson_source("in", 3, rate_hz=10.0)
    post = net.population("post", 2, LIF())
    proj = net.connect(src, post, FromArrays([0, 1], [0, 1], delays_ms=[0.1, 0.2]),
                       weight=0.5)
    with pytest.raises(ValidationError, match="STDP 'in->post.stdp': projection has per-synapse"):
        net.stdp(proj)
    ok = net.connect(src, post, FixedProbability(1.0), weight=0.5,
                     name="uniform")
    with pytest.raises(ValidationError, match="must start within"):
        net.add(STDP("too-strong", "uniform", w_max=0.25))
    net.stdp(ok)
    with pytest.raises(ValidationError, match="already has a plasticity rule"):
        net.add(STDP("second", "uniform"))


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("pairing, dependence", VARIANTS)
def test_native_engine_learns_exactly_like_eager(pairing, dependence, precision):
    runs = [run_on(f"torch-{e}", _driven(pairing, dependence, 0.5), 300.0, precision=precision,
                   seeds=(0, 1)) for e in ("eager", "native")]
    w_eager, w_native = (r.weights["in->post.weights"].values for r in runs)
    np.testing.assert_array_equal(w_native, w_eager)
    np.testing.assert_array_equal(runs[0].spike_steps("post", 1)[0],
                                  runs[1].spike_steps("post", 1)[0])
    assert np.abs(w_eager[0, -1] - w_eager[0, 0]).max() > 0.1


def test_stdp_survives_the_hdf5_round_trip(tmp_path):
    net = _driven("nearest", "multiplicative", 0.3)
    net.save(tmp_path / "n.h5")
    back = Network.load(tmp_path / "n.h5")
    assert back.plasticity == net.plasticity


@pytest.mark.slow
def test_stdp_competition_splits_the_weights():
    example = load_example("stdp_competition")
    res = run_on("torch-native", example.build(), 150_000.0, precision="float32")
    w = res.weights["inputs->neuron.weights"].values[0, -1] / example.W_MAX_MV
    assert np.mean(w < 0.1) > 0.3 and np.mean(w > 0.9) > 0.05  # two groups at the bounds
    assert np.mean((w > 0.3) & (w < 0.7)) < 0.2  # and few in between
    t, _ = res.spikes("neuron")
    first, last = np.sum(t < 1000.0), np.sum(t >= res.duration_ms - 10_000.0) / 10.0
    assert last < first / 3  # the output rate settled far below its start
