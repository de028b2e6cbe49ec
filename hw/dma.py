"""DMA engines: AXI4-master movers of 2-D strided transfers between DRAM and scratchpad rows.

A command moves ``rows`` DRAM rows of ``row_bytes`` bytes, ``dram_stride`` bytes apart, each at
any byte alignment. DRAM row r maps to ceil(row_bytes / B) consecutive scratchpad rows of B bytes:
byte i of the DRAM row is byte i mod B of scratchpad row i div B; a read zero-fills the last
scratchpad row past the DRAM row's end, a write ignores it (NumPy twin: ``sim.golden``,
``_load`` and ``_store``).

Both movers split every DRAM row into INCR bursts of full-width beats over the aligned beats
that cover it (at most 256 beats, never across 4 KiB), issue addresses ahead of the data with up
to ``cfg.dma_outstanding`` bursts in flight, and realign bytes through a two-beat shifter whose shift is
the row's byte offset, constant per DRAM row. Data moves at one beat per cycle when the memory
keeps up; with B < W a beat holds several scratchpad rows, which go one per cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.axi import (
    BOUNDARY_BYTES,
    LEN_BITS,
    MAX_BURST_BEATS,
    AxiBurst,
    AxiResp,
    axi4_read,
    axi4_write,
    beat_bytes,
    size_code,
)
from hw.config import AccelConfig
from hw.interconnect import select
from hw.isa import LAYOUTS, Opcode
from hw.skid import SkidBuffer

# Bursts in flight per mover: ``cfg.dma_outstanding``. Rows of one beat need about one
# outstanding burst per cycle of memory latency to stream at one beat per cycle; 32 (the
# default) covers ~30 cycles.
AW_QUEUE = 4  # write bursts the splitter may run ahead of AW acceptance

DMA_FIELDS = ("dram_addr", "rows", "row_bytes", "dram_stride")
DmaCmd = data.StructLayout({n: LAYOUTS[Opcode.LOAD][n].shape for n in DMA_FIELDS})


def sized_cmd(n_sizes: int) -> data.StructLayout:
    """A mover's command: DmaCmd, plus ``size`` (the index of the scratchpad row width the rows
    of this command take) when the mover serves rows of more than one width."""
    if n_sizes == 1:
        return DmaCmd
    return data.StructLayout({**{n: LAYOUTS[Opcode.LOAD][n].shape for n in DMA_FIELDS}, "size": range(n_sizes)})

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


def burst_layout(cfg: AccelConfig, n_sizes: int = 1) -> data.StructLayout:
    fields = {
        "addr": DmaCmd["dram_addr"].shape,
        "len": unsigned(LEN_BITS),  # beats - 1
        "first": unsigned(1),  # the burst starts DRAM row `row`
        "last": unsigned(1),  # the command's final burst
        "row": row_desc(cfg),
    }
    if n_sizes > 1:
        fields["size"] = range(n_sizes)  # the command's row width (sized_cmd)
    return data.StructLayout(fields)


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
    With ``n_sizes`` > 1 the command's ``size`` travels with each of its bursts.
    """

    def __init__(self, cfg: AccelConfig, n_sizes: int = 1):
        self.cfg, self.n_sizes = cfg, n_sizes
        super().__init__({
            "cmd": In(stream.Signature(sized_cmd(n_sizes))),
            "bursts": Out(stream.Signature(burst_layout(cfg, n_sizes))),
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

        if self.n_sizes > 1:
            size = Signal.like(cmd.size)
            m.d.comb += out.size.eq(size)
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += size.eq(cmd.size)
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


def _sizes(row_bytes: int | Sequence[int]) -> tuple[int, ...]:
    sizes = (row_bytes,) if isinstance(row_bytes, int) else tuple(row_bytes)
    if not sizes:
        raise ValueError("a DMA mover needs at least one scratchpad row width")
    for b in sizes:
        _check_row_bytes(b)
    return sizes


def _by_size(index, values: list):
    """values[index] for a register's size index; the value itself when all are equal."""
    if len(values) == 1 or (all(isinstance(v, int) for v in values) and len(set(values)) == 1):
        return values[0]
    return select(index, values)


class DmaRead(wiring.Component):
    """DRAM -> scratchpad rows of ``row_bytes`` (B) bytes, in order, ``last`` on the command's
    final row. B >= W: one row per B/W beats; B < W: one row per cycle (W/B cycles a beat).
    R stalls (rready low) while ``rows`` is not taken.

    ``row_bytes`` may list several widths (one mover for the LOAD engine's three buffers): the
    command's ``size`` then picks one, ``rows`` is as wide as the widest, and a narrower row sits
    in its low bytes. The width travels with each DRAM row's descriptor, so commands of
    different widths may follow each other back to back."""

    def __init__(self, cfg: AccelConfig, row_bytes: int | Sequence[int]):
        self.cfg, self.sizes = cfg, _sizes(row_bytes)
        self.row_bytes = max(self.sizes)
        super().__init__({
            "cmd": In(stream.Signature(sized_cmd(len(self.sizes)))),
            "axi": Out(axi4_read(cfg)),
            "rows": Out(stream.Signature(dma_row(self.row_bytes))),
            "busy": Out(1),
            "bus_error": Out(1),  # an R beat came back with SLVERR or DECERR
        })

    def _desc_layout(self) -> data.StructLayout:
        fields = {"row": row_desc(self.cfg), "nwords": unsigned(COUNT_BITS)}
        if len(self.sizes) > 1:
            fields["size"] = range(len(self.sizes))
        return data.StructLayout(fields)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, sizes = self.cfg, self.sizes
        W, wb = beat_bytes(cfg), size_code(cfg)
        axi = self.axi
        desc_layout = self._desc_layout()
        n_sizes = len(sizes)
        narrow_sizes = [b for b in sizes if b < W]  # rows split out of one beat

        m.submodules.bursts = bursts = BurstSplitter(cfg, n_sizes)
        # buffered: the R side loads the next row's counters from a register, not a RAM read
        m.submodules.descs = descs = SyncFIFOBuffered(width=desc_layout.size, depth=cfg.dma_outstanding)
        wiring.connect(m, wiring.flipped(self.cmd), bursts.cmd)

        burst_q, outstanding = self._issue_bursts(m, bursts, descs, desc_layout)

        # ---- R: realign each DRAM row into words of W bytes (row byte q*W .. q*W+W-1), zero past its end
        d = data.View(desc_layout, descs.r_data)
        d_size = d.size if n_sizes > 1 else C(0, 1)
        active = Signal()
        prime = Signal()  # an unaligned row first takes one beat into `prev`
        shift = Signal(wb + 1)  # the realignment's byte shift (the row's offset, W if 0), a register:
        # it selects among 2W bytes for every bit of the word
        beats_left = Signal(COUNT_BITS)
        words_left = Signal(COUNT_BITS)
        rem = Signal(DmaCmd["row_bytes"].shape)  # row bytes from the current word on
        last_row = Signal()
        size = Signal(range(n_sizes)) if n_sizes > 1 else C(0, 1)  # the current DRAM row's width
        max_units = max([W // b for b in narrow_sizes], default=1)
        last_units = Signal(range(max_units + 1))  # rows in the DRAM row's last word (B < W)
        prev = Signal(8 * W)

        w_valid, w_ready = Signal(), Signal()
        w_data = Signal(8 * W)
        w_last = Signal()  # the command's final word
        w_units = Signal(range(max_units + 1))  # scratchpad rows in the word (B < W)
        # beats_left != 0 and words_left == 1, kept as flags updated with the counters, so that the
        # handshakes and the next descriptor's load are not behind two 16-bit compares
        need = Signal()
        final_word = Signal()
        m.d.comb += [
            axi.rready.eq(active & (prime | (w_ready & need))),
            w_valid.eq(active & ~prime & (~need | axi.rvalid)),
            w_data.eq(_realign(prev, axi.rdata, shift, W) & _bytes_below(rem, W)),
            w_last.eq(last_row & final_word),
            w_units.eq(Mux(final_word, last_units, _by_size(size, [max(W // b, 1) for b in sizes]))),
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
            if n_sizes > 1:
                m.d.sync += size.eq(d.size)
            if narrow_sizes:
                m.d.sync += last_units.eq(_by_size(d_size, [(d.row.n - 1)[_log2(b) : wb] + 1 if b < W else 1
                                                            for b in sizes]))

        self._hand_over(m, load=load, d_size=d_size, size=size, step=step, w_ready=w_ready, w_data=w_data,
                        w_units=w_units, w_last=w_last)
        m.d.comb += self.busy.eq(bursts.busy | burst_q.o.valid | (outstanding != 0) | descs.r_rdy | active
                                 | self.rows.valid)
        return m

    def _issue_bursts(self, m: Module, bursts: BurstSplitter, descs, desc_layout: data.StructLayout) -> tuple:
        """AR and the descriptors of the DRAM rows for the R side; returns the burst queue and the
        count of bursts in flight."""
        cfg, sizes = self.cfg, self.sizes
        W, wb = beat_bytes(cfg), size_code(cfg)
        n_sizes = len(sizes)
        axi = self.axi
        # ---- AR: a register slice fed by the splitter through a skid buffer (the splitter's
        # row arithmetic does not wait on the bus's arready); a descriptor per DRAM row for the R side
        m.submodules.burst_q = burst_q = SkidBuffer(burst_layout(cfg, n_sizes))
        wiring.connect(m, bursts.bursts, burst_q.i)
        burst = burst_q.o.payload
        outstanding = Signal(range(cfg.dma_outstanding + 1))  # bursts whose last beat has not arrived
        m.d.comb += burst_q.o.ready.eq((~axi.arvalid | axi.arready) & (outstanding < cfg.dma_outstanding)
                                       & (descs.w_rdy | ~burst.first))
        take = burst_q.o.valid & burst_q.o.ready
        m.d.comb += [axi.arid.eq(0), axi.arsize.eq(wb), axi.arburst.eq(AxiBurst.INCR)]
        with m.If(axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        with m.If(take):
            m.d.sync += [axi.arvalid.eq(1), axi.araddr.eq(burst.addr), axi.arlen.eq(burst.len)]

        def words(n, b: int):
            """Words of W bytes a DRAM row of n bytes takes: whole scratchpad rows (B >= W) or
            whole beats (B < W)."""
            wide = max(b, W)
            return ((n + wide - 1) >> _log2(wide)) << (_log2(wide) - wb)

        burst_size = burst.size if n_sizes > 1 else C(0, 1)
        new_desc = data.View(desc_layout, descs.w_data)
        m.d.comb += [descs.w_en.eq(take & burst.first), new_desc.row.eq(burst.row),
                     new_desc.nwords.eq(_by_size(burst_size, [words(burst.row.n, b) for b in sizes]))]
        if n_sizes > 1:
            m.d.comb += new_desc.size.eq(burst.size)

        last_beat = axi.rvalid & axi.rready & axi.rlast
        m.d.comb += self.bus_error.eq(axi.rvalid & axi.rready & (axi.rresp != AxiResp.OKAY))
        m.d.sync += outstanding.eq(outstanding + take - last_beat)
        return burst_q, outstanding

    def _hand_over(self, m: Module, *, load, d_size, size, step, w_ready, w_data, w_units, w_last) -> None:
        """Words of W bytes -> scratchpad rows."""
        cfg, sizes = self.cfg, self.sizes
        W = beat_bytes(cfg)
        n_sizes = len(sizes)
        narrow_sizes = [b for b in sizes if b < W]
        wide_sizes = [b for b in sizes if b >= W]
        max_units = max([W // b for b in narrow_sizes], default=1)
        # ---- words -> scratchpad rows. Wide rows are assembled in place: word i goes straight into
        # its slot of the row register, so a slot's enable drives only its own W bytes (no row-wide
        # copy). A narrow row's word waits in slot 0 while its rows go out one a cycle.
        rows = self.rows
        narrow = Signal()  # the current DRAM row's width is below a beat (rows of both kinds only)
        if narrow_sizes and wide_sizes:
            with m.If(load):
                m.d.sync += narrow.eq(select(d_size, [C(int(b < W), 1) for b in sizes]))
        k = max(max(wide_sizes, default=W) // W, 1)  # slots of the row register
        reg = Signal(8 * W * k)
        slots = [reg[8 * W * i : 8 * W * (i + 1)] for i in range(k)]
        j = Signal(range(k)) if k > 1 else C(0, 1)  # the word's place in its row (wide)
        idx = Signal(range(max_units)) if max_units > 1 else C(0, 1)  # the row's place in its word (narrow)
        units_left = Signal(range(max_units + 1), init=1)  # rows of the word still to go (1 when wide)
        row_last = Signal()
        # the width of the row being handed over, set with it: the next DRAM row's descriptor may
        # be loaded while a narrow word's rows still go out
        out_size = Signal(range(n_sizes)) if len(set(narrow_sizes)) > 1 else C(0, 1)
        out_narrow = Signal()
        m.d.comb += [w_ready.eq(~rows.valid | (rows.ready & (units_left == 1))),
                     rows.payload.last.eq(row_last & (units_left == 1))]

        def piece(b: int):
            """Row idx of the word in slot 0, for rows of b < W bytes."""
            return Cat(slots[0].word_select(idx, 8 * b), C(0, 8 * (self.row_bytes - b)))

        if len(set(narrow_sizes)) == 1:
            narrow_data = piece(narrow_sizes[0])
        elif narrow_sizes:
            narrow_data = select(out_size, [piece(b) if b < W else 0 for b in sizes])
        with m.If(rows.valid & rows.ready):
            with m.If(units_left == 1):
                m.d.sync += rows.valid.eq(0)
            if narrow_sizes:
                with m.Else():
                    m.d.sync += [units_left.eq(units_left - 1), idx.eq(idx + 1)]

        def take_narrow():
            m.d.sync += [slots[0].eq(w_data), rows.valid.eq(1), units_left.eq(w_units), row_last.eq(w_last),
                         idx.eq(0), out_narrow.eq(1)]
            if len(set(narrow_sizes)) > 1:
                m.d.sync += out_size.eq(size)

        def take_wide():
            k_end = _by_size(size, [max(b // W, 1) - 1 for b in sizes])
            with m.If(j == k_end):
                m.d.sync += [rows.valid.eq(1), row_last.eq(w_last), out_narrow.eq(0)]
            if k > 1:
                m.d.sync += j.eq(Mux(j == k_end, 0, j + 1))
            for i, slot in enumerate(slots):
                with m.If(j == i):
                    m.d.sync += slot.eq(w_data)

        if not narrow_sizes:
            m.d.comb += rows.payload.data.eq(reg)
            with m.If(step):
                take_wide()
        elif not wide_sizes:
            m.d.comb += rows.payload.data.eq(narrow_data)
            with m.If(step):
                take_narrow()
        else:
            m.d.comb += rows.payload.data.eq(Mux(out_narrow, narrow_data, reg))
            with m.If(step & narrow):
                take_narrow()
            with m.Elif(step):
                take_wide()



class DmaWrite(wiring.Component):
    """Scratchpad rows of ``row_bytes`` (B) bytes -> DRAM, ceil(row_bytes_cmd / B) rows per DRAM
    row, exact WSTRB. AW runs up to ``cfg.dma_outstanding`` bursts ahead of W and B. B >= W: one beat per
    cycle; B < W: one scratchpad row per cycle. ``done`` pulses with the command's last B response.

    ``row_bytes`` may list several widths (one mover for the STORE engine's buffers): the
    command's ``size`` picks one, and a narrower row comes in the low bytes of ``rows``."""

    def __init__(self, cfg: AccelConfig, row_bytes: int | Sequence[int]):
        self.cfg, self.sizes = cfg, _sizes(row_bytes)
        self.row_bytes = max(self.sizes)
        super().__init__({
            "cmd": In(stream.Signature(sized_cmd(len(self.sizes)))),
            "rows": In(stream.Signature(unsigned(8 * self.row_bytes))),
            "axi": Out(axi4_write(cfg)),
            "done": Out(1),
            "busy": Out(1),
            "bus_error": Out(1),  # a B response came back with SLVERR or DECERR
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, sizes = self.cfg, self.sizes
        W, wb = beat_bytes(cfg), size_code(cfg)
        axi = self.axi
        n_sizes = len(sizes)
        narrow_sizes = [b for b in sizes if b < W]  # rows packed into a beat
        rdesc = data.StructLayout({"row": row_desc(cfg)} | ({"size": range(n_sizes)} if n_sizes > 1 else {}))

        m.submodules.bursts = bursts = BurstSplitter(cfg, n_sizes)
        m.submodules.descs = descs = SyncFIFO(width=rdesc.size, depth=cfg.dma_outstanding)  # DRAM rows
        m.submodules.lens = lens = SyncFIFO(width=LEN_BITS, depth=cfg.dma_outstanding)  # bursts, for wlast
        m.submodules.resps = resps = SyncFIFO(width=1, depth=cfg.dma_outstanding)  # bursts awaiting B
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
            axi.awid.eq(0), axi.awsize.eq(wb), axi.awburst.eq(AxiBurst.INCR),
            descs.w_en.eq(take & burst.first), data.View(rdesc, descs.w_data).row.eq(burst.row),
            lens.w_en.eq(take), lens.w_data.eq(burst.len),
            resps.w_en.eq(take), resps.w_data.eq(burst.last),
        ]

        if n_sizes > 1:
            m.d.comb += data.View(rdesc, descs.w_data).size.eq(burst.size)

        # ---- B: the command is done when its last burst's response arrives
        m.d.comb += self.bus_error.eq(axi.bvalid & axi.bready & (axi.bresp != AxiResp.OKAY))
        m.d.comb += [axi.bready.eq(resps.r_rdy), resps.r_en.eq(axi.bvalid),
                     self.done.eq(axi.bvalid & resps.r_rdy & resps.r_data[0])]

        # ---- W: beat j of a DRAM row carries row bytes j*W - off .. j*W - off + W - 1
        desc = data.View(rdesc, descs.r_data)
        d, d_size = desc.row, desc.size if n_sizes > 1 else C(0, 1)
        size = Signal(range(n_sizes)) if n_sizes > 1 else C(0, 1)  # the current DRAM row's width
        active = Signal()
        first = Signal()
        off = Signal(wb)
        shift = Signal(wb + 1)  # W - off, the realignment's byte shift, registered with off: it
        # selects among 2W bytes for every bit of the beat
        beats_left = Signal(COUNT_BITS)
        words_left = Signal(COUNT_BITS)  # words of W row bytes still to take
        span = Signal(COUNT_BITS)  # bytes from the current beat's start to the row's end
        max_units = max([W // b for b in narrow_sizes], default=1)
        last_units = Signal(range(max_units + 1))  # rows in the DRAM row's last word (B < W)
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
            if n_sizes > 1:
                m.d.sync += size.eq(d_size)
            if narrow_sizes:
                m.d.sync += last_units.eq(_by_size(d_size, [(d.n - 1)[_log2(b) : wb] + 1 if b < W else 1
                                                            for b in sizes]))

        self._gather(m, load=load, d_size=d_size, size=size, final_word=final_word, last_units=last_units,
                     active=active, need=need, word=word, word_valid=word_valid, word_ready=word_ready)

        m.d.comb += self.busy.eq(bursts.busy | descs.r_rdy | active | axi.wvalid | resps.r_rdy)
        return m

    def _gather(self, m: Module, *, load, d_size, size, final_word, last_units, active, need, word, word_valid,
                word_ready) -> None:
        """Scratchpad rows -> words of W row bytes."""
        cfg, sizes = self.cfg, self.sizes
        W = beat_bytes(cfg)
        narrow_sizes = [b for b in sizes if b < W]
        wide_sizes = [b for b in sizes if b >= W]
        max_units = max([W // b for b in narrow_sizes], default=1)
        # ---- scratchpad rows -> words of W row bytes (the unused tail of a DRAM row's last
        # scratchpad row is dropped)
        rows = self.rows
        narrow = Signal()  # the current DRAM row's width is below a beat (rows of both kinds only)
        if narrow_sizes and wide_sizes:
            with m.If(load):
                m.d.sync += narrow.eq(select(d_size, [C(int(b < W), 1) for b in sizes]))
        if wide_sizes:
            k = max(wide_sizes) // W
            widx = Signal(range(k)) if k > 1 else C(0, 1)  # the next word's place in its row
            pop = (widx == _by_size(size, [max(b // W, 1) - 1 for b in sizes])) | final_word
            wide_word = rows.payload[: 8 * W * k].word_select(widx, 8 * W)
            if k > 1:
                with m.If(word_valid & word_ready & (~narrow if narrow_sizes else 1)):
                    m.d.sync += widx.eq(Mux(pop, 0, widx + 1))
        if narrow_sizes:
            uidx = Signal(range(max_units))
            stage = Signal(8 * W)  # the rows of the beat so far, each at its place

            def slots(b: int) -> list:
                return [stage[8 * b * s : 8 * b * (s + 1)] for s in range(W // b)]

            def packed(b: int):
                return Cat(*(Mux(uidx == s, rows.payload[: 8 * b], slot) for s, slot in enumerate(slots(b))))

            final = uidx == Mux(final_word, last_units, _by_size(size, [max(W // b, 1) for b in sizes])) - 1
            narrow_word = (packed(narrow_sizes[0]) if len(set(narrow_sizes)) == 1
                           else select(size, [packed(b) if b < W else 0 for b in sizes]))
            with m.If(rows.valid & rows.ready & (narrow if wide_sizes else 1)):
                with m.If(final):
                    m.d.sync += uidx.eq(0)
                with m.Else():
                    m.d.sync += uidx.eq(uidx + 1)
                    for i, b in enumerate(sizes):
                        if b >= W:
                            continue
                        for s, slot in enumerate(slots(b)):
                            here = uidx == s
                            if len(set(narrow_sizes)) > 1:
                                here &= size == i
                            with m.If(here):
                                m.d.sync += slot.eq(rows.payload[: 8 * b])
        if not narrow_sizes:
            m.d.comb += [word_valid.eq(rows.valid), word.eq(wide_word), rows.ready.eq(word_ready & pop)]
        elif not wide_sizes:
            m.d.comb += [word_valid.eq(rows.valid & final), word.eq(narrow_word),
                         rows.ready.eq(Mux(final, word_ready, active & need))]
        else:
            m.d.comb += [word_valid.eq(rows.valid & (~narrow | final)), word.eq(Mux(narrow, narrow_word, wide_word)),
                         rows.ready.eq(Mux(narrow, Mux(final, word_ready, active & need), word_ready & pop))]
