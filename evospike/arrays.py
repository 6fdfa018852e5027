"""Run a network the way a machine-learning user runs a graph: an array in, arrays out.

    out = evospike.run_array(net, x)          # x: (time, batch, n_in)
    out.spikes["output"]                      # (time, batch, n_out), uint8

The input node is a spike source (what `evospike.nir.load` makes of a NIR ``Input``) or a
population. Into a source, each step's values are sent through its projections as graded
events: value x of neuron i adds ``x * w`` to each of its synapses' targets, exactly where a
spike (x = 1) of that neuron would land; an array of 0s and 1s is therefore a spike train. Into a
population, the values are an injected current per step (see `CurrentInput`). Batch element b
is trial b of the torch backend.

A network made by `evospike.nir.load` names its inputs and outputs and the latency of each
output (``metadata["nir"]``, see `evospike.nir.timing`); with ``align=True`` (the default) the
run is extended by the largest latency and output step t is the network's step t + latency, so
that it lines up with step t of the NIR model (and of the tool that exported it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.ir.nodes import PoissonSource, SpikeTimesSource


@dataclass
class ArrayRun:
    """What `run_array` returns. ``spikes[name]``: (time, batch, n) uint8 per spiking output;
    ``states[name][state]``: (time, batch, n) float64 per output and requested state (a
    non-spiking output, such as a NIR ``LI`` readout, always has its ``v``)."""

    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    latency_steps: dict[str, int] = field(default_factory=dict)


def _outputs(network: Network, outputs) -> dict[str, tuple[str, bool, int]]:
    """{output name: (population, spiking?, latency)}."""
    meta = network.metadata.get("nir", {}) if isinstance(network.metadata, dict) else {}
    if outputs is None and meta.get("outputs"):
        return {k: (v["population"], bool(v["spiking"]), int(v["latency_steps"]))
                for k, v in meta["outputs"].items()}
    if outputs is None:
        outputs = [m.target for m in network.spike_monitors if m.target in network.populations]
        if not outputs:
            raise EvoSpikeError(f"run_array: network '{network.name}' names no outputs: pass "
                                "outputs=[population, ...] or record spikes of some population")
    out = {}
    for name in ([outputs] if isinstance(outputs, str) else outputs):
        if name not in network.populations:
            raise EvoSpikeError(f"run_array: output '{name}' is not a population of network "
                                f"'{network.name}' (have {sorted(network.populations)})")
        out[name] = (name, True, 0)
    return out


def _inputs(network: Network, inputs, input_name) -> dict[str, np.ndarray]:
    meta = network.metadata.get("nir", {}) if isinstance(network.metadata, dict) else {}
    named = meta.get("inputs", {})
    if isinstance(inputs, dict):
        pairs = {named.get(k, k): v for k, v in inputs.items()}
    else:
        if input_name is None:
            if len(named) == 1:
                input_name = next(iter(named.values()))
            else:
                empty = [s.name for s in network.sources.values()
                         if isinstance(s, SpikeTimesSource) and s.neurons.size == 0]
                if len(empty) != 1:
                    raise EvoSpikeError(f"run_array: network '{network.name}' has no single "
                                        "input node: pass input='name' (a source or "
                                        "population) or a dict of arrays")
                input_name = empty[0]
        pairs = {named.get(input_name, input_name): inputs}
    out = {}
    for name, arr in pairs.items():
        if name not in network.sources and name not in network.populations:
            raise EvoSpikeError(f"run_array: input '{name}' is not a source or population of "
                                f"network '{network.name}'")
        if isinstance(network.sources.get(name), PoissonSource):
            raise EvoSpikeError(f"run_array: input '{name}' is a PoissonSource, which draws its "
                                "own spikes; drive a SpikeTimesSource or a population")
        a = np.asarray(arr)
        if a.dtype == bool:
            a = a.astype(np.float64)
        if a.dtype.kind not in "iuf":
            raise EvoSpikeError(f"run_array: input '{name}' must be numeric (got {a.dtype})")
        n = network.size_of(name)
        if a.ndim != 3 or a.shape[2] != n or a.shape[0] < 1 or a.shape[1] < 1:
            raise EvoSpikeError(f"run_array: input '{name}' must have shape (time, batch, {n}) "
                                f"(got {a.shape})")
        if not np.all(np.isfinite(a)):
            raise EvoSpikeError(f"run_array: input '{name}' must be finite")
        out[name] = a.astype(np.float64)
    shapes = {a.shape[:2] for a in out.values()}
    if len(shapes) != 1:
        raise EvoSpikeError(f"run_array: inputs differ in (time, batch): {sorted(shapes)}")
    return out


def run_array(network: Network, inputs, backend: str = "torch", *, input: str | None = None,
              outputs=None, states=(), align: bool = True, precision: str = "float64",
              device: str = "cpu") -> ArrayRun:
    """Drive ``network``'s input with ``inputs`` (time, batch, n_in) and return each output's
    spikes (time, batch, n) and the ``states`` asked for (see the module docstring).

    ``inputs``: one array, or a dict {input name: array} (NIR input names or node names).
    ``outputs``: population names (default: the NIR outputs, else the spike-monitored
    populations). ``backend``: "torch" (the batch runs as trials of one run)."""
    if backend != "torch":
        raise EvoSpikeError(f"run_array: backend '{backend}' is not supported (torch only: "
                            "an array drive is a per-trial input no other backend takes; "
                            "validate a network on another backend with 'evospike validate')")
    drive = _inputs(network, inputs, input)
    outs = _outputs(network, outputs)
    wanted = (states,) if isinstance(states, str) else tuple(states)
    for name, (pop, spiking, _) in outs.items():
        names = network.populations[pop].model.state_names
        for st in wanted + (() if spiking else ("v",)):
            if st not in names:
                raise EvoSpikeError(f"run_array: state '{st}' is not a state of output '{name}' "
                                    f"({network.populations[pop].model.kind}: {names})")
    t_in = next(iter(drive.values())).shape[0]
    lat = {name: (max(0, latency) if align else 0) for name, (_, _, latency) in outs.items()}
    # the engine loop lives with its backend, found by name like every backend
    engine = importlib.import_module("evospike.backends.torch.arrays")
    spikes, traces = engine.drive(network, drive, outs, wanted, t_in + max(lat.values(), default=0),
                                  precision=precision, device=device)
    result = ArrayRun(latency_steps=dict(lat))
    for name in outs:
        s = lat[name]
        if name in spikes:
            result.spikes[name] = spikes[name][s:s + t_in]
        result.states[name] = {st: arr[s:s + t_in] for st, arr in traces[name].items()}
    return result
