"""Memory tiers (`evospike.ir.memory`), per trial and synapse (steps 1-5 of the IR docstring)::

    dw = w - w_prev;  I = I d_I + |dw| (or |e|)
    short = (short + dw) d_s;  mid *= d_m;  long *= d_l
    w = clip(short + mid + long, w_min, w_max);  short absorbs the clip;  w_prev = w

and on consolidation steps, with ``S = I * R``: candidates (``S > threshold``) move
``short_to_mid`` of ``short`` to ``mid`` (``access += 1``, ``I = 0``); ``access >=
reactivations_to_long`` moves ``mid_to_long`` of ``mid`` to ``long`` (``access = 0``); then the
capacity limits (`evict`). Arrays are (..., n_synapses); ``level`` is per trial (...)."""

from __future__ import annotations

from typing import NamedTuple

from .array import Array, abs_, as_float, clip, expand_last, ranks_descending, where


class Tiers(NamedTuple):
    short: Array
    mid: Array
    long: Array
    importance: Array
    access: Array  # float: consolidations since the last move to long


def step(tiers: Tiers, w: Array, w_prev: Array, source: Array | None, *, decay_short: float,
         decay_mid: float, decay_long: float, decay_importance: float, w_min: float,
         w_max: float) -> tuple[Tiers, Array]:
    """Steps 1-4: returns (tiers, w), the new weight (also the next ``w_prev``). ``source``:
    the importance source (the eligibility), None for ``|dw|``; ``decay_long`` 1.0: no
    decay."""
    dw = w - w_prev
    importance = tiers.importance * decay_importance + abs_(dw if source is None else source)
    short = (tiers.short + dw) * decay_short
    mid = tiers.mid * decay_mid
    long = tiers.long if decay_long == 1.0 else tiers.long * decay_long
    total = short + mid + long
    w = clip(total, w_min, w_max)
    return Tiers(short + (w - total), mid, long, importance, tiers.access), w


def consolidate(tiers: Tiers, level: Array, *, threshold: float, short_to_mid: float,
                reactivations_to_long: int, mid_to_long: float) -> Tiers:
    """Steps 5a and 5b (the capacity limits are `evict`): moves weight between tiers without
    changing their sum."""
    candidate = tiers.importance * expand_last(level, tiers.importance) > threshold
    moved = where(candidate, tiers.short * short_to_mid, 0.0, tiers.short)
    mid, short = tiers.mid + moved, tiers.short - moved
    access = tiers.access + as_float(candidate, tiers.access)
    importance = where(candidate, 0.0, tiers.importance, tiers.importance)
    up = access >= reactivations_to_long
    moved = where(up, mid * mid_to_long, 0.0, mid)
    return Tiers(short, mid - moved, tiers.long + moved, importance,
                 where(up, 0.0, access, access))


def evict(source: Array, target: Array, capacity: int) -> tuple[Array, Array]:
    """Step 5c for one tier: per row, keep the ``capacity`` largest ``|source|`` (equal ones:
    the lower synapse index first) and hand the other nonzero entries to ``target``. Returns
    (source, target)."""
    if capacity >= source.shape[-1]:
        return source, target
    occupied = source != 0
    key = where(occupied, abs_(source), -1.0, source)
    evicted = occupied & (ranks_descending(key) >= capacity)
    return (where(evicted, 0.0, source, source),
            target + where(evicted, source, 0.0, source))
