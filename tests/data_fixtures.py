"""Write small data sets in exactly the real on-disk formats, for tests (and for trying a
pipeline without the real data):

- `write_dvs_gesture`: tonic's extracted DVS128 Gesture layout,
  ``root/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy`` with ``(N, 4)`` int64 event
  arrays (x, y, p, t in milliseconds), as tonic's ``ibmGestureTrain.tar.gz`` unpacks;
- `write_mitbih`: PhysioNet/wfdb records ``<name>.hea/.dat`` (format 212, lead MLII, 360 Hz)
  and ``<name>.atr`` annotations, written with ``wfdb.wrsamp`` / ``wfdb.wrann``;
- `write_sst2`: GLUE SST-2 ``train.tsv`` / ``dev.tsv`` (header ``sentence<TAB>label``).

The content is synthetic (moving squares, simulated ECG, template sentences) so that a model
trained on the fixtures has something to learn; only the format is the real one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evospike.datasets.dvs import _moving_square_events
from evospike.datasets.ecg import synthesize_ecg
from evospike.datasets.text import synthesize_sentence

LIGHTINGS = ("fluorescent", "led", "natural", "lab", "fluorescent_led")


def write_dvs_gesture(root, split: str = "train", n_users: int = 2,
                      labels=tuple(range(11)), seed: int = 0, duration_ms: float = 200.0,
                      noise_events: int = 30) -> list[Path]:
    """Write one sample per user and label; returns the files written."""
    folder = Path(root) / "DVSGesture" / ("ibmGestureTrain" if split == "train"
                                          else "ibmGestureTest")
    first_user = 1 if split == "train" else 24  # the real set: users 1-23 train, 24-29 test
    files = []
    for u in range(n_users):
        user_dir = folder / f"user{first_user + u:02d}_{LIGHTINGS[u % len(LIGHTINGS)]}"
        user_dir.mkdir(parents=True, exist_ok=True)
        for label in labels:
            rng = np.random.default_rng([seed, u, int(label)])
            ev = _moving_square_events(rng, int(label), 11, duration_ms, noise_events)
            table = np.stack([ev["x"].astype(np.int64), ev["y"].astype(np.int64),
                              ev["p"].astype(np.int64), ev["t"] // 1000], axis=1)
            path = user_dir / f"{int(label)}.npy"
            np.save(path, table)
            files.append(path)
    return files


def write_mitbih(root, names, duration_s: float = 20.0, seed: int = 0, fs: float = 360.0,
                 extra_annotations: bool = True) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Write records ``names`` with simulated ECG; returns {name: (samples, symbols)} of the
    annotations written. With ``extra_annotations``, each record also gets annotations of the
    other AAMI classes ("F", "/", "Q", "L", "j", "E"), non-beat marks ("+" rhythm, "~" noise)
    and one beat too close to the start for a window."""
    import wfdb

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, name in enumerate(names):
        rng = np.random.default_rng([seed, k])
        signal, samples, symbols = synthesize_ecg(rng, duration_s, fs, 0.2)
        samples = list(samples)
        symbols = list(symbols)
        if extra_annotations:
            # relabel a few beats (morphology unchanged: only the label mapping is tested)
            for j, sym in zip(range(2, 2 + 6), ("F", "/", "Q", "L", "j", "E"), strict=True):
                symbols[j] = sym
            samples += [5, int(samples[10]) + 20, int(samples[12]) + 20]
            symbols += ["N", "+", "~"]
        order = np.argsort(samples, kind="stable")
        samples = np.asarray(samples, dtype=np.int64)[order]
        symbols = [symbols[i] for i in order]
        wfdb.wrsamp(str(name), fs=fs, units=["mV"], sig_name=["MLII"],
                    p_signal=signal[:, None], fmt=["212"], adc_gain=[200.0], baseline=[1024],
                    write_dir=str(root))
        aux = ["(N" if s == "+" else "" for s in symbols]
        wfdb.wrann(str(name), "atr", samples, symbol=symbols, aux_note=aux,
                   write_dir=str(root))
        written[str(name)] = (samples, symbols)
    return written


def write_sst2(root, n_train: int = 60, n_dev: int = 20, seed: int = 0,
               extra_rows: tuple[tuple[str, int], ...] = ()) -> Path:
    """Write ``train.tsv`` and ``dev.tsv``; ``extra_rows`` are appended to dev.tsv."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [synthesize_sentence(rng) for _ in range(n)]
        if split == "dev":
            rows += list(extra_rows)
        with open(root / f"{split}.tsv", "w", encoding="utf-8") as handle:
            handle.write("sentence\tlabel\n")
            for text, label in rows:
                handle.write(f"{text} \t{label}\n")  # GLUE's lines end their text in a space
    return root
