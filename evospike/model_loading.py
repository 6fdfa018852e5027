"""Loading a MODEL for the command line: a ``.py`` file defining ``build() -> Network`` or a
saved network ``.h5``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network


def parse_params(items: list[str] | None) -> dict[str, object]:
    """``["scale=0.1", "state=SR"]`` (the CLI's ``--param``) -> ``{"scale": 0.1, "state": "SR"}``:
    each value read as an int, a float, true/false, or else kept as text."""
    out: dict[str, object] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise EvoSpikeError(f"--param '{item}': expected NAME=VALUE, e.g. --param scale=0.1")
        if name in out:
            raise EvoSpikeError(f"--param '{name}' given twice")
        out[name] = _value(text.strip())
    return out


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def load_model(path: str | Path, dt_ms: float | None = None,
               params: dict[str, object] | None = None) -> Network:
    """The network of ``path``; ``dt_ms`` (if given) is passed to ``build(dt_ms=...)`` when the
    function accepts it, and must otherwise equal the network's own time step. ``params``:
    keyword arguments of ``build()`` (the CLI's ``--param NAME=VALUE``), each of which it must
    accept."""
    path = Path(path)
    if not path.exists():
        raise EvoSpikeError(f"model file '{path}' does not exist")
    if path.suffix == ".py":
        net = _from_python(path, dt_ms, params or {})
    elif path.suffix in (".h5", ".hdf5"):
        if params:
            raise EvoSpikeError(f"--param {', '.join(params)}: model '{path}' is a saved network "
                                "(parameters go to build() of a .py model)")
        net = Network.load(path)
    else:
        raise EvoSpikeError(f"model '{path}' must be a .py file defining build() or a saved "
                            "network .h5")
    if dt_ms is not None and abs(net.dt_ms - dt_ms) > 1e-12:
        raise EvoSpikeError(f"model '{path}' is built with dt {net.dt_ms} ms and cannot change it "
                            f"(asked for {dt_ms} ms): its delays are fixed in steps")
    return net


def _from_python(path: Path, dt_ms: float | None, given: dict[str, object]) -> Network:
    name = f"evospike_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EvoSpikeError(f"cannot import model file '{path}'")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except EvoSpikeError:
        raise
    except (Exception, SystemExit) as exc:  # the user's file failed: say where, no traceback
        raise EvoSpikeError(f"importing '{path}' failed: {_describe(exc)}") from exc
    build = getattr(module, "build", None)
    if not callable(build):
        raise EvoSpikeError(f"model file '{path}' defines no build() function returning a "
                            "Network")
    try:
        params = inspect.signature(build).parameters
    except (TypeError, ValueError):  # a builtin or C callable: nothing to inspect, just call it
        params = {}
    kwargs = {}
    if dt_ms is not None and "dt_ms" in params:
        kwargs["dt_ms"] = dt_ms
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for name, value in given.items():
        if name == "dt_ms":
            raise EvoSpikeError("--param dt_ms: give the time step with --dt")
        if name not in params and not takes_any:
            accepted = [p for p in params if p != "dt_ms"]
            raise EvoSpikeError(f"--param {name}: build() in '{path}' takes no parameter "
                                f"'{name}' (it takes: {', '.join(accepted) or 'none'})")
        kwargs[name] = value
    required = [p.name for p in params.values()
                if p.default is p.empty and p.name not in kwargs
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise EvoSpikeError(f"build() in '{path}' must be callable without arguments, but it "
                            f"requires {', '.join(required)}: give them default values")
    try:
        net = build(**kwargs)
    except (Exception, SystemExit) as exc:  # the user's code failed: name the file and the error
        raise EvoSpikeError(f"build() in '{path}' failed: {_describe(exc)}") from exc
    if not isinstance(net, Network):
        raise EvoSpikeError(f"build() in '{path}' returned {type(net).__name__}, not a Network")
    return net


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line (a user's exception may span several)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = " ".join(str(exc).split())
    if isinstance(exc, EvoSpikeError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_network(net: Network) -> str:
    lines = [f"network '{net.name}': dt {net.dt_ms} ms, units {net.units}, "
             f"schedule {net.schedule}, "
             f"{net.n_neurons} neurons, {net.n_synapses} synapses"]
    for p in net.populations.values():
        lines.append(f"  population {p.name:<14} {p.size:>8} x {p.model.kind}")
    for s in net.sources.values():
        lines.append(f"  source     {s.name:<14} {s.size:>8} x {type(s).__name__}")
    for pr in net.projections.values():
        low, high = (int(pr.delays.min()), int(pr.delays.max())) if pr.n_synapses else (0, 0)
        lines.append(f"  projection {pr.name:<20} {pr.pre} -> {pr.post} ({pr.target}): "
                     f"{pr.n_synapses} synapses, delays {low}-{high} steps")
    for c in net.currents.values():
        lines.append(f"  current    {c.name} -> {c.target}")
    for i in net.inputs.values():
        rate = f"{float(np.mean(i.rate_hz)):g} Hz" + (" (mean)" if np.ndim(i.rate_hz) else "")
        lines.append(f"  input      {i.name} -> {i.target} ({i.channel}): {i.n_afferents} "
                     f"afferents x {rate}, weight {i.weight:g}, {i.counts} counts")
    for rule in net.plasticity.values():
        modulated = ""
        if getattr(rule, "modulator", None):
            modulated = (f", third factor '{rule.modulator}'" if type(rule).__name__ ==
                         "RewardModulatedSTDP" else f", {rule.modulation}d by '{rule.modulator}'")
        lines.append(f"  plasticity {rule.name}: {type(rule).__name__} on {rule.projection} "
                     f"({rule.pairing} pairing, {rule.weight_dependence}, "
                     f"w in [{rule.w_min:g}, {rule.w_max:g}]{modulated})")
    for proc in net.processes.values():
        target = getattr(proc, "population", None) or getattr(proc, "rule", None) or \
            ", ".join(getattr(d, "population", d.kind) for d in getattr(proc, "drives", []))
        lines.append(f"  process {proc.name}: {proc.kind}" + (f" ({target})" if target else "")
                     + f", states {', '.join(proc.state_names)}")
    mons = [m.target for m in net.spike_monitors]
    lines.append(f"  monitors: spikes of {mons or 'nothing'}; "
                 f"{len(net.state_monitors)} state, {len(net.weight_monitors)} weight")
    return "\n".join(lines)
