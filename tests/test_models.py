"""The reference models train end to end on synthetic data and on fixture files written in the
real formats (tonic's DVSGesture layout, wfdb MIT-BIH records, GLUE SST-2 TSV); the IR ones
export to networks that the backends run with the same predictions. Tiny sizes, few steps."""

import numpy as np
import pytest
import torch

from evospike.errors import ValidationError
from evospike.models import build_reference
from evospike.training import TrainConfig, Trainer
from evospike.training.export import backend_agreement
from tests.conftest import ROOT
from tests.data_fixtures import write_dvs_gesture, write_mitbih, write_sst2


def _train(tmp_path, dataset, options, model, epochs=2, **train):
    raw = {"name": dataset, "seed": 0, "threads": 1,
           "data": {"dataset": dataset, "options": options, "validation_fraction": 0.0},
           "model": model,
           "train": {"epochs": epochs, "batch_size": 16, "lr": 0.005, "logit_scale": 5.0,
                     **train},
           "output": {"dir": str(tmp_path / dataset)}}
    trainer = Trainer(TrainConfig.from_dict(raw), progress=False)
    return trainer, trainer.fit()


def test_dvs_conv_trains_on_synthetic_events_and_exports(tmp_path):
    trainer, summary = _train(
        tmp_path, "synthetic_dvs_gesture",
        {"n_samples": 48, "n_classes": 2, "size": 16, "n_time_bins": 16, "binary": True},
        {"reference": "dvs_conv", "channels": [4, 8], "hidden": 16}, epochs=4)
    assert summary["synthetic_data"] is True
    assert summary["test_accuracy"] >= 0.8  # two directions: chance is 0.5 (0.90 on this seed)
    assert (tmp_path / "synthetic_dvs_gesture" / "model.h5").exists()
    test = trainer.splits.test
    record = backend_agreement(trainer.model, test.x[:4], backend="torch", precision="float64")
    assert record["agreement"] == 1.0


def test_dvs_conv_trains_on_tonic_format_files(tmp_path):
    write_dvs_gesture(tmp_path / "dvs", "train", n_users=3, labels=(0, 1, 2))
    write_dvs_gesture(tmp_path / "dvs", "test", n_users=2, labels=(0, 1, 2))
    trainer, summary = _train(
        tmp_path, "dvs128_gesture",
        {"root": str(tmp_path / "dvs"), "size": 16, "n_time_bins": 12, "binary": True},
        {"reference": "dvs_conv", "channels": [4], "hidden": 8}, epochs=6, lr=0.02)
    assert summary["synthetic_data"] is False
    assert summary["dataset"].startswith("DVS128 Gesture") and "test 6" in summary["dataset"]
    # the gestures read from the files are learned: the loss falls by more than 40 % and the
    # held-out users' gestures are recognised well above chance (1/3; 5 of 6 on this seed)
    losses = [r["train_loss"] for r in trainer.history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert summary["test_accuracy"] >= 0.8, summary["test_accuracy"]


def test_dvs_conv_refuses_event_counts():
    model = build_reference("dvs_conv", 2, (8, 2, 8, 8), channels=[2], hidden=4)
    counts = torch.zeros(1, 8, 2, 8, 8)
    counts[0, 1, 0, 3, 3] = 2.0
    with pytest.raises(ValidationError, match="must be 0 or 1"):
        model.to_network(counts)


def test_ecg_snn_trains_on_synthetic_beats_and_exports(tmp_path):
    trainer, summary = _train(tmp_path, "synthetic_ecg", {"n_records": 2, "duration_s": 20},
                              {"reference": "ecg_snn", "hidden": 16}, epochs=3, lr=0.01,
                              class_weights=True)
    assert summary["synthetic_data"] is True
    test = trainer.splits.test
    y = test.y.numpy()
    majority = np.bincount(y).max() / y.size  # mostly N: "always N" scores 0.8 here
    # above the majority-class predictor, by recognising the ectopic V beats
    assert summary["test_accuracy"] > majority + 0.05, (summary["test_accuracy"], majority)
    pred = trainer.predict(test.x)
    v = trainer.splits.classes.index("V")
    assert (y == v).sum() >= 3 and (pred[y == v] == v).mean() >= 0.8
    assert (pred[y == 0] == 0).mean() >= 0.9
    record = backend_agreement(trainer.model, test.x[:3], backend="torch", precision="float64")
    assert record["agreement"] == 1.0


def test_ecg_snn_trains_on_wfdb_records(tmp_path):
    write_mitbih(tmp_path / "mitbih", ["100", "101"], duration_s=20)
    # the fixture holds two records, not de Chazal's DS1/DS2 lists: a random beat split
    raw = {"name": "mitbih", "seed": 0, "threads": 1,
           "data": {"dataset": "mitbih", "splits": ["train", "test"],
                    "options": {"root": str(tmp_path / "mitbih"), "records": ["100", "101"]},
                    "validation_fraction": 0.0},
           "model": {"reference": "ecg_snn", "hidden": 8},
           "train": {"epochs": 1, "batch_size": 16, "lr": 0.005, "class_weights": True},
           "output": {"dir": str(tmp_path / "out")}}
    trainer = Trainer(TrainConfig.from_dict(raw), progress=False)
    summary = trainer.fit()
    assert summary["synthetic_data"] is False
    assert len(trainer.splits.test) > 0 and (tmp_path / "out" / "model.h5").exists()


def test_ecg_encoder_refuses_too_many_crossings():
    model = build_reference("ecg_snn", 5, (1, 64), hidden=4, downsample=1, threshold=0.1,
                            max_crossings=2)
    beat = torch.zeros(1, 1, 64)
    beat[0, 0, 10] = 5.0  # a jump of 50 levels in one step
    with pytest.raises(ValidationError, match="max_crossings"):
        model(beat)


def test_ecg_encoder_is_lossless_thermometer():
    from evospike.datasets import delta_encode

    model = build_reference("ecg_snn", 5, (1, 32), hidden=4, downsample=1, threshold=0.25,
                            max_crossings=8)
    beat = torch.sin(torch.linspace(0, 6, 32)).reshape(1, 1, 32) * 1.5
    spikes = model.encode(beat)  # (T, 1, 16)
    counts = delta_encode(beat, 0.25, time_dim=-1).reshape(32, 1, 2)
    assert torch.equal(spikes.reshape(32, 1, 2, 8).sum(-1), counts)


def test_sst2_transformer_trains_on_synthetic_sentences(tmp_path):
    trainer, summary = _train(tmp_path, "synthetic_sentiment",
                              {"n_samples": 128, "max_len": 12},
                              {"reference": "sst2_transformer", "dim": 16, "steps": 6},
                              epochs=10, lr=0.01)
    assert summary["synthetic_data"] is True
    assert "not an IR network" in summary["ir_export"]
    assert not (tmp_path / "synthetic_sentiment" / "model.h5").exists()
    # it learns its training sentences (128 are too few to generalise: see the slow test)
    first, last = trainer.history[0], trainer.history[-1]
    assert last["train_loss"] < 0.8 * first["train_loss"], trainer.history
    assert last["train_accuracy"] >= 0.68 and first["train_accuracy"] < 0.6, trainer.history
    attention = trainer.model.attention.last_scores
    assert attention is not None and torch.allclose(attention.sum(-1),
                                                    torch.ones_like(attention.sum(-1)))


@pytest.mark.slow
def test_sst2_transformer_beats_the_majority_class_on_held_out_sentences(tmp_path):
    trainer, summary = _train(tmp_path, "synthetic_sentiment",
                              {"n_samples": 1000, "max_len": 12},
                              {"reference": "sst2_transformer", "dim": 32, "steps": 8},
                              epochs=4, lr=0.01, logit_scale=1.0, batch_size=32)
    y = trainer.splits.test.y.numpy()
    majority = np.bincount(y).max() / y.size  # 0.51 on this seed
    assert summary["test_accuracy"] > majority + 0.1, (summary["test_accuracy"], majority)


def test_sst2_transformer_trains_on_glue_tsv(tmp_path):
    write_sst2(tmp_path / "sst2", n_train=40, n_dev=10)
    trainer, summary = _train(tmp_path, "sst2", {"root": str(tmp_path / "sst2"), "max_len": 12},
                              {"reference": "sst2_transformer", "dim": 8, "steps": 6}, epochs=1)
    assert summary["synthetic_data"] is False
    assert len(trainer.splits.test) == 10


def test_chrono_attention_counts_coincidences():
    from evospike.models.sst2 import ChronoSpikeAttention
    from evospike.training.neuron import NeuronSpec, step_constants

    consts = step_constants(NeuronSpec(), 1.0)
    att = ChronoSpikeAttention(4, consts, 1.0, tau_coincidence_ms=1e-3)  # exact coincidence
    with torch.no_grad():
        for lin in (att.q, att.k, att.v):
            lin.weight.copy_(torch.eye(4) * 30.0)
    x = torch.zeros(12, 1, 3, 4)
    x[:, 0, 0, 0] = 1.0  # tokens 0 and 1 drive the same feature: their Q and K spikes coincide
    x[:, 0, 1, 0] = 1.0
    x[:, 0, 2, 3] = 1.0  # token 2 drives another feature
    att(x, torch.ones(1, 3, dtype=torch.bool))
    w = att.last_scores[0]
    assert w[0, 1] > w[0, 2] and w[2, 2] > w[2, 0]


def test_unknown_reference_model_is_named():
    with pytest.raises(ValidationError, match="reference"):
        build_reference("resnet", 2, (3,))
    with pytest.raises(ValidationError, match="options of 'dvs_conv'"):
        build_reference("dvs_conv", 2, (8, 2, 8, 8), depth=3)


def test_digits_reference_matches_the_example_config():
    import yaml

    from evospike.models.digits import digits_spec

    raw = yaml.safe_load(open(ROOT / "examples" / "digits.yaml"))
    assert raw["model"] == digits_spec()
    assert np.prod(raw["model"]["input"]["shape"]) == 64
