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
notes of each count). A profile without a MAC figure (Loihi) prices MACs through
``OpCounts.energy(..., fallback=...)``.

This module is the framework-free core (NumPy): the counts of an IR network's run
(`count_network_ops`) and the analytic MAC counts of the ANN baselines (`ann_baseline`).
Models that are not IR networks are counted on the torch model by `evospike.energy_torch`
(`count_torch_ops`: forward hooks; `count_text_transformer_ops`: the SST-2 spiking
transformer; `synops_from_spikes`); those names stay importable from here and load torch only
when used. The baselines' torch definitions live in `evospike.models.baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evospike.errors import EvoSpikeError, ValidationError
from evospike.hardware.energy_costs import EnergyProfile, get_profile

#: the torch side (`evospike.energy_torch`, `evospike.models.baselines`), importable from here
#: under its old names: loaded on first use, so ``import evospike.energy`` loads no torch
_TORCH_NAMES = {
    "synops_from_spikes": "evospike.energy_torch",
    "count_torch_ops": "evospike.energy_torch",
    "count_text_transformer_ops": "evospike.energy_torch",
    "TRANSFORMER_NOTES": "evospike.energy_torch",
    "ResNet18_1d": "evospike.models.baselines",
}


def __getattr__(name: str):
    module = _TORCH_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'evospike.energy' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)



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


# ------------------------------------------------------------------------ ANN baselines
def _conv_len(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def resnet18_1d_macs(length: int = 256, in_channels: int = 1, n_classes: int = 5,
                     width: int = 64) -> int:
    """Multiply-accumulates of one forward pass of `evospike.models.baselines.ResNet18_1d` on a
    ``length``-sample signal, counted analytically (convolutions and the classifier; as in
    NeuroBench, batch-norm, ReLU, pooling and biases are not MACs). Zero padding is not
    multiplied."""
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
    on the trained weights, which we do not have). Names: "resnet18-ecg"
    (`evospike.models.baselines.ResNet18_1d` on a beat of ``ecg_length`` samples, 5 AAMI
    classes), "bert-base-sst2" (BERT-base on ``seq_len`` tokens, 2 classes)."""
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
