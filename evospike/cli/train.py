"""``evospike train CONFIG.yaml``: train a model, write metrics, checkpoints, the learning curve
and the trained IR network; optionally run that network on another backend (Brian2) over the
test set and report how often its predictions agree with the trained model's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evospike.atomic import atomic_path
from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a spiking network (surrogate gradients) "
                              "from a YAML config")
    p.add_argument("config", help="YAML training config (see examples/digits.yaml)")
    p.add_argument("--resume", action="store_true",
                   help="continue from output.dir/checkpoint.pt")
    p.add_argument("--device", default=None, help="override the config: cpu, cuda, cuda:1")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--seed", type=int, default=None, help="override seed")
    p.add_argument("--out", default=None, help="override output.dir")
    p.add_argument("--check-backend", default=None, choices=["brian2", "torch"],
                   help="after training, run the exported network on this backend over the "
                        "test set and report the agreement of predictions")
    p.add_argument("--check-samples", type=int, default=None,
                   help="test samples for --check-backend (default: all)")
    p.add_argument("--check-chunk", type=int, default=150,
                   help="samples per backend run (one replica of the network per sample)")
    p.add_argument("--brian2-target", default="auto", choices=["auto", "cython", "numpy"],
                   help="Brian2 code generation target for --check-backend brian2")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    import yaml

    from evospike.training.config import TrainConfig
    from evospike.training.trainer import Trainer

    path = Path(args.config)
    if not path.exists():
        raise EvoSpikeError(f"config file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise EvoSpikeError(f"config file '{path}' is not valid YAML{where}: "
                            f"{' '.join(str(problem).split())}") from None
    if not isinstance(raw, dict):
        raise EvoSpikeError(f"config file '{path}' must hold a mapping of keys to values")
    if args.device is not None:
        raw["device"] = args.device
    if args.seed is not None:
        raw["seed"] = args.seed
    if args.epochs is not None:
        raw.setdefault("train", {})["epochs"] = args.epochs
    if args.out is not None:
        raw["output"] = {"dir": args.out}
    if args.check_samples is not None and args.check_samples < 1:
        raise EvoSpikeError(f"--check-samples must be at least 1 (got {args.check_samples})")
    if args.check_chunk < 1:
        raise EvoSpikeError(f"--check-chunk must be at least 1 (got {args.check_chunk})")
    cfg = TrainConfig.from_dict(raw)
    trainer = Trainer(cfg, progress=not args.no_progress)
    print(trainer.splits.description + (" [SYNTHETIC DATA]" if trainer.splits.synthetic else ""))
    summary = trainer.fit(resume=args.resume)
    print(f"test accuracy {100 * summary['test_accuracy']:.2f} % (best epoch "
          f"{summary['best_epoch']}, {summary['epochs_run']} epochs, training wall time "
          f"{summary['train_wall_s']:.1f} s on {summary['device']}, "
          f"{summary['threads']} thread(s))")
    from evospike.training.class_report import format_report

    print(format_report(summary["class_report"]))
    if args.check_backend:
        if not hasattr(trainer.model, "to_network"):
            raise EvoSpikeError(f"--check-backend: model '{type(trainer.model).__name__}' has no "
                                "IR export")
        from evospike.training.export import backend_agreement

        test = trainer.splits.test
        n = len(test) if args.check_samples is None else min(args.check_samples, len(test))
        options = {"target": args.brian2_target} if args.check_backend == "brian2" else \
            {"precision": "float64"}
        model = trainer.model.cpu()
        record = backend_agreement(model, test.x[:n], test.y[:n], backend=args.check_backend,
                                   chunk=args.check_chunk, progress=not args.no_progress,
                                   **options)
        summary["backend_check"] = record
        out = Path(cfg.out_dir)
        for name, obj in (("agreement.json", record), ("summary.json", summary)):
            with atomic_path(out / name) as tmp:
                Path(tmp).write_text(json.dumps(obj, indent=2))
        print(f"{args.check_backend}: {record['samples']} test samples, predictions agree on "
              f"{100 * record['agreement']:.2f} % (accuracy {100 * record['backend_accuracy']:.2f}"
              f" % vs {100 * record['training_model_accuracy']:.2f} % in training), "
              f"{record['backend_wall_s']:.1f} s")
    print(f"wrote {cfg.out_dir}/ (metrics.json, checkpoint.pt, learning_curve.png, "
          "summary.json, class_report.json, confusion_matrix.png"
          + (", model.h5" if "model_h5" in summary else "") + ")")
    return 0
