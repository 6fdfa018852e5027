"""The torch engine loop behind `evospike.run_array`: the drive arrays fed step by step into
the eager engine (graded events into the delay buffers of the input's projections, or injected
currents), the outputs' spikes and states read back after every step."""

from __future__ import annotations

import numpy as np
import torch

from evospike.errors import EvoSpikeError
from evospike.ir.network import Network

from . import eager


def drive(network: Network, drive: dict[str, np.ndarray], outs: dict[str, tuple[str, bool, int]],
          wanted: tuple[str, ...], n_steps: int, precision: str = "float64",
          device: str = "cpu") -> tuple[dict, dict]:
    """Run ``n_steps`` steps of ``network`` with ``drive`` ({input: (time, batch, n)}, already
    checked by `evospike.arrays.run_array`); returns ({output: (n_steps, batch, n) uint8
    spikes}, {output: {state: (n_steps, batch, n) float64}})."""
    from evospike.backends import get_backend

    t_in, batch = next(iter(drive.values())).shape[:2]
    runner = get_backend("torch").compile(network, precision=precision, device=device,
                                          seeds=tuple(range(batch)), engine="eager",
                                          progress=False)
    cn = runner.cn
    dtype, dev = cn.dtype, cn.device
    # graded events of source inputs: per projection, the synapses' presynaptic neurons
    graded = []
    for name, arr in drive.items():
        if name in network.sources:
            for proj in cn.projections.values():
                if proj.pre == name:
                    pre_of = torch.repeat_interleave(
                        torch.arange(proj.n_pre, device=dev), proj.indptr[1:] - proj.indptr[:-1])
                    graded.append((proj, pre_of, torch.as_tensor(arr, dtype=dtype, device=dev)))
    inject = {name: torch.as_tensor(arr, dtype=dtype, device=dev) for name, arr in drive.items()
              if name in network.populations}
    own = runner._chunk_inputs(0, n_steps)
    own_src = {k: torch.as_tensor(v, device=dev) for k, v in own.source_flat.items()}
    own_cur = {k: torch.as_tensor(v, dtype=dtype, device=dev) for k, v in own.currents.items()}
    spikes = {name: np.zeros((n_steps, batch, network.size_of(pop)), np.uint8)
              for name, (pop, spiking, _) in outs.items() if spiking}
    traces = {name: {st: np.zeros((n_steps, batch, network.size_of(pop)))
                     for st in wanted + (() if spiking else ("v",))}
              for name, (pop, spiking, _) in outs.items()}
    with torch.no_grad():
        for step in range(n_steps):
            if step < t_in:
                for proj, pre_of, values in graded:
                    _send_graded(proj, pre_of, values[step], cn.populations[proj.post].buf,
                                 step)
            currents = {k: v[step] for k, v in own_cur.items()}
            for k, v in inject.items():
                if step < t_in:
                    currents[k] = v[step] if k not in currents else currents[k] + v[step]
            fired_src = {k: own_src[k][int(p[step]):int(p[step + 1])]
                         for k, p in own.source_ptr.items()}
            rewards = {k: float(v[step]) for k, v in own.rewards.items()}
            fired = eager.run_step(cn, step, currents, fired_src, rewards)
            for name, (pop, spiking, _) in outs.items():
                size = network.size_of(pop)
                idx = fired[pop].cpu().numpy()
                if spiking:
                    spikes[name][step].reshape(-1)[idx] = 1
                elif idx.size:
                    raise EvoSpikeError(f"run_array: the non-spiking output '{name}' reached "
                                        f"its stand-in threshold in step {step}")
                tp = cn.populations[pop]
                for st in traces[name]:
                    traces[name][st][step] = tp.x[tp.step.state_names.index(st)].reshape(
                        batch, size).to(torch.float64).cpu().numpy()
    return spikes, traces


def _send_graded(proj, pre_of, values, buf, step: int) -> None:
    """Add ``values[trial, pre] * w`` of every synapse into the slot its delay lands in."""
    if proj.indices.numel() == 0:
        return
    trials = values.shape[0]
    contrib = values[:, pre_of] * proj.weights.view(1, -1)  # (trials, nnz)
    targets = proj.indices.to(torch.int64).view(1, -1) + (
        torch.arange(trials, device=values.device).view(-1, 1) * proj.n_post)
    slots, channels, _, n_post = buf.shape
    if proj.delays is None:
        slot = (step + proj.uniform_delay) % slots
        buf[slot, proj.channel_slot].view(-1).index_add_(0, targets.reshape(-1),
                                                         contrib.reshape(-1))
    else:
        slot = (step + proj.delays.to(torch.int64).view(1, -1)) % slots
        flat = (slot * channels + proj.channel_slot) * (trials * n_post) + targets
        buf.view(-1).index_add_(0, flat.reshape(-1), contrib.reshape(-1))
