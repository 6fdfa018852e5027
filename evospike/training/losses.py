"""Losses on a spiking output layer, with snnTorch's semantics (`snntorch.functional.loss`):

- ``ce_rate``: cross-entropy of the output spikes of every step, averaged over the steps
  (snnTorch ``ce_rate_loss``: ``mean_t CE(spk[t], y)``);
- ``ce_count``: cross-entropy of the spike counts (``ce_count_loss``: ``CE(sum_t spk[t], y)``);
- ``mse_membrane``: mean-squared error of the membrane of every step against ``on_target`` for
  the correct class and ``off_target`` for the others, averaged over the steps
  (``mse_membrane_loss``, time-invariant targets).

Each takes ``(spikes, mem)`` of shape (T, B, C) and the labels (B,). The prediction that goes
with a loss: the class with the most spikes (``ce_rate``, ``ce_count``) or the highest mean
membrane (``mse_membrane``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evospike.errors import ValidationError

LOSSES = ("ce_rate", "ce_count", "mse_membrane")


def ce_rate_loss(spikes: torch.Tensor, y: torch.Tensor,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_t CE(spikes[t], y)``: every step's spikes are the logits."""
    T = spikes.shape[0]
    logp = F.log_softmax(spikes, dim=-1)
    return sum(F.nll_loss(logp[t], y, weight=weight) for t in range(T)) / T


def ce_count_loss(spikes: torch.Tensor, y: torch.Tensor,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """``CE(sum_t spikes[t], y)``: the spike counts are the logits."""
    return F.cross_entropy(spikes.sum(0), y, weight=weight)


def mse_membrane_loss(mem: torch.Tensor, y: torch.Tensor, on_target: float = 1.0,
                      off_target: float = 0.0) -> torch.Tensor:
    """``mean_t MSE(mem[t], target)`` with target ``on_target`` at the label, else
    ``off_target``."""
    target = torch.full_like(mem[0], float(off_target))
    target.scatter_(1, y.view(-1, 1), float(on_target))
    T = mem.shape[0]
    return sum(F.mse_loss(mem[t], target) for t in range(T)) / T


def output_loss(kind: str, spikes: torch.Tensor, mem: torch.Tensor, y: torch.Tensor,
                options: dict | None = None,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """The loss ``kind`` (one of `LOSSES`) of an output layer's ``(spikes, mem)``."""
    options = options or {}
    if kind == "ce_rate":
        return ce_rate_loss(spikes, y, weight)
    if kind == "ce_count":
        return ce_count_loss(spikes, y, weight)
    if kind == "mse_membrane":
        if weight is not None:
            raise ValidationError("model config", "model", "loss.kind",
                                  "mse_membrane takes no class weights", kind)
        return mse_membrane_loss(mem, y, options.get("on_target", 1.0),
                                 options.get("off_target", 0.0))
    raise ValidationError("model config", "model", "loss.kind", f"must be one of {LOSSES}", kind)


def logits_for(kind: str, spikes: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
    """What a prediction takes the argmax of: spike counts, or the mean membrane."""
    return mem.mean(0) if kind == "mse_membrane" else spikes.sum(0)
