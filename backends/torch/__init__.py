"""The PyTorch backend (the default): CPU or CUDA, float32 or float64, a batch of trials.

    runner = compile(network, TorchConfig(device="cpu", seeds=(0, 1, 2)))
    results = runner.run(1000.0)   # ms
"""

from __future__ import annotations

from dataclasses import replace

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network

from .compiler import NODE_COMPILERS, TorchConfig, compile_network, refusals
from .runner import TorchRunner

NAME = "torch"
ENGINES = ("auto", "eager", "native", "device")


def compile(network: Network, config: TorchConfig | None = None, **overrides) -> TorchRunner:
    """Compile ``network`` for the torch backend; ``overrides`` replace fields of ``config``."""
    import torch

    # fixed-point mode (backends/torch/fixed.py): "fixed_profile" picks the bit widths
    fixed_profile = overrides.pop("fixed_profile", "loihi2")
    # STDP / R-STDP in fixed point: "w_max" or "initial" (evospike.hardware.loihi.learning)
    weight_range = overrides.pop("plastic_weight_range", "w_max")
    # engine="device" (device_engine.py): spike_capacity, device_chunk_steps, cuda_graph
    from .device_engine import pop_options

    device_options = pop_options(overrides)
    unknown = set(overrides) - set(TorchConfig.__dataclass_fields__)
    if unknown:
        raise EvoSpikeError(f"torch backend: no option {', '.join(sorted(unknown))} "
                            f"(options: {', '.join(TorchConfig.__dataclass_fields__)})")
    cfg = replace(config or TorchConfig(), **overrides)
    if cfg.precision not in ("float32", "float64", "fixed"):
        raise EvoSpikeError(f"torch backend: precision must be 'float32', 'float64' or "
                            f"'fixed' (got {cfg.precision!r})")
    if cfg.engine not in ENGINES:
        raise EvoSpikeError(f"torch backend: engine must be one of {ENGINES} (got {cfg.engine!r})")
    if not cfg.seeds:
        raise EvoSpikeError("torch backend: seeds must name at least one trial")
    if cfg.threads is not None and (isinstance(cfg.threads, bool)
                                    or not isinstance(cfg.threads, int) or cfg.threads < 1):
        raise EvoSpikeError(f"torch backend: threads must be a whole number of at least 1 "
                            f"(or None: every core), got {cfg.threads!r}")
    cfg = replace(cfg, seeds=tuple(int(s) for s in cfg.seeds))
    try:
        device = torch.device(cfg.device)
    except RuntimeError as exc:
        raise EvoSpikeError(f"torch backend: bad device {cfg.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvoSpikeError(f"torch backend: device {cfg.device!r} requested but CUDA is not "
                            "available on this machine")
    if cfg.precision == "fixed":  # Loihi's integer arithmetic (evospike.fixed_point)
        from .fixed import compile_fixed

        if cfg.engine != "auto":
            raise EvoSpikeError(f"torch backend: precision 'fixed' runs its own integer "
                                f"engine; engine {cfg.engine!r} applies to float precisions")

        return compile_fixed(network, cfg.seeds, cfg.device, fixed_profile, cfg.progress,
                             weight_range)
    if device_options and cfg.engine != "device":
        raise EvoSpikeError(f"torch backend: {', '.join(sorted(device_options))} apply to "
                            f"engine 'device' (engine is {cfg.engine!r})")
    if cfg.engine == "device":
        from .device_engine import refuse

        refuse(network)
    cn = compile_network(network, cfg)
    engine, note = _choose_engine(cn, cfg.engine)
    return TorchRunner(cn, engine, note, device_options)


def _choose_engine(cn, requested: str) -> tuple[str, str]:
    if requested == "eager":
        return "eager", "eager engine requested"
    if requested == "device":
        return "device", "device engine requested"
    from .native.engine import native_unavailable_reason

    reason = native_unavailable_reason(cn)
    if reason is None:
        return "native", "compiled multi-step CPU kernel"
    if requested == "native":
        raise EvoSpikeError(f"torch backend: the native engine cannot run this network: {reason}")
    return "eager", f"eager engine (native kernel not used: {reason})"


__all__ = ["compile", "TorchConfig", "TorchRunner", "NAME", "NODE_COMPILERS", "refusals"]
