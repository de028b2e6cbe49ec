"""cocotb testbench of the MATMUL engine (weight loader, systolic array, accumulator update)
against the golden model's MATMUL, with random tiles, datatypes, addresses and gaps."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.datatypes import DATATYPES
from hw.isa import Buffer, GroupParams, Instruction, Opcode, WeightType
from hw.matmul import MatmulCmd, storage_dtypes
from hw.numerics import wrap
from hw.records import pack_records
from hw.scratchpad import depth
from sim.golden import Golden
from sim.tb.common import config, rng, start

STORAGE_BITS = (1, 2, 4, 8)


def random_buffers(r: np.random.Generator, gold: Golden) -> None:
    """Any byte pattern is a legal packed weight tile, so random bytes everywhere; on the
    bit-serial PE, PARAM row i holds random GroupParams whose datatypes fit a tile stored in
    STORAGE_BITS[i % 4]-bit codes, with random scales and zero points."""
    for buf in (Buffer.INPUT, Buffer.WEIGHT):
        gold.sram[buf][:] = r.integers(0, 256, gold.sram[buf].shape, dtype=np.uint8)
    cfg = config()
    if cfg.pe != "serial":
        return
    for i in range(gold.sram[Buffer.PARAM].shape[0]):
        fits = [DATATYPES[d].code for d in cfg.weight_dtypes if DATATYPES[d].bits <= STORAGE_BITS[i % 4]]
        scale_max = 1 << GroupParams["scale"].width
        gold.sram[Buffer.PARAM][i] = pack_records(
            GroupParams, dtype=r.choice(fits, cfg.cols), scale=r.integers(0, scale_max, cfg.cols),
            zero_point=r.integers(0, 1 << GroupParams["zero_point"].width, cfg.cols))


async def write_rows(dut, port, rows: np.ndarray) -> None:
    for i, row in enumerate(rows):
        getattr(dut, f"{port}__addr").value = i
        getattr(dut, f"{port}__data").value = int.from_bytes(row.tobytes(), "little")
        getattr(dut, f"{port}__en").value = 1
        await RisingEdge(dut.clk)
    getattr(dut, f"{port}__en").value = 0


async def fill(dut, r: np.random.Generator) -> Golden:
    """Random input and weight buffers in the DUT and in a golden model; the golden model's
    accumulators start from what the DUT holds (earlier tests leave it there)."""
    gold = Golden(config())
    random_buffers(r, gold)
    await write_rows(dut, "in_wr", gold.sram[Buffer.INPUT])
    await write_rows(dut, "w_wr", gold.sram[Buffer.WEIGHT])
    if config().pe == "serial":
        await write_rows(dut, "param_wr", gold.sram[Buffer.PARAM])
    gold.acc[:] = await read_acc(dut)
    return gold


async def read_acc(dut) -> np.ndarray:
    cfg = config()
    out = np.zeros((depth(cfg, Buffer.ACC), cfg.cols), np.int64)
    mask = (1 << cfg.acc_bits) - 1
    dut.acc_peek__en.value = 1
    for i in range(out.shape[0]):
        dut.acc_peek__addr.value = i
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        raw = int(dut.acc_peek__data.value)
        out[i] = wrap([(raw >> (cfg.acc_bits * j)) & mask for j in range(cfg.cols)], cfg.acc_bits)
    return out


def random_cmd(r: np.random.Generator, m_max: int) -> dict:
    cfg = config()
    dt = DATATYPES[str(r.choice(storage_dtypes(cfg)))]
    m = int(r.integers(1, m_max + 1))
    group = {}
    if cfg.pe == "serial" and r.random() < 0.6:
        rows = [i for i in range(depth(cfg, Buffer.PARAM)) if STORAGE_BITS[i % 4] <= dt.bits]
        if rows:
            group = {"grouped": 1, "group_addr": int(r.choice(rows))}
    return group | {
        "dtype": WeightType(dt.code),
        "accumulate": int(r.integers(0, 2)),
        "in_addr": int(r.integers(0, depth(cfg, Buffer.INPUT) - m + 1)),
        "w_addr": int(r.integers(0, depth(cfg, Buffer.WEIGHT) - cfg.weight_tile_rows(dt) + 1)),
        "acc_addr": int(r.integers(0, depth(cfg, Buffer.ACC) - m + 1)),
        "m": m,
    }


async def run_cmds(dut, cmds: list[dict], r: np.random.Generator, p_valid: float) -> tuple[int, list[int]]:
    """Offer the commands with random gaps; returns the cycles until idle and the cycles in
    which an activation row entered the array."""
    pending = list(cmds)
    retired = cycles = 0
    rows_in = []
    limit = 50 * sum(c["m"] + config().rows for c in cmds) + 500  # watchdog
    while True:
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < limit, f"watchdog: {retired}/{len(cmds)} retired after {cycles} cycles"
        offer = bool(pending) and r.random() < p_valid
        dut.cmd__valid.value = int(offer)
        if offer:
            dut.cmd__payload.value = MatmulCmd.const(pending[0]).as_value().value
        await ReadOnly()
        if offer and dut.cmd__ready.value:
            pending.pop(0)
        retired += int(dut.retire.value)
        if dut.row_in.value:
            rows_in.append(cycles)
        if not pending and retired == len(cmds) and dut.idle.value:
            break
    await RisingEdge(dut.clk)
    dut.cmd__valid.value = 0
    return cycles, rows_in


async def check(dut, n_cmds: int, m_max: int, p_valid: float) -> None:
    r = rng(dut)
    await start(dut)
    dut.cmd__valid.value = 0
    gold = await fill(dut, r)
    cmds = [random_cmd(r, m_max) for _ in range(n_cmds)]
    await run_cmds(dut, cmds, r, p_valid)
    for pc, c in enumerate(cmds):
        gold._execute(pc, Instruction(Opcode.MATMUL, frozenset(), {"grouped": 0, "group_addr": 0, **c}))
    got = await read_acc(dut)
    bad = np.argwhere(got != gold.acc)
    assert bad.size == 0, f"{len(bad)} accumulator entries differ, first at {bad[0].tolist()}"


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def random_tiles_with_gaps(dut):
    """Random datatypes, addresses, overlapping accumulator rows, accumulate on/off, gaps."""
    await check(dut, 60, 12, p_valid=0.5)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def single_row_tiles_back_to_back(dut):
    """m = 1 tiles one after another: the weight banks and the accumulator forwarding hold."""
    await check(dut, 40, 1, p_valid=1.0)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def long_tiles_stream_without_gaps(dut):
    """Tiles longer than the array's fill time follow each other with no idle cycle: the
    array takes one activation row every cycle from the first row to the last."""
    cfg = config()
    m = min(depth(cfg, Buffer.ACC), depth(cfg, Buffer.INPUT), 2 * (cfg.rows + cfg.cols) + 8)
    r = rng(dut)
    await start(dut)
    gold = await fill(dut, r)
    dt = DATATYPES[storage_dtypes(cfg)[-1]]
    cmds = [{"dtype": WeightType(dt.code), "accumulate": int(i > 0), "in_addr": 0,
             "w_addr": (i % 2) * cfg.weight_tile_rows(dt), "acc_addr": 0, "m": m} for i in range(6)]
    cycles, rows_in = await run_cmds(dut, cmds, r, 1.0)
    planes = dt.mant_bits if cfg.pe == "serial" else 1  # bit-serial: each row once per bit plane
    assert len(rows_in) == 6 * m * planes
    assert rows_in[-1] - rows_in[0] + 1 == 6 * m * planes, "the array waited between tiles"
    # before the first row: the first tile's weights; after the last: the array's latency
    overhead = cycles - len(rows_in)
    dut._log.info("%d rows in %d cycles (overhead %d)", len(rows_in), cycles, overhead)
    assert overhead <= 2 * cfg.rows + cfg.cols + 10, f"{overhead} cycles of overhead"
    for pc, c in enumerate(cmds):
        gold._execute(pc, Instruction(Opcode.MATMUL, frozenset(), {"grouped": 0, "group_addr": 0, **c}))
    got = await read_acc(dut)
    assert np.array_equal(got, gold.acc)
