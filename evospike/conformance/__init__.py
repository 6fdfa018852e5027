"""The conformance suite: one spec per IR node kind, run on every backend configuration, each
cell checked against a reference (see `specs`, `backends`, `matrix`).

    python -m evospike.conformance [--backends torch-eager brian2 ...] [--markdown FILE]
"""

from evospike.conformance.backends import CONFIGS, FEATURES, BackendConfig, Refused
from evospike.conformance.specs import SPECS, Spec, ir_node_kinds, kinds_in

__all__ = ["CONFIGS", "FEATURES", "BackendConfig", "Refused", "SPECS", "Spec", "ir_node_kinds",
           "kinds_in"]
