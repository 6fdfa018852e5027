"""Atomic file writes: write a temporary file beside the target, then rename it into place, so a
reader never sees a half-written file and an interrupted write leaves the old file intact.

A write that fails on the file system (disk full, read-only location, no permission) raises one
`EvoSpikeError` naming the file and the reason; the temporary file is removed. HDF5 files are
built in memory and written with plain ``os.write`` calls: HDF5's own writer can crash the
process when the disk fills up mid-write, where ``os.write`` reports ENOSPC as an OSError."""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py

from evospike.errors import EvoSpikeError

_memory_names = itertools.count()


def _write_error(target: Path, exc: OSError) -> EvoSpikeError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return EvoSpikeError(f"cannot write '{target}': {reason}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``."""
    target = Path(path)
    try:
        if target.parent and not target.parent.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                   dir=target.parent or ".")
    except OSError as exc:
        raise _write_error(target, exc) from exc
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved file should read like others
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)  # some file systems (NFS) report a full disk only here
        finally:
            os.close(fd)


def check_writable(path: str | os.PathLike, what: str) -> Path:
    """Refuse, before any work is done, a file path that cannot be written: empty, a folder, a
    parent that is a file, or a folder where no file can be created (read-only, no permission).
    Probes by creating and removing a temporary file where the file will go (in the nearest
    folder that exists: missing folders are created at the write)."""
    text = os.fspath(path)
    if not str(text).strip():
        raise EvoSpikeError(f"{what} is empty: name a file")
    target = Path(text)
    if target.is_dir():
        raise EvoSpikeError(f"{what} '{text}' is a folder, not a file")
    _probe(_existing_ancestor(target.parent, what, text), what, text)
    return target


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Like `check_writable` for a folder that files will be written into."""
    text = os.fspath(path)
    if not str(text).strip():
        raise EvoSpikeError(f"{what} is empty: name a folder")
    target = Path(text)
    if target.exists() and not target.is_dir():
        raise EvoSpikeError(f"{what} '{text}' is a file, not a folder")
    _probe(_existing_ancestor(target, what, text), what, text)
    return target


def _existing_ancestor(folder: Path, what: str, text: str) -> Path:
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise EvoSpikeError(f"{what} '{text}' cannot be written: '{folder}' is a file, not a "
                            "folder")
    return folder


def _probe(folder: Path, what: str, text: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".evospike-write-test.", dir=folder)
    except OSError as exc:
        raise EvoSpikeError(f"{what} '{text}' cannot be written: no file can be created in "
                            f"'{folder}' ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def open_h5(path: str | os.PathLike, what: str, expected_format: str) -> h5py.File:
    """Open an EvoSpike HDF5 file for reading; a missing file, a file that is not HDF5 or one
    of another format is an `EvoSpikeError` naming the path."""
    path = Path(path)
    if not path.exists():
        raise EvoSpikeError(f"{what} file '{path}' does not exist")
    if path.is_dir():
        raise EvoSpikeError(f"{what} file '{path}' is a folder, not a file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        reason = " ".join(str(exc).split())  # HDF5's messages can span lines
        raise EvoSpikeError(f"'{path}' is not an HDF5 file: {reason}") from None
    fmt = handle.attrs.get("format", "")
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt != expected_format:
        handle.close()
        raise EvoSpikeError(f"'{path}' is not an EvoSpike {what} file (format attribute: "
                            f"{fmt!r})")
    return handle


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only once complete.

    The file is built in memory (HDF5's core driver, nothing touches the disk) and its image is
    then written with `atomic_write_bytes`."""
    handle = h5py.File(f"evospike-memory-{os.getpid()}-{next(_memory_names)}.h5", "w",
                       driver="core", backing_store=False, track_order=True)
    try:
        yield handle
        handle.flush()
        image = handle.id.get_file_image()
    finally:
        handle.close()
    atomic_write_bytes(path, image)
