"""A spiking Transformer classifier for SST-2: TAS encoding and ChronoSpikeAttention.

After the EvoSpikeNet spec (``shared/background/evospikenet-spec.txt`` section 3.3):

- **TAS encoding**: token i's embedding ``e_i`` is presented at step t when its spike
  ``s_it`` fires, ``P(s_it) = sigmoid(alpha * |e_i| / tau_window - offset)``
  (`evospike.datasets.tas_probabilities`): salient tokens spike densely. The draws are
  Bernoulli; their gradient passes straight through to the probability, so the embeddings
  learn (padding tokens never spike).
- **ChronoSpikeAttention**: Q, K and V are spike trains of LIF neurons (the trainable LIF of
  `evospike.training.neuron`, surrogate gradients) driven by projections of the presented
  tokens. The score of token pair (i, j) counts coincidences of their Q and K spikes over time,
  K's spikes seen through an exponential trace (``tau_coincidence_ms``) so that near-coincident
  spikes count, less the further apart: ``A_ij = sum_t sum_d q_it,d * trace(k)_jt,d /
  (T sqrt(D))``; a softmax over j (padding masked) weights V's spike trains. As the spec
  says, a hybrid: spikes in, spikes out, a softmax in between.
- then an output projection into LIF neurons with a residual, mean over tokens and time, and a
  linear classifier.

Not an IR network: attention multiplies two spike trains, which no IR projection does, so this
model has no ``to_network`` and trains and runs on torch only (the trainer says so).
Accuracy reached (``examples/sst2.yaml``): 89.00 % on 1000 synthetic test sentences (2 classes);
the GLUE files are read the same way where they are present (not available here).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from evospike.errors import ValidationError
from evospike.training.layers import delay_one_step
from evospike.training.neuron import NeuronSpec, lif_sequence, step_constants


class ChronoSpikeAttention(nn.Module):
    """Spike-coincidence attention over ``x`` (T, B, L, D) token currents; returns spike
    trains (T, B, L, D)."""

    def __init__(self, dim: int, consts, dt_ms: float, tau_coincidence_ms: float):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.consts = consts
        self.decay = math.exp(-dt_ms / tau_coincidence_ms)
        self.last_scores: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T, B, L, D = x.shape
        q, _ = lif_sequence(delay_one_step(self.q(x)), self.consts, membrane=False)
        k, _ = lif_sequence(delay_one_step(self.k(x)), self.consts, membrane=False)
        v, _ = lif_sequence(delay_one_step(self.v(x)), self.consts, membrane=False)
        trace = torch.zeros_like(k[0])
        traces = []
        for t in range(T):  # K's exponential trace: near-coincident spikes count too
            trace = trace * self.decay + k[t]
            traces.append(trace)
        k_trace = torch.stack(traces)
        scores = torch.einsum("tbid,tbjd->bij", q, k_trace) / (T * math.sqrt(D))
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        self.last_scores = weights.detach()
        return torch.einsum("bij,tbjd->tbid", weights, v)


class SpikingTextClassifier(nn.Module):
    """Token ids (B, L) -> logits (B, classes); see the module docstring."""

    def __init__(self, vocab_size: int, n_classes: int = 2, dim: int = 32, steps: int = 8,
                 dt_ms: float = 1.0, alpha: float = 1.0, tau_window: float = 1.0,
                 offset: float = 2.0, tau_coincidence_ms: float = 2.0, neuron=None):
        super().__init__()
        if vocab_size < 3:
            raise ValidationError("model", "sst2_transformer", "vocab_size",
                                  "must be at least 3 (pad, unk and one word)", vocab_size)
        self.steps, self.alpha, self.tau_window, self.offset = steps, alpha, tau_window, offset
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        spec = NeuronSpec(**(neuron or {"tau_m_ms": 10.0, "tau_syn_ms": 5.0}))
        self.consts = step_constants(spec, dt_ms)
        self.attention = ChronoSpikeAttention(dim, self.consts, dt_ms, tau_coincidence_ms)
        self.out = nn.Linear(dim, dim, bias=False)
        self.classifier = nn.Linear(dim, n_classes)
        self.gain = nn.Parameter(torch.tensor(3.0))  # drive of the presented tokens

    def tas(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token currents (T, B, L, D), mask (B, L)) of TAS-encoded tokens."""
        from evospike.datasets import tas_probabilities

        mask = ids != 0
        e = self.embedding(ids)
        p = tas_probabilities(e, alpha=self.alpha, tau_window=self.tau_window,
                              offset=self.offset) * mask
        draws = (torch.rand((self.steps, *p.shape), device=p.device) < p).to(p.dtype)
        spikes = draws + p - p.detach()  # straight-through: the gradient reaches p
        return spikes[..., None] * e * self.gain, mask

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValidationError("model", "sst2_transformer", "input",
                                  "must be token ids (B, L)", (tuple(ids.shape), ids.dtype))
        x, mask = self.tas(ids)
        attended = self.attention(x, mask)
        h, _ = lif_sequence(delay_one_step(self.out(attended) + x), self.consts,
                            membrane=False)
        w = mask.to(h.dtype)[None, :, :, None]
        pooled = (h * w).sum(dim=(0, 2)) / (w.sum(dim=(0, 2)) * 1.0).clamp(min=1.0)
        return self.classifier(pooled)


def sst2_transformer(n_classes: int = 2, sample_shape=(16,), extra=None, dim: int = 32,
                     steps: int = 8, **options) -> SpikingTextClassifier:
    tokenizer = (extra or {}).get("tokenizer")
    if tokenizer is None:
        raise ValidationError("model", "sst2_transformer", "tokenizer",
                              "is needed (a text data set: sst2 or synthetic_sentiment)", None)
    return SpikingTextClassifier(tokenizer.vocab_size, n_classes, dim, steps, **options)


__all__ = ["ChronoSpikeAttention", "SpikingTextClassifier", "sst2_transformer"]
