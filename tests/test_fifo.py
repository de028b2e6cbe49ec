"""PairedFIFO (hw/fifo.py) against a Python queue under random writes and reads: every entry
comes out once, in order; level counts them all; an entry written into an empty FIFO can be read
two cycles later, as from Amaranth's SyncFIFOBuffered; one entry per cycle when both sides keep
up."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.fifo import PairedFIFO


def run(dut: PairedFIFO, steps, cycles: int) -> list:
    """Drive (w_en, r_en) from ``steps(cycle)``; check each cycle against a Python queue; return
    [(cycle, value read)]."""
    model: deque = deque()
    reads = []

    async def bench(ctx):
        nxt = 1
        for cycle in range(cycles):
            w_en, r_en = steps(cycle)
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_data, nxt)
            ctx.set(dut.r_en, r_en)
            level, w_rdy, r_rdy = ctx.get(dut.level), ctx.get(dut.w_rdy), ctx.get(dut.r_rdy)
            assert level == len(model) <= dut.depth, (cycle, level, len(model))
            assert w_rdy == (level < dut.depth), (cycle, level, w_rdy)
            if r_rdy:
                assert ctx.get(dut.r_data) == model[0], (cycle, ctx.get(dut.r_data), model[0])
            if r_en and r_rdy:
                reads.append((cycle, model.popleft()))
            if w_en and w_rdy:
                model.append(nxt)
                nxt += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return reads


@pytest.mark.parametrize("depth", [3, 4, 9, 16])
@pytest.mark.parametrize("p_write,p_read", [(0.7, 0.5), (0.3, 0.9), (1.0, 0.2), (0.5, 0.5)])
def test_every_entry_once_in_order(depth, p_write, p_read):
    rng = np.random.default_rng(depth * 100 + int(10 * p_write))
    pattern = rng.random((800, 2)) < (p_write, p_read)
    reads = run(PairedFIFO(width=16, depth=depth), lambda c: tuple(map(int, pattern[c])), 800)
    values = [v for _, v in reads]
    assert len(values) > 100 and values == list(range(1, len(values) + 1))


def test_latency_two_cycles_and_one_entry_per_cycle():
    # one write into the empty FIFO at cycle 0, read as soon as it is there: cycle 2
    first = run(PairedFIFO(width=8, depth=4), lambda c: (int(c == 0), 1), 6)
    assert first == [(2, 1)]
    # writes and reads every cycle: after the first two cycles, one entry out per cycle
    steady = run(PairedFIFO(width=8, depth=4), lambda c: (1, 1), 40)
    assert [c for c, _ in steady] == list(range(2, 40)) and [v for _, v in steady] == list(range(1, 39))
    # full, then drained at one per cycle
    fill = run(PairedFIFO(width=8, depth=5), lambda c: (int(c < 10), int(c >= 10)), 20)
    assert [c for c, _ in fill] == list(range(10, 15)) and [v for _, v in fill] == [1, 2, 3, 4, 5]


def test_too_shallow_is_refused():
    with pytest.raises(ValueError, match="depth = 2: at least 3"):
        PairedFIFO(width=8, depth=2)
