"""The training loop: surrogate-gradient BPTT with Adam, one epoch at a time.

    from evospike.training import TrainConfig, Trainer
    trainer = Trainer(TrainConfig.load("examples/digits.yaml"))
    summary = trainer.fit()            # or fit(resume=True) after an interruption

What a run leaves in ``output.dir``:

- ``metrics.json``: one record per epoch (losses, accuracies, learning rate, wall time),
  rewritten atomically after every epoch;
- ``checkpoint.pt``: model, optimiser, epoch, metrics, best weights, early-stopping and
  neuromodulation state, written atomically after every epoch as plain data (tensors, dicts,
  lists, numbers, strings: it loads with ``torch.load(weights_only=True)``, and a file that
  would need unpickling is refused); ``fit(resume=True)`` continues
  from it and gives the same result as an uninterrupted run (the batch order of epoch ``e`` is
  drawn from ``(seed, e)`` alone);
- ``learning_curve.png``; ``summary.json`` (test accuracy of the best-validation weights,
  wall time, data set); ``model.h5``: the trained network as an IR network (`Network.save`)
  with the first test sample attached as its input, runnable by ``evospike run``.

Neuromodulated learning rate (``train.neuromodulation``, off by default): the batch loss is
compared with its running mean and spread (exponential averages over ``tau_batches`` batches);
its novelty ``z = max(0, (loss - mean) / spread)`` scales the step size,
``lr_batch = lr_epoch * min(max_factor, 1 + gain * z)``. Unexpectedly hard batches (novel
input) are learned faster; familiar ones at the base rate (after Mei, Muller & Ramaswamy 2022,
the novelty-driven learning rate of `shared/background/neuromodulation-article.txt`).

Terminal-attractor pruning (``train.pruning``, off by default; `evospike.training.pruning`):
the Adam optimiser is wrapped in `TerminalAttractorOptimizer` (E = the batch loss); pruned
weights stay exactly 0 through training, checkpoints and ``--resume`` (the wrapper's masks,
shadow weights, scores and loss window are in ``checkpoint.pt``); every epoch's record in
``metrics.json`` carries R(t), the pruned fraction and the global threshold, the learning curve
gets a third panel with them, and the best epoch is chosen among epochs after the schedule has
settled, so the exported ``model.h5`` is the pruned network (pruned synapses absent).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evospike.atomic import atomic_path
from evospike.errors import EvoSpikeError

from .checkpoint import plain, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Splits, TensorData, load_splits

CHECKPOINT = "checkpoint.pt"
_CHECKPOINT_KEYS = ("config", "epoch", "history", "model", "optimizer", "best_acc", "best_score",
                    "best_state", "best_epoch", "stale", "wall_s", "modulator", "torch_rng")


def build_model(cfg: TrainConfig, splits: Splits) -> torch.nn.Module:
    """A `SpikingNetwork` from the model spec, or a reference model of `evospike.models`."""
    spec = dict(cfg.model)
    if "reference" in spec:
        from evospike.models import build_reference

        name = spec.pop("reference")
        return build_reference(name, n_classes=splits.n_classes,
                               sample_shape=splits.sample_shape, extra=splits.extra, **spec)
    from .leaky_model import LeakyNetwork, is_leaky_spec
    from .model import SpikingNetwork

    model = LeakyNetwork(spec) if is_leaky_spec(spec) else SpikingNetwork(spec)
    if model.n_classes != splits.n_classes:
        raise EvoSpikeError(f"model: the readout has {model.n_classes} neurons but the data set "
                            f"has {splits.n_classes} classes")
    return model


class NoveltyModulator:
    """Novelty-driven learning-rate factor (see the module docstring)."""

    def __init__(self, gain: float, tau_batches: float, max_factor: float):
        self.gain, self.max_factor = gain, max_factor
        self.rate = 1.0 / tau_batches
        self.mean: float | None = None
        self.var = 0.0

    def factor(self, loss: float) -> float:
        if self.mean is None:
            self.mean = loss
            return 1.0
        spread = math.sqrt(self.var) + 1e-8
        z = max(0.0, (loss - self.mean) / spread) if self.var > 0 else 0.0
        delta = loss - self.mean
        self.mean += self.rate * delta
        self.var = (1 - self.rate) * (self.var + self.rate * delta * delta)
        return min(self.max_factor, 1.0 + self.gain * z)

    def state(self) -> dict:
        return {"mean": self.mean, "var": self.var}

    def load(self, state: dict) -> None:
        self.mean, self.var = state["mean"], state["var"]


class Trainer:
    """Trains the model a `TrainConfig` describes; see the module docstring."""

    def __init__(self, cfg: TrainConfig, progress: bool = True, splits: Splits | None = None):
        self.cfg = cfg
        self.progress = progress
        self.out = Path(cfg.out_dir)
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise EvoSpikeError(f"device {cfg.device!r} requested but CUDA is not available")
        self.device = torch.device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self._seed_everything(cfg.seed)
        self.splits = splits or load_splits(cfg.dataset, cfg.dataset_options,
                                            cfg.validation_fraction, cfg.seed, cfg.splits)
        self.model = build_model(cfg, self.splits).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
        self.pruner = None
        if cfg.pruning is not None:
            from .pruning import wrap_optimizer

            self.pruner = wrap_optimizer(self.optimizer, self.model, cfg.pruning)
            self.optimizer = self.pruner
        self.loss_weight = (self.splits.class_weights.to(self.device) if cfg.class_weights
                            else None)
        nm = cfg.neuromodulation
        self.modulator = NoveltyModulator(**nm) if nm else None
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        self.best_acc = -1.0
        self.best_score = -math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.best_pruning: dict[str, Any] | None = None
        self.stale = 0
        self.wall_s = 0.0

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, data: TensorData, batch_size: int = 256) -> tuple[float, float]:
        """(mean loss, accuracy) of the current model on ``data``."""
        self.model.eval()
        total_loss, correct = 0.0, 0
        for start in range(0, len(data), batch_size):
            x = data.x[start:start + batch_size].to(self.device)
            y = data.y[start:start + batch_size].to(self.device)
            if hasattr(self.model, "loss_and_logits"):
                loss, logits = self._loss(x, y)
                total_loss += float(loss) * len(y)
            else:
                logits = self.model(x)
                total_loss += float(F.cross_entropy(logits * self.cfg.logit_scale, y,
                                                    weight=self.loss_weight, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return total_loss / len(data), correct / len(data)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean batch loss, logits): the model's own output loss when it has one (a
        `LeakyNetwork`'s snnTorch losses), else cross-entropy of the scaled logits."""
        if hasattr(self.model, "loss_and_logits"):
            return self.model.loss_and_logits(x, y, weight=self.loss_weight)
        logits = self.model(x)
        return F.cross_entropy(logits * self.cfg.logit_scale, y, weight=self.loss_weight), logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        self.model.eval()
        out = [self.model(x[s:s + batch_size].to(self.device)).argmax(1).cpu()
               for s in range(0, x.shape[0], batch_size)]
        return torch.cat(out).numpy()

    # ------------------------------------------------------------------ one epoch
    def _lr_for_epoch(self, epoch: int) -> float:
        if self.cfg.schedule == "none":
            return self.cfg.lr
        return self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.cfg.epochs))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, data = self.cfg, self.splits.train
        self.model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(data), generator=gen)
        base_lr = self._lr_for_epoch(epoch)
        batches = range(0, len(data), cfg.batch_size)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       leave=False)
            batches = bar
        total_loss, correct, factors = 0.0, 0, []
        first_step = self.pruner.t if self.pruner is not None else 0
        for start in batches:
            idx = order[start:start + cfg.batch_size]
            x, y = data.x[idx].to(self.device), data.y[idx].to(self.device)
            loss, logits = self._loss(x, y)
            factor = self.modulator.factor(float(loss.detach())) if self.modulator else 1.0
            factors.append(factor)
            for group in self.optimizer.param_groups:
                group["lr"] = base_lr * factor
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.pruner is not None:
                self.pruner.step(loss)  # E = this batch's loss; pruned weights back to 0
            else:
                self.optimizer.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            if bar is not None:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        record = {"train_loss": total_loss / len(data), "train_accuracy": correct / len(data),
                  "lr": base_lr, "lr_factor_mean": float(np.mean(factors))}
        if self.pruner is not None:
            from .pruning import epoch_record

            record.update(epoch_record(self.pruner, first_step))
        return record

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self) -> dict:
        return {
            "config": self.cfg.raw, "epoch": self.epoch, "history": self.history,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "best_acc": self.best_acc, "best_score": self.best_score, "best_state": self.best_state,
            "best_epoch": self.best_epoch, "stale": self.stale, "wall_s": self.wall_s,
            "best_pruning": self.best_pruning,
            "modulator": self.modulator.state() if self.modulator else None,
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint.pt`` as plain data (`evospike.training.checkpoint`)."""
        return save_checkpoint(self._checkpoint_state(), self.out / CHECKPOINT)

    def load_checkpoint(self, path: Path) -> None:
        """Restore the state saved in ``path``; it is read with ``weights_only=True`` (a file
        that would need unpickling is refused: loading it could run code)."""
        state = read_checkpoint(path, map_location=self.device, required=_CHECKPOINT_KEYS)
        # the saved config went through `plain` (YAML dates became text): compare like with like
        old, new = dict(state["config"]), dict(plain(self.cfg.raw))
        for cfg in (old, new):  # more epochs may be asked of a resumed run
            train = cfg.get("train", {})
            cfg["train"] = ({k: v for k, v in train.items() if k != "epochs"}
                            if isinstance(train, dict) else train)
        if old != new:
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise EvoSpikeError(f"checkpoint '{path}' was written by a different configuration "
                                f"(differs in: {', '.join(keys)}); resume with the same config "
                                "or start a new output.dir")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch, self.history = int(state["epoch"]), list(state["history"])
            self.best_acc, self.best_state = state["best_acc"], state["best_state"]
            self.best_score = state["best_score"]
            self.best_epoch, self.stale = state["best_epoch"], state["stale"]
            self.best_pruning = state.get("best_pruning")
            self.wall_s = state["wall_s"]
            if self.modulator and state["modulator"]:
                self.modulator.load(state["modulator"])
            torch.set_rng_state(state["torch_rng"].cpu())  # map_location may be a GPU
        except EvoSpikeError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            # plain data of the wrong shape (another model, an edited file): one line, not a trace
            detail = " ".join(str(exc).split())
            raise EvoSpikeError(f"checkpoint '{path}' does not fit this run's model or "
                                f"optimiser: {type(exc).__name__}: {detail[:200]}") from None

    # ------------------------------------------------------------------ the run
    def fit(self, resume: bool = False, max_epochs: int | None = None,
            export: bool = True) -> dict[str, Any]:
        """Train (continuing from the checkpoint when ``resume``); stop after ``max_epochs``
        more epochs if given (as an interruption would). Returns the summary."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt = self.out / CHECKPOINT
        if resume:
            if not ckpt.exists():
                raise EvoSpikeError(f"--resume: no checkpoint at '{ckpt}'")
            self.load_checkpoint(ckpt)
        elif ckpt.exists():
            raise EvoSpikeError(f"'{ckpt}' exists: pass --resume to continue that run, or "
                                "choose another output.dir")
        done_this_call = 0
        stopped_early = False
        while self.epoch < cfg.epochs:
            if cfg.patience is not None and self.stale >= cfg.patience:
                stopped_early = True
                break
            if max_epochs is not None and done_this_call >= max_epochs:
                break
            t0 = time.perf_counter()
            record = {"epoch": self.epoch + 1, **self.train_epoch(self.epoch)}
            eval_set = self.splits.val if self.splits.val is not None else self.splits.train
            record["val_loss"], record["val_accuracy"] = self.evaluate(eval_set)
            record["test_loss"], record["test_accuracy"] = self.evaluate(self.splits.test)
            epoch_s = time.perf_counter() - t0
            self.wall_s += epoch_s
            record["epoch_wall_s"] = epoch_s
            self.history.append(record)
            # the score to maximise: validation accuracy, or minus the validation loss
            score = (record["val_accuracy"] if cfg.select_metric == "val_accuracy"
                     else -record["val_loss"])
            # with pruning, only epochs after the schedule has settled may be kept (a less
            # pruned network must not win the selection); patience counts from there
            eligible = self.pruner is None or self.pruner.t >= cfg.pruning["settle_step"]
            if not eligible:
                pass
            elif self.best_state is None or score > self.best_score + cfg.min_delta:
                self.best_score = score
                self.best_acc = record["val_accuracy"]
                self.best_epoch = self.epoch + 1
                self.best_state = {k: v.detach().clone() for k, v in
                                   self.model.state_dict().items()}
                if self.pruner is not None:
                    from .pruning import mask_summary

                    self.best_pruning = mask_summary(self.pruner)
                self.stale = 0
            else:
                self.stale += 1
            self.epoch += 1
            done_this_call += 1
            self.save_checkpoint()
            self._write_json("metrics.json", self.history)
            if self.progress:
                print(f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
                      f"train {record['train_accuracy']:.4f}  val {record['val_accuracy']:.4f}"
                      f"  test {record['test_accuracy']:.4f}  ({epoch_s:.1f} s)"
                      + (f"  pruned {100 * record['pruned_fraction']:.1f} % (R(t) "
                         f"{100 * record['prune_rate']:.1f} %)" if self.pruner else ""))
        finished = self.epoch >= cfg.epochs or stopped_early or (
            cfg.patience is not None and self.stale >= cfg.patience)
        return self._finish(finished, export)

    def _finish(self, finished: bool, export: bool) -> dict[str, Any]:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        test_loss, test_acc = self.evaluate(self.splits.test)
        summary = {
            "name": self.cfg.name, "dataset": self.splits.description,
            "synthetic_data": self.splits.synthetic, "epochs_run": self.epoch,
            "finished": finished, "best_epoch": self.best_epoch,
            "best_val_accuracy": self.best_acc, "test_accuracy": test_acc,
            "test_loss": test_loss, "train_wall_s": self.wall_s,
            "device": str(self.device), "threads": torch.get_num_threads(),
        }
        if self.pruner is not None:
            summary["pruning"] = self._pruning_summary()
        from .class_report import write_test_report  # per-class figures: never a bare accuracy

        summary.update(write_test_report(self))
        if self.history:
            self.plot(self.out / "learning_curve.png")
        if not hasattr(self.model, "to_network"):
            summary["ir_export"] = (f"none: {type(self.model).__name__} is not an IR network "
                                    "(it trains and runs on torch only)")
        elif export and finished:
            net = self.model.to_network(self.splits.test.x[:1], name=self.cfg.name)
            net.save(self.out / "model.h5")
            summary["model_h5"] = str(self.out / "model.h5")
            summary["model_h5_synapses"] = net.n_synapses
            summary["model_h5_input"] = "test sample 0 (label " \
                f"{int(self.splits.test.y[0])})"
        self._write_json("summary.json", summary)
        return summary

    def _pruning_summary(self) -> dict[str, Any]:
        """What was kept: the pruned fraction of the weights now in the model (the best
        epoch's, or the last epoch's when no epoch after the schedule settled was run)."""
        weights = self.pruner.pruned_parameters
        zeros = sum(int((p == 0).sum()) for p in weights.values())
        total = sum(p.numel() for p in weights.values())
        out = {"r_target": self.pruner.params["r_target"],
               "settle_step": self.cfg.pruning["settle_step"], "steps_run": self.pruner.t,
               "kept_weights_zero_fraction": zeros / total, "n_weights": total,
               "best_epoch_masks": self.best_pruning,
               "final_pruned_fraction": self.pruner.pruned_fraction,
               "final_rate": self.pruner.rate}
        if self.best_state is None:
            out["note"] = (f"no epoch ended after the schedule settled (step "
                           f"{self.cfg.pruning['settle_step']:g}); the last epoch's weights "
                           "are kept")
        if hasattr(self.model, "layers"):
            out["synapses_without_pruning"] = int(sum(
                pre.size for layer in self.model.layers for _, pre, _, _ in layer.synapses()))
        return out

    def _write_json(self, name: str, obj) -> None:
        with atomic_path(self.out / name) as tmp:
            Path(tmp).write_text(json.dumps(obj, indent=2))

    def plot(self, path: Path) -> None:
        """Learning curve: loss and accuracies per epoch (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        h = self.history
        ep = [r["epoch"] for r in h]
        pruning = self.pruner is not None and all("prune_rate" in r for r in h)
        fig, axes = plt.subplots(1, 3 if pruning else 2, figsize=(15 if pruning else 10, 4))
        ax1, ax2 = axes[0], axes[1]
        ax1.plot(ep, [r["train_loss"] for r in h], label="train")
        ax1.plot(ep, [r["val_loss"] for r in h], label="validation")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("cross-entropy")
        ax1.legend()
        for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation"),
                           ("test_accuracy", "test")):
            ax2.plot(ep, [100 * r[key] for r in h], label=label)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("accuracy (%)")
        ax2.legend()
        if pruning:
            from .pruning import plot_panel

            plot_panel(axes[2], h, self.pruner.params["r_target"])
        fig.suptitle(f"{self.cfg.name}: {self.splits.description}", fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
