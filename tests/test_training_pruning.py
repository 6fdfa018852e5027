"""Terminal-attractor pruning inside `evospike train`: the config is checked by key and value,
pruned weights stay exactly 0, a resumed run is bit-identical, the export drops pruned
synapses, and every epoch records R(t), the pruned fraction and the threshold."""

import json
import math

import numpy as np
import pytest
import torch

from evospike.errors import ValidationError
from evospike.training import TrainConfig, Trainer
from tests.conftest import ROOT

PRUNING = {"r_target": 0.3, "warmup_steps": 5, "tau_steps": 8, "lambda_stability": 0.0}


def _config(tmp_path, epochs=3, **pruning):
    return {
        "name": "tiny_pruned", "seed": 3, "threads": 1,
        "data": {"dataset": "digits", "options": {"test_fraction": 0.25},
                 "validation_fraction": 0.1},
        "model": {"dt_ms": 1.0, "steps": 12,
                  "input": {"kind": "current", "shape": [64], "gain_mV": 100.0},
                  "layers": [{"type": "linear", "size": 32}, {"type": "readout", "size": 10}]},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 0.01, "logit_scale": 5.0,
                  "pruning": {**PRUNING, **pruning}},
        "output": {"dir": str(tmp_path / "run")},
    }


@pytest.fixture(scope="module")
def digits_tiny():
    from evospike.training.data import Splits, TensorData, load_splits

    full = load_splits("digits", {"test_fraction": 0.25}, 0.1, 3)
    take = lambda d, n: TensorData(d.x[:n], d.y[:n])  # noqa: E731
    return Splits(take(full.train, 240), take(full.val, 60), take(full.test, 60),
                  full.n_classes, full.classes, full.description + " (subset)", False,
                  full.class_weights, full.sample_shape, {})


def _trainer(raw, splits):
    return Trainer(TrainConfig.from_dict(raw), progress=False, splits=splits)


@pytest.mark.parametrize("key, value", [
    ("r_target", 1.5), ("warmup_steps", -1), ("tau_steps", 0), ("lambda_", 1.0),
    ("attractor", "yes"), ("regrowth", "no"), ("loss_window", 1), ("beta", 1.0),
    ("layers", "linear1"), ("layers", []),
])
def test_bad_pruning_config_names_key_and_value(tmp_path, key, value):
    raw = _config(tmp_path)
    raw["train"]["pruning"][key] = value
    with pytest.raises(ValidationError) as info:
        TrainConfig.from_dict(raw)
    message = str(info.value)
    assert f"train.pruning.{key}" in message, message
    assert repr(value) in message, message


def test_pruning_config_contradictions_and_unknown_layers(tmp_path, digits_tiny):
    raw = _config(tmp_path, attractor=False, attractor_lr=0.1)
    with pytest.raises(ValidationError, match=r"train.pruning.attractor_lr .*\(got 0.1\)"):
        TrainConfig.from_dict(raw)
    raw = _config(tmp_path)
    raw["train"]["pruning"] = 0.3
    with pytest.raises(ValidationError, match=r"train.pruning .*\(got 0.3\)"):
        TrainConfig.from_dict(raw)
    with pytest.raises(ValidationError, match=r"train.pruning.layers .*'hidden'"):
        _trainer(_config(tmp_path, layers=["hidden"]), digits_tiny)
    cfg = TrainConfig.from_dict(_config(tmp_path, attractor=False, layers=["linear1"]))
    assert cfg.pruning["params"]["attractor_lr"] == 0.0
    trainer = Trainer(cfg, progress=False, splits=digits_tiny)
    assert list(trainer.pruner.masks) == ["layers.0.weight"]  # the readout is left dense


def test_pruned_weights_stay_exactly_zero_and_metrics_follow_r(tmp_path, digits_tiny):
    trainer = _trainer(_config(tmp_path), digits_tiny)
    opt = trainer.pruner
    n_total = opt.n_total
    for epoch in range(2):
        record = trainer.train_epoch(epoch)
        for name, param in opt.pruned_parameters.items():
            zero = param.detach() == 0
            assert torch.equal(zero, ~opt.masks[name]), name  # exactly the masked ones
        # the pruned fraction is floor(R(t) N) / N (lambda_stability 0: alpha = 1)
        assert record["pruned_fraction"] == math.floor(record["prune_rate"] * n_total
                                                       + 1e-9) / n_total
        assert record["prune_step"] == opt.t == 15 * (epoch + 1)
    assert 0.25 < record["pruned_fraction"] <= 0.3
    assert record["prune_threshold"] is not None and record["prune_threshold"] >= 0


def test_pruned_run_resumes_bit_identically_and_exports_fewer_synapses(tmp_path,
                                                                       digits_tiny):
    a = _trainer(_config(tmp_path / "a"), digits_tiny)
    summary = a.fit()
    b = _trainer(_config(tmp_path / "b"), digits_tiny)
    b.fit(max_epochs=1)  # interrupted after one epoch
    c = _trainer(_config(tmp_path / "b"), digits_tiny)
    c.fit(resume=True)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, c.model.state_dict()[key]), key
    for key, mask in a.pruner.masks.items():
        assert torch.equal(mask, c.pruner.masks[key]), key
        assert torch.equal(a.pruner.shadow[key], c.pruner.shadow[key]), key
    strip = lambda h: [{k: v for k, v in r.items() if k != "epoch_wall_s"} for r in h]  # noqa
    assert strip(a.history) == strip(c.history)  # metrics, R(t), fractions, thresholds
    assert a.pruner.t == c.pruner.t == 45

    metrics = json.loads((tmp_path / "a" / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics] == [1, 2, 3]
    for r in metrics:
        assert {"prune_rate", "pruned_fraction", "prune_threshold", "n_regrown"} <= set(r)
    assert metrics[0]["prune_rate"] > 0 and metrics[-1]["pruned_fraction"] > 0.29

    # the kept weights are those of an epoch after the schedule settled (step 5 + 3 * 8 = 29)
    pruning = summary["pruning"]
    assert summary["best_epoch"] >= 2
    best = pruning["best_epoch_masks"]
    kept = sum(v["kept"] for v in best["per_parameter"].values())
    assert kept == best["n_total"] - best["n_pruned"]
    assert pruning["kept_weights_zero_fraction"] == best["pruned_fraction"] > 0.29

    from evospike.ir.network import Network

    net = Network.load(tmp_path / "a" / "run" / "model.h5")
    dense = pruning["synapses_without_pruning"]
    assert dense == 64 * 32 + 32 * 10
    assert net.n_synapses == summary["model_h5_synapses"] == kept < dense
    for layer in a.model.layers:  # each projection holds exactly the non-zero weights
        w = layer.weight.detach()
        proj = net.projections[f"{'input' if layer.name == 'linear1' else 'linear1'}"
                               f"->{layer.name}"]
        assert proj.n_synapses == int((w != 0).sum())
        np.testing.assert_allclose(np.sort(proj.weights),
                                   np.sort(w[w != 0].double().numpy() * a.model.neuron.scale_mV))
    assert (tmp_path / "a" / "run" / "learning_curve.png").exists()


def test_pruned_export_has_fewer_synops(tmp_path, digits_tiny):
    """The same trained weights exported with and without the pruned synapses: the pruned
    network's SynOps are those of its own (fewer) synapses."""
    from evospike.backends import get_backend
    from evospike.energy import count_network_ops

    trainer = _trainer(_config(tmp_path, epochs=2), digits_tiny)
    trainer.fit(export=False)
    model = trainer.model
    x = digits_tiny.test.x[:4]
    pruned = model.to_network(x, record="all")
    pruned.record_spikes("readout")
    res = get_backend("torch").compile(pruned, progress=False).run(model.steps * model.dt_ms)
    ops = count_network_ops(pruned, res, inferences_per_trial=4)
    assert pruned.n_synapses == 4 * sum(int((layer.weight != 0).sum())
                                        for layer in model.layers)
    assert ops.dense_ops == pruned.n_synapses * model.steps / 4
    assert ops.dense_ops < 12 * (64 * 32 + 32 * 10)


@pytest.mark.slow
def test_digits_pruned_to_30_percent_keeps_accuracy_and_brian2_agrees(tmp_path):
    """examples/digits_pruned.yaml against examples/digits.yaml (same seed, data, model):
    pruned to 30 % (29.7 % at the kept epoch: the schedule's 95 % point and after), the test
    accuracy stays within 2 points of the dense run's, and Brian2 runs the pruned network to
    the same predictions. 40-100 s on one shared core, by machine load."""
    from evospike.training.export import backend_agreement

    accuracies = {}
    for name in ("digits", "digits_pruned"):
        cfg = TrainConfig.load(ROOT / "examples" / f"{name}.yaml")
        cfg.out_dir = str(tmp_path / name)
        trainer = Trainer(cfg, progress=False)
        summary = trainer.fit()
        accuracies[name] = summary["test_accuracy"]
    pruning = summary["pruning"]
    assert pruning["kept_weights_zero_fraction"] >= 0.29
    assert summary["model_h5_synapses"] <= 0.71 * pruning["synapses_without_pruning"]
    assert accuracies["digits_pruned"] >= accuracies["digits"] - 0.02, accuracies
    test = trainer.splits.test
    record = backend_agreement(trainer.model, test.x[:150], test.y[:150], backend="brian2",
                               chunk=150, target="numpy")
    assert record["agreement"] >= 0.99, record
