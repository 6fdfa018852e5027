"""`LeakyNetwork`: the fully connected networks snnTorch users train (``nn.Linear`` +
``snn.Leaky`` / ``snn.Synaptic`` / ``snn.RLeaky`` / ``snn.RSynaptic`` stacks), zero latency,
with a spiking output layer and snnTorch's losses, exportable to an IR network.

    net = LeakyNetwork({
        "steps": 25,
        "input": {"kind": "spikes", "shape": [784]},
        "layers": [{"type": "leaky", "size": 1000, "beta": 0.95},
                   {"type": "leaky", "size": 10, "beta": 0.95}],
        "loss": {"kind": "ce_rate"},
    })
    logits = net(x)                    # x: (B, 25, 784) spikes; spike counts (B, 10)
    loss, logits = net.loss_and_logits(x, y)

Layer keys (`evospike.training.leaky.LeakyLayer`): ``size``, ``beta``, ``threshold``,
``reset`` (`RESETS`), ``alpha`` (``synaptic`` only), ``learn_beta``, ``learn_threshold``,
``learn_alpha``, ``per_neuron``, ``bias``, ``surrogate``, ``surrogate_alpha``,
``detach_reset``, ``name``; types ``rleaky`` / ``rsynaptic``
(`evospike.training.leaky.RecurrentLeakyLayer`, resets `RECURRENT_RESETS`) add
``recurrent_bias``. The loss (`evospike.training.losses`): ``ce_rate`` (default),
``ce_count`` or ``mse_membrane`` (``on_target``, ``off_target``).

Export (`to_network`). The IR has no zero-latency projection: every projection delays by at
least one step. The exported network keeps the trained weights and puts layer ``k``
(1-based) ``k`` steps behind the model: the input spikes of model step ``t`` are sent in IR step
``t`` and reach layer 1 in step ``t + 1``, whose spikes reach layer 2 in step ``t + 2``, and
so on; a recurrent layer's ``V`` is a projection from the population to itself delayed by
one step (its spikes of model step ``t - 1`` reach it in model step ``t``, as in the model);
the biases (a per-step input in snnTorch, not the IR's constant ``bias``; a recurrent layer's
``b_V`` joins its layer's) come from a
one-neuron source ``bias`` that fires in steps ``0 .. T-1`` through projections delayed by
``k`` steps, so each layer's bias starts in the step its first input arrives. The run lasts
``T + L`` steps (L layers) and the output layer's steps ``L .. T+L-1`` are the model's steps
``0 .. T-1``: the exported network predicts what the model predicts
(`leaky_predictions_from_results`).

Each population is the IR's `CubaLIF` (snnTorch's ``Synaptic`` is exactly its update:
``du = 1 - alpha``, ``dv = 1 - beta``, input on channel ``exc``; ``Leaky`` is ``du = 1`` with
its input on channel ``v``), ``v_reset = 0``, ``v_thresh`` the threshold, in
``units="dimensionless"``. Resets: "subtract_after_decay" and "subtract" map to the IR's modes
of the same name; "value" and "zero_after_decay" to "value" (same spikes; for a Synaptic layer
"zero_after_decay" also holds the membrane through the step after the spike:
``tau_refrac_ms = 2 dt``); "none" to a threshold of 1e11 (it never fires, so a "none" layer
may only be the output, read by its membrane). "subtract_after_decay" runs on the torch
backend's eager engine only (docs/PORTING.md); the others run on Brian2 as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from evospike.errors import EvoSpikeError, ValidationError

from .leaky import RECURRENT_RESETS, RESETS, LeakyLayer, RecurrentLeakyLayer
from .losses import LOSSES, logits_for, output_loss
from .neuron import SURROGATES, time_constants_check

LEAKY_TYPES = ("leaky", "synaptic", "rleaky", "rsynaptic")
_RECURRENT = ("rleaky", "rsynaptic")
_SYNAPTIC = ("synaptic", "rsynaptic")
_LAYER_KEYS = {"type", "size", "name", "beta", "threshold", "reset", "alpha", "learn_beta",
               "learn_threshold", "learn_alpha", "per_neuron", "bias", "surrogate",
               "surrogate_alpha", "detach_reset", "recurrent_bias"}
_SPEC_KEYS = {"dt_ms", "steps", "input", "layers", "loss"}
#: the IR threshold of a layer without reset ("none"): it never fires
NO_FIRE_THRESHOLD = 1e11


def _bad(field: str, problem: str, value: object) -> ValidationError:
    return ValidationError("model config", "model", field, problem, value)


def is_leaky_spec(spec: object) -> bool:
    """True when a model spec's layers are `LeakyNetwork` layers."""
    layers = spec.get("layers") if isinstance(spec, dict) else None
    return isinstance(layers, list) and any(isinstance(ls, dict) and ls.get("type") in
                                            LEAKY_TYPES for ls in layers)


class LeakyNetwork(nn.Module):
    """Stacked `LeakyLayer`s, the last one the spiking output; see the module docstring."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = _check_spec(spec)
        self.dt_ms = float(self.spec.get("dt_ms", 1.0))
        self.steps = int(self.spec["steps"])
        self.input_kind = "spikes"
        self.input_shape = tuple(int(s) for s in self.spec["input"]["shape"])
        loss = dict(self.spec.get("loss", {}) or {})
        self.loss_kind = loss.pop("kind", "ce_rate")
        self.loss_options = loss
        layers = []
        shape = self.input_shape
        for k, ls in enumerate(self.spec["layers"]):
            kw = {key: ls[key] for key in ls if key not in ("type", "size", "name")}
            if ls["type"] in _SYNAPTIC:
                kw.setdefault("alpha", 0.9)
            name = ls.get("name", f"{ls['type']}{k + 1}")
            cls = RecurrentLeakyLayer if ls["type"] in _RECURRENT else LeakyLayer
            layers.append(cls(name, shape, ls["size"], **kw))
            shape = layers[-1].out_shape
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names) or {"input", "bias"} & set(names):
            raise _bad("layers[*].name", "must be unique and not 'input' or 'bias'", names)
        for layer in layers[:-1]:
            if layer.reset == "none":
                raise _bad(f"layers[{names.index(layer.name)}].reset",
                           "'none' is for the output layer only (a layer that never resets "
                           "has no IR equivalent that spikes)", "none")
        if layers[-1].reset == "none" and self.loss_kind != "mse_membrane":
            raise _bad(f"layers[{len(layers) - 1}].reset", "'none' (an output that is read by "
                       "its membrane) needs loss.kind mse_membrane", "none")
        self.layers = nn.ModuleList(layers)
        self.n_classes = layers[-1].size

    def _dtype(self) -> torch.dtype:
        return self.layers[0].weight.dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, *shape) from spike trains (B, T, *shape)."""
        T = self.steps
        if x.dim() != len(self.input_shape) + 2 or x.shape[1] != T or \
                tuple(x.shape[2:]) != self.input_shape:
            raise ValidationError("LeakyNetwork", "model", "input",
                                  f"must be spikes of shape (B, {T}, "
                                  f"{', '.join(map(str, self.input_shape))})", tuple(x.shape))
        return x.transpose(0, 1).to(self._dtype())

    def run(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's ``(spikes, mem)``, (T, B, size), in order."""
        s = self.encode(x)
        out = []
        for layer in self.layers:
            s, mem = layer(s)
            out.append((s, mem))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """What the prediction takes the argmax of (`evospike.training.losses.logits_for`)."""
        s, mem = self.run(x)[-1]
        return logits_for(self.loss_kind, s, mem)

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor,
                        weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        s, mem = self.run(x)[-1]
        return (output_loss(self.loss_kind, s, mem, y, self.loss_options, weight),
                logits_for(self.loss_kind, s, mem))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).argmax(1)

    def to_network(self, inputs=None, name: str = "trained", record: str = "readout"):
        """The IR network with one replica per sample of ``inputs`` (module docstring)."""
        return leaky_to_network(self, inputs, name=name, record=record)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _layer_model(layer: LeakyLayer, dt_ms: float, K: int):
    from evospike.ir.neurons import CubaLIF

    beta, theta, alpha = (None if v is None else _as_numpy(v) for v in layer.decays())
    n = layer.size

    def per_neuron(v: np.ndarray) -> float | np.ndarray:
        return float(v) if v.ndim == 0 else np.tile(v.reshape(n), K)

    reset = {"subtract_after_decay": "subtract_after_decay", "subtract": "subtract",
             "value": "value", "zero_after_decay": "value", "none": "value"}[layer.reset]
    thresh = NO_FIRE_THRESHOLD if layer.reset == "none" else theta
    # "zero_after_decay" of Synaptic and of both recurrent layers zeroes the whole step after
    # the spike, its input included: a value reset held through that step
    holds = layer.synaptic or isinstance(layer, RecurrentLeakyLayer)
    refrac = 2 * dt_ms if (holds and layer.reset == "zero_after_decay") else 0.0
    du = 1.0 - alpha if alpha is not None else np.float64(1.0)
    return CubaLIF(du=per_neuron(du), dv=per_neuron(1.0 - beta),
                   v_thresh=per_neuron(np.asarray(thresh, dtype=np.float64)), v_reset=0.0,
                   tau_refrac_ms=refrac, reset=reset)


def leaky_to_network(model: LeakyNetwork, inputs=None, name: str = "trained",
                     record: str = "readout"):
    """The IR `Network` of ``model`` with one replica per sample of ``inputs`` (spike trains
    (K, T, *shape); None: one replica, no input spikes). The layers run ``k`` steps behind
    the model (see the module docstring); run it for ``(T + L) dt``. ``record``: "readout"
    (the output layer's spikes and membrane) or "all" (every layer's spikes too)."""
    from evospike.connectors import FromArrays
    from evospike.ir.network import Network

    if record not in ("readout", "all"):
        raise EvoSpikeError(f"to_network: record must be 'readout' or 'all' (got {record!r})")
    T, dt = model.steps, model.dt_ms
    net = Network(name, dt_ms=dt, units="dimensionless")
    n_in = int(np.prod(model.input_shape))
    if inputs is None:
        K, steps_idx, neurons = 1, np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        spikes = _as_numpy(model.encode(torch.as_tensor(_as_numpy(inputs))))
        K = spikes.shape[1]
        flat = spikes.reshape(T, K * n_in)
        bad = (flat != 0) & (flat != 1)
        if np.any(bad):
            raise ValidationError("LeakyNetwork", "model", "input spikes", "must be 0 or 1",
                                  float(flat[bad][0]))
        steps_idx, neurons = np.nonzero(flat)
    net.spike_source("input", K * n_in, neurons.astype(np.int64), steps_idx * dt)
    if any(_step_bias(layer) is not None for layer in model.layers):
        net.spike_source("bias", 1, np.zeros(T, np.int64), np.arange(T) * dt)
    prev, n_prev = "input", n_in
    for k, layer in enumerate(model.layers, start=1):
        size = layer.size
        try:
            net.population(layer.name, K * size, _layer_model(layer, dt, K))
        except ValidationError as exc:
            raise ValidationError("Layer", layer.name, "export",
                                  f"has no IR equivalent: {exc}", layer.reset) from None
        channel = "exc" if layer.synaptic else "v"  # the recurrent projection's too
        w = _as_numpy(layer.weight)
        post, pre = np.nonzero(w)
        vals = w[post, pre]
        off_pre = np.repeat(np.arange(K) * n_prev, pre.size)
        off_post = np.repeat(np.arange(K) * size, post.size)
        net.connect(prev, layer.name,
                    FromArrays(np.tile(pre, K) + off_pre, np.tile(post, K) + off_post,
                               weights=np.tile(vals, K)),
                    target=channel, name=f"{prev}->{layer.name}")
        if isinstance(layer, RecurrentLeakyLayer):
            # the layer's spikes of model step t reach it in model step t + 1: one step
            v = _as_numpy(layer.recurrent)
            post, pre = np.nonzero(v)
            offs = np.repeat(np.arange(K) * size, pre.size)
            net.connect(layer.name, layer.name,
                        FromArrays(np.tile(pre, K) + offs, np.tile(post, K) + offs,
                                   weights=np.tile(v[post, pre], K)),
                        delay_ms=dt, target=channel, name=f"{layer.name}.recurrent")
        bias = _step_bias(layer)
        if bias is not None:
            b = bias
            keep = np.nonzero(b)[0]
            if keep.size:
                posts = (np.arange(K)[:, None] * size + keep[None, :]).ravel()
                net.connect("bias", layer.name,
                            FromArrays(np.zeros(posts.size, np.int64), posts,
                                       weights=np.tile(b[keep], K)),
                            delay_ms=k * dt, target=channel, name=f"bias->{layer.name}")
        prev, n_prev = layer.name, size
    out = model.layers[-1].name
    net.record_spikes(out)
    net.record_state(out, "v", name=f"{out}.v")
    if record == "all":
        net.record_spikes("input", *[layer.name for layer in model.layers[:-1]])
    return net


def _step_bias(layer: LeakyLayer) -> np.ndarray | None:
    """The constant input of every step: the bias, plus the recurrent bias (snnTorch adds
    ``recurrent(s)`` with its bias in every step, the first included)."""
    parts = [_as_numpy(b) for b in (layer.bias, getattr(layer, "recurrent_bias", None))
             if b is not None]
    return None if not parts else sum(parts[1:], parts[0])


def leaky_predictions_from_results(model: LeakyNetwork, results, copies: int
                                   ) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class per replica, logits (K, classes)) from a run of `leaky_to_network`
    over ``(T + L) dt``: the output layer's spike counts, or its mean membrane over the steps
    ``L .. T+L-1`` for ``mse_membrane`` (the model's steps ``0 .. T-1``)."""
    out = model.layers[-1]
    T, L, C = model.steps, len(model.layers), out.size
    if model.loss_kind == "mse_membrane":
        trace = results.traces.get(f"{out.name}.v")
        if trace is None:
            raise EvoSpikeError(f"the results hold no trace '{out.name}.v'")
        values = np.asarray(trace.values[0])
        if values.shape[0] != T + L:
            raise EvoSpikeError(f"the results hold {values.shape[0]} samples of "
                                f"'{out.name}.v'; the export runs {T + L} steps")
        logits = values[L:].mean(axis=0).reshape(copies, C)
    else:
        steps, neurons = results.spike_steps(out.name)
        keep = (steps >= L) & (steps < T + L)
        logits = np.bincount(neurons[keep], minlength=copies * C).reshape(copies, C)
        logits = logits.astype(np.float64)
    return logits.argmax(axis=1), logits


def run_leaky_exported(model: LeakyNetwork, inputs, backend: str = "torch", chunk: int = 100,
                       **options) -> tuple[np.ndarray, np.ndarray]:
    """Classify ``inputs`` with the exported network on ``backend``, ``chunk`` samples a run."""
    from evospike.backends import get_backend

    data = _as_numpy(inputs)
    preds, logits = [], []
    for start in range(0, data.shape[0], chunk):
        part = data[start:start + chunk]
        net = leaky_to_network(model, part)
        runner = get_backend(backend).compile(net, progress=False, **options)
        results = runner.run((model.steps + len(model.layers)) * model.dt_ms)
        p, lg = leaky_predictions_from_results(model, results, part.shape[0])
        preds.append(p)
        logits.append(lg)
    return np.concatenate(preds), np.concatenate(logits)


def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _bad("(model section)", "must be a mapping", spec)
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise _bad(unknown[0], f"is not a key of a leaky model (keys: {sorted(_SPEC_KEYS)})",
                   spec[unknown[0]])
    for key in ("steps", "input", "layers"):
        if key not in spec:
            raise _bad(key, "is required", None)
    time_constants_check(spec.get("dt_ms", 1.0), spec["steps"])
    inp = spec["input"]
    if not isinstance(inp, dict) or inp.get("kind") != "spikes":
        raise _bad("input.kind", "must be 'spikes' for leaky/synaptic layers",
                   inp.get("kind") if isinstance(inp, dict) else inp)
    extra = sorted(set(inp) - {"kind", "shape"})
    if extra:
        raise _bad(f"input.{extra[0]}", "is not an input key (kind, shape)", inp[extra[0]])
    shape = inp.get("shape")
    if not isinstance(shape, (list, tuple)) or not shape or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise _bad("input.shape", "must be a list of positive integers", shape)
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        raise _bad("layers", "must be a non-empty list", layers)
    for k, ls in enumerate(layers):
        where = f"layers[{k}]"
        if not isinstance(ls, dict) or ls.get("type") not in LEAKY_TYPES:
            raise _bad(f"{where}.type", f"must be one of {LEAKY_TYPES} (other layer types "
                       "cannot be mixed with them)", ls.get("type") if isinstance(ls, dict)
                       else ls)
        extra = sorted(set(ls) - _LAYER_KEYS)
        if extra:
            raise _bad(f"{where}.{extra[0]}", f"is not a key of a {ls['type']} layer "
                       f"({sorted(_LAYER_KEYS)})", ls[extra[0]])
        if ls["type"] not in _SYNAPTIC and ("alpha" in ls or "learn_alpha" in ls):
            key = "alpha" if "alpha" in ls else "learn_alpha"
            raise _bad(f"{where}.{key}", "belongs to a synaptic layer", ls[key])
        if ls["type"] not in _RECURRENT and "recurrent_bias" in ls:
            raise _bad(f"{where}.recurrent_bias", "belongs to a recurrent layer (rleaky, "
                       "rsynaptic)", ls["recurrent_bias"])
        if ls["type"] in _RECURRENT and ls.get("reset", RECURRENT_RESETS[0]) not in \
                RECURRENT_RESETS:
            raise _bad(f"{where}.reset", f"must be one of {RECURRENT_RESETS} for a recurrent "
                       "layer", ls["reset"])
        size = ls.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise _bad(f"{where}.size", "must be a positive integer", size)
        for key in ("learn_beta", "learn_threshold", "learn_alpha", "per_neuron", "bias",
                    "detach_reset", "recurrent_bias"):
            if key in ls and not isinstance(ls[key], bool):
                raise _bad(f"{where}.{key}", "must be true or false", ls[key])
        if "reset" in ls and ls["reset"] not in RESETS:
            raise _bad(f"{where}.reset", f"must be one of {RESETS}", ls["reset"])
        if "surrogate" in ls and ls["surrogate"] not in SURROGATES:
            raise _bad(f"{where}.surrogate", f"must be one of {SURROGATES}", ls["surrogate"])
    loss = spec.get("loss", {}) or {}
    if not isinstance(loss, dict):
        raise _bad("loss", "must be a mapping such as {kind: ce_rate}", loss)
    if loss.get("kind", "ce_rate") not in LOSSES:
        raise _bad("loss.kind", f"must be one of {LOSSES}", loss.get("kind"))
    extra = sorted(set(loss) - {"kind", "on_target", "off_target"})
    if extra or (loss.get("kind", "ce_rate") != "mse_membrane" and
                 ({"on_target", "off_target"} & set(loss))):
        key = extra[0] if extra else sorted({"on_target", "off_target"} & set(loss))[0]
        raise _bad(f"loss.{key}", "is not a key of this loss (on_target/off_target belong to "
                   "mse_membrane)", loss[key])
    for key in ("on_target", "off_target"):
        if key in loss and (isinstance(loss[key], bool) or
                            not isinstance(loss[key], (int, float))):
            raise _bad(f"loss.{key}", "must be a number", loss[key])
    return spec
