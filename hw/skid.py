"""A register slice for a stream: a two-entry skid buffer.

``o.valid`` and ``o.payload`` leave from registers and ``i.ready`` is a register too, so
neither the source's valid/payload logic nor the sink's ready logic passes through it: a long
route between two blocks gets a clock cycle of its own. A beat per cycle while the sink keeps
up; the second entry catches the beat that was already on its way when the sink stopped.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform) -> Module:
        m = Module()
        spare = Signal(self.shape)
        spare_valid = Signal()
        m.d.comb += self.i.ready.eq(~spare_valid)
        with m.If(~self.o.valid | self.o.ready):
            # the output register is free: refill it from the spare entry first
            m.d.sync += [self.o.valid.eq(spare_valid | self.i.valid),
                         self.o.payload.eq(Mux(spare_valid, spare, self.i.payload)), spare_valid.eq(0)]
        with m.Elif(self.i.valid & ~spare_valid):
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m
