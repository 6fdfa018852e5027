"""Which process kinds the Brian2 backend re-expresses in its own equations (an independent
check of our math when ``validate`` compares a backend with Brian2) and which run the same
array functions as the torch backend inside a ``network_operation`` (a check of everything
around them, not of their arithmetic). `evospike.validation.report` lists the entry of every
process kind of a validated network. Keep an entry in step with the module that builds the
kind."""

from __future__ import annotations

INDEPENDENT, SHARED, PARTLY_SHARED = "independent", "shared", "partly shared"

#: process kind -> (verdict, what Brian2 runs and why)
INDEPENDENCE: dict[str, tuple[str, str]] = {
    "Modulator": (
        INDEPENDENT, "Brian2 run_regularly code written from the IR's equations "
        "(backends/brian2/processes.py)"),
    "Homeostasis": (
        INDEPENDENT, "Brian2 equations and run_regularly code in the population "
        "(backends/brian2/processes.py)"),
    "Metaplasticity": (
        INDEPENDENT, "Brian2 run_regularly code (backends/brian2/processes.py)"),
    "Apoptosis": (
        INDEPENDENT, "health, survival and death in Brian2 run_regularly code from the IR's "
        "equations (backends/brian2/apoptosis.py); only the removal of a dead neuron's "
        "synapses (connectivity) is a network_operation"),
    "MemoryTiers": (
        PARTLY_SHARED, "decay, clip and consolidation in Brian2 run_regularly code; the "
        "capacity eviction (a ranking over synapses Brian2 code cannot express) calls the "
        "shared kernel evospike.kernels.memory.evict"),
    "EpigeneticGate": (
        SHARED, "shared kernel evospike.kernels.gating.update_gate / open_mask in a "
        "network_operation: the context drive is a matrix product and the pattern recall an "
        "argmax over keys, which Brian2's per-neuron code cannot express"),
    "NeuromodulatedParticipation": (
        SHARED, "shared kernel evospike.kernels.gating.participation_fraction / "
        "participating in a network_operation, on our keyed random stream "
        "(evospike.ir.gating.participation_uniforms), which Brian2's rand() cannot reproduce"),
    "EnergyBudget": (
        SHARED, "shared kernel evospike.kernels.energy.budget_step in a network_operation: the "
        "population store and spent_pj are sums over the population in every step"),
    "GlobalEnergyBudget": (
        SHARED, "shared kernel evospike.kernels.energy.global_step / global_mask in a "
        "network_operation: one store charged by several populations"),
    "StructuralPlasticity": (
        SHARED, "the decisions come from evospike.ir.structural.plan_update, the NumPy core "
        "the torch backend calls too, applied between run segments"),
}


def independence_of(kind: str) -> tuple[str, str]:
    """(verdict, note) of process kind ``kind``; a kind Brian2 does not carry says so."""
    return INDEPENDENCE.get(kind, ("not carried", "Brian2 has no builder for this kind and "
                                                  "refuses the network by name"))
