"""The ECG pipeline on REAL data: MIT-BIH record 100 (tests/data/mitbih/, PhysioNet, ODC-By 1.0).

The numbers below are the record's own: its annotation file holds 2,274 annotations, 2,239
normal beats "N", 33 atrial premature beats "A", one premature ventricular contraction "V" and
one rhythm label "+" (not a beat). With the default window (90 samples before the R peak, 166
after) the first and last beats (at samples 77 and 649,991 of 650,000) have no full window.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from evospike.datasets import MITBIH
from evospike.datasets.ecg import AAMI_MAP, BeatSet
from evospike.errors import ValidationError
from evospike.training.class_report import class_report, format_report, plot_confusion

ROOT = Path(__file__).parent / "data" / "mitbih"


def test_reader_on_record_100_matches_its_annotations():
    import wfdb

    ann = wfdb.rdann(str(ROOT / "100"), "atr")
    assert Counter(ann.symbol) == {"N": 2239, "A": 33, "V": 1, "+": 1}
    ds = MITBIH(ROOT, "all", records=["100"])
    assert ds.fs == 360.0 and not ds.synthetic
    assert ds.skipped == {"edge": 2, "non_beat": 1}
    # the two edge beats are normal ones: N 2239 - 2, S 33 ("A"), V 1
    assert ds.class_counts().tolist() == [2237, 33, 1, 0, 0]
    assert len(ds) == 2271 and ds.sample_shape == (1, 256)
    # every sample is its annotated beat: same R peak, same AAMI class, the window of MLII
    sym = dict(zip(ann.sample.tolist(), ann.symbol, strict=True))
    assert [AAMI_MAP[sym[int(r)]] for r in ds.r_peaks] == ds.labels.tolist()
    v = int(np.flatnonzero(ds.labels == 2)[0])
    assert int(ds.r_peaks[v]) == int(ann.sample[ann.symbol.index("V")])
    raw = MITBIH(ROOT, "all", records=["100"], normalize=False)
    mlii = wfdb.rdrecord(str(ROOT / "100")).p_signal[:, 0]
    r = int(raw.r_peaks[v])
    np.testing.assert_allclose(raw.data[v, 0].numpy(), mlii[r - 90:r + 166], rtol=0, atol=1e-6)
    assert raw.data.abs().max() > 0.5  # physical units (mV), not raw ADC counts


def test_time_split_of_record_100_has_no_leakage():
    train = MITBIH(ROOT, "time_train", records=["100"], test_fraction=0.3)
    test = MITBIH(ROOT, "time_test", records=["100"], test_fraction=0.3)
    cut = int(round(0.7 * 650000))
    assert train.cut_s == test.cut_s == {"100": cut / 360.0}
    # every sample of every training window precedes every sample of every test window
    assert int(train.r_peaks.max()) + 166 <= cut <= int(test.r_peaks.min()) - 90
    assert train.class_counts().tolist() == [1568, 23, 0, 0, 0]
    assert test.class_counts().tolist() == [668, 10, 1, 0, 0]
    assert train.skipped["time_cut"] == test.skipped["time_cut"] == 1
    # nothing lost: both sides plus the straddling beat are all the record's beats
    assert len(train) + len(test) + 1 == 2271
    with pytest.raises(ValidationError, match="test_fraction"):
        MITBIH(ROOT, "time_test", records=["100"], test_fraction=1.0)


def test_segmentation_windows_labels_and_what_is_left_out():
    signal = np.arange(1000, dtype=np.float64) * 0.01
    samples = np.array([5, 100, 200, 300, 400, 500, 995])
    symbols = ["N", "A", "+", "V", "F", "/", "N"]
    beats = BeatSet()
    beats.add_record("r", signal, samples, symbols, pre=10, post=20, normalize=False)
    assert beats.r_peaks == [100, 300, 400, 500]
    assert beats.labels == [1, 2, 3, 4]             # S, V, F, Q
    assert beats.skipped_edge == 2 and beats.non_beat == 1
    for r, w in zip(beats.r_peaks, beats.beats, strict=True):
        np.testing.assert_array_equal(w, signal[r - 10:r + 20].astype(np.float32))
    # a time span keeps whole windows only; a straddling one is counted, not kept
    cut = BeatSet()
    cut.add_record("r", signal, samples, symbols, pre=10, post=20, normalize=True,
                   span=(0, 310))
    assert cut.r_peaks == [100] and cut.time_cut == 1 and cut.other_side == 2
    np.testing.assert_allclose(cut.beats[0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(cut.beats[0].std(), 1.0, atol=1e-5)


def test_class_report_per_class_figures(tmp_path):
    classes = ("N", "S", "V", "F", "Q")
    y = np.array([0] * 8 + [1] * 2 + [2])
    p = np.array([0] * 7 + [1] + [0, 1] + [0])
    rep = class_report(y, p, classes)
    n, s, v, f, _ = rep["per_class"]
    assert (n["support"], n["predicted"]) == (8, 9)
    assert n["precision"] == pytest.approx(7 / 9) and n["recall"] == pytest.approx(7 / 8)
    assert s["precision"] == pytest.approx(1 / 2) and s["recall"] == pytest.approx(1 / 2)
    assert v["precision"] is None and v["recall"] == 0.0 and v["f1"] == 0.0
    assert f["recall"] is None and f["f1"] is None
    assert rep["classes_in_test"] == ["N", "S", "V"]
    assert rep["balanced_accuracy"] == pytest.approx((7 / 8 + 1 / 2 + 0) / 3)
    assert rep["accuracy"] == pytest.approx(8 / 11)
    assert rep["confusion_matrix"][0] == [7, 1, 0, 0, 0]
    assert rep["confusion_matrix"][2] == [1, 0, 0, 0, 0]
    table = format_report(rep)
    assert "| V | 1 | 0 | n/a | 0.0 | 0.0 |" in table and "balanced accuracy 45.8 %" in table
    plot_confusion(rep, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValidationError, match="class index"):
        class_report(y, np.full(11, 5), classes)


@pytest.mark.slow
def test_ecg_mitbih_config_trains_and_reports_per_class(tmp_path):
    import yaml

    from evospike.training import TrainConfig, Trainer

    raw = yaml.safe_load((Path(__file__).parent.parent / "examples" /
                          "ecg_mitbih.yaml").read_text())
    raw["data"]["options"]["root"] = str(ROOT)
    raw["train"]["epochs"] = 1
    raw["output"] = {"dir": str(tmp_path / "run")}
    trainer = Trainer(TrainConfig.from_dict(raw), progress=False)
    summary = trainer.fit(export=False)
    rep = summary["class_report"]
    # the config's window starts 1 s before the R peak: one more N beat lacks a full window
    assert [r["support"] for r in rep["per_class"]] == [667, 10, 1, 0, 0]
    assert rep["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert summary["balanced_accuracy"] == pytest.approx(
        np.mean([r["recall"] for r in rep["per_class"][:3]]))
    assert (tmp_path / "run" / "confusion_matrix.png").exists()
    assert torch.isfinite(torch.tensor(summary["test_loss"]))
