"""The Brian2 backend, EvoSpike's reference: the IR emitted as Brian2 equations and Synapses,
run in Brian2's runtime mode (cython when a C compiler works, numpy otherwise).

    runner = compile(network, Brian2Config(target="numpy"))
    results = runner.run(1000.0)   # ms
"""

from __future__ import annotations

from dataclasses import replace

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.network import Network

from .compiler import NODE_BUILDERS, Brian2Config, refusals
from .independence import INDEPENDENCE
from .runner import Brian2Runner

NAME = "brian2"
TARGETS = ("auto", "cython", "numpy", "cpp_standalone")


def compile(network: Network, config: Brian2Config | None = None, **overrides) -> Brian2Runner:
    """Build ``network`` in Brian2; refuses, before building anything, every node it cannot
    carry. ``overrides`` replace fields of ``config``."""
    unknown = set(overrides) - set(Brian2Config.__dataclass_fields__)
    if unknown:
        raise EvoSpikeError(f"brian2 backend: no option {', '.join(sorted(unknown))} "
                            f"(options: {', '.join(Brian2Config.__dataclass_fields__)})")
    cfg = replace(config or Brian2Config(), **overrides)
    if cfg.precision != "float64":
        raise EvoSpikeError(f"brian2 backend: runs in float64 only (got precision "
                            f"{cfg.precision!r})")
    if cfg.engine != "auto":
        raise EvoSpikeError("brian2 backend: has no engines; choose its code generation with "
                            f"--target (got engine {cfg.engine!r})")
    if cfg.target not in TARGETS:
        raise EvoSpikeError(f"brian2 backend: target must be one of {TARGETS} "
                            f"(got {cfg.target!r})")
    if cfg.device != "cpu":
        raise EvoSpikeError(f"brian2 backend: runs on the CPU only (got device {cfg.device!r})")
    if not cfg.seeds:
        raise EvoSpikeError("brian2 backend: seeds must name at least one trial")
    try:
        import brian2  # noqa: F401
    except ImportError:
        raise EvoSpikeError("brian2 backend: brian2 is not installed "
                            "(pip install -c constraints.txt -e '.[brian2]')") from None
    problems = refusals(network)
    if problems:
        raise UnsupportedError("brian2", problems)
    return Brian2Runner(network, replace(cfg, seeds=tuple(int(s) for s in cfg.seeds)))


__all__ = ["compile", "Brian2Config", "Brian2Runner", "INDEPENDENCE", "NAME", "NODE_BUILDERS",
           "refusals"]
