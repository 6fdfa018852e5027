"""Mapping a network onto a neuromorphic chip's cores: how many it needs and which limits it
breaks (`evospike map MODEL --hardware loihi2`).

Per population the cores are the most of: neurons over neurons per core; incoming synapses
over synapses per core (a population's incoming synapses live in its cores' synaptic memory);
distinct presynaptic neurons over input axons per core (each core of the population may need
an axon from every presynaptic neuron). Sources (spike generators) are input on the host and
take no core. The limits a network breaks are those no partition can fix: a neuron whose
incoming synapses do not fit one core, delays beyond the chip's range, weights whose range
exceeds the weight precision (nonzero weights that quantize to 0), a network larger than a
chip (more chips are needed). Neuron models the chip's fixed-point LIF does not carry are
listed as notes: Loihi 2 runs other models as microcode, which Lava's fixed_pt does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network


@dataclass
class PopulationMapping:
    """The cores one population needs and why: ``cores`` = max of the three counts."""

    name: str
    neurons: int
    incoming_synapses: int
    presynaptic_neurons: int
    max_fan_in: int
    cores_for_neurons: int
    cores_for_synapses: int
    cores_for_axons: int

    @property
    def cores(self) -> int:
        return max(self.cores_for_neurons, self.cores_for_synapses, self.cores_for_axons, 1)


@dataclass
class MappingReport:
    network: str
    hardware: str
    populations: list[PopulationMapping] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chips: int = 1

    @property
    def cores(self) -> int:
        return sum(p.cores for p in self.populations)

    @property
    def fits(self) -> bool:
        return not self.breaks

    def text(self) -> str:
        lines = [f"mapping of network '{self.network}' onto {self.hardware}: {self.cores} "
                 f"core(s) on {self.chips} chip(s)",
                 f"  {'population':<16} {'neurons':>9} {'synapses in':>12} {'pre axons':>10} "
                 f"{'max fan-in':>10} {'cores':>6}  (neurons/synapses/axons)"]
        for p in self.populations:
            lines.append(f"  {p.name:<16} {p.neurons:>9} {p.incoming_synapses:>12} "
                         f"{p.presynaptic_neurons:>10} {p.max_fan_in:>10} {p.cores:>6}  "
                         f"({p.cores_for_neurons}/{p.cores_for_synapses}/{p.cores_for_axons})")
        if self.breaks:
            lines.append(f"breaks {len(self.breaks)} limit(s):")
            lines += [f"  - {b}" for b in self.breaks]
        else:
            lines.append("fits: no limit broken")
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


def get_hardware(name: str):
    from evospike.hardware.loihi2 import PROFILES

    if name not in PROFILES:
        raise EvoSpikeError(f"no hardware profile {name!r} (profiles: {', '.join(PROFILES)})")
    return PROFILES[name]


def _weight_range_break(proj) -> str | None:
    """A projection whose nonzero weights span more than the 8-bit mantissa resolves."""
    w = np.abs(proj.weights[proj.weights != 0])
    if w.size == 0:
        return None
    mixed = proj.weights.min() < 0 < proj.weights.max()
    top = 254 if mixed else 255  # Lava's sign modes (evospike.fixed_point)
    exp = math.ceil(math.log2(float(w.max()) / top))
    step = 2 if mixed else 1
    zeroed = np.round(w / 2.0 ** exp / step) == 0
    if not np.any(zeroed):
        return None
    return (f"Projection '{proj.name}': weight precision: {int(zeroed.sum())} nonzero weights "
            f"(smallest {float(w.min()):.3g}) round to 0 with 8-bit mantissas scaled to the "
            f"largest ({float(w.max()):.3g})")


def map_network(network: Network, hardware: str = "loihi2") -> MappingReport:
    """Cores per population and every limit ``network`` breaks on ``hardware``."""
    from evospike.fixed_point import fixed_refusals
    from evospike.hardware.loihi2 import synapses_per_core

    prof = get_hardware(hardware)
    report = MappingReport(network.name, prof.name)
    per_core = int(prof.value("neurons_per_core"))
    syn_core = synapses_per_core(prof)
    axons_core = int(prof.value("fan_in_axons_per_core"))
    max_delay = int(prof.value("max_delay_steps"))
    for pop in network.populations.values():
        incoming = [p for p in network.projections.values() if p.post == pop.name]
        n_syn = sum(p.n_synapses for p in incoming)
        fan_in = np.zeros(pop.size, dtype=np.int64)
        pre_axons = 0
        for p in incoming:
            fan_in += np.bincount(p.indices, minlength=pop.size)
            pre_axons += int(np.count_nonzero(np.diff(p.indptr)))
        m = PopulationMapping(
            pop.name, pop.size, n_syn, pre_axons, int(fan_in.max()) if pop.size else 0,
            math.ceil(pop.size / per_core), math.ceil(n_syn / syn_core),
            math.ceil(pre_axons / axons_core))
        report.populations.append(m)
        if m.max_fan_in > syn_core:
            report.breaks.append(f"Population '{pop.name}': a neuron receives {m.max_fan_in} "
                                 f"synapses, more than one core's synaptic memory holds "
                                 f"({syn_core}, {prof.limit('bits_per_synapse').source})")
    for proj in network.projections.values():
        if proj.n_synapses and int(proj.delays.max()) > max_delay:
            report.breaks.append(f"Projection '{proj.name}': delay of {int(proj.delays.max())} "
                                 f"steps; {prof.name} reaches {max_delay}")
        if proj.n_synapses:
            why = _weight_range_break(proj)
            if why:
                report.breaks.append(why)
    cores_chip = int(prof.value("cores_per_chip"))
    report.chips = max(1, math.ceil(report.cores / cores_chip))
    if report.cores > cores_chip:
        report.breaks.append(f"network: needs {report.cores} cores, one chip has {cores_chip} "
                             f"({report.chips} chips needed)")
    if network.n_neurons > prof.value("neurons_per_chip"):
        report.breaks.append(f"network: {network.n_neurons} neurons, one chip holds "
                             f"{int(prof.value('neurons_per_chip'))}")
    if network.n_synapses > prof.value("synapses_per_chip"):
        report.breaks.append(f"network: {network.n_synapses} synapses, one chip holds "
                             f"{int(prof.value('synapses_per_chip'))}")
    report.notes += [f"fixed_pt (Lava's bit-accurate LIF): {r}" for r in
                     fixed_refusals(network, "loihi2")]
    return report
