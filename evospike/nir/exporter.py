"""Write a `Network` as a NIR graph (see docs/NIR.md), through `nir.write`.

A population of our own (`LIF`, discrete `CubaLIF`, not read from NIR) becomes the NIR node of
`evospike.nir.native` with its model in the node's metadata, and each projection into it one
``Linear`` naming the projection and channel. For the populations the import made, the inverse
of `evospike.nir.importer`: each discrete ``CubaLIF`` population becomes the NIR
neuron node whose discretisation (the network's recorded conventions, forward Euler for a
network not read from NIR) gives back its coefficients, with unit input gains (snnTorch's
choice: ``r = tau / dt``, ``w_in = tau_syn / dt``); each projection a dense ``Linear`` (an
``Affine`` carrying the clock's constant drive), with a ``Delay`` node where its delay exceeds
what the latencies of `evospike.nir.timing` imply. What NIR cannot hold -- plasticity,
processes, injected currents, Poisson inputs, stimuli of sources, reset modes other than to
``v_reset``, per-synapse delays, refractoriness, other neuron models -- is refused by name, or
with ``extensions=True`` the whole network is embedded as an EvoSpike network file in the
graph's metadata (``metadata["evospike"]["network_h5"]``, bytes), which `evospike.nir.load`
restores.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from evospike.atomic import atomic_write_bytes
from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.ir.neurons import LIF, CubaLIF
from evospike.ir.nodes import SpikeTimesSource
from evospike.nir.importer import CLOCK, NON_SPIKING_THRESHOLD, _nir
from evospike.nir.native import model_metadata, nir_parameters
from evospike.nir.timing import back_edges

#: the largest dense matrix a projection may be written as (NIR's Linear is dense)
MAX_DENSE = 50_000_000


def _refuse(what: str, problem: str) -> EvoSpikeError:
    return EvoSpikeError(f"NIR export: {what} {problem} (pass extensions=True to embed the "
                         "network as EvoSpike metadata that evospike.nir.load restores)")


def _imported(net: Network) -> dict:
    """The populations `evospike.nir.load` made by NIR's equations (not restored models)."""
    meta = net.metadata.get("nir", {}) if isinstance(net.metadata, dict) else {}
    return {k: v for k, v in meta.get("nodes", {}).items() if not v.get("restored")}


def _in_channels(net: Network, pop: str) -> set[str]:
    return {p.target for p in net.projections.values() if p.post == pop and p.pre != CLOCK}


def _native_reasons(net: Network, pop) -> list[str]:
    """Why population ``pop`` (one of our own models) cannot be written as a NIR node."""
    model, name = pop.model, pop.name
    reasons = []
    if type(model) not in (LIF, CubaLIF):
        return [f"population '{name}' is a {model.kind}; NIR export writes LIF (exponential "
                "or delta synapses) and CubaLIF populations"]
    if model.reset != "value":
        reasons.append(f"population '{name}' resets by '{model.reset}'; NIR records only a "
                       "reset to v_reset")
    if np.any(np.asarray(model.tau_refrac_ms) != 0):
        reasons.append(f"population '{name}' has a refractory period; NIR's neurons have none")
    defaults = model.default_initial()
    for state, value in pop.initial.items():
        if not isinstance(value, (int, float, np.ndarray)) or np.any(
                np.asarray(value) != np.asarray(defaults.get(state, 0.0))):
            reasons.append(f"population '{name}' sets initial['{state}']; a NIR model starts "
                           "at rest")
    channels = _in_channels(net, name)
    if "v" in channels and channels & {"exc", "inh"}:
        reasons.append(f"population '{name}' takes inputs on 'v' and on synaptic channels; a "
                       "NIR neuron has one input")
    if type(model) is LIF and "inh" in channels and np.any(
            np.asarray(model.tau_syn_inh_ms) != np.asarray(model.tau_syn_exc_ms)):
        reasons.append(f"population '{name}' has inputs on 'inh' with tau_syn_inh_ms != "
                       "tau_syn_exc_ms; NIR's CubaLIF has one synaptic current")
    if not reasons:
        try:
            nir_parameters(model, pop.size, net.dt_ms * 1e-3, _synaptic(net, name), name)
        except EvoSpikeError as exc:
            reasons.append(str(exc).removeprefix("NIR export: "))
    return reasons


def _synaptic(net: Network, pop: str) -> bool:
    """A population of ours is written with a synaptic current unless its inputs are on
    ``v`` only (a delta-synapse neuron)."""
    channels = _in_channels(net, pop)
    return not channels or bool(channels & {"exc", "inh"})


def _not_nir(net: Network) -> list[str]:
    reasons = []
    for kind, held in (("plasticity rule", net.plasticity), ("process", net.processes),
                       ("injected current", net.currents), ("Poisson input", net.inputs),
                       ("weight monitor", net.weight_monitors)):
        reasons += [f"{kind} '{name}' has no NIR equivalent" for name in held]
    for src in net.sources.values():
        if not isinstance(src, SpikeTimesSource) or src.neurons.size:
            reasons.append(f"source '{src.name}' carries a stimulus; NIR's Input is only a port")
    if net.schedule != "evospike":
        reasons.append(f"network '{net.name}' uses the '{net.schedule}' schedule; a NIR graph "
                       "is read with EvoSpike's (events act in their arrival step)")
    imported = _imported(net)
    for pop in net.populations.values():
        if pop.name == CLOCK:  # the import's constant drive: written as Affine biases
            continue
        if pop.name not in imported:
            reasons += _native_reasons(net, pop)
        elif not isinstance(pop.model, CubaLIF):
            reasons.append(f"population '{pop.name}' is a {pop.model.kind}; NIR export writes "
                           "the discrete CubaLIF populations that evospike.nir.load makes")
        elif pop.model.reset != "value":
            reasons.append(f"population '{pop.name}' resets by '{pop.model.reset}'; NIR "
                           "records only a reset to v_reset")
        elif np.any(np.asarray(pop.model.tau_refrac_ms) != 0) or np.any(
                np.asarray(pop.model.bias) != 0):
            reasons.append(f"population '{pop.name}' has a refractory period or a bias; NIR's "
                           "neurons have neither")
    for proj in net.projections.values():
        if proj.n_synapses and np.any(proj.delays != proj.delays[0]):
            reasons.append(f"projection '{proj.name}' has per-synapse delays; NIR delays act "
                           "on a node's signal")
        if proj.n_pre * proj.n_post > MAX_DENSE:
            reasons.append(f"projection '{proj.name}' would be a dense {proj.n_post} x "
                           f"{proj.n_pre} matrix, above {MAX_DENSE} entries")
        if proj.pre == CLOCK and proj.post not in imported:
            reasons.append(f"projection '{proj.name}' drives '{proj.post}' from the import's "
                           "clock; write a constant drive as the model's bias")
    return reasons


def _delay(proj) -> int:
    return int(proj.delays[0]) if proj.n_synapses else 1


def _latencies(net: Network, sources: list[str], pops: list[str], back: set) -> dict[str, int]:
    """Latencies (`evospike.nir.timing`) for a network not read from NIR, chosen so that the
    import of the written graph finds them again: a population with an input of delay 1 runs
    as late as its earliest input allows (no ``Delay`` node on that input); one whose inputs
    all wait longer has latency 1 and ``Delay`` nodes carry the rest."""
    s = {x: 0 for x in sources}
    ins: dict[str, list[tuple[str, int]]] = {p: [] for p in pops}
    for proj in net.projections.values():
        if proj.post in ins and (proj.pre, proj.post, 0) not in back:
            ins[proj.post].append((proj.pre, _delay(proj)))
    remaining = set(pops)
    while remaining:
        ready = sorted(p for p in remaining if all(u not in remaining for u, _ in ins[p]))
        if not ready:  # pragma: no cover - back edges break every cycle
            raise EvoSpikeError("NIR export: a cycle without a recurrent edge")
        for p in ready:
            if ins[p] and min(d for _, d in ins[p]) == 1:
                s[p] = max(1, min(s[u] + d for u, d in ins[p]))
            else:
                s[p] = 1
            remaining.discard(p)
    return s


def to_graph(net: Network, extensions: bool = False):
    """The NIR graph of ``net`` (see the module docstring)."""
    nir = _nir()
    reasons = _not_nir(net)
    if reasons and not extensions:
        raise _refuse(reasons[0], f"({len(reasons)} item(s) NIR cannot hold)")
    meta = net.metadata.get("nir", {}) if isinstance(net.metadata, dict) else {}
    conv = meta.get("conventions", {})
    discretisation = conv.get("discretisation", "euler")
    dt = net.dt_ms * 1e-3
    extra = {}
    if extensions:
        extra = {"evospike": {"network_h5": _network_bytes(net),
                              "note": "an EvoSpike network file: evospike.nir.load restores "
                                      "the whole network from it"}}
    if reasons:  # embedded: the NIR part holds only the ports
        nodes = {s: nir.Input(input_type=np.array([net.size_of(s)])) for s in net.sources}
        out = {f"{p}.out": nir.Output(output_type=np.array([net.size_of(p)]))
               for p in net.populations}
        return nir.NIRGraph(nodes={**nodes, **out}, edges=[], metadata=extra, type_check=False)
    pops = sorted(p for p in net.populations if p != CLOCK)
    imported = _imported(net)
    sources = sorted(net.sources) + ([CLOCK] if CLOCK in net.populations else [])
    edge_set = sorted({(p.pre, p.post, 0) for p in net.projections.values()})
    back = back_edges(sources + pops, edge_set)
    rd = int(conv.get("recurrent_delay_steps", 1))
    s = meta.get("potentials") or {}
    if not _consistent(net, s, back, rd):
        s = _latencies(net, sources, pops, back)
    # every forward edge's NIR delay m; the latencies an import finds from them must be s
    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []
    for src in sorted(net.sources):
        nodes[src] = nir.Input(input_type=np.array([net.size_of(src)]))
    node_types = meta.get("nodes", {})
    for name in pops:
        if name in imported:
            nodes[name] = _neuron_node(net, name, node_types.get(name, {}).get("type"),
                                       discretisation, conv.get("w_in", "equation"), dt)
        else:
            model, n = net.populations[name].model, net.size_of(name)
            kind, params, reading = nir_parameters(model, n, dt, _synaptic(net, name), name)
            nodes[name] = getattr(nir, kind)(
                **params, metadata={"evospike": model_metadata(model, reading)})
    groups: dict[tuple[str, str, int], np.ndarray] = {}
    bias: dict[str, np.ndarray] = {}
    for proj in sorted(net.projections.values(), key=lambda p: p.name):
        key = (proj.pre, proj.post, 0)
        d = _delay(proj)
        m = d - (s[proj.post] - s[proj.pre]) - (rd if key in back else 0)
        if m < 0:
            raise EvoSpikeError(f"NIR export: projection '{proj.name}' has delay {d}, shorter "
                                "than the latencies of its ends allow")
        w = np.zeros((proj.n_post, proj.n_pre))
        np.add.at(w, (proj.indices, proj.pre_indices()), proj.weights)
        if proj.post not in imported:  # ours: one Linear per projection, channel named
            label = _free_name(proj.name.replace("/", "_"), nodes)
            head = proj.pre
            if m:
                nodes[label + ".delay"] = nir.Delay(delay=np.full(net.size_of(proj.pre), m * dt))
                edges.append((proj.pre, label + ".delay"))
                head = label + ".delay"
            nodes[label] = nir.Linear(weight=w, metadata={"evospike": {
                "channel": proj.target, "projection": proj.name}})
            edges += [(head, label), (label, proj.post)]
            continue
        channel = _main_channel(net, proj.post)
        if proj.target != channel:
            raise EvoSpikeError(f"NIR export: projection '{proj.name}' targets channel "
                                f"'{proj.target}' of '{proj.post}', whose NIR node takes its "
                                f"input on '{channel}' only")
        if proj.pre == CLOCK:
            if m != 0:
                raise EvoSpikeError(f"NIR export: the clock reaches '{proj.post}' late ({d} "
                                    "steps); a bias acts from the first step")
            bias[proj.post] = bias.get(proj.post, 0.0) + w[:, 0]
            continue
        k = (proj.pre, proj.post, m)
        groups[k] = groups[k] + w if k in groups else w
    carried: set[str] = set()
    for (pre, post, m), w in sorted(groups.items()):
        label = f"{pre}->{post}" + (f"@{m}" if m else "")
        head = pre
        if m:
            nodes[label + ".delay"] = nir.Delay(delay=np.full(net.size_of(pre), m * dt))
            edges.append((pre, label + ".delay"))
            head = label + ".delay"
        if post in bias and m == 0 and post not in carried:
            nodes[label] = nir.Affine(weight=w, bias=bias[post])
            carried.add(post)
        else:
            nodes[label] = nir.Linear(weight=w)
        edges += [(head, label), (label, post)]
    for post in sorted(set(bias) - carried):
        raise EvoSpikeError(f"NIR export: '{post}' has a constant drive but no undelayed "
                            "input to carry it as an Affine bias")
    outputs = meta.get("outputs") or {f"{m.target}.out": {"population": m.target}
                                      for m in net.spike_monitors if m.target in pops}
    for out_name, info in sorted(outputs.items()):
        pop = info["population"]
        nodes[out_name] = nir.Output(output_type=np.array([net.size_of(pop)]))
        edges.append((pop, out_name))
    # the unit system travels with the graph, so that our import restores it
    graph_meta = {"dt": dt, **extra}
    graph_meta.setdefault("evospike", {})["units"] = net.units
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_meta, type_check=False)


def _free_name(name: str, taken: dict) -> str:
    label, i = name, 1
    while label in taken or label + ".delay" in taken:
        label, i = f"{name}.{i}", i + 1
    return label


def _consistent(net: Network, s: dict, back: set, rd: int) -> bool:
    if not s or any(n not in s for n in list(net.populations) + list(net.sources)):
        return False
    for proj in net.projections.values():
        d = int(proj.delays[0]) if proj.n_synapses else 1
        m = d - (s[proj.post] - s[proj.pre]) - (rd if (proj.pre, proj.post, 0) in back else 0)
        if m < 0:
            return False
    return True


def _main_channel(net: Network, pop: str) -> str:
    targets = {p.target for p in net.projections.values() if p.post == pop and p.pre != CLOCK}
    return "exc" if "exc" in targets else "v"


def _neuron_node(net: Network, name: str, kind: str | None, discretisation: str, w_in: str,
                 dt: float):
    nir = _nir()
    pop = net.populations[name]
    m: CubaLIF = pop.model  # type: ignore[assignment]
    n = pop.size
    col = lambda x: np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()  # noqa
    du, dv, thr, v_reset = col(m.du), col(m.dv), col(m.v_thresh), col(m.v_reset)
    spiking = not np.all(thr >= NON_SPIKING_THRESHOLD)
    two_state = _main_channel(net, name) == "exc"
    if kind == "Threshold":
        return nir.Threshold(threshold=thr)
    if two_state:
        if discretisation != "euler":
            raise EvoSpikeError(f"NIR export: population '{name}' was read with "
                                "discretisation='exact'; only Euler CubaLIF populations are "
                                "written back")
        tau_syn, tau_mem = dt / du, dt / dv
        params = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=1.0 / dv, v_leak=np.zeros(n),
                      w_in=1.0 / du if w_in == "equation" else np.ones(n))
        if spiking:
            return nir.CubaLIF(v_threshold=thr, v_reset=v_reset, **params)
        return nir.CubaLI(**params)
    if np.all(dv == 0):
        r = np.full(n, 1.0 / dt)
        return nir.IF(r=r, v_threshold=thr, v_reset=v_reset) if spiking else nir.I(r=r)
    if np.any(dv == 0):
        raise EvoSpikeError(f"NIR export: population '{name}' mixes leaky and non-leaky "
                            "neurons")
    tau = dt / dv if discretisation == "euler" else -dt / np.log1p(-dv)
    params = dict(tau=tau, r=1.0 / dv, v_leak=np.zeros(n))
    if spiking:
        return nir.LIF(v_threshold=thr, v_reset=v_reset, **params)
    return nir.LI(**params)


def _network_bytes(net: Network) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "network.h5"
        net.save(path)
        return np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()


def save(network: Network, path: str | os.PathLike, extensions: bool = False) -> None:
    """Write ``network`` as a NIR file at ``path`` (atomically)."""
    nir = _nir()
    graph = to_graph(network, extensions)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    atomic_write_bytes(path, buffer.getvalue())
