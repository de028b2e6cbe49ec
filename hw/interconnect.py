"""The AXI interconnect: how the accelerator's masters share its one AXI4 port to DRAM.

Reads from instruction fetch and the LOAD engine's readers share AR/R through a round-robin
``AxiReadArbiter``; the STORE engine's writers (one, or one per storable buffer) share AW/W/B
through an ``AxiWriteMux`` steered by the engine's command. Every master uses one AXI ID, so
responses return in request order and the arbiter routes R beats back by a FIFO of grants.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.axi import axi4_read, axi4_write
from hw.config import AccelConfig
from hw.skid import SkidBuffer

__all__ = ["AxiReadArbiter", "AxiWriteMux", "SharedReadPort", "select"]


def select(index, values: list):
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
        self.depth = depth or n * cfg.dma_outstanding
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
            m.d.sync += [getattr(axi, name).eq(select(grant, [getattr(q.o.payload, name) for q in reqs]))
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
            m.d.comb += getattr(axi, name).eq(select(self.sel, [getattr(p, name) for p in self.ports]))
        for i, p in enumerate(self.ports):
            m.d.comb += [getattr(p, name).eq(Mux(self.sel == i, getattr(axi, name), 0)) for name in backward]
        return m


class SharedReadPort(wiring.Component):
    """One memory read port for two readers, ``first`` first: ``second``'s read goes when
    ``first`` does not read (``second_free``), and both see the port's data. Each read port of a
    memory is another copy of it on an FPGA, so two readers that are rarely busy at once share.

    *Members*: ``mem``, the memory's read port; ``first``, ``second``, read ports as their
    readers see them; ``second_free``, ``second`` may read this cycle.
    """

    def __init__(self, signature: wiring.Signature):
        super().__init__({"mem": In(signature), "first": Out(signature), "second": Out(signature),
                          "second_free": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        first, second, mem = self.first, self.second, self.mem
        m.d.comb += [mem.addr.eq(Mux(first.en, first.addr, second.addr)), mem.en.eq(first.en | second.en),
                     self.second_free.eq(~first.en), first.data.eq(mem.data), second.data.eq(mem.data)]
        return m
