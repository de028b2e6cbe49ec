"""Code generation: one lowered GEMM and its chosen tiling -> instructions with dependency tokens.

The schedule is the one compiler/tiling.py costs: blocks of ``m_tile x k_tile x n_tile`` walked
in the tiling's loop order, k-blocks innermost for an output block; an operand block is loaded
only when the walk moves to a different block of it, into the other buffer half when double
buffered. Token protocol (the only ordering between the load, compute and store queues):

- a *group* is a step of the walk that loads something; its last LOAD pushes a token to compute,
  whose first MATMUL of the step pops it;
- group ``g >= slots`` first waits for compute to have finished group ``g - slots`` (the last
  step that read the buffer halves it overwrites), pushed by that group's last MATMUL;
- each output tile: POSTPROC into output half ``u % slots`` (waiting for the STORE of tile
  ``u - slots``), then its STOREs; a GEMM with raw int32 output stores accumulator rows instead,
  and the first MATMUL into an accumulator region waits for the STOREs of its previous user.

Every push has exactly one matching pop, so a layer leaves no token behind and ``barrier`` can
order the next layer's loads after this layer's last store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from compiler.tiling import Depthwise, ceil_div
from hw.config import AccelConfig
from hw.datatypes import datatype
from hw.isa import Buffer, Opcode, Queue, WeightType, encode


@dataclass(frozen=True)
class Transfer:
    """One strided DRAM access of a LOAD or STORE: ``rows`` rows of ``row_bytes`` every ``stride``."""

    dram_addr: int
    rows: int
    row_bytes: int
    stride: int
    sram_offset: int | None = None  # rows after the tile's first; None: right after the previous transfer


@dataclass(frozen=True)
class GemmJob:
    """A GEMM lowered for the array: where its operands are and how to reach them.

    Tiles of the packed weights sit at ``w_addr``, tile (k-tile i, n-tile j) at index
    ``j * kt + i``; ``p_addr`` holds ``param_rows / nt`` PARAM rows per n-tile: its ChannelParams
    row, then, grouped, one GroupParams row per quantization group g. ``a_loads(m0, rows, i)`` gives the transfers that
    bring activation rows ``m0 .. m0 + rows`` of k-tile ``i`` into consecutive scratchpad rows
    (im2col for a convolution); ``stores(m0, rows, j)`` those that write n-tile ``j`` of them.
    """

    name: str
    m: int
    kt: int
    n: int
    dtype: str  # MATMUL datatype (the storage width when grouped)
    w_addr: int
    p_addr: int
    param_rows: int
    a_loads: Callable[[int, int, int], list[Transfer]]
    stores: Callable[[int, int, int], list[Transfer]]
    relu: bool = False
    zero_point: int = 0
    int32_out: bool = False
    group_of_ktile: tuple[int, ...] | None = None  # grouped MATMUL: each k-tile's quantization group
    depthwise: DepthwiseJob | None = None  # a depthwise convolution: emitted by `emit_depthwise`


@dataclass(frozen=True)
class DepthwiseJob:
    """How a depthwise convolution's steps reach DRAM (compiler/tiling.py, "depthwise convolutions").

    ``loads(n, oy0, oy1, j, bases)``: the transfers that bring the input planes of image ``n``,
    output rows ``oy0 .. oy1`` and channel block ``j`` into the INPUT rows after a half's start
    (``bases``: each plane's first row there); ``stores(n, oy0, oy1, j)``: those that write the
    block's outputs, their ``sram_offset`` the virtual row of each output row's first pixel.
    Weights: ``len(geom.taps)`` tiles per channel block, block-major; PARAM: ``param_rows /
    blocks`` rows per channel block."""

    geom: Depthwise
    loads: Callable[[int, int, int, int, list[int]], list[Transfer]]
    stores: Callable[[int, int, int, int], list[Transfer]]


@dataclass
class _Insn:
    opcode: Opcode
    fields: dict
    deps: set = field(default_factory=set)


class Emitter:
    """Instructions of one stage, with their dependency flags still editable."""

    def __init__(self) -> None:
        self.insns: list[_Insn] = []

    def add(self, opcode: Opcode, **fields) -> _Insn:
        insn = _Insn(opcode, fields)
        self.insns.append(insn)
        return insn

    def transfer(self, opcode: Opcode, buf: Buffer, sram: int, t: Transfer) -> _Insn:
        return self.add(opcode, buffer=buf, sram_addr=sram, dram_addr=t.dram_addr, rows=t.rows,
                        row_bytes=t.row_bytes, dram_stride=t.stride)

    def words(self) -> list[int]:
        return [encode(i.opcode, frozenset(i.deps), **i.fields) for i in self.insns]

    def barrier(self) -> None:
        """Everything before (its last STORE included) completes before any later LOAD starts."""
        stores = [i for i in self.insns if i.opcode is Opcode.STORE]
        if not stores:
            return
        stores[-1].deps.add("push_prev")
        self.add(Opcode.SYNC, queue=Queue.COMPUTE).deps |= {"pop_next", "push_prev"}
        self.add(Opcode.SYNC, queue=Queue.LOAD).deps.add("pop_next")




@dataclass(frozen=True)
class _Step:
    mi: int
    ni: int
    ki: int
    load_a: bool
    load_w: bool
    load_p: bool


def _walk(order: str, mb: int, nbc: int, kbc: int, params_fit: bool) -> list[_Step]:
    if order == "input_stationary":
        keys = [(mi, ni, ki) for mi in range(mb) for ni in range(nbc) for ki in range(kbc)]
    else:
        keys = [(mi, ni, ki) for ni in range(nbc) for mi in range(mb) for ki in range(kbc)]
    steps, prev = [], None
    for mi, ni, ki in keys:
        fresh = prev is None or order == "stream"
        load_a = fresh or (prev[0], prev[2]) != (mi, ki)
        load_w = fresh or (prev[1], prev[2]) != (ni, ki)
        load_p = prev is None if params_fit else (prev is None or prev[1] != ni)
        steps.append(_Step(mi, ni, ki, load_a, load_w, load_p))
        prev = (mi, ni, ki)
    return steps


def emit_gemm(em: Emitter, cfg: AccelConfig, job: GemmJob, m_tile: int, k_tile: int, n_tile: int,
              order: str, double_buffer: bool) -> None:
    """Append the instructions of `job` under one tiling (see the module docstring)."""
    if job.depthwise is not None:
        emit_depthwise(em, cfg, job, m_tile, n_tile, double_buffer)
        return
    R, C = cfg.rows, cfg.cols
    S = cfg.slots if double_buffer else 1
    nt = ceil_div(job.n, C)
    kb, nb = k_tile // R, n_tile // C
    mb, kbc, nbc = ceil_div(job.m, m_tile), ceil_div(job.kt, kb), ceil_div(nt, nb)
    half = {b: cfg.buffer_depth(f) // S for b, f in (
        ("in", "input_buf_bytes"), ("w", "weight_buf_bytes"), ("acc", "acc_buf_bytes"),
        ("out", "out_buf_bytes"), ("p", "param_buf_bytes"))}
    params_fit = job.param_rows <= cfg.buffer_depth("param_buf_bytes")
    prt = job.param_rows // nt  # PARAM rows of one n-tile
    dt = datatype(job.dtype)
    wtr = cfg.weight_tile_rows(dt)
    tile_bytes = wtr * C
    steps = _walk(order, mb, nbc, kbc, params_fit)
    groups = [s for s in steps if s.load_a or s.load_w or s.load_p]
    n_groups = len(groups)
    # raw-output accumulator units: each output tile, or each output block when K is split
    n_units = mb * nt if kbc == 1 else mb * nbc
    n_outs = mb * nt
    count = {"a": 0, "w": 0, "p": 0, "g": 0, "u": 0, "unit": 0}
    base = {"a": 0, "w": 0, "p": 0}
    unit_of_block: dict[tuple[int, int], int] = {}
    pending_free: _Insn | None = None  # last MATMUL of the previous step

    for s in steps:
        m0 = s.mi * m_tile
        rows = min(m_tile, job.m - m0)
        kis = range(s.ki * kb, min(job.kt, (s.ki + 1) * kb))
        njs = range(s.ni * nb, min(nt, (s.ni + 1) * nb))
        # ---- loads ----
        loads: list[_Insn] = []
        if s.load_p:
            if params_fit:
                loads.append(em.transfer(Opcode.LOAD, Buffer.PARAM, 0, _whole(job.p_addr, job.param_rows, cfg)))
            else:
                base["p"] = (count["p"] % S) * half["p"]
                count["p"] += 1
                p_bytes = cfg.buffer_row_bytes("param_buf_bytes")
                loads.append(em.transfer(Opcode.LOAD, Buffer.PARAM, base["p"], Transfer(
                    job.p_addr + njs[0] * prt * p_bytes, 1, len(njs) * prt * p_bytes, len(njs) * prt * p_bytes)))
        if s.load_a:
            base["a"] = (count["a"] % S) * half["in"]
            count["a"] += 1
            for ii, i in enumerate(kis):
                loads += _emit_transfers(em, Opcode.LOAD, Buffer.INPUT, base["a"] + ii * m_tile,
                                         job.a_loads(m0, rows, i))
        if s.load_w:
            base["w"] = (count["w"] % S) * half["w"]
            count["w"] += 1
            if len(kis) == job.kt:  # whole columns: the block's tiles are contiguous
                loads.append(em.transfer(Opcode.LOAD, Buffer.WEIGHT, base["w"], Transfer(
                    job.w_addr + njs[0] * job.kt * tile_bytes, len(njs) * job.kt, tile_bytes, tile_bytes)))
            else:
                for jj, j in enumerate(njs):
                    loads.append(em.transfer(Opcode.LOAD, Buffer.WEIGHT, base["w"] + jj * len(kis) * wtr, Transfer(
                        job.w_addr + (j * job.kt + kis[0]) * tile_bytes, len(kis), tile_bytes, tile_bytes)))
        if loads:
            g = count["g"]
            count["g"] += 1
            if g >= S:
                loads[0].deps.add("pop_next")
            loads[-1].deps.add("push_next")
            if pending_free is not None and g - 1 + S < n_groups:
                pending_free.deps.add("push_prev")  # for group g + S - 1, whose halves it frees
        # ---- compute ----
        start = len(em.insns)
        first_of_step = True
        last_mm: _Insn | None = None
        for jj, j in enumerate(njs):
            p_row = j * prt if params_fit else base["p"] + jj * prt  # the n-tile's ChannelParams row
            if kbc == 1:
                unit = count["unit"]
                count["unit"] += 1
                acc = (unit % S) * half["acc"]
                new_unit = True
            else:
                key = (s.mi, s.ni)
                new_unit = key not in unit_of_block
                if new_unit:
                    unit_of_block[key] = count["unit"]
                    count["unit"] += 1
                unit = unit_of_block[key]
                acc = (unit % S) * half["acc"] + jj * m_tile
                new_unit = new_unit and jj == 0
            for ii, i in enumerate(kis):
                mm = em.add(Opcode.MATMUL, dtype=WeightType[job.dtype.upper()], accumulate=int(s.ki > 0 or ii > 0),
                            in_addr=base["a"] + ii * m_tile, w_addr=base["w"] + (jj * len(kis) + ii) * wtr,
                            acc_addr=acc, m=rows, grouped=int(job.group_of_ktile is not None),
                            group_addr=(p_row + 1 + job.group_of_ktile[i]) if job.group_of_ktile else 0)
                if first_of_step and loads:
                    mm.deps.add("pop_prev")
                if job.int32_out and new_unit and ii == 0 and s.ki == 0 and unit >= S:
                    mm.deps.add("pop_next")  # the region's previous accumulators are stored
                first_of_step = False
                last_mm = mm
            if s.ki == kbc - 1:
                last_of_unit = kbc == 1 or jj == len(njs) - 1
                _finish_tile(em, cfg, job, m0, rows, j, acc, count, S, half, n_outs, p_row, last_mm, unit, n_units,
                             last_of_unit)
        # its last compute instruction (a POSTPROC may read the PARAM half) frees the step's halves
        pending_free = [i for i in em.insns[start:] if i.opcode in (Opcode.MATMUL, Opcode.POSTPROC)][-1]


def emit_depthwise(em: Emitter, cfg: AccelConfig, job: GemmJob, m_tile: int, n_tile: int,
                   double_buffer: bool) -> None:
    """A depthwise convolution: channel blocks, images, blocks of ``m_tile / wq`` output rows; per
    step one group of LOADs (the weights of ``n_tile / cols`` channel blocks when the walk reaches
    them, PARAM rows when it reaches a group of them, the input planes), one MATMUL per kernel tap
    over the loaded rows at the tap's offset, one output tile. Tokens as in `emit_gemm`, every step
    being a group and an output tile."""
    dw = job.depthwise
    geo = dw.geom
    S = cfg.slots if double_buffer else 1
    rb, nbg = m_tile // geo.wq, n_tile // cfg.cols
    half = {b: cfg.buffer_depth(f) // S for b, f in (
        ("in", "input_buf_bytes"), ("w", "weight_buf_bytes"), ("acc", "acc_buf_bytes"),
        ("out", "out_buf_bytes"), ("p", "param_buf_bytes"))}
    nb, kt = geo.blocks, len(geo.taps)
    prt = job.param_rows // nb
    params_fit = job.param_rows <= cfg.buffer_depth("param_buf_bytes")
    p_bytes = cfg.buffer_row_bytes("param_buf_bytes")
    dt = datatype(job.dtype)
    wtr = cfg.weight_tile_rows(dt)
    tile_bytes = wtr * cfg.cols
    bases, offs, _ = geo.regions(rb)
    steps = [(j, n, oy0, oy1) for j in range(nb) for n in range(geo.images) for oy0, oy1 in geo.row_blocks(rb)]
    count = {"u": 0}
    # PARAM rows that do not all fit go in groups of a buffer half's worth of channel blocks
    pg = nb if params_fit else max(1, min(nb, half["p"] // prt))
    state = {"g0": -1, "w": 0, "pg0": -1, "p": 0}  # the weight and PARAM groups in the buffers: first block, half

    def group_loads(g: int) -> None:
        j, n, oy0, oy1 = steps[g]
        loads: list[_Insn] = []
        if g == 0 and params_fit:
            loads.append(em.transfer(Opcode.LOAD, Buffer.PARAM, 0, _whole(job.p_addr, job.param_rows, cfg)))
        if not params_fit and (state["pg0"] < 0 or j >= state["pg0"] + pg):
            state["pg0"] = j
            state["p"] = ((j // pg) % S) * half["p"]
            cnt = min(pg, nb - j)
            loads.append(em.transfer(Opcode.LOAD, Buffer.PARAM, state["p"], Transfer(
                job.p_addr + j * prt * p_bytes, 1, cnt * prt * p_bytes, cnt * prt * p_bytes)))
        if state["g0"] < 0 or j >= state["g0"] + nbg:
            state["g0"] = j
            cnt = min(nbg, nb - j)
            state["w"] = ((j // nbg) % S) * half["w"]
            loads.append(em.transfer(Opcode.LOAD, Buffer.WEIGHT, state["w"], Transfer(
                job.w_addr + j * kt * tile_bytes, cnt * kt, tile_bytes, tile_bytes)))
        loads += _emit_transfers(em, Opcode.LOAD, Buffer.INPUT, (g % S) * half["in"], dw.loads(n, oy0, oy1, j, bases))
        if g >= S:
            loads[0].deps.add("pop_next")
        loads[-1].deps.add("push_next")

    # double-buffered, the next step's LOADs go before this step's POSTPROC and STOREs: instructions
    # dispatch in order, so they enter the load queue while the store queue still holds STOREs (single-
    # buffered they wait for this step's last compute instruction, which must be dispatched first)
    group_loads(0)
    for g, (j, n, oy0, oy1) in enumerate(steps):
        m = (oy1 - oy0) * geo.wq
        g0, w_base = state["g0"], state["w"]
        a_base = (g % S) * half["in"]
        p_row = j * prt if params_fit else state["p"] + (j - state["pg0"]) * prt
        w_blk = w_base + (j - g0) * kt * wtr
        acc = (g % S) * half["acc"]
        start = len(em.insns)
        mm = None
        for i, off in enumerate(offs):
            mm = em.add(Opcode.MATMUL, dtype=WeightType[job.dtype.upper()], accumulate=int(i > 0),
                        in_addr=a_base + off, w_addr=w_blk + i * wtr, acc_addr=acc, m=m, grouped=0, group_addr=0)
            if i == 0:
                mm.deps.add("pop_prev")
                if job.int32_out and g >= S:
                    mm.deps.add("pop_next")  # the region's previous accumulators are stored
        if g + 1 < len(steps) and S > 1:
            group_loads(g + 1)
        _finish_tile(em, cfg, job, 0, m, j, acc, count, S, half, len(steps), p_row, mm, g, len(steps), True,
                     transfers=dw.stores(n, oy0, oy1, j))
        if g + S < len(steps):  # frees the step's halves for group g + S: its last MATMUL, or its
            # POSTPROC when group g + S loads the PARAM half this step's POSTPROC reads
            nj = steps[g + S][0]
            reload_p = not params_fit and nj // pg != steps[g + S - 1][0] // pg
            last = [i for i in em.insns[start:] if i.opcode in (Opcode.MATMUL, Opcode.POSTPROC)] if reload_p \
                else [mm]
            last[-1].deps.add("push_prev")
        if g + 1 < len(steps) and S == 1:  # they wait for this step's last compute instruction
            group_loads(g + 1)


def _finish_tile(em: Emitter, cfg: AccelConfig, job: GemmJob, m0: int, rows: int, j: int, acc: int, count: dict,
                 S: int, half: dict, n_outs: int, p_row: int, last_mm: _Insn, unit: int,
                 n_units: int, last_of_unit: bool, transfers: list[Transfer] | None = None) -> None:
    transfers = job.stores(m0, rows, j) if transfers is None else transfers
    if job.int32_out:
        last_mm.deps.add("push_next")
        stores = _emit_transfers(em, Opcode.STORE, Buffer.ACC, acc, transfers)
        stores[0].deps.add("pop_prev")
        if last_of_unit and unit + S < n_units:
            stores[-1].deps.add("push_prev")
        return
    u = count["u"]
    count["u"] += 1
    oslot = (u % S) * half["out"]
    pp = em.add(Opcode.POSTPROC, acc_addr=acc, out_addr=oslot, param_addr=p_row, m=rows,
                relu=int(job.relu), zero_point=job.zero_point)
    pp.deps.add("push_next")
    if u >= S:
        pp.deps.add("pop_next")
    stores = _emit_transfers(em, Opcode.STORE, Buffer.OUTPUT, oslot, transfers)
    stores[0].deps.add("pop_prev")
    if u + S < n_outs:
        stores[-1].deps.add("push_prev")


def _emit_transfers(em: Emitter, opcode: Opcode, buf: Buffer, base: int, transfers: list[Transfer]) -> list[_Insn]:
    """One LOAD or STORE per transfer, the scratchpad rows of a tile starting at `base`."""
    out, at = [], base
    for t in transfers:
        at = at if t.sram_offset is None else base + t.sram_offset
        out.append(em.transfer(opcode, buf, at, t))
        at += t.rows
    return out


def _whole(addr: int, rows: int, cfg: AccelConfig) -> Transfer:
    """All `rows` PARAM rows at `addr` as one LOAD."""
    p_bytes = cfg.buffer_row_bytes("param_buf_bytes")
    return Transfer(addr, 1, rows * p_bytes, rows * p_bytes)
