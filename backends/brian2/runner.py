"""Brian2Runner: builds one Brian2 network per trial, runs them, and returns the common
`Results`. Calling `run` again continues the same simulation."""

from __future__ import annotations

import logging
import platform
import time

import numpy as np

import evospike
from evospike.ir.network import Network
from evospike.ir.nodes import PoissonSource
from evospike.realize import current_values, poisson_events
from evospike.results import Results, SpikeData, TraceData, WeightData
from evospike.units import steps_of

from .compiler import Brian2Config, Built, build_trial


def _brian2():
    import brian2

    logging.getLogger("brian2").setLevel(logging.WARNING)
    return brian2


def resolve_target(b2, requested: str) -> str:
    """The code-generation target that will run: cython needs a working C compiler."""
    if requested in ("numpy", "cython"):
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
        self.b2.prefs.codegen.target = self.target
        self.b2.prefs.core.default_float_dtype = np.float64
        t0 = time.perf_counter()
        self.trials: list[Built] = [build_trial(self.b2, network, seed) for seed in cfg.seeds]
        self.build_time_s = time.perf_counter() - t0
        self.step = 0
        self.wall_time_s = 0.0
        self.complete = True

    def run(self, duration_ms: float, progress: bool | None = None) -> Results:
        b2, net = self.b2, self.net
        n_steps = steps_of(duration_ms, net.dt_ms, "Run", net.name, "duration_ms")
        start, end = self.step, self.step + n_steps
        t0 = time.perf_counter()
        try:
            for built in self.trials:
                for name, src in net.sources.items():
                    if isinstance(src, PoissonSource):
                        steps, neurons = poisson_events(src, built.seed, net.dt_ms, start,
                                                        n_steps)
                        built.sources[name].set_spikes(neurons, steps * net.dt_ms * b2.ms)
                namespace = self._current_namespace(built, end)
                built.network.run(n_steps * net.dt_ms * b2.ms, namespace=namespace or None,
                                  report=None)
            self.step = end
        except KeyboardInterrupt:
            self.complete = False
        finally:
            self.wall_time_s += time.perf_counter() - t0
        return self.results()

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
            "network": net.name, "backend": "brian2", "engine": f"runtime/{self.target}",
            "engine_note": "", "device": "cpu", "precision": "float64", "dt_ms": dt,
            "n_steps": self.step, "duration_ms": self.step * dt,
            "seeds": np.asarray(self.cfg.seeds), "n_trials": len(self.trials),
            "wall_time_s": self.wall_time_s, "build_time_s": self.build_time_s,
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
                unit = built.emitted[mon.target].state_units[mon.variable]
                raw = np.asarray(getattr(sm, mon.variable + "_")
                                 if unit else getattr(sm, mon.variable))
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
