"""The eager engine: one time step as a sequence of torch operations. Runs on any device and
is the reference the native CPU kernel is tested against.

Per step (see `evospike.dynamics` for the order): read this step's slot of each population's
delay ring buffer, advance the state exactly, threshold, reset, then send the spikes: gather the
CSR rows of the neurons that fired and ``index_add_`` their weights into the slot ``delay`` steps
ahead. No dense N x N matrix exists anywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from evospike.dynamics import (
    AdExStep,
    ConductanceStep,
    IzhikevichStep,
    LinearStep,
    adex_euler,
)
from evospike.ir.nodes import CHANNELS

from .compiler import CompiledNetwork, TPopulation, TProjection
from .conductance import advance_conductance


def _all(masks: dict[str, torch.Tensor]) -> torch.Tensor:
    out = None
    for mask in masks.values():
        out = mask if out is None else out & mask
    return out


def _masks(pop: TPopulation) -> torch.Tensor | None:
    """Where the population's neurons may fire this step (None: everywhere)."""
    if not pop.integrate_masks and not pop.fire_masks:
        return None
    return _all({**pop.integrate_masks, **{f"fire:{k}": v for k, v in pop.fire_masks.items()}})


def _linear_plan(pop: TPopulation) -> list:
    """Per state i: (q_i, [(P_ij, j) for the nonzero P_ij], G_i or None, [(buffer slot,
    coefficient) of the channels that feed state i]) -- the sparsity of the propagator, found
    once so a step does no numpy work."""
    step: LinearStep = pop.step  # type: ignore[assignment]
    c = pop.consts
    plan = []
    for i in range(pop.x.shape[0]):
        p_terms = [(c["P"][i, j], j) for j in range(pop.x.shape[0]) if step.P[i, j].any()]
        g_i = c["G"][i] if step.G[i].any() else None
        b_terms = [(slot, float(step.B[i, ch])) for slot, ch in enumerate(pop.channels)
                   if float(step.B[i, ch]) != 0.0]
        plan.append((c["q"][i], p_terms, g_i, b_terms))
    pop.plan = plan
    return plan


def advance_linear(pop: TPopulation, arrivals: torch.Tensor | None,
                   current: torch.Tensor | None) -> None:
    """Advance a linear-model population by one step in place; sets ``pop.spiked``."""
    step: LinearStep = pop.step  # type: ignore[assignment]
    c = pop.consts
    x = pop.x
    plan = pop.plan if pop.plan is not None else _linear_plan(pop)
    new = []
    for q_i, p_terms, g_i, b_terms in plan:
        acc = q_i
        for p_ij, j in p_terms:
            acc = p_ij * x[j] + acc
        if current is not None and g_i is not None:
            acc = acc + g_i * current
        if arrivals is not None:
            for slot, coef in b_terms:
                acc = acc + arrivals[slot] if coef == 1.0 else acc + coef * arrivals[slot]
        new.append(torch.broadcast_to(acc, x.shape[1:]))
    allowed = _masks(pop)
    if pop.integrate_masks:  # a masked neuron neither integrates nor fires; its input is lost
        active = _all(pop.integrate_masks)
        new = [torch.where(active, value, x[i]) for i, value in enumerate(new)]
    vi = step.v_index
    v = new[vi]
    if step.reset_after_decay:
        # snnTorch's convention: last step's spikes (still in pop.spiked) subtract after the
        # decay, masked neurons included (the reset belongs to a spike already sent)
        v = v - pop.spiked * (c["v_thresh"] - c["v_reset"])
    if pop.has_refractory:
        held = pop.refrac > 0
        v = torch.where(held, x[vi], v)
    thresh = c["v_thresh"]
    if step.theta_index is not None:
        thresh = thresh + new[step.theta_index]
    if pop.threshold_offset is not None:  # homeostasis
        thresh = thresh + pop.threshold_offset
    spiked = v > thresh
    if pop.has_refractory:
        spiked &= ~held
    if allowed is not None:
        spiked &= allowed
    if step.reset_subtract:
        v = v - spiked * (c["v_thresh"] - c["v_reset"])
    elif not step.reset_after_decay:  # the deferred reset lands in the next step
        v = torch.where(spiked, c["v_reset"], v)
    new[vi] = v
    if step.theta_index is not None:
        new[step.theta_index] = new[step.theta_index] + spiked * c["theta_jump"]
    for i, value in enumerate(new):
        x[i].copy_(value)
    if pop.has_refractory:
        pop.refrac.copy_(torch.where(spiked, c["hold_steps"], (pop.refrac - 1).clamp_(min=0)))
    pop.spiked = spiked


def _add_arrivals(pop: TPopulation, arrivals: torch.Tensor | None, v: torch.Tensor,
                  i_exc: torch.Tensor, i_inh: torch.Tensor) -> tuple:
    """The step's arriving events (``arrivals``: one slot per channel in ``pop.channels``)
    added to the state of their channel: ``exc``/``inh`` currents or the voltage ``v``."""
    if arrivals is not None:
        for slot, ch in enumerate(pop.channels):
            name = CHANNELS[ch]
            if name == "exc":
                i_exc = i_exc + arrivals[slot]
            elif name == "inh":
                i_inh = i_inh + arrivals[slot]
            else:
                v = v + arrivals[slot]
    return v, i_exc, i_inh


def _keep_masked(pop: TPopulation, new: tuple, old: tuple) -> tuple:
    """``new`` where the processes let a neuron integrate, ``old`` where they mask it out (a
    masked neuron's state does not move, its inputs are dropped)."""
    if not pop.integrate_masks:
        return new
    active = _all(pop.integrate_masks)
    return tuple(torch.where(active, n, o) for n, o in zip(new, old, strict=True))


def advance_izhikevich(pop: TPopulation, arrivals: torch.Tensor | None,
                       current: torch.Tensor | None, dt_ms: float) -> None:
    """Advance an Izhikevich population by one step in place; sets ``pop.spiked``."""
    c = pop.consts
    v, u, ie, ii = pop.x[0], pop.x[1], pop.x[2], pop.x[3]
    drive = ie + ii + c["i_bias"]
    if current is not None:
        drive = drive + current
    dv = (0.04 * v + 5.0) * v + 140.0 - u + drive
    du = c["a"] * (c["b"] * v - u)
    v_new = v + dt_ms * dv
    u_new = u + dt_ms * du
    ie_new = ie * c["decay_exc"]
    ii_new = ii * c["decay_inh"]
    v_new, ie_new, ii_new = _add_arrivals(pop, arrivals, v_new, ie_new, ii_new)
    v_new, u_new, ie_new, ii_new = _keep_masked(pop, (v_new, u_new, ie_new, ii_new),
                                                (v, u, ie, ii))
    spiked = v_new > c["v_peak"]
    allowed = _masks(pop)
    if allowed is not None:
        spiked &= allowed
    v_new = torch.where(spiked, c["c"], v_new)
    u_new = u_new + spiked * c["d"]
    pop.x[0].copy_(v_new)
    pop.x[1].copy_(u_new)
    pop.x[2].copy_(ie_new)
    pop.x[3].copy_(ii_new)
    pop.spiked = spiked


def advance_adex(pop: TPopulation, arrivals: torch.Tensor | None,
                 current: torch.Tensor | None, dt_ms: float) -> None:
    """Advance an AdEx population by one step in place; sets ``pop.spiked``. The (v, w) update
    is `evospike.dynamics.adex_euler`; refractoriness follows the LIF rule (v held and
    ``v``-channel events ignored while held, w integrating throughout)."""
    c = pop.consts
    v, w, ie, ii = pop.x[0], pop.x[1], pop.x[2], pop.x[3]
    drive = ie + ii + c["I_e"]
    if current is not None:
        drive = drive + current
    v_new, w_new = adex_euler(torch, v, w, drive, c, dt_ms)
    ie_new = ie * c["decay_exc"]
    ii_new = ii * c["decay_inh"]
    v_new, ie_new, ii_new = _add_arrivals(pop, arrivals, v_new, ie_new, ii_new)
    v_new, w_new, ie_new, ii_new = _keep_masked(pop, (v_new, w_new, ie_new, ii_new),
                                                (v, w, ie, ii))
    if pop.has_refractory:
        held = pop.refrac > 0
        v_new = torch.where(held, v, v_new)
    spiked = v_new >= c["v_peak"]
    if pop.has_refractory:
        spiked &= ~held
    allowed = _masks(pop)
    if allowed is not None:
        spiked &= allowed
    v_new = torch.where(spiked, c["v_reset"], v_new)
    w_new = w_new + spiked * c["b"]
    pop.x[0].copy_(v_new)
    pop.x[1].copy_(w_new)
    pop.x[2].copy_(ie_new)
    pop.x[3].copy_(ii_new)
    if pop.has_refractory:
        pop.refrac.copy_(torch.where(spiked, c["hold_steps"], (pop.refrac - 1).clamp_(min=0)))
    pop.spiked = spiked


def gather_segments(ptr: torch.Tensor, rows: torch.Tensor):
    """For CSR-like pointers ``ptr`` and the rows ``rows``: the entries of all those rows,
    concatenated, and for each entry the position of its row in ``rows``."""
    starts = ptr[rows]
    counts = ptr[rows + 1] - starts
    total = int(counts.sum())
    row_of = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts,
                                     output_size=total)
    offsets = torch.cumsum(counts, 0) - counts
    entries = starts[row_of] + (torch.arange(total, device=rows.device) - offsets[row_of])
    return entries, row_of


def propagate(proj: TProjection, fired: torch.Tensor, buf: torch.Tensor, step: int) -> None:
    """Add the weights of every synapse of the fired presynaptic neurons into ``buf``.

    ``fired`` holds flat indices ``trial * n_pre + neuron``; ``buf`` is the post population's
    ring buffer (slots, channels, trials, n_post). For a plastic projection ``fired`` are the
    spikes arriving now and ``step`` is such that they land in this step's slot."""
    if fired.numel() == 0:
        return
    pre = fired % proj.n_pre
    trial = fired // proj.n_pre
    syn, row_of = gather_segments(proj.indptr, pre)
    total = syn.numel()
    if total == 0:
        return
    targets = proj.indices[syn].to(torch.int64) + trial[row_of] * proj.n_post
    if proj.weights.dim() == 2:  # plastic: one weight vector per trial
        weights = proj.weights.view(-1)[trial[row_of] * proj.weights.shape[1] + syn]
    else:
        weights = proj.weights[syn]
    slots, channels, trials, n_post = buf.shape
    if proj.delays is None:
        slot = (step + proj.uniform_delay) % slots
        buf[slot, proj.channel_slot].view(-1).index_add_(0, targets, weights)
    else:
        slot = (step + proj.delays[syn].to(torch.int64)) % slots
        flat = (slot * channels + proj.channel_slot) * (trials * n_post) + targets
        buf.view(-1).index_add_(0, flat, weights)


def stdp_update(proj: TProjection, arriving: torch.Tensor, post_fired: torch.Tensor,
                level: torch.Tensor | None = None) -> None:
    """One step of pair-based STDP (`evospike.ir.plasticity`): decay, depression by the
    arriving presynaptic spikes, potentiation by the postsynaptic spikes. ``level`` (trials,)
    is the rule's modulator at the start of the step (None: unmodulated). A three-factor rule
    writes the pair terms into its eligibility and then moves the weights by
    learning rate x level x eligibility."""
    pl = proj.plastic
    rule = pl.rule
    three_factor = pl.eligibility is not None
    pl.x.mul_(pl.decay_x)
    pl.y.mul_(pl.decay_y)
    if three_factor:
        pl.eligibility.mul_(pl.decay_e)
        target = pl.eligibility.view(-1)
    else:
        target = proj.weights.view(-1)
    factor = None  # per trial, multiplies every weight change (modulated STDP)
    if level is not None and not three_factor:
        if rule.modulation == "gate":
            factor = (level > rule.gate_threshold).to(level.dtype)
        else:
            factor = 1.0 + rule.scale_gain * level
    multiplicative = rule.weight_dependence == "multiplicative"
    nnz = proj.weights.shape[1]
    w = proj.weights.view(-1)
    if arriving.numel():
        pre = arriving % proj.n_pre
        trial = arriving // proj.n_pre
        syn, row_of = gather_segments(proj.indptr, pre)
        if syn.numel():
            t = trial[row_of]
            flat = t * nnz + syn
            y = pl.y.view(-1)[t * proj.n_post + proj.indices[syn].to(torch.int64)]
            change = pl.a_minus[t] * y
            if multiplicative:
                change = change * (w[flat] - rule.w_min)
            if factor is not None:
                change = change * factor[t]
            if three_factor:
                target.index_add_(0, flat, -change)
            else:
                w[flat] = (w[flat] - change).clamp_(rule.w_min, rule.w_max)
        if rule.pairing == "all":
            pl.x.view(-1)[arriving] += 1.0
        else:
            pl.x.view(-1)[arriving] = 1.0
    if post_fired.numel():
        post = post_fired % proj.n_post
        trial = post_fired // proj.n_post
        if rule.pairing == "all":
            pl.y.view(-1)[post_fired] += 1.0
        else:
            pl.y.view(-1)[post_fired] = 1.0
        entries, row_of = gather_segments(pl.col_ptr, post)
        if entries.numel():
            t = trial[row_of]
            flat = t * nnz + pl.col_syn[entries]
            x = pl.x.view(-1)[t * proj.n_pre + pl.col_pre[entries]]
            change = pl.a_plus[t] * x
            if multiplicative:
                change = change * (rule.w_max - w[flat])
            if factor is not None:
                change = change * factor[t]
            if three_factor:
                target.index_add_(0, flat, change)
            else:
                w[flat] = (w[flat] + change).clamp_(rule.w_min, rule.w_max)
    if three_factor:
        proj.weights.add_(pl.learning_rate_dt * level.unsqueeze(1) * pl.eligibility)
        proj.weights.clamp_(rule.w_min, rule.w_max)


def run_step(cn: CompiledNetwork, step: int, currents: dict[str, torch.Tensor | None],
             source_fired: dict[str, torch.Tensor],
             rewards: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Advance every population by one step and send the spikes; returns the flat indices
    (trial * size + neuron) of every node that fired in this step. ``rewards``: the reward
    drive of each modulator in this step."""
    fired: dict[str, torch.Tensor] = {}
    arriving: dict[str, torch.Tensor] = {}
    # schedule "brian2": arrivals act after the threshold (deliver_after_threshold)
    brian2 = cn.network.schedule == "brian2"
    held: dict[str, torch.Tensor | None] = {}
    for proj in cn.plastic:
        # spikes reach plastic synapses now and are sent with the weights they find there
        d = proj.uniform_delay
        arriving[proj.name] = proj.plastic.pending[step % d]
        propagate(proj, arriving[proj.name], cn.populations[proj.post].buf, step - d)
    for pop in cn.populations.values():
        arrivals = None
        if brian2:  # Brian2's v gate reads who was refractory before this step's threshold
            held[pop.name] = pop.refrac > 0 if pop.has_refractory else None
        elif pop.buf is not None:
            slot = step % pop.buf.shape[0]
            arrivals = pop.buf[slot].clone()
            pop.buf[slot].zero_()
            for inp in cn.inputs.values():
                if inp.target == pop.name:  # lands with this step's spikes (PoissonInput)
                    arrivals[inp.channel_slot] += inp.at(step)
        if isinstance(pop.step, LinearStep):
            advance_linear(pop, arrivals, currents.get(pop.name))
        elif isinstance(pop.step, AdExStep):
            advance_adex(pop, arrivals, currents.get(pop.name), cn.network.dt_ms)
        elif isinstance(pop.step, ConductanceStep):
            advance_conductance(pop, arrivals, currents.get(pop.name), cn.network.dt_ms)
        else:
            advance_izhikevich(pop, arrivals, currents.get(pop.name), cn.network.dt_ms)
        fired[pop.name] = pop.spiked.view(-1).nonzero().squeeze(1)
    fired.update(source_fired)
    for proj in cn.projections.values():
        if proj.plastic is None:
            propagate(proj, fired[proj.pre], cn.populations[proj.post].buf, step)
        else:  # (plasticity is refused under schedule "brian2": evospike.ir.timing)
            rule = proj.plastic.rule
            level = cn.processes[rule.modulator].level if rule.modulator else None
            stdp_update(proj, arriving[proj.name], fired[proj.post], level)
            proj.plastic.pending[step % proj.uniform_delay] = fired[proj.pre]
    if brian2:
        deliver_after_threshold(cn, step, held)
    if cn.processes:
        update_processes(cn, step, fired, rewards or {})
    return fired


def _v_gate(cn: CompiledNetwork, pop: TPopulation) -> tuple[bool, bool]:
    """(gated, kept at a spike) of ``pop`` under schedule "brian2": whether Brian2 gates its
    ``v`` events with ``not_refractory`` (its model has a refractory period for any neuron),
    and whether an event on ``v`` in the spike's own step survives the reset (a reset by
    subtraction keeps it, a reset to a value overwrites it). Found once per network."""
    cache = cn.__dict__.setdefault("_brian2_v_gates", {})
    if pop.name not in cache:
        model = cn.network.populations[pop.name].model
        gated = bool(np.any(np.asarray(getattr(model, "tau_refrac_ms", 0.0)) > 0))
        subtract = isinstance(pop.step, LinearStep) and pop.step.reset_subtract
        cache[pop.name] = (gated, subtract and not gated)
    return cache[pop.name]


def deliver_after_threshold(cn: CompiledNetwork, step: int,
                            held: dict[str, torch.Tensor | None]) -> None:
    """Schedule "brian2" (`evospike.ir.timing`): add the events due in ``step`` -- this step's
    spikes with delay 0 included, they were just propagated -- and the step's `PoissonInput`
    counts to the state the populations left after threshold and reset, where Brian2's
    ``synapses`` slot adds them (its reset runs after; it only touches ``v`` and, for
    adaptive models, a state no channel feeds, so the order of the two is seen only on
    ``v``). Events on ``v`` are dropped where Brian2 loses them: at a neuron that fired, when
    its reset sets a value or its population gates ``v`` events, and at a neuron ``held``
    refractory in this step when it gates them. They act on the state the next step
    integrates."""
    for pop in cn.populations.values():
        if pop.buf is None:
            continue
        slot = step % pop.buf.shape[0]
        arrivals = pop.buf[slot].clone()
        pop.buf[slot].zero_()
        for inp in cn.inputs.values():
            if inp.target == pop.name:
                arrivals[inp.channel_slot] += inp.at(step)
        gated, kept_at_spike = _v_gate(cn, pop)
        keep_v = None if kept_at_spike else ~pop.spiked
        if gated and held.get(pop.name) is not None:
            keep_v = keep_v & ~held[pop.name]
        if isinstance(pop.step, LinearStep):
            rows = {}
            for i in range(pop.x.shape[0]):
                for k, ch in enumerate(pop.channels):
                    coef = float(pop.step.B[i, ch])
                    if coef != 0.0:
                        term = arrivals[k] if coef == 1.0 else coef * arrivals[k]
                        rows[i] = term if i not in rows else rows[i] + term
            v_row = pop.step.v_index
        elif isinstance(pop.step, (AdExStep, IzhikevichStep)):
            # states (v, u|w, i_exc, i_inh): channels exc, inh, v feed rows 2, 3, 0
            rows, v_row = {}, 0
            for k, ch in enumerate(pop.channels):
                i = {"exc": 2, "inh": 3, "v": 0}[CHANNELS[ch]]
                rows[i] = arrivals[k] if i not in rows else rows[i] + arrivals[k]
        else:  # refused before the run (evospike.ir.timing.BRIAN2_SCHEDULE_MODELS)
            raise TypeError(f"population '{pop.name}': no Brian2-schedule delivery for "
                            f"{type(pop.step).__name__}")
        for i, add in rows.items():
            if i == v_row and keep_v is not None:
                add = torch.where(keep_v, add, torch.zeros_like(add))
            pop.x[i].add_(add)


def update_processes(cn: CompiledNetwork, step: int, fired: dict[str, torch.Tensor],
                     rewards: dict[str, float]) -> None:
    """Every process at the end of the step, in the order of its phase (homeostasis, then the
    modulators, then metaplasticity, then later kinds)."""
    for proc in cn.process_order:
        proc.update(cn, step, fired, rewards)
