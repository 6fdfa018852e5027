"""The Loihi 2 hardware profile (evospike.hardware) and `evospike map`."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from evospike import AllToAll, CubaLIF, FixedProbability, Network
from evospike.cli import main
from evospike.errors import EvoSpikeError
from evospike.hardware import LOIHI2, synapses_per_core
from evospike.mapping import get_hardware, map_network
from evospike.model_loading import load_model
from tests.conftest import ROOT


def test_every_limit_has_a_value_unit_and_source():
    names = {lim.name for lim in LOIHI2.limits}
    for needed in ("neurons_per_core", "synaptic_memory_per_core", "fan_in_axons_per_core",
                   "fan_out_axons_per_core", "weight_bits", "state_bits", "max_delay_steps",
                   "cores_per_chip"):
        assert needed in names
    for lim in LOIHI2.limits:
        assert lim.value > 0 and lim.unit and len(lim.source) > 20, lim
    # figures that are not stated for Loihi 2 say so
    assert "uncertain" in LOIHI2.limit("fan_in_axons_per_core").source
    assert "uncertain" in LOIHI2.limit("bits_per_synapse").source
    assert synapses_per_core() == 192 * 1024 * 8 // 16
    with pytest.raises(KeyError, match="no limit 'teraflops'"):
        LOIHI2.limit("teraflops")
    with pytest.raises(EvoSpikeError, match="no hardware profile 'truenorth'"):
        get_hardware("truenorth")


def test_cuba_maps_onto_one_chip():
    net = load_model(ROOT / "examples" / "cuba.py")
    report = map_network(net)
    assert report.fits and report.chips == 1
    by = {p.name: p for p in report.populations}
    syn_in = sum(p.n_synapses for p in net.projections.values() if p.post == "exc")
    assert by["exc"].incoming_synapses == syn_in
    assert by["exc"].cores == max(math.ceil(3200 / 8192), math.ceil(syn_in / synapses_per_core()),
                                  math.ceil(4000 / 4096))
    assert report.cores == sum(p.cores for p in report.populations)
    # CUBA's two synaptic time constants are noted for Lava's fixed_pt, not a broken limit
    assert any("5 and 10 ms" in n for n in report.notes)


def test_map_lists_every_broken_limit():
    net = Network("too_much", dt_ms=1.0)
    src = net.poisson_source("in", 100_000, 1.0)
    big = net.population("big", 20_000, CubaLIF())
    one = net.population("one", 1, CubaLIF())
    net.connect(src, one, AllToAll(), weight=1.0, name="wide")
    net.connect(big, big, FixedProbability(0.0001, seed=1), weight=1.0, delay_ms=100.0,
                name="slow")
    w = np.ones(20_000)
    w[0] = 1e-4
    net.connect(big, one, AllToAll(), weight=w, name="fine")
    report = map_network(net)
    text = "\n".join(report.breaks)
    assert "Population 'one'" in text and "120000 synapses" in text   # one neuron's fan-in
    assert "Projection 'slow'" in text and "100 steps" in text
    assert "Projection 'fine'" in text and "weight precision" in text
    assert not report.fits
    by = {p.name: p for p in report.populations}
    assert by["big"].cores_for_neurons == math.ceil(20_000 / 8192)
    assert by["one"].cores_for_synapses == math.ceil(120_000 / synapses_per_core())


def test_cli_map_exit_status(tmp_path, capsys):
    assert main(["map", str(ROOT / "examples" / "cuba.py"), "--limits"]) == 0
    out = capsys.readouterr().out
    assert "neurons_per_core" in out and "fits: no limit broken" in out and "exc" in out
    model = tmp_path / "far.py"
    model.write_text(textwrap.dedent("""
        from evospike import AllToAll, CubaLIF, Network

        def build():
            net = Network("far", dt_ms=1.0)
            a = net.population("a", 3, CubaLIF())
            net.connect(a, a, AllToAll(), weight=1.0, delay_ms=80.0, name="late")
            return net
    """))
    assert main(["map", str(model)]) == 1
    out = capsys.readouterr().out
    assert "breaks 1 limit" in out and "'late'" in out
    assert main(["map", str(ROOT / "examples" / "cuba.py"), "--quantization"]) == 0
    assert "no fixed-point form" in capsys.readouterr().out


def test_cli_run_fixed_precision(tmp_path, capsys):
    model = tmp_path / "m.py"
    model.write_text(textwrap.dedent("""
        from evospike import CubaLIF, Network

        def build():
            net = Network("m", dt_ms=1.0)
            net.population("p", 4, CubaLIF(bias=1.5, v_thresh=10.0))
            return net
    """))
    out = tmp_path / "r.h5"
    assert main(["run", str(model), "--precision", "fixed", "--duration", "50ms",
                 "--out", str(out), "--no-progress"]) == 0
    from evospike.results import Results

    res = Results.load(out)
    assert res.meta["precision"] == "fixed" and res.spikes_by_node["p"].step.size > 0
