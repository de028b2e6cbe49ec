"""Test wrapper: the MATMUL engine with its input, weight and accumulator buffers, plus
backdoor ports to fill the buffers and read accumulators."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.array import ONE_PRODUCT, PeForms
from hw.config import AccelConfig
from hw.isa import Buffer
from hw.matmul import MatmulCmd, MatmulEngine


class MatmulTop(wiring.Component):
    def __init__(self, cfg: AccelConfig, forms: PeForms = ONE_PRODUCT):
        self.cfg = cfg
        self.forms = forms
        members = {
            "cmd": In(stream.Signature(MatmulCmd)),
            "retire": Out(1), "idle": Out(1), "row_in": Out(1),
            "in_wr": Out(scratchpad.write_port(cfg, Buffer.INPUT)),
            "w_wr": Out(scratchpad.write_port(cfg, Buffer.WEIGHT)),
            "acc_peek": Out(scratchpad.read_port(cfg, Buffer.ACC)),
        }
        if cfg.pe == "serial":
            members["param_wr"] = Out(scratchpad.write_port(cfg, Buffer.PARAM))
            members["fault"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        m.submodules.engine = eng = MatmulEngine(cfg, self.forms)
        mems = {b: scratchpad.make_memory(cfg, b) for b in (Buffer.INPUT, Buffer.WEIGHT, Buffer.ACC)}
        for b, mem in mems.items():
            m.submodules[b.name.lower()] = mem
        wiring.connect(m, wiring.flipped(self.cmd), eng.cmd)
        m.d.comb += [self.retire.eq(eng.retire), self.idle.eq(eng.idle), self.row_in.eq(eng.row_in)]
        wiring.connect(m, mems[Buffer.INPUT].write_port(), wiring.flipped(self.in_wr))
        wiring.connect(m, mems[Buffer.WEIGHT].write_port(), wiring.flipped(self.w_wr))
        wiring.connect(m, mems[Buffer.INPUT].read_port(), eng.in_rd)
        wiring.connect(m, mems[Buffer.WEIGHT].read_port(), eng.w_rd)
        acc_wp = mems[Buffer.ACC].write_port()
        wiring.connect(m, acc_wp, eng.acc_wr)
        wiring.connect(m, mems[Buffer.ACC].read_port(), eng.acc_rd)
        wiring.connect(m, mems[Buffer.ACC].read_port(), wiring.flipped(self.acc_peek))
        if cfg.pe == "serial":
            m.submodules.param = param = scratchpad.make_memory(cfg, Buffer.PARAM)
            wiring.connect(m, param.write_port(), wiring.flipped(self.param_wr))
            wiring.connect(m, param.read_port(), eng.param_rd)
            m.d.comb += self.fault.eq(eng.fault)
        return m


def mixed_pes(cfg: AccelConfig) -> MatmulTop:
    """The engine with its PEs in all three forms, in diagonal stripes: one product, two LUT
    halves and the Booth form, as the FPGA flow writes an array larger than the device's DSP
    blocks (the PEs without one in halves with ``pe_halves``, or in the Booth form)."""
    pes = [(i, j) for i in range(cfg.rows) for j in range(cfg.cols)]
    return MatmulTop(cfg, PeForms(halves=frozenset(p for p in pes if sum(p) % 3 == 1),
                                  booth=frozenset(p for p in pes if sum(p) % 3 == 2)))
