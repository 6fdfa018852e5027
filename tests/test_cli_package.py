"""The command line is one package, one module per command (issue 14)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import evospike.cli
from evospike.cli.main import _parser
from tests.conftest import ROOT

#: modules of evospike/cli that are not a command
NOT_COMMANDS = {"__init__", "__main__", "main", "checks"}
#: commands whose name is a Python keyword live in a module of another name
MODULE_OF = {"import": "nir_import", "export": "nir_export"}


def _subcommands(parser) -> dict:
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def test_each_command_is_its_own_module_with_its_handler():
    folder = Path(evospike.cli.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - NOT_COMMANDS
    commands = _subcommands(_parser())
    assert {MODULE_OF.get(c, c) for c in commands} == modules
    for name, sub in commands.items():
        handler = sub.get_default("handler")
        module = MODULE_OF.get(name, name)
        assert callable(handler), name
        assert handler.__module__ == f"evospike.cli.{module}", (name, handler.__module__)
        # the module registers this command and no other
        own = importlib.import_module(f"evospike.cli.{module}")
        fresh = argparse.ArgumentParser().add_subparsers(dest="command")
        own.register(fresh)
        assert set(fresh.choices) == {name}


def test_main_is_the_console_entry_point():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'evospike = "evospike.cli:main"' in text
    assert evospike.cli.main is importlib.import_module("evospike.cli.main").main


def test_python_dash_m_runs_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "evospike.cli", "map", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: evospike") and "--quantization" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "evospike.cli", "run", "no-such-model.py",
                           "--duration", "-5ms"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("evospike: error: ") and "--duration" in proc.stderr


def test_param_reaches_build(tmp_path, capsys):
    """``--param NAME=VALUE`` passes typed keyword arguments to the model's build()."""
    from evospike.cli import main

    (tmp_path / "m.py").write_text(
        "from evospike import LIF, Network\n\n"
        "def build(n=3, label='x', on=False, rate=1.0):\n"
        "    assert isinstance(n, int) and isinstance(rate, float) and isinstance(on, bool)\n"
        "    net = Network(f'{label}-{on}', dt_ms=0.1)\n"
        "    net.population('p', n, LIF())\n"
        "    return net\n")
    assert main(["info", str(tmp_path / "m.py"), "--param", "n=7", "--param", "label=SR",
                 "--param", "on=true", "--param", "rate=2.5"]) == 0
    out = capsys.readouterr().out
    assert "network 'SR-True'" in out
    assert "7 x LIF" in out
