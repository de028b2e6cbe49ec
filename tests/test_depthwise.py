"""Depthwise convolutions on their own schedule (compiler/tiling.py, "depthwise convolutions"):
bit-exact against the NumPy reference on the golden model and on the RTL, within one INT8 step
of PyTorch, the cost model's DMA bytes and instructions equal to the program's, and a guard on
the estimated cycles of mobilenet_v2's depthwise layers (64x64 input, ``default``).

``python tests/test_depthwise.py [--rtl]`` prints the per-layer table of docs/compiler.md: the
estimate, the bound (max of MACs / (rows x cols) and the bytes a layer must move once over the
bus width), the efficiency bound / cycles, with ``--rtl`` the RTL's cycles, and with ``--before``
the grouped-convolution lowering the compiler used before.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from compiler.examples import conv_graph
from compiler.ir import Graph
from compiler.lowering import lower_qgemm, place, plan_layouts
from compiler.pipeline import compile_graph
from compiler.reference import evaluate
from compiler.tiling import search
from host.devices import stage_program
from host.runtime import run_model
from hw.config import AccelConfig, load_config
from hw.isa import PARAM_BYTES, Opcode
from sim.golden import run_program


def dw_graph(rng, c: int, h: int, k: int = 3, stride: int = 1, pad: int | None = None, mult: int = 1,
             weights: str = "int8", n: int = 1, w: int | None = None, dilation: int = 1, relu: bool = True,
             int8_out: bool = True) -> Graph:
    """One quantized depthwise convolution (``groups = c``, ``mult`` output channels per input channel)."""
    return conv_graph(rng, n=n, cin=c, cout=c * mult, h=h, w=h if w is None else w, k=k, stride=stride,
                      pad=dilation * (k // 2) if pad is None else pad, dilation=dilation, groups=c, weights=weights,
                      int8_out=int8_out, relu=relu, out_scale=0.3)


def lowered(graph: Graph, cfg: AccelConfig):
    graph = place(graph, cfg)
    accel = [op for op in graph.ops if op.placement == "accel"]
    return lower_qgemm(accel[0], graph, cfg, plan_layouts(graph, accel))


def bound_cycles(cfg: AccelConfig, c: int, h: int, k: int, s: int, pad: int = 1, weight_bits: int = 8) -> float:
    """max(MACs / (rows x cols), bytes moved once / bus bytes): input, weights, params and output once."""
    ho = (h + 2 * pad - k) // s + 1
    compute = ho * ho * c * k * k / (cfg.rows * cfg.cols)
    nbytes = c * h * h + c * ho * ho + c * k * k * weight_bits / 8 + c * PARAM_BYTES
    return max(compute, nbytes / (cfg.axi_data_bits / 8))


CASES = [
    dict(c=16, h=8), dict(c=20, h=7, stride=2), dict(c=8, h=9, k=5), dict(c=12, h=6, mult=2),
    dict(c=32, h=5, w=7, n=2), dict(c=16, h=10, k=5, stride=2), dict(c=5, h=6, stride=3),
    dict(c=24, h=6, pad=0), dict(c=16, h=9, w=6, stride=2, weights="int4"), dict(c=18, h=7, dilation=2),
    dict(c=17, h=6, int8_out=False), dict(c=40, h=3, stride=2, relu=False),
]


@pytest.mark.parametrize("config", ["default", "tiny"])
@pytest.mark.parametrize("kw", CASES, ids=[",".join(f"{k}={v}" for k, v in c.items()) for c in CASES])
def test_depthwise_matches_reference(config, kw):
    """Golden model == NumPy reference, under both queue schedules (the tokens order every reuse)."""
    cfg = load_config(config)
    rng = np.random.default_rng(len(str(kw)))
    g = dw_graph(rng, **kw)
    assert [lj.im2col for lj in lowered(g, cfg)[0]][0] == "depthwise"
    x = rng.normal(0, 3, g.values["x"].shape).astype(np.float32)
    program = compile_graph(g, cfg)
    got = run_model(program, [x]).values["y"]
    ref = evaluate(place(g, cfg), {"x": x})
    assert np.array_equal(got, ref["y"])
    stage = next(s for s in program.meta["stages"] if s["kind"] == "accel")
    sp = stage_program(program, stage, ref)
    outs = []
    for schedule in ("load-first", "store-first"):
        sim, res = run_program(sp, schedule)
        assert res.ok, res.message
        t = sp.tensor("y")
        outs.append(sim.dram[t.dram_addr : t.dram_addr + t.nbytes].tobytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize("c, h, s", [(32, 16, 1), (96, 16, 2), (960, 2, 1), (24, 9, 2)])
def test_cost_model_counts_the_schedule(default, c, h, s):
    """The estimate's DMA bytes and instructions are the program's (the golden model's trace)."""
    rng = np.random.default_rng(c)
    g = dw_graph(rng, c, h, stride=s)
    program = compile_graph(g, default)
    report = program.meta["report"][1]
    stage = next(st for st in program.meta["stages"] if st["kind"] == "accel")
    x = evaluate(place(g, default), {"x": rng.normal(0, 3, g.values["x"].shape).astype(np.float32)})
    _, res = run_program(stage_program(program, stage, x))
    assert res.ok
    assert report["dma_bytes"] == sum(w.dram_bytes for w in res.trace if w.opcode in (Opcode.LOAD, Opcode.STORE))
    lj = min(lowered(g, default)[0], key=lambda a: search(default, _gemm(a), 8).cost.cycles)
    assert search(default, _gemm(lj), 8).cost.instructions == stage["insn_count"]


def _gemm(lj):
    from compiler.tiling import Gemm

    return Gemm("y", lj.job.m, lj.gemm_k, lj.job.n, row_runs=lj.row_runs, out_row_runs=lj.out_row_runs,
                depthwise=lj.job.depthwise.geom if lj.job.depthwise else None)


def test_depthwise_model_is_close_to_pytorch():
    """A PT2E-quantized model with depthwise 3x3 stride 1 and 2, a 5x5 and a channel multiplier of 2,
    through the front-end: bit-exact with the reference, within one INT8 step of PyTorch."""
    import torch
    from test_compiler import torch_values

    from compiler.examples import quantize_pt2e
    from compiler.pipeline import compile_model

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 24, 3, padding=1)
            self.dw1 = torch.nn.Conv2d(24, 24, 3, padding=1, groups=24)
            self.dw2 = torch.nn.Conv2d(24, 24, 3, stride=2, padding=1, groups=24)
            self.dw3 = torch.nn.Conv2d(24, 24, 5, padding=2, groups=24)
            self.dw4 = torch.nn.Conv2d(24, 48, 3, padding=1, groups=24)
            self.pw = torch.nn.Conv2d(48, 16, 1)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = torch.relu(self.dw2(torch.relu(self.dw1(x))))
            return self.pw(torch.relu(self.dw4(torch.relu(self.dw3(x)))))

    torch.manual_seed(0)
    model = Net().eval()
    gen = torch.Generator().manual_seed(1)
    inputs = (torch.randn(1, 3, 12, 12, generator=gen),)
    ep = quantize_pt2e(model, inputs, [(torch.randn(1, 3, 12, 12, generator=gen),) for _ in range(8)])
    theirs = torch_values(ep, inputs)
    for config in ("default", "tiny"):
        program, graph = compile_model(ep, load_config(config))
        arrays = [x.numpy() for x in inputs]
        run = run_model(program, arrays)
        ref = evaluate(graph, dict(zip(graph.inputs, arrays)))
        for name, got in run.values.items():
            assert np.array_equal(got, ref[name]), f"value {name} differs"
        dws = [op for op in graph.ops if op.kind == "qgemm" and op.attrs["groups"] > 1]
        assert len(dws) == 4 and all(op.placement == "accel" for op in dws)
        for op in dws:  # each depthwise layer's int8 output within one step of PyTorch's
            v = graph.values[op.output]
            assert v.dtype == "int8" and op.output in theirs
            diff = np.abs(theirs[op.output].numpy().astype(np.int64) - v.q.offset - ref[op.output].astype(np.int64))
            assert diff.max() <= 1, (op.name, diff.max())


@pytest.mark.parametrize("kw", [dict(c=20, h=7, stride=2), dict(c=16, h=6, int8_out=False),
                                dict(c=40, h=3, k=5, pad=2), dict(c=8, h=9, stride=2, mult=2)],
                         ids=["s2-20ch", "int32-out", "5x5-40ch", "mult2"])
@pytest.mark.rtl
def test_depthwise_on_rtl(default, tmp_path, kw):
    """Small depthwise layers on the RTL (sim DRAM): the golden model's bytes, the reference's
    values, and cycles within 15% of the estimate."""
    from host.devices import VerilatorDevice

    rng = np.random.default_rng(7)
    g = dw_graph(rng, **kw)
    x = rng.normal(0, 3, g.values["x"].shape).astype(np.float32)
    program = compile_graph(g, default)
    rtl = run_model(program, [x], VerilatorDevice(program, work_dir=tmp_path))
    gold = run_model(program, [x])
    assert np.array_equal(rtl.values["y"], gold.values["y"])
    assert np.array_equal(rtl.values["y"], evaluate(place(g, default), {"x": x})["y"])
    layer = rtl.layers[0]
    assert 0.85 <= layer.cycles / layer.estimated_cycles <= 1.15, (layer.cycles, layer.estimated_cycles)


# mobilenet_v2 at 64x64 on default: (channels, input size, stride), the estimate before this schedule
# (grouped lowering, blocks of 16 channels) and the one it gets now (cycle counts are deterministic)
MOBILENET_V2 = [
    (32, 32, 1, 26054, 20960), (96, 32, 2, 38466, 20370), (144, 16, 1, 38160, 24970), (144, 16, 2, 23040, 13075),
    (192, 8, 1, 21312, 9969), (192, 8, 2, 13728, 5398), (384, 4, 1, 21576, 7573), (576, 4, 1, 32364, 11097),
    (576, 4, 2, 25092, 10294), (960, 2, 1, 38460, 14185),
]


def test_mobilenet_v2_depthwise_estimates(default):
    """Every layer at most what this schedule achieved; 192 channels 8x8 -> 4x4 (stride 2) at most
    today's / 2.5; all layers together at least twice as efficient as before (0.102 -> 0.206)."""
    total, bound, before = 0, 0.0, 0
    for c, h, s, was, now in MOBILENET_V2:
        g = dw_graph(np.random.default_rng(0), c, h, stride=s)
        cycles = compile_graph(g, default).meta["report"][1]["cycles"]
        assert cycles <= now, (c, h, s, cycles)
        if (c, h, s) == (192, 8, 2):
            assert cycles <= was / 2.5
        total, before = total + cycles, before + was
        bound += bound_cycles(default, c, h, 3, s)
    assert bound / total >= 2 * bound / before
    assert bound / total >= 0.2


def _table(rtl: bool, before: bool) -> None:
    import compiler.lowering as lowering
    from host.devices import VerilatorDevice

    if before:
        lowering._lower_depthwise = lambda *a: []
    cfg = load_config("default")
    print("| channels | size | stride | tiling | estimate | RTL | bound | efficiency (est) | efficiency (RTL) |")
    print("|---|---|---|---|---|---|---|---|---|")
    sums = [0, 0, 0.0]
    for c, h, s, *_ in MOBILENET_V2:
        rng = np.random.default_rng(0)
        g = dw_graph(rng, c, h, stride=s)
        program = compile_graph(g, cfg)
        rows = [r for r in program.meta["report"] if r["placement"] == "accel"]
        est = sum(r["cycles"] for r in rows)
        b = bound_cycles(cfg, c, h, 3, s)
        cyc = None
        if rtl:
            x = rng.normal(0, 3, g.values["x"].shape).astype(np.float32)
            run = run_model(program, [x], VerilatorDevice(program))
            assert np.array_equal(run.values["y"], run_model(program, [x]).values["y"])
            cyc = sum(lr.cycles for lr in run.layers)
            sums[1] += cyc
        sums[0] += est
        sums[2] += b
        tiling = rows[0]["tiling"] + (f" ({len(rows)} jobs)" if len(rows) > 1 else "")
        print(f"| {c} | {h}->{(h - 1) // s + 1} | {s} | {tiling} | {est} | {cyc or ''} | {b:.0f} | {b / est:.3f} | "
              f"{f'{b / cyc:.3f}' if cyc else ''} |")
    print(f"| all | | | | {sums[0]} | {sums[1] or ''} | {sums[2]:.0f} | {sums[2] / sums[0]:.3f} | "
          f"{f'{sums[2] / sums[1]:.3f}' if sums[1] else ''} |")


if __name__ == "__main__":
    _table("--rtl" in sys.argv, "--before" in sys.argv)
