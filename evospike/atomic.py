"""Atomic file writes: write a temporary file beside the target, then rename it into place, so a
reader never sees a half-written file and an interrupted write leaves the old file intact."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved file should read like any other
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_h5(path: str | os.PathLike, what: str, expected_format: str) -> h5py.File:
    """Open an EvoSpike HDF5 file for reading; a missing file, a file that is not HDF5 or one
    of another format is an `EvoSpikeError` naming the path."""
    from evospike.errors import EvoSpikeError

    path = Path(path)
    if not path.exists():
        raise EvoSpikeError(f"{what} file '{path}' does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise EvoSpikeError(f"'{path}' is not an HDF5 file: {exc}") from None
    fmt = handle.attrs.get("format", "")
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt != expected_format:
        handle.close()
        raise EvoSpikeError(f"'{path}' is not an EvoSpike {what} file (format attribute: "
                            f"{fmt!r})")
    return handle


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only once complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as handle:
        yield handle
