"""The reference compact SNN for ECG beats (MIT-BIH, AAMI classes N, S, V, F, Q).

A beat window ``(1, L)`` (z-scored) is turned into spikes by level crossing
(`evospike.datasets.delta_encode`: an "up" and a "down" channel, one step per ``downsample``
samples). A step may cross several levels; a spiking neuron fires at most once per step, so each
channel has ``max_crossings`` input neurons and k crossings fire the first k of them (a
thermometer code, lossless up to ``max_crossings``; more is refused, not clipped: raise
``threshold``). A recurrent layer of 32 LIF neurons carries the beat's shape over time; a
non-spiking readout of 5 classes. The network is an IR network (input `SpikeTimesSource`,
recurrent projection), exported and run on Brian2 like the others.
Accuracy reached (``examples/ecg.yaml``): 96.82 % on 283 synthetic test beats (N, S, V);
MIT-BIH could not be downloaded where this was built.
"""

from __future__ import annotations

import torch

from evospike.errors import ValidationError
from evospike.training.model import SpikingNetwork


class DeltaEncodedSNN(SpikingNetwork):
    """`SpikingNetwork` whose input is a signal ``(B, 1, L)``, level-crossing encoded."""

    def __init__(self, spec: dict, threshold: float, downsample: int, max_crossings: int):
        super().__init__(spec)
        self.threshold = float(threshold)
        self.downsample = int(downsample)
        self.max_crossings = int(max_crossings)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        from evospike.datasets import delta_encode

        width = 2 * self.max_crossings
        if x.dim() == 3 and x.shape[1] == self.steps and x.shape[2] == width:
            return super().encode(x)  # already spike trains (B, T, 2 * max_crossings)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValidationError("model", "ecg_snn", "input",
                                  "must be beats (B, 1, L)", tuple(x.shape))
        signal = x[:, :, :: self.downsample]
        counts = delta_encode(signal, self.threshold, time_dim=-1)  # (T, B, 1, 2)
        counts = counts.reshape(counts.shape[0], counts.shape[1], 2, 1)
        if counts.shape[0] != self.steps:
            raise ValidationError("model", "ecg_snn", "input length",
                                  f"gives {counts.shape[0]} steps after downsampling by "
                                  f"{self.downsample}; the model runs {self.steps}",
                                  tuple(x.shape))
        if counts.max() > self.max_crossings:
            raise ValidationError("model", "ecg_snn", "delta threshold",
                                  f"lets one step cross {int(counts.max())} levels, more than "
                                  f"max_crossings ({self.max_crossings}); raise the threshold "
                                  "or max_crossings", self.threshold)
        levels = torch.arange(self.max_crossings, dtype=counts.dtype, device=counts.device)
        spikes = (counts > levels).to(self._dtype())  # (T, B, 2, max_crossings)
        return spikes.reshape(spikes.shape[0], spikes.shape[1], width)


def ecg_snn(n_classes: int = 5, sample_shape=(1, 256), hidden: int = 32, downsample: int = 4,
            threshold: float = 0.5, max_crossings: int = 8, dt_ms: float = 1.0
            ) -> DeltaEncodedSNN:
    if len(sample_shape) != 2 or sample_shape[0] != 1:
        raise ValidationError("model", "ecg_snn", "sample_shape", "must be beats (1, L)",
                              tuple(sample_shape))
    steps = len(range(0, int(sample_shape[1]), int(downsample)))
    spec = {"dt_ms": dt_ms, "steps": steps,
            "neuron": {"tau_m_ms": 10.0, "tau_syn_ms": 5.0, "surrogate": "atan"},
            "input": {"kind": "spikes", "shape": [2 * max_crossings]}, "weight_gain": 6.0,
            "layers": [{"type": "recurrent", "size": hidden},
                       {"type": "readout", "size": n_classes}]}
    return DeltaEncodedSNN(spec, threshold, downsample, max_crossings)
