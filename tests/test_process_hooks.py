"""The torch backend's hooks for process nodes: population masks that stop neurons from
integrating or from firing."""

import numpy as np
import torch

from evospike import LIF, Network
from evospike.backends import get_backend
from evospike.backends.torch.processes import set_masks


def _runner():
    net = Network("masks", 0.1)
    net.population("p", 3, LIF(i_bias_mV=30.0), initial={"v": -65.0})
    net.record_spikes("p")
    net.record_state("p", "v")
    return get_backend("torch").compile(net, engine="eager", precision="float64",
                                        progress=False)


def test_integrate_mask_freezes_the_neuron_and_fire_mask_only_silences_it():
    runner = _runner()
    pop = runner.cn.populations["p"]
    set_masks(pop, "test", integrate=torch.tensor([[True, False, True]]),
              fire=torch.tensor([[True, True, False]]))
    res = runner.run(50.0)
    steps, neurons = res.spike_steps("p")
    assert set(neurons.tolist()) == {0}
    v = res.traces["p.v"].values[0]
    assert np.all(v[:, 1] == -65.0)  # frozen: never integrated
    assert v[-1, 2] > -50.0  # integrated to a plateau above threshold (-50 mV) but never fired
    set_masks(pop, "test")  # removing the masks lets every neuron fire again
    res = runner.run(50.0)
    steps, neurons = res.spike_steps("p")
    assert set(neurons[steps >= 500].tolist()) == {0, 1, 2}
