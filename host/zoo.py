"""The model zoo: stock models (compiler/models/stock.py) quantized by either quantizer, compiled
unmodified and run on the golden model, each compared with its float model.

For one (model, quantizer) pair ``evaluate`` reports whether it compiled (or the compiler's
error), how many ops run on the accelerator and on the host, the cosine similarity of the
quantized model's output to the float model's, the share of inputs whose top-1 class agrees,
and the compiler's estimated cycles. ``lowbit bench zoo`` runs the whole set.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from compiler.examples import quantize_pt2e
from compiler.models.stock import BUILDERS, stock_model
from compiler.pipeline import compile_model
from compiler.quantizer import quantize_model
from host.runtime import run_model
from hw.config import AccelConfig, load_config

QUANTIZERS = ("lowbit", "pt2e")
WEIGHTS = "int8"  # lowbit's quantizer: INT8 per output channel, as PT2E's X86 configuration has


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den else float("nan")


def quantize(name: str, quantizer: str, sm=None) -> torch.export.ExportedProgram:
    """A stock model quantized by ``quantizer`` ("lowbit": INT8 weights per channel, static INT8
    activations; "pt2e": torchao's X86 Inductor configuration)."""
    sm = sm or stock_model(name)
    if quantizer == "lowbit":
        return quantize_model(sm.model, sm.example_inputs, sm.calibration, weights=WEIGHTS)
    if quantizer == "pt2e":
        return quantize_pt2e(sm.model, sm.example_inputs, sm.calibration)
    raise ValueError(f"quantizer {quantizer!r}: choose one of {', '.join(QUANTIZERS)}")


def evaluate(name: str, quantizer: str, cfg: AccelConfig | None = None, batch: int = 4) -> dict:
    """One model under one quantizer on the golden model (module docstring)."""
    cfg = cfg or load_config("default")
    sm = stock_model(name, batch=batch)
    row: dict = {"model": name, "quantizer": quantizer, "compiled": False, "error": ""}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = quantize(name, quantizer, sm)
            program, graph = compile_model(ep, cfg)
    except Exception as exc:  # the compiler's (or the quantizer's) own error is the result
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    row["compiled"] = True
    row["compile_s"] = round(time.perf_counter() - t0, 2)
    accel = [op for op in graph.ops if op.placement == "accel"]
    row["accel_ops"] = len(accel)
    row["host_ops"] = len(graph.ops) - len(accel)
    row["host_kinds"] = sorted({op.kind for op in graph.ops if op.placement == "host"})
    row["estimated_cycles"] = sum(r["cycles"] for r in program.meta["report"] if r["placement"] == "accel")
    t0 = time.perf_counter()
    run = run_model(program, list(sm.example_inputs))
    row["golden_s"] = round(time.perf_counter() - t0, 2)
    with torch.no_grad():
        want = sm.model(*sm.example_inputs).numpy()
        export = ep.module()(*sm.example_inputs).numpy()
    got = run.outputs[0]
    row["cosine_to_float"] = round(cosine(got, want), 6)
    row["cosine_to_export"] = round(cosine(got, export), 6)
    top1 = got.reshape(got.shape[0], -1).argmax(1), want.reshape(want.shape[0], -1).argmax(1)
    row["top1_agree"] = float(np.mean(top1[0] == top1[1]))
    return row


def evaluate_all(models=None, quantizers=QUANTIZERS, cfg: AccelConfig | None = None, progress=None) -> dict:
    """``{"models": {"MODEL.QUANTIZER": row}}`` for every pair."""
    models = list(models or BUILDERS)
    out = {}
    pairs = [(m, q) for m in models for q in quantizers]
    for i, (m, q) in enumerate(pairs):
        if progress:
            progress(f"{m} ({q})", i, len(pairs))
        out[f"{m}.{q}"] = evaluate(m, q, cfg)
    return {"config": (cfg or load_config("default")).name, "models": out}


def rtl_check(name: str, quantizer: str, cfg: AccelConfig | None = None) -> dict:
    """One model's accelerator stages on the RTL (Verilator), checked bit for bit against the golden model."""
    from host.devices import VerilatorDevice
    from host.runtime import first_mismatch

    cfg = cfg or load_config("default")
    sm = stock_model(name, batch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program, _ = compile_model(quantize(name, quantizer, sm), cfg)
    inputs = list(sm.example_inputs)
    rtl = run_model(program, inputs, VerilatorDevice(program))
    golden = run_model(program, inputs)
    mismatch = first_mismatch(rtl, golden)
    return {"model": name, "quantizer": quantizer, "bit_exact": mismatch is None,
            "mismatch": str(mismatch) if mismatch else "", "cycles": rtl.cycles,
            "estimated_cycles": rtl.estimated_cycles, "layers": len(rtl.layers)}
