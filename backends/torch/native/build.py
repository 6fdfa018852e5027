"""The native kernel (kernel.c) for one precision: built on first use by `evospike.native_build`
(the one build cache of all EvoSpike's C kernels), so later runs load it at once.

It is built with OpenMP (``-fopenmp``) so that it can run on several threads; a compiler
without OpenMP builds it without, and the kernel then runs on one thread (`kernel_has_openmp`,
`openmp_note` say so)."""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

from evospike.native_build import NativeBuildError, load_library

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
         "-std=c99"]
OPENMP_FLAGS = ["-fopenmp"]
REALS = {"float32": "float", "float64": "double"}
_NO_OPENMP: dict[str, str] = {}  # precision -> why the kernel was built without OpenMP


@cache
def load_kernel(precision: str) -> ctypes.CDLL:
    """The compiled kernel for ``precision`` ('float32' or 'float64'); builds it if needed.
    Raises `evospike.native_build.NativeBuildError` (or OSError) when it cannot."""
    flags = FLAGS + [f"-DREAL={REALS[precision]}"]
    try:
        lib = load_library(f"evospike_kernel_{precision}", SOURCE.read_text(),
                           flags + OPENMP_FLAGS, label=SOURCE.name)
    except (NativeBuildError, OSError) as exc:
        # a compiler without OpenMP: the same kernel on one thread
        lib = load_library(f"evospike_kernel_{precision}", SOURCE.read_text(), flags,
                           label=SOURCE.name)
        _NO_OPENMP[precision] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    lib.evospike_run.restype = ctypes.c_int64
    lib.evospike_run.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                 ctypes.c_int64, ctypes.c_int32, ctypes.c_int32]
    lib.evospike_run_batch.restype = None
    lib.evospike_run_batch.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64,
                                       ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p]
    lib.evospike_openmp.restype = ctypes.c_int32
    return lib


def kernel_has_openmp(precision: str) -> bool:
    """Whether the kernel for ``precision`` was built with OpenMP (else: one thread)."""
    return bool(load_kernel(precision).evospike_openmp())


def openmp_note(precision: str) -> str:
    """Why the kernel runs on one thread only, or "" if it was built with OpenMP."""
    if kernel_has_openmp(precision):
        return ""
    return ("the native kernel was built without OpenMP and runs on one thread ("
            + _NO_OPENMP.get(precision, "the compiler has no -fopenmp") + ")")
