"""Energy of the SST-2 spiking transformer, counted on the torch model: the hook counts equal
brute-force counts of the same spikes, padding is not counted, and ``evospike energy`` prints
SynOps, sparsity and energy for an SST-2 checkpoint beside BERT-base."""

import json
import math

import pytest
import torch

from evospike.cli import main
from evospike.energy import bert_macs, count_text_transformer_ops, count_torch_ops
from evospike.errors import EvoSpikeError
from evospike.models.sst2 import SpikingTextClassifier
from evospike.training.layers import delay_one_step
from evospike.training.neuron import lif_sequence


def _model(seed=0, dim=6, steps=5):
    torch.manual_seed(seed)
    model = SpikingTextClassifier(20, 2, dim=dim, steps=steps)
    with torch.no_grad():  # strong enough drive that every layer spikes
        for lin in (model.attention.q, model.attention.k, model.attention.v, model.out):
            lin.weight.mul_(4.0)
    return model


def test_hook_counts_equal_brute_force_counts():
    model = _model()
    ids = torch.tensor([[3, 7, 11, 5]])
    seen = {}
    model.attention.register_forward_hook(lambda m, a, o: seen.update(x=a[0].detach()))
    counts = count_text_transformer_ops(model, ids, seed=1)
    x = seen["x"]  # the TAS currents of the counted pass, (T, 1, L, D)
    T, _, L, D = x.shape
    att = model.attention
    q, k, v = (lif_sequence(delay_one_step(lin(x)), att.consts, membrane=False)[0]
               for lin in (att.q, att.k, att.v))
    trace, traces = torch.zeros_like(k[0]), []
    for t in range(T):
        trace = trace * att.decay + k[t]
        traces.append(trace)
    kt = torch.stack(traces)
    assert q.sum() > 0 and k.sum() > 0 and v.sum() > 0
    coincidences = sum(1 for t in range(T) for i in range(L) for j in range(L) for d in range(D)
                       if q[t, 0, i, d] != 0 and kt[t, 0, j, d] != 0)
    w = torch.softmax(torch.einsum("tbid,tbjd->bij", q, kt) / (T * math.sqrt(D)), -1)
    av = sum(1 for t in range(T) for j in range(L) for d in range(D) for i in range(L)
             if v[t, 0, j, d] != 0 and w[0, i, j] != 0)
    layers = {layer.name: layer for layer in counts.layers}
    assert layers["attention.coincidence"].effective == coincidences
    assert layers["attention.AV"].effective == av
    assert layers["attention.coincidence"].dense == T * L * L * D
    # Q/K/V take graded currents: MACs = non-zero current entries x non-zero fan-out
    nz = (x != 0).sum().item()
    for name in ("attention.q", "attention.k", "attention.v"):
        assert not layers[name].binary and layers[name].effective == nz * D
    attended = torch.einsum("bij,tbjd->tbid", w, v)
    h = lif_sequence(delay_one_step(model.out(attended) + x), model.consts, membrane=False)[0]
    spikes = sum(int(s.sum()) for s in (q, k, v, h))
    assert counts.acs == coincidences + av
    pooled = h.mean(dim=(0, 2))  # every position is a token: the masked mean is the mean
    assert counts.macs == 3 * nz * D + (attended != 0).sum().item() * D + \
        2 * (pooled != 0).sum().item()
    # four LIF layers plus K's trace, every token, feature and step
    assert counts.neuron_updates_active == spikes + int(k.sum())
    assert counts.neuron_updates_active + counts.neuron_updates_inactive == 5 * T * L * D
    assert counts.activation_sparsity == pytest.approx(1 - spikes / (4 * T * L * D))
    assert counts.extra["tokens"] == L


def test_padding_is_not_counted_and_replay_is_checked():
    model = _model(1)
    short = torch.tensor([[3, 7, 11, 0, 0], [4, 4, 0, 0, 0]])
    longer = torch.cat([short, torch.zeros(2, 4, dtype=torch.int64)], 1)
    a = count_text_transformer_ops(model, short, seed=2)
    b = count_text_transformer_ops(model, longer, seed=2)
    assert a.to_dict() == {**b.to_dict(), "notes": a.notes}  # same but for the padding note
    assert a.n_inferences == 2
    with pytest.raises(EvoSpikeError, match=r"ids\[0\]"):
        count_text_transformer_ops(model, torch.tensor([[3, 0, 5]]))
    # a counter that no longer matches the model is refused rather than counting wrongly
    model.attention.decay = 0.5
    original = model.attention.forward

    def changed(x, mask):
        model.attention.decay = 0.9
        out = original(x, mask)
        model.attention.decay = 0.5
        return out

    model.attention.forward = changed
    with pytest.raises(EvoSpikeError, match="replay"):
        count_torch_ops(model, short[:1, :3])


@pytest.fixture(scope="module")
def sst2_checkpoint(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("sst2")
    config = {"name": "tiny_sst2", "seed": 0, "threads": 1,
              "data": {"dataset": "synthetic_sentiment",
                       "options": {"n_samples": 48, "max_len": 8}, "validation_fraction": 0.1},
              "model": {"reference": "sst2_transformer", "dim": 8, "steps": 6},
              "train": {"epochs": 1, "batch_size": 16, "lr": 0.01},
              "output": {"dir": str(tmp / "run")}}
    path = tmp / "sst2.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--no-progress"]) == 0
    return tmp / "run" / "checkpoint.pt"


def test_energy_command_on_sst2_checkpoint(sst2_checkpoint, tmp_path, capsys):
    out = tmp_path / "energy.json"
    assert main(["energy", str(sst2_checkpoint), "--hardware", "loihi2", "--test-samples", "6",
                 "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    for needle in ("SynOps", "MACs (graded inputs)", "activation sparsity", "BERT-base",
                   "priced on horowitz45-fp32", "SYNTHETIC DATA", "input (TAS token spikes)"):
        assert needle in text, needle
    report = json.loads(out.read_text())
    counts = report["counts"]
    assert counts["n_inferences"] == 6 and counts["acs"] > 0 and counts["macs"] > 0
    assert 0 < counts["activation_sparsity"] < 1
    assert report["energy"]["priced_by"]["mac"] == "horowitz45-fp32"
    assert report["energy"]["priced_by"]["ac"] == "loihi2"
    # the same counts from the Python API on the checkpoint's model and test sentences
    from evospike.cli.energy import _load_checkpoint

    cfg, splits, model, n = _load_checkpoint(sst2_checkpoint, 6)
    again = count_text_transformer_ops(model, splits.test.x[:n], seed=0)
    assert counts["acs"] == again.acs and counts["macs"] == again.macs
    # BERT-base on the same sentence length: mean tokens + [CLS] + [SEP]
    seq_len = round(float((splits.test.x[:n] != 0).sum(-1).double().mean())) + 2
    (base,) = report["baselines"]
    assert base["name"] == "bert-base-sst2"
    assert base["macs"] == bert_macs(seq_len)["total"]
    assert base["ratio_to_snn"] == pytest.approx(base["energy"]["total_pJ"]
                                                 / report["energy"]["total_pJ"])
    assert main(["energy", str(sst2_checkpoint), "--duration", "5ms"]) == 2
    assert "do not apply" in capsys.readouterr().err
