"""NIR's stateless nodes as sparse matrices over flattened (C-order) signals: Affine, Linear,
Scale, Flatten, and Conv1d/Conv2d/SumPool2d/AvgPool2d with their weight sharing unrolled."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from evospike.errors import EvoSpikeError


def refuse(node: str, problem: str) -> EvoSpikeError:
    return EvoSpikeError(f"NIR node '{node}': {problem}")


def _pair(value, node: str, field: str) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or arr.dtype.kind not in "iu" and not np.all(arr == np.round(arr)):
        raise refuse(node, f"{field} must be one or two whole numbers (got {value!r})")
    return int(arr[0]), int(arr[1])


def _shape(node_obj, node: str) -> tuple[int, ...]:
    shape = node_obj.input_type.get("input") if node_obj.input_type else None
    if shape is None:
        raise refuse(node, "has no input shape (the graph's types were not inferred)")
    return tuple(int(x) for x in np.asarray(shape).ravel())


def conv_matrix(node_obj, node: str, max_synapses: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """A Conv1d or Conv2d as (matrix, bias per output element)."""
    weight = np.asarray(node_obj.weight, dtype=np.float64)
    one_d = weight.ndim == 3
    if one_d:
        weight = weight[:, :, None, :]
    if weight.ndim != 4:
        raise refuse(node, f"weight must have 3 (Conv1d) or 4 (Conv2d) axes (got {weight.shape})")
    shape = _shape(node_obj, node)
    if one_d:
        shape = (shape[0], 1, shape[-1])
    if len(shape) != 3:
        raise refuse(node, f"input shape must be (channels, [height,] width) (got {shape})")
    c_in, h, w = shape
    c_out, c_per_group, kh, kw = weight.shape
    groups = int(node_obj.groups)
    if groups < 1 or c_in % groups or c_out % groups or c_in // groups != c_per_group:
        raise refuse(node, f"groups={groups} does not fit {c_in} input and {c_out} output "
                     f"channels with weight {weight.shape}")
    sy, sx = (1, int(np.ravel(node_obj.stride)[0])) if one_d else _pair(node_obj.stride, node,
                                                                         "stride")
    dy, dx = (1, int(np.ravel(node_obj.dilation)[0])) if one_d else _pair(node_obj.dilation,
                                                                           node, "dilation")
    padding = node_obj.padding
    if isinstance(padding, str):
        if padding == "valid":
            py = px = 0
        elif padding == "same":  # as torch: the total padding d (k - 1), the odd one after
            py, px = (dy * (kh - 1)) // 2, (dx * (kw - 1)) // 2
        else:
            raise refuse(node, f"padding must be 'same', 'valid' or numbers (got {padding!r})")
    else:
        py, px = (0, int(np.ravel(padding)[0])) if one_d else _pair(padding, node, "padding")
    if isinstance(padding, str) and padding == "same":
        h_out, w_out = h, w
    else:
        h_out = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1
        w_out = (w + 2 * px - dx * (kw - 1) - 1) // sx + 1
    if h_out < 1 or w_out < 1:
        raise refuse(node, f"produces an empty output from input {shape}")
    bound = c_out * h_out * w_out * c_per_group * kh * kw
    if bound > max_synapses:
        raise refuse(node, f"would unroll into up to {bound} synapses, above max_synapses = "
                     f"{max_synapses} (raise the limit if the memory allows: ~16 bytes each)")
    co, oy, ox, ci, ky, kx = np.meshgrid(np.arange(c_out), np.arange(h_out), np.arange(w_out),
                                         np.arange(c_per_group), np.arange(kh), np.arange(kw),
                                         indexing="ij")
    iy = oy * sy - py + ky * dy
    ix = ox * sx - px + kx * dx
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    cin = (co // (c_out // groups)) * c_per_group + ci
    rows = ((co * h_out + oy) * w_out + ox)[ok]
    cols = ((cin * h + iy) * w + ix)[ok]
    vals = weight[co, ci, ky, kx][ok]
    m = sp.csr_matrix((vals, (rows, cols)), shape=(c_out * h_out * w_out, c_in * h * w))
    bias = np.asarray(node_obj.bias, dtype=np.float64).ravel()
    if bias.size not in (0, c_out):
        raise refuse(node, f"bias has {bias.size} values for {c_out} output channels")
    full_bias = np.repeat(bias, h_out * w_out) if bias.size else np.zeros(m.shape[0])
    return m, full_bias


def pool_matrix(node_obj, node: str, average: bool, max_synapses: int) -> sp.csr_matrix:
    """SumPool2d / AvgPool2d (per channel; an average divides by the kernel area, padding
    included, as torch's AvgPool2d does by default)."""
    shape = _shape(node_obj, node)
    if len(shape) != 3:
        raise refuse(node, f"input shape must be (channels, height, width) (got {shape})")
    c, h, w = shape
    kh, kw = _pair(node_obj.kernel_size, node, "kernel_size")
    sy, sx = _pair(node_obj.stride, node, "stride")
    py, px = _pair(node_obj.padding, node, "padding")
    h_out = (h + 2 * py - kh) // sy + 1
    w_out = (w + 2 * px - kw) // sx + 1
    if h_out < 1 or w_out < 1:
        raise refuse(node, f"produces an empty output from input {shape}")
    if c * h_out * w_out * kh * kw > max_synapses:
        raise refuse(node, f"would unroll into {c * h_out * w_out * kh * kw} synapses, above "
                     f"max_synapses = {max_synapses}")
    ch, oy, ox, ky, kx = np.meshgrid(np.arange(c), np.arange(h_out), np.arange(w_out),
                                     np.arange(kh), np.arange(kw), indexing="ij")
    iy, ix = oy * sy - py + ky, ox * sx - px + kx
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = ((ch * h_out + oy) * w_out + ox)[ok]
    cols = ((ch * h + iy) * w + ix)[ok]
    value = 1.0 / (kh * kw) if average else 1.0
    return sp.csr_matrix((np.full(rows.size, value), (rows, cols)),
                         shape=(c * h_out * w_out, c * h * w))


def dense_matrix(weight, node: str) -> sp.csr_matrix:
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise refuse(node, f"weight must be a matrix (out, in) (got shape {w.shape})")
    if not np.all(np.isfinite(w)):
        raise refuse(node, "weight must be finite")
    return sp.csr_matrix(w)
