"""The NEST 3.10 backend (`--backend nest`): an independent reference. The IR is mapped onto
NEST's own models (iaf_psc_exp, iaf_psc_delta, izhikevich), spike generators fed with the
inputs EvoSpike draws, and NEST's recorders; see `backends/nest/compiler.py` for the mapping
and docs/BACKENDS.md for what it carries and refuses.

    runner = compile(network, NestConfig(threads=2))
    results = runner.run(1000.0)   # ms
"""

from __future__ import annotations

from dataclasses import replace

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.network import Network

from .compiler import NestConfig, refusals
from .registry import NODE_BUILDERS
from .runner import NestRunner, import_nest

NAME = "nest"


def compile(network: Network, config: NestConfig | None = None, **overrides) -> NestRunner:
    """Build ``network`` in NEST; refuses, before building anything, every node it cannot
    carry. ``overrides`` replace fields of ``config``."""
    unknown = set(overrides) - set(NestConfig.__dataclass_fields__)
    if unknown:
        raise EvoSpikeError(f"nest backend: no option {', '.join(sorted(unknown))} "
                            f"(options: {', '.join(NestConfig.__dataclass_fields__)})")
    cfg = replace(config or NestConfig(), **overrides)
    if cfg.precision != "float64":
        raise EvoSpikeError(f"nest backend: runs in float64 only (got precision "
                            f"{cfg.precision!r})")
    if cfg.engine != "auto":
        raise EvoSpikeError(f"nest backend: has no engines (got engine {cfg.engine!r})")
    if cfg.device != "cpu":
        raise EvoSpikeError(f"nest backend: runs on the CPU only (got device {cfg.device!r})")
    if isinstance(cfg.threads, bool) or not isinstance(cfg.threads, int) or cfg.threads < 1:
        raise EvoSpikeError(f"nest backend: threads must be a whole number >= 1 "
                            f"(got {cfg.threads!r})")
    if not cfg.seeds:
        raise EvoSpikeError("nest backend: seeds must name at least one trial")
    import_nest()
    problems = refusals(network, step_exact=bool(cfg.step_exact))
    if problems:
        raise UnsupportedError("nest", problems)
    return NestRunner(network, replace(cfg, seeds=tuple(int(s) for s in cfg.seeds)))


__all__ = ["compile", "NestConfig", "NestRunner", "NAME", "NODE_BUILDERS", "refusals"]
