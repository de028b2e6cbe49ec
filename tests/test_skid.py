"""The skid buffer (hw/skid.py) under random valid and ready: every beat comes out once, in
order; a beat per cycle while source and sink keep up."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.skid import SkidBuffer


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.7, 0.5), (1.0, 0.3), (0.3, 0.9)])
def test_every_beat_once_in_order(p_valid, p_ready):
    rng = np.random.default_rng(11)
    dut = SkidBuffer(16)
    sent, got = [], []
    cycles = 600

    async def bench(ctx):
        nxt = 0
        for _ in range(cycles):
            valid = nxt < 400 and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, (nxt * 7919) & 0xFFFF)
            ctx.set(dut.o.ready, ready)
            i_ready = ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid) and ready:
                got.append(ctx.get(dut.o.payload))
            if valid and i_ready:
                sent.append((nxt * 7919) & 0xFFFF)
                nxt += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(sent) > 100 and got == sent[: len(got)] and len(sent) - len(got) <= 2
    if p_valid == p_ready == 1.0:
        assert len(got) == 400  # one beat per cycle
