"""Spike encoders: statistics, ordering, reconstruction, seeding, argument checks."""

import math

import pytest
import torch

from evospike.datasets.encoders import (
    delta_decode,
    delta_encode,
    latency_encode,
    rate_encode,
    tas_encode,
    tas_probabilities,
)
from evospike.errors import ValidationError


def _within_binomial(count: torch.Tensor, n: int, p: torch.Tensor, z: float = 5.0) -> bool:
    sd = torch.sqrt(n * p * (1 - p)).clamp(min=1e-9)
    return bool(torch.all(torch.abs(count - n * p) <= z * sd + 1e-9))


def test_rate_bernoulli_mean_within_binomial_bounds():
    p = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    spikes = rate_encode(p.expand(200, 6), n_steps=100, seed=1)
    assert spikes.shape == (100, 200, 6) and spikes.dtype == torch.float32
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    count = spikes.sum(dim=(0, 1))
    assert _within_binomial(count, 100 * 200, p)
    assert count[0] == 0 and count[-1] == 100 * 200
    half = rate_encode(torch.full((50,), 0.8), 400, gain=0.5, seed=2).mean()
    assert abs(float(half) - 0.4) < 5 * math.sqrt(0.24 / 20000)


def test_rate_poisson_and_seeding():
    lam = torch.tensor([0.2, 1.5])
    spikes = rate_encode(lam.expand(100, 2), 200, method="poisson", seed=0)
    mean = spikes.mean(dim=(0, 1))
    assert torch.all(torch.abs(mean - lam) < 5 * torch.sqrt(lam / 20000))
    assert spikes.max() > 1  # counts, not clipped to one spike per step
    a = rate_encode(torch.full((10,), 0.5), 20, seed=7)
    assert torch.equal(a, rate_encode(torch.full((10,), 0.5), 20, seed=7))
    assert not torch.equal(a, rate_encode(torch.full((10,), 0.5), 20, seed=8))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(a, rate_encode(torch.full((10,), 0.5), 20, generator=g))


def test_rate_refuses_bad_arguments():
    with pytest.raises(ValidationError, match=r"must lie in \[0, 1\].*1\.5"):
        rate_encode(torch.tensor([0.2, 1.5]), 10)
    with pytest.raises(ValidationError, match="n_steps"):
        rate_encode(torch.tensor([0.2]), 0)
    with pytest.raises(ValidationError, match="method"):
        rate_encode(torch.tensor([0.2]), 5, method="gauss")
    with pytest.raises(ValidationError, match="non-finite"):
        rate_encode(torch.tensor([float("nan")]), 5)


def test_latency_order_and_single_spike():
    x = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.01, 0.0])
    s = latency_encode(x, n_steps=11)
    assert s.shape == (11, 6)
    assert s.sum(0).tolist() == [1, 1, 1, 1, 1, 0]  # zero stays silent
    t = s.argmax(0)[:5]
    assert t.tolist() == [0, 2, 5, 8, 10]
    assert torch.all(t[:-1] < t[1:])  # larger value, earlier spike
    every = latency_encode(x, 11, threshold=-1.0)
    assert every.sum() == 6 and every[10, 5] == 1
    img = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = latency_encode(img, 16)
    assert out.shape == (16, 4, 8, 8) and torch.all(out.sum(0) <= 1)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        latency_encode(torch.tensor([1.2]), 5)


def test_delta_reconstructs_within_threshold():
    t = torch.linspace(0, 4 * math.pi, 400)
    sig = torch.stack([torch.sin(t), 0.3 * torch.cos(3 * t) + 0.1 * t], dim=1)  # [T, 2]
    thr = 0.05
    spikes = delta_encode(sig, thr)
    assert spikes.shape == (400, 2, 2) and torch.all(spikes[0] == 0)
    rec = delta_decode(spikes, thr, sig[0])
    assert torch.all(torch.abs(rec - sig) < thr + 1e-6)
    # a ramp crossing 10 levels gives 10 up spikes, no down spike
    ramp = torch.linspace(0.0, 1.0 + 1e-4, 50)
    s = delta_encode(ramp, 0.1)
    assert s[..., 0].sum() == 10 and s[..., 1].sum() == 0
    # one step that jumps 3 levels holds the count 3
    jump = delta_encode(torch.tensor([0.0, 0.35, 0.0]), 0.1)
    assert jump[1, 0] == 3 and jump[2, 1] == 3


def test_delta_time_dim_for_ecg_batches():
    beats = torch.randn(3, 1, 64, generator=torch.Generator().manual_seed(1)).cumsum(-1) * 0.1
    s = delta_encode(beats, 0.05, time_dim=-1)
    assert s.shape == (64, 3, 1, 2)
    rec = delta_decode(s, 0.05, beats[..., 0])
    assert torch.all(torch.abs(rec - beats.movedim(-1, 0)) < 0.05 + 1e-6)
    with pytest.raises(ValidationError, match="threshold"):
        delta_encode(beats, 0.0)
    with pytest.raises(ValidationError, match="size 2"):
        delta_decode(torch.zeros(5, 3), 0.1, 0.0)


def test_tas_density_monotone_in_salience():
    # five tokens whose embeddings grow in norm
    base = torch.randn(8, generator=torch.Generator().manual_seed(0))
    base = base / base.norm()
    scales = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0])
    emb = scales[:, None] * base[None, :]            # [L=5, D=8]
    p = tas_probabilities(emb, alpha=1.0, tau_window=1.0)
    torch.testing.assert_close(p, torch.sigmoid(scales))
    spikes = tas_encode(emb.expand(400, 5, 8), n_steps=50, alpha=1.0, seed=3)
    assert spikes.shape == (50, 400, 5)
    density = spikes.mean(dim=(0, 1))
    assert torch.all(density[1:] > density[:-1])
    assert _within_binomial(spikes.sum(dim=(0, 1)), 50 * 400, torch.sigmoid(scales))
    # a longer window lowers the density; an offset lets zero salience fall below 0.5
    p_tau = tas_probabilities(emb, alpha=1.0, tau_window=torch.full((5,), 4.0))
    assert torch.all(p_tau[1:] < p[1:])
    assert tas_probabilities(emb, offset=3.0)[0] < 0.05


def test_tas_feature_mode_gradient_and_checks():
    emb = torch.randn(2, 3, 4, requires_grad=True)
    p = tas_probabilities(emb, alpha=2.0, tau_window=torch.tensor([1.0, 2.0, 4.0]),
                          mode="feature")
    assert p.shape == (2, 3, 4)
    torch.testing.assert_close(p, torch.sigmoid(2.0 * emb.abs() /
                                                torch.tensor([1.0, 2.0, 4.0])[:, None]))
    p.sum().backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert tas_encode(emb, 7, mode="feature", seed=0).shape == (7, 2, 3, 4)
    assert torch.equal(tas_encode(emb, 7, seed=1), tas_encode(emb, 7, seed=1))
    with pytest.raises(ValidationError, match="alpha"):
        tas_probabilities(emb, alpha=0.0)
    with pytest.raises(ValidationError, match="tau_window"):
        tas_probabilities(emb, tau_window=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValidationError, match="tau_window"):
        tas_probabilities(emb, tau_window=torch.ones(5))
    with pytest.raises(ValidationError, match=r"\[\.\.\., L, D\]"):
        tas_probabilities(torch.ones(4))
