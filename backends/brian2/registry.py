"""The Brian2 backend's one registry: IR node kind -> builder, with one signature,
``build(b2, node, network, built)`` (it adds the node's Brian2 objects to ``built``).

Facts a kind registers with its builder (``NODE_BUILDERS.register(Kind, phase=..., ...)``):

- ``phase``: processes are built after populations and sources, in increasing ``phase``
  (default 50; a process reading another's state is built after it), before projections;
- ``population_hook``: ``(edit(em, node, net), objects(b2, group, em, node, net) -> [objects])``
  for a process whose state lives in its ``population``'s own equations: ``edit`` changes the
  emitted model before the NeuronGroup exists, ``objects`` adds what runs on the group.

A kind carried by another node's builder (a rule is built with its projection) is declared
with ``NODE_BUILDERS.carry``; every other kind is refused by name (`compiler.refusals`)."""

from __future__ import annotations

from evospike.registry import Registry

NODE_BUILDERS = Registry("Brian2", "builder")
DEFAULT_PHASE = 50
