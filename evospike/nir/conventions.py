"""The conventions a NIR graph is read with. NIR stores ODEs without a time step and without
the choices each tool makes when it discretises them; `Conventions` makes every choice explicit,
and `evospike.nir.load` writes it into ``network.metadata["nir"]``. docs/NIR.md lists the
defaults that match each exporter."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from evospike.errors import ValidationError

#: "euler": forward Euler at dt, as snnTorch and Norse read NIR (snnTorch's exporter writes
#: tau = dt / (1 - beta), so 1 - dt / tau gives its beta back); "exact": the ODE solved exactly
#: over each step with the step's input held constant (zero-order hold)
DISCRETISATIONS = ("euler", "exact")
#: "v_reset": v = v_reset after a spike, as NIR's equations say (and as nir >= 1.0.6 reads a
#: file without v_reset: to 0); "zero": v = 0 whatever v_reset says; "subtract": v -= v_threshold
#: - v_reset in the spike's step; "subtract_after_decay": the same amount subtracted in the next
#: step after the decay (snnTorch's default Leaky/Synaptic, which its exporter does not record)
RESETS = ("v_reset", "zero", "subtract", "subtract_after_decay")
#: how a step's input S enters the state it drives (CubaLIF's I through w_in; LIF's, LI's, IF's
#: and I's v through r): "equation": S held over the step in the NIR equation, discretised like
#: the rest (snnTorch writes w_in = tau_syn / dt, r = tau / dt so that its Euler reading adds S
#: once); "jump": each step's input adds w_in * S to I (r * S to v) after the decay, unscaled
#: (the reading of writers that store w_in = 1 for "one spike adds one", as Norse); "dirac": the
#: literal reading of the ODE with each spike a unit Dirac impulse: I jumps by w_in * S / tau_syn
#: (v by r * S / tau; by r * S for IF and I) after the decay (EvoSpike's LIF is written so)
W_IN = ("equation", "jump", "dirac")
#: how the discretisation coefficients are computed: "stored": in the floating-point precision
#: the file stores the parameters in (float32 for snnTorch), as snnTorch's own reader does, so that
#: 1 - dt / tau returns the exporter's beta exactly; "float64": in float64
ARITHMETIC = ("stored", "float64")
#: when a neuron fires: "above": v > v_threshold, as NIR's equations (and snnTorch, Norse)
#: say; "at_or_above": v >= v_threshold (SpikingJelly's heaviside), read exactly as
#: v > the next float64 below v_threshold
SPIKE_AT = ("above", "at_or_above")


@dataclass(frozen=True)
class Conventions:
    """How `evospike.nir.load` reads a graph. Defaults: snnTorch's exporter with its neurons
    built with ``reset_mechanism="zero", reset_delay=False`` (what its exporter writes and its
    own importer reads back).

    ``recurrent_delay_steps``: the delay, in steps, of an edge that closes a cycle, beyond any
    NIR ``Delay`` node on it (snnTorch's RLeaky: its spikes of step t-1 reach it in step t). A
    cycle's recurrent edge carries nothing (zero spikes) into the first step.

    ``max_synapses``: the largest projection a convolution or pooling layer may unroll into
    (its weight sharing is unrolled into one synapse per kernel tap); a larger one is refused
    by name."""

    discretisation: str = "euler"
    reset: str = "v_reset"
    w_in: str = "equation"
    recurrent_delay_steps: int = 1
    arithmetic: str = "stored"
    max_synapses: int = 20_000_000
    spike_at: str = "above"

    def __post_init__(self) -> None:
        for field_name, allowed in (("discretisation", DISCRETISATIONS), ("reset", RESETS),
                                    ("w_in", W_IN), ("arithmetic", ARITHMETIC),
                                    ("spike_at", SPIKE_AT)):
            value = getattr(self, field_name)
            if not isinstance(value, str) or value not in allowed:
                raise ValidationError("NIR import", "conventions", field_name,
                                      f"must be one of {allowed}", value)
        for field_name, low in (("recurrent_delay_steps", 0), ("max_synapses", 1)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValidationError("NIR import", "conventions", field_name,
                                      f"must be an integer >= {low}", value)

    def as_dict(self) -> dict:
        return asdict(self)


#: the exporters whose conventions docs/NIR.md tabulates, by the name `Conventions.preset`
#: takes: each a dict of `Conventions` fields
PRESETS: dict[str, dict] = {
    # snnTorch Leaky/Synaptic/RLeaky with reset_mechanism="zero", reset_delay=False
    "snntorch": {},
    # snnTorch's default neurons (reset_mechanism="subtract", reset_delay=True): the exporter
    # writes v_reset = 0 all the same, so this must be asked for
    "snntorch-subtract": {"reset": "subtract_after_decay"},
    # SpikingJelly's nir_exchange: LIF with tau = tau_sj * dt (its dt, 0.1 ms by default), r = 1,
    # read with Euler; its neurons fire at v >= threshold
    "spikingjelly": {"spike_at": "at_or_above"},
}


def conventions_for(preset: str | None = None, **options) -> Conventions:
    """`Conventions` from a preset name (`PRESETS`) updated with ``options``."""
    if preset is not None and preset not in PRESETS:
        raise ValidationError("NIR import", "conventions", "preset",
                              f"must be one of {tuple(PRESETS)}", preset)
    unknown = sorted(set(options) - set(Conventions.__dataclass_fields__))
    if unknown:
        raise ValidationError("NIR import", "conventions", "option",
                              f"is not a convention (known: "
                              f"{tuple(Conventions.__dataclass_fields__)})", unknown[0])
    return Conventions(**{**PRESETS.get(preset or "snntorch", {}), **options})
