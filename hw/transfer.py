"""The LOAD and STORE engines: one instruction at a time, each a DMA command plus the
scratchpad side of it (row addresses, reads and writes).

LOAD writes each row its DMA reader delivers to the next scratchpad row. STORE reads the
buffer's rows ahead into a small FIFO that feeds its DMA writer; it is done when the last write
is acknowledged. ``cfg.dma_movers`` picks how many movers: one per engine (the reader takes rows
of all three loadable buffers, the writer of both storable ones, the command's buffer picking
the width; one instruction at a time per engine, so one mover is never a bottleneck) or one per
buffer (each with a single row width: more logic, fewer wide multiplexers).
"""

from __future__ import annotations

from amaranth import C, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.axi import axi4_read, axi4_write, beat_bytes
from hw.config import AccelConfig
from hw.dma import DMA_FIELDS, DmaRead, DmaWrite
from hw.interconnect import AxiWriteMux
from hw.isa import LAYOUTS, LOADABLE, STORABLE, Buffer, Opcode

MEM_FIELDS = ("buffer", "sram_addr", *DMA_FIELDS)
MemCmd = data.StructLayout({n: LAYOUTS[Opcode.LOAD][n].shape for n in MEM_FIELDS})
STORE_FIFO_DEPTH = 4


class TransferControl(wiring.Signature):
    """A LOAD or STORE engine as the controller drives it: commands, ``done`` (a pulse when a
    command's work is complete), ``busy`` and ``bus_error`` (a response other than OKAY; the
    transfer still completes)."""

    def __init__(self):
        super().__init__({"cmd": Out(stream.Signature(MemCmd)), "done": In(1), "busy": In(1), "bus_error": In(1)})


def dma_cmd(m: Module, target, cmd) -> None:
    """Drive a DmaCmd payload from a MemCmd's DRAM fields."""
    m.d.comb += [getattr(target, n).eq(getattr(cmd, n)) for n in DMA_FIELDS]


def mover_groups(cfg: AccelConfig, buffers: tuple[Buffer, ...]) -> list[tuple[Buffer, ...]]:
    """The buffers each DMA mover of an engine serves, in order: all of them in one mover, or
    one mover per buffer (``cfg.dma_movers``)."""
    return [tuple(buffers)] if cfg.dma_movers == "per_engine" else [(b,) for b in buffers]


def mover_name(cfg: AccelConfig, group: tuple[Buffer, ...]) -> str:
    """The suffix of a mover's submodule and AXI port names: none for an engine's one mover
    (``dma``, ``axi``), the buffer's for a buffer's own (``dma_input``, ``axi_input``)."""
    return "" if cfg.dma_movers == "per_engine" else f"_{group[0].name.lower()}"


def command_mover(m: Module, mover, cmd, group: tuple[Buffer, ...], alone: bool, valid):
    """Drive a mover's command from the engine's: its DRAM fields, the row width of the command's
    buffer (when the mover serves several), and valid with ``valid`` when the command is this
    mover's (always when the mover is the engine's only one, ``alone``). Returns that condition."""
    mine = C(1) if alone else cmd.buffer == group[0]
    dma_cmd(m, mover.cmd.payload, cmd)
    if len(group) > 1:
        for i, buf in enumerate(group):
            with m.If(cmd.buffer == buf):
                m.d.comb += mover.cmd.payload.size.eq(i)
    m.d.comb += mover.cmd.valid.eq(valid & mine)
    return mine


def rows_per_dram_row(cmd, row_bytes: int):
    """Scratchpad rows one DRAM row of the command fills: ceil(row_bytes / buffer row)."""
    shift = row_bytes.bit_length() - 1
    return (cmd.row_bytes + (row_bytes - 1)) >> shift


class LoadEngine(wiring.Component):
    """LOAD: DRAM rows into INPUT, WEIGHT or PARAM rows through the DMA reader of the command's
    buffer (``mover_groups``: one reader taking rows of all three widths, the command's buffer
    picking the width, or one per buffer), each arriving row written at once to the next
    scratchpad row: the scratchpad never stalls the DMA. One AXI read port per reader,
    ``axi_ports`` names them."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        self.groups = mover_groups(cfg, LOADABLE)
        self.axi_ports = [f"axi{mover_name(cfg, g)}" for g in self.groups]
        members = {"ctrl": In(TransferControl()), "beat": Out(1)}
        members |= {name: Out(axi4_read(cfg)) for name in self.axi_ports}
        for buf in LOADABLE:
            members[f"{buf.name.lower()}_wr"] = In(scratchpad.write_port(cfg, buf))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        cmd = Signal(MemCmd)
        addr = Signal(16)
        active = Signal()
        sent = Signal()
        m.d.comb += [self.ctrl.cmd.ready.eq(~active), self.ctrl.busy.eq(active)]
        with m.If(self.ctrl.cmd.valid & ~active):
            p = self.ctrl.cmd.payload
            m.d.sync += [cmd.eq(p), addr.eq(p.sram_addr), active.eq(1), sent.eq(0)]

        for group, port in zip(self.groups, self.axi_ports, strict=True):
            reader = DmaRead(cfg, [scratchpad.row_bytes(cfg, buf) for buf in group])
            m.submodules[f"dma{mover_name(cfg, group)}"] = reader
            wiring.connect(m, wiring.flipped(getattr(self, port)), reader.axi)
            command_mover(m, reader, cmd, group, len(self.groups) == 1, active & ~sent)
            m.d.comb += reader.rows.ready.eq(1)
            with m.If(reader.bus_error):
                m.d.comb += self.ctrl.bus_error.eq(1)
            with m.If(reader.cmd.valid & reader.cmd.ready):
                m.d.sync += sent.eq(1)
            for buf in group:
                wr = getattr(self, f"{buf.name.lower()}_wr")
                m.d.comb += [wr.addr.eq(addr), wr.data.eq(reader.rows.payload.data),
                             wr.en.eq(reader.rows.valid & (cmd.buffer == buf) if len(group) > 1 else reader.rows.valid)]
            with m.If(reader.rows.valid):
                m.d.comb += self.beat.eq(1)
                m.d.sync += addr.eq(addr + 1)
                with m.If(reader.rows.payload.last):
                    m.d.comb += self.ctrl.done.eq(1)
                    m.d.sync += active.eq(0)
        return m


def store_word_bytes(cfg: AccelConfig, buf: Buffer) -> int:
    """Bytes of one STORE FIFO word for a buffer: its whole row when the row is no wider than an
    AXI beat, otherwise one beat's worth (a row is then read as row_bytes / beat words)."""
    return min(scratchpad.row_bytes(cfg, buf), beat_bytes(cfg))


class StoreEngine(wiring.Component):
    """STORE: OUTPUT or ACC rows out through the DMA writer of the command's buffer (one writer
    for both, the command's buffer picking the width, or one each behind a multiplexer:
    ``mover_groups``).

    The engine reads the buffer in words of at most an AXI beat (``store_word_bytes``): a row
    wider than a beat (an ACC row: cols x 4 bytes) is read once per word, each read keeping one
    beat-wide slice of the read data, so that the FIFO between the reads and the writer, and
    everything behind it, is one beat wide rather than one row. A DRAM row of ``row_bytes`` takes
    ceil(row_bytes / word) words: the first words of ceil(row_bytes / row) whole scratchpad rows,
    the next DRAM row starting at the next scratchpad row (what a writer given whole rows sends).
    The ACC read port is shared with the post-processing unit, which goes first."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        # acc_free: the ACC read port, which the store shares with the post-processing unit, is free
        # this cycle (the other reader goes first; the store waits, a word at a time)
        members = {"ctrl": In(TransferControl()), "beat": Out(1), "axi": Out(axi4_write(cfg)),
                   "acc_free": In(1, init=1)}
        for buf in STORABLE:
            members[f"{buf.name.lower()}_rd"] = In(scratchpad.read_port(cfg, buf))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        word_bytes = {buf: store_word_bytes(cfg, buf) for buf in STORABLE}
        per_word = {buf: scratchpad.row_bytes(cfg, buf) // word_bytes[buf] for buf in STORABLE}  # words a row
        widest = 8 * max(word_bytes.values())
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=widest, depth=STORE_FIFO_DEPTH)

        cmd = Signal(MemCmd)
        active = Signal()
        sent = Signal()
        addr = Signal(16)
        left = Signal(32)  # words still to read
        in_flight = Signal()  # a word read last cycle lands in the FIFO now
        m.d.comb += [self.ctrl.cmd.ready.eq(~active), self.ctrl.busy.eq(active)]

        # a command is taken in one cycle and its word count multiplied out in the next (`setup`),
        # so that no multiplier lies between the controller's queue and this engine's counters
        setup = Signal()
        per_dram_row = Signal(17)  # words a DRAM row takes
        widest_row = max(per_word.values())
        part = Signal(range(widest_row))  # the word's place in its scratchpad row
        row_words = Signal(17)  # words of the current DRAM row still to read
        row_end = Signal()  # row_words == 1: the next read ends the DRAM row
        last_part = Signal()  # the next read takes its scratchpad row's last word
        with m.If(self.ctrl.cmd.valid & ~active):
            p = self.ctrl.cmd.payload
            for buf in STORABLE:
                with m.If(p.buffer == buf):
                    m.d.sync += per_dram_row.eq(rows_per_dram_row(p, word_bytes[buf]))
            m.d.sync += [cmd.eq(p), addr.eq(p.sram_addr), active.eq(1), sent.eq(0), setup.eq(1), part.eq(0)]
        with m.If(setup):
            m.d.sync += [left.eq(cmd.rows * per_dram_row), row_words.eq(per_dram_row),
                         row_end.eq(per_dram_row == 1), setup.eq(0)]
            for buf in STORABLE:
                with m.If(cmd.buffer == buf):
                    m.d.sync += last_part.eq(per_word[buf] == 1)

        # read ahead while the FIFO has room for the word in flight
        read = Signal()
        m.d.comb += read.eq(active & ~setup & (left != 0) & (q.level + in_flight < STORE_FIFO_DEPTH - 1)
                            & ((cmd.buffer != Buffer.ACC) | self.acc_free))
        part_read = Signal.like(part)  # the word read last cycle: its place in its row
        m.d.sync += [in_flight.eq(read), part_read.eq(part)]
        with m.If(read):
            m.d.sync += left.eq(left - 1)
            with m.If(row_end | last_part):  # on to the next scratchpad row
                m.d.sync += [addr.eq(addr + 1), part.eq(0)]
                for buf in STORABLE:
                    with m.If(cmd.buffer == buf):
                        m.d.sync += last_part.eq(per_word[buf] == 1)
            with m.Else():
                m.d.sync += part.eq(part + 1)
                for buf in STORABLE:
                    with m.If(cmd.buffer == buf):
                        m.d.sync += last_part.eq(part == per_word[buf] - 2)
            with m.If(row_end):
                m.d.sync += [row_words.eq(per_dram_row), row_end.eq(per_dram_row == 1)]
            with m.Else():
                m.d.sync += [row_words.eq(row_words - 1), row_end.eq(row_words == 2)]

        rd_data = Signal(widest)
        for buf in STORABLE:
            rd = getattr(self, f"{buf.name.lower()}_rd")
            mine = cmd.buffer == buf
            m.d.comb += [rd.addr.eq(addr), rd.en.eq(read & mine)]
            with m.If(mine):
                word = rd.data if per_word[buf] == 1 else rd.data.word_select(part_read, 8 * word_bytes[buf])
                m.d.comb += rd_data.eq(word)

        # the FIFO's words go to the DMA writer of the command's buffer (mover_groups); several
        # writers share the AXI write port through a multiplexer set by the command's buffer
        groups = mover_groups(cfg, STORABLE)
        ports = [wiring.flipped(self.axi)]
        if len(groups) > 1:
            m.submodules.mux = mux = AxiWriteMux(cfg, len(groups))
            wiring.connect(m, wiring.flipped(self.axi), mux.axi)
            ports = mux.ports
            for i, group in enumerate(groups):
                with m.If(cmd.buffer == group[0]):
                    m.d.comb += mux.sel.eq(i)
        for group, port in zip(groups, ports, strict=True):
            writer = DmaWrite(cfg, [word_bytes[buf] for buf in group])
            m.submodules[f"dma{mover_name(cfg, group)}"] = writer
            wiring.connect(m, writer.axi, port)
            mine = command_mover(m, writer, cmd, group, len(groups) == 1, active & ~sent)
            m.d.comb += [writer.rows.payload.eq(q.r_data), writer.rows.valid.eq(q.r_rdy & mine)]
            with m.If(mine):
                m.d.comb += q.r_en.eq(writer.rows.ready)
            with m.If(writer.bus_error):
                m.d.comb += self.ctrl.bus_error.eq(1)
            with m.If(writer.cmd.valid & writer.cmd.ready):
                m.d.sync += sent.eq(1)
            with m.If(writer.done & mine):
                m.d.comb += self.ctrl.done.eq(1)
                m.d.sync += active.eq(0)
        m.d.comb += [q.w_data.eq(rd_data), q.w_en.eq(in_flight)]
        m.d.comb += self.beat.eq(Mux(self.axi.wvalid, self.axi.wready, 0))
        return m
