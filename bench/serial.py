"""Cycles of one 128x256x128 GEMM on the bit-serial array (the `serial` preset) for INT8, INT4,
INT3, INT2 and BitMoD's 4-bit per-group mixture, each checked against the golden model.

A weight costs one cycle per mantissa bit (docs/rtl.md), so the ideal cycle count of a tile is
its rows times the widest mantissa among its columns' datatypes; INT3 and the mixture run as
grouped tiles in 4-bit storage."""

from __future__ import annotations

import time

import numpy as np

from compiler.gemm import WeightGroups, example_operands, gemm_program, reference_gemm
from compiler.weight_quant import MIXTURES, quantize_groups
from hw.config import AccelConfig, load_config
from hw.datatypes import datatype
from sim.system import run_rtl

DESCRIPTION = "bit-serial array: 128x256x128 GEMM cycles for INT8/4/3/2 and the 4-bit mixture vs INT8"

RUNS = ("int8", "int4", "int3", "int2", "mixture4")


def tile_planes(cfg: AccelConfig, k: int, n: int, storage: str, groups: WeightGroups | None) -> np.ndarray:
    """Bit planes of every (k-tile, n-tile): the widest mantissa among the tile's columns."""
    kt, nt = -(-k // cfg.rows), -(-n // cfg.cols)
    if groups is None:
        return np.full((kt, nt), datatype(storage).mant_bits)
    mant = np.vectorize(lambda t: datatype(str(t)).mant_bits)(groups.tags)  # (groups, N)
    per_k = np.repeat(mant, groups.size // cfg.rows, axis=0)[:kt]  # (kt, N)
    padded = np.zeros((kt, nt * cfg.cols), np.int64)
    padded[:, :n] = per_k
    return padded.reshape(kt, nt, cfg.cols).max(axis=2)


def operands(cfg: AccelConfig, name: str, m: int, k: int, n: int, seed: int = 0):
    """(A, integer weights, storage datatype, groups or None, requantization) for one run."""
    group = cfg.group_size
    if name in ("int8", "int4", "int2"):
        a, w, req = example_operands(m, k, n, name, seed)
        return a, w, name, None, req
    a, _, req = example_operands(m, k, n, "int4", seed)
    if name == "int3":
        w = np.random.default_rng(seed).integers(-4, 4, (k, n))
        tags = np.full((k // group, n), "int3", dtype=object)
        return a, w, "int4", WeightGroups(group, tags, np.ones(tags.shape, np.int64)), req
    # BitMoD's mixture: per group the datatype (and scale) with the least error, on normal weights
    q = quantize_groups(np.random.default_rng(seed).normal(size=(k, n)), group, MIXTURES[name])
    tags = np.array(q.candidates, dtype=object)[q.tags]
    scales = np.clip(np.rint(q.scale / q.scale.max() * 255), 1, 255).astype(np.int64)
    return a, q.values[:k], "int4", WeightGroups(group, tags, scales), req


def run(config: str = "serial", m: int = 128, k: int = 256, n: int = 128) -> dict:
    cfg = load_config(config)
    runs = {}
    for name in RUNS:
        a, w, storage, groups, req = operands(cfg, name, m, k, n)
        if groups is not None:  # keep the outputs spread over INT8 with the group scales
            acc = a @ groups.effective(w)
            shift = int(np.floor(np.log2(((1 << 24) - 1) * (acc.std() + 1) / 60)))
            req = type(req)(req.bias, np.full(n, int(np.rint(60 / (acc.std() + 1) * 2.0**shift))),
                            np.full(n, shift), req.zero_point, req.relu)
        prog = gemm_program(cfg, a, w, storage, req, groups=groups)
        t0 = time.perf_counter()
        rtl = run_rtl(prog, "sim_dram")
        ideal = int(m * tile_planes(cfg, k, n, storage, groups).sum())
        ref = reference_gemm(a, w, req, cfg.act_bits, groups)
        cycles = rtl.result["counters"]["cycles"]
        runs[name] = {
            "cycles": cycles, "ideal_cycles": ideal, "utilization": round(ideal / cycles, 4),
            "bit_exact": rtl.bit_exact and bool(np.array_equal(rtl.output(), ref)),
            "planes_per_row": round(ideal / (m * -(-k // cfg.rows) * -(-n // cfg.cols)), 3),
            "kernel": prog.meta["kernel"], "status": rtl.result["error"],
            "wall_s": round(time.perf_counter() - t0, 2),
        }
    base = runs["int8"]["cycles"]
    return {
        "config": cfg.name, "m": m, "k": k, "n": n, "group_size": cfg.group_size, "runs": runs,
        "ratio_to_int8": {name: round(runs[name]["cycles"] / base, 4) for name in RUNS if name != "int8"},
    }
