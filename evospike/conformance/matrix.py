"""Run every conformance spec on every backend configuration and tabulate the outcomes.

A cell is ``pass`` (the backend ran the spec's network and its results met the spec's own
reference check and, where the column has one, agreed with its reference column: torch-native
bit for bit and Brian2 to 1e-9 with torch-eager float64, torch-fixed and Lava bit for bit with
each other), ``refused`` (the backend refused the network before running it, with its reasons)
or ``FAIL`` (anything else, with the message). A cell never passes because a run merely
finished."""

from __future__ import annotations

import traceback
import warnings
from dataclasses import dataclass

import numpy as np

from evospike.conformance.backends import CONFIGS, Refused, Unavailable, config, run
from evospike.conformance.specs import SPECS, Spec
from evospike.errors import EvoSpikeError
from evospike.results import Results

PASS, REFUSED, FAIL = "pass", "refused", "FAIL"


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""

    def cell(self) -> str:
        return self.status if not self.detail else f"{self.status} ({self.detail})"


class Mismatch(AssertionError):
    """Two backends' results differ (the message names the record and the first difference)."""


_RUNS: dict[tuple[str, str], Results | BaseException] = {}


def spec_by_name(name: str) -> Spec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise EvoSpikeError(f"conformance: no spec {name!r} (known: "
                        f"{', '.join(s.name for s in SPECS)})")


def cached_run(spec: Spec, backend_id: str) -> Results:
    """The results of ``spec`` on ``backend_id``, run once per process (a reference column's run
    serves every column compared with it). A refusal or failure is re-raised each time."""
    key = (spec.name, backend_id)
    if key not in _RUNS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Lava's notes on approximations; not outcomes
                _RUNS[key] = run(backend_id, spec.build(), spec.duration_ms)
        except Exception as exc:  # noqa: BLE001 - stored and re-raised to every caller
            _RUNS[key] = exc
    got = _RUNS[key]
    if isinstance(got, BaseException):
        raise got
    return got


def compare(a: Results, b: Results, exact: bool, what: str) -> None:
    """Every recorded spike train, state trace and weight snapshot of ``a`` equals ``b``'s:
    identical spikes, identical sample steps, values equal (``exact``) or within 1e-9."""
    for kind, left, right in (("spikes", a.spikes_by_node, b.spikes_by_node),
                              ("trace", a.traces, b.traces), ("weights", a.weights, b.weights)):
        if set(left) != set(right):
            raise Mismatch(f"{what}: {kind} records differ: {sorted(left)} vs {sorted(right)}")
    if a.n_trials != b.n_trials:
        raise Mismatch(f"{what}: {a.n_trials} trials vs {b.n_trials}")
    for node in a.spikes_by_node:
        for trial in range(a.n_trials):
            sa, na = a.spike_steps(node, trial)
            sb, nb = b.spike_steps(node, trial)
            if not (np.array_equal(sa, sb) and np.array_equal(na, nb)):
                raise Mismatch(f"{what}: spikes of '{node}' differ ({sa.size} vs {sb.size} "
                               f"spikes; first difference at step {_first_diff(sa, na, sb, nb)})")
    for name, ta in [*a.traces.items(), *a.weights.items()]:
        tb = b.traces[name] if name in b.traces else b.weights[name]
        if not np.array_equal(ta.steps, tb.steps):
            raise Mismatch(f"{what}: '{name}' is sampled at different steps")
        va, vb = np.asarray(ta.values, dtype=np.float64), np.asarray(tb.values, np.float64)
        if va.shape != vb.shape:
            raise Mismatch(f"{what}: '{name}' has shape {va.shape} vs {vb.shape}")
        bad = va != vb if exact else ~np.isclose(va, vb, rtol=1e-9, atol=1e-9, equal_nan=True)
        if exact:
            bad &= ~(np.isnan(va) & np.isnan(vb))
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise Mismatch(f"{what}: '{name}' differs at (trial, sample, index) {idx}: "
                           f"{va[idx]!r} vs {vb[idx]!r} ({int(bad.sum())} values differ)")


def _first_diff(sa, na, sb, nb) -> int:
    n = min(sa.size, sb.size)
    diff = np.nonzero((sa[:n] != sb[:n]) | (na[:n] != nb[:n]))[0]
    if diff.size:
        return int(min(sa[diff[0]], sb[diff[0]]))
    return int(sa[n] if sa.size > n else sb[n]) if max(sa.size, sb.size) > n else -1


def check_cell(spec: Spec, backend_id: str) -> None:
    """Run ``spec`` on ``backend_id`` and check it; raises `Refused` (a valid outcome),
    `Unavailable`, or the failure."""
    cfg = config(backend_id)
    res = cached_run(spec, backend_id)
    if not cfg.fixed:
        spec.check(spec.build(), res)
    elif spec.fixed_check is not None:
        spec.fixed_check(spec.build(), res)
    if cfg.reference is None:
        return
    try:
        ref = cached_run(spec, cfg.reference)
    except Refused as exc:
        if cfg.fixed:
            # the two fixed-point engines are each other's reference; one carrying what the
            # other refuses has nothing to be compared with, which is a failure, not a pass
            raise Mismatch(f"no reference: {cfg.reference} refuses this network "
                           f"({'; '.join(exc.reasons)})") from None
        raise Mismatch(f"the reference {cfg.reference} refuses this network: "
                       f"{'; '.join(exc.reasons)}") from None
    compare(res, ref, cfg.exact, f"{backend_id} vs {cfg.reference}")


def run_cell(spec: Spec, backend_id: str) -> Outcome:
    try:
        check_cell(spec, backend_id)
    except Refused as exc:
        return Outcome(REFUSED, "; ".join(exc.reasons))
    except Unavailable as exc:
        return Outcome(FAIL, str(exc))
    except Exception as exc:  # noqa: BLE001 - every other exception is the cell's failure
        text = str(exc).strip().replace("\n", " ") or type(exc).__name__
        if not isinstance(exc, AssertionError):
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            text = f"{type(exc).__name__}: {text} [{frame.filename.split('/')[-1]}:" \
                   f"{frame.lineno}]"
        return Outcome(FAIL, text)
    return Outcome(PASS)


def run_matrix(specs: list[Spec] | None = None, backends: list[str] | None = None,
               progress=None) -> dict[str, dict[str, Outcome]]:
    """spec name -> backend id -> outcome."""
    specs = list(SPECS if specs is None else specs)
    backends = list(CONFIGS if backends is None else backends)
    for b in backends:
        config(b)
    table: dict[str, dict[str, Outcome]] = {}
    for spec in specs:
        row = table.setdefault(spec.name, {})
        for b in backends:
            row[b] = run_cell(spec, b)
            if progress is not None:
                progress(spec.name, b, row[b])
    return table


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_text(table: dict[str, dict[str, Outcome]]) -> str:
    """One line per spec and backend (the reasons are long; a grid would wrap them away)."""
    lines = []
    for spec, row in table.items():
        lines.append(f"{spec}")
        for backend, outcome in row.items():
            lines.append(f"  {backend:<13} {outcome.cell()}")
    return "\n".join(lines) + "\n"


def summary(table: dict[str, dict[str, Outcome]]) -> dict[str, int]:
    counts = {PASS: 0, REFUSED: 0, FAIL: 0}
    for row in table.values():
        for outcome in row.values():
            counts[outcome.status] += 1
    return counts


def format_markdown(table: dict[str, dict[str, Outcome]], header: str) -> str:
    backends = list(next(iter(table.values()))) if table else []
    short = {PASS: "pass", REFUSED: "refused", FAIL: "**FAIL**"}
    out = [header.rstrip(), "", "## Matrix", "",
           "| spec | covers | " + " | ".join(backends) + " |",
           "|---|---|" + "---|" * len(backends)]
    covers = {s.name: s for s in SPECS}
    for name, row in table.items():
        kinds = ", ".join(covers[name].title.split(", ")) if name in covers else ""
        out.append(f"| `{name}` | {_escape(kinds)} | " +
                   " | ".join(short[o.status] for o in row.values()) + " |")
    counts = summary(table)
    out += ["", f"{counts[PASS]} pass, {counts[REFUSED]} refused, {counts[FAIL]} FAIL.", "",
            "## Reasons", "",
            "Each refusal is the backend's own message (its `UnsupportedError`); each failure is "
            "the check that failed.", ""]
    for name, row in table.items():
        notes = [(b, o) for b, o in row.items() if o.status != PASS]
        if not notes:
            continue
        out.append(f"- `{name}`")
        for b, o in notes:
            out.append(f"  - {b}: {o.status}: {_escape(o.detail)}")
    out += ["", "## What each spec checks", ""]
    for spec in SPECS:
        if spec.name in table:
            out.append(f"- `{spec.name}` ({spec.title}): {spec.doc}")
    return "\n".join(out) + "\n"
