"""Data-set readers on files written in the real formats, synthetic generators, and the errors
on missing or malformed data."""

import numpy as np
import pytest
import torch

from evospike.datasets import (
    AAMI_CLASSES,
    DS1_RECORDS,
    DS2_RECORDS,
    MITBIH,
    SST2,
    Digits,
    DVSGesture,
    SyntheticDVSGesture,
    SyntheticECG,
    SyntheticSentiment,
    Tokenizer,
)
from evospike.errors import EvoSpikeError, ValidationError
from tests.data_fixtures import write_dvs_gesture, write_mitbih, write_sst2


# ------------------------------------------------------------------------------ digits
def test_digits_fixed_stratified_split():
    train, test = Digits("train"), Digits("test")
    assert len(train) + len(test) == 1797 and len(test) == 450
    x, y = train[0]
    assert x.shape == (64,) and x.dtype == torch.float32 and isinstance(y, int)
    assert float(train.data.min()) >= 0.0 and float(train.data.max()) <= 1.0
    # disjoint: no test image equals a train image at the same label count
    frac = test.class_counts() / (train.class_counts() + test.class_counts())
    assert np.all(np.abs(frac - 0.25) < 0.02)  # stratified
    again = Digits("test")
    assert torch.equal(again.data, test.data)  # fixed by the seed
    other = Digits("test", seed=1)
    assert not torch.equal(other.data, test.data)
    w = train.class_weights()
    assert w.shape == (10,) and torch.allclose(w.mean(), torch.tensor(1.0), atol=0.02)


def test_interface_index_subset_and_loader():
    ds = Digits("test")
    assert torch.equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]
    with pytest.raises(EvoSpikeError, match="integer"):
        ds["a"]
    sub = ds.subset([0, 5, 7])
    assert len(sub) == 3 and torch.equal(sub[1][0], ds[5][0]) and sub[2][1] == ds[7][1]
    with pytest.raises(ValidationError, match="indices"):
        ds.subset([len(ds)])
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert xb.shape == (8, 64) and yb.shape == (8,) and yb.dtype == torch.int64
    with pytest.raises(ValidationError, match="split"):
        Digits("validation")


# ------------------------------------------------------------------------------ DVS
def test_dvs_gesture_reads_tonic_layout(tmp_path):
    files = write_dvs_gesture(tmp_path, "train", n_users=2, labels=range(11))
    ds = DVSGesture(tmp_path, "train", n_time_bins=8, size=32, denoise_us=None)
    assert len(ds) == 22 and ds.n_classes == 11
    assert sorted(ds.labels.tolist()) == sorted(list(range(11)) * 2)
    assert set(ds.users.tolist()) == {1, 2} and "fluorescent" in ds.lighting
    x, y = ds[3]
    assert x.shape == (8, 2, 32, 32) == ds.sample_shape and x.dtype == torch.float32
    # hand count: tonic's bins span [t0, t0 + 8 * ((t_last - t0) // 8)); pixels / 4
    table = np.load(ds.files[3])
    t_us = table[:, 3] * 1000
    width = (t_us[-1] - t_us[0]) // 8
    keep = t_us < t_us[0] + 8 * width
    expect = np.zeros((2, 32, 32))
    np.add.at(expect, (table[keep, 2], table[keep, 1] // 4, table[keep, 0] // 4), 1)
    assert np.array_equal(x.sum(0).numpy(), expect)
    assert str(ds.files[3]) in [str(f) for f in files]
    ev = ds.events(3)
    assert ev.dtype.names == ("x", "y", "p", "t") and len(ev) == len(table)
    xb = DVSGesture(tmp_path, "train", n_time_bins=8, size=32, denoise_us=None, binary=True)[3][0]
    assert torch.equal(xb, (x > 0).float())
    import pickle

    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers under "spawn" pickle it
    assert torch.equal(clone[3][0], x) and clone.files == ds.files


def test_dvs_gesture_denoise_and_test_split(tmp_path):
    write_dvs_gesture(tmp_path, "test", n_users=1, labels=[4, 9])
    raw = DVSGesture(tmp_path, "test", n_time_bins=4, size=32, denoise_us=None)
    den = DVSGesture(tmp_path, "test", n_time_bins=4, size=32, denoise_us=1000.0)
    assert len(raw) == 2 and sorted(raw.labels.tolist()) == [4, 9]
    assert raw.users.tolist() == [24, 24]
    # isolated noise events are removed by tonic's Denoise, the moving edge survives
    assert 0.5 * raw[0][0].sum() < den[0][0].sum() < raw[0][0].sum()


def test_dvs_gesture_missing_and_malformed(tmp_path):
    with pytest.raises(EvoSpikeError, match="ibmGestureTrain.*download=True"):
        DVSGesture(tmp_path, "train")
    (tmp_path / "DVSGesture" / "ibmGestureTrain").mkdir(parents=True)
    with pytest.raises(EvoSpikeError, match="has no such files"):
        DVSGesture(tmp_path, "train")
    write_dvs_gesture(tmp_path, "train", n_users=1, labels=[0, 1])
    user = next((tmp_path / "DVSGesture" / "ibmGestureTrain").iterdir())
    np.save(user / "1.npy", np.zeros((5, 3), dtype=np.int64))  # three columns, not four
    ds = DVSGesture(tmp_path, "train", denoise_us=None)
    bad = [i for i in range(len(ds)) if ds.files[i].endswith("1.npy")][0]
    with pytest.raises(EvoSpikeError, match="1.npy"):
        ds[bad]
    np.save(user / "gesture.npy", np.zeros((5, 4), dtype=np.int64))
    with pytest.raises(EvoSpikeError, match="gesture.npy.*<label>.npy"):
        DVSGesture(tmp_path, "train")
    (user / "gesture.npy").unlink()
    np.save(user / "12.npy", np.zeros((5, 4), dtype=np.int64))
    with pytest.raises(EvoSpikeError, match="label 12"):
        DVSGesture(tmp_path, "train")
    with pytest.raises(ValidationError, match="size"):
        DVSGesture(tmp_path, "train", size=256)


def test_synthetic_dvs_events_and_directions():
    ds = SyntheticDVSGesture(n_samples=8, n_classes=4, seed=3, n_time_bins=4, size=32)
    assert "synthetic" in ds.name and ds.synthetic
    assert ds.class_counts().tolist() == [2, 2, 2, 2]
    from tonic.datasets import DVSGesture as TonicGesture

    for i in range(4):
        ev = ds.events(i)
        assert ev.dtype == TonicGesture.dtype and np.all(np.diff(ev["t"]) >= 0)
        assert ev["x"].min() >= 0 and ev["x"].max() < 128 and ev["y"].max() < 128
        on = ev[ev["p"]]
        early = on[on["t"] < np.quantile(on["t"], 0.25)]
        late = on[on["t"] > np.quantile(on["t"], 0.75)]
        move = np.array([late["x"].mean() - early["x"].mean(),
                         late["y"].mean() - early["y"].mean()])
        angle = 2 * np.pi * ds.labels[i] / 4
        assert move @ np.array([np.cos(angle), np.sin(angle)]) > 0.8 * np.linalg.norm(move)
    assert np.array_equal(ds.events(2), SyntheticDVSGesture(n_samples=8, seed=3).events(2))
    test = SyntheticDVSGesture(n_samples=8, n_classes=4, seed=3, split="test")
    assert not np.array_equal(test.events(0), ds.events(0))
    assert ds[0][0].shape == (4, 2, 32, 32)


# ------------------------------------------------------------------------------ MIT-BIH
@pytest.fixture
def mitbih_root(tmp_path):
    names = [DS1_RECORDS[0], DS1_RECORDS[1], DS2_RECORDS[0]]
    written = write_mitbih(tmp_path, names, duration_s=20.0)
    return tmp_path, written


def test_mitbih_reads_wfdb_records_aami(mitbih_root):
    import wfdb

    root, written = mitbih_root
    rec = DS1_RECORDS[0]
    ds = MITBIH(root, "DS1", records=[rec], pre_samples=90, post_samples=166)
    samples, symbols = written[rec]
    beat_map = {"N": 0, "L": 0, "j": 0, "A": 1, "V": 2, "E": 2, "F": 3, "/": 4, "Q": 4}
    kept = [(s, beat_map[sym]) for s, sym in zip(samples, symbols, strict=True)
            if sym in beat_map and s >= 90 and s + 166 <= 20 * 360]
    assert ds.labels.tolist() == [c for _, c in kept]
    assert ds.r_peaks.tolist() == [s for s, _ in kept]
    assert ds.skipped == {"edge": 1, "non_beat": 2}
    assert ds.fs == 360.0 and ds.classes == AAMI_CLASSES
    # x is the z-scored window of the lead as wfdb reads it back
    sig = wfdb.rdrecord(str(root / rec)).p_signal[:, 0]
    r = int(ds.r_peaks[4])
    win = sig[r - 90:r + 166]
    x, _ = ds[4]
    assert x.shape == (1, 256) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].numpy(), (win - win.mean()) / win.std(), atol=1e-5)
    counts = ds.class_counts()
    w = ds.class_weights().numpy()
    np.testing.assert_allclose(w[counts > 0], len(ds) / (5 * counts[counts > 0]), rtol=1e-6)
    assert "1 too near a record edge" in ds.describe()


def test_mitbih_splits(mitbih_root):
    root, _ = mitbih_root
    names = [DS1_RECORDS[0], DS1_RECORDS[1], DS2_RECORDS[0]]
    ds1 = MITBIH(root, "DS1", records=names[:2])
    ds2 = MITBIH(root, "DS2", records=names[2:])
    assert set(ds1.record_of) == set(names[:2]) and set(ds2.record_of) == {names[2]}
    everything = MITBIH(root, "all", records=names)
    train = MITBIH(root, "train", records=names, test_fraction=0.25, seed=1)
    test = MITBIH(root, "test", records=names, test_fraction=0.25, seed=1)
    assert len(train) + len(test) == len(everything) == len(ds1) + len(ds2)
    keys = lambda d: {(r, p) for r, p in zip(d.record_of, d.r_peaks, strict=True)}  # noqa: E731
    assert not keys(train) & keys(test)
    assert keys(train) | keys(test) == keys(everything)
    with pytest.raises(ValidationError, match="records of DS1"):
        MITBIH(root, "DS1", records=[DS2_RECORDS[0]])


def test_mitbih_missing_and_malformed(tmp_path, mitbih_root):
    root, _ = mitbih_root
    with pytest.raises(EvoSpikeError, match=r"expected '.*101\.hea'"):
        MITBIH(tmp_path / "nowhere", "DS1", records=["101"])
    (root / f"{DS1_RECORDS[1]}.atr").unlink()
    with pytest.raises(EvoSpikeError, match=r"106\.atr"):
        MITBIH(root, "DS1", records=[DS1_RECORDS[1]])
    with pytest.raises(EvoSpikeError, match="no lead 'V5'"):
        MITBIH(root, "DS1", records=[DS1_RECORDS[0]], lead="V5")
    (root / f"{DS2_RECORDS[0]}.hea").write_text("this is not a header\n")
    with pytest.raises(EvoSpikeError, match="wfdb cannot read"):
        MITBIH(root, "DS2", records=[DS2_RECORDS[0]])


def test_synthetic_ecg_and_wfdb_roundtrip(tmp_path):
    ds = SyntheticECG(n_records=2, duration_s=60.0, seed=0)
    assert ds.synthetic and "synthetic" in ds.name
    counts = ds.class_counts()
    assert counts[0] > counts[1] > 0 and counts[2] > 0 and counts[3] == counts[4] == 0
    assert 0.1 < (counts[1] + counts[2]) / len(ds) < 0.3
    # ventricular beats have a wider QRS: samples near R above half the R amplitude
    x = ds.data[:, 0].numpy()
    width = (x[:, 50:130] > 0.5 * x[:, 90:91]).sum(1)
    assert width[ds.labels == 2].mean() > 2.0 * width[ds.labels == 0].mean()
    names = ds.write_wfdb(tmp_path)
    back = MITBIH(tmp_path, "all", records=names)
    assert back.labels.tolist() == ds.labels.tolist()
    np.testing.assert_allclose(back.data.numpy(), ds.data.numpy(), atol=0.05)
    test = SyntheticECG(n_records=2, duration_s=60.0, seed=0, split="test")
    assert not np.array_equal(test.data.numpy()[:5], ds.data.numpy()[:5])


# ------------------------------------------------------------------------------ SST-2
def test_sst2_reads_glue_tsv_and_tokenizer_from_train(tmp_path):
    write_sst2(tmp_path, n_train=40, n_dev=10,
               extra_rows=(('a " quoted " zyzzyva , never seen in training', 1),))
    train = SST2(tmp_path, "train", max_len=8)
    dev = SST2(tmp_path, "dev", max_len=8)
    assert len(train) == 40 and len(dev) == 11
    assert train.tokenizer.vocab == dev.tokenizer.vocab  # dev reuses the train vocabulary
    lines = (tmp_path / "train.tsv").read_text().splitlines()[1:]
    text, label = lines[0].split("\t")
    x, y = train[0]
    assert x.shape == (8,) and x.dtype == torch.int64 and y == int(label)
    toks = Tokenizer.tokens(text)
    n = min(len(toks), 8)
    assert train.lengths[0] == n
    assert train.tokenizer.decode(x) == " ".join(toks[:n])
    assert torch.all(x[n:] == Tokenizer.PAD)
    last, _ = dev[10]
    assert dev.texts[10].startswith('a " quoted "')
    assert Tokenizer.UNK in last.tolist()  # "zyzzyva" is not in the training split
    assert dev.tokenizer.index.get("zyzzyva") is None


def test_sst2_errors(tmp_path):
    with pytest.raises(EvoSpikeError, match=r"train\.tsv.*does not exist"):
        SST2(tmp_path, "train")
    write_sst2(tmp_path, n_train=5, n_dev=3)
    with pytest.raises(EvoSpikeError, match="no labels"):
        SST2(tmp_path, "test")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood film\t2\n")
    with pytest.raises(EvoSpikeError, match="line 2: label must be 0 or 1"):
        SST2(tmp_path, "dev")
    (tmp_path / "dev.tsv").write_text("text\tlabel\ngood film\t1\n")
    with pytest.raises(EvoSpikeError, match="header"):
        SST2(tmp_path, "dev")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood film 1\n")
    with pytest.raises(EvoSpikeError, match="line 2 has 1 tab-separated"):
        SST2(tmp_path, "dev")


def test_tokenizer_build_limits():
    tok = Tokenizer.build(["b b b a a c", "c c c c"], min_freq=2)
    assert tok.vocab == ["<pad>", "<unk>", "c", "b", "a"]
    assert Tokenizer.build(["b b b a a c"], max_vocab=3).vocab == ["<pad>", "<unk>", "b"]
    ids, n = tok.encode("a d c", max_len=5)
    assert ids.tolist() == [4, Tokenizer.UNK, 2, 0, 0] and n == 3
    assert Tokenizer.from_dict(tok.to_dict()).vocab == tok.vocab
    assert Tokenizer.tokens("It's not bad, isn't it?") == ["it", "'s", "not", "bad", ",",
                                                           "isn", "'t", "it", "?"]


def test_synthetic_sentiment():
    train = SyntheticSentiment(n_samples=200, seed=1, max_len=16)
    test = SyntheticSentiment(n_samples=50, seed=1, split="test", max_len=16)
    assert train.synthetic and "synthetic" in train.name
    assert 0.3 < train.labels.mean() < 0.7
    assert test.tokenizer.vocab == SyntheticSentiment(n_samples=50, seed=1).tokenizer.vocab
    assert test.texts != train.texts[:50]
    for text, label in zip(train.texts, train.labels, strict=True):
        last = text.split(" but ")[-1]
        negated = " not " in last
        positive = any(w in last.split() for w in ("good", "great", "wonderful", "charming",
                                                    "moving", "brilliant", "delightful",
                                                    "funny", "beautiful", "clever",
                                                    "engaging", "superb"))
        if " and " not in last:
            assert label == int(positive != negated), text
