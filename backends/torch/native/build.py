"""Builds the native kernel with the system C compiler on first use and caches the shared
library (keyed by a hash of the source and flags), so later runs load it at once."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
         "-std=c99"]
REALS = {"float32": "float", "float64": "double"}


class NativeBuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("EVOSPIKE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "evospike")
    return Path(root) / "native"


def find_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@cache
def load_kernel(precision: str) -> ctypes.CDLL:
    """The compiled kernel for ``precision`` ('float32' or 'float64'); builds it if needed."""
    compiler = find_compiler()
    if compiler is None:
        raise NativeBuildError("no C compiler found (set CC or install gcc)")
    source = SOURCE.read_bytes()
    flags = FLAGS + [f"-DREAL={REALS[precision]}"]
    digest = hashlib.sha256(source + " ".join(flags).encode()).hexdigest()[:16]
    target = cache_dir() / f"evospike_kernel_{precision}_{digest}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            proc = subprocess.run([compiler, *flags, str(SOURCE), "-o", tmp],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise NativeBuildError(f"compiling {SOURCE.name} failed:\n{proc.stderr.strip()}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    lib.evospike_run.restype = ctypes.c_int64
    return lib
