"""The NEST backend's one registry: IR node kind -> builder, with one signature,
``build(nest, node, network, trial)`` (it creates the node's NEST objects for one trial and
records them in ``trial``, a `backends.nest.compiler.Trial`).

Kinds built inside another node's builder (a neuron model with its population, a current with
its population) are declared with ``NODE_BUILDERS.carry``; kinds NEST is known not to carry
are declared with ``NODE_BUILDERS.refuse`` and the reason; every other kind is refused by
name (`compiler.refusals`)."""

from __future__ import annotations

from evospike.registry import Registry

NODE_BUILDERS = Registry("nest", "builder")
