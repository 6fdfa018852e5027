"""One versioned HDF5 serializer for networks.

Layout (format ``evospike-network``, version 1)::

    /                      attrs: format, version, name, dt_ms
    /populations/<name>    attrs: size, model (kind), reset; group params/ (dataset per
                           parameter, scalar or per neuron); group initial/ (dataset, or attrs
                           distribution/a/b for a distribution)
    /sources/<name>        attrs: type, size, ...; datasets for arrays
    /projections/<name>    attrs: pre, post, n_pre, n_post, target; datasets indptr, indices,
                           weights, delays
    /currents/<name>       attrs: target, start_ms, stop_ms; datasets amplitude, series
    /monitors/spikes       attrs: targets (list)
    /monitors/state/<name> attrs: target, variable, every_steps; dataset neurons
    /monitors/weights/<name> attrs: projection, every_steps
    /plasticity/<name>     attrs: rule (class name) and its parameters (None stored as
                           "__none__")
    /processes/<name>      attrs: kind and scalar parameters; datasets for arrays; numbered
                           subgroups for lists of records (a Modulator's drives)
"""

from __future__ import annotations

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
    data = group[name][()]
    return float(data) if np.ndim(data) == 0 else np.asarray(data)


def _opt(value):
    return _NONE if value is None else value


def _unopt(value):
    if isinstance(value, bytes):
        value = value.decode()
    return None if isinstance(value, str) and value == _NONE else value


def save_network(net: Network, path: str | os.PathLike) -> None:
    with atomic_h5(path) as f:
        f.attrs.update(format=FORMAT, version=VERSION, name=net.name, dt_ms=net.dt_ms)
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
    cls = RECORD_TYPES[_str(g.attrs["kind"])]
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
    return cls(name, **params) if name is not None else cls(**params)


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_network(path: str | os.PathLike) -> Network:
    try:
        return _load_network(Path(path))
    except KeyError as exc:
        raise EvoSpikeError(f"'{path}' is not a complete EvoSpike network file: missing "
                            f"{exc}") from None


def _load_network(path: Path) -> Network:
    with open_h5(path, "network", FORMAT) as f:
        if int(f.attrs["version"]) > VERSION:
            raise EvoSpikeError(f"'{path}' has network format version {f.attrs['version']}; "
                                f"this EvoSpike reads up to {VERSION}")
        net = Network(_str(f.attrs["name"]), float(f.attrs["dt_ms"]))
        for name, g in f["populations"].items():
            cls = NEURON_MODELS[_str(g.attrs["model"])]
            params = {k: _get(g["params"], k) for k in g["params"]}
            reset = _unopt(g.attrs["reset"])
            if reset is not None:
                params["reset"] = _str(reset)
            initial = {}
            for state, item in g["initial"].items():
                if isinstance(item, h5py.Group):
                    dist = DISTRIBUTIONS[_str(item.attrs["distribution"])]
                    initial[state] = dist(*[float(a) for a in item.attrs["args"]])
                else:
                    initial[state] = _get(g["initial"], state)
            net.add(Population(name, int(g.attrs["size"]), cls(**params), initial))
        for name, g in f["sources"].items():
            if _str(g.attrs["type"]) == "poisson":
                net.add(PoissonSource(name, int(g.attrs["size"]), _get(g, "rate_hz"),
                                      float(g.attrs["start_ms"]), _unopt(g.attrs["stop_ms"])))
            else:
                net.add(SpikeTimesSource(name, int(g.attrs["size"]), g["neurons"][()],
                                         g["times_ms"][()]))
        for name, g in f["projections"].items():
            net.add(Projection(name, _str(g.attrs["pre"]), _str(g.attrs["post"]),
                               int(g.attrs["n_pre"]), int(g.attrs["n_post"]), g["indptr"][()],
                               g["indices"][()], g["weights"][()], g["delays"][()],
                               _str(g.attrs["target"])))
        for name, g in f["currents"].items():
            series = g["series"][()] if "series" in g else None
            net.add(CurrentInput(name, _str(g.attrs["target"]), _get(g, "amplitude"),
                                 float(g.attrs["start_ms"]), _unopt(g.attrs["stop_ms"]), series))
        pending_rules = []
        for name, g in f.get("plasticity", {}).items():
            cls = PLASTICITY_RULES[_str(g.attrs["rule"])]
            params = {k: (_unopt(_str(v)) if isinstance(v, (bytes, str)) else v.item())
                      for k, v in g.attrs.items() if k != "rule"}
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
        mons = f["monitors"]
        for target in mons.attrs["spikes"]:
            net.add(SpikeMonitor(_str(target)))
        for name, g in mons["state"].items():
            net.add(StateMonitor(name, _str(g.attrs["target"]), _str(g.attrs["variable"]),
                                 g["neurons"][()], int(g.attrs["every_steps"])))
        for name, g in mons["weights"].items():
            net.add(WeightMonitor(name, _str(g.attrs["projection"]), int(g.attrs["every_steps"])))

        return net
