"""One registry per backend (`evospike.registry`): a node kind is carried where it is registered
and refused by name everywhere else; `Network.add` dispatches on the node's declared
collection, so a new plasticity rule or process kind needs no change to the IR."""

import gc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from evospike import LIF, AllToAll, Network
from evospike.backends import get_backend
from evospike.errors import EvoSpikeError, UnsupportedError, ValidationError
from evospike.ir.plasticity import STDP
from evospike.ir.schedule import Phase
from evospike.registry import Registry


# ------------------------------------------------------------------ the helper itself
class Base:
    name = "b"


class Child(Base):
    name = "c"


class Stranger:
    name = "s"


def test_register_returns_the_function_and_lookup_finds_it_by_exact_type():
    reg = Registry("toy")

    @reg.register(Base)
    def build(node):
        return ("built", node.name)

    assert reg.lookup(Base())(Base()) == ("built", "b")
    assert Base in reg and list(reg) == [Base]


def test_unknown_kind_is_refused_naming_backend_kind_and_node():
    reg = Registry("toy", "builder")
    reg.carry(Base)
    with pytest.raises(UnsupportedError) as info:
        reg.lookup(Stranger())
    assert info.value.backend == "toy"
    assert info.value.reasons == ["Stranger 's': no toy builder for Stranger"]


def test_a_subclass_is_not_carried_as_its_parent_unless_the_parent_says_so():
    strict, loose = Registry("strict"), Registry("loose")
    strict.register(Base)(lambda node: "parent")
    loose.register(Base, subclasses=True)(lambda node: "parent")
    why = strict.reason(Child())
    assert why is not None and "Child" in why and "a subclass of Base" in why
    with pytest.raises(UnsupportedError, match="Child 'c'"):
        strict.lookup(Child())
    assert loose.lookup(Child())(Child()) == "parent"


def test_a_refused_kind_gives_its_reason_and_is_not_listed_as_carried():
    reg = Registry("toy")
    reg.refuse(Base, "toys do not bend")
    assert reg.reason(Base()) == "toys do not bend"
    assert Base not in reg and list(reg) == []
    with pytest.raises(UnsupportedError, match="Base 'b': toys do not bend"):
        reg.lookup(Base())


def test_two_different_functions_for_one_kind_are_refused():
    reg = Registry("toy")

    def one(node):
        return 1

    def two(node):
        return 2

    reg.register(Base)(one)
    reg.register(Base)(one)  # the same function again (a module imported twice) is fine
    with pytest.raises(ValueError, match="Base is registered twice"):
        reg.register(Base)(two)
    assert reg.lookup(Base()) is one


def test_extras_are_read_back_per_kind():
    reg = Registry("toy")
    reg.carry(Base, phase=30)
    assert reg.extra(Base(), "phase", 50) == 30
    assert reg.extra(Stranger(), "phase", 50) == 50


# ------------------------------------------------------------------ kinds defined by a user
def _net(rule_cls=STDP) -> Network:
    net = Network("reg", 0.1)
    pre = net.spike_source("pre", 3, [0, 1, 2, 0, 1], [1.0, 2.0, 3.0, 6.0, 7.5])
    post = net.population("post", 2, LIF(tau_m_ms=10.0, tau_syn_exc_ms=2.0, v_thresh_mV=-64.0,
                                         v_rest_mV=-65.0, v_reset_mV=-65.0),
                          initial={"v": -65.0})
    proj = net.connect(pre, post, AllToAll(), weight=1.5, delay_ms=0.1, target="v",
                       name="pre->post")
    net.add(rule_cls("pre->post.rule", proj.name, a_plus=0.05, a_minus=0.04, w_max=2.0))
    net.record_spikes(post)
    net.record_weights(proj, every_steps=10)
    return net


@pytest.fixture
def shadow_stdp():
    """An STDP subclass defined here (it may compute something else: no backend carries it as
    STDP); forgotten afterwards, so other tests never see it among STDP's subclasses."""
    from evospike.backends.torch.compiler import compile_stdp
    from evospike.backends.torch.registry import NODE_COMPILERS

    @dataclass
    class ShadowSTDP(STDP):
        pass

    yield ShadowSTDP, NODE_COMPILERS, compile_stdp
    NODE_COMPILERS.unregister(ShadowSTDP)
    del ShadowSTDP
    gc.collect()


def test_a_new_rule_is_a_plasticity_rule_of_the_network(shadow_stdp):
    cls, _, _ = shadow_stdp
    net = _net(cls)
    assert list(net.plasticity) == ["pre->post.rule"]
    assert type(net.plasticity["pre->post.rule"]) is cls


def test_torch_refuses_an_unregistered_rule_by_name(shadow_stdp):
    cls, _, _ = shadow_stdp
    with pytest.raises(UnsupportedError) as info:
        get_backend("torch").compile(_net(cls), progress=False)
    assert info.value.reasons == [
        "ShadowSTDP 'pre->post.rule': no torch compiler for ShadowSTDP (a subclass of STDP, "
        "whose compiler does not cover subclasses: register ShadowSTDP with the torch "
        "registry)"]


def test_a_rule_registered_with_the_eager_engine_only_runs_eager(shadow_stdp):
    cls, registry, compile_stdp = shadow_stdp
    registry.register(cls)(compile_stdp)  # the same math as STDP, registered by its own name
    with pytest.raises(EvoSpikeError, match="native engine cannot run this network: "
                                            "ShadowSTDP 'pre->post.rule': no native kernel "
                                            "update for ShadowSTDP"):
        get_backend("torch").compile(_net(cls), engine="native", progress=False)
    runner = get_backend("torch").compile(_net(cls), progress=False)
    assert runner.engine == "eager"
    assert "ShadowSTDP 'pre->post.rule'" in runner.engine_note
    shadow = runner.run(20.0)
    plain = get_backend("torch").compile(_net(STDP), engine="eager", progress=False).run(20.0)
    w_shadow = shadow.weights["pre->post.weights"].values
    w_plain = plain.weights["pre->post.weights"].values
    assert not np.array_equal(w_plain[0, 0], w_plain[0, -1])  # the rule did learn
    np.testing.assert_array_equal(w_shadow, w_plain)


def test_brian2_and_lava_refuse_the_new_rule_by_name(shadow_stdp):
    from evospike.backends.brian2 import refusals as brian2_refusals
    from evospike.backends.lava import refusals as lava_refusals

    cls, _, _ = shadow_stdp
    net = _net(cls)
    assert any(r.startswith("ShadowSTDP 'pre->post.rule': no Brian2 builder for ShadowSTDP")
               for r in brian2_refusals(net))
    for tag in ("fixed_pt", "floating_pt"):
        assert any(r.startswith("ShadowSTDP 'pre->post.rule': no lava compiler for ShadowSTDP")
                   for r in lava_refusals(net, tag))
    assert brian2_refusals(_net(STDP)) == []


@dataclass
class Glow:
    """A process kind no backend carries."""

    name: str
    population: str
    kind: ClassVar[str] = "Glow"
    collection: ClassVar[str] = "processes"
    phase: ClassVar[Phase] = Phase.HOMEOSTASIS
    state_names: ClassVar[tuple[str, ...]] = ("glow",)

    def state_size(self, net) -> int:
        return net.populations[self.population].size

    def check(self, net) -> None:
        if self.population not in net.populations:
            raise ValidationError("Glow", self.name, "population", "is not a population",
                                  self.population)


def test_a_new_process_kind_is_added_by_its_collection_and_refused_by_every_backend():
    from evospike.backends.brian2 import refusals as brian2_refusals
    from evospike.backends.lava import refusals as lava_refusals
    from evospike.backends.torch import refusals as torch_refusals
    from evospike.backends.torch.native.engine import refusals as native_refusals

    net = _net()
    net.add(Glow("post.glow", "post"))
    assert net.processes["post.glow"].kind == "Glow"
    with pytest.raises(ValidationError, match="Glow 'x': population is not a population"):
        net.add(Glow("x", "nowhere"))
    expected = "Glow 'post.glow': no {} for Glow"
    assert expected.format("torch compiler") in torch_refusals(net)
    assert expected.format("Brian2 builder") in brian2_refusals(net)
    assert expected.format("lava compiler") in lava_refusals(net, "fixed_pt")
    assert any("Glow 'post.glow'" in r for r in native_refusals(net))


def test_a_neuron_model_subclass_is_refused_by_name_not_run_as_its_parent():
    from evospike.backends.brian2 import refusals as brian2_refusals
    from evospike.backends.lava import refusals as lava_refusals
    from evospike.backends.torch import refusals as torch_refusals

    @dataclass
    class LeakierLIF(LIF):
        kind: ClassVar[str] = "LeakierLIF"

    net = Network("model", 0.1)
    net.population("cells", 2, LeakierLIF())
    for reasons, backend in ((torch_refusals(net), "torch compiler"),
                             (brian2_refusals(net), "Brian2 builder"),
                             (lava_refusals(net, "fixed_pt"), "lava compiler")):
        assert any(r.startswith(f"Population 'cells': LeakierLIF neurons (no {backend} for "
                                "LeakierLIF (a subclass of LIF") for r in reasons), reasons
    del net, LeakierLIF
    gc.collect()


def test_every_carried_network_has_no_refusals():
    from evospike.backends.torch import refusals as torch_refusals
    from evospike.backends.torch.native.engine import refusals as native_refusals

    net = _net()
    assert torch_refusals(net) == [] and native_refusals(net) == []


# ------------------------------------------------------------------ Network.add
def test_add_refuses_an_object_that_declares_no_collection():
    with pytest.raises(ValidationError, match="node is not an IR node"):
        Network("n", 0.1).add(Stranger())


def test_a_second_process_of_the_same_name_is_refused_not_swapped_in():
    net = _net()
    net.modulator("reward", 10.0)
    with pytest.raises(ValidationError, match="name is already used"):
        net.modulator("reward", 20.0)
    assert net.processes["reward"].tau_ms == 10.0


def test_nodes_lists_every_node_field_by_field():
    net = _net()
    kinds = [type(n).__name__ for n in net.nodes()]
    assert kinds == ["Population", "SpikeTimesSource", "Projection", "STDP", "SpikeMonitor",
                     "WeightMonitor"]


def test_torch_fixed_point_refuses_the_new_rule_by_name(shadow_stdp):
    """The fixed-point engine runs Loihi's learning engine, which carries STDP and
    RewardModulatedSTDP only: a subclass is refused, not run as STDP nor left static."""
    cls, registry, compile_stdp = shadow_stdp
    registry.register(cls)(compile_stdp)  # carried by the float engines, not by Loihi's
    with pytest.raises(UnsupportedError) as info:
        get_backend("torch").compile(_net(cls), precision="fixed", progress=False)
    assert any(r.startswith("ShadowSTDP 'pre->post.rule'") for r in info.value.reasons), \
        info.value.reasons
