"""A 256x256x256 INT8 x INT4 GEMM on the RTL of the default configuration (Verilator, the
HDL-side simulation DRAM), with its array utilization, checked against the golden model."""

from __future__ import annotations

import time

from compiler.gemm import example_operands, gemm_program
from hw.config import load_config
from hw.datatypes import datatype
from sim.dram import SimDramConfig
from sim.system import run_rtl

DESCRIPTION = "RTL cycles and array utilization of a 256^3 INT8 x INT4 GEMM on the default config"


def run(config: str = "default", m: int = 256, k: int = 256, n: int = 256, dtype: str = "int4") -> dict:
    cfg = load_config(config)
    dt = datatype(dtype)
    a, w, req = example_operands(m, k, n, dtype)
    prog = gemm_program(cfg, a, w, dtype, req)
    dram = SimDramConfig()
    t0 = time.perf_counter()
    run_ = run_rtl(prog, "sim_dram", dram=dram)
    wall = time.perf_counter() - t0
    c = run_.result["counters"]
    ideal = m * k * n // (cfg.rows * cfg.cols)
    load = run_.golden.load_bytes
    store = run_.golden.store_bytes
    return {
        "config": cfg.name, "m": m, "k": k, "n": n, "weight_bits": dt.bits,
        "cycles": c["cycles"], "ideal_cycles": ideal, "utilization": round(ideal / c["cycles"], 4),
        "dma_bytes": load + store, "load_bytes": load, "store_bytes": store,
        "bit_exact": run_.bit_exact,
        "kernel": prog.meta["kernel"], "m_tile": prog.meta["m_tile"], "instructions": len(prog.insns),
        "array_busy": c["array_busy"], "array_stall": c["array_stall"], "dma_busy": c["dma_busy"],
        "dma_stall": c["dma_stall"], "postproc_busy": c["postproc_busy"],
        "dram": dram.model_dump(), "status": run_.result["error"], "wall_s": round(wall, 2),
    }
