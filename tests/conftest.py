import importlib.util
import sys
from pathlib import Path

import pytest

from evospike.backends import get_backend

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["eager", "native"])
def engine(request) -> str:
    """Both engines of the torch backend run every simulation test."""
    return request.param


def load_example(name: str):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_torch(net, duration_ms: float, **config):
    config.setdefault("progress", False)
    runner = get_backend("torch").compile(net, **config)
    return runner.run(duration_ms)
