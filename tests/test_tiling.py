"""Tiling search: legality, the vectorised model against the scalar one, the search against the
exhaustive search, the grid against all tile sizes, network shapes, and the reference kernels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compiler.gemm import Requant, gemm_program
from compiler.networks import NETWORKS, Conv2d, bert_base_layer, resnet18
from compiler.tiling import (
    ORDERS,
    CostParams,
    Gemm,
    Tiling,
    dram_row_cycles,
    evaluate,
    fits,
    search,
    search_exhaustive,
    tiling_cost,
)
from hw.config import from_dict, load_config
from hw.isa import PARAM_BYTES
from sim.golden import run_program

PRESETS = ("tiny", "default", "large")


def random_gemm(rng, limit: int = 400, extras: bool = False) -> Gemm:
    """A random shape; with ``extras`` also rows in runs (a conv), raw int32 outputs and grouped PARAM rows."""
    m, k, n = (int(x) for x in rng.integers(1, limit, 3))
    if not extras:
        return Gemm(f"g{m}x{k}x{n}", m, k, n)
    runs = int(rng.choice([0, int(rng.integers(1, m + 1))]))
    out_runs = int(rng.choice([0, int(rng.integers(1, m + 1))]))
    return Gemm(f"g{m}x{k}x{n}r{runs}", m, k, n, row_runs=runs, out_row_runs=out_runs,
                out_bytes=int(rng.choice([1, 4])), param_rows=int(rng.choice([1, 3])),
                row_cycles=int(rng.choice([1, 4])))


def random_params(rng) -> CostParams:
    return CostParams(**{f.name: int(rng.integers(0, 40)) for f in dataclasses.fields(CostParams)})


def buffer_rows(cfg, gemm: Gemm, bits: int, t: Tiling) -> dict[str, int]:
    """Scratchpad rows a tiling needs per buffer half, written out from the module docstring."""
    kb, nb = t.k_tile // cfg.rows, t.n_tile // cfg.cols
    one_k_block = t.k_tile >= gemm.k
    nt = -(-gemm.n // cfg.cols)
    return {
        "input_buf_bytes": kb * t.m_tile,
        "weight_buf_bytes": kb * nb * cfg.rows * bits // 8,
        "acc_buf_bytes": t.m_tile * (1 if one_k_block else nb),
        "out_buf_bytes": t.m_tile,
        "param_buf_bytes": nb if nt > cfg.buffer_depth("param_buf_bytes") else 0,
    }


@pytest.mark.parametrize("preset", PRESETS)
def test_legal_candidates_fit(preset, rng):
    cfg = load_config(preset)
    for _ in range(4):
        gemm, bits = random_gemm(rng), int(rng.choice([2, 4, 8]))
        cands = evaluate(cfg, gemm, bits)
        assert len(cands) > 0
        for t in cands.tilings:
            slots = cfg.slots if t.double_buffer else 1
            for field, rows in buffer_rows(cfg, gemm, bits, t).items():
                assert rows <= cfg.buffer_depth(field) // slots, (gemm, t, field)
            assert t.k_tile % cfg.rows == 0 and t.n_tile % cfg.cols == 0 and t.order in ORDERS
            assert 1 <= t.m_tile <= gemm.m and t.k_tile < gemm.k + cfg.rows and t.n_tile < gemm.n + cfg.cols


def test_all_grid_legal_set_is_exact(tiny, rng):
    """On the grid of all tile sizes, evaluate() keeps exactly the tilings that fit."""
    for _ in range(3):
        gemm = random_gemm(rng, 40)
        legal = set(evaluate(tiny, gemm, 8, grid="all").tilings)
        for order in ORDERS:
            for db in (True, False):
                for m in range(1, gemm.m + 1):
                    for kb in range(1, -(-gemm.k // tiny.rows) + 1):
                        for nb in range(1, -(-gemm.n // tiny.cols) + 1):
                            t = Tiling(m, kb * tiny.rows, nb * tiny.cols, order, db)
                            need = buffer_rows(tiny, gemm, 8, t)
                            slots = tiny.slots if db else 1
                            ok = all(r <= tiny.buffer_depth(f) // slots for f, r in need.items())
                            assert (t in legal) == ok == fits(tiny, gemm, 8, t), t


@pytest.mark.parametrize("preset", PRESETS)
def test_vectorised_cost_equals_scalar(preset, rng):
    cfg = load_config(preset)
    for _ in range(6):
        gemm, bits, params = random_gemm(rng, 3000, True), int(rng.choice([2, 4, 8])), random_params(rng)
        cands = evaluate(cfg, gemm, bits, params)
        for i in rng.choice(len(cands), size=min(60, len(cands)), replace=False):
            assert cands.cost(i) == tiling_cost(cfg, gemm, bits, cands.tilings[i], params), cands.tilings[i]


LAYERS = {name: {g.name: g for g in build()} for name, build in NETWORKS.items()}


@pytest.mark.parametrize("net,layer", [("resnet18", "conv1"), ("resnet18", "layer2.0.downsample"),
                                       ("resnet18", "layer4.0.conv2"), ("resnet18", "fc"),
                                       ("bert_base_layer", "attn.q"), ("bert_base_layer", "attn.scores")])
def test_search_equals_exhaustive_default(default, net, layer):
    gemm = LAYERS[net][layer]
    bits = 8 if gemm.b_from_activations else 4
    fast, slow = search(default, gemm, bits), search_exhaustive(default, gemm, bits)
    assert (fast.tiling, fast.cost, fast.candidates) == (slow.tiling, slow.cost, slow.candidates)


def test_search_equals_exhaustive_tiny(tiny, rng):
    for _ in range(12):
        gemm, bits, params = random_gemm(rng, extras=True), int(rng.choice([2, 4, 8])), random_params(rng)
        fast, slow = search(tiny, gemm, bits, params), search_exhaustive(tiny, gemm, bits, params)
        assert (fast.tiling, fast.cost, fast.candidates) == (slow.tiling, slow.cost, slow.candidates), gemm


@pytest.mark.parametrize("preset", ("tiny", "default"))
def test_block_grid_loses_nothing(preset, rng):
    """The smallest tile per block count is as good as every tile size (module docstring)."""
    cfg = load_config(preset)
    for _ in range(8):
        gemm, bits, params = random_gemm(rng, 200), int(rng.choice([2, 4, 8])), random_params(rng)
        blocks, every = search(cfg, gemm, bits, params), search(cfg, gemm, bits, params, grid="all")
        assert blocks.candidates <= every.candidates
        assert (blocks.cost.cycles, blocks.cost.dma_bytes) == (every.cost.cycles, every.cost.dma_bytes), gemm


@pytest.mark.parametrize("preset", ("tiny", "default"))
def test_block_grid_with_row_runs_is_near_optimal(preset, rng):
    """With rows in runs the grid (blocks + run multiples) is a heuristic: within 2% of every size."""
    cfg = load_config(preset)
    for _ in range(8):
        m, k, n = (int(x) for x in rng.integers(1, 200, 3))
        gemm = Gemm("conv", m, k, n, row_runs=int(rng.integers(1, m + 1)), out_bytes=int(rng.choice([1, 4])))
        blocks, every = search(cfg, gemm, 4), search(cfg, gemm, 4, grid="all")
        assert every.cost.cycles <= blocks.cost.cycles <= 1.02 * every.cost.cycles, gemm


def test_costs_grow_with_every_constant(default, rng):
    """Raising any CostParams constant never makes a candidate cheaper."""
    gemm = Gemm("g", 300, 500, 200)
    base = evaluate(default, gemm, 4)
    for f in dataclasses.fields(CostParams):
        more = evaluate(default, gemm, 4, CostParams(**{f.name: getattr(CostParams(), f.name) + 17}))
        assert more.tilings == base.tilings
        assert np.all(more.cycles >= base.cycles), f.name
        assert np.any(more.cycles > base.cycles) or f.name == "burst_cycles", f.name


def test_more_buffer_or_bandwidth_never_hurts(default):
    gemm = Gemm("g", 1000, 700, 300)
    best = search(default, gemm, 4).cost.cycles
    for update in ({"weight_buf_bytes": 2 * default.weight_buf_bytes}, {"input_buf_bytes": 2 * default.input_buf_bytes},
                   {"acc_buf_bytes": 2 * default.acc_buf_bytes}, {"axi_data_bits": 256}):
        assert search(default.model_copy(update=update), gemm, 4).cost.cycles <= best, update


def test_config_too_small_names_gemm_and_buffer(default):
    small = default.model_copy(update={"weight_buf_bytes": 64})  # 4 rows; an int8 tile needs 16
    gemm = Gemm("layerX", 64, 64, 64)
    with pytest.raises(ValueError, match=r"layerX 64x64x64.*weight_buf_bytes = 64 holds 4 rows"):
        search(small, gemm, 8)
    with pytest.raises(ValueError, match="weight_buf_bytes"):
        search_exhaustive(small, gemm, 8)
    assert search(small, gemm, 2).tiling  # 2-bit tiles take 4 rows: it fits
    with pytest.raises(ValueError, match=r"layerX.*no 3-bit weight datatype"):
        search(default, gemm, 3)


def test_bad_tiling_is_rejected(default):
    gemm = Gemm("g", 100, 100, 100)
    with pytest.raises(ValueError, match="not a tiling"):
        tiling_cost(default, gemm, 4, Tiling(100, 24, 16, "stream", True))
    with pytest.raises(ValueError, match="loop order"):
        tiling_cost(default, gemm, 4, Tiling(100, 16, 16, "diagonal", True))


def test_resnet18_shapes():
    gemms = resnet18()
    by_name = {g.name: g for g in gemms}
    assert len(gemms) == 21  # 20 convolutions and the classifier
    assert sum(".downsample" in g.name for g in gemms) == 3
    assert (by_name["conv1"].m, by_name["conv1"].k, by_name["conv1"].n) == (112 * 112, 3 * 7 * 7, 64)
    assert (by_name["layer1.0.conv1"].m, by_name["layer1.0.conv1"].k) == (56 * 56, 64 * 9)
    assert (by_name["layer2.0.downsample"].m, by_name["layer2.0.downsample"].k,
            by_name["layer2.0.downsample"].n) == (28 * 28, 64, 128)
    assert (by_name["layer4.1.conv2"].m, by_name["layer4.1.conv2"].k, by_name["layer4.1.conv2"].n) == (49, 4608, 512)
    assert (by_name["fc"].m, by_name["fc"].k, by_name["fc"].n) == (1, 512, 1000)
    assert abs(sum(g.macs for g in gemms) / 1e9 - 1.814) < 0.001  # ResNet-18's published 1.8 GMACs


def test_bert_layer_shapes():
    by_name = {g.name: g for g in bert_base_layer()}
    assert len(by_name) == 8
    for name in ("attn.q", "attn.k", "attn.v", "attn.out"):
        assert (by_name[name].m, by_name[name].k, by_name[name].n) == (128, 768, 768)
    s, c = by_name["attn.scores"], by_name["attn.context"]
    assert (s.m, s.k, s.n, s.groups, s.b_from_activations) == (128, 64, 128, 12, True)
    assert (c.m, c.k, c.n, c.groups) == (128, 128, 64, 12)
    assert (by_name["ffn.in"].k, by_name["ffn.in"].n, by_name["ffn.out"].k, by_name["ffn.out"].n) == (768, 3072,
                                                                                                      3072, 768)


def test_grouped_conv_is_per_group():
    g = Conv2d("dw", 32, 32, 3, padding=1, groups=32).gemm(10, 10)
    assert (g.m, g.k, g.n, g.groups) == (100, 9, 1, 32)


@pytest.mark.parametrize("kernel", ["stream", "resident"])
def test_model_counts_match_reference_kernels(tiny, rng, kernel):
    """compiler/gemm.py's kernels are tilings: the model's DMA bytes and instruction count equal the
    golden model's for them (stream: k_tile = rows, n_tile = cols; resident: input-stationary, all of K)."""
    for m, k, n in ((40, 24, 20), (37, 13, 9), (70, 40, 32)):
        a, w = rng.integers(-128, 128, (m, k)), rng.integers(-8, 8, (k, n))
        req = Requant(bias=np.zeros(n, np.int64), multiplier=np.full(n, 1 << 23), shift=np.full(n, 30))
        prog = gemm_program(tiny, a, w, "int4", req, kernel=kernel)
        _, res = run_program(prog)
        kt = -(-k // tiny.rows)
        tiling = (Tiling(prog.meta["m_tile"], kt * tiny.rows, tiny.cols, "input_stationary", True)
                  if kernel == "resident" else Tiling(prog.meta["m_tile"], tiny.rows, tiny.cols, "stream", True))
        gemm = Gemm("ref", m, k, n)
        assert fits(tiny, gemm, 4, tiling)
        cost = tiling_cost(tiny, gemm, 4, tiling)
        assert cost.dma_bytes == res.load_bytes + res.store_bytes
        assert cost.instructions == len(prog.insns)


def test_choice_reads_well(default):
    choice = search(default, LAYERS["resnet18"]["conv1"], 4)
    text = str(choice)
    assert "conv1 12544x147x64" in text and str(choice.tiling) in text and "cycles" in text
    assert 0 < choice.cost.utilization <= 1
    assert choice.cost.dma_bytes >= 12544 * 147 + 147 * 64 // 2 + 12544 * 64 + 4 * 16 * PARAM_BYTES


def test_fewer_postproc_lanes_cost_their_cycles(default, rng):
    """The default preset's 4 requantization lanes for 16 columns take 4 cycles per POSTPROC row:
    the two models still agree, a one-pass GEMM (K = rows) is post-processing bound, and a
    deep one (K = 16 passes) hides it behind the array: only the last tile's POSTPROC shows."""
    fast = from_dict({**default.model_dump(), "name": "default-pp16", "postproc_lanes": 0})
    assert default.pp_row_cycles == 4 and fast.pp_row_cycles == 1 and fast.pp_lanes == 16
    for _ in range(4):
        gemm, bits = random_gemm(rng, 600, True), int(rng.choice([2, 4, 8]))
        cands = evaluate(default, gemm, bits)
        for i in rng.choice(len(cands), size=min(40, len(cands)), replace=False):
            assert cands.cost(i) == tiling_cost(default, gemm, bits, cands.tilings[i])
    shallow = Gemm("shallow", 512, 16, 64)
    assert search(default, shallow, 4).cost.compute >= 512 * 4 * 4 > search(fast, shallow, 4).cost.compute
    deep = Gemm("deep", 512, 256, 64)
    slow_deep, fast_deep = search(default, deep, 4).cost, search(fast, deep, 4).cost
    assert fast_deep.cycles < slow_deep.cycles < 1.02 * fast_deep.cycles


def test_loads_wait_on_the_latency_with_few_bursts_in_flight(tiny):
    """A reader with `dma_outstanding` = 4 (`tiny`) cannot hide the 20-cycle read latency behind
    one-beat rows: each row holds a slot for latency + beat + turnaround cycles, four at a time,
    so an activation row of a k-tile costs ceil(26 / 4) = 7 cycles instead of 1; with 32 slots
    it is 1 again (tests/rtl/tb_dma.py measures the same bound on the RTL)."""
    many = from_dict({**tiny.model_dump(), "name": "tiny-32", "dma_outstanding": 32})
    p = CostParams()
    assert tiny.dma_outstanding == 4
    assert dram_row_cycles(tiny.rows, tiny.rows, 4, p, tiny.dma_outstanding) == 7
    assert dram_row_cycles(tiny.rows, tiny.rows, 4, p, many.dma_outstanding) == 1
    gemm, t = Gemm("g", 64, 64, 16), Tiling(64, 64, 16, "input_stationary", True)
    few_cost, many_cost = tiling_cost(tiny, gemm, 4, t), tiling_cost(many, gemm, 4, t)
    assert few_cost.cycles > many_cost.cycles and few_cost.dma_bytes == many_cost.dma_bytes
