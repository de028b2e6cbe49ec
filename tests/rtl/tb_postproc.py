"""cocotb testbench of hw.postproc.PostProcess against hw.numerics.requantize."""

from __future__ import annotations

from functools import cache

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hw.isa import ChannelParams
from hw.numerics import requantize
from hw.postproc import LATENCY, OUT_BITS, postproc_layouts
from sim.tb.common import config, rng, start


def random_rows(r: np.random.Generator, n: int, edge: bool = False) -> list[dict]:
    cfg = config()
    lanes = cfg.pp_lanes
    a_lo, a_hi = -(1 << (cfg.acc_bits - 1)), 1 << (cfg.acc_bits - 1)
    b_w, m_w, s_w = (ChannelParams[f].width for f in ("bias", "multiplier", "shift"))
    rows = []
    for _ in range(n):
        if edge:
            acc = r.choice([a_lo, a_hi - 1, 0, -1, 1], lanes)
            bias = r.choice([-(1 << (b_w - 1)), (1 << (b_w - 1)) - 1, 0], lanes)
            mult = r.choice([0, 1, (1 << m_w) - 1], lanes)
            shift = r.choice([0, 1, (1 << s_w) - 1, 31], lanes)
        else:
            acc = r.integers(-(1 << 20), 1 << 20, lanes)
            bias = r.integers(-(1 << 16), 1 << 16, lanes)
            mult = r.integers(1 << 20, 1 << m_w, lanes)
            shift = r.integers(24, 40, lanes)
        rows.append({
            "acc": acc.tolist(), "bias": bias.tolist(), "multiplier": mult.tolist(),
            "shift": shift.tolist(), "zero_point": int(r.integers(-128, 128)), "relu": int(r.integers(0, 2)),
        })
    return rows


def expected(row: dict) -> list[int]:
    cfg = config()
    return requantize(np.array(row["acc"]), np.array(row["bias"]), np.array(row["multiplier"]),
                      np.array(row["shift"]), row["zero_point"], bool(row["relu"]), cfg.act_bits).tolist()


@cache
def row_layout():
    return postproc_layouts(config())[0]


def encode(row: dict) -> int:
    row_in = row_layout()
    params = [{"bias": b, "multiplier": m, "shift": s}
              for b, m, s in zip(row["bias"], row["multiplier"], row["shift"])]
    return row_in.const({"acc": row["acc"], "params": params, "relu": row["relu"],
                         "zero_point": row["zero_point"]}).as_value().value


def decode(raw: int) -> list[int]:
    lanes, mask, half = config().pp_lanes, (1 << OUT_BITS) - 1, 1 << (OUT_BITS - 1)
    vals = [(raw >> (OUT_BITS * i)) & mask for i in range(lanes)]
    return [v - 2 * half if v >= half else v for v in vals]


async def stream_rows(dut, rows: list[dict], p_valid: float, p_ready: float, r) -> tuple[list, int]:
    """Offer rows with random gaps while taking outputs with random stalls; returns the
    outputs in arrival order and the cycles it took."""
    pending, got, cycles = list(rows), [], 0
    limit = 20 * len(rows) + 100  # watchdog
    while len(got) < len(rows):
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < limit, f"watchdog: {len(got)}/{len(rows)} rows after {cycles} cycles"
        offer = bool(pending) and r.random() < p_valid
        dut.i__valid.value = int(offer)
        if offer:
            dut.i__payload.value = encode(pending[0])
        dut.o__ready.value = int(r.random() < p_ready)
        await ReadOnly()
        if offer and dut.i__ready.value:
            pending.pop(0)
        if dut.o__valid.value and dut.o__ready.value:
            got.append(decode(int(dut.o__payload.value)))
    return got, cycles


async def check(dut, rows, p_valid, p_ready) -> int:
    r = rng(dut)
    await start(dut)
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    got, cycles = await stream_rows(dut, rows, p_valid, p_ready, r)
    for i, (row, out) in enumerate(zip(rows, got)):
        assert out == expected(row), f"row {i}: {row} -> {out}, expected {expected(row)}"
    return cycles


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def random_rows_under_backpressure(dut):
    """Random rows, random valid gaps and output stalls: every row arrives once, in order."""
    await check(dut, random_rows(rng(dut), 300), p_valid=0.6, p_ready=0.5)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def extreme_values(dut):
    """Widest accumulators, biases, multipliers and shifts 0 and 63: no overflow anywhere."""
    await check(dut, random_rows(rng(dut), 200, edge=True), p_valid=0.8, p_ready=0.8)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def one_row_per_cycle(dut):
    """With no stalls the unit takes and delivers one row per cycle after its latency."""
    n = 100
    cycles = await check(dut, random_rows(rng(dut), n), p_valid=1.0, p_ready=1.0)
    assert cycles <= n + LATENCY + 1, f"{n} rows took {cycles} cycles"
