"""The network IR: plain data, validated on construction, no framework imports."""

from evospike.ir.apoptosis import Apoptosis
from evospike.ir.distributions import Normal, Uniform
from evospike.ir.energy_budget import EnergyBudget, GlobalEnergyBudget
from evospike.ir.gating import EpigeneticGate, NeuromodulatedParticipation
from evospike.ir.memory import MemoryTiers
from evospike.ir.modulators import (
    Modulator,
    NoveltyDrive,
    RewardEvents,
    RewardSeries,
    SpikeCountDrive,
)
from evospike.ir.network import Network
from evospike.ir.neurons import (
    LIF,
    NEURON_MODELS,
    AdaptiveLIF,
    AdEx,
    CondAdEx,
    CondLIF,
    CubaLIF,
    Izhikevich,
    NeuronModel,
)
from evospike.ir.nodes import (
    CurrentInput,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP
from evospike.ir.structural import StructuralPlasticity

__all__ = [
    "Network", "Population", "Projection", "PoissonSource", "SpikeTimesSource", "CurrentInput",
    "PoissonInput", "SpikeMonitor", "StateMonitor", "WeightMonitor", "NeuronModel", "LIF",
    "AdaptiveLIF",
    "CubaLIF", "Izhikevich", "AdEx", "CondLIF", "CondAdEx", "NEURON_MODELS", "Uniform",
    "Normal", "STDP",
    "RewardModulatedSTDP", "Homeostasis", "Metaplasticity", "Modulator", "RewardEvents",
    "RewardSeries", "SpikeCountDrive", "NoveltyDrive", "StructuralPlasticity",
    "MemoryTiers", "Apoptosis",
    "EpigeneticGate", "NeuromodulatedParticipation", "EnergyBudget", "GlobalEnergyBudget",
]
