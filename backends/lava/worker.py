"""The Lava worker: runs one compiled EvoSpike network in Lava and writes what it recorded.

Runs under the Lava interpreter (Python 3.10, lava-nc 0.10, NumPy < 2), never inside the
EvoSpike process: Lava's runtime forks, and lava-nc does not import on newer Pythons. It needs
only NumPy, SciPy, h5py and lava; it imports nothing from EvoSpike.

    python worker.py JOB.h5 OUT.h5

``JOB.h5`` (format ``evospike-lava-job``, written by ``evospike.backends.lava.compiler``)::

    /                       attrs: format, version, select_tag, n_steps, chunk_steps, n_trials
    /populations/<name>     attrs: size, process ("LIF" | "LIFRefractory"), refractory_period,
                            du, dv, vth, component; datasets bias_mant (n,), bias_exp (n,);
                            a three-factor post-synaptic population also attrs three_factor,
                            trace_decay, trace_impulse and dataset reward (n_steps,)
    /connections/<name>     attrs: pre, post, n_pre, n_post, process ("Sparse" | "DelaySparse"),
                            weight_exp, num_weight_bits, component;
                            datasets post (nnz,), pre (nnz,), weights (nnz,), delays (nnz,);
                            a learning one also attrs learning, dw, x1_tau, x1_impulse, y1_tau,
                            y1_impulse, rng_seed (and three_factor, dt for a Loihi3F rule)
    /sources/<name>         attrs: size, component
    /traces/<monitor>       attrs: target, variable, every_steps; dataset neurons (m,)
    /spike_monitors         attr names: populations whose spikes are recorded
    /trials/<k>/initial/<population>   datasets u (n,), v (n,)
    /trials/<k>/inputs/<source>        datasets step (int64), neuron (int64)

Delays here are Lava's: a connection of delay 0 delivers in the step after the spike.

``OUT.h5`` (written to a temporary name, then renamed)::

    /                       attrs: format, steps_done, complete, lava_version, numpy_version,
                            wall_time_s, build_time_s
    /trials/<k>/spikes/<population>   datasets step (int64), neuron (int64)
    /trials/<k>/traces/<monitor>      dataset values (samples, m)

Progress goes to stdout as ``progress <steps done> <steps total>`` lines. SIGTERM makes the
worker finish the chunk it is running, write what it recorded (``complete = 0``) and exit.

What is recorded lands, chunk by chunk, in ``OUT.h5.recorded/`` (one folder per trial and
component, ``.npy`` files each renamed into place when complete) and ``manifest.json`` there
(rewritten atomically after every chunk) says which files belong to which population or
monitor and how many steps each component has run. A worker killed outright (SIGKILL, out of
memory) writes no ``OUT.h5``; the host reads that folder instead and keeps every complete
chunk (``evospike.backends.lava.runner.read_partial``).

Python warnings go to stderr as one line each, ``<file>:<line>: <Category>: <message>``,
without the source line, so the host can relay them as clean lines.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import warnings

import h5py
import numpy as np

STOP = {"requested": False}
JOB_FORMAT = "evospike-lava-job"
OUT_FORMAT = "evospike-lava-output"
PARTIAL_FORMAT = "evospike-lava-partial"


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
    # the host parses this line (runner.parse_warning); a message spread over several lines
    # or followed by its source line would reach the console as fragments
    text = " ".join(str(message).split())
    return f"{filename}:{lineno}: {category.__name__}: {text}\n"


class Manifest:
    """``manifest.json`` in the recording folder: for each (trial, component) started, the
    recorder files of its populations and monitors and the steps it has run. Rewritten
    atomically, so the host always reads a complete one, even after a SIGKILL."""

    def __init__(self, workdir: str, n_steps: int, chunk: int, n_trials: int,
                 n_components: int):
        self.path = os.path.join(workdir, "manifest.json")
        self.data = {"format": PARTIAL_FORMAT, "n_steps": n_steps, "chunk": chunk,
                     "n_trials": n_trials, "components_per_trial": n_components,
                     "entries": []}

    def start(self, trial: int, folder: str, comp) -> None:
        self.data["entries"].append({
            "trial": trial, "folder": folder, "done": 0,
            "spikes": {n: os.path.basename(p) for n, p in comp.spike_paths.items()},
            "traces": {n: os.path.basename(p) for n, p in comp.trace_paths.items()}})
        self._write()

    def advance(self, n: int) -> None:
        self.data["entries"][-1]["done"] += n
        self._write()

    def _write(self) -> None:
        import json

        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


def _on_term(signum, frame):  # noqa: ARG001 - signal handler signature
    STOP["requested"] = True


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sparse(post, pre, values, shape):
    from scipy.sparse import csr_matrix

    return csr_matrix((values, (post, pre)), shape=shape)


def io_processes() -> dict:
    """EvoSpike's own I/O processes for Lava: a spike source that plays pre-drawn events and
    recorders that append what they see to files.

    Lava 0.10 moves a Var between the runtime and this process one element per message
    (``Var.get``/``Var.set``), so reading a (neurons x steps) sink buffer of Lava's
    ``io.sink.RingBuffer`` back costs minutes for a network of thousands of neurons. These
    processes do the same as ``io.source.RingBuffer``, ``io.sink.RingBuffer`` and
    ``io.sink.Read`` (send one vector per step; receive one; read a Var through a RefPort after
    the step), but exchange their data with the worker through files. They touch no neuron or
    synapse: the dynamics are Lava's own process models."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class EventSource(AbstractProcess):
        """Sends the spikes ``neurons[k]`` at steps ``steps[k]`` (0-based; Lava's time step
        t sends step t - 1), sorted by step."""

        def __init__(self, *, shape, steps, neurons, name=None):
            super().__init__(shape=shape, steps=steps, neurons=neurons, name=name)
            self.s_out = OutPort(shape=shape)

    class SpikeRecorder(AbstractProcess):
        """Receives a spike vector each step; every ``flush_every`` steps writes the steps
        and neurons received since the last write to ``path.<n>.npy``."""

        def __init__(self, *, shape, path, flush_every, n_steps):
            super().__init__(shape=shape, path=path, flush_every=flush_every,
                             n_steps=n_steps)
            self.a_in = InPort(shape=shape)

    class StateRecorder(AbstractProcess):
        """Reads a Var after every ``every``-th step (steps 0, every, ...) and writes the
        samples to ``path.<n>.npy`` every ``flush_every`` steps."""

        def __init__(self, *, var, every, path, flush_every, n_steps):
            super().__init__(every=every, path=path, flush_every=flush_every,
                             n_steps=n_steps)
            self.state = RefPort(var.shape)
            self.state.connect_var(var)

    class _Flushing:
        def _setup(self, proc_params):
            self.path = proc_params["path"]
            self.flush_every = int(proc_params["flush_every"])
            self.n_steps = int(proc_params["n_steps"])
            self.parts: list = []
            self.files = 0

        def _flush_due(self) -> bool:
            t = self.time_step
            return t % self.flush_every == 0 or t == self.n_steps

        def _flush(self, data) -> None:
            tmp = f"{self.path}.{self.files}.tmp.npy"
            np.save(tmp, data)
            os.replace(tmp, f"{self.path}.{self.files}.npy")
            self.files += 1

    class _PySource(PyLoihiProcessModel):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.steps = np.asarray(proc_params["steps"], dtype=np.int64)
            self.neurons = np.asarray(proc_params["neurons"], dtype=np.int64)
            self.size = int(np.prod(proc_params["shape"]))

        def run_spk(self) -> None:
            step = self.time_step - 1
            lo, hi = np.searchsorted(self.steps, [step, step + 1])
            vec = np.zeros(self.size, dtype=self.dtype)
            vec[self.neurons[lo:hi]] = 1
            self.s_out.send(vec)

    @implements(proc=EventSource, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PySourceFloat(_PySource):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        dtype = np.float64

    @implements(proc=EventSource, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PySourceFixed(_PySource):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
        dtype = np.int32

    class _PySpikes(_Flushing, PyLoihiProcessModel):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self._setup(proc_params)

        def run_spk(self) -> None:
            data = self.a_in.recv()
            neurons = np.nonzero(data)[0]
            if neurons.size:
                self.parts.append(np.stack([np.full(neurons.size, self.time_step - 1),
                                            neurons]))
            if self._flush_due():
                self._flush(np.concatenate(self.parts, axis=1) if self.parts
                            else np.zeros((2, 0), dtype=np.int64))
                self.parts = []

    @implements(proc=SpikeRecorder, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PySpikesFloat(_PySpikes):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    @implements(proc=SpikeRecorder, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PySpikesFixed(_PySpikes):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    class _PyState(_Flushing, PyLoihiProcessModel):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self._setup(proc_params)
            self.every = int(proc_params["every"])

        def post_guard(self) -> bool:
            return (self.time_step - 1) % self.every == 0 or self._flush_due()

        def run_post_mgmt(self) -> None:
            if (self.time_step - 1) % self.every == 0:
                self.parts.append(np.array(self.state.read(), copy=True))
            if self._flush_due():
                m = self.state.shape[0] if hasattr(self.state, "shape") else 0
                self._flush(np.stack(self.parts) if self.parts else np.zeros((0, m)))
                self.parts = []

    @implements(proc=StateRecorder, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyStateFloat(_PyState):
        state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)

    @implements(proc=StateRecorder, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyStateFixed(_PyState):
        state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)

    return {
        "EventSource": EventSource, "SpikeRecorder": SpikeRecorder,
        "StateRecorder": StateRecorder, "ThreeFactorLIF": three_factor_neuron(),
        "LearningSparseFixed": learning_sparse_model(),
        "floating_pt": {EventSource: PySourceFloat, SpikeRecorder: PySpikesFloat,
                        StateRecorder: PyStateFloat},
        "fixed_pt": {EventSource: PySourceFixed, SpikeRecorder: PySpikesFixed,
                     StateRecorder: PyStateFixed},
    }


def learning_sparse_model() -> type:
    """Lava 0.10's fixed-point ``LearningSparse`` model made to work on its sparse matrices.
    Lava's own stops the run at the first learning step: its excitatory saturation applies
    ``np.maximum(0, csr_matrix)``, which SciPy refuses (">= and <= don't work with 0"), and
    a rule with the tag as a factor clips a sparse matrix with ``np.clip``; and its first
    step drops the synapses whose weight is 0. Here the accumulator's stored values are
    clamped at 0, as the dense model does to its array, the applier gets the synaptic
    variables as dense arrays, and every synapse is kept; the arithmetic is Lava's."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.sparse.models import PyLearningSparseModelBitApproximate
    from lava.proc.sparse.process import LearningSparse
    from lava.utils.sparse import find
    from lava.utils.weightutils import SignMode, truncate_weights
    from scipy.sparse import csr_matrix

    @implements(proc=LearningSparse, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("bit_approximate_loihi", "fixed_pt")
    class PyLearningSparseModelFixedSaturation(PyLearningSparseModelBitApproximate):
        def _saturate_synaptic_variable_accumulator(self, syn_var_name, syn_var_values):
            if syn_var_name == "weights" and isinstance(syn_var_values, csr_matrix) and \
                    self.sign_mode == SignMode.EXCITATORY:
                out = syn_var_values.copy()
                out.data = np.maximum(out.data, 0)
                return out
            return super()._saturate_synaptic_variable_accumulator(syn_var_name,
                                                                   syn_var_values)

        def run_spk(self) -> None:
            if not self.weights_set:
                # Lava truncates the weights once, on the first step, with a function that
                # drops explicit zeros: a synapse of weight 0 would vanish and never learn.
                # Truncate here and keep every synapse.
                dst, src, _ = find(self.weights, explicit_zeros=True)
                kept = truncate_weights(self.weights, sign_mode=self.sign_mode,
                                        num_weight_bits=self.num_weight_bits)
                values = np.asarray(kept[dst, src]).ravel().astype(self.weights.dtype)
                self.weights = csr_matrix((values, (dst, src)), shape=self.weights.shape)
                self.weights_set = True
            super().run_spk()

        def _extract_applier_args(self, x_traces_history, y_traces_history) -> dict:
            # Lava's applier saturates a synaptic-variable factor (the tag t of a
            # three-factor rule) with np.clip, which a sparse matrix breaks: hand it the
            # dense matrix (absent synapses 0; their results are discarded)
            args = super()._extract_applier_args(x_traces_history, y_traces_history)
            for key in ("weights", "tag_1", "tag_2"):
                if isinstance(args.get(key), csr_matrix):
                    args[key] = args[key].toarray()
            return args

    return PyLearningSparseModelFixedSaturation


def _weights_now(conn) -> np.ndarray:
    """(n_post, n_pre) int64: a learning connection's weights now. Lava's ``Var.get`` of a
    sparse matrix lays the values out over the non-zero entries of its initial matrix, which
    breaks when a synapse starts at 0; here the explicit zeros count."""
    var = conn.weights
    if not hasattr(var.init, "toarray"):
        return np.asarray(var.get(), dtype=np.int64)
    from lava.utils.sparse import find

    dst, src, _ = find(var.init.copy(), explicit_zeros=True)
    values = np.asarray(conn.runtime.get_var(var.id)).ravel()
    out = np.zeros(var.init.shape, dtype=np.int64)
    out[dst, src] = values
    return out


def loihi_constants():
    """Loihi 2's numbers, ``hardware/loihi/constants.py`` (standard library only), loaded by its
    path: EvoSpike is not importable in the Lava interpreter. The file lies two folders up from
    this one both in the source tree and in an installed package (``backends`` and
    ``hardware`` are the sibling subpackages ``evospike.backends`` and ``evospike.hardware``)."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, os.pardir, os.pardir, "hardware", "loihi", "constants.py")
    spec = importlib.util.spec_from_file_location("evospike_loihi_constants", path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise RuntimeError(f"the Lava worker: Loihi 2's constants are missing ({path})")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def three_factor_neuron() -> tuple[type, type]:
    """The post-synaptic neuron of a Loihi3F learning connection (EvoSpike's
    ``backends/lava/three_factor.py`` has the equations): Lava's bit-accurate LIF, its
    arithmetic unchanged, that also keeps a post trace and sends, every step, its spikes as
    the back-propagating action potential, the trace as ``y1`` and the step's reward as
    ``y2`` (positive part) and ``y3`` (negative part).

    Lava 0.10's fixed-point ``LearningLIF`` model neither sends these nor reads its third
    factor port, and a Loihi3F connection overwrites its post traces with what the neuron
    sends, so a learning neuron has to compute them itself (on Loihi 2, its microcode
    would). The reward is a per-step table computed before the run."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.lif.models import AbstractPyLifModelFixed, PyLifModelBitAcc

    loihi = loihi_constants()
    frac_bits = loihi.TRACE_FRAC_BITS  # the trace's fractional bits
    trace_max = loihi.TRACE_MAX

    class ThreeFactorLIF(AbstractProcess):
        def __init__(self, *, shape, u, v, du, dv, vth, bias_mant, bias_exp, trace_decay,
                     trace_impulse, reward, refractory_period=0, name=None):
            super().__init__(shape=shape, trace_decay=trace_decay, trace_impulse=trace_impulse,
                             reward=reward, refractory_period=refractory_period, name=name)
            self.a_in = InPort(shape=shape)
            self.s_out = OutPort(shape=shape)
            self.s_out_bap = OutPort(shape=shape)
            self.s_out_y1 = OutPort(shape=shape)
            self.s_out_y2 = OutPort(shape=shape)
            self.s_out_y3 = OutPort(shape=shape)
            self.u = Var(shape=shape, init=u)
            self.v = Var(shape=shape, init=v)
            self.du = Var(shape=(1,), init=du)
            self.dv = Var(shape=(1,), init=dv)
            self.vth = Var(shape=(1,), init=vth)
            self.bias_mant = Var(shape=shape, init=bias_mant)
            self.bias_exp = Var(shape=shape, init=bias_exp)
            self.post_trace = Var(shape=shape, init=0)
            self.refractory_period_end = Var(shape=shape, init=0)

    # PyLifModelBitAcc already names its Process; take its base and its threshold methods
    @implements(proc=ThreeFactorLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyThreeFactorLIFBitAcc(RefractoryRule, AbstractPyLifModelFixed):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        s_out_bap: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
        s_out_y1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=7)
        s_out_y2: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=7)
        s_out_y3: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=7)
        vth: int = LavaPyType(int, np.int32, precision=17)
        post_trace: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
        refractory_period_end: np.ndarray = LavaPyType(np.ndarray, int)
        scale_threshold = PyLifModelBitAcc.scale_threshold
        spiking_activation = PyLifModelBitAcc.spiking_activation

        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.effective_vth = 0
            self.refractory_period = int(proc_params["refractory_period"])
            self.keep = self.decay_unity - int(proc_params["trace_decay"])
            self.impulse = int(proc_params["trace_impulse"]) << frac_bits
            self.reward = np.asarray(proc_params["reward"], dtype=np.int64)

        def run_spk(self) -> None:
            super().run_spk()  # Lava's LIF step; sends s_out
            spiked = np.asarray(self.s_out_buff, dtype=bool)
            trace = (self.post_trace.astype(np.int64) * self.keep) >> self.decay_shift
            trace = np.where(spiked, np.minimum(trace + self.impulse, trace_max << frac_bits),
                             trace)
            self.post_trace[:] = trace
            step = self.time_step - 1
            r = int(self.reward[step]) if step < self.reward.size else 0
            shape = self.post_trace.shape
            self.s_out_bap.send(spiked)
            self.s_out_y1.send(np.minimum((trace + (1 << (frac_bits - 1))) >> frac_bits,
                                          trace_max).astype(np.int32))
            self.s_out_y2.send(np.full(shape, max(r, 0), dtype=np.int32))
            self.s_out_y3.send(np.full(shape, max(-r, 0), dtype=np.int32))

    return ThreeFactorLIF, PyThreeFactorLIFBitAcc


def _read_parts(path: str) -> list[np.ndarray]:
    parts, k = [], 0
    while os.path.exists(f"{path}.{k}.npy"):
        parts.append(np.load(f"{path}.{k}.npy", allow_pickle=False))  # numbers only
        k += 1
    return parts


class Component:
    """The Lava processes of one connected part of the network, for one trial."""

    def __init__(self, job: h5py.File, trial: int, names: dict, fixed: bool, io: dict,
                 workdir: str):
        from lava.proc.lif.process import LIF, LIFRefractory
        from lava.proc.sparse.process import DelaySparse
        from lava.proc.sparse.process import Sparse as SparseConn

        self.chunk = int(job.attrs["chunk_steps"])
        n_steps = int(job.attrs["n_steps"])
        tag = "fixed_pt" if fixed else "floating_pt"
        dtype = np.int32 if fixed else np.float64
        self.models: dict = {}  # process instance -> model class (no model search needed)
        self.neurons: dict[str, object] = {}
        tgroup = job["trials"][str(trial)]
        for name in names["populations"]:
            g = job["populations"][name]
            init = tgroup["initial"][name]
            kwargs = dict(
                shape=(int(g.attrs["size"]),),
                u=init["u"][()].astype(dtype), v=init["v"][()].astype(dtype),
                du=_scalar(g.attrs["du"], fixed), dv=_scalar(g.attrs["dv"], fixed),
                vth=_scalar(g.attrs["vth"], fixed),
                bias_mant=g["bias_mant"][()].astype(dtype),
                bias_exp=g["bias_exp"][()].astype(dtype),
                name=name,
            )
            if int(g.attrs.get("three_factor", 0)):  # RewardModulatedSTDP (three_factor.py)
                process, model = io["ThreeFactorLIF"]
                refractory = int(g.attrs["refractory_period"]) if \
                    _text(g.attrs["process"]) == "LIFRefractory" else 0
                proc = process(trace_decay=int(g.attrs["trace_decay"]),
                               trace_impulse=int(g.attrs["trace_impulse"]),
                               reward=g["reward"][()].astype(np.int64),
                               refractory_period=refractory, **kwargs)
                self.models[proc] = model
            elif _text(g.attrs["process"]) == "LIFRefractory":
                proc = LIFRefractory(refractory_period=int(g.attrs["refractory_period"]),
                                     **kwargs)
            else:
                proc = LIF(**kwargs)
            self.neurons[name] = proc
        sources = {}
        for name in names["sources"]:
            ev = tgroup["inputs"][name]
            proc = io["EventSource"](shape=(int(job["sources"][name].attrs["size"]),),
                                     steps=ev["step"][()], neurons=ev["neuron"][()], name=name)
            sources[name] = proc
            self.models[proc] = io[tag][io["EventSource"]]
        self.learning: dict = {}  # STDP (learning.py): connection name -> LearningDense
        for name in names["connections"]:
            g = job["connections"][name]
            shape = (int(g.attrs["n_post"]), int(g.attrs["n_pre"]))
            post, pre = g["post"][()], g["pre"][()]
            weights = _sparse(post, pre, g["weights"][()].astype(dtype), shape)
            kwargs = {"weights": weights, "name": name}
            if fixed:
                kwargs.update(weight_exp=int(g.attrs["weight_exp"]),
                              num_weight_bits=int(g.attrs["num_weight_bits"]))
            if int(g.attrs.get("learning", 0)):  # STDP (learning.py): LearningDense
                from lava.magma.core.learning.learning_rule import Loihi2FLearningRule
                from lava.proc.dense.process import LearningDense
                from lava.utils.weightutils import SignMode

                rule = Loihi2FLearningRule(
                    dw=_text(g.attrs["dw"]), x1_impulse=int(g.attrs["x1_impulse"]),
                    x1_tau=int(g.attrs["x1_tau"]), y1_impulse=int(g.attrs["y1_impulse"]),
                    y1_tau=int(g.attrs["y1_tau"]), t_epoch=1, rng_seed=int(g.attrs["rng_seed"]))
                post_proc = self.neurons[_text(g.attrs["post"])]
                if int(g.attrs.get("three_factor", 0)):  # RewardModulatedSTDP (three_factor.py)
                    from lava.magma.core.learning.learning_rule import Loihi3FLearningRule

                    rule = Loihi3FLearningRule(
                        dw=_text(g.attrs["dw"]), dt=_text(g.attrs["dt"]),
                        x1_impulse=int(g.attrs["x1_impulse"]), x1_tau=int(g.attrs["x1_tau"]),
                        t_epoch=1, rng_seed=int(g.attrs["rng_seed"]))
                if int(g.attrs.get("dense", 1)):
                    kwargs["weights"] = weights.toarray()
                    conn = LearningDense(learning_rule=rule, sign_mode=SignMode.EXCITATORY,
                                         **kwargs)
                else:  # only the synapses that exist learn (explicit zeros stay synapses)
                    from lava.proc.sparse.process import LearningSparse

                    kwargs["tag_1"] = _sparse(post, pre, np.zeros(post.size, np.int32), shape)
                    conn = LearningSparse(learning_rule=rule, sign_mode=SignMode.EXCITATORY,
                                          **kwargs)
                    self.models[conn] = io["LearningSparseFixed"]
                if int(g.attrs.get("three_factor", 0)):
                    post_proc.s_out_bap.connect(conn.s_in_bap)
                    for k in (1, 2, 3):
                        getattr(post_proc, f"s_out_y{k}").connect(getattr(conn, f"s_in_y{k}"))
                else:
                    post_proc.s_out.connect(conn.s_in_bap)
                self.learning[name] = conn
            elif _text(g.attrs["process"]) == "DelaySparse":
                delays = _sparse(post, pre, g["delays"][()].astype(np.int64), shape)
                conn = DelaySparse(delays=delays, **kwargs)
            else:
                conn = SparseConn(**kwargs)
            pre_name = _text(g.attrs["pre"])
            pre_proc = self.neurons.get(pre_name) or sources[pre_name]
            pre_proc.s_out.connect(conn.s_in)
            conn.a_out.connect(self.neurons[_text(g.attrs["post"])].a_in)
        recorded = {_text(n) for n in job["spike_monitors"].attrs["names"]}
        self.spike_paths: dict[str, str] = {}
        for name, proc in self.neurons.items():
            if name in recorded:
                path = os.path.join(workdir, f"t{trial}-spikes-{len(self.spike_paths)}")
                rec = io["SpikeRecorder"](shape=proc.s_out.shape, path=path,
                                          flush_every=self.chunk, n_steps=n_steps)
                proc.s_out.connect(rec.a_in)
                self.models[rec] = io[tag][io["SpikeRecorder"]]
                self.spike_paths[name] = path
        self.trace_paths: dict[str, str] = {}
        self.trace_neurons: dict[str, np.ndarray] = {}
        for name in names["traces"]:
            g = job["traces"][name]
            path = os.path.join(workdir, f"t{trial}-trace-{len(self.trace_paths)}")
            rec = io["StateRecorder"](
                var=getattr(self.neurons[_text(g.attrs["target"])], _text(g.attrs["variable"])),
                every=int(g.attrs["every_steps"]), path=path, flush_every=self.chunk,
                n_steps=n_steps)
            self.models[rec] = io[tag][io["StateRecorder"]]
            self.trace_paths[name] = path
            self.trace_neurons[name] = g["neurons"][()]
        self.anchor = next(iter(self.neurons.values()))
        # STDP (learning.py): weight monitors -> (connection, every_steps, snapshots)
        self.weight_snaps = {n: (self.learning[_text(g.attrs["connection"])],
                                 int(g.attrs["every_steps"]), [])
                             for n, g in job.get("weight_monitors", {}).items()
                             if _text(g.attrs["connection"]) in self.learning}

    def run(self, n_steps: int, cfg_for, report) -> int:
        from lava.magma.core.run_conditions import RunSteps

        cfg = cfg_for(self.models)
        done = 0
        try:
            while done < n_steps and not STOP["requested"]:
                n = min(self.chunk, n_steps - done)
                for _, every, _ in self.weight_snaps.values():  # stop after each sampled step
                    n = min(n, (1 - done) % every or every)
                self.anchor.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
                done += n
                for conn, every, snaps in self.weight_snaps.values():
                    if (done - 1) % every == 0:  # the weights after step done - 1
                        snaps.append(_weights_now(conn))
                report(n)
        finally:
            self.anchor.stop()
        return done

    def spikes(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for name, path in self.spike_paths.items():
            parts = _read_parts(path)
            data = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0))
            out[name] = (data[0].astype(np.int64), data[1].astype(np.int64))
        return out

    def traces(self) -> dict[str, np.ndarray]:
        out = {}
        for name, path in self.trace_paths.items():
            parts = _read_parts(path)
            neurons = self.trace_neurons[name]
            data = np.concatenate(parts) if parts else np.zeros((0, neurons.size))
            out[name] = data[:, neurons] if data.size else np.zeros((0, neurons.size))
        return out


def cached_delay_models() -> dict:
    """DelaySparse process models whose stacked (delay x weight) matrix is built once.

    Lava 0.10's DelaySparse models rebuild that matrix from ``weights`` and ``delays`` on
    every step (``get_delay_wgts_mat``), which costs ~50 ms per step for 60 000 synapses.
    Without learning the weights never change after the first step (the fixed-point model
    clips and truncates them then), so these subclasses build it once, with Lava's own
    function, after that first step's scaling, and otherwise run Lava's ``run_spk``
    unchanged: the same sums, shifts and rounding, bit for bit (the tests compare both)."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.sparse.models import PyDelaySparseModelBitAcc, PyDelaySparseModelFloat
    from lava.proc.sparse.process import DelaySparse

    class _Cached:
        def calc_act(self, s_in) -> np.ndarray:
            cache = self.__dict__.get("_evospike_delay_wgts")
            if cache is None:
                cache = self.get_delay_wgts_mat(self.weights, self.delays,
                                                self.a_buff.shape[-1] - 1)
                self.__dict__["_evospike_delay_wgts"] = cache
            return np.reshape(cache.dot(s_in),
                              (self.a_buff.shape[-1], self.weights.shape[0])).T

    @implements(proc=DelaySparse, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class CachedDelaySparseFloat(_Cached, PyDelaySparseModelFloat):
        pass

    @implements(proc=DelaySparse, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("bit_accurate_loihi", "fixed_pt")
    class CachedDelaySparseBitAcc(_Cached, PyDelaySparseModelBitAcc):
        pass

    return {"floating_pt": CachedDelaySparseFloat, "fixed_pt": CachedDelaySparseBitAcc}


class RefractoryRule:
    """The refractory rule of Lava's floating-point ``LIFRefractory`` for fixed-point LIF
    models (mixed in before ``AbstractPyLifModelFixed``): a neuron that spikes at time step t
    keeps its reset voltage through t + ``refractory_period`` (0: no refractory period) while
    its current u goes on integrating."""

    def subthr_dynamics(self, activation_in: np.ndarray):
        held = self.refractory_period_end >= self.time_step
        v_before = self.v.copy()
        super().subthr_dynamics(activation_in)
        self.v[held] = v_before[held]

    def reset_voltage(self, spike_vector: np.ndarray):
        if self.refractory_period:
            self.refractory_period_end[spike_vector] = self.time_step + self.refractory_period
        super().reset_voltage(spike_vector)


def refractory_bit_accurate_model():
    """A fixed-point process model for Lava's ``LIFRefractory``, which Lava 0.10 has only in
    floating point.

    It is Lava's bit-accurate LIF (``PyLifModelBitAcc``: its decays, shifts, wrap-around and
    clipping, unchanged) with the refractory rule of Lava's floating-point ``LIFRefractory``
    model (`RefractoryRule`)."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.lif.models import AbstractPyLifModelFixed, PyLifModelBitAcc
    from lava.proc.lif.process import LIFRefractory

    # PyLifModelBitAcc already names its Process, so it cannot be subclassed for another;
    # this class takes the same base and borrows its threshold methods unchanged.
    @implements(proc=LIFRefractory, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyLifRefractoryModelBitAcc(RefractoryRule, AbstractPyLifModelFixed):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: int = LavaPyType(int, np.int32, precision=17)
        refractory_period_end: np.ndarray = LavaPyType(np.ndarray, int)
        scale_threshold = PyLifModelBitAcc.scale_threshold
        spiking_activation = PyLifModelBitAcc.spiking_activation

        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.effective_vth = 0
            self.refractory_period = proc_params["refractory_period"]

    return PyLifRefractoryModelBitAcc


def _scalar(value, fixed: bool):
    return int(value) if fixed else float(value)


def _components(job: h5py.File) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    for kind in ("populations", "sources", "connections"):
        for name, g in job[kind].items():
            comp = int(g.attrs["component"])
            out.setdefault(comp, {"populations": [], "sources": [], "connections": [],
                                  "traces": []})[kind].append(name)
    for name, g in job["traces"].items():
        target = _text(g.attrs["target"])
        comp = int(job["populations"][target].attrs["component"])
        out[comp]["traces"].append(name)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: worker.py JOB.h5 OUT.h5", file=sys.stderr)
        return 2
    job_path, out_path = argv[1], argv[2]
    signal.signal(signal.SIGTERM, _on_term)
    warnings.formatwarning = _one_line_warning
    import lava
    from lava.magma.core.run_configs import Loihi2SimCfg

    t0 = time.perf_counter()
    with h5py.File(job_path, "r") as job:
        if _text(job.attrs.get("format", "")) != JOB_FORMAT:
            print(f"worker: {job_path} is not an {JOB_FORMAT} file", file=sys.stderr)
            return 2
        tag = _text(job.attrs["select_tag"])
        fixed = tag == "fixed_pt"
        n_steps = int(job.attrs["n_steps"])
        n_trials = int(job.attrs["n_trials"])
        components = _components(job)
        total = n_steps * n_trials * len(components)
        progress = {"done": 0}

        def report(n: int) -> None:
            progress["done"] += n
            manifest.advance(n)
            print(f"progress {progress['done']} {total}", flush=True)

        exceptions: dict = {}
        if int(job.attrs.get("cache_delay_weights", 1)):
            from lava.proc.sparse.process import DelaySparse

            exceptions[DelaySparse] = cached_delay_models()[tag]
        if fixed:
            from lava.proc.lif.process import LIFRefractory

            exceptions[LIFRefractory] = refractory_bit_accurate_model()
        io = io_processes()

        def cfg_for(models: dict):
            # Lava checks a process instance against this map before searching for models
            return Loihi2SimCfg(select_tag=tag,
                                exception_proc_model_map={**exceptions, **models})

        # a fixed name next to OUT.h5, so the host finds what was recorded if this process
        # is killed before it writes OUT.h5
        workdir = f"{os.path.abspath(out_path)}.recorded"
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
        manifest = Manifest(workdir, n_steps, int(job.attrs["chunk_steps"]), n_trials,
                            len(components))
        results = []
        steps_done = n_steps
        build_time = 0.0
        for trial in range(n_trials):
            spikes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            traces: dict[str, np.ndarray] = {}
            weights: dict[str, np.ndarray] = {}  # STDP (learning.py)
            for index, names in enumerate(components.values()):
                if STOP["requested"]:
                    steps_done = 0
                    break
                tb = time.perf_counter()
                folder = f"t{trial}-c{index}"  # recorder files of different components apart
                os.makedirs(os.path.join(workdir, folder))
                comp = Component(job, trial, names, fixed, io, os.path.join(workdir, folder))
                manifest.start(trial, folder, comp)
                build_time += time.perf_counter() - tb
                done = comp.run(n_steps, cfg_for, report)
                steps_done = min(steps_done, done)
                spikes.update(comp.spikes())
                traces.update(comp.traces())
                weights.update({n: np.asarray(snaps) for n, (_, _, snaps)
                                in comp.weight_snaps.items()})
            results.append((spikes, traces, weights))
            if STOP["requested"]:
                break
    complete = not STOP["requested"]
    tmp = f"{out_path}.{os.getpid()}.tmp"
    with h5py.File(tmp, "w") as out:
        out.attrs.update(format=OUT_FORMAT, steps_done=steps_done, complete=int(complete),
                         lava_version=getattr(lava, "__version__", "0.10.0"),
                         numpy_version=np.__version__, trials_done=len(results),
                         wall_time_s=time.perf_counter() - t0, build_time_s=build_time)
        for k, (spikes, traces, weights) in enumerate(results):
            g = out.create_group(f"trials/{k}")
            for name, (s, n) in spikes.items():
                keep = s < steps_done
                g.create_dataset(f"spikes/{name}/step", data=s[keep])
                g.create_dataset(f"spikes/{name}/neuron", data=n[keep])
            for name, values in traces.items():
                g.create_dataset(f"traces/{name}/values", data=values)
            for name, values in weights.items():  # STDP (learning.py)
                g.create_dataset(f"weights/{name}/values", data=values)
    os.replace(tmp, out_path)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
