"""Energy accounting: SynOps from actual spikes, MACs of torch modules and ANN baselines,
per-operation costs with their sources, and the ``evospike energy`` command."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from evospike import LIF, FromArrays, Network
from evospike.backends import get_backend
from evospike.cli import main
from evospike.energy import (
    ResNet18_1d,
    ann_baseline,
    bert_macs,
    count_network_ops,
    count_torch_ops,
    resnet18_1d_macs,
)
from evospike.errors import EvoSpikeError
from evospike.hardware.energy_costs import OP_KINDS, PROFILES, get_profile

TINY = '''
from evospike import LIF, FromArrays, Network


def build():
    net = Network("tiny", dt_ms=1.0)
    net.spike_source("src", 3, neurons=[0, 0, 1, 2, 2, 2], times_ms=[1, 5, 2, 3, 4, 8])
    cell = LIF(tau_m_ms=10.0, v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=1.0,
               tau_syn_exc_ms=2.0, tau_syn_inh_ms=2.0, tau_refrac_ms=1.0)
    net.population("hid", 2, cell)
    net.population("out", 1, cell)
    # src0 -> hid0, hid1; src1 -> hid1 with weight 0 (no operation); src2 -> hid0
    net.connect("src", "hid", FromArrays([0, 0, 1, 2], [0, 1, 1, 0],
                                         weights=[5.0, 5.0, 0.0, 5.0]), delay_ms=1.0)
    net.connect("hid", "out", FromArrays([0, 1], [0, 0], weights=[0.5, 0.5]), delay_ms=1.0)
    return net
'''


def _tiny():
    namespace = {}
    exec(TINY, namespace)  # the same network the CLI test loads from a file
    return namespace["build"]()


def _run(net, duration_ms=20.0, seeds=(0,)):
    net.record_spikes("src", "hid", "out")
    return get_backend("torch").compile(net, seeds=seeds, progress=False).run(duration_ms)


def test_synops_equal_hand_count():
    net = _tiny()
    res = _run(net)
    counts = count_network_ops(net, res)
    # source spikes: neuron 0 twice (fan-out 2), neuron 1 once (its only synapse has weight
    # 0), neuron 2 three times (fan-out 1): 4 + 0 + 3; every hid spike drives one synapse
    hid_spikes = res.spikes("hid")[0].size
    out_spikes = res.spikes("out")[0].size
    assert hid_spikes > 0
    assert counts.acs == 7 + hid_spikes and counts.macs == 0
    assert counts.layers[0].effective == 7 and counts.layers[1].effective == hid_spikes
    assert counts.dense_ops == (4 + 2) * 20  # every synapse, every step
    assert counts.neuron_updates_active == hid_spikes + out_spikes
    assert counts.neuron_updates_inactive == 3 * 20 - hid_spikes - out_spikes
    assert counts.activation_sparsity == pytest.approx(1 - (hid_spikes + out_spikes) / 60)
    e = counts.energy("loihi2")
    assert e.parts_pJ["ac"] == pytest.approx(23.6 * counts.acs)
    assert e.total_pJ == pytest.approx(23.6 * counts.acs + 81.0 * (hid_spikes + out_spikes)
                                       + 52.0 * (60 - hid_spikes - out_spikes))


def test_synops_averaged_over_trials_and_replicas():
    net = _tiny()
    res = _run(net, seeds=(0, 1))
    one = count_network_ops(net, res.trial(0))
    both = count_network_ops(net, res, inferences_per_trial=2)
    assert both.n_inferences == 4
    assert both.acs == pytest.approx(2 * one.acs / 4)  # spike-times input: trials identical


def test_synops_refuses_unrecorded_or_foreign_results():
    net = _tiny()
    net.record_spikes("src")
    res = get_backend("torch").compile(net, seeds=(0,), progress=False).run(5.0)
    with pytest.raises(EvoSpikeError, match=r"no spikes of \['hid', 'out'\]"):
        count_network_ops(net, res)
    other = Network("other", dt_ms=1.0)
    other.spike_source("src", 5, neurons=[0], times_ms=[1.0])
    cell = LIF(tau_m_ms=10.0, v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=1.0,
               tau_syn_exc_ms=2.0, tau_syn_inh_ms=2.0)
    other.population("hid", 2, cell)
    other.population("out", 1, cell)
    other.connect("src", "hid", FromArrays([0], [0]), weight=1.0, delay_ms=1.0)
    with pytest.raises(EvoSpikeError, match="not from this network"):
        count_network_ops(other, _run(_tiny(), 5.0))
    with pytest.raises(EvoSpikeError, match="inferences_per_trial"):
        count_network_ops(net, res, inferences_per_trial=0)


def test_linear_ops_equal_hand_count():
    lin = nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.3, 0.0, -3.2], [0.0, 1.2, -5.1]]))
    spikes = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    c = count_torch_ops(lin, spikes)
    # sample 1: inputs 1, 2 active -> fan-outs 1 + 2 = 3; sample 2: input 0 -> 1; per sample 2
    assert c.acs == 2.0 and c.macs == 0.0 and c.dense_ops == 6.0
    graded = torch.tensor([[0.0, 1.3, -1.0]])  # NeuroBench's documented example
    big = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        big.weight.copy_(torch.tensor([[1.3, 0, -3.2], [0, 1.2, -5.1], [-1.1, 2.7, 0]]))
    g = count_torch_ops(big, graded)
    assert g.macs == 4.0 and g.acs == 0.0 and g.dense_ops == 9.0
    assert count_torch_ops(lin, graded).macs == 3.0


def _conv_hand_count(x, w, stride, padding):
    """Loop over output positions and kernel taps; count (non-zero input, non-zero weight)
    pairs and all pairs that land on real (unpadded) input."""
    c_out, c_in, k = w.shape
    length = x.shape[-1]
    n_out = (length + 2 * padding - k) // stride + 1
    eff = dense = 0
    for b in range(x.shape[0]):
        for o in range(c_out):
            for pos in range(n_out):
                for c in range(c_in):
                    for t in range(k):
                        i = pos * stride - padding + t
                        if 0 <= i < length:
                            dense += 1
                            eff += int(x[b, c, i] != 0 and w[o, c, t] != 0)
    return eff, dense


def test_conv_ops_equal_hand_count():
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv1d(2, 3, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(3, 2, 3, generator=gen) *
                          (torch.rand(3, 2, 3, generator=gen) > 0.3))
    x = (torch.rand(2, 2, 9, generator=gen) > 0.5).float()
    eff, dense = _conv_hand_count(x, conv.weight.detach(), 2, 1)
    c = count_torch_ops(conv, x)
    assert c.acs == eff / 2 and c.dense_ops == dense / 2
    conv2d = nn.Conv2d(1, 2, 2, bias=False)
    with torch.no_grad():
        conv2d.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]]))
    img = torch.tensor([[[[0.5, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]]])
    c2 = count_torch_ops(conv2d, img)
    # non-zero inputs x00, x11; kernel 0 has taps (0,0), (1,1), kernel 1 all four. Per output
    # position (k0 + k1): (0,0) sees x00, x11 at taps (0,0), (1,1): 2 + 2; (0,1) sees x11 at
    # tap (1,0): 0 + 1; (1,0) sees x11 at tap (0,1): 0 + 1; (1,1) sees x11 at tap (0,0): 1 + 1
    assert c2.macs == 4 + 1 + 1 + 2 and c2.dense_ops == 4 * 2 * 4


def test_activation_sparsity_and_repeated_calls():
    model = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 2, bias=False))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    c = count_torch_ops(model, x)
    hidden = torch.relu(model[0](x))
    assert c.activation_sparsity == pytest.approx(float((hidden == 0).float().mean()))
    nz_w = (model[2].weight != 0).sum(0).float()
    assert c.layers[1].effective == pytest.approx(float((hidden != 0).float().sum(0) @ nz_w) / 5)
    # a layer called at every time step is counted at every call
    lin = nn.Linear(3, 2, bias=False)

    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, s):  # s: [T, B, 3]
            return torch.stack([self.lin(s[t]) for t in range(s.shape[0])])

    s = torch.zeros(4, 2, 3)
    s[0, 0, 0] = s[2, 1, 2] = s[3, 1, 1] = 1.0
    c = count_torch_ops(Loop(), s, n_samples=2)
    assert c.acs == 3 * 2 / 2 and c.dense_ops == 4 * 2 * 6 / 2


def test_resnet18_analytic_macs_match_hook_count():
    for length, width in ((64, 8), (256, 16)):
        model = ResNet18_1d(in_channels=1, n_classes=5, width=width).eval()
        c = count_torch_ops(model, torch.randn(1, 1, length))
        assert c.dense_ops == resnet18_1d_macs(length, 1, 5, width)
    # conv1 on 256 samples: 128 outputs x 64 channels x 7 taps, minus the padded taps
    stem = 128 * 64 * 7 - 64 * (3 + 2)
    assert resnet18_1d_macs(256) > stem
    with pytest.raises(EvoSpikeError, match="length"):
        resnet18_1d_macs(16)


def test_bert_macs():
    tiny = bert_macs(5, n_layers=1, d_model=4, d_ff=8, n_classes=2)
    assert tiny["projections"] == 4 * 5 * 4 * 4
    assert tiny["attention"] == 2 * 5 * 5 * 4
    assert tiny["feed_forward"] == 2 * 5 * 4 * 8
    assert tiny["total"] == 320 + 200 + 320 + 16 + 8
    # BERT-base on 128 tokens: about 11.2 G MACs, the figure usually quoted (~22 GFLOPs)
    assert 11.1e9 < bert_macs(128)["total"] < 11.3e9
    base = ann_baseline("bert-base-sst2", seq_len=32)
    assert base.macs == bert_macs(32)["total"]
    assert base.energy("horowitz45-fp32").total_pJ == pytest.approx(base.macs * 4.6)
    with pytest.raises(EvoSpikeError, match="unknown ANN baseline"):
        ann_baseline("vgg")


def test_profiles_carry_sources():
    for prof in PROFILES.values():
        assert prof.reference
        for kind, cost in prof.costs.items():
            assert kind in OP_KINDS and cost.energy_pJ > 0 and cost.source
    fp32 = get_profile("horowitz45-fp32")
    assert fp32.cost_pJ("ac") == 0.9 and fp32.cost_pJ("mac") == pytest.approx(4.6)
    assert get_profile("horowitz45-int8").cost_pJ("ac") == 0.03
    assert get_profile("loihi").cost_pJ("ac") == 23.6
    assert "no published" in get_profile("loihi2").note
    with pytest.raises(EvoSpikeError, match="no cost for 'mac'"):
        get_profile("loihi2").cost_pJ("mac")
    with pytest.raises(EvoSpikeError, match="unknown hardware"):
        get_profile("truenorth")


def test_energy_command(tmp_path, capsys):
    model = tmp_path / "tiny.py"
    model.write_text(TINY)
    out = tmp_path / "energy.json"
    assert main(["energy", str(model), "--duration", "20ms", "--no-progress",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SynOps" in text and "activation sparsity" in text and "ResNet-18" in text
    report = json.loads(out.read_text())
    net = _tiny()
    res = _run(net)
    expect = count_network_ops(net, res)
    assert report["counts"]["acs"] == expect.acs
    assert report["energy"]["profile"] == "loihi2"
    assert {b["name"] for b in report["baselines"]} == {"resnet18-ecg", "bert-base-sst2"}
    # from a saved run, and a results file given as MODEL is refused with a hint
    res_path = tmp_path / "r.h5"
    res.save(res_path)
    assert main(["energy", str(model), "--results", str(res_path), "--baseline", "none",
                 "--hardware", "horowitz45-int8"]) == 0
    assert f"SynOps (effective accumulates)  {expect.acs:.4g}" in capsys.readouterr().out
    assert main(["energy", str(res_path)]) == 2
    assert "--results" in capsys.readouterr().err


def test_network_counts_match_torch_counts_on_same_spikes():
    """The IR count (fan-out of every emitted spike) and the NeuroBench hook count (binarised
    forward pass) agree on the same spike raster and weights."""
    gen = np.random.default_rng(0)
    w = gen.normal(size=(4, 3)) * (gen.random((4, 3)) > 0.4)  # [pre, post]
    slots = gen.choice(40, 12, replace=False)  # distinct (neuron, step) pairs
    neurons, times = slots % 4, (slots // 4).astype(float)
    net = Network("pair", dt_ms=1.0)
    net.spike_source("src", 4, neurons=neurons, times_ms=times)
    cell = LIF(tau_m_ms=10.0, v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=100.0,
               tau_syn_exc_ms=2.0, tau_syn_inh_ms=2.0)
    net.population("post", 3, cell)
    i, j = np.nonzero(np.ones_like(w))
    net.connect("src", "post", FromArrays(i, j, weights=w[i, j]), delay_ms=1.0)
    net.record_spikes("src", "post")
    res = get_backend("torch").compile(net, seeds=(0,), progress=False).run(10.0)
    ir = count_network_ops(net, res)
    raster = torch.zeros(10, 1, 4)
    steps, ids = res.spike_steps("src")
    raster[steps, 0, ids] = 1.0
    lin = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))
    hooked = count_torch_ops(nn.Sequential(lin), raster.reshape(10, 4), n_samples=1)
    assert raster.sum() == 12
    assert ir.acs == hooked.acs and ir.dense_ops == hooked.dense_ops


def test_synops_from_spike_tensor():
    from evospike.energy import synops_from_spikes

    w = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.0, 0.0]])  # fan-outs 2, 0, 1
    s = torch.zeros(3, 2, 3)
    s[0, 0, 0] = s[1, 0, 2] = s[2, 1, 0] = s[2, 1, 1] = 1.0
    ops = synops_from_spikes(s, w)
    assert ops.effective == (2 + 1 + 2 + 0) / 2 and ops.dense == 3 * 6  # zeros included
    same = synops_from_spikes(s, torch.tensor([2, 0, 1]), n_samples=1)
    assert same.effective == 5 and same.dense == 3 * 2 * 3
    with pytest.raises(EvoSpikeError, match="fanout"):
        synops_from_spikes(s, torch.ones(4))
    with pytest.raises(EvoSpikeError, match="whole spike counts"):
        synops_from_spikes(s * 0.5, w)


DIGITS_CONFIG = """
name: tiny_digits
seed: 0
device: cpu
threads: 1
data: {dataset: digits, options: {test_fraction: 0.25, seed: 0}, validation_fraction: 0.1}
model:
  dt_ms: 1.0
  steps: 8
  neuron: {tau_m_ms: 10.0, tau_syn_ms: 5.0, v_rest_mV: -65.0, v_reset_mV: -65.0,
           v_thresh_mV: -50.0}
  input: {kind: current, shape: [64], gain_mV: 60.0}
  layers: [{type: linear, size: 16}, {type: readout, size: 10}]
train: {epochs: 1, batch_size: 64, lr: 0.003}
output: {dir: OUT}
"""


@pytest.mark.slow
def test_energy_of_trained_checkpoint(tmp_path, capsys):
    """Trains one epoch through `evospike train` (the training side), so it is slow."""
    config = tmp_path / "digits.yaml"
    config.write_text(DIGITS_CONFIG.replace("OUT", str(tmp_path / "run")))
    assert main(["train", str(config), "--no-progress"]) == 0
    out = tmp_path / "energy.json"
    assert main(["energy", str(tmp_path / "run" / "checkpoint.pt"), "--test-samples", "4",
                 "--baseline", "none", "--json", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    counts = report["counts"]
    assert counts["n_inferences"] == 4
    # per replica: 64 -> 16 -> 10 all-to-all synapses, every one of 8 steps
    assert counts["dense_ops"] == (64 * 16 + 16 * 10) * 8
    assert 0 < counts["acs"] <= counts["dense_ops"]
    assert counts["neuron_updates_active"] + counts["neuron_updates_inactive"] == \
        (64 + 16 + 10) * 8
    assert main(["energy", str(tmp_path / "run" / "checkpoint.pt"), "--duration", "5ms"]) == 2
    assert "does not apply" in capsys.readouterr().err


def test_baseline_comparison_names_task_and_input():
    from evospike.cli.energy import baseline_comparison

    digits = {"task": "8x8 handwritten digits", "input": "64", "n_classes": 10}
    ok, why = baseline_comparison("resnet18-ecg", digits, 256, 32)
    assert ok is False
    assert why == ("not comparable: baseline for another task (ECG beat classification, input "
                   "1 x 256 samples; this model: 8x8 handwritten digits, input 64)")
    ok, why = baseline_comparison("bert-base-sst2", digits, 256, 32)
    assert ok is False and "another task (SST-2 sentence sentiment, input 32 tokens" in why
    ecg = {"task": "ECG beat classification", "input": "1 x 187 samples", "ecg_length": 187}
    assert baseline_comparison("resnet18-ecg", ecg, 187, 32) == \
        (True, "same task and input: ECG beat classification, 1 x 187 samples")
    ok, why = baseline_comparison("resnet18-ecg", ecg, 360, 32)
    assert ok is False and "same task, other input size (baseline 1 x 360 samples; this " \
        "model: 1 x 187 samples)" in why
    sst = {"task": "SST-2 sentence sentiment", "input": "12 tokens", "seq_len": 12}
    assert baseline_comparison("bert-base-sst2", sst, 256, 12)[0] is True
    assert baseline_comparison("bert-base-sst2", sst, 256, 32)[0] is False
    ok, why = baseline_comparison("bert-base-sst2", {}, 256, 32)
    assert ok is None and "task is not recorded" in why


def _untrained_checkpoint(tmp_path, config_text: str):
    """checkpoint.pt of an untrained model (what `evospike train` writes after each epoch):
    the energy command reads it like a trained one."""
    import yaml

    from evospike.training import TrainConfig, Trainer

    raw = yaml.safe_load(config_text.replace("OUT", str(tmp_path / "run")))
    return Trainer(TrainConfig.from_dict(raw), progress=False).save_checkpoint()


def test_energy_of_digits_checkpoint_marks_other_task_baselines(tmp_path, capsys):
    ckpt = _untrained_checkpoint(tmp_path, DIGITS_CONFIG)
    out = tmp_path / "e.json"
    assert main(["energy", str(ckpt), "--test-samples", "2", "--no-progress",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no ANN baseline of this model's task, 8x8 handwritten digits" in text
    lines = [ln for ln in text.splitlines() if "ResNet-18" in ln or "BERT-base" in ln]
    assert len(lines) == 2
    for line in lines:
        assert "not comparable: baseline for another task" in line, line
        assert "this model: 8x8 handwritten digits, input 64" in line, line
        assert "x the SNN's energy" not in line, line
    report = json.loads(out.read_text())
    assert [(b["comparable"], b["ratio_to_snn"]) for b in report["baselines"]] == \
        [(False, None), (False, None)]


ECG_CONFIG = """
name: tiny_ecg
seed: 0
threads: 1
data: {dataset: synthetic_ecg, options: {n_records: 1, duration_s: 20}, validation_fraction: 0.1}
model: {reference: ecg_snn, hidden: 8, downsample: 4}
train: {epochs: 1, batch_size: 16, lr: 0.003}
output: {dir: OUT}
"""


def test_energy_of_ecg_checkpoint_compares_the_same_task_only(tmp_path, capsys):
    ckpt = _untrained_checkpoint(tmp_path, ECG_CONFIG)
    assert main(["energy", str(ckpt), "--test-samples", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "BERT-base" not in text
    (line,) = [ln for ln in text.splitlines() if "ResNet-18" in ln]
    assert "x the SNN's energy" in line
    assert "(same task and input: ECG beat classification, 1 x 256 samples)" in line
    assert main(["energy", str(ckpt), "--test-samples", "2", "--no-progress",
                 "--ecg-length", "360", "--baseline", "all"]) == 0
    text = capsys.readouterr().out
    (line,) = [ln for ln in text.splitlines() if "ResNet-18" in ln]
    assert "not comparable: same task, other input size (baseline 1 x 360 samples; this " \
        "model: 1 x 256 samples)" in line and "x the SNN's energy" not in line
    (line,) = [ln for ln in text.splitlines() if "BERT-base" in ln]
    assert "not comparable: baseline for another task" in line


def test_energy_of_network_file_says_its_task_is_unknown(tmp_path, capsys):
    model = tmp_path / "tiny.py"
    model.write_text(TINY)
    assert main(["energy", str(model), "--duration", "20ms", "--no-progress"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines()
             if "ResNet-18" in ln or "BERT-base" in ln]
    assert len(lines) == 2
    for line in lines:
        assert "the network's task is not recorded: comparable only if it does" in line, line
