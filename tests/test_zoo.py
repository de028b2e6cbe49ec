"""Stock models as users write them compile unmodified under both quantizers and track their
float models on the golden model; one runs on the RTL bit for bit."""

import numpy as np
import pytest
import torch

from compiler.examples import quantize_pt2e
from compiler.frontend import FrontendError
from compiler.models.stock import stock_model
from compiler.pipeline import compile_model
from compiler.quantizer import quantize_model
from host.runtime import run_model
from host.zoo import cosine, evaluate, rtl_check
from hw.config import load_config


@pytest.mark.parametrize("quantizer", ["lowbit", "pt2e"])
@pytest.mark.parametrize("name", ["keyword_spotter", "transformer_encoder"])
def test_small_stock_models_track_the_float_model(name, quantizer):
    row = evaluate(name, quantizer)
    assert row["compiled"], row["error"]
    assert row["accel_ops"] >= 3
    assert row["cosine_to_float"] >= 0.999 and row["top1_agree"] == 1.0
    assert row["cosine_to_export"] >= 0.9999  # the golden model runs what the quantized export computes


@pytest.mark.slow
def test_mobilenet_v3_compiles_unmodified():
    """hardswish, hardsigmoid, squeeze-excitation, depthwise convolutions with BatchNorm, dropout."""
    row = evaluate("mobilenet_v3_small", "lowbit")
    assert row["compiled"], row["error"]
    assert {"hardswish", "hardsigmoid"} <= set(row["host_kinds"])
    assert row["cosine_to_float"] >= 0.99 and row["top1_agree"] == 1.0


@pytest.mark.slow
def test_vision_transformer_compiles_unmodified():
    """timm's ViT-Tiny: its attention is scaled_dot_product_attention (on the host), its linears on the array."""
    row = evaluate("vit_tiny", "pt2e", batch=2)
    assert row["compiled"], row["error"]
    assert "scaled_dot_product_attention" in row["host_kinds"] and row["accel_ops"] >= 48
    assert row["cosine_to_float"] >= 0.999 and row["top1_agree"] == 1.0


def test_relu6_fuses_into_the_requantization():
    """conv -> BatchNorm -> ReLU6 -> conv: the clamp at 6 is the int8 saturation of the quantize
    after it, so no hardtanh is left on the host, and the result tracks the float model."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                torch.nn.ReLU6(inplace=True), torch.nn.Conv2d(16, 8, 1)).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 10, 10, generator=gen) * 3
    calib = [(torch.randn(2, 3, 10, 10, generator=gen) * 3,) for _ in range(4)]
    for ep in (quantize_model(model, (x,), calib, weights="int8"), quantize_pt2e(model, (x,), calib)):
        program, graph = compile_model(ep, load_config("default"))
        assert not [op for op in graph.ops if op.kind == "hardtanh"]
        assert [op.attrs["relu"] for op in graph.ops if op.kind == "qgemm"] == [True, False]
        got = run_model(program, [x]).outputs[0]
        assert cosine(got, model(x).detach().numpy()) >= 0.999


def test_ceil_mode_pooling_runs():
    """A pool with ceil_mode=True compiles and runs (it used to compile and then fail at run time)."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
                          nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(72, 4)).eval()
    x = torch.randn(1, 3, 15, 15)
    ep = quantize_model(model, (x,), [(torch.randn(1, 3, 15, 15),) for _ in range(4)], weights="int8")
    program, _ = compile_model(ep, load_config("default"))
    got = run_model(program, [x]).outputs[0]
    assert np.allclose(got, ep.module()(x).detach().numpy(), atol=1e-4)


def test_host_op_arguments_are_checked_at_compile_time():
    """A host op given an argument it cannot take is a compile error naming the node and the argument."""

    class TrainDropout(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            return torch.nn.functional.dropout(self.fc(x), 0.5, training=True)

    x = (torch.randn(2, 8),)
    ep = quantize_model(TrainDropout(), x, [x])
    with pytest.raises(FrontendError, match=r"node dropout .*train=True"):
        compile_model(ep, load_config("default"))


def test_pt2e_x86_rejection_points_to_the_working_path():
    sm = stock_model("resnet18")
    with pytest.raises(ValueError, match="more than one output node.*lowbit's quantizer"):
        quantize_pt2e(sm.model, sm.example_inputs, sm.calibration[:1])


@pytest.mark.rtl
def test_keyword_spotter_on_the_rtl_is_bit_exact():
    """conv1d (on the array as a height-1 conv2d), BatchNorm folded, a dilated depthwise conv1d."""
    row = rtl_check("keyword_spotter", "lowbit")
    assert row["bit_exact"], row["mismatch"]
    assert row["layers"] == 4 and row["cycles"] > 0
