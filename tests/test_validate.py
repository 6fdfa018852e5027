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
                 "--duration", "300ms", "--reference-seeds", "2", "--tolerance-steps", "0",
                 "--out-dir", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert "exact agreement required" in text
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True and report["settings"]["tolerance_steps"] == 0
    for node in ("a", "b"):  # every spike of the 300 ms, in the same step, on both sides
        exact = report["nodes"][node]["exact"]
        assert exact["n_a"] == exact["n_b"] == exact["n_matched"] > 50, exact
        assert exact["divergence_step"] is None, exact
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


def _raster(results, node: str) -> list[tuple[int, int]]:
    steps, neurons = results.spike_steps(node)
    return sorted(zip(steps.tolist(), neurons.tolist(), strict=True))


def test_recurrent_network_agrees_spike_for_spike_over_the_whole_run_in_float64():
    """Chaotic recurrence amplifies any difference, yet in float64 the torch and Brian2
    rasters of CUBA are the same spikes in the same steps from the first to the last step."""
    runs = run_pair(_cuba_small, candidate="torch", reference="brian2", duration_ms=300.0,
                    seed=1, n_reference_seeds=2, candidate_options={"precision": "float64"},
                    reference_options={"target": "numpy"}, progress=False)
    assert runs.recurrent == ["exc", "inh"]
    report = validate_runs(runs, tolerance_steps=0)
    assert report.passed, report.table()
    for node in ("exc", "inh"):
        ours, theirs = _raster(runs.candidate, node), _raster(runs.reference, node)
        assert len(ours) > 300, f"{node}: {len(ours)} spikes"
        assert ours[-1][0] > 2900, f"{node}: the last spike should fall near the end of the run"
        assert ours == theirs, f"{node}: {len(ours)} spikes on torch, {len(theirs)} on Brian2"
        exact = report.nodes[node].exact
        assert exact.identical and exact.divergence_step is None


def test_recurrent_network_in_float32_parts_from_float64_only_after_an_exact_stretch():
    """float32 against Brian2's float64: rounding differences grow in a recurrent network, so
    the rasters do part (and the validator sees it), but only after tens of ms of identical
    spikes (on this seed: step 480 of exc, 539 of inh)."""
    runs = run_pair(_cuba_small, candidate="torch", reference="brian2", duration_ms=300.0,
                    seed=1, n_reference_seeds=2, candidate_options={"precision": "float32"},
                    reference_options={"target": "numpy"}, progress=False)
    report = validate_runs(runs, tolerance_steps=0)
    for node in ("exc", "inh"):
        exact = report.nodes[node].exact
        assert exact.divergence_step is not None and not exact.identical, node
        assert exact.divergence_step >= 300, (node, exact.divergence_step)
        first = [spike for spike in _raster(runs.candidate, node)
                 if spike[0] < exact.divergence_step]
        assert len(first) > 30 and first == [spike for spike in _raster(runs.reference, node)
                                             if spike[0] < exact.divergence_step]


def test_same_backend_twice_is_refused():
    with pytest.raises(Exception, match="candidate and reference are the same"):
        run_pair(_cuba_small, candidate="torch", reference="torch", duration_ms=10.0, seed=0,
                 n_reference_seeds=2, candidate_options={}, reference_options={})


@pytest.mark.slow
def test_cuba_validates_against_brian2(tmp_path):
    out = tmp_path / "val"
    code = main(["validate", str(ROOT / "examples" / "cuba.py"), "--against", "brian2",
                 "--target", "numpy", "--duration", "1000ms", "--tolerance-steps", "0",
                 "--out-dir", str(out), "--no-progress"])
    report = json.loads((out / "report.json").read_text())
    assert code == 0 and report["passed"] is True
    for node in ("exc", "inh"):  # float64 (the default): the whole second, spike for spike
        exact = report["nodes"][node]["exact"]
        assert exact["n_a"] == exact["n_b"] == exact["n_matched"] > 1000, exact
        assert exact["divergence_step"] is None, exact
