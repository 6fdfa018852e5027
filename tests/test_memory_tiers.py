"""Memory tiers (`evospike.ir.memory`): the invariants of the dynamics on torch, torch and Brian2
step for step on deterministic spike inputs, validation, round trip, and the forgetting
example (slow)."""

import numpy as np
import pytest

from evospike import Network
from evospike.errors import ValidationError
from evospike.ir.memory import MemoryTiers
from tests.conftest import run_on, run_torch
from tests.test_modulation import _compare, plastic_net

STATES = ("short", "mid", "long", "importance", "access")


def tiered_net(importance: str = "dw", capacity: float = 0.5, initial_tier: str = "mid",
               threshold: float = 0.05, rule: str = "rstdp",
               capacity_long: float | None = None) -> Network:
    net = plastic_net(rule, modulation="gate")
    net.memory_tiers("pre->post", tau_short_ms=50.0, tau_mid_ms=500.0, tau_long_ms=5000.0,
                     every_steps=50, threshold=threshold, capacity_mid=capacity,
                     capacity_long=capacity / 2 if capacity_long is None else capacity_long,
                     reactivations_to_long=2, importance=importance,
                     initial_tier=initial_tier)
    for var in STATES:
        net.record_state("pre->post.tiers", var)
    return net


def _states(res) -> dict[str, np.ndarray]:
    return {v: res.traces[f"pre->post.tiers.{v}"].values[0] for v in STATES}


def test_weight_is_the_sum_of_the_tiers_and_capacity_holds():
    res = run_torch(tiered_net(), 300.0, precision="float64", engine="eager")
    s = _states(res)
    w = res.weights["pre->post.weights"].values[0]  # every 10 steps
    total = s["short"] + s["mid"] + s["long"]
    np.testing.assert_allclose(w, total[::10], atol=1e-12)
    n = w.shape[1]
    assert (s["mid"] != 0).sum(axis=1).max() <= n // 2
    assert (s["long"] != 0).sum(axis=1).max() <= n // 4
    assert (s["long"][-1] != 0).sum() == n // 4, "consolidation should fill the long tier"
    assert s["access"].max() == 1.0  # the second reactivation moves mid to long and resets it
    assert np.all(s["importance"] >= 0)


def test_without_consolidation_learning_fades_back_to_the_long_tier():
    """Nothing crosses the threshold: what the rule learns stays in ``short`` and decays with
    tau_short, so after the input stops the weights return to where they started."""
    net = tiered_net(threshold=1e9, capacity=1.0, capacity_long=1.0, initial_tier="long")
    res = run_torch(net, 800.0, precision="float64", engine="eager")  # inputs end at 300 ms
    s = _states(res)
    w = res.weights["pre->post.weights"].values[0]
    w0 = net.projections["pre->post"].weights
    peak = np.abs(w[:30] - w0).max()
    assert peak > 0.005, "the rule should have moved the weights"
    np.testing.assert_array_equal(s["mid"], 0.0)
    # long only decays (tau 5 s): 8000 steps of 0.1 ms by the last sample
    np.testing.assert_allclose(s["long"][-1], w0 * np.exp(-800.0 / 5000.0), rtol=1e-9)
    # 500 ms after the last input (10 short time constants) the change has faded
    assert np.abs(s["short"][-1]).max() < 0.01 * peak


CASES = {
    "dw-capacity": dict(importance="dw", capacity=0.5),
    "eligibility-unlimited": dict(importance="eligibility", capacity=1.0, capacity_long=1.0,
                                  initial_tier="long"),
    "gated-stdp": dict(rule="additive", capacity=0.5, initial_tier="short"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_torch_and_brian2_tiers_agree(case):
    net = tiered_net(**CASES[case])
    a = run_on("torch-eager", net, 300.0, precision="float64")
    b = run_on("brian2", tiered_net(**CASES[case]), 300.0)
    _compare(a, b, net)  # spikes, weights and every recorded tier state, to 1e-9
    assert np.abs(_states(a)["mid"]).max() > 0.1, "consolidation should have filled mid"


def test_tiers_round_trip(tmp_path):
    net = tiered_net()
    net.save(tmp_path / "t.h5")
    back = Network.load(tmp_path / "t.h5")
    assert repr(back.processes["pre->post.tiers"]) == repr(net.processes["pre->post.tiers"])
    a = run_torch(net, 60.0, precision="float64")
    b = run_torch(back, 60.0, precision="float64")
    np.testing.assert_array_equal(a.traces["pre->post.tiers.mid"].values,
                                  b.traces["pre->post.tiers.mid"].values)


@pytest.mark.parametrize("params, match", [
    (dict(tau_short_ms=100.0, tau_mid_ms=50.0), "tau_mid_ms must lie between tau_short_ms"),
    (dict(tau_long_ms=-1.0), r"tau_long_ms must be a number in \(0, 1e\+12\]"),
    (dict(importance="reward"), "importance must be one of"),
    (dict(short_to_mid=0.0), "short_to_mid must be a number in"),
    (dict(capacity_mid=1.5), "capacity_mid must be a number in"),
    (dict(reactivations_to_long=2.5), "reactivations_to_long must be an integer"),
    (dict(initial_tier="deep"), "initial_tier must be one of"),
    (dict(every_steps=0), "every_steps must be an integer"),
])
def test_bad_tier_parameters_are_named(params, match):
    with pytest.raises(ValidationError, match="MemoryTiers 't': " + match):
        MemoryTiers("t", "p", **params)


def test_bad_tier_references_are_named():
    net = plastic_net("additive", modulation=None)
    with pytest.raises(ValidationError, match="projection is not a projection of the network"):
        net.memory_tiers("nowhere")
    with pytest.raises(ValidationError, match="projection has no plasticity rule"):
        net.memory_tiers("drive->post")
    with pytest.raises(ValidationError, match="modulator is required: rule 'pre->post.stdp' has "
                                              "no modulator"):
        net.memory_tiers("pre->post")
    with pytest.raises(ValidationError, match="importance 'eligibility' needs a three-factor"):
        net.memory_tiers("pre->post", modulator="reward", importance="eligibility")
    net.memory_tiers("pre->post", modulator="reward")
    with pytest.raises(ValidationError, match="projection already has memory tiers"):
        net.memory_tiers("pre->post", modulator="reward", name="again")


@pytest.mark.slow
def test_memory_tiers_example_keeps_more_of_task_a():
    from tests.conftest import load_example

    example = load_example("memory_tiers")
    out = example.run_both(progress=False)
    tiers, single = out["retention"]["memory tiers"], out["retention"]["single timescale"]
    assert tiers > single + 0.2
    for label in out["retention"]:
        assert out["learned_b"][label] > 0.05, f"{label} should learn task B"


def kv_net(consolidate: bool, dt_ms: float = 0.5):
    net = Network("kv", dt_ms)
    writes = [(10.0, np.arange(0, 10), np.arange(0, 10)),
              (100.0, np.arange(10, 20), np.arange(20, 30))]
    reads = [(300.0, np.arange(0, 5)), (1500.0, np.arange(0, 5)), (1600.0, np.arange(10, 15)),
             (1700.0, np.arange(25, 35))]
    kv = net.key_value_memory("kv", 40, 40, writes, reads, consolidate=consolidate)
    net.record_spikes("kv.values")
    return net, kv


def test_key_value_memory_recalls_from_partial_cues_after_consolidation():
    """Two key-value pairs written at 10 and 100 ms, read back from half of their keys at
    300 ms (short-term store) and after 1.5 s (three short time constants later): with
    consolidation both come back whole and an unwritten cue recalls nothing; without it, only
    the early read works."""
    targets = [np.arange(10), np.arange(10), np.arange(20, 30), np.array([], int)]
    for consolidate in (True, False):
        net, kv = kv_net(consolidate)
        res = run_torch(net, 1800.0, precision="float64")
        got = kv.read_out(res)
        np.testing.assert_array_equal(got[0], targets[0])  # short-term store
        if consolidate:
            for k in (1, 2):
                np.testing.assert_array_equal(got[k], targets[k])
        else:
            assert got[1].size == 0 and got[2].size == 0
        assert got[3].size == 0
        assert kv.recall(res, targets[:3] + [np.arange(40)])[0] == 1.0


def test_key_value_memory_agrees_on_brian2():
    """The block is ordinary IR nodes, so Brian2 runs it too: same spikes, same tiers."""
    def build():
        net = Network("kv", 0.5)
        writes = [(10.0, np.arange(0, 10), np.arange(0, 10)),
                  (100.0, np.arange(10, 20), np.arange(20, 30))]
        reads = [(300.0, np.arange(0, 5)), (400.0, np.arange(10, 15))]
        kv = net.key_value_memory("kv", 40, 40, writes, reads, tau_short_ms=100.0,
                                  tau_mid_ms=2000.0)
        net.record_spikes("kv.values")
        for var in ("short", "mid", "long"):
            net.record_state("kv.keys->values.tiers", var, every_steps=20)
        return net, kv

    net, kv = build()
    a = run_on("torch-eager", net, 500.0, precision="float64")
    b = run_on("brian2", build()[0], 500.0)
    for res in (a, b):
        got = kv.read_out(res)
        np.testing.assert_array_equal(got[0], np.arange(10))
        np.testing.assert_array_equal(got[1], np.arange(20, 30))
    np.testing.assert_array_equal(a.spike_steps("kv.values")[0], b.spike_steps("kv.values")[0])
    np.testing.assert_array_equal(a.spike_steps("kv.values")[1], b.spike_steps("kv.values")[1])
    for var in ("short", "mid", "long"):
        name = f"kv.keys->values.tiers.{var}"
        np.testing.assert_allclose(a.traces[name].values, b.traces[name].values, rtol=1e-9,
                                   atol=1e-9)
