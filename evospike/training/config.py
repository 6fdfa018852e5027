"""The training configuration (YAML), checked up front: every error names the key and the value.

    name: digits
    seed: 0
    device: cpu            # or cuda, cuda:1
    threads: 2             # torch CPU threads (0: leave torch's default)
    data:
      dataset: digits      # see evospike.training.data.DATASETS
      options: {test_fraction: 0.2}
      validation_fraction: 0.1
      splits: [train, test]  # optional: the data set's train and test split names
    model: {...}           # a SpikingNetwork spec (evospike.training.model), or
                           # {reference: <name>, ...options} for a model of evospike.models
    train:
      epochs: 40
      batch_size: 64
      lr: 0.002
      weight_decay: 0.0
      schedule: cosine     # or none
      class_weights: false # weight the loss by inverse class frequency
      early_stopping: {patience: 10, metric: val_accuracy}  # or val_loss: epochs without
                           # improvement before stopping; the best epoch's weights are kept
      neuromodulation: {kind: novelty, gain: 1.0, tau_batches: 20, max_factor: 3.0}
      pruning: {r_target: 0.3, warmup_steps: 200, tau_steps: 150, lambda_stability: 0.0,
                attractor: true}   # terminal-attractor pruning (evospike.training.pruning)
    output: {dir: runs/digits}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evospike.errors import EvoSpikeError, ValidationError

_TOP = {"name", "seed", "device", "threads", "data", "model", "train", "output"}
_DATA = {"dataset", "options", "validation_fraction", "splits"}
_TRAIN = {"epochs", "batch_size", "lr", "weight_decay", "schedule", "class_weights",
          "early_stopping", "neuromodulation", "logit_scale", "pruning"}
_EARLY = {"patience", "min_delta", "metric"}
METRICS = ("val_accuracy", "val_loss")
_NEUROMOD = {"kind", "gain", "tau_batches", "max_factor"}
SCHEDULES = ("cosine", "none")


def _bad(key: str, problem: str, value: object) -> ValidationError:
    return ValidationError("training config", "config", key, problem, value)


def _number(section: dict, key: str, where: str, default, *, low=None, low_open=False,
            integer=False):
    value = section.get(key, default)
    ok_type = (isinstance(value, int) if integer else isinstance(value, (int, float)))
    if isinstance(value, bool) or not ok_type:
        raise _bad(f"{where}{key}", "must be an integer" if integer else "must be a number", value)
    if low is not None and (value <= low if low_open else value < low):
        raise _bad(f"{where}{key}", f"must be {'>' if low_open else '>='} {low}", value)
    return value


def _unknown(section: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(section) - allowed)
    if extra:
        raise _bad(f"{where}{extra[0]}", f"is not a known key (known: {sorted(allowed)})",
                   section[extra[0]])


@dataclass
class TrainConfig:
    """A checked training configuration (see the module docstring for the keys)."""

    name: str = "run"
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    dataset: str = "digits"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    validation_fraction: float = 0.1
    splits: tuple[str, str] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    class_weights: bool = False
    logit_scale: float = 1.0
    patience: int | None = None
    min_delta: float = 0.0
    select_metric: str = "val_accuracy"
    neuromodulation: dict[str, Any] | None = None
    pruning: dict[str, Any] | None = None
    out_dir: str = "runs/run"
    raw: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_dict(raw: dict[str, Any], base_dir: str | Path | None = None) -> TrainConfig:
        from .data import DATASETS

        if not isinstance(raw, dict):
            raise _bad("(top level)", "must be a mapping of keys to values", raw)
        _unknown(raw, _TOP, "")
        for key in ("data", "model", "train"):
            if not isinstance(raw.get(key), dict):
                raise _bad(key, "is required and must be a mapping", raw.get(key))
        cfg = TrainConfig(raw=copy.deepcopy(raw))
        cfg.name = str(raw.get("name", "run"))
        cfg.seed = _number(raw, "seed", "", 0, low=0, integer=True)
        cfg.device = raw.get("device", "cpu")
        if not isinstance(cfg.device, str) or not (cfg.device == "cpu"
                                                   or cfg.device.startswith("cuda")):
            raise _bad("device", "must be 'cpu' or 'cuda[:N]'", cfg.device)
        cfg.threads = _number(raw, "threads", "", 0, low=0, integer=True)
        data = raw["data"]
        _unknown(data, _DATA, "data.")
        cfg.dataset = data.get("dataset")
        if cfg.dataset not in DATASETS:
            raise _bad("data.dataset", f"must be one of {sorted(DATASETS)}", cfg.dataset)
        options = data.get("options", {}) or {}
        if not isinstance(options, dict):
            raise _bad("data.options", "must be a mapping", options)
        cfg.dataset_options = dict(options)
        splits = data.get("splits")
        if splits is not None:
            if not (isinstance(splits, (list, tuple)) and len(splits) == 2
                    and all(isinstance(x, str) for x in splits)):
                raise _bad("data.splits", "must be two split names [train, test]", splits)
            cfg.splits = (splits[0], splits[1])
        cfg.validation_fraction = _number(data, "validation_fraction", "data.", 0.1, low=0.0)
        if cfg.validation_fraction >= 0.5:
            raise _bad("data.validation_fraction", "must be below 0.5",
                       cfg.validation_fraction)
        cfg.model = dict(raw["model"])
        train = raw["train"]
        _unknown(train, _TRAIN, "train.")
        cfg.epochs = _number(train, "epochs", "train.", 10, low=1, integer=True)
        cfg.batch_size = _number(train, "batch_size", "train.", 64, low=1, integer=True)
        cfg.lr = float(_number(train, "lr", "train.", 1e-3, low=0.0, low_open=True))
        cfg.weight_decay = float(_number(train, "weight_decay", "train.", 0.0, low=0.0))
        cfg.logit_scale = float(_number(train, "logit_scale", "train.", 1.0, low=0.0,
                                        low_open=True))
        cfg.schedule = train.get("schedule", "cosine")
        if cfg.schedule not in SCHEDULES:
            raise _bad("train.schedule", f"must be one of {SCHEDULES}", cfg.schedule)
        cfg.class_weights = train.get("class_weights", False)
        if not isinstance(cfg.class_weights, bool):
            raise _bad("train.class_weights", "must be true or false", cfg.class_weights)
        early = train.get("early_stopping")
        if early is not None:
            if not isinstance(early, dict):
                raise _bad("train.early_stopping", "must be a mapping such as {patience: 10}",
                           early)
            _unknown(early, _EARLY, "train.early_stopping.")
            cfg.patience = _number(early, "patience", "train.early_stopping.", 10, low=1,
                                   integer=True)
            cfg.min_delta = float(_number(early, "min_delta", "train.early_stopping.", 0.0,
                                          low=0.0))
            cfg.select_metric = early.get("metric", "val_accuracy")
            if cfg.select_metric not in METRICS:
                raise _bad("train.early_stopping.metric", f"must be one of {METRICS}",
                           cfg.select_metric)
        mod = train.get("neuromodulation")
        if mod is not None:
            if not isinstance(mod, dict):
                raise _bad("train.neuromodulation", "must be a mapping", mod)
            _unknown(mod, _NEUROMOD, "train.neuromodulation.")
            if mod.get("kind", "novelty") != "novelty":
                raise _bad("train.neuromodulation.kind", "must be 'novelty'", mod.get("kind"))
            w = "train.neuromodulation."
            cfg.neuromodulation = {
                "gain": float(_number(mod, "gain", w, 1.0, low=0.0)),
                "tau_batches": float(_number(mod, "tau_batches", w, 20.0, low=1.0)),
                "max_factor": float(_number(mod, "max_factor", w, 3.0, low=1.0)),
            }
        from .pruning import parse_pruning

        cfg.pruning = parse_pruning(train.get("pruning"))
        out = raw.get("output", {}) or {}
        if not isinstance(out, dict):
            raise _bad("output", "must be a mapping such as {dir: runs/x}", out)
        _unknown(out, {"dir"}, "output.")
        out_dir = Path(out.get("dir", f"runs/{cfg.name}"))
        if base_dir is not None and not out_dir.is_absolute():
            out_dir = Path(base_dir) / out_dir
        cfg.out_dir = str(out_dir)
        return cfg

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        """Read a YAML config; relative output paths are taken from the current directory."""
        import yaml

        path = Path(path)
        if not path.exists():
            raise EvoSpikeError(f"config file '{path}' does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise EvoSpikeError(f"config file '{path}' is not valid YAML: {exc}") from None
        return TrainConfig.from_dict(raw)
