"""The conformance suite as a pytest plugin: a test that takes the fixture ``conformance_cell``
runs once per (spec, backend configuration) cell, with ids like ``stdp-additive-brian2``.

Load it with ``pytest_plugins = ("evospike.conformance.pytest_plugin",)`` in a conftest (ours
does) or ``pytest -p evospike.conformance.pytest_plugin``. Options: ``--conformance-backends``
and ``--conformance-specs`` narrow the matrix (a backend added to
`evospike.conformance.backends.CONFIGS` runs every spec with no other change). A refused cell
(the backend's own `UnsupportedError`) is skipped with its reasons; a backend that cannot run
on the machine is skipped with the reason, or fails where the environment variable ``CI`` is
set; any other outcome than a pass fails."""

from __future__ import annotations

import os

import pytest

from evospike.conformance.backends import CONFIGS, Refused, Unavailable, availability
from evospike.conformance.matrix import check_cell
from evospike.conformance.specs import SPECS


def pytest_addoption(parser) -> None:
    group = parser.getgroup("evospike conformance")
    group.addoption("--conformance-backends", nargs="+", default=None, metavar="ID",
                    help=f"backend configurations to run (default: {', '.join(CONFIGS)})")
    group.addoption("--conformance-specs", nargs="+", default=None, metavar="NAME",
                    help="specs to run (default: every spec)")


def _selected(config) -> list:
    backends = config.getoption("conformance_backends") or list(CONFIGS)
    unknown = [b for b in backends if b not in CONFIGS]
    if unknown:
        raise pytest.UsageError(f"--conformance-backends: unknown {unknown[0]!r} "
                                f"(known: {', '.join(CONFIGS)})")
    names = config.getoption("conformance_specs")
    specs = SPECS if names is None else [s for s in SPECS if s.name in names]
    if names is not None and len(specs) != len(set(names)):
        known = {s.name for s in SPECS}
        raise pytest.UsageError(f"--conformance-specs: unknown "
                                f"{sorted(set(names) - known)[0]!r}")
    return [pytest.param(spec, backend, id=f"{spec.name}-{backend}")
            for spec in specs for backend in backends]


def pytest_generate_tests(metafunc) -> None:
    if "conformance_cell" in metafunc.fixturenames:
        metafunc.parametrize("conformance_cell", [
            pytest.param((p.values[0], p.values[1]), id=p.id) for p in _selected(metafunc.config)])


def run_conformance_cell(spec, backend: str) -> None:
    """Run one cell: return on a pass, skip on a refusal, fail otherwise."""
    missing = availability(backend)
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to run {backend}: {missing}")
        pytest.skip(f"{backend} cannot run here: {missing}")
    try:
        check_cell(spec, backend)
    except Refused as exc:
        pytest.skip(f"refused: {'; '.join(exc.reasons)}")
    except Unavailable as exc:  # the reference column cannot run here
        pytest.skip(str(exc))
