"""Builds C sources into shared libraries with the system C compiler, once, and caches them.

Every C kernel of EvoSpike (the torch backend's multi-step CPU kernel, the training BPTT
kernel) is built here, so there is one cache, one compiler lookup and one "no compiler"
reason. The cache folder is ``$EVOSPIKE_CACHE_DIR/native``, else
``$XDG_CACHE_HOME/evospike/native``, else ``~/.cache/evospike/native``. A library's file name
carries a digest of its source, its flags and the compiler (path and ``--version``), so an
edited kernel, other flags or an upgraded compiler build afresh instead of loading a stale
library. Each build compiles to a temporary name in the cache folder and is renamed into place,
so a process that loads a library never sees a half-written one, even while another process
builds the same library.

Framework-free: the standard library only (callers wrap the loaded library for torch)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

#: why nothing can be compiled when `find_compiler` finds no compiler; the CLI's note and the
#: torch backend's engine choice both show it
NO_COMPILER = "no C compiler found (set CC or install gcc)"


class NativeBuildError(RuntimeError):
    """A C source could not be built into a library (no compiler, compiler error, no
    writable cache folder)."""


def cache_dir() -> Path:
    """The folder of the built libraries (created on the first build)."""
    root = os.environ.get("EVOSPIKE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "evospike")
    return Path(root) / "native"


def find_compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else cc, gcc or clang on PATH; None if none."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@cache
def _compiler_identity(compiler: str) -> str:
    """The compiler's resolved path and the first line of its ``--version``: part of the cache
    key, since ``cc`` may point to another compiler, or a newer one, than when a library was
    built."""
    try:
        proc = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                              timeout=60)
        version = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        version = ""  # the build itself will say what is wrong with this compiler
    # gcc starts the line with the name it was called by ('cc', 'gcc'): one compiler, one key
    version = version.removeprefix(os.path.basename(compiler)).strip()
    return f"{os.path.realpath(compiler)}\n{version}"


def library_path(name: str, source: str, flags: Sequence[str], compiler: str) -> Path:
    """Where the library ``name`` built from ``source`` with ``flags`` by ``compiler`` is
    cached."""
    key = "\0".join([source, " ".join(flags), _compiler_identity(compiler)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{name}_{digest}.so"


def build_library(name: str, source: str, flags: Sequence[str],
                  libraries: Sequence[str] = (), label: str | None = None) -> Path:
    """The path of the shared library built from C ``source`` with compiler ``flags`` (and
    linked with ``libraries``, e.g. ``["-lm"]``), building it if the cache has none.

    ``name`` starts the cached file's name; ``label`` names the source in a compiler error
    (default ``name + ".c"``). Raises `NativeBuildError` with `NO_COMPILER` when there is no
    compiler, with the compiler's messages when it fails, and when the cache folder cannot be
    written."""
    compiler = find_compiler()
    if compiler is None:
        raise NativeBuildError(NO_COMPILER)
    target = library_path(name, source, flags, compiler)
    if target.exists():
        return target
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, src = tempfile.mkstemp(prefix=f".{name}-", suffix=".c", dir=folder)
    except OSError as exc:
        raise NativeBuildError(f"cannot write the native build cache '{folder}': "
                               f"{exc.strerror or exc}") from None
    tmp = None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(source)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=folder)
        os.close(fd)
        proc = subprocess.run([compiler, *flags, src, "-o", tmp, *libraries],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise NativeBuildError(f"compiling {label or name + '.c'} failed:\n"
                                   f"{proc.stderr.strip()}")
        # the rename is atomic: a concurrent build of the same library replaces it with an
        # identical file, and a loader sees either no file or a whole one
        os.replace(tmp, target)
    finally:
        for path in (src, tmp):
            if path is not None and os.path.exists(path):
                os.unlink(path)
    return target


def load_library(name: str, source: str, flags: Sequence[str], libraries: Sequence[str] = (),
                 label: str | None = None) -> ctypes.CDLL:
    """`build_library`, then the library loaded with ctypes (OSError if it does not load)."""
    return ctypes.CDLL(str(build_library(name, source, flags, libraries, label)))
