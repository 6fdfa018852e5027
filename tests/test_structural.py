"""Structural plasticity: the torch CSR rebuild (backends/torch/structure.py) against freshly
compiled networks, STDP state across a rebuild, the IR node and its serialization, the torch
process (synapse count over time), and torch against Brian2 on a structural run."""

import numpy as np
import pytest
import torch

from evospike import LIF, FixedProbability, Network, OneToOne
from evospike.backends import get_backend
from evospike.backends.torch import structure
from evospike.errors import EvoSpikeError, ValidationError
from evospike.ir.structural import StructuralPlasticity, plan_update

DT = 0.1
MODEL = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_thresh_mV=-50.0, v_reset_mV=-65.0,
            v_rest_mV=-65.0, tau_refrac_ms=0.5)


def base_net(plastic: str | None = None, delay_ms: float = 0.1, seed: int = 1,
             n_in: int = 20, n: int = 15, t_max_ms: float = 200.0) -> Network:
    rng = np.random.default_rng(seed)
    net = Network("structural", DT)
    k = 900
    steps = rng.choice(int(t_max_ms / DT), k, replace=False)
    net.spike_source("in", n_in, rng.integers(0, n_in, k), steps * DT)
    net.population("pop", n, MODEL, initial={"v": -65.0})
    net.connect("in", "pop", FixedProbability(0.4, seed=seed + 1),
                weight=rng.uniform(2.0, 9.0, 10_000)[:_nnz(n_in, n, 0.4, seed + 1)],
                delay_ms=delay_ms, name="in->pop")
    net.connect("pop", "pop", FixedProbability(0.2, seed=seed + 2), weight=3.0,
                delay_ms=delay_ms, name="rec")
    if plastic == "stdp":
        net.stdp("in->pop", a_plus=0.4, a_minus=0.45, w_min=0.0, w_max=10.0)
    elif plastic == "rstdp":
        net.modulator("reward", 30.0, [], initial=1.0)
        net.reward_stdp("in->pop", "reward", a_plus=0.4, a_minus=0.45, w_min=0.0, w_max=10.0,
                        tau_eligibility_ms=30.0, learning_rate_per_ms=0.2)
    net.record_spikes("pop")
    return net


def _nnz(n_pre, n_post, p, seed) -> int:
    scratch = Network("scratch", DT)
    scratch.population("a", n_pre, MODEL)
    scratch.population("b", n_post, MODEL)
    return scratch.connect("a", "b", FixedProbability(p, seed=seed)).n_synapses


def _compile(net, seeds=(0,)):
    return get_backend("torch").compile(net, engine="eager", precision="float64", seeds=seeds,
                                        progress=False)


def _copy_state(a, b) -> None:
    """Neuron state, delay buffers and plasticity traces of runner ``a`` into runner ``b``."""
    for name, p in a.cn.populations.items():
        q = b.cn.populations[name]
        q.x.copy_(p.x)
        q.refrac.copy_(p.refrac)
        if p.buf is not None:
            q.buf.copy_(p.buf)
    for name, p in a.cn.projections.items():
        q = b.cn.projections[name]
        if p.plastic is not None:
            q.plastic.x.copy_(p.plastic.x)
            q.plastic.y.copy_(p.plastic.y)
            q.plastic.pending = [t.clone() for t in p.plastic.pending]
            q.weights.copy_(p.weights)
            if p.plastic.eligibility is not None:
                q.plastic.eligibility.copy_(p.plastic.eligibility)
    for name, proc in a.cn.processes.items():
        if hasattr(proc, "level"):
            b.cn.processes[name].level.copy_(proc.level)
    b.step = a.step


def _rebuilt_twin(a, net_builder):
    """A network compiled fresh with ``a``'s current connectivity, in ``a``'s state."""
    net = net_builder()
    for name in net.projections:
        net.projections[name] = structure.projection_from_connectivity(a.cn, name)
    b = _compile(net)
    _copy_state(a, b)
    return b


def _after(res, step):
    s, n = res.spike_steps("pop")
    return s[s >= step], n[s >= step]


@pytest.mark.parametrize("plastic", [None, "stdp", "rstdp"])
@pytest.mark.parametrize("delay_ms", [0.1, 0.3])
def test_rebuild_equals_fresh_compile(plastic, delay_ms):
    """Remove and add synapses mid-run; the rest of the run spikes exactly as a network compiled
    fresh with the new connectivity, started from the same state."""
    def builder():
        return base_net(plastic, delay_ms)

    a = _compile(builder())
    a.run(60.0)
    rng = np.random.default_rng(5)
    for name in ("in->pop", "rec"):
        proj = a.cn.projections[name]
        nnz = proj.indices.numel()
        elig_before = None
        if proj.plastic is not None and proj.plastic.eligibility is not None:
            elig_before = proj.plastic.eligibility.clone()
        w_before = proj.weights.clone()
        change = structure.remove_synapses(a.cn, name, torch.as_tensor(rng.random(nnz) < 0.3))
        assert change.n_removed > 0 and proj.indices.numel() == nnz - change.n_removed
        np.testing.assert_array_equal(proj.weights.numpy(), w_before[..., change.kept].numpy())
        if elig_before is not None:
            np.testing.assert_array_equal(proj.plastic.eligibility.numpy(),
                                          elig_before[:, change.kept].numpy())
        k = 12
        added = structure.add_synapses(a.cn, name, rng.integers(0, proj.n_pre, k),
                                       rng.integers(0, proj.n_post, k), 6.0)
        assert added.n_added == k and proj.indices.numel() == nnz - change.n_removed + k
        assert torch.all(proj.weights[..., added.new_ids] == 6.0)
    b = _rebuilt_twin(a, builder)
    # the rebuilt arrays are the ones a fresh compile produces
    for name in ("in->pop", "rec"):
        pa, pb = a.cn.projections[name], b.cn.projections[name]
        assert torch.equal(pa.indptr, pb.indptr) and torch.equal(pa.indices, pb.indices)
        if pa.plastic is not None:
            for f in ("col_ptr", "col_syn", "col_pre"):
                assert torch.equal(getattr(pa.plastic, f), getattr(pb.plastic, f)), f
    ra, rb = a.run(100.0), b.run(100.0)
    sa, na = _after(ra, 600)
    sb, nb = _after(rb, 600)
    assert sa.size > 20
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(na, nb)
    if plastic:
        np.testing.assert_allclose(a.cn.projections["in->pop"].weights.numpy(),
                                   b.cn.projections["in->pop"].weights.numpy(), atol=1e-12)


def test_batch_shares_structure():
    """A synapse removed in one trial only stays in the CSR, absent (weight 0, held there
    against STDP) in that trial; removed in every trial it leaves the CSR."""
    a = _compile(base_net("stdp"), seeds=(0, 1))
    name = "in->pop"
    proj = a.cn.projections[name]
    nnz = proj.indices.numel()
    mask = torch.zeros((2, nnz), dtype=torch.bool)
    mask[0, :10] = True
    mask[1, 5:15] = True
    change = structure.remove_synapses(a.cn, name, mask)
    assert change.n_removed == 5 and proj.indices.numel() == nnz - 5
    count = structure.synapse_count(a.cn, name)
    assert count.tolist() == [nnz - 10, nnz - 10]
    absent = ~structure.present_mask(a.cn, name)
    # trial 0 of the batch equals a single-trial network with trial 0's synapses
    net0 = base_net("stdp")
    net0.projections[name] = structure.projection_from_connectivity(a.cn, name, trial=0)
    assert net0.projections[name].n_synapses == nnz - 10
    ra = a.run(100.0)
    assert torch.all(proj.weights[absent] == 0.0)
    assert torch.any(proj.weights[~absent] != 0.0)
    r0 = _compile(net0).run(100.0)
    np.testing.assert_array_equal(ra.spike_steps("pop", 0)[0], r0.spike_steps("pop", 0)[0])
    # growing a pair again in one trial revives it there only
    revived = structure.revive_synapses(a.cn, name, absent & torch.tensor([[True], [False]]),
                                        1.5)
    assert revived == int(absent[0].sum())
    assert structure.synapse_count(a.cn, name).tolist() == [nnz - 5, nnz - 10]


def test_add_and_remove_validation():
    a = _compile(base_net("stdp", delay_ms=0.3))
    with pytest.raises(ValidationError, match="delay_steps"):
        structure.add_synapses(a.cn, "in->pop", [0], [1], 1.0, delay_steps=1)
    with pytest.raises(ValidationError, match="post"):
        structure.add_synapses(a.cn, "in->pop", [0], [99], 1.0)
    with pytest.raises(ValidationError, match="mask"):
        structure.remove_synapses(a.cn, "in->pop", torch.ones(3, dtype=torch.bool))
    with pytest.raises(EvoSpikeError, match="no projection"):
        structure.remove_synapses(a.cn, "nope", torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValidationError, match="ring buffer"):
        structure.add_synapses(a.cn, "rec", [0], [1], 1.0, delay_steps=40)
    # a dead neuron's synapses, found on both sides
    m = structure.synapse_mask_of_neurons(a.cn, "rec", pre=[3], post=[3])
    pre = np.repeat(np.arange(15), np.diff(a.cn.projections["rec"].indptr.numpy()))
    post = a.cn.projections["rec"].indices.numpy()
    np.testing.assert_array_equal(m.numpy(), (pre == 3) | (post == 3))


def test_weight_monitor_keeps_layout():
    """remove_synapses on a monitored projection keeps the layout: removed synapses read 0."""
    net = base_net()
    net.record_weights("rec", every_steps=100)
    a = _compile(net)
    nnz = a.cn.projections["rec"].indices.numel()
    a.run(20.0)
    mask = torch.zeros(nnz, dtype=torch.bool)
    mask[:4] = True
    structure.remove_synapses(a.cn, "rec", mask)
    res = a.run(20.0)
    w = res.weights["rec.weights"].values
    assert w.shape == (1, 4, nnz)
    assert np.all(w[0, -1, :4] == 0.0) and np.all(w[0, 0, :4] == 3.0)
    with pytest.raises(EvoSpikeError, match="WeightMonitor"):
        structure.add_synapses(a.cn, "rec", [0], [1], 1.0)


# ------------------------------------------------------------------------ the IR node

def test_node_validation_and_serialization(tmp_path):
    net = base_net("stdp")
    with pytest.raises(ValidationError, match="prune_below"):
        StructuralPlasticity("s", "rec", prune="weight", prune_below=0.0)
    with pytest.raises(ValidationError, match="grow_per_update"):
        StructuralPlasticity("s", "rec", prune=None, grow="coactive")
    with pytest.raises(ValidationError, match="projection"):
        net.structural_plasticity("nope", prune_below=1.0)
    with pytest.raises(ValidationError, match="grow_weight"):
        net.structural_plasticity("in->pop", prune_below=1.0, grow="coactive",
                                  grow_per_update=2, grow_weight=50.0)
    net.record_weights("rec", every_steps=10)
    with pytest.raises(ValidationError, match="WeightMonitor"):
        net.structural_plasticity("rec", prune_below=1.0)
    node = net.structural_plasticity("in->pop", every_steps=50, prune_below=1.0,
                                     grow="random", grow_per_update=3, grow_weight=1.0,
                                     grow_probability=0.01, max_distance=0.3, max_per_neuron=9,
                                     seed=4)
    net.record_state(node, "n_synapses")
    net.save(tmp_path / "n.h5")
    back = Network.load(tmp_path / "n.h5").processes[node.name]
    assert back == node


def test_plan_update_rules():
    node = StructuralPlasticity("s", "p", prune="saliency", prune_fraction=0.5,
                                grow="coactive", grow_per_update=2, grow_weight=1.0,
                                max_per_neuron=2)
    pre = np.array([0, 0, 1, 2])
    post = np.array([0, 1, 1, 2])
    w = np.array([1.0, 5.0, 1.0, 0.1])
    plan = plan_update(node, 3, 3, True, pre, post, w, np.array([3, 0, 2]), np.array([1, 4, 0]),
                       0, 0)
    # saliency |w| c_pre: 3, 15, 0, 0.2 -> the lowest half goes (pairs (1,1) and (2,2))
    np.testing.assert_array_equal(plan.remove, [False, False, True, True])
    # co-active: c_pre >= 1: {0, 2}; c_post >= 1: {0, 1}; pairs by score c_pre c_post:
    # (0,1) 12 (connected), (2,1) 8, (0,0) 3 (connected), (2,0) 2
    np.testing.assert_array_equal(plan.grow_pre, [2, 2])
    np.testing.assert_array_equal(plan.grow_post, [1, 0])
    # random growth is a keyed stream: same key, same pairs; order of synapses irrelevant
    rnd = StructuralPlasticity("r", "p", prune=None, grow="random", grow_per_update=50,
                               grow_probability=0.2, max_distance=0.25, seed=3)
    p1 = plan_update(rnd, 20, 20, False, pre, post, w, np.zeros(20), np.zeros(20), 4, 7)
    p2 = plan_update(rnd, 20, 20, False, pre[::-1], post[::-1], w[::-1], np.zeros(20),
                     np.zeros(20), 4, 7)
    p3 = plan_update(rnd, 20, 20, False, pre, post, w, np.zeros(20), np.zeros(20), 5, 7)
    np.testing.assert_array_equal(p1.grow_pre, p2.grow_pre)
    assert p1.grow_pre.size > 3 and not np.array_equal(p1.grow_pre, p3.grow_pre)
    assert np.all(np.abs(p1.grow_pre / 20 - p1.grow_post / 20) <= 0.25)


# ------------------------------------------------------------------------ in a simulation

def structural_net(plastic: str | None = None, grow: str = "coactive") -> Network:
    """Inputs onto LIF neurons; weak synapses are pruned, co-active pairs grow new ones."""
    net = base_net(plastic)
    kw = dict(grow_per_update=4, grow_weight=5.0, min_spikes=2) if grow == "coactive" else \
        dict(grow_per_update=4, grow_weight=5.0, grow_probability=0.05, max_distance=0.5)
    net.structural_plasticity("in->pop", every_steps=250, prune="weight", prune_below=4.0,
                              grow=grow, max_per_neuron=12, **kw)
    net.record_state("in->pop.structural", "n_synapses", every_steps=50)
    return net


def test_synapse_count_over_time():
    net = structural_net()
    runner = _compile(net, seeds=(0, 1))
    res = runner.run(200.0)
    trace = res.traces["in->pop.structural.n_synapses"]
    n0 = net.projections["in->pop"].n_synapses
    proc = runner.cn.processes["in->pop.structural"]
    assert [h[0] for h in proc.history] == [249, 499, 749, 999, 1249, 1499, 1749, 1999]
    assert proc.history[0][1] > 0 and proc.history[0][2] > 0  # pruned and grew
    # the recorded count is the count present during the step: an update at the end of step n
    # shows from step n + 1 on (both trials see the same inputs and take the same decisions)
    for k, step in enumerate(trace.steps):
        done = [h for h in proc.history if h[0] < step]
        expected = n0 + sum(grown - removed for _, removed, grown in done) / 2
        assert trace.values[0, k, 0] == trace.values[1, k, 0] == expected, step
    final = structure.synapse_count(runner.cn, "in->pop").tolist()
    assert final == [n0 + sum(g - r for _, r, g in proc.history) / 2] * 2
    in_degree = np.bincount(runner.cn.projections["in->pop"].indices.numpy(), minlength=15)
    grown_into = in_degree > np.bincount(net.projections["in->pop"].indices, minlength=15)
    assert np.all(in_degree[grown_into] <= 12)  # max_per_neuron holds wherever growth happened


@pytest.mark.parametrize("grow,split", [("coactive", False), ("random", False),
                                        ("coactive", True)])
def test_torch_and_brian2_agree_on_structural_run(grow, split):
    """Pruning by weight bound with co-active (deterministic) or random (keyed stream) growth:
    Brian2 edits its Synapses between run segments, torch rebuilds its CSR; spikes and synapse
    counts agree (also when the run is continued in two calls that split an interval)."""
    pytest.importorskip("brian2")
    net = structural_net(None, grow)
    rt = _compile(net).run(150.0)
    b2_runner = get_backend("brian2").compile(net, target="numpy", progress=False)
    if split:
        b2_runner.run(62.3)
    rb = b2_runner.run(150.0 - (62.3 if split else 0.0))
    st, nt = rt.spike_steps("pop")
    sb, nb = rb.spike_steps("pop")
    assert st.size > 30
    np.testing.assert_array_equal(st, sb)
    np.testing.assert_array_equal(nt, nb)
    key = "in->pop.structural.n_synapses"
    np.testing.assert_array_equal(rt.traces[key].values, rb.traces[key].values)
    assert len(set(rt.traces[key].values[0, :, 0].tolist())) > 1


def test_brian2_refuses_what_it_cannot_carry():
    pytest.importorskip("brian2")
    net = structural_net("stdp")
    with pytest.raises(EvoSpikeError, match="StructuralPlasticity 'in->pop.structural'"):
        get_backend("brian2").compile(net, target="numpy", progress=False)


def test_onetoone_growth_stays_within_limits():
    net = Network("limits", DT)
    net.spike_source("in", 4, np.arange(40) % 4, np.arange(40) * 2.0)
    net.population("pop", 4, MODEL)
    net.connect("in", "pop", OneToOne(), weight=300.0, name="drive")
    net.connect("in", "pop", OneToOne(), weight=0.5, name="weak")
    net.structural_plasticity("weak", every_steps=100, prune="weight", prune_below=1.0,
                              grow="coactive", grow_per_update=16, grow_weight=2.0,
                              max_total=6)
    runner = _compile(net)
    runner.run(30.0)
    assert int(structure.synapse_count(runner.cn, "weak")[0]) == 6


def test_count_follows_changes_made_elsewhere():
    """A removal made outside the node (e.g. apoptosis) shows in ``n_synapses`` at once."""
    net = structural_net()
    net.record_state("in->pop.structural", "n_synapses", every_steps=1, name="count")
    runner = _compile(net)
    runner.run(10.0)
    before = int(structure.synapse_count(runner.cn, "in->pop")[0])
    mask = structure.synapse_mask_of_neurons(runner.cn, "in->pop", post=[0, 1])
    structure.remove_synapses(runner.cn, "in->pop", mask)
    res = runner.run(1.0)
    assert res.traces["count"].values[0, -1, 0] == before - int(mask.sum())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_structural_run_on_cuda_matches_cpu():
    net = structural_net("stdp", "random")
    runs = [get_backend("torch").compile(net, engine="eager", precision="float64", device=d,
                                         seeds=(0, 1), progress=False).run(100.0)
            for d in ("cpu", "cuda")]
    for trial in (0, 1):
        np.testing.assert_array_equal(runs[0].spike_steps("pop", trial)[0],
                                      runs[1].spike_steps("pop", trial)[0])
    key = "in->pop.structural.n_synapses"
    np.testing.assert_array_equal(runs[0].traces[key].values, runs[1].traces[key].values)


@pytest.mark.slow
def test_structural_example():
    """examples/structural_plasticity.py: synapses grow, mostly from the more active group."""
    from tests.conftest import load_example

    out = load_example("structural_plasticity").run(2.0, progress=False)
    assert out["n_synapses"][-1] > out["n_synapses"][0] + 50
    assert out["share_a"][-1] > out["share_a"][0] + 0.15
