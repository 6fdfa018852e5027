"""`SpikingNetwork`: a stack of trainable layers that is, layer for layer, an IR network.

    net = SpikingNetwork.from_spec({
        "dt_ms": 1.0, "steps": 20,
        "input": {"kind": "current", "shape": [64], "gain_mV": 60.0},
        "layers": [{"type": "linear", "size": 128}, {"type": "readout", "size": 10}],
    })
    logits = net(x)            # x: (B, 64) in [0, 1]; logits (B, 10)
    ir = net.to_network(x[:5]) # the same network, five copies, one per sample (see export.py)

Input kinds: ``"current"`` (features are injected as a current ``gain_mV * x`` into an input
population of LIF neurons, one per feature, which spike: a deterministic encoder that is part of
the network) and ``"spikes"`` (the caller gives spike trains ``(B, T, *shape)``, e.g. from
`evospike.datasets.encoders`; they become a `SpikeTimesSource`). Layers: ``linear``,
``recurrent``, ``conv`` (channels, kernel, stride, padding) and, last, ``readout``.
The prediction is the readout neuron whose membrane is highest on average over the steps.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import nn

from evospike.errors import ValidationError

from .layers import Conv2d, Linear, Readout, Recurrent, SpikingLayer
from .neuron import NeuronSpec, lif_sequence, step_constants, time_constants_check

INPUT_KINDS = ("current", "spikes")
LAYER_TYPES = ("linear", "recurrent", "conv", "readout")
_LAYER_KEYS = {
    "linear": {"type", "size", "name", "bias", "weight_gain"},
    "recurrent": {"type", "size", "name", "bias", "weight_gain", "recurrent_gain"},
    "conv": {"type", "channels", "kernel", "stride", "padding", "name", "bias", "weight_gain"},
    "readout": {"type", "size", "name", "bias", "weight_gain"},
}
_SPEC_KEYS = {"dt_ms", "steps", "neuron", "input", "layers", "weight_gain"}


def _bad(field: str, problem: str, value: object) -> ValidationError:
    return ValidationError("model config", "model", field, problem, value)


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise _bad(field, "must be a positive integer", value)
    return int(value)


class SpikingNetwork(nn.Module):
    """Input encoding, hidden layers and a non-spiking readout; see the module docstring."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = _check_spec(spec)
        self.dt_ms = float(self.spec["dt_ms"])
        self.steps = int(self.spec["steps"])
        self.neuron = NeuronSpec(**self.spec.get("neuron", {}))
        inp = self.spec["input"]
        self.input_kind = inp["kind"]
        self.input_shape = tuple(int(s) for s in inp["shape"])
        self.gain_mV = float(inp.get("gain_mV", 0.0))
        self.spiking_consts = step_constants(self.neuron, self.dt_ms, spiking=True)
        readout_consts = step_constants(self.neuron, self.dt_ms, spiking=False)
        default_gain = float(self.spec.get("weight_gain", 3.0))
        layers: list[SpikingLayer] = []
        shape = self.input_shape
        for k, ls in enumerate(self.spec["layers"]):
            kind = ls["type"]
            name = ls.get("name", "readout" if kind == "readout" else f"{kind}{k + 1}")
            gain = float(ls.get("weight_gain", default_gain))
            bias = bool(ls.get("bias", True))
            if kind == "linear":
                layer = Linear(name, shape, ls["size"], self.spiking_consts, bias, gain)
            elif kind == "recurrent":
                layer = Recurrent(name, shape, ls["size"], self.spiking_consts, bias, gain,
                                  float(ls.get("recurrent_gain", 0.5)))
            elif kind == "conv":
                layer = Conv2d(name, shape, ls["channels"], ls["kernel"], ls.get("stride", 1),
                               ls.get("padding", 0), self.spiking_consts, bias, gain)
            else:
                layer = Readout(name, shape, ls["size"], readout_consts, bias, gain)
            layers.append(layer)
            shape = layer.out_shape
        names = [layer.name for layer in layers]
        for reserved in ("input",):
            if reserved in names or len(set(names)) != len(names):
                raise _bad("layers[*].name", "must be unique and not 'input'", names)
        self.layers = nn.ModuleList(layers)
        self.n_classes = layers[-1].size

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SpikingNetwork:
        return cls(spec)

    # ------------------------------------------------------------------ forward
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes of the input layer, (T, B, *input_shape), from a batch ``x``: features
        (B, *shape) or per-step features (B, T, *shape) for "current"; spike trains
        (B, T, *shape) for "spikes"."""
        T = self.steps
        if self.input_kind == "spikes":
            if x.dim() != len(self.input_shape) + 2 or x.shape[1] != T:
                raise ValidationError("SpikingNetwork", "model", "input",
                                      f"must be spikes of shape (B, {T}, "
                                      f"{', '.join(map(str, self.input_shape))})",
                                      tuple(x.shape))
            return x.transpose(0, 1).to(self._dtype())
        drive = self.current_drive(x)
        with torch.no_grad():
            spikes, _ = lif_sequence(torch.zeros_like(drive), self.spiking_consts, e=drive,
                                     membrane=False)
        return spikes

    def current_drive(self, x: torch.Tensor) -> torch.Tensor:
        """The input population's per-step voltage drive (normalised), (T, B, *shape)."""
        T = self.steps
        x = x.to(self._dtype())
        if x.dim() == len(self.input_shape) + 1:
            x = x.unsqueeze(1).expand(x.shape[0], T, *x.shape[1:])
        if x.dim() != len(self.input_shape) + 2 or x.shape[1] != T or \
                tuple(x.shape[2:]) != self.input_shape:
            raise ValidationError("SpikingNetwork", "model", "input",
                                  f"must have shape (B, {', '.join(map(str, self.input_shape))})"
                                  f" or (B, {T}, ...)", tuple(x.shape))
        c = self.spiking_consts
        return x.transpose(0, 1) * (c.drive * self.gain_mV / self.neuron.scale_mV)

    def _dtype(self) -> torch.dtype:
        return self.layers[0].weight.dtype

    def run(self, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's (spikes, normalised membrane), (T, B, *shape), keyed by name, the input
        layer under "input"; the membrane is kept for the readout only (None elsewhere)."""
        s = self.encode(x)
        out: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {"input": (s, None)}
        for layer in self.layers:
            s, u = layer(s)
            out[layer.name] = (s, u)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes): the readout's normalised membrane averaged over the steps."""
        s = self.encode(x)
        u = None
        for layer in self.layers:
            s, u = layer(s)
        return u.mean(0).reshape(u.shape[1], -1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).argmax(1)

    # ------------------------------------------------------------------ export
    def to_network(self, inputs: np.ndarray | torch.Tensor | None = None, name: str = "trained",
                   record: str = "readout"):
        """The IR network; see `evospike.training.export.to_network`."""
        from .export import to_network

        return to_network(self, inputs, name=name, record=record)


def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Check the model section of a config; every error names the key and the value."""
    if not isinstance(spec, dict):
        raise _bad("(model section)", "must be a mapping", spec)
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise _bad(sorted(unknown)[0], f"is not a model key (keys: {sorted(_SPEC_KEYS)})",
                   spec[sorted(unknown)[0]])
    for key in ("dt_ms", "steps", "input", "layers"):
        if key not in spec:
            raise _bad(key, "is required", None)
    time_constants_check(spec["dt_ms"], spec["steps"])
    neuron = spec.get("neuron", {}) or {}
    allowed = {f.name for f in fields(NeuronSpec)}
    for key in neuron:
        if key not in allowed:
            raise _bad(f"neuron.{key}", f"is not a neuron key (keys: {sorted(allowed)})",
                       neuron[key])
    inp = spec["input"]
    if not isinstance(inp, dict) or inp.get("kind") not in INPUT_KINDS:
        raise _bad("input.kind", f"must be one of {INPUT_KINDS}",
                   inp.get("kind") if isinstance(inp, dict) else inp)
    shape = inp.get("shape")
    if not isinstance(shape, (list, tuple)) or not shape:
        raise _bad("input.shape", "must be a list of positive integers", shape)
    for s in shape:
        _positive_int(s, "input.shape")
    if inp["kind"] == "current":
        gain = inp.get("gain_mV")
        if not isinstance(gain, (int, float)) or not gain > 0:
            raise _bad("input.gain_mV", "must be a number > 0 (mV of drive per unit of input)",
                       gain)
    extra = set(inp) - {"kind", "shape", "gain_mV"}
    if extra:
        raise _bad(f"input.{sorted(extra)[0]}", "is not an input key (kind, shape, gain_mV)",
                   inp[sorted(extra)[0]])
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        raise _bad("layers", "must be a non-empty list", layers)
    for k, ls in enumerate(layers):
        where = f"layers[{k}]"
        if not isinstance(ls, dict) or ls.get("type") not in LAYER_TYPES:
            raise _bad(f"{where}.type", f"must be one of {LAYER_TYPES}",
                       ls.get("type") if isinstance(ls, dict) else ls)
        kind = ls["type"]
        extra = set(ls) - _LAYER_KEYS[kind]
        if extra:
            key = sorted(extra)[0]
            raise _bad(f"{where}.{key}", f"is not a key of a {kind} layer "
                       f"({sorted(_LAYER_KEYS[kind])})", ls[key])
        if kind == "conv":
            for key in ("channels", "kernel"):
                if key not in ls:
                    raise _bad(f"{where}.{key}", "is required", None)
                _positive_int(ls[key], f"{where}.{key}")
            _positive_int(ls.get("stride", 1), f"{where}.stride")
            pad = ls.get("padding", 0)
            if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
                raise _bad(f"{where}.padding", "must be an integer >= 0", pad)
        else:
            if "size" not in ls:
                raise _bad(f"{where}.size", "is required", None)
            _positive_int(ls["size"], f"{where}.size")
        if (kind == "readout") != (k == len(layers) - 1):
            raise _bad(f"{where}.type", "readout must be the last layer, and only the last",
                       kind)
        for key in ("weight_gain", "recurrent_gain"):
            if key in ls and not (isinstance(ls[key], (int, float)) and ls[key] > 0):
                raise _bad(f"{where}.{key}", "must be a number > 0", ls[key])
    if "weight_gain" in spec and not (isinstance(spec["weight_gain"], (int, float))
                                      and spec["weight_gain"] > 0):
        raise _bad("weight_gain", "must be a number > 0", spec["weight_gain"])
    # every layer adds two steps of latency (delay one step, then the synaptic current moves
    # the membrane a step later): with fewer steps the readout never sees the input
    if spec["steps"] <= 2 * len(layers):
        raise _bad("steps", f"must exceed twice the number of layers ({2 * len(layers)}): the "
                   "input reaches the readout's membrane only after two steps per layer",
                   spec["steps"])
    if layers[-1].get("type") != "readout":
        raise _bad(f"layers[{len(layers) - 1}].type", "the last layer must be a readout",
                   layers[-1].get("type"))
    return spec
