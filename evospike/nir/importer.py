"""Read a NIR graph into an EvoSpike `Network` (see docs/NIR.md).

Every NIR neuron node becomes one population of EvoSpike's discrete two-state ``CubaLIF``
(``u[t] = (1 - du) u[t-1] + in_u[t]``, ``v[t] = (1 - dv) v[t-1] + u[t] + in_v[t]``), into which
both discretisations of NIR's ODEs fit exactly: the coefficients are computed here, once, from
the node's parameters, ``dt`` and the `Conventions`. Every path of stateless nodes (Affine,
Linear, Scale, Flatten, Delay, convolutions, pooling) between two neuron nodes is composed into
one sparse matrix and becomes a projection (one per channel and delay). Constant drives (Affine
and convolution biases, the leak towards ``v_leak``) come from a one-neuron clock population
that fires every step, so that they reach each population exactly from its latency on (see
`evospike.nir.timing`). An ``Input`` node becomes an empty spike source that
`evospike.run_array` drives.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from evospike.errors import EvoSpikeError, ValidationError
from evospike.ir.network import Network
from evospike.ir.neurons import UNIT_SYSTEMS, CubaLIF
from evospike.ir.nodes import Population, Projection, SpikeTimesSource, StateMonitor
from evospike.nir.conventions import Conventions, conventions_for
from evospike.nir.linear_maps import conv_matrix, dense_matrix, pool_matrix, refuse
from evospike.nir.native import as_text, node_metadata, restore
from evospike.nir.timing import back_edges, latencies, network_delay

#: the clock population: one neuron that fires in every step (v = 2 > 1 each step)
CLOCK = "nir.clock"
#: the threshold of a non-spiking node (LI, I, CubaLI): CubaLIF's largest; a population that
#: reaches it anyway is reported by `evospike.run_array`
NON_SPIKING_THRESHOLD = 1e12
SPIKING = ("LIF", "CubaLIF", "IF", "Threshold")
NON_SPIKING = ("LI", "I", "CubaLI")
STATELESS = ("Affine", "Linear", "Scale", "Flatten", "Delay", "Conv1d", "Conv2d", "SumPool2d",
             "AvgPool2d")


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - nir is a dependency of the dev extra
        raise EvoSpikeError("NIR support needs the 'nir' package (pip install nir)") from None
    return nir


def _read(source) -> tuple[object, str, list[str]]:
    """(graph, description, nodes whose file has no v_reset)."""
    nir = _nir()
    if isinstance(source, nir.NIRGraph):
        return source, "graph", []
    if not isinstance(source, (str, os.PathLike)):
        raise EvoSpikeError(f"NIR import: expected a NIR file path or a nir.NIRGraph, not "
                            f"{type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise EvoSpikeError(f"NIR file '{path}': no such file")
    try:
        graph = nir.read(path)
    except Exception as exc:  # nir raises bare asserts, KeyErrors and OSErrors alike
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise EvoSpikeError(f"NIR file '{path}': cannot be read as NIR ({text})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise EvoSpikeError(f"NIR file '{path}': holds a single {type(graph).__name__}, "
                            "not a graph")
    return graph, str(path), _missing_v_reset(path)


def _missing_v_reset(path: Path) -> list[str]:
    """Neuron nodes whose file stores no v_reset: nir >= 1.0.6 reads them as reset to 0, while
    older writers meant reset by subtraction. Only the presence of the key is looked at; the
    file is read by `nir.read`."""
    import h5py

    missing: list[str] = []

    def walk(group, prefix: str) -> None:
        for key in group:
            item = group[key]
            if not isinstance(item, h5py.Group) or "type" not in item:
                continue
            kind = item["type"][()]
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind in ("LIF", "CubaLIF", "IF") and "v_reset" not in item:
                missing.append(prefix + key)
            if kind == "NIRGraph" and "nodes" in item:
                walk(item["nodes"], f"{prefix}{key}.")

    with h5py.File(path, "r") as f:
        if "node" in f and "nodes" in f["node"]:
            walk(f["node"]["nodes"], "")
    return missing


# ---------------------------------------------------------------------- graph flattening
def _flatten(graph, prefix: str = "") -> tuple[dict, list, dict, dict]:
    """(leaf nodes by flat name, edges, input ports, output ports) of ``graph``, subgraphs
    inlined: a subgraph's Input/Output nodes become pass-through ports named
    ``<subgraph>.<port>``; an edge that names the subgraph itself goes to (comes from) its only
    input (output) port."""
    nir = _nir()
    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []
    ins: dict[str, str] = {}
    outs: dict[str, str] = {}
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for key, node in graph.nodes.items():
        flat = prefix + str(key).replace("/", "_")
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_in, sub_out = _flatten(node, flat + ".")
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            entry[str(key)] = list(sub_in.values())
            exit_[str(key)] = list(sub_out.values())
            for port_name, port in sub_in.items():
                entry[f"{key}.{port_name}"] = [port]
            for port_name, port in sub_out.items():
                exit_[f"{key}.{port_name}"] = [port]
        else:
            nodes[flat] = node
            if isinstance(node, nir.Input):
                ins[str(key)] = flat
            elif isinstance(node, nir.Output):
                outs[str(key)] = flat
    for a, b in graph.edges:
        a, b = str(a), str(b)
        srcs = exit_.get(a, [prefix + a.replace("/", "_")])
        dsts = entry.get(b, [prefix + b.replace("/", "_")])
        for name, ports, side in ((a, srcs, "output"), (b, dsts, "input")):
            if len(ports) != 1:
                raise EvoSpikeError(f"NIR edge ({a!r}, {b!r}): subgraph '{name}' has "
                                    f"{len(ports)} {side} nodes; name one as '{name}.<port>'")
        for s in srcs:
            for d in dsts:
                for end in (s, d):
                    if end not in nodes:
                        raise EvoSpikeError(f"NIR edge ({a!r}, {b!r}): no node '{end}'")
                edges.append((s, d))
    return nodes, edges, ins, outs


# ---------------------------------------------------------------------- neuron coefficients
class _Coef:
    """Discretisation arithmetic in the stored precision (or float64), results in float64."""

    def __init__(self, node_obj, conv: Conventions, dt_s: float):
        self.dtype = np.float64
        if conv.arithmetic == "stored":
            kinds = [np.asarray(v).dtype for v in vars(node_obj).values()
                     if isinstance(v, np.ndarray) and np.asarray(v).dtype.kind == "f"]
            if kinds:
                self.dtype = np.result_type(*kinds)
        self.dt = np.asarray(dt_s, dtype=self.dtype)

    def p(self, value) -> np.ndarray:
        return np.asarray(value, dtype=self.dtype).ravel()


def _neuron(node_obj, kind: str, name: str, conv: Conventions, dt_s: float, n: int):
    """(CubaLIF model, {channel: gain per neuron}, constant drive per neuron on channel v,
    spiking?) of a NIR neuron node."""
    c = _Coef(node_obj, conv, dt_s)
    f64 = lambda a: np.broadcast_to(np.asarray(a, dtype=np.float64).ravel(), (n,)).copy()  # noqa
    exact = conv.discretisation == "exact"
    if kind in ("LIF", "LI", "IF", "I"):
        r = c.p(node_obj.r)
        # the input's gain on v (see conventions.W_IN): held over the step, or an impulse
        # added after the decay (r * S, or r * S / tau for a unit Dirac impulse)
        if kind in ("IF", "I"):
            dv, drive = c.p(0.0), c.p(0.0)
            gain = c.dt * r if conv.w_in == "equation" else r
        else:
            tau, v_leak = c.p(node_obj.tau), c.p(node_obj.v_leak)
            _positive(name, "tau", tau)
            dv = -np.expm1(-c.dt / tau) if exact else c.dt / tau
            gain = {"equation": dv * r, "jump": r, "dirac": r / tau}[conv.w_in]
            drive = dv * v_leak
        du = 1.0
        gains = {"v": f64(gain)}
    elif kind in ("CubaLIF", "CubaLI"):
        r, w_in = c.p(node_obj.r), c.p(node_obj.w_in)
        ts, tm, v_leak = c.p(node_obj.tau_syn), c.p(node_obj.tau_mem), c.p(node_obj.v_leak)
        _positive(name, "tau_syn", ts)
        _positive(name, "tau_mem", tm)
        if exact:
            du, dv, k, g_exc, g_v, drive = _exact_cuba(ts, tm, r, w_in, v_leak, conv, dt_s, n)
        else:
            a_s, a_m = c.dt / ts, c.dt / tm
            g_in = {"equation": a_s * w_in, "jump": w_in, "dirac": w_in / ts}[conv.w_in]
            k = a_m * r  # u = k I, so that v gains u[t] with coefficient 1
            du, dv, drive = a_s, a_m, a_m * v_leak
            g_exc, g_v = k * g_in, np.zeros(1)
        gains = {"exc": f64(g_exc), "v": f64(g_v)}
    else:  # Threshold: memoryless, v = this step's input
        du, dv, drive = 1.0, 1.0, 0.0
        gains = {"v": np.ones(n)}
    spiking = kind in SPIKING
    if spiking:
        thresh = f64(node_obj.threshold if kind == "Threshold" else node_obj.v_threshold)
        file_reset = np.zeros(n) if kind == "Threshold" else f64(node_obj.v_reset)
        mode = "value" if kind == "Threshold" or conv.reset in ("v_reset", "zero") else (
            conv.reset)
        v_reset = np.zeros(n) if conv.reset == "zero" else file_reset
        if conv.spike_at == "at_or_above":  # v >= t is v > (the float64 just below t)
            thresh = np.nextafter(thresh, -np.inf)
    else:
        thresh, v_reset, mode = np.full(n, NON_SPIKING_THRESHOLD), np.zeros(n), "value"
    for arr_name, arr in (("du", du), ("dv", dv)):
        a = np.asarray(arr, dtype=np.float64)
        if np.any((a < 0) | (a > 1)) or not np.all(np.isfinite(a)):
            raise refuse(name, f"gives {arr_name} = {a.ravel()[0]:g} outside [0, 1] at dt = "
                         f"{dt_s} s: a time constant shorter than the step (forward Euler "
                         "would diverge; try discretisation='exact' or a smaller dt)")
    try:
        model = CubaLIF(du=_param(du, n), dv=_param(dv, n), bias=0.0, v_thresh=_param(thresh, n),
                        v_reset=_param(v_reset, n), reset=mode)
    except ValidationError as exc:
        raise refuse(name, f"maps onto an invalid CubaLIF: {exc}") from None
    return model, gains, f64(drive), spiking


def _param(value, n: int):
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64).ravel(), (n,))
    return float(arr[0]) if np.all(arr == arr[0]) else arr.copy()


def _positive(name: str, field: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise refuse(name, f"{field} must be positive and finite (got {arr.ravel()[0]!r})")


def _exact_cuba(ts, tm, r, w_in, v_leak, conv: Conventions, dt_s: float, n: int):
    """The exact step of tau_syn dI/dt = -I + D x, tau_mem dv/dt = v_leak - v + r I with x
    held over the step ("equation": D = w_in) or added to I after the step's decay as a jump
    (w_in x for "jump", w_in x / tau_syn for "dirac"), fitted to
    CubaLIF: u = k I with k = P_vI / P_II, the exc channel carrying k * (I's input) and the v
    channel the rest of v's input."""
    ts, tm, r, w_in, v_leak = (np.broadcast_to(np.asarray(a, np.float64), (n,))
                               for a in (ts, tm, r, w_in, v_leak))
    du, dv, k, g_exc, g_v, drive = (np.zeros(n) for _ in range(6))
    for i in range(n):
        A = np.array([[-1 / ts[i], 0.0, 0.0, w_in[i] / ts[i]],
                      [r[i] / tm[i], -1 / tm[i], v_leak[i] / tm[i], 0.0],
                      [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
        E = scipy.linalg.expm(A * dt_s)
        p_ii, p_vi, p_vv = E[0, 0], E[1, 0], E[1, 1]
        g_i, g_vx = {"equation": (E[0, 3], E[1, 3]), "jump": (w_in[i], 0.0),
                     "dirac": (w_in[i] / ts[i], 0.0)}[conv.w_in]
        du[i], dv[i], k[i] = 1 - p_ii, 1 - p_vv, p_vi / p_ii
        g_exc[i], g_v[i], drive[i] = k[i] * g_i, g_vx - k[i] * g_i, E[1, 2]
    return du, dv, k, g_exc, g_v, drive


# ---------------------------------------------------------------------- expressions
class _Expr(dict):
    """A signal as a sum of sparse maps of endpoints: {(endpoint, delay steps, tag): matrix};
    the tag is () unless a Linear written by `save` names the EvoSpike channel and projection
    its weights come from (``metadata["evospike"]``): then (channel, projection name)."""

    def add(self, other: _Expr, where: str) -> None:
        for key, m in other.items():
            if key in self:
                if self[key].shape != m.shape:
                    raise EvoSpikeError(f"NIR node '{where}': inputs of different sizes "
                                        f"({self[key].shape[0]} and {m.shape[0]}) meet there")
                self[key] = self[key] + m
            else:
                self[key] = m

    def size(self) -> int | None:
        return next(iter(self.values())).shape[0] if self else None

    def map(self, matrix: sp.spmatrix, where: str) -> _Expr:
        size = self.size()
        if size is not None and matrix.shape[1] != size:
            raise EvoSpikeError(f"NIR node '{where}': expects {matrix.shape[1]} inputs, "
                                f"gets {size}")
        return _Expr({key: (matrix @ m).tocsr() for key, m in self.items()})


class _Builder:
    def __init__(self, graph, conv: Conventions, dt_s: float, dt_ms: float):
        nir = _nir()
        self.nir = nir
        self.conv, self.dt_s, self.dt_ms = conv, dt_s, dt_ms
        self.nodes, self.edges, top_in, top_out = _flatten(graph)
        self.inputs = {flat: key for key, flat in top_in.items()}
        self.outputs = {flat: key for key, flat in top_out.items()}
        self.pre: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            self.pre[b].append(a)
        self.memo: dict[str, _Expr] = {}
        self.visiting: set[str] = set()
        self.clock_used = False
        self.sizes: dict[str, int] = {}

    def kind(self, name: str) -> str:
        node = self.nodes[name]
        kind = type(node).__name__
        if kind in ("Input", "Output"):
            return "Source" if name in self.inputs else ("Sink" if name in self.outputs else
                                                         "Port")
        if kind not in SPIKING + NON_SPIKING + STATELESS:
            raise refuse(name, f"is a {kind}, which EvoSpike does not import")
        return kind

    def input_size(self, name: str) -> int:
        node = self.nodes[name]
        shape = node.input_type.get("input") if node.input_type else None
        if shape is None:
            raise refuse(name, "has no input shape")
        return int(np.prod(np.asarray(shape, dtype=np.int64)))

    def neuron_size(self, name: str) -> int:
        node = self.nodes[name]
        field = "threshold" if self.kind(name) == "Threshold" else (
            "r" if hasattr(node, "r") else "v_threshold")
        size = int(np.asarray(getattr(node, field)).size)
        return max(size, 1)

    def expr(self, name: str) -> _Expr:
        """The signal ``name`` outputs."""
        if name in self.memo:
            return self.memo[name]
        kind = self.kind(name)
        if kind == "Source":
            n = self.input_size(name)
            self.sizes[name] = n
            out = _Expr({(name, 0, ()): sp.identity(n, format="csr")})
        elif kind in SPIKING:
            n = self.neuron_size(name)
            out = _Expr({(name, 0, ()): sp.identity(n, format="csr")})
        elif kind in NON_SPIKING:
            raise refuse(name, f"is a non-spiking {kind}: its graded output cannot drive "
                         "other nodes (EvoSpike projections carry spikes); only an Output may "
                         "read it")
        elif kind == "Sink":
            raise refuse(name, "is an Output node and drives nothing")
        else:
            if name in self.visiting:
                raise refuse(name, "lies on a cycle without a neuron (an algebraic loop)")
            self.visiting.add(name)
            out = self.stateless(name, kind, self.input_of(name))
            self.visiting.discard(name)
        self.memo[name] = out
        return out

    def input_of(self, name: str) -> _Expr:
        total = _Expr()
        if not self.pre[name]:
            raise refuse(name, "has no incoming edge")
        for p in self.pre[name]:
            total.add(self.expr(p), name)
        return total

    def stateless(self, name: str, kind: str, x: _Expr) -> _Expr:
        node = self.nodes[name]
        n_in = x.size()
        bias = None
        if kind in ("Port", "Flatten"):
            return x
        if kind in ("Affine", "Linear"):
            m = dense_matrix(node.weight, name)
            out = x.map(m, name)
            ext = node_metadata(node)
            if "channel" in ext:  # written by `save` from one projection of ours
                tag = (as_text(ext["channel"]), as_text(ext.get("projection", "")))
                out = _Expr({(src, d, tag): w for (src, d, _), w in out.items()})
            if kind == "Affine":
                bias = np.asarray(node.bias, dtype=np.float64).ravel()
                if bias.size != m.shape[0]:
                    raise refuse(name, f"bias has {bias.size} values for {m.shape[0]} outputs")
        elif kind == "Scale":
            s = np.asarray(node.scale, dtype=np.float64).ravel()
            out = x.map(sp.diags(s, format="csr"), name)
        elif kind in ("Conv1d", "Conv2d"):
            m, bias = conv_matrix(node, name, self.conv.max_synapses)
            out = x.map(m, name)
        elif kind in ("SumPool2d", "AvgPool2d"):
            out = x.map(pool_matrix(node, name, kind == "AvgPool2d", self.conv.max_synapses),
                        name)
        else:  # Delay: per element, whole steps
            steps = np.asarray(node.delay, dtype=np.float64).ravel() / self.dt_s
            whole = np.round(steps)
            if np.any(np.abs(steps - whole) > 1e-6 * np.maximum(1, np.abs(steps))) or \
                    np.any(whole < 0):
                raise refuse(name, f"delay {node.delay!r} s is not a whole number of steps of "
                             f"dt = {self.dt_s} s")
            if whole.size not in (1, n_in):
                raise refuse(name, f"has {whole.size} delays for {n_in} signals")
            whole = np.broadcast_to(whole, (n_in,)).astype(int)
            out = _Expr()
            for d in np.unique(whole):
                mask = sp.diags((whole == d).astype(np.float64), format="csr")
                for (src, m0, ch), m in x.items():
                    out.add(_Expr({(src, m0 + int(d), ch): (mask @ m).tocsr()}), name)
            return out
        if bias is not None and np.any(bias != 0):
            self.clock_used = True
            out.add(_Expr({(CLOCK, 0, ()): sp.csr_matrix(bias.reshape(-1, 1))}), name)
        return out


def load(source, dt_ms: float | None = None, *, preset: str | None = None,
         name: str | None = None, **options) -> Network:
    """Read a NIR file (or a ``nir.NIRGraph``) into a `Network`.

    ``dt_ms``: the time step the graph's ODEs are read at (NIR stores none; snnTorch's exporter
    assumes 0.1 ms). Without it, a ``dt`` (seconds) in the graph's metadata is used, else the
    import is refused. ``preset`` and ``options`` set the `Conventions` (see docs/NIR.md).
    The network records its conventions, latencies and node map in ``metadata["nir"]``."""
    conv = conventions_for(preset, **options)
    # a node written by `save` names the conventions it is read with, and the model it came
    # from; options given here take precedence (and a preset or any reading option turns the
    # restoring of models off: the caller asks for the NIR reading)
    forced = set(options) & {"discretisation", "w_in", "reset", "arithmetic", "spike_at"}
    may_restore = preset is None and not forced
    graph, where, missing_v_reset = _read(source)
    embedded = _embedded(graph, where)
    if embedded is not None:
        return embedded
    dt_from = "argument"
    if dt_ms is None:
        meta_dt = (graph.metadata or {}).get("dt") if isinstance(graph.metadata, dict) else None
        if meta_dt is None:
            raise EvoSpikeError(f"NIR {where}: no time step: NIR stores none, "
                                "so give dt_ms (--dt) "
                                "(snnTorch's exporter assumes 0.1 ms)")
        try:
            dt_ms = float(np.asarray(meta_dt)) * 1e3
        except (TypeError, ValueError):
            raise EvoSpikeError(f"NIR {where}: metadata dt is not a number of seconds "
                                f"(got {meta_dt!r})") from None
        dt_from = "graph metadata"
    if isinstance(dt_ms, bool) or not isinstance(dt_ms, (int, float)) or \
            not np.isfinite(dt_ms) or dt_ms <= 0:
        raise ValidationError("NIR import", where, "dt_ms", "must be a positive number of ms",
                              dt_ms)
    ext = graph.metadata.get("evospike") if isinstance(graph.metadata, dict) else None
    units = as_text(ext.get("units", "dimensionless")) if isinstance(ext, dict) else (
        "dimensionless")
    if units not in UNIT_SYSTEMS:
        raise EvoSpikeError(f"NIR {where}: metadata evospike.units must be one of "
                            f"{UNIT_SYSTEMS} (got {units!r})")
    net = Network(name or "nir", dt_ms=float(dt_ms), units=units)
    b = _Builder(graph, conv, dt_ms * 1e-3, float(dt_ms))
    if not b.inputs:
        raise EvoSpikeError(f"NIR {where}: the graph has no Input node")
    if not b.outputs:
        raise EvoSpikeError(f"NIR {where}: the graph has no Output node")
    for n in b.nodes:
        b.kind(n)  # refuse unknown node kinds by name, used or not
    neurons = sorted(n for n in b.nodes if b.kind(n) in SPIKING + NON_SPIKING)
    drives = {v: _Expr(b.input_of(v)) for v in neurons}
    out_pop: dict[str, str] = {}
    for flat in sorted(b.outputs):
        pres = b.pre[flat]
        if len(pres) != 1 or b.kind(_through_ports(b, pres[0])) not in SPIKING + NON_SPIKING:
            raise refuse(flat, "must be fed by exactly one neuron node (a graded readout of a "
                         "linear node has no EvoSpike population)")
        out_pop[flat] = _through_ports(b, pres[0])
    sizes = {v: b.neuron_size(v) for v in neurons}
    node_conv = {v: _node_conventions(b.nodes[v], v, conv, forced) for v in neurons}
    restored = {}
    for v in neurons:
        got = restore(b.nodes[v], b.kind(v), sizes[v], dt_ms * 1e-3) if may_restore else None
        if got is not None:
            restored[v] = got
        else:  # read by NIR's equations: a channel named by a Linear means nothing here
            merged = _Expr()
            for (src, m, _), matrix in drives[v].items():
                merged.add(_Expr({(src, m, ()): matrix}), v)
            drives[v] = merged
    mapped = {v: ((restored[v][0], {}, np.zeros(sizes[v]), True) if v in restored else
                  _neuron(b.nodes[v], b.kind(v), v, node_conv[v], dt_ms * 1e-3, sizes[v]))
              for v in neurons}
    for v in neurons:
        if np.any(mapped[v][2] != 0) and (CLOCK, 0, ()) not in drives[v]:
            # the leak's constant drive comes from the clock, with the latency of the rest
            drives[v][(CLOCK, 0, ())] = sp.csr_matrix((sizes[v], 1))
    edges = sorted({(src, v, m) for v in neurons for (src, m, _) in drives[v]})
    clock = any(src == CLOCK for src, _, _ in edges)
    sources = sorted(b.inputs) + ([CLOCK] if clock else [])
    back = back_edges(sources + neurons, edges)
    s = latencies(sources, neurons, edges, back)
    net.metadata["nir"] = meta = {
        "source": where, "dt_ms": float(dt_ms), "dt_from": dt_from,
        "conventions": conv.as_dict(), "inputs": {}, "outputs": {}, "nodes": {},
        "latency_steps": {}, "recurrent_edges": [], "v_reset_absent": missing_v_reset,
        "nir_version": str(getattr(_nir(), "__version__", "unknown")),
        "first_step": "a cycle's recurrent edge carries zero spikes into the first step",
    }
    for src in sorted(b.inputs):
        net.add(SpikeTimesSource(src, b.sizes[src], np.zeros(0, np.int64), np.zeros(0)))
        meta["inputs"][b.inputs[src]] = src
    if clock:
        net.add(Population(CLOCK, 1, CubaLIF(du=1.0, dv=1.0, bias=2.0, v_thresh=1.0,
                                              v_reset=0.0)))
    for v in neurons:
        model, _, _, spiking = mapped[v]
        net.add(Population(v, sizes[v], model))
        meta["nodes"][v] = {"type": b.kind(v), "spiking": spiking}
        if v in restored:
            meta["nodes"][v]["restored"] = model.kind
        elif node_conv[v] != conv:
            meta["nodes"][v]["conventions"] = node_conv[v].as_dict()
        meta["latency_steps"][v] = int(s[v])
    for v in neurons:
        _, gains, drive, _ = mapped[v]
        for (src, m, tag), matrix in sorted(drives[v].items()):
            if matrix.shape != (sizes[v], net.size_of(src)):
                raise refuse(v, f"receives {matrix.shape[0]} inputs from '{src}' for "
                             f"{sizes[v]} neurons")
            delay = network_delay((src, v, m), s, back, conv.recurrent_delay_steps)
            if delay < 1:
                raise refuse(v, f"the edge from '{src}' closes a cycle through nodes of "
                             f"different latency: it would need a delay of {delay} steps "
                             "(EvoSpike's least is 1); raise recurrent_delay_steps to "
                             f"{conv.recurrent_delay_steps + 1 - delay} or add a Delay node")
            if (src, v, m) in back:
                meta["recurrent_edges"].append([src, v, int(delay)])
            if v in restored:  # our own model: the weights as written, on their channel
                channel, label = tag or (restored[v][1], "")
                _project(net, src, v, channel, m, delay, matrix, label or None)
                continue
            for channel in ("exc", "v"):
                g = gains.get(channel)
                w = sp.diags(g, format="csr") @ matrix if g is not None else None
                if src == CLOCK and m == 0 and channel == "v" and np.any(drive != 0):
                    leak = sp.csr_matrix(drive.reshape(-1, 1))
                    w = leak if w is None else w + leak
                if w is not None:
                    _project(net, src, v, channel, m, delay, w)
    for flat in sorted(b.outputs):
        pop = out_pop[flat]
        spiking = meta["nodes"][pop]["spiking"]
        if spiking:
            if not any(mon.target == pop for mon in net.spike_monitors):
                net.record_spikes(pop)
        elif f"{pop}.v" not in net.state_monitors:
            net.add(StateMonitor(f"{pop}.v", pop, "v", np.arange(sizes[pop])))
        meta["outputs"][b.outputs[flat]] = {"population": pop, "spiking": spiking,
                                            "latency_steps": int(s[pop])}
    meta["potentials"] = {k: int(val) for k, val in s.items()}
    return net


def _node_conventions(node_obj, name: str, conv: Conventions, forced: set[str]) -> Conventions:
    """``conv`` with the reading a node written by `save` records for itself
    (``metadata["evospike"]["conventions"]``), except where the caller set the option."""
    recorded = node_metadata(node_obj).get("conventions")
    if not isinstance(recorded, dict):
        return conv
    update = {k: as_text(recorded[k]) for k in ("discretisation", "w_in")
              if k in recorded and k not in forced}
    try:
        return replace(conv, **update)
    except ValidationError as exc:
        raise refuse(name, f"records conventions EvoSpike does not know: {exc}") from None


def _embedded(graph, where: str) -> Network | None:
    """The network `evospike.nir.save(..., extensions=True)` embedded in the graph's metadata
    (an EvoSpike network file, read by `Network.load`: plain data, no code), or None."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    ext = meta.get("evospike")
    blob = ext.get("network_h5") if isinstance(ext, dict) else None
    if blob is None:
        return None
    data = np.asarray(blob)
    if data.dtype != np.uint8 or data.ndim != 1:
        raise EvoSpikeError(f"NIR {where}: metadata evospike.network_h5 must be bytes (uint8)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "network.h5"
        path.write_bytes(data.tobytes())
        net = Network.load(path)
    net.metadata.setdefault("nir", {})["restored_from"] = where
    return net


def _through_ports(b: _Builder, name: str) -> str:
    seen = set()
    while b.kind(name) in ("Port", "Flatten") and name not in seen:
        seen.add(name)
        if len(b.pre[name]) != 1:
            break
        name = b.pre[name][0]
    return name


def _project(net: Network, src: str, post: str, channel: str, m: int, delay: int,
             w: sp.spmatrix, label: str | None = None) -> None:
    """Add the projection ``src -> post`` with weights ``w`` (post x pre), zeros left out."""
    w = sp.csr_matrix(w.T)  # rows by presynaptic neuron
    w.eliminate_zeros()
    w.sort_indices()
    if w.nnz == 0:
        return
    label = label or f"{src}->{post}" + ("" if channel == "exc" else f":{channel}") + (
        f"@{m}" if m else "")
    net.add(Projection(label, src, post, w.shape[0], w.shape[1], w.indptr.astype(np.int64),
                       w.indices.astype(np.int64), w.data.astype(np.float64),
                       np.full(w.nnz, delay, dtype=np.int32), channel))


def with_input_spikes(net: Network, spikes, input: str | None = None) -> Network:
    """Give the empty spike source that a NIR ``Input`` became a recorded spike train, so that
    the network runs (and validates) on any backend without `evospike.run_array`: ``spikes``
    is an array (time, n_in) or (time, 1, n_in) of 0s and 1s (one trial), or (time, n_in) of
    booleans; step t's spikes are sent in network step t, as `run_array` sends them. ``input``:
    the NIR input (or source) name, needed where the graph has several. ``net`` is changed in
    place and returned; ``metadata["nir"]["input_spikes"]`` records the drive."""
    meta = net.metadata.setdefault("nir", {})
    named = meta.get("inputs", {})
    if input is None:
        empty = [s.name for s in net.sources.values()
                 if isinstance(s, SpikeTimesSource) and s.neurons.size == 0]
        if len(empty) != 1:
            raise EvoSpikeError(f"input spikes: network '{net.name}' has {len(empty)} empty "
                                f"spike sources ({empty}); name the one to drive")
        input = empty[0]
    src = named.get(input, input)
    if not isinstance(net.sources.get(src), SpikeTimesSource):
        raise EvoSpikeError(f"input spikes: '{input}' is not a spike source of network "
                            f"'{net.name}' (have {sorted(net.sources)})")
    a = np.asarray(spikes)
    n = net.size_of(src)
    if a.ndim == 3 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 2 or a.shape[1] != n or a.shape[0] < 1:
        raise EvoSpikeError(f"input spikes for '{input}': must have shape (time, {n}) or "
                            f"(time, 1, {n}) (got {np.asarray(spikes).shape})")
    if a.dtype.kind not in "biuf" or not np.all((a == 0) | (a == 1)):
        bad = float(a.ravel()[~((a.ravel() == 0) | (a.ravel() == 1))][0]) \
            if a.dtype.kind in "biuf" else a.dtype
        raise EvoSpikeError(f"input spikes for '{input}': must be 0 or 1 (got {bad!r}); "
                            "graded inputs are sent by evospike.run_array")
    steps, neurons = np.nonzero(a)
    order = np.lexsort((neurons, steps))
    net.sources[src] = SpikeTimesSource(src, n, neurons[order].astype(np.int64),
                                        steps[order] * net.dt_ms)
    meta["input_spikes"] = {"input": str(input), "steps": int(a.shape[0]),
                            "spikes": int(steps.size)}
    return net
