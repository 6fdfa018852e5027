"""Each process's math written once: array functions over NumPy arrays or torch tensors that
every engine calls (the torch backend with tensors, Brian2's network operations with arrays
where Brian2 cannot express a process in its own equations).

A function takes its arrays first and plain numbers after; arrays may carry any leading batch
dimensions (torch keeps the trial dimension first, a Brian2 network holds one trial) and the
function keeps their library, dtype and device. The operations that the two libraries spell
differently live in `evospike.kernels.array`. The equations are those of the IR node
docstrings (`evospike.ir.gating`, `evospike.ir.apoptosis`, `evospike.ir.energy_budget`,
`evospike.ir.memory`); tests/test_kernels.py checks that NumPy and torch inputs give the same
float64 results and that they follow those equations.

Nothing here imports torch: a NumPy caller never loads it.
"""

from __future__ import annotations

from . import apoptosis, energy, gating, memory

__all__ = ["apoptosis", "energy", "gating", "memory"]
