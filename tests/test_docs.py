"""Every code block of README.md and docs/*.md runs: each ```python block as written, in a fresh
namespace, in a scratch folder; each `evospike ...` line of a ```bash block parses with the
command line's own parser (its command and options exist and take the values shown). A block
preceded by ``<!-- doc-test: slow -->`` runs only with the slow tests."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- doc-test: (?P<mark>\w+) -->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)```",
                   re.S)


def _blocks(lang: str) -> list:
    params = []
    for page in PAGES:
        text = page.read_text()
        for k, match in enumerate(m for m in BLOCK.finditer(text) if m.group("lang") == lang):
            line = text[:match.start("code")].count("\n") + 1
            marks = [pytest.mark.slow] if match.group("mark") == "slow" else []
            params.append(pytest.param(match.group("code"), f"{page.name}:{line}", marks=marks,
                                       id=f"{page.stem}-{k}-line{line}"))
    return params


PYTHON_BLOCKS = _blocks("python")
BASH_BLOCKS = _blocks("bash")


def test_the_pages_have_code_to_check():
    assert len(PYTHON_BLOCKS) >= 5 and len(BASH_BLOCKS) >= 5


@pytest.mark.parametrize(("code", "where"), PYTHON_BLOCKS)
def test_python_block_runs(code, where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # blocks name the repository's files (examples/...) as a reader in its root would
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    namespace = {"__name__": "__doc_block__"}
    exec(compile(code, where, "exec"), namespace)  # our own documentation, not a user file


def _evospike_lines(code: str) -> list[list[str]]:
    commands = []
    for line in code.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("evospike "):
            commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize(("code", "where"), BASH_BLOCKS)
def test_bash_block_commands_parse(code, where):
    from evospike.cli.main import _parser

    parser = _parser()
    for argv in _evospike_lines(code):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse's exit on a bad option
            pytest.fail(f"{where}: 'evospike {' '.join(argv)}' does not parse ({exc})")
        except Exception as exc:  # our parser raises a one-line error instead of exiting
            pytest.fail(f"{where}: 'evospike {' '.join(argv)}' does not parse: {exc}")


def test_a_broken_block_fails(tmp_path, monkeypatch):
    """The checks above can fail: a block with an undefined name, an unknown option."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NameError):
        exec(compile("net.reward_stdp(proj)", "x", "exec"), {})
    from evospike.cli.main import _parser

    with pytest.raises((SystemExit, Exception)):
        _parser().parse_args(["run", "m.py", "--no-such-option"])
    assert os.getcwd() == str(tmp_path)
