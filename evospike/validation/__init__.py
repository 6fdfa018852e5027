"""Validation of a backend against the reference backend (``evospike validate``).

Statistics after NetworkUnit (Gutzen et al. 2018): exact spike matching of same-seed runs,
and distributions of rates, ISI CV/LV and count correlations compared against the
seed-to-seed variability of the reference. See :mod:`evospike.validation.report` for the
thresholds.
"""

from evospike.validation.metrics import (
    STATISTICS,
    SpikeMatch,
    compare_distributions,
    match_spikes,
    spike_statistics,
)
from evospike.validation.report import (
    FAIL,
    INFO,
    INSUFFICIENT,
    PASS,
    Criterion,
    NodeReport,
    ValidationReport,
    validate,
)

__all__ = [
    "STATISTICS", "SpikeMatch", "compare_distributions", "match_spikes", "spike_statistics",
    "Criterion", "NodeReport", "ValidationReport", "validate", "PASS", "FAIL", "INSUFFICIENT",
    "INFO",
]
