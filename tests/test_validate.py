"""`evospike validate`: the two backends on the same network, judged exactly (feed-forward) or
statistically (recurrent); and a validator that can say no."""

import json

import pytest

from evospike import Network
from evospike.backends import get_backend
from evospike.cli import main
from evospike.validation import validate
from evospike.validation.runs import run_pair, validate_runs
from tests.conftest import ROOT, load_example

FEEDFORWARD_MODEL = '''
from evospike import LIF, AdaptiveLIF, FixedProbability, Network


def build():
    net = Network("chain", dt_ms=0.1)
    drive = net.poisson_source("drive", 80, rate_hz=25.0)
    a = net.population("a", 40, LIF(v_rest_mV=-56.0, tau_refrac_ms=2.0))
    b = net.population("b", 30, AdaptiveLIF(v_rest_mV=-54.0))
    net.connect(drive, a, FixedProbability(0.3, seed=1), weight=8.0, delay_ms=0.5)
    net.connect(a, b, FixedProbability(0.4, seed=2), weight=6.0, delay_ms=1.2)
    net.connect(drive, b, FixedProbability(0.1, seed=3), weight=-3.0, target="inh")
    net.record_spikes(a, b)
    return net
'''


def _cuba_small(weight_scale: float = 1.0) -> Network:
    net = load_example("cuba").build(1000, connection_probability=0.08)
    for proj in net.projections.values():
        proj.weights *= weight_scale
    return net


def test_feedforward_network_must_and_does_agree_exactly(tmp_path, capsys):
    model = tmp_path / "chain.py"
    model.write_text(FEEDFORWARD_MODEL)
    out = tmp_path / "val"
    code = main(["validate", str(model), "--against", "brian2", "--target", "numpy",
                 "--duration", "300ms", "--reference-seeds", "2", "--out-dir", str(out),
                 "--no-progress"])
    text = capsys.readouterr().out
    assert "exact agreement required" in text
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert (out / "report.md").read_text().count("exact spikes") >= 2
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_doubled_weights_fail_validation():
    runs = run_pair(_cuba_small, candidate="torch", reference="brian2", duration_ms=300.0,
                    seed=0, n_reference_seeds=3, candidate_options={"precision": "float64"},
                    reference_options={"target": "numpy"}, progress=False)
    assert not runs.require_exact and runs.recurrent == ["exc", "inh"]
    same = validate_runs(runs)
    assert same.passed, same.table()
    doubled = get_backend("torch").compile(_cuba_small(2.0), seeds=(0,), precision="float64",
                                           progress=False).run(300.0)
    report = validate(doubled, runs.reference, runs.reference_seeds, margin=2.0)
    assert not report.passed
    assert report.exit_status() == 1
    failing = {(node, c.label) for node, nr in report.nodes.items() for c in nr.criteria
               if c.verdict == "fail"}
    # a balanced network keeps its mean rate when all weights double, but not its irregularity
    assert any(name.startswith(("ISI", "firing rate", "count")) for _, name in failing), \
        report.table()


def test_recurrent_network_agrees_exactly_for_a_while_in_float32():
    runs = run_pair(_cuba_small, candidate="torch", reference="brian2", duration_ms=300.0,
                    seed=1, n_reference_seeds=2, candidate_options={"precision": "float32"},
                    reference_options={"target": "numpy"}, progress=False)
    report = validate_runs(runs)
    exact = report.nodes["exc"].exact
    # float32 against float64: the rasters part at some point, but not at the start
    assert exact.divergence_step is None or exact.divergence_step > 10
    assert exact.fraction_matched > 0.05


def test_same_backend_twice_is_refused():
    with pytest.raises(Exception, match="candidate and reference are the same"):
        run_pair(_cuba_small, candidate="torch", reference="torch", duration_ms=10.0, seed=0,
                 n_reference_seeds=2, candidate_options={}, reference_options={})


@pytest.mark.slow
def test_cuba_validates_against_brian2(tmp_path):
    out = tmp_path / "val"
    code = main(["validate", str(ROOT / "examples" / "cuba.py"), "--against", "brian2",
                 "--target", "numpy", "--duration", "1000ms", "--out-dir", str(out),
                 "--no-progress"])
    report = json.loads((out / "report.json").read_text())
    assert code == 0 and report["passed"] is True
    for node in ("exc", "inh"):
        exact = report["nodes"][node]["exact"]
        assert exact["divergence_step"] is None or exact["divergence_step"] > 0
