"""Golden-model speed on a 256x256x256 INT8 x INT4 tiled GEMM (default config), checked
bit for bit against a direct NumPy evaluation."""

from __future__ import annotations

import time

import numpy as np

from compiler.gemm import example_operands, gemm_program, reference_gemm
from hw.config import load_config
from sim.golden import run_program

DESCRIPTION = "golden-model interpreter speed: 256^3 INT8 x INT4 GEMM on the default config"


def run(config: str = "default", m: int = 256, k: int = 256, n: int = 256) -> dict:
    cfg = load_config(config)
    a, w, req = example_operands(m, k, n, "int4")
    t0 = time.perf_counter()
    prog = gemm_program(cfg, a, w, "int4", req)
    t1 = time.perf_counter()
    sim, res = run_program(prog)
    t2 = time.perf_counter()
    res.raise_for_status()
    out = sim.read(prog.tensor("out").dram_addr, (m, n))
    ref = reference_gemm(a, w, req, cfg.act_bits)
    return {
        "config": cfg.name, "m": m, "k": k, "n": n, "weight_bits": 4,
        "instructions": len(prog.insns), "macs": res.macs,
        "assemble_s": round(t1 - t0, 4), "run_s": round(t2 - t1, 4),
        "macs_per_s": round(res.macs / (t2 - t1)), "insns_per_s": round(len(prog.insns) / (t2 - t1)),
        "load_bytes": res.load_bytes, "store_bytes": res.store_bytes,
        "bit_exact": bool(np.array_equal(out, ref)),
    }
