"""Training checkpoints as plain data: no file EvoSpike reads may run code.

A ``checkpoint.pt`` holds only tensors, dicts, lists, tuples, numbers, strings, booleans and
None, so it loads with ``torch.load(weights_only=True)``, torch's restricted unpickler, which
builds nothing but those. `plain` converts what the trainer collects into that form when it
saves (NumPy scalars to Python numbers, dates of a YAML config to ISO strings) and refuses
anything else by its place in the checkpoint, so a checkpoint that could not be read back is
never written. `read_checkpoint` never unpickles: a file that would need arbitrary objects
built (a crafted one whose loading would run a command, or one of another program) is refused
with one line, as is a missing, truncated or foreign file.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evospike.atomic import atomic_path
from evospike.errors import EvoSpikeError

# Leaves torch's restricted unpickler rebuilds as they were written.
_LEAVES = (bool, int, float, str, type(None), torch.dtype, torch.device, torch.Size)


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` as plain data that ``torch.load(weights_only=True)`` reads back; ``where``
    names the entry in an error. Dicts (and OrderedDicts, with a state dict's ``_metadata``),
    lists and tuples are rebuilt around converted leaves."""
    if isinstance(obj, torch.Tensor):
        # a tensor subclass would need its class rebuilt; the data is all we keep
        return obj.detach() if type(obj) is not torch.Tensor else obj
    if isinstance(obj, _LEAVES):
        return obj
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return obj.item()
    if isinstance(obj, (datetime.date, datetime.time)):
        # YAML reads an unquoted date as one; its text is what the config said
        return obj.isoformat()
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise EvoSpikeError(f"{where}: key {key!r} is a {type(key).__name__}, not plain "
                                    "data (str, int, float, bool or None)")
            out[key] = plain(value, f"{where}[{key!r}]")
        metadata = getattr(obj, "_metadata", None)  # a state dict's module versions
        if metadata is not None:
            out._metadata = plain(metadata, f"{where}._metadata")
        return out
    if type(obj) in (list, tuple):
        return type(obj)(plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise EvoSpikeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, not "
                        "plain data (tensors, dicts, lists, numbers, strings): a checkpoint "
                        "holding it could only be read by unpickling")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (converted by `plain`) to ``path`` atomically."""
    data = plain(state)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _unsafe_globals(path: Path) -> list[str]:
    """The importable names a refused checkpoint asks for, read from its pickle opcodes
    without running them (torch's static scan); empty where the file format hides them."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # a legacy (non-zip) file: the scan does not apply, the refusal stands
        return []


def read_checkpoint(path: str | Path, map_location: Any = "cpu",
                    required: Iterable[str] = ("config", "model")) -> dict[str, Any]:
    """The plain-data content of checkpoint ``path`` (`torch.load` with ``weights_only=True``).

    Raises `EvoSpikeError` (one line) when the file is missing, is not a torch checkpoint, is
    truncated, would need unpickling of arbitrary objects (refused: loading it could run code),
    or lacks an entry of ``required``."""
    path = Path(path)
    if not path.exists():
        raise EvoSpikeError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise EvoSpikeError(f"checkpoint '{path}' is not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise EvoSpikeError(f"checkpoint '{path}' cannot be read: {exc.strerror}") from None
    # a torch file is a zip, or (legacy) a bare pickle stream that opens with its protocol
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise EvoSpikeError(f"checkpoint '{path}' cannot be read: not a torch checkpoint file "
                            f"(it begins {head!r})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        text = str(exc)
        if type(exc).__name__ == "UnpicklingError" or "Weights only load failed" in text:
            # the restricted unpickler met something beyond plain data: a class or function
            # to call, which is how a crafted file runs code
            names = _unsafe_globals(path)
            named = f"; it names {', '.join(names[:5])}" if names else ""
            raise EvoSpikeError(f"checkpoint '{path}' holds objects that would need unpickling "
                                f"(refused: loading it could run code{named})") from None
        raise EvoSpikeError(f"checkpoint '{path}' cannot be read (truncated or corrupt): "
                            f"{type(exc).__name__}: {_one_line(text) or 'it ends early'}") from None
    if not isinstance(state, dict):
        raise EvoSpikeError(f"checkpoint '{path}' is not an `evospike train` checkpoint (it "
                            f"holds a {type(state).__name__}, not a mapping)")
    missing = [key for key in required if key not in state]
    if missing:
        raise EvoSpikeError(f"checkpoint '{path}' is not an `evospike train` checkpoint (no "
                            f"entry {', '.join(repr(k) for k in missing)})")
    if "config" in state and not isinstance(state["config"], dict):
        raise EvoSpikeError(f"checkpoint '{path}': its 'config' is a "
                            f"{type(state['config']).__name__}, not a mapping")
    return state
