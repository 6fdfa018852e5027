"""Per-class figures of a classifier on a test set: what a bare accuracy hides on imbalanced data
(an ECG record is nearly all normal beats: predicting "N" everywhere scores 98 %).

`class_report(y_true, y_pred, classes)` gives, per class, support (true samples), predicted
count, precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)`` and F1 ``2 TP / (2 TP + FP + FN)``,
the confusion matrix (rows: true class, columns: predicted class), and over the classes that
occur in the test set: balanced accuracy (mean recall, scikit-learn's
``balanced_accuracy_score``) and macro F1. A figure that is 0/0 (precision of a class never
predicted, recall of a class absent from the test set) is ``None``, not 0: it is undefined, and
reporting it as 0 or 1 would move the averages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evospike.atomic import atomic_path
from evospike.errors import ValidationError


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def class_report(y_true, y_pred, classes: tuple[str, ...] | list[str]) -> dict:
    """Per-class precision, recall, F1, support and the confusion matrix (see the module
    docstring). ``y_true`` and ``y_pred`` hold class indices into ``classes``."""
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    k = len(classes)
    if t.shape != p.shape:
        raise ValidationError("class report", "predictions", "length",
                              f"must equal the number of labels ({t.size})", p.size)
    if t.size == 0:
        raise ValidationError("class report", "labels", "length", "must be at least 1", 0)
    for what, arr in (("labels", t), ("predictions", p)):
        bad = (arr < 0) | (arr >= k) | (arr != np.round(arr))
        if bad.any():
            raise ValidationError("class report", what, "class index",
                                  f"must be an integer in [0, {k})", arr[bad][:5].tolist())
    t, p = t.astype(np.int64), p.astype(np.int64)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    per_class = []
    for c, name in enumerate(classes):
        tp = int(cm[c, c])
        support = int(cm[c].sum())
        predicted = int(cm[:, c].sum())
        fp, fn = predicted - tp, support - tp
        per_class.append({"class": name, "support": support, "predicted": predicted,
                          "precision": _ratio(tp, predicted), "recall": _ratio(tp, support),
                          "f1": _ratio(2 * tp, 2 * tp + fp + fn)})
    present = [r for r in per_class if r["support"] > 0]
    return {
        "classes": list(classes),
        "n_samples": int(t.size),
        "accuracy": float(np.trace(cm) / t.size),
        "balanced_accuracy": float(np.mean([r["recall"] for r in present])),
        "macro_f1": float(np.mean([r["f1"] for r in present])),
        "classes_in_test": [r["class"] for r in present],
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def format_report(report: dict) -> str:
    """The report as a Markdown table plus one line of averages (figures in %)."""
    lines = ["| class | support | predicted | precision % | recall % | F1 % |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in report["per_class"]:
        lines.append(f"| {r['class']} | {r['support']} | {r['predicted']} | "
                     f"{_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['f1'])} |")
    lines.append(f"balanced accuracy {_fmt(report['balanced_accuracy'])} % and macro F1 "
                 f"{_fmt(report['macro_f1'])} % over the classes in the test set "
                 f"({', '.join(report['classes_in_test'])}); accuracy "
                 f"{_fmt(report['accuracy'])} % of {report['n_samples']} samples")
    return "\n".join(lines)


def plot_confusion(report: dict, path: str | Path, title: str = "") -> None:
    """The confusion matrix as a PNG: counts in each cell, colour = fraction of the true
    class (row-normalised, so a rare class's misses show as clearly as a common one's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion_matrix"], dtype=np.int64)
    classes = report["classes"]
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(classes), 0.8 + 0.9 * len(classes)))
    ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), [f"{c} ({int(n)})" for c, n in
                                        zip(classes, rows[:, 0], strict=True)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (support)")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_test_report(trainer) -> dict:
    """Per-class figures of a `Trainer`'s current model on its test split: writes
    ``class_report.json`` and ``confusion_matrix.png`` into the run's folder and returns the
    entries for ``summary.json``. Predictions are the ones ``Trainer.evaluate`` scores (the
    arg-max of the logits of `Trainer._loss`), so the report's accuracy is the summary's."""
    import json

    import torch

    data = trainer.splits.test
    model = trainer.model
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(data), 256):
            x = data.x[start:start + 256].to(trainer.device)
            y = data.y[start:start + 256].to(trainer.device)
            _, logits = trainer._loss(x, y)
            preds.append(logits.argmax(1).cpu())
    report = class_report(data.y.numpy(), torch.cat(preds).numpy(), trainer.splits.classes)
    out = Path(trainer.out)
    with atomic_path(out / "class_report.json") as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    plot_confusion(report, out / "confusion_matrix.png",
                   f"{trainer.cfg.name}: test split, {report['n_samples']} samples")
    return {"balanced_accuracy": report["balanced_accuracy"], "macro_f1": report["macro_f1"],
            "class_report": report}
