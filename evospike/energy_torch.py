"""Energy accounting on torch models: NeuroBench-style operation counts of models that are not
IR networks, the torch side of `evospike.energy` (whose `OpCounts` and `LayerOps` they fill,
and whose docstring has the definitions).

- `count_torch_ops`: forward hooks, ACs where a layer's input is spikes, MACs where it is
  graded;
- `count_text_transformer_ops`: the SST-2 spiking transformer (`evospike.models.sst2`), with
  module counters for what no Linear hook sees: its spike-coincidence attention (Q spikes x K
  traces, V spikes x attention weights, both ACs) and its LIF layers (neuron updates,
  activation sparsity), run sentence by sentence without padding (`TRANSFORMER_NOTES` lists
  every choice);
- `synops_from_spikes`: SynOps of one layer from the spike tensor that drives it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evospike.energy import LayerOps, OpCounts
from evospike.errors import EvoSpikeError, ValidationError


# ------------------------------------------------------------------------ spike tensors
def synops_from_spikes(spikes: torch.Tensor, fanout, *, n_samples: int | None = None,
                       name: str = "layer") -> LayerOps:
    """SynOps of one connection layer from the spike tensor that drives it.

    ``spikes``: ``[T, B, *pre_shape]`` spike counts of the presynaptic neurons (B samples);
    ``fanout``: non-zero outgoing synapses per presynaptic neuron, shape ``pre_shape`` (or
    flattened), or a dense weight matrix ``[n_post, n_pre]`` from which it is counted.
    Returns a `LayerOps` per sample: effective = sum over spikes of the fan-out; dense =
    T x all synapses (of the weight matrix, zeros included; given a fan-out vector, only the
    synapses it counts). ``n_samples`` defaults to B.
    """
    s = torch.as_tensor(spikes).detach()
    if s.ndim < 3:
        raise ValidationError("energy", name, "spikes", "must have shape [T, B, *pre_shape]",
                              tuple(s.shape))
    if (s < 0).any() or (s != torch.round(s)).any():
        raise ValidationError("energy", name, "spikes", "must be whole spike counts >= 0")
    T, B = s.shape[:2]
    n_pre = int(np.prod(s.shape[2:]))
    f = torch.as_tensor(fanout).detach()
    all_synapses = None
    if f.ndim == 2 and f.shape[1] == n_pre and f.numel() != n_pre:
        all_synapses = float(f.numel())
        f = (f != 0).sum(0)
    f = f.reshape(-1).to(torch.float64)
    if f.numel() != n_pre:
        raise ValidationError("energy", name, "fanout",
                              f"must have one entry per presynaptic neuron ({n_pre}) or be a "
                              f"weight matrix [n_post, {n_pre}]", tuple(f.shape))
    n = B if n_samples is None else n_samples
    per_neuron = s.reshape(T * B, n_pre).to(torch.float64).sum(0)
    effective = float(per_neuron @ f) / n
    if all_synapses is None:
        all_synapses = float(f.sum())
    dense = float(T) * B * all_synapses / n
    return LayerOps(name, "spike tensor", effective, dense, True)


# ------------------------------------------------------------------------ torch modules
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _default_activation_types() -> tuple[type, ...]:
    import sys

    types: list[type] = [nn.ReLU, nn.Sigmoid]
    if "snntorch" in sys.modules:  # spiking neuron layers, only if the user's model uses them
        types.append(sys.modules["snntorch"].SpikingNeuron)
    if "spikingjelly.activation_based.neuron" in sys.modules:
        types.append(sys.modules["spikingjelly.activation_based.neuron"].BaseNode)
    return tuple(types)


class _Tally:
    """What the hooks of one `count_torch_ops` pass accumulate (totals over the batch)."""

    def __init__(self):
        self.layers: dict[str, LayerOps] = {}
        self.zeros = [0, 0]            # zero activations, all activations
        self.neurons = [0.0, 0.0]      # neuron-steps with a spike, without
        self.notes: list[str] = []
        self.shared: dict = {}         # module counters pass tensors to one another
        self.extra: dict[str, float] = {}

    def add_extra(self, key: str, value: float) -> None:
        self.extra[key] = self.extra.get(key, 0.0) + float(value)

    def add(self, name: str, kind: str, effective: float, dense: float, binary: bool) -> None:
        entry = self.layers.get(name)
        if entry is None:
            self.layers[name] = LayerOps(name, kind, effective, dense, binary)
            return
        if entry.binary != binary:
            raise EvoSpikeError(f"count_torch_ops: layer '{name}' received spikes in "
                                f"one call and graded values in another")
        entry.effective += effective
        entry.dense += dense

    def spikes(self, s: torch.Tensor, neuron_layer: bool = True) -> None:
        """Count a spike tensor of LIF neurons (every entry one neuron-step)."""
        n_spk = int((s != 0).sum())
        self.zeros[0] += int(s.numel()) - n_spk
        self.zeros[1] += int(s.numel())
        self.add_extra("lif_outputs", s.numel())
        if neuron_layer:
            self.neurons[0] += n_spk
            self.neurons[1] += int(s.numel()) - n_spk

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _default_module_counters() -> dict[type, object]:
    """Counters for modules whose operations hooks on nn.Linear / nn.Conv cannot see: the
    spiking transformer of `evospike.models.sst2` when that module is loaded."""
    import sys

    counters: dict[type, object] = {}
    sst2 = sys.modules.get("evospike.models.sst2")
    if sst2 is not None:
        counters[sst2.ChronoSpikeAttention] = _count_chrono_attention
        counters[sst2.SpikingTextClassifier] = _count_text_classifier
    return counters


def count_torch_ops(model: nn.Module, *inputs, n_samples: int | None = None,
                    activation_types: tuple[type, ...] | None = None,
                    module_counters: dict[type, object] | None = None) -> OpCounts:
    """NeuroBench-style operation counts of one forward pass of a torch module.

    Forward pre-hooks on every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` see each call's input:
    effective operations = the layer applied to the binarised input (non-zero -> 1) with
    binarised weights, summed; dense = the same with an all-ones input and weights; a call
    whose input holds only 0 and 1 counts as ACs, otherwise as MACs. A layer called once per
    time step is counted at every call. Activation sparsity = zero outputs / all outputs of the
    modules of ``activation_types`` (default ReLU, Sigmoid, and snnTorch / SpikingJelly spiking
    neurons when those libraries are loaded); None when the model has none.
    ``n_samples``: inferences in the batch (default: the first input's first dimension; pass it
    for time-major inputs ``[T, B, ...]``). Counts are per sample. Biases are not counted.

    ``module_counters`` (type -> ``fn(module, args, output, tally)``, run as forward hooks)
    count what happens inside modules beyond their Linear / Conv calls: spike trains made by
    functions rather than modules (neuron updates, activation sparsity) and products of two
    activations. The default covers the spiking transformer of `evospike.models.sst2`
    (`_count_chrono_attention`, `_count_text_classifier`: the spike-coincidence attention and
    the LIF layers); a model with such counters gets ``neuron_updates_*`` filled in. The
    transformer's counters skip padding positions but its Linear hooks cannot: count padded
    batches with `count_text_transformer_ops`.
    """
    if not inputs:
        raise EvoSpikeError("count_torch_ops: give the model's input(s)")
    if n_samples is None:
        first = inputs[0]
        if not isinstance(first, torch.Tensor) or first.ndim == 0:
            raise EvoSpikeError("count_torch_ops: cannot tell the batch size; pass n_samples")
        n_samples = int(first.shape[0])
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValidationError("energy", type(model).__name__, "n_samples",
                              "must be an integer >= 1", n_samples)
    act_types = _default_activation_types() if activation_types is None else activation_types
    counters = _default_module_counters() if module_counters is None else module_counters
    tally = _Tally()
    layers = tally.layers
    zeros = tally.zeros
    handles = []

    def pre_hook(name):
        def hook(module, args):
            x = args[0].detach()
            binary = bool(((x == 0) | (x == 1)).all())
            eff, dense = _layer_ops(module, x)
            tally.add(name, type(module).__name__, eff, dense, binary)
        return hook

    def counter_hook(fn, name):
        def hook(module, args, out):
            fn(module, args, out, tally, name)
        return hook

    def act_hook(module, args, out):
        if isinstance(out, tuple):  # snnTorch neurons may return (spikes, membrane)
            out = out[0]
        if isinstance(out, torch.Tensor):
            zeros[0] += int((out == 0).sum())
            zeros[1] += int(out.numel())

    for name, module in model.named_modules():
        fn = next((f for t, f in counters.items() if isinstance(module, t)), None)
        if fn is not None:
            handles.append(module.register_forward_hook(counter_hook(fn, name or "model")))
        if isinstance(module, (nn.Linear, *_CONV)):
            handles.append(module.register_forward_pre_hook(pre_hook(name or "model")))
        elif act_types and isinstance(module, act_types):
            handles.append(module.register_forward_hook(act_hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    counts = OpCounts(model=type(model).__name__, n_inferences=n_samples)
    for entry in layers.values():
        entry.effective /= n_samples
        entry.dense /= n_samples
        counts.layers.append(entry)
        if entry.binary:
            counts.acs += entry.effective
        else:
            counts.macs += entry.effective
        counts.dense_ops += entry.dense
    if zeros[1]:
        counts.activation_sparsity = zeros[0] / zeros[1]
    counts.neuron_updates_active = tally.neurons[0] / n_samples
    counts.neuron_updates_inactive = tally.neurons[1] / n_samples
    counts.notes.extend(tally.notes)
    counts.extra = {k: v / n_samples for k, v in tally.extra.items()}
    if not layers:
        counts.notes.append("no nn.Linear / nn.Conv layer was called: nothing to count")
    return counts


def _layer_ops(module: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    w = module.weight.detach()
    if isinstance(module, nn.Linear):
        rows = x.reshape(-1, x.shape[-1])
        active_per_input = (rows != 0).sum(0).to(torch.float64)       # [in]
        fanout = (w != 0).sum(0).to(torch.float64)                     # [in]
        effective = float(active_per_input @ fanout)
        dense = float(rows.shape[0]) * w.numel()
        return effective, dense
    conv = {nn.Conv1d: torch.nn.functional.conv1d, nn.Conv2d: torch.nn.functional.conv2d,
            nn.Conv3d: torch.nn.functional.conv3d}[type(module)]
    if module.padding_mode != "zeros":
        raise EvoSpikeError(f"count_torch_ops: {type(module).__name__} with padding_mode "
                            f"'{module.padding_mode}' is not supported")
    kwargs = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                  groups=module.groups)
    xd = x.to(torch.float64)
    effective = float(conv((xd != 0).to(torch.float64), (w != 0).to(torch.float64),
                           **kwargs).sum())
    dense = float(conv(torch.ones_like(xd), torch.ones_like(w, dtype=torch.float64),
                       **kwargs).sum())
    return effective, dense


# ------------------------------------------------------------------------ spiking transformer
TRANSFORMER_NOTES = (
    "Q/K/V projections take the TAS token currents (spike x embedding x gain), which are "
    "graded: counted as MACs, one per non-zero current entry and non-zero weight",
    "coincidence attention: each Q spike adds the K trace of every key token with a non-zero "
    "trace in the same feature (ACs, 'attention.coincidence'); each V spike adds its "
    "attention weight to every query token with a non-zero weight (ACs, 'attention.AV')",
    "K's coincidence trace is one state update per key neuron and step, priced as a neuron "
    "update; score scaling and softmax (L^2 each per sentence) are not counted, as NeuroBench "
    "counts no activation functions; nor are the residual add, pooling and the TAS draws",
    "output projection and classifier take graded inputs (attention-weighted spikes, "
    "pooled rates): MACs",
)


def _check_replay(what: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs.detach(), rtol=1e-5,
                                                        atol=1e-6):
        raise EvoSpikeError(f"count_torch_ops: the replay of {what} does not reproduce the "
                            f"module's output: the counter no longer matches the model")


def _count_chrono_attention(module, args, out, tally: _Tally, name: str) -> None:
    """Counter of `evospike.models.sst2.ChronoSpikeAttention`: replays its forward from the
    input (deterministic: the LIF layers and the trace) to see Q, K, V spikes and the K trace,
    checks the replay against the module's output, and counts (for real tokens only)."""
    import math

    import torch.nn.functional as F

    from evospike.training.layers import delay_one_step
    from evospike.training.neuron import lif_sequence

    x, mask = args[0].detach(), args[1]
    T, B, L, D = x.shape
    spikes = {}
    for key in ("q", "k", "v"):  # F.linear: the Linear's own call has been counted already
        z = F.linear(x, getattr(module, key).weight.detach())
        spikes[key], _ = lif_sequence(delay_one_step(z), module.consts, membrane=False)
    q, k, v = spikes["q"], spikes["k"], spikes["v"]
    trace = torch.zeros_like(k[0])
    traces = []
    for t in range(T):
        trace = trace * module.decay + k[t]
        traces.append(trace)
    k_trace = torch.stack(traces)
    scores = torch.einsum("tbid,tbjd->bij", q, k_trace) / (T * math.sqrt(D))
    weights = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
    _check_replay(f"'{name}'", torch.einsum("bij,tbjd->tbid", weights, v), out)
    real = mask.to(torch.float64)                                     # (B, L)
    n_real = real.sum(1)
    pairs = float(T * D * (n_real ** 2).sum())                        # all (i, j, d, t)
    q_act = ((q != 0).to(torch.float64) * real[None, :, :, None]).sum(2)      # (T, B, D)
    k_act = ((k_trace != 0).to(torch.float64) * real[None, :, :, None]).sum(2)
    tally.add(f"{name}.coincidence", "Q spikes x K traces", float((q_act * k_act).sum()),
              pairs, True)
    w_nz = ((weights != 0).to(torch.float64) * real[:, :, None]).sum(1)     # (B, L) over i
    v_real = (v != 0).to(torch.float64) * real[None, :, :, None]
    tally.add(f"{name}.AV", "V spikes x attention weights",
              float(torch.einsum("tbjd,bj->", v_real, w_nz)), pairs, True)
    keep = mask.bool()
    for s in (q, k, v):
        tally.spikes(s[:, keep])
    k_spk = int((k[:, keep] != 0).sum())        # K trace: a state update per key neuron-step
    tally.neurons[0] += k_spk
    tally.neurons[1] += int(k[:, keep].numel()) - k_spk
    tally.shared["attention"] = (x, out.detach(), mask)
    for text in TRANSFORMER_NOTES:
        tally.note(text)


def _count_text_classifier(model, args, out, tally: _Tally, name: str) -> None:
    """Counter of `evospike.models.sst2.SpikingTextClassifier`: the LIF layer after the output
    projection (replayed from what the attention counter saw, checked against the logits) and
    the TAS input spikes (``extra``: ``input_token_spikes``, ``input_token_slots``)."""
    import torch.nn.functional as F

    from evospike.training.layers import delay_one_step
    from evospike.training.neuron import lif_sequence

    if "attention" not in tally.shared:
        raise EvoSpikeError("count_torch_ops: SpikingTextClassifier ran without its attention")
    x, attended, mask = tally.shared.pop("attention")
    h, _ = lif_sequence(delay_one_step(F.linear(attended, model.out.weight.detach()) + x),
                        model.consts, membrane=False)
    w = mask.to(h.dtype)[None, :, :, None]
    pooled = (h * w).sum(dim=(0, 2)) / (w.sum(dim=(0, 2)) * 1.0).clamp(min=1.0)
    _check_replay(f"'{name}'", F.linear(pooled, model.classifier.weight.detach(),
                                        model.classifier.bias), out)
    keep = mask.bool()
    tally.spikes(h[:, keep])
    token_spikes = (x != 0).any(-1)                                   # (T, B, L)
    tally.add_extra("input_token_spikes", float(token_spikes[:, keep].sum()))
    tally.add_extra("input_token_slots", float(token_spikes[:, keep].numel()))
    tally.add_extra("tokens", float(keep.sum()))


def count_text_transformer_ops(model: nn.Module, ids: torch.Tensor, seed: int = 0,
                               progress: bool = False) -> OpCounts:
    """Operation counts per sentence of `evospike.models.sst2.SpikingTextClassifier`, averaged
    over the sentences of ``ids`` (B, max_len), right-padded with 0.

    Each sentence runs on its own, cut to its length, so padding positions (which a device
    would not hold) are not counted; the TAS draws come from ``seed`` (torch's RNG state is
    restored afterwards). See `TRANSFORMER_NOTES` for what counts as what. ``progress``: a
    progress bar over the sentences."""
    from evospike.models.sst2 import SpikingTextClassifier

    if not isinstance(model, SpikingTextClassifier):
        raise EvoSpikeError(f"count_text_transformer_ops: expects a SpikingTextClassifier, "
                            f"not {type(model).__name__}")
    ids = torch.as_tensor(ids)
    if ids.dim() != 2:
        raise ValidationError("energy", "sst2_transformer", "ids", "must be (B, max_len)",
                              tuple(ids.shape))
    lengths = (ids != 0).sum(1)
    parts: list[OpCounts] = []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rows = range(ids.shape[0])
            if progress:
                from tqdm.auto import tqdm

                rows = tqdm(rows, desc="counting operations", unit="sentence")
            for b in rows:
                n = int(lengths[b])
                if n == 0 or bool((ids[b, n:] != 0).any()):
                    raise ValidationError("energy", "sst2_transformer", f"ids[{b}]",
                                          "must hold at least one token, padding (0) only "
                                          "at the end", ids[b].tolist())
                parts.append(count_torch_ops(model, ids[b:b + 1, :n], n_samples=1))
    finally:
        model.train(was_training)
    out = OpCounts(model=type(model).__name__, n_inferences=len(parts))
    layers: dict[str, LayerOps] = {}
    for c in parts:
        out.acs += c.acs / len(parts)
        out.macs += c.macs / len(parts)
        out.dense_ops += c.dense_ops / len(parts)
        out.neuron_updates_active += c.neuron_updates_active / len(parts)
        out.neuron_updates_inactive += c.neuron_updates_inactive / len(parts)
        for layer in c.layers:
            e = layers.setdefault(layer.name, LayerOps(layer.name, layer.kind, 0.0, 0.0,
                                                       layer.binary))
            e.effective += layer.effective / len(parts)
            e.dense += layer.dense / len(parts)
        for key, value in c.extra.items():
            out.extra[key] = out.extra.get(key, 0.0) + value / len(parts)
    out.layers = list(layers.values())
    out.notes = list(parts[0].notes)
    # sparsity over all LIF neuron-steps of all sentences together (longer ones weigh more)
    outputs = sum(c.extra["lif_outputs"] for c in parts)
    zeros = sum(c.activation_sparsity * c.extra["lif_outputs"] for c in parts)
    out.activation_sparsity = zeros / outputs if outputs else None
    out.notes.append(f"counted per sentence without padding, averaged over {len(parts)} "
                     f"sentence(s) of {float(lengths.double().mean()):.3g} tokens on average")
    return out
