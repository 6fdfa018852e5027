"""The Lava environment: a Python 3.10 virtual environment with lava-nc, in which the worker runs.

lava-nc 0.10 supports only Python 3.10 with NumPy < 2 and does not import on newer Pythons, so
it cannot live in EvoSpike's own environment. `setup` finds a Python 3.10, makes a venv
(default ``~/.cache/evospike/lava-venv``), installs `REQUIREMENTS` into it, checks that
``import lava`` works and records the interpreter in a small JSON file
(``~/.config/evospike/lava.json``) that the backend reads. `find_python` is how the backend
finds the interpreter: ``EVOSPIKE_LAVA_PYTHON`` first, then that record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evospike.atomic import atomic_path
from evospike.errors import EvoSpikeError

#: what the worker needs (it imports nothing from EvoSpike)
REQUIREMENTS = ("lava-nc==0.10.0", "numpy<2", "h5py", "scipy")
LAVA_VERSION = "0.10.0"
ENV_PYTHON = "EVOSPIKE_LAVA_PYTHON"  # the Lava interpreter, used as is
ENV_PYTHON310 = "EVOSPIKE_LAVA_PYTHON310"  # the Python 3.10 that `setup` builds the venv from
ENV_CONFIG = "EVOSPIKE_LAVA_CONFIG"  # the record's path (default in the user's config dir)

#: the script that checks an environment: prints a JSON line of versions
_PROBE = (
    "import json, sys, importlib.metadata as m; import lava, numpy, scipy, h5py; "
    "print(json.dumps({'python': sys.version.split()[0], 'lava_nc': m.version('lava-nc'), "
    "'numpy': numpy.__version__, 'h5py': h5py.__version__, 'scipy': scipy.__version__}))"
)

FIX = ("run `evospike setup lava` (it needs a Python 3.10; it makes a venv with lava-nc and "
       "records it), or set EVOSPIKE_LAVA_PYTHON to the python of an environment that has "
       "lava-nc 0.10 and numpy < 2")


def _home_dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else Path.home() / default


def default_prefix() -> Path:
    """Where `setup` puts the venv unless told otherwise: the per-user cache folder."""
    return _home_dir("XDG_CACHE_HOME", ".cache") / "evospike" / "lava-venv"


def config_path() -> Path:
    """The record of the environment `setup` made (``EVOSPIKE_LAVA_CONFIG`` overrides it)."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return _home_dir("XDG_CONFIG_HOME", ".config") / "evospike" / "lava.json"


@dataclass
class LavaPython:
    """The interpreter the worker runs under, and where it was found."""

    path: Path
    origin: str  # "EVOSPIKE_LAVA_PYTHON" or the record's path


def find_python() -> LavaPython:
    """The Lava interpreter: ``EVOSPIKE_LAVA_PYTHON``, else the one `setup` recorded; an
    `EvoSpikeError` saying exactly what is missing and how to fix it otherwise."""
    env = os.environ.get(ENV_PYTHON)
    if env:
        path = Path(env).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EvoSpikeError(f"lava backend: {ENV_PYTHON}={env} is not an executable file; "
                                f"{FIX}")
        return LavaPython(path, ENV_PYTHON)
    record = config_path()
    if not record.exists():
        raise EvoSpikeError(f"lava backend: no Lava environment: {ENV_PYTHON} is not set and "
                            f"`evospike setup lava` has not been run (no {record}); {FIX}")
    try:
        recorded = json.loads(record.read_text())
        path = Path(recorded["python"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvoSpikeError(f"lava backend: the record {record} cannot be read ({exc}); "
                            f"{FIX}") from None
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise EvoSpikeError(f"lava backend: the Lava environment recorded in {record} is gone "
                            f"({path} does not exist); {FIX}")
    return LavaPython(path, str(record))


def probe(python: str | os.PathLike, timeout_s: float = 120.0) -> dict | None:
    """Versions of python, lava-nc, numpy, h5py and scipy in the environment of ``python``, or
    None if one of them does not import."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                             timeout=timeout_s, env=clean)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _version_of(python: str | os.PathLike) -> str | None:
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def python310_candidates() -> list[tuple[str, str]]:
    """(path, where it came from) of every Python 3.10 worth trying, best first."""
    out: list[tuple[str, str]] = []
    if os.environ.get(ENV_PYTHON310):
        out.append((os.environ[ENV_PYTHON310], ENV_PYTHON310))
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path.home() / ".pyenv")
    for root in roots:
        versions = sorted((root / "versions").glob("3.10*"), reverse=True)
        out.extend((str(v / "bin" / "python3.10"), f"pyenv ({root})") for v in versions)
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            found = subprocess.run([pyenv, "which", "python3.10"], capture_output=True,
                                   text=True, timeout=30)
            if found.returncode == 0 and found.stdout.strip():
                out.append((found.stdout.strip(), "pyenv which python3.10"))
        except (OSError, subprocess.TimeoutExpired):
            pass
    on_path = shutil.which("python3.10")
    if on_path:
        out.append((on_path, "PATH"))
    return out


def find_python310() -> tuple[str, str]:
    """A working Python 3.10: (path, where it came from)."""
    tried = []
    for path, origin in python310_candidates():
        version = _version_of(path)
        if version and version.startswith("3.10."):
            return path, origin
        tried.append(f"{path} ({origin}): {version or 'does not run'}")
    detail = "; tried " + "; ".join(tried) if tried else ""
    raise EvoSpikeError(
        "setup lava: no Python 3.10 found (lava-nc 0.10 needs exactly 3.10)" + detail +
        f". Install one (e.g. `pyenv install 3.10`, or your system's python3.10 package) or "
        f"point {ENV_PYTHON310} at it")


def _say(message: str) -> None:
    print(f"evospike setup lava: {message}", flush=True)


def _stream(cmd: list[str], what: str) -> None:
    """Run ``cmd`` showing its output as it comes (pip's own progress)."""
    _say(what)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"    {line.rstrip()}", flush=True)
        tail = (tail + [line.rstrip()])[-20:]
    if proc.wait() != 0:
        raise EvoSpikeError(f"setup lava: {' '.join(cmd)} failed (exit {proc.returncode}); "
                            "last lines:\n" + "\n".join(tail))


def _healthy(versions: dict | None) -> bool:
    return bool(versions and versions.get("lava_nc") == LAVA_VERSION and
                versions.get("python", "").startswith("3.10.") and
                int(versions.get("numpy", "2").split(".")[0]) < 2)


def write_record(python: Path, prefix: Path | None, versions: dict) -> Path:
    """Record the environment for the backend (atomically)."""
    record = config_path()
    data = {"python": str(python), "prefix": str(prefix) if prefix else None,
            "versions": versions, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return record


def setup(prefix: str | os.PathLike | None = None, python310: str | None = None,
          force: bool = False, say: Callable[[str], None] = _say) -> Path:
    """Create (or check) the Lava environment and record it; returns its interpreter.

    Idempotent: an existing venv that already imports lava-nc 0.10 with NumPy < 2 is kept and
    only re-recorded (seconds). ``force`` rebuilds it from scratch."""
    root = Path(prefix).expanduser().resolve() if prefix else default_prefix()
    python = root / "bin" / "python"
    if root.exists() and not force:
        versions = probe(python)
        if _healthy(versions):
            record = write_record(python, root, versions)
            say(f"{root} already has lava-nc {versions['lava_nc']} (numpy "
                f"{versions['numpy']}, Python {versions['python']}); recorded in {record}")
            return python
        say(f"{root} exists but does not import lava-nc {LAVA_VERSION} with numpy < 2; "
            "rebuilding it")
        force = True
    if force and root.exists():
        if not (root / "pyvenv.cfg").exists():
            raise EvoSpikeError(f"setup lava: {root} exists and is not a virtual environment; "
                                "choose another --prefix or remove it yourself")
        shutil.rmtree(root)
    if python310:
        version = _version_of(python310)
        if not (version and version.startswith("3.10.")):
            raise EvoSpikeError(f"setup lava: --python {python310} is not a Python 3.10 "
                                f"(it reports {version or 'nothing: it does not run'})")
        base, origin = python310, "--python"
    else:
        base, origin = find_python310()
    say(f"[1/4] Python 3.10: {base} (found via {origin})")
    root.parent.mkdir(parents=True, exist_ok=True)
    _stream([base, "-m", "venv", str(root)], f"[2/4] creating the virtual environment {root}")
    _stream([str(python), "-m", "pip", "install", "--disable-pip-version-check",
             "--progress-bar", "off", *REQUIREMENTS],
            f"[3/4] installing {', '.join(REQUIREMENTS)}")
    say("[4/4] checking that lava imports")
    versions = probe(python)
    if not _healthy(versions):
        raise EvoSpikeError(f"setup lava: {python} was installed but does not import lava-nc "
                            f"{LAVA_VERSION} with numpy < 2 (it reports {versions})")
    record = write_record(python, root, versions)
    say(f"lava-nc {versions['lava_nc']}, numpy {versions['numpy']}, Python "
        f"{versions['python']}; recorded in {record}")
    return python
