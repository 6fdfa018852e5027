"""The native kernel (kernel.c) for one precision: built on first use by `evospike.native_build`
(the one build cache of all EvoSpike's C kernels), so later runs load it at once."""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

from evospike.native_build import load_library

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
         "-std=c99"]
REALS = {"float32": "float", "float64": "double"}


@cache
def load_kernel(precision: str) -> ctypes.CDLL:
    """The compiled kernel for ``precision`` ('float32' or 'float64'); builds it if needed.
    Raises `evospike.native_build.NativeBuildError` (or OSError) when it cannot."""
    lib = load_library(f"evospike_kernel_{precision}", SOURCE.read_text(),
                       FLAGS + [f"-DREAL={REALS[precision]}"], label=SOURCE.name)
    lib.evospike_run.restype = ctypes.c_int64
    return lib
