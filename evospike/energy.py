"""Energy per inference: operation counts from actual activity, priced by a hardware profile.

Counting follows NeuroBench's definitions (Yik et al., "NeuroBench", 2023/2025; its
``SynapticOperations`` and ``ActivationSparsity`` metrics):

- **effective synaptic operations**: one per (non-zero activation, non-zero weight) pair. With
  a binary activation (a spike) it is an accumulate (AC: add the weight); with a graded one a
  multiply-accumulate (MAC). For an EvoSpike network this is ``SynOps = sum over emitted spikes
  of the presynaptic neuron's fan-out`` (synapses with a non-zero weight), from a run's
  `Results`.
- **dense operations**: every activation times every synapse, zero or not, every step: what
  hardware without sparsity support performs.
- **activation sparsity**: the fraction of neuron outputs that are zero, over all neuron layers
  (populations), time steps and samples: ``1 - spikes / (neurons * steps)``.

Energy = counts x per-operation cost of a named profile (`evospike.hardware.energy_costs`),
with each figure's source. Biases, normalisation, pooling and activation functions are not
counted (as in NeuroBench); nor are injected currents or plasticity updates (said in the
notes of each count).

Models that are not IR networks are counted on the torch model (`count_torch_ops`: forward
hooks, ACs where a layer's input is spikes, MACs where it is graded). The SST-2 spiking
transformer (`evospike.models.sst2`) gets module counters for what no Linear hook sees: its
spike-coincidence attention (Q spikes x K traces, V spikes x attention weights, both ACs) and
its LIF layers (neuron updates, activation sparsity); `count_text_transformer_ops` runs it
sentence by sentence without padding (`TRANSFORMER_NOTES` lists every choice). A profile
without a MAC figure (Loihi) prices MACs through ``OpCounts.energy(..., fallback=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from evospike.errors import EvoSpikeError, ValidationError
from evospike.hardware.energy_costs import EnergyProfile, get_profile


@dataclass
class LayerOps:
    """Operations of one connection layer (projection or torch module), per inference."""

    name: str
    kind: str
    effective: float     # non-zero activation x non-zero weight pairs
    dense: float         # all activation x all synapse pairs
    binary: bool         # True: activations were spikes (ACs); False: graded (MACs)


@dataclass
class OpCounts:
    """Operation counts per inference (averaged over ``n_inferences``)."""

    model: str
    n_inferences: int
    acs: float = 0.0                      # effective accumulates: the SNN's SynOps
    macs: float = 0.0                     # effective multiply-accumulates
    dense_ops: float = 0.0                # NeuroBench "Dense" synaptic operations
    neuron_updates_active: float = 0.0    # neuron-steps with a spike
    neuron_updates_inactive: float = 0.0  # neuron-steps without a spike
    activation_sparsity: float | None = None
    layers: list[LayerOps] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)  # model-specific per-inference counts

    @property
    def synops(self) -> float:
        """Effective synaptic operations of either kind (ACs + MACs)."""
        return self.acs + self.macs

    def energy(self, profile: EnergyProfile | str,
               fallback: EnergyProfile | str | None = None) -> EnergyBreakdown:
        """Energy per inference under ``profile`` (a profile or its name). An operation kind
        the profile does not price (e.g. MACs on a Loihi profile, which publishes no MAC
        figure) is priced with ``fallback`` if one is given (the breakdown says which profile
        priced each part), and is an error otherwise."""
        prof = get_profile(profile) if isinstance(profile, str) else profile
        back = get_profile(fallback) if isinstance(fallback, str) else fallback
        parts: dict[str, float] = {}
        priced_by: dict[str, EnergyProfile] = {}
        for kind, count in (("ac", self.acs), ("mac", self.macs),
                            ("neuron_update_active", self.neuron_updates_active),
                            ("neuron_update_inactive", self.neuron_updates_inactive)):
            if count > 0:
                use = back if (kind not in prof.costs and back is not None) else prof
                parts[kind] = count * use.cost_pJ(kind)
                priced_by[kind] = use
        return EnergyBreakdown(prof, parts, priced_by)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "n_inferences": self.n_inferences, "synops": self.synops,
            "acs": self.acs, "macs": self.macs, "dense_ops": self.dense_ops,
            "neuron_updates_active": self.neuron_updates_active,
            "neuron_updates_inactive": self.neuron_updates_inactive,
            "activation_sparsity": self.activation_sparsity,
            "layers": [vars(layer) for layer in self.layers], "notes": list(self.notes),
            "extra": dict(self.extra),
        }


@dataclass
class EnergyBreakdown:
    """Energy per inference in pJ, by operation kind."""

    profile: EnergyProfile
    parts_pJ: dict[str, float]
    priced_by: dict[str, EnergyProfile] = field(default_factory=dict)

    def _by(self, kind: str) -> EnergyProfile:
        return self.priced_by.get(kind, self.profile)

    @property
    def fallback_parts(self) -> dict[str, str]:
        """Kinds priced by another profile than ``profile``: kind -> that profile's name."""
        return {k: self._by(k).name for k in self.parts_pJ if self._by(k) is not self.profile}

    @property
    def total_pJ(self) -> float:
        return float(sum(self.parts_pJ.values()))

    @property
    def synaptic_pJ(self) -> float:
        return float(self.parts_pJ.get("ac", 0.0) + self.parts_pJ.get("mac", 0.0))

    def to_dict(self) -> dict:
        return {"profile": self.profile.name, "total_pJ": self.total_pJ,
                "parts_pJ": dict(self.parts_pJ),
                "sources": {k: self._by(k).costs[k].source for k in self.parts_pJ},
                "priced_by": {k: self._by(k).name for k in self.parts_pJ},
                "note": self.profile.note}


# ------------------------------------------------------------------------ SNN: IR + Results
def count_network_ops(network, results, inferences_per_trial: int = 1) -> OpCounts:
    """SynOps, dense operations, neuron updates and activation sparsity of a run.

    ``results`` must hold the spikes of every population and of every spike source that
    feeds a projection (record them with ``network.record_spikes(...)``); they are summed over
    all trials and divided by ``n_trials * inferences_per_trial`` (a network holding K
    replicas of a classifier, each fed its own sample, makes K inferences per trial).
    A spike is counted once it is emitted, also if its delay would deliver it after the run.
    """
    if isinstance(inferences_per_trial, bool) or not isinstance(inferences_per_trial, int) \
            or inferences_per_trial < 1:
        raise ValidationError("energy", network.name, "inferences_per_trial",
                              "must be an integer >= 1", inferences_per_trial)
    needed = sorted(set(network.populations) | {p.pre for p in network.projections.values()})
    missing = [n for n in needed if n not in results.spikes_by_node]
    if missing:
        raise EvoSpikeError(f"energy: the results hold no spikes of {missing}; SynOps and "
                            f"activation sparsity need every population and every spike "
                            f"source recorded (network.record_spikes(...))")
    for name in needed:
        size = network.size_of(name)
        if results.spikes_by_node[name].size != size:
            raise EvoSpikeError(f"energy: '{name}' has {size} neurons in network "
                                f"'{network.name}' but {results.spikes_by_node[name].size} in "
                                f"the results: they are not from this network")
    n_inf = results.n_trials * inferences_per_trial
    steps = results.n_steps
    counts = OpCounts(model=network.name, n_inferences=n_inf)
    for proj in network.projections.values():
        nonzero = proj.weights != 0
        fanout = np.bincount(proj.pre_indices()[nonzero], minlength=proj.n_pre)
        neurons = results.spikes_by_node[proj.pre].neuron.astype(np.int64)
        effective = float(fanout[neurons].sum())
        dense = float(proj.n_synapses) * steps * results.n_trials
        counts.layers.append(LayerOps(proj.name, f"projection {proj.pre}->{proj.post}",
                                      effective / n_inf, dense / n_inf, True))
        counts.acs += effective / n_inf
        counts.dense_ops += dense / n_inf
    total_spikes = 0
    total_neuron_steps = 0
    for pop in network.populations.values():
        spikes = int(results.spikes_by_node[pop.name].step.size)
        total_spikes += spikes
        total_neuron_steps += pop.size * steps * results.n_trials
    counts.neuron_updates_active = total_spikes / n_inf
    counts.neuron_updates_inactive = (total_neuron_steps - total_spikes) / n_inf
    if total_neuron_steps:
        counts.activation_sparsity = 1.0 - total_spikes / total_neuron_steps
    if network.currents:
        targets = sorted({c.target for c in network.currents.values()})
        counts.notes.append(f"injected currents into {targets} are inputs, not synaptic "
                            f"operations, and are not counted")
    if network.plasticity:
        counts.notes.append("plasticity (weight updates) is not counted")
    return counts


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


# ------------------------------------------------------------------------ ANN baselines
class _BasicBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False),
                                      nn.BatchNorm1d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class ResNet18_1d(nn.Module):
    """ResNet-18 (He et al. 2016) with 1-D convolutions, the usual ANN baseline for ECG beats:
    a 7-tap stride-2 stem, max-pool, four stages of two basic blocks (``width`` x 1, 2, 4, 8
    channels, strides 1, 2, 2, 2), global average pool, linear classifier.
    Input ``[B, in_channels, L]``, output ``[B, n_classes]``."""

    def __init__(self, in_channels: int = 1, n_classes: int = 5, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_channels, width, 7, stride=2, padding=3,
                                            bias=False),
                                  nn.BatchNorm1d(width), nn.ReLU(),
                                  nn.MaxPool1d(3, stride=2, padding=1))
        blocks, c = [], width
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            blocks += [_BasicBlock1d(c, width * mult, stride),
                       _BasicBlock1d(width * mult, width * mult, 1)]
            c = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(-1))


def _conv_len(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def resnet18_1d_macs(length: int = 256, in_channels: int = 1, n_classes: int = 5,
                     width: int = 64) -> int:
    """Multiply-accumulates of one forward pass of `ResNet18_1d` on a ``length``-sample
    signal, counted analytically (convolutions and the classifier; as in NeuroBench,
    batch-norm, ReLU, pooling and biases are not MACs). Zero padding is not multiplied."""
    if length < 32:
        raise ValidationError("energy", "resnet18_1d", "length",
                              "must be at least 32 samples (five stride-2 reductions)", length)

    def conv_macs(l_in, c_in, c_out, kernel, stride, padding):
        l_out = _conv_len(l_in, kernel, stride, padding)
        # taps that land on real samples, summed over output positions
        taps = sum(min(l_in, o * stride - padding + kernel) - max(0, o * stride - padding)
                   for o in range(l_out))
        return taps * c_in * c_out, l_out

    total, l_cur = conv_macs(length, in_channels, width, 7, 2, 3)
    l_cur = _conv_len(l_cur, 3, 2, 1)  # max-pool
    c = width
    for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        for block in range(2):
            c_out = width * mult
            s = stride if block == 0 else 1
            m1, l_out = conv_macs(l_cur, c, c_out, 3, s, 1)
            m2, _ = conv_macs(l_out, c_out, c_out, 3, 1, 1)
            total += m1 + m2
            if s != 1 or c != c_out:
                total += conv_macs(l_cur, c, c_out, 1, s, 0)[0]
            l_cur, c = l_out, c_out
    return int(total + c * n_classes)


def bert_macs(seq_len: int, n_layers: int = 12, d_model: int = 768, d_ff: int = 3072,
              n_classes: int = 2) -> dict[str, int]:
    """Multiply-accumulates of a BERT encoder classifying one sequence of ``seq_len`` tokens
    (defaults: BERT-base, Devlin et al. 2019). Per layer: Q, K, V and output projections
    ``4 n d^2``, attention scores ``Q K^T`` and weighted values ``A V`` ``2 n^2 d`` (over all
    heads), feed-forward ``2 n d d_ff``; then the pooler (``d^2``, on the [CLS] token) and the
    classifier (``d * n_classes``). Embedding look-ups, softmax, layer norm and GELU are not
    MACs. ``seq_len`` counts every token the model sees, [CLS] and [SEP] included."""
    for fld, val in (("seq_len", seq_len), ("n_layers", n_layers), ("d_model", d_model),
                     ("d_ff", d_ff), ("n_classes", n_classes)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValidationError("energy", "bert", fld, "must be an integer >= 1", val)
    n, d = seq_len, d_model
    parts = {"projections": n_layers * 4 * n * d * d,
             "attention": n_layers * 2 * n * n * d,
             "feed_forward": n_layers * 2 * n * d * d_ff,
             "pooler_classifier": d * d + d * n_classes}
    parts["total"] = sum(parts.values())
    return parts


def ann_baseline(name: str, *, ecg_length: int = 256, seq_len: int = 32,
                 n_classes: int | None = None) -> OpCounts:
    """Dense MAC counts of a named ANN baseline for one input, as `OpCounts` (``macs`` =
    ``dense_ops``: the ANN does every multiplication; effective MACs after ReLU zeros depend
    on the trained weights, which we do not have). Names: "resnet18-ecg" (`ResNet18_1d` on a
    beat of ``ecg_length`` samples, 5 AAMI classes), "bert-base-sst2" (BERT-base on
    ``seq_len`` tokens, 2 classes)."""
    if name == "resnet18-ecg":
        macs = resnet18_1d_macs(ecg_length, 1, n_classes or 5)
        label = f"ResNet-18 (1-D) on one ECG beat of {ecg_length} samples"
    elif name == "bert-base-sst2":
        macs = bert_macs(seq_len, n_classes=n_classes or 2)["total"]
        label = f"BERT-base on one SST-2 sentence of {seq_len} tokens"
    else:
        raise EvoSpikeError(f"unknown ANN baseline '{name}' (known: resnet18-ecg, "
                            f"bert-base-sst2)")
    return OpCounts(model=label, n_inferences=1, macs=float(macs), dense_ops=float(macs),
                    notes=["dense MACs, counted analytically"])
