"""ECG beats: MIT-BIH Arrhythmia records read with wfdb, and a synthetic ECG with ectopic beats.

A beat is the window ``[R - pre_samples, R + post_samples)`` of one lead around an annotated R
peak, labelled with its AAMI class (ANSI/AAMI EC57; the mapping of de Chazal et al. 2004).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from evospike.datasets.base import (
    LabelledDataset,
    check_positive_int,
    check_split,
    stratified_split,
)
from evospike.errors import EvoSpikeError, ValidationError

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
#: MIT-BIH beat annotation symbol -> AAMI class index (de Chazal, O'Dwyer & Reilly 2004,
#: Table 1). Every other annotation (rhythm changes "+", noise "~", artefacts "|", comments,
#: flutter waves "!", non-conducted P waves "x", ...) marks no beat and is not a sample.
AAMI_MAP = {
    "N": 0, "L": 0, "R": 0, "e": 0, "j": 0,   # N: normal, bundle branch blocks, escapes
    "A": 1, "a": 1, "J": 1, "S": 1,           # S: supraventricular ectopic
    "V": 2, "E": 2,                           # V: ventricular ectopic
    "F": 3,                                   # F: fusion of ventricular and normal
    "/": 4, "f": 4, "Q": 4,                   # Q: paced, fusion of paced, unclassifiable
}
#: de Chazal et al. (2004) inter-patient split; the four paced records (102, 104, 107, 217)
#: are in neither, as in the paper.
DS1_RECORDS = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
               "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2_RECORDS = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
               "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")


@dataclass
class BeatSet:
    """Beats cut from records: windows, labels, and what was not made a sample and why."""

    beats: list = field(default_factory=list)        # float32 arrays [L]
    labels: list = field(default_factory=list)       # AAMI class index
    records: list = field(default_factory=list)      # record name per beat
    r_peaks: list = field(default_factory=list)      # sample index of the R peak
    skipped_edge: int = 0       # beats too close to the record's start or end for a window
    non_beat: int = 0           # annotations that mark no beat (by the AAMI definition)
    time_cut: int = 0           # beats whose window straddles a time split's cut
    other_side: int = 0         # beats of the other side of a time split

    def add_record(self, name: str, signal: np.ndarray, samples: np.ndarray, symbols,
                   pre: int, post: int, normalize: bool,
                   span: tuple[int, int] | None = None) -> None:
        """Cut the beats of one record. ``span = (lo, hi)``: keep only beats whose whole
        window lies in samples ``[lo, hi)`` (a time split); a window that straddles ``lo`` or
        ``hi`` is counted in ``time_cut``, one wholly outside in ``other_side``."""
        n = signal.shape[0]
        for s, sym in zip(samples, symbols, strict=True):
            cls = AAMI_MAP.get(sym)
            if cls is None:
                self.non_beat += 1
                continue
            if s - pre < 0 or s + post > n:
                self.skipped_edge += 1
                continue
            if span is not None and not (span[0] <= s - pre and s + post <= span[1]):
                if s + post <= span[0] or s - pre >= span[1]:
                    self.other_side += 1
                else:
                    self.time_cut += 1
                continue
            window = np.asarray(signal[s - pre:s + post], dtype=np.float64)
            if normalize:
                # per-beat z-score: removes baseline offset and gain differences between leads
                window = (window - window.mean()) / max(window.std(), 1e-6)
            self.beats.append(window.astype(np.float32))
            self.labels.append(cls)
            self.records.append(name)
            self.r_peaks.append(int(s))


class _BeatDataset(LabelledDataset):
    classes = AAMI_CLASSES
    pre_samples: int
    post_samples: int
    fs: float
    _x: torch.Tensor

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (1, self.pre_samples + self.post_samples)

    @property
    def data(self) -> torch.Tensor:
        """All beats at once, float32 ``[N, 1, L]``."""
        return self._x

    def _get(self, i: int) -> torch.Tensor:
        return self._x[i]

    def _finish(self, beats: BeatSet, idx: np.ndarray | None = None) -> None:
        x = np.stack(beats.beats) if beats.beats else np.zeros((0, self.sample_shape[1]),
                                                                np.float32)
        labels = np.asarray(beats.labels, dtype=np.int64)
        rec = np.asarray(beats.records, dtype=object)
        peaks = np.asarray(beats.r_peaks, dtype=np.int64)
        if idx is not None:
            x, labels, rec, peaks = x[idx], labels[idx], rec[idx], peaks[idx]
        self._x = torch.from_numpy(np.ascontiguousarray(x[:, None, :]))
        self._labels = labels
        self.record_of = rec
        self.r_peaks = peaks
        self.skipped = {"edge": beats.skipped_edge, "non_beat": beats.non_beat}
        if beats.time_cut or beats.other_side:  # a time split: what lies at or past its cut
            self.skipped.update(time_cut=beats.time_cut, other_side=beats.other_side)

    def describe(self) -> str:
        text = (super().describe() + f"; annotations not used: {self.skipped['non_beat']} "
                f"non-beat, {self.skipped['edge']} too near a record edge")
        if "time_cut" in self.skipped:
            text += (f", {self.skipped['time_cut']} straddling the time cut, "
                     f"{self.skipped['other_side']} on the other side of it")
        return text


def _check_window(kind: str, pre, post) -> tuple[int, int]:
    pre = check_positive_int(kind, "pre_samples", pre, minimum=0)
    post = check_positive_int(kind, "post_samples", post, minimum=1)
    return pre, post


class MITBIH(_BeatDataset):
    """MIT-BIH Arrhythmia beats read with ``wfdb.rdrecord`` / ``wfdb.rdann``.

    ``root`` holds the PhysioNet files ``<record>.hea``, ``<record>.dat`` and ``<record>.atr``.
    x: float32 ``[1, pre_samples + post_samples]``, one lead (``lead``: a signal name such as
    "MLII", or a channel index) around each annotated beat; label: AAMI class index into
    ``("N", "S", "V", "F", "Q")``. Splits:

    - "DS1" / "DS2": de Chazal et al. (2004) inter-patient training / test records
      (``records`` may name a subset of that list, e.g. to read part of it);
    - "train" / "test": a stratified random split of the beats of ``records`` (default
      DS1 + DS2) with ``test_fraction`` and ``seed`` (beats of one patient land on both sides,
      so this split overstates what a new patient would see);
    - "time_train" / "time_test": a split of every record by time: the first
      ``1 - test_fraction`` of each record's samples are training time, the rest test time; a
      beat belongs to a side only if its whole window lies in it, and beats whose window
      straddles the cut are in neither (``skipped["time_cut"]``), so no sample of the signal is
      in both splits and every training beat precedes every test beat of its record (the
      split for one record, e.g. record 100, where an inter-patient split is impossible);
      ``cut_s`` maps each record to the time of its cut in seconds;
    - "all": every beat of ``records``.

    ``class_weights()`` gives inverse-frequency weights: the set is dominated by N.
    Beats whose window would run past the start or end of a record and annotations that mark
    no beat are not samples; their counts are in ``ds.skipped``.
    """

    name = "MIT-BIH Arrhythmia"
    synthetic = False

    def __init__(self, root: str | os.PathLike, split: str = "DS1",
                 records: list[str] | tuple[str, ...] | None = None, pre_samples: int = 90,
                 post_samples: int = 166, lead: str | int = "MLII", normalize: bool = True,
                 test_fraction: float = 0.2, seed: int = 0):
        self.split = check_split("MITBIH", split, ("DS1", "DS2", "train", "test", "time_train",
                                                   "time_test", "all"))
        by_time = split in ("time_train", "time_test")
        if by_time and not (isinstance(test_fraction, (int, float))
                            and not isinstance(test_fraction, bool)
                            and 0.0 < test_fraction < 1.0):
            raise ValidationError("MITBIH", split, "test_fraction", "must lie in (0, 1)",
                                  test_fraction)
        self.pre_samples, self.post_samples = _check_window("MITBIH", pre_samples, post_samples)
        self.root = Path(root)
        self.lead = lead
        if split in ("DS1", "DS2"):
            allowed = DS1_RECORDS if split == "DS1" else DS2_RECORDS
            names = list(allowed) if records is None else [str(r) for r in records]
            foreign = [r for r in names if r not in allowed]
            if foreign:
                raise ValidationError("MITBIH", split, "records",
                                      f"must be records of {split} {list(allowed)}", foreign)
        else:
            names = (list(DS1_RECORDS + DS2_RECORDS) if records is None
                     else [str(r) for r in records])
        if not names:
            raise ValidationError("MITBIH", split, "records", "must name at least one record",
                                  records)
        self.records = names
        beats = BeatSet()
        fs_seen = set()
        self.cut_s: dict[str, float] = {}
        for name in names:
            signal, fs, samples, symbols = read_wfdb_record(self.root, name, lead)
            fs_seen.add(fs)
            span = None
            if by_time:
                n = signal.shape[0]
                cut = int(round((1.0 - test_fraction) * n))
                self.cut_s[name] = cut / fs
                span = (0, cut) if split == "time_train" else (cut, n)
            beats.add_record(name, signal, samples, symbols, self.pre_samples,
                             self.post_samples, normalize, span)
        if len(fs_seen) > 1:
            raise EvoSpikeError(f"MIT-BIH: records in '{self.root}' have different sampling "
                                f"rates {sorted(fs_seen)}; a beat window needs one")
        self.fs = fs_seen.pop()
        if not beats.beats:
            raise EvoSpikeError(f"MIT-BIH: records {names} in '{self.root}' hold no annotated "
                                f"beat with a full window")
        idx = None
        if split in ("train", "test"):
            train, test = stratified_split(np.asarray(beats.labels), test_fraction, seed)
            idx = train if split == "train" else test
        self._finish(beats, idx)


def read_wfdb_record(root: Path, name: str, lead: str | int
                     ) -> tuple[np.ndarray, float, np.ndarray, list[str]]:
    """(signal of ``lead`` [n] in physical units, fs in Hz, annotated samples, symbols) of
    record ``root/name`` through wfdb; a missing or unreadable file is an `EvoSpikeError`."""
    import wfdb

    base = Path(root) / name
    for ext in ("hea", "dat", "atr"):
        path = base.with_name(f"{name}.{ext}")
        if not path.exists():
            raise EvoSpikeError(
                f"MIT-BIH record '{name}': expected '{path}' (PhysioNet mitdb files "
                f"{name}.hea, {name}.dat, {name}.atr in '{root}'); it does not exist")
    try:
        record = wfdb.rdrecord(str(base))
    except Exception as exc:  # wfdb raises several kinds on a malformed header or signal
        raise EvoSpikeError(f"MIT-BIH record '{name}': wfdb cannot read '{base}.hea/.dat': "
                            f"{exc}") from None
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:
        raise EvoSpikeError(f"MIT-BIH record '{name}': wfdb cannot read annotations "
                            f"'{base}.atr': {exc}") from None
    names = list(record.sig_name or [])
    if isinstance(lead, str):
        if lead not in names:
            raise EvoSpikeError(f"MIT-BIH record '{name}': no lead '{lead}' (leads: {names})")
        channel = names.index(lead)
    else:
        channel = int(lead)
        if not 0 <= channel < record.n_sig:
            raise EvoSpikeError(f"MIT-BIH record '{name}': lead index {lead} out of range for "
                                f"{record.n_sig} signals {names}")
    signal = np.asarray(record.p_signal[:, channel], dtype=np.float64)
    if not np.isfinite(signal).all():
        bad = int(np.argmax(~np.isfinite(signal)))
        raise EvoSpikeError(f"MIT-BIH record '{name}': lead {names[channel] if names else lead}"
                            f" has a missing/invalid sample at index {bad}")
    return signal, float(record.fs), np.asarray(ann.sample, dtype=np.int64), list(ann.symbol)


# ---------------------------------------------------------------------------- synthetic ECG
#: Gaussian waves (angle in rad of the cardiac phase relative to R, amplitude mV, width rad),
#: the P, Q, R, S, T shape of McSharry et al. (2003, ECGSYN, Table 1)
_NORMAL_WAVES = ((-np.pi / 3, 0.12, 0.25), (-np.pi / 12, -0.5, 0.1), (0.0, 3.0, 0.1),
                 (np.pi / 12, -0.75, 0.1), (np.pi / 2, 0.75, 0.4))


def _beat_waves(kind: str, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    scale = rng.normal(1.0, 0.05)
    if kind == "N":
        return [(a, h * scale, w) for a, h, w in _NORMAL_WAVES]
    if kind == "A":  # premature atrial: abnormal (inverted, early) P, normal QRS-T
        waves = [(a, h * scale, w) for a, h, w in _NORMAL_WAVES]
        waves[0] = (-np.pi / 2.5, -0.15 * scale, 0.2)
        return waves
    if kind == "V":  # premature ventricular: no P, wide tall QRS, discordant T
        return [(-np.pi / 10, -0.6 * scale, 0.25), (0.0, 4.0 * scale, 0.28),
                (np.pi / 7, -1.5 * scale, 0.25), (np.pi / 2, -1.0 * scale, 0.45)]
    raise ValueError(kind)


def synthesize_ecg(rng: np.random.Generator, duration_s: float, fs: float,
                   ectopic_fraction: float, heart_rate_bpm: float = 70.0
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A synthetic single-lead ECG (mV) with beat annotations.

    Normal beats follow a jittered RR interval; with probability ``ectopic_fraction`` a beat is
    replaced by a premature one: supraventricular ("A": 65% of the RR, abnormal P, normal QRS)
    or ventricular ("V": 60% of the RR, no P, wide QRS, followed by a compensatory pause).
    Each beat is a sum of Gaussian waves in cardiac phase (the wave shapes of ECGSYN, which
    neurokit2's ``ecg_simulate`` also implements, drawn here beat by beat so that single beats
    can be made ectopic), plus slow baseline wander and white noise.
    Returns (signal [n], R-peak samples, symbols).
    """
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    rr_mean = 60.0 / heart_rate_bpm
    peaks, symbols = [], []
    time = 0.4
    prev_kind = "N"
    while True:
        rr = rr_mean * rng.normal(1.0, 0.04)
        kind = "N"
        if prev_kind == "N" and rng.random() < ectopic_fraction:
            kind = "A" if rng.random() < 0.5 else "V"
        if kind == "A":
            rr *= 0.65
        elif kind == "V":
            rr *= 0.6
        elif prev_kind == "V":
            rr *= 1.4  # compensatory pause after a ventricular ectopic beat
        time += rr
        if time >= duration_s - 0.4:
            break
        peaks.append(time)
        symbols.append(kind)
        prev_kind = kind
    signal = np.zeros(n)
    for tp, kind in zip(peaks, symbols, strict=True):
        # phase runs over one mean RR so that wave widths do not shrink in premature beats
        lo = max(0, int((tp - 0.6 * rr_mean) * fs))
        hi = min(n, int((tp + 0.8 * rr_mean) * fs))
        phase = (t[lo:hi] - tp) / rr_mean * 2 * np.pi
        for angle, height, width in _beat_waves(kind, rng):
            signal[lo:hi] += 0.3 * height * np.exp(-((phase - angle) ** 2) / (2 * width ** 2))
    signal += 0.05 * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
    signal += rng.normal(0.0, 0.01, n)
    samples = np.round(np.asarray(peaks) * fs).astype(np.int64)
    return signal, samples, symbols


class SyntheticECG(_BeatDataset):
    """SYNTHETIC ECG beats: ``n_records`` generated records (`synthesize_ecg`: normal beats and
    premature supraventricular "A" and ventricular "V" beats), segmented exactly like `MITBIH`
    (same windows, AAMI classes; F and Q never occur). Records are drawn from
    ``(seed, split, record index)``; "train" and "test" never share a record.
    ``write_wfdb(folder)`` writes the records as MIT-BIH-format files readable by `MITBIH`.
    """

    synthetic = True

    def __init__(self, n_records: int = 4, duration_s: float = 60.0, split: str = "train",
                 seed: int = 0, fs: float = 360.0, ectopic_fraction: float = 0.2,
                 pre_samples: int = 90, post_samples: int = 166, normalize: bool = True,
                 heart_rate_bpm: float = 70.0):
        kind = "SyntheticECG"
        self.split = check_split(kind, split, ("train", "test"))
        n_records = check_positive_int(kind, "n_records", n_records)
        self.pre_samples, self.post_samples = _check_window(kind, pre_samples, post_samples)
        for fld, val, lo in (("duration_s", duration_s, 5.0), ("fs", fs, 50.0),
                             ("heart_rate_bpm", heart_rate_bpm, 20.0)):
            if not (np.isfinite(val) and val >= lo):
                raise ValidationError(kind, kind, fld, f"must be at least {lo}", val)
        if not 0.0 <= ectopic_fraction < 1.0:
            raise ValidationError(kind, kind, "ectopic_fraction", "must lie in [0, 1)",
                                  ectopic_fraction)
        self.name = "synthetic ECG (normal + ectopic beats)"
        self.fs = float(fs)
        split_code = 0 if split == "train" else 1
        self.recordings = []
        beats = BeatSet()
        for r in range(n_records):
            rng = np.random.default_rng([int(seed), split_code, r])
            signal, samples, symbols = synthesize_ecg(rng, duration_s, fs, ectopic_fraction,
                                                      heart_rate_bpm)
            name = f"syn{split_code}{r:03d}"
            self.recordings.append((name, signal, samples, symbols))
            beats.add_record(name, signal, samples, symbols, self.pre_samples,
                             self.post_samples, normalize)
        self.records = [rec[0] for rec in self.recordings]
        self._finish(beats)

    def write_wfdb(self, folder: str | os.PathLike) -> list[str]:
        """Write every record as ``<name>.hea/.dat`` (format 212, lead "MLII", mV) and
        ``<name>.atr`` (beat symbols) with wfdb; returns the record names."""
        import wfdb

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, signal, samples, symbols in self.recordings:
            wfdb.wrsamp(name, fs=self.fs, units=["mV"], sig_name=["MLII"],
                        p_signal=signal[:, None], fmt=["212"], adc_gain=[200.0],
                        baseline=[1024], write_dir=str(folder))
            wfdb.wrann(name, "atr", np.asarray(samples, dtype=np.int64),
                       symbol=list(symbols), write_dir=str(folder))
        return list(self.records)
