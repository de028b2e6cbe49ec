"""cocotb testbench of one bit-parallel PE, one MAC per cycle in two stages: the product
a_in * w[bank_in] is registered (whole, or as two halves), and psum_out = psum_in + the product of
the previous cycle's activation; weights are written into either bank while the other computes."""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

from hw.array import ACT_BITS, psum_bits, weight_bits
from hw.numerics import wrap
from sim.tb.common import config, rng, start


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def random_macs_and_bank_writes(dut):
    cfg = config()
    r = rng(dut)
    await start(dut)
    wb, pb = weight_bits(cfg), psum_bits(cfg)
    banks = [0, 0]
    expect = None  # (psum_out, a_out, bank_out) after the last edge
    product = 0  # the product register (reset to 0)
    for cycle in range(2000):
        await FallingEdge(dut.clk)
        if expect is not None:
            got = (dut.psum_out.value.to_signed(), dut.a_out.value.to_signed(), int(dut.bank_out.value))
            assert got == expect, f"cycle {cycle}: {got} != {expect}"
        a = int(r.integers(-(1 << (ACT_BITS - 1)), 1 << (ACT_BITS - 1)))
        bank = int(r.integers(0, 2))
        psum = int(r.choice([r.integers(-(1 << (pb - 1)), 1 << (pb - 1)), 0]))
        we = int(r.random() < 0.3)
        wbank = int(r.integers(0, 2))
        wdata = int(r.integers(-(1 << (wb - 1)), 1 << (wb - 1)))
        dut.a_in.value, dut.bank_in.value, dut.psum_in.value = a, bank, psum
        dut.w_we.value, dut.w_bank.value, dut.w_data.value = we, wbank, wdata
        # psum_in meets the product registered at the edge before; this edge registers the product
        # of a_in with the weight held before its own write
        expect = (int(wrap(psum + product, pb)), a, bank)
        product = a * banks[bank]
        if we:
            banks[wbank] = wdata
        await RisingEdge(dut.clk)
