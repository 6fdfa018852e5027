"""Shared fixtures. Simulation tests run on every backend (the conformance suite): each entry of
`BACKENDS` is one way to run a network; `UNSUPPORTED` lists, per backend, what it cannot do and
why, and tests that need it are skipped there with that reason."""

import importlib.util
import sys
from pathlib import Path

import pytest

from evospike.backends import get_backend
from evospike.conformance.backends import CONFIGS as _CONFORMANCE
from evospike.conformance.backends import FEATURES

ROOT = Path(__file__).resolve().parents[1]

#: the conformance suite: `conformance_cell` runs a test on every (spec, backend) cell
pytest_plugins = ("evospike.conformance.pytest_plugin",)

#: test id -> (backend name, options): the conformance suite's configurations that the process
#: tests run on (evospike.conformance.backends is the one list; its fixed-point columns run
#: only their own bit-exact comparisons, in tests/test_conformance.py)
BACKENDS = {c.id: (c.backend, {k: v for k, v in c.options.items() if k != "precision"})
            for c in _CONFORMANCE.values() if c.in_process_tests}

#: backend test id -> {feature: reason it is not supported}, declared in evospike.conformance
UNSUPPORTED = {c.id: dict(c.gaps) for c in _CONFORMANCE.values()
               if c.in_process_tests and c.gaps}


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    """Every conformance test runs once per backend configuration."""
    return request.param


@pytest.fixture(params=["eager", "native"])
def engine(request) -> str:
    """Tests of the torch backend's own machinery run on both of its engines."""
    return request.param


def require(backend: str, feature: str) -> None:
    """Skip the calling test where ``backend`` lacks ``feature``. A feature outside `FEATURES`
    is an error, not a pass: a skip keyed on a name no backend declares could never trigger."""
    if feature not in FEATURES:
        raise ValueError(f"require: unknown feature {feature!r} (known: {', '.join(FEATURES)})")
    if backend not in BACKENDS:
        raise ValueError(f"require: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    reason = UNSUPPORTED.get(backend, {}).get(feature)
    if reason:
        pytest.skip(f"{backend} does not support {feature}: {reason}")


def run_on(backend: str, net, duration_ms: float, **config):
    """Compile ``net`` on ``backend`` (a key of BACKENDS) and run it."""
    name, options = BACKENDS[backend]
    precision = config.get("precision", "float64")
    require(backend, precision)
    config.setdefault("progress", False)
    if name == "brian2":
        config.pop("precision", None)
    return get_backend(name).compile(net, **{**options, **config}).run(duration_ms)


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
