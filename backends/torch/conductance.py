"""The eager engine's step for conductance-based neurons (`CondLIF`, `CondAdEx`).

The math is `evospike.dynamics.cond_lif_voltage` / `cond_adex_euler`; this module does the
step's bookkeeping in the order of `evospike.dynamics`: advance ``v`` (and ``w``) from the
step-start state, decay the conductances exactly and add this step's arriving conductance
increments (nS), hold the voltage of refractory neurons, threshold, reset, count the
refractory steps. Masks set by processes act as in the other models (``integrate_masks``: the
neuron neither integrates nor fires and its input is lost; ``fire_masks``: it may not fire).
"""

from __future__ import annotations

import torch

from evospike.dynamics import CondAdExStep, cond_adex_euler, cond_lif_voltage
from evospike.ir.nodes import CHANNELS

from .compiler import TPopulation


def _masks_of(pop: TPopulation) -> torch.Tensor | None:
    out = None
    for mask in (*pop.integrate_masks.values(), *pop.fire_masks.values()):
        out = mask if out is None else out & mask
    return out


def advance_conductance(pop: TPopulation, arrivals: torch.Tensor | None,
                        current: torch.Tensor | None, dt_ms: float) -> None:
    """Advance a `CondLIF` / `CondAdEx` population by one step in place; sets ``pop.spiked``.
    ``arrivals``: one row per channel in ``pop.channels`` (conductance increments, nS);
    ``current``: the injected current of the step (pA) or None."""
    c = pop.consts
    adex = isinstance(pop.step, CondAdExStep)
    x = pop.x
    v, g_e, g_i = x[0], x[-2], x[-1]
    drive = c["I_e"] if current is None else c["I_e"] + current
    if adex:
        w = x[1]
        v_new, w_new = cond_adex_euler(torch, v, w, g_e, g_i, drive, c, dt_ms)
    else:
        v_new = cond_lif_voltage(torch, v, g_e, g_i, drive, c, dt_ms)
    g_e_new = g_e * c["decay_exc"]
    g_i_new = g_i * c["decay_inh"]
    if arrivals is not None:
        for slot, ch in enumerate(pop.channels):
            if CHANNELS[ch] == "exc":
                g_e_new = g_e_new + arrivals[slot]
            else:  # the IR admits only 'exc' and 'inh' onto a conductance model
                g_i_new = g_i_new + arrivals[slot]
    if pop.integrate_masks:
        active = None
        for mask in pop.integrate_masks.values():
            active = mask if active is None else active & mask
        v_new = torch.where(active, v_new, v)
        g_e_new = torch.where(active, g_e_new, g_e)
        g_i_new = torch.where(active, g_i_new, g_i)
        if adex:
            w_new = torch.where(active, w_new, w)
    if pop.has_refractory:
        held = pop.refrac > 0
        v_new = torch.where(held, v, v_new)
    if adex:
        spiked = v_new >= c["v_thresh"]
    else:
        thresh = c["v_thresh"]
        if pop.threshold_offset is not None:  # threshold homeostasis
            thresh = thresh + pop.threshold_offset
        spiked = v_new > thresh
    if pop.has_refractory:
        spiked &= ~held
    allowed = _masks_of(pop)
    if allowed is not None:
        spiked &= allowed
    v_new = torch.where(spiked, c["v_reset"], v_new)
    x[0].copy_(v_new)
    if adex:
        x[1].copy_(w_new + spiked * c["b"])
    x[-2].copy_(g_e_new)
    x[-1].copy_(g_i_new)
    if pop.has_refractory:
        pop.refrac.copy_(torch.where(spiked, c["hold_steps"], (pop.refrac - 1).clamp_(min=0)))
    pop.spiked = spiked
