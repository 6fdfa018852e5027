"""Apoptosis and regeneration (`evospike.ir.apoptosis`) on the torch backend: health and
survival follow the IR's equations, pathological neurons die and stop integrating, their
synapses leave the CSR, neurogenesis refills the slots; validation and round trip."""

import numpy as np
import pytest
import torch

from evospike import LIF, FixedProbability, Network, OneToOne
from evospike.errors import ValidationError
from evospike.ir.apoptosis import Apoptosis
from tests.conftest import run_torch

DT = 0.5
EVERY = 200  # 100 ms periods


def sick_net(neurogenesis: bool = False, trials_differ: bool = False) -> Network:
    """10 neurons driven one to one by a steady input: neurons 0-1 get no input (silent),
    neurons 2-3 a huge one (runaway), the rest a moderate one. A recurrent projection gives
    every neuron synapses in and out."""
    net = Network("sick", DT)
    rates = np.full(10, 200.0)
    rates[:2] = 0.0
    src = net.poisson_source("in", 10, rates)
    cell = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, tau_refrac_ms=1.0)
    pop = net.population("pop", 10, cell, initial={"v": -65.0})
    w = np.full(10, 40.0)  # about 50 Hz
    w[2:4] = 150.0  # over 200 Hz
    net.connect(src, pop, OneToOne(), weight=w, delay_ms=DT, name="in->pop")
    net.connect(pop, pop, FixedProbability(0.4, seed=3), weight=0.2, delay_ms=DT,
                name="pop->pop")
    net.apoptosis(pop, every_steps=EVERY, window=4, silent_ms=150.0, ceiling_hz=150.0,
                  patience=2, neurogenesis=neurogenesis, rebirth_after=1, seed=7)
    for var in ("survival", "health", "alive", "deaths", "births"):
        net.record_state("pop.apoptosis", var, every_steps=EVERY)
    net.record_spikes(pop)
    return net


def _compile(net, **config):
    from evospike.backends import get_backend

    return get_backend("torch").compile(net, engine="eager", precision="float64",
                                        progress=False, **config)


def test_pathological_neurons_die_and_stop_integrating():
    runner = _compile(sick_net())
    res = runner.run(1000.0)
    alive = res.traces["pop.apoptosis.alive"].values[0]  # (samples, 10)
    deaths = res.traces["pop.apoptosis.deaths"].values[0]
    rates = np.bincount(res.spike_steps("pop")[1], minlength=10) / 1.0
    assert set(np.nonzero(alive[-1] == 0)[0]) == {0, 1, 2, 3}, (alive[-1], rates)
    np.testing.assert_array_equal(deaths[-1], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    survival = res.traces["pop.apoptosis.survival"].values[0]
    assert np.all(survival[-1, :4] == 0.0) and np.all(survival[-1, 4:] > 0.5)
    # a dead neuron neither fires nor integrates from the step after its death
    died_step = res.traces["pop.apoptosis.alive"].steps[np.argmax(alive[:, 2] == 0)]
    steps, neurons = res.spike_steps("pop")
    assert not np.any((neurons == 2) & (steps > died_step))
    v = runner.cn.populations["pop"].x[0, 0].clone()
    runner.run(50.0)
    assert torch.equal(runner.cn.populations["pop"].x[0, 0, :4], v[:4])
    # their synapses left the CSR: no synapse from or onto neurons 0-3 remains
    proj = runner.cn.projections["pop->pop"]
    pre = torch.repeat_interleave(torch.arange(10), proj.indptr[1:] - proj.indptr[:-1])
    assert not bool(((pre < 4) | (proj.indices.to(torch.int64) < 4)).any())
    ir = runner.cn.network.projections["pop->pop"]
    kept = ~(np.isin(ir.pre_indices(), range(4)) | np.isin(ir.indices, range(4)))
    assert proj.indices.numel() == kept.sum()
    assert runner.cn.projections["in->pop"].indices.numel() == 6


def test_health_and_survival_follow_the_equations():
    """The IR's formulas, in NumPy, from the recorded spikes: H = sigmoid(Var(rates) / scale -
    tau) or 1 for a pathology, A = 1 if H <= tau_a else exp(-lambda (H - tau_a))."""
    net = sick_net()
    res = run_torch(net, 1000.0, precision="float64", engine="eager")
    node: Apoptosis = net.processes["pop.apoptosis"]
    steps, neurons = res.spike_steps("pop")
    counts = np.zeros((10, 10))
    np.add.at(counts, (steps // EVERY, neurons), 1)
    rates = counts / (EVERY * DT * 1e-3)
    survival = res.traces["pop.apoptosis.survival"].values[0]
    health = res.traces["pop.apoptosis.health"].values[0]
    sample_steps = res.traces["pop.apoptosis.survival"].steps
    for k in range(10):  # evaluation k closes period k at step (k + 1) * EVERY - 1
        hist = rates[max(0, k + 1 - node.window):k + 1]
        var = hist.var(axis=0) if len(hist) >= 2 else np.zeros(10)
        h = 1.0 / (1.0 + np.exp(-(var / node.variance_scale_hz2 - node.tau)))
        last = np.array([steps[neurons == i].max() if np.any((neurons == i) &
                                                              (steps < (k + 1) * EVERY))
                         else -1 for i in range(10)])
        silent = ((k + 1) * EVERY - 1 - last) * DT > node.silent_ms
        h = np.where(silent | (rates[k] > node.ceiling_hz), 1.0, h)
        a = np.where(h <= node.tau_a, 1.0, np.exp(-node.lambda_a * (h - node.tau_a)))
        # the sample right after the evaluation (samples every EVERY steps from step 0)
        row = np.searchsorted(sample_steps, (k + 1) * EVERY)
        if row >= len(sample_steps):
            continue
        living = res.traces["pop.apoptosis.alive"].values[0, row] == 1
        np.testing.assert_allclose(health[row, living], h[living], rtol=1e-12)
        np.testing.assert_allclose(survival[row, living], a[living], rtol=1e-12)


def test_neurogenesis_refills_dead_slots_with_fresh_synapses():
    runner = _compile(sick_net(neurogenesis=True))
    res = runner.run(1000.0)
    births = res.traces["pop.apoptosis.births"].values[0]
    deaths = res.traces["pop.apoptosis.deaths"].values[0]
    assert births[-1, :4].min() >= 1 and births[-1, 4:].max() == 0
    assert np.all(births[-1] <= deaths[-1]) and np.all(deaths[-1] - births[-1] <= 1)
    proc = runner.cn.processes["pop.apoptosis"]
    assert sum(d for _, d, _ in proc.log) == int(deaths[-1].sum())
    assert sum(b for _, _, b in proc.log) == int(births[-1].sum())
    # the reborn silent neurons have new inputs from the recurrent projection
    proj = runner.cn.projections["pop->pop"]
    assert bool(torch.isin(proj.indices.to(torch.int64), torch.arange(4)).any())


def test_trials_die_independently():
    """Two trials in one batch, different Poisson inputs: the silent and runaway neurons die
    in each of them, each trial keeping its own health state."""
    runner = _compile(sick_net(), seeds=(0, 1))
    res = runner.run(1000.0)
    alive = res.traces["pop.apoptosis.alive"].values[:, -1]
    assert np.all(alive[:, :4] == 0)
    health = res.traces["pop.apoptosis.health"].values
    assert not np.array_equal(health[0, :, 4:], health[1, :, 4:])


def test_torch_and_brian2_apoptosis_agree():
    """Same Poisson inputs on both backends: the same spikes, the same deaths at the same
    evaluations, the same health and survival."""
    from tests.conftest import run_on

    a = run_on("torch-eager", sick_net(), 1000.0, precision="float64")
    b = run_on("brian2", sick_net(), 1000.0)
    ta, na = a.spike_steps("pop")
    tb, nb = b.spike_steps("pop")
    assert ta.size > 100
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(na, nb)
    for var in ("survival", "health", "alive", "deaths"):
        name = f"pop.apoptosis.{var}"
        np.testing.assert_array_equal(a.traces[name].steps, b.traces[name].steps)
        np.testing.assert_allclose(a.traces[name].values, b.traces[name].values, rtol=1e-9,
                                   atol=1e-12)
    assert a.traces["pop.apoptosis.deaths"].values[0, -1].sum() == 4


def test_brian2_refuses_what_it_cannot_carry():
    from evospike.backends import get_backend
    from evospike.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="neurogenesis adds synapses while the network"):
        get_backend("brian2").compile(sick_net(neurogenesis=True), target="numpy",
                                      progress=False)


def test_survival_is_readable_by_other_processes():
    runner = _compile(sick_net())
    runner.run(500.0)
    proc = runner.cn.processes["pop.apoptosis"]
    assert proc.survival.shape == (1, 10) and proc.state("survival") is proc.survival


def test_apoptosis_round_trip(tmp_path):
    net = sick_net(neurogenesis=True)
    net.save(tmp_path / "a.h5")
    back = Network.load(tmp_path / "a.h5")
    assert repr(back.processes["pop.apoptosis"]) == repr(net.processes["pop.apoptosis"])


@pytest.mark.parametrize("params, match", [
    (dict(window=1), "window must be an integer in"),
    (dict(floor=0.1), r"floor must exceed the lowest survival the curve reaches"),
    (dict(tau_a=1.5), "tau_a must be a number in"),
    (dict(ceiling_hz=-3.0), "ceiling_hz must be a number in"),
    (dict(neurogenesis="yes"), "neurogenesis must be True or False"),
    (dict(patience=0), "patience must be an integer"),
])
def test_bad_apoptosis_parameters_are_named(params, match):
    with pytest.raises(ValidationError, match="Apoptosis 'a': " + match):
        Apoptosis("a", "p", **params)


def test_bad_apoptosis_references_are_named():
    net = Network("n", DT)
    net.population("p", 3, LIF())
    with pytest.raises(ValidationError, match="population is not a population of the network"):
        net.add(Apoptosis("a", "q"))
    with pytest.raises(ValidationError, match="silent_ms must be at least one evaluation"):
        net.apoptosis("p", every_steps=1000, silent_ms=100.0)
    net.apoptosis("p")
    with pytest.raises(ValidationError, match="population already has an Apoptosis process"):
        net.apoptosis("p", name="again")


@pytest.mark.slow
def test_apoptosis_example_restores_the_rate_distribution():
    from tests.conftest import load_example

    out = load_example("apoptosis").run(progress=False)
    assert out["runaway_before"] >= 5 and out["runaway_after"] == 0
    assert out["silent_before"] >= 5 and out["silent_after"] == 0
    assert out["births"] >= 10 and out["deaths"] >= out["births"]
    assert out["max_after"] < 100.0 < out["max_before"]
    assert out["std_after"] < 0.75 * out["std_before"]


def test_dead_neurons_leave_the_memory_tiers_of_a_plastic_projection():
    """Per-synapse state of other processes follows the rebuilt CSR: after deaths on the
    postsynaptic side of a projection with memory tiers, the tiers hold one entry per
    remaining synapse and still sum to the weights."""
    from tests.test_modulation import plastic_net

    net = plastic_net("rstdp", t_max_ms=300.0)
    net.memory_tiers("pre->post", tau_short_ms=50.0, tau_mid_ms=500.0, every_steps=50,
                     threshold=0.05)
    net.apoptosis("post", every_steps=500, silent_ms=50.0, ceiling_hz=40.0, patience=1)
    net.weight_monitors.clear()  # a monitored projection keeps its layout (absent synapses)
    runner = _compile(net)
    runner.run(300.0)
    proc = runner.cn.processes["post.apoptosis"]
    assert proc.deaths.sum() >= 1
    proj = runner.cn.projections["pre->post"]
    tiers = runner.cn.processes["pre->post.tiers"]
    nnz = proj.indices.numel()
    assert nnz < net.projections["pre->post"].n_synapses
    assert tiers.short.shape == (1, nnz) and tiers.prev.shape == (1, nnz)
    torch.testing.assert_close(tiers.short + tiers.mid + tiers.long, proj.weights)
