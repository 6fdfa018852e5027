"""PoissonInput: many afferents as one binomial (or Poisson) count per step and neuron, drawn from
the keyed streams of `evospike.realize` so that every backend and every split of a run sees the
same counts."""

from __future__ import annotations

import numpy as np
import pytest

from evospike import LIF, Network, PoissonInput
from evospike.backends import get_backend
from evospike.connectors import OneToOne
from evospike.errors import EvoSpikeError, ValidationError
from evospike.fixed_point import fixed_refusals
from evospike.ir.serialize import load_network, save_network
from evospike.realize import POISSON_CHUNK_STEPS, poisson_input_counts
from tests.test_network_io import _assert_same

QUIET = LIF(tau_m_ms=10.0, tau_syn_exc_ms=3.0, tau_syn_inh_ms=6.0, v_thresh_mV=100.0)
CELL = dict(tau_m_ms=10.0, v_rest_mV=-65.0, v_reset_mV=-65.0, v_thresh_mV=-50.0)


def _one(size: int = 5, **kwargs) -> tuple[Network, PoissonInput]:
    net = Network("pi", dt_ms=0.1)
    net.population("p", size, QUIET)
    inp = net.poisson_input("p", **{"n_afferents": 10, "rate_hz": 3000.0, "weight": 0.5,
                                    **kwargs}, name="drive")
    return net, inp


def _feed_forward() -> Network:
    net = Network("ff", dt_ms=0.1)
    net.population("a", 12, LIF(tau_syn_exc_ms=2.0, tau_refrac_ms=2.0, **CELL))
    net.population("b", 12, LIF(tau_refrac_ms=1.0, **CELL))
    net.poisson_input("a", 100, 200.0, 1.0, channel="exc", name="to_a")
    net.poisson_input("b", 50, np.linspace(50.0, 150.0, 12), 0.8, channel="v", name="to_b",
                      start_ms=5.0)
    net.connect("a", "b", OneToOne(), weight=3.0, delay_ms=0.3)
    net.record_spikes("a")
    net.record_spikes("b")
    return net


# --------------------------------------------------------------------------- the counts
def test_counts_have_the_binomial_mean_and_variance_not_a_poissons():
    """K = 10 afferents at p = rate * dt = 0.3: mean K p = 3, variance K p (1 - p) = 2.1, and
    never more than K events; a Poisson count of the same mean would have variance 3."""
    net, inp = _one()
    counts = poisson_input_counts(inp, 5, 7, net.dt_ms, 0, 20_000).ravel().astype(float)
    n = counts.size
    k, p = 10, 0.3
    mean, var = k * p, k * p * (1 - p)
    # six standard errors: the sample mean's, and the sample variance's (from the binomial's
    # fourth central moment)
    mu4 = var * (1 + 3 * (k - 2) * p * (1 - p))
    assert abs(counts.mean() - mean) < 6 * np.sqrt(var / n)
    assert abs(counts.var() - var) < 6 * np.sqrt((mu4 - var**2) / n)
    assert abs(counts.var() - mean) > 0.5  # clearly not Poisson (variance = mean)
    assert counts.min() >= 0 and counts.max() <= k
    # and the whole distribution: each count's frequency against the binomial's probability
    from math import comb

    freq = np.bincount(counts.astype(int), minlength=k + 1) / n
    pmf = np.array([comb(k, j) * p**j * (1 - p) ** (k - j) for j in range(k + 1)])
    assert np.all(np.abs(freq - pmf) < 6 * np.sqrt(pmf * (1 - pmf) / n) + 1e-12), (freq, pmf)


def test_poisson_counts_have_equal_mean_and_variance_per_neuron_rate():
    net, inp = _one(size=2, rate_hz=np.array([3000.0, 500.0]), counts="poisson")
    counts = poisson_input_counts(inp, 2, 3, net.dt_ms, 0, 40_000).astype(float)
    for col, lam in ((0, 3.0), (1, 0.5)):
        c = counts[:, col]
        se = np.sqrt(lam / c.size)
        assert abs(c.mean() - lam) < 6 * se
        # the variance of a Poisson sample variance: (mu4 - lam^2) / n, mu4 = lam + 3 lam^2
        assert abs(c.var() - lam) < 6 * np.sqrt((lam + 2 * lam**2) / c.size)
    assert counts[:, 0].max() > 10  # unbounded by K, unlike the binomial


def test_counts_respect_start_and_stop_and_do_not_depend_on_segments_or_trials():
    net, inp = _one(start_ms=12.0, stop_ms=230.0)
    total = 2 * POISSON_CHUNK_STEPS + 500
    whole = poisson_input_counts(inp, 5, 11, net.dt_ms, 0, total)
    assert not whole[:120].any() and not whole[2300:].any() and whole[120:2300].all(axis=1).any()
    cuts = [0, 1, 700, 999, 1000, 1999, 2301, total]
    pieces = [poisson_input_counts(inp, 5, 11, net.dt_ms, a, b - a)
              for a, b in zip(cuts, cuts[1:], strict=False)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    other = poisson_input_counts(inp, 5, 12, net.dt_ms, 0, total)
    assert not np.array_equal(other, whole)  # each trial seed has its own stream


# --------------------------------------------------------------------------- in a simulation
def _v_trace(net: Network, seeds: tuple[int, ...], pieces: list[float]) -> np.ndarray:
    runner = get_backend("torch").compile(net, engine="eager", precision="float64",
                                          seeds=seeds, progress=False)
    for ms in pieces:
        res = runner.run(ms)
    return np.asarray(res.traces["p.v"].values)


def test_a_run_sees_the_same_counts_split_into_segments_or_trials():
    """A membrane fed only by the input (channel v) gives the same trace run whole or in
    segments crossing a chunk boundary, and a trial's trace does not depend on its batch."""
    net, _ = _one(rate_hz=400.0, weight=0.25, channel="v")
    net.record_state("p", "v")
    whole = _v_trace(net, (4, 9), [105.0])
    split = _v_trace(net, (4, 9), [33.3, 66.7, 5.0])
    np.testing.assert_array_equal(split, whole)
    alone = _v_trace(net, (9,), [105.0])
    np.testing.assert_array_equal(alone[0], whole[1])
    assert not np.array_equal(whole[0], whole[1])


def test_events_land_in_the_step_they_are_drawn_for():
    """v (tau_m 10 ms, no threshold in reach) against the exact LIF update with count x weight
    added in step n, as a spike arriving in step n."""
    net, inp = _one(size=3, rate_hz=200.0, weight=0.25, channel="v")
    net.record_state("p", "v")
    v = _v_trace(net, (5,), [20.0])[0]
    counts = poisson_input_counts(inp, 3, 5, net.dt_ms, 0, 200)
    assert counts.sum() > 50
    a = np.exp(-net.dt_ms / 10.0)
    ref = np.zeros((200, 3))
    x = np.full(3, QUIET.v_rest_mV)
    for n in range(200):
        x = QUIET.v_rest_mV + (x - QUIET.v_rest_mV) * a + counts[n] * 0.25
        ref[n] = x
    np.testing.assert_allclose(v, ref, rtol=0, atol=1e-9)


@pytest.mark.slow  # Brian2's code generation (the conformance cell checks it against its reference)
def test_torch_eager_and_brian2_fire_the_same_spikes():
    """Brian2 adds the same keyed counts in its synapses' slot (a NetworkOperation): the spikes
    of a feed-forward network agree one for one (Brian2 runs trial seed 2 alone; torch runs it
    as the second trial of a batch)."""
    net = _feed_forward()
    ours = get_backend("torch").compile(net, engine="eager", seeds=(1, 2),
                                        progress=False).run(30.0)
    theirs = get_backend("brian2").compile(_feed_forward(), target="numpy", seeds=(2,),
                                           progress=False).run(30.0)
    for node in ("a", "b"):
        s1, n1 = ours.spike_steps(node, 1)
        s2, n2 = theirs.spike_steps(node, 0)
        assert s1.size > 20, (node, s1.size)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(n1, n2)


# --------------------------------------------------------------------------- refusals
def test_fixed_point_and_lava_refuse_it_by_name():
    net = _feed_forward()
    # the native kernel carries it (tests/test_native_threads.py: bit for bit with eager)
    assert get_backend("torch").compile(net, progress=False).engine == "native"
    assert any(r.startswith("PoissonInput 'to_b'") for r in fixed_refusals(net))
    with pytest.raises(EvoSpikeError, match="PoissonInput 'to_a'"):
        get_backend("torch").compile(net, precision="fixed", progress=False)
    from evospike.backends.lava import LavaConfig, prepare

    for tag in ("fixed_pt", "floating_pt"):
        with pytest.raises(EvoSpikeError, match=r"PoissonInput 'to_b': Lava has no process"):
            prepare(net, LavaConfig(select_tag=tag))


# --------------------------------------------------------------------------- IR
def test_save_and_load_round_trip(tmp_path):
    net = _feed_forward()
    net.poisson_input("a", 3, 20.0, -0.5, channel="inh", start_ms=1.0, stop_ms=9.5,
                      counts="poisson", name="inh_a")
    save_network(net, tmp_path / "n.h5")
    back = load_network(tmp_path / "n.h5")
    assert list(back.inputs) == ["to_a", "to_b", "inh_a"]
    _assert_same(net, back)


@pytest.mark.parametrize("kwargs, field, fragment", [
    (dict(rate_hz=10_001.0), "rate_hz", "above 1/dt = 10000 Hz"),
    (dict(n_afferents=0), "n_afferents", "(got 0)"),
    (dict(n_afferents=2.5), "n_afferents", "(got 2.5)"),
    (dict(rate_hz=-1.0), "rate_hz", "(got -1.0)"),
    (dict(rate_hz=[1.0, 2.0]), "rate_hz", "(got (2,))"),
    (dict(weight=float("nan")), "weight", "(got nan)"),
    (dict(channel="u"), "channel", "(got 'u')"),
    (dict(counts="gauss"), "counts", "(got 'gauss')"),
    (dict(start_ms=5.0, stop_ms=5.0), "stop_ms", "(got 5.0)"),
])
def test_bad_input_is_refused_in_one_line(kwargs, field, fragment):
    with pytest.raises(ValidationError) as info:
        _one(**kwargs)
    text = str(info.value)
    assert "\n" not in text and text.startswith("PoissonInput 'drive'")
    assert field in text and fragment in text, text


def test_a_rate_above_one_per_step_is_fine_for_poisson_counts_and_a_target_is_checked():
    _, inp = _one(rate_hz=20_000.0, counts="poisson")
    assert inp.probability(0.1) == pytest.approx(2.0)
    net = Network("pi", dt_ms=0.1)
    net.population("p", 2, QUIET)
    with pytest.raises(ValidationError, match="PoissonInput 'x'.*target.*'q'"):
        net.add(PoissonInput("x", "q", 3, 10.0, 1.0))


def test_poisson_source_spikes_do_not_depend_on_the_draw_block(monkeypatch):
    """`poisson_events` draws a chunk's uniforms a block of rows at a time to bound memory;
    the spikes equal those of one whole-chunk draw, for any block size and segment."""
    import numpy as np

    from evospike import realize
    from evospike.ir.nodes import PoissonSource

    src = PoissonSource("p", 37, rate_hz=900.0)
    whole = realize.poisson_events(src, 5, 0.1, 0, 2300)
    rng = np.random.default_rng([5, realize._key("p"), 2, 1])
    direct = np.nonzero(rng.random((realize.POISSON_CHUNK_STEPS, 37)) < 0.09)
    first = np.flatnonzero(whole[0] >= realize.POISSON_CHUNK_STEPS)
    second = first[whole[0][first] < 2 * realize.POISSON_CHUNK_STEPS]
    assert np.array_equal(whole[0][second] - realize.POISSON_CHUNK_STEPS, direct[0])
    assert np.array_equal(whole[1][second], direct[1])
    for block in (1, 37 * 3, 37 * 7 + 5):
        monkeypatch.setattr(realize, "DRAW_BLOCK_VALUES", block)
        got = realize.poisson_events(src, 5, 0.1, 0, 2300)
        assert all(np.array_equal(a, b) for a, b in zip(got, whole, strict=True))
        part = realize.poisson_events(src, 5, 0.1, 1234, 555)
        inside = (whole[0] >= 1234) & (whole[0] < 1789)
        assert np.array_equal(part[0], whole[0][inside]) and np.array_equal(part[1],
                                                                            whole[1][inside])
