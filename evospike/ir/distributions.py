"""Random initial values, drawn per trial from the run seed (not at build time), so a batch of
trials starts from independent states and trial b equals the same seed run alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evospike.errors import ValidationError, real_number


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high), in the unit of the variable it initialises."""

    low: float
    high: float

    def __post_init__(self) -> None:
        label = f"{self.low}..{self.high}"
        object.__setattr__(self, "low", real_number("Uniform", label, "low", self.low))
        object.__setattr__(self, "high", real_number("Uniform", label, "high", self.high))
        if not np.isfinite(self.low):
            raise ValidationError("Uniform", label, "low", "must be finite", self.low)
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise ValidationError("Uniform", f"{self.low}..{self.high}", "high", "must exceed low",
                                  self.high)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)


@dataclass(frozen=True)
class Normal:
    """Normal with ``mean`` and standard deviation ``std``, in the unit of the variable."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        label = f"{self.mean}+-{self.std}"
        object.__setattr__(self, "mean", real_number("Normal", label, "mean", self.mean))
        object.__setattr__(self, "std", real_number("Normal", label, "std", self.std))
        if not np.isfinite(self.mean):
            raise ValidationError("Normal", label, "mean", "must be finite", self.mean)
        if not (np.isfinite(self.mean) and np.isfinite(self.std) and self.std >= 0):
            raise ValidationError("Normal", f"{self.mean}+-{self.std}", "std",
                                  "must be finite and >= 0", self.std)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.normal(self.mean, self.std, size)


Distribution = Uniform | Normal
DISTRIBUTIONS: dict[str, type] = {"Uniform": Uniform, "Normal": Normal}
