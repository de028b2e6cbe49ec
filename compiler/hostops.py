"""Ops the host runs in NumPy: every float op of a quantized graph that the accelerator does not,
the quantize / dequantize boundaries, and integer GEMMs placed on the host.

Each kind is a function of NumPy arrays and the PyTorch op's own arguments, in float32 as
PyTorch computes them (quantize multiplies by ``1 / scale`` and rounds half to even, as
``quantized_decomposed.quantize_per_tensor`` does). ``HOST_OPS`` maps kind -> function and
``ATEN_KINDS`` maps an ATen op name to its kind; an op in neither is one no side can run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

F32 = np.float32


def _f32(x) -> np.ndarray:
    return np.asarray(x, F32)


# ---- quantization boundaries ------------------------------------------------------------------


def quantize(x, scale: float, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """Float -> int8 codes (signed domain): clamp(round_half_even(x * (1 / scale)) + z)."""
    y = np.round(_f32(x) * F32(1.0 / scale)) + zero_point
    return np.clip(y, qmin, qmax).astype(np.int8)


def dequantize(q, scale: float, zero_point: int) -> np.ndarray:
    """int8 codes -> float32, as (float(q) - z) * scale."""
    return ((np.asarray(q, F32) - F32(zero_point)) * F32(scale)).astype(F32)


def dequantize_acc(acc, offset, scale, bias, channel_axis: int) -> np.ndarray:
    """Raw accumulators of a GEMM -> float32 output: (acc + offset[c]) * scale[c] + bias[c]."""
    shape = [1] * np.ndim(acc)
    shape[channel_axis] = -1
    x = (np.asarray(acc, np.int64) + np.asarray(offset, np.int64).reshape(shape)).astype(np.float64)
    y = x * np.asarray(scale, np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(shape)
    return y.astype(F32)


# ---- elementwise ------------------------------------------------------------------------------


def add(a, b, alpha=1):
    return (_f32(a) + F32(alpha) * _f32(b)).astype(F32) if alpha != 1 else (_f32(a) + _f32(b)).astype(F32)


def sub(a, b, alpha=1):
    return (_f32(a) - F32(alpha) * _f32(b)).astype(F32)


def mul(a, b):
    return (_f32(a) * _f32(b)).astype(F32)


def div(a, b, rounding_mode=None):
    if rounding_mode is not None:
        raise NotImplementedError(f"div with rounding_mode={rounding_mode!r}")
    return (_f32(a) / _f32(b)).astype(F32)


def rsub(x, other, alpha=1):
    return (_f32(other) - F32(alpha) * _f32(x)).astype(F32)


def clamp(x, min=None, max=None):  # noqa: A002  (ATen's argument names)
    x = np.asarray(x)
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.clip(x, lo, hi).astype(x.dtype)


def clamp_min(x, min):  # noqa: A002
    return clamp(x, min=min)


def relu(x):
    return np.maximum(_f32(x), F32(0))


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x, approximate: str = "none"):
    x64 = np.asarray(x, np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    else:
        y = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)).astype(np.float64))
    return y.astype(F32)


def sigmoid(x):
    return (1 / (1 + np.exp(-np.asarray(x, np.float64)))).astype(F32)


def tanh(x):
    return np.tanh(_f32(x))


# ---- reductions and normalisation ---------------------------------------------------------------


def softmax(x, dim: int, half_to_float: bool = False):
    x = _f32(x)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return (e / e.sum(axis=dim, keepdims=True)).astype(F32)


def layer_norm(x, normalized_shape: Sequence[int], weight=None, bias=None, eps: float = 1e-5, cudnn_enable=True):
    x = _f32(x)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y.astype(F32)


def sum_(x, dim=None, keepdim: bool = False, dtype=None):
    axis = None if dim is None else tuple(dim) if isinstance(dim, list | tuple) else dim
    x = np.asarray(x)
    return np.asarray(x.sum(axis=axis, keepdims=keepdim, dtype=np.float64 if x.dtype.kind == "f" else None),
                      F32 if x.dtype.kind == "f" else x.dtype)


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, dtype=None):  # noqa: A002
    if ord != 2:
        raise NotImplementedError(f"linalg_vector_norm with ord={ord}")
    axis = None if dim is None else tuple(dim) if isinstance(dim, list | tuple) else dim
    return np.sqrt(np.square(np.asarray(x, np.float64)).sum(axis=axis, keepdims=keepdim)).astype(F32)


def mean(x, dim=None, keepdim: bool = False, dtype=None):
    axis = None if dim is None else tuple(dim) if isinstance(dim, list | tuple) else dim
    return np.asarray(_f32(x).mean(axis=axis, keepdims=keepdim, dtype=np.float64), F32)


# ---- pooling ----------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = list(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _windows(x: np.ndarray, kernel, stride, padding, dilation, fill: float) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw) windows of an NCHW array padded with `fill`."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride if stride else kernel)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def max_pool2d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode: bool = False):
    if ceil_mode:
        raise NotImplementedError("max_pool2d with ceil_mode=True")
    x = np.asarray(x)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return _windows(x, kernel_size, stride, padding, dilation, fill).max(axis=(4, 5)).astype(x.dtype)


def avg_pool2d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    if ceil_mode:
        raise NotImplementedError("avg_pool2d with ceil_mode=True")
    x = _f32(x)
    win = _windows(x, kernel_size, stride, padding, 1, 0.0)
    total = _window_sum(win)
    if divisor_override:
        count = divisor_override
    elif count_include_pad or not any(_pair(padding)):
        count = win.shape[4] * win.shape[5]
    else:
        ones = _windows(np.ones_like(x), kernel_size, stride, padding, 1, 0.0)
        count = ones.sum(axis=(4, 5))
    return (total / F32(count) if np.isscalar(count) else total / count.astype(F32)).astype(F32)


def _window_sum(win: np.ndarray) -> np.ndarray:
    """Window sums in float32, row by row as PyTorch's CPU kernel adds them (same rounding)."""
    total = np.zeros(win.shape[:-2], F32)
    for i in range(win.shape[-2]):
        for j in range(win.shape[-1]):
            total = total + win[..., i, j]
    return total


def adaptive_avg_pool2d(x, output_size):
    x = _f32(x)
    oh, ow = _pair(output_size)
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (oh, ow), F32)
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            cell = x[..., h0:h1, w0:w1]
            out[..., i, j] = _window_sum(cell) / F32((h1 - h0) * (w1 - w0))
    return out


# ---- shape ------------------------------------------------------------------------------------


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    x = np.asarray(x)
    nd = x.ndim
    s, e = start_dim % nd, end_dim % nd
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1 :])


def reshape(x, shape):
    return np.asarray(x).reshape(tuple(shape))


def permute(x, dims):
    return np.transpose(np.asarray(x), tuple(dims))


def transpose(x, dim0: int, dim1: int):
    return np.swapaxes(np.asarray(x), dim0, dim1)


def t(x):
    return np.asarray(x).T


def unsqueeze(x, dim: int):
    return np.expand_dims(np.asarray(x), dim)


def squeeze(x, dim=None):
    return np.squeeze(np.asarray(x), axis=dim)


def cat(tensors, dim: int = 0):
    return np.concatenate([np.asarray(a) for a in tensors], axis=dim)


def identity(x, *args, **kwargs):
    return np.asarray(x)


def to(x, dtype=None, *args, **kwargs):
    """A dtype conversion (``aten.to.dtype``); dtypes arrive by name."""
    return np.asarray(x).astype(dtype) if dtype else np.asarray(x)


def expand_as(x, other):
    return np.broadcast_to(np.asarray(x), np.shape(other)).copy()


def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """Rows of the table by index (token embeddings)."""
    return np.asarray(weight)[np.asarray(indices, np.int64)]


# ---- float linear algebra -----------------------------------------------------------------------


def matmul(a, b):
    return np.matmul(_f32(a), _f32(b)).astype(F32)


def linear(x, weight, bias=None):
    y = np.matmul(_f32(x), _f32(weight).T)
    return (y + _f32(bias) if bias is not None else y).astype(F32)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """Float convolution, NCHW, by windows (the host's fallback for an unquantized conv)."""
    x, w = _f32(x), _f32(weight)
    cout, cin_g, kh, kw = w.shape
    win = _windows(x, (kh, kw), stride, padding, dilation, 0.0)  # N, C, Ho, Wo, kh, kw
    n, _, ho, wo = win.shape[:4]
    out = np.zeros((n, cout, ho, wo), np.float64)
    cout_g = cout // groups
    for g in range(groups):
        xs = win[:, g * cin_g : (g + 1) * cin_g]
        ws = w[g * cout_g : (g + 1) * cout_g]
        out[:, g * cout_g : (g + 1) * cout_g] = np.einsum("ncyxij,ocij->noyx", xs, ws, dtype=np.float64)
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out.astype(F32)


HOST_OPS: dict[str, Callable[..., np.ndarray]] = {
    "quantize": quantize, "dequantize": dequantize, "dequantize_acc": dequantize_acc,
    "add": add, "sub": sub, "mul": mul, "div": div, "relu": relu, "gelu": gelu, "sigmoid": sigmoid, "tanh": tanh,
    "softmax": softmax, "layer_norm": layer_norm, "mean": mean,
    "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d, "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "flatten": flatten, "reshape": reshape, "permute": permute, "transpose": transpose, "t": t,
    "unsqueeze": unsqueeze, "squeeze": squeeze, "cat": cat, "identity": identity, "to": to,
    "expand_as": expand_as, "embedding": embedding, "rsub": rsub, "clamp": clamp, "clamp_min": clamp_min,
    "sum": sum_, "vector_norm": vector_norm,
    "matmul": matmul, "linear": linear, "conv2d": conv2d,
}

# Why each kind runs on the host (the compile report's note).
_LAYOUT = "layout change, done on the host (tensors move between NCHW and the array's NHWC there)"
HOST_REASONS: dict[str, str] = {
    **dict.fromkeys(("add", "sub", "rsub", "mul", "div", "clamp", "clamp_min"),
                    "elementwise arithmetic: the array has no elementwise unit"),
    **dict.fromkeys(("sum", "vector_norm"), "float reduction"),
    "embedding": "table lookup (token embeddings)",
    **dict.fromkeys(("to", "expand_as"), "dtype or shape change, done on the host"),
    **dict.fromkeys(("relu", "gelu", "sigmoid", "tanh"),
                    "float activation (a ReLU straight after a quantized GEMM is fused into it instead)"),
    **dict.fromkeys(("softmax", "layer_norm", "mean"), "float normalisation or reduction"),
    **dict.fromkeys(("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"), "pooling: the array has no pooling unit"),
    **dict.fromkeys(("flatten", "reshape", "permute", "transpose", "t", "unsqueeze", "squeeze", "cat", "identity"),
                    _LAYOUT),
    "matmul": "float matmul (of two activations, or not quantized)",
    **dict.fromkeys(("linear", "conv2d"), "float layer: no quantized input and weight around it"),
    "quantize": "quantizing a float tensor (a graph input or a float host op's result)",
    "dequantize": "dequantizing an int8 tensor for a float host op or a graph output",
    "dequantize_acc": "float output (no quantize after the GEMM): the host scales its accumulators",
}

# ATen op (overload packet name) -> host kind
ATEN_KINDS: dict[str, str] = {
    "add": "add", "add_": "add", "sub": "sub", "mul": "mul", "div": "div",
    "relu": "relu", "relu_": "relu", "gelu": "gelu", "sigmoid": "sigmoid", "tanh": "tanh",
    "softmax": "softmax", "_softmax": "softmax", "layer_norm": "layer_norm", "mean": "mean",
    "max_pool2d": "max_pool2d", "avg_pool2d": "avg_pool2d", "adaptive_avg_pool2d": "adaptive_avg_pool2d",
    "flatten": "flatten", "view": "reshape", "reshape": "reshape", "_unsafe_view": "reshape",
    "permute": "permute", "transpose": "transpose", "t": "t", "unsqueeze": "unsqueeze", "squeeze": "squeeze",
    "cat": "cat", "contiguous": "identity", "clone": "identity", "dropout": "identity", "alias": "identity",
    "to": "to", "_to_copy": "to", "expand_as": "expand_as", "embedding": "embedding", "rsub": "rsub",
    "clamp": "clamp", "clamp_min": "clamp_min", "sum": "sum", "linalg_vector_norm": "vector_norm",
    "matmul": "matmul", "bmm": "matmul", "mm": "matmul", "linear": "linear", "conv2d": "conv2d",
}
