"""Surrogate-gradient training of networks that are IR networks.

A `SpikingNetwork` steps the IR's LIF neuron (exponential current synapses) exactly as every
backend does (`evospike.dynamics`), with SpikingJelly's surrogate derivative at the threshold
and a hand-written BPTT over each layer's time loop; `to_network` turns the trained model into
an IR `Network` that `evospike run --backend brian2` executes, and `backend_agreement` checks
that the other backend predicts the same classes. `Trainer` / ``evospike train CONFIG.yaml``
run the training loop (metrics JSON, atomic checkpoints, resume, early stopping, learning curve).
`LeakyNetwork` trains snnTorch-style networks (Leaky / Synaptic / RLeaky / RSynaptic layers in
snnTorch's units, zero latency, spiking outputs with snnTorch's losses) and exports them with the
IR's delays.
"""

from evospike.training.config import TrainConfig
from evospike.training.export import backend_agreement, predictions_from_results, to_network
from evospike.training.leaky import LeakyLayer, RecurrentLeakyLayer, leaky_sequence
from evospike.training.leaky_model import LeakyNetwork
from evospike.training.model import SpikingNetwork
from evospike.training.neuron import NeuronSpec, lif_sequence, step_constants
from evospike.training.trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "SpikingNetwork", "NeuronSpec", "lif_sequence",
           "step_constants", "to_network", "predictions_from_results", "backend_agreement",
           "LeakyNetwork", "LeakyLayer", "RecurrentLeakyLayer", "leaky_sequence"]
