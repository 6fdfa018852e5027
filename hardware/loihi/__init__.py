"""Loihi 2's integer model, framework-free, shared by the torch backend's fixed-point mode
(``backends/torch/fixed.py``, ``fixed_learning.py``) and the Lava backend (``backends/lava``):

- `constants`: every number of the chip's arithmetic (neuron, synapses, learning engine);
- `learning`: an IR `STDP` rule as Loihi 2's learning engine runs it (the plan both engines
  execute, bit for bit);
- `three_factor`: `RewardModulatedSTDP` likewise (tag, reward, decimation).

Only `constants` is imported with the package: `learning` and `three_factor` read the IR and
the quantizer (`evospike.fixed_point`), which itself takes its Loihi 2 profile from
`constants`; import them by name.
"""

from . import constants

__all__ = ["constants"]
