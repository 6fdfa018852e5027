"""Terminal-attractor dynamic pruning of a spiking network trained on handwritten digits.

A one-hidden-layer spiking network (64 pixel currents -> 64 leaky integrate-and-fire neurons ->
10 readout units, 10 time steps, fast-sigmoid surrogate gradient) learns scikit-learn's 8x8
digits (1797 images, bundled, no download) with full-batch AdamW. It is trained twice from the
same seed: once plainly, once wrapped in `TerminalAttractorOptimizer` (R_target = 30 %, the
attractor step on). The script prints both test accuracies and the final pruned fraction and
writes a figure of R(t) against the pruned fraction reached, and of both loss curves.

    python examples/pruning_digits.py                     # SNN, 600 steps (about a minute)
    python examples/pruning_digits.py --model mlp         # a ReLU MLP instead (seconds)
    python examples/pruning_digits.py --out pruning.png --steps 800 --seed 1
    python examples/pruning_digits.py --sweep             # table: R_target x attractor on/off
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from evospike.atomic import atomic_path
from evospike.pruning_torch import TerminalAttractorOptimizer, weight_parameters


def load_data(seed: int = 0):
    """sklearn digits scaled to [0, 1], split 75/25 (stratified, seeded), as tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.25, random_state=seed,
                                          stratify=y)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_x(xtr), torch.tensor(ytr), as_x(xte), torch.tensor(yte)


class SpikeFn(torch.autograd.Function):
    """Heaviside spike with the fast-sigmoid surrogate derivative 1 / (1 + slope |v|)^2
    (Zenke & Ganguli 2018); v is the membrane potential minus the threshold."""

    slope = 10.0

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (v,) = ctx.saved_tensors
        return grad / (1.0 + SpikeFn.slope * v.abs()) ** 2


class SpikingNet(torch.nn.Module):
    """64 -> ``hidden`` LIF neurons -> 10 readout units. The image is a constant input current
    for ``steps`` time steps; membrane decay ``decay`` per step (tau = -1 / ln(decay) steps),
    threshold 1, reset by subtraction; the logits are the readout of the mean spike count."""

    def __init__(self, hidden: int = 64, steps: int = 10, decay: float = 0.9):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)
        self.steps = steps
        self.decay = decay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.fc1(x)
        v = torch.zeros_like(current)
        count = torch.zeros_like(current)
        for _ in range(self.steps):
            v = self.decay * v + current
            s = SpikeFn.apply(v - 1.0)
            v = v - s  # reset by subtraction keeps the residual above threshold
            count = count + s
        return self.fc2(count / self.steps)


def make_model(kind: str, hidden: int = 64) -> torch.nn.Module:
    if kind == "snn":
        return SpikingNet(hidden)
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, 10))
    raise ValueError(f"model must be 'snn' or 'mlp' (got {kind!r})")


def train(kind: str, prune: bool, steps: int = 600, seed: int = 0, lr: float = 1e-2,
          progress: bool = True, **pruning) -> dict:
    """Train one network full-batch with AdamW, with or without pruning, from ``seed``.

    Returns the test accuracy, the per-step losses, the model and the wrapper (its ``history``
    holds R(t) and the pruned fraction of every step). ``pruning`` overrides the wrapper's
    constants; without ``prune`` the wrapper runs with ``r_target=0`` and ``attractor_lr=0``,
    i.e. it is plain AdamW."""
    from tqdm import tqdm

    xtr, ytr, xte, yte = load_data(seed)
    torch.manual_seed(seed)
    model = make_model(kind)
    base = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    settings = {"r_target": 0.3, "warmup_steps": 100, "tau_steps": 60}
    settings.update(pruning)
    if not prune:
        settings.update(r_target=0.0, attractor_lr=0.0)
    opt = TerminalAttractorOptimizer(base, weight_parameters(model), **settings)
    losses = []
    label = f"{kind} {'pruned' if prune else 'dense'}"
    for _ in tqdm(range(steps), desc=label, disable=not progress, leave=False):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xtr), ytr)
        loss.backward()
        opt.step(loss)
        losses.append(loss.item())
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return {"accuracy": acc, "losses": np.array(losses), "model": model, "optimizer": opt}


def plot(dense: dict, pruned: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opt = pruned["optimizer"]
    steps = opt.history_array("step")
    fig, (ax_r, ax_l) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_r.plot(steps, opt.history_array("rate"), color="k", lw=1.5, label="R(t) (schedule)")
    ax_r.plot(steps, opt.history_array("pruned_fraction"), color="C1", lw=1.0, ls="--",
              label="pruned fraction reached")
    ax_r.axhline(opt.params["r_target"], color="0.6", lw=0.8, ls=":", label="R_target")
    ax_r.set_ylabel("fraction of weights")
    ax_r.legend(loc="lower right")
    ax_l.semilogy(np.arange(len(dense["losses"])), dense["losses"], color="C0",
                  label=f"dense (test accuracy {dense['accuracy']:.3f})")
    ax_l.semilogy(np.arange(len(pruned["losses"])), pruned["losses"], color="C1",
                  label=f"pruned (test accuracy {pruned['accuracy']:.3f})")
    ax_l.set_ylabel("training loss (cross-entropy)")
    ax_l.set_xlabel("step")
    ax_l.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


SWEEP_ROWS = (("R_target 0.3", {"r_target": 0.3}), ("R_target 0.6", {"r_target": 0.6}),
              ("R_target 0.9", {"r_target": 0.9}),
              ("R_target 0.9, lambda 0", {"r_target": 0.9, "lambda_stability": 0.0}))


def sweep(kind: str, steps: int, seeds: tuple[int, ...] = (0, 1, 2),
          rows: tuple[tuple[str, dict], ...] = SWEEP_ROWS) -> str:
    """Test accuracy (mean and range over ``seeds``) of the dense network and of each pruning
    setting in ``rows`` with and without the attractor term; a Markdown table."""
    def cell(accs: list[float]) -> str:
        a = 100 * np.array(accs)
        return f"{a.mean():.1f} ({a.min():.1f}-{a.max():.1f})"

    dense = [train(kind, False, steps, s, progress=False)["accuracy"] for s in seeds]
    lines = [f"| {kind}, {steps} steps | pruned fraction (with / without) | accuracy % with "
             "attractor | accuracy % without |", "|---|---|---|---|",
             f"| dense | 0 | {cell(dense)} | {cell(dense)} |"]
    for label, settings in rows:
        with_ta, without, fr_with, fr_without = [], [], [], []
        for s in seeds:
            run = train(kind, True, steps, s, progress=False, **settings)
            with_ta.append(run["accuracy"])
            fr_with.append(run["optimizer"].pruned_fraction)
            run = train(kind, True, steps, s, progress=False, **settings, attractor_lr=0.0)
            without.append(run["accuracy"])
            fr_without.append(run["optimizer"].pruned_fraction)
        lines.append(f"| {label} | {np.mean(fr_with):.3f} / {np.mean(fr_without):.3f} | "
                     f"{cell(with_ta)} | {cell(without)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("snn", "mlp"), default="snn")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--r-target", type=float, default=0.3)
    parser.add_argument("--out", default="pruning_digits.png")
    parser.add_argument("--sweep", action="store_true",
                        help="print a table over the settings of SWEEP_ROWS and seeds 0-2 "
                             "instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.sweep:
        print(sweep(args.model, args.steps))
        return {}
    dense = train(args.model, False, args.steps, args.seed)
    pruned = train(args.model, True, args.steps, args.seed, r_target=args.r_target)
    opt = pruned["optimizer"]
    print(f"{args.model}: test accuracy dense {dense['accuracy']:.4f}, "
          f"pruned {pruned['accuracy']:.4f} "
          f"(difference {100 * (pruned['accuracy'] - dense['accuracy']):+.1f} points)")
    print(f"final pruned fraction {opt.pruned_fraction:.4f} (R(t) at the end "
          f"{opt.rate:.4f}, R_target {opt.params['r_target']}), "
          f"regrowths {int(opt.history_array('n_regrown').sum())}")
    plot(dense, pruned, args.out)
    print(f"wrote {args.out}")
    return {"dense": dense, "pruned": pruned}


if __name__ == "__main__":
    main()
