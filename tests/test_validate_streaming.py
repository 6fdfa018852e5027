"""`validate` streams its further reference runs: each is reduced to its statistics as soon as
it ends, and the report is the same as when every run is kept in full."""

import weakref
from itertools import combinations

import numpy as np
import pytest

from evospike.backends import get_backend
from evospike.errors import EvoSpikeError
from evospike.results import Results, SpikeData
from evospike.validation import runs as runs_module
from evospike.validation import validate
from evospike.validation.metrics import STATISTICS, compare_distributions, spike_statistics
from evospike.validation.report import RunSummary, summarize_run
from evospike.validation.runs import run_pair, validate_runs
from tests.conftest import load_example

DURATION_MS = 200.0
SEED = 3
N_FURTHER = 4


def _cuba_tiny():
    return load_example("cuba").build(400, connection_probability=0.1)


def _without_time(report) -> dict:
    d = report.to_dict()
    d["meta"].pop("created")
    return d


@pytest.mark.slow
def test_streamed_report_equals_the_report_from_every_run_kept():
    """A recurrent network with 4 further reference seeds: the old way (one batch of Brian2
    trials, every trial kept as Results) and the streamed way give the same report.json."""
    streamed = run_pair(_cuba_tiny, candidate="torch", reference="brian2",
                        duration_ms=DURATION_MS, seed=SEED, n_reference_seeds=N_FURTHER,
                        candidate_options={"precision": "float64"},
                        reference_options={"target": "numpy"}, progress=False)
    assert all(isinstance(s, RunSummary) for s in streamed.reference_seeds)
    new = validate_runs(streamed, margin=2.0)

    # the old way: the reference as one batch, every trial kept in full
    cand = get_backend("torch").compile(_cuba_tiny(), seeds=(SEED,), precision="float64",
                                        progress=False).run(DURATION_MS)
    seeds = tuple(range(SEED, SEED + N_FURTHER + 1))
    ref_all = get_backend("brian2").compile(_cuba_tiny(), seeds=seeds, target="numpy",
                                            progress=False).run(DURATION_MS)
    trials = [ref_all.trial(k) for k in range(len(seeds))]
    old = validate(cand, trials[0], trials[1:], margin=2.0, require_exact=False,
                   process_kinds=streamed.process_kinds)

    assert _without_time(new) == _without_time(old)
    # and the seed-to-seed distances, recomputed here from the full trials
    for node in ("exc", "inh"):
        st = [spike_statistics(t, node, 0, 5.0, 2000, seed=0) for t in trials]
        assert sum(len(s["rate_hz"]) for s in st) > 0
        for stat in STATISTICS:
            expected = [compare_distributions(st[a][stat], st[b][stat])
                        for a, b in combinations(range(len(trials)), 2)]
            got = new.nodes[node].reference_pairs[stat]
            assert len(got) == len(expected) == 10
            for g, e in zip(got, expected, strict=True):
                assert {k: g[k] for k in e} == pytest.approx(e, nan_ok=True), (node, stat)
    # the spikes are real: some criterion had something to compare
    assert any(c.decisive for c in new.criteria)


# ----------------------------------------------------------------------------- fake backend
DT, N_STEPS, SIZE = 0.1, 2000, 60


def _fake_results(seed: int, backend: str) -> Results:
    rng = np.random.default_rng(seed)
    steps, neurons = np.nonzero(rng.random((N_STEPS, SIZE)) < 20.0 * DT * 1e-3)
    meta = {"network": "fake", "backend": backend, "dt_ms": DT, "n_steps": N_STEPS,
            "n_trials": 1, "seeds": np.array([seed]), "complete": True}
    return Results(meta, {"exc": SpikeData(SIZE, steps.astype(np.int64),
                                           neurons.astype(np.int32),
                                           np.zeros(steps.size, np.int32))})


class _Tracker:
    """A backend whose reference runs are counted while alive (weak references)."""

    def __init__(self):
        self.refs = []  # weak references to the further reference runs
        self.most_alive = 0
        self.made = []

    def alive(self) -> int:
        return sum(r() is not None for r in self.refs)

    def backend(self, name: str):
        tracker = self

        class Backend:
            def compile(self, net, seeds, progress, **options):
                (seed,) = seeds  # streaming runs the reference one seed at a time
                self.seed = seed
                return self

            def run(self, duration_ms):
                res = _fake_results(self.seed, name)
                if name == "reference" and self.seed != SEED:
                    tracker.refs.append(weakref.ref(res))
                    tracker.most_alive = max(tracker.most_alive, tracker.alive())
                    tracker.made.append(self.seed)
                return res

        return Backend()


def _network():
    from evospike import LIF, Network

    net = Network("fake", dt_ms=DT)
    net.population("exc", SIZE, LIF())
    return net


def test_at_most_one_further_reference_run_is_alive(monkeypatch):
    tracker = _Tracker()
    monkeypatch.setattr(runs_module, "get_backend",
                        lambda name: tracker.backend("candidate" if name == "torch"
                                                     else "reference"))
    out = run_pair(_network, candidate="torch", reference="brian2", duration_ms=200.0,
                   seed=SEED, n_reference_seeds=N_FURTHER, candidate_options={},
                   reference_options={}, progress=False)
    assert tracker.made == list(range(SEED + 1, SEED + N_FURTHER + 1))
    assert tracker.most_alive == 1  # each run freed before the next one was made
    assert tracker.alive() == 0
    assert [int(s.meta["seeds"][0]) for s in out.reference_seeds] == tracker.made

    # the summaries give the report that the full runs give
    full = [_fake_results(s, "reference") for s in tracker.made]
    streamed = validate_runs(out, margin=2.0)
    kept = validate(out.candidate, out.reference, full, margin=2.0,
                    require_exact=out.require_exact)
    assert _without_time(streamed) == _without_time(kept)
    assert streamed.nodes["exc"].reference_pairs["rate_hz"][0]["n_x"] == SIZE


def test_summaries_made_with_other_settings_are_refused():
    ref = _fake_results(1, "reference")
    further = [summarize_run(_fake_results(s, "reference"), bin_ms=10.0) for s in (2, 3)]
    with pytest.raises(EvoSpikeError, match="summarized with bin_ms 10.0"):
        validate(ref, ref, further)
    with pytest.raises(EvoSpikeError, match="run 2 is a dict"):
        validate(ref, ref, [further[0], {"exc": 1}], bin_ms=10.0)
    partial = [summarize_run(_fake_results(s, "reference"), nodes=[]) for s in (2, 3)]
    with pytest.raises(EvoSpikeError, match="no statistics of them"):
        validate(ref, ref, partial)
    report = validate(ref, ref, further, bin_ms=10.0)
    assert report.settings["bin_ms"] == 10.0 and report.passed
