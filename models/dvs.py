"""The reference convolutional SNN for DVS128 Gesture event frames.

Input: binary event frames ``(T, 2, S, S)`` (tonic's ``ToFrame`` into T bins, one channel per
polarity, 1 where a pixel had an event in the bin: `evospike.datasets.DVSGesture` and
`SyntheticDVSGesture` with ``binary=True``); each frame bin is one time step of ``dt_ms``.
Two strided convolutions (8 and 16 channels, 3x3, stride 2), a hidden layer of 64 and a
non-spiking readout, all LIF with exponential current synapses. Every layer is an IR
population, so the trained model exports to an IR network (the convolutions as sparse
projections with the shared kernels expanded) that Brian2 runs.

Counts above 1 are refused rather than clipped: pass ``binary=True`` to the data set.
Accuracy reached (``examples/dvs_gesture.yaml``): 97.50 % on 200 synthetic moving-shape test
samples (4 classes); the real DVS128 Gesture set could not be downloaded where this was built.
"""

from __future__ import annotations

from evospike.errors import ValidationError
from evospike.training.model import SpikingNetwork


def dvs_spec(sample_shape, n_classes: int, channels=(8, 16), hidden: int = 64,
             dt_ms: float = 1.0) -> dict:
    if len(sample_shape) != 4 or sample_shape[1] != 2:
        raise ValidationError("model", "dvs_conv", "sample_shape",
                              "must be event frames (T, 2, S, S)", tuple(sample_shape))
    T, _, h, w = (int(s) for s in sample_shape)
    # event frames are sparse (about 1 % of pixels per bin): a larger initial gain keeps every
    # layer firing at the start of training
    gains = [30.0, 15.0][: len(channels)] + [15.0] * max(0, len(channels) - 2)
    layers = [{"type": "conv", "channels": int(c), "kernel": 3, "stride": 2, "padding": 1,
               "weight_gain": g} for c, g in zip(channels, gains, strict=True)]
    layers += [{"type": "linear", "size": hidden, "weight_gain": 15.0},
               {"type": "readout", "size": n_classes, "weight_gain": 5.0}]
    return {"dt_ms": dt_ms, "steps": T,
            "neuron": {"tau_m_ms": 10.0, "tau_syn_ms": 5.0, "surrogate": "atan"},
            "input": {"kind": "spikes", "shape": [2, h, w]}, "weight_gain": 3.0,
            "layers": layers}


def dvs_conv_snn(n_classes: int, sample_shape, channels=(8, 16), hidden: int = 64,
                 dt_ms: float = 1.0) -> SpikingNetwork:
    return SpikingNetwork(dvs_spec(sample_shape, n_classes, channels, hidden, dt_ms))
