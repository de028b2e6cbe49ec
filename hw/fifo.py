"""A synchronous FIFO whose wide output registers are loaded by their own registered state.

``amaranth.lib.fifo.SyncFIFOBuffered`` keeps its head in one output register and loads the
next entry into it when the reader takes the head (``r_en``). The register's enable is then the
reader's whole handshake: on this accelerator a decode or DMA writer ``ready`` several logic
levels deep, driving the clock enables of 182 to 512 flip-flops spread over the chip (the
STORE FIFO's output register was the critical path at 62.9 MHz, ``docs/fpga.md``).

``PairedFIFO`` has two output registers and a pointer to the one holding the oldest entry.
A read only flips the pointer and marks that register empty; an empty register is filled
from the storage in the next cycle, so each register's enable is a function of flip-flops only
(the storage's level, the two full flags, the pointer). The reader sees the head through a
2-to-1 multiplexer. A word written into an empty FIFO can be read two cycles later, and one
entry can be read every cycle, as with ``SyncFIFOBuffered``; ``level`` counts every entry, those
in the output registers included, and the FIFO takes a write whenever ``level < depth``.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Mux, Signal
from amaranth.lib.memory import Memory


class PairedFIFO(Elaboratable):
    """``width``-bit entries, ``depth`` of them (at least 3: two output registers and the
    storage); the interface of ``amaranth.lib.fifo.SyncFIFOBuffered`` (``w_data``, ``w_en``,
    ``w_rdy``, ``r_data``, ``r_en``, ``r_rdy``, ``level``)."""

    def __init__(self, *, width: int, depth: int):
        if depth < 3:
            self._MustUse__silence = True  # refused, not forgotten: no "never used" warning
            raise ValueError(f"PairedFIFO depth = {depth}: at least 3 (two output registers and storage)")
        self.width, self.depth = width, depth
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.w_rdy = Signal()
        self.r_data = Signal(width)
        self.r_en = Signal()
        self.r_rdy = Signal()
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform) -> Module:
        m = Module()
        inner = self.depth - 2
        m.submodules.storage = storage = Memory(shape=self.width, depth=inner, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(inner), name="produce")
        consume = Signal(range(inner), name="consume")
        stored = Signal(range(inner + 1), name="stored")  # entries in the storage

        def incr(ptr):
            return Mux(ptr == inner - 1, 0, ptr + 1)

        held = [Signal(self.width, name=f"held{k}") for k in range(2)]
        full = [Signal(name=f"full{k}") for k in range(2)]
        head = Signal(name="head")  # the register with the oldest entry (if any is full, it is)

        do_write = self.w_en & self.w_rdy
        do_read = self.r_en & self.r_rdy
        # the next entry goes to the register after the head, or to the head when both are empty
        target = Mux(full[0] | full[1], ~head, head)
        refill = (stored != 0) & ~(full[0] & full[1])
        m.d.comb += [
            # a full storage takes a write in the cycle an entry leaves it for a register: the write
            # lands at the clock edge, the entry was read from the same row before it
            self.w_rdy.eq((stored != inner) | refill),
            self.r_rdy.eq(Mux(head, full[1], full[0])),
            self.r_data.eq(Mux(head, held[1], held[0])),
            self.level.eq(stored + full[0] + full[1]),
            w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(do_write),
            r_port.addr.eq(consume),
        ]
        with m.If(do_write):
            m.d.sync += produce.eq(incr(produce))
        with m.If(refill):
            m.d.sync += consume.eq(incr(consume))
        m.d.sync += stored.eq(stored + do_write - refill)
        for k in range(2):
            with m.If(refill & (target == k)):
                m.d.sync += [held[k].eq(r_port.data), full[k].eq(1)]
            with m.If(do_read & (head == k)):
                m.d.sync += full[k].eq(0)
        with m.If(do_read):
            m.d.sync += head.eq(~head)
        return m
