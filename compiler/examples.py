"""Built-in example models (a small CNN, an MLP, one transformer encoder block) with seeded
weights, example inputs and calibration data, and their quantized ``torch.export`` programs:
the compiler's test inputs, from torchao's PT2E X86 flow or from lowbit's own quantizer."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    X86InductorQuantizer,
    get_default_x86_inductor_quantization_config,
)

from compiler.hostops import HOST_REASONS
from compiler.ir import Graph, Op, QParams, QWeight, Ref, Value
from compiler.quantizer import drop_unused_attributes, quantize_model
from hw.datatypes import datatype

SEED = 0


@dataclass(frozen=True)
class Example:
    """A float model, one input tuple for tracing, and seeded calibration batches."""

    name: str
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    data: tuple[tuple[torch.Tensor, ...], ...] = ()  # real calibration batches, when the model has them

    def calibration(self, n: int = 8, seed: int = SEED + 1) -> list[tuple[torch.Tensor, ...]]:
        """Up to ``n`` real calibration batches, else ``n`` input tuples of seeded standard-normal data."""
        if self.data:
            return list(self.data[:n])
        gen = torch.Generator().manual_seed(seed)
        return [tuple(torch.randn(s, generator=gen) for s in self.input_shapes) for _ in range(n)]


class SmallCNN(nn.Module):
    """conv3x3+relu, depthwise conv3x3+relu, 1x1 conv, residual add+relu, max pool, avg pool, linear."""

    def __init__(self, in_channels: int = 3, channels: int = 8, size: int = 16, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.fc = nn.Linear(channels * (size // 4) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        y = self.pointwise(F.relu(self.depthwise(x)))
        x = F.relu(x + y)
        x = F.avg_pool2d(F.max_pool2d(x, 2), 2)
        return self.fc(torch.flatten(x, 1))


class MLP(nn.Module):
    """Linear layers with ReLU between them."""

    def __init__(self, sizes: tuple[int, ...] = (64, 128, 128, 10)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class EncoderBlock(nn.Module):
    """One post-LN transformer encoder block written with nn.Linear and plain tensor ops, so that
    export gives aten.linear, matmul, softmax, layer_norm and gelu nodes (no fused attention)."""

    def __init__(self, d_model: int = 64, heads: int = 4, ffn: int = 128):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn1, self.ffn2 = nn.Linear(d_model, ffn), nn.Linear(ffn, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        return x.reshape(b, s, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d // self.heads), dim=-1)
        ctx = torch.matmul(att, v).transpose(1, 2).reshape(b, s, d)
        x = self.norm1(x + self.out(ctx))
        return self.norm2(x + self.ffn2(F.gelu(self.ffn1(x))))


def _build(name: str, model: nn.Module, *shapes: tuple[int, ...]) -> Example:
    gen = torch.Generator().manual_seed(SEED)
    inputs = tuple(torch.randn(s, generator=gen) for s in shapes)
    return Example(name, model.eval(), inputs, shapes)


def cnn(in_channels: int = 3) -> Example:
    torch.manual_seed(SEED)
    return _build("cnn", SmallCNN(in_channels), (1, in_channels, 16, 16))


def mlp() -> Example:
    torch.manual_seed(SEED)
    return _build("mlp", MLP(), (1, 64))


def transformer_block() -> Example:
    torch.manual_seed(SEED)
    return _build("transformer-block", EncoderBlock(), (1, 16, 64))


def digits_cnn() -> Example:
    """The digits CNN, trained now (seconds); one batch is the whole test split, calibration
    batches are the training split in batches of that size."""
    from compiler.models import digits

    data = digits.load_digits_split()
    model = digits.train(data)
    n = len(data.x_test)
    calib = tuple((data.x_train[i : i + n],) for i in range(0, len(data.x_train) - n + 1, n))
    return Example("digits-cnn", model, (data.x_test,), (tuple(data.x_test.shape),), calib)


def minilm() -> Example:
    """all-MiniLM-L6-v2 on four sentences of 12 tokens; calibration on other sentences."""
    from compiler.models import minilm as ml

    ids, mask = ml.tokenize(ml.SENTENCES)
    calib = tuple(ml.tokenize(batch, ids.shape[1]) for batch in ml.CALIBRATION)
    return Example("minilm", ml.load_minilm(), (ids, mask), (tuple(ids.shape), tuple(mask.shape)), calib)


EXAMPLES: dict[str, Callable[[], Example]] = {
    "cnn": cnn,
    "mlp": mlp,
    "transformer-block": transformer_block,
    "digits-cnn": digits_cnn,
    "minilm": minilm,
}


def example(name: str) -> Example:
    try:
        return EXAMPLES[name]()
    except KeyError:
        raise ValueError(f"no example named {name!r}; known: {', '.join(EXAMPLES)}") from None


def quantize_pt2e(model: nn.Module, example_inputs: tuple,
                  calibration: Iterable[tuple]) -> torch.export.ExportedProgram:
    """torchao's PT2E flow with the X86 Inductor quantizer's default (static, uint8 activations,
    per-channel int8 weights) configuration, re-exported."""
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    graph = torch.export.export(model.eval(), example_inputs).module()
    with warnings.catch_warnings():  # X86's note that it leaves a float max pool unannotated
        warnings.filterwarnings("ignore", message="The input of maxpool2d is not quantized")
        try:
            prepared = prepare_pt2e(graph, quantizer)
        except ValueError as exc:
            if "more than one output node" not in str(exc):
                raise
            # torchao's X86 quantizer matches ops by the module that made them: a module called twice
            # (torchvision's BasicBlock applies one ReLU module twice) gives a partition with two outputs
            raise ValueError(f"torchao's X86 quantizer rejects this model ({exc}): it has a module called more "
                             "than once, such as one ReLU module applied twice. lowbit's quantizer "
                             "(compiler.quantizer.quantize_model) takes it with the same INT8 weights "
                             "(weights='int8').") from None
    with torch.no_grad():
        for batch in calibration:
            prepared(*batch)
    converted = convert_pt2e(prepared)
    drop_unused_attributes(converted)  # the float weights that convert_pt2e folded into int8 ones
    return torch.export.export(converted, example_inputs)


def example_program(name: str, quantizer: str = "pt2e", weights: str = "int4", group_size: int | None = None,
                    calibration_batches: int = 8) -> tuple[torch.export.ExportedProgram, tuple]:
    """A quantized example: ``quantizer`` is "pt2e" (torchao X86, int8 weights; ``weights`` and
    ``group_size`` unused) or "lowbit" (compiler.quantizer, low-bit weights)."""
    ex = example(name)
    calib = ex.calibration(calibration_batches)
    if quantizer == "pt2e":
        return quantize_pt2e(ex.model, ex.example_inputs, calib), ex.example_inputs
    if quantizer == "lowbit":
        return quantize_model(ex.model, ex.example_inputs, calib, weights, group_size), ex.example_inputs
    raise ValueError(f"unknown quantizer {quantizer!r}; known: pt2e, lowbit")


def gemm_graph(m: int, k: int, n: int, weights: str = "int4", int8_out: bool = True, seed: int = 0,
               lead: tuple[int, ...] = ()) -> Graph:
    """An IR graph of one quantized linear layer (``x[..., m, k] -> y[..., m, n]``) with random
    ``weights``-typed per-channel weights: a GEMM of a chosen shape for benchmarks and tests,
    without torch in the way."""
    rng = np.random.default_rng(seed)
    dt = datatype(weights)
    values = rng.integers(dt.qmin, dt.qmax + 1, (n, k))
    weight = QWeight(codes=dt.encode(values).reshape(n, k), dtype_codes=np.full((n, 1), dt.code),
                     zero_points=np.zeros((n, 1), np.int64), group_scales=np.ones((n, 1), np.int64),
                     channel_scales=rng.uniform(0.01, 0.05, n), group_size=k)
    xq = QParams(0.05, 3)
    # output scale ~ the accumulators' spread, so the int8 outputs use their range
    out_q = QParams(float(0.05 * 0.03 * np.sqrt(k) * max(dt.qmax, 1) / 40), -2) if int8_out else None
    shape = (*lead, m, k)
    vals = {"x": Value("x", shape, "float32"), "xq": Value("xq", shape, "int8", xq),
            "y": Value("y", (*lead, m, n), "int8" if int8_out else "int32", out_q)}
    attrs = {"kind": "linear", "weight": weight, "x_q": xq, "bias": rng.normal(0, 1, n), "relu": False,
             "out_q": out_q}
    ops = (Op("xq", "quantize", ("x",), ("xq",), {"args": [Ref(0), xq.scale, xq.zero_point, -128, 127]},
              reason=HOST_REASONS["quantize"]),
           Op("y", "qgemm", ("xq",), ("y",), attrs, placement="accel", source="y: linear"))
    return Graph(vals, ops, ("x",), ("y",))


def conv_graph(rng: np.random.Generator, n: int = 1, cin: int = 5, cout: int = 6, h: int = 7, w: int = 6, k: int = 3,
               stride: int = 1, pad: int = 1, dilation: int = 1, groups: int = 1, weights: str = "int4",
               int8_out: bool = True, relu: bool = False, out_scale: float = 0.2) -> Graph:
    """An IR graph of one quantized conv2d (``x[n, cin, h, w] -> y``) with random ``weights``-typed
    per-channel weights, a random input zero point and bias: grouped and depthwise convolutions of
    any geometry for tests and benchmarks, without torch in the way."""
    dt = datatype(weights)
    shape = (cout, cin // groups, k, k)
    values = rng.integers(dt.qmin, dt.qmax + 1, shape)
    weight = QWeight(codes=dt.encode(values).reshape(shape), dtype_codes=np.full((cout, 1), dt.code),
                     zero_points=np.zeros((cout, 1), np.int64), group_scales=np.ones((cout, 1), np.int64),
                     channel_scales=rng.uniform(0.01, 0.05, cout), group_size=cin // groups)
    xq = QParams(0.05, int(rng.integers(-20, 20)))
    ho = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    out_q = QParams(out_scale, int(rng.integers(-10, 10))) if int8_out else None
    attrs = {"kind": "conv2d", "weight": weight, "x_q": xq, "bias": rng.normal(0, 0.5, cout),
             "stride": (stride, stride), "padding": (pad, pad), "dilation": (dilation, dilation), "groups": groups,
             "relu": relu, "out_q": out_q}
    vals = {"x": Value("x", (n, cin, h, w), "float32"), "xq": Value("xq", (n, cin, h, w), "int8", xq),
            "y": Value("y", (n, cout, ho, wo), "int8" if int8_out else "int32", out_q)}
    ops = (Op("xq", "quantize", ("x",), ("xq",), {"args": [Ref(0), xq.scale, xq.zero_point, -128, 127]},
              reason=HOST_REASONS["quantize"]),
           Op("y", "qgemm", ("xq",), ("y",), attrs, placement="accel", source="y: conv2d"))
    return Graph(vals, ops, ("x",), ("y",))
