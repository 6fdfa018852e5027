"""Changes to the connectivity of a compiled torch network while it runs: remove synapses by
mask, add synapses (pre, post, weight, delay), keeping every state that depends on the synapse
layout consistent.

What a rebuild keeps consistent, for a projection ``proj`` of a `CompiledNetwork`:

- the CSR (``indptr``, ``indices``), the weights (one vector, or one per trial), the delays
  (``None`` while they are all equal, else one per synapse), ``uniform_delay``/``max_delay``;
- for a plastic projection (`TPlastic`): the CSC columns (``col_ptr``, ``col_syn``,
  ``col_pre``, rebuilt exactly as `compile_stdp` builds them, so a rebuilt network and a freshly
  compiled one with the same connectivity are identical), the per-synapse eligibility of a
  three-factor rule (kept for surviving synapses, 0 for new ones). The pre/post traces ``x``,
  ``y`` are per neuron and unaffected; the presynaptic spikes still on their way to the synapses
  (``pending``) are neuron indices, so they reach whatever synapses their neuron has when they
  arrive.

Order. Surviving synapses keep their relative order; a new synapse goes to the end of its
presynaptic row (a stable sort by presynaptic neuron). `connectivity` returns the CSR as it now
is, so a network built from it (`projection_from_connectivity`) compiles to the same arrays and
spikes exactly as the rebuilt one.

Spikes in flight. On a non-plastic projection a spike is added to the postsynaptic ring buffer
when it is emitted, with the weight of that moment: a spike emitted before a synapse is removed
still arrives; a synapse added after a spike was emitted does not carry it. On a plastic
projection spikes are sent when they arrive (see `eager.run_step`), through the synapses that
exist then. With one-step delays, the default, both are the same.

A batch of trials shares one structure. A synapse leaves the CSR only when it is removed in
every trial; in the trials that removed it while others keep it, it stays in the CSR *absent*:
its weight is 0 and is set back to 0 at the end of every step (after plasticity, homeostasis and
every process), so no rule can bring it back to life; `synapse_count` does not count it there.
Likewise `add_synapses(..., trials=mask)` adds a synapse to the shared CSR and marks it absent
in the trials the mask leaves out. Adding a synapse that is absent in some trials does not
revive it; structural plasticity (`backends/torch/structural.py`) revives by `revive_synapses`.

Weight monitors record the whole weight array every sample, so the layout of a monitored
projection must not change: `remove_synapses` on a projection with a `WeightMonitor` keeps every
synapse in the CSR and marks the removed ones absent (weight 0 in the snapshots), and
`add_synapses` there raises. (`StructuralPlasticity` refuses WeightMonitors on its projections
when the network is built.)

API (all indices are torch tensors or array-likes on any device; masks are bool):

- ``remove_synapses(cn, projection, mask) -> StructureChange``: ``mask`` (n_synapses,) removes
  in every trial, (trials, n_synapses) per trial.
- ``add_synapses(cn, projection, pre, post, weight, delay_steps=None, trials=None)
  -> StructureChange``: ``weight`` scalar, (k,) or (trials, k); ``delay_steps`` scalar or (k,),
  default the projection's uniform delay; ``trials`` a (trials,) or (trials, k) bool mask of
  where the new synapses are present (default: everywhere).
- ``revive_synapses(cn, projection, mask, weight)``: make absent synapses present again (the
  layout does not change).
- ``notify(cn, change)``: pass a `StructureChange` to every process's ``synapses_changed``.
- ``synapse_mask_of_neurons(cn, projection, pre=None, post=None)``: (n_synapses,) bool, True
  for the synapses from any of ``pre`` or onto any of ``post`` (e.g. a dead neuron's synapses:
  pass it as ``pre`` of its outgoing and ``post`` of its incoming projections).
- ``synapse_count(cn, projection) -> (trials,)`` int64 tensor of present synapses.
- ``present_mask(cn, projection) -> (trials, n_synapses)`` bool tensor.
- ``structure_version(cn) -> int``: raised by every change made through this module.
- ``connectivity(cn, projection) -> dict`` of NumPy arrays ``indptr``, ``indices``,
  ``weights`` (trials, n_synapses), ``delays`` (n_synapses,), ``present`` (trials, n_synapses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from evospike.errors import EvoSpikeError, ValidationError

from .processes import TorchProcess

#: name of the process (in ``cn.processes``) that keeps absent synapses at weight 0
GUARD_NAME = "__absent_synapses__"


@dataclass
class StructureChange:
    """What one rebuild did, for processes that hold per-synapse arrays of the projection
    (they re-index them in ``synapses_changed(cn, change)``, see `notify`).

    ``kept``: after a removal, the old id of the synapse now at each position (gather:
    ``new = old[..., kept]``); after an addition, the new position of every old synapse
    (scatter: ``new[..., kept] = old``). ``new_ids``: positions of the added synapses in the new
    CSR; ``n_removed``: synapses that left the CSR; ``n_added``: synapses added; ``n_absent``:
    (trial, synapse) pairs that became absent without leaving it."""

    projection: str
    kept: torch.Tensor
    new_ids: torch.Tensor
    n_removed: int
    n_added: int
    n_absent: int


class _GuardNode:
    """Stand-in IR node of the guard process (its name shows where a node is listed)."""

    name = GUARD_NAME
    kind = "AbsentSynapses"


@dataclass
class TAbsentGuard(TorchProcess):
    """Holds, per projection, the (trials, n_synapses) mask of absent synapses and sets their
    weights to 0 at the very end of every step."""

    absent: dict[str, torch.Tensor]
    node: object = None


    def update(self, cn, step: int, fired, rewards) -> None:
        for name, mask in self.absent.items():
            cn.projections[name].weights.masked_fill_(mask, 0.0)


def _guard(cn, create: bool) -> TAbsentGuard | None:
    guard = cn.processes.get(GUARD_NAME)
    if guard is None and create:
        guard = TAbsentGuard({}, _GuardNode())
        cn.processes[GUARD_NAME] = guard
    return guard


def _proj(cn, projection: str):
    if projection not in cn.projections:
        raise EvoSpikeError(f"torch structure: no projection '{projection}' (have "
                            f"{sorted(cn.projections)})")
    return cn.projections[projection]


def _trials(cn) -> int:
    return len(cn.config.seeds)


def _nnz(proj) -> int:
    return int(proj.indices.numel())


def _pre_of(proj) -> torch.Tensor:
    counts = proj.indptr[1:] - proj.indptr[:-1]
    return torch.repeat_interleave(torch.arange(proj.n_pre, device=proj.indptr.device), counts,
                                   output_size=_nnz(proj))


def _per_trial(cn, proj) -> None:
    if proj.weights.dim() == 1:
        proj.weights = proj.weights.unsqueeze(0).repeat(_trials(cn), 1).contiguous()


def _absent(cn, projection: str) -> torch.Tensor | None:
    guard = _guard(cn, False)
    return None if guard is None else guard.absent.get(projection)


def structure_version(cn) -> int:
    """A counter that every change made through this module raises (processes that cache a
    synapse count compare it to know when to count again)."""
    return getattr(cn, "_structure_version", 0)


def _set_absent(cn, projection: str, mask: torch.Tensor | None) -> None:
    cn._structure_version = structure_version(cn) + 1  # every change passes through here
    if mask is not None and bool(mask.any()):
        _guard(cn, True).absent[projection] = mask
    else:
        guard = _guard(cn, False)
        if guard is not None:
            guard.absent.pop(projection, None)
            if not guard.absent:
                del cn.processes[GUARD_NAME]


def _monitored(cn, projection: str) -> bool:
    return any(m.projection == projection for m in cn.weight_monitors.values())


def present_mask(cn, projection: str) -> torch.Tensor:
    """(trials, n_synapses) bool: True where the synapse exists in that trial."""
    proj = _proj(cn, projection)
    absent = _absent(cn, projection)
    if absent is None:
        return torch.ones((_trials(cn), _nnz(proj)), dtype=torch.bool, device=proj.indices.device)
    return ~absent


def synapse_count(cn, projection: str) -> torch.Tensor:
    """(trials,) int64: the number of synapses present in each trial."""
    return present_mask(cn, projection).sum(dim=1)


def _as_mask(cn, proj, mask) -> torch.Tensor:
    device = proj.indices.device
    mask = torch.as_tensor(mask, device=device)
    nnz, trials = _nnz(proj), _trials(cn)
    if mask.dtype != torch.bool or mask.shape not in ((nnz,), (trials, nnz)):
        raise ValidationError("remove_synapses", proj.name, "mask",
                              f"must be a bool tensor of shape ({nnz},) or ({trials}, {nnz})",
                              (tuple(mask.shape), str(mask.dtype)))
    return mask if mask.dim() == 2 else mask.unsqueeze(0).expand(trials, nnz)


def synapse_mask_of_neurons(cn, projection: str, pre=None, post=None) -> torch.Tensor:
    """(n_synapses,) bool: synapses whose presynaptic neuron is in ``pre`` or whose
    postsynaptic neuron is in ``post`` (neuron indices of the projection's two sides)."""
    proj = _proj(cn, projection)
    device = proj.indices.device
    out = torch.zeros(_nnz(proj), dtype=torch.bool, device=device)
    for side, neurons, size, of in (("pre", pre, proj.n_pre, _pre_of),
                                    ("post", post, proj.n_post,
                                     lambda p: p.indices.to(torch.int64))):
        if neurons is None:
            continue
        idx = torch.as_tensor(neurons, dtype=torch.int64, device=device).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
            raise ValidationError("synapse_mask_of_neurons", projection, side,
                                  f"must hold neuron indices in [0, {size})", idx.tolist())
        hit = torch.zeros(size, dtype=torch.bool, device=device)
        hit[idx] = True
        out |= hit[of(proj)]
    return out


def _rebuild(cn, proj, indices: torch.Tensor,
             weights: torch.Tensor, delays: torch.Tensor | None, pre: torch.Tensor,
             eligibility: torch.Tensor | None, absent: torch.Tensor | None) -> None:
    """Install a new layout (already in CSR order): CSR, weights, delays, CSC, eligibility,
    absent mask."""
    device = proj.indices.device
    counts = torch.bincount(pre, minlength=proj.n_pre)
    indptr = torch.zeros(proj.n_pre + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=indptr[1:])
    proj.indptr = indptr
    proj.indices = indices.contiguous()
    proj.weights = weights.contiguous()
    nnz = int(indices.numel())
    if delays is not None and nnz and bool((delays == delays[0]).all()):
        proj.uniform_delay, proj.delays = int(delays[0]), None
    else:
        proj.delays = None if delays is None else delays.contiguous()
    if proj.delays is not None:
        proj.max_delay = max(proj.max_delay, int(proj.delays.max()))
    pl = proj.plastic
    if pl is not None:
        post = indices.to(torch.int64)
        col_syn = torch.sort(post, stable=True).indices
        col_ptr = torch.zeros(proj.n_post + 1, dtype=torch.int64, device=device)
        torch.cumsum(torch.bincount(post, minlength=proj.n_post), 0, out=col_ptr[1:])
        pl.col_ptr, pl.col_syn, pl.col_pre = col_ptr, col_syn, pre[col_syn].contiguous()
        if pl.eligibility is not None:
            pl.eligibility = eligibility.contiguous()
    _set_absent(cn, proj.name, absent)


def remove_synapses(cn, projection: str, mask) -> StructureChange:
    """Remove the synapses of ``projection`` where ``mask`` is True: (n_synapses,) in every
    trial, (trials, n_synapses) per trial (see the module docstring for what a batch shares)."""
    proj = _proj(cn, projection)
    mask = _as_mask(cn, proj, mask)
    device = proj.indices.device
    old_absent = _absent(cn, projection)
    absent = mask if old_absent is None else (mask | old_absent)
    gone = absent.all(dim=0)  # absent in every trial: leaves the CSR
    if _monitored(cn, projection):
        gone = torch.zeros_like(gone)
    partial = absent & ~gone.unsqueeze(0)
    n_absent_new = int((mask & ~gone.unsqueeze(0)).sum()) - (
        0 if old_absent is None else int((old_absent & mask & ~gone.unsqueeze(0)).sum()))
    if bool(partial.any()):
        _per_trial(cn, proj)
        proj.weights.masked_fill_(partial, 0.0)
    kept = (~gone).nonzero().squeeze(1)
    n_removed = int(gone.sum())
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    if n_removed == 0:
        _set_absent(cn, projection, partial)
        return StructureChange(projection, kept, empty, 0, 0, n_absent_new)
    pre = _pre_of(proj)[kept]
    elig = None if proj.plastic is None or proj.plastic.eligibility is None else \
        proj.plastic.eligibility[:, kept]
    _rebuild(cn, proj, proj.indices[kept], proj.weights[..., kept],
             None if proj.delays is None else proj.delays[kept], pre, elig, partial[:, kept])
    return StructureChange(projection, kept, empty, n_removed, 0, n_absent_new)


def add_synapses(cn, projection: str, pre, post, weight, delay_steps=None,
                 trials=None) -> StructureChange:
    """Add synapses ``pre[k] -> post[k]`` with ``weight`` (scalar, (k,) or (trials, k), in the
    projection's weight unit) and ``delay_steps`` (scalar or (k,), >= 1; default the
    projection's delay). ``trials``: bool (trials,) or (trials, k), where they are present
    (default everywhere; elsewhere they are absent, weight 0). Each new synapse goes to the end
    of its presynaptic row."""
    proj = _proj(cn, projection)
    device, dtype = proj.indices.device, proj.weights.dtype
    n_trials, nnz = _trials(cn), _nnz(proj)
    kind = "add_synapses"
    pre = torch.as_tensor(pre, device=device).to(torch.int64).reshape(-1)
    post = torch.as_tensor(post, device=device).to(torch.int64).reshape(-1)
    k = int(pre.numel())
    if post.numel() != k:
        raise ValidationError(kind, projection, "post", f"must have one entry per pre ({k})",
                              int(post.numel()))
    if k and (int(pre.min()) < 0 or int(pre.max()) >= proj.n_pre):
        raise ValidationError(kind, projection, "pre", f"must lie in [0, {proj.n_pre})",
                              pre[(pre < 0) | (pre >= proj.n_pre)][0].item())
    if k and (int(post.min()) < 0 or int(post.max()) >= proj.n_post):
        raise ValidationError(kind, projection, "post", f"must lie in [0, {proj.n_post})",
                              post[(post < 0) | (post >= proj.n_post)][0].item())
    w = torch.as_tensor(weight, dtype=dtype, device=device)
    if w.dim() == 0:
        w = w.expand(k)
    if w.shape not in ((k,), (n_trials, k)) or not bool(torch.isfinite(w).all()):
        raise ValidationError(kind, projection, "weight",
                              f"must be finite, a scalar or of shape ({k},) or ({n_trials}, {k})",
                              tuple(w.shape))
    if delay_steps is None:
        d = torch.full((k,), proj.uniform_delay, dtype=torch.int64, device=device)
    else:
        d = torch.as_tensor(delay_steps, device=device).to(torch.int64).reshape(-1)
        d = d.expand(k) if d.numel() == 1 else d
        if d.numel() != k or (k and int(d.min()) < 1):
            raise ValidationError(kind, projection, "delay_steps",
                                  f"must be >= 1, a scalar or one per synapse ({k})",
                                  d.tolist()[:5])
    if trials is not None:
        present = torch.as_tensor(trials, device=device)
        if present.dtype != torch.bool or present.shape not in ((n_trials,), (n_trials, k)):
            raise ValidationError(kind, projection, "trials",
                                  f"must be a bool mask of shape ({n_trials},) or "
                                  f"({n_trials}, {k})", tuple(present.shape))
        present = present.unsqueeze(1).expand(n_trials, k) if present.dim() == 1 else present
    else:
        present = None
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    if k == 0:
        return StructureChange(projection, torch.arange(nnz, device=device), empty, 0, 0, 0)
    if _monitored(cn, projection):
        raise EvoSpikeError(f"torch structure: projection '{projection}' has a WeightMonitor, "
                            "whose snapshots need a fixed synapse layout; synapses cannot be "
                            "added to it")
    if k and int(d.max()) > proj.max_delay:
        buf = cn.populations[proj.post].buf
        if buf is None or int(d.max()) >= buf.shape[0]:
            raise ValidationError(kind, projection, "delay_steps",
                                  "exceeds the longest delay the postsynaptic population's "
                                  "ring buffer was compiled for "
                                  f"({0 if buf is None else buf.shape[0] - 1} steps)",
                                  int(d.max()))
    if proj.plastic is not None and bool((d != proj.uniform_delay).any()):
        raise ValidationError(kind, projection, "delay_steps",
                              f"must equal the plastic projection's delay ({proj.uniform_delay} "
                              "steps): plastic projections have one delay for all synapses",
                              int(d[d != proj.uniform_delay][0]))
    if nnz == 0 and proj.delays is None and proj.plastic is None:
        # an empty projection takes the delay of its first synapses
        proj.uniform_delay = int(d[0])
        proj.max_delay = max(proj.max_delay, int(d.max()))
    old_pre = _pre_of(proj)
    all_pre = torch.cat([old_pre, pre])
    order = torch.sort(all_pre, stable=True).indices
    if w.dim() == 2 or present is not None or proj.weights.dim() == 2:
        _per_trial(cn, proj)
        w = w.expand(n_trials, k) if w.dim() == 1 else w
    if present is not None:
        w = w.masked_fill(~present, 0.0)
    weights = torch.cat([proj.weights, w], dim=-1)[..., order]
    indices = torch.cat([proj.indices, post.to(proj.indices.dtype)])[order]
    if proj.delays is None and bool((d == proj.uniform_delay).all()):
        delays = None
    else:
        old_d = torch.full((nnz,), proj.uniform_delay, dtype=torch.int64, device=device) \
            if proj.delays is None else proj.delays.to(torch.int64)
        both = torch.cat([old_d, d])[order]
        dtype_d = torch.int16 if int(both.max()) < 2**15 else torch.int32
        delays = both.to(dtype_d)
    elig = None
    if proj.plastic is not None and proj.plastic.eligibility is not None:
        elig = torch.cat([proj.plastic.eligibility,
                          torch.zeros((n_trials, k), dtype=dtype, device=device)], 1)[:, order]
    old_absent = _absent(cn, projection)
    absent = None
    if old_absent is not None or present is not None:
        a_old = old_absent if old_absent is not None else torch.zeros(
            (n_trials, nnz), dtype=torch.bool, device=device)
        a_new = ~present if present is not None else torch.zeros(
            (n_trials, k), dtype=torch.bool, device=device)
        absent = torch.cat([a_old, a_new], 1)[:, order]
    _rebuild(cn, proj, indices, weights, delays, all_pre[order], elig, absent)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=device)
    return StructureChange(projection, inverse[:nnz], inverse[nnz:], 0, k,
                           0 if present is None else int((~present).sum()))


def notify(cn, change: StructureChange) -> None:
    """Tell every process of ``cn`` that has a ``synapses_changed(cn, change)`` method about a
    change (call it after `remove_synapses` / `add_synapses` made by a process)."""
    for proc in list(cn.processes.values()):
        hook = getattr(proc, "synapses_changed", None)
        if hook is not None:
            hook(cn, change)


def revive_synapses(cn, projection: str, mask, weight) -> int:
    """Make the absent synapses where ``mask`` (trials, n_synapses) is True present again with
    ``weight`` (scalar or (trials, n_synapses), values read where revived); returns how many
    (trial, synapse) pairs came back. Eligibility of a revived synapse restarts at 0."""
    proj = _proj(cn, projection)
    mask = _as_mask(cn, proj, mask)
    absent = _absent(cn, projection)
    if absent is None:
        return 0
    revive = mask & absent
    n = int(revive.sum())
    if n == 0:
        return 0
    _per_trial(cn, proj)
    w = torch.as_tensor(weight, dtype=proj.weights.dtype, device=proj.weights.device)
    proj.weights.copy_(torch.where(revive, w.expand_as(proj.weights), proj.weights))
    if proj.plastic is not None and proj.plastic.eligibility is not None:
        proj.plastic.eligibility.masked_fill_(revive, 0.0)
    _set_absent(cn, projection, absent & ~revive)
    return n


def connectivity(cn, projection: str) -> dict[str, np.ndarray]:
    """The projection's synapses as they are now (NumPy): ``indptr`` (n_pre + 1,), ``indices``
    (n_synapses,), ``weights`` (trials, n_synapses), ``delays`` (n_synapses,) in steps,
    ``present`` (trials, n_synapses) bool."""
    proj = _proj(cn, projection)
    n_trials, nnz = _trials(cn), _nnz(proj)
    w = proj.weights.detach().to(torch.float64).cpu().numpy()
    delays = np.full(nnz, proj.uniform_delay, np.int32) if proj.delays is None else \
        proj.delays.cpu().numpy().astype(np.int32)
    return {"indptr": proj.indptr.cpu().numpy().astype(np.int64),
            "indices": proj.indices.cpu().numpy(),
            "weights": np.broadcast_to(w, (n_trials, nnz)).copy(), "delays": delays,
            "present": present_mask(cn, projection).cpu().numpy()}


def projection_from_connectivity(cn, projection: str, trial: int = 0):
    """An IR `Projection` with the synapses ``projection`` has now in ``trial`` (absent ones
    dropped): build a fresh network from it to compare against the rebuilt one."""
    from evospike.ir.nodes import Projection

    ir = cn.network.projections[projection]
    c = connectivity(cn, projection)
    keep = c["present"][trial]
    pre = np.repeat(np.arange(ir.n_pre), np.diff(c["indptr"]))[keep]
    indptr = np.zeros(ir.n_pre + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=ir.n_pre), out=indptr[1:])
    return Projection(ir.name, ir.pre, ir.post, ir.n_pre, ir.n_post, indptr,
                      c["indices"][keep], c["weights"][trial][keep], c["delays"][keep],
                      ir.target)
