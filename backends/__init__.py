"""Backends: compilers from the network IR to something that runs.

Each backend module exposes ``compile(network, config) -> Runner`` and ``NAME``; they share
nothing but the IR and `evospike.results.Results`."""

from __future__ import annotations

import importlib
from types import ModuleType

from evospike.errors import EvoSpikeError

#: backend name -> module implementing it
BACKENDS: dict[str, str] = {
    "torch": "evospike.backends.torch",
    "brian2": "evospike.backends.brian2",
    "lava": "evospike.backends.lava",
    "nest": "evospike.backends.nest",
}


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name``; a clear error lists the known ones."""
    if name not in BACKENDS:
        raise EvoSpikeError(f"unknown backend '{name}' (available: {', '.join(BACKENDS)})")
    return importlib.import_module(BACKENDS[name])
