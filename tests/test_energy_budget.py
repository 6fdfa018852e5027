"""AEG energy budgets (`evospike.ir.energy_budget`): spikes drain stores at a hardware profile's
rates, a neuron without the energy to fire cannot fire, and torch and Brian2 agree step for
step on deterministic spike inputs."""

import numpy as np
import pytest

from evospike import LIF, AllToAll, FixedProbability, Network
from evospike.energy import count_network_ops
from evospike.errors import ValidationError
from evospike.hardware.energy_costs import get_profile
from evospike.ir.energy_budget import (
    EnergyBudget,
    GlobalEnergyBudget,
    energy_spent_pj,
    spike_costs_pj,
)
from tests.conftest import run_on, run_torch

DT = 0.1
T_MS = 200.0
N_POP, N_OUT = 12, 6
RECHARGE, POOL, POOL_RECHARGE, GLOBAL, GLOBAL_RECHARGE = 10.0, 3000.0, 60.0, 8000.0, 100.0


def budget_net(capacity_pj: float | None = 500.0, pool: bool = True, global_budget: bool = True,
               seed: int = 2) -> Network:
    rng = np.random.default_rng(seed)
    net = Network("energy", DT)
    n_in = 20
    src = net.spike_source("in", n_in, rng.integers(0, n_in, 1500),
                           rng.choice(int(T_MS / DT), 1500, replace=False) * DT)
    model = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, tau_refrac_ms=1.0)
    pop = net.population("pop", N_POP, model, initial={"v": -65.0})
    out = net.population("out", N_OUT, model, initial={"v": -65.0})
    net.connect(src, pop, AllToAll(), weight=rng.uniform(1.0, 6.0, n_in * N_POP), delay_ms=0.2)
    net.connect(pop, out, AllToAll(), weight=rng.uniform(10.0, 30.0, N_POP * N_OUT),
                delay_ms=0.1)
    net.connect(pop, pop, FixedProbability(0.2, seed=1), weight=2.0, delay_ms=0.3)
    if capacity_pj is not None:
        extra = dict(population_capacity_pj=POOL, population_recharge_pj_per_ms=POOL_RECHARGE) \
            if pool else {}
        net.energy_budget(pop, capacity_pj, RECHARGE, profile="loihi2", **extra)
        net.energy_budget(out, 300.0, 1.0, profile="loihi2", initial_fraction=0.5)
        for var in ("energy_pj", "population_energy_pj", "spent_pj"):
            net.record_state("pop.energy", var, neurons=None if var == "energy_pj" else [0])
        net.record_state("out.energy", "energy_pj")
        if global_budget:
            net.global_energy_budget(["pop.energy", "out.energy"], GLOBAL, GLOBAL_RECHARGE)
            net.record_state("global.energy", "energy_pj")
            net.record_state("global.energy", "spent_pj")
    net.record_spikes(pop, out, src)
    return net


def test_torch_and_brian2_agree_step_for_step():
    a = run_on("torch-eager", budget_net(), T_MS, precision="float64")
    b = run_on("brian2", budget_net(), T_MS)
    for node, at_least in (("pop", 50), ("out", 20)):
        ta, na = a.spike_steps(node)
        tb, nb = b.spike_steps(node)
        assert ta.size >= at_least, f"the test network should make '{node}' fire ({ta.size})"
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(na, nb)
    for name, trace in a.traces.items():
        np.testing.assert_allclose(trace.values, b.traces[name].values, rtol=1e-9, atol=1e-6,
                                   err_msg=name)
    free = run_torch(budget_net(None), T_MS, precision="float64")
    assert a.spike_steps("pop")[0].size < 0.7 * free.spike_steps("pop")[0].size, \
        "the budget should limit firing"
    # the run's energy estimate is in the results of both, equal, and survives saving
    assert a.meta["energy_pj"]["total"] > 0
    assert a.meta["energy_pj"] == pytest.approx(b.meta["energy_pj"], rel=1e-12)
    assert a.meta["energy_pj"]["total"] == pytest.approx(
        sum(v for k, v in a.meta["energy_pj"].items() if k != "total"))


def test_costs_come_from_the_profile_and_the_fanout():
    net = budget_net()
    loihi = get_profile("loihi2")
    fanout = np.full(N_POP, N_OUT) + np.bincount(net.projections["pop->pop"].pre_indices(),
                                                 minlength=N_POP)
    np.testing.assert_allclose(spike_costs_pj(net, "pop", "loihi2"),
                               loihi.cost_pJ("neuron_update_active") +
                               fanout * loihi.cost_pJ("ac"))
    np.testing.assert_allclose(spike_costs_pj(net, "out", "horowitz45-int8"),
                               get_profile("horowitz45-int8").cost_pJ("neuron_update_active"))


def reference_stores(res, net) -> dict[str, np.ndarray]:
    """The store equations of `evospike.ir.energy_budget`, step by step in NumPy, from the
    recorded spikes."""
    n = res.n_steps
    cost = {p: spike_costs_pj(net, p, "loihi2") for p in ("pop", "out")}
    spikes = {}
    for p, size in (("pop", N_POP), ("out", N_OUT)):
        s = np.zeros((n, size))
        steps, neurons = res.spike_steps(p)
        s[steps, neurons] = 1.0
        spikes[p] = s
    e = np.full(N_POP, 500.0)
    pool, spent, glob = POOL, 0.0, GLOBAL
    out = {"energy": [], "pool": [], "spent": [], "global": [], "allowed": []}
    for k in range(n):
        charge = spikes["pop"][k] * cost["pop"]
        e = np.minimum(e - charge + RECHARGE * DT, 500.0)
        pool = min(pool - charge.sum() + POOL_RECHARGE * DT, POOL)
        spent += charge.sum()
        glob = min(glob - charge.sum() - (spikes["out"][k] * cost["out"]).sum() +
                   GLOBAL_RECHARGE * DT, GLOBAL)
        out["energy"].append(e.copy())
        out["pool"].append(pool)
        out["spent"].append(spent)
        out["global"].append(glob)
        out["allowed"].append((e >= cost["pop"]) & (pool >= cost["pop"]) &
                              (glob >= cost["pop"]))
    return {key: np.asarray(v) for key, v in out.items()}


def test_stores_follow_their_equations_and_block_firing():
    net = budget_net()
    res = run_torch(net, T_MS, precision="float64")
    ref = reference_stores(res, net)
    np.testing.assert_allclose(res.traces["pop.energy.energy_pj"].values[0], ref["energy"],
                               atol=1e-6)
    np.testing.assert_allclose(res.traces["pop.energy.population_energy_pj"].values[0, :, 0],
                               ref["pool"], atol=1e-6)
    np.testing.assert_allclose(res.traces["pop.energy.spent_pj"].values[0, :, 0], ref["spent"],
                               atol=1e-6)
    np.testing.assert_allclose(res.traces["global.energy.energy_pj"].values[0, :, 0],
                               ref["global"], atol=1e-6)
    steps, neurons = res.spike_steps("pop")
    later = steps > 0
    assert ref["allowed"][steps[later] - 1, neurons[later]].all(), \
        "a neuron fired without the energy to fire"
    assert (~ref["allowed"]).sum() > 100, "the budget should block neurons in this network"
    # the total spent is the run's energy estimate: spikes and their fan-out on the profile
    spent = energy_spent_pj(net, res)
    cost = spike_costs_pj(net, "pop", "loihi2")
    assert spent["pop.energy"] == pytest.approx(cost[neurons].sum())
    assert res.traces["pop.energy.spent_pj"].values[0, -1, 0] == pytest.approx(
        spent["pop.energy"])
    assert res.traces["global.energy.spent_pj"].values[0, -1, 0] == pytest.approx(
        spent["total"])


def test_a_tighter_budget_means_fewer_synops():
    ops = [count_network_ops(net, run_torch(net, T_MS, precision="float64")).synops
           for net in (budget_net(None), budget_net(2000.0, pool=False, global_budget=False),
                       budget_net(300.0, pool=False, global_budget=False))]
    assert ops[0] > ops[1] > ops[2], ops


def test_energy_estimate_is_saved_with_the_results(tmp_path):
    from evospike.results import Results

    res = run_torch(budget_net(), 50.0, precision="float64")
    res.save(tmp_path / "r.h5")
    back = Results.load(tmp_path / "r.h5")
    assert back.meta["energy_pj"] == res.meta["energy_pj"]
    assert set(back.meta["energy_profiles"]) == set(res.meta["energy_profiles"])


def test_energy_network_round_trips(tmp_path):
    net = budget_net()
    net.save(tmp_path / "e.h5")
    back = Network.load(tmp_path / "e.h5")
    for name, proc in net.processes.items():
        assert repr(back.processes[name]) == repr(proc)
    a = run_torch(net, 50.0, precision="float64")
    b = run_torch(back, 50.0, precision="float64")
    np.testing.assert_array_equal(a.spike_steps("pop")[1], b.spike_steps("pop")[1])


@pytest.mark.parametrize("build, match", [
    (lambda: EnergyBudget("e", "p", -1.0, 1.0), "EnergyBudget 'e': capacity_pj must be >= 0"),
    (lambda: EnergyBudget("e", "p", 1.0, 1.0, profile="gpu"),
     "profile is not a hardware energy profile"),
    (lambda: EnergyBudget("e", "p", 1.0, 1.0, profile="horowitz45-fp32", initial_fraction=2),
     r"initial_fraction must lie in \[0, 1\]"),
    (lambda: EnergyBudget("e", "p", 1.0, 1.0, population_capacity_pj=5.0),
     "population_recharge_pj_per_ms and population_capacity_pj must be given together"),
    (lambda: GlobalEnergyBudget("g", (), 1.0, 1.0), "budgets must name one or more"),
    (lambda: GlobalEnergyBudget("g", ("a",), float("nan"), 1.0),
     "capacity_pj must be a finite number"),
])
def test_bad_parameters_are_named(build, match):
    with pytest.raises(ValidationError, match=match):
        build()


def test_bad_references_are_named():
    net = budget_net(None)
    with pytest.raises(ValidationError, match="population is not a population of the network"):
        net.add(EnergyBudget("e", "in", 1.0, 1.0))
    net.energy_budget("pop", 100.0, 1.0)
    with pytest.raises(ValidationError, match="population already has a EnergyBudget"):
        net.energy_budget("pop", 100.0, 1.0, name="again")
    with pytest.raises(ValidationError, match="budgets names no EnergyBudget of the network"):
        net.global_energy_budget(["pop.energy", "out.energy"], 10.0, 1.0)
    net.global_energy_budget(["pop.energy"], 10.0, 1.0)
    with pytest.raises(ValidationError, match="shares a budget with global budget"):
        net.global_energy_budget(["pop.energy"], 10.0, 1.0, name="g2")


@pytest.mark.slow
def test_energy_budget_example_degrades_gracefully():
    from tests.conftest import load_example

    out = load_example("energy_budget").sweep(8, budgets=(None, 10.0, 2.5, 0.3),
                                              progress=False)
    ops, acc = out["synops"], out["accuracy"]
    assert ops[0] > ops[1] > ops[2] > ops[3], ops
    assert acc[0] >= 0.9 and acc[1] >= 0.9, acc
    assert acc[3] <= 0.6, acc  # at the tightest budget it is close to chance
    assert acc[0] >= acc[2] >= acc[3], acc
