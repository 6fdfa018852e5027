"""snnTorch's ``Leaky`` and ``Synaptic`` reproduced spike for spike by EvoSpike's LIF.

The mapping (docs/PORTING.md): v_rest = v_reset = 0, v_thresh = snnTorch's threshold, dt = 1 ms,
beta = exp(-dt / tau_m) (the propagator's P_vv, passed to snnTorch as a float64 tensor so both
multiply by the same number). snnTorch's per-step input x[t] is added undecayed: that is
EvoSpike's channel ``v`` (an event's weight is added to v after the step's decay). x[t] is made
of spikes of a source with dyadic weights, so any summation order gives the same float; a spike
of the source at step t-1 arrives (delay 1 step) in step t.

``Synaptic`` (syn = alpha syn + x; mem = beta mem + syn) is *not* channel ``exc`` alone: our exact
propagator adds P_ve * i_exc[t-1] to v, snnTorch adds syn[t] = alpha syn[t-1] + x[t] with
coefficient 1. Each event is therefore sent twice: weight w on channel ``v`` (the undecayed x[t])
and weight c * w on ``exc`` with c = alpha / P_ve, so that i_exc = c * syn and
P_ve * i_exc[t-1] = alpha * syn[t-1]; alpha = exp(-dt / tau_syn_exc) is the propagator's P_ee.

Reset conventions (reset_delay is snnTorch's option; its default is True):
  subtract, reset_delay=True   -> reset="subtract_after_decay" (recorded v == mem exactly)
  subtract, reset_delay=False  -> reset="subtract" (while mem after each reset is at most the
                                  threshold; else snnTorch tests the next step against twice
                                  the threshold; asserted on the input used)
  zero,     reset_delay=False  -> reset="value" (v == mem)
  zero,     reset_delay=True   -> reset="value"; snnTorch records the spike step's mem before
                                  the reset (ours records 0). Synaptic additionally holds mem at
                                  0 through the step after the spike: tau_refrac = 2 dt.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

snntorch = pytest.importorskip("snntorch")

from evospike import LIF, FromArrays, Network  # noqa: E402
from evospike.dynamics import one_step  # noqa: E402
from evospike.errors import EvoSpikeError, ValidationError  # noqa: E402
from tests.conftest import run_torch  # noqa: E402

STEPS = 500
DT = 1.0
THRESH = 1.25
TAU_M, TAU_SYN = 10.0, 5.0
#: dyadic weights: every sum of them is exact in float64; the positive ones add up to THRESH, so
#: mem stays below 2 * THRESH and snnTorch's reset_delay=False never carries a reset over
WEIGHTS = np.array([0.5, 0.25, 0.375, -0.25, 0.125, -0.5])


def _raster(seed: int) -> np.ndarray:
    """(STEPS, inputs) source spikes; none in the last step (it would arrive after the run)."""
    r = np.random.default_rng(seed).random((STEPS, WEIGHTS.size)) < 0.35
    r[-1] = False
    return r


#: input scale per model: Synaptic's current integrates its input about 1 / (1 - alpha) times
SCALE = {"Leaky": 1.0, "Synaptic": 0.25}


def _snn_input(raster: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """x[t]: what arrives in step t, the weights of the spikes sent in step t-1."""
    x = np.zeros(STEPS)
    x[1:] = raster[:-1].astype(float) @ (scale * WEIGHTS)
    return x


def _model(reset: str, tau_refrac_ms: float = 0.0) -> LIF:
    return LIF(tau_m_ms=TAU_M, v_rest_mV=0.0, v_reset_mV=0.0, v_thresh_mV=THRESH,
               tau_syn_exc_ms=TAU_SYN, tau_syn_inh_ms=TAU_SYN, tau_refrac_ms=tau_refrac_ms,
               reset=reset)


def _propagator(model: LIF) -> tuple[float, float, float]:
    """beta = P_vv, alpha = P_ee and P_ve of the exact step at DT."""
    P = one_step(model, "cell", DT).P[..., 0]
    return float(P[0, 0]), float(P[1, 1]), float(P[0, 1])


def _evospike(model: LIF, raster: np.ndarray, synaptic: bool, exc_gain: float = 0.0,
              engine: str = "auto", scale: float = 1.0):
    net = Network("snntorch_port", dt_ms=DT)
    steps, neurons = np.nonzero(raster)
    src = net.spike_source("x", WEIGHTS.size, neurons, steps * DT)
    cell = net.population("cell", 1, model)
    pre = np.arange(WEIGHTS.size)
    post = np.zeros(WEIGHTS.size, dtype=int)
    net.connect(src, cell, FromArrays(pre, post), weight=scale * WEIGHTS, delay_ms=DT, target="v",
                name="x_v")
    if synaptic:
        net.connect(src, cell, FromArrays(pre, post), weight=exc_gain * scale * WEIGHTS,
                    delay_ms=DT,
                    target="exc", name="x_exc")
    net.record_spikes(cell)
    net.record_state(cell, "v")
    net.record_state(cell, "i_exc")
    res = run_torch(net, STEPS * DT, precision="float64", engine=engine)
    spikes = np.zeros(STEPS, dtype=bool)
    spikes[res.spike_steps("cell")[0]] = True
    return (spikes, res.traces["cell.v"].values[0][:, 0], res.traces["cell.i_exc"].values[0][:, 0],
            res)


def _snntorch(kind: str, mechanism: str, delay: bool, beta: float, alpha: float,
              x: np.ndarray):
    f64 = torch.float64
    args = dict(beta=torch.tensor(beta, dtype=f64), threshold=torch.tensor(THRESH, dtype=f64),
                reset_mechanism=mechanism, reset_delay=delay)
    if kind == "Leaky":
        cell = snntorch.Leaky(**args)
        mem = torch.zeros(1, dtype=f64)
        syn = None
    else:
        cell = snntorch.Synaptic(alpha=torch.tensor(alpha, dtype=f64), **args)
        syn, mem = torch.zeros(1, dtype=f64), torch.zeros(1, dtype=f64)
    spk_out, mem_out, syn_out = np.zeros(STEPS, dtype=bool), np.zeros(STEPS), np.zeros(STEPS)
    with torch.no_grad():
        for t in range(STEPS):
            inp = torch.tensor([x[t]], dtype=f64)
            if kind == "Leaky":
                spk, mem = cell(inp, mem)
            else:
                spk, syn, mem = cell(inp, syn, mem)
                syn_out[t] = float(syn[0])
            spk_out[t] = bool(spk[0] > 0)
            mem_out[t] = float(mem[0])
    return spk_out, mem_out, syn_out


#: (snnTorch reset_mechanism, reset_delay) -> (EvoSpike reset, whether snnTorch's recorded
#: membrane at a spike step is still the pre-reset value while ours is 0)
CONVENTIONS = {
    ("subtract", True): ("subtract_after_decay", False),
    ("subtract", False): ("subtract", False),
    ("zero", True): ("value", True),
    ("zero", False): ("value", False),
}


@pytest.mark.parametrize("kind", ["Leaky", "Synaptic"])
@pytest.mark.parametrize(("mechanism", "delay"), list(CONVENTIONS))
@pytest.mark.parametrize("seed", [0, 1])
def test_snntorch_reproduced_spike_for_spike(kind, mechanism, delay, seed):
    reset, pre_reset_recorded = CONVENTIONS[(mechanism, delay)]
    synaptic = kind == "Synaptic"
    # Synaptic's zero reset with reset_delay holds mem at 0 through the step after the spike
    refrac = 2 * DT if (synaptic and mechanism == "zero" and delay) else 0.0
    model = _model(reset, refrac)
    beta, alpha, p_ve = _propagator(model)
    assert beta == pytest.approx(np.exp(-DT / TAU_M), rel=1e-14)
    assert alpha == pytest.approx(np.exp(-DT / TAU_SYN), rel=1e-14)
    gain = alpha / p_ve
    raster = _raster(seed)
    x = _snn_input(raster, SCALE[kind])
    s_ref, mem_ref, syn_ref = _snntorch(kind, mechanism, delay, beta, alpha, x)
    spikes, v, i_exc, _ = _evospike(model, raster, synaptic, gain, scale=SCALE[kind])
    assert 20 <= s_ref.sum() <= STEPS // 2  # the comparison exercises many resets
    if mechanism == "subtract" and not delay:
        # the precondition of the mapping: no reset left pending (mem after reset <= THRESH)
        assert np.all(mem_ref <= THRESH)
    np.testing.assert_array_equal(spikes, s_ref)
    expected_v = np.where(s_ref, 0.0, mem_ref) if pre_reset_recorded else mem_ref
    np.testing.assert_allclose(v, expected_v, rtol=0, atol=1e-9)
    if synaptic:
        np.testing.assert_allclose(i_exc, gain * syn_ref, rtol=0, atol=1e-9)


def test_leaky_subtract_after_decay_is_bit_exact():
    """For Leaky every operation of both sides is the same float operation: equal, not close."""
    model = _model("subtract_after_decay")
    beta = _propagator(model)[0]
    raster = _raster(3)
    s_ref, mem_ref, _ = _snntorch("Leaky", "subtract", True, beta, 0.0, _snn_input(raster))
    spikes, v, _, _ = _evospike(model, raster, synaptic=False)
    np.testing.assert_array_equal(spikes, s_ref)
    np.testing.assert_array_equal(v, mem_ref)


def test_the_two_subtract_conventions_differ_by_one_minus_beta_theta():
    """One spike, then no input: after the next decay the two conventions differ by
    (1 - beta) * theta, the difference the issue names."""
    raster = np.zeros((STEPS, WEIGHTS.size), dtype=bool)
    raster[0, :3] = True  # 1.125 arrives in step 1: below threshold
    raster[1, :3] = True  # step 2: beta * 1.125 + 1.125 > 1.25: one spike
    out = {}
    for reset in ("subtract", "subtract_after_decay"):
        spikes, v, _, _ = _evospike(_model(reset), raster, synaptic=False)
        assert np.nonzero(spikes)[0].tolist() == [2]
        out[reset] = v
    beta = _propagator(_model("subtract"))[0]
    np.testing.assert_allclose(out["subtract_after_decay"][3] - out["subtract"][3],
                               -(1.0 - beta) * THRESH, rtol=0, atol=1e-12)


def test_native_engine_refuses_the_mode_by_name_and_auto_falls_back():
    raster = _raster(4)
    with pytest.raises(EvoSpikeError, match="'cell'.*subtract_after_decay"):
        _evospike(_model("subtract_after_decay"), raster, synaptic=False, engine="native")
    *_, res = _evospike(_model("subtract_after_decay"), raster, synaptic=False)
    assert "subtract_after_decay" in res.meta["engine_note"]


def test_refractory_period_is_refused_with_the_deferred_reset():
    with pytest.raises(ValidationError, match="tau_refrac_ms.*subtract_after_decay"):
        _model("subtract_after_decay", tau_refrac_ms=2.0)


def test_brian2_fixed_point_lava_and_training_refuse_the_mode_by_name():
    from evospike.backends.brian2.compiler import refusals as brian2_refusals
    from evospike.backends.lava.compiler import refusals as lava_refusals
    from evospike.errors import UnsupportedError
    from evospike.fixed_point import quantize
    from evospike.training.neuron import NeuronSpec

    net = Network("deferred", dt_ms=DT)
    net.population("cell", 2, _model("subtract_after_decay"))
    for reasons in (brian2_refusals(net), lava_refusals(net)):
        assert any("'cell'" in r and "subtract_after_decay" in r for r in reasons), reasons
    with pytest.raises(UnsupportedError, match="subtract_after_decay"):
        quantize(net)
    with pytest.raises(ValidationError, match="NeuronSpec.*reset"):
        NeuronSpec(reset="subtract_after_decay")


def test_the_reset_mode_survives_a_save_and_load(tmp_path):
    net = Network("deferred", dt_ms=DT)
    net.population("cell", 2, _model("subtract_after_decay"))
    net.save(tmp_path / "net.h5")
    assert Network.load(tmp_path / "net.h5").populations["cell"].model.reset == (
        "subtract_after_decay")
