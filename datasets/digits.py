"""scikit-learn's bundled handwritten digits (8x8, 1797 images): a real data set that ships with
the package, so it needs no download."""

from __future__ import annotations

import numpy as np
import torch

from evospike.datasets.base import LabelledDataset, check_split, stratified_split


class Digits(LabelledDataset):
    """``load_digits`` with a fixed stratified split.

    ``x``: float32 ``[64]`` (row-major 8x8 image, pixel value / 16, so in [0, 1]);
    label: the digit 0-9. The split is stratified by class and fixed by ``seed``; the same
    ``test_fraction`` and ``seed`` always give the same train/test partition.
    """

    name = "scikit-learn digits"
    synthetic = False
    classes = tuple(str(d) for d in range(10))
    image_shape = (8, 8)

    def __init__(self, split: str = "train", test_fraction: float = 0.25, seed: int = 0):
        from sklearn.datasets import load_digits

        self.split = check_split("Digits", split, ("train", "test"))
        bunch = load_digits()
        images = np.asarray(bunch.data, dtype=np.float32) / 16.0  # pixel range of the set: 0..16
        targets = np.asarray(bunch.target, dtype=np.int64)
        train, test = stratified_split(targets, test_fraction, seed)
        idx = train if split == "train" else test
        self._x = torch.from_numpy(images[idx].copy())
        self._labels = targets[idx]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (64,)

    @property
    def data(self) -> torch.Tensor:
        """All samples at once, float32 ``[N, 64]`` (handy for full-batch training)."""
        return self._x

    def _get(self, i: int) -> torch.Tensor:
        return self._x[i]
