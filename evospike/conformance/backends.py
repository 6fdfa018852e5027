"""The backend configurations the conformance suite runs every spec on, and how a network is
run on each. A backend's refusals are its own: the suite compiles the network and reports the
reasons of the `UnsupportedError` the backend raises (for the native engine: the reason the
torch backend gives for not running it there). Nothing here decides what a backend supports.

``gaps`` are the precisions a configuration does not offer (a run requested in one of them is
skipped with that reason by the process tests' harness, ``tests/conftest.py``); they are not
node refusals."""

from __future__ import annotations

from dataclasses import dataclass, field

from evospike.errors import EvoSpikeError, UnsupportedError
from evospike.ir.network import Network
from evospike.results import Results

#: what a run on a configuration may require of it: the precisions
FEATURES = ("float32", "float64", "fixed")


@dataclass(frozen=True)
class BackendConfig:
    """One column of the conformance matrix.

    ``reference``: the configuration this one is compared with (None: only the spec's own
    reference check applies); ``exact``: the comparison is bit for bit rather than to 1e-9.
    ``in_process_tests``: the process tests' ``backend`` fixture runs on it (the fixed-point
    columns run only their own comparisons)."""

    id: str
    backend: str
    options: dict = field(default_factory=dict)
    reference: str | None = None
    exact: bool = False
    fixed: bool = False
    in_process_tests: bool = True
    gaps: dict = field(default_factory=dict)
    doc: str = ""


CONFIGS: dict[str, BackendConfig] = {c.id: c for c in (
    BackendConfig("torch-eager", "torch", {"engine": "eager", "precision": "float64"},
                  doc="torch eager engine, float64: the reference engine"),
    BackendConfig("torch-native", "torch", {"engine": "native", "precision": "float64"},
                  reference="torch-eager", exact=True,
                  doc="torch native C kernel, float64, bit for bit with torch-eager"),
    # the static-shape device engine on the CPU; it carries no process kind, so the process
    # tests' fixture does not run on it (they would all be refusals)
    BackendConfig("torch-device", "torch", {"engine": "device", "precision": "float64"},
                  reference="torch-eager", exact=True, in_process_tests=False,
                  doc="torch device engine (static shapes, GPU strategy) on the CPU, float64, "
                      "bit for bit with torch-eager"),
    BackendConfig("torch-fixed", "torch", {"precision": "fixed"}, reference="lava",
                  exact=True, fixed=True, in_process_tests=False,
                  gaps={"float32": "the fixed-point mode computes in integers",
                        "float64": "the fixed-point mode computes in integers"},
                  doc="torch fixed point (Loihi 2 integers), bit for bit with Lava"),
    BackendConfig("brian2", "brian2", {"target": "numpy"}, reference="torch-eager",
                  gaps={"float32": "Brian2's runtime mode computes in float64",
                        "fixed": "Brian2 has no fixed-point (Loihi integer) mode"},
                  doc="Brian2 runtime (numpy target), to 1e-9 of torch-eager"),
    BackendConfig("lava", "lava", {"select_tag": "fixed_pt"}, reference="torch-fixed",
                  exact=True, fixed=True, in_process_tests=False,
                  gaps={"float32": "fixed_pt computes in Loihi 2 integers",
                        "float64": "fixed_pt computes in Loihi 2 integers"},
                  doc="Lava fixed_pt (Loihi 2's bit-accurate model), bit for bit with "
                      "torch-fixed"),
    # NEST carries no process kind, so the process tests' fixture does not run on it
    # step_exact: the conductance models, which NEST integrates with adaptive RKF45 and which
    # agree statistically only, are refused (with that reason) rather than failing at 1e-9
    BackendConfig("nest", "nest", {"step_exact": True}, reference="torch-eager",
                  in_process_tests=False,
                  gaps={"float32": "NEST computes in double precision",
                        "fixed": "NEST has no fixed-point (Loihi integer) mode"},
                  doc="NEST 3.10 (iaf_psc_exp / iaf_psc_delta / izhikevich), to 1e-9 of "
                      "torch-eager"),
)}


class Refused(EvoSpikeError):
    """A backend refused a network before running it; ``reasons`` are its own."""

    def __init__(self, backend: str, reasons: list[str]):
        self.backend = backend
        self.reasons = [r for r in reasons if r]
        if not self.reasons:  # a refusal without a reason is not a valid outcome
            raise EvoSpikeError(f"backend '{backend}' refused a network without giving a reason")
        super().__init__(f"{backend} refuses: " + "; ".join(self.reasons))


class Unavailable(EvoSpikeError):
    """The configuration cannot run on this machine at all (e.g. no Lava environment)."""


def config(backend_id: str) -> BackendConfig:
    if backend_id not in CONFIGS:
        raise EvoSpikeError(f"conformance: unknown backend {backend_id!r} "
                            f"(known: {', '.join(CONFIGS)})")
    return CONFIGS[backend_id]


def availability(backend_id: str) -> str | None:
    """None where ``backend_id`` can run here; otherwise why not."""
    if config(backend_id).backend == "nest":
        import importlib.util

        if importlib.util.find_spec("nest") is None:
            return "NEST is not installed (pip install nest-simulator)"
    if config(backend_id).backend == "lava":
        from evospike.backends.lava.environment import find_python

        try:
            find_python()
        except EvoSpikeError as exc:
            return str(exc).splitlines()[0]
    return None


def _native_reason(net: Network, options: dict) -> str | None:
    from evospike.backends.torch.compiler import TorchConfig, compile_network
    from evospike.backends.torch.native.engine import native_unavailable_reason

    cfg = TorchConfig(precision=options["precision"], engine="native", progress=False)
    return native_unavailable_reason(compile_network(net, cfg))


def run(backend_id: str, net: Network, duration_ms: float) -> Results:
    """Compile ``net`` on ``backend_id`` and run it for ``duration_ms``. Raises `Refused` with the
    backend's own reasons, `Unavailable` where the configuration cannot run here; any other
    exception is the backend's failure."""
    from evospike.backends import get_backend

    cfg = config(backend_id)
    missing = availability(backend_id)
    if missing is not None:
        raise Unavailable(f"{backend_id} cannot run here: {missing}")
    try:
        runner = get_backend(cfg.backend).compile(net, progress=False, **cfg.options)
    except UnsupportedError as exc:
        raise Refused(backend_id, exc.reasons) from None
    except EvoSpikeError:
        # the torch backend refuses the native engine with a plain EvoSpikeError; take the
        # reason from the same function it asks, so only a real refusal becomes one
        if cfg.options.get("engine") == "native":
            reason = _native_reason(net, cfg.options)
            if reason is not None:
                raise Refused(backend_id, [reason]) from None
        raise
    return runner.run(duration_ms)
