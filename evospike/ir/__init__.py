"""The network IR: plain data, validated on construction, no framework imports."""

from evospike.ir.distributions import Normal, Uniform
from evospike.ir.modulators import (
    Modulator,
    NoveltyDrive,
    RewardEvents,
    RewardSeries,
    SpikeCountDrive,
)
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, NEURON_MODELS, AdaptiveLIF, CubaLIF, Izhikevich, NeuronModel
from evospike.ir.nodes import (
    CurrentInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import STDP, Homeostasis, Metaplasticity, RewardModulatedSTDP

__all__ = [
    "Network", "Population", "Projection", "PoissonSource", "SpikeTimesSource", "CurrentInput",
    "SpikeMonitor", "StateMonitor", "WeightMonitor", "NeuronModel", "LIF", "AdaptiveLIF",
    "CubaLIF", "Izhikevich", "NEURON_MODELS", "Uniform", "Normal", "STDP",
    "RewardModulatedSTDP", "Homeostasis", "Metaplasticity", "Modulator", "RewardEvents",
    "RewardSeries", "SpikeCountDrive", "NoveltyDrive",
]
