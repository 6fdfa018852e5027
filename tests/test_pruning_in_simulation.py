"""Terminal-attractor pruning inside a simulation (evospike.pruning's IR node on the torch
backend): E from a modulator, the gradient from the plasticity rule's updates, one pruner per
trial; the pruned fraction follows R(t), pruned synapses stay at 0, the network keeps firing."""

import math

import numpy as np
import pytest

from evospike import LIF, AllToAll, Network, OneToOne
from evospike.backends import get_backend
from evospike.errors import EvoSpikeError, ValidationError
from evospike.ir.modulators import SpikeCountDrive
from evospike.pruning import TerminalAttractorPruning, pruning_rate

DT = 0.1
MODEL = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_thresh_mV=-50.0, v_reset_mV=-65.0,
            v_rest_mV=-65.0, tau_refrac_ms=2.0)
INTERVAL_MS = 5.0


def pruning_net(r_target: float = 0.4, lambda_stability: float = 0.0, **params) -> Network:
    """Poisson inputs onto LIF neurons through an STDP projection; E is a modulator driven by
    the output's spike count (>= 0)."""
    rng = np.random.default_rng(2)
    net = Network("ta", DT)
    net.poisson_source("in", 30, 80.0)
    net.population("out", 8, MODEL, initial={"v": -65.0})
    net.connect("in", "out", AllToAll(), weight=rng.uniform(2.0, 6.0, 240), name="in->out")
    net.stdp("in->out", a_plus=0.05, a_minus=0.055, w_min=0.0, w_max=6.0)
    net.modulator("error", 20.0, [SpikeCountDrive("out", 0.05)])
    net.terminal_attractor_pruning(("in->out",), "error", r_target=r_target,
                                   t_warmup_ms=30.0, tau_ms=60.0, update_interval_ms=INTERVAL_MS,
                                   lambda_stability=lambda_stability, **params)
    for state in ("pruned_fraction", "rate", "threshold", "alpha"):
        net.record_state("pruning", state)
    net.record_weights("in->out", every_steps=1)
    net.record_spikes("out")
    return net


def _run(net, ms=300.0, seeds=(0, 1)):
    runner = get_backend("torch").compile(net, engine="eager", precision="float64",
                                          seeds=seeds, progress=False)
    return runner, runner.run(ms)


def test_pruned_fraction_follows_schedule():
    net = pruning_net()
    runner, res = _run(net)
    steps = res.traces["pruning.rate"].steps
    interval = int(round(INTERVAL_MS / DT))
    updates = np.flatnonzero((steps + 1) % interval == 0)
    n = net.projections["in->out"].n_synapses
    for trial in range(2):
        rate = res.traces["pruning.rate"].values[trial, updates, 0]
        frac = res.traces["pruning.pruned_fraction"].values[trial, updates, 0]
        # lambda = 0: alpha = 1 and R(t) is the closed form, t counted in update intervals
        t = np.arange(updates.size)
        expected = [pruning_rate(k, 0.4, 30.0 / INTERVAL_MS, 60.0 / INTERVAL_MS) for k in t]
        np.testing.assert_allclose(rate, expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(frac, np.floor(rate * n + 1e-9) / n)
        assert frac[-1] > 0.35
        # pruned synapses hold weight 0 at every step after they were cut
        pruned = ~runner.cn.processes["pruning"].pruners[trial].masks["in->out"]
        w = res.weights["in->out.weights"].values[trial]
        assert pruned.sum() == round(frac[-1] * n)
        assert np.all(w[-1, pruned] == 0.0)
    # one pruner per trial: the trials' inputs differ, so do their masks
    p0, p1 = runner.cn.processes["pruning"].pruners
    assert not np.array_equal(p0.masks["in->out"], p1.masks["in->out"])


def test_network_keeps_functioning():
    """With 40 % of its input synapses pruned the output still fires, at a rate within a factor
    of the unpruned network's (the kept synapses are the salient ones)."""
    _, pruned = _run(pruning_net(0.4), 300.0, seeds=(0,))
    _, dense = _run(pruning_net(0.0), 300.0, seeds=(0,))
    late = 2000  # after the schedule has mostly risen
    sp = pruned.spike_steps("out")[0]
    sd = dense.spike_steps("out")[0]
    n_pruned, n_dense = (sp >= late).sum(), (sd >= late).sum()
    assert n_dense > 20
    assert n_pruned > 0.3 * n_dense
    assert pruned.traces["pruning.pruned_fraction"].values[0, -1, 0] > 0.35


def test_stability_damps_the_rate():
    """With lambda > 0 the recorded alpha is 1 / (1 + lambda sigma_E / E_avg) over the loss
    window and R(t) is damped by it."""
    runner, res = _run(pruning_net(0.4, lambda_stability=2.0), 200.0, seeds=(0,))
    pruner = runner.cn.processes["pruning"].pruners[0]
    losses = pruner.history_array("loss")
    alpha = pruner.history_array("alpha")
    k = len(losses) - 1
    window = losses[max(0, k - 19):k + 1]
    assert alpha[-1] == pytest.approx(1.0 / (1.0 + 2.0 * window.std() / window.mean()))
    rate = pruner.history_array("rate")
    assert rate[-1] == pytest.approx(pruning_rate(k, 0.4, 6.0, 12.0, alpha[-1]))
    assert alpha[-1] < 1.0


def test_validation_serialization_and_refusals(tmp_path):
    net = pruning_net()
    node = net.processes["pruning"]
    net.save(tmp_path / "ta.h5")
    back = Network.load(tmp_path / "ta.h5").processes["pruning"]
    assert back == node and isinstance(back.projections, tuple)
    bad = pruning_net()
    with pytest.raises(ValidationError, match="modulator"):
        bad.add(TerminalAttractorPruning("p2", ("in->out",), "nope"))
    with pytest.raises(ValidationError, match="already prunes"):
        bad.add(TerminalAttractorPruning("p2", ("in->out",), "error"))
    static = Network("s", DT)
    static.spike_source("in", 2, [0], [1.0])
    static.population("out", 2, MODEL)
    static.connect("in", "out", OneToOne(), name="p")
    static.modulator("error", 10.0)
    with pytest.raises(ValidationError, match="without a plasticity rule"):
        static.terminal_attractor_pruning("p", "error")
    with pytest.raises(ValidationError, match="StructuralPlasticity"):
        net.structural_plasticity("in->out", prune_below=0.1)
    pytest.importorskip("brian2")
    with pytest.raises(EvoSpikeError, match="TerminalAttractorPruning 'pruning'"):
        get_backend("brian2").compile(net, target="numpy", progress=False)


def test_negative_error_is_refused():
    net = pruning_net()
    net.processes["error"].initial = -1.0
    runner = get_backend("torch").compile(net, engine="eager", progress=False)
    with pytest.raises(ValidationError, match="loss"):
        runner.run(10.0)
    assert math.isfinite(INTERVAL_MS)
