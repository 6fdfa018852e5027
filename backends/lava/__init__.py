"""The Lava backend: Loihi 2 through Lava, run in a worker process under Python 3.10.

    runner = compile(network, select_tag="fixed_pt", seeds=(0,))
    results = runner.run(200.0)   # ms

The network is converted to Lava's LIF where needed (`convert`), described in a job file
(`compiler`), and run by `worker.py` under the interpreter named by ``EVOSPIKE_LAVA_PYTHON`` or
recorded by ``evospike setup lava`` (`environment`): lava-nc 0.10 needs Python 3.10 and NumPy
< 2, and its runtime forks, so it never runs inside this process. ``select_tag="fixed_pt"``
(default) is Lava's bit-accurate model of Loihi 2 and runs the integers of `fixed`;
``"floating_pt"`` runs the same processes in float64. A second ``run`` call replays the run
from step 0 to the new end (Lava's state lives in the worker) and returns it all.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.network import Network
from evospike.ir.neurons import CubaLIF
from evospike.ir.timing import schedule_refusals

from .compiler import NODE_COMPILERS, SELECT_TAGS, LavaConfig, Plan, plan_float, refusals
from .convert import Conversion, to_loihi_lif
from .environment import find_python
from .runner import LavaRunner, LavaWarning, WorkerError, show_lava_warnings

NAME = "lava"


def prepare(network: Network, cfg: LavaConfig) -> tuple[Conversion, Plan]:
    """Convert and plan ``network`` without running anything; refuses (UnsupportedError) every
    node the backend cannot carry, all at once."""
    refused = schedule_refusals(network, "lava")
    if refused:  # before converting: the conversion builds an EvoSpike-order network
        raise UnsupportedError("lava", refused)
    conv = to_loihi_lif(network, merge_synapses=cfg.merge_synapses,
                        only_merged=cfg.select_tag == "fixed_pt")
    problems = list(conv.refusals) + refusals(conv.network, cfg.select_tag)
    # the LIF conversion is written for millivolt models; CubaLIF is unit-free
    if network.units != "mV" and any(type(p.model) is not CubaLIF
                                     for p in network.populations.values()):
        problems.insert(0, f"Network '{network.name}': units {network.units!r} (the lava "
                        "backend carries networks in mV only, unless every population is "
                        "CubaLIF)")
    if problems:
        raise UnsupportedError("lava", problems)
    if cfg.select_tag == "fixed_pt":
        from .fixed import plan_fixed

        plan = plan_fixed(conv.network, conv.notes, cfg.plastic_weight_range)
    else:
        plan = plan_float(conv.network, conv.notes)
    for name, offset in conv.v_offset.items():
        pop = plan.populations[name]
        pop.v_offset = pop.v_offset + np.broadcast_to(offset, (pop.size,))
    return conv, plan


def compile(network: Network, config: LavaConfig | None = None, **overrides) -> LavaRunner:
    """Compile ``network`` for Lava; ``overrides`` replace fields of ``config`` (select_tag,
    seeds, progress, timeout_s, chunk_steps, merge_synapses)."""
    unknown = set(overrides) - set(LavaConfig.__dataclass_fields__)
    if unknown:
        raise EvoSpikeError(f"lava backend: no option {', '.join(sorted(unknown))} "
                            f"(options: {', '.join(LavaConfig.__dataclass_fields__)})")
    cfg = replace(config or LavaConfig(), **overrides)
    if cfg.select_tag not in SELECT_TAGS:
        raise EvoSpikeError(f"lava backend: select_tag must be one of {SELECT_TAGS} "
                            f"(got {cfg.select_tag!r})")
    if cfg.device != "cpu":
        raise EvoSpikeError(f"lava backend: Lava's simulation runs on the CPU (got device "
                            f"{cfg.device!r})")
    if not cfg.seeds:
        raise EvoSpikeError("lava backend: seeds must name at least one trial")
    if cfg.timeout_s is not None and not cfg.timeout_s > 0:
        raise EvoSpikeError(f"lava backend: timeout_s must be positive (got {cfg.timeout_s!r})")
    if int(cfg.chunk_steps) < 1:
        raise EvoSpikeError(f"lava backend: chunk_steps must be >= 1 (got {cfg.chunk_steps!r})")
    cfg = replace(cfg, seeds=tuple(int(s) for s in cfg.seeds), chunk_steps=int(cfg.chunk_steps))
    conv, plan = prepare(network, cfg)
    python = find_python()
    show_lava_warnings()  # one line each on the console (`LavaWarning`)
    for note in conv.notes:  # an approximation is never silent (exact reductions are noted
        warnings.warn(LavaWarning("UserWarning", note), stacklevel=2)  # in the results only)
    return LavaRunner(plan, cfg, python)


__all__ = ["compile", "prepare", "LavaConfig", "LavaRunner", "LavaWarning", "WorkerError", "NAME",
           "NODE_COMPILERS", "refusals", "to_loihi_lif"]
