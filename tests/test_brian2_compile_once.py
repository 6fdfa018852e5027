"""The Brian2 backend compiles each code object once per network (issue 15, item 7).

Brian2 names the arrays in its generated code after their owner object and caches compiled
Cython modules by that code, so every object the backend builds (groups, synapses and their
pathways, run_regularly operations, monitors, clocks, network operations, TimedArrays) is named
from its IR node (`backends/brian2/names.py`): a second trial, another seed and another build of
the same network generate the same code and reuse the compiled modules."""

import gc
import re
from pathlib import Path

import numpy as np
import pytest

from evospike import LIF, AllToAll, FixedProbability, Network, OneToOne
from evospike.backends import get_backend
from evospike.backends.brian2.names import object_name, slug
from evospike.backends.brian2.runner import MIN_TABLE_STEPS, table_steps
from evospike.ir.modulators import RewardEvents, RewardSeries, SpikeCountDrive
from tests.test_apoptosis import sick_net
from tests.test_energy_budget import budget_net
from tests.test_gating import gated_net
from tests.test_memory_tiers import tiered_net
from tests.test_modulation import plastic_net
from tests.test_structural import base_net

DT = 0.1

#: Brian2's automatic names: a class's default name, with the number `find_name` adds
#: (``neurongroup_3``, ``synapses_1_pre``), or a ``dt=`` argument's ``<owner>_clock_<n>``
AUTOMATIC = re.compile(r"^(neurongroup|synapses|networkoperation|spikemonitor|eventmonitor|"
                       r"statemonitor|spikegeneratorgroup|poissongroup|poissoninput|"
                       r"ratemonitor|coderunner|clock|_timedarray)(_\d+)?($|_)|_clock_\d+$")


def processes_net() -> Network:
    """A small network with a modulator (reward events, a reward series and a spike count),
    three-factor STDP read out by it, threshold homeostasis and a time-varying current; node
    names of its own, so that no other test in the process compiled the same code."""
    rng = np.random.default_rng(5)
    net = Network("compile_once", DT)
    pairs = rng.choice(12 * 100, 300, replace=False)  # (neuron, step) over the first 10 ms
    src = net.spike_source("once_in", 12, pairs % 12, pairs // 12 * DT)
    pop = net.population("once_pop", 6, LIF(tau_m_ms=10.0, tau_refrac_ms=0.5),
                         initial={"v": -65.0})
    proj = net.connect(src, pop, AllToAll(), weight=rng.uniform(2.0, 8.0, 72), delay_ms=0.2,
                       name="once_in->once_pop")
    net.connect(pop, pop, FixedProbability(0.3, seed=2), weight=2.0, delay_ms=0.3,
                name="once_rec")
    net.modulator("once_reward", 40.0, [RewardEvents([1.0, 3.5], [1.0, -0.5]),
                                        RewardSeries(np.linspace(0.0, 0.1, 50), start_step=5),
                                        SpikeCountDrive("once_pop", 0.02)])
    net.reward_stdp(proj, "once_reward", tau_eligibility_ms=40.0, learning_rate_per_ms=0.05,
                    tau_plus_ms=15.0, tau_minus_ms=25.0, a_plus=0.3, a_minus=0.25, w_min=0.0,
                    w_max=8.0)
    net.homeostasis(pop, target_rate_hz=20.0, tau_rate_ms=50.0, threshold_rate=2.0)
    net.inject_current(pop, series=np.linspace(0.0, 12.0, 30), start_ms=0.5)
    net.record_spikes(pop)
    net.record_state("once_pop.homeostasis", "theta")
    net.record_weights(proj, every_steps=10)
    return net


def structural_net() -> Network:
    net = base_net()
    net.structural_plasticity("in->pop", every_steps=5, prune_below=2.5)
    return net


def plastic_processes_net() -> Network:
    net = plastic_net("rstdp", meta="a_plus", homeostasis="threshold")
    net.inject_current("post", series=np.linspace(0.0, 5.0, 40), start_ms=0.3)
    return net


#: id -> (builder, slow): the first two run in the quick suite, the other process kinds in
#: the slow one (Brian2 generates the code of every object of three builds: seconds each)
NETWORKS = {
    "modulator-rstdp-meta-homeostasis-current": (plastic_processes_net, False),
    "scaling": (lambda: plastic_net("additive", homeostasis="scaling"), False),
    "gate-participation-energy": (lambda: gated_net(memory=True, energy=True), True),
    "global-energy": (budget_net, True),
    "apoptosis": (sick_net, True),
    "memory-tiers": (tiered_net, True),
    "structural": (structural_net, True),
}


def _brian2(net: Network, seeds, target: str = "numpy"):
    return get_backend("brian2").compile(net, seeds=seeds, target=target, progress=False)


def _layout(built) -> dict[str, tuple]:
    """Every object of one trial's network (contained ones included) -> its class, its clock
    and the code it generated."""
    return {obj.name: (type(obj).__name__, obj.clock.name,
                       tuple(str(co.code) for co in getattr(obj, "_code_objects", ())))
            for obj in built.network.sorted_objects}


def _timed_arrays(runner, built) -> list[str]:
    """The names of the TimedArrays a trial's code calls (current tables, reward series)."""
    from brian2 import TimedArray

    namespaces = [runner._current_namespace(built, runner.step)]
    namespaces += [g.namespace for g in built.network.sorted_objects
                   if isinstance(getattr(g, "namespace", None), dict)]
    return sorted(v.name for ns in namespaces for v in ns.values() if isinstance(v, TimedArray))


# ------------------------------------------------------------------------------- names
def test_object_names_are_identifiers_unique_per_node():
    net = Network("names", DT)
    cell = LIF()
    # three names with the same letters and digits, one with none at all
    for name in ("a->b", "a_b", "a b", "->"):
        net.population(name, 2, cell)
    names = [object_name("pop", net, n) for n in net.populations]
    assert names == ["evospike_pop0_a_b", "evospike_pop1_a_b", "evospike_pop2_a_b",
                     "evospike_pop3"]
    assert object_name("pop", net, "a->b", "current table") == "evospike_pop0_a_b_current_table"
    assert slug("x__y--z_") == "x_y_z" and "__" not in slug("_a__->__b_")
    assert len(slug("n" * 200)) == 40
    with pytest.raises(ValueError, match="kind 'group' is not one of"):
        object_name("group", net, "a_b")
    with pytest.raises(ValueError, match="network 'names' has no populations entry 'zz'"):
        object_name("pop", net, "zz")


def test_current_tables_come_in_a_few_sizes():
    assert table_steps(1) == table_steps(MIN_TABLE_STEPS) == MIN_TABLE_STEPS
    for end in (65, 1000, 1025, 4097, 123_457, 10**7 + 3):
        rows = table_steps(end)
        assert end <= rows <= end * 1.125 + 1
        assert rows == table_steps(rows)  # a size is its own bucket
        assert rows % (1 << (rows.bit_length() - 4)) == 0  # four significant bits


@pytest.mark.parametrize("build", [
    pytest.param(build, id=name, marks=[pytest.mark.slow] if slow else [])
    for name, (build, slow) in NETWORKS.items()])
def test_every_trial_and_every_build_names_its_objects_alike(build):
    """Two trials built side by side, and a third build while they are alive, name every
    object, clock and TimedArray alike, none with Brian2's automatic (counted) names, and
    generate the same code."""
    first = _brian2(build(), seeds=(0, 1))
    again = _brian2(build(), seeds=(2,))
    for runner in (first, again):
        runner.run(0.5)
    layouts = [_layout(built) for runner in (first, again) for built in runner.trials]
    assert len(layouts[0]) >= 10
    for layout in layouts[1:]:
        assert layout == layouts[0]
    tables = [_timed_arrays(runner, built) for runner in (first, again)
              for built in runner.trials]
    assert all(t == tables[0] for t in tables)
    clocks = {clock for _, clock, _ in layouts[0].values()}
    for name in [*layouts[0], *clocks, *tables[0]]:
        assert not AUTOMATIC.search(name), name


# ---------------------------------------------------------------------- compiled once
def _modules(cache: Path) -> int:
    return len(list(cache.glob("*.so")))


@pytest.mark.slow
def test_cython_compiles_each_module_once(tmp_path):
    """Seed 0, then seed 1, then both side by side, then a continued run, then a run of
    another build: Cython compiles only during the first."""
    from brian2 import prefs
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    if not CythonCodeObject.is_available():
        pytest.skip("no working C compiler for Cython")
    previous = prefs["codegen.runtime.cython.cache_dir"]
    prefs["codegen.runtime.cython.cache_dir"] = str(tmp_path)
    try:
        _brian2(processes_net(), (0,), "cython").run(2.0)
        compiled = _modules(tmp_path)
        assert compiled >= 10  # every code object of this network, compiled here
        gc.collect()
        _brian2(processes_net(), (1,), "cython").run(2.0)
        assert _modules(tmp_path) == compiled
        both = _brian2(processes_net(), (0, 1), "cython")
        both.run(2.0)
        assert _modules(tmp_path) == compiled
        both.run(2.0)  # the current table still fits its size
        assert _modules(tmp_path) == compiled
        res = _brian2(processes_net(), (1,), "cython").run(4.0)
        assert _modules(tmp_path) == compiled
        assert res.n_steps == 40
    finally:
        prefs["codegen.runtime.cython.cache_dir"] = previous


def test_a_continued_run_and_one_long_run_agree():
    """The padded current table changes nothing: two runs of 3 ms give the spikes and
    weights of one run of 6 ms."""
    one = _brian2(processes_net(), (3,)).run(6.0)
    runner = _brian2(processes_net(), (3,))
    runner.run(3.0)
    two = runner.run(3.0)
    a, b = one.spike_steps("once_pop"), two.spike_steps("once_pop")
    assert a[0].size > 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    wa, wb = next(iter(one.weights.values())), next(iter(two.weights.values()))
    np.testing.assert_array_equal(wa.values, wb.values)


def test_node_names_ending_like_brian2_suffixes_give_distinct_objects():
    """Node names that end like Brian2's own sub-object names (``_pre``, ``_spikes``,
    ``_clock``) still give one name per object within a network."""
    net = Network("suffixes", DT)
    src = net.spike_source("x_pre", 3, [0, 1, 2], [0.1, 0.2, 0.3])
    pop = net.population("x", 3, LIF(), initial={"v": -65.0})
    pop2 = net.population("x_spikes", 3, LIF(), initial={"v": -65.0})
    net.connect(src, pop, OneToOne(), weight=30.0, name="x_clock")
    net.connect(pop, pop2, OneToOne(), weight=30.0, name="evospike_pop0_x_pre")
    net.record_spikes(pop, pop2)
    runner = _brian2(net, (0,))
    runner.run(1.0)  # Brian2 refuses a network with two objects of one name
    names = [obj.name for obj in runner.trials[0].network.sorted_objects]
    assert len(names) == len(set(names))
