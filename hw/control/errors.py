"""The error arbiter: the first error of a run, from every place that can raise one.

Each place registers its error (with its code and instruction index) in a slot of its own, and
a cycle later the first slot raised becomes the run's error: the checks and the choice among
them are two short paths instead of one long one across the controller. A tie goes to the slot
listed last (``hw.control.controller`` lists them in program order: fetch and decode, then the
queues, then the watchdog). The choice is one AND-OR multiplexer, each slot masked by those
after it: a few logic levels where a chain of priority multiplexers would be one per slot.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.control.signatures import PC_BITS, ErrorSlot, RunState
from hw.isa import ErrorCode

__all__ = ["ErrorArbiter"]


class ErrorArbiter(wiring.Component):
    """*Parameters*: ``n``, the slots.

    *Members*: ``run`` (no slot is taken while the run halts or starts); ``slots``; ``verdict``,
    raised while any registered slot is, with the winner's code and pc."""

    def __init__(self, n: int):
        self.n = n
        super().__init__({"run": In(RunState()), "slots": In(ErrorSlot()).array(n), "verdict": Out(ErrorSlot())})

    def elaborate(self, platform) -> Module:
        m = Module()
        run = self.run
        raised, later, picked_err, picked_pc = [], Const(0), [], []
        for k, slot in reversed(list(enumerate(self.slots))):
            r, c, p = Signal(name=f"failed{k}"), Signal(ErrorCode, name=f"failed{k}_code"), \
                Signal(PC_BITS, name=f"failed{k}_pc")
            m.d.sync += [r.eq(slot.raised & ~run.halting & ~run.clear), c.eq(slot.code), p.eq(slot.pc)]
            wins = r & ~later
            picked_err.append(Mux(wins, c.as_value(), 0))
            picked_pc.append(Mux(wins, p, 0))
            raised.append(r)
            later = later | r
        m.d.comb += [self.verdict.raised.eq(Cat(*raised).any()), self.verdict.code.eq(reduce(operator.or_, picked_err)),
                     self.verdict.pc.eq(reduce(operator.or_, picked_pc))]
        return m
