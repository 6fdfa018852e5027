"""Running the candidate and the reference for ``evospike validate``: same network, same seed
(so the same inputs and initial state), plus the reference under further seeds to learn what
"the same" means."""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass

from evospike.backends import get_backend
from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.results import Results
from evospike.validation.report import (
    BIN_MS,
    MAX_PAIRS,
    RunSummary,
    ValidationReport,
    summarize_run,
    validate,
)


@dataclass
class ValidationRuns:
    """The candidate and the same-seed reference in full (the exact match and the figure need
    their spikes); the further reference runs only as their statistics."""

    candidate: Results
    reference: Results
    reference_seeds: list[RunSummary]
    require_exact: bool
    recurrent: list[str]
    process_kinds: tuple[str, ...] = ()


#: seeds are stored as 64-bit signed integers in the results files
MAX_SEED = 2**63 - 1


def check_options(*, candidate: str, reference: str, candidate_options: dict | None = None,
                  reference_options: dict | None = None, seed: int = 0,
                  n_reference_seeds: int = 4, tolerance_steps: int = 1,
                  margin: float = 2.0) -> None:
    """Refuse bad validation settings before anything runs (a validation may simulate for
    minutes before the verdict would otherwise notice them)."""
    get_backend(candidate)
    get_backend(reference)
    if candidate == reference and (candidate_options or {}) == (reference_options or {}):
        raise EvoSpikeError(f"validate: candidate and reference are the same ({candidate})")
    if n_reference_seeds < 2:
        raise EvoSpikeError(f"validate: --reference-seeds must be at least 2 "
                            f"(got {n_reference_seeds})")
    last = seed + n_reference_seeds
    if seed < 0 or last > MAX_SEED:
        raise EvoSpikeError(f"validate: seeds {seed} to {last} (--seed and the "
                            f"--reference-seeds after it) must lie in 0..{MAX_SEED} (got --seed "
                            f"{seed})")
    if tolerance_steps < 0:
        raise EvoSpikeError(f"validate: --tolerance-steps must be 0 or more (got "
                            f"{tolerance_steps})")
    if not (math.isfinite(margin) and margin > 0):
        raise EvoSpikeError(f"validate: --margin must be a finite number > 0 (got {margin})")


def run_pair(build, *, candidate: str, reference: str, duration_ms: float, seed: int,
             n_reference_seeds: int, candidate_options: dict, reference_options: dict,
             progress: bool = True, bin_ms: float = BIN_MS,
             max_pairs: int = MAX_PAIRS) -> ValidationRuns:
    """Run ``build()`` (a fresh network each time) on both backends.

    The candidate runs with ``seed``; the reference runs with ``seed`` and the
    ``n_reference_seeds`` seeds after it, one seed at a time. Each further reference run is
    reduced to its statistics (:func:`summarize_run` with ``bin_ms`` and ``max_pairs``) as
    soon as it ends and its results dropped, so memory holds one reference trial's spikes
    and simulator state at a time, not all of them (on Brian2's runtime targets the code
    generated for the first run is cached and reused by the others).

    An interrupted run (incomplete results) raises KeyboardInterrupt: there is nothing to
    judge."""
    check_options(candidate=candidate, reference=reference, candidate_options=candidate_options,
                  reference_options=reference_options, seed=seed,
                  n_reference_seeds=n_reference_seeds)
    net: Network = build()
    recurrent = net.recurrent_populations()
    kinds = tuple(p.kind for p in net.processes.values())
    cand = get_backend(candidate).compile(net, seeds=(seed,), progress=progress,
                                          **candidate_options).run(duration_ms)
    del net
    if not cand.complete:  # the reference would run for nothing
        raise KeyboardInterrupt(f"validate: the candidate run ({candidate}) was interrupted")
    ref = _run_reference(build, reference, seed, duration_ms, progress, reference_options)
    further = []
    for s in range(seed + 1, seed + n_reference_seeds + 1):
        res = _run_reference(build, reference, s, duration_ms, progress, reference_options)
        further.append(summarize_run(res, bin_ms=bin_ms, max_pairs=max_pairs))
        del res
        # a simulator's objects can hold each other in cycles: free this trial before the next
        gc.collect()
    return ValidationRuns(cand, ref, further, require_exact=not recurrent, recurrent=recurrent,
                          process_kinds=kinds)


def _run_reference(build, reference: str, seed: int, duration_ms: float, progress: bool,
                   options: dict) -> Results:
    res = get_backend(reference).compile(build(), seeds=(seed,), progress=progress,
                                         **options).run(duration_ms)
    if not res.complete:
        raise KeyboardInterrupt(f"validate: the reference run ({reference}) was interrupted "
                                f"(seed {seed})")
    return res


def validate_runs(runs: ValidationRuns, *, tolerance_steps: int = 1,
                  margin: float = 2.0) -> ValidationReport:
    """The verdict: exact agreement required only for networks without recurrence."""
    summary = runs.reference_seeds[0] if runs.reference_seeds else None
    extra = {} if summary is None else {"bin_ms": summary.bin_ms, "max_pairs": summary.max_pairs}
    return validate(runs.candidate, runs.reference, runs.reference_seeds,
                    tolerance_steps=tolerance_steps, require_exact=runs.require_exact,
                    margin=margin, process_kinds=runs.process_kinds, **extra)
