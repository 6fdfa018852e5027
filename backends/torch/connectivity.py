"""Recording which neurons the synapses connect (`evospike.connectivity`) on the torch backend.

Every change of a projection's synapses goes through `backends.torch.structure` (structural
plasticity, apoptosis, neurogenesis, ``remove_synapses`` / ``add_synapses``), which raises its
``structure_version``; apoptosis also counts its evaluations (a neuron may die or be reborn
without a synapse changing). The runner asks `ConnectivityRecorder.after` at the end of every
step; a snapshot is taken only when one of these counters moved, so a network whose synapses
never change pays one comparison per step and keeps a single snapshot.
"""

from __future__ import annotations

import numpy as np

from evospike.connectivity import ConnectivityLog

from . import structure
from .apoptosis import TApoptosis


class ConnectivityRecorder:
    def __init__(self, cn) -> None:
        self.cn = cn
        self.log = ConnectivityLog(len(cn.config.seeds))
        self._apoptosis = [p for p in cn.processes.values() if isinstance(p, TApoptosis)]
        self._key: tuple | None = None
        self._pairs: dict[str, bool] = {}
        self.after(0)  # the compiled connectivity, labelled step 0

    def _state_key(self) -> tuple:
        return (structure.structure_version(self.cn),
                *(p.evaluation for p in self._apoptosis))

    def after(self, step: int) -> None:
        """Snapshot the connectivity after ``step`` if it may have changed since the last one."""
        key = self._state_key()
        if key == self._key:
            return
        self._key = key
        cn, log = self.cn, self.log
        for name, proj in cn.projections.items():
            # settled once: a projection that grows past the limit keeps its pairs
            keep = self._pairs.setdefault(name, int(proj.indices.numel()) <= log.pair_limit)
            pairs = None
            if keep:
                present = structure.present_mask(cn, name).cpu().numpy()
                pre = np.repeat(np.arange(proj.n_pre), np.diff(proj.indptr.cpu().numpy()))
                pairs = (pre, proj.indices.cpu().numpy(), present)
                counts = present.sum(axis=1)
            else:
                counts = structure.synapse_count(cn, name).cpu().numpy()
            log.snapshot_projection(name, proj.pre, proj.post, proj.n_pre, proj.n_post, step,
                                    counts, pairs)
        for proc in self._apoptosis:
            log.snapshot_alive(proc.population, step, proc.alive.cpu().numpy())
