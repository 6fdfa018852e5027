"""One versioned HDF5 serializer for networks.

Layout (format ``evospike-network``, version 1)::

    /                      attrs: format, version, name, dt_ms, units (absent in files written
                           before it existed: "mV"), schedule (absent in older files:
                           "evospike")
    /populations/<name>    attrs: size, model (kind), reset; group params/ (dataset per
                           parameter, scalar or per neuron); group initial/ (dataset, or attrs
                           distribution/a/b for a distribution)
    /sources/<name>        attrs: type, size, ...; datasets for arrays
    /projections/<name>    attrs: pre, post, n_pre, n_post, target; datasets indptr, indices,
                           weights, delays
    /currents/<name>       attrs: target, start_ms, stop_ms; datasets amplitude, series
    /inputs/<name>         a PoissonInput: attrs target, n_afferents, weight, channel, counts,
                           start_ms, stop_ms; dataset rate_hz (absent in older files: none)
    /monitors/spikes       attrs: targets (list)
    /monitors/state/<name> attrs: target, variable, every_steps; dataset neurons
    /monitors/weights/<name> attrs: projection, every_steps
    /plasticity/<name>     attrs: rule (class name) and its parameters (None stored as
                           "__none__")
    /processes/<name>      attrs: kind and scalar parameters; datasets for arrays; numbered
                           subgroups for lists of records (a Modulator's drives)
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import h5py
import numpy as np

from evospike.atomic import atomic_h5, open_h5
from evospike.errors import EvoSpikeError
from evospike.ir.apoptosis import Apoptosis
from evospike.ir.distributions import DISTRIBUTIONS, Normal, Uniform
from evospike.ir.energy_budget import ENERGY_PROCESSES
from evospike.ir.gating import GATING_PROCESSES
from evospike.ir.memory import MemoryTiers
from evospike.ir.modulators import DRIVES, Modulator
from evospike.ir.network import Network
from evospike.ir.neurons import NEURON_MODELS
from evospike.ir.nodes import (
    CurrentInput,
    PoissonInput,
    PoissonSource,
    Population,
    Projection,
    SpikeMonitor,
    SpikeTimesSource,
    StateMonitor,
    WeightMonitor,
)
from evospike.ir.plasticity import PLASTICITY_RULES, Homeostasis, Metaplasticity
from evospike.ir.pruning import TerminalAttractorPruning
from evospike.ir.structural import StructuralPlasticity

RECORD_TYPES = {"Modulator": Modulator, "Homeostasis": Homeostasis,
                "Metaplasticity": Metaplasticity, **DRIVES}
RECORD_TYPES.update(StructuralPlasticity=StructuralPlasticity,
                    TerminalAttractorPruning=TerminalAttractorPruning)
RECORD_TYPES.update({**GATING_PROCESSES, **ENERGY_PROCESSES})

RECORD_TYPES.update(MemoryTiers=MemoryTiers, Apoptosis=Apoptosis)

FORMAT = "evospike-network"
VERSION = 1
_NONE = "__none__"


def _put(group: h5py.Group, name: str, value) -> None:
    group.create_dataset(name, data=np.asarray(value))


def _get(group: h5py.Group, name: str):
    data = _item(group, name)[()]
    if np.ndim(data) == 0:
        # only numbers become floats: float(b"20") would turn stored text into a parameter
        return float(data) if np.asarray(data).dtype.kind in "iuf" else np.asarray(data).item()
    return np.asarray(data)


def _opt(value):
    return _NONE if value is None else value


def _unopt(value):
    if isinstance(value, bytes):
        value = value.decode()
    return None if isinstance(value, str) and value == _NONE else value


def save_network(net: Network, path: str | os.PathLike) -> None:
    with atomic_h5(path) as f:
        f.attrs.update(format=FORMAT, version=VERSION, name=net.name, dt_ms=net.dt_ms,
                       units=net.units, schedule=net.schedule)
        if net.metadata:  # JSON: plain data, read back without running anything
            f.attrs["metadata"] = json.dumps(net.metadata)
        pops = f.create_group("populations", track_order=True)
        for pop in net.populations.values():
            g = pops.create_group(pop.name, track_order=True)
            g.attrs.update(size=pop.size, model=pop.model.kind,
                           reset=getattr(pop.model, "reset", _NONE))
            params = g.create_group("params", track_order=True)
            for key, value in pop.model.parameters().items():
                _put(params, key, value)
            init = g.create_group("initial", track_order=True)
            for state, value in pop.initial.items():
                if isinstance(value, (Uniform, Normal)):
                    d = init.create_group(state, track_order=True)
                    d.attrs.update(distribution=type(value).__name__,
                                   args=np.asarray([getattr(value, k) for k in
                                                    value.__dataclass_fields__]))
                else:
                    _put(init, state, value)
        srcs = f.create_group("sources", track_order=True)
        for src in net.sources.values():
            g = srcs.create_group(src.name, track_order=True)
            g.attrs.update(size=src.size)
            if isinstance(src, PoissonSource):
                g.attrs.update(type="poisson", start_ms=src.start_ms, stop_ms=_opt(src.stop_ms))
                _put(g, "rate_hz", src.rate_hz)
            else:
                g.attrs.update(type="spike_times")
                _put(g, "neurons", src.neurons)
                _put(g, "times_ms", src.times_ms)
        projs = f.create_group("projections", track_order=True)
        for proj in net.projections.values():
            g = projs.create_group(proj.name, track_order=True)
            g.attrs.update(pre=proj.pre, post=proj.post, n_pre=proj.n_pre, n_post=proj.n_post,
                           target=proj.target)
            for key in ("indptr", "indices", "weights", "delays"):
                g.create_dataset(key, data=getattr(proj, key), compression="gzip",
                                 compression_opts=1)
        curs = f.create_group("currents", track_order=True)
        for cur in net.currents.values():
            g = curs.create_group(cur.name, track_order=True)
            g.attrs.update(target=cur.target, start_ms=cur.start_ms, stop_ms=_opt(cur.stop_ms))
            _put(g, "amplitude", cur.amplitude)
            if cur.series is not None:
                _put(g, "series", cur.series)
        inputs = f.create_group("inputs", track_order=True)
        for inp in net.inputs.values():
            g = inputs.create_group(inp.name, track_order=True)
            g.attrs.update(target=inp.target, n_afferents=inp.n_afferents, weight=inp.weight,
                           channel=inp.channel, counts=inp.counts, start_ms=inp.start_ms,
                           stop_ms=_opt(inp.stop_ms))
            _put(g, "rate_hz", inp.rate_hz)
        mons = f.create_group("monitors", track_order=True)
        mons.attrs["spikes"] = [m.target for m in net.spike_monitors]
        states = mons.create_group("state", track_order=True)
        for mon in net.state_monitors.values():
            g = states.create_group(mon.name, track_order=True)
            g.attrs.update(target=mon.target, variable=mon.variable, every_steps=mon.every_steps)
            _put(g, "neurons", mon.neurons)
        rules = f.create_group("plasticity", track_order=True)
        for rule in net.plasticity.values():
            g = rules.create_group(rule.name, track_order=True)
            g.attrs["rule"] = type(rule).__name__
            for key, value in vars(rule).items():
                if key != "name":
                    g.attrs[key] = _opt(value)
        procs = f.create_group("processes", track_order=True)
        for proc in net.processes.values():
            _save_record(procs.create_group(proc.name, track_order=True), proc)
        weights = mons.create_group("weights", track_order=True)
        for wmon in net.weight_monitors.values():
            g = weights.create_group(wmon.name, track_order=True)
            g.attrs.update(projection=wmon.projection, every_steps=wmon.every_steps)


def _save_record(g: h5py.Group, record) -> None:
    """A process node (or one of its drives): scalars and strings as attributes, arrays as
    datasets, lists of records as numbered subgroups."""
    g.attrs["kind"] = record.kind
    for key, value in vars(record).items():
        if key == "name":
            continue
        if isinstance(value, list):
            items = g.create_group(key, track_order=True)
            for i, item in enumerate(value):
                _save_record(items.create_group(str(i), track_order=True), item)
        elif isinstance(value, tuple):
            g.attrs[key] = np.asarray(value, dtype=h5py.string_dtype())
            g.attrs[f"{key}.tuple"] = True
        elif isinstance(value, np.ndarray):
            _put(g, key, value)
        else:
            g.attrs[key] = _opt(value)


def _load_record(g: h5py.Group, name: str | None):
    cls = _known(RECORD_TYPES, _text(g, "kind"), "kind", g)
    params = {}
    for key, value in g.attrs.items():
        if key == "kind" or key.endswith(".tuple"):
            continue
        if g.attrs.get(f"{key}.tuple", False):
            params[key] = tuple(_str(v) for v in value)
        elif isinstance(value, (bytes, str)):
            params[key] = _unopt(_str(value))
        else:
            params[key] = value.item() if hasattr(value, "item") else value
    for key, item in g.items():
        if isinstance(item, h5py.Group):
            params[key] = [_load_record(item[k], None) for k in item]
        else:
            params[key] = item[()]
    _check_keys(cls, params, g)
    return cls(name, **params) if name is not None else cls(**params)


class _Malformed(EvoSpikeError):
    """A part of a network file is missing or of the wrong type (`load_network` names the
    file)."""


def _where(node: h5py.HLObject) -> str:
    return node.name.lstrip("/") or "the file's root"


def _item(g: h5py.Group, key: str):
    if key not in g:
        raise _Malformed(f"{_where(g)} has no '{key}'")
    return g[key]


def _attr(g: h5py.HLObject, key: str):
    if key not in g.attrs:
        raise _Malformed(f"{_where(g)} attribute {key} is missing")
    value = g.attrs[key]
    return value.item() if isinstance(value, np.generic) else value


def _text(g: h5py.HLObject, key: str) -> str:
    value = _attr(g, key)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise _Malformed(f"{_where(g)} attribute {key} must be text (got {_short(value)})")
    return value


def _integer(g: h5py.HLObject, key: str) -> int:
    value = _attr(g, key)
    # 16.5 neurons must not become 16: a file is refused rather than truncated
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(f"{_where(g)} attribute {key} must be an integer (got "
                         f"{_short(value)})")
    return value


def _real(g: h5py.HLObject, key: str, optional: bool = False) -> float | None:
    value = _attr(g, key)
    if optional and _unopt(value) is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Malformed(f"{_where(g)} attribute {key} must be a number (got {_short(value)})")
    return float(value)


def _known(table: dict, name: str, field: str, g: h5py.HLObject):
    if name not in table:
        raise _Malformed(f"{_where(g)} attribute {field} '{name}' is not one this EvoSpike "
                         f"knows ({', '.join(sorted(table))})")
    return table[name]


def _check_keys(cls: type, params: dict, g: h5py.HLObject, skip: tuple = ("name",)) -> None:
    """The stored parameters must be exactly those of ``cls``: an unknown one would be
    dropped, a missing one silently replaced by its default."""
    known = [p for p in inspect.signature(cls).parameters if p not in skip]
    unknown = [k for k in params if k not in known]
    if unknown:
        raise _Malformed(f"{_where(g)} has '{unknown[0]}', which is not a parameter of "
                         f"{cls.__name__} ({', '.join(known)})")
    missing = [k for k in known if k not in params]
    if missing:
        raise _Malformed(f"{_where(g)} lacks {cls.__name__} parameter '{missing[0]}'")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_network(path: str | os.PathLike) -> Network:
    try:
        return _load_network(Path(path))
    except _Malformed as exc:
        raise EvoSpikeError(f"network file '{path}': {exc}") from None
    except KeyError as exc:
        raise EvoSpikeError(f"'{path}' is not a complete EvoSpike network file: missing "
                            f"{exc}") from None


def _load_network(path: Path) -> Network:
    with open_h5(path, "network", FORMAT) as f:
        version = _integer(f, "version")
        if not 1 <= version <= VERSION:
            raise EvoSpikeError(f"'{path}' has network format version {version}; "
                                f"this EvoSpike reads 1 to {VERSION}")
        # before any population is added: each is checked against the network's units
        units = _text(f, "units") if "units" in f.attrs else "mV"
        # before any projection is added: its delays are checked against the schedule
        schedule = _text(f, "schedule") if "schedule" in f.attrs else "evospike"
        net = Network(_text(f, "name"), _real(f, "dt_ms"), units=units, schedule=schedule)
        if "metadata" in f.attrs:
            try:
                net.metadata = json.loads(_text(f, "metadata"))
            except ValueError as exc:
                raise _Malformed(f"{_where(f)} attribute metadata is not JSON ({exc})") from None
            if not isinstance(net.metadata, dict):
                raise _Malformed(f"{_where(f)} attribute metadata must be a JSON object")
        for name, g in _item(f, "populations").items():
            cls = _known(NEURON_MODELS, _text(g, "model"), "model", g)
            params = {k: _get(g["params"], k) for k in _item(g, "params")}
            _check_keys(cls, params, g["params"], skip=("reset",))
            reset = _unopt(_attr(g, "reset"))
            if reset is not None:
                params["reset"] = _str(reset)
            initial = {}
            for state, item in _item(g, "initial").items():
                if isinstance(item, h5py.Group):
                    dist = _known(DISTRIBUTIONS, _text(item, "distribution"), "distribution",
                                  item)
                    args = np.atleast_1d(_attr(item, "args"))
                    if args.shape != (len(dist.__dataclass_fields__),) or \
                            args.dtype.kind not in "iuf":
                        raise _Malformed(f"{_where(item)} attribute args must hold the "
                                         f"{len(dist.__dataclass_fields__)} numbers of a "
                                         f"{dist.__name__} (got {_short(args.tolist())})")
                    initial[state] = dist(*[float(a) for a in args])
                else:
                    initial[state] = _get(g["initial"], state)
            net.add(Population(name, _integer(g, "size"), cls(**params), initial))
        for name, g in _item(f, "sources").items():
            kind = _text(g, "type")
            if kind == "poisson":
                net.add(PoissonSource(name, _integer(g, "size"), _get(g, "rate_hz"),
                                      _real(g, "start_ms"), _real(g, "stop_ms", optional=True)))
            elif kind == "spike_times":
                net.add(SpikeTimesSource(name, _integer(g, "size"), _item(g, "neurons")[()],
                                         _item(g, "times_ms")[()]))
            else:
                raise _Malformed(f"{_where(g)} attribute type '{kind}' is not one this "
                                 "EvoSpike knows (poisson, spike_times)")
        for name, g in _item(f, "projections").items():
            net.add(Projection(name, _text(g, "pre"), _text(g, "post"), _integer(g, "n_pre"),
                               _integer(g, "n_post"), _item(g, "indptr")[()],
                               _item(g, "indices")[()], _item(g, "weights")[()],
                               _item(g, "delays")[()], _text(g, "target")))
        for name, g in _item(f, "currents").items():
            series = g["series"][()] if "series" in g else None
            net.add(CurrentInput(name, _text(g, "target"), _get(g, "amplitude"),
                                 _real(g, "start_ms"), _real(g, "stop_ms", optional=True),
                                 series))
        for name, g in f.get("inputs", {}).items():
            net.add(PoissonInput(name, _text(g, "target"), _integer(g, "n_afferents"),
                                 _get(g, "rate_hz"), _real(g, "weight"), _text(g, "channel"),
                                 _real(g, "start_ms"), _real(g, "stop_ms", optional=True),
                                 _text(g, "counts")))
        pending_rules = []
        for name, g in f.get("plasticity", {}).items():
            cls = _known(PLASTICITY_RULES, _text(g, "rule"), "rule", g)
            params = {k: (_unopt(_str(v)) if isinstance(v, (bytes, str)) else v.item())
                      for k, v in g.attrs.items() if k != "rule"}
            _check_keys(cls, params, g)
            pending_rules.append(cls(name, **params))
        # modulators come first (rules read them), then the rules, then the processes that
        # refer to rules (metaplasticity)
        procs = [_load_record(g, name) for name, g in f.get("processes", {}).items()]
        for proc in procs:
            if proc.kind == "Modulator":
                net.add(proc)
        for rule in pending_rules:
            net.add(rule)
        for proc in procs:
            if proc.kind != "Modulator":
                net.add(proc)
        net.processes = {proc.name: net.processes[proc.name] for proc in procs}  # saved order
        mons = _item(f, "monitors")
        for target in np.atleast_1d(_attr(mons, "spikes")):
            net.add(SpikeMonitor(_str(target)))
        for name, g in _item(mons, "state").items():
            net.add(StateMonitor(name, _text(g, "target"), _text(g, "variable"),
                                 _item(g, "neurons")[()], _integer(g, "every_steps")))
        for name, g in _item(mons, "weights").items():
            net.add(WeightMonitor(name, _text(g, "projection"), _integer(g, "every_steps")))

        return net
