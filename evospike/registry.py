"""One registry per backend: which IR node kinds it carries, and how.

    NODE_COMPILERS = Registry("torch", "compiler")

    @NODE_COMPILERS.register(Modulator)
    def compile_modulator(node, net, ctx): ...

A backend registers, for each node kind it carries, one function with the backend's one
signature (``register``), or declares kinds it carries without a function of their own
(``carry``: built by another node's function or by code that takes the network whole), or
names kinds it knows and refuses, with the reason (``refuse``). Everything else is refused by
name before a run (`Registry.refusals`): a new node kind is added in one place per backend.

A subclass of a registered kind is *not* carried as its parent (it may change what the parent
computes) unless the parent was registered with ``subclasses=True``.

Framework-free: no torch, brian2 or lava import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from evospike.errors import UnsupportedError


@dataclass(frozen=True)
class Entry:
    """How a backend carries one node kind."""

    node_type: type
    fn: Callable | None  # None: carried without a function of its own
    subclasses: bool = False
    refused: str | None = None  # set: the kind is known and refused, for this reason
    extras: dict[str, Any] = field(default_factory=dict)


class Registry:
    """The node kinds one backend (or engine) carries; see the module docstring."""

    def __init__(self, backend: str, what: str = "compiler") -> None:
        self.backend = backend
        self.what = what
        self._entries: dict[type, Entry] = {}

    # ------------------------------------------------------------------ declaring
    def _add(self, entry: Entry) -> None:
        if not isinstance(entry.node_type, type):
            raise TypeError(f"{self.backend} registry: {entry.node_type!r} is not a class")
        old = self._entries.get(entry.node_type)
        if old is not None and _key(old) != _key(entry):
            # two modules claiming one kind would make the result depend on import order
            raise ValueError(f"{self.backend} registry: {entry.node_type.__name__} is "
                             "registered twice")
        self._entries[entry.node_type] = entry

    def register(self, *node_types: type, subclasses: bool = False,
                 **extras: Any) -> Callable[[Callable], Callable]:
        """Decorator: ``fn`` compiles nodes of ``node_types`` (``extras``: backend-specific
        facts about the kind, read back with `extra`)."""
        if not node_types:
            raise TypeError(f"{self.backend} registry: register() needs at least one node type")

        def decorate(fn: Callable) -> Callable:
            for t in node_types:
                self._add(Entry(t, fn, subclasses, None, dict(extras)))
            return fn

        return decorate

    def carry(self, *node_types: type, subclasses: bool = False, **extras: Any) -> None:
        """``node_types`` are carried with no function of their own (another node's function,
        or code that takes the whole network, handles them)."""
        for t in node_types:
            self._add(Entry(t, None, subclasses, None, dict(extras)))

    def refuse(self, node_type: type, reason: str) -> None:
        """``node_type`` is known and refused, for ``reason`` (said in the refusal)."""
        self._add(Entry(node_type, None, False, reason))

    def unregister(self, *node_types: type) -> None:
        """Forget ``node_types`` (a kind defined for a while, e.g. in a test)."""
        for t in node_types:
            self._entries.pop(t, None)

    # ------------------------------------------------------------------ reading
    def entry(self, node: Any) -> Entry | None:
        """The entry that carries ``node`` (exact type, then a parent registered with
        ``subclasses=True``), or None; a refused kind gives its entry (see ``refused``)."""
        cls = type(node)
        hit = self._entries.get(cls)
        if hit is not None:
            return hit
        for parent in cls.__mro__[1:]:
            hit = self._entries.get(parent)
            if hit is not None and hit.subclasses and hit.refused is None:
                return hit
        return None

    def reason(self, node: Any) -> str | None:
        """Why this backend cannot carry ``node``'s kind, or None if it can."""
        hit = self.entry(node)
        if hit is not None:
            return hit.refused
        cls = type(node)
        parents = [p for p in cls.__mro__[1:] if p in self._entries]
        if parents:
            return (f"no {self.backend} {self.what} for {cls.__name__} (a subclass of "
                    f"{parents[0].__name__}, whose {self.what} does not cover subclasses: "
                    f"register {cls.__name__} with the {self.backend} registry)")
        return f"no {self.backend} {self.what} for {cls.__name__}"

    def carries(self, node: Any) -> bool:
        return self.reason(node) is None

    def lookup(self, node: Any) -> Callable | None:
        """The function registered for ``node``'s kind (None: carried without one); refuses a
        kind this backend does not carry, naming the node."""
        why = self.reason(node)
        if why is not None:
            raise UnsupportedError(self.backend, [f"{label(node)}: {why}"])
        return self.entry(node).fn

    def extra(self, node: Any, key: str, default: Any = None) -> Any:
        """A fact registered with ``node``'s kind (``register(..., key=value)``)."""
        hit = self.entry(node)
        return default if hit is None else hit.extras.get(key, default)

    def refusals(self, network) -> list[str]:
        """Every node of ``network`` (and every population's neuron model) whose kind this
        backend does not carry, with the backend and the node's name; empty: all carried."""
        out = []
        for node in network.nodes():
            why = self.reason(node)
            if why is not None:
                out.append(f"{label(node)}: {why}")
            model = getattr(node, "model", None)
            if model is not None and why is None:
                why = self.reason(model)
                if why is not None:
                    out.append(f"{label(node)}: {model.kind} neurons ({why})")
        return out

    def __iter__(self) -> Iterator[type]:
        return iter([t for t, e in self._entries.items() if e.refused is None])

    def __contains__(self, node_type: object) -> bool:
        hit = self._entries.get(node_type)  # type: ignore[arg-type]
        return hit is not None and hit.refused is None

    def __repr__(self) -> str:
        return f"Registry({self.backend!r}, {len(self._entries)} kinds)"


def _key(entry: Entry) -> tuple:
    """What makes two registrations the same (a module imported again re-registers its own
    functions, which are new objects with the same names)."""
    fn = entry.fn
    name = None if fn is None else (getattr(fn, "__module__", None),
                                    getattr(fn, "__qualname__", repr(fn)))
    return (name, entry.subclasses, entry.refused, tuple(sorted(entry.extras)))


def label(node: Any) -> str:
    """``Kind 'name'`` of an IR node (a spike monitor is named by its target)."""
    name = getattr(node, "name", None) or getattr(node, "target", None)
    return f"{type(node).__name__} '{name}'"
