"""The order of operations within a step is declared once (`evospike.ir.schedule`) and every
backend executes that order: torch's process loop and Brian2's scheduler, read back from the
compiled objects, on a network holding every process kind, added in an order unlike the
schedule's."""

from __future__ import annotations

import numpy as np
import pytest

from evospike import LIF, AllToAll, Network
from evospike.backends import get_backend
from evospike.ir.modulators import RewardEvents, SpikeCountDrive
from evospike.ir.network import PROCESS_TYPES
from evospike.ir.plasticity import RewardModulatedSTDP
from evospike.ir.schedule import PHASE_STRIDE, Phase, phase_of, schedule

DT = 0.1


def every_process_net(pruning: bool = False) -> Network:
    """Populations, sources, a plastic projection and one node of every process kind that
    Brian2 and torch both carry; processes are added out of phase order on purpose."""
    net = Network("every-process", DT)
    src = net.poisson_source("in", 10, 200.0)
    ctx = net.poisson_source("ctx", 4, 20.0)
    cell = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, tau_refrac_ms=1.0)
    pop = net.population("pop", 8, cell, initial={"v": -65.0})
    out = net.population("out", 6, cell, initial={"v": -65.0})
    net.connect(src, pop, AllToAll(), weight=15.0, delay_ms=0.1, name="in->pop")
    net.connect(pop, out, AllToAll(), weight=8.0, delay_ms=0.1, name="pop->out")
    aux = net.population("aux", 5, cell, initial={"v": -65.0})  # no plastic synapse: may die
    net.connect(src, aux, AllToAll(), weight=15.0, delay_ms=0.1, name="in->aux")
    budget = net.energy_budget(out, 400.0, 4.0)
    net.global_energy_budget([budget], 4000.0, 40.0)
    net.apoptosis(aux, every_steps=50, window=3, ceiling_hz=500.0, patience=1000)
    net.modulator("reward", 20.0, [SpikeCountDrive("ctx", 0.05),
                                   RewardEvents(np.array([5.0, 10.0]), np.array([1.0, -1.0]))])
    net.participation(out, "reward", base_fraction=0.6, gain=0.2, min_fraction=0.1, seed=3)
    net.epigenetic_gate(pop, ctx, np.full((8, 4), 0.01), modulator="reward", w_history=-0.1,
                        bias=0.0, tau_context_ms=20.0, tau_ms=15.0, theta_act=0.2)
    rule = net.reward_stdp("pop->out", "reward", w_max=10.0)
    net.memory_tiers("pop->out")
    net.metaplasticity(rule, "reward", "tau_plus_ms", eta=1.0)
    net.homeostasis(out, target_rate_hz=10.0)
    if pruning:
        net.terminal_attractor_pruning("pop->out", "reward")
    net.record_spikes(pop, out, aux)
    net.record_state("reward", "level")
    return net


def test_every_process_kind_declares_a_phase():
    for kind in PROCESS_TYPES:
        assert isinstance(kind.phase, Phase), kind.__name__
    assert isinstance(RewardModulatedSTDP.phase, Phase)


def test_schedule_sorts_by_phase_and_keeps_the_added_order_within_a_phase():
    net = every_process_net()
    order = schedule(net)
    phases = [phase_of(node) for node in order]
    assert phases == sorted(phases)
    assert [n.name for n in order] == [
        "pop->out.rstdp", "out.homeostasis", "reward", "pop->out.rstdp.tau_plus_ms.meta",
        "pop->out.tiers", "aux.apoptosis", "pop.gate", "out.participation", "out.energy",
        "global.energy"]
    net2 = every_process_net()
    net2.modulator("second", 5.0, [SpikeCountDrive("pop", 0.1)])
    names = [n.name for n in schedule(net2)]
    assert names.index("second") == names.index("reward") + 1  # same phase: added order


def test_torch_runs_the_processes_in_the_schedule_order():
    net = every_process_net(pruning=True)
    runner = get_backend("torch").compile(net, progress=False, engine="eager")
    executed = [proc.node.name for proc in runner.cn.process_order]
    expected = [node.name for node in schedule(net) if node.name in runner.cn.processes]
    assert executed[:len(expected)] == expected
    assert "pruning" in executed and expected[-1] == "pruning"


def _brian2_end_of_step_order(runner, net) -> list[str]:
    """The scheduled node of every end-of-step object of trial 0, in the order Brian2's own
    scheduler runs them (its sort key: slot, order, name), consecutive repeats merged."""
    b2_net = runner.trials[0].network
    when = list(b2_net.schedule)
    objects = [obj for obj in b2_net.sorted_objects if obj.when == "end"] \
        if hasattr(b2_net, "sorted_objects") else sorted(
            (obj for obj in b2_net.objects if obj.when == "end"),
            key=lambda obj: (when.index(obj.when), obj.order, obj.name))
    names = [node.name for node in schedule(net)] + ["<monitors>"]
    seen: list[str] = []
    for obj in objects:
        if obj.order < PHASE_STRIDE:
            continue  # Brian2's own bookkeeping, not a node's
        name = names[obj.order // PHASE_STRIDE - 1]
        # a network operation that holds its IR node says independently whose it is
        cells = getattr(getattr(obj, "function", None), "__closure__", None) or ()
        owners = {cell.cell_contents.name for cell in cells
                  if isinstance(getattr(type(cell.cell_contents), "phase", None), Phase)}
        assert owners <= {name}, f"{obj.name} (order {obj.order}) belongs to {owners}, not {name}"
        if not seen or seen[-1] != name:
            seen.append(name)
    return seen


@pytest.mark.slow
def test_brian2_schedules_the_nodes_in_the_schedule_order():
    pytest.importorskip("brian2")
    net = every_process_net()
    runner = get_backend("brian2").compile(net, progress=False, target="numpy")
    executed = _brian2_end_of_step_order(runner, net)
    names = [node.name for node in schedule(net)]
    # Homeostasis of the threshold kind lives in its population's equations: it has an end
    # step (the rate update) too, so every node appears, in the schedule's order
    assert executed == names + ["<monitors>"]


def test_torch_and_brian2_agree_on_the_every_process_network():
    """The same order gives the same trajectory: spikes and modulator level equal."""
    pytest.importorskip("brian2")
    a = get_backend("torch").compile(every_process_net(), progress=False, engine="eager",
                                     precision="float64").run(30.0)
    b = get_backend("brian2").compile(every_process_net(), progress=False,
                                      target="numpy").run(30.0)
    for pop in ("pop", "out", "aux"):
        for ta, tb in zip(a.spikes(pop), b.spikes(pop), strict=True):
            np.testing.assert_array_equal(ta, tb, err_msg=pop)
    assert a.spikes("out")[0].size > 5 and a.spikes("aux")[0].size > 5
    np.testing.assert_allclose(a.traces["reward.level"].values, b.traces["reward.level"].values,
                               rtol=1e-9, atol=1e-12)
