"""The interface every EvoSpike data set shares (see the package docstring for the contract)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from evospike.errors import EvoSpikeError, ValidationError


class LabelledDataset(Dataset):
    """A torch-style map data set of ``(x, label)`` pairs with class bookkeeping.

    Subclasses set ``name``, ``classes``, ``split``, ``synthetic`` and ``_labels`` (int64 array,
    one entry per sample) and implement `_get(i) -> torch.Tensor`. Everything else (length,
    index checks, class counts and weights) lives here so that every data set answers alike.
    """

    #: human-readable name; synthetic generators say "synthetic" in it
    name: str = "dataset"
    #: True for generated data (never mistake it for the real data set)
    synthetic: bool = False
    #: class names, index = label
    classes: tuple[str, ...] = ()
    #: which split this object holds ("train", "test", "DS1", ...)
    split: str = ""
    _labels: np.ndarray

    # ------------------------------------------------------------------ contract
    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> np.ndarray:
        """Labels of all samples, int64, shape ``(len(self),)`` (a copy)."""
        return np.asarray(self._labels, dtype=np.int64).copy()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one ``x`` (without a batch dimension)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return int(len(self._labels))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = self._check_index(index)
        return self._get(i), int(self._labels[i])

    def _get(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def _check_index(self, index) -> int:
        if isinstance(index, (torch.Tensor, np.ndarray)) and np.ndim(index) == 0:
            index = int(index)
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise EvoSpikeError(f"{self.name} ({self.split}): index must be an integer, "
                                f"got {index!r}")
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"{self.name} ({self.split}): index {index} is out of range for "
                             f"{n} samples")
        return i

    # ------------------------------------------------------------------ class balance
    def class_counts(self) -> np.ndarray:
        """Number of samples of each class, int64, shape ``(n_classes,)``."""
        return np.bincount(self._labels, minlength=self.n_classes).astype(np.int64)

    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency loss weights ``N / (n_classes * count_c)``, float32
        ``(n_classes,)``, for ``torch.nn.CrossEntropyLoss(weight=...)``: a balanced data set gets
        all ones. A class with no sample here gets weight 0 (it cannot contribute to the loss)."""
        counts = self.class_counts().astype(np.float64)
        weights = np.zeros_like(counts)
        present = counts > 0
        weights[present] = len(self) / (self.n_classes * counts[present])
        return torch.as_tensor(weights, dtype=torch.float32)

    def subset(self, indices) -> Subset:
        """A view of some samples of this data set, keeping the class bookkeeping."""
        return Subset(self, indices)

    def describe(self) -> str:
        """One line: name, split, size, shape and class counts."""
        pairs = zip(self.classes, self.class_counts(), strict=True)
        counts = ", ".join(f"{c}={n}" for c, n in pairs)
        return (f"{self.name} [{self.split}]: {len(self)} samples of shape "
                f"{tuple(self.sample_shape)}, classes: {counts}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class Subset(LabelledDataset):
    """Samples ``indices`` of a `LabelledDataset`, with the same classes and interface."""

    def __init__(self, parent: LabelledDataset, indices):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(parent)
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            raise ValidationError("Subset", parent.name, "indices",
                                  f"must lie in [0, {n})", idx[bad][:5].tolist())
        self.parent = parent
        self.indices = idx
        self.name = parent.name
        self.synthetic = parent.synthetic
        self.classes = parent.classes
        self.split = f"{parent.split} subset"
        self._labels = parent.labels[idx]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.parent.sample_shape

    def _get(self, i: int) -> torch.Tensor:
        return self.parent[int(self.indices[i])][0]


def stratified_split(labels, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a stratified random split (each class split in the same
    proportion), fixed by ``seed``; both sorted."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValidationError("split", "stratified", "test_fraction", "must lie in (0, 1)",
                              test_fraction)
    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None  # a singleton class cannot be stratified
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                   stratify=stratify)
    return np.sort(train), np.sort(test)


def check_split(kind: str, split: str, allowed: tuple[str, ...]) -> str:
    if split not in allowed:
        raise ValidationError(kind, kind, "split", f"must be one of {list(allowed)}", split)
    return split


def check_positive_int(kind: str, field: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(kind, kind, field, f"must be an integer >= {minimum}", value)
    return int(value)
