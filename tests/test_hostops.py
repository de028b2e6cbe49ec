"""Host ops (compiler/hostops.py) against the PyTorch ops they stand for: every kind on random
float32 inputs in each argument form models export (in-place names, kwargs, negative dims,
ceil-mode pooling, bool and float attention masks, causal, GQA), called the way the frontend
calls them: the ATen node's args positionally, its kwargs by ATen name, tensors as arrays,
dtypes by name."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from compiler.hostops import ATEN_KINDS, HOST_OPS, HOST_REASONS, PIECE_KINDS

aten = torch.ops.aten
RTOL, ATOL = 1e-5, 1e-6


def _to_torch(v):
    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.copy())
    if isinstance(v, list):
        return [_to_torch(a) for a in v]
    return v


def _to_host(v):
    """An argument as the frontend hands it over: tensors as arrays, dtypes by name."""
    if isinstance(v, torch.dtype):
        return str(v).removeprefix("torch.")
    if isinstance(v, list):
        return [_to_host(a) for a in v]
    return v


def host(op, *args, index=None, **kwargs):
    """The host kind ATEN_KINDS gives ``op``'s packet, run on ``args`` / ``kwargs``."""
    packet = op._schema.name.split("::")[1]
    fn = HOST_OPS[ATEN_KINDS[packet]]
    extra = {} if index is None else {"index": index}
    return fn(*_to_host(list(args)), **{k: _to_host(v) for k, v in kwargs.items()}, **extra)


def check(op, *args, exact: bool = False, index=None, **kwargs):
    """The host kind of ``op`` agrees with ``op`` itself (output ``index`` of a multi-output op)."""
    want = op(*_to_torch(list(args)), **{k: _to_torch(v) for k, v in kwargs.items()})
    if index is not None:
        want = want[index]
    want = want.numpy()
    got = np.asarray(host(op, *args, index=index, **kwargs))
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)
    return got


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, 3, 5, 4)).astype(np.float32)


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---- the tables ---------------------------------------------------------------------------------


def test_every_kind_has_a_function_and_a_reason():
    assert set(ATEN_KINDS.values()) <= set(HOST_OPS)
    assert set(HOST_OPS) == set(HOST_REASONS)
    assert PIECE_KINDS <= set(HOST_OPS)
    for packet in ATEN_KINDS:
        assert hasattr(aten, packet), packet


def test_inplace_twins_are_mapped():
    for name in ("relu_", "hardtanh_", "hardswish_", "hardsigmoid_", "silu_", "mish_", "leaky_relu_", "elu_",
                 "gelu_", "sigmoid_", "tanh_", "mul_", "add_", "sub_", "div_", "masked_fill_", "dropout_",
                 "feature_dropout_", "clamp_", "unsqueeze_", "transpose_"):
        assert ATEN_KINDS[name] == ATEN_KINDS[name[:-1]], name


# Overloads whose positional names differ from the kind's function (they are passed by position):
# aliases of a shared kind, and scalar-only overloads that never reach the host.
_NAME_EXCEPTIONS = {"dropout_", "feature_dropout_", "alpha_dropout_", "feature_alpha_dropout_", "softmax.int",
                    "log_softmax.int", "max.other", "min.other", "view.default", "view.dtype",
                    "_unsafe_view.default", "split.default", "bmm.default", "bmm.dtype", "mm.default", "mm.dtype",
                    "addmm.dtype", "baddbmm.dtype", "eq.Tensor_list", "ne.Tensor_list", "var.default", "std.default",
                    "einsum.sublist"}


def test_arguments_follow_the_aten_schemas():
    """Each tensor overload's positional arguments are the function's, in order and by name, and its
    keyword-only arguments are accepted by name (the frontend passes a node's kwargs by ATen name)."""
    for packet, kind in ATEN_KINDS.items():
        params = inspect.signature(HOST_OPS[kind]).parameters
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values()):
            continue
        positional = [n for n, p in params.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
        ops = getattr(aten, packet)
        for overload in ops.overloads():
            schema = getattr(ops, overload)._schema
            if "out" in overload or any(a.is_out or "Dimname" in str(a.type) for a in schema.arguments):
                continue
            if not schema.arguments or "Tensor" not in str(schema.arguments[0].type):
                continue
            name = f"{packet}.{overload}"
            if name not in _NAME_EXCEPTIONS and packet not in _NAME_EXCEPTIONS:
                names = [a.name for a in schema.arguments if not a.kwarg_only]
                assert names == positional[: len(names)], (name, names, positional)
            for a in schema.arguments:
                if a.kwarg_only:
                    assert a.name in params, (name, a.name)


# ---- activations --------------------------------------------------------------------------------


@pytest.mark.parametrize("op, args, kwargs", [
    (aten.hardtanh.default, (), {}),
    (aten.hardtanh.default, (-0.5, 0.25), {}),
    (aten.hardtanh_.default, (), {"min_val": 0.0, "max_val": 6.0}),
    (aten.relu6.default, (), {}),
    (aten.relu_.default, (), {}),
    (aten.leaky_relu.default, (), {}),
    (aten.leaky_relu_.default, (0.2,), {}),
], ids=lambda v: str(v))
def test_exact_activations(rng, op, args, kwargs):
    check(op, randn(rng, 2, 3, 6, 5, scale=4), *args, exact=True, **kwargs)


@pytest.mark.parametrize("op, args, kwargs", [
    (aten.hardswish.default, (), {}), (aten.hardswish_.default, (), {}),
    (aten.hardsigmoid.default, (), {}), (aten.hardsigmoid_.default, (), {}),
    (aten.silu.default, (), {}), (aten.silu_.default, (), {}),
    (aten.mish.default, (), {}), (aten.mish_.default, (), {}),
    (aten.elu.default, (), {}), (aten.elu.default, (0.5, 2.0, 1.5), {}), (aten.elu_.default, (), {"alpha": 0.3}),
    (aten.softplus.default, (), {}), (aten.softplus.default, (2.0, 5.0), {}),
    (aten.gelu.default, (), {}), (aten.gelu_.default, (), {}), (aten.gelu_.default, (), {"approximate": "tanh"}),
    (aten.sigmoid_.default, (), {}), (aten.tanh_.default, (), {}),
], ids=lambda v: str(v))
def test_activations(rng, op, args, kwargs):
    check(op, randn(rng, 2, 3, 6, 5, scale=4), *args, **kwargs)


def test_softplus_threshold(rng):
    x = randn(rng, 64, scale=15)  # beta * x above the threshold passes x through
    check(aten.softplus.default, x)
    check(aten.softplus.default, x, 0.5, 3.0)


# ---- elementwise --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [aten.neg.default, aten.exp.default, aten.abs.default, aten.erf.default,
                                aten.reciprocal.default, aten.exp_.default, aten.neg_.default, aten.abs_.default],
                         ids=str)
def test_unary(rng, op):
    check(op, randn(rng, 3, 7, scale=2))


@pytest.mark.parametrize("op", [aten.log.default, aten.sqrt.default, aten.rsqrt.default, aten.sqrt_.default],
                         ids=str)
def test_unary_positive_domain(rng, op):
    x = np.abs(randn(rng, 3, 7, scale=3)) + np.float32(0.05)
    check(op, x)
    check(op, -x)  # NaN outside the domain, as PyTorch


def test_exact_unary_ops_keep_integers(rng):
    i = rng.integers(-50, 50, (4, 5)).astype(np.int64)
    check(aten.neg.default, i, exact=True)
    check(aten.abs.default, i, exact=True)


@pytest.mark.parametrize("exponent", [2, 3.0, 0.5, -1, -2.5, 0])
def test_pow_tensor_scalar(rng, exponent):
    check(aten.pow.Tensor_Scalar, np.abs(randn(rng, 4, 6)) + np.float32(0.1), exponent)


def test_pow_other_overloads(rng):
    x = randn(rng, 4, 6)
    check(aten.pow.Tensor_Scalar, x, 2)
    check(aten.pow.Tensor_Scalar, x, 0.5)  # NaN for negative bases
    check(aten.pow.Tensor_Tensor, np.abs(x) + np.float32(0.1), randn(rng, 4, 6))
    check(aten.pow.Tensor_Tensor, np.abs(x) + np.float32(0.1), randn(rng, 6))  # broadcast
    check(aten.pow.Scalar, 2.0, x)
    check(aten.pow_.Scalar, np.abs(x), 1.5)
    i = rng.integers(-5, 6, (3, 4)).astype(np.int64)
    check(aten.pow.Tensor_Scalar, i, 3, exact=True)


@pytest.mark.parametrize("op, other, kwargs", [
    (aten.mul_.Tensor, "t", {}), (aten.mul_.Scalar, 1.5, {}), (aten.mul.Scalar, -3, {}),
    (aten.add_.Tensor, "t", {}), (aten.add_.Tensor, "t", {"alpha": 0.5}), (aten.add_.Scalar, 2.0, {}),
    (aten.add.Tensor, "row", {"alpha": 2}), (aten.sub_.Tensor, "t", {"alpha": 3}), (aten.sub.Scalar, 0.25, {}),
    (aten.rsub.Scalar, 1.0, {}), (aten.rsub.Tensor, "t", {"alpha": 2.0}),
    (aten.div_.Tensor, "t", {}), (aten.div_.Scalar, 3.0, {}), (aten.div.Tensor, "row", {}),
    (aten.div.Tensor_mode, "t", {"rounding_mode": "trunc"}), (aten.div.Tensor_mode, "t", {"rounding_mode": "floor"}),
    (aten.div.Tensor_mode, "t", {"rounding_mode": None}), (aten.div_.Tensor_mode, "t", {"rounding_mode": "floor"}),
    (aten.div.Scalar_mode, -0.7, {"rounding_mode": "floor"}), (aten.div_.Scalar_mode, 0.3, {"rounding_mode": "trunc"}),
    (aten.floor_divide.default, "t", {}),
    (aten.maximum.default, "t", {}), (aten.minimum.default, "row", {}),
    (aten.max.other, "t", {}), (aten.min.other, "t", {}),
], ids=lambda v: str(v))
def test_binary(rng, op, other, kwargs):
    x = randn(rng, 3, 4, 6, scale=10)
    other = {"t": randn(rng, 3, 4, 6, scale=3), "row": randn(rng, 6, scale=3)}.get(other, other)
    check(op, x, other, **kwargs)


@pytest.mark.parametrize("mode", ["trunc", "floor"])
def test_integer_rounding_division(rng, mode):
    a = rng.integers(-40, 40, (5, 7)).astype(np.int64)
    b = rng.choice([-7, -3, -1, 1, 2, 5], (5, 7)).astype(np.int64)
    check(aten.div.Tensor_mode, a, b, rounding_mode=mode, exact=True)
    check(aten.div.Scalar_mode, a, -3, rounding_mode=mode, exact=True)
    check(aten.div.Tensor, a, b)  # true division of integers is float
    check(aten.add.Tensor, a, b, exact=True)  # integer arithmetic stays integer


def test_where_and_masked_fill(rng):
    x, y = randn(rng, 3, 5), randn(rng, 3, 5)
    cond = rng.random((3, 5)) > 0.5
    check(aten.where.self, cond, x, y, exact=True)
    check(aten.where.self, cond[:1], x, y[0], exact=True)
    check(aten.where.ScalarOther, cond, x, -1.5, exact=True)
    check(aten.where.ScalarSelf, cond, 0.0, y, exact=True)
    check(aten.masked_fill.Scalar, x, cond, float("-inf"), exact=True)
    check(aten.masked_fill_.Scalar, x, cond[0], 2.5, exact=True)
    check(aten.masked_fill.Tensor, x, cond, np.array(7.0, np.float32), exact=True)


def test_like_constructors(rng):
    x = randn(rng, 2, 3)
    check(aten.zeros_like.default, x, exact=True)
    check(aten.ones_like.default, x, exact=True)
    check(aten.ones_like.default, x, dtype=torch.int64, exact=True)
    check(aten.full_like.default, x, 3.5, exact=True)
    check(aten.full_like.default, x, 2, dtype=torch.int64, exact=True)


def test_clamp_variants(rng):
    x = randn(rng, 4, 5, scale=3)
    check(aten.clamp.default, x, -1.0, 0.5, exact=True)
    check(aten.clamp_.default, x, None, 0.5, exact=True)
    check(aten.clamp_max.default, x, 1.0, exact=True)
    check(aten.clamp_min_.default, x, -0.25, exact=True)


@pytest.mark.parametrize("op", [aten.log1p.default, aten.expm1.default, aten.sin.default, aten.cos.default,
                                aten.square.default, aten.sign.default, aten.floor.default, aten.ceil.default,
                                aten.round.default, aten.floor_.default, aten.sin_.default], ids=str)
def test_more_unary(rng, op):
    x = randn(rng, 4, 9, scale=3)
    x[0, :4] = [0.5, -1.5, 2.5, 0.0]  # rounding ties go to even
    check(op, np.abs(x) if op in (aten.log1p.default,) else x)


def test_round_decimals_and_log2(rng):
    x = randn(rng, 5, 6, scale=30)
    check(aten.round.decimals, x, decimals=2)
    check(aten.round.decimals, x, decimals=-1)
    check(aten.log2.default, np.abs(x))


def test_comparisons_and_logic(rng):
    x, y = randn(rng, 4, 5), randn(rng, 4, 5)
    y[0] = x[0]
    for op in (aten.eq, aten.ne, aten.lt, aten.le, aten.gt, aten.ge):
        check(op.Tensor, x, y, exact=True)
        check(op.Scalar, x, 0.25, exact=True)
        check(op.Tensor, x, y[1], exact=True)
    a, b = rng.random((3, 4)) > 0.5, rng.random((3, 4)) > 0.5
    check(aten.logical_not.default, a, exact=True)
    check(aten.logical_and.default, a, b, exact=True)
    check(aten.logical_or.default, a, x[:3, :4], exact=True)
    check(aten.bitwise_not.default, a, exact=True)
    check(aten.bitwise_and.Tensor, a, b, exact=True)
    check(aten.bitwise_or.Tensor, a, b, exact=True)
    i = rng.integers(-9, 9, (3, 4)).astype(np.int64)
    check(aten.bitwise_not.default, i, exact=True)
    check(aten.bitwise_and.Scalar, i, 6, exact=True)


def test_constructors(rng):
    check(aten.arange.default, 7, exact=True)
    check(aten.arange.start, 2, 9, exact=True)
    check(aten.arange.start_step, 1, 10, 3, exact=True)
    check(aten.arange.start_step, 0.5, 3.0, 0.25)
    check(aten.arange.default, 5, dtype=torch.float32, exact=True)
    check(aten.full.default, [2, 3], 1.5, exact=True)
    check(aten.full.default, [2, 3], 4, exact=True)
    check(aten.full.default, [2], True, exact=True)
    check(aten.full.default, [2, 3], 7, dtype=torch.float32, exact=True)
    check(aten.zeros.default, [3, 2], exact=True)
    check(aten.ones.default, [4], dtype=torch.int64, exact=True)
    check(aten.scalar_tensor.default, 2.5, exact=True)


# ---- dropout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [aten.dropout.default, aten.dropout_.default, aten.feature_dropout.default,
                                aten.feature_dropout_.default, aten.alpha_dropout.default], ids=str)
def test_dropout_in_eval_is_the_identity(rng, op):
    check(op, randn(rng, 2, 8, 3), 0.25, False, exact=True)
    with pytest.raises(NotImplementedError, match="train=True"):
        host(op, randn(rng, 2, 8, 3), 0.25, True)


# ---- normalisation --------------------------------------------------------------------------------


def _bn_params(rng, c):
    return (rng.uniform(0.5, 1.5, c).astype(np.float32), rng.uniform(-0.2, 0.2, c).astype(np.float32),
            rng.uniform(-0.2, 0.2, c).astype(np.float32), rng.uniform(0.5, 2.0, c).astype(np.float32))


@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 9), (2, 6, 5, 4), (1, 6, 3, 4, 2)])
def test_batch_norm(rng, shape):
    x = randn(rng, *shape, scale=2)
    w, b, m, v = _bn_params(rng, shape[1])
    check(aten.batch_norm.default, x, w, b, m, v, False, 0.1, 1e-5, False)
    check(aten.batch_norm.default, x, None, None, m, v, False, 0.1, 1e-3, True)
    check(aten.batch_norm.default, x, w, None, m, v, False, 0.1, 1e-5, True)
    check(aten._native_batch_norm_legit_no_training.default, x, w, b, m, v, 0.1, 1e-5, index=0)


def test_batch_norm_limits(rng):
    x = randn(rng, 2, 3, 4)
    w, b, m, v = _bn_params(rng, 3)
    with pytest.raises(NotImplementedError, match="training=True"):
        host(aten.batch_norm.default, x, w, b, m, v, True, 0.1, 1e-5, False)
    with pytest.raises(NotImplementedError, match="index=1"):
        host(aten._native_batch_norm_legit_no_training.default, x, w, b, m, v, 0.1, 1e-5, index=1)


def test_group_and_rms_norm(rng):
    x = randn(rng, 2, 6, 5, 4, scale=2)
    w, b = randn(rng, 6), randn(rng, 6)
    check(aten.group_norm.default, x, 3, w, b, 1e-5, False)
    check(aten.group_norm.default, x, 6)
    check(aten.group_norm.default, randn(rng, 3, 4, 7), 2, None, b[:4], 1e-3)
    y = randn(rng, 2, 5, 8, scale=3)
    check(aten.rms_norm.default, y, [8], randn(rng, 8))
    check(aten.rms_norm.default, y, [5, 8], None, 1e-3)
    check(aten.rms_norm.default, y, [8], eps=1e-6)


def test_layer_norm_and_softmaxes(rng):
    x = randn(rng, 2, 5, 8, scale=3)
    check(aten.layer_norm.default, x, [8], randn(rng, 8), randn(rng, 8), 1e-5)
    check(aten.softmax.int, x, -1)
    check(aten._softmax.default, x, 1, False)
    check(aten.log_softmax.int, x, -1)
    check(aten._log_softmax.default, x, 0, False)


# ---- reductions -----------------------------------------------------------------------------------


def test_reductions(x):
    check(aten.mean.dim, x, [-1], True)
    check(aten.mean.dim, x, [1, 2])
    check(aten.mean.dim, x, [])
    check(aten.mean.default, x)
    check(aten.sum.dim_IntList, x, [0, -1], True)
    check(aten.sum.dim_IntList, x, [])
    check(aten.amax.default, x, [1], exact=True)
    check(aten.amax.default, x, exact=True)
    check(aten.amin.default, x, [-1, -2], True, exact=True)
    check(aten.max.default, x, exact=True)
    check(aten.min.default, x, exact=True)
    for index in (0, 1):
        check(aten.max.dim, x, 1, index=index, exact=True)
        check(aten.max.dim, x, -1, True, index=index, exact=True)
        check(aten.min.dim, x, 2, index=index, exact=True)


def test_arg_extremes_and_statistics(rng):
    x = randn(rng, 3, 6, 5, scale=2)
    check(aten.argmax.default, x, exact=True)
    check(aten.argmax.default, x, 1, exact=True)
    check(aten.argmin.default, x, -1, True, exact=True)
    check(aten.var.default, x)
    check(aten.var.default, x, False)
    check(aten.var.dim, x, [1, 2], False, True)
    check(aten.var.correction, x, [-1], correction=0, keepdim=True)
    check(aten.var.correction, x, None)
    check(aten.std.dim, x, [0])
    check(aten.std.correction, x, [1], correction=2)
    check(aten.std.default, x)
    for order in (2, 1, 3.0, 0.5, float("inf"), float("-inf"), 0):
        check(aten.linalg_vector_norm.default, x, order, [-1], True)
    check(aten.linalg_vector_norm.default, x)


# ---- convolution ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    ([1], [0], [1], 1), ([2], [1], [1], 1), ([1], [2], [2], 2), ([3], [4], [1], 4), ([2], [0], [3], 1)])
def test_conv1d(rng, stride, padding, dilation, groups):
    x, w, b = randn(rng, 2, 4, 23), randn(rng, 6 if groups != 4 else 8, 4 // groups, 3), randn(rng, 8)
    bias = b[: w.shape[0]]
    check(aten.conv1d.default, x, w, bias, stride, padding, dilation, groups)
    check(aten.conv1d.default, x, w, None, stride, padding, dilation, groups)
    check(aten.conv1d.default, x[0], w, bias, stride, padding, dilation, groups)  # unbatched


@pytest.mark.parametrize("padding, dilation, kernel", [("same", [1], 4), ("same", [2], 3), ("same", [3], 4),
                                                        ("valid", [1], 3)])
def test_conv_string_padding(rng, padding, dilation, kernel):
    x, w, b = randn(rng, 2, 3, 17), randn(rng, 5, 3, kernel), randn(rng, 5)
    check(aten.conv1d.padding, x, w, b, [1], padding, dilation, 1)
    x2, w2 = randn(rng, 1, 3, 9, 8), randn(rng, 4, 3, kernel, kernel - 1)
    check(aten.conv2d.padding, x2, w2, None, [1, 1], padding, dilation * 2, 1)


def test_conv2d_unbatched(rng):
    x, w = randn(rng, 3, 9, 8), randn(rng, 4, 3, 3, 3)
    check(aten.conv2d.default, x, w, None, [2, 1], [1, 0], [1, 1], 1)


# ---- pooling --------------------------------------------------------------------------------------


# (size, kernel, stride, padding, dilation): ceil mode adds a window here, or (5, 3, 3, 1) drops the one
# that would start in the right padding
_CEIL_CASES = [(7, 2, 2, 0, 1), (5, 3, 3, 1, 1), (6, 3, 2, 1, 1), (8, 3, 3, 0, 1), (9, 2, 3, 1, 2), (10, 4, 3, 2, 1),
               (6, 3, 2, 0, 2), (5, 2, 1, 0, 1)]


@pytest.mark.parametrize("size, k, s, p, d", _CEIL_CASES)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool(rng, size, k, s, p, d, ceil_mode):
    x = randn(rng, 2, 3, size, size + 1)
    check(aten.max_pool2d.default, x, [k, k], [s, s], [p, p], [d, d], ceil_mode, exact=True)
    check(aten.max_pool2d.default, x, [k, k + 1], [s, 1], [p, 0], [1, d], ceil_mode, exact=True)
    check(aten.max_pool1d.default, x[0], [k], [s], [p], [d], ceil_mode, exact=True)


@pytest.mark.parametrize("size, k, s, p", [c[:4] for c in _CEIL_CASES])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool(rng, size, k, s, p, ceil_mode, count_include_pad):
    x = randn(rng, 2, 3, size, size + 2)
    check(aten.avg_pool2d.default, x, [k, k], [s, s], [p, p], ceil_mode, count_include_pad)
    check(aten.avg_pool2d.default, x, [k, 2], [s, 2], [p, 1], ceil_mode, count_include_pad, 3)
    check(aten.avg_pool1d.default, x[:, 0], [k], [s], [p], ceil_mode, count_include_pad)


def test_pool_defaults(rng):
    x = randn(rng, 2, 4, 9, 8)
    check(aten.max_pool2d.default, x, [2, 2], exact=True)
    check(aten.max_pool2d.default, x, [3, 3], [], [1, 1], ceil_mode=True, exact=True)
    check(aten.avg_pool2d.default, x, [2, 2])
    check(aten.avg_pool2d.default, x, [3, 3], [2, 2], [1, 1], ceil_mode=True, count_include_pad=False)
    check(aten.max_pool1d.default, x[0], [2], exact=True)
    check(aten.avg_pool1d.default, x[0], [3], ceil_mode=True)


def test_adaptive_pools(rng):
    x = randn(rng, 2, 3, 9, 7)
    for size in ([4, 3], [1, 1], [9, 7], [5, 2]):
        check(aten.adaptive_avg_pool2d.default, x, size)
        for index in (0, 1):
            check(aten.adaptive_max_pool2d.default, x, size, index=index, exact=True)
    y = randn(rng, 2, 4, 10)
    for size in ([3], [1], [10], [4]):
        check(aten.adaptive_avg_pool1d.default, y, size)
        for index in (0, 1):
            check(aten.adaptive_max_pool1d.default, y, size, index=index, exact=True)


# ---- padding --------------------------------------------------------------------------------------


def test_padding(rng):
    x = randn(rng, 2, 3, 5, 6)
    check(aten.constant_pad_nd.default, x, [1, 2], exact=True)
    check(aten.constant_pad_nd.default, x, [1, 2, 0, 3], 0.5, exact=True)
    check(aten.constant_pad_nd.default, x, [-1, 2, 2, -2, 1, 0], exact=True)
    for mode in ("constant", "reflect", "replicate", "circular"):
        check(aten.pad.default, x, [1, 2, 2, 1], mode, exact=True)
    check(aten.pad.default, x, [1, 2], "constant", -3.0, exact=True)


# ---- shape and indexing ---------------------------------------------------------------------------


def test_views(rng):
    x = randn(rng, 2, 12, 3)
    check(aten.unflatten.int, x, 1, [3, -1], exact=True)
    check(aten.unflatten.int, x, -1, [1, 3], exact=True)
    check(aten.view_as.default, x, randn(rng, 6, 12), exact=True)
    check(aten.flatten.using_ints, x, 1, -1, exact=True)
    check(aten.flatten.using_ints, x, exact=True)
    check(aten.squeeze.dims, randn(rng, 1, 3, 1, 2), [0, 2, 1], exact=True)
    check(aten.squeeze.dims, randn(rng, 1, 3, 1, 2), [-2], exact=True)
    check(aten.squeeze.dim, randn(rng, 1, 3, 1, 2), -2, exact=True)
    check(aten.squeeze.dim, randn(rng, 1, 3, 1, 2), 1, exact=True)
    check(aten.squeeze.default, randn(rng, 1, 3, 1, 2), exact=True)
    check(aten.unsqueeze.default, x, -1, exact=True)
    check(aten.unsqueeze.default, x, 0, exact=True)
    check(aten.unsqueeze_.default, x, -2, exact=True)
    check(aten.permute.default, x, [2, 0, 1], exact=True)
    check(aten.permute.default, x, [-1, -3, -2], exact=True)
    check(aten.transpose.int, x, -1, 0, exact=True)
    check(aten.swapaxes.default, x, 1, -1, exact=True)
    check(aten.t.default, randn(rng, 3, 5), exact=True)


def test_expand_repeat_stack_cat(rng):
    x = randn(rng, 3, 1)
    check(aten.expand.default, x, [2, -1, 4], exact=True)
    check(aten.expand.default, x, [3, 5], exact=True)
    check(aten.expand.default, x, [-1, 2], implicit=True, exact=True)
    check(aten.repeat.default, randn(rng, 2, 3), [2, 1, 3], exact=True)
    check(aten.repeat.default, randn(rng, 2, 3), [1, 2], exact=True)
    a, b = randn(rng, 2, 3), randn(rng, 2, 3)
    for dim in (0, 1, 2, -1, -3):
        check(aten.stack.default, [a, b], dim, exact=True)
    check(aten.stack.default, [a, b, a], exact=True)
    check(aten.cat.default, [a, b], -1, exact=True)
    check(aten.cat.default, [a, np.zeros(0, np.float32), b], exact=True)  # a legacy empty 1-d tensor is skipped


def test_flip_roll_tril_type_as(rng):
    x = randn(rng, 3, 4, 5)
    check(aten.flip.default, x, [0, -1], exact=True)
    check(aten.roll.default, x, [2], [1], exact=True)
    check(aten.roll.default, x, [1, -3], [0, 2], exact=True)
    check(aten.roll.default, x, [4], exact=True)
    for diagonal in (0, 1, -2):
        check(aten.tril.default, x, diagonal, exact=True)
        check(aten.triu.default, x, diagonal, exact=True)
    check(aten.tril_.default, x, exact=True)
    check(aten.type_as.default, x, np.zeros(2, np.int64), exact=True)


@pytest.mark.parametrize("dim, start, end, step", [
    (1, None, None, 1), (1, 1, 9223372036854775807, 2), (-1, -3, None, 1), (0, 2, 1, 1), (2, -100, 100, 3),
    (0, 0, -1, 1), (1, None, 3, 1), (-2, 5, None, 1)])
def test_slice(rng, dim, start, end, step):
    check(aten.slice.Tensor, randn(rng, 3, 7, 5), dim, start, end, step, exact=True)


def test_slice_defaults_and_kwargs(rng):
    x = randn(rng, 4, 6)
    check(aten.slice.Tensor, x, exact=True)
    check(aten.slice.Tensor, x, 1, 2, exact=True)
    check(aten.slice.Tensor, x, dim=1, start=1, step=2, exact=True)


def test_select_and_narrow(rng):
    x = randn(rng, 3, 7, 5)
    check(aten.select.int, x, 0, 1, exact=True)
    check(aten.select.int, x, -1, -2, exact=True)
    check(aten.narrow.default, x, 1, 2, 4, exact=True)
    check(aten.narrow.default, x, -1, -3, 2, exact=True)
    check(aten.narrow.Tensor, x, 1, np.array(3, np.int64), 2, exact=True)


def test_index_select_and_gather(rng):
    x = randn(rng, 4, 6, 3)
    idx = rng.integers(0, 6, 5).astype(np.int64)
    check(aten.index_select.default, x, 1, idx, exact=True)
    check(aten.index_select.default, x, -1, np.array([2, 0], np.int64), exact=True)
    check(aten.index_select.default, x, 0, np.array(1, np.int64), exact=True)
    g = rng.integers(0, 6, (3, 4, 2)).astype(np.int64)
    check(aten.gather.default, x, 1, g, exact=True)
    check(aten.gather.default, x, -3, rng.integers(0, 4, (2, 6, 3)).astype(np.int64), exact=True)
    check(aten.gather.default, x, 2, rng.integers(0, 3, (4, 6, 3)).astype(np.int64), sparse_grad=False, exact=True)


def test_embedding(rng):
    table = randn(rng, 10, 4)
    check(aten.embedding.default, table, rng.integers(0, 10, (2, 5)).astype(np.int64), exact=True)


def test_to(rng):
    x = randn(rng, 3, 4, scale=10)
    check(aten.to.dtype, x, torch.int64, exact=True)
    check(aten._to_copy.default, x, dtype=torch.float16, exact=True)
    check(aten.to.other, x, rng.integers(0, 3, 2).astype(np.int64), exact=True)
    assert host(aten.to.device, x, None, torch.int32).dtype == np.int32  # the device arrives as None


# ---- pieces of multi-output ops -------------------------------------------------------------------


@pytest.mark.parametrize("op, args", [
    (aten.split.Tensor, (3,)), (aten.split.Tensor, (3, 1)), (aten.split.Tensor, (2, -1)), (aten.split.Tensor, (7,)),
    (aten.split.sizes, ([2, 5],)), (aten.split.sizes, ([1, 4], 1)), (aten.split_with_sizes.default, ([3, 0, 4],)),
    (aten.split_with_sizes.default, ([2, 4], -1)),
    (aten.chunk.default, (3,)), (aten.chunk.default, (3, 1)), (aten.chunk.default, (4, -1)), (aten.chunk.default, (2,)),
    (aten.unbind.int, ()), (aten.unbind.int, (1,)), (aten.unbind.int, (-1,)),
], ids=lambda v: str(v))
def test_pieces(rng, op, args):
    x = randn(rng, 7, 5, 6)
    pieces = op(torch.from_numpy(x), *args)
    for i in range(len(pieces)):
        check(op, x, *args, index=i, exact=True)
    check(op, x, *args, index=-1, exact=True)
    with pytest.raises(IndexError):
        host(op, x, *args, index=len(pieces))


def test_piece_kwargs(rng):
    x = randn(rng, 6, 4)
    check(aten.split.Tensor, x, 4, dim=0, index=1, exact=True)
    check(aten.chunk.default, x, 3, dim=-1, index=1, exact=True)
    check(aten.unbind.int, x, dim=1, index=2, exact=True)


# ---- matrix products ------------------------------------------------------------------------------


def test_matrix_products(rng):
    a, b, c = randn(rng, 4, 5), randn(rng, 5, 3), randn(rng, 4, 3)
    check(aten.mm.default, a, b)
    check(aten.addmm.default, c, a, b)
    check(aten.addmm.default, c[0], a, b, beta=0.5, alpha=2.0)
    p, q, r = randn(rng, 2, 4, 5), randn(rng, 2, 5, 3), randn(rng, 2, 4, 3)
    check(aten.bmm.default, p, q)
    check(aten.baddbmm.default, r, p, q, beta=2, alpha=0.5)
    check(aten.matmul.default, p, b)
    check(aten.linear.default, p, randn(rng, 6, 5), randn(rng, 6))
    check(aten.einsum.default, "bij,bjk->bik", [p, q])
    check(aten.einsum.default, "...ij->...ji", [p])


# ---- attention ------------------------------------------------------------------------------------


SDPA = aten.scaled_dot_product_attention.default


def _qkv(rng, b=2, h=4, lq=5, lk=7, e=8, ev=6, hk=None):
    hk = h if hk is None else hk
    return randn(rng, b, h, lq, e), randn(rng, b, hk, lk, e), randn(rng, b, hk, lk, ev)


def test_sdpa_plain(rng):
    q, k, v = _qkv(rng)
    check(SDPA, q, k, v)
    check(SDPA, q, k, v, scale=0.3)
    check(SDPA, q, k, v, None, 0.0, False, scale=2.0)
    check(SDPA, q[0], k[0], v[0])  # no batch dim
    check(SDPA, q[0, 0], k[0, 0], v[0, 0])  # no head dim


@pytest.mark.parametrize("ev", [6, 8])  # PyTorch's math kernel, and its fused one (ev == e)
def test_sdpa_masks(rng, ev):
    q, k, v = _qkv(rng, ev=ev)
    bool_mask = rng.random((5, 7)) > 0.3
    check(SDPA, q, k, v, bool_mask)
    check(SDPA, q, k, v, rng.random((2, 1, 5, 7)) > 0.4)
    check(SDPA, q, k, v, attn_mask=randn(rng, 5, 7))
    check(SDPA, q, k, v, randn(rng, 2, 4, 5, 7), 0.0, False, scale=0.5)
    float_mask = np.where(bool_mask, 0.0, -np.inf).astype(np.float32)
    check(SDPA, q, k, v, float_mask)
    bool_mask[2] = False  # a query row nothing takes part in: zeros, as PyTorch
    check(SDPA, q, k, v, bool_mask)
    float_mask[3] = -np.inf
    check(SDPA, q, k, v, float_mask)
    # a bool mask the frontend holds as int64 (its non-float values are int64) still selects
    want = host(SDPA, q, k, v, bool_mask)
    np.testing.assert_array_equal(host(SDPA, q, k, v, bool_mask.astype(np.int64)), want)


@pytest.mark.parametrize("lq, lk", [(6, 6), (5, 7), (7, 5)])
def test_sdpa_causal(rng, lq, lk):
    q, k, v = _qkv(rng, lq=lq, lk=lk)
    check(SDPA, q, k, v, None, 0.0, True)
    check(SDPA, q, k, v, is_causal=True, scale=0.2)
    # a mask beside is_causal: PyTorch's fused kernel (value width = query width) takes both, the math one refuses
    q, k, v = _qkv(rng, lq=lq, lk=lk, ev=8)
    check(SDPA, q, k, v, rng.random((lq, lk)) > 0.3, 0.0, True)
    check(SDPA, q, k, v, randn(rng, lq, lk), 0.0, True)


def test_sdpa_gqa(rng):
    q, k, v = _qkv(rng, h=8, hk=2)
    check(SDPA, q, k, v, enable_gqa=True)
    check(SDPA, q, k, v, None, 0.0, True, enable_gqa=True)
    check(SDPA, q, k, v, rng.random((5, 7)) > 0.3, enable_gqa=True, scale=0.4)
    q, k, v = _qkv(rng, h=4)
    check(SDPA, q, k, v, enable_gqa=True)  # same head counts: nothing to repeat


def test_sdpa_dropout_is_refused(rng):
    q, k, v = _qkv(rng)
    with pytest.raises(NotImplementedError, match="dropout_p=0.1"):
        host(SDPA, q, k, v, None, 0.1)


# ---- arguments the host refuses name themselves -----------------------------------------------------


@pytest.mark.parametrize("op, args, kwargs, match", [
    (aten.div.Tensor_mode, (np.ones(3, np.float32), np.ones(3, np.float32)), {"rounding_mode": "round"},
     "rounding_mode='round'"),
    (aten.gelu.default, (np.ones(3, np.float32),), {"approximate": "sigmoid"}, "approximate='sigmoid'"),
    (aten.pad.default, (np.ones((2, 3), np.float32), [1, 1], "mirror"), {}, "mode='mirror'"),
    (aten.slice.Tensor, (np.ones(5, np.float32), 0, 0, 5, 0), {}, "step=0"),
    (aten.where.default, (np.ones(3, bool),), {}, "condition"),
    (aten.full_like.default, (np.ones(3, np.float32), 1.0), {"dtype": torch.bfloat16}, "dtype='bfloat16'"),
], ids=lambda v: str(v)[:40])
def test_refusals_name_the_argument(op, args, kwargs, match):
    with pytest.raises(NotImplementedError, match=match):
        host(op, *args, **kwargs)
