"""NestRunner: every trial as a copy of the network inside one NEST kernel, run in chunks, and
the common `Results`.

NEST keeps one kernel per process. A runner that finds the kernel rebuilt by someone else
(another NEST runner compiled since) builds its network again and replays the steps it had
run; everything it feeds NEST is realised by EvoSpike from keyed streams, so the replay is the
same simulation.

A NEST multimeter receives the samples of a min-delay slice at the start of the next one: the
runner simulates ``flush`` steps (one min delay) past the steps it reports, so that every
reported step's samples have arrived. Those steps are simulated once; a later ``run`` continues
from there (the inputs of every simulated step are fed before it runs)."""

from __future__ import annotations

import os
import time

import numpy as np

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.ir.nodes import PoissonSource
from evospike.realize import poisson_events, poisson_input_counts
from evospike.results import Results
from evospike.run_loop import ProgressBar, ResultsBuilder, RunCall, steps_for

from .compiler import NestConfig, Trial, build_trial, set_generator_spikes

#: steps per nest.Run call: an interrupt is taken between two calls
CHUNK_STEPS = 1000
#: NEST's rng_seed must lie in [1, 2**31 - 1]
_RNG_SEEDS = 2**31 - 2

#: the runner whose network the NEST kernel holds now
_kernel_owner: list[object] = [None]


def import_nest():
    """NEST, imported without its banner and with errors only."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    try:
        import nest
    except ImportError:
        raise EvoSpikeError("nest backend: NEST is not installed (pip install "
                            "nest-simulator==3.10.*; it comes with the dev extra)") from None
    nest.verbosity = nest.VerbosityLevel.ERROR
    return nest


class NestRunner:
    def __init__(self, network: Network, cfg: NestConfig):
        self.nest = import_nest()
        self.net = network
        self.cfg = cfg
        self.step = 0  # steps reported
        self.simulated = 0  # steps NEST has simulated (the reported ones plus the flush)
        self.fed = 0  # steps whose inputs NEST has been given
        self.flush = 1
        self.wall_time_s = 0.0
        self.build_time_s = 0.0
        self.complete = True
        self.note = ""
        self.trials: list[Trial] = []
        self._build()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        nest, net = self.nest, self.net
        t0 = time.perf_counter()
        nest.ResetKernel()
        nest.set(resolution=net.dt_ms, local_num_threads=int(self.cfg.threads),
                 rng_seed=int(self.cfg.seeds[0]) % _RNG_SEEDS + 1)
        self.trials = [build_trial(nest, net, int(seed)) for seed in self.cfg.seeds]
        self.flush = max(1, int(round(nest.min_delay / net.dt_ms)))
        self.simulated = 0
        self.fed = 0
        _kernel_owner[0] = self
        self.build_time_s += time.perf_counter() - t0

    def _feed(self, end: int) -> None:
        """Give NEST the Poisson spikes and counts of steps [fed, end)."""
        net, start = self.net, self.fed
        if end <= start:
            return
        for trial in self.trials:
            for name, src in net.sources.items():
                if isinstance(src, PoissonSource):
                    steps, neurons = poisson_events(src, trial.seed, net.dt_ms, start,
                                                    end - start)
                    set_generator_spikes(trial.sources[name], src.size, steps + 1, neurons,
                                         net.dt_ms)
            for name, inp in net.inputs.items():
                size = net.populations[inp.target].size
                counts = poisson_input_counts(inp, size, trial.seed, net.dt_ms, start,
                                              end - start)
                # step 0's counts are in the initial V_m (`step_zero_offset`; `refusals`
                # lets an input start at step 0 only there): no event can act in step 0
                counts[: max(0, 1 - start)] = 0
                steps, neurons = np.nonzero(counts)
                # counts of step m act in step m: stamped m dt, delivered with one step delay
                set_generator_spikes(trial.inputs[name], size, steps + start, neurons,
                                     net.dt_ms, counts[steps, neurons])
        self.fed = end

    def _simulate(self, target: int, bar: ProgressBar | None = None) -> None:
        """Advance NEST to step ``target`` in chunks (an interrupt lands between two)."""
        nest, dt = self.nest, self.net.dt_ms
        if target <= self.simulated:
            return
        self._feed(target)
        nest.Prepare()
        try:
            while self.simulated < target:
                n = min(CHUNK_STEPS, target - self.simulated)
                self._run_chunk(n * dt)
                self.simulated += n
                if bar is not None:
                    bar.update(n)
        finally:
            self.simulated = int(round(nest.biological_time / dt))
            nest.Cleanup()

    def _run_chunk(self, ms: float) -> None:
        """One nest.Run call (between two of them a KeyboardInterrupt is taken)."""
        self.nest.Run(ms)

    # ------------------------------------------------------------------ running
    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms``; returns everything recorded since compilation. A
        KeyboardInterrupt (Ctrl-C) stops at the end of the NEST call in progress; the results
        then hold the steps whose recordings are complete, marked incomplete."""
        net = self.net
        n_steps = steps_for(duration_ms, net.dt_ms, net.name)
        show = self.cfg.progress if progress is None else progress
        end = self.step + n_steps
        if _kernel_owner[0] is not self:
            # the kernel was rebuilt for another network: ours again; the simulation below
            # then replays every step from 0 (the same inputs, drawn from keyed streams)
            self._build()
        with ProgressBar(n_steps, show, f"{net.name} nest") as bar, RunCall() as call:
            self._simulate(end + self.flush, bar)
        self.wall_time_s += call.wall_time_s
        if call.interrupted:
            self.step = max(self.step, min(end, self.simulated - self.flush))
            if self.step < end:
                self.complete = False
                self.note = (f"interrupted at step {self.simulated} of {end + self.flush}; "
                             f"kept the {self.step} steps whose recordings are complete")
        else:
            self.step = end
        return self.results()

    # ------------------------------------------------------------------ results
    def _steps(self, times: np.ndarray) -> np.ndarray:
        """The EvoSpike step of a NEST event or sample stamped ``times`` (ms): (n + 1) dt."""
        return np.round(np.asarray(times, dtype=np.float64) / self.net.dt_ms).astype(np.int64) - 1

    def results(self) -> Results:
        nest, net = self.nest, self.net
        out = ResultsBuilder(
            net.name, "nest", units=net.units, engine=f"nest {nest.__version__}",
            engine_note=f"{self.cfg.threads} thread(s)", device="cpu", precision="float64",
            dt_ms=net.dt_ms, n_steps=self.step, seeds=self.cfg.seeds,
            wall_time_s=self.wall_time_s, complete=self.complete,
            versions={"nest": str(nest.__version__)}, build_time_s=self.build_time_s,
            threads=int(self.cfg.threads),
            **({"interrupted": self.note} if self.note else {}))
        for mon in net.spike_monitors:
            per_trial = []
            for trial in self.trials:
                ev = trial.spike_recorders[mon.target].events
                ids = trial.pops.get(mon.target)
                if ids is None:
                    ids = trial.source_ids[mon.target]
                per_trial.append((self._steps(ev["times"]),
                                  np.asarray(ev["senders"], np.int64) - int(ids[0])))
            out.spikes_by_trial(mon.target, net.size_of(mon.target), per_trial)
        for name, mon in net.state_monitors.items():
            steps = np.arange(0, self.step, mon.every_steps, dtype=np.int64)
            values = np.stack([self._trace(trial, name, mon, steps) for trial in self.trials])
            out.trace(name, mon.target, mon.variable, steps, mon.neurons, values)
        for name, mon in net.weight_monitors.items():
            # static synapses (plasticity is refused): every snapshot is the built weights,
            # in EvoSpike's units and CSR order (not NEST's sign-routed ones)
            steps = np.arange(0, self.step, mon.every_steps, dtype=np.int64)
            w = np.asarray(net.projections[mon.projection].weights, dtype=np.float64)
            out.weights(name, mon.projection, steps,
                        np.broadcast_to(w, (len(self.trials), steps.size, w.size)).copy())
        return out.build()

    def _trace(self, trial: Trial, name: str, mon, steps: np.ndarray) -> np.ndarray:
        """(samples, neurons) of one trial's multimeter at ``steps``."""
        ev = trial.multimeters[name].events
        recordable = [k for k in ev if k not in ("senders", "times")][0]
        at = self._steps(ev["times"])
        neuron = np.asarray(ev["senders"], np.int64) - int(trial.pops[mon.target][0])
        column = {int(n): k for k, n in enumerate(mon.neurons)}
        keep = np.isin(at, steps)
        table = np.full((steps.size, mon.neurons.size), np.nan)
        rows = np.searchsorted(steps, at[keep])
        for n_id, k in column.items():
            sel = neuron[keep] == n_id
            table[rows[sel], k] = np.asarray(ev[recordable], np.float64)[keep][sel]
        # a neuron listed twice is recorded once
        for k, n_id in enumerate(mon.neurons):
            table[:, k] = table[:, column[int(n_id)]]
        if np.isnan(table).any():
            raise EvoSpikeError(f"nest backend: StateMonitor '{name}' misses samples of steps "
                                "NEST reported as run (its multimeter lagged more than the "
                                "flush)")
        return table
