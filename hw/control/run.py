"""The run: started by the CSRs, halted by the first error, ended when everything is idle.

A run starts with ``start`` while none is running (``clear``: every unit resets). The arbiter's
verdict halts it: nothing new is dispatched, the transfers and tiles already running finish (no
AXI burst is cut short), the queues are emptied, and BUSY falls with the code and the
instruction index in ERROR / ERROR_PC. A run that is not halting ends when END was decoded and
everything has drained, or with PROGRAM_OVERRUN when the program ran out without END.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.control.signatures import PC_BITS, ActivitySignature, ErrorSlot, RunSignature, RunState
from hw.isa import ErrorCode

__all__ = ["RunControl"]


class RunControl(wiring.Component):
    """*Parameters*: ``n_units``, the units that must be idle before a run ends.

    *Members*: ``csr``, run control from the CSRs; ``state``, to every unit; ``verdict``, the
    error arbiter's; ``overrun``, decode's PROGRAM_OVERRUN (taken when the run ends, not through
    the arbiter); ``units``, each unit's activity (no run ends while a slot is raised either)."""

    def __init__(self, n_units: int):
        super().__init__({
            "csr": In(RunSignature()), "state": Out(RunState()), "verdict": In(ErrorSlot()),
            "overrun": In(ErrorSlot()), "units": In(ActivitySignature()).array(n_units),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        csr, verdict = self.csr, self.verdict
        running = Signal()
        halting = Signal()  # an error happened: dispatch nothing new, wait for running work
        clear = Signal()
        err = Signal(ErrorCode)
        err_pc = Signal(PC_BITS)
        m.d.comb += [clear.eq(csr.start & ~running), csr.busy.eq(running), csr.error.eq(err), csr.error_pc.eq(err_pc),
                     self.state.clear.eq(clear), self.state.running.eq(running), self.state.halting.eq(halting),
                     self.state.prog_base.eq(csr.prog_base), self.state.prog_len.eq(csr.prog_len)]
        with m.If(clear):
            m.d.sync += [running.eq(1), halting.eq(0), err.eq(ErrorCode.OK), err_pc.eq(0)]
        with m.Elif(verdict.raised & ~halting):
            m.d.sync += [halting.eq(1), err.eq(verdict.code), err_pc.eq(verdict.pc)]
        idle = Cat(*(u.idle for u in self.units)).all() & ~verdict.raised
        with m.If(running & idle & ~clear):
            m.d.sync += running.eq(0)
            with m.If(~halting & self.overrun.raised):
                m.d.sync += [err.eq(self.overrun.code), err_pc.eq(self.overrun.pc)]
        return m
