"""The snnTorch-style training layers (`evospike.training.leaky`), losses
(`evospike.training.losses`) and network (`evospike.training.leaky_model`) against snnTorch
itself and against a plain-torch autograd reference, and the zero-latency export.

snnTorch's surrogate functions return float32 spikes (``(x > 0).float()``), so the gradient it
sends back through a spike is rounded to float32. To compare gradients at float64 precision the
snnTorch cells get `ATan64`: snnTorch's own ``ATan`` (its backward formula unchanged) whose
forward keeps the input's dtype; one test uses snnTorch's float32 ``atan`` as it ships.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

snntorch = pytest.importorskip("snntorch")
from snntorch import functional as sn_functional  # noqa: E402
from snntorch import surrogate as sn_surrogate  # noqa: E402

from evospike.errors import ValidationError  # noqa: E402
from evospike.training.leaky import (  # noqa: E402
    LeakyLayer,
    leaky_sequence,
    reference_step,
)
from evospike.training.leaky_model import LeakyNetwork, run_leaky_exported  # noqa: E402
from evospike.training.losses import (  # noqa: E402
    ce_count_loss,
    ce_rate_loss,
    mse_membrane_loss,
)

F64 = torch.float64
T, B, N = 30, 4, 5
MECHANISMS = {"subtract": "subtract_after_decay", "zero": "zero_after_decay", "none": "none"}


class ATan64(sn_surrogate.ATan):
    """snnTorch's ATan, spikes in the input's dtype (the backward is snnTorch's)."""

    @staticmethod
    def forward(ctx, input_, alpha):
        ctx.save_for_backward(input_)
        ctx.alpha = alpha
        return (input_ > 0).to(input_.dtype)


def atan64(x):
    return ATan64.apply(x, 2.0)


@pytest.fixture(params=["kernel", "torch"])
def engine(request, monkeypatch):
    """Every check runs on the C kernel and on the torch loops."""
    monkeypatch.setenv("EVOSPIKE_TRAIN_KERNEL", "1" if request.param == "kernel" else "0")
    return request.param


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, dtype=F64, generator=g) * 0.6 + 0.3


def _snntorch_run(kind, mechanism, x, beta, thr, alpha, spike_grad=atan64):
    if kind == "Leaky":
        cell = snntorch.Leaky(beta=0.5, reset_mechanism=mechanism, spike_grad=spike_grad)
    else:
        cell = snntorch.Synaptic(alpha=0.5, beta=0.5, reset_mechanism=mechanism,
                                 spike_grad=spike_grad)
        cell.alpha = alpha
    cell.beta, cell.threshold = beta, thr  # our tensors: their gradients are snnTorch's
    cell.graded_spikes_factor = torch.tensor(1.0, dtype=F64)
    mem = torch.zeros(B, N, dtype=F64)
    syn = torch.zeros(B, N, dtype=F64)
    spikes, mems = [], []
    for t in range(x.shape[0]):
        if kind == "Leaky":
            s, mem = cell(x[t], mem)
        else:
            s, syn, mem = cell(x[t], syn, mem)
        spikes.append(s)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def _params(kind):
    beta = torch.tensor([0.9, 0.8, 0.95, 0.7, 0.5], dtype=F64, requires_grad=True)
    thr = torch.tensor(1.0, dtype=F64, requires_grad=True)
    alpha = torch.tensor(0.6, dtype=F64, requires_grad=True) if kind == "Synaptic" else None
    return beta, thr, alpha


@pytest.mark.parametrize("kind", ["Leaky", "Synaptic"])
@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_layer_matches_snntorch_step_for_step(kind, mechanism, engine):
    """Forward spikes and membranes identical in float64; gradients of the input, a
    per-neuron learnable beta, a per-layer learnable threshold and alpha to 1e-9."""
    x = _inputs()
    beta, thr, alpha = _params(kind)
    params = [beta, thr] + ([alpha] if alpha is not None else [])
    xs = x.clone().requires_grad_(True)
    s_ref, m_ref = _snntorch_run(kind, mechanism, xs, beta, thr, alpha)
    w1 = torch.randn(T, B, N, dtype=F64, generator=torch.Generator().manual_seed(1))
    w2 = torch.randn(T, B, N, dtype=F64, generator=torch.Generator().manual_seed(2))
    g_ref = torch.autograd.grad((s_ref * w1).sum() + (m_ref * w2).sum(), [xs] + params)

    xo = x.clone().requires_grad_(True)
    s, m = leaky_sequence(xo, beta.clamp(0, 1), thr, MECHANISMS[mechanism],
                          None if alpha is None else alpha.clamp(0, 1))
    assert int(s.sum()) > 20  # the neurons fire, so the resets are exercised
    assert torch.equal(s, s_ref)
    assert torch.equal(m, m_ref)
    g = torch.autograd.grad((s * w1).sum() + (m * w2).sum(), [xo] + params)
    for a, b in zip(g, g_ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), float((a - b).abs().max())


def test_gradients_match_snntorch_with_its_float32_atan(engine):
    """With snnTorch's surrogate exactly as shipped (float32 spikes), the gradients agree to
    float32 rounding (1e-6 of the largest)."""
    x = _inputs(3)
    beta, thr, _ = _params("Leaky")
    xs = x.clone().requires_grad_(True)
    s_ref, m_ref = _snntorch_run("Leaky", "subtract", xs, beta, thr, None,
                                 spike_grad=sn_surrogate.atan())
    g_ref = torch.autograd.grad(s_ref.sum() * 0.5 + m_ref.pow(2).sum(), [xs, beta, thr])
    xo = x.clone().requires_grad_(True)
    s, m = leaky_sequence(xo, beta, thr, "subtract_after_decay")
    assert torch.equal(s, s_ref.to(F64))
    g = torch.autograd.grad(s.sum() * 0.5 + m.pow(2).sum(), [xo, beta, thr])
    for a, b in zip(g, g_ref, strict=True):
        assert float((a - b).abs().max()) <= 1e-6 * float(b.abs().max())


@pytest.mark.parametrize("kind", ["Leaky", "Synaptic"])
@pytest.mark.parametrize(("reset", "detach"), [
    ("subtract", True), ("subtract", False), ("value", True), ("value", False),
    ("subtract_after_decay", True), ("zero_after_decay", True),  # always detached (snnTorch)
])
@pytest.mark.parametrize("surrogate", ["atan", "sigmoid"])
def test_layer_matches_plain_torch_reference(kind, reset, detach, surrogate, engine):
    """Every reset mode (ours included), attached or detached reset, against autograd through
    `reference_step`: forward identical, gradients of x, beta, threshold, alpha to 1e-10."""
    x = _inputs(5)
    beta = torch.tensor(0.85, dtype=F64, requires_grad=True)
    thr = torch.tensor([1.0, 0.7, 1.3, 0.9, 1.1], dtype=F64, requires_grad=True)
    alpha = torch.tensor([0.5, 0.6, 0.7, 0.4, 0.3], dtype=F64, requires_grad=True) \
        if kind == "Synaptic" else None
    params = [beta, thr] + ([alpha] if alpha is not None else [])
    xr = x.clone().requires_grad_(True)
    state = (torch.zeros(B, N, dtype=F64),) * 3
    ss, ms = [], []
    for t in range(T):
        s_t, m_t, state = reference_step(xr[t], state, beta, thr, alpha, reset, surrogate, 4.0,
                                         detach)
        ss.append(s_t)
        ms.append(m_t)
    s_ref, m_ref = torch.stack(ss), torch.stack(ms)
    w = torch.randn(T, B, N, dtype=F64, generator=torch.Generator().manual_seed(7))
    g_ref = torch.autograd.grad((s_ref * w).sum() + (m_ref * m_ref).sum(), [xr] + params)
    xo = x.clone().requires_grad_(True)
    s, m = leaky_sequence(xo, beta, thr, reset, alpha, surrogate, 4.0, detach)
    assert torch.equal(s, s_ref)
    assert torch.allclose(m, m_ref, rtol=0, atol=1e-14)
    g = torch.autograd.grad((s * w).sum() + (m * m).sum(), [xo] + params)
    for a, b in zip(g, g_ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), float((a - b).abs().max())


def test_learnable_beta_is_clamped_as_in_snntorch():
    """A learnable beta pushed past 1 acts as 1 (snnTorch clamps it), and then gets no
    gradient; a learnable threshold stays at least MIN_THRESHOLD."""
    layer = LeakyLayer("h", (3,), 2, beta=0.9, learn_beta=True, learn_threshold=True,
                       per_neuron=True)
    layer.to(F64)
    with torch.no_grad():
        layer.beta.copy_(torch.tensor([1.5, 0.9], dtype=F64))
        layer.threshold.copy_(torch.tensor([-1.0, 1.0], dtype=F64))
    beta, theta, _ = layer.decays()
    assert beta.tolist() == [1.0, 0.9]
    assert theta.tolist()[0] > 0
    x = torch.ones(6, 2, 3, dtype=F64)
    s, m = layer(x)
    (s.sum() + m.sum()).backward()
    assert float(layer.beta.grad[0]) == 0.0 and float(layer.beta.grad[1]) != 0.0


@pytest.mark.parametrize("bad", [
    ({"beta": 1.5}, "beta"), ({"threshold": 0.0}, "threshold"), ({"reset": "zero"}, "reset"),
    ({"surrogate": "nope"}, "surrogate"),
])
def test_layer_refuses_bad_parameters_by_name(bad):
    kwargs, field = bad
    with pytest.raises(ValidationError, match=field):
        LeakyLayer("hidden", (4,), 3, **kwargs)


# ---------------------------------------------------------------------------------- losses
def _outputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    spk = (torch.rand(T, B, 3, generator=g) < 0.4).float().requires_grad_(True)
    mem = torch.randn(T, B, 3, generator=g).requires_grad_(True)
    y = torch.tensor([0, 2, 1, 2])
    return spk, mem, y


@pytest.mark.parametrize(("ours", "theirs", "on_mem"), [
    (ce_rate_loss, lambda: sn_functional.ce_rate_loss(), False),
    (ce_count_loss, lambda: sn_functional.ce_count_loss(), False),
    (mse_membrane_loss, lambda: sn_functional.mse_membrane_loss(), True),
    (lambda m, y: mse_membrane_loss(m, y, 0.8, 0.1),
     lambda: sn_functional.mse_membrane_loss(on_target=0.8, off_target=0.1), True),
])
def test_losses_match_snntorch(ours, theirs, on_mem):
    spk, mem, y = _outputs()
    out = mem if on_mem else spk
    ref = theirs()(out, y)
    g_ref = torch.autograd.grad(ref.sum(), out)[0]
    val = ours(out, y)
    g = torch.autograd.grad(val, out)[0]
    assert float(val.detach()) == pytest.approx(float(ref.sum().detach()), rel=1e-6)
    assert torch.allclose(g, g_ref, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------- network
def _tutorial_spec(reset="subtract_after_decay", loss="ce_rate", kind="leaky", **extra):
    layer = {"type": kind, "beta": 0.9, "reset": reset, **extra}
    if kind == "synaptic":
        layer["alpha"] = 0.7
    return {"steps": 12, "input": {"kind": "spikes", "shape": [20]},
            "layers": [{**layer, "size": 16}, {**layer, "size": 4, "name": "out"}],
            "loss": {"kind": loss}}


def _f64_network(spec):
    """A float64 network whose beta/alpha/threshold are float64 from the start (casting a
    float32 0.9 to float64 would not give snnTorch's float64 0.9)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        return LeakyNetwork(spec)
    finally:
        torch.set_default_dtype(old)


def _dyadic(net):
    """Weights on a 2^-8 grid: every sum of them is exact, in any order."""
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.round(p * 3 * 256) / 256)


def test_network_matches_snntorch_tutorial_model(engine):
    """Linear -> Leaky -> Linear -> Leaky with ce_rate_loss: the same spikes and membranes as
    snnTorch's tutorial model with the same weights, and the same weight gradients."""
    torch.manual_seed(0)
    net = _f64_network(_tutorial_spec())
    _dyadic(net)
    fc1, fc2 = torch.nn.Linear(20, 16).to(F64), torch.nn.Linear(16, 4).to(F64)
    with torch.no_grad():
        for fc, layer in ((fc1, net.layers[0]), (fc2, net.layers[1])):
            fc.weight.copy_(layer.weight)
            fc.bias.copy_(layer.bias)
    lif1 = snntorch.Leaky(beta=torch.tensor(0.9, dtype=F64), spike_grad=atan64)
    lif2 = snntorch.Leaky(beta=torch.tensor(0.9, dtype=F64), spike_grad=atan64)
    x = (torch.rand(B, 12, 20, generator=torch.Generator().manual_seed(4)) < 0.3).to(F64)
    y = torch.tensor([0, 1, 3, 2])
    mem1 = lif1.reset_mem()
    mem2 = lif2.reset_mem()
    spk2_rec, mem2_rec = [], []
    for t in range(12):
        spk1, mem1 = lif1(fc1(x[:, t]), mem1)
        spk2, mem2 = lif2(fc2(spk1), mem2)
        spk2_rec.append(spk2)
        mem2_rec.append(mem2)
    spk2_rec, mem2_rec = torch.stack(spk2_rec), torch.stack(mem2_rec)
    ref_loss = sn_functional.ce_rate_loss()(spk2_rec, y)
    ref_loss.sum().backward()

    s, m = net.run(x)[-1]
    assert int(s.sum()) > 0
    assert torch.equal(s, spk2_rec)
    assert torch.equal(m, mem2_rec)
    loss, logits = net.loss_and_logits(x, y)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(ref_loss.sum().detach()), rel=1e-6)
    assert torch.equal(logits, spk2_rec.sum(0))
    for fc, layer in ((fc1, net.layers[0]), (fc2, net.layers[1])):
        assert torch.allclose(layer.weight.grad, fc.weight.grad, rtol=1e-5, atol=1e-7)
        assert torch.allclose(layer.bias.grad, fc.bias.grad, rtol=1e-5, atol=1e-7)


EXPORT_CASES = [
    ("leaky", "subtract_after_decay", "ce_rate"),
    ("leaky", "zero_after_decay", "ce_count"),
    ("leaky", "subtract", "mse_membrane"),
    ("synaptic", "subtract_after_decay", "mse_membrane"),
    ("synaptic", "zero_after_decay", "ce_count"),
    ("synaptic", "value", "ce_rate"),
]


@pytest.mark.parametrize(("kind", "reset", "loss"), EXPORT_CASES)
def test_export_predicts_what_the_model_predicts_on_torch(kind, reset, loss):
    """The exported network (layer k running k steps behind the model) gives the model's
    output spike counts exactly, or its mean output membrane to 1e-12, on the torch eager
    engine; learnable per-neuron beta and threshold travel as per-neuron parameters."""
    torch.manual_seed(1)
    net = LeakyNetwork(_tutorial_spec(reset, loss, kind, threshold=0.5, learn_beta=True,
                                      learn_threshold=True, per_neuron=True)).to(F64)
    with torch.no_grad():
        net.layers[0].weight.mul_(3)
        net.layers[0].beta.uniform_(0.5, 0.99)
        net.layers[0].threshold.uniform_(0.3, 0.8)
    x = (torch.rand(6, 12, 20, generator=torch.Generator().manual_seed(2)) < 0.3).to(F64)
    logits = net(x).detach().numpy()
    assert logits.sum() != 0
    preds, exported = run_leaky_exported(net, x, backend="torch", precision="float64")
    np.testing.assert_allclose(exported, logits, rtol=0, atol=1e-12)
    assert np.array_equal(preds, logits.argmax(1))


def test_export_without_shift_would_not_match():
    """The delay bookkeeping matters: reading the output layer from step 0 (as if the IR had
    zero-latency projections) gives other counts."""
    from evospike.backends import get_backend
    from evospike.training.leaky_model import leaky_to_network

    torch.manual_seed(1)
    net = LeakyNetwork(_tutorial_spec(threshold=0.5)).to(F64)
    with torch.no_grad():
        net.layers[0].weight.mul_(3)
    x = (torch.rand(4, 12, 20, generator=torch.Generator().manual_seed(2)) < 0.3).to(F64)
    logits = net(x).detach().numpy()
    res = get_backend("torch").compile(leaky_to_network(net, x), progress=False,
                                       precision="float64").run(12.0)  # T steps, not T + L
    steps, neurons = res.spike_steps("out")
    counts = np.bincount(neurons, minlength=16).reshape(4, 4)
    assert not np.array_equal(counts, logits)


@pytest.mark.slow
def test_export_predicts_what_the_model_predicts_on_brian2():
    torch.manual_seed(0)
    spec = {"steps": 10, "input": {"kind": "spikes", "shape": [6]},
            "layers": [{"type": "synaptic", "alpha": 0.6, "size": 8, "beta": 0.9,
                        "reset": "subtract", "threshold": 0.5},
                       {"type": "leaky", "size": 3, "beta": 0.8, "reset": "value",
                        "threshold": 0.5}],
            "loss": {"kind": "ce_count"}}
    net = LeakyNetwork(spec).to(F64)
    with torch.no_grad():
        net.layers[0].weight.mul_(3)
    x = (torch.rand(3, 10, 6, generator=torch.Generator().manual_seed(0)) < 0.3).to(F64)
    logits = net(x).detach().numpy()
    assert logits.sum() > 0
    preds, exported = run_leaky_exported(net, x, backend="brian2", target="numpy")
    np.testing.assert_allclose(exported, logits, rtol=0, atol=0)
    assert np.array_equal(preds, logits.argmax(1))


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: s["layers"][0].update(alpha=0.5), "layers[0].alpha"),
    (lambda s: s["layers"][0].update(reset="none"), "layers[0].reset"),
    (lambda s: s["layers"][1].update(reset="none"), "layers[1].reset"),
    (lambda s: s["loss"].update(kind="nll"), "loss.kind"),
    (lambda s: s["loss"].update(on_target=2.0), "loss.on_target"),
    (lambda s: s["layers"][0].update(type="linear"), "layers[0].type"),
    (lambda s: s["input"].update(kind="current"), "input.kind"),
    (lambda s: s["layers"][0].update(learn_beta="yes"), "layers[0].learn_beta"),
])
def test_network_spec_refuses_bad_keys_by_name(change, field):
    spec = _tutorial_spec()
    change(spec)
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
        LeakyNetwork(spec)


def test_trainer_trains_a_leaky_network_with_its_loss(tmp_path):
    """`Trainer` builds a `LeakyNetwork` from the model spec and trains it with the spec's
    loss: the loss falls on a separable spike-pattern task."""
    from evospike.training.data import Splits, TensorData
    from evospike.training.trainer import TrainConfig, Trainer

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (96,), generator=g)
    rate = torch.where(y[:, None, None] == 0, torch.tensor([0.6] * 10 + [0.05] * 10),
                       torch.tensor([0.05] * 10 + [0.6] * 10))
    x = (torch.rand(96, 12, 20, generator=g) < rate.expand(96, 12, 20)).float()
    data = TensorData(x[:64], y[:64])
    splits = Splits(train=data, val=None, test=TensorData(x[64:], y[64:]), n_classes=2,
                    classes=("a", "b"), description="spike patterns", synthetic=True,
                    class_weights=torch.ones(2), sample_shape=(12, 20), extra={})
    spec = _tutorial_spec(loss="ce_count")
    spec["layers"][1]["size"] = 2
    cfg = TrainConfig.from_dict({"data": {"dataset": "digits"}, "model": spec,
                                 "train": {"epochs": 3, "batch_size": 16, "lr": 0.01},
                                 "output": {"dir": str(tmp_path / "run")}})
    trainer = Trainer(cfg, progress=False, splits=splits)
    assert isinstance(trainer.model, LeakyNetwork)
    first = trainer.evaluate(splits.train)[0]
    summary = trainer.fit(export=False)
    assert trainer.evaluate(splits.train)[0] < first
    assert summary["test_accuracy"] > 0.75


# ------------------------------------------------------------------ event-driven products
def _kernel_or_skip():
    from evospike.training import native

    if not native.available(torch.zeros(1)):
        pytest.skip("no C compiler: the training kernel is not built")
    return native


def _spikes(shape, density, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < density).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("H", [7, 40, 200, 333])  # narrow, narrow, whole blocks + overlap
def test_sparse_products_are_exact_on_a_dyadic_grid(dtype, H):
    """Weights and gradients on a 2^-8 grid make every partial sum exact: the event-driven
    product and weight gradient then equal the dense ones bit for bit, for every output
    width (narrower than a block, whole blocks, a last block overlapping the one before),
    on a (T, B, F) input read through its strides (time-major view of batch-major data)."""
    native = _kernel_or_skip()
    x = _spikes((9, 13, 150), 0.15, 0, dtype)  # (B, T, F) as the networks get it
    s = x.transpose(0, 1)
    g = torch.Generator().manual_seed(1)
    w = torch.round(torch.randn(H, 150, generator=g, dtype=dtype) * 256) / 256
    grad = torch.round(torch.randn(13 * 9, H, generator=g, dtype=dtype) * 256) / 256
    rows = native.SpikeRows(s)
    assert rows.binary and rows.nnz == int((x != 0).sum())
    dense = s.reshape(-1, 150)
    assert torch.equal(rows.matmul(w), dense @ w.t())
    assert torch.equal(rows.weight_grad(grad), grad.t() @ dense)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sparse_products_take_graded_values(dtype):
    """Non-binary inputs (counts, negative values) go through the value path: equal to the
    float64 dense product to rounding."""
    native = _kernel_or_skip()
    s = _spikes((5, 6, 300), 0.1, 2, dtype) * torch.randint(
        -3, 4, (5, 6, 300), generator=torch.Generator().manual_seed(3)).to(dtype)
    w = torch.randn(260, 300, dtype=dtype, generator=torch.Generator().manual_seed(4))
    grad = torch.randn(30, 260, dtype=dtype, generator=torch.Generator().manual_seed(5))
    rows = native.SpikeRows(s)
    assert not rows.binary
    dense = s.reshape(30, 300).double()
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(rows.matmul(w).double(), dense @ w.double().t(), rtol=0,
                               atol=tol)
    torch.testing.assert_close(rows.weight_grad(grad).double(), grad.double().t() @ dense,
                               rtol=0, atol=tol)


def test_kernels_give_the_same_bits_on_any_number_of_threads():
    """Threads own disjoint output blocks / neurons: 1, 2 and 3 threads give identical
    products, weight gradients, spikes, membranes and every gradient of a Leaky layer."""
    native = _kernel_or_skip()
    from evospike.training.leaky import LeakyLayer

    old = torch.get_num_threads()
    x = _spikes((8, 20, 300), 0.12, 6)
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            layer = LeakyLayer("h", (300,), 700, beta=0.9, learn_beta=True,
                               learn_threshold=True, per_neuron=True)
            with torch.no_grad():
                layer.weight.mul_(4)
            s, m = layer(x.transpose(0, 1))
            (s.sum() + (m * m).sum()).backward()
            rows = native.SpikeRows(x.transpose(0, 1))
            results.append([t.detach() for t in (s, m, layer.weight.grad, layer.bias.grad,
                                                 layer.beta.grad, layer.threshold.grad,
                                                 rows.matmul(layer.weight.detach()))])
    finally:
        torch.set_num_threads(old)
    assert float(results[0][0].mean()) > 0.01  # the layer fires
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["leaky", "synaptic"])
def test_bias_inside_the_loop_equals_adding_it_before(kind, engine):
    """`leaky_sequence(x, ..., bias=b)` gives the spikes and membranes of
    `leaky_sequence(x + b)` bit for bit, and the same gradients of x and b."""
    x = _inputs(8)
    bias = torch.tensor([0.1, -0.2, 0.3, 0.05, -0.1], dtype=F64, requires_grad=True)
    beta, thr = torch.tensor(0.85, dtype=F64), torch.tensor(1.0, dtype=F64)
    alpha = torch.tensor(0.6, dtype=F64) if kind == "synaptic" else None
    w = torch.randn(T, B, N, dtype=F64, generator=torch.Generator().manual_seed(9))
    x1 = x.clone().requires_grad_(True)
    s1, m1 = leaky_sequence(x1, beta, thr, alpha=alpha, bias=bias)
    g1 = torch.autograd.grad((s1 * w).sum() + (m1 * m1).sum(), [x1, bias])
    x2 = x.clone().requires_grad_(True)
    s2, m2 = leaky_sequence(x2 + bias, beta, thr, alpha=alpha)
    g2 = torch.autograd.grad((s2 * w).sum() + (m2 * m2).sum(), [x2, bias])
    assert int(s1.sum()) > 10
    assert torch.equal(s1, s2) and torch.equal(m1, m2)
    assert torch.equal(g1[0], g2[0])
    torch.testing.assert_close(g1[1], g2[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(("kind", "reset"), [
    ("leaky", "subtract_after_decay"), ("leaky", "zero_after_decay"), ("leaky", "value"),
    ("synaptic", "subtract"), ("synaptic", "zero_after_decay"),
])
def test_fused_layer_equals_product_then_loop(monkeypatch, dtype, kind, reset, input_grad):
    """A layer wide enough for the blocked product, on sparse input, runs the product inside
    the time loop and the weight gradient inside the BPTT (the spies see both fused kernels
    called) and gives bit for bit the spikes, membranes and every gradient (the input's too,
    when it needs one) of the product stored first and then run through the loop
    (`spike_linear` + `leaky_sequence`), across block boundaries (300 neurons: two whole
    blocks in float32, five in float64, the last overlapping)."""
    native = _kernel_or_skip()
    from evospike.training import layers as layers_mod
    from evospike.training.leaky import LeakyLayer

    calls = []
    for name in ("leaky_linear_forward", "leaky_linear_backward"):
        real = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, _r=real, _n=name, **k:
                            calls.append(_n) or _r(*a, **k))
    x = _spikes((6, 10, 120), 0.1, 11, dtype).transpose(0, 1).requires_grad_(input_grad)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(3)
        kw = {"alpha": 0.8} if kind == "synaptic" else {}
        layer = LeakyLayer("h", (120,), 300, reset=reset, learn_beta=True,
                           learn_threshold=True, per_neuron=True, **kw)
    finally:
        torch.set_default_dtype(old)
    with torch.no_grad():
        layer.weight.mul_(3)
    s, m = layer(x)
    w = torch.randn(s.shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    ((s * w).sum() + (m * m).sum()).backward()
    assert calls == ["leaky_linear_forward", "leaky_linear_backward"]
    params = [layer.weight, layer.bias, layer.beta, layer.threshold] + ([x] if input_grad
                                                                        else [])
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    beta, theta, alpha = layer.decays()
    rows = layers_mod.sparse_rows(x, layer.weight)
    z = layers_mod.spike_linear(x, layer.weight, rows)
    s2, m2 = leaky_sequence(z, beta, theta, reset, alpha, bias=layer.bias)
    ((s2 * w).sum() + (m2 * m2).sum()).backward()
    assert len(calls) == 2
    assert float(s.mean()) > 0.01
    assert torch.equal(s, s2) and torch.equal(m, m2)
    for a, p in zip(grads, params, strict=True):
        assert torch.equal(a, p.grad)


# ------------------------------------------------------------------------ recurrent layers
RECURRENT_MECHANISMS = {"subtract": "subtract_after_decay", "zero": "zero_after_decay",
                        "none": "none"}


@pytest.mark.parametrize("kind", ["rleaky", "rsynaptic"])
@pytest.mark.parametrize("mechanism", list(RECURRENT_MECHANISMS))
def test_recurrent_layer_matches_snntorch_step_for_step(kind, mechanism):
    """`RecurrentLeakyLayer` against snnTorch's RLeaky / RSynaptic (all_to_all, linear
    recurrent with bias) behind an nn.Linear, the same weights on a 2^-8 grid: spikes and
    membranes identical in float64, gradients of the input and recurrent weights and biases
    to 1e-9."""
    from evospike.training.leaky import RecurrentLeakyLayer

    Fi, N_ = 6, 5
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        torch.manual_seed(0)
        kw = {"beta": 0.9, "threshold": 0.5, "reset": RECURRENT_MECHANISMS[mechanism]}
        if kind == "rsynaptic":
            kw["alpha"] = 0.7
        layer = RecurrentLeakyLayer("r", (Fi,), N_, **kw)
        fc = torch.nn.Linear(Fi, N_)
        common = {"beta": torch.tensor(0.9), "linear_features": N_, "spike_grad": atan64,
                  "reset_mechanism": mechanism, "threshold": torch.tensor(0.5)}
        cell = (snntorch.RLeaky(**common) if kind == "rleaky" else
                snntorch.RSynaptic(alpha=torch.tensor(0.7), **common))
    finally:
        torch.set_default_dtype(old)
    cell.graded_spikes_factor = torch.tensor(1.0, dtype=F64)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.round(p * 3 * 256) / 256)
        fc.weight.copy_(layer.weight)
        fc.bias.copy_(layer.bias)
        cell.recurrent.weight.copy_(layer.recurrent)
        cell.recurrent.bias.copy_(layer.recurrent_bias)
    x = (torch.rand(T, B, Fi, generator=torch.Generator().manual_seed(1)) < 0.4).to(F64)
    state = cell.init_rleaky() if kind == "rleaky" else cell.init_rsynaptic()
    spikes, mems = [], []
    for t in range(T):
        state = cell(fc(x[t]), *state)
        spikes.append(state[0])
        mems.append(state[-1])
    s_ref, m_ref = torch.stack(spikes), torch.stack(mems)
    w = torch.randn(T, B, N_, dtype=F64, generator=torch.Generator().manual_seed(2))
    ((s_ref * w).sum() + (m_ref * m_ref).sum()).backward()
    s, m = layer(x)
    ((s * w).sum() + (m * m).sum()).backward()
    assert int(s.sum()) > 20
    assert torch.equal(s, s_ref) and torch.equal(m, m_ref)
    for ours, theirs in ((layer.weight, fc.weight), (layer.bias, fc.bias),
                         (layer.recurrent, cell.recurrent.weight),
                         (layer.recurrent_bias, cell.recurrent.bias)):
        assert float(ours.grad.abs().max()) > 0
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-9, atol=1e-9)


RECURRENT_EXPORT_CASES = [
    ("rleaky", "subtract_after_decay", "ce_rate"),
    ("rleaky", "zero_after_decay", "ce_count"),
    ("rsynaptic", "subtract_after_decay", "mse_membrane"),
    ("rsynaptic", "zero_after_decay", "ce_count"),
]


@pytest.mark.parametrize(("kind", "reset", "loss"), RECURRENT_EXPORT_CASES)
def test_recurrent_export_predicts_what_the_model_predicts_on_torch(kind, reset, loss):
    """The recurrent projection exports with a delay of one step (the model's s[t-1] reaches
    the layer in step t, and the layer runs k steps behind the model in the IR) and its bias
    joins the per-step bias: the exported network gives the model's spike counts exactly, or
    its mean membrane to 1e-12, on the torch eager engine."""
    layer = {"type": kind, "beta": 0.9, "reset": reset, "threshold": 0.5, "learn_beta": True,
             "per_neuron": True}
    if kind == "rsynaptic":
        layer["alpha"] = 0.7
    spec = {"steps": 12, "input": {"kind": "spikes", "shape": [20]},
            "layers": [{**layer, "size": 16},
                       {"type": "leaky", "beta": 0.9, "threshold": 0.5, "size": 4,
                        "name": "out"}],
            "loss": {"kind": loss}}
    torch.manual_seed(1)
    net = LeakyNetwork(spec).to(F64)
    with torch.no_grad():
        net.layers[0].weight.mul_(3)
        net.layers[0].recurrent.mul_(2)
        net.layers[0].beta.uniform_(0.5, 0.99)
    x = (torch.rand(6, 12, 20, generator=torch.Generator().manual_seed(2)) < 0.3).to(F64)
    logits = net(x).detach().numpy()
    assert logits.sum() != 0
    preds, exported = run_leaky_exported(net, x, backend="torch", precision="float64")
    np.testing.assert_allclose(exported, logits, rtol=0, atol=1e-12)
    assert np.array_equal(preds, logits.argmax(1))


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: s["layers"][0].update(type="rleaky", reset="subtract"), "layers[0].reset"),
    (lambda s: s["layers"][0].update(recurrent_bias=False), "layers[0].recurrent_bias"),
    (lambda s: s["layers"][0].update(type="rleaky", alpha=0.5), "layers[0].alpha"),
    (lambda s: s["layers"][0].update(type="rsynaptic", recurrent_bias=1),
     "layers[0].recurrent_bias"),
])
def test_recurrent_spec_refuses_bad_keys_by_name(change, field):
    spec = _tutorial_spec()
    change(spec)
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
        LeakyNetwork(spec)
