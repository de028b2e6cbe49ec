"""`lowbit demo`: everything that exists, on the built-in default configuration.

Generates and lints the RTL, then runs tiled GEMM programs on the golden model (both
schedules, against NumPy) and on the accelerator RTL in Verilator (against the golden model),
reporting cycles and array utilization.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from compiler.gemm import example_operands, gemm_program, reference_gemm
from hw.config import AccelConfig, load_config
from hw.emit import generate
from sim.golden import SCHEDULES, run_program
from sim.system import run_rtl
from sim.toolchain import lint


def gemm_case(cfg: AccelConfig, m: int, k: int, n: int, dtype: str, seed: int = 0) -> dict:
    a, w, req = example_operands(m, k, n, dtype, seed, relu=True)
    prog = gemm_program(cfg, a, w, dtype, req)
    ref = reference_gemm(a, w, req, cfg.act_bits)
    exact = True
    t0 = time.perf_counter()
    for schedule in SCHEDULES:
        sim, res = run_program(prog, schedule)
        res.raise_for_status()
        exact &= bool(np.array_equal(sim.read(prog.tensor("out").dram_addr, (m, n)), ref))
    seconds = (time.perf_counter() - t0) / len(SCHEDULES)
    t0 = time.perf_counter()
    rtl = run_rtl(prog, "sim_dram")
    ideal = m * k * n // (cfg.rows * cfg.cols)
    return {"shape": f"{m}x{k}x{n}", "dtype": dtype, "instructions": len(prog.insns), "macs": res.macs,
            "dma_bytes": res.load_bytes + res.store_bytes, "bit_exact": exact, "seconds": seconds,
            "rtl": {"bit_exact": rtl.bit_exact, "status": rtl.error.name, "cycles": rtl.cycles,
                    "utilization": round(ideal / rtl.cycles, 4), "seconds": round(time.perf_counter() - t0, 2)}}


def run_demo(config: str = "default", out_dir: str | Path = "build/demo", console: Console | None = None) -> dict:
    console = console or Console()
    cfg = load_config(config)
    out = Path(out_dir)
    summary: dict = {"config": cfg.name, "config_hash": cfg.hash}

    with console.status("generating and linting Verilog"):
        t0 = time.perf_counter()
        manifest = generate(cfg, out / "rtl")
        lint([out / "rtl" / f for f in manifest["files"]], manifest["top"])
        summary["gen"] = {"dir": str(out / "rtl"), "top": manifest["top"], "lint_clean": True,
                          "seconds": round(time.perf_counter() - t0, 2)}

    summary["gemm"] = []
    for shape, dtype in (((37, 53, 29), "int4"), ((64, 100, 48), "int2"), ((256, 256, 256), "int4"),
                         ((96, 130, 40), "int8")):
        with console.status(f"GEMM {'x'.join(map(str, shape))} {dtype}: golden model, then RTL in Verilator "
                            "(the first RTL run builds the model, a few minutes; cached after)"):
            summary["gemm"].append(gemm_case(cfg, *shape, dtype))
    summary["ok"] = all(g["bit_exact"] and g["rtl"]["bit_exact"] for g in summary["gemm"])
    return summary


def render(summary: dict, console: Console) -> None:
    t = Table(title=f"lowbit demo on config {summary['config']} ({summary['config_hash']})")
    for col in ("step", "what", "result", "figures"):
        t.add_column(col)
    g = summary["gen"]
    t.add_row("gen", f"{g['top']}.v + manifest.json", "lint clean", f"{g['seconds']} s -> {g['dir']}")
    for case in summary["gemm"]:
        what = f"GEMM {case['shape']} int8 x {case['dtype']}"
        t.add_row("golden", what, "bit exact" if case["bit_exact"] else "MISMATCH",
                  f"{case['instructions']} insns, {case['macs']:,} MACs, {case['dma_bytes']:,} DMA B, "
                  f"{case['seconds']:.3f} s")
        r = case["rtl"]
        t.add_row("rtl", what, "bit exact vs golden" if r["bit_exact"] else f"MISMATCH ({r['status']})",
                  f"{r['cycles']:,} cycles, utilization {r['utilization']:.1%}, {r['seconds']} s")
    console.print(t)
