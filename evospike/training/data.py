"""Data for training: an `evospike.datasets` data set, read once into tensors (the data sets
trained on here fit in memory), split into train / validation / test.

``DATASETS`` maps the config's ``data.dataset`` to the data-set class and the names of its
train and test splits. Synthetic data sets are named as such in every record they leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evospike.errors import EvoSpikeError

#: config name -> (class name in evospike.datasets, train split, test split)
DATASETS: dict[str, tuple[str, str, str]] = {
    "digits": ("Digits", "train", "test"),
    "dvs128_gesture": ("DVSGesture", "train", "test"),
    "synthetic_dvs_gesture": ("SyntheticDVSGesture", "train", "test"),
    "mitbih": ("MITBIH", "DS1", "DS2"),
    "synthetic_ecg": ("SyntheticECG", "train", "test"),
    "sst2": ("SST2", "train", "dev"),
    "synthetic_sentiment": ("SyntheticSentiment", "train", "test"),
}


@dataclass
class TensorData:
    """One split in memory: ``x`` (N, *shape), ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Splits:
    train: TensorData
    val: TensorData | None
    test: TensorData
    n_classes: int
    classes: tuple[str, ...]
    description: str
    synthetic: bool
    class_weights: torch.Tensor
    sample_shape: tuple[int, ...]
    extra: dict


def _to_tensors(ds, what: str) -> TensorData:
    if len(ds) == 0:
        raise EvoSpikeError(f"{what}: the data set holds no samples")
    pairs = [ds[i] for i in range(len(ds))]
    return TensorData(torch.stack([torch.as_tensor(x) for x, _ in pairs]),
                      torch.as_tensor(np.asarray([y for _, y in pairs]), dtype=torch.int64))


def load_splits(dataset: str, options: dict, validation_fraction: float, seed: int,
                splits: tuple[str, str] | None = None) -> Splits:
    """Build the train (minus a stratified validation part), validation and test splits;
    ``splits`` names the data set's train and test splits (default: `DATASETS`)."""
    import evospike.datasets as dsets
    from evospike.datasets import stratified_split

    cls_name, train_split, test_split = DATASETS[dataset]
    if splits is not None:
        train_split, test_split = splits
    cls = getattr(dsets, cls_name)
    opts = dict(options)
    try:
        train_ds = cls(split=train_split, **opts)
        extra = {}
        if hasattr(train_ds, "tokenizer") and "tokenizer" not in opts:
            opts["tokenizer"] = train_ds.tokenizer  # the test split uses the train vocabulary
            extra["tokenizer"] = train_ds.tokenizer
        test_ds = cls(split=test_split, **opts)
    except TypeError as exc:  # an option the data set does not take
        raise EvoSpikeError(f"data.options for '{dataset}' ({cls_name}): {exc}") from None
    train = _to_tensors(train_ds, f"{dataset} [{train_split}]")
    test = _to_tensors(test_ds, f"{dataset} [{test_split}]")
    val = None
    if validation_fraction > 0:
        tr_idx, val_idx = stratified_split(train.y.numpy(), validation_fraction, seed)
        val = TensorData(train.x[val_idx], train.y[val_idx])
        train = TensorData(train.x[tr_idx], train.y[tr_idx])
    description = (f"{train_ds.name}: train {len(train)}, validation "
                   f"{0 if val is None else len(val)}, test {len(test)} ({test_split} split)")
    return Splits(train, val, test, train_ds.n_classes, tuple(train_ds.classes), description,
                  bool(train_ds.synthetic), train_ds.class_weights(),
                  tuple(train_ds.sample_shape), extra)
