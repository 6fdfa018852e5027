"""A trained `SpikingNetwork` as an IR `Network`, and its predictions read back from `Results`.

The IR network holds ``copies`` independent replicas of the classifier (block-diagonal
projections, each replica fed its own sample), so one backend run classifies many samples:

- input: ``"current"`` -> population ``input`` (LIF, K x features) with a per-step
  `CurrentInput` series ``gain_mV * x``; ``"spikes"`` -> a `SpikeTimesSource` ``input``;
- each layer -> a LIF population of K x its size, whose trained bias is the per-neuron
  ``i_bias_mV``; its weights -> a `FromArrays` projection (conv kernels expanded to every
  position), delay one step, onto channel ``exc`` (weights carry their sign);
- the readout -> a LIF population with its threshold at the top of the IR's range, its
  membrane recorded every step by a `StateMonitor` ``readout.v``.

Replica k's neuron j of a layer is neuron ``k * size + j`` of its population.
"""

from __future__ import annotations

import numpy as np
import torch

from evospike.connectors import FromArrays
from evospike.errors import EvoSpikeError, ValidationError
from evospike.ir.network import Network


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def to_network(model, inputs=None, name: str = "trained", record: str = "readout") -> Network:
    """The IR network of ``model`` with one replica per sample of ``inputs``.

    ``inputs``: a batch in the form the model's forward takes (features (K, *shape) or
    (K, T, *shape) for current input, spike trains (K, T, *shape) for spike input); None gives
    one replica with no input attached. ``record``: "readout" (its membrane), or "all" (also
    every population's spikes)."""
    if record not in ("readout", "all"):
        raise EvoSpikeError(f"to_network: record must be 'readout' or 'all' (got {record!r})")
    spec = model.neuron
    S = spec.scale_mV
    T = model.steps
    dt = model.dt_ms
    net = Network(name, dt_ms=dt)
    batch = None
    if inputs is not None:
        batch = torch.as_tensor(_as_numpy(inputs), dtype=torch.float64)
    K = 1 if batch is None else int(batch.shape[0])
    n_in = int(np.prod(model.input_shape))
    if model.input_kind == "current":
        net.population("input", K * n_in, spec.ir_model(spiking=True))
        if batch is not None:
            drive = model.current_drive(batch.to(model._dtype()))  # (T, K, *shape), normalised
            series_mV = _as_numpy(drive).reshape(T, K * n_in) * (S / model.spiking_consts.drive)
            net.inject_current("input", series=series_mV, name="input_current")
    else:
        if batch is None:
            steps_idx, neurons = np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            spikes = _as_numpy(model.encode(batch.to(model._dtype())))  # (T, K, *shape)
            flat = spikes.reshape(T, K * n_in)
            if np.any((flat != 0) & (flat != 1)):
                raise ValidationError("SpikingNetwork", "model", "input spikes",
                                      "must be 0 or 1", float(flat[(flat != 0) & (flat != 1)][0]))
            steps_idx, neurons = np.nonzero(flat)
        net.spike_source("input", K * n_in, neurons.astype(np.int64), steps_idx * dt)
    prev = "input"
    n_prev = n_in
    for layer in model.layers:
        size = layer.size
        bias = layer.full_bias()
        if bias is None:
            i_bias = 0.0
        else:
            per_neuron = _as_numpy(bias).reshape(-1) * S / model.spiking_consts.drive
            i_bias = np.tile(per_neuron, K)
            worst = float(np.max(np.abs(per_neuron)))
            if worst > 1000.0:
                raise ValidationError("Layer", layer.name, "bias",
                                      "exceeds the IR's range for i_bias_mV (|i_bias| <= 1000 "
                                      "mV) after training; train with a smaller learning rate "
                                      "or without bias", worst)
        net.population(layer.name, K * size, spec.ir_model(layer.spiking, i_bias_mV=i_bias))
        for source, pre, post, w in layer.synapses():
            src_name, n_src = (prev, n_prev) if source == "in" else (layer.name, size)
            keep = w != 0.0
            pre, post, w = pre[keep], post[keep], w[keep] * S
            offsets_pre = np.repeat(np.arange(K) * n_src, pre.size)
            offsets_post = np.repeat(np.arange(K) * size, post.size)
            connector = FromArrays(np.tile(pre, K) + offsets_pre, np.tile(post, K) + offsets_post,
                                   weights=np.tile(w, K))
            proj = f"{src_name}->{layer.name}"
            net.connect(src_name, layer.name, connector, target="exc", name=proj)
        prev, n_prev = layer.name, size
    readout = model.layers[-1].name
    net.record_state(readout, "v", name=f"{readout}.v")
    if record == "all":
        net.record_spikes("input", *[layer.name for layer in model.layers[:-1]])
    return net


def predictions_from_results(model, results, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class per replica, mean readout membrane (K, classes) in mV) from a run of
    `to_network` over ``model.steps`` steps."""
    readout = model.layers[-1].name
    trace = results.traces.get(f"{readout}.v")
    if trace is None:
        raise EvoSpikeError(f"the results hold no trace '{readout}.v' (recorded: "
                            f"{sorted(results.traces)})")
    values = np.asarray(trace.values[0])  # (samples, neurons)
    if values.shape[0] != model.steps:
        raise EvoSpikeError(f"the results hold {values.shape[0]} samples of '{readout}.v'; "
                            f"the model runs {model.steps} steps")
    mean = values.mean(axis=0).reshape(copies, -1)
    return mean.argmax(axis=1), mean


def run_exported(model, inputs, backend: str = "brian2", chunk: int = 100,
                 progress: bool = False, **options) -> tuple[np.ndarray, np.ndarray]:
    """Classify ``inputs`` by running the exported network on ``backend``, ``chunk`` samples
    per run (one replica per sample). Returns (predictions (N,), mean membrane (N, classes))."""
    from evospike.backends import get_backend

    data = _as_numpy(inputs)
    n = data.shape[0]
    preds, means = [], []
    starts = range(0, n, chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"exported network on {backend}", unit="chunk")
    for start in starts:
        part = data[start:start + chunk]
        net = to_network(model, part)
        runner = get_backend(backend).compile(net, progress=False, **options)
        results = runner.run(model.steps * model.dt_ms)
        p, m = predictions_from_results(model, results, part.shape[0])
        preds.append(p)
        means.append(m)
    return np.concatenate(preds), np.concatenate(means)


def backend_agreement(model, x, labels=None, backend: str = "brian2", chunk: int = 100,
                      progress: bool = False, **options) -> dict:
    """Run the exported network on ``backend`` over the samples ``x`` and compare its
    predictions with the training model's own (``model`` in its current precision).

    Returns a record: samples, agreement (fraction of equal predictions), the indices that
    disagree, both accuracies (when ``labels`` are given), the largest difference of the mean
    readout membrane (mV) and the backend's wall time."""
    import time

    model.eval()
    with torch.no_grad():
        batch = torch.as_tensor(_as_numpy(x), dtype=model._dtype())
        logits = torch.cat([model(batch[s:s + 256]) for s in range(0, batch.shape[0], 256)])
    ours = logits.argmax(1).cpu().numpy()
    ours_mV = logits.double().cpu().numpy() * model.neuron.scale_mV + model.neuron.v_rest_mV
    t0 = time.perf_counter()
    theirs, theirs_mV = run_exported(model, x, backend=backend, chunk=chunk, progress=progress,
                                     **options)
    wall = time.perf_counter() - t0
    record = {
        "backend": backend, "options": {k: str(v) for k, v in options.items()},
        "samples": int(ours.size), "agreement": float(np.mean(ours == theirs)),
        "disagreeing_samples": np.nonzero(ours != theirs)[0].tolist(),
        "max_mean_membrane_difference_mV": float(np.max(np.abs(ours_mV - theirs_mV))),
        "backend_wall_s": wall,
    }
    if labels is not None:
        y = _as_numpy(labels).astype(np.int64)
        record["training_model_accuracy"] = float(np.mean(ours == y))
        record["backend_accuracy"] = float(np.mean(theirs == y))
    return record
