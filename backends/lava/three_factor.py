"""Reward-modulated STDP on the Lava backend. The mapping of an IR `RewardModulatedSTDP` rule
onto Loihi 2's learning engine (tag, reward, decimation) is the chip's, not Lava's: it lives in
`evospike.hardware.loihi.three_factor`, which the torch backend's fixed-point mode shares; its
names stay importable from here. The worker's side (the neuron that sends the reward) is
``three_factor_neuron`` in ``worker.py``."""

from evospike.hardware.loihi.three_factor import (
    TAG_UNITS_PER_PAIR,
    RewardPlan,
    ThreeFactorMapping,
    decay_plan,
    drive_end_step,
    level_monitors,
    level_trace,
    modulator_levels,
    modulator_refusals,
    plan_three_factor,
    reward_scale,
    rstdp_refusals,
    rule_string,
    spike_dependent_drives,
    trace_decay,
)

__all__ = ["TAG_UNITS_PER_PAIR", "RewardPlan", "ThreeFactorMapping", "decay_plan",
           "drive_end_step", "level_monitors", "level_trace", "modulator_levels",
           "modulator_refusals", "plan_three_factor", "reward_scale", "rstdp_refusals",
           "rule_string", "spike_dependent_drives", "trace_decay"]
