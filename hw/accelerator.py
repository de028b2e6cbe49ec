"""The accelerator: CSRs, controller, DMA, scratchpads, systolic array and post-processing.

Ports: an AXI4-Lite slave for the CSRs (``s_axil``), one AXI4 master to DRAM (``m_axi``)
that instruction fetch and every DMA transfer share, and an interrupt (``irq``). Reads from
the fetch unit and the LOAD engine's readers (one, or one per loadable buffer:
``cfg.dma_movers``) share AR/R through a round-robin arbiter; STORE owns AW/W/B.
docs/architecture.md draws the blocks and the dataflow.
"""

from __future__ import annotations

from collections.abc import Collection

from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.axi import axi4, axi4_read, axi4_write, axil, connect_channels
from hw.config import AccelConfig
from hw.controller import Controller
from hw.csr import COUNTERS, CsrBank
from hw.dma import AxiReadArbiter
from hw.isa import Buffer
from hw.matmul import MatmulEngine
from hw.postproc import PostprocEngine
from hw.transfer import LoadEngine, StoreEngine


class Accelerator(wiring.Component):
    """``half_pes`` / ``booth_pes``: the array's PEs whose multiply is written as two LUT halves
    or in the Booth form (SystolicArray); a netlist choice only."""

    def __init__(self, cfg: AccelConfig, half_pes: Collection[tuple[int, int]] = (),
                 booth_pes: Collection[tuple[int, int]] = ()):
        self.cfg = cfg
        self.half_pes = frozenset(half_pes)
        self.booth_pes = frozenset(booth_pes)
        super().__init__(self.ports_of(cfg))

    @staticmethod
    def ports_of(cfg: AccelConfig) -> wiring.Signature:
        """The top level's signature, without building the design."""
        return wiring.Signature({"s_axil": In(axil()), "m_axi": Out(axi4(cfg)), "irq": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        m.submodules.csr = csr = CsrBank(cfg)
        m.submodules.ctrl = ctrl = Controller(cfg)
        m.submodules.load = load = LoadEngine(cfg)
        m.submodules.store = store = StoreEngine(cfg)
        m.submodules.matmul = mm = MatmulEngine(cfg, self.half_pes, self.booth_pes)
        m.submodules.postproc = pp = PostprocEngine(cfg)
        m.submodules.read_arbiter = arb = AxiReadArbiter(cfg, 1 + len(load.axi_ports))

        # ---- scratchpads: one write port each, a read port per reader (two share the ACC's) ----
        mems = {b: scratchpad.make_memory(cfg, b) for b in Buffer}
        for b, mem in mems.items():
            m.submodules[f"{b.name.lower()}_buf"] = mem
        wiring.connect(m, mems[Buffer.INPUT].write_port(), load.input_wr)
        wiring.connect(m, mems[Buffer.WEIGHT].write_port(), load.weight_wr)
        wiring.connect(m, mems[Buffer.PARAM].write_port(), load.param_wr)
        wiring.connect(m, mems[Buffer.INPUT].read_port(), mm.in_rd)
        wiring.connect(m, mems[Buffer.WEIGHT].read_port(), mm.w_rd)
        wiring.connect(m, mems[Buffer.PARAM].read_port(), pp.param_rd)
        if cfg.pe == "serial":
            wiring.connect(m, mems[Buffer.PARAM].read_port(), mm.param_rd)  # GroupParams rows
            m.d.comb += ctrl.mm_fault.eq(mm.fault)
        acc_wp = mems[Buffer.ACC].write_port()
        wiring.connect(m, acc_wp, mm.acc_wr)
        wiring.connect(m, mems[Buffer.ACC].read_port(), mm.acc_rd)  # updates in flight: forwarded in MATMUL
        # the post-processing unit (a row every pp_row_cycles) and the store engine share one ACC
        # read port, the post-processing unit first: each read port of a memory is another copy of
        # it on an FPGA (on `default`, 15 block RAMs and 512 more loads on the write data)
        acc_rd = mems[Buffer.ACC].read_port()
        m.d.comb += [acc_rd.addr.eq(Mux(pp.acc_rd.en, pp.acc_rd.addr, store.acc_rd.addr)),
                     acc_rd.en.eq(pp.acc_rd.en | store.acc_rd.en), store.acc_free.eq(~pp.acc_rd.en),
                     pp.acc_rd.data.eq(acc_rd.data), store.acc_rd.data.eq(acc_rd.data)]
        wiring.connect(m, mems[Buffer.OUTPUT].write_port(), pp.out_wr)
        wiring.connect(m, mems[Buffer.OUTPUT].read_port(), store.output_rd)

        # ---- AXI: fetch + loads share the read channels, stores own the write channels ----------
        readers = [ctrl.fetch_axi] + [getattr(load, name) for name in load.axi_ports]
        for i, reader in enumerate(readers):
            wiring.connect(m, reader, getattr(arb, f"p{i}"))
        connect_channels(m, arb.axi, self.m_axi, axi4_read(cfg))
        connect_channels(m, store.axi, self.m_axi, axi4_write(cfg))

        # ---- control ----------------------------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        m.d.comb += [ctrl.start.eq(csr.start), ctrl.prog_base.eq(csr.prog_base), ctrl.prog_len.eq(csr.prog_len),
                     csr.busy.eq(ctrl.busy), csr.error.eq(ctrl.error), csr.error_pc.eq(ctrl.error_pc),
                     self.irq.eq(csr.irq)]
        wiring.connect(m, ctrl.load, load.cmd)
        wiring.connect(m, ctrl.store, store.cmd)
        wiring.connect(m, ctrl.mm, mm.cmd)
        wiring.connect(m, ctrl.pp, pp.cmd)
        m.d.comb += [
            ctrl.load_done.eq(load.done), ctrl.load_busy.eq(load.busy), ctrl.load_error.eq(load.bus_error),
            ctrl.store_done.eq(store.done), ctrl.store_busy.eq(store.busy), ctrl.store_error.eq(store.bus_error),
            ctrl.mm_retire.eq(mm.retire), ctrl.mm_idle.eq(mm.idle), pp.mm_retire.eq(mm.retire),
            ctrl.pp_done.eq(pp.done), ctrl.pp_reading.eq(pp.reading),
            ctrl.pp_acc_lo.eq(pp.acc_lo), ctrl.pp_acc_hi.eq(pp.acc_hi),
        ]

        # ---- performance counters -------------------------------------------------------------
        bus = self.m_axi
        data_beat = (bus.rvalid & bus.rready) | (bus.wvalid & bus.wready)
        handshake = (data_beat | (bus.arvalid & bus.arready) | (bus.awvalid & bus.awready)
                     | (bus.bvalid & bus.bready))
        dma_busy = load.busy | store.busy
        events = {
            "cycles": ctrl.busy,
            "insns": ctrl.decoded,
            "dma_busy": dma_busy,
            "dma_stall": dma_busy & ~data_beat,
            "array_busy": mm.row_in,
            "array_stall": ~mm.row_in & (mm.pending | ctrl.mm_waiting),
            "postproc_busy": pp.row_in,
            "postproc_stall": pp.waiting,
        }
        for i, name in enumerate(COUNTERS):
            m.d.comb += csr.events[i].eq(events[name])
        m.d.comb += ctrl.activity.eq(handshake | mm.row_in | mm.retire | pp.row_in | pp.done)
        return m
