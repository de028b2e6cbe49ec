"""Instruction fetch: the program read through a DMA reader of its own into a FIFO.

Fetch asks for up to ``FETCH_BURST`` instructions at a time, only as many as the FIFO has room
for, so fetched data never blocks the shared read channel. Near the end of DRAM it asks one
instruction at a time; the first one outside DRAM is not asked for, and decode raises
DRAM_RANGE when it reaches it. Fetched words pass through the transfer-extents pipeline
(``hw/extents.py``) on their way into the FIFO.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.axi import axi4_read
from hw.config import AccelConfig
from hw.control.signatures import PC_BITS, ActivitySignature, RunState
from hw.dma import DmaRead
from hw.extents import Extents, TransferExtents
from hw.isa import INSN_BYTES

__all__ = ["FETCH_BURST", "FETCH_DEPTH", "Fetch", "FetchStatus"]

FETCH_DEPTH = 16  # instructions the fetch FIFO holds
FETCH_BURST = 8  # instructions asked for at a time


class FetchStatus(wiring.Signature):
    """What decode needs to know of fetch: instructions ``asked`` for so far, ``settled`` (every
    word asked for is in the FIFO), ``fault`` (the instruction at ``asked`` lies past the end of
    DRAM) and ``bus_error`` (a fetch read came back with SLVERR or DECERR)."""

    def __init__(self):
        super().__init__({"asked": Out(PC_BITS), "settled": Out(1), "fault": Out(1), "bus_error": Out(1)})


class Fetch(wiring.Component):
    """*Members*: ``run``; ``axi``, the reader's AXI4 read port; ``words``, the FIFO's head
    (each word with its transfer extents), emptied without being read while the run halts;
    ``status`` for decode; ``activity`` (idle: nothing asked for is on its way, and while halting
    the FIFO is empty; it never counts as progress for the watchdog itself: its bus handshakes do)."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "run": In(RunState()), "axi": Out(axi4_read(cfg)), "words": Out(stream.Signature(Extents)),
            "status": Out(FetchStatus()), "activity": Out(ActivitySignature()),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        run = self.run
        m.submodules.fetcher = fetcher = DmaRead(cfg, INSN_BYTES)
        wiring.connect(m, wiring.flipped(self.axi), fetcher.axi)
        # fetched words pass through the transfer-extents pipeline (hw/extents.py) into the FIFO;
        # `owed` counts the words asked for and not yet in the FIFO, those in the pipeline included
        m.submodules.extents = extents = TransferExtents(cfg)
        m.submodules.fetched = fetched = fifo.SyncFIFOBuffered(width=Extents.size, depth=FETCH_DEPTH)
        asked = Signal(PC_BITS)  # instructions requested so far
        owed = Signal(range(FETCH_DEPTH + 1))  # requested, not yet arrived
        fetch_fault = Signal()  # the instruction at `asked` lies past the end of DRAM
        want = Signal(range(FETCH_BURST + 1))
        # kept as registers, updated by each request, so that sizing the next request takes
        # one short compare: instructions left, the next address and the DRAM bytes beyond it
        left = Signal(PC_BITS)  # prog_len - asked
        fetch_addr = Signal(PC_BITS + 5)  # prog_base + asked * INSN_BYTES
        dram_left = Signal(signed(PC_BITS + 7))  # dram_bytes - fetch_addr
        room = Signal(range(FETCH_DEPTH + 2))
        m.d.comb += room.eq(FETCH_DEPTH - fetched.level - owed)
        m.d.comb += want.eq(Mux(left < FETCH_BURST, left, FETCH_BURST))
        # near the end of DRAM, ask one instruction at a time; the first one outside is a fault
        past_dram = dram_left < want * INSN_BYTES
        outside = dram_left < INSN_BYTES
        # the request's size is computed in the cycle after `left` and `dram_left` change and
        # kept in registers (`sized`): a request goes out at most every other cycle, 8
        # instructions at a time, and its handshake is a compare away from a register
        sized = Signal()
        n_ask = Signal(range(FETCH_BURST + 1))
        any_left = Signal()
        outside_r = Signal()
        asking = run.running & ~run.halting & ~fetch_fault & sized & any_left
        m.d.comb += [
            fetcher.cmd.payload.dram_addr.eq(fetch_addr),
            fetcher.cmd.payload.rows.eq(1),
            fetcher.cmd.payload.row_bytes.eq(n_ask * INSN_BYTES),
            fetcher.cmd.payload.dram_stride.eq(0),
            fetcher.cmd.valid.eq(asking & ~outside_r & (room >= n_ask)),
        ]
        got = Signal()  # a word enters the FIFO
        m.d.comb += [extents.valid.eq(fetcher.rows.valid), extents.word.eq(fetcher.rows.payload.data),
                     fetcher.rows.ready.eq(1), got.eq(extents.out_valid),
                     fetched.w_data.eq(extents.out), fetched.w_en.eq(got & ~run.halting)]
        asked_now = Signal()
        m.d.comb += asked_now.eq(fetcher.cmd.valid & fetcher.cmd.ready)
        with m.If(run.clear):
            m.d.sync += [asked.eq(0), owed.eq(0), fetch_fault.eq(0), left.eq(run.prog_len),
                         fetch_addr.eq(run.prog_base), dram_left.eq(cfg.dram_bytes - run.prog_base),
                         sized.eq(0)]
        with m.Else():
            m.d.sync += owed.eq(owed + Mux(asked_now, n_ask, 0) - got)
            with m.If(asked_now):
                m.d.sync += [asked.eq(asked + n_ask), left.eq(left - n_ask),
                             fetch_addr.eq(fetch_addr + n_ask * INSN_BYTES),
                             dram_left.eq(dram_left - n_ask * INSN_BYTES), sized.eq(0)]
            with m.Else():
                m.d.sync += [sized.eq(1), n_ask.eq(Mux(past_dram, 1, want)), any_left.eq(want != 0),
                             outside_r.eq(outside)]
            with m.If(asking & outside_r):
                m.d.sync += fetch_fault.eq(1)

        # the FIFO's head; after an error, what was fetched is dropped before the run ends
        m.d.comb += [self.words.valid.eq(fetched.r_rdy), self.words.payload.eq(fetched.r_data),
                     fetched.r_en.eq(self.words.ready | (run.halting & fetched.r_rdy))]
        m.d.comb += [self.status.asked.eq(asked), self.status.settled.eq(owed == 0),
                     self.status.fault.eq(fetch_fault), self.status.bus_error.eq(fetcher.bus_error),
                     self.activity.idle.eq((owed == 0) & (~run.halting | ~fetched.r_rdy))]
        return m
