"""The Vogels-Abbott conductance-based (COBA) benchmark network (Vogels & Abbott 2005; Brette et
al. 2007, benchmark 1), with the parameters of Brian2's published COBA benchmark.

4000 `CondLIF` neurons (3200 excitatory, 800 inhibitory), 2 % random connectivity, exponential
conductances with reversal potentials (0 mV excitatory, 5 ms; -80 mV inhibitory, 10 ms),
tau_m = 20 ms, E_L = V_reset = -60 mV, V_th = -50 mV, 5 ms refractory, dt 0.1 ms.

Sources of the numbers: the membrane of Brette et al. (2007) (20000 um2, 1 uF/cm2, 5e-5 S/cm2:
C = 200 pF, g_L = 10 nS) and the synaptic increments we = 6 nS, wi = 67 nS, as in
brian-team/brian2 examples/COBAHH.py and brian2/tests/features/speed.py (commit aec54d2a);
Brian2's LIF COBA benchmark script writes the same model with conductances relative to the leak
(``we = 6./10.``, ``wi = 67./10.``, ``dv/dt = (ge*(Erev_exc-v) + gi*(Erev_inh-v) - (v-El) + I)
/ taum``) and a constant drive ``I = 20 mV``, i.e. 20 mV x g_L = 200 pA here, and starts ``v``
from ``randn() * 5 - 55`` mV. Weights on a conductance channel are conductance increments in nS.

Brian2's script has no synaptic delay; EvoSpike's delays are at least one step, so spikes
arrive 0.1 ms (one step) after they are emitted.

    evospike run examples/coba.py --duration 200ms --out r.h5
    evospike validate examples/coba.py --duration 300ms
"""

from evospike import CondLIF, FixedProbability, Network, Normal


def build(n_neurons: int = 4000, dt_ms: float = 0.1, connection_probability: float = 0.02,
          seed: int = 1) -> Network:
    """COBA with ``n_neurons`` (80 % excitatory); the weights are those of the 4000-neuron
    network."""
    n_exc = int(n_neurons * 0.8)
    n_inh = n_neurons - n_exc
    cell = CondLIF(C_pF=200.0, g_L_nS=10.0, E_L_mV=-60.0, V_th_mV=-50.0, V_reset_mV=-60.0,
                   E_exc_mV=0.0, E_inh_mV=-80.0, tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0,
                   tau_refrac_ms=5.0, I_e_pA=200.0)
    net = Network("coba", dt_ms=dt_ms)
    start = {"v": Normal(-55.0, 5.0)}  # randn() * 5 - 55 mV, drawn per trial
    exc = net.population("exc", n_exc, cell, initial=start)
    inh = net.population("inh", n_inh, cell, initial=start)
    w_exc, w_inh = 6.0, 67.0  # nS
    p = connection_probability
    for k, (pre, w, channel) in enumerate(((exc, w_exc, "exc"), (inh, w_inh, "inh"))):
        for j, post in enumerate((exc, inh)):
            net.connect(pre, post, FixedProbability(p, seed=seed * 100 + 10 * k + j),
                        weight=w, delay_ms=dt_ms, target=channel)
    net.record_spikes(exc, inh)
    return net
