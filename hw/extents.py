"""The extents of a transfer, computed between instruction fetch and the instruction FIFO.

Decode checks that a LOAD or STORE stays inside DRAM and inside its scratchpad buffer. Both
checks need a product of two instruction fields: the DRAM span ``(rows - 1) * dram_stride``
(16 x 32 bits) and the scratchpad row count ``rows * ceil(row_bytes / buffer row bytes)``
(16 x 17 bits). Computed in decode, each was a multiplier between two registers of the
control logic, with the routes to and from a DSP block on the path. Fetched words flow one
way and never wait (fetch asks only for what the FIFO has room for), so the products are
computed here, in a pipeline of ``LATENCY`` register stages beside each word: the operands
(with ``rows - 1`` and the scratchpad rows per DRAM row) get registers of their own before the
multipliers, so they can sit next to the DSP blocks, the 16 x 32-bit product is two 16 x 16-bit
halves added in the stage after, and every word, of any opcode, comes out ``LATENCY`` cycles
after it went in, with its two extents.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.config import AccelConfig
from hw.isa import INSN_BITS, LAYOUTS, LOADABLE, STORABLE, Opcode

LATENCY = 4  # cycles from a word in to the word and its extents out
SPAN_BITS = 48  # (rows - 1) * dram_stride: 16 x 32 bits
SRAM_ROWS_BITS = 33  # rows * ceil(row_bytes / row bytes): 16 x 17 bits

# a fetched word with its transfer extents (meaningful for LOAD and STORE only)
Extents = data.StructLayout({"word": INSN_BITS, "span": SPAN_BITS, "sram_rows": SRAM_ROWS_BITS})


class TransferExtents(wiring.Component):
    """``valid``/``word`` in, ``out_valid``/``out`` (a word with its ``span`` and ``sram_rows``)
    ``LATENCY`` cycles later. No back-pressure: one word per cycle in, one out."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({"valid": In(1), "word": In(INSN_BITS), "out_valid": Out(1), "out": Out(Extents)})

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        valid = [Signal(name=f"valid{i}") for i in range(LATENCY)]
        words = [Signal(INSN_BITS, name=f"word{i}") for i in range(LATENCY)]
        m.d.sync += [valid[0].eq(self.valid), words[0].eq(self.word)]
        for i in range(1, LATENCY):
            m.d.sync += [valid[i].eq(valid[i - 1]), words[i].eq(words[i - 1])]

        # stage 1: the operands, the scratchpad rows per DRAM row from the buffer's row width
        mem = data.View(LAYOUTS[Opcode.LOAD], words[0])  # LOAD and STORE share one layout
        rows = Signal(16)
        rows_m1 = Signal(16)
        per_row = Signal(SRAM_ROWS_BITS - 16)
        stride = Signal(32)
        m.d.sync += [rows.eq(mem.rows), rows_m1.eq(mem.rows - 1), stride.eq(mem.dram_stride)]
        for buf in dict.fromkeys((*LOADABLE, *STORABLE)):
            rb = scratchpad.row_bytes(cfg, buf)
            with m.If(mem.buffer == buf):
                m.d.sync += per_row.eq((mem.row_bytes + (rb - 1)) >> (rb.bit_length() - 1))

        # stage 2: the products, the span in two halves
        span_lo = Signal(32)
        span_hi = Signal(32)
        sram_rows = Signal(SRAM_ROWS_BITS)
        m.d.sync += [span_lo.eq(rows_m1 * stride[:16]), span_hi.eq(rows_m1 * stride[16:]),
                     sram_rows.eq(rows * per_row)]

        # stage 3: the halves added
        span = Signal(SPAN_BITS)
        sram_rows_out = Signal(SRAM_ROWS_BITS)
        m.d.sync += [span.eq(span_lo + (span_hi << 16)), sram_rows_out.eq(sram_rows)]
        m.d.comb += [self.out_valid.eq(valid[-1]), self.out.word.eq(words[-1]),
                     self.out.span.eq(span), self.out.sram_rows.eq(sram_rows_out)]
        return m
