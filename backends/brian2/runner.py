"""Brian2Runner: builds one Brian2 network per trial, runs them, and returns the common
`Results`. In runtime mode (cython, numpy) calling `run` again continues the same simulation;
C++ standalone generates, compiles and runs one whole program per `run` call, so it runs once."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from typing import NoReturn

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.ir.nodes import PoissonSource
from evospike.realize import current_values, poisson_events
from evospike.results import Results
from evospike.run_loop import ProgressBar, ResultsBuilder, RunCall, steps_for

from .compiler import Brian2Config, Built, build_trial
from .names import object_name
from .structural import keep_last_spikes, run_segmented

#: whether this process has said that Cython is compiling (said once: later builds are cached)
_cython_notice_shown = False

#: shortest current table, in steps (see `table_steps`)
MIN_TABLE_STEPS = 64


def table_steps(end: int) -> int:
    """Rows of a current table that must cover steps [0, end): ``end`` rounded up to a number
    with four significant bits (at most 1/8 more rows), at least `MIN_TABLE_STEPS`, so that
    runs continued by a few steps at a time do not each compile a new Cython module."""
    if end <= MIN_TABLE_STEPS:
        return MIN_TABLE_STEPS
    shift = end.bit_length() - 4
    return -(-end >> shift) << shift


def compile_notice(target: str, show: bool) -> None:
    """Say on stderr, once per process, why the first Cython run sits at 0 % for a minute."""
    global _cython_notice_shown
    if show and target == "cython" and not _cython_notice_shown:
        _cython_notice_shown = True
        print("brian2: compiling Brian2 code with Cython (cached afterwards; the first time "
              "takes ~1 min)", file=sys.stderr, flush=True)


def _standalone_failure(exc: RuntimeError, directory: str) -> NoReturn:
    """Brian2's RuntimeError from building or running the C++ program, as what it means:
    make killed by Ctrl-C (os.system's raw wait status is the signal) is an interruption,
    anything else one line naming the project folder."""
    status = re.search(r"error code: (\d+)", str(exc))
    if status and os.WIFSIGNALED(int(status[1])):
        raise KeyboardInterrupt("the C++ standalone compilation was interrupted") from None
    raise EvoSpikeError(f"brian2 backend: C++ standalone failed: {exc} (project folder "
                        f"{directory})") from None


class _Stopped(KeyboardInterrupt):
    """Brian2 stopped a run early (its SIGINT handler): the remaining runs must not start.
    An interruption like any other (see `evospike.run_loop.RunCall`), one that ended the step
    in progress cleanly."""


def _brian2():
    import brian2

    logging.getLogger("brian2").setLevel(logging.WARNING)
    return brian2


def resolve_target(b2, requested: str) -> str:
    """The code-generation target that will run: cython needs a working C compiler."""
    if requested in ("numpy", "cython", "cpp_standalone"):
        return requested
    try:
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        return "cython" if CythonCodeObject.is_available() else "numpy"
    except Exception:  # any failure to set up cython means it is not available
        return "numpy"


class Brian2Runner:
    def __init__(self, network: Network, cfg: Brian2Config):
        self.b2 = _brian2()
        self.net = network
        self.cfg = cfg
        self.target = resolve_target(self.b2, cfg.target)
        self.standalone = self.target == "cpp_standalone"
        if self.standalone and len(cfg.seeds) != 1:
            raise EvoSpikeError("brian2 backend: C++ standalone compiles one program per trial; "
                                f"run one seed at a time (got {len(cfg.seeds)} seeds)")
        self.b2.prefs.core.default_float_dtype = np.float64
        self.step = 0
        self.wall_time_s = 0.0
        self.build_time_s = 0.0
        self.standalone_run_time_s: float | None = None
        self.complete = True
        self.note = ""  # what an interruption kept (results metadata "interrupted")
        self._unusable = ""  # why this runner cannot run again, once it cannot
        self.trials: list[Built] = []
        if not self.standalone:
            self.b2.prefs.codegen.target = self.target
            compile_notice(self.target, cfg.progress)  # building already compiles code
            t0 = time.perf_counter()
            self.trials = [build_trial(self.b2, network, seed) for seed in cfg.seeds]
            for built in self.trials:  # a continued run must still send the last step's spikes
                keep_last_spikes(self.b2, built)
            self.build_time_s = time.perf_counter() - t0

    def _feed_inputs(self, built: Built, start: int, n_steps: int) -> dict:
        """Poisson spikes of steps [start, start + n_steps) and the current tables."""
        b2, net = self.b2, self.net
        for name, src in net.sources.items():
            if isinstance(src, PoissonSource):
                steps, neurons = poisson_events(src, built.seed, net.dt_ms, start, n_steps)
                built.sources[name].set_spikes(neurons, steps * net.dt_ms * b2.ms)
        return self._current_namespace(built, start + n_steps)

    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms``; returns everything recorded since compilation.

        Ctrl-C (SIGINT): Brian2's own handler finishes the current step and stops. Any other
        KeyboardInterrupt (a second Ctrl-C, or SIGTERM turned into one by the CLI) stops inside
        the step. Either way the results hold the steps simulated to the end, with
        ``complete = False`` (see `_keep_after_interrupt` for which trials are kept)."""
        b2, net = self.b2, self.net
        if self._unusable:
            raise EvoSpikeError(self._unusable)
        n_steps = steps_for(duration_ms, net.dt_ms, net.name)
        show = self.cfg.progress if progress is None else progress
        if self.standalone:
            return self._run_standalone(n_steps, show)
        start, end = self.step, self.step + n_steps
        compile_notice(self.target, show)
        running: int | None = None
        with RunCall() as call:
            for k, built in enumerate(self.trials):
                running = k
                namespace = self._feed_inputs(built, start, n_steps)
                # one bar per trial, in % of its steps; it starts at Brian2's first report,
                # after the code was compiled, so that its rate and time left are the run's
                with ProgressBar(100, show, f"{net.name} brian2 trial {k}", unit="%",
                                 lazy=True) as bar:
                    # structural plasticity edits the Synapses between segments (structural.py)
                    run_segmented(b2, net, built, start, n_steps,
                                  lambda steps, built=built, namespace=namespace, bar=bar:
                                  self._run_piece(built, steps, namespace, bar, start, n_steps))
            running = None
            self.step = end
        self.wall_time_s += call.wall_time_s
        if call.interrupted:
            # raised inside Brian2's step loop (a stop by its handler ends the loop normally)
            hard = b2.Network._globally_running
            # Brian2 clears this flag only when a run ends normally; left set, its SIGINT
            # handler would swallow every later Ctrl-C of this process
            b2.Network._globally_running = False
            self._keep_after_interrupt(end, running, hard)
        return self.results()

    def _run_piece(self, built: Built, n_steps: int, namespace: dict, bar: ProgressBar,
                   start: int, total: int) -> None:
        """Run ``n_steps`` of one trial (a segment of its ``total`` steps from ``start``);
        raise `_Stopped` when Brian2 stopped it early."""
        b2, net = self.b2, self.net
        before = self._trial_step(built)

        def report(elapsed, completed, run_start, duration):
            bar.show_at(round(100 * (before - start + float(completed) * n_steps) / total))

        built.network.run(n_steps * net.dt_ms * b2.ms, namespace=namespace or None,
                          report=report if bar.show else None, report_period=1 * b2.second)
        # a stop requested during the last step ends the run at its full length, but the flag
        # is still set; the next trial's run would clear it and carry on
        if self._trial_step(built) < before + n_steps or b2.Network._globally_stopped:
            raise _Stopped

    def _trial_step(self, built: Built) -> int:
        """Steps that trial has completed. After a stop inside a step, Brian2's network time
        is still that step's start, so the step in progress is not counted."""
        return int(round(float(built.network.t / self.b2.second) / (self.net.dt_ms * 1e-3)))

    def _keep_after_interrupt(self, end: int, running: int | None, hard: bool) -> None:
        """Brian2 runs the trials one after another, and a Results has one step count for
        all its trials: keep the trials that got furthest (those that finished this run, or
        else the interrupted one), at the steps they completed, and say so in the metadata."""
        reached = [self._trial_step(b) for b in self.trials]
        furthest = max(reached)
        # trials run in order, so the furthest ones are a prefix of the list
        n_kept = sum(1 for r in reached if r == furthest)
        seeds = self.cfg.seeds
        if furthest == end and n_kept == len(seeds):
            self.step = end  # the stop came in the very last step: nothing is missing
            return
        where = ("" if running is None else
                 f"in trial {running} (seed {seeds[running]}) at step {reached[running]}; ")
        self.note = (f"interrupted {where}requested {end} steps; kept the first {n_kept} "
                     f"trial(s) (seeds {list(seeds[:n_kept])}) at {furthest} steps"
                     + (f", dropped the {len(seeds) - n_kept} that ran fewer steps"
                        if n_kept < len(seeds) else ""))
        if hard and running is not None and running < n_kept:
            self._unusable = ("brian2 backend: the previous run was interrupted inside a step; "
                              "this simulation cannot be continued (compile the network again)")
        self.trials = self.trials[:n_kept]
        self.cfg = replace(self.cfg, seeds=seeds[:n_kept])
        self.step = furthest
        self.complete = False

    def _run_standalone(self, n_steps: int, show: bool) -> Results:
        """One C++ program runs the whole simulation. Ctrl-C reaches it too (same process
        group): its own handler finishes the step, writes what it recorded and exits normally;
        Brian2 reports the fraction completed, which sets the steps kept."""
        b2, net = self.b2, self.net
        if self.step:
            raise EvoSpikeError("brian2 backend: C++ standalone builds and runs the whole "
                                "simulation in one call; run() cannot continue it (use the "
                                "cython or numpy target to run in segments)")
        directory = tempfile.mkdtemp(prefix="evospike_brian2_standalone_")
        t0 = time.perf_counter()
        b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
        try:
            built = build_trial(b2, net, self.cfg.seeds[0])
            namespace = self._feed_inputs(built, 0, n_steps)
            built.network.run(n_steps * net.dt_ms * b2.ms, namespace=namespace or None)
            if show:
                print("brian2: generating and compiling a C++ program for this run (about a "
                      "minute; standalone builds are not cached)", file=sys.stderr, flush=True)
            try:
                b2.device.build(directory=directory, compile=True, run=True, debug=False)
            except RuntimeError as exc:
                _standalone_failure(exc, directory)
            self.trials = [built]
            fraction = float(b2.device._last_run_completed_fraction)
            self.step = min(n_steps, int(round(fraction * n_steps)))
            if self.step < n_steps:
                self.complete = False
                self.note = (f"interrupted: the C++ program stopped at step {self.step} of "
                             f"{n_steps}")
            self.standalone_run_time_s = float(b2.device._last_run_time)
            self.wall_time_s = time.perf_counter() - t0
            self.build_time_s = self.wall_time_s - self.standalone_run_time_s
            return self.results()
        finally:
            b2.Network._globally_running = False  # left set when the program's run raised
            b2.device.reinit()
            b2.device.activate()
            b2.set_device("runtime")

    def _current_namespace(self, built: Built, end: int) -> dict:
        """TimedArrays of the time-varying injected currents over steps [0, end) (and on to
        `table_steps`; the steps after ``end`` are not read in this run).

        Brian2 writes a TimedArray's name and length into the code that calls it, so the table
        is named after its population and its length taken from a few sizes: every trial and
        seed, and most continued runs, reuse the compiled module."""
        b2, net = self.b2, self.net
        namespace: dict = {}
        rows = table_steps(end)
        for pop_name, table_name in built.table_names.items():
            pop = net.populations[pop_name]
            table = sum(current_values(c, pop.size, net.dt_ms, 0, rows)
                        for c in built.current_tables[pop_name])
            unit = b2.mV if built.emitted[pop_name].state_units.get("v") == "mV" else 1
            namespace[table_name] = b2.TimedArray(
                table * unit, dt=net.dt_ms * b2.ms,
                name=object_name("pop", net, pop_name, "current_table"))
        return namespace

    def results(self) -> Results:
        b2, net = self.b2, self.net
        out = ResultsBuilder(
            net.name, "brian2", units=net.units, schedule=net.schedule,
            engine=self.target if self.standalone else f"runtime/{self.target}",
            engine_note="", device="cpu", precision="float64", dt_ms=net.dt_ms,
            n_steps=self.step, seeds=self.cfg.seeds, wall_time_s=self.wall_time_s,
            complete=self.complete, versions={"brian2": b2.__version__},
            build_time_s=self.build_time_s,
            **({"standalone_run_time_s": self.standalone_run_time_s}
               if self.standalone_run_time_s is not None else {}),
            **({"interrupted": self.note} if self.note else {}))
        for mon in net.spike_monitors:
            monitors = [built.spike_monitors[mon.target] for built in self.trials]
            out.spikes_by_trial(mon.target, net.size_of(mon.target),
                                [(self._steps_of(sm), np.asarray(sm.i, np.int64))
                                 for sm in monitors])
        for name, mon in net.state_monitors.items():
            samples = []
            for built in self.trials:
                sm = built.state_monitors[name]
                variable, unit = built.trace_vars[name]
                raw = np.asarray(getattr(sm, variable + "_") if unit else getattr(sm, variable))
                samples.append(self._samples(sm, raw * (1e3 if unit == "mV" else 1.0)))
            out.trace(name, mon.target, mon.variable, samples[0][0], mon.neurons,
                      np.stack([values for _, values in samples]))
        for name, mon in net.weight_monitors.items():
            samples = []
            for built in self.trials:
                wm = built.weight_monitors[name]
                unit = built.emitted[net.projections[mon.projection].post].state_units.get("v")
                raw = np.asarray(wm.w_ if unit == "mV" else wm.w)
                samples.append(self._samples(wm, raw * (1e3 if unit == "mV" else 1.0)))
            out.weights(name, mon.projection, samples[0][0],
                        np.stack([values for _, values in samples]))
        # energy budgets: the run's energy estimate on their profiles
        return out.build(energy_of=net)

    def _steps_of(self, monitor) -> np.ndarray:
        """The steps of what a Brian2 monitor recorded (its times, in whole steps)."""
        return np.round(np.asarray(monitor.t / self.b2.ms) / self.net.dt_ms).astype(np.int64)

    def _samples(self, monitor, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values (samples, n)) of a state or synapse monitor's ``raw`` (n, samples),
        within the steps run: trials are stacked, and a run stopped inside a step may have
        sampled part of it in one trial only."""
        steps = self._steps_of(monitor)
        done = steps < self.step
        return steps[done], raw.T[done]

    def memory_report(self) -> dict:
        """Bytes of Brian2's synapse arrays (pre and post indices, weights, delays)."""
        total = 0
        n = 0
        for syn in self.trials[0].synapses.values():
            for var in ("_synaptic_pre", "_synaptic_post", "w"):
                total += np.asarray(syn.variables[var].get_value()).nbytes
            total += np.asarray(syn.pre.variables["delay"].get_value()).nbytes
            n += len(syn)
        return {"synapses": n, "synapse_bytes": total,
                "bytes_per_synapse": total / n if n else 0.0}
