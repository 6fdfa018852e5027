"""Running the candidate and the reference for ``evospike validate``: same network, same seed
(so the same inputs and initial state), plus the reference under further seeds to learn what
"the same" means."""

from __future__ import annotations

import math
from dataclasses import dataclass

from evospike.backends import get_backend
from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.results import Results
from evospike.validation.report import ValidationReport, validate


@dataclass
class ValidationRuns:
    candidate: Results
    reference: Results
    reference_seeds: list[Results]
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
             progress: bool = True) -> ValidationRuns:
    """Run ``build()`` (a fresh network each time) on both backends.

    The candidate runs with ``seed``; the reference runs with ``seed`` and the
    ``n_reference_seeds`` seeds after it, as one batch of trials (on Brian2 the trials share
    one compiled build: the first compiles, the others reuse it).

    An interrupted run (incomplete results) raises KeyboardInterrupt: there is nothing to
    judge, and a Brian2 reference interrupted mid-batch keeps fewer trials than asked for."""
    check_options(candidate=candidate, reference=reference, candidate_options=candidate_options,
                  reference_options=reference_options, seed=seed,
                  n_reference_seeds=n_reference_seeds)
    net: Network = build()
    recurrent = net.recurrent_populations()
    cand = get_backend(candidate).compile(net, seeds=(seed,), progress=progress,
                                          **candidate_options).run(duration_ms)
    if not cand.complete:  # the reference would run for nothing
        raise KeyboardInterrupt(f"validate: the candidate run ({candidate}) was interrupted")
    seeds = tuple(range(seed, seed + n_reference_seeds + 1))
    ref_all = get_backend(reference).compile(build(), seeds=seeds, progress=progress,
                                             **reference_options).run(duration_ms)
    if not ref_all.complete:
        raise KeyboardInterrupt(f"validate: the reference run ({reference}) was interrupted")
    return ValidationRuns(cand, ref_all.trial(0),
                          [ref_all.trial(k) for k in range(1, len(seeds))],
                          require_exact=not recurrent, recurrent=recurrent,
                          process_kinds=tuple(p.kind for p in net.processes.values()))


def validate_runs(runs: ValidationRuns, *, tolerance_steps: int = 1,
                  margin: float = 2.0) -> ValidationReport:
    """The verdict: exact agreement required only for networks without recurrence."""
    return validate(runs.candidate, runs.reference, runs.reference_seeds,
                    tolerance_steps=tolerance_steps, require_exact=runs.require_exact,
                    margin=margin, process_kinds=runs.process_kinds)
