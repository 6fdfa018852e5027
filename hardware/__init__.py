"""Hardware profiles: the limits a mapping must respect (`loihi2`) and the energy each
operation costs (`energy_costs`)."""

from .loihi2 import LOIHI2, HardwareProfile, Limit, synapses_per_core
from .loihi2 import PROFILES as LIMIT_PROFILES

__all__ = ["LOIHI2", "LIMIT_PROFILES", "HardwareProfile", "Limit", "synapses_per_core"]
