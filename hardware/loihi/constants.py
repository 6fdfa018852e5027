"""Every number of Loihi 2's integer arithmetic that EvoSpike models, in one place.

The figures are those of Lava 0.10's bit-accurate process models, the reference for the chip's
behaviour (``lava/proc/lif/models.py`` ``PyLifModelBitAcc``, ``lava/proc/sparse/models.py``
``PySparseModelBitAcc`` / ``PyDelaySparseModelBitAcc``, ``lava/magma/core/learning/``
``constants.py`` and ``learning_rule_applier.py``). The quantizer's Loihi 2 profile
(`evospike.fixed_point.LOIHI2`), the chip's limits (`evospike.hardware.loihi2`), the torch
backend's fixed-point engine, the Lava backend's compiler and its worker all take them from here.

Standard library only, on purpose: the Lava worker runs under another interpreter without
EvoSpike importable and loads this one file by its path (``backends/lava/worker.py``).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- the neuron (CUBA LIF)
#: u and v are signed 24-bit integers
STATE_BITS = 24
#: du and dv are unsigned 12-bit; a decay multiplies by (2**12 - d) and shifts right by 12
DECAY_BITS = 12
DECAY_UNITY = 2 ** DECAY_BITS
#: Lava's u decays by du + 1 (its ``ds_offset``), v by dv + 0 (``dm_offset``)
DU_OFFSET = 1
DV_OFFSET = 0
#: the synaptic input is shifted left by 6 before it is added to u (``act_shift``)
ACT_SHIFT = 6
#: the threshold is ``vth << 6`` (``vth_shift``); vth is unsigned 17-bit
VTH_SHIFT = 6
VTH_BITS = 17
VTH_MAX = 2 ** VTH_BITS - 1
#: the bias is ``bias_mant << bias_exp``: a signed 13-bit mantissa, exponent 0..7
BIAS_MANT_BITS = 13
BIAS_MANT_MIN = -(2 ** (BIAS_MANT_BITS - 1))
BIAS_MANT_MAX = 2 ** (BIAS_MANT_BITS - 1) - 1
BIAS_EXP_MIN = 0
BIAS_EXP_MAX = 7

# --------------------------------------------------------------------------- synapses
#: weight mantissas of 8 bits (one sign per connection in Lava's sign modes), shared exponent
WEIGHT_BITS = 8
WEIGHT_EXP_MIN = -8
WEIGHT_EXP_MAX = 7
#: DelaySparse accepts Lava delays 0..63 ("Loihi 2 has a maximum of 6 bits for delays"); with
#: the connection's own step of latency that is 1..64 steps of the IR
DELAY_BITS = 6
MAX_LAVA_DELAY = 2 ** DELAY_BITS - 1
MAX_DELAY_STEPS = MAX_LAVA_DELAY + 1

# --------------------------------------------------------------------------- learning engine
#: traces are unsigned 7-bit (saturating at 127)
TRACE_BITS = 7
TRACE_MAX = 2 ** TRACE_BITS - 1
#: bits of each factor of a product as the engine saturates it (x0, y0, u are 1-bit gates)
FACTOR_WIDTH = {"x1": TRACE_BITS, "y1": TRACE_BITS, "y2": TRACE_BITS, "y3": TRACE_BITS,
                "t": 9}
#: the synaptic tag t is 9-bit signed, stored in -257..255 as Lava clips it
TAG_MIN = -257
TAG_MAX = 255
#: a product's scaling mantissa: 4 bits signed (magnitudes 1..7), exponent -7..8
MANT_WIDTH = 4
LEARNING_MANT_MAX = 7
LEARNING_EXP_MIN = -7
LEARNING_EXP_MAX = 8
#: the synaptic accumulator: 16-bit signed (W_ACCUMULATOR_S), saturating at these bounds
ACC_WIDTH = 15
ACC_MAX = 2 ** ACC_WIDTH - 1
ACC_MIN = -(2 ** ACC_WIDTH) - 1
#: the weight sits 7 bits up in the accumulator (W_ACCUMULATOR_S - W_WEIGHTS_S) and is rounded
#: stochastically to a multiple of 2**7 (W_ACCUMULATOR_U - W_WEIGHTS_U)
ACC_SHIFT = 7
ROUND_UNIT = 2 ** ACC_SHIFT
#: 8-bit weight mantissa ceiling of the excitatory sign mode
WEIGHT_MANT_MAX = 2 ** WEIGHT_BITS - 1
#: the right shift the engine applies to a t * y * mantissa product (9 + 7 + 4 bits into a
#: 15-bit accumulator)
PRODUCT_SHIFT = FACTOR_WIDTH["t"] + TRACE_BITS + MANT_WIDTH - ACC_WIDTH
#: trace time constants are whole steps 1..255
MAX_TRACE_TAU = 255
#: trace units a spike adds: Lava's default for STDPLoihi, which EvoSpike's plans keep (16 of
#: the 127 leave room for about 8 spikes before the trace saturates)
TRACE_IMPULSE = 16
#: Loihi3F's post-trace time constant: a connection decays what the neuron sent by it
THREE_FACTOR_Y_TAU = 65535
#: the seed of Lava's synaptic-variable random generator (``ConnVarRandom``'s default)
CONN_VAR_SEED = 2
#: the decimation exponent k of ``u_k`` is parsed from one digit
MAX_DECIMATION = 9
#: the reward a learning neuron sends as y2 / y3 is a 7-bit trace
REWARD_MAX = TRACE_MAX
#: EvoSpike's three-factor neuron keeps its post trace with 6 fractional bits (its decay then
#: rounds like the neuron state's); sent as ``min((s + 32) >> 6, 127)``
TRACE_FRAC_BITS = 6

__all__ = [name for name in dir() if name.isupper()]
