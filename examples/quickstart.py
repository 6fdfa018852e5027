"""EvoSpike in a few dozen neurons, line by line.

    evospike run examples/quickstart.py --duration 500ms --out quick.h5
    evospike plot quick.h5 -o quick.png

or, from Python: ``python examples/quickstart.py``.
"""

from evospike import LIF, FixedProbability, Network, Uniform


def build() -> Network:
    # A network is a container of populations, sources and projections; dt_ms is the time step.
    net = Network("quickstart", dt_ms=0.1)

    # 40 leaky integrate-and-fire neurons. Every parameter carries its unit in its name:
    # membrane time constant 20 ms, rest -65 mV, threshold -50 mV, reset -65 mV, 2 ms refractory,
    # exponential synaptic currents (5 ms excitatory, 10 ms inhibitory) measured in mV (R * I).
    cell = LIF(tau_m_ms=20.0, v_rest_mV=-65.0, v_thresh_mV=-50.0, v_reset_mV=-65.0,
               tau_refrac_ms=2.0, tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0)
    exc = net.population("exc", 32, cell, initial={"v": Uniform(-65.0, -55.0)})
    inh = net.population("inh", 8, cell, initial={"v": Uniform(-65.0, -55.0)})

    # 100 Poisson spike trains at 20 Hz; each excitatory neuron listens to about 30 of them.
    # Realised from the run seed, so each trial of a batch gets its own trains.
    drive = net.poisson_source("drive", 100, rate_hz=20.0)
    net.connect(drive, exc, FixedProbability(0.3, seed=0), weight=6.0, delay_ms=1.0,
                target="exc")

    # Random recurrent wiring, seeded so the same script always builds the same synapses.
    # Weights are in mV of synaptic current; inhibitory weights are negative.
    net.connect(exc, inh, FixedProbability(0.5, seed=1), weight=8.0, delay_ms=1.0, target="exc")
    net.connect(inh, exc, FixedProbability(0.5, seed=2), weight=-4.0, delay_ms=1.0,
                target="inh")
    net.connect(exc, exc, FixedProbability(0.1, seed=3, allow_self_connections=False),
                weight=1.0, delay_ms=1.5, target="exc")

    # What to record: all spikes, and the membrane voltage of three neurons every step.
    net.record_spikes(exc, inh, drive)
    net.record_state(exc, "v", neurons=[0, 1, 2])
    return net


if __name__ == "__main__":
    from evospike.backends import get_backend

    runner = get_backend("torch").compile(build(), seeds=(0,))
    results = runner.run(500.0)  # ms
    print(results.summary())
    results.save("quickstart.h5")
    results.plot("quickstart.png")
    print("wrote quickstart.h5 and quickstart.png")
