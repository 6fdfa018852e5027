"""Ten small networks for bit-exact comparisons of fixed-point engines (torch fixed mode, a
NumPy re-implementation of Lava's equations, Lava's own fixed_pt).

Every builder returns a fresh `Network` (dt 1 ms) that `evospike.fixed_point.quantize` carries,
recording the spikes of every population and source and ``u`` and ``v`` of every population
(population "p" -> state monitors "p.u" and "p.v"). ``NETWORKS`` maps a name to its builder;
``DURATION_MS`` is how long the comparisons run them (activity is present throughout).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evospike import LIF, AllToAll, CubaLIF, FixedProbability, FromArrays, Network, OneToOne

DURATION_MS = 200.0


def _record(net: Network) -> Network:
    net.record_spikes(*net.populations, *net.sources)
    for name in net.populations:
        model = net.populations[name].model
        for var in ("u", "v") if isinstance(model, CubaLIF) else ("v",):
            net.record_state(name, var)
    return net


def _events(rng, size: int, count: int, last_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct (neuron, whole-ms time) pairs before ``last_ms``."""
    pairs = rng.choice(size * int(last_ms), count, replace=False)
    return pairs % size, (pairs // size).astype(float)


def single_bias() -> Network:
    """One neuron driven by a constant bias only (regular firing)."""
    net = Network("single_bias", dt_ms=1.0)
    net.population("n", 1, CubaLIF(du=0.1, dv=0.05, bias=0.8, v_thresh=10.0))
    return _record(net)


def single_spike_input() -> Network:
    """One neuron driven by spike times (u jumps and decays; the neuron fires on bursts)."""
    net = Network("single_spike_input", dt_ms=1.0)
    src = net.spike_source("in", 1, [0] * 12, [5, 6, 7, 8, 40, 41, 42, 43, 44, 45, 46, 120])
    n = net.population("n", 1, CubaLIF(du=0.2, dv=0.1, v_thresh=4.0))
    net.connect(src, n, AllToAll(), weight=1.3)
    return _record(net)


def single_refractory() -> Network:
    """One neuron with a bias and a refractory period of 4 steps, plus inhibitory spikes."""
    net = Network("single_refractory", dt_ms=1.0)
    src = net.spike_source("in", 1, [0, 0, 0], [30, 31, 90])
    n = net.population("n", 1, CubaLIF(du=0.3, dv=0.08, bias=1.5, v_thresh=10.0,
                                       tau_refrac_ms=4.0, v_reset=-2.0))
    net.connect(src, n, AllToAll(), weight=-6.0)
    return _record(net)


def chain() -> Network:
    """A feed-forward chain source -> a (8) -> b (6) -> c (4), all-to-all, excitatory."""
    rng = np.random.default_rng(3)
    net = Network("chain", dt_ms=1.0)
    src = net.spike_source("in", 5, *_events(rng, 5, 80, 180))
    a = net.population("a", 8, CubaLIF(du=0.25, dv=0.1, v_thresh=3.0))
    b = net.population("b", 6, CubaLIF(du=0.15, dv=0.12, v_thresh=4.0))
    c = net.population("c", 4, CubaLIF(du=0.3, dv=0.2, v_thresh=2.5))
    net.connect(src, a, AllToAll(), weight=rng.uniform(0.2, 1.0, 40))
    net.connect(a, b, AllToAll(), weight=rng.uniform(0.1, 0.6, 48))
    net.connect(b, c, AllToAll(), weight=0.7)
    return _record(net)


def delays() -> Network:
    """Source -> a -> b with per-synapse delays from 1 to 40 steps."""
    rng = np.random.default_rng(5)
    net = Network("delays", dt_ms=1.0)
    src = net.spike_source("in", 4, *_events(rng, 4, 60, 150))
    a = net.population("a", 6, CubaLIF(du=0.3, dv=0.1, v_thresh=2.0))
    b = net.population("b", 5, CubaLIF(du=0.2, dv=0.1, v_thresh=3.0))
    net.connect(src, a, AllToAll(), weight=1.2, delay_ms=rng.integers(1, 41, 24).astype(float))
    net.connect(a, b, AllToAll(), weight=rng.uniform(0.3, 1.5, 30),
                delay_ms=rng.integers(1, 30, 30).astype(float))
    return _record(net)


def _ei(name: str, with_delays: bool) -> Network:
    rng = np.random.default_rng(11 if with_delays else 7)
    net = Network(name, dt_ms=1.0)
    drive = net.poisson_source("drive", 20, 60.0)
    cell = CubaLIF(du=0.2, dv=0.1, v_thresh=5.0, tau_refrac_ms=2.0)
    e = net.population("e", 40, cell, initial={"v": rng.uniform(0, 4, 40)})
    i = net.population("i", 10, CubaLIF(du=0.25, dv=0.15, v_thresh=4.0))
    net.connect(drive, e, FixedProbability(0.3, seed=1), weight=1.1)
    net.connect(drive, i, FixedProbability(0.3, seed=2), weight=0.9)

    def d(n):
        return rng.integers(1, 12, n).astype(float) if with_delays else 1.0

    for pre, post, p, w, seed in ((e, e, 0.1, 0.6, 3), (e, i, 0.3, 0.8, 4),
                                  (i, e, 0.4, -2.0, 5), (i, i, 0.2, -1.0, 6)):
        conn = FixedProbability(p, seed=seed)
        nnz = int(conn.build(pre.size, post.size, pre is post, conn.rng())[0][-1])
        net.connect(pre, post, FixedProbability(p, seed=seed),
                    weight=w * rng.uniform(0.5, 1.5, nnz), delay_ms=d(nnz))
    return _record(net)


def recurrent_ei() -> Network:
    """Random recurrent excitation and inhibition driven by Poisson input, one-step delays."""
    return _ei("recurrent_ei", False)


def recurrent_ei_delays() -> Network:
    """As `recurrent_ei`, with per-synapse delays of 1 to 11 steps."""
    return _ei("recurrent_ei_delays", True)


def bias_per_neuron() -> Network:
    """Per-neuron biases over three orders of magnitude, some negative (clipped v), and a
    constant injected current."""
    net = Network("bias_per_neuron", dt_ms=1.0)
    bias = np.array([0.002, 0.05, 0.3, 0.9, 2.0, 7.5, -3.0, -40.0])
    p = net.population("p", 8, CubaLIF(du=0.05, dv=0.02, bias=bias, v_thresh=20.0))
    net.inject_current(p, 0.25)
    return _record(net)


def mixed_signs() -> Network:
    """A mixed-sign projection (one exponent, even mantissas) beside a tiny-weight one (a
    negative exponent: the per-step sum is floored)."""
    rng = np.random.default_rng(13)
    net = Network("mixed_signs", dt_ms=1.0)
    src = net.poisson_source("drive", 10, 80.0)
    p = net.population("p", 6, CubaLIF(du=0.1, dv=0.1, bias=0.3, v_thresh=2.0))
    q = net.population("q", 6, CubaLIF(du=0.1, dv=0.1, bias=0.49, v_thresh=5.0))
    net.connect(src, p, AllToAll(), weight=rng.uniform(-1.0, 1.5, 60))
    net.connect(p, q, AllToAll(), weight=rng.uniform(0.0002, 0.0019, 36),
                delay_ms=rng.integers(1, 4, 36).astype(float))
    return _record(net)


def lif_reduced() -> Network:
    """Plain LIF populations (one synaptic time constant) reduced exactly to Loihi's neuron,
    with a refractory period, one-to-one and all-to-all projections."""
    net = Network("lif_reduced", dt_ms=1.0)
    src = net.poisson_source("drive", 6, 100.0)
    cell = LIF(tau_m_ms=20.0, v_rest_mV=-56.0, v_reset_mV=-70.0, v_thresh_mV=-50.0,
               tau_syn_exc_ms=5.0, tau_syn_inh_ms=5.0, tau_refrac_ms=3.0)
    a = net.population("a", 6, cell, initial={"v": np.linspace(-70, -52, 6)})
    b = net.population("b", 3, cell)
    net.connect(src, a, OneToOne(), weight=40.0)
    net.connect(a, b, AllToAll(), weight=20.0, delay_ms=2.0)
    net.connect(b, a, FromArrays([0, 1, 2], [0, 1, 2]), weight=-30.0, target="inh")
    return _record(net)


NETWORKS: dict[str, Callable[[], Network]] = {f.__name__: f for f in (
    single_bias, single_spike_input, single_refractory, chain, delays, recurrent_ei,
    recurrent_ei_delays, bias_per_neuron, mixed_signs, lif_reduced)}
