"""STDP on the Lava backend. The mapping of an IR `STDP` rule onto Loihi 2's learning engine is
the chip's, not Lava's: it lives in `evospike.hardware.loihi.learning`, which the torch
backend's fixed-point mode shares; its names stay importable from here."""

from evospike.hardware.loihi.learning import (
    CARRIED_RULES,
    RNG_SEED,
    TRACE_IMPULSE,
    WEIGHT_RANGES,
    LearningPlan,
    _mant_exp,
    learning_refusals,
    modulator_level_monitors,
    plan_learning,
    plan_rstdp,
    plan_stdp,
    quantize_for_learning,
    rules_by_projection,
    stdp_refusals,
    weight_monitor_refusals,
    without_learning,
)

__all__ = ["CARRIED_RULES", "RNG_SEED", "TRACE_IMPULSE", "WEIGHT_RANGES", "LearningPlan",
           "_mant_exp", "learning_refusals", "modulator_level_monitors", "plan_learning",
           "plan_rstdp", "plan_stdp", "quantize_for_learning", "rules_by_projection",
           "stdp_refusals", "weight_monitor_refusals", "without_learning"]
