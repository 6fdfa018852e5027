"""Surrogate-gradient training: the trained layers step exactly as the backends simulate the
exported network, gradients match autograd, checkpoints resume exactly, configs are checked."""

import json

import numpy as np
import pytest
import torch

from evospike.cli import main
from evospike.errors import EvoSpikeError, ValidationError
from evospike.training import SpikingNetwork, TrainConfig, Trainer
from evospike.training.export import backend_agreement, predictions_from_results
from evospike.training.neuron import NeuronSpec, lif_sequence, lif_step, step_constants
from evospike.training.trainer import NoveltyModulator
from tests.conftest import ROOT, run_on


def _spikes_match(layer_spikes: torch.Tensor, results, name: str) -> None:
    T = layer_spikes.shape[0]
    flat = layer_spikes.detach().reshape(T, -1).numpy()
    steps, neurons = np.nonzero(flat)
    r_steps, r_neurons = results.spike_steps(name)
    ours = sorted(zip(steps.tolist(), neurons.tolist(), strict=True))
    theirs = sorted(zip(r_steps.tolist(), r_neurons.tolist(), strict=True))
    assert ours == theirs, f"{name}: {len(ours)} spikes in training, {len(theirs)} in backend"


def _random_model(kind: str, layers, shape, steps=30, seed=0, **neuron):
    torch.manual_seed(seed)
    spec = {"dt_ms": 1.0, "steps": steps, "weight_gain": 8.0,
            "input": {"kind": kind, "shape": shape, **({"gain_mV": 40.0}
                                                        if kind == "current" else {})},
            "neuron": neuron, "layers": layers}
    model = SpikingNetwork(spec).double()
    with torch.no_grad():
        for layer in model.layers:
            if layer.bias is not None:
                layer.bias.uniform_(-0.02, 0.06)
    return model


def _check_against_backend(model, x, backend="torch-eager"):
    out = model.run(x)
    net = model.to_network(x, record="all")
    results = run_on(backend, net, model.steps * model.dt_ms, precision="float64")
    total = 0
    for name, (spikes, _) in out.items():
        if name != model.layers[-1].name:
            _spikes_match(spikes, results, name)
            total += int(spikes.sum())
    readout = out[model.layers[-1].name][1].detach().reshape(model.steps, -1).numpy()
    readout_mV = readout * model.neuron.scale_mV + model.neuron.v_rest_mV
    np.testing.assert_allclose(results.traces["readout.v"].values[0], readout_mV, atol=1e-8)
    preds, _ = predictions_from_results(model, results, x.shape[0])
    assert np.array_equal(preds, model.predict(x).numpy())
    return total


@pytest.mark.parametrize("reset", ["value", "subtract"])
def test_forward_equals_torch_backend_linear_recurrent(engine, reset):
    model = _random_model("current", [{"type": "linear", "size": 20},
                                      {"type": "recurrent", "size": 15},
                                      {"type": "readout", "size": 4}], [12], reset=reset)
    x = torch.rand(3, 12, dtype=torch.float64)
    total = _check_against_backend(model, x, f"torch-{engine}")
    assert total > 50  # the comparison means something only if the layers fire


def test_forward_equals_torch_backend_conv_with_spike_input(engine):
    model = _random_model("spikes", [{"type": "conv", "channels": 3, "kernel": 3, "stride": 2,
                                      "padding": 1},
                                     {"type": "linear", "size": 10},
                                     {"type": "readout", "size": 3}], [2, 7, 7], steps=20)
    x = (torch.rand(2, 20, 2, 7, 7) < 0.3).double()
    assert _check_against_backend(model, x, f"torch-{engine}") > 50


def test_exported_network_on_brian2_same_spikes_and_predictions():
    model = _random_model("current", [{"type": "linear", "size": 16},
                                      {"type": "recurrent", "size": 8},
                                      {"type": "readout", "size": 3}], [10], steps=25)
    x = torch.rand(4, 10, dtype=torch.float64)
    assert _check_against_backend(model, x, "brian2") > 30


def test_exported_conv_with_spike_input_on_brian2():
    model = _random_model("spikes", [{"type": "conv", "channels": 2, "kernel": 3, "stride": 2},
                                     {"type": "readout", "size": 2}], [1, 5, 5], steps=12)
    x = (torch.rand(2, 12, 1, 5, 5) < 0.4).double()
    assert _check_against_backend(model, x, "brian2") > 5


def test_fused_bptt_equals_autograd_through_the_step():
    torch.manual_seed(1)
    for reset in ("value", "subtract"):
        for detach in (True, False):
            c = step_constants(NeuronSpec(reset=reset, detach_reset=detach), 1.0)
            a = (torch.rand(25, 4, 7, dtype=torch.float64) * 0.6).requires_grad_()
            e = (torch.rand(25, 4, 7, dtype=torch.float64) * 0.1).requires_grad_()
            b = (torch.rand(7, dtype=torch.float64) * 0.05).requires_grad_()
            w_s, w_u = torch.randn(25, 4, 7, dtype=torch.float64), torch.randn(25, 4, 7,
                                                                               dtype=torch.float64)
            s, u = lif_sequence(a, c, e=e, bias=b)
            assert s.sum() > 20
            ((u * w_u).sum() + (s * w_s).sum()).backward()
            fused = [t.grad.clone() for t in (a, e, b)]
            for t in (a, e, b):
                t.grad = None
            uu = torch.zeros(4, 7, dtype=torch.float64)
            ii = torch.zeros_like(uu)
            ss, us = [], []
            for n in range(25):
                sn, uu, ii = lif_step(uu, ii, a[n], e[n], b, c)
                ss.append(sn)
                us.append(uu)
            assert torch.equal(torch.stack(ss).detach(), s)
            ((torch.stack(us) * w_u).sum() + (torch.stack(ss) * w_s).sum()).backward()
            for t, g in zip((a, e, b), fused, strict=True):
                torch.testing.assert_close(t.grad, g, rtol=1e-10, atol=1e-12)


def test_step_constants_are_the_backends_propagator():
    from evospike.dynamics import one_step

    spec = NeuronSpec(tau_m_ms=12.0, tau_syn_ms=3.0)
    c = step_constants(spec, 0.5)
    P = one_step(spec.ir_model(), "x", 0.5).P[..., 0]
    assert (c.alpha, c.beta, c.gamma) == (P[1, 1], P[0, 0], P[0, 1])
    assert c.theta == 1.0 and c.u_reset == 0.0
    assert step_constants(spec, 0.5, spiking=False).theta > 60


# ---------------------------------------------------------------------------- configs

def _digits_config(tmp_path, **train):
    return {
        "name": "tiny", "seed": 3, "threads": 1,
        "data": {"dataset": "digits", "options": {"test_fraction": 0.25},
                 "validation_fraction": 0.1},
        "model": {"dt_ms": 1.0, "steps": 16,
                  "input": {"kind": "current", "shape": [64], "gain_mV": 100.0},
                  "layers": [{"type": "linear", "size": 48}, {"type": "readout", "size": 10}]},
        "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "logit_scale": 5.0, **train},
        "output": {"dir": str(tmp_path / "run")},
    }


@pytest.fixture(scope="module")
def digits_small():
    from evospike.training.data import Splits, TensorData, load_splits

    full = load_splits("digits", {"test_fraction": 0.25}, 0.1, 3)
    take = lambda d, n: TensorData(d.x[:n], d.y[:n])  # noqa: E731
    return Splits(take(full.train, 400), take(full.val, 100), take(full.test, 200),
                  full.n_classes, full.classes, full.description + " (subset)", False,
                  full.class_weights, full.sample_shape, {})


@pytest.mark.parametrize("path, value, key", [
    (("train", "lr"), -1.0, "train.lr"),
    (("train", "epochs"), 0, "train.epochs"),
    (("train", "optimiser"), "sgd", "train.optimiser"),
    (("data", "dataset"), "mnist", "data.dataset"),
    (("model", "input"), {"kind": "pixels", "shape": [64]}, "input.kind"),
    (("model", "layers"), [{"type": "linear", "size": 0}, {"type": "readout", "size": 10}],
     "layers[0].size"),
    (("model", "layers"), [{"type": "linear", "size": 8}], "layers[0].type"),
    (("model", "neuron"), {"tau_m_ms": 5.0, "tau_syn_ms": 5.0}, "tau_syn_ms"),
    (("model", "neuron"), {"surrogate": "magic"}, "surrogate"),
    (("model", "neuron"), {"tau_refrac_ms": 2.0}, "tau_refrac_ms"),
    (("model", "steps"), 2.5, "steps"),
    (("train", "early_stopping"), {"patience": 3, "metric": "f1"}, "early_stopping.metric"),
])
def test_bad_config_names_key_and_value(tmp_path, digits_small, path, value, key):
    raw = _digits_config(tmp_path)
    raw[path[0]][path[1]] = value
    with pytest.raises(ValidationError) as info:
        Trainer(TrainConfig.from_dict(raw), progress=False, splits=digits_small)
    message = str(info.value)
    assert key in message, message
    shown = value if not isinstance(value, (dict, list)) else None
    if shown is not None:
        assert repr(shown) in message or str(shown) in message, message


def test_quick_training_learns_above_chance(tmp_path, digits_small):
    summary = Trainer(TrainConfig.from_dict(_digits_config(tmp_path)), progress=False,
                      splits=digits_small).fit()
    assert summary["test_accuracy"] > 0.5  # chance is 0.1
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics] == [1, 2, 3]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    for name in ("checkpoint.pt", "learning_curve.png", "summary.json", "model.h5"):
        assert (out / name).exists(), name
    from evospike.ir.network import Network

    net = Network.load(out / "model.h5")
    assert set(net.populations) == {"input", "linear1", "readout"}
    assert net.projections["input->linear1"].n_synapses == 64 * 48


def test_resume_gives_the_uninterrupted_result(tmp_path, digits_small):
    a = Trainer(TrainConfig.from_dict(_digits_config(tmp_path / "a")), progress=False,
                splits=digits_small)
    a.fit()
    b = Trainer(TrainConfig.from_dict(_digits_config(tmp_path / "b")), progress=False,
                splits=digits_small)
    b.fit(max_epochs=1)  # as if interrupted after the first epoch
    assert b.epoch == 1
    c = Trainer(TrainConfig.from_dict(_digits_config(tmp_path / "b")), progress=False,
                splits=digits_small)
    c.fit(resume=True)
    assert c.epoch == 3
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, c.model.state_dict()[key]), key
    assert a.history[-1]["test_accuracy"] == c.history[-1]["test_accuracy"]
    with pytest.raises(EvoSpikeError, match="--resume"):
        Trainer(TrainConfig.from_dict(_digits_config(tmp_path / "b")), progress=False,
                splits=digits_small).fit()


def test_resume_refuses_another_config(tmp_path, digits_small):
    Trainer(TrainConfig.from_dict(_digits_config(tmp_path)), progress=False,
            splits=digits_small).fit(max_epochs=1)
    raw = _digits_config(tmp_path)
    raw["train"]["lr"] = 0.02
    with pytest.raises(EvoSpikeError, match="differs in: train"):
        Trainer(TrainConfig.from_dict(raw), progress=False, splits=digits_small).fit(resume=True)


def test_early_stopping_stops(tmp_path, digits_small):
    raw = _digits_config(tmp_path, epochs=30, lr=1e-9,
                         early_stopping={"patience": 2, "metric": "val_accuracy"})
    summary = Trainer(TrainConfig.from_dict(raw), progress=False, splits=digits_small).fit()
    assert summary["epochs_run"] < 30 and summary["finished"]


def _expected_novelty_factors(losses, gain: float, tau_batches: float,
                              max_factor: float) -> list[float]:
    """The factors of the trainer's docstring, written out independently: running mean and
    variance are exponential averages over ``tau_batches`` batches (the first batch sets the
    mean), ``z = max(0, (loss - mean) / spread)`` against the statistics *before* the batch,
    factor ``min(max_factor, 1 + gain z)``. (The trainer adds 1e-8 to the spread against a
    zero division, hence the 1e-6 relative tolerance where factors are compared.)"""
    r = 1.0 / tau_batches
    mean, var, out = None, 0.0, []
    for loss in losses:
        if mean is None:
            mean = loss
            out.append(1.0)
            continue
        z = max(0.0, (loss - mean) / np.sqrt(var)) if var > 0 else 0.0
        out.append(min(max_factor, 1.0 + gain * z))
        var = (1.0 - r) * (var + r * (loss - mean) ** 2)
        mean = (1.0 - r) * mean + r * loss
    return out


def test_novelty_raises_the_learning_rate():
    mod = NoveltyModulator(gain=1.0, tau_batches=4, max_factor=3.0)
    # by hand (r = 1/4): mean 1.0 after the first loss; 1.2 -> var 0.0075, mean 1.05;
    # 1.1 -> z = 0.05 / sqrt(0.0075), var 0.006094, mean 1.0625;
    # 0.9 -> z = 0 (easier than usual), var 0.009521, mean 1.021875;
    # 1.5 -> z = 0.478125 / sqrt(0.009521) = 4.90 -> capped at 3
    losses = [1.0, 1.2, 1.1, 0.9, 1.5]
    expected = [1.0, 1.0, 1.0 + 0.05 / np.sqrt(0.0075), 1.0, 3.0]
    got = [mod.factor(x) for x in losses]
    assert got == pytest.approx(expected, rel=1e-6, abs=0.0)
    assert got == pytest.approx(_expected_novelty_factors(losses, 1.0, 4.0, 3.0), rel=1e-6)
    assert mod.state()["mean"] == pytest.approx(0.75 * 1.021875 + 0.25 * 1.5, rel=1e-12)
    assert mod.factor(5.0) == 3.0  # a surprising loss: the largest step allowed
    assert mod.factor(0.5) == 1.0  # an easy batch: the base rate


def test_training_with_neuromodulation_scales_each_step(tmp_path, digits_small):
    """Each optimiser step runs at ``lr * factor``, the factor computed (independently, in
    this test) from the batch losses; the epoch record reports their mean."""
    gain, tau = 0.5, 5.0
    raw = _digits_config(tmp_path, epochs=1,
                         neuromodulation={"kind": "novelty", "gain": gain, "tau_batches": tau})
    trainer = Trainer(TrainConfig.from_dict(raw), progress=False, splits=digits_small)
    losses, lrs = [], []
    real_factor = trainer.modulator.factor

    def spy(loss: float) -> float:
        losses.append(loss)
        return real_factor(loss)

    trainer.modulator.factor = spy
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    trainer.fit()
    record = trainer.history[0]
    assert len(losses) == len(lrs) == 25  # 400 samples in batches of 16
    # the spied values are the batch losses the epoch's train_loss averages
    assert np.mean(losses) == pytest.approx(record["train_loss"], rel=1e-12)
    expected = _expected_novelty_factors(losses, gain, tau, 3.0)
    assert lrs == pytest.approx([0.01 * f for f in expected], rel=1e-6)
    assert record["lr_factor_mean"] == pytest.approx(np.mean(expected), rel=1e-6)
    # on this seed some batches are novel enough to matter and some are not
    assert max(expected) > 1.2 and expected.count(1.0) >= 5, expected


def test_cli_train_and_bad_config(tmp_path, capsys):
    import yaml

    raw = _digits_config(tmp_path, epochs=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path), "--no-progress", "--check-backend", "torch",
                 "--check-samples", "20"]) == 0
    record = json.loads((tmp_path / "run" / "agreement.json").read_text())
    assert record["samples"] == 20 and record["agreement"] == 1.0
    raw["train"]["batch_size"] = "big"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path), "--no-progress", "--out", str(tmp_path / "x")]) == 2
    assert "train.batch_size" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_reaches_97_percent_and_brian2_agrees(tmp_path):
    """The example config: >= 97 % on the digits test split; Brian2 runs the trained network
    over the whole test split and predicts the same classes."""
    cfg = TrainConfig.load(ROOT / "examples" / "digits.yaml")
    cfg.out_dir = str(tmp_path / "digits")
    trainer = Trainer(cfg, progress=False)
    summary = trainer.fit()
    assert summary["test_accuracy"] >= 0.97, summary
    test = trainer.splits.test
    record = backend_agreement(trainer.model, test.x, test.y, backend="brian2", chunk=150,
                               target="numpy")
    assert record["agreement"] >= 0.99, record
    assert abs(record["backend_accuracy"] - summary["test_accuracy"]) <= 0.01


@pytest.fixture(params=["kernel", "torch-loops"])
def loops(request, monkeypatch):
    """The time loops run in the C kernel (when a compiler is there) and as torch operations."""
    from evospike.training import native

    if request.param == "torch-loops":
        monkeypatch.setenv("EVOSPIKE_TRAIN_KERNEL", "0")
    elif not native.available(torch.zeros(1)):
        pytest.skip("no C compiler: the training kernel is not built")
    return request.param


@pytest.mark.parametrize("surrogate", ["atan", "sigmoid", "super_spike", "piecewise_quadratic",
                                       "piecewise_exp"])
def test_loops_equal_autograd_for_every_surrogate(loops, surrogate):
    torch.manual_seed(2)
    for reset in ("value", "subtract"):
        for detach in (True, False):
            spec = NeuronSpec(reset=reset, detach_reset=detach, surrogate=surrogate,
                              surrogate_alpha=1.5)
            c = step_constants(spec, 1.0)
            a = (torch.rand(20, 3, 5, dtype=torch.float64) * 0.6).requires_grad_()
            b = (torch.rand(5, dtype=torch.float64) * 0.05).requires_grad_()
            w_s = torch.randn(20, 3, 5, dtype=torch.float64)
            w_u = torch.randn(20, 3, 5, dtype=torch.float64)
            s, u = lif_sequence(a, c, bias=b)
            ((u * w_u).sum() + (s * w_s).sum()).backward()
            fused = (a.grad.clone(), b.grad.clone())
            a.grad = b.grad = None
            uu = torch.zeros(3, 5, dtype=torch.float64)
            ii = torch.zeros_like(uu)
            loss = 0
            for n in range(20):
                sn, uu, ii = lif_step(uu, ii, a[n], None, b, c)
                loss = loss + (uu * w_u[n]).sum() + (sn * w_s[n]).sum()
            loss.backward()
            torch.testing.assert_close(a.grad, fused[0], rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(b.grad, fused[1], rtol=1e-9, atol=1e-12)


def test_float32_training_model_matches_backend_spikes(loops):
    torch.manual_seed(4)
    model = _random_model("current", [{"type": "linear", "size": 12},
                                      {"type": "readout", "size": 3}], [8], steps=20)
    x = torch.rand(2, 8, dtype=torch.float64)
    assert _check_against_backend(model, x, "torch-native") > 20


def test_event_driven_product_equals_dense(loops):
    from evospike.training.layers import spike_linear

    torch.manual_seed(5)
    s = (torch.rand(6, 4, 30) < 0.05).float()
    w1 = torch.randn(9, 30, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    s1 = s.clone().requires_grad_()
    s2 = s.clone().requires_grad_()
    g = torch.randn(6, 4, 9)
    out = spike_linear(s1, w1)
    (out * g).sum().backward()
    ref = torch.nn.functional.linear(s2, w2)
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w1.grad, w2.grad)
    torch.testing.assert_close(s1.grad, s2.grad)


def test_kernel_and_torch_loops_give_the_same_training_step(monkeypatch):
    from evospike.training import native

    if not native.available(torch.zeros(1)):
        pytest.skip("no C compiler: the training kernel is not built")
    model = _random_model("spikes", [{"type": "conv", "channels": 3, "kernel": 3, "padding": 1},
                                     {"type": "linear", "size": 10},
                                     {"type": "readout", "size": 3}], [2, 6, 6], steps=16)
    x = (torch.rand(3, 16, 2, 6, 6) < 0.1).double()
    grads = []
    for flag in ("1", "0"):
        monkeypatch.setenv("EVOSPIKE_TRAIN_KERNEL", flag)
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2])).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert any(g.abs().sum() > 0 for g in grads[0])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
