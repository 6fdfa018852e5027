"""Live mode: the page follows a run in progress, in the same process.

The run is driven as a sequence of ``runner.run`` calls, each a whole number of the runners'
chunks (`evospike.run_loop.CHUNK_STEPS`), which every runner continues exactly where the last
one stopped (the `Runner` contract): the results are the same as one call's. After each call
the feed publishes the runner's results, a new object the page reads without copying.

What a call costs beyond its stepping (the runner assembling its results) is measured from
the runner's own ``wall_time_s`` (stepping time only), and the calls are lengthened whenever
that cost would exceed `OVERHEAD_BUDGET` of the stepping time: the simulation is never slowed
by more than a few percent, and refreshes as often as that allows (several a second for short
or small runs, more seldom for a long run of a large network, whose snapshots cost more).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from evospike.errors import EvoSpikeError
from evospike.insight.data import InsightData
from evospike.results import Results
from evospike.run_loop import CHUNK_STEPS
from evospike.runner import Runner

#: the share of stepping time that publishing snapshots may cost
OVERHEAD_BUDGET = 0.02
#: the shortest wall time between two snapshots (s): a live page polls twice a second
MIN_PERIOD_S = 0.25


class LiveFeed:
    """The latest snapshot of a run, for the page. ``version`` grows with every snapshot."""

    live = True

    def __init__(self, label: str = "run"):
        self.label = label
        self.version = 0
        self.total_steps = 0
        self.running = False
        self.finished = False
        self._data: InsightData | None = None
        self._lock = threading.Lock()

    def publish(self, results: Results) -> None:
        data = InsightData(results, self.label)
        with self._lock:
            self._data = data
            self.version += 1

    def finish(self) -> None:
        with self._lock:
            self.running = False
            self.finished = True
            self.version += 1

    def current(self) -> InsightData | None:
        return self._data

    def status(self) -> str:
        data = self._data
        if data is None:
            return f"live: {self.label} is starting"
        done = data.results.n_steps
        share = f" ({100.0 * done / self.total_steps:.0f} %)" if self.total_steps else ""
        state = ("finished" if self.finished and data.results.complete else
                 "stopped early" if self.finished else "running")
        return f"live: {self.label} {state}, step {done} of {self.total_steps}{share}"


@dataclass
class LiveStats:
    """What publishing cost: snapshots taken, wall time of the run calls, and the share of
    that time spent outside stepping."""

    snapshots: int = 0
    wall_s: float = 0.0
    stepping_s: float = 0.0

    @property
    def overhead(self) -> float:
        return (self.wall_s - self.stepping_s) / self.stepping_s if self.stepping_s > 0 else 0.0


def check_every(every_steps: object, option: str = "--insight-every") -> int:
    """Steps between two hand-overs to the page: a positive integer."""
    if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 1:
        raise EvoSpikeError(f"{option} must be a positive whole number of steps "
                            f"(got {every_steps!r})")
    return every_steps


def run_live(runner: Runner, duration_ms: float, dt_ms: float, feed: LiveFeed,
             stats: LiveStats | None = None, budget: float = OVERHEAD_BUDGET,
             every_steps: int = CHUNK_STEPS) -> Results:
    """Run ``duration_ms`` on ``runner`` as a sequence of calls, publishing each snapshot to
    ``feed``; returns the results of the whole run, as one ``runner.run`` call would.

    The calls end on multiples of ``every_steps`` (several of them once publishing would cost
    more than ``budget`` of the stepping time). Below `CHUNK_STEPS`, a call may end inside a
    runner chunk: the runners realise their inputs per absolute step and chunk index, so the
    results are still those of one call (tested), at the price of drawing a chunk's Poisson
    rows again for each call that ends inside it (measured in benchmarks/insight_timing.py)."""
    unit = check_every(every_steps)
    stats = stats if stats is not None else LiveStats()
    total = int(round(duration_ms / dt_ms))
    start = int(getattr(runner, "step", 0) or 0)
    feed.total_steps = start + total
    feed.running = True
    chunks = 1
    done = 0
    # the runner's stepping time so far (a fresh runner from the command line has none)
    wall_before = float(getattr(runner, "wall_time_s", 0.0) or 0.0)
    results: Results | None = None
    try:
        while done < total or results is None:
            # call boundaries on multiples of the unit (by default CHUNK_STEPS, the runners'
            # own chunking)
            first = start + done
            target = (first // unit + chunks) * unit
            n = min(target - first, total - done)
            t0 = time.perf_counter()
            results = runner.run(n * dt_ms, progress=False)
            wall = time.perf_counter() - t0
            stepping = float(results.meta["wall_time_s"]) - wall_before
            wall_before = float(results.meta["wall_time_s"])
            stepping = min(max(stepping, 0.0), wall)
            feed.publish(results)
            stats.snapshots += 1
            stats.wall_s += wall
            stats.stepping_s += stepping
            done = results.n_steps - start
            if not results.complete or n == 0:
                break
            # lengthen the calls until their extra cost fits the budget and they last at
            # least MIN_PERIOD_S; never shorten them (the extra cost only grows with the run)
            extra = wall - stepping
            per_chunk = max(stepping / max(n / unit, 1e-9), 1e-9)
            wanted = max(extra / (budget * per_chunk), MIN_PERIOD_S / per_chunk)
            chunks = max(chunks, min(math.ceil(wanted), 1_000_000))
    except KeyboardInterrupt:
        # Ctrl-C between two calls (inside one, the runner keeps what it did): the run is cut
        # short, and its results say so, as an interrupted single call's would
        if results is None:
            raise
        results.meta["complete"] = False
    finally:
        feed.finish()
    return results

