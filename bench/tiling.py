"""Tiling-search speed on every GEMM of ResNet-18 (224x224, batch 1) and of one BERT-base encoder
layer (seq 128) on the default config: the vectorised search against the exhaustive scalar
search over the same candidates, and whether both find the same optimum.

Weights are INT4; the attention GEMMs (scores, context) multiply two activations, so their B
operand is ``act_bits`` wide. A layer's cycles and DMA bytes count all its groups (heads). The
vectorised search time of a layer is the best of `REPEATS` runs after one warm-up search; the
exhaustive search runs once per layer. JAQ reports 0.15 s per search iteration (`TARGET_S`).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from compiler.networks import NETWORKS
from compiler.tiling import Choice, Gemm, search, search_exhaustive
from hw.config import AccelConfig, load_config
from hw.datatypes import datatype

DESCRIPTION = "tiling search time per layer of ResNet-18 and a BERT-base layer, vs exhaustive scalar search"
REPEATS = 3
TARGET_S = 0.15


def _timed_search(cfg: AccelConfig, gemm: Gemm, bits: int) -> tuple[Choice, float]:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        choice = search(cfg, gemm, bits)
        best = min(best, time.perf_counter() - t0)
    return choice, best


def _layer(cfg: AccelConfig, gemm: Gemm, bits: int) -> dict:
    choice, search_s = _timed_search(cfg, gemm, bits)
    t0 = time.perf_counter()
    ref = search_exhaustive(cfg, gemm, bits)
    exhaustive_s = time.perf_counter() - t0
    return {
        "name": gemm.name, "M": gemm.m, "K": gemm.k, "N": gemm.n, "groups": gemm.groups, "b_bits": bits,
        "candidates": choice.candidates, "tiling": asdict(choice.tiling),
        "cycles": choice.cost.cycles * gemm.groups, "utilization": round(choice.cost.utilization, 4),
        "dma_bytes": choice.cost.dma_bytes * gemm.groups,
        "search_s": round(search_s, 6), "exhaustive_s": round(exhaustive_s, 4),
        "match": ref.tiling == choice.tiling and ref.cost == choice.cost and ref.candidates == choice.candidates,
    }


def run(config: str = "default", weight_dtype: str = "int4") -> dict:
    cfg = load_config(config)
    weight_bits = datatype(weight_dtype).bits
    networks = {}
    for name, build in NETWORKS.items():
        gemms = build()
        search(cfg, gemms[0], weight_bits)  # warm-up: first-call costs are not the search's
        layers = [_layer(cfg, g, cfg.act_bits if g.b_from_activations else weight_bits) for g in gemms]
        search_s = sum(layer["search_s"] for layer in layers)
        exhaustive_s = sum(layer["exhaustive_s"] for layer in layers)
        cycles = sum(layer["cycles"] for layer in layers)
        networks[name] = {
            "search_s": round(search_s, 4), "exhaustive_s": round(exhaustive_s, 3),
            "optimum_match": sum(layer["match"] for layer in layers) / len(layers),
            "speedup": round(exhaustive_s / search_s, 1), "target_s": TARGET_S, "under_target": search_s < TARGET_S,
            "exhaustive_layers": "all", "config": cfg.name, "weight_dtype": weight_dtype,
            "candidates": sum(layer["candidates"] for layer in layers), "cycles": cycles,
            "utilization": round(sum(g.macs for g in gemms) / (cfg.rows * cfg.cols) / cycles, 4),
            "layers": layers,
        }
    return {"networks": networks}
