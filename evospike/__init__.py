"""EvoSpike: write a spiking network once, run it on PyTorch (CPU/GPU), validate it against
Brian2, deploy it to Loihi 2 through Lava."""

__version__ = "0.1.0"

from evospike.arrays import run_array
from evospike.connectors import AllToAll, FixedInDegree, FixedProbability, FromArrays, OneToOne
from evospike.errors import EvoSpikeError, UnsupportedError, ValidationError
from evospike.ir import (
    LIF,
    STDP,
    AdaptiveLIF,
    AdEx,
    Apoptosis,
    CondAdEx,
    CondLIF,
    CubaLIF,
    CurrentInput,
    EnergyBudget,
    EpigeneticGate,
    GlobalEnergyBudget,
    Homeostasis,
    Izhikevich,
    MemoryTiers,
    Metaplasticity,
    Modulator,
    Network,
    NeuromodulatedParticipation,
    Normal,
    NoveltyDrive,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    RewardEvents,
    RewardModulatedSTDP,
    RewardSeries,
    SpikeCountDrive,
    SpikeTimesSource,
    Uniform,
)
from evospike.results import Results

__all__ = [
    "Network", "Population", "Projection", "PoissonSource", "SpikeTimesSource", "CurrentInput",
    "PoissonInput", "LIF", "AdaptiveLIF", "CubaLIF", "Izhikevich", "AdEx", "CondLIF", "CondAdEx",
    "Uniform", "Normal",
    "AllToAll",
    "OneToOne",
    "FixedProbability", "FixedInDegree", "FromArrays", "Results", "EvoSpikeError",
    "ValidationError", "UnsupportedError", "STDP", "RewardModulatedSTDP", "Homeostasis",
    "Metaplasticity", "Modulator", "RewardEvents", "RewardSeries", "SpikeCountDrive",
    "NoveltyDrive", "__version__", "run_array",
    "MemoryTiers", "Apoptosis",
    "EpigeneticGate", "NeuromodulatedParticipation", "EnergyBudget", "GlobalEnergyBudget",
]

