"""Energy per operation of named hardware profiles, each figure with its source.

Operation kinds (what `evospike.energy` counts):

- ``"ac"``: one accumulate, a synaptic operation driven by a binary spike (weight added to a
  state); NeuroBench's "effective AC".
- ``"mac"``: one multiply-accumulate (non-binary activation times weight, added).
- ``"neuron_update_active"`` / ``"neuron_update_inactive"``: one neuron's state update in one
  time step, for a neuron that spikes in that step / one that does not.

Memory traffic (weight fetches, DRAM) is not in any profile: the figures are per arithmetic
operation (Horowitz) or per chip-level event (Loihi, which includes its on-core SRAM access).
Energy estimates from these are comparisons of operation counts, not measurements of a chip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evospike.errors import EvoSpikeError

HOROWITZ_2014 = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
                 "ISSCC 2014, pp. 10-14 (45 nm, 0.9 V)")
DAVIES_2018 = ("M. Davies et al., 'Loihi: A neuromorphic manycore processor with on-chip "
               "learning', IEEE Micro 38(1):82-99, 2018, table of measured energies "
               "(Intel 14 nm; figures as transcribed in SANA-FE's Loihi model)")
_HOROWITZ_SHORT = "Horowitz 2014, 45 nm"
_DAVIES_SHORT = "Davies et al. 2018"

OP_KINDS = ("ac", "mac", "neuron_update_active", "neuron_update_inactive")


@dataclass(frozen=True)
class OpCost:
    """Energy of one operation in picojoules, with where the figure comes from."""

    energy_pJ: float
    source: str


@dataclass(frozen=True)
class EnergyProfile:
    """A named set of per-operation costs. ``costs`` maps operation kinds (`OP_KINDS`) to
    `OpCost`; a kind absent from the profile cannot be priced with it (asking is an error)."""

    name: str
    description: str
    costs: dict[str, OpCost] = field(default_factory=dict)
    note: str = ""
    reference: str = ""

    def cost_pJ(self, kind: str) -> float:
        if kind not in self.costs:
            raise EvoSpikeError(f"energy profile '{self.name}' has no cost for '{kind}' "
                                f"operations (it prices: {sorted(self.costs)})")
        return self.costs[kind].energy_pJ

    def sources(self) -> list[str]:
        """One line per operation kind: cost and source."""
        return [f"{kind}: {c.energy_pJ:g} pJ ({c.source})" for kind, c in self.costs.items()]


def _horowitz(name: str, label: str, add_pJ: float, mult_pJ: float,
              add_src: str, mult_src: str) -> EnergyProfile:
    src_add = f"{_HOROWITZ_SHORT}: {add_src}"
    src_mac = f"{_HOROWITZ_SHORT}: {mult_src} + {add_src}"
    return EnergyProfile(
        name=name,
        description=f"45 nm digital logic, {label} arithmetic (Horowitz 2014)",
        costs={
            "ac": OpCost(add_pJ, src_add),
            "mac": OpCost(mult_pJ + add_pJ, src_mac),
            # a LIF update is one decay multiply plus one add of the input: priced as one MAC
            "neuron_update_active": OpCost(mult_pJ + add_pJ,
                                           f"assumed one MAC per neuron update; {src_mac}"),
            "neuron_update_inactive": OpCost(mult_pJ + add_pJ,
                                             f"assumed one MAC per neuron update; {src_mac}"),
        },
        note="arithmetic only: memory access, which Horowitz shows dominating "
             "(e.g. 8 KB SRAM read 10 pJ per 64 bits), is not included",
        reference=HOROWITZ_2014,
    )


def _loihi(name: str, note: str) -> EnergyProfile:
    return EnergyProfile(
        name=name,
        description="Intel Loihi neurocore events (Davies et al. 2018, measured, 14 nm)",
        costs={
            "ac": OpCost(23.6, f"{_DAVIES_SHORT}: synaptic spike operation (min), 23.6 pJ"),
            "neuron_update_active": OpCost(81.0, f"{_DAVIES_SHORT}: neuron update, active, "
                                                 "81 pJ"),
            "neuron_update_inactive": OpCost(52.0, f"{_DAVIES_SHORT}: neuron update, inactive, "
                                                   "52 pJ"),
        },
        note=note,
        reference=DAVIES_2018,
    )


PROFILES: dict[str, EnergyProfile] = {
    "horowitz45-fp32": _horowitz("horowitz45-fp32", "32-bit floating-point", 0.9, 3.7,
                                 "32-bit float add 0.9 pJ", "32-bit float mult 3.7 pJ"),
    "horowitz45-fp16": _horowitz("horowitz45-fp16", "16-bit floating-point", 0.4, 1.1,
                                 "16-bit float add 0.4 pJ", "16-bit float mult 1.1 pJ"),
    "horowitz45-int32": _horowitz("horowitz45-int32", "32-bit integer", 0.1, 3.1,
                                  "32-bit int add 0.1 pJ", "32-bit int mult 3.1 pJ"),
    "horowitz45-int8": _horowitz("horowitz45-int8", "8-bit integer", 0.03, 0.2,
                                 "8-bit int add 0.03 pJ", "8-bit int mult 0.2 pJ"),
    "loihi": _loihi("loihi", "Loihi (first generation) figures as measured"),
    "loihi2": _loihi(
        "loihi2",
        "Loihi 2 has no published per-operation energy table: these are first-generation "
        "Loihi figures (Davies et al. 2018, Intel 14 nm) used as a stand-in; Loihi 2 "
        "(Intel 4) is reported to be more efficient, so read them as an upper estimate"),
}


def get_profile(name: str) -> EnergyProfile:
    """The profile called ``name`` (see `PROFILES`)."""
    if name not in PROFILES:
        raise EvoSpikeError(f"unknown hardware energy profile '{name}' "
                            f"(known: {', '.join(PROFILES)})")
    return PROFILES[name]
