"""Terminal-attractor pruning inside `evospike train` (``train.pruning`` of the config).

    train:
      pruning:
        r_target: 0.3          # fraction of the pruned weights to remove (global threshold)
        warmup_steps: 200      # optimiser steps (batches) before anything is pruned
        tau_steps: 150         # time constant of R(t), in steps
        lambda_stability: 0.0  # alpha's weight; 0: R(t) reaches r_target (see below)
        attractor: true        # the attractor step on (false: attractor_lr = 0)
        layers: [linear1]      # optional: the layers whose weights are pruned (default all)
        # also: loss_window, saliency_momentum, update_interval, regrowth, gamma, beta, eps,
        #       attractor_lr, clip_norm, fade_k (the constants of evospike.pruning)

The trainer wraps its Adam optimiser in `evospike.pruning_torch.TerminalAttractorOptimizer`
over the weight tensors (two or more dimensions: weight matrices and conv kernels; biases are
never pruned) of the chosen layers, with E = the batch loss. Pruned weights are exactly 0 in the
parameters (the wrapper zeroes them after every step), so the network trained, evaluated,
checkpointed and exported is the pruned one; export drops zero weights, so pruned synapses are
absent from the IR network's connectivity and SynOps fall with them.

**Which epoch is kept.** Best-epoch selection (and early stopping's patience) consider only
epochs that end once the schedule has run its course, ``t >= warmup_steps + 3 tau_steps``
(``1 - exp(-3) = 95 %`` of R_target); before that a less pruned network could win the selection
and the result would not be the pruned network asked for.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evospike.errors import ValidationError
from evospike.pruning import DEFAULTS, validate_parameters

#: keys of ``train.pruning`` besides the constants of `evospike.pruning.DEFAULTS`
EXTRA_KEYS = ("attractor", "layers")
#: the schedule counts as settled after warm-up plus this many tau (95 % of its course)
SETTLE_TAUS = 3.0


def _bad(key: str, problem: str, value: object) -> ValidationError:
    return ValidationError("training config", "config", key, problem, value)


def parse_pruning(section: Any, where: str = "train.pruning.") -> dict[str, Any] | None:
    """Check ``train.pruning``; returns ``{"params": {...wrapper constants...}, "layers": list
    or None}`` or None when absent. Every error names the key (``train.pruning.<key>``) and the
    value."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise _bad(where.rstrip("."), "must be a mapping such as {r_target: 0.3}", section)
    known = set(DEFAULTS) | set(EXTRA_KEYS)
    for key in section:
        if key not in known:
            raise _bad(f"{where}{key}", f"is not a known key (known: {sorted(known)})",
                       section[key])
    params = {}
    for key in DEFAULTS:
        if key in section:
            try:
                params.update(validate_parameters("training config", "config",
                                                  **{key: section[key]}))
            except ValidationError as exc:  # re-raised under the config's key
                prefix = f"training config 'config': {key} "
                problem = str(exc)[len(prefix):] if str(exc).startswith(prefix) else str(exc)
                problem = problem.rsplit(" (got ", 1)[0]
                raise _bad(f"{where}{key}", problem, section[key]) from None
    attractor = section.get("attractor", True)
    if not isinstance(attractor, bool):
        raise _bad(f"{where}attractor", "must be true or false", attractor)
    if not attractor:
        if params.get("attractor_lr", 0.0) != 0.0:
            raise _bad(f"{where}attractor_lr", "contradicts attractor: false (leave it out)",
                       section["attractor_lr"])
        params["attractor_lr"] = 0.0
    layers = section.get("layers")
    if layers is not None:
        if not (isinstance(layers, list) and layers
                and all(isinstance(x, str) and x for x in layers)):
            raise _bad(f"{where}layers", "must be a non-empty list of layer names", layers)
        if len(set(layers)) != len(layers):
            raise _bad(f"{where}layers", "names a layer twice", layers)
    full = {**DEFAULTS, **params}
    return {"params": params, "layers": layers, "attractor": attractor,
            "settle_step": float(full["warmup_steps"]) + SETTLE_TAUS * float(full["tau_steps"])}


def pruned_weights(model: torch.nn.Module, layers: list[str] | None) -> dict[str, torch.Tensor]:
    """The weight tensors (>= 2 dimensions) to prune, by parameter name; ``layers`` restricts
    them to the named layers of a `SpikingNetwork` (or top-level modules of another model)."""
    from evospike.pruning_torch import weight_parameters

    weights = weight_parameters(model)
    if layers is None:
        return weights
    names = {getattr(m, "name", None) for m in model.modules()} - {None}
    names |= {n for n, _ in model.named_children()}
    chosen: dict[str, torch.Tensor] = {}
    for layer in layers:
        if layer not in names:
            raise _bad("train.pruning.layers", f"names no layer of the model (layers: "
                       f"{sorted(str(n) for n in names)})", layer)
        mods = [m for m in model.modules() if getattr(m, "name", None) == layer]
        mods += [m for n, m in model.named_children() if n == layer]
        ids = {id(p) for m in mods for p in m.parameters()}
        found = {k: p for k, p in weights.items() if id(p) in ids}
        if not found:
            raise _bad("train.pruning.layers", "names a layer without weights to prune", layer)
        chosen.update(found)
    return chosen


def wrap_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                   pruning: dict[str, Any]):
    """`TerminalAttractorOptimizer` around ``optimizer`` as ``pruning`` (parsed) describes."""
    from evospike.pruning_torch import TerminalAttractorOptimizer

    return TerminalAttractorOptimizer(optimizer, pruned_weights(model, pruning["layers"]),
                                      name="train.pruning", **pruning["params"])


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def epoch_record(opt, first_step: int) -> dict[str, Any]:
    """Pruning metrics of the epoch whose steps start at ``first_step``: R(t), the pruned
    fraction and the global threshold at its last step, alpha, regrowths and new prunings in
    the epoch (JSON-ready: a threshold that is not yet defined is null)."""
    recs = opt.history[first_step:]
    last = recs[-1] if recs else None
    return {
        "prune_rate": last.rate if last else 0.0,
        "pruned_fraction": opt.pruned_fraction,
        "prune_threshold": _finite(opt.threshold),
        "prune_alpha": last.alpha if last else 1.0,
        "n_pruned": opt.n_pruned,
        "n_regrown": int(sum(r.n_regrown for r in recs)),
        "n_newly_pruned": int(sum(r.n_newly_pruned for r in recs)),
        "prune_step": opt.t,
    }


def mask_summary(opt) -> dict[str, Any]:
    """Kept / total weights per pruned parameter and over all of them."""
    per = {k: {"kept": int(m.sum()), "total": int(m.numel())} for k, m in opt.masks.items()}
    return {"per_parameter": per, "pruned_fraction": opt.pruned_fraction,
            "n_pruned": opt.n_pruned, "n_total": opt.n_total}


def plot_panel(ax, history: list[dict[str, Any]], r_target: float) -> None:
    """R(t), the pruned fraction (left axis) and the threshold (right axis, log) per epoch."""
    ep = [r["epoch"] for r in history]
    ax.plot(ep, [100 * r["prune_rate"] for r in history], color="k", label="R(t)")
    ax.plot(ep, [100 * r["pruned_fraction"] for r in history], color="C1", ls="--",
            label="pruned fraction")
    ax.axhline(100 * r_target, color="0.6", lw=0.8, ls=":", label="R_target")
    ax.set_xlabel("epoch")
    ax.set_ylabel("% of prunable weights")
    ax.legend(loc="upper left", fontsize=8)
    thr = [(e, r["prune_threshold"]) for e, r in zip(ep, history, strict=True)
           if r["prune_threshold"] is not None and r["prune_threshold"] > 0]
    if thr:
        tw = ax.twinx()
        tw.semilogy([e for e, _ in thr], [t for _, t in thr], color="C2", lw=0.8,
                    label="threshold")
        tw.set_ylabel("saliency threshold", color="C2")
