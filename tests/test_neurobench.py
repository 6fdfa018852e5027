"""EvoSpike's SynOps against NeuroBench's (``neurobench`` 2.3.0, ``SynapticOperations``).

NeuroBench counts on an ``nn.Module``: a forward pre-hook on every ``nn.Linear`` / ``nn.Conv``
binarises the layer's input and weights and sums ``binary(W) @ binary(x)`` for each call:
one AC per (non-zero spike, non-zero weight) pair, biases excluded. EvoSpike counts on the IR
network's run (`evospike.energy.count_network_ops`): every emitted spike times the number of
non-zero synapses leaving its neuron. So the digits model (`evospike.models.digits`) is given
to NeuroBench as a step-by-step torch twin whose two ``nn.Linear`` layers hold the trained
weight matrices and are called once per step with that step's spikes (what the IR projection
sends in that step); the twin's spikes and logits are checked against the model's first, so
both counters see the same network doing the same thing.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

neurobench = pytest.importorskip("neurobench", reason="neurobench (2.3.0) is not installed")

from evospike.backends import get_backend  # noqa: E402
from evospike.datasets import Digits  # noqa: E402
from evospike.energy import count_network_ops  # noqa: E402
from evospike.models.digits import digits_snn  # noqa: E402
from evospike.training.neuron import lif_step  # noqa: E402


class StepwiseTwin(nn.Module):
    """The `SpikingNetwork` ``model`` (current input, linear layers, readout) step by step, its
    projections as ``nn.Linear`` (no bias: the model's biases are per-neuron voltage drives,
    the IR's ``i_bias_mV``, not synapses). An event sent in step n reaches the synaptic current
    in step n + 1, as the IR's one-step delay (`lif_sequence(..., delayed=True)`)."""

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, "model", model)  # not a child: NeuroBench must see only fc
        self.fc = nn.ModuleList()
        for layer in model.layers:
            w = layer.weight.detach()
            fc = nn.Linear(w.shape[1], w.shape[0], bias=False).to(w.dtype)
            fc.weight.data.copy_(w)
            self.fc.append(fc)
        self.spikes: dict[str, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        drive = m.current_drive(x)  # (T, B, 64)
        B = x.shape[0]
        zeros = torch.zeros_like(drive[0])
        u0, i0 = zeros.clone(), zeros.clone()
        state = [(torch.zeros(B, layer.size, dtype=drive.dtype),
                  torch.zeros(B, layer.size, dtype=drive.dtype)) for layer in m.layers]
        pending = [torch.zeros(B, layer.size, dtype=drive.dtype) for layer in m.layers]
        self.spikes = {"input": []}
        self.spikes.update({layer.name: [] for layer in m.layers})
        membrane = []
        for n in range(m.steps):
            s, u0, i0 = lif_step(u0, i0, zeros, drive[n], None, m.spiking_consts)
            self.spikes["input"].append(s)
            for k, layer in enumerate(m.layers):
                u, i = state[k]
                arriving = pending[k]          # sent in step n - 1
                pending[k] = self.fc[k](s)     # sent now: arrives in step n + 1
                s, u, i = lif_step(u, i, arriving, None, layer.full_bias(), layer.consts)
                state[k] = (u, i)
                self.spikes[layer.name].append(s)
            membrane.append(u)
        return torch.stack(membrane).mean(0)


def _model_and_data(n: int = 24):
    torch.manual_seed(0)
    model = digits_snn().double()
    with torch.no_grad():
        # a third of the weights exactly zero (as pruning leaves them): both counters must
        # skip them, and NeuroBench's dense count must still include them
        for layer in model.layers:
            gen = torch.Generator().manual_seed(1)
            layer.weight[torch.rand(layer.weight.shape, generator=gen) < 1 / 3] = 0.0
    test = Digits("test", test_fraction=0.25, seed=0)
    x = test.data[:n].double()
    y = torch.as_tensor(test.labels[:n])
    return model, x, y


def test_twin_is_the_model():
    model, x, _ = _model_and_data(8)
    twin = StepwiseTwin(model)
    with torch.no_grad():
        logits = twin(x)
        ref = model.run(x)
    for name, spikes in twin.spikes.items():
        assert torch.equal(torch.stack(spikes), ref[name][0]), name
    torch.testing.assert_close(logits, model(x), rtol=0, atol=1e-12)


def test_synops_equal_neurobench_effective_acs():
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    model, x, y = _model_and_data(24)
    twin = StepwiseTwin(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    bench = Benchmark(TorchModel(twin), loader, [], [], [[], [SynapticOperations]])
    nb = bench.run(quiet=True)["SynapticOperations"]

    net = model.to_network(x, name="digits")
    net.record_spikes(*[p for p in list(net.populations) + list(net.sources)
                        if p not in {mon.target for mon in net.spike_monitors}])
    results = get_backend("torch").compile(net, seeds=(0,)).run(model.steps * model.dt_ms)
    ours = count_network_ops(net, results, inferences_per_trial=len(x))

    spikes = {name: int(results.spikes_by_node[name].step.size) for name in ("input", "linear1")}
    assert spikes["input"] > 0 and spikes["linear1"] > 0  # both projections carry spikes
    assert ours.macs == 0 and nb["Effective_MACs"] == 0   # spikes only: every op is an AC
    # equal to the last operation (counts are whole numbers; NeuroBench sums them in float32,
    # exactly, far below 2**24 per batch)
    assert round(nb["Effective_ACs"] * len(x)) == round(ours.acs * len(x))
    assert nb["Effective_ACs"] == pytest.approx(ours.acs, rel=1e-12)
    # "Dense" differs by exactly the zero weights: NeuroBench multiplies every entry of each
    # weight matrix every step; the IR export drops zero weights, so they are no synapses
    T = model.steps
    zero = sum(int((layer.weight == 0).sum()) for layer in model.layers)
    assert zero > 0
    assert nb["Dense"] - ours.dense_ops == pytest.approx(T * zero, rel=1e-12)
