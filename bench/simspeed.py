"""Simulated cycles per wall-clock second of one whole-program RTL run through cocotb (GPI
clock, HDL-side DRAM, Python waiting for the interrupt) and through a plain Verilator C++
harness of the same RTL, taken side by side on the same program."""

from __future__ import annotations

from compiler.gemm import example_operands, gemm_program
from hw.config import load_config
from sim.raw import run_raw
from sim.system import run_rtl

DESCRIPTION = "cocotb vs plain Verilator simulation speed of one whole-program run (256^3 GEMM, default config)"


def run(config: str = "default", m: int = 256, k: int = 256, n: int = 256, repeats: int = 3) -> dict:
    cfg = load_config(config)
    a, w, req = example_operands(m, k, n, "int4")
    prog = gemm_program(cfg, a, w, "int4", req)
    run_rtl(prog), run_raw(prog)  # build both models first; neither build is timed
    cocotb_runs = [run_rtl(prog) for _ in range(repeats)]
    raw_runs = [run_raw(prog) for _ in range(repeats)]
    best_cocotb = max(cocotb_runs, key=lambda r: r.result["sim_cycles"] / r.result["wall_s"])
    best_raw = max(raw_runs, key=lambda r: r.cycles_per_s)
    cocotb_cps = best_cocotb.result["sim_cycles"] / best_cocotb.result["wall_s"]
    same = all(r.tensors["out"] == best_raw.tensors["out"] for r in cocotb_runs)
    return {
        "config": cfg.name, "program": f"gemm {m}x{k}x{n} int4", "cycles": best_raw.sim_cycles,
        "cocotb_cycles_per_s": round(cocotb_cps), "raw_cycles_per_s": round(best_raw.cycles_per_s),
        "ratio": round(cocotb_cps / best_raw.cycles_per_s, 3),
        "cocotb_wall_s": round(best_cocotb.result["wall_s"], 3), "raw_wall_s": round(best_raw.wall_s, 3),
        "repeats": repeats, "same_output": same, "bit_exact": best_cocotb.bit_exact,
    }
