"""Ops the host runs in NumPy: every float op of a quantized graph that the accelerator does not,
the quantize / dequantize boundaries, and integer GEMMs placed on the host.

Each kind is a function of NumPy arrays and the PyTorch op's own arguments, in float32 as
PyTorch computes them (quantize multiplies by ``1 / scale`` and rounds half to even, as
``quantized_decomposed.quantize_per_tensor`` does). ``HOST_OPS`` maps kind -> function and
``ATEN_KINDS`` maps an ATen op's overload packet name (in-place ``op_`` twins included) to its
kind; an op in neither is one no side can run. A kind's function takes the arguments of every
overload of its packet, with the names and order of the ATen schema (the frontend passes a
node's args positionally and its kwargs by name); tensors arrive as arrays, dtypes by name
("float32"), devices and layouts as None. An argument value the host cannot take raises
NotImplementedError naming it. Kinds in ``PIECE_KINDS`` stand for an op with several outputs:
keyword-only ``index`` picks the one a getitem reads."""

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


# ---- elementwise arithmetic ---------------------------------------------------------------------
#
# Operands keep PyTorch's promotion as far as the host needs it: tensors are arrays, Python numbers
# (and 0-d tensors) stay weak scalars, integer arithmetic stays integer, and any float result is float32.


def _operand(v):
    """A tensor as an array; a Python number or 0-d tensor as a weak scalar (it does not widen a tensor's dtype)."""
    if isinstance(v, bool | int | float):
        return v
    a = np.asarray(v)
    return a.item() if a.ndim == 0 and a.dtype.kind in "biuf" else a


def _result(y) -> np.ndarray:
    """An arithmetic result as PyTorch types it here: float32 for any float, else its integer or bool dtype."""
    y = np.asarray(y)
    return y.astype(F32) if y.dtype.kind in "fc" else y


def _integral(*operands) -> bool:
    return all(np.asarray(v).dtype.kind in "biu" for v in operands)


def add(self, other, alpha=1):
    a, b = _operand(self), _operand(other)
    return _result(a + b if alpha == 1 else a + alpha * b)


def sub(self, other, alpha=1):
    a, b = _operand(self), _operand(other)
    return _result(a - b if alpha == 1 else a - alpha * b)


def rsub(self, other, alpha=1):
    return sub(other, self, alpha)


def mul(self, other):
    return _result(_operand(self) * _operand(other))


def div(self, other, *, rounding_mode=None):
    """True division, or rounded: "trunc" (toward zero) and "floor" (Python's floor division, as torch)."""
    a, b = _operand(self), _operand(other)
    with np.errstate(all="ignore"):
        if rounding_mode is None:
            return _result(np.true_divide(a, b))
        if rounding_mode == "floor":
            return _result(np.floor_divide(a, b))
        if rounding_mode == "trunc":
            if _integral(a, b):
                q = np.floor_divide(a, b)
                return _result(q + ((np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0))))
            return _result(np.trunc(np.true_divide(a, b)))
    raise NotImplementedError(f"div with rounding_mode={rounding_mode!r} (None, 'trunc' and 'floor' are supported)")


def floor_divide(self, other):
    return div(self, other, rounding_mode="floor")


def pow_(self, exponent):
    """``self ** exponent`` for Tensor_Scalar, Tensor_Tensor and Scalar (a number to a tensor power)."""
    a, b = _operand(self), _operand(exponent)
    if _integral(a, b):
        return _result(np.power(a, b))
    wide = [np.asarray(v, np.float64) if isinstance(v, np.ndarray) else float(v) for v in (a, b)]
    with np.errstate(all="ignore"):
        return _result(np.power(*wide))


def maximum(self, other):
    return _result(np.maximum(_operand(self), _operand(other)))


def minimum(self, other):
    return _result(np.minimum(_operand(self), _operand(other)))


def neg(self):
    return _result(np.negative(np.asarray(self)))


def abs_(self):
    return _result(np.abs(np.asarray(self)))


def _wide(fn, x) -> np.ndarray:
    """A float function of a tensor, in float64 and rounded once to float32."""
    with np.errstate(all="ignore"):
        return np.asarray(fn(np.asarray(x, np.float64)), np.float64).astype(F32)


def exp(self):
    return _wide(np.exp, self)


def log(self):
    return _wide(np.log, self)


def sqrt(self):
    return _wide(np.sqrt, self)


def rsqrt(self):
    return _wide(lambda x: 1 / np.sqrt(x), self)


def reciprocal(self):
    return _wide(lambda x: 1 / x, self)


_erf = np.frompyfunc(math.erf, 1, 1)


def erf(self):
    return _wide(lambda x: _erf(x).astype(np.float64), self)


def log1p(self):
    return _wide(np.log1p, self)


def expm1(self):
    return _wide(np.expm1, self)


def log2(self):
    return _wide(np.log2, self)


def sin(self):
    return _wide(np.sin, self)


def cos(self):
    return _wide(np.cos, self)


def square(self):
    return mul(self, self)


def sign(self):
    return _result(np.sign(np.asarray(self)))


def floor(self):
    return _result(np.floor(np.asarray(self)))


def ceil(self):
    return _result(np.ceil(np.asarray(self)))


def round_(self, *, decimals: int = 0):
    """Half to even, as PyTorch; ``decimals`` scales by 10^decimals around it."""
    x = np.asarray(self)
    if x.dtype.kind != "f" or not decimals:
        return _result(np.round(x))
    ten = F32(10.0 ** abs(decimals))
    return (np.round(x * ten) / ten if decimals > 0 else np.round(x / ten) * ten).astype(F32)


def clamp(self, min=None, max=None):  # noqa: A002  (ATen's argument names)
    x = np.asarray(self)
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.clip(x, lo, hi).astype(x.dtype)


def clamp_min(self, min):  # noqa: A002
    return clamp(self, min=min)


def clamp_max(self, max):  # noqa: A002
    return clamp(self, max=max)


def where(condition, self=None, other=None):
    if self is None or other is None:
        raise NotImplementedError("where with only a condition (it returns index tensors)")
    return _result(np.where(np.asarray(condition, bool), _operand(self), _operand(other)))


def masked_fill(self, mask, value):
    x = np.asarray(self)
    return np.where(np.asarray(mask, bool), _operand(value), x).astype(x.dtype)


# ---- comparisons and logic ----------------------------------------------------------------------
#
# Bool results (the frontend records non-float values as int64; the arrays stay bool). The ops that take a
# mask (where, masked_fill, scaled_dot_product_attention) read an integer one as bool.


def eq(self, other):
    return np.equal(_operand(self), _operand(other))


def ne(self, other):
    return np.not_equal(_operand(self), _operand(other))


def lt(self, other):
    return np.less(_operand(self), _operand(other))


def le(self, other):
    return np.less_equal(_operand(self), _operand(other))


def gt(self, other):
    return np.greater(_operand(self), _operand(other))


def ge(self, other):
    return np.greater_equal(_operand(self), _operand(other))


def logical_not(self):
    return np.logical_not(np.asarray(self))


def logical_and(self, other):
    return np.logical_and(np.asarray(self), np.asarray(other))


def logical_or(self, other):
    return np.logical_or(np.asarray(self), np.asarray(other))


def bitwise_not(self):
    return np.invert(np.asarray(self))


def bitwise_and(self, other):
    return np.bitwise_and(np.asarray(self), _operand(other))


def bitwise_or(self, other):
    return np.bitwise_or(np.asarray(self), _operand(other))


# ---- constructors -------------------------------------------------------------------------------


def _dtype(name, default) -> np.dtype:
    if name is None:
        return np.asarray(default).dtype
    try:
        return np.dtype(name)
    except TypeError:
        raise NotImplementedError(f"dtype={name!r}: the host has no such NumPy dtype") from None


def full_like(self, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return np.full(np.shape(self), fill_value, _dtype(dtype, self))


def zeros_like(self, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return full_like(self, 0, dtype=dtype)


def ones_like(self, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return full_like(self, 1, dtype=dtype)


def full(size, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None):
    """A constant tensor; without ``dtype`` bool, int64 or float32 after the fill value, as PyTorch."""
    default = np.bool_ if isinstance(fill_value, bool) else np.int64 if isinstance(fill_value, int) else F32
    return np.full(tuple(size), fill_value, _dtype(dtype, np.zeros(0, default)))


def zeros(size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(size, 0.0, dtype=dtype)


def ones(size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(size, 1.0, dtype=dtype)


def scalar_tensor(s, *, dtype=None, layout=None, device=None, pin_memory=None):
    return np.asarray(s, _dtype(dtype, np.zeros(0, F32)))


def arange(start, end=None, step=1, *, dtype=None, layout=None, device=None, pin_memory=None):
    """arange(end), arange.start and arange.start_step: int64 when every bound is an integer, else float32."""
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, int) for v in (start, end, step))
    y = np.arange(start, end, step, dtype=np.int64 if integral else np.float64)
    return y.astype(_dtype(dtype, np.zeros(0, np.int64 if integral else F32)))


# ---- activations ------------------------------------------------------------------------------


def relu(self):
    return np.maximum(_f32(self), F32(0))


def hardtanh(self, min_val=-1, max_val=1):
    return np.clip(_f32(self), F32(min_val), F32(max_val))


def relu6(self):
    return hardtanh(self, 0, 6)


def hardsigmoid(self):
    """min(max(x + 3, 0), 6) / 6 in float32, PyTorch's own steps."""
    return (np.clip(_f32(self) + F32(3), F32(0), F32(6)) / F32(6)).astype(F32)


def hardswish(self):
    x = _f32(self)
    return (x * np.clip(x + F32(3), F32(0), F32(6)) / F32(6)).astype(F32)


def leaky_relu(self, negative_slope=0.01):
    x = _f32(self)
    return np.where(x > 0, x, x * F32(negative_slope)).astype(F32)


def elu(self, alpha=1, scale=1, input_scale=1):
    x = np.asarray(self, np.float64)
    with np.errstate(all="ignore"):
        y = np.where(x > 0, x * scale, np.expm1(x * input_scale) * (alpha * scale))
    return y.astype(F32)


def softplus(self, beta=1, threshold=20):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    x = np.asarray(self, np.float64)
    with np.errstate(all="ignore"):
        y = np.where(x * beta > threshold, x, np.log1p(np.exp(x * beta)) / beta)
    return y.astype(F32)


def silu(self):
    return _wide(lambda x: x / (1 + np.exp(-x)), self)


def mish(self):
    return _wide(lambda x: x * np.tanh(np.logaddexp(0, x)), self)


def gelu(self, *, approximate: str = "none"):
    if approximate not in ("none", "tanh"):
        raise NotImplementedError(f"gelu with approximate={approximate!r}")
    x64 = np.asarray(self, np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    else:
        y = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)).astype(np.float64))
    return y.astype(F32)


def sigmoid(self):
    return _wide(lambda x: 1 / (1 + np.exp(-x)), self)


def tanh(self):
    return np.tanh(_f32(self))


def dropout(input, p, train):  # noqa: A002
    """Dropout (and its feature / alpha variants) at inference: the identity."""
    if train:
        raise NotImplementedError(f"dropout with train=True (p={p}): export the model in eval mode")
    return np.asarray(input)


# ---- reductions and normalisation ---------------------------------------------------------------


def _axis(dim):
    """An ATen dim argument as a NumPy axis: None or [] is every axis (as ATen's reductions take it)."""
    if dim is None or (isinstance(dim, list | tuple) and not dim):
        return None
    return tuple(dim) if isinstance(dim, list | tuple) else dim


def softmax(self, dim: int, half_to_float=False):
    x = _f32(self)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return (e / e.sum(axis=dim, keepdims=True)).astype(F32)


def log_softmax(self, dim: int, half_to_float=False):
    x = np.asarray(self, np.float64)
    m = x.max(axis=dim, keepdims=True)
    return (x - m - np.log(np.exp(x - m).sum(axis=dim, keepdims=True))).astype(F32)


def sum_(self, dim=None, keepdim: bool = False, *, dtype=None):
    x = np.asarray(self)
    floating = x.dtype.kind == "f" or (dtype is not None and np.dtype(dtype).kind == "f")
    y = x.sum(axis=_axis(dim), keepdims=keepdim, dtype=np.float64 if floating else np.int64)
    return np.asarray(y, F32 if floating else _dtype(dtype, y))


def mean(self, dim=None, keepdim: bool = False, *, dtype=None):
    return np.asarray(_f32(self).mean(axis=_axis(dim), keepdims=keepdim, dtype=np.float64), F32)


def amax(self, dim=(), keepdim: bool = False):
    return np.asarray(np.asarray(self).max(axis=_axis(dim), keepdims=keepdim))


def amin(self, dim=(), keepdim: bool = False):
    return np.asarray(np.asarray(self).min(axis=_axis(dim), keepdims=keepdim))


def _extreme(self, dim, keepdim, index, name: str, pick, arg):
    if dim is None:
        return np.asarray(pick(np.asarray(self)))
    if not isinstance(dim, int | np.integer):  # max.other / min.other: elementwise
        return _result((np.maximum if name == "max" else np.minimum)(_operand(self), _operand(dim)))
    x = np.asarray(self)
    if index == 0:
        return np.asarray(pick(x, axis=dim, keepdims=keepdim))
    if index == 1:
        return np.asarray(arg(x, axis=dim, keepdims=keepdim), np.int64)
    raise NotImplementedError(f"{name}.dim output index={index!r} (0: values, 1: indices)")


def max_(self, dim=None, keepdim: bool = False, *, index=0):
    """max.default (of everything), max.other (elementwise) and piece ``index`` of max.dim (values, indices)."""
    return _extreme(self, dim, keepdim, index, "max", np.max, np.argmax)


def min_(self, dim=None, keepdim: bool = False, *, index=0):
    """min.default, min.other and piece ``index`` of min.dim (values, indices)."""
    return _extreme(self, dim, keepdim, index, "min", np.min, np.argmin)


def argmax(self, dim=None, keepdim: bool = False):
    return np.asarray(np.argmax(np.asarray(self), axis=dim, keepdims=keepdim), np.int64)


def argmin(self, dim=None, keepdim: bool = False):
    return np.asarray(np.argmin(np.asarray(self), axis=dim, keepdims=keepdim), np.int64)


def var(self, dim=None, unbiased: bool = True, keepdim: bool = False, *, correction=None):
    """var.default (self, unbiased), var.dim and var.correction: sum((x - mean)^2) / (n - correction)."""
    if isinstance(dim, bool):  # var.default's second argument is `unbiased`
        dim, unbiased = None, dim
    ddof = (1 if unbiased else 0) if correction is None else correction
    x = np.asarray(self, np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(x.var(axis=_axis(dim), ddof=ddof, keepdims=keepdim)).astype(F32)


def std(self, dim=None, unbiased: bool = True, keepdim: bool = False, *, correction=None):
    return np.sqrt(var(self, dim, unbiased, keepdim, correction=correction))


def vector_norm(self, ord=2, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A002
    """linalg_vector_norm: (sum |x|^ord)^(1 / ord); inf / -inf the largest / smallest |x|, 0 the nonzero count."""
    a, axis = np.abs(np.asarray(self, np.float64)), _axis(dim)
    if ord == math.inf:
        y = a.max(axis=axis, keepdims=keepdim)
    elif ord == -math.inf:
        y = a.min(axis=axis, keepdims=keepdim)
    elif ord == 0:
        y = (a != 0).sum(axis=axis, keepdims=keepdim)
    elif ord == 2:
        y = np.sqrt(np.square(a).sum(axis=axis, keepdims=keepdim))
    else:
        with np.errstate(all="ignore"):
            y = (a**ord).sum(axis=axis, keepdims=keepdim) ** (1 / ord)
    return np.asarray(y).astype(F32)


def layer_norm(input, normalized_shape: Sequence[int], weight=None, bias=None, eps: float = 1e-5,  # noqa: A002
               cudnn_enable=True):
    x = _f32(input)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y.astype(F32)


def rms_norm(input, normalized_shape: Sequence[int], weight=None, eps=None):  # noqa: A002
    """x / sqrt(mean(x^2) + eps) * weight over the trailing dims; eps None is float32's machine epsilon."""
    x = np.asarray(input, np.float64)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    eps = float(np.finfo(F32).eps) if eps is None else eps
    y = x / np.sqrt(np.square(x).mean(axis=axes, keepdims=True) + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    return y.astype(F32)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5, cudnn_enabled=True):  # noqa: A002
    x = np.asarray(input, np.float64)
    n, c = x.shape[:2]
    g = x.reshape(n, num_groups, -1)
    mean = g.mean(axis=2, keepdims=True)
    var = np.square(g - mean).mean(axis=2, keepdims=True)
    y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * np.asarray(weight, np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(shape)
    return y.astype(F32)


def batch_norm(input, weight, bias, running_mean, running_var, training: bool, momentum: float,  # noqa: A002
               eps: float, cudnn_enabled=True):
    """Inference BatchNorm on axis 1 (any rank from 2): x * alpha + beta with PyTorch's float32 terms
    alpha = weight / sqrt(var + eps), beta = bias - mean * alpha."""
    if training:
        raise NotImplementedError("batch_norm with training=True (batch statistics): export the model in eval mode")
    if running_mean is None or running_var is None:
        raise NotImplementedError("batch_norm with running_mean=None or running_var=None (batch statistics)")
    x = _f32(input)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    alpha = F32(1) / np.sqrt(_f32(running_var) + F32(eps))
    if weight is not None:
        alpha = alpha * _f32(weight)
    beta = -_f32(running_mean) * alpha if bias is None else _f32(bias) - _f32(running_mean) * alpha
    return (x * alpha.reshape(shape) + beta.reshape(shape)).astype(F32)


def native_batch_norm_legit_no_training(input, weight, bias, running_mean, running_var, momentum: float,  # noqa: A002
                                        eps: float, *, index: int = 0):
    """Output 0 of ``_native_batch_norm_legit_no_training`` (its (out, mean, invstd) tuple): the normalised tensor."""
    if index != 0:
        raise NotImplementedError(f"_native_batch_norm_legit_no_training output index={index!r} (the saved "
                                  "statistics); output 0 is supported")
    return batch_norm(input, weight, bias, running_mean, running_var, False, momentum, eps)


# ---- padding ----------------------------------------------------------------------------------


def _pad_widths(ndim: int, pad: Sequence[int]) -> list[tuple[int, int]]:
    """ATen's pad list (last dim first: left, right, then the dim before...) as NumPy pad widths."""
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise NotImplementedError(f"pad={list(pad)} for a {ndim}-d tensor")
    widths = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        widths[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return widths


def constant_pad_nd(self, pad: Sequence[int], value=0):
    """Constant padding; a negative amount crops, as in PyTorch."""
    x = np.asarray(self)
    widths = _pad_widths(x.ndim, pad)
    crop = tuple(slice(max(-lo, 0), x.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(widths))
    return np.pad(x[crop], [(max(lo, 0), max(hi, 0)) for lo, hi in widths], constant_values=value)


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(self, pad: Sequence[int], mode: str = "constant", value=None):
    if mode == "constant":
        return constant_pad_nd(self, pad, 0 if value is None else value)
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad with mode={mode!r}")
    widths = _pad_widths(np.ndim(self), pad)
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        raise NotImplementedError(f"pad={list(pad)} (negative) with mode={mode!r}")
    return np.pad(np.asarray(self), widths, mode=_PAD_MODES[mode])


# ---- pooling ----------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = list(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _pool_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size: floor or ceil of the window count; in ceil mode the last window
    must start inside the input or its left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(x: np.ndarray, kernel, stride, padding, dilation, fill: float, ceil_mode: bool = False) -> np.ndarray:
    """(..., Ho, Wo, kh, kw) windows of an (..., H, W) array padded with `fill` (on the right also as far as
    ceil mode's last window reaches)."""
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride if stride else kernel)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    h, w = x.shape[-2:]
    ho, wo = _pool_size(h, kh, sh, ph, dh, ceil_mode), _pool_size(w, kw, sw, pw, dw, ceil_mode)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    rh, rw = max(ph, (ho - 1) * sh + eh - h - ph), max(pw, (wo - 1) * sw + ew - w - pw)
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, rh), (pw, rw)], constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(-2, -1))
    return win[..., : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw]


def max_pool2d(self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode: bool = False):
    x = np.asarray(self)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return _windows(x, kernel_size, stride, padding, dilation, fill, ceil_mode).max(axis=(-2, -1)).astype(x.dtype)


def _avg_counts(size: int, kernel: int, stride: int, pad: int, out: int, include_pad: bool) -> np.ndarray:
    """Each window's divisor along one axis, as PyTorch counts it: the window clipped to the padded input
    (count_include_pad) or to the input itself."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def avg_pool2d(self, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x = _f32(self)
    win = _windows(x, kernel_size, stride, padding, 1, 0.0, ceil_mode)
    total = _window_sum(win)
    if divisor_override:
        return (total / F32(divisor_override)).astype(F32)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride if stride else kernel_size), _pair(padding)
    ho, wo = total.shape[-2:]
    ch = _avg_counts(x.shape[-2], kh, sh, ph, ho, count_include_pad)
    cw = _avg_counts(x.shape[-1], kw, sw, pw, wo, count_include_pad)
    return (total / (ch[:, None] * cw[None, :]).astype(F32)).astype(F32)


def _window_sum(win: np.ndarray) -> np.ndarray:
    """Window sums in float32, row by row as PyTorch's CPU kernel adds them (same rounding)."""
    total = np.zeros(win.shape[:-2], F32)
    for i in range(win.shape[-2]):
        for j in range(win.shape[-1]):
            total = total + win[..., i, j]
    return total


def _one(v, name: str) -> int:
    """A 1-d pooling argument (an int or a one-element list)."""
    v = [v] if isinstance(v, int) else list(v)
    if len(v) != 1:
        raise NotImplementedError(f"{name}={v} for a 1-d op")
    return int(v[0])


def max_pool1d(self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode: bool = False):
    k = _one(kernel_size, "kernel_size")
    s = _one(stride, "stride") if stride else k
    y = max_pool2d(np.asarray(self)[..., None, :], (1, k), (1, s), (0, _one(padding, "padding")),
                   (1, _one(dilation, "dilation")), ceil_mode)
    return y[..., 0, :]


def avg_pool1d(self, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True):
    k = _one(kernel_size, "kernel_size")
    s = _one(stride, "stride") if stride else k
    y = avg_pool2d(np.asarray(self)[..., None, :], (1, k), (1, s), (0, _one(padding, "padding")), ceil_mode,
                   count_include_pad)
    return y[..., 0, :]


def _adaptive_cells(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling cells along one axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _adaptive_size(output_size, shape) -> tuple[int, int]:
    oh, ow = _pair(output_size)
    return shape[-2] if oh is None else oh, shape[-1] if ow is None else ow


def adaptive_avg_pool2d(self, output_size):
    x = _f32(self)
    oh, ow = _adaptive_size(output_size, x.shape)
    out = np.zeros(x.shape[:-2] + (oh, ow), F32)
    for i, (h0, h1) in enumerate(_adaptive_cells(x.shape[-2], oh)):
        for j, (w0, w1) in enumerate(_adaptive_cells(x.shape[-1], ow)):
            out[..., i, j] = _window_sum(x[..., h0:h1, w0:w1]) / F32((h1 - h0) * (w1 - w0))
    return out


def adaptive_max_pool2d(self, output_size, *, index: int = 0):
    """Piece ``index`` of adaptive_max_pool2d's (values, indices): indices are flat h * W + w in each plane."""
    if index not in (0, 1):
        raise NotImplementedError(f"adaptive_max_pool2d output index={index!r} (0: values, 1: indices)")
    x = np.asarray(self)
    oh, ow = _adaptive_size(output_size, x.shape)
    width = x.shape[-1]
    out = np.zeros(x.shape[:-2] + (oh, ow), x.dtype if index == 0 else np.int64)
    for i, (h0, h1) in enumerate(_adaptive_cells(x.shape[-2], oh)):
        for j, (w0, w1) in enumerate(_adaptive_cells(width, ow)):
            cell = x[..., h0:h1, w0:w1].reshape(x.shape[:-2] + (-1,))
            if index == 0:
                out[..., i, j] = cell.max(axis=-1)
            else:
                k = cell.argmax(axis=-1)
                out[..., i, j] = (h0 + k // (w1 - w0)) * width + w0 + k % (w1 - w0)
    return out


def adaptive_avg_pool1d(self, output_size):
    return adaptive_avg_pool2d(np.asarray(self)[..., None, :], (1, _one(output_size, "output_size")))[..., 0, :]


def adaptive_max_pool1d(self, output_size, *, index: int = 0):
    y = adaptive_max_pool2d(np.asarray(self)[..., None, :], (1, _one(output_size, "output_size")), index=index)
    return y[..., 0, :]


# ---- shape ------------------------------------------------------------------------------------


def flatten(self, start_dim: int = 0, end_dim: int = -1):
    x = np.asarray(self)
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1 :])


def unflatten(self, dim: int, sizes: Sequence[int]):
    x = np.asarray(self)
    d = dim % x.ndim
    return x.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1 :])


def reshape(self, shape):
    return np.asarray(self).reshape(tuple(shape))


def view_as(self, other):
    return np.asarray(self).reshape(np.shape(other))


def permute(self, dims):
    return np.transpose(np.asarray(self), tuple(dims))


def transpose(self, dim0: int, dim1: int):
    return np.swapaxes(np.asarray(self), dim0, dim1)


def swapaxes(self, axis0: int, axis1: int):
    return np.swapaxes(np.asarray(self), axis0, axis1)


def t(self):
    return np.asarray(self).T


def unsqueeze(self, dim: int):
    return np.expand_dims(np.asarray(self), dim)


def squeeze(self, dim=None):
    """squeeze (every size-1 dim), squeeze.dim and squeeze.dims: a named dim not of size 1 stays."""
    x = np.asarray(self)
    if dim is None:
        return np.squeeze(x)
    if x.ndim == 0:
        return x
    dims = [dim] if isinstance(dim, int) else list(dim)
    return np.squeeze(x, axis=tuple(sorted({d % x.ndim for d in dims if x.shape[d] == 1})))


def expand(self, size: Sequence[int], *, implicit: bool = False):
    """Broadcast to ``size``; -1 keeps a dim's size, new dims lead."""
    x = np.asarray(self)
    lead = len(size) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else int(s) for i, s in enumerate(size))
    return np.broadcast_to(x, shape).copy()


def expand_as(self, other):
    return np.broadcast_to(np.asarray(self), np.shape(other)).copy()


def repeat(self, repeats: Sequence[int]):
    x = np.asarray(self)
    if len(repeats) < x.ndim:
        raise NotImplementedError(f"repeat with repeats={list(repeats)}: fewer entries than the tensor's {x.ndim} dims")
    return np.tile(x, tuple(repeats))


def flip(self, dims: Sequence[int]):
    return np.flip(np.asarray(self), axis=tuple(dims))


def roll(self, shifts, dims=()):
    """Shift with wrap-around; without ``dims`` over the flattened tensor."""
    x = np.asarray(self)
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    if not dims:
        return np.roll(x, shifts[0])
    return np.roll(x, tuple(shifts), axis=tuple([dims] if isinstance(dims, int) else dims))


def tril(self, diagonal: int = 0):
    return np.tril(np.asarray(self), diagonal)


def triu(self, diagonal: int = 0):
    return np.triu(np.asarray(self), diagonal)


def cat(tensors, dim: int = 0):
    arrays = [np.asarray(a) for a in tensors]
    kept = [a for a in arrays if a.shape != (0,)] or arrays[:1]  # ATen skips legacy empty 1-d tensors
    return np.concatenate(kept, axis=dim)


def stack(tensors, dim: int = 0):
    return np.stack([np.asarray(a) for a in tensors], axis=dim)


def identity(self, *args, **kwargs):
    return np.asarray(self)


def to(self, *args, **kwargs):
    """A dtype conversion: ``to.dtype``, ``to.device`` (device, dtype), ``to.other`` (another tensor's dtype) and
    ``_to_copy``; dtypes arrive by name, devices and layouts as None."""
    x = np.asarray(self)
    dtype = kwargs.get("dtype")
    for a in args:
        if dtype is None and isinstance(a, str):
            dtype = a
        elif dtype is None and isinstance(a, np.ndarray):
            dtype = a.dtype
    return x.astype(_dtype(dtype, x)) if dtype is not None else x


def type_as(self, other):
    return np.asarray(self).astype(np.asarray(other).dtype)


# ---- indexing ---------------------------------------------------------------------------------


def select(self, dim: int, index: int):
    return np.take(np.asarray(self), int(index), axis=dim)


def slice_(self, dim: int = 0, start=None, end=None, step: int = 1):
    """slice.Tensor: Python slicing semantics (negative and out-of-range start/end are clamped, None is open)."""
    if step < 1:
        raise NotImplementedError(f"slice with step={step} (must be positive)")
    x = np.asarray(self)
    idx = [slice(None)] * x.ndim
    idx[dim] = slice(start, end, step)
    return x[tuple(idx)]


def narrow(self, dim: int, start, length: int):
    x = np.asarray(self)
    start = int(start)
    start = start + x.shape[dim] if start < 0 else start
    return slice_(x, dim, start, start + int(length))


def index_select(self, dim: int, index):
    return np.take(np.asarray(self), np.asarray(index, np.int64).reshape(-1), axis=dim)


def gather(self, dim: int, index, *, sparse_grad: bool = False):
    """out[i][j][k] = self[index[i][j][k]][j][k] (dim 0); index may be smaller than self in the other dims."""
    x, idx = np.asarray(self), np.asarray(index, np.int64)
    if x.ndim == 0:
        return x[()] * np.ones(idx.shape, x.dtype)
    d = dim % x.ndim
    part = tuple(slice(None) if i == d else slice(0, idx.shape[i]) for i in range(x.ndim))
    return np.take_along_axis(x[part], idx, axis=d)


def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """Rows of the table by index (token embeddings)."""
    return np.asarray(weight)[np.asarray(indices, np.int64)]


# ---- pieces of ops with several outputs -------------------------------------------------------
#
# ``getitem(op(...), i)`` of split / split_with_sizes / chunk / unbind is one host op per piece: the kind's
# function takes the op's own arguments and the piece as keyword-only ``index``.


def _piece(x: np.ndarray, dim: int, sizes: Sequence[int], index: int, what: str) -> np.ndarray:
    if not -len(sizes) <= index < len(sizes):
        raise IndexError(f"{what}: index={index} of {len(sizes)} pieces")
    index %= len(sizes)
    start = sum(sizes[:index])
    return slice_(x, dim, start, start + sizes[index])


def split_piece(self, split_size, dim: int = 0, *, index: int):
    """Piece ``index`` of split.Tensor (pieces of split_size, the last one shorter) or split.sizes."""
    x = np.asarray(self)
    n = x.shape[dim]
    if not isinstance(split_size, int):
        return _piece(x, dim, [int(s) for s in split_size], index, "split")
    if split_size <= 0:
        raise NotImplementedError(f"split with split_size={split_size}")
    sizes = [min(split_size, n - s) for s in range(0, n, split_size)] or [0]
    return _piece(x, dim, sizes, index, "split")


def split_with_sizes_piece(self, split_sizes, dim: int = 0, *, index: int):
    return _piece(np.asarray(self), dim, [int(s) for s in split_sizes], index, "split_with_sizes")


def chunk_piece(self, chunks: int, dim: int = 0, *, index: int):
    """Piece ``index`` of chunk: pieces of ceil(n / chunks), so there may be fewer than ``chunks``."""
    x = np.asarray(self)
    n = x.shape[dim]
    size = -(-n // chunks)
    sizes = [min(size, n - s) for s in range(0, n, size)] if size else [0] * chunks
    return _piece(x, dim, sizes, index, "chunk")


def unbind_piece(self, dim: int = 0, *, index: int):
    x = np.asarray(self)
    if not -x.shape[dim] <= index < x.shape[dim]:
        raise IndexError(f"unbind: index={index} of {x.shape[dim]} pieces")
    return select(x, dim, index)


# ---- attention --------------------------------------------------------------------------------


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 *, scale=None, enable_gqa: bool = False):
    """softmax(q @ k^T * scale + mask) @ v in float64. A bool mask marks what takes part (True), a float mask is
    added; is_causal keeps key j <= query i (top-left aligned; with a mask too, both apply, as PyTorch's fused
    CPU kernel does, where its math kernel refuses the pair); a query row nothing takes part in gives zeros, as
    PyTorch's safe softmax; enable_gqa repeats each K/V head for its group of query heads."""
    if dropout_p:
        raise NotImplementedError(f"scaled_dot_product_attention with dropout_p={dropout_p} (0.0 at inference)")
    q, k, v = (np.asarray(a, np.float64) for a in (query, key, value))
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        if q.shape[-3] % k.shape[-3] or q.shape[-3] % v.shape[-3]:
            raise NotImplementedError(f"enable_gqa with {q.shape[-3]} query heads and {k.shape[-3]} key heads")
        k = np.repeat(k, q.shape[-3] // k.shape[-3], axis=-3)
        v = np.repeat(v, q.shape[-3] // v.shape[-3], axis=-3)
    lq, lk = q.shape[-2], k.shape[-2]
    s = (q @ np.swapaxes(k, -1, -2)) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        s = np.where(np.tril(np.ones((lq, lk), bool)), s, -np.inf)
    if attn_mask is not None:
        m = np.asarray(attn_mask)  # an integer mask is a bool one the graph holds as int64
        s = np.where(m.astype(bool), s, -np.inf) if m.dtype.kind in "biu" else s + m.astype(np.float64)
    top = s.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.exp(s - np.where(np.isfinite(top), top, 0))
    total = e.sum(axis=-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)
    return (p @ v).astype(F32)


# ---- float linear algebra -----------------------------------------------------------------------


def matmul(self, other):
    return np.matmul(_f32(self), _f32(other)).astype(F32)


def addmm(self, mat1, mat2, *, beta=1, alpha=1):
    y = alpha * np.matmul(np.asarray(mat1, np.float64), np.asarray(mat2, np.float64))
    return (y + beta * np.asarray(self, np.float64) if beta else y).astype(F32)


def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
    return addmm(self, batch1, batch2, beta=beta, alpha=alpha)


def einsum(equation: str, tensors, *, path=None):
    return np.einsum(equation, *[np.asarray(a, np.float64) for a in tensors]).astype(F32)


def linear(input, weight, bias=None):  # noqa: A002
    y = np.matmul(_f32(input), _f32(weight).T)
    return (y + _f32(bias) if bias is not None else y).astype(F32)


def _conv_padding(padding, kernel: Sequence[int], dilation: Sequence[int]) -> list[tuple[int, int]]:
    """Per spatial dim (before, after) padding: ints, or "valid" / "same" (the odd one extra after, as PyTorch)."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    if isinstance(padding, str):
        raise NotImplementedError(f"convolution with padding={padding!r}")
    p = [padding] * len(kernel) if isinstance(padding, int) else list(padding)
    p = p * len(kernel) if len(p) == 1 else p
    return [(int(a), int(a)) for a in p]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):  # noqa: A002
    """Float convolution, NCHW (or unbatched CHW), by windows (the host's fallback for an unquantized conv);
    conv2d.padding's "valid" / "same" too."""
    x, w = _f32(input), _f32(weight)
    if x.ndim == 3:
        return conv2d(x[None], w, bias, stride, padding, dilation, groups)[0]
    cout, cin_g, kh, kw = w.shape
    pads = _conv_padding(padding, (kh, kw), _pair(dilation))
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    win = _windows(x, (kh, kw), stride, 0, dilation, 0.0)  # N, C, Ho, Wo, kh, kw
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


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):  # noqa: A002
    """Float 1-d convolution, NCL (or unbatched CL): conv2d on a unit height."""
    w = _f32(weight)
    d = _one(dilation, "dilation")
    p = padding if isinstance(padding, str) else _one(padding, "padding")
    if isinstance(p, str):
        (lo, hi), = _conv_padding(p, (w.shape[-1],), (d,))
        x = np.pad(_f32(input), [(0, 0)] * (np.ndim(input) - 1) + [(lo, hi)])
        p = 0
    else:
        x = _f32(input)
    y = conv2d(x[..., None, :], w[:, :, None, :], bias, (1, _one(stride, "stride")), (0, p), (1, d), groups)
    return y[..., 0, :]


HOST_OPS: dict[str, Callable[..., np.ndarray]] = {
    "quantize": quantize, "dequantize": dequantize, "dequantize_acc": dequantize_acc,
    # elementwise
    "add": add, "sub": sub, "rsub": rsub, "mul": mul, "div": div, "floor_divide": floor_divide, "pow": pow_,
    "maximum": maximum, "minimum": minimum, "neg": neg, "abs": abs_, "exp": exp, "log": log, "sqrt": sqrt,
    "rsqrt": rsqrt, "reciprocal": reciprocal, "erf": erf, "clamp": clamp, "clamp_min": clamp_min,
    "clamp_max": clamp_max, "where": where, "masked_fill": masked_fill, "log1p": log1p, "expm1": expm1,
    "log2": log2, "sin": sin, "cos": cos, "square": square, "sign": sign, "floor": floor, "ceil": ceil,
    "round": round_,
    # comparisons and logic
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge, "logical_not": logical_not,
    "logical_and": logical_and, "logical_or": logical_or, "bitwise_not": bitwise_not, "bitwise_and": bitwise_and,
    "bitwise_or": bitwise_or,
    # constructors
    "full_like": full_like, "zeros_like": zeros_like, "ones_like": ones_like, "full": full, "zeros": zeros,
    "ones": ones, "scalar_tensor": scalar_tensor, "arange": arange,
    # activations
    "relu": relu, "relu6": relu6, "hardtanh": hardtanh, "hardswish": hardswish, "hardsigmoid": hardsigmoid,
    "leaky_relu": leaky_relu, "elu": elu, "softplus": softplus, "silu": silu, "mish": mish, "gelu": gelu,
    "sigmoid": sigmoid, "tanh": tanh, "dropout": dropout,
    # reductions and normalisation
    "softmax": softmax, "log_softmax": log_softmax, "sum": sum_, "mean": mean, "amax": amax, "amin": amin,
    "max": max_, "min": min_, "argmax": argmax, "argmin": argmin, "var": var, "std": std,
    "vector_norm": vector_norm, "layer_norm": layer_norm, "rms_norm": rms_norm,
    "group_norm": group_norm, "batch_norm": batch_norm,
    "native_batch_norm_legit_no_training": native_batch_norm_legit_no_training,
    # padding and pooling
    "constant_pad_nd": constant_pad_nd, "pad": pad,
    "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d, "max_pool1d": max_pool1d, "avg_pool1d": avg_pool1d,
    "adaptive_avg_pool2d": adaptive_avg_pool2d, "adaptive_avg_pool1d": adaptive_avg_pool1d,
    "adaptive_max_pool2d": adaptive_max_pool2d, "adaptive_max_pool1d": adaptive_max_pool1d,
    # shape
    "flatten": flatten, "unflatten": unflatten, "reshape": reshape, "view_as": view_as, "permute": permute,
    "transpose": transpose, "swapaxes": swapaxes, "t": t, "unsqueeze": unsqueeze, "squeeze": squeeze,
    "expand": expand, "expand_as": expand_as, "repeat": repeat, "flip": flip, "roll": roll, "tril": tril,
    "triu": triu, "cat": cat, "stack": stack, "identity": identity, "to": to, "type_as": type_as,
    # indexing
    "select": select, "slice": slice_, "narrow": narrow, "index_select": index_select, "gather": gather,
    "embedding": embedding,
    # pieces of multi-output ops (keyword-only ``index``)
    "split_piece": split_piece, "split_with_sizes_piece": split_with_sizes_piece, "chunk_piece": chunk_piece,
    "unbind_piece": unbind_piece,
    # attention and float linear algebra
    "scaled_dot_product_attention": scaled_dot_product_attention,
    "matmul": matmul, "addmm": addmm, "baddbmm": baddbmm, "einsum": einsum, "linear": linear, "conv2d": conv2d,
    "conv1d": conv1d,
}

# Kinds whose ATen op returns several tensors: the function gives the one that keyword-only ``index`` picks
# (the getitem index; where ``index`` has a default, it is output 0).
PIECE_KINDS = frozenset({"split_piece", "split_with_sizes_piece", "chunk_piece", "unbind_piece",
                         "native_batch_norm_legit_no_training", "adaptive_max_pool2d", "adaptive_max_pool1d",
                         "max", "min"})

# Why each kind runs on the host (the compile report's note).
_LAYOUT = "layout change, done on the host (tensors move between NCHW and the array's NHWC there)"
_ACT = "float activation (a ReLU straight after a quantized GEMM is fused into it instead)"
_ELEMENTWISE = "elementwise arithmetic: the array has no elementwise unit"
HOST_REASONS: dict[str, str] = {
    **dict.fromkeys(("add", "sub", "rsub", "mul", "div", "floor_divide", "pow", "maximum", "minimum", "neg", "abs",
                     "exp", "log", "sqrt", "rsqrt", "reciprocal", "erf", "clamp", "clamp_min", "clamp_max", "where",
                     "masked_fill", "log1p", "expm1", "log2", "sin", "cos", "square", "sign", "floor", "ceil",
                     "round"), _ELEMENTWISE),
    **dict.fromkeys(("eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or", "bitwise_not",
                     "bitwise_and", "bitwise_or"), "comparison or logic (masks): the array has no elementwise unit"),
    **dict.fromkeys(("full_like", "zeros_like", "ones_like"), "a constant-filled tensor of an activation's shape"),
    **dict.fromkeys(("full", "zeros", "ones", "scalar_tensor", "arange"),
                    "a tensor made from constants (a position index, a mask), on the host"),
    **dict.fromkeys(("relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "leaky_relu", "elu", "softplus",
                     "silu", "mish", "gelu", "sigmoid", "tanh"), _ACT),
    "dropout": "dropout at inference: the identity",
    **dict.fromkeys(("sum", "vector_norm", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std"),
                    "reduction or scan"),
    **dict.fromkeys(("softmax", "log_softmax", "layer_norm", "rms_norm", "group_norm", "mean"),
                    "float normalisation or reduction"),
    **dict.fromkeys(("batch_norm", "native_batch_norm_legit_no_training"),
                    "BatchNorm not folded into a quantized conv before it: a per-channel affine on the host"),
    **dict.fromkeys(("constant_pad_nd", "pad"), "padding, done on the host"),
    **dict.fromkeys(("max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool2d",
                     "adaptive_avg_pool1d", "adaptive_max_pool2d", "adaptive_max_pool1d"),
                    "pooling: the array has no pooling unit"),
    **dict.fromkeys(("flatten", "unflatten", "reshape", "view_as", "permute", "transpose", "swapaxes", "t",
                     "unsqueeze", "squeeze", "cat", "stack", "identity"), _LAYOUT),
    **dict.fromkeys(("to", "type_as", "expand", "expand_as", "repeat", "flip", "roll", "tril", "triu"),
                    "dtype or shape change, done on the host"),
    **dict.fromkeys(("select", "slice", "narrow", "index_select", "gather", "split_piece", "split_with_sizes_piece",
                     "chunk_piece", "unbind_piece"), "indexing (a view or a gather of a tensor), done on the host"),
    "embedding": "table lookup (token embeddings)",
    "scaled_dot_product_attention": "attention (softmax of two activations' product), in float on the host",
    **dict.fromkeys(("matmul", "addmm", "baddbmm", "einsum"), "float matmul (of two activations, or not quantized)"),
    **dict.fromkeys(("linear", "conv2d", "conv1d"), "float layer: no quantized input and weight around it"),
    "quantize": "quantizing a float tensor (a graph input or a float host op's result)",
    "dequantize": "dequantizing an int8 tensor for a float host op or a graph output",
    "dequantize_acc": "float output (no quantize after the GEMM): the host scales its accumulators",
}


def _with_inplace(table: dict[str, str]) -> dict[str, str]:
    """Each ATen op with its in-place ``op_`` twin (same arguments, a new array here)."""
    return {**table, **{f"{name}_": kind for name, kind in table.items()}}


# ATen op (overload packet name, in-place twins included) -> host kind
ATEN_KINDS: dict[str, str] = {
    **_with_inplace({
        "add": "add", "sub": "sub", "mul": "mul", "div": "div", "pow": "pow", "neg": "neg", "abs": "abs",
        "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal", "erf": "erf",
        "clamp": "clamp", "clamp_min": "clamp_min", "clamp_max": "clamp_max", "masked_fill": "masked_fill",
        "log1p": "log1p", "expm1": "expm1", "log2": "log2", "sin": "sin", "cos": "cos", "square": "square",
        "sign": "sign", "floor": "floor", "ceil": "ceil", "round": "round", "tril": "tril", "triu": "triu",
        "relu": "relu", "relu6": "relu6", "hardtanh": "hardtanh", "hardswish": "hardswish",
        "hardsigmoid": "hardsigmoid", "leaky_relu": "leaky_relu", "elu": "elu",
        "silu": "silu", "mish": "mish", "gelu": "gelu", "sigmoid": "sigmoid", "tanh": "tanh",
        "dropout": "dropout", "feature_dropout": "dropout", "alpha_dropout": "dropout",
        "feature_alpha_dropout": "dropout",
        "unsqueeze": "unsqueeze", "squeeze": "squeeze", "transpose": "transpose", "swapaxes": "swapaxes",
        "t": "t",
    }),
    "softplus": "softplus", "rsub": "rsub", "true_divide": "div", "floor_divide": "floor_divide",
    "maximum": "maximum", "minimum": "minimum",
    "where": "where", "full_like": "full_like", "zeros_like": "zeros_like", "ones_like": "ones_like",
    "full": "full", "zeros": "zeros", "ones": "ones", "scalar_tensor": "scalar_tensor", "arange": "arange",
    "eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "logical_not": "logical_not",
    "logical_and": "logical_and", "logical_or": "logical_or", "bitwise_not": "bitwise_not",
    "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
    "softmax": "softmax", "_softmax": "softmax", "log_softmax": "log_softmax", "_log_softmax": "log_softmax",
    "sum": "sum", "mean": "mean", "amax": "amax", "amin": "amin", "max": "max", "min": "min", "argmax": "argmax",
    "argmin": "argmin", "var": "var", "std": "std",
    "linalg_vector_norm": "vector_norm", "layer_norm": "layer_norm", "rms_norm": "rms_norm",
    "group_norm": "group_norm", "batch_norm": "batch_norm",
    "_native_batch_norm_legit_no_training": "native_batch_norm_legit_no_training",
    "constant_pad_nd": "constant_pad_nd", "pad": "pad",
    "max_pool2d": "max_pool2d", "avg_pool2d": "avg_pool2d", "max_pool1d": "max_pool1d", "avg_pool1d": "avg_pool1d",
    "adaptive_avg_pool2d": "adaptive_avg_pool2d", "adaptive_avg_pool1d": "adaptive_avg_pool1d",
    "adaptive_max_pool2d": "adaptive_max_pool2d", "adaptive_max_pool1d": "adaptive_max_pool1d",
    "flatten": "flatten", "unflatten": "unflatten", "view": "reshape", "reshape": "reshape",
    "_unsafe_view": "reshape", "view_as": "view_as", "permute": "permute", "expand": "expand",
    "expand_as": "expand_as", "type_as": "type_as", "repeat": "repeat", "flip": "flip", "roll": "roll",
    "cat": "cat", "concat": "cat", "concatenate": "cat", "stack": "stack", "contiguous": "identity",
    "clone": "identity", "alias": "identity", "detach": "identity",
    "lift_fresh_copy": "identity", "to": "to", "_to_copy": "to",
    "select": "select", "slice": "slice", "narrow": "narrow", "index_select": "index_select", "gather": "gather",
    "embedding": "embedding",
    "split": "split_piece", "split_with_sizes": "split_with_sizes_piece", "chunk": "chunk_piece",
    "unbind": "unbind_piece",
    "scaled_dot_product_attention": "scaled_dot_product_attention",
    "matmul": "matmul", "bmm": "matmul", "mm": "matmul", "addmm": "addmm", "baddbmm": "baddbmm",
    "einsum": "einsum", "linear": "linear",
    "conv2d": "conv2d", "conv1d": "conv1d",
}
