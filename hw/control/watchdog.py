"""The watchdog: a run in which nothing moves for ``WATCHDOG_CYCLES`` cycles ends in DEADLOCK.

Nothing moves: no instruction decoded, dispatched or retired, no bus handshake, no array or
post-processing row. The error names the lowest instruction index still waiting (in decode or
at a queue head), as the golden model reports it.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.control.signatures import PC_BITS, ActivitySignature, ErrorSlot, RunState, WaitingSignature
from hw.isa import ErrorCode

__all__ = ["WATCHDOG_CYCLES", "Watchdog"]

WATCHDOG_CYCLES = 4096  # cycles without any progress before a run ends in DEADLOCK


class Watchdog(wiring.Component):
    """*Parameters*: ``n_units``, the units whose ``moved`` counts as progress; ``n_waiting``, those
    that report a waiting instruction (the first, decode, always has one: the next to decode).

    *Members*: ``run``; ``activity``, progress outside the controller (bus handshakes, array and
    post-processing rows); ``units``; ``waiting``; ``error``, DEADLOCK."""

    def __init__(self, n_units: int, n_waiting: int):
        super().__init__({
            "run": In(RunState()), "activity": In(1), "units": In(ActivitySignature()).array(n_units),
            "waiting": In(WaitingSignature()).array(n_waiting), "error": Out(ErrorSlot()),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        idle_cycles = Signal(range(WATCHDOG_CYCLES + 1))
        moved = Cat(*(u.moved for u in self.units)).any()
        with m.If(~self.run.running | self.activity | moved):
            m.d.sync += idle_cycles.eq(0)
        with m.Else():
            m.d.sync += idle_cycles.eq(idle_cycles + 1)
        # the lowest pc waiting, one compare per cycle: a register per step, as the watchdog only
        # reads it after WATCHDOG_CYCLES cycles in which none of these has changed
        first, *rest = self.waiting
        lowest = Signal(PC_BITS, name="waiting_pc0")
        m.d.sync += lowest.eq(first.pc)
        for k, w in enumerate(rest, 1):
            step = Signal(PC_BITS, name=f"waiting_pc{k}")
            m.d.sync += step.eq(Mux(w.valid & (w.pc < lowest), w.pc, lowest))
            lowest = step
        m.d.comb += [self.error.raised.eq(self.run.running & (idle_cycles == WATCHDOG_CYCLES)),
                     self.error.code.eq(ErrorCode.DEADLOCK), self.error.pc.eq(lowest)]
        return m
