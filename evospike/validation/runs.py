"""Running the candidate and the reference for ``evospike validate``: same network, same seed
(so the same inputs and initial state), plus the reference under further seeds to learn what
"the same" means."""

from __future__ import annotations

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


def run_pair(build, *, candidate: str, reference: str, duration_ms: float, seed: int,
             n_reference_seeds: int, candidate_options: dict, reference_options: dict,
             progress: bool = True) -> ValidationRuns:
    """Run ``build()`` (a fresh network each time) on both backends.

    The candidate runs with ``seed``; the reference runs with ``seed`` and the
    ``n_reference_seeds`` seeds after it, as one batch of trials."""
    if candidate == reference and candidate_options == reference_options:
        raise EvoSpikeError(f"validate: candidate and reference are the same ({candidate})")
    if n_reference_seeds < 2:
        raise EvoSpikeError(f"validate: --reference-seeds must be at least 2 "
                            f"(got {n_reference_seeds})")
    net: Network = build()
    recurrent = net.recurrent_populations()
    cand = get_backend(candidate).compile(net, seeds=(seed,), progress=progress,
                                          **candidate_options).run(duration_ms)
    seeds = tuple(range(seed, seed + n_reference_seeds + 1))
    ref_all = get_backend(reference).compile(build(), seeds=seeds, progress=progress,
                                             **reference_options).run(duration_ms)
    return ValidationRuns(cand, ref_all.trial(0),
                          [ref_all.trial(k) for k in range(1, len(seeds))],
                          require_exact=not recurrent, recurrent=recurrent)


def validate_runs(runs: ValidationRuns, *, tolerance_steps: int = 1,
                  margin: float = 2.0) -> ValidationReport:
    """The verdict: exact agreement required only for networks without recurrence."""
    return validate(runs.candidate, runs.reference, runs.reference_seeds,
                    tolerance_steps=tolerance_steps, require_exact=runs.require_exact,
                    margin=margin)
