"""Checks and settings shared by the commands: seeds, threads, the torch device and the output
file are refused here with one line before anything is loaded or simulated."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from evospike.errors import EvoSpikeError

#: seeds are stored as 64-bit signed integers in the results files
MAX_SEED = 2**63 - 1
#: torch CPU threads of the eager engine. One: its per-step tensors are small, and on a loaded
#: 2-core machine examples/epigenetic_gating.py (500 ms) ran 0.8 s with one thread and 9-19 s
#: with two. The native kernel has threads of its own (default: every core; `--threads` caps
#: them), CUDA none.
DEFAULT_THREADS = 1
BRIAN2_TARGETS = ["auto", "cython", "numpy", "cpp_standalone"]


def check_seeds(seed: int, trials: int) -> None:
    last = seed + trials - 1
    if seed < 0 or last > MAX_SEED:
        raise EvoSpikeError(f"--seed {seed} with --trials {trials}: seeds must lie in "
                            f"0..{MAX_SEED} (results store them as 64-bit integers; the last "
                            f"trial's seed would be {last})")


def check_threads(threads: int) -> None:
    if threads < 1:
        raise EvoSpikeError(f"--threads must be at least 1 (got {threads})")


def check_torch_device(text: str) -> None:
    """Refuse a device the torch backend cannot run on, before the model is loaded."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise EvoSpikeError(f"--device {text!r} is not a torch device: "
                            f"{' '.join(str(exc).split())}") from None
    if device.type == "cpu":
        if device.index not in (None, 0):
            raise EvoSpikeError(f"--device {text!r}: the CPU takes no device index (it runs on "
                                "all of the CPU; use 'cpu' and --threads)")
    elif device.type == "cuda":
        if not torch.cuda.is_available():
            raise EvoSpikeError(f"--device {text!r}: CUDA is not available on this machine "
                                f"(torch {torch.__version__}); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise EvoSpikeError(f"--device {text!r}: this machine has {count} CUDA device(s), "
                                f"cuda:0 to cuda:{count - 1}")
    else:
        raise EvoSpikeError(f"--device {text!r}: the torch backend runs on 'cpu' or 'cuda' "
                            f"(or 'cuda:N'), not on '{device.type}'")


def check_out(text: str, model: str) -> Path:
    """The results path, refused before the run if it is the model itself or not writable."""
    from evospike.atomic import check_writable

    if text.strip() and _same_file(Path(text), Path(model)):
        raise EvoSpikeError(f"--out '{text}' is the model file '{model}': the results would "
                            "replace the model; choose another --out")
    return check_writable(text, "--out")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():  # also through symlinks and relative paths
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int | None]:
    """Run with ``threads`` torch CPU threads (None: leave torch alone); restores the previous
    count afterwards, for callers of `main` that go on using torch."""
    if threads is None:
        yield None
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def announce_native_fallback(engine_note: str, precision: str | None, engine: str) -> None:
    """Say on stderr when the torch backend runs its eager engine because the native kernel
    cannot be built: that is a fixable setup problem, and a 10-1000x slower run."""
    if engine != "eager" or precision == "fixed":
        return
    from evospike.backends.torch.native.build import load_kernel
    from evospike.native_build import NativeBuildError

    try:
        load_kernel(precision or "float32")
    except (NativeBuildError, OSError) as exc:
        reason = " ".join(str(exc).splitlines()[0].split()) if str(exc) else type(exc).__name__
        if engine_note and str(exc).splitlines()[0] not in engine_note:
            return  # the network keeps it off the kernel anyway; the build is not to blame
        print(f"evospike: note: the native CPU kernel cannot be built ({reason}), so the eager "
              "engine runs, often 10-1000x slower; to fix, install a C compiler (e.g. gcc) or "
              "set CC to one", file=sys.stderr)

