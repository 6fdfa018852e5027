"""Epigenetic gating and neuromodulated participation (`evospike.ir.gating`): the dynamics the IR
defines, their effect (a gated neuron neither integrates nor fires, and costs no synaptic
events), and torch and Brian2 agreeing step for step on deterministic spike inputs."""

import numpy as np
import pytest

from evospike import LIF, AllToAll, Network
from evospike.energy import count_network_ops
from evospike.errors import ValidationError
from evospike.ir.gating import (
    PARTICIPATION_BLOCK_STEPS,
    EpigeneticGate,
    NeuromodulatedParticipation,
    participation_uniforms,
)
from evospike.ir.modulators import SpikeCountDrive
from tests.conftest import run_on, run_torch

DT = 0.1
T_MS = 300.0
N_CTX, N_POP, N_OUT = 10, 16, 8


def context_times(rng, t_max_ms: float = T_MS):
    """Context A (source neurons 0-4) fires for the first half, context B (5-9) for the second,
    each neuron at about 100 Hz; then spikes of the whole context source at 150 ms."""
    neurons, times = [], []
    half = t_max_ms / 2
    for lo, start in ((0, 0.0), (5, half)):
        for k in range(lo, lo + 5):
            t = np.sort(rng.choice(int(half / DT), 15, replace=False)) * DT + start
            neurons += [k] * t.size
            times += list(t)
    return np.asarray(neurons), np.asarray(times)


def context_weights() -> np.ndarray:
    """Population neurons 0-7 open in context A and close in B; 8-15 the other way round."""
    w = np.zeros((N_POP, N_CTX))
    w[:8, :5], w[:8, 5:] = 0.02, -0.02
    w[8:, :5], w[8:, 5:] = -0.02, 0.02
    return w


def gated_net(memory: bool = False, participation: bool = True, gate: bool = True,
              seed: int = 4, tau_gate_ms: float = 15.0, energy: bool = False) -> Network:
    rng = np.random.default_rng(seed)
    net = Network("gated", DT)
    ctx = net.spike_source("ctx", N_CTX, *context_times(rng))
    drive_n = rng.integers(0, 20, 1500)
    drive_t = rng.choice(int(T_MS / DT), 1500, replace=False) * DT
    src = net.spike_source("in", 20, drive_n, drive_t)
    model = LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, tau_refrac_ms=1.0)
    pop = net.population("pop", N_POP, model, initial={"v": -65.0})
    out = net.population("out", N_OUT, model, initial={"v": -65.0})
    net.connect(src, pop, AllToAll(), weight=rng.uniform(0.5, 4.0, 20 * N_POP), delay_ms=0.2)
    net.connect(pop, out, AllToAll(), weight=rng.uniform(15.0, 40.0, N_POP * N_OUT),
                delay_ms=0.1)
    net.modulator("novelty", 20.0, [SpikeCountDrive("ctx", 0.05)])
    if gate:
        params = {}
        if memory:
            keys = np.zeros((2, N_CTX))
            keys[0, :5], keys[1, 5:] = 50.0, 50.0
            patterns = np.zeros((2, N_POP))
            patterns[0, :8], patterns[1, 8:] = 1.0, 1.0
            params = dict(memory_keys=keys, memory_patterns=patterns, recall_similarity=0.8,
                          tau_recall_ms=2.0)
        net.epigenetic_gate(pop, ctx, context_weights(), modulator="novelty", w_history=-0.1,
                            bias=0.0, tau_context_ms=20.0, tau_ms=tau_gate_ms, theta_act=0.2,
                            **params)
        for var in ("gate", "open"):
            net.record_state("pop.gate", var)
        net.record_state("pop.gate", "activation_ratio", neurons=[0])
    if participation:
        net.participation(out, "novelty", base_fraction=0.4, gain=0.3, min_fraction=0.1,
                          seed=11)
        net.record_state("out.participation", "participating")
        net.record_state("out.participation", "fraction", neurons=[0])
    if energy:  # a fire mask on top of the integrate mask of participation
        net.energy_budget(out, 400.0, 4.0)
        net.record_state("out.energy", "energy_pj")
    net.record_state("novelty", "level")
    net.record_state(pop, "v")
    net.record_spikes(pop, out, ctx, src)
    return net


def _same_spikes(a, b, node: str, at_least: int) -> None:
    ta, na = a.spike_steps(node)
    tb, nb = b.spike_steps(node)
    assert ta.size >= at_least, f"the test network should make '{node}' fire ({ta.size})"
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(na, nb)


@pytest.mark.parametrize("memory", [False, True], ids=["gate", "gate+memory+energy"])
def test_torch_and_brian2_agree_step_for_step(memory):
    a = run_on("torch-eager", gated_net(memory, energy=memory), T_MS, precision="float64")
    b = run_on("brian2", gated_net(memory, energy=memory), T_MS)
    _same_spikes(a, b, "pop", 100)
    _same_spikes(a, b, "out", 30)
    for name, trace in a.traces.items():
        np.testing.assert_allclose(trace.values, b.traces[name].values, rtol=1e-9, atol=1e-9,
                                   err_msg=name)
    is_open = a.traces["pop.gate.open"].values[0]
    assert 0 < is_open.mean() < 1, "some neurons should be gated and some open"
    part = a.traces["out.participation.participating"].values[0]
    assert 0 < part.mean() < 1


def reference_gate(res, net) -> dict[str, np.ndarray]:
    """The gate equations of `evospike.ir.gating`, step by step in NumPy, from the recorded
    context spikes and modulator level."""
    g = net.processes["pop.gate"]
    n = res.n_steps
    counts = np.zeros((n, N_CTX))
    steps, neurons = res.spike_steps("ctx")
    np.add.at(counts, (steps, neurons), 1.0)
    level = res.traces["novelty.level"].values[0, :, 0]
    a, d = np.exp(-DT / g.tau_context_ms), np.exp(-DT / g.tau_ms)
    c, m = np.zeros(N_CTX), np.ones(N_POP)
    out = {"gate": [], "open": []}
    for k in range(n):
        c = a * c + (1 - a) * counts[k] * 1000.0 / DT
        target = 1 / (1 + np.exp(-(g.w_context @ c + g.w_history * level[k] + g.bias)))
        m = d * m + (1 - d) * target
        out["gate"].append(m.copy())
        out["open"].append((m > g.theta_act).astype(float))
    return {k: np.asarray(v) for k, v in out.items()}


def test_gate_follows_its_equations_and_switches_with_the_context():
    net = gated_net(participation=False)
    res = run_torch(net, T_MS, precision="float64")
    ref = reference_gate(res, net)
    np.testing.assert_allclose(res.traces["pop.gate.gate"].values[0], ref["gate"], atol=1e-9)
    np.testing.assert_array_equal(res.traces["pop.gate.open"].values[0], ref["open"])
    ratio = res.traces["pop.gate.activation_ratio"].values[0, :, 0]
    np.testing.assert_allclose(ratio, ref["open"].mean(axis=1))
    is_open = ref["open"]
    mid, end = int(140 / DT), int(290 / DT)
    assert is_open[mid, :8].all() and not is_open[mid, 8:].any(), "context A opens 0-7"
    assert is_open[end, 8:].all() and not is_open[end, :8].any(), "context B opens 8-15"


def test_gated_neurons_neither_integrate_nor_fire_and_cost_no_synops():
    net = gated_net(participation=False)
    res = run_torch(net, T_MS, precision="float64")
    is_open = res.traces["pop.gate.open"].values[0].astype(bool)  # mask of the next step
    v = res.traces["pop.v"].values[0]
    closed_next = ~is_open[:-1]  # closed in step k + 1
    frozen = v[1:] == v[:-1]
    assert closed_next.sum() > 1000
    assert frozen[closed_next].all(), "a gated neuron's state must not move"
    steps, neurons = res.spike_steps("pop")
    fired_closed = [s for s, j in zip(steps, neurons, strict=True) if s > 0 and
                    not is_open[s - 1, j]]
    assert not fired_closed, "a gated neuron must not fire"
    ungated = run_torch(gated_net(participation=False, gate=False), T_MS, precision="float64")
    # SynOps are counted at emission (evospike.energy): gating saves the events of the spikes
    # the gated neurons no longer emit
    def synops(net, res) -> float:
        return next(layer.effective for layer in count_network_ops(net, res).layers
                    if layer.name == "pop->out")

    ops_gated = synops(net, res)
    ops_free = synops(gated_net(participation=False, gate=False), ungated)
    assert ops_gated < 0.8 * ops_free, (ops_gated, ops_free)


def test_pattern_memory_restores_a_familiar_gate_faster():
    """After the switch to context B the remembered pattern is reached sooner than the slow
    relaxation reaches it."""
    def switch_time(memory: bool) -> float:
        res = run_torch(gated_net(memory, participation=False, tau_gate_ms=60.0), T_MS,
                        precision="float64")
        gate = res.traces["pop.gate.gate"].values[0]
        after = int(150 / DT)
        settled = (gate[after:, 8:] > 0.9).all(axis=1) & (gate[after:, :8] < 0.1).all(axis=1)
        return float(np.argmax(settled)) * DT if settled.any() else np.inf

    with_memory, without = switch_time(True), switch_time(False)
    assert with_memory < 40.0 and with_memory < 0.6 * without, (with_memory, without)


def test_participation_draws_its_subsets_from_the_keyed_stream():
    net = gated_net(gate=False)
    res = run_torch(net, T_MS, precision="float64", seeds=(3,))
    node = net.processes["out.participation"]
    level = res.traces["novelty.level"].values[0, :, 0]
    fraction = res.traces["out.participation.fraction"].values[0, :, 0]
    np.testing.assert_allclose(fraction, np.clip(0.4 + 0.3 * level, 0.1, 1.0))
    u = np.concatenate([participation_uniforms(node, 3, N_OUT, b) for b in range(4)])
    expected = u[1:res.n_steps + 1] < fraction[:, None]  # the mask set in step k is for k + 1
    np.testing.assert_array_equal(res.traces["out.participation.participating"].values[0],
                                  expected)
    assert u.shape == (4 * PARTICIPATION_BLOCK_STEPS, N_OUT)
    # the draws do not depend on how the run is cut into segments
    from evospike.backends import get_backend

    runner = get_backend("torch").compile(gated_net(gate=False), progress=False,
                                          precision="float64", seeds=(3,))
    runner.run(123.4)
    two = runner.run(T_MS - 123.4)
    np.testing.assert_array_equal(two.spike_steps("out")[1], res.spike_steps("out")[1])


def test_participation_rises_with_novelty():
    res = run_torch(gated_net(gate=False), T_MS, precision="float64")
    level = res.traces["novelty.level"].values[0, :, 0]
    part = res.traces["out.participation.participating"].values[0].mean(axis=1)
    high, low = level > np.quantile(level, 0.75), level < np.quantile(level, 0.25)
    assert part[high].mean() > part[low].mean() + 0.05


def test_trials_draw_their_own_subsets_and_match_single_runs():
    batch = run_torch(gated_net(), 100.0, precision="float64", seeds=(0, 1), engine="eager")
    alone = run_torch(gated_net(), 100.0, precision="float64", seeds=(1,))
    name = "out.participation.participating"
    np.testing.assert_array_equal(batch.traces[name].values[1], alone.traces[name].values[0])
    assert not np.array_equal(batch.traces[name].values[0], batch.traces[name].values[1])


def test_gating_network_round_trips(tmp_path):
    net = gated_net(memory=True)
    net.save(tmp_path / "g.h5")
    back = Network.load(tmp_path / "g.h5")
    for name, proc in net.processes.items():
        assert repr(back.processes[name]) == repr(proc)
    a = run_torch(net, 50.0, precision="float64")
    b = run_torch(back, 50.0, precision="float64")
    np.testing.assert_array_equal(a.traces["pop.gate.gate"].values,
                                  b.traces["pop.gate.gate"].values)


def test_native_engine_is_not_used_for_gated_networks():
    from evospike.backends import get_backend

    runner = get_backend("torch").compile(gated_net(), engine="auto", progress=False)
    assert runner.engine == "eager"


def test_brian2_standalone_is_refused_by_name():
    from evospike.backends import get_backend
    from evospike.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="EpigeneticGate 'pop.gate'.*network_operation"):
        get_backend("brian2").compile(gated_net(participation=False), target="cpp_standalone",
                                      progress=False).run(1.0)


@pytest.mark.parametrize("build, match", [
    (lambda: EpigeneticGate("g", "p", "s", np.ones((2, 3)), theta_act=1.5),
     r"EpigeneticGate 'g': theta_act must lie in \[0, 1\]"),
    (lambda: EpigeneticGate("g", "p", "s", np.ones((2, 3)), tau_ms=0.0), "tau_ms must lie in"),
    (lambda: EpigeneticGate("g", "p", "s", np.array([1.0, np.nan])), "w_context must be finite"),
    (lambda: EpigeneticGate("g", "p", "s", 1.0, initial_gate=2.0), "initial_gate must lie in"),
    (lambda: EpigeneticGate("g", "p", "s", 1.0, memory_keys=np.ones((1, 3))),
     "memory_patterns and memory_keys must be given together"),
    (lambda: EpigeneticGate("g", "p", "s", 1.0, memory_keys=np.zeros((1, 3)),
                            memory_patterns=np.ones((1, 2))), "all-zero key"),
    (lambda: NeuromodulatedParticipation("q", "p", "m", base_fraction=1.2),
     r"NeuromodulatedParticipation 'q': base_fraction must lie in \[0, 1\]"),
    (lambda: NeuromodulatedParticipation("q", "p", "m", min_fraction=0.8, max_fraction=0.5),
     "min_fraction must not exceed max_fraction"),
    (lambda: NeuromodulatedParticipation("q", "p", "m", seed=-1), "seed must be an integer"),
])
def test_bad_parameters_are_named(build, match):
    with pytest.raises(ValidationError, match=match):
        build()


def test_bad_references_are_named():
    net = gated_net(gate=False, participation=False)
    with pytest.raises(ValidationError, match="w_context must be a scalar or broadcast to shape "
                                              r"\(16, 10\)"):
        net.epigenetic_gate("pop", "ctx", np.ones((16, 9)))
    with pytest.raises(ValidationError, match="modulator is not a Modulator of the network"):
        net.epigenetic_gate("pop", "ctx", 0.0, modulator="dopamine")
    with pytest.raises(ValidationError, match="has no population or source named 'nowhere'"):
        net.epigenetic_gate("pop", "nowhere", 0.0)
    net.epigenetic_gate("pop", "ctx", 0.0)
    with pytest.raises(ValidationError, match="population already has a EpigeneticGate"):
        net.epigenetic_gate("pop", "ctx", 0.0, name="second")
    with pytest.raises(ValidationError, match="population is not a population of the network"):
        net.add(NeuromodulatedParticipation("q", "in", "novelty"))


@pytest.mark.slow
def test_gating_example_keeps_accuracy_and_cuts_synops():
    from tests.conftest import load_example

    out = load_example("epigenetic_gating").run_both(10, progress=False)  # one switch
    assert out["ungated"]["accuracy"] >= 0.9
    assert out["gated"]["accuracy"] >= out["ungated"]["accuracy"] - 0.05
    assert out["synops_saving"] > 0.1
    assert out["expert_synops_saving"] > 0.2
    assert 0.3 < out["gated"]["open_fraction"] < 0.7


def test_gate_reads_the_apoptosis_survival_factor_on_both_backends():
    """``open = m * A > theta_act`` with A the survival factor of an apoptosis process on the
    same population (evaluated earlier in the same step)."""
    from evospike.ir.apoptosis import Apoptosis

    def build() -> Network:
        net = gated_net(participation=False)
        net.processes["pop.gate"].theta_act = 0.5
        net.add(Apoptosis("pop.apo", "pop", every_steps=100, window=3, ceiling_hz=60.0,
                          patience=1000))
        net.record_state("pop.apo", "survival")
        return net

    a = run_on("torch-eager", build(), T_MS, precision="float64")
    b = run_on("brian2", build(), T_MS)
    _same_spikes(a, b, "pop", 50)
    _same_spikes(a, b, "out", 50)
    for name, trace in a.traces.items():
        np.testing.assert_allclose(trace.values, b.traces[name].values, rtol=1e-9, atol=1e-9,
                                   err_msg=name)
    gate = a.traces["pop.gate.gate"].values[0]
    survival = a.traces["pop.apo.survival"].values[0]
    assert (survival < 1).sum() > 100, "the test should lower some survival factors"
    np.testing.assert_array_equal(a.traces["pop.gate.open"].values[0], gate * survival > 0.5)
    assert ((gate > 0.5) & (gate * survival <= 0.5)).any(), "A should close some open gates"
