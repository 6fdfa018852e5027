"""The reference SNN for scikit-learn's digits (8x8 images, 10 classes).

Pixels (0..1) drive 64 input LIF neurons as a constant current (``gain_mV`` per unit), which
spike at a rate that grows with the pixel; 256 hidden LIF neurons; a non-spiking readout of 10.
``examples/digits.yaml`` trains it: 97.78 % test accuracy on the 450-image test split
(test_fraction 0.25, seed 0), best-validation-loss epoch 19, 7-22 s of training (by machine
load) on one CPU thread of an AMD EPYC (shared machine); the trained network, run on Brian2 over
the whole test split, predicts the same class for all 450 images.
"""

from __future__ import annotations

from evospike.training.model import SpikingNetwork


def digits_spec(hidden: int = 256, steps: int = 25, gain_mV: float = 100.0,
                n_classes: int = 10) -> dict:
    """The model section of ``examples/digits.yaml``."""
    return {
        "dt_ms": 1.0, "steps": steps,
        "neuron": {"tau_m_ms": 10.0, "tau_syn_ms": 5.0, "v_rest_mV": -65.0,
                   "v_reset_mV": -65.0, "v_thresh_mV": -50.0, "surrogate": "atan",
                   "surrogate_alpha": 2.0},
        "input": {"kind": "current", "shape": [64], "gain_mV": gain_mV},
        "weight_gain": 3.0,
        "layers": [{"type": "linear", "size": hidden}, {"type": "readout", "size": n_classes}],
    }


def digits_snn(n_classes: int = 10, sample_shape=(64,), hidden: int = 256, steps: int = 25,
               gain_mV: float = 100.0) -> SpikingNetwork:
    return SpikingNetwork(digits_spec(hidden, steps, gain_mV, n_classes))
