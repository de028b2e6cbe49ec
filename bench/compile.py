"""The compiler on the default config: compile time, the golden run against the NumPy reference,
and every accelerator layer run on the RTL (HDL-side DRAM, 20-cycle read latency) with its
cycles next to the tiling model's estimate, the data a calibration of ``CostParams`` fits.

Models: the example CNN (PT2E, X86 quantizer), the transformer block (lowbit quantizer, INT4),
and single quantized linear layers of chosen shapes.
"""

from __future__ import annotations

import time

import numpy as np

from compiler.examples import example_program, gemm_graph
from compiler.frontend import import_program
from compiler.lowering import place
from compiler.pipeline import compile_graph
from compiler.reference import evaluate
from host.devices import VerilatorDevice
from host.runtime import first_mismatch, run_model
from hw.config import load_config

DESCRIPTION = "compile example models and GEMMs; estimated vs RTL cycles of every accelerator layer"
CONFIG = "default"
GEMMS = ((256, 256, 256, "int4", True), (64, 512, 128, "int8", True), (128, 128, 128, "int2", False))


def _models():
    for name, quantizer in (("cnn", "pt2e"), ("transformer-block", "lowbit")):
        ep, inputs = example_program(name, quantizer=quantizer)
        yield f"{name}.{quantizer}", import_program(ep), [x.numpy() for x in inputs]
    for m, k, n, w, int8_out in GEMMS:
        g = gemm_graph(m, k, n, w, int8_out, seed=1)
        x = np.random.default_rng(1).normal(0, 3, g.values["x"].shape).astype(np.float32)
        yield f"linear{m}x{k}x{n}.{w}.{'int8' if int8_out else 'int32'}", g, [x]


def _layers(program, inputs: list[np.ndarray]) -> tuple[list[dict], bool]:
    """Every accelerator layer on the RTL next to its estimate, and whether the RTL run equals the golden one."""
    rtl = run_model(program, inputs, VerilatorDevice(program))
    golden = run_model(program, inputs)
    rows = [{"layer": lr.layer, "macs": lr.macs, "estimated_cycles": lr.estimated_cycles, "rtl_cycles": lr.cycles,
             "ratio": round(lr.cycles / lr.estimated_cycles, 3), "dma_bytes": lr.dma_bytes} for lr in rtl.layers]
    return rows, first_mismatch(rtl, golden) is None


def run() -> dict:
    cfg = load_config(CONFIG)
    models = {}
    for name, graph, inputs in _models():
        t0 = time.perf_counter()
        program = compile_graph(graph, cfg)
        compile_s = time.perf_counter() - t0
        placed = place(graph, cfg)
        ref = evaluate(placed, dict(zip(graph.inputs, inputs)))
        golden = run_model(program, inputs)
        layers, rtl_exact = _layers(program, inputs)
        est, rtl = sum(r["estimated_cycles"] for r in layers), sum(r["rtl_cycles"] for r in layers)
        models[name] = {
            "compile_s": round(compile_s, 4), "instructions": len(program.insns),
            "accelerator_layers": sum(op.placement == "accel" for op in placed.ops),
            "host_ops": sum(op.placement == "host" for op in placed.ops),
            "golden_equals_reference": all(np.array_equal(v, ref[k]) for k, v in golden.values.items()),
            "estimated_cycles": est, "rtl_cycles": rtl, "ratio": round(rtl / est, 3),
            "rtl_bit_exact": rtl_exact, "layers": layers,
        }
    return {"config": CONFIG, "models": models}
