"""The transfer-extents pipeline (hw/extents.py) against Python integers: every word comes out
LATENCY cycles after it went in, with its DRAM span and scratchpad rows."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw import scratchpad
from hw.extents import LATENCY, TransferExtents
from hw.isa import LOADABLE, STORABLE, Opcode, encode


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_span_and_scratchpad_rows_of_every_word(request, preset):
    cfg = request.getfixturevalue(preset)
    rng = np.random.default_rng(7)
    buffers = list(dict.fromkeys((*LOADABLE, *STORABLE)))
    words, want = [], []
    for i in range(60):
        buf = buffers[i % len(buffers)]
        rows = int(rng.choice([1, 2, 0xFFFF, *rng.integers(1, 1 << 16, 3)]))
        row_bytes = int(rng.choice([1, 0xFFFF, *rng.integers(1, 1 << 16, 3)]))
        stride = int(rng.choice([0, 0xFFFFFFFF, *rng.integers(0, 1 << 32, 3, dtype=np.int64)]))
        op = Opcode.LOAD if i % 2 else Opcode.STORE
        words.append(encode(op, sram_addr=int(rng.integers(1 << 16)), dram_addr=int(rng.integers(1 << 32)),
                            rows=rows, row_bytes=row_bytes, dram_stride=stride, buffer=buf))
        rb = scratchpad.row_bytes(cfg, buf)
        want.append(((rows - 1) * stride, rows * -(-row_bytes // rb)))
    dut = TransferExtents(cfg)
    got: dict[int, tuple[int, int, int]] = {}

    async def bench(ctx):
        for cycle in range(len(words) + LATENCY + 2):
            # a gap every fifth cycle: words need not come back to back
            feed = cycle < len(words) and cycle % 5 != 4
            ctx.set(dut.valid, feed)
            ctx.set(dut.word, words[cycle] if cycle < len(words) else 0)
            if ctx.get(dut.out_valid):
                out = ctx.get(dut.out)
                got[cycle] = (out.word, out.span, out.sram_rows)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    sent = [c for c in range(len(words)) if c % 5 != 4]
    assert sorted(got) == [c + LATENCY for c in sent]
    for c in sent:
        word, span, sram_rows = got[c + LATENCY]
        assert word == words[c] and (span, sram_rows) == want[c], c
