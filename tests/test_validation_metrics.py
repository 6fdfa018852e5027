"""Validation statistics and reports (evospike.validation) on synthetic rasters."""

import json
import math

import numpy as np
import pytest

from evospike.errors import EvoSpikeError
from evospike.results import Results, SpikeData
from evospike.validation import (
    STATISTICS,
    compare_distributions,
    match_spikes,
    spike_statistics,
    validate,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DT = 0.1


def make_results(steps, neurons, size, n_steps, seed=0, dt=DT, node="exc", backend="fake"):
    steps = np.asarray(steps, dtype=np.int64)
    neurons = np.asarray(neurons, dtype=np.int32)
    order = np.lexsort((neurons, steps))
    meta = {"dt_ms": dt, "n_steps": n_steps, "n_trials": 1, "network": "synthetic",
            "backend": backend, "seeds": np.array([seed])}
    data = SpikeData(size, steps[order], neurons[order], np.zeros(steps.size, np.int32))
    return Results(meta, spikes_by_node={node: data})


def poisson(seed, n=100, rate_hz=20.0, duration_ms=2000.0, backend="fake"):
    """Independent Bernoulli-per-step (discrete Poisson) trains of ``n`` neurons."""
    n_steps = int(round(duration_ms / DT))
    rng = np.random.default_rng(seed)
    steps, neurons = np.nonzero(rng.random((n_steps, n)) < rate_hz * DT * 1e-3)
    return make_results(steps, neurons, n, n_steps, seed=seed, backend=backend)


def moved(res, index, by, node="exc"):
    """Copy of ``res`` with spike ``index`` of ``node`` shifted by ``by`` steps."""
    d = res.spikes_by_node[node]
    steps = d.step.copy()
    steps[index] += by
    return make_results(steps, d.neuron, d.size, res.n_steps, seed=int(res.meta["seeds"][0]))


def reseeded(res, seed):
    """The same spikes labelled with another seed (a network with no random elements)."""
    d = res.spikes_by_node["exc"]
    return make_results(d.step, d.neuron, d.size, res.n_steps, seed=seed)


@pytest.fixture(scope="module")
def base():
    return poisson(1)


# ----------------------------------------------------------------------------- match_spikes
def test_identical_rasters_match_completely(base):
    m = match_spikes(base, base, "exc")
    n = base.spikes_by_node["exc"].step.size
    assert n > 3000
    assert (m.n_a, m.n_b, m.n_matched) == (n, n, n)
    assert m.fraction_matched == 1.0
    assert m.divergence_step is None and m.divergence_ms is None
    assert m.fraction_matched_before_divergence == 1.0


def test_one_step_shift_within_tolerance_matches(base):
    shifted = moved(base, 100, +1)
    m = match_spikes(shifted, base, "exc", tolerance_steps=1)
    assert m.fraction_matched == 1.0 and m.divergence_step is None
    strict = match_spikes(shifted, base, "exc", tolerance_steps=0)
    n = base.spikes_by_node["exc"].step.size
    assert strict.n_matched == n - 1
    assert strict.divergence_step == base.spikes_by_node["exc"].step[100]


@pytest.mark.parametrize("by", [3, -3])
def test_three_step_shift_is_unmatched_and_diverges_at_the_earlier_step(base, by):
    original = int(base.spikes_by_node["exc"].step[200])
    shifted = moved(base, 200, by)
    m = match_spikes(shifted, base, "exc", tolerance_steps=1)
    n = base.spikes_by_node["exc"].step.size
    assert m.n_matched == n - 1
    assert m.fraction_matched == pytest.approx((n - 1) / n)
    assert m.divergence_step == min(original, original + by)
    assert m.divergence_ms == pytest.approx(min(original, original + by) * DT)
    assert m.divergence_side == ("b" if by > 0 else "a")  # a = shifted, b = base
    assert m.divergence_neuron == int(base.spikes_by_node["exc"].neuron[200])
    assert m.n_before_divergence > 0 and m.fraction_matched_before_divergence == 1.0


def test_matching_is_one_to_one():
    a = make_results([10, 11], [0, 0], 1, 100)
    b = make_results([10], [0], 1, 100)
    m = match_spikes(a, b, "exc", tolerance_steps=1)
    assert (m.n_a, m.n_b, m.n_matched) == (2, 1, 1)
    assert m.fraction_matched == pytest.approx(2 / 3)
    assert m.divergence_step == 11 and m.divergence_side == "a"


def test_matching_finds_the_largest_one_to_one_pairing():
    # Pairing the equal steps (2, 2) would strand 1 and 3; the best pairing is 1-2, 2-3.
    a = make_results([1, 2], [0, 0], 1, 10)
    b = make_results([2, 3], [0, 0], 1, 10)
    assert match_spikes(a, b, "exc", tolerance_steps=1).n_matched == 2


def test_matching_other_neuron_does_not_count():
    a = make_results([5], [0], 2, 10)
    b = make_results([5], [1], 2, 10)
    m = match_spikes(a, b, "exc")
    assert m.n_matched == 0 and m.fraction_matched == 0.0
    assert (m.divergence_step, m.divergence_neuron, m.divergence_side) == (5, 0, "a")
    assert math.isnan(m.fraction_matched_before_divergence)


def test_empty_rasters_match_and_mismatched_dt_is_refused():
    empty = make_results([], [], 3, 10)
    m = match_spikes(empty, empty, "exc")
    assert m.fraction_matched == 1.0 and m.divergence_step is None
    other_dt = make_results([], [], 3, 10, dt=0.05)
    with pytest.raises(EvoSpikeError, match="dt differs"):
        match_spikes(empty, other_dt, "exc")


# ----------------------------------------------------------------------------- statistics
def test_regular_train_has_zero_cv_and_lv():
    period, n_steps = 100, 10_000  # 10 ms period at dt 0.1 ms over 1 s
    steps = np.concatenate([np.arange(k, n_steps, period) for k in range(4)])
    neurons = np.repeat(np.arange(4), n_steps // period)
    s = spike_statistics(make_results(steps, neurons, 4, n_steps), "exc")
    np.testing.assert_allclose(s["rate_hz"], 100.0)
    assert s["isi_cv"].shape == (4,) and s["isi_lv"].shape == (4,)
    np.testing.assert_allclose(s["isi_cv"], 0.0, atol=1e-12)
    np.testing.assert_allclose(s["isi_lv"], 0.0, atol=1e-12)


def test_poisson_train_has_cv_and_lv_near_one():
    res = poisson(7, n=40, rate_hz=20.0, duration_ms=10_000.0)
    s = spike_statistics(res, "exc")
    assert s["isi_cv"].size == 40
    assert np.mean(s["isi_cv"]) == pytest.approx(1.0, abs=0.05)
    assert np.mean(s["isi_lv"]) == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(s["rate_hz"].mean(), 20.0, rtol=0.05)
    # Against a direct computation for one neuron.
    steps, neurons = res.spike_steps("exc")
    isi = np.diff(np.sort(steps[neurons == 3])).astype(float)
    assert s["isi_cv"][3] == pytest.approx(isi.std() / isi.mean())
    lv = 3 * np.mean(((isi[:-1] - isi[1:]) / (isi[:-1] + isi[1:])) ** 2)
    assert s["isi_lv"][3] == pytest.approx(lv)


def test_cv_needs_three_spikes():
    res = make_results([10, 20, 5, 15, 40], [0, 0, 1, 1, 1], 3, 100)
    s = spike_statistics(res, "exc")
    assert s["isi_cv"].shape == (1,)  # only neuron 1 fired 3 times
    assert s["isi_cv"][0] == pytest.approx(np.std([10, 25]) / np.mean([10, 25]))
    assert s["isi_lv"][0] == pytest.approx(3 * (15 / 35) ** 2)


def test_correlation_of_identical_trains_is_one_and_pairs_are_sampled():
    rng = np.random.default_rng(3)
    steps = np.flatnonzero(rng.random(20_000) < 0.005)
    res = make_results(np.concatenate([steps, steps]),
                       np.repeat([0, 1], steps.size), 2, 20_000)
    np.testing.assert_allclose(spike_statistics(res, "exc")["count_correlation"], [1.0])

    many = poisson(5, n=80)  # 3160 pairs, more than max_pairs
    c = spike_statistics(many, "exc", max_pairs=500, seed=1)["count_correlation"]
    assert c.size == 500
    assert abs(c.mean()) < 0.01  # independent neurons
    again = spike_statistics(many, "exc", max_pairs=500, seed=1)["count_correlation"]
    np.testing.assert_array_equal(c, again)  # the seeded sample is reproducible


def test_correlation_skips_silent_and_constant_neurons():
    # Neuron 0 fires once in every 5 ms bin (constant counts), 1 is silent, 2 and 3 random.
    n_steps = 10_000
    rng = np.random.default_rng(0)
    s2 = np.flatnonzero(rng.random(n_steps) < 0.01)
    s3 = np.flatnonzero(rng.random(n_steps) < 0.01)
    steps = np.concatenate([np.arange(0, n_steps, 50), s2, s3])
    neurons = np.concatenate([np.zeros(200, int), np.full(s2.size, 2), np.full(s3.size, 3)])
    c = spike_statistics(make_results(steps, neurons, 4, n_steps), "exc")["count_correlation"]
    assert c.shape == (1,)  # only the pair (2, 3)
    x = np.bincount(s2 // 50, minlength=200)
    y = np.bincount(s3 // 50, minlength=200)
    assert c[0] == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_compare_distributions_values():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    same = compare_distributions(x, x)
    assert (same["ks"], same["wasserstein"], same["effect_size"]) == (0.0, 0.0, 0.0)
    shifted = compare_distributions(x + 2.0, x)
    assert shifted["ks"] == pytest.approx(0.5)
    assert shifted["wasserstein"] == pytest.approx(2.0)
    assert shifted["effect_size"] == pytest.approx(2.0 / np.std(x, ddof=1))
    assert (shifted["n_x"], shifted["mean_x"], shifted["mean_y"]) == (4, 4.5, 2.5)
    const = compare_distributions(np.full(5, 3.0), np.full(6, 3.0))
    assert const["effect_size"] == 0.0
    empty = compare_distributions(np.zeros(0), x)
    assert math.isnan(empty["ks"]) and math.isnan(empty["wasserstein"])
    assert math.isnan(empty["effect_size"]) and empty["n_x"] == 0


# ----------------------------------------------------------------------------- validate
@pytest.fixture(scope="module")
def reference_seeds():
    return [poisson(s) for s in (2, 3, 4, 5)]


def verdicts(report, node="exc"):
    return {c.name: c.verdict for c in report.nodes[node].criteria}


def test_candidate_equal_to_reference_passes(base, reference_seeds):
    rep = validate(base, base, reference_seeds[:2])
    assert rep.passed and rep.exit_status() == 0
    assert verdicts(rep) == {"exact": "info", **{s: "pass" for s in STATISTICS}}
    for c in rep.nodes["exc"].criteria[1:]:
        assert c.distances["ks"] == 0.0 and c.distances["wasserstein"] == 0.0
        assert c.thresholds["ks"] >= 0.05
    assert rep.nodes["exc"].exact.fraction_matched == 1.0
    assert "100.00% of spikes matched" in rep.nodes["exc"].criteria[0].reason


def test_candidate_from_same_process_with_other_seed_passes(base, reference_seeds):
    rep = validate(poisson(11, backend="torch"), base, reference_seeds)
    assert verdicts(rep) == {"exact": "info", **{s: "pass" for s in STATISTICS}}
    assert rep.passed
    exact = rep.nodes["exc"].exact
    assert exact.fraction_matched < 0.05  # independent draws barely coincide
    assert any("seed 11 differs from reference seed 1" in w for w in rep.warnings)
    rate = rep.nodes["exc"].criteria[1]
    assert rate.reference_max["n_pairs"] == 10  # all pairs of 5 reference runs
    assert rate.distances["ks"] <= rate.thresholds["ks"]


def test_doubled_rates_fail(base, reference_seeds):
    rep = validate(poisson(11, rate_hz=40.0), base, reference_seeds[:2])
    assert verdicts(rep)["rate_hz"] == "fail"
    assert not rep.passed and rep.exit_status() == 1
    rate = rep.nodes["exc"].criteria[1]
    assert rate.distances["ks"] > 0.9
    assert rate.distances["mean_x"] == pytest.approx(2 * rate.distances["mean_y"], rel=0.1)
    assert "exc: firing rate (Hz)" in rep.reason
    assert "KS" in rate.reason and ">" in rate.reason


def test_require_exact_fails_on_one_moved_spike(base):
    seeds = [reseeded(base, 2), reseeded(base, 3)]  # a network with no random elements
    candidate = moved(base, 50, 5)
    rep = validate(candidate, base, seeds, require_exact=True)
    assert verdicts(rep)["exact"] == "fail"
    assert not rep.passed and "exact spikes" in rep.reason
    # The statistics barely move and the floors keep zero seed-to-seed spread usable.
    assert all(verdicts(rep)[s] == "pass" for s in STATISTICS)
    lenient = validate(candidate, base, seeds, require_exact=False)
    assert verdicts(lenient)["exact"] == "info" and lenient.passed
    assert validate(base, base, seeds, require_exact=True).passed


def test_divergence_in_first_step_is_noted(base, reference_seeds):
    d = base.spikes_by_node["exc"]
    candidate = make_results(np.concatenate([[0], d.step]), np.concatenate([[0], d.neuron]),
                             d.size, base.n_steps, seed=1)
    rep = validate(candidate, base, reference_seeds[:2])
    exact = rep.nodes["exc"].criteria[0]
    assert exact.distances["divergence_step"] == 0
    assert "differ from the first step" in exact.reason


def test_nothing_to_compare_fails():
    tiny = [make_results([1, 5], [0, 1], 3, 100, seed=s) for s in range(4)]
    rep = validate(tiny[0], tiny[1], tiny[2:])
    assert set(verdicts(rep).values()) == {"info", "insufficient data"}
    assert not rep.passed and rep.reason.startswith("nothing to compare")


def test_validate_refuses_bad_inputs(base, reference_seeds):
    with pytest.raises(EvoSpikeError, match="at least 2 reference runs"):
        validate(base, base, reference_seeds[:1])
    short = make_results([], [], 100, 10)
    with pytest.raises(EvoSpikeError, match="same duration"):
        validate(short, base, reference_seeds[:2])
    with pytest.raises(EvoSpikeError, match="no spikes recorded for"):
        validate(base, base, reference_seeds[:2], nodes=["inh"])


def test_reports_are_written(tmp_path, base, reference_seeds):
    rep = validate(poisson(11, rate_hz=40.0, backend="torch"), base, reference_seeds[:2])
    rep.to_json(tmp_path / "v.json")
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["verdict"] == "fail" and data["passed"] is False
    assert data["meta"]["candidate_backend"] == "torch"
    assert data["meta"]["dt_ms"] == DT and data["meta"]["duration_ms"] == 2000.0
    crit = {c["name"]: c for c in data["nodes"]["exc"]["criteria"]}
    assert crit["rate_hz"]["verdict"] == "fail"
    assert crit["exact"]["reference_max"] == {}
    assert len(data["nodes"]["exc"]["reference_pairs"]["isi_cv"]) == 3

    rep.to_markdown(tmp_path / "v.md")
    md = (tmp_path / "v.md").read_text()
    assert "## `exc` (100 neurons)" in md and "**Verdict: FAIL**" in md
    assert "| firing rate (Hz) |" in md and "| **fail** |" in md and "| **info** |" in md

    table = rep.table()
    assert "exc" in table and "overall: FAIL" in table
    assert sum(line.startswith("exc ") for line in table.splitlines()) == 5

    rep.plot(tmp_path / "v.png")
    assert (tmp_path / "v.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.md", "v.png"]


def test_json_turns_nan_into_null(tmp_path):
    tiny = [make_results([1, 5], [0, 1], 3, 100, seed=s) for s in range(4)]
    rep = validate(tiny[0], tiny[1], tiny[2:])
    rep.to_json(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())  # strict JSON: no NaN tokens
    cv = next(c for c in data["nodes"]["exc"]["criteria"] if c["name"] == "isi_cv")
    assert cv["verdict"] == "insufficient data" and cv["distances"]["ks"] is None


def test_two_nodes_are_validated_and_plotted(tmp_path):
    def two(seed, rate=20.0):
        res = poisson(seed, n=60, rate_hz=rate, duration_ms=1000.0)
        res.spikes_by_node["inh"] = poisson(seed + 100, n=30, rate_hz=40.0,
                                            duration_ms=1000.0).spikes_by_node["exc"]
        return res

    rep = validate(two(1, rate=10.0), two(1), [two(2), two(3)])
    assert list(rep.nodes) == ["exc", "inh"]
    assert verdicts(rep, "exc")["rate_hz"] == "fail"
    assert verdicts(rep, "inh")["exact"] == "info"
    assert verdicts(rep, "inh")["rate_hz"] == "pass"  # inh is the same in both runs
    assert rep.nodes["inh"].exact.fraction_matched == 1.0
    assert rep.reason.startswith("failed: exc: firing rate")
    assert rep.plot(tmp_path / "two.png").read_bytes()[:8] == PNG_MAGIC
