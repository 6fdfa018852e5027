"""Training throughput: EvoSpike's trainer against snnTorch and SpikingJelly (torch backend) on
the same network, in the same process, one after another, repeated in turns.

The network (the same sizes, time steps, batch, input spikes and loss for all three):
``inputs`` Bernoulli spike trains (``--input-rate``) -> Linear -> hidden LIF -> Linear ->
hidden LIF -> Linear -> non-spiking readout, for ``--steps`` time steps; every neuron has two
states, an exponential synaptic current and a leaky membrane (the IR's LIF: tau_m 10 ms,
tau_syn 5 ms, dt 1 ms), reset to zero at threshold, ATan surrogate; loss: cross-entropy of
the readout membrane averaged over time; optimiser: Adam. One training step = forward +
backward + optimiser step on one batch.

- EvoSpike: `SpikingNetwork` (whole-sequence layers; each layer's time loop is one autograd
  node with a hand-written backward in a C kernel; the products with spike matrices are
  event-driven where that pays for the density and output width
  (`evospike.training.native.sparse_pays`), dense otherwise: the activity it saw is printed).
  With ``--threads`` above 1 the C kernels split their work over that many threads.
- snnTorch: ``nn.Linear`` + ``snn.Synaptic`` (its two-state neuron: synaptic current + membrane,
  ``alpha``/``beta`` set to EvoSpike's per-step decays), stepped in a Python loop over time as
  its tutorials do; readout ``reset_mechanism="none"`` with a threshold it never reaches.
- SpikingJelly: multi-step mode (``step_mode="m"``): ``layer.Linear`` +
  ``layer.SynapseFilter`` (exponential synaptic current) + ``neuron.LIFNode`` (its multi-step
  torch path on the CPU); readout a LIFNode whose threshold is never reached, membrane taken
  from ``v_seq``. (Its GPU kernels need CUDA; they are not measured here.)

The dynamics differ in detail (each library's own discretisation); sizes, work and the
learning problem are the same. Reported: samples per second over ``--repeats`` timed rounds of
``--iters`` steps each (after warm-up), the libraries taking turns round by round: the best round
(least disturbed by other work on a shared machine, as ``timeit`` advises) and the median, and
EvoSpike's ratio to each peer for both.

    python benchmarks/training_throughput.py --threads 1 --json benchmarks/results/training.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def make_data(batch: int, steps: int, inputs: int, classes: int, device, seed: int = 0,
              rate: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, inputs, generator=g) < rate).float().to(device)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)
    return x, y


def evospike_model(args):
    from evospike.training import SpikingNetwork

    spec = {"dt_ms": 1.0, "steps": args.steps, "weight_gain": args.weight_gain,
            "neuron": {"tau_m_ms": 10.0, "tau_syn_ms": 5.0, "surrogate": "atan"},
            "input": {"kind": "spikes", "shape": [args.inputs]},
            "layers": [{"type": "linear", "size": args.hidden, "bias": False},
                       {"type": "linear", "size": args.hidden, "bias": False},
                       {"type": "readout", "size": args.classes, "bias": False}]}
    model = SpikingNetwork(spec)
    return model, lambda x: model(x)


def decays():
    from evospike.training.neuron import NeuronSpec, step_constants

    c = step_constants(NeuronSpec(tau_m_ms=10.0, tau_syn_ms=5.0), 1.0)
    return c.alpha, c.beta


def snntorch_model(args):
    import snntorch as snn
    from snntorch import surrogate

    alpha, beta = decays()
    spike_grad = surrogate.atan(alpha=2.0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(args.inputs, args.hidden, bias=False)
            self.lif1 = snn.Synaptic(alpha=alpha, beta=beta, spike_grad=spike_grad,
                                     reset_mechanism="zero")
            self.fc2 = nn.Linear(args.hidden, args.hidden, bias=False)
            self.lif2 = snn.Synaptic(alpha=alpha, beta=beta, spike_grad=spike_grad,
                                     reset_mechanism="zero")
            self.fc3 = nn.Linear(args.hidden, args.classes, bias=False)
            self.out = snn.Synaptic(alpha=alpha, beta=beta, spike_grad=spike_grad,
                                    threshold=1e9, reset_mechanism="none")

        def forward(self, x):  # x (B, T, F)
            syn1, mem1 = self.lif1.init_synaptic()
            syn2, mem2 = self.lif2.init_synaptic()
            syn3, mem3 = self.out.init_synaptic()
            total = 0.0
            for t in range(x.shape[1]):
                s1, syn1, mem1 = self.lif1(self.fc1(x[:, t]), syn1, mem1)
                s2, syn2, mem2 = self.lif2(self.fc2(s1), syn2, mem2)
                _, syn3, mem3 = self.out(self.fc3(s2), syn3, mem3)
                total = total + mem3
            return total / x.shape[1]

    model = Net()
    return model, lambda x: model(x)


def spikingjelly_model(args):
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    alpha, beta = decays()
    tau_syn = 1.0 / (1.0 - alpha)  # SynapseFilter decays by (1 - 1/tau) per step
    tau_m = 1.0 / (1.0 - beta)  # LIFNode decays by (1 - 1/tau) per step

    def lif(threshold=1.0):
        return neuron.LIFNode(tau=tau_m, decay_input=False, v_threshold=threshold, v_reset=0.0,
                              surrogate_function=surrogate.ATan(), detach_reset=True,
                              step_mode="m", store_v_seq=threshold > 1e6)

    model = nn.Sequential(
        layer.Linear(args.inputs, args.hidden, bias=False, step_mode="m"),
        layer.SynapseFilter(tau=tau_syn, step_mode="m"), lif(),
        layer.Linear(args.hidden, args.hidden, bias=False, step_mode="m"),
        layer.SynapseFilter(tau=tau_syn, step_mode="m"), lif(),
        layer.Linear(args.hidden, args.classes, bias=False, step_mode="m"),
        layer.SynapseFilter(tau=tau_syn, step_mode="m"), lif(threshold=1e9),
    )

    def forward(x):
        functional.reset_net(model)
        model(x.transpose(0, 1).contiguous())
        return model[-1].v_seq.mean(0)

    return model, forward


# ---- the snnTorch tutorial network (issue 23): 784 Bernoulli inputs -> Linear(784, 1000) ->
# Leaky(beta 0.95) -> Linear(1000, 10) -> Leaky, ce_rate_loss, each library's idiomatic model
def tutorial_evospike(args):
    from evospike.training.leaky_model import LeakyNetwork

    spec = {"steps": args.steps, "input": {"kind": "spikes", "shape": [args.inputs]},
            "layers": [{"type": "leaky", "size": args.hidden, "beta": 0.95},
                       {"type": "leaky", "size": args.classes, "beta": 0.95}],
            "loss": {"kind": "ce_rate"}}
    model = LeakyNetwork(spec)
    return model, lambda x: model.run(x)[-1][0]


def tutorial_snntorch(args):
    import snntorch as snn

    class Net(nn.Module):  # snnTorch's tutorial 5 model, as written there
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(args.inputs, args.hidden)
            self.lif1 = snn.Leaky(beta=0.95)
            self.fc2 = nn.Linear(args.hidden, args.classes)
            self.lif2 = snn.Leaky(beta=0.95)

        def forward(self, x):  # x (B, T, F)
            mem1 = self.lif1.reset_mem()
            mem2 = self.lif2.reset_mem()
            spk2_rec = []
            for t in range(x.shape[1]):
                cur1 = self.fc1(x[:, t])
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = self.fc2(spk1)
                spk2, mem2 = self.lif2(cur2, mem2)
                spk2_rec.append(spk2)
            return torch.stack(spk2_rec)

    model = Net()
    return model, lambda x: model(x)


def tutorial_spikingjelly(args):
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    # snnTorch's Leaky is SpikingJelly's LIFNode with decay_input=False, tau = 1 / (1 - beta)
    # and a soft reset (v_reset=None), multi-step mode
    def lif():
        return neuron.LIFNode(tau=1.0 / (1.0 - 0.95), decay_input=False, v_reset=None,
                              surrogate_function=surrogate.ATan(), step_mode="m")

    model = nn.Sequential(layer.Linear(args.inputs, args.hidden, step_mode="m"), lif(),
                          layer.Linear(args.hidden, args.classes, step_mode="m"), lif())

    def forward(x):
        functional.reset_net(model)
        return model(x.transpose(0, 1).contiguous())

    return model, forward


def ce_rate(spikes, y):
    """snnTorch's ce_rate_loss: cross-entropy of every step's output spikes, averaged."""
    logp = F.log_softmax(spikes, dim=-1)
    return sum(F.nll_loss(logp[t], y) for t in range(spikes.shape[0])) / spikes.shape[0]


LIBRARIES = {"evospike": evospike_model, "snntorch": snntorch_model,
             "spikingjelly": spikingjelly_model}
TUTORIAL = {"evospike": tutorial_evospike, "snntorch": tutorial_snntorch,
            "spikingjelly": tutorial_spikingjelly}


def time_library(name, args, device, x, y) -> list[float]:
    torch.manual_seed(0)
    tutorial = args.network == "tutorial"
    model, forward = (TUTORIAL if tutorial else LIBRARIES)[name](args)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr if tutorial else 1e-3)
    loss_of = ce_rate if tutorial else F.cross_entropy

    def step():
        loss = loss_of(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    # "trained activity": the timing starts after --pretrain steps of training on the task
    for _ in range(args.warmup + args.pretrain):
        step()
    if tutorial:
        with torch.no_grad():
            out = forward(x)
        args.activity_seen[name] = float(out.float().mean())
    rounds = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            loss = step()
        float(loss.detach())
        if device.type == "cuda":
            torch.cuda.synchronize()
        rounds.append(args.iters * args.batch / (time.perf_counter() - t0))
    return rounds


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--inputs", type=int, default=200)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--input-rate", type=float, default=0.1,
                   help="probability of an input spike per neuron and step")
    p.add_argument("--weight-gain", type=float, default=3.0,
                   help="EvoSpike's initial weight scale (sets how much the hidden layers fire)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--libraries", default="evospike,snntorch,spikingjelly")
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument("--network", choices=("ours", "tutorial"), default="ours",
                   help="ours: the two-hidden-layer IR network above; tutorial: snnTorch's "
                        "tutorial network (784 -> 1000 Leaky -> 10 Leaky, ce_rate_loss)")
    p.add_argument("--pretrain", type=int, default=0,
                   help="training steps before the timing (activity of a trained network)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam's rate (tutorial network)")
    args = p.parse_args(argv)
    if args.network == "tutorial":
        # the tutorial's sizes unless given; a class-dependent input rate makes the task
        # learnable, so --pretrain moves the network to the activity it reaches in training
        for key, value in (("inputs", 784), ("hidden", 1000), ("steps", 25), ("batch", 128)):
            if f"--{key}" not in (argv or __import__("sys").argv):
                setattr(args, key, value)
    args.activity_seen = {}
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y = make_data(args.batch, args.steps, args.inputs, args.classes, device,
                     rate=args.input_rate)
    if args.network == "tutorial":  # each class lights its own tenth of the inputs more
        g = torch.Generator().manual_seed(1)
        band = (torch.arange(args.inputs) * args.classes // args.inputs)
        rate = torch.where(band[None, :] == y.cpu()[:, None], 3 * args.input_rate,
                           args.input_rate)
        x = (torch.rand(args.batch, args.steps, args.inputs, generator=g)
             < rate[:, None, :]).float().to(device)
    names = args.libraries.split(",")
    rates: dict[str, list[float]] = {n: [] for n in names}
    # in turns, so that a change in the shared machine's load hits every library alike
    for _ in range(args.repeats):
        for name in names:
            sub = argparse.Namespace(**{**vars(args), "repeats": 1})
            rates[name] += time_library(name, sub, device, x, y)
    med = {n: statistics.median(r) for n, r in rates.items()}
    best = {n: max(r) for n, r in rates.items()}
    machine = f"{cpu_name()}, {args.threads} thread(s), torch {torch.__version__}"
    if device.type == "cuda":
        machine = torch.cuda.get_device_name(device) + f", torch {torch.__version__}"
    shape = (f"1 x {args.hidden} Leaky hidden (snnTorch tutorial network)"
             if args.network == "tutorial" else f"2 x {args.hidden} hidden")
    print(f"training throughput, {machine}: inputs {args.inputs}, {shape}, "
          f"{args.classes} out, T = {args.steps}, batch {args.batch}, "
          f"after {args.pretrain} training steps")
    print(f"{'library':14s} {'best':>8s} {'median':>8s} {'x best':>7s} {'x median':>9s}  "
          "all rounds (samples/s)")
    for n in names:
        r_best = best.get("evospike", math.nan) / best[n]
        r_med = med.get("evospike", math.nan) / med[n]
        rounds = ", ".join(f"{r:.0f}" for r in rates[n])
        print(f"{n:14s} {best[n]:8.0f} {med[n]:8.0f} {r_best:7.2f} {r_med:9.2f}  {rounds}")
    if args.network == "tutorial":
        activity = {f"output {k}": v for k, v in args.activity_seen.items()}
        print("output spikes per neuron and step when the timing started: " +
              ", ".join(f"{k} {v:.4f}" for k, v in args.activity_seen.items()))
    else:
        # EvoSpike's products are event-driven where few inputs spike: say how many did
        torch.manual_seed(0)
        model, _ = evospike_model(args)
        with torch.no_grad():
            activity = {k: float(v[0].mean()) for k, v in model.to(device).run(x).items()
                        if k != "readout"}
        print("spikes per neuron and step (EvoSpike, at initialisation): " +
              ", ".join(f"{k} {v:.4f}" for k, v in activity.items()))
    out = {"machine": machine, "device": str(device), "config": vars(args),
           "samples_per_s": rates, "median": med, "best": best, "activity": activity}
    if args.json:
        from evospike.atomic import atomic_path

        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
