"""The contract every backend's runner follows (a Protocol). What the runners do alike
(duration check, interrupts, progress, results metadata) is written once in
`evospike.run_loop`."""

from __future__ import annotations

from typing import Protocol

from evospike.results import Results


class Runner(Protocol):
    def run(self, duration_ms: float) -> Results:
        """Advance the simulation by ``duration_ms`` (a whole number of steps) and return
        everything recorded since compilation; calling it again continues the same run."""

    def memory_report(self) -> dict:
        """Bytes used by the compiled network, in total and per synapse."""
