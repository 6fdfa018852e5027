"""The Vogels-Abbott current-based (CUBA) benchmark network, with the parameters of Brian2's
published CUBA example (Vogels & Abbott 2005; Brette et al. 2007, benchmark 2).

4000 LIF neurons (3200 excitatory, 800 inhibitory), 2 % random connectivity, exponential
current synapses (5 ms excitatory, 10 ms inhibitory), dt 0.1 ms. The activity is self-sustained:
no external input, the initial voltages are drawn uniformly between reset and threshold.

Brian2's example has no synaptic delay; EvoSpike's delays are at least one step, so spikes
arrive 0.1 ms (one step) after they are emitted.

    evospike run examples/cuba.py --duration 1000ms --out r.h5
"""

from evospike import LIF, FixedProbability, Network, Uniform


def build(n_neurons: int = 4000, dt_ms: float = 0.1, connection_probability: float = 0.02,
          seed: int = 1) -> Network:
    """CUBA with ``n_neurons`` (80 % excitatory). For the published scaling rule (constant
    80 synapses per neuron) pass ``connection_probability = 80 / n_neurons``; the weights are
    those of the 4000-neuron network."""
    n_exc = int(n_neurons * 0.8)
    n_inh = n_neurons - n_exc
    cell = LIF(tau_m_ms=20.0, v_rest_mV=-49.0, v_reset_mV=-60.0, v_thresh_mV=-50.0,
               tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0, tau_refrac_ms=5.0)
    net = Network("cuba", dt_ms=dt_ms)
    start = {"v": Uniform(-60.0, -50.0)}  # Vr + rand() * (Vt - Vr), drawn per trial
    exc = net.population("exc", n_exc, cell, initial=start)
    inh = net.population("inh", n_inh, cell, initial=start)
    w_exc = 60 * 0.27 / 10  # mV: 1.62
    w_inh = -20 * 4.5 / 10  # mV: -9
    p = connection_probability
    for k, (pre, w, channel) in enumerate(((exc, w_exc, "exc"), (inh, w_inh, "inh"))):
        for j, post in enumerate((exc, inh)):
            net.connect(pre, post, FixedProbability(p, seed=seed * 100 + 10 * k + j),
                        weight=w, delay_ms=dt_ms, target=channel)
    net.record_spikes(exc, inh)
    return net
