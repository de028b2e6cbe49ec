"""The accelerator: CSRs, controller, DMA, scratchpads, systolic array and post-processing.

Ports: an AXI4-Lite slave for the CSRs (``s_axil``), one AXI4 master to DRAM (``m_axi``)
that instruction fetch and every DMA transfer share, and an interrupt (``irq``). Reads from
the fetch unit and the LOAD engine's readers (one, or one per loadable buffer:
``cfg.dma_movers``) share AR/R through a round-robin arbiter; STORE owns AW/W/B.
docs/architecture.md draws the blocks and the dataflow.
"""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.array import ONE_PRODUCT, PeForms
from hw.axi import axi4, axi4_read, axi4_write, axil, connect_channels
from hw.config import AccelConfig
from hw.control import Controller
from hw.control.signatures import MatmulControl, PortGroup, PostprocControl, RunSignature
from hw.csr import COUNTERS, CsrBank
from hw.interconnect import AxiReadArbiter, SharedReadPort
from hw.isa import Buffer
from hw.matmul import MatmulEngine
from hw.postproc import PostprocEngine
from hw.transfer import LoadEngine, StoreEngine


class Accelerator(wiring.Component):
    """``forms``: how the array's PEs write their multiply (``PeForms``); a netlist choice only."""

    def __init__(self, cfg: AccelConfig, forms: PeForms = ONE_PRODUCT):
        self.cfg = cfg
        self.forms = forms
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
        m.submodules.matmul = mm = MatmulEngine(cfg, self.forms)
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
        acc_wp = mems[Buffer.ACC].write_port()
        wiring.connect(m, acc_wp, mm.acc_wr)
        wiring.connect(m, mems[Buffer.ACC].read_port(), mm.acc_rd)  # updates in flight: forwarded in MATMUL
        # the post-processing unit (a row every pp_row_cycles) and the store engine share one ACC
        # read port, the post-processing unit first (on `default`, a read port less saves 15 block
        # RAMs and 512 loads on the write data)
        m.submodules.acc_read = acc_read = SharedReadPort(scratchpad.read_port(cfg, Buffer.ACC))
        wiring.connect(m, mems[Buffer.ACC].read_port(), acc_read.mem)
        wiring.connect(m, acc_read.first, pp.acc_rd)
        wiring.connect(m, acc_read.second, store.acc_rd)
        m.d.comb += store.acc_free.eq(acc_read.second_free)
        wiring.connect(m, mems[Buffer.OUTPUT].write_port(), pp.out_wr)
        wiring.connect(m, mems[Buffer.OUTPUT].read_port(), store.output_rd)

        # ---- AXI: fetch + loads share the read channels, stores own the write channels ----------
        readers = [ctrl.fetch_axi] + [getattr(load, name) for name in load.axi_ports]
        for i, reader in enumerate(readers):
            wiring.connect(m, reader, getattr(arb, f"p{i}"))
        connect_channels(m, arb.axi, self.m_axi, axi4_read(cfg))
        connect_channels(m, store.axi, self.m_axi, axi4_write(cfg))

        # ---- control ----------------------------------------------------------------------------
        # the CSR bank and the MATMUL and POSTPROC engines have flat ports: PortGroup bundles them
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        wiring.connect(m, PortGroup(csr, RunSignature()), ctrl.run)
        wiring.connect(m, ctrl.load, load.ctrl)
        wiring.connect(m, ctrl.store, store.ctrl)
        no_fault = () if cfg.pe == "serial" else ("fault",)  # grouped tiles need the bit-serial PE
        wiring.connect(m, ctrl.mm, PortGroup(mm, MatmulControl().flip(), missing=no_fault))
        wiring.connect(m, ctrl.pp, PortGroup(pp, PostprocControl(cfg).flip()))
        m.d.comb += [pp.mm_retire.eq(mm.retire), self.irq.eq(csr.irq)]

        # ---- performance counters -------------------------------------------------------------
        bus = self.m_axi
        data_beat = (bus.rvalid & bus.rready) | (bus.wvalid & bus.wready)
        handshake = (data_beat | (bus.arvalid & bus.arready) | (bus.awvalid & bus.awready)
                     | (bus.bvalid & bus.bready))
        dma_busy = load.ctrl.busy | store.ctrl.busy
        events = {
            "cycles": ctrl.run.busy,
            "insns": ctrl.decoded,
            "dma_busy": dma_busy,
            "dma_stall": dma_busy & ~data_beat,
            "array_busy": mm.row_in,
            "array_stall": ~mm.row_in & (mm.pending | ctrl.mm_waiting),
            "postproc_busy": pp.row_in,
            "postproc_stall": pp.waiting,
        }
        m.d.comb += csr.events.eq(Cat(*(events[name] for name in COUNTERS)))
        m.d.comb += ctrl.activity.eq(handshake | mm.row_in | mm.retire | pp.row_in | pp.done)
        return m
