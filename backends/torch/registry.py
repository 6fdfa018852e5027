"""The torch backend's one registry: IR node kind -> compile function, with one signature,
``compile_fn(node, network, ctx: CompileContext) -> compiled`` (a `TPopulation`, `TSource`,
`TProjection`, a rule's `TPlastic`, a `TorchProcess`).

Each module that carries a node kind registers its own function here with
``@NODE_COMPILERS.register(NodeType)``; `compiler.py` imports those modules. A kind without a
registration is refused by name before the run (`NODE_COMPILERS.refusals`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evospike.registry import Registry

NODE_COMPILERS = Registry("torch", "compiler")


@dataclass
class CompileContext:
    """What a torch compile function needs besides its node and the network: the run's
    configuration (``cfg``: `TorchConfig`), dtype, device, trials, and what is compiled so far
    (a rule reads its projection, homeostasis its population)."""

    cfg: Any
    dtype: Any  # torch.dtype
    device: Any  # torch.device
    trials: int
    populations: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    projections: dict[str, Any] = field(default_factory=dict)
