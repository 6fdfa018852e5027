"""Terminal-attractor dynamic pruning around any torch optimizer (surrogate-gradient training).

`TerminalAttractorOptimizer` wraps a torch optimizer (the thesis uses AdamW) and adds, at every
``step(loss)``, the three parts of the method described in `evospike.pruning` (formulas,
regrowth rule and the table of constants with their defaults and reasons live there, and so do
the steps themselves, which this class runs on the parameters' tensors through `TORCH_OPS`):

1. saliency ``|w * dE/dw|`` of every pruned parameter (``|w_shadow * dE/dw|`` for a pruned
   entry), averaged over steps with ``saliency_momentum``;
2. the attractor displacement ``-eta_TA * tanh(k E) * clip(Psi)``,
   ``Psi = gamma E^beta g / (|g|^2 + eps)``, over every parameter of the optimizer that has a
   gradient (pruned entries' gradients zeroed), then the base optimizer's own step: together
   ``w <- w + dw_base - eta_TA tanh(kE) clip(Psi)`` (the thesis's Eq. 4.15);
3. every ``update_interval`` steps, the masks: one global threshold over all pruned parameters
   at the bottom ``R(t)`` of the scores, newly pruned weights set to 0 (their value kept as the
   shadow weight), regrown ones restored from their shadow.

Pruned weights are held at exactly 0 in the parameter tensors themselves, so the forward pass
needs no hook: the model computes with the pruned network as it is. The gradients that
backpropagation delivers for those zero entries are what regrowth scores. `step` zeroes the
pruned entries of ``.grad`` before the base step, so momentum does not build up behind a pruned
weight.

Usage::

    opt = TerminalAttractorOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-3),
                                     weight_parameters(model), r_target=0.3)
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step(loss)               # E = this loss; gradients as left by backward()

Gradient clipping of the base step (``clip_grad_norm_``) before `step` also shrinks g, which
*enlarges* Psi (it scales as 1/|g|); the attractor's own ``clip_norm`` bounds it either way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

import torch

from evospike.errors import ValidationError
from evospike.pruning import (
    ArrayOps,
    PrunerCore,
    PruningRecord,
    _check_loss,
    select_bottom_k,
    validate_parameters,
)

__all__ = ["TORCH_OPS", "TerminalAttractorOptimizer", "TorchOps", "weight_parameters"]


class TorchOps(ArrayOps):
    """`evospike.pruning.ArrayOps` for torch tensors: results stay on the tensors' device;
    `squared_norm` and `to_ints` bring one value each to the host."""

    xp = torch

    @staticmethod
    def argsort_stable(key: torch.Tensor) -> torch.Tensor:
        if key.dtype == torch.bool:
            key = key.to(torch.int8)  # not every device sorts bool
        return torch.argsort(key, stable=True)

    @staticmethod
    def squared_norm(arrays: Sequence[torch.Tensor]) -> float:
        # in float64 whatever the parameters' dtype, one host transfer for all of them
        if not arrays:
            return 0.0
        return float(torch.stack([(x.double() ** 2).sum() for x in arrays]).sum().cpu())

    @staticmethod
    def to_ints(values: Sequence[torch.Tensor]) -> tuple[int, ...]:
        return tuple(int(v) for v in torch.stack(list(values)).cpu().tolist())

    @staticmethod
    def assign(dst: torch.Tensor, src: torch.Tensor) -> None:
        dst.copy_(src)


TORCH_OPS = TorchOps()


def weight_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The model's parameters with two or more dimensions (weight matrices and kernels, not
    biases or per-neuron constants), by name: the usual set to prune."""
    return {n: p for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad}


def _bottom_k_torch(scores: torch.Tensor, pruned: torch.Tensor,
                    k: int) -> tuple[torch.Tensor, float]:
    """`evospike.pruning.bottom_k` on tensors (the same kernel, on their device)."""
    return select_bottom_k(scores.reshape(-1), pruned.reshape(-1), k, TORCH_OPS)


class TerminalAttractorOptimizer(PrunerCore):
    """Wrap ``optimizer`` with terminal-attractor dynamic pruning of ``pruned``.

    ``pruned``: the parameters to prune, by name (a mapping or ``(name, parameter)`` pairs, e.g.
    `weight_parameters(model)`); each must be one of ``optimizer``'s parameters. The attractor
    term acts on all of ``optimizer``'s parameters. ``params``: the constants of
    `evospike.pruning` (``r_target``, ``warmup_steps``, ``tau_steps``, ``lambda_stability``,
    ``loss_window``, ``saliency_momentum``, ``update_interval``, ``regrowth``, ``gamma``,
    ``beta``, ``eps``, ``attractor_lr``, ``clip_norm``, ``fade_k``); steps count calls of
    `step`. ``attractor_lr=0`` turns the attractor off (pruning only); ``r_target=0`` turns
    pruning off (attractor only).

    Read-outs: ``masks`` (name -> bool tensor, True = kept), ``rate`` (R(t) of the last step),
    ``threshold`` (global score threshold of the last mask update), ``pruned_fraction``,
    ``history`` (one `evospike.pruning.PruningRecord` per step) and `history_array`.
    """

    KIND = "TerminalAttractorOptimizer"
    ops = TORCH_OPS

    def __init__(self, optimizer: torch.optim.Optimizer,
                 pruned: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]], *,
                 name: str = "pruning", **params: object):
        self._init_rule(name, params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValidationError(self.KIND, name, "optimizer",
                                  "must be a torch.optim.Optimizer", type(optimizer).__name__)
        self.optimizer = optimizer
        items = list(pruned.items()) if isinstance(pruned, Mapping) else list(pruned)
        if not items:
            raise ValidationError(self.KIND, name, "pruned",
                                  "must name at least one parameter to prune", items)
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
        self._pruned: dict[str, torch.Tensor] = {}
        seen: dict[int, str] = {}
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                    and item[0]):
                raise ValidationError(self.KIND, name, "pruned",
                                      "entries must be (name, parameter) pairs", item)
            key, param = item
            if not isinstance(param, torch.Tensor) or not param.is_floating_point():
                raise ValidationError(self.KIND, name, f"pruned['{key}']",
                                      "must be a floating-point tensor", type(param).__name__)
            if id(param) not in in_opt:
                raise ValidationError(self.KIND, name, f"pruned['{key}']",
                                      "is not a parameter of the wrapped optimizer",
                                      tuple(param.shape))
            if id(param) in seen or key in self._pruned:
                raise ValidationError(self.KIND, name, "pruned",
                                      "lists a parameter twice", key)
            if param.numel() == 0:
                raise ValidationError(self.KIND, name, f"pruned['{key}']",
                                      "has no entries", tuple(param.shape))
            seen[id(param)] = key
            self._pruned[key] = param
        self.n_total = int(sum(p.numel() for p in self._pruned.values()))
        self.masks = {k: torch.ones_like(p, dtype=torch.bool) for k, p in self._pruned.items()}
        self.shadow = {k: torch.zeros_like(p) for k, p in self._pruned.items()}

    # -- optimizer protocol --------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    # -- read-outs -----------------------------------------------------------------------
    @property
    def pruned_parameters(self) -> dict[str, torch.Tensor]:
        return dict(self._pruned)

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Set pruned weights to 0 again (after loading weights into the model, say)."""
        for k, p in self._pruned.items():
            p.mul_(self.masks[k])

    # -- the step ------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, loss: float | torch.Tensor) -> PruningRecord:
        """One training step at loss E = ``loss`` (the loss whose gradients are in ``.grad``);
        see the module docstring for the order of operations."""
        e = _check_loss(self.KIND, self.name, loss.detach() if isinstance(
            loss, torch.Tensor) else loss)
        for k, param in self._pruned.items():
            if param.grad is None:
                raise ValidationError(self.KIND, self.name, f"pruned['{k}'].grad",
                                      "is None: call loss.backward() before step()")
        self._observe(e, self._pruned, {k: q.grad for k, q in self._pruned.items()})

        # gradients of pruned entries do not drive any update (in .grad itself, so that the
        # base optimizer's momentum does not build up behind a pruned weight either)
        for k, param in self._pruned.items():
            param.grad.mul_(self.masks[k])
        params = [q for g in self.optimizer.param_groups for q in g["params"]
                  if q.grad is not None]
        # the attractor displacement is computed at w_t, like the base step (Eq. 4.15)
        coef, norm_sq = self._attract(e, params, [q.grad for q in params])
        self.optimizer.step()
        self.apply_masks()
        return self._finish(e, self._pruned, coef, norm_sq)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: the base optimizer's state, masks, shadow weights,
        scores, step count, loss window and history. A snapshot: copies, not references, so
        training on does not change it (torch's own ``Optimizer.state_dict`` shares tensors)."""
        return {
            "base": copy.deepcopy(self.optimizer.state_dict()),
            "names": list(self._pruned),
            "params": dict(self.params),
            "masks": {k: m.clone() for k, m in self.masks.items()},
            "shadow": {k: s.clone() for k, s in self.shadow.items()},
            "scores": None if self.scores is None else {k: s.clone()
                                                        for k, s in self.scores.items()},
            "t": self.t,
            "threshold": self.threshold,
            "window": list(self.schedule.window),
            "history": [asdict(r) for r in self.history],
        }

    def load_state_dict(self, state: Mapping) -> None:
        if list(state.get("names", [])) != list(self._pruned):
            raise ValidationError(self.KIND, self.name, "state_dict names",
                                  f"must match the pruned parameters {list(self._pruned)}",
                                  state.get("names"))
        self.optimizer.load_state_dict(state["base"])
        self.params = validate_parameters(self.KIND, self.name, **state["params"])
        self.schedule = self._new_schedule()
        for loss in state["window"]:
            self.schedule.observe(loss)
        for k, param in self._pruned.items():
            self.masks[k] = state["masks"][k].to(param.device, torch.bool).clone()
            self.shadow[k] = state["shadow"][k].to(param.device, param.dtype).clone()
        self.scores = None if state["scores"] is None else {
            k: s.to(self._pruned[k].device).clone() for k, s in state["scores"].items()}
        self.t = int(state["t"])
        self.threshold = float(state["threshold"])
        self.history = [PruningRecord(**r) for r in state["history"]]
        self._n_pruned = int(sum(int((~m).sum()) for m in self.masks.values()))
        self.apply_masks()
