"""Realisation of the time-dependent and random parts of a network, shared by every backend so
that all of them are fed identical inputs (a comparison then compares simulators, not random
streams).

Random draws are keyed by (trial seed, node name, chunk), never by how a run is split into
segments, so two 500 ms segments see exactly the inputs of one 1000 ms run.
"""

from __future__ import annotations

import zlib

import numpy as np

from evospike.errors import ValidationError
from evospike.ir.nodes import (
    CurrentInput,
    PoissonInput,
    PoissonSource,
    Population,
    SpikeTimesSource,
)

POISSON_CHUNK_STEPS = 1000


def _key(name: str) -> int:
    return zlib.crc32(name.encode())


def initial_state(pop: Population, seed: int) -> dict[str, np.ndarray]:
    """Initial value of every state of ``pop`` for one trial, shape (size,) each."""
    defaults = pop.model.default_initial()
    rng = np.random.default_rng([seed, _key(pop.name), 1])
    out = {}
    for state in pop.model.state_names:
        value = pop.initial.get(state, defaults[state])
        if hasattr(value, "draw"):
            out[state] = value.draw(rng, pop.size)
        else:
            out[state] = np.broadcast_to(np.asarray(value, dtype=np.float64), (pop.size,)).copy()
    return out


#: at most this many uniforms are held at once while drawing a PoissonSource's spikes
DRAW_BLOCK_VALUES = 1 << 22


def poisson_events(src: PoissonSource, seed: int, dt_ms: float, start_step: int,
                   n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of ``src`` in steps [start_step, start_step + n_steps): (steps, neurons), sorted by
    step then neuron."""
    rate = np.broadcast_to(np.asarray(src.rate_hz, dtype=np.float64), (src.size,))
    prob = rate * dt_ms * 1e-3
    if np.any(prob > 1.0):
        raise ValidationError("PoissonSource", src.name, "rate_hz",
                              f"times dt ({dt_ms} ms) exceeds one spike per step",
                              float(rate.max()))
    first = int(np.ceil(src.start_ms / dt_ms - 1e-9))
    last = np.inf if src.stop_ms is None else int(np.ceil(src.stop_ms / dt_ms - 1e-9))
    steps_out, neurons_out = [], []
    stop_step = start_step + n_steps
    chunk = start_step // POISSON_CHUNK_STEPS
    while chunk * POISSON_CHUNK_STEPS < stop_step:
        c0 = chunk * POISSON_CHUNK_STEPS
        rng = np.random.default_rng([seed, _key(src.name), 2, chunk])
        # the chunk's (steps, neurons) uniforms, drawn a block of rows at a time: the same
        # stream in the same order as one draw, without holding the whole chunk (312,500
        # sources x 1000 steps would be 2.5 GB); rows after the last step asked for are not drawn
        rows = max(1, DRAW_BLOCK_VALUES // max(1, src.size))
        wanted_rows = min(POISSON_CHUNK_STEPS, stop_step - c0)
        for r0 in range(0, wanted_rows, rows):
            draws = rng.random((min(rows, wanted_rows - r0), src.size))
            step_idx, neuron_idx = np.nonzero(draws < prob)
            step_idx = step_idx + (c0 + r0)
            keep = (step_idx >= max(start_step, first)) & (step_idx < min(stop_step, last))
            steps_out.append(step_idx[keep])
            neurons_out.append(neuron_idx[keep])
        chunk += 1
    return np.concatenate(steps_out).astype(np.int64), np.concatenate(neurons_out).astype(np.int64)


def poisson_input_counts(inp: PoissonInput, size: int, seed: int, dt_ms: float,
                         start_step: int, n_steps: int) -> np.ndarray:
    """Afferent events of ``inp`` per step and target neuron in steps [start_step, start_step +
    n_steps): shape (n_steps, size), int64. Drawn whole chunk by whole chunk (keyed by trial
    seed, node name and chunk, like `poisson_events`), so any split of a run into segments,
    and every backend, sees the same counts."""
    prob = np.broadcast_to(inp.probability(dt_ms), (size,))
    if inp.counts == "binomial" and np.any(prob > 1.0):
        raise ValidationError("PoissonInput", inp.name, "rate_hz",
                              f"times dt ({dt_ms} ms) exceeds one event per afferent and step",
                              float(np.max(inp.rate_hz)))
    first = int(np.ceil(inp.start_ms / dt_ms - 1e-9))
    last = np.inf if inp.stop_ms is None else int(np.ceil(inp.stop_ms / dt_ms - 1e-9))
    out = np.zeros((n_steps, size), dtype=np.int64)
    stop_step = start_step + n_steps
    chunk = start_step // POISSON_CHUNK_STEPS
    while chunk * POISSON_CHUNK_STEPS < stop_step:
        c0 = chunk * POISSON_CHUNK_STEPS
        rng = np.random.default_rng([seed, _key(inp.name), 3, chunk])
        if inp.counts == "binomial":
            draws = rng.binomial(inp.n_afferents, prob, (POISSON_CHUNK_STEPS, size))
        else:
            draws = rng.poisson(inp.n_afferents * prob, (POISSON_CHUNK_STEPS, size))
        lo = max(c0, start_step, first)
        hi = min(c0 + POISSON_CHUNK_STEPS, stop_step, last)
        if hi > lo:
            out[lo - start_step:hi - start_step] = draws[lo - c0:hi - c0]
        chunk += 1
    return out


def spike_time_steps(src: SpikeTimesSource, dt_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Steps and neurons of a spike-time source (a time belongs to the step that contains it);
    refuses two spikes of one neuron in one step."""
    steps = np.floor(src.times_ms / dt_ms + 1e-9).astype(np.int64)
    order = np.lexsort((src.neurons, steps))
    steps, neurons = steps[order], src.neurons[order]
    dup = (np.diff(steps) == 0) & (np.diff(neurons) == 0)
    if np.any(dup):
        k = int(np.nonzero(dup)[0][0])
        raise ValidationError("SpikeTimesSource", src.name, "times_ms",
                              f"has two spikes of neuron {neurons[k]} in step {steps[k]} "
                              f"(dt {dt_ms} ms)", float(src.times_ms[order][k + 1]))
    return steps, neurons


def current_values(cur: CurrentInput, size: int, dt_ms: float, start_step: int,
                   n_steps: int) -> np.ndarray:
    """Injected current in steps [start_step, start_step + n_steps): shape (n_steps, size)."""
    out = np.zeros((n_steps, size))
    first = int(np.ceil(cur.start_ms / dt_ms - 1e-9))
    steps = np.arange(start_step, start_step + n_steps)
    if cur.series is None:
        last = np.inf if cur.stop_ms is None else int(np.ceil(cur.stop_ms / dt_ms - 1e-9))
        active = (steps >= first) & (steps < last)
        out[active] = np.broadcast_to(np.asarray(cur.amplitude), (size,))
    else:
        series = cur.series if cur.series.ndim == 2 else cur.series[:, None]
        idx = steps - first
        active = (idx >= 0) & (idx < series.shape[0])
        out[active] = np.broadcast_to(series[idx[active]], (int(active.sum()), size))
    return out


def current_is_constant(cur: CurrentInput) -> bool:
    """True when the current never changes over the run (folded into the bias by backends)."""
    return cur.series is None and cur.start_ms == 0.0 and cur.stop_ms is None
