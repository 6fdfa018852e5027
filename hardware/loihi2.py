"""Intel Loihi 2: the limits a mapping of a network onto the chip must respect, each figure with
its source.

Plain data. The arithmetic figures (bits, delays) are those of the integer model both engines
run, taken from `evospike.hardware.loihi.constants`. Figures marked "uncertain" in their source
are the best public numbers we have and say why; `evospike.mapping` uses them to count cores
and list the limits a network breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .loihi import constants as C

BRIEF = ("Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology "
         "brief, 2021")
DAVIES_2021 = ("M. Davies et al., 'Advancing neuromorphic computing with Loihi: a survey of "
               "results and outlook', Proc. IEEE 109(5):911-934, 2021")
DAVIES_2018 = ("M. Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip "
               "learning', IEEE Micro 38(1):82-99, 2018")
LAVA = "lava-nc 0.10 process models (lava/proc/lif/models.py, lava/proc/sparse/models.py)"


@dataclass(frozen=True)
class Limit:
    """One figure of a chip: ``value`` in ``unit``, and where it comes from."""

    name: str
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class HardwareProfile:
    """A neuromorphic chip's limits, by name (see `limit`)."""

    name: str
    description: str
    limits: tuple[Limit, ...]

    def limit(self, name: str) -> Limit:
        for lim in self.limits:
            if lim.name == name:
                return lim
        raise KeyError(f"hardware profile '{self.name}' has no limit '{name}' "
                       f"(limits: {', '.join(lim.name for lim in self.limits)})")

    def value(self, name: str) -> float:
        return self.limit(name).value

    def table(self) -> str:
        lines = [f"{self.name}: {self.description}"]
        for lim in self.limits:
            shown = f"{int(lim.value):,}" if float(lim.value).is_integer() else f"{lim.value:g}"
            lines.append(f"  {lim.name:<26} {shown:>12} {lim.unit:<9} {lim.source}")
        return "\n".join(lines)


LOIHI2 = HardwareProfile(
    "loihi2", "Intel Loihi 2 (Intel 4 process, 128 neuromorphic cores per chip)",
    (
        Limit("cores_per_chip", 128, "cores", f"{BRIEF}: 128 neuromorphic cores per chip"),
        Limit("neurons_per_chip", 1_048_576, "neurons",
              f"{BRIEF}: up to 1 million neurons per chip (1M = 2**20 taken as written; "
              "uncertain whether 10**6 or 2**20 is meant)"),
        Limit("synapses_per_chip", 120_000_000, "synapses",
              f"{BRIEF}: up to 120 million synapses per chip"),
        Limit("neurons_per_core", 8192, "neurons",
              f"{BRIEF}: up to 8,192 neurons per core (fewer for neuron models with more "
              "state; the figure is the maximum, for the simplest model)"),
        Limit("synaptic_memory_per_core", 192 * 1024 * 8, "bits",
              f"{BRIEF}: 192 KB of synaptic memory per core"),
        Limit("bits_per_synapse", 16, "bits",
              "estimate (uncertain): an 8-bit weight plus a 6-bit delay and encoding overhead; "
              "Loihi 2 compresses synaptic lists in several formats, so the real figure "
              f"depends on the connectivity ({DAVIES_2018} describes 8 to 40 bits per "
              "synapse for Loihi 1)"),
        Limit("fan_in_axons_per_core", 4096, "axons",
              f"{DAVIES_2018}: 4,096 input axons per core on Loihi 1; uncertain for Loihi 2, "
              "whose brief gives no per-core axon count"),
        Limit("fan_out_axons_per_core", 4096, "axons",
              f"{DAVIES_2018}: 4,096 output axons per core on Loihi 1; uncertain for Loihi 2"),
        Limit("weight_bits", C.WEIGHT_BITS, "bits",
              f"{LAVA}: 8-bit weight mantissas (1 to 8 bits, num_weight_bits) with a shared "
              "exponent per connection; mixed-sign weights lose the lowest bit"),
        Limit("state_bits", C.STATE_BITS, "bits",
              f"{LAVA}: {C.STATE_BITS}-bit current u and voltage v"),
        Limit("decay_bits", C.DECAY_BITS, "bits",
              f"{LAVA}: {C.DECAY_BITS}-bit du, dv (decay unity {C.DECAY_UNITY})"),
        Limit("threshold_bits", C.VTH_BITS, "bits",
              f"{LAVA}: {C.VTH_BITS}-bit unsigned vth, shifted left by {C.VTH_SHIFT}"),
        Limit("max_delay_steps", C.MAX_DELAY_STEPS, "steps",
              f"{LAVA}: DelaySparse accepts delays 0..{C.MAX_LAVA_DELAY} ('Loihi 2 has a "
              f"maximum of {C.DELAY_BITS} bits for delays'); with the connection's own step "
              f"of latency, 1..{C.MAX_DELAY_STEPS} IR steps"),
    ),
)

PROFILES: dict[str, HardwareProfile] = {LOIHI2.name: LOIHI2}


def synapses_per_core(profile: HardwareProfile = LOIHI2) -> int:
    """Synapses one core holds: its synaptic memory over the bits per synapse (an estimate;
    see the limits' sources)."""
    return int(profile.value("synaptic_memory_per_core") // profile.value("bits_per_synapse"))


__all__ = ["Limit", "HardwareProfile", "LOIHI2", "PROFILES", "synapses_per_core"]
