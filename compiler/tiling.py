"""Tiling search for one GEMM: every legal tiling, costed at once by a vectorised analytical model.

A GEMM is ``out[M, N] = A[M, K] @ W[K, N]`` (int8 activations, ``bits``-bit weights packed in
``rows x cols`` tiles as ``compiler/gemm.py`` packs them). A tiling cuts it into blocks of
``m_tile x k_tile x n_tile`` and picks a loop order and single or double buffering; the search
enumerates every legal tiling on a grid, costs all of them with one set of NumPy array
expressions (JAQ's "BatchTile" idea) and keeps the cheapest. ``search_exhaustive`` walks the
same grid one candidate at a time with a plain scalar model; both return the same optimum.

**Grid.** Tile sizes are counted in units: activation rows for ``m``, array tiles for ``k``
(``rows`` wide) and ``n`` (``cols`` wide). For a dimension of ``D`` units the grid holds, for
every block count ``b`` that a tile size can produce, the smallest tile that produces it:
``{ceil(D / b) : b = 1..D}`` (about ``2 sqrt(D)`` values). Every cost term below depends on a
tile size only through its block count, or grows with the tile (buffer rows, the first block's
loads, the last output tile's POSTPROC and STORE, costed at full size, and the idle cycles of
short array passes, which are convex),
so a larger tile with the same block count is never cheaper and never fits better: the grid
loses nothing against all sizes (``grid="all"``, tested). The exception is a GEMM whose rows come
in runs (``Gemm.row_runs``, a convolution's output rows): a block aligned to runs issues fewer
LOADs and STOREs, so the m grid also holds every multiple of the run length; that grid is then a
heuristic, within 2% of the best of all sizes on the tested shapes. Layers come out at hundreds to tens
of thousands of legal candidates.

**Loop orders.** k-blocks are always innermost for an output block, so the accumulators hold
one output block until it is finished. ``weight_stationary`` walks n-blocks outside m-blocks:
a weight block is loaded once per n-block when it spans all of K (one k-block), else again
for every m-block. ``input_stationary`` walks m-blocks outside n-blocks: an input block that
spans all of K stays while every weight block passes (``resident`` in compiler/gemm.py when
``n_tile = cols``), else it is loaded again for every n-block.
``stream`` is the n, m, k walk that reloads both operands for every block (``stream`` in
compiler/gemm.py when ``k_tile = rows, n_tile = cols``); it never beats the stationary orders
and is kept as the baseline. An operand is reloaded only when the walk moves to a different
block of it.

**Buffers.** With double buffering every buffer is split in ``cfg.slots`` halves (two
accumulator regions) and the DMA fills one half while the array reads the other. Per half:
input ``k_tile/rows * m_tile`` rows (one LOAD of ``m_tile`` rows per array k-tile, since a
MATMUL reads consecutive rows), weight ``k_tile/rows * n_tile/cols * weight_tile_rows``,
accumulators ``m_tile`` rows when one k-block covers K (each output tile is post-processed
as soon as its k-tiles are done, alternating two regions) else ``m_tile * n_tile/cols``,
output ``m_tile`` rows (POSTPROC and STORE go one ``cols``-wide output tile at a time), PARAM
every ``cols`` output channels' row when they all fit (loaded once), else ``n_tile/cols`` rows.

**Cost (cycles)**, every constant in `CostParams`:

- compute: array passes of ``m`` rows, ``row_cycles`` cycles per row (1 on the bit-parallel
  PE); two weight banks let a pass start
  ``rows`` cycles of unpacking after the pass before the previous one has crossed the array,
  so a pass lasts ``max(m, (m + rows + cols + 1) / 2)``; each POSTPROC waits for the array to
  drain (``array_latency``); without double buffering the next pass also waits for POSTPROC
  to read its ``m`` accumulator rows (one region). POSTPROC takes ``pp_row_cycles`` cycles per
  row (1 with a requantization lane per column); compute is at least the post-processing
  unit's own time, ``M * n-tiles * pp_row_cycles``.
- load / store: one LOAD / STORE at a time per queue: a latency per transfer plus, per DRAM
  row, ``max(bus beats, scratchpad rows)`` cycles (a narrow scratchpad row takes one cycle of
  its own), plus an optional cost per AXI burst (every DRAM row is a burst: rows are narrower
  than 4 KiB); a loaded row takes at least its bursts' share of the reader's ``dma_outstanding``
  slots, each held ``read_latency + beats + slot_turnaround`` cycles. Instruction fetch shares
  the read channel with the loads, so the program's beats count there too. Activations are
  assumed stored with bus-aligned rows. A block of a GEMM with ``row_runs`` takes one LOAD per
  k-tile and one STORE per n-tile for every run it touches; raw int32 outputs (``out_bytes``)
  are stored from the accumulator rows, without POSTPROC.
- overlap: double-buffered ``first loads + max(compute, other loads, other stores) + drain,
  last POSTPROC and STORE``; single-buffered ``compute + loads + stores``.

The model is written twice, over arrays (`evaluate`, `search`) and over one candidate
(`tiling_cost`, `search_exhaustive`); the two agree exactly (tested). A calibration against
RTL cycle counters changes `CostParams` only. Not modelled yet: stalls from uneven loads
within the walk (a resident block's reload is spread over the whole walk), DRAM contention
between loads and stores, the start of a program (first fetches) and the barriers between
layers; small GEMMs therefore run 1.2-1.5x the estimate on the RTL (docs/compiler.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from hw.axi import BOUNDARY_BYTES, MAX_BURST_BEATS
from hw.config import AccelConfig
from hw.datatypes import DATATYPES
from hw.geometry import array_latency
from hw.isa import INSN_BYTES, PARAM_BYTES

ORDERS = ("weight_stationary", "input_stationary", "stream")
WS, IS, ST = range(len(ORDERS))
GRIDS = ("blocks", "all")
_NO_FIT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Gemm:
    """One GEMM shape ``M x K x N``; ``groups`` independent copies (conv groups, attention heads).

    ``b_from_activations``: the B operand is an activation tensor (attention), so it is
    ``act_bits`` wide whatever the network's weight datatype.
    ``param_rows``: PARAM rows per ``cols`` output channels, loaded together (1 ChannelParams row,
    plus one GroupParams row per quantization group along K for grouped weights).
    ``row_runs``: the M rows come in runs of this many that are contiguous in DRAM (a convolution's
    output width: im2col reads and output writes are one LOAD / STORE per run); 0: all of M.
    ``out_row_runs``: the same for the output rows a STORE writes, when it differs (a convolution
    computed over the padded width reads whole images but writes one output row at a time).
    ``row_cycles``: cycles an activation row takes through the array (the bit-serial PE takes one
    per mantissa bit of the tile's widest weight, docs/rtl.md; 1 on the bit-parallel PE).
    ``out_bytes``: bytes per output element (1 for requantized int8, ``acc_bytes`` for raw
    accumulators, stored from the accumulator buffer without POSTPROC).
    """

    name: str
    m: int
    k: int
    n: int
    groups: int = 1
    b_from_activations: bool = False
    param_rows: int = 1
    row_runs: int = 0
    out_row_runs: int = 0
    out_bytes: int = 1
    row_cycles: int = 1
    depthwise: Depthwise | None = None  # a depthwise convolution's own schedule (module docstring)

    def __post_init__(self) -> None:
        if min(self.m, self.k, self.n, self.groups, self.param_rows) < 1:
            raise ValueError(f"GEMM {self.name}: dimensions must be positive, got {self.shape}")

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.k}x{self.n}" + (f" x{self.groups}" if self.groups > 1 else "")

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.groups

    def __str__(self) -> str:
        return f"{self.name} {self.shape}"


@dataclass(frozen=True)
class CostParams:
    """Every constant of the cost model; calibration against RTL counters changes these only.

    Defaults are read off the RTL and the simulation DRAM (sim/dram.py): a LOAD waits the 20-cycle
    read latency plus its command and realignment pipeline; a STORE the 10-cycle write response
    plus its read-ahead. A DMA reader keeps ``dma_outstanding`` bursts in flight, each from its AR
    to ``read_latency`` + its beats + ``slot_turnaround`` cycles later (the DMA testbench's
    ``read_bound``): with 32 (the default) a read streams a beat per cycle, with fewer (``tiny``:
    4) rows of a few beats wait on the latency.
    Not fitted yet; one check: the ``gemm`` benchmark's kernel (256^3 INT4, resident, m_tile 64)
    is 69407 cycles here and 69377 on the RTL.
    """

    load_latency: int = 24  # cycles per LOAD beyond its data rows
    store_latency: int = 16  # cycles per STORE beyond its data rows
    burst_cycles: int = 0  # extra cycles per AXI burst (one per DRAM row here)
    read_latency: int = 20  # cycles from a read burst's AR to its first beat (sim/dram.py's default)
    slot_turnaround: int = 5  # cycles from a read burst's last beat to the AR that reuses its slot
    pass_gap_extra: int = 0  # extra cycles over rows + cols + 1 before a weight bank is reused
    drain_extra: int = 0  # cycles a POSTPROC waits beyond the array latency


@dataclass(frozen=True)
class Tiling:
    m_tile: int
    k_tile: int
    n_tile: int
    order: str
    double_buffer: bool

    def __str__(self) -> str:
        buf = "double-buffered" if self.double_buffer else "single-buffered"
        return f"m_tile={self.m_tile} k_tile={self.k_tile} n_tile={self.n_tile} {self.order} {buf}"


@dataclass(frozen=True)
class Cost:
    """Cycles of one tiling and where they go; ``dma_bytes`` counts loads and stores."""

    cycles: int
    compute: int
    load: int
    store: int
    prologue: int  # loads before the first array pass (double-buffered only)
    epilogue: int  # drain, last POSTPROC and STORE after the last pass (double-buffered only)
    dma_bytes: int
    instructions: int  # LOAD, MATMUL, POSTPROC, STORE and END instructions of the schedule
    utilization: float  # MACs / (rows * cols) / cycles

    def __str__(self) -> str:
        return (f"{self.cycles} cycles (compute {self.compute}, load {self.load}, store {self.store}), "
                f"{self.dma_bytes} DMA bytes, utilization {self.utilization:.3f}")


@dataclass(frozen=True)
class Choice:
    """The best tiling of one GEMM, its cost, and what the search did to find it."""

    gemm: Gemm
    dtype_bits: int
    tiling: Tiling
    cost: Cost
    candidates: int  # legal tilings costed
    search_s: float

    def __str__(self) -> str:
        return (f"{self.gemm} ({self.dtype_bits}-bit B): {self.tiling}\n  {self.cost}\n"
                f"  {self.candidates} candidates in {self.search_s * 1e3:.2f} ms")


# ---- per-GEMM geometry (scalars shared by both models) ----------------------------------------


def ceil_div(a, b):
    """a / b rounded up (integers, or NumPy arrays of them)."""
    return -(-a // b)


def dram_row_cycles(row_bytes: int, sram_row_bytes: int, bus_bytes: int, p: CostParams,
                    in_flight: int = 0) -> int:
    """Cycles one DRAM row takes: bus beats or scratchpad rows, whichever is more, plus its bursts;
    for a read (``in_flight``: the reader's bursts in flight) at least the time its bursts hold
    the reader's slots, from each AR to the slot's reuse, shared by ``in_flight`` slots."""
    beats = ceil_div(row_bytes, bus_bytes)
    bursts = ceil_div(row_bytes, min(BOUNDARY_BYTES, MAX_BURST_BEATS * bus_bytes))
    cycles = max(beats, ceil_div(row_bytes, sram_row_bytes)) + p.burst_cycles * bursts
    if in_flight:
        cycles = max(cycles, ceil_div(bursts * (p.read_latency + p.slot_turnaround) + beats, in_flight))
    return cycles


@dataclass(frozen=True)
class _Geometry:
    """What the cost of a GEMM depends on besides its tiling, in units of rows and cycles."""

    m: int
    cells: int  # rows * cols: MACs per array cycle
    kt: int  # array k-tiles
    nt: int  # array n-tiles
    macs: int
    a_bytes: int
    w_tile_bytes: int
    p_row_bytes: int
    out_bytes: int
    depth: dict[str, int]
    slot_options: tuple[int, ...]
    w_tile_rows: int
    row_cycles: int  # Gemm.row_cycles
    row_runs: int  # Gemm.row_runs
    out_row_runs: int  # Gemm.out_row_runs, or row_runs
    postproc: bool  # int8 outputs: a POSTPROC per output tile
    params_fit: bool  # every PARAM row fits at once: load them once
    bus_bytes: int
    a_full: int  # cycles of one activation row of a full k-tile
    a_last: int  # ... of the last k-tile
    a_row: int  # ... of all k-tiles
    w_tile: int  # cycles of one weight tile
    p_row: int  # cycles of one PARAM row
    o_full: int  # cycles of one output row of a full n-tile
    o_row: int  # ... of all n-tiles
    pass_gap: int  # a pass shorter than this leaves the array idle
    drain: int  # cycles a POSTPROC waits for the array
    pp_cycles: int  # post-processing cycles per output row (AccelConfig.pp_row_cycles)


BUFFERS = ("input_buf_bytes", "weight_buf_bytes", "acc_buf_bytes", "out_buf_bytes", "param_buf_bytes")


def _dtype_rows(cfg: AccelConfig, gemm: Gemm, dtype_bits: int) -> int:
    """Weight-buffer rows of one packed tile, for a datatype of the config that is that wide."""
    for name in cfg.weight_dtypes:
        if DATATYPES[name].bits == dtype_bits:
            return cfg.weight_tile_rows(name)
    raise ValueError(f"GEMM {gemm}: config {cfg.name!r} runs no {dtype_bits}-bit weight datatype "
                     f"(it runs {', '.join(cfg.weight_dtypes)})")


def _geometry(cfg: AccelConfig, gemm: Gemm, dtype_bits: int, p: CostParams) -> _Geometry:
    R, C, bus = cfg.rows, cfg.cols, cfg.axi_data_bits // 8
    M, K, N = gemm.m, gemm.k, gemm.n
    kt, nt = ceil_div(K, R), ceil_div(N, C)
    wtr = _dtype_rows(cfg, gemm, dtype_bits)
    depth = {f: cfg.buffer_depth(f) for f in BUFFERS}
    # an n-tile's PARAM rows travel together: count PARAM in units of them
    depth["param_buf_bytes"] //= gemm.param_rows
    p_row_bytes = C * PARAM_BYTES * gemm.param_rows
    reads = cfg.dma_outstanding
    a_full = dram_row_cycles(R, R, bus, p, reads)
    a_last = dram_row_cycles(K - (kt - 1) * R, R, bus, p, reads)
    ob = gemm.out_bytes
    o_full = dram_row_cycles(C * ob, C * ob, bus, p)
    o_last = dram_row_cycles((N - (nt - 1) * C) * ob, C * ob, bus, p)
    _check_minimal(cfg, gemm, dtype_bits, wtr, depth, nt)
    return _Geometry(
        m=M, cells=R * C, kt=kt, nt=nt, macs=M * K * N, a_bytes=M * K, w_tile_bytes=wtr * C, p_row_bytes=p_row_bytes,
        out_bytes=M * N * ob, depth=depth, slot_options=tuple(sorted({cfg.slots, 1}, reverse=True)), w_tile_rows=wtr,
        row_cycles=gemm.row_cycles, row_runs=gemm.row_runs, out_row_runs=gemm.out_row_runs or gemm.row_runs,
        postproc=ob == 1,
        params_fit=nt <= depth["param_buf_bytes"], bus_bytes=bus,
        a_full=a_full, a_last=a_last, a_row=(kt - 1) * a_full + a_last,
        w_tile=dram_row_cycles(wtr * C, C, bus, p, reads),
        p_row=dram_row_cycles(p_row_bytes, C * PARAM_BYTES, bus, p, reads),
        o_full=o_full, o_row=(nt - 1) * o_full + o_last,
        pass_gap=R + C + 1 + p.pass_gap_extra, drain=array_latency(cfg) + p.drain_extra,
        pp_cycles=cfg.pp_row_cycles if ob == 1 else 1,
    )


def _check_minimal(cfg: AccelConfig, gemm: Gemm, bits: int, wtr: int, depth: dict[str, int], nt: int) -> None:
    """The smallest tiling (one row, one array tile, single-buffered) must fit, or say which buffer cannot."""
    need = {"input_buf_bytes": (1, "one activation row"),
            "weight_buf_bytes": (wtr, f"one {cfg.rows}x{cfg.cols} tile of {bits}-bit weights"),
            "acc_buf_bytes": (1, "one accumulator row"), "out_buf_bytes": (1, "one output row"),
            "param_buf_bytes": (1, "")}
    short = [f"{f} = {getattr(cfg, f)} holds {depth[f]} rows, {what} needs {rows}"
             for f, (rows, what) in need.items() if depth[f] < rows and f != "param_buf_bytes"]
    if depth["param_buf_bytes"] < 1:
        short.append(f"param_buf_bytes = {cfg.param_buf_bytes} holds {cfg.buffer_depth('param_buf_bytes')} PARAM "
                     f"rows, one output tile needs {gemm.param_rows} at once (its ChannelParams and GroupParams)")
    if short:
        raise ValueError(f"GEMM {gemm}: no tiling fits config {cfg.name!r}: " + "; ".join(short))


# ---- the grid ---------------------------------------------------------------------------------


def _grid(units: int, grid: str) -> np.ndarray:
    """Tile sizes (in units) to try for a dimension of `units` units, ascending (module docstring)."""
    if grid == "all":
        return np.arange(1, units + 1, dtype=np.int64)
    return np.unique(-(-units // np.arange(1, units + 1, dtype=np.int64)))


def _m_grid(g: _Geometry, grid: str) -> np.ndarray:
    """m_tile values: the block-count grid, plus, when M comes in runs, every multiple of the run
    length (a block aligned to runs reads fewer of them than the smallest tile of its block count)."""
    ms = _grid(g.m, grid)
    for run in {g.row_runs, g.out_row_runs} - {0}:
        if grid != "all":
            ms = np.union1d(ms, np.arange(run, g.m + 1, run, dtype=np.int64))
    return ms


def _grid_scalar(units: int, grid: str) -> list[int]:
    if grid == "all":
        return list(range(1, units + 1))
    return sorted({ceil_div(units, b) for b in range(1, units + 1)})


def _check_grid(grid: str) -> None:
    if grid not in GRIDS:
        raise ValueError(f"grid {grid!r}: choose one of {', '.join(GRIDS)}")


# ---- the scalar model: one candidate ----------------------------------------------------------


def _runs(total: int, run: int, m: int) -> tuple[int, int, int]:
    """DRAM runs that the m-blocks of `m` rows touch: in all blocks, in the first, in the last
    (with ``run == 0`` every block is one run)."""
    mb = ceil_div(total, m)
    if run == 0:
        return mb, 1, 1
    starts = np.arange(mb, dtype=np.int64) * m
    ends = np.minimum(starts + m, total)
    per = -(-ends // run) - starts // run
    return int(per.sum()), int(per[0]), int(per[-1])


def _sweeps(order: int, mb: int, kb_count: int, nb_count: int) -> tuple[int, int]:
    """How many times the walk reads all of A and all of W from DRAM."""
    if order == WS:
        return (1 if mb * kb_count == 1 else nb_count), (1 if kb_count == 1 else mb)
    if order == IS:
        return (1 if kb_count == 1 else nb_count), (1 if nb_count * kb_count == 1 else mb)
    return nb_count, mb


def _fits(g: _Geometry, m: int, kb: int, nb: int, slots: int) -> bool:
    kb_count = ceil_div(g.kt, kb)
    acc_rows = m * (1 if kb_count == 1 else nb)
    d = g.depth
    return (kb * m <= d["input_buf_bytes"] // slots
            and kb * nb * g.w_tile_rows <= d["weight_buf_bytes"] // slots
            and acc_rows <= d["acc_buf_bytes"] // slots
            and m <= d["out_buf_bytes"] // slots
            and (g.params_fit or nb <= d["param_buf_bytes"] // slots))


def _cost_scalar(g: _Geometry, m: int, kb: int, nb: int, order: int, slots: int, p: CostParams) -> Cost:
    mb, kb_count, nb_count = ceil_div(g.m, m), ceil_div(g.kt, kb), ceil_div(g.nt, nb)
    m_last = g.m - (mb - 1) * m
    sa, sw = _sweeps(order, mb, kb_count, nb_count)
    if g.params_fit:
        p_loads, p_walks = 1, 1
    else:
        p_loads, p_walks = nb_count, (mb if order == IS and nb_count > 1 else 1)
    tiles = g.kt * g.nt
    runs, runs_first, _ = _runs(g.m, g.row_runs, m)
    out_runs, _, runs_last = _runs(g.m, g.out_row_runs, m)
    loads = sa * runs * g.kt + sw * kb_count * nb_count + p_walks * p_loads
    stores = out_runs * g.nt
    insns = loads + mb * tiles + (mb * g.nt if g.postproc else 0) + stores + 1  # + MATMULs, POSTPROCs, END
    load = (p.load_latency * loads + sa * g.m * g.a_row + sw * tiles * g.w_tile + p_walks * g.nt * g.p_row
            + ceil_div(insns * INSN_BYTES, g.bus_bytes))
    store = p.store_latency * stores + g.m * g.o_row
    gap = g.pass_gap
    rc = g.row_cycles
    passes2 = tiles * ((mb - 1) * max(2 * m * rc, m * rc + gap) + max(2 * m_last * rc, m_last * rc + gap))
    compute = (passes2 + 1) // 2 + mb * g.nt * g.drain + (0 if slots > 1 else g.m * g.nt * g.pp_cycles)
    if g.postproc:  # the post-processing unit's own time, when it is slower than the array
        compute = max(compute, g.m * g.nt * g.pp_cycles)
    dma_bytes = (sa * g.a_bytes + sw * tiles * g.w_tile_bytes + p_walks * g.nt * g.p_row_bytes + g.out_bytes)
    if slots > 1:
        a_first = kb * g.a_full - (g.a_full - g.a_last if kb == g.kt else 0)
        prologue = (p.load_latency * (kb * runs_first + 2) + (g.nt if g.params_fit else nb) * g.p_row
                    + m * a_first + kb * nb * g.w_tile)
        last_store = p.store_latency * runs_last + m * g.o_full
        epilogue = g.drain + m * g.pp_cycles + last_store
        cycles = prologue + max(compute, load - prologue, store - last_store) + epilogue
    else:
        prologue = epilogue = 0
        cycles = load + compute + store
    return Cost(cycles, compute, load, store, prologue, epilogue, dma_bytes, insns, g.macs / (g.cells * cycles))


def tiling_cost(cfg: AccelConfig, gemm: Gemm, dtype_bits: int, tiling: Tiling,
                params: CostParams = CostParams()) -> Cost:
    """Cost of one tiling of one GEMM instance (the scalar reference model)."""
    dw = gemm.depthwise
    if dw is not None:
        return _dw_cost(cfg, gemm, dw, dtype_bits, *_dw_units(cfg, gemm, dw, tiling), params)
    g = _geometry(cfg, gemm, dtype_bits, params)
    return _cost_scalar(g, *_units(cfg, gemm, tiling), params)


def fits(cfg: AccelConfig, gemm: Gemm, dtype_bits: int, tiling: Tiling) -> bool:
    """Whether a tiling's blocks fit the scratchpads (module docstring, "Buffers")."""
    dw = gemm.depthwise
    if dw is not None:
        return _dw_fits(cfg, dw, _dtype_rows(cfg, gemm, dtype_bits), *_dw_units(cfg, gemm, dw, tiling))
    g = _geometry(cfg, gemm, dtype_bits, CostParams())
    m, kb, nb, _, slots = _units(cfg, gemm, tiling)
    return _fits(g, m, kb, nb, slots)


def _units(cfg: AccelConfig, gemm: Gemm, t: Tiling) -> tuple[int, int, int, int, int]:
    """(m_tile, k-tiles, n-tiles, order index, slots) of a tiling, checked against the GEMM."""
    if t.order not in ORDERS:
        raise ValueError(f"GEMM {gemm}: loop order {t.order!r} is not one of {', '.join(ORDERS)}")
    if t.double_buffer and cfg.slots == 1:
        raise ValueError(f"GEMM {gemm}: config {cfg.name!r} has double_buffer = false")
    kt, nt = ceil_div(gemm.k, cfg.rows), ceil_div(gemm.n, cfg.cols)
    if not (1 <= t.m_tile <= gemm.m and t.k_tile % cfg.rows == 0 and 1 <= t.k_tile // cfg.rows <= kt
            and t.n_tile % cfg.cols == 0 and 1 <= t.n_tile // cfg.cols <= nt):
        raise ValueError(f"GEMM {gemm}: {t} is not a tiling of it (m_tile in 1..{gemm.m}, k_tile a multiple "
                         f"of {cfg.rows} up to {kt * cfg.rows}, n_tile a multiple of {cfg.cols} up to {nt * cfg.cols})")
    return t.m_tile, t.k_tile // cfg.rows, t.n_tile // cfg.cols, ORDERS.index(t.order), \
        cfg.slots if t.double_buffer else 1


# ---- the vectorised model: every candidate at once --------------------------------------------
#
# Arrays are broadcast over the axes (order, slots, m_tile, k-tiles, n-tiles); each term is built
# at the smallest shape it depends on, and only the final cycles reach the full grid.

_AXES = 5


def _axis(values, axis: int) -> np.ndarray:
    shape = [1] * _AXES
    shape[axis] = -1
    return np.asarray(values, dtype=np.int64).reshape(shape)


def _tile_axes(g: _Geometry, grid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid of each dimension, less sizes that cannot fit even alone and single-buffered."""
    d = g.depth
    ms = _m_grid(g, grid)
    ms = ms[ms <= min(d["input_buf_bytes"], d["out_buf_bytes"], d["acc_buf_bytes"])]
    kbs = _grid(g.kt, grid)
    kbs = kbs[(kbs <= d["input_buf_bytes"]) & (kbs * g.w_tile_rows <= d["weight_buf_bytes"])]
    nbs = _grid(g.nt, grid)
    nbs = nbs[(nbs * g.w_tile_rows <= d["weight_buf_bytes"]) & (g.params_fit | (nbs <= d["param_buf_bytes"]))]
    return ms, kbs, nbs


@dataclass(frozen=True)
class _Grid:
    ms: np.ndarray
    kbs: np.ndarray
    nbs: np.ndarray
    slots: tuple[int, ...]
    legal: np.ndarray  # (1, slots, m, k, n)
    terms: dict[str, np.ndarray]  # Cost fields, broadcastable to the full grid

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(ORDERS), len(self.slots), len(self.ms), len(self.kbs), len(self.nbs))


def _evaluate_grid(g: _Geometry, grid: str, p: CostParams) -> _Grid:
    ms, kbs, nbs = _tile_axes(g, grid)
    order, m, kb, nb = _axis(range(len(ORDERS)), 0), _axis(ms, 2), _axis(kbs, 3), _axis(nbs, 4)
    slots = _axis(g.slot_options, 1)
    mb, kb_count, nb_count = -(-g.m // m), -(-g.kt // kb), -(-g.nt // nb)
    m_last = g.m - (mb - 1) * m
    one_k = kb_count == 1
    d = g.depth
    legal = ((kb * m <= d["input_buf_bytes"] // slots) & (kb * nb * g.w_tile_rows <= d["weight_buf_bytes"] // slots)
             & (np.where(one_k, m, m * nb) <= d["acc_buf_bytes"] // slots) & (m <= d["out_buf_bytes"] // slots))
    if not g.params_fit:
        legal = legal & (nb <= d["param_buf_bytes"] // slots)

    sa = np.where(order == WS, np.where(mb * kb_count == 1, 1, nb_count),
                  np.where(order == IS, np.where(one_k, 1, nb_count), nb_count))
    sw = np.where(order == WS, np.where(one_k, 1, mb),
                  np.where(order == IS, np.where(nb_count * kb_count == 1, 1, mb), mb))
    if g.params_fit:
        p_loads = p_walks = 1
    else:
        p_loads, p_walks = nb_count, np.where((order == IS) & (nb_count > 1), mb, 1)
    tiles = g.kt * g.nt
    run_counts = np.array([_runs(g.m, g.row_runs, int(v)) for v in ms], np.int64).reshape(-1, 3)
    runs, runs_first = _axis(run_counts[:, 0], 2), _axis(run_counts[:, 1], 2)
    if g.out_row_runs == g.row_runs:
        out_runs, runs_last = runs, _axis(run_counts[:, 2], 2)
    else:
        out_counts = np.array([_runs(g.m, g.out_row_runs, int(v)) for v in ms], np.int64).reshape(-1, 3)
        out_runs, runs_last = _axis(out_counts[:, 0], 2), _axis(out_counts[:, 2], 2)
    loads = sa * (runs * g.kt) + sw * (kb_count * nb_count) + p_walks * p_loads
    stores = out_runs * g.nt
    insns = loads + mb * tiles + (mb * g.nt if g.postproc else 0) + stores + 1
    load = (p.load_latency * loads + sa * (g.m * g.a_row) + sw * (tiles * g.w_tile) + p_walks * (g.nt * g.p_row)
            + -(-insns * INSN_BYTES // g.bus_bytes))
    store = p.store_latency * stores + g.m * g.o_row
    gap = g.pass_gap
    mr, lr = m * g.row_cycles, m_last * g.row_cycles
    passes2 = tiles * ((mb - 1) * np.maximum(2 * mr, mr + gap) + np.maximum(2 * lr, lr + gap))
    compute = (passes2 + 1) // 2 + mb * (g.nt * g.drain) + np.where(slots > 1, 0, g.m * g.nt * g.pp_cycles)
    if g.postproc:
        compute = np.maximum(compute, g.m * g.nt * g.pp_cycles)
    dma_bytes = sa * g.a_bytes + sw * (tiles * g.w_tile_bytes) + p_walks * (g.nt * g.p_row_bytes) + g.out_bytes

    a_first = kb * g.a_full - np.where(kb == g.kt, g.a_full - g.a_last, 0)
    prologue = (p.load_latency * (kb * runs_first + 2) + (g.nt if g.params_fit else nb) * g.p_row
                + m * a_first + kb * nb * g.w_tile)
    last_store = p.store_latency * runs_last + m * g.o_full
    epilogue = g.drain + m * g.pp_cycles + last_store
    per_slots = []
    for i, s in enumerate(g.slot_options):
        c = compute[:, i : i + 1]
        if s > 1:
            per_slots.append(prologue + np.maximum(np.maximum(c, load - prologue), store - last_store) + epilogue)
        else:
            per_slots.append(load + c + store)
    cycles = np.concatenate(np.broadcast_arrays(*per_slots), axis=1)
    double = slots > 1
    terms = {"cycles": cycles, "compute": compute, "load": load, "store": store,
             "prologue": np.where(double, prologue, 0), "epilogue": np.where(double, epilogue, 0),
             "dma_bytes": dma_bytes, "instructions": insns}
    return _Grid(ms, kbs, nbs, g.slot_options, legal, terms)


def _pick(gr: _Grid) -> int:
    """Flat index of the cheapest legal candidate: fewest cycles, then fewest DMA bytes, then grid order."""
    cycles = np.where(gr.legal, gr.terms["cycles"], _NO_FIT).ravel()
    ties = np.flatnonzero(cycles == cycles.min())
    dma = np.broadcast_to(gr.terms["dma_bytes"], gr.shape).ravel()[ties]
    return int(ties[np.argmin(dma)])


def _entry(cfg: AccelConfig, g: _Geometry, gr: _Grid, flat: int) -> tuple[Tiling, Cost]:
    o, s, i, j, k = np.unravel_index(flat, gr.shape)
    tiling = Tiling(int(gr.ms[i]), int(gr.kbs[j]) * cfg.rows, int(gr.nbs[k]) * cfg.cols, ORDERS[o],
                    gr.slots[s] > 1)
    vals = {name: int(np.broadcast_to(a, gr.shape)[o, s, i, j, k]) for name, a in gr.terms.items()}
    return tiling, Cost(**vals, utilization=g.macs / (g.cells * vals["cycles"]))


def search(cfg: AccelConfig, gemm: Gemm, dtype_bits: int, params: CostParams = CostParams(),
           grid: str = "blocks") -> Choice:
    """The cheapest legal tiling of one GEMM instance, every candidate costed at once.

    Ties go to fewer DMA bytes, then to the earlier candidate in grid order (order, double
    buffering first, then ascending m_tile, k_tile, n_tile), as in `search_exhaustive`.
    """
    dw = gemm.depthwise
    if dw is not None:
        return _dw_search(cfg, gemm, dw, dtype_bits, params)
    t0 = time.perf_counter()
    _check_grid(grid)
    g = _geometry(cfg, gemm, dtype_bits, params)
    gr = _evaluate_grid(g, grid, params)
    count = len(ORDERS) * int(gr.legal.sum())
    if count == 0:
        raise ValueError(f"GEMM {gemm}: no tiling on the {grid!r} grid fits config {cfg.name!r}")
    tiling, cost = _entry(cfg, g, gr, _pick(gr))
    return Choice(gemm, dtype_bits, tiling, cost, count, time.perf_counter() - t0)


def search_exhaustive(cfg: AccelConfig, gemm: Gemm, dtype_bits: int, params: CostParams = CostParams(),
                      grid: str = "blocks") -> Choice:
    """The same search one candidate at a time with the scalar model: the reference for `search`."""
    dw = gemm.depthwise
    if dw is not None:  # its search is one candidate at a time already
        return _dw_search(cfg, gemm, dw, dtype_bits, params)
    t0 = time.perf_counter()
    _check_grid(grid)
    g = _geometry(cfg, gemm, dtype_bits, params)
    best: tuple[int, int] | None = None
    found: tuple[Tiling, Cost] | None = None
    count = 0
    ms, kbs, nbs = [int(v) for v in _m_grid(g, grid)], _grid_scalar(g.kt, grid), _grid_scalar(g.nt, grid)
    for o, order in enumerate(ORDERS):
        for slots in g.slot_options:
            for m in ms:
                for kb in kbs:
                    for nb in nbs:
                        if not _fits(g, m, kb, nb, slots):
                            continue
                        count += 1
                        cost = _cost_scalar(g, m, kb, nb, o, slots, params)
                        if best is None or (cost.cycles, cost.dma_bytes) < best:
                            best = (cost.cycles, cost.dma_bytes)
                            found = (Tiling(m, kb * cfg.rows, nb * cfg.cols, order, slots > 1), cost)
    if found is None:
        raise ValueError(f"GEMM {gemm}: no tiling on the {grid!r} grid fits config {cfg.name!r}")
    return Choice(gemm, dtype_bits, found[0], found[1], count, time.perf_counter() - t0)


@dataclass(frozen=True)
class Candidates:
    """Every legal tiling of one GEMM and its cost terms, as parallel arrays (for tests and calibration)."""

    tilings: tuple[Tiling, ...]
    cycles: np.ndarray
    compute: np.ndarray
    load: np.ndarray
    store: np.ndarray
    prologue: np.ndarray
    epilogue: np.ndarray
    dma_bytes: np.ndarray
    instructions: np.ndarray
    utilization: np.ndarray

    def __len__(self) -> int:
        return len(self.tilings)

    def cost(self, i: int) -> Cost:
        vals = {f.name: getattr(self, f.name)[i] for f in fields(Cost)}
        return Cost(**{k: (float(v) if k == "utilization" else int(v)) for k, v in vals.items()})


def evaluate(cfg: AccelConfig, gemm: Gemm, dtype_bits: int, params: CostParams = CostParams(),
             grid: str = "blocks") -> Candidates:
    """All legal candidates of the grid with their vectorised costs, in the search's order."""
    if gemm.depthwise is not None:
        raise ValueError(f"GEMM {gemm}: a depthwise schedule is costed by search and tiling_cost, not on the grid")
    _check_grid(grid)
    g = _geometry(cfg, gemm, dtype_bits, params)
    gr = _evaluate_grid(g, grid, params)
    legal = np.broadcast_to(gr.legal, gr.shape)
    o, s, i, j, k = np.nonzero(legal)
    tilings = tuple(Tiling(int(m), int(kb) * cfg.rows, int(nb) * cfg.cols, ORDERS[oi], gr.slots[si] > 1)
                    for oi, si, m, kb, nb in zip(o, s, gr.ms[i], gr.kbs[j], gr.nbs[k]))
    arrays = {name: np.broadcast_to(a, gr.shape)[legal] for name, a in gr.terms.items()}
    return Candidates(tilings, **arrays, utilization=g.macs / (g.cells * arrays["cycles"]))


# ---- depthwise convolutions -------------------------------------------------------------------
#
# A depthwise convolution (every output channel reads one input channel) is not a GEMM that the
# walk above can share operands in: n-tile j needs its own channels' activations, and its k-tiles
# (kernel taps) are diagonal weight tiles. Its schedule (compiler/codegen.py ``emit_depthwise``)
# walks channel blocks, images and blocks of output rows; per step it loads the input rows the
# block's windows cover once, as stride-phase *planes* (plane (a, b) holds the padded pixels
# (s*r + a, s*q + b) of the block's rows, ``wq`` pixels per plane row), and runs one array pass per
# kernel tap over the same loaded rows at that tap's offset, accumulating. Output pixel (oy, ox) is
# virtual GEMM row ``oy * wq + ox``; the ``wq - wo`` rows past each output row are computed and
# never stored. With stride 1 a plane row is a padded image row (``wq`` = the padded width) and a
# block's rows are one LOAD; with stride s > 1 each plane row is a LOAD of ``wq`` pixels s apart.


@dataclass(frozen=True)
class DwPlane:
    """One stride phase of the input: plane row r is padded row ``stride * r + a``, from column ``b``."""

    a: int
    b: int
    lo: int  # smallest row offset among its taps
    hi: int  # largest row offset among its taps
    co: int  # largest column offset among its taps
    last: int  # last plane row inside the padded input buffer


@dataclass(frozen=True)
class Depthwise:
    """The geometry of a depthwise convolution's schedule (see above), enough to cost and emit it."""

    images: int
    ho: int
    wo: int
    wq: int  # virtual GEMM rows per output row
    stride: int
    contiguous: bool  # one plane whose rows follow each other in DRAM: a block's rows are one LOAD
    planes: tuple[DwPlane, ...]
    taps: tuple[tuple[int, int, int], ...]  # per k-tile: (plane, row offset, column offset)
    channels: int  # output channels
    block: int  # output channels per n-tile
    in_bytes: int  # bytes of one pixel's input channels for an n-tile (DRAM row of a plane LOAD), the widest
    in_total: int  # ... summed over the n-tiles

    @property
    def blocks(self) -> int:
        return ceil_div(self.channels, self.block)

    def regions(self, rb: int) -> tuple[list[int], list[int], int]:
        """For blocks of ``rb`` output rows: each plane's first INPUT row, each tap's MATMUL
        offset, and the INPUT rows a step takes (a tap's pass of ``rb * wq`` rows stays inside its plane)."""
        bases, at = [], 0
        for p in self.planes:
            bases.append(at)
            at += (rb + p.hi - p.lo) * self.wq + p.co
        offs = [bases[pi] + (ro - self.planes[pi].lo) * self.wq + co for pi, ro, co in self.taps]
        return bases, offs, at

    def plane_rows(self, pi: int, oy0: int, oy1: int) -> tuple[int, int]:
        """The plane rows loaded for output rows ``oy0 .. oy1``: those its taps read, inside the buffer."""
        p = self.planes[pi]
        return oy0 + p.lo, min(oy1 + p.hi, p.last + 1)

    def row_blocks(self, rb: int) -> list[tuple[int, int]]:
        return [(oy0, min(self.ho, oy0 + rb)) for oy0 in range(0, self.ho, rb)]


def _dw_fits(cfg: AccelConfig, dw: Depthwise, wtr: int, rb: int, slots: int, nbg: int = 1) -> bool:
    """Blocks of ``rb`` output rows and ``nbg`` channel blocks per weight (and PARAM) LOAD fit."""
    m = rb * dw.wq
    p_depth = cfg.buffer_depth("param_buf_bytes")
    return (dw.regions(rb)[2] <= cfg.buffer_depth("input_buf_bytes") // slots
            and nbg * len(dw.taps) * wtr <= cfg.buffer_depth("weight_buf_bytes") // slots
            and m <= cfg.buffer_depth("acc_buf_bytes") // slots and m <= cfg.buffer_depth("out_buf_bytes") // slots
            and (dw.blocks <= p_depth or p_depth // slots >= 1))


def _dw_cost(cfg: AccelConfig, gemm: Gemm, dw: Depthwise, bits: int, rb: int, slots: int, nbg: int,
             p: CostParams) -> Cost:
    """Cycles of the depthwise schedule with blocks of ``rb`` output rows and ``nbg`` channel blocks
    per weight LOAD. Each step's LOADs (latency and rows, its share of instruction fetch), array
    passes (one per tap, with the weight-bank gap, then the drain before POSTPROC) and STOREs are
    costed as in the GEMM model; double-buffered, the steps overlap one deep (the loads of step
    i + 1, the POSTPROC and stores of step i - 1 beside the passes of step i), so a step whose LOADs
    are longer than its passes (a weight group's first) stalls the array; single-buffered they add up."""
    R, C, bus = cfg.rows, cfg.cols, cfg.axi_data_bits // 8
    reads = cfg.dma_outstanding
    wtr = _dtype_rows(cfg, gemm, bits)
    kt, nb, ob = len(dw.taps), dw.blocks, gemm.out_bytes
    a_row = dram_row_cycles(dw.in_bytes, R, bus, p, reads)
    w_tile = dram_row_cycles(wtr * C, C, bus, p, reads)
    p_row = dram_row_cycles(C * PARAM_BYTES, C * PARAM_BYTES, bus, p, reads)  # a channel block's ChannelParams
    o_row = dram_row_cycles(dw.block * ob, C * ob, bus, p)
    params_fit = nb <= cfg.buffer_depth("param_buf_bytes")
    pg = nb if params_fit else max(1, min(nb, cfg.buffer_depth("param_buf_bytes") // slots))  # PARAM group
    gap = R + C + 1 + p.pass_gap_extra
    drain = array_latency(cfg) + p.drain_extra
    pp = cfg.pp_row_cycles if ob == 1 else 1
    rc = gemm.row_cycles
    # one image's channel block, per block of output rows: (loads, input rows, compute, stores, store cycles)
    per_block = []
    for oy0, oy1 in dw.row_blocks(rb):
        n_ld = rows_ld = 0
        for pi in range(len(dw.planes)):
            r0, r1 = dw.plane_rows(pi, oy0, oy1)
            n_ld += 1 if dw.contiguous else max(r1 - r0, 0)
            rows_ld += max(r1 - r0, 0) * dw.wq
        m = (oy1 - oy0) * dw.wq
        comp = (kt * max(2 * m * rc, m * rc + gap) + 1) // 2 + drain
        if slots == 1:
            comp += m * pp
        st = p.store_latency * (oy1 - oy0) + (oy1 - oy0) * dw.wo * o_row
        per_block.append((n_ld, rows_ld, comp, oy1 - oy0, st, m * pp if ob == 1 else 0))
    steps = [(j, b) for j in range(nb) for _ in range(dw.images) for b in per_block]
    loads = insns = load = store = compute = dma_in = 0
    step_load, step_comp, step_store, step_pp = [], [], [], []
    for i, (j, (n_ld, rows_ld, comp, n_st, st, pp_cyc)) in enumerate(steps):
        ld, cyc = n_ld, rows_ld * a_row
        if i == 0 and params_fit:
            ld, cyc = ld + 1, cyc + nb * p_row
        first = i == 0 or steps[i - 1][0] != j
        if j % nbg == 0 and first:
            ld, cyc = ld + 1, cyc + min(nbg, nb - j) * kt * w_tile
        if not params_fit and j % pg == 0 and first:
            ld, cyc = ld + 1, cyc + min(pg, nb - j) * p_row
        n_insns = ld + kt + (1 if ob == 1 else 0) + n_st
        cyc += p.load_latency * ld + ceil_div(n_insns * INSN_BYTES, bus)
        loads, insns, load, store, compute = loads + ld, insns + n_insns, load + cyc, store + st, compute + comp
        dma_in += rows_ld
        step_load.append(cyc)
        step_comp.append(comp)
        step_store.append(st)
        step_pp.append(pp_cyc)
    insns += 1
    compute = max(compute, sum(step_pp))
    dma_bytes = (dma_in // nb * dw.in_total + nb * kt * wtr * C + nb * C * PARAM_BYTES
                 + dw.images * dw.ho * dw.wo * dw.channels * ob)
    if slots > 1:
        # step i's passes beside step i + 1's loads, step i - 1's POSTPROC (the post-processing
        # unit takes it while the in-order compute queue holds the next POSTPROC) and its stores
        prologue, epilogue = step_load[0], step_pp[-1] + step_store[-1]
        n = len(steps)
        middle = sum(max(step_comp[i], step_load[i + 1] if i + 1 < n else 0,
                         step_pp[i - 1] if i else 0, step_store[i - 1] if i else 0) for i in range(n))
        cycles = prologue + middle + epilogue
    else:
        prologue = epilogue = 0
        cycles = load + compute + store
    return Cost(cycles, compute, load, store, prologue, epilogue, dma_bytes, insns,
                gemm.macs / (R * C * cycles))


def _dw_search(cfg: AccelConfig, gemm: Gemm, dw: Depthwise, bits: int, p: CostParams) -> Choice:
    t0 = time.perf_counter()
    wtr = _dtype_rows(cfg, gemm, bits)
    best, count = None, 0
    for slots in sorted({cfg.slots, 1}, reverse=True):
        for nbg in sorted({ceil_div(dw.blocks, b) for b in range(1, dw.blocks + 1)}):
            for rb in range(1, dw.ho + 1):
                if not _dw_fits(cfg, dw, wtr, rb, slots, nbg):
                    continue
                count += 1
                cost = _dw_cost(cfg, gemm, dw, bits, rb, slots, nbg, p)
                if best is None or (cost.cycles, cost.dma_bytes) < (best[1].cycles, best[1].dma_bytes):
                    best = (Tiling(rb * dw.wq, len(dw.taps) * cfg.rows, nbg * cfg.cols, "weight_stationary",
                                   slots > 1), cost)
    if best is None:
        raise ValueError(f"GEMM {gemm}: no depthwise block fits config {cfg.name!r}")
    return Choice(gemm, bits, best[0], best[1], count, time.perf_counter() - t0)


def _dw_units(cfg: AccelConfig, gemm: Gemm, dw: Depthwise, t: Tiling) -> tuple[int, int, int]:
    """(output rows per block, slots, channel blocks per weight LOAD) of a depthwise tiling."""
    if t.double_buffer and cfg.slots == 1:
        raise ValueError(f"GEMM {gemm}: config {cfg.name!r} has double_buffer = false")
    if t.m_tile % dw.wq or not 1 <= t.m_tile // dw.wq <= dw.ho or t.n_tile % cfg.cols \
            or not 1 <= t.n_tile // cfg.cols <= dw.blocks:
        raise ValueError(f"GEMM {gemm}: a depthwise tiling has m_tile a multiple of {dw.wq} up to "
                         f"{dw.ho * dw.wq} and n_tile a multiple of {cfg.cols} up to {dw.blocks * cfg.cols}")
    return t.m_tile // dw.wq, cfg.slots if t.double_buffer else 1, t.n_tile // cfg.cols


def depthwise_fits(cfg: AccelConfig, gemm: Gemm, dtype_bits: int) -> bool:
    """Whether any block of the depthwise schedule fits the scratchpads."""
    dw = gemm.depthwise
    wtr = _dtype_rows(cfg, gemm, dtype_bits)
    return any(_dw_fits(cfg, dw, wtr, 1, s) for s in {cfg.slots, 1})
