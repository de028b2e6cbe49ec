"""In-order retirement of the compute queue.

MATMUL and POSTPROC run in different engines and may finish out of order; the compute queue's
tokens must leave in program order. Each dispatched MATMUL or POSTPROC appends an entry (which
engine, its push flags) to a reorder FIFO; the engines' completions are counted per engine, and
the head retires, delivering its promised tokens, once its engine has completed one.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.control.signatures import ActivitySignature
from hw.control.tokens import TokenDeliver

__all__ = ["ROB_DEPTH", "Retire", "RobEntry"]

ROB_DEPTH = 8  # compute instructions dispatched and not yet retired

RobEntry = data.StructLayout({"postproc": 1, "push_prev": 1, "push_next": 1})


class Retire(wiring.Component):
    """*Members*: ``entry``, a dispatched MATMUL or POSTPROC (ready: the FIFO has room);
    ``mm_retire`` / ``pp_done``, an engine completed one; ``prev_deliver`` / ``next_deliver``,
    the retiring instruction's tokens; ``drained`` (nothing dispatched is unretired or completed
    and uncounted: a compute SYNC may go); ``activity`` (idle: the FIFO is empty; moved: one
    retired)."""

    def __init__(self):
        super().__init__({
            "entry": In(stream.Signature(RobEntry)), "mm_retire": In(1), "pp_done": In(1),
            "prev_deliver": Out(TokenDeliver()), "next_deliver": Out(TokenDeliver()), "drained": Out(1),
            "activity": Out(ActivitySignature()),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.rob = rob = fifo.SyncFIFOBuffered(width=RobEntry.size, depth=ROB_DEPTH)
        m.d.comb += [rob.w_en.eq(self.entry.valid), rob.w_data.eq(self.entry.payload),
                     self.entry.ready.eq(rob.w_rdy)]
        head = data.View(RobEntry, rob.r_data)
        mm_done = Signal(range(ROB_DEPTH + 2))
        pp_done = Signal(range(ROB_DEPTH + 2))
        retire_mm = rob.r_rdy & ~head.postproc & (mm_done != 0)
        retire_pp = rob.r_rdy & head.postproc & (pp_done != 0)
        m.d.comb += rob.r_en.eq(retire_mm | retire_pp)
        with m.If(rob.r_en):
            m.d.comb += [self.prev_deliver.push.eq(head.push_prev), self.next_deliver.push.eq(head.push_next)]
        m.d.sync += [mm_done.eq(mm_done + self.mm_retire - retire_mm), pp_done.eq(pp_done + self.pp_done - retire_pp)]
        m.d.comb += [self.drained.eq(~rob.r_rdy & (mm_done == 0) & (pp_done == 0)),
                     self.activity.idle.eq(~rob.r_rdy), self.activity.moved.eq(rob.r_en)]
        return m
