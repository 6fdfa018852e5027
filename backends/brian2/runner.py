"""Brian2Runner: builds one Brian2 network per trial, runs them, and returns the common
`Results`. In runtime mode (cython, numpy) calling `run` again continues the same simulation;
C++ standalone generates, compiles and runs one whole program per `run` call, so it runs once."""

from __future__ import annotations

import logging
import platform
import tempfile
import time

import numpy as np

import evospike
from evospike.errors import EvoSpikeError
from evospike.ir.network import Network
from evospike.ir.nodes import PoissonSource
from evospike.realize import current_values, poisson_events
from evospike.results import Results, SpikeData, TraceData, WeightData
from evospike.units import steps_of

from .compiler import Brian2Config, Built, build_trial
from .structural import keep_last_spikes, run_segmented


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
        self.trials: list[Built] = []
        if not self.standalone:
            self.b2.prefs.codegen.target = self.target
            t0 = time.perf_counter()
            self.trials = [build_trial(self.b2, network, seed) for seed in cfg.seeds]
            for built in self.trials:  # a continued run must still send the last step's spikes
                keep_last_spikes(self.b2, built, network.dt_ms * self.b2.ms)
            self.build_time_s = time.perf_counter() - t0

    def _feed_inputs(self, built: Built, start: int, n_steps: int) -> dict:
        """Poisson spikes of steps [start, start + n_steps) and the current tables."""
        b2, net = self.b2, self.net
        for name, src in net.sources.items():
            if isinstance(src, PoissonSource):
                steps, neurons = poisson_events(src, built.seed, net.dt_ms, start, n_steps)
                built.sources[name].set_spikes(neurons, steps * net.dt_ms * b2.ms)
        return self._current_namespace(built, start + n_steps)

    def _reporter(self, show: bool, label: str):
        if not show:
            return None
        from tqdm.auto import tqdm

        bar = tqdm(total=100, unit="%", desc=label, leave=False, delay=2.0)

        def report(elapsed, completed, start, duration):
            bar.n = round(100 * float(completed))
            bar.refresh()
            if completed >= 1.0:
                bar.close()

        return report

    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        """Advance by ``duration_ms``; returns everything recorded since compilation."""
        b2, net = self.b2, self.net
        n_steps = steps_of(duration_ms, net.dt_ms, "Run", net.name, "duration_ms")
        if self.standalone:
            return self._run_standalone(n_steps)
        start, end = self.step, self.step + n_steps
        show = self.cfg.progress if progress is None else progress
        t0 = time.perf_counter()
        try:
            for k, built in enumerate(self.trials):
                namespace = self._feed_inputs(built, start, n_steps)
                report = self._reporter(show, f"{net.name} brian2 trial {k}")
                # structural plasticity edits the Synapses between segments (structural.py)
                run_segmented(b2, net, built, start, n_steps,
                              lambda steps, built=built, namespace=namespace, report=report:
                              built.network.run(steps * net.dt_ms * b2.ms,
                                                namespace=namespace or None, report=report))
            self.step = end
        except KeyboardInterrupt:
            self.complete = False
        finally:
            self.wall_time_s += time.perf_counter() - t0
        return self.results()

    def _run_standalone(self, n_steps: int) -> Results:
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
            b2.device.build(directory=directory, compile=True, run=True, debug=False)
            self.trials = [built]
            self.step = n_steps
            self.standalone_run_time_s = float(b2.device._last_run_time)
            self.wall_time_s = time.perf_counter() - t0
            self.build_time_s = self.wall_time_s - self.standalone_run_time_s
            return self.results()
        finally:
            b2.device.reinit()
            b2.device.activate()
            b2.set_device("runtime")

    def _current_namespace(self, built: Built, end: int) -> dict:
        """TimedArrays of the time-varying injected currents over steps [0, end)."""
        b2, net = self.b2, self.net
        namespace: dict = {}
        for pop_name, table_name in built.table_names.items():
            pop = net.populations[pop_name]
            table = sum(current_values(c, pop.size, net.dt_ms, 0, end)
                        for c in built.current_tables[pop_name])
            unit = b2.mV if built.emitted[pop_name].state_units.get("v") == "mV" else 1
            namespace[table_name] = b2.TimedArray(table * unit, dt=net.dt_ms * b2.ms)
        return namespace

    def results(self) -> Results:
        b2, net = self.b2, self.net
        dt = net.dt_ms
        meta = {
            "network": net.name, "backend": "brian2",
            "engine": self.target if self.standalone else f"runtime/{self.target}",
            "engine_note": "", "device": "cpu", "precision": "float64", "dt_ms": dt,
            "n_steps": self.step, "duration_ms": self.step * dt,
            "seeds": np.asarray(self.cfg.seeds), "n_trials": len(self.trials),
            "wall_time_s": self.wall_time_s, "build_time_s": self.build_time_s,
            **({"standalone_run_time_s": self.standalone_run_time_s}
               if self.standalone_run_time_s is not None else {}),
            "complete": self.complete, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"evospike": evospike.__version__, "brian2": b2.__version__,
                         "numpy": np.__version__, "python": platform.python_version()},
        }
        res = Results(meta)
        for mon in net.spike_monitors:
            steps, neurons, trials = [], [], []
            for k, built in enumerate(self.trials):
                sm = built.spike_monitors[mon.target]
                s = np.round(np.asarray(sm.t / b2.ms) / dt).astype(np.int64)
                steps.append(s)
                neurons.append(np.asarray(sm.i, dtype=np.int64))
                trials.append(np.full(s.size, k, dtype=np.int64))
            step, neuron, trial = (np.concatenate(a) for a in (steps, neurons, trials))
            order = np.lexsort((neuron, step, trial))
            res.spikes_by_node[mon.target] = SpikeData(net.size_of(mon.target), step[order],
                                                       neuron[order].astype(np.int32),
                                                       trial[order].astype(np.int32))
        for name, mon in net.state_monitors.items():
            values, steps = [], None
            for built in self.trials:
                sm = built.state_monitors[name]
                variable, unit = built.trace_vars[name]
                raw = np.asarray(getattr(sm, variable + "_") if unit else getattr(sm, variable))
                scale = 1e3 if unit == "mV" else 1.0  # volt -> mV
                values.append((raw * scale).T)
                steps = np.round(np.asarray(sm.t / b2.ms) / dt).astype(np.int64)
            res.traces[name] = TraceData(mon.target, mon.variable, steps, mon.neurons,
                                         np.stack(values))
        for name, mon in net.weight_monitors.items():
            values, steps = [], None
            for built in self.trials:
                wm = built.weight_monitors[name]
                unit = built.emitted[net.projections[mon.projection].post].state_units.get("v")
                raw = np.asarray(wm.w_ if unit == "mV" else wm.w)
                values.append((raw * (1e3 if unit == "mV" else 1.0)).T)
                steps = np.round(np.asarray(wm.t / b2.ms) / dt).astype(np.int64)
            res.weights[name] = WeightData(mon.projection, steps, np.stack(values))
        if net.processes:  # energy budgets: the run's energy estimate on their profiles
            from evospike.ir.energy_budget import energy_meta

            res.meta.update(energy_meta(net, res))
        return res

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
