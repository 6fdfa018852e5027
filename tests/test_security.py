"""No file EvoSpike reads may run code: checkpoints load as plain data (``weights_only=True``),
a crafted one is refused with one line through both paths that read checkpoints
(`evospike energy X.pt`, `evospike train --resume`), a genuine one still resumes, and the
package sources hold no unpickling, eval/exec or unsafe YAML/NumPy loading."""

from __future__ import annotations

import datetime
import pathlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evospike.cli import main
from evospike.errors import EvoSpikeError
from evospike.training import TrainConfig, Trainer
from evospike.training.checkpoint import plain, read_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("evospike", "backends", "datasets", "models", "hardware")


class _TouchOnUnpickle:
    """Unpickling this calls ``Path.touch(marker)``: a stand-in for any command a crafted file
    could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _config(out: Path, **train) -> dict:
    return {
        "name": "sec", "seed": 1, "threads": 1,
        "data": {"dataset": "digits", "options": {"test_fraction": 0.25},
                 "validation_fraction": 0.1},
        "model": {"dt_ms": 1.0, "steps": 6,
                  "input": {"kind": "current", "shape": [64], "gain_mV": 100.0},
                  "layers": [{"type": "linear", "size": 12}, {"type": "readout", "size": 10}]},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, **train},
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def small_splits():
    from evospike.training.data import Splits, TensorData, load_splits

    full = load_splits("digits", {"test_fraction": 0.25}, 0.1, 1)
    take = lambda d, n: TensorData(d.x[:n], d.y[:n])  # noqa: E731
    return Splits(take(full.train, 160), take(full.val, 40), take(full.test, 40),
                  full.n_classes, full.classes, full.description + " (subset)", False,
                  full.class_weights, full.sample_shape, {})


@pytest.fixture(params=["zip", "legacy"])
def crafted(request, tmp_path):
    """(crafted checkpoint, marker its unpickling would create), shaped like a real one; both
    torch file formats (zip, and the legacy single pickle stream)."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "crafted" / "checkpoint.pt"
    path.parent.mkdir()
    state = {"config": _config(path.parent), "model": _TouchOnUnpickle(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=request.param == "zip")
    # the payload is live: an unpickling load runs it (so the refusals below are what stop it)
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("evospike: error: "), err
    return err


def test_read_checkpoint_refuses_a_crafted_file(crafted):
    path, marker = crafted
    with pytest.raises(EvoSpikeError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"checkpoint '{path}' holds objects that would need unpickling" in message
    assert "could run code" in message
    assert not marker.exists()


def test_energy_command_refuses_a_crafted_checkpoint(crafted, capsys):
    path, marker = crafted
    assert main(["energy", str(path), "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert "would need unpickling" in err and str(path) in err
    assert not marker.exists()


def test_train_resume_refuses_a_crafted_checkpoint(crafted, tmp_path, capsys):
    path, marker = crafted
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config(path.parent)))
    assert main(["train", str(config), "--resume", "--no-progress"]) == 2
    err = _one_error_line(capsys)
    assert "would need unpickling" in err and str(path) in err
    assert not marker.exists()


def test_missing_and_corrupt_checkpoints_are_one_line(tmp_path, small_splits, capsys):
    trainer = Trainer(TrainConfig.from_dict(_config(tmp_path / "run", epochs=1)),
                      progress=False, splits=small_splits)
    trainer.fit(export=False)
    good = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good[:len(good) // 2])
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path, words in ((tmp_path / "absent.pt", "does not exist"),
                        (cut, "cannot be read (truncated or corrupt)"),
                        (text, "not a torch checkpoint file"),
                        (empty, "not a torch checkpoint file")):
        with pytest.raises(EvoSpikeError, match=re.escape(words)) as info:
            read_checkpoint(path)
        assert "\n" not in str(info.value)
        assert main(["energy", str(path), "--no-progress"]) == 2
        assert words in _one_error_line(capsys)
    # plain data, but not a checkpoint of ours
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(EvoSpikeError, match="not an `evospike train` checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")


def test_genuine_checkpoint_is_plain_data_and_resumes(tmp_path, small_splits):
    """With neuromodulation and pruning (the richest checkpoint): the file needs no global
    outside torch's allowlist, and resuming from it gives the uninterrupted run's weights."""
    extra = {"neuromodulation": {"kind": "novelty", "gain": 0.5, "tau_batches": 3},
             "pruning": {"r_target": 0.3, "warmup_steps": 2, "tau_steps": 3}}
    a = Trainer(TrainConfig.from_dict(_config(tmp_path / "a", **extra)), progress=False,
                splits=small_splits)
    a.fit(export=False)
    b = Trainer(TrainConfig.from_dict(_config(tmp_path / "b", **extra)), progress=False,
                splits=small_splits)
    b.fit(max_epochs=1, export=False)
    ckpt = tmp_path / "b" / "checkpoint.pt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt)) == []
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    c = Trainer(TrainConfig.from_dict(_config(tmp_path / "b", **extra)), progress=False,
                splits=small_splits)
    c.fit(resume=True, export=False)
    assert c.epoch == 2
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, c.model.state_dict()[key]), key
    assert a.history[-1]["train_loss"] == c.history[-1]["train_loss"]


def test_plain_converts_numpy_and_dates_and_refuses_objects(tmp_path):
    state = {"config": {"name": datetime.date(2026, 1, 2)},
             "history": [{"loss": np.float32(0.5), "n": np.int64(3), "ok": np.bool_(True)}],
             "model": torch.nn.Linear(2, 1).state_dict(), "shape": (2, 3)}
    path = save_checkpoint(state, tmp_path / "c.pt")
    back = torch.load(path, weights_only=True)
    assert back["config"] == {"name": "2026-01-02"}
    assert back["history"] == [{"loss": 0.5, "n": 3, "ok": True}]
    assert type(back["history"][0]["n"]) is int and back["shape"] == (2, 3)
    assert torch.equal(back["model"]["weight"], state["model"]["weight"])
    assert back["model"]._metadata == state["model"]._metadata  # module versions kept
    with pytest.raises(EvoSpikeError, match=r"checkpoint\['history'\]\[0\]\['x'\] is a "
                                            r"pathlib\.PosixPath"):
        plain({"history": [{"x": Path("/tmp")}]})
    assert not (tmp_path / "d.pt").exists()
    with pytest.raises(EvoSpikeError, match="not plain data"):
        save_checkpoint({"model": {1, 2}}, tmp_path / "d.pt")
    assert not (tmp_path / "d.pt").exists()  # nothing unreadable is written


# ---------------------------------------------------------------------------- source scan

def _calls(text: str, head: str) -> list[str]:
    """The full text of every call ``head(...)`` in ``text`` (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(head) + r"\s*\(", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(text[m.start():i + 1])
    return out


_IMPORT_UNSAFE = re.compile(
    r"^\s*(?:import|from)\s+[^#\n]*\b(?:c?[Pp]ickle|_pickle|dill|cloudpickle|joblib|marshal|"
    r"shelve)\b", re.M)
_BUILTIN_EVAL = re.compile(r"(?<![\w.])(?:eval|exec)\s*\(")
_RUNS_A_FILE = re.compile(r"\bexec_module\s*\(|\brunpy\.")
# The places that run a file's code on purpose: a model .py is a program its author runs
# (`evospike run model.py` is `python model.py`), not data; the Lava worker imports the
# package's own hardware/loihi/constants.py by path (EvoSpike is not importable there).
_ALLOWED_RUNS = {"evospike/model_loading.py": 1, "backends/lava/worker.py": 1}


def scan_source(rel: str, text: str) -> list[str]:
    """What in one source file could run code from a file it reads."""
    problems = []
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    if _IMPORT_UNSAFE.search(code):
        problems.append("imports pickle (or a pickle-based loader)")
    if re.search(r"\bpickle\.(?:loads?|Unpickler)\b", code):
        problems.append("unpickles")
    if re.search(r"weights_only\s*=\s*False", code):
        problems.append("torch.load(weights_only=False)")
    if re.search(r"allow_pickle\s*=\s*True", code):
        problems.append("allow_pickle=True")
    if _BUILTIN_EVAL.search(code):
        problems.append("calls builtin eval/exec")
    for call in _calls(code, "torch.load"):
        if not re.search(r"weights_only\s*=\s*True", call):
            problems.append(f"{call!r} without weights_only=True")
    for head in ("np.load", "numpy.load"):
        for call in _calls(code, head):
            if not re.search(r"allow_pickle\s*=\s*False", call):
                problems.append(f"{call!r} without allow_pickle=False")
    for head in ("yaml.load", "yaml.load_all"):
        for call in _calls(code, head):
            if "SafeLoader" not in call:
                problems.append(f"{call!r} without SafeLoader (use yaml.safe_load)")
    if re.search(r"\byaml\.(?:unsafe_load|full_load)\b|\bUnsafeLoader\b", code):
        problems.append("unsafe YAML loader")
    runs = len(_RUNS_A_FILE.findall(code))
    if runs != _ALLOWED_RUNS.get(rel, 0):
        problems.append(f"runs a file's code {runs} time(s) (allowed here: "
                        f"{_ALLOWED_RUNS.get(rel, 0)})")
    return [f"{rel}: {p}" for p in problems]


def test_source_scan_finds_what_it_looks_for():
    bad = {
        "import pickle": "imports pickle",
        "from joblib import load": "imports pickle",
        "x = pickle.loads(b)": "unpickles",
        "torch.load(p, weights_only=False)": "weights_only=False",
        "torch.load(p,\n    map_location='cpu')": "without weights_only=True",
        "np.load(f)": "without allow_pickle=False",
        "numpy.load(f, allow_pickle=True)": "allow_pickle=True",
        "yaml.load(text)": "without SafeLoader",
        "yaml.full_load(text)": "unsafe YAML",
        "eval(expr)": "builtin eval/exec",
        "exec(code, ns)": "builtin eval/exec",
        "spec.loader.exec_module(m)": "runs a file's code",
    }
    for source, expected in bad.items():
        found = scan_source("x.py", source)
        assert any(expected in p for p in found), (source, found)
    good = ("model.eval()", "torch.load(p, map_location='cpu', weights_only=True)",
            "np.load(f, allow_pickle=False)", "yaml.safe_load(text)",
            "yaml.load(t, Loader=yaml.SafeLoader)", "# import pickle is what we avoid",
            "self.evaluate(x)")
    for source in good:
        assert scan_source("x.py", source) == [], source


def test_package_sources_cannot_run_code_from_files():
    files = [p for d in PACKAGE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50  # the scan sees the package, not an empty folder
    problems = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        problems += scan_source(rel, path.read_text(encoding="utf-8"))
    assert problems == [], "\n".join(problems)
