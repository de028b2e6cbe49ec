"""DMA engines: AXI4-master movers of 2-D strided transfers between DRAM and scratchpad rows.

A command moves ``rows`` DRAM rows of ``row_bytes`` bytes, ``dram_stride`` bytes apart, each at
any byte alignment. DRAM row r maps to ceil(row_bytes / B) consecutive scratchpad rows of B bytes:
byte i of the DRAM row is byte i mod B of scratchpad row i div B; a read zero-fills the last
scratchpad row past the DRAM row's end, a write ignores it (NumPy twin: ``sim.golden``,
``_load`` and ``_store``).

Both movers split every DRAM row into INCR bursts of full-width beats over the aligned beats
that cover it (at most 256 beats, never across 4 KiB), issue addresses ahead of the data with up
to MAX_OUTSTANDING bursts in flight, and realign bytes through a two-beat shifter whose shift is
the row's byte offset, constant per DRAM row. Data moves at one beat per cycle when the memory
keeps up; with B < W a beat holds several scratchpad rows, which go one per cycle.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.axi import (
    BOUNDARY_BYTES,
    BURST_INCR,
    LEN_BITS,
    MAX_BURST_BEATS,
    RESP_OKAY,
    axi4_read,
    axi4_write,
    beat_bytes,
    size_code,
)
from hw.config import AccelConfig
from hw.isa import LAYOUTS, Opcode
from hw.skid import SkidBuffer

# Bursts in flight per mover. Rows of one beat need about one outstanding burst per cycle of
# memory latency to stream at one beat per cycle; 32 covers ~30 cycles.
MAX_OUTSTANDING = 32
AW_QUEUE = 4  # write bursts the splitter may run ahead of AW acceptance

DMA_FIELDS = ("dram_addr", "rows", "row_bytes", "dram_stride")
DmaCmd = data.StructLayout({n: LAYOUTS[Opcode.LOAD][n].shape for n in DMA_FIELDS})

COUNT_BITS = DmaCmd["row_bytes"].width + 1  # beats or words of one DRAM row


def dma_row(row_bytes: int) -> data.StructLayout:
    """A scratchpad row leaving a read mover; ``last`` marks the command's final row."""
    return data.StructLayout({"data": unsigned(8 * row_bytes), "last": unsigned(1)})


def row_desc(cfg: AccelConfig) -> data.StructLayout:
    """One DRAM row as the data side sees it: byte offset in its first beat, length, beats."""
    return data.StructLayout({
        "off": unsigned(size_code(cfg)),
        "n": DmaCmd["row_bytes"].shape,
        "nbeats": unsigned(COUNT_BITS),
        "last": unsigned(1),  # the command's final DRAM row
    })


def burst_layout(cfg: AccelConfig) -> data.StructLayout:
    return data.StructLayout({
        "addr": DmaCmd["dram_addr"].shape,
        "len": unsigned(LEN_BITS),  # beats - 1
        "first": unsigned(1),  # the burst starts DRAM row `row`
        "last": unsigned(1),  # the command's final burst
        "row": row_desc(cfg),
    })


def _check_row_bytes(row_bytes: int) -> None:
    if row_bytes < 1 or row_bytes & (row_bytes - 1):
        raise ValueError(f"scratchpad row of {row_bytes} bytes: must be a power of two")


def _log2(x: int) -> int:
    return x.bit_length() - 1


def _bytes_below(limit, nbytes: int):
    """Bit mask of the bytes i < limit of an nbytes-wide word."""
    return Cat(*((limit > i).replicate(8) for i in range(nbytes)))


def _realign(lo, hi, shift, nbytes: int):
    """nbytes bytes of the window {hi, lo} starting at byte `shift` (1..nbytes)."""
    return (Cat(lo, hi) >> Cat(C(0, 3), shift))[: 8 * nbytes]


def _minus_beat(value, nbytes: int):
    """value - nbytes, floored at zero."""
    return Mux(value > nbytes, value - nbytes, 0)


class BurstSplitter(wiring.Component):
    """Walks a command's DRAM rows and splits each into INCR bursts of aligned full beats.

    One burst per cycle; a burst's ``first`` flag carries the descriptor of the DRAM row it opens.
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(DmaCmd)),
            "bursts": Out(stream.Signature(burst_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        wb, W = size_code(self.cfg), beat_bytes(self.cfg)
        cmd, out = self.cmd.payload, self.bursts.payload

        active = Signal()
        row_addr = Signal.like(cmd.dram_addr)
        rows_left = Signal.like(cmd.rows)
        n = Signal.like(cmd.row_bytes)
        stride = Signal.like(cmd.dram_stride)
        in_row = Signal()  # a row's later bursts: cur and beats_left hold its progress
        cur = Signal.like(cmd.dram_addr)
        beats_left = Signal(COUNT_BITS)

        row_beats = Signal(COUNT_BITS)  # beats the current row touches, set when the row starts
        # beats from the row's start (row_addr) and from cur to the next 4 KiB boundary, and the
        # burst length they allow, min(beats to the boundary, MAX_BURST_BEATS), kept in registers
        # so that a burst's length is one comparison away from a register
        span = range(BOUNDARY_BYTES // W + 1)
        tb_row, tb_in, tb_eff = Signal(span), Signal(span), Signal(span)
        cap_row, cap_in = Signal(range(MAX_BURST_BEATS + 1)), Signal(range(MAX_BURST_BEATS + 1))
        cur_eff = Signal.like(cur)
        left_eff = Signal(COUNT_BITS)
        cap = Signal(range(MAX_BURST_BEATS + 1))
        blen = Signal(range(MAX_BURST_BEATS + 1))
        m.d.comb += [
            cur_eff.eq(Mux(in_row, cur, Cat(C(0, wb), row_addr[wb:]))),
            left_eff.eq(Mux(in_row, beats_left, row_beats)),
            tb_eff.eq(Mux(in_row, tb_in, tb_row)),
            cap.eq(Mux(in_row, cap_in, cap_row)),
            blen.eq(Mux(left_eff < cap, left_eff, cap)),
        ]
        row_done = left_eff <= cap
        last_row = rows_left == 1

        m.d.comb += [
            self.cmd.ready.eq(~active),
            self.bursts.valid.eq(active),
            out.addr.eq(cur_eff),
            out.len.eq(blen - 1),
            out.first.eq(~in_row),
            out.last.eq(row_done & last_row),
            out.row.off.eq(row_addr[:wb]),
            out.row.n.eq(n),
            out.row.nbeats.eq(row_beats),
            out.row.last.eq(last_row),
            self.busy.eq(active),
        ]

        def beats(offset, nbytes):
            """Beats a row of nbytes touches from byte `offset` of its first beat."""
            return ((offset + nbytes - 1) >> wb) + 1

        def to_boundary(addr_low):
            """Beats from the beat holding byte address `addr_low` (mod 4 KiB) to the boundary."""
            return (C(BOUNDARY_BYTES) - Cat(C(0, wb), addr_low[wb:_log2(BOUNDARY_BYTES)]))[wb:]

        def boundary_cap(addr_low):
            """min(to_boundary(addr_low), MAX_BURST_BEATS), the comparison made on the address
            beside the subtraction rather than after it."""
            page = BOUNDARY_BYTES // W
            if page <= MAX_BURST_BEATS:
                return to_boundary(addr_low)
            index = addr_low[wb:_log2(BOUNDARY_BYTES)]
            return Mux(index > page - MAX_BURST_BEATS, to_boundary(addr_low), MAX_BURST_BEATS)

        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [active.eq(1), in_row.eq(0), row_addr.eq(cmd.dram_addr), rows_left.eq(cmd.rows),
                         n.eq(cmd.row_bytes), stride.eq(cmd.dram_stride),
                         row_beats.eq(beats(cmd.dram_addr[:wb], cmd.row_bytes)),
                         tb_row.eq(to_boundary(cmd.dram_addr)), cap_row.eq(boundary_cap(cmd.dram_addr))]
        with m.If(self.bursts.valid & self.bursts.ready):
            with m.If(row_done):
                next_row = (row_addr[:_log2(BOUNDARY_BYTES)] + stride[:_log2(BOUNDARY_BYTES)])
                m.d.sync += [in_row.eq(0), row_addr.eq(row_addr + stride), rows_left.eq(rows_left - 1),
                             row_beats.eq(beats((row_addr[:wb] + stride[:wb])[:wb], n)),
                             tb_row.eq(to_boundary(next_row)), cap_row.eq(boundary_cap(next_row))]
                with m.If(last_row):
                    m.d.sync += active.eq(0)
            with m.Else():
                # a burst that does not end its row is `cap` beats long: it stops at the boundary
                # (the next one starts a whole 4 KiB away from the next) or after MAX_BURST_BEATS
                m.d.sync += [in_row.eq(1), cur.eq(cur_eff + (cap << wb)), beats_left.eq(left_eff - cap),
                             tb_in.eq(Mux(tb_eff <= MAX_BURST_BEATS, BOUNDARY_BYTES // W,
                                          tb_eff - MAX_BURST_BEATS)),
                             cap_in.eq(Mux(tb_eff <= MAX_BURST_BEATS, min(BOUNDARY_BYTES // W, MAX_BURST_BEATS),
                                           Mux(tb_eff < 2 * MAX_BURST_BEATS, tb_eff - MAX_BURST_BEATS,
                                               MAX_BURST_BEATS)))]
        return m


class DmaRead(wiring.Component):
    """DRAM -> scratchpad rows of ``row_bytes`` (B) bytes, in order, ``last`` on the command's
    final row. B >= W: one row per B/W beats; B < W: one row per cycle (W/B cycles a beat).
    R stalls (rready low) while ``rows`` is not taken."""

    def __init__(self, cfg: AccelConfig, row_bytes: int):
        _check_row_bytes(row_bytes)
        self.cfg, self.row_bytes = cfg, row_bytes
        super().__init__({
            "cmd": In(stream.Signature(DmaCmd)),
            "axi": Out(axi4_read(cfg)),
            "rows": Out(stream.Signature(dma_row(row_bytes))),
            "busy": Out(1),
            "bus_error": Out(1),  # an R beat came back with SLVERR or DECERR
        })

    def _desc_layout(self) -> data.StructLayout:
        return data.StructLayout({"row": row_desc(self.cfg), "nwords": unsigned(COUNT_BITS)})

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, B = self.cfg, self.row_bytes
        W, wb = beat_bytes(cfg), size_code(cfg)
        axi = self.axi
        desc_layout = self._desc_layout()

        m.submodules.bursts = bursts = BurstSplitter(cfg)
        # buffered: the R side loads the next row's counters from a register, not a RAM read
        m.submodules.descs = descs = SyncFIFOBuffered(width=desc_layout.size, depth=MAX_OUTSTANDING)
        wiring.connect(m, wiring.flipped(self.cmd), bursts.cmd)

        # ---- AR: a register slice fed by the splitter through a skid buffer (the splitter's
        # row arithmetic does not wait on the bus's arready); a descriptor per DRAM row for the R side
        m.submodules.burst_q = burst_q = SkidBuffer(burst_layout(cfg))
        wiring.connect(m, bursts.bursts, burst_q.i)
        burst = burst_q.o.payload
        outstanding = Signal(range(MAX_OUTSTANDING + 1))  # bursts whose last beat has not arrived
        m.d.comb += burst_q.o.ready.eq((~axi.arvalid | axi.arready) & (outstanding < MAX_OUTSTANDING)
                                       & (descs.w_rdy | ~burst.first))
        take = burst_q.o.valid & burst_q.o.ready
        m.d.comb += [axi.arid.eq(0), axi.arsize.eq(wb), axi.arburst.eq(BURST_INCR)]
        with m.If(axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        with m.If(take):
            m.d.sync += [axi.arvalid.eq(1), axi.araddr.eq(burst.addr), axi.arlen.eq(burst.len)]

        # words of W bytes per DRAM row: whole scratchpad rows (B >= W) or whole beats (B < W)
        wide = max(B, W)
        nwords = ((burst.row.n + wide - 1) >> _log2(wide)) << (_log2(wide) - wb)
        new_desc = data.View(desc_layout, descs.w_data)
        m.d.comb += [descs.w_en.eq(take & burst.first), new_desc.row.eq(burst.row), new_desc.nwords.eq(nwords)]

        last_beat = axi.rvalid & axi.rready & axi.rlast
        m.d.comb += self.bus_error.eq(axi.rvalid & axi.rready & (axi.rresp != RESP_OKAY))
        m.d.sync += outstanding.eq(outstanding + take - last_beat)

        # ---- R: realign each DRAM row into words of W bytes (row byte q*W .. q*W+W-1), zero past its end
        d = data.View(desc_layout, descs.r_data)
        active = Signal()
        prime = Signal()  # an unaligned row first takes one beat into `prev`
        shift = Signal(wb + 1)  # the realignment's byte shift (the row's offset, W if 0), a register:
        # it selects among 2W bytes for every bit of the word
        beats_left = Signal(COUNT_BITS)
        words_left = Signal(COUNT_BITS)
        rem = Signal(DmaCmd["row_bytes"].shape)  # row bytes from the current word on
        last_row = Signal()
        last_units = Signal(range(max(W // B, 1) + 1))
        prev = Signal(8 * W)

        w_valid, w_ready = Signal(), Signal()
        w_data = Signal(8 * W)
        w_last = Signal()  # the command's final word
        w_units = Signal(range(max(W // B, 1) + 1))  # scratchpad rows in the word (B < W)
        # beats_left != 0 and words_left == 1, kept as flags updated with the counters, so that the
        # handshakes and the next descriptor's load are not behind two 16-bit compares
        need = Signal()
        final_word = Signal()
        m.d.comb += [
            axi.rready.eq(active & (prime | (w_ready & need))),
            w_valid.eq(active & ~prime & (~need | axi.rvalid)),
            w_data.eq(_realign(prev, axi.rdata, shift, W) & _bytes_below(rem, W)),
            w_last.eq(last_row & final_word),
            w_units.eq(Mux(final_word, last_units, W // B)),
        ]
        step = w_valid & w_ready
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += [prev.eq(axi.rdata), beats_left.eq(beats_left - 1), need.eq(beats_left != 1), prime.eq(0)]
        with m.If(step):
            m.d.sync += [words_left.eq(words_left - 1), final_word.eq(words_left == 2), rem.eq(_minus_beat(rem, W))]
            with m.If(final_word):
                m.d.sync += active.eq(0)
        load = descs.r_rdy & (~active | (step & final_word))
        m.d.comb += descs.r_en.eq(load)
        with m.If(load):
            m.d.sync += [active.eq(1), prime.eq(d.row.off != 0), shift.eq(Mux(d.row.off == 0, W, d.row.off)),
                         beats_left.eq(d.row.nbeats),
                         need.eq(d.row.nbeats != 0), words_left.eq(d.nwords), final_word.eq(d.nwords == 1),
                         rem.eq(d.row.n), last_row.eq(d.row.last)]
            if B < W:
                m.d.sync += last_units.eq((d.row.n - 1)[_log2(B) : wb] + 1)

        # ---- words -> scratchpad rows
        rows = self.rows
        if B >= W:
            # the row is assembled in place: word i goes straight into its slot of the output
            # register, so a slot's enable drives only its own W bytes (no row-wide copy)
            k = B // W
            j = Signal(range(k)) if k > 1 else C(0, 1)  # the word's place in its row
            slots = [rows.payload.data[8 * W * i : 8 * W * (i + 1)] for i in range(k)]
            m.d.comb += w_ready.eq(~rows.valid | rows.ready)
            with m.If(rows.ready):
                m.d.sync += rows.valid.eq(0)
            with m.If(step):
                with m.If(j == k - 1):
                    m.d.sync += [rows.valid.eq(1), rows.payload.last.eq(w_last)]
                if k > 1:
                    m.d.sync += j.eq(Mux(j == k - 1, 0, j + 1))
                for i, slot in enumerate(slots):
                    with m.If(j == i):
                        m.d.sync += slot.eq(w_data)
        else:
            hold = Signal(8 * W)
            idx = Signal(range(W // B))
            units_left = Signal(range(W // B + 1))
            hold_last = Signal()
            m.d.comb += [
                w_ready.eq(~rows.valid | (rows.ready & (units_left == 1))),
                rows.payload.data.eq(hold.word_select(idx, 8 * B)),
                rows.payload.last.eq(hold_last & (units_left == 1)),
            ]
            with m.If(rows.valid & rows.ready):
                m.d.sync += [idx.eq(idx + 1), units_left.eq(units_left - 1)]
                with m.If(units_left == 1):
                    m.d.sync += rows.valid.eq(0)
            with m.If(step):
                m.d.sync += [hold.eq(w_data), rows.valid.eq(1), idx.eq(0), units_left.eq(w_units),
                             hold_last.eq(w_last)]

        m.d.comb += self.busy.eq(bursts.busy | burst_q.o.valid | (outstanding != 0) | descs.r_rdy | active
                                 | rows.valid)
        return m


class DmaWrite(wiring.Component):
    """Scratchpad rows of ``row_bytes`` (B) bytes -> DRAM, ceil(row_bytes_cmd / B) rows per DRAM
    row, exact WSTRB. AW runs up to MAX_OUTSTANDING bursts ahead of W and B. B >= W: one beat per
    cycle; B < W: one scratchpad row per cycle. ``done`` pulses with the command's last B response."""

    def __init__(self, cfg: AccelConfig, row_bytes: int):
        _check_row_bytes(row_bytes)
        self.cfg, self.row_bytes = cfg, row_bytes
        super().__init__({
            "cmd": In(stream.Signature(DmaCmd)),
            "rows": In(stream.Signature(unsigned(8 * row_bytes))),
            "axi": Out(axi4_write(cfg)),
            "done": Out(1),
            "busy": Out(1),
            "bus_error": Out(1),  # a B response came back with SLVERR or DECERR
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, B = self.cfg, self.row_bytes
        W, wb = beat_bytes(cfg), size_code(cfg)
        axi = self.axi
        rdesc = row_desc(cfg)

        m.submodules.bursts = bursts = BurstSplitter(cfg)
        m.submodules.descs = descs = SyncFIFO(width=rdesc.size, depth=MAX_OUTSTANDING)  # DRAM rows
        m.submodules.lens = lens = SyncFIFO(width=LEN_BITS, depth=MAX_OUTSTANDING)  # bursts, for wlast
        m.submodules.resps = resps = SyncFIFO(width=1, depth=MAX_OUTSTANDING)  # bursts awaiting B
        aw_layout = data.StructLayout({"addr": burst_layout(cfg)["addr"].shape, "len": unsigned(LEN_BITS)})
        m.submodules.aws = aws = SyncFIFOBuffered(width=aw_layout.size, depth=AW_QUEUE)
        wiring.connect(m, wiring.flipped(self.cmd), bursts.cmd)

        # ---- AW: a queue with a registered head, so that W can start a burst before its AW is
        # accepted (some slaves take AW only shortly ahead of W); every burst queues its length and its B
        burst = bursts.bursts.payload
        m.d.comb += bursts.bursts.ready.eq(aws.w_rdy & lens.w_rdy & resps.w_rdy & (descs.w_rdy | ~burst.first))
        take = bursts.bursts.valid & bursts.bursts.ready
        aw_in, aw_out = data.View(aw_layout, aws.w_data), data.View(aw_layout, aws.r_data)
        m.d.comb += [
            aws.w_en.eq(take), aw_in.addr.eq(burst.addr), aw_in.len.eq(burst.len),
            axi.awvalid.eq(aws.r_rdy), aws.r_en.eq(axi.awready), axi.awaddr.eq(aw_out.addr), axi.awlen.eq(aw_out.len),
            axi.awid.eq(0), axi.awsize.eq(wb), axi.awburst.eq(BURST_INCR),
            descs.w_en.eq(take & burst.first), descs.w_data.eq(burst.row),
            lens.w_en.eq(take), lens.w_data.eq(burst.len),
            resps.w_en.eq(take), resps.w_data.eq(burst.last),
        ]

        # ---- B: the command is done when its last burst's response arrives
        m.d.comb += self.bus_error.eq(axi.bvalid & axi.bready & (axi.bresp != RESP_OKAY))
        m.d.comb += [axi.bready.eq(resps.r_rdy), resps.r_en.eq(axi.bvalid),
                     self.done.eq(axi.bvalid & resps.r_rdy & resps.r_data[0])]

        # ---- W: beat j of a DRAM row carries row bytes j*W - off .. j*W - off + W - 1
        d = data.View(rdesc, descs.r_data)
        active = Signal()
        first = Signal()
        off = Signal(wb)
        shift = Signal(wb + 1)  # W - off, the realignment's byte shift, registered with off: it
        # selects among 2W bytes for every bit of the beat
        beats_left = Signal(COUNT_BITS)
        words_left = Signal(COUNT_BITS)  # words of W row bytes still to take
        span = Signal(COUNT_BITS)  # bytes from the current beat's start to the row's end
        last_units = Signal(range(max(W // B, 1) + 1))
        prev = Signal(8 * W)
        beat_idx = Signal(LEN_BITS)  # beat in the current burst

        word_valid, word_ready = Signal(), Signal()
        word = Signal(8 * W)
        # words_left != 0, words_left == 1 and beats_left == 1, kept as flags updated with the
        # counters, so that the handshakes and the next descriptor's load are not behind 16-bit compares
        need = Signal()
        final_word = Signal()
        last_beat = Signal()
        can = active & (~axi.wvalid | axi.wready) & lens.r_rdy
        go = can & (~need | word_valid)
        wlast = beat_idx == lens.r_data
        lane_on = Cat(*((span > i) & (~first | (off <= i)) if i < W - 1 else span > i for i in range(W)))
        m.d.comb += [word_ready.eq(can & need), lens.r_en.eq(go & wlast)]

        with m.If(axi.wready):
            m.d.sync += axi.wvalid.eq(0)
        with m.If(go):
            m.d.sync += [
                axi.wvalid.eq(1),
                axi.wdata.eq(_realign(prev, word, shift, W)),
                axi.wstrb.eq(lane_on),
                axi.wlast.eq(wlast),
                beat_idx.eq(Mux(wlast, 0, beat_idx + 1)),
                beats_left.eq(beats_left - 1),
                last_beat.eq(beats_left == 2),
                span.eq(_minus_beat(span, W)),
                first.eq(0),
            ]
            with m.If(need):
                m.d.sync += [prev.eq(word), words_left.eq(words_left - 1), need.eq(words_left != 1),
                             final_word.eq(words_left == 2)]
            with m.If(last_beat):
                m.d.sync += active.eq(0)
        load = descs.r_rdy & (~active | (go & last_beat))
        m.d.comb += descs.r_en.eq(load)
        with m.If(load):
            words = (d.n + W - 1) >> wb
            m.d.sync += [active.eq(1), first.eq(1), off.eq(d.off), shift.eq(W - d.off), beats_left.eq(d.nbeats),
                         last_beat.eq(d.nbeats == 1), words_left.eq(words), need.eq(words != 0),
                         final_word.eq(words == 1), span.eq(d.off + d.n)]
            if B < W:
                m.d.sync += last_units.eq((d.n - 1)[_log2(B) : wb] + 1)

        # ---- scratchpad rows -> words of W row bytes (the unused tail of a DRAM row's last
        # scratchpad row is dropped)
        rows = self.rows
        if B >= W:
            k = B // W
            widx = Signal(range(k)) if k > 1 else C(0, 1)  # the next word's place in its row
            pop = (widx == k - 1) | final_word
            m.d.comb += [word_valid.eq(rows.valid), word.eq(rows.payload.word_select(widx, 8 * W)),
                         rows.ready.eq(word_ready & pop)]
            if k > 1:
                with m.If(word_valid & word_ready):
                    m.d.sync += widx.eq(Mux(pop, 0, widx + 1))
        else:
            k = W // B
            uidx = Signal(range(k))
            stage = Signal(8 * W)
            final = uidx == Mux(final_word, last_units, k) - 1
            slots = [stage[8 * B * s : 8 * B * (s + 1)] for s in range(k)]
            m.d.comb += [
                word_valid.eq(rows.valid & final),
                word.eq(Cat(*(Mux(uidx == s, rows.payload, slot) for s, slot in enumerate(slots)))),
                rows.ready.eq(Mux(final, word_ready, active & need)),
            ]
            with m.If(rows.valid & rows.ready):
                with m.If(final):
                    m.d.sync += uidx.eq(0)
                with m.Else():
                    m.d.sync += uidx.eq(uidx + 1)
                    for s, slot in enumerate(slots):
                        with m.If(uidx == s):
                            m.d.sync += slot.eq(rows.payload)

        m.d.comb += self.busy.eq(bursts.busy | descs.r_rdy | active | axi.wvalid | resps.r_rdy)
        return m


def _select(index, values: list):
    """values[index] as an AND-OR mux, zero past the end (a case statement would not be full)."""
    return reduce(operator.or_, (Mux(index == i, v, 0) for i, v in enumerate(values)))


def _port_names(n: int) -> list[str]:
    return [f"p{i}" for i in range(n)]


class AxiReadArbiter(wiring.Component):
    """n read masters onto one AXI4 read port: each port's AR through a skid buffer, then
    round-robin into a register slice, and an in-order FIFO of ports (one per burst in flight,
    popped on rlast) that routes R beats back through a skid buffer. One AXI ID everywhere, so
    R returns in AR order."""

    def __init__(self, cfg: AccelConfig, n: int, depth: int | None = None):
        self.cfg, self.n = cfg, n
        self.depth = depth or n * MAX_OUTSTANDING
        super().__init__({name: In(axi4_read(cfg)) for name in _port_names(n)} | {"axi": Out(axi4_read(cfg))})

    @property
    def ports(self) -> list:
        return [getattr(self, name) for name in _port_names(self.n)]

    def elaborate(self, platform) -> Module:
        m = Module()
        ports, axi = self.ports, self.axi
        # the route FIFO holds each burst's port one-hot; buffered, so its head is a register
        m.submodules.route = route = SyncFIFOBuffered(width=self.n, depth=self.depth)

        # ---- AR: each port's request waits in a skid buffer of its own (its arready is a
        # register, not the grant); grant the first requester after the last granted port
        ar_fields = ("arid", "araddr", "arlen", "arsize", "arburst")
        ar_layout = data.StructLayout({name: len(getattr(axi, name)) for name in ar_fields})
        reqs = []
        for i, p in enumerate(ports):
            q = SkidBuffer(ar_layout)
            m.submodules[f"ar_q{i}"] = q
            m.d.comb += [q.i.valid.eq(p.arvalid), p.arready.eq(q.i.ready)]
            m.d.comb += [getattr(q.i.payload, name).eq(getattr(p, name)) for name in ar_fields]
            reqs.append(q)
        last = Signal(range(self.n))
        grant = Signal(range(self.n))
        any_valid = Cat(*(q.o.valid for q in reqs)).any()
        for lst in range(self.n):
            with m.If(last == lst):
                for i in reversed([(lst + 1 + o) % self.n for o in range(self.n)]):
                    with m.If(reqs[i].o.valid):
                        m.d.comb += grant.eq(i)
        load = any_valid & (~axi.arvalid | axi.arready) & route.w_rdy
        for i, q in enumerate(reqs):
            m.d.comb += q.o.ready.eq(load & (grant == i))
        m.d.comb += [route.w_en.eq(load), route.w_data.eq(1 << grant)]
        with m.If(axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        with m.If(load):
            m.d.sync += [axi.arvalid.eq(1), last.eq(grant)]
            m.d.sync += [getattr(axi, name).eq(_select(grant, [getattr(q.o.payload, name) for q in reqs]))
                         for name in ar_fields]

        # ---- R: through a register slice, tagged with the one-hot port at the head of the route
        # FIFO, so that a beat's routing and every port's rready meet registers on both sides
        r_layout = data.StructLayout({"rid": len(axi.rid), "rdata": len(axi.rdata), "rresp": len(axi.rresp),
                                      "rlast": 1, "owner": self.n})
        m.submodules.r_slice = r_slice = SkidBuffer(r_layout)
        beat, out = r_slice.i.payload, r_slice.o.payload
        m.d.comb += [
            r_slice.i.valid.eq(axi.rvalid & route.r_rdy),
            axi.rready.eq(r_slice.i.ready & route.r_rdy),
            route.r_en.eq(axi.rvalid & axi.rready & axi.rlast),
            beat.rid.eq(axi.rid), beat.rdata.eq(axi.rdata), beat.rresp.eq(axi.rresp), beat.rlast.eq(axi.rlast),
            beat.owner.eq(route.r_data),
            r_slice.o.ready.eq((out.owner & Cat(*(p.rready for p in ports))).any()),
        ]
        for i, p in enumerate(ports):
            m.d.comb += [p.rid.eq(out.rid), p.rdata.eq(out.rdata), p.rresp.eq(out.rresp), p.rlast.eq(out.rlast),
                         p.rvalid.eq(r_slice.o.valid & out.owner[i])]
        return m


class AxiWriteMux(wiring.Component):
    """n write masters onto one AXI4 write port, chosen by ``sel`` (combinational); change
    ``sel`` only while the selected writer is idle."""

    def __init__(self, cfg: AccelConfig, n: int):
        self.cfg, self.n = cfg, n
        super().__init__({"sel": In(range(n))} | {name: In(axi4_write(cfg)) for name in _port_names(n)}
                         | {"axi": Out(axi4_write(cfg))})

    @property
    def ports(self) -> list:
        return [getattr(self, name) for name in _port_names(self.n)]

    def elaborate(self, platform) -> Module:
        m = Module()
        axi = self.axi
        forward = [name for name, member in axi.signature.members.items() if member.flow == Out]
        backward = [name for name, member in axi.signature.members.items() if member.flow == In]
        for name in forward:
            m.d.comb += getattr(axi, name).eq(_select(self.sel, [getattr(p, name) for p in self.ports]))
        for i, p in enumerate(self.ports):
            m.d.comb += [getattr(p, name).eq(Mux(self.sel == i, getattr(axi, name), 0)) for name in backward]
        return m
