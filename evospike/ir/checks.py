"""Checks every IR node kind makes of the same fields, written once: its name, and the
population it names."""

from __future__ import annotations

from evospike.errors import ValidationError


def check_name(kind: str, name: object) -> None:
    """A node name: a non-empty string without '/' (the HDF5 path separator of network and
    results files) or surrounding spaces."""
    if not isinstance(name, str) or not name or "/" in name or name.strip() != name:
        raise ValidationError(kind, str(name), "name",
                              "must be a non-empty string without '/' or surrounding spaces", name)


def check_population(node, net, field: str = "population") -> None:
    """``node``'s ``field`` names a population of network ``net``."""
    population = getattr(node, field)
    if population not in net.populations:
        raise ValidationError(node.kind, node.name, field, "is not a population of the network",
                              population)
