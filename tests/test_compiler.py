"""The compiler end to end: quantized torch models -> programs whose golden-model run equals a
direct NumPy evaluation of the same quantized graph bit for bit, and PyTorch's own quantized
model to within one INT8 step on every quantized tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compiler.examples import conv_graph, example, example_program, gemm_graph
from compiler.frontend import FrontendError, import_program
from compiler.ir import Graph
from compiler.lowering import CompileError, fixed_point, place
from compiler.pipeline import compile_graph, compile_model, report_markdown
from compiler.reference import evaluate, qgemm_accumulators
from compiler.tiling import ORDERS, Gemm, Tiling, fits
from host.runtime import run_model
from hw.config import from_dict, load_config
from hw.program import Program, ProgramError


def torch_values(ep: torch.export.ExportedProgram, inputs: tuple) -> dict[str, torch.Tensor]:
    """Every node's output when PyTorch runs the quantized program."""
    values = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            values[n.name] = out
            return out

    Recorder(ep.module()).run(*inputs)
    return values


def check_model(ep: torch.export.ExportedProgram, inputs: tuple, cfg) -> dict:
    """Compile, run on the golden model, compare with the NumPy reference and with PyTorch."""
    program, graph = compile_model(ep, cfg)
    program = Program.from_bytes(program.to_bytes())  # what a user runs is the file
    arrays = [x.numpy() for x in inputs]
    run = run_model(program, arrays)
    ref = evaluate(graph, dict(zip(graph.inputs, arrays)))
    assert set(run.values) <= set(ref)
    for name, got in run.values.items():
        assert got.dtype == ref[name].dtype and np.array_equal(got, ref[name]), f"value {name} differs"
    tv = torch_values(ep, inputs)
    lsb = {}
    for name, v in graph.values.items():
        if v.dtype == "int8" and name in tv:  # every quantize node PyTorch ran
            theirs = tv[name].numpy().astype(np.int64) - v.q.offset
            lsb[name] = int(np.abs(theirs - ref[name].astype(np.int64)).max())
    assert lsb and max(lsb.values()) <= 1, lsb
    out = run.outputs[0]
    want = ep.module()(*inputs)
    want = (want[0] if isinstance(want, tuple) else want).detach().numpy()
    producer = graph.producer(graph.outputs[0])
    if producer.kind == "dequantize":  # an int8 output: one step is its scale
        step = graph.values[producer.inputs[0]].q.scale
        assert np.all(np.abs(out - want) <= step * (1 + 1e-6))
    else:  # a float output computed from exact accumulators; float32 rounding only
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    return {"program": program, "graph": graph, "run": run, "lsb": lsb}


@pytest.fixture(scope="module")
def cnn_pt2e():
    return example_program("cnn", quantizer="pt2e")


@pytest.mark.parametrize("config", ["default", "tiny"])
def test_cnn_pt2e(cnn_pt2e, config):
    ep, inputs = cnn_pt2e
    r = check_model(ep, inputs, load_config(config))
    kinds = {op.attrs["kind"] for op in r["graph"].ops if op.placement == "accel"}
    assert kinds == {"conv2d", "linear"}
    depthwise = [op for op in r["graph"].ops if op.kind == "qgemm" and op.attrs.get("groups", 1) > 1]
    assert depthwise and all(op.placement == "accel" for op in depthwise)
    assert r["run"].macs > 0


@pytest.mark.parametrize("weights, group_size", [("int4", None), ("int2", None), ("int8", None)])
def test_cnn_lowbit_quantizer(weights, group_size):
    ep, inputs = example_program("cnn", quantizer="lowbit", weights=weights, group_size=group_size)
    r = check_model(ep, inputs, load_config("default"))
    assert all(op.placement == "accel" for op in r["graph"].ops if op.kind == "qgemm")
    # residual add, pooling and flatten are host ops, reported with their node
    host = {op.kind for op in r["graph"].ops if op.placement == "host"}
    assert {"add", "max_pool2d", "avg_pool2d", "flatten"} <= host
    report = report_markdown(r["program"])
    assert "add" in report and "accel" in report


def test_cnn_mixture_on_serial_pe():
    ep, inputs = example_program("cnn", quantizer="lowbit", weights="mixture4", group_size=16)
    r = check_model(ep, inputs, load_config("serial"))
    assert all(op.placement == "accel" for op in r["graph"].ops if op.kind == "qgemm")


@pytest.mark.parametrize("quantizer, weights, group_size, config", [
    ("pt2e", "int8", None, "default"), ("lowbit", "int4", None, "tiny"), ("lowbit", "mixture4", 32, "serial"),
])
def test_mlp(quantizer, weights, group_size, config):
    ep, inputs = example_program("mlp", quantizer=quantizer, weights=weights, group_size=group_size)
    r = check_model(ep, inputs, load_config(config))
    assert sum(op.placement == "accel" for op in r["graph"].ops) == 3


@pytest.mark.parametrize("quantizer", ["pt2e", "lowbit"])
def test_transformer_block(quantizer):
    ep, inputs = example_program("transformer-block", quantizer=quantizer)
    r = check_model(ep, inputs, load_config("default"))
    g = r["graph"]
    assert sum(op.kind == "qgemm" and op.placement == "accel" for op in g.ops) == 6  # q, k, v, out, ffn1, ffn2
    host = {op.kind for op in g.ops if op.placement == "host"}
    assert {"softmax", "layer_norm", "matmul"} <= host


def test_mixture_weights_need_the_serial_pe():
    """A layer the configuration cannot run goes to the host, with the reason, and still computes exactly."""
    ep, inputs = example_program("mlp", quantizer="lowbit", weights="mixture4", group_size=32)
    r = check_model(ep, inputs, load_config("default"))
    host = [op for op in r["graph"].ops if op.kind == "qgemm"]
    assert host and all(op.placement == "host" and "bit-serial" in op.reason for op in host)
    assert "bit-serial" in report_markdown(r["program"])


# ---- lowering and codegen on hand-built graphs ------------------------------------------------


def run_and_compare(graph: Graph, cfg, rng, tilings=None, im2col="auto") -> np.ndarray:
    x = rng.normal(0, 3, graph.values["x"].shape).astype(np.float32)
    program = compile_graph(graph, cfg, tilings, im2col)
    got = run_model(program, [x]).values[graph.outputs[0]]
    want = evaluate(place(graph, cfg), {"x": x})[graph.outputs[0]]
    assert np.array_equal(got, want)
    return got


CONVS = [
    dict(), dict(stride=2), dict(pad=0, k=1), dict(dilation=2, pad=2), dict(groups=5, cin=5, cout=10),
    dict(groups=6, cin=6, cout=6, weights="int2"), dict(cin=3, cout=9, k=5, pad=2, stride=2, n=2),
    dict(int8_out=False), dict(relu=True, weights="int8", cin=17, cout=5), dict(groups=2, cin=8, cout=6),
]


@pytest.mark.parametrize("im2col", ["rows", "wide"])
@pytest.mark.parametrize("kw", CONVS, ids=[",".join(f"{k}={v}" for k, v in c.items()) or "3x3" for c in CONVS])
def test_conv_lowering_matches_reference(tiny, rng, kw, im2col):
    run_and_compare(conv_graph(rng, **kw), tiny, rng, im2col=im2col)


def test_wide_im2col_reads_whole_images(tiny, rng):
    """Over the padded width a 3x3 convolution takes a LOAD per k-tile and block of an image, not per output row."""
    g = conv_graph(rng, n=2, cin=4, cout=4, h=6, w=6)
    loads = {}
    for kind in ("rows", "wide"):
        program = compile_graph(g, tiny, {"y": Tiling(32, 4, 4, "weight_stationary", True)}, kind)
        loads[kind] = sum(1 for w in program.insns if (w & 0xF) == 1)
        assert program.meta["report"][1]["tiling"].endswith(" wide") == (kind == "wide")
    assert loads["wide"] * 2 < loads["rows"]


def test_reference_conv_is_pytorch_conv(rng):
    """The reference's accumulators (the zero point subtracted) are an exact float64 convolution."""
    g = conv_graph(rng, n=2, cin=6, cout=4, stride=2, dilation=2, pad=2, groups=2, int8_out=False)
    op = g.ops[1]
    x = rng.integers(-128, 128, g.values["xq"].shape)
    z = op.attrs["x_q"].zero_point
    acc = qgemm_accumulators(op, x)
    wi = op.attrs["weight"].integer()
    want = torch.nn.functional.conv2d(torch.tensor(x - z, dtype=torch.float64), torch.tensor(wi, dtype=torch.float64),
                                      stride=2, padding=2, dilation=2, groups=2)
    correction = z * wi.reshape(wi.shape[0], -1).sum(axis=1)
    assert np.array_equal(acc - correction[None, :, None, None], want.numpy().astype(np.int64))


def linear_graph(rng, m=37, k=70, n=45, weights="int4", int8_out=True, lead=()) -> Graph:
    return gemm_graph(m, k, n, weights, int8_out, seed=int(rng.integers(1 << 30)), lead=lead)


def _tilings(cfg, m, k, n, bits):
    """Tilings of every loop order and buffering, with K and N split or whole, that fit: one of each
    order and buffering, then every third of the rest."""
    R, C = cfg.rows, cfg.cols
    gemm = Gemm("t", m, -(-k // R) * R, n)
    out = []
    for order in ORDERS:
        for db in (True, False):
            for mt in (5, 16):
                for kt in (R, 2 * R, -(-k // R) * R):
                    for nt in (C, 2 * C):
                        t = Tiling(mt, kt, nt, order, db)
                        if fits(cfg, gemm, bits, t):
                            out.append(t)
    firsts = {(t.order, t.double_buffer): t for t in reversed(out)}
    return list(firsts.values()) + [t for t in out[::3] if t not in firsts.values()]


@pytest.mark.slow
@pytest.mark.parametrize("int8_out", [True, False])
def test_every_tiling_computes_the_same(tiny, rng, int8_out):
    g = linear_graph(rng, int8_out=int8_out)
    tilings = _tilings(tiny, 37, 70, 45, 4)
    assert len({(t.order, t.double_buffer) for t in tilings}) == 6 and len(tilings) > 15
    first = None
    for t in tilings:
        got = run_and_compare(g, tiny, rng if first is None else np.random.default_rng(0), {"y": t})
        first = got if first is None else first


def test_linear_with_leading_dims_and_pinned_tiling_report(tiny, rng):
    g = linear_graph(rng, m=8, k=20, n=12, lead=(3,))
    run_and_compare(g, tiny, rng)
    pinned = Tiling(4, 8, 4, "stream", False)
    program = compile_graph(g, tiny, {"y": pinned})
    row = [r for r in program.meta["report"] if r["placement"] == "accel"][0]
    assert row["tiling"] == "4x8x4 stream" and row["shape"] == "24x20x12"


def test_requant_fixed_point_is_accurate():
    m = np.array([1e-6, 3.7e-3, 0.5, 0.999, 3.0, 1000.0])
    mult, shift = fixed_point(m)
    assert np.all(mult < 2**24) and np.all(mult >= 2**22)
    np.testing.assert_allclose(mult / 2.0**shift, m, rtol=2**-22)


# ---- malformed input ------------------------------------------------------------------------------


def test_unsupported_op_is_named():
    class Cumsum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            y = torch.cumsum(self.fc(x), dim=1)
            return torch.logcumsumexp(y + 1, dim=0) + torch.logcumsumexp(self.fc(x), dim=1)

    from compiler.quantizer import quantize_model

    x = (torch.randn(2, 8),)
    ep = quantize_model(Cumsum(), x, [x])
    with pytest.raises(FrontendError, match="2 op\\(s\\) that neither the accelerator nor the host runs") as err:
        import_program(ep)
    # every unsupported op in one report, each with its node and ATen op; what is computed from an
    # unsupported op (the add and logcumsumexp after cumsum) is not reported again
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == ["node cumsum (aten.cumsum)",
                                                   "node logcumsumexp_1 (aten.logcumsumexp)"]


def test_unquantized_model_is_refused():
    ex = example("mlp")
    ep = torch.export.export(ex.model, ex.example_inputs)
    with pytest.raises(FrontendError, match="no quantize/dequantize nodes"):
        import_program(ep)


def test_config_too_small_for_any_tiling():
    ep, _ = example_program("mlp", quantizer="lowbit", weights="mixture4", group_size=16)
    serial = load_config("serial")
    small = from_dict({**serial.model_dump(), "name": "serial_small_param", "param_buf_bytes": 512})
    with pytest.raises(CompileError, match=r"layer [\w.]+ .*no tiling fits config 'serial_small_param': "
                       r"param_buf_bytes = 512 holds 4 PARAM rows, one output tile needs 5 at once"):
        compile_model(ep, small)


def test_dram_too_small_is_named(rng):
    g = linear_graph(rng, m=64, k=256, n=64)
    cfg = from_dict({**load_config("tiny").model_dump(), "name": "tiny_dram", "dram_bytes": 16384})
    with pytest.raises(CompileError, match="dram_bytes = 16384"):
        compile_graph(g, cfg)


def test_corrupted_program_file(tmp_path, tiny, rng):
    program = compile_graph(linear_graph(rng, m=4, k=8, n=4), tiny)
    raw = bytearray(program.to_bytes())
    path = tmp_path / "m.lbp"
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ProgramError, match="corrupted"):
        Program.load(path)
    path.write_bytes(program.to_bytes()[:40])
    with pytest.raises(ProgramError, match="corrupted header"):
        Program.load(path)
    path.write_bytes(b"PK\3\4" + program.to_bytes()[4:])
    with pytest.raises(ProgramError, match="bad magic"):
        Program.load(path)


def test_wrong_input_shape(tiny, rng):
    program = compile_graph(linear_graph(rng, m=4, k=8, n=4), tiny)
    with pytest.raises(ValueError, match=r"input x: expected shape \(4, 8\)"):
        run_model(program, [np.zeros((4, 9), np.float32)])
