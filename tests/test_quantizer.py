import runpy

import numpy as np
import pytest
import torch

import compiler.torch_ops as torch_ops
from compiler.examples import EXAMPLES, example, example_program
from compiler.quantizer import GROUP_SCALE_MAX, quantize_model, quantize_weight
from compiler.torch_ops import LowbitWeight, dequantize_weight_np, dequantize_weight_op
from compiler.weight_quant import MIXTURES, quantize_groups
from hw.datatypes import DATATYPES, by_code

Q = torch.ops.quantized_decomposed


def _random_lowbit(rng, shape, group_size, names):
    """Random codes, each group in one of `names`, with random zero points and scales."""
    n, channels = shape[:2]
    groups = -(-channels // group_size)
    dcodes = rng.choice([DATATYPES[c].code for c in names], size=(n, groups)).astype(np.int32)
    g = np.arange(channels) // group_size
    bits = np.vectorize(lambda c: by_code(c).bits)(dcodes)[:, g].reshape(n, channels, *([1] * (len(shape) - 2)))
    codes = (rng.integers(0, 256, size=shape) % (1 << bits)).astype(np.uint8)
    return LowbitWeight(codes=codes, dtype_codes=dcodes, zero_points=rng.integers(0, 16, (n, groups), dtype=np.int32),
                        group_scales=rng.integers(1, GROUP_SCALE_MAX + 1, (n, groups), dtype=np.int32),
                        channel_scales=rng.uniform(1e-6, 1e-3, n).astype(np.float32), group_size=group_size)


@pytest.mark.parametrize("shape, group_size", [((6, 10, 3, 3), 4), ((5, 12), 12), ((4, 7), 1)])
def test_dequantize_op_matches_numpy_and_element_by_element(rng, shape, group_size):
    names = ["int4", "uint8", "fp4_er_neg", "flint4", "ternary", "binary", "int8", "fp3_ea_pos"]
    w = _random_lowbit(rng, shape, group_size, names)
    got = dequantize_weight_op(*w.tensors(), w.group_size)
    assert got.dtype == torch.float32 and tuple(got.shape) == shape
    assert np.array_equal(got.numpy(), dequantize_weight_np(*(np.asarray(t) for t in w.tensors()), group_size))
    assert np.array_equal(got.numpy(), w.dequantize())
    for idx in np.ndindex(*shape):
        n, g = idx[0], idx[1] // group_size
        value = by_code(int(w.dtype_codes[n, g])).values[int(w.codes[idx])]
        integer = (value - int(w.zero_points[n, g])) * int(w.group_scales[n, g])
        assert w.integer_values()[idx] == integer
        assert got[idx].item() == np.float32(integer) * w.channel_scales[n]


def test_op_reimport_and_shape_errors(rng):
    runpy.run_path(torch_ops.__file__)  # the module's code again: registering the op twice would raise
    w = _random_lowbit(rng, (4, 8), 4, ["int4"])
    codes, dc, zp, gs, cs = w.tensors()
    with pytest.raises(ValueError, match="groups"):
        dequantize_weight_op(codes, dc, zp, gs, cs, 3)
    with pytest.raises(ValueError, match="channel_scales"):
        dequantize_weight_op(codes, dc, zp, gs, cs[:2], 4)


@pytest.mark.parametrize("weights, group_size", [("int4", None), ("int4", 3), ("mixture4", 4), ("uint4", 8)])
def test_quantize_weight_hardware_form(rng, weights, group_size):
    w = rng.standard_normal((8, 10, 3, 3)) * rng.uniform(0.01, 0.2, (8, 1, 1, 1))
    q = quantize_weight(w, weights, group_size)
    groups = 1 if group_size is None else -(-10 // group_size)
    assert q.codes.shape == w.shape and q.dtype_codes.shape == q.group_scales.shape == (8, groups)
    assert q.group_scales.min() >= 1 and q.group_scales.max() <= GROUP_SCALE_MAX
    assert q.channel_scales.dtype == np.float32
    assert np.array_equal(q.dequantize(), q.integer_values().astype(np.float32) * q.channel_scales[:, None, None, None])
    # the u16 group scales cost little against quantize_groups' float scales
    ref = quantize_groups(w.reshape(8, -1).T, (group_size or 10) * 9, weights, pad=True)
    err, ref_err = np.square(q.dequantize() - w).sum(), ref.group_sse.sum()
    assert err <= ref_err * 1.01 + 1e-12


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.fixture(scope="module")
def cnn_int4():
    return example_program("cnn", "lowbit", "int4", group_size=4)


def _calls(ep, target):
    return [n for n in ep.graph.nodes if n.op == "call_function" and n.target == target]


def test_lowbit_program_structure_and_accuracy(cnn_int4):
    ep, inputs = cnn_int4
    layers = _calls(ep, torch.ops.aten.conv2d.default) + _calls(ep, torch.ops.aten.linear.default)
    assert len(layers) == 4
    for layer in layers:
        assert layer.args[1].target == torch.ops.lowbit.dequantize_weight.default
        assert layer.args[0].target == Q.dequantize_per_tensor.default
    quants = _calls(ep, Q.quantize_per_tensor.default) + _calls(ep, Q.dequantize_per_tensor.default)
    assert quants and all(n.args[3:6] == (-128, 127, torch.int8) for n in quants)
    assert not _calls(ep, Q.dequantize_per_channel.default)
    assert not any("frozen" in n.name or n.name.endswith("_weight") for n in ep.graph.nodes if n.op == "placeholder")
    ex = example("cnn")
    assert _cosine(ep.module()(*inputs), ex.model(*inputs)) > 0.9
    x = ex.calibration(1, seed=99)[0]
    assert _cosine(ep.module()(*x), ex.model(*x)) > 0.9


def test_lowbit_int8_weights_track_float_model():
    ex = example("cnn")
    ep = quantize_model(ex.model, ex.example_inputs, ex.calibration(4), "int8")
    assert _cosine(ep.module()(*ex.example_inputs), ex.model(*ex.example_inputs)) > 0.98


def test_lowbit_buffers_hold_the_layer_weights(cnn_int4):
    ep, _ = cnn_int4
    sd = ep.state_dict
    w = LowbitWeight(*(sd[f"depthwise_weight_lowbit_{f}"].numpy() for f in
                       ("codes", "dtype_codes", "zero_points", "group_scales", "channel_scales")), group_size=1)
    ref = example("cnn").model.depthwise.weight.detach().numpy()
    assert w.codes.shape == ref.shape and np.all(w.dtype_codes == DATATYPES["int4"].code)
    assert np.abs(w.dequantize() - ref).max() <= np.abs(ref).max() / 7


def test_save_load_round_trip(cnn_int4, tmp_path):
    ep, inputs = cnn_int4
    torch.export.save(ep, tmp_path / "cnn.pt2")
    loaded = torch.export.load(tmp_path / "cnn.pt2")
    assert torch.equal(loaded.module()(*inputs), ep.module()(*inputs))


def test_transformer_block_mixture():
    ep, inputs = example_program("transformer-block", "lowbit", "mixture4", group_size=16, calibration_batches=2)
    assert len(_calls(ep, torch.ops.lowbit.dequantize_weight.default)) == 6
    for op in (torch.ops.aten.matmul.default, torch.ops.aten.softmax.int, torch.ops.aten.layer_norm.default):
        assert _calls(ep, op)
    assert set(MIXTURES) >= {"mixture4"}
    assert _cosine(ep.module()(*inputs), example("transformer-block").model(*inputs)) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_under_pt2e(name):
    ep, inputs = example_program(name, "pt2e", calibration_batches=2)
    assert _calls(ep, Q.quantize_per_tensor.default) and _calls(ep, Q.dequantize_per_channel.default)
    assert _cosine(ep.module()(*inputs), example(name).model(*inputs)) > 0.95


def test_errors():
    ex = example("mlp")
    calib = ex.calibration(1)
    with pytest.raises(ValueError, match="unknown datatype 'int9'"):
        quantize_model(ex.model, ex.example_inputs, calib, "int9")
    for bad in (0, -4):
        with pytest.raises(ValueError, match="group_size"):
            quantize_model(ex.model, ex.example_inputs, calib, "int4", bad)
    with pytest.raises(ValueError, match="no conv2d or linear"):
        quantize_model(torch.nn.ReLU(), ex.example_inputs, calib)
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(ex.model, ex.example_inputs, [])
    with pytest.raises(ValueError, match="no example named"):
        example_program("resnet")


# ---- BatchNorm: the quantized model must track the float model, not only its own export ----------


class _ConvBN(torch.nn.Module):
    """conv -> BatchNorm [-> ReLU], optionally depthwise, with BatchNorm statistics far from identity."""

    def __init__(self, depthwise: bool, relu: bool):
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.conv = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16 if depthwise else 1, bias=False)
        self.bn = torch.nn.BatchNorm2d(16)
        self.relu = relu
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.05, 4)
            self.bn.weight.uniform_(0.2, 3)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        y = self.bn(self.conv(self.stem(x)))
        return torch.relu(y) if self.relu else y


@pytest.mark.parametrize("quantizer", ["lowbit", "pt2e"])
@pytest.mark.parametrize("depthwise, relu", [(False, False), (False, True), (True, False)])
def test_conv_batchnorm_tracks_the_float_model(quantizer, depthwise, relu):
    from compiler.examples import quantize_pt2e
    from compiler.pipeline import compile_model
    from host.runtime import run_model
    from hw.config import load_config

    model = _ConvBN(depthwise, relu).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 12, 12, generator=gen)
    calib = [(torch.randn(2, 3, 12, 12, generator=gen),) for _ in range(8)]
    if quantizer == "lowbit":
        ep = quantize_model(model, (x,), calib, weights="int8")
    else:
        ep = quantize_pt2e(model, (x,), calib)
    want = model(x)
    assert _cosine(ep.module()(x), want) >= 0.999
    program, _ = compile_model(ep, load_config("default"))
    got = run_model(program, [x]).outputs[0]
    assert _cosine(torch.from_numpy(got), want) >= 0.999


def test_batchnorm_folds_into_every_weight_datatype():
    """The low-bit weights are the folded ones: a mixture tracks the float model as well with a
    BatchNorm as the same conv with the BatchNorm folded by hand."""
    model = _ConvBN(False, True).eval()
    folded = torch.ao.nn.intrinsic.ConvReLU2d(torch.nn.utils.fusion.fuse_conv_bn_eval(model.conv, model.bn),
                                               torch.nn.ReLU())
    plain = torch.nn.Sequential(model.stem, folded).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 12, 12, generator=gen)
    calib = [(torch.randn(2, 3, 12, 12, generator=gen),) for _ in range(8)]
    for weights, group_size in [("int4", None), ("mixture4", 8)]:
        with_bn = quantize_model(model, (x,), calib, weights=weights, group_size=group_size).module()(x)
        by_hand = quantize_model(plain, (x,), calib, weights=weights, group_size=group_size).module()(x)
        assert torch.equal(with_bn, by_hand), weights
