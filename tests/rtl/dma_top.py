"""Test wrapper of the DMA engines: three read movers behind an AxiReadArbiter and three write
movers behind an AxiWriteMux, on one AXI4 master ``m_axi``.

The movers take the row widths of real scratchpads (input and parameter rows for reads, output
and accumulator rows for writes), so a 32-bit, 128-bit and 256-bit bus between them see rows
narrower than, as wide as and wider than a beat. The third of each kind serves several widths
(the LOAD and STORE engines' one mover each): both of its kind's, a quarter and half a beat,
the command's ``size`` picking one.
"""

from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.axi import axi4, beat_bytes
from hw.config import AccelConfig
from hw.dma import DmaRead, DmaWrite, dma_row, sized_cmd
from hw.interconnect import AxiReadArbiter, AxiWriteMux

READERS = ("rd0", "rd1", "rdm")
WRITERS = ("wr0", "wr1", "wrm")


def mover_sizes(cfg: AccelConfig) -> dict[str, tuple[int, ...]]:
    """The scratchpad row widths (bytes) each mover in the wrapper serves."""
    W = beat_bytes(cfg)
    part = (max(W // 4, 1), max(W // 2, 1))
    rd = (cfg.buffer_row_bytes("input_buf_bytes"), cfg.buffer_row_bytes("param_buf_bytes"))
    wr = (cfg.buffer_row_bytes("out_buf_bytes"), cfg.buffer_row_bytes("acc_buf_bytes"))
    return {"rd0": rd[:1], "rd1": rd[1:], "rdm": rd + part, "wr0": wr[:1], "wr1": wr[1:], "wrm": wr + part}


def _join(m: Module, whole, part) -> None:
    """Drive the members of a full AXI4 master that one half (read or write) has."""
    for name, member in part.signature.members.items():
        if member.flow == Out:
            m.d.comb += getattr(whole, name).eq(getattr(part, name))
        else:
            m.d.comb += getattr(part, name).eq(getattr(whole, name))


class DmaTop(wiring.Component):
    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        sizes = mover_sizes(cfg)
        members = {"m_axi": Out(axi4(cfg)), "wr_sel": In(range(len(WRITERS)))}
        for name in READERS:
            members |= {f"{name}_cmd": In(stream.Signature(sized_cmd(len(sizes[name])))),
                        f"{name}_rows": Out(stream.Signature(dma_row(max(sizes[name])))), f"{name}_busy": Out(1)}
        for name in WRITERS:
            members |= {f"{name}_cmd": In(stream.Signature(sized_cmd(len(sizes[name])))),
                        f"{name}_rows": In(stream.Signature(unsigned(8 * max(sizes[name])))),
                        f"{name}_done": Out(1), f"{name}_busy": Out(1)}
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        sizes = mover_sizes(self.cfg)
        m.submodules.arbiter = arbiter = AxiReadArbiter(self.cfg, len(READERS))
        m.submodules.mux = mux = AxiWriteMux(self.cfg, len(WRITERS))
        for i, name in enumerate(READERS):
            m.submodules[name] = rd = DmaRead(self.cfg, sizes[name])
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_cmd")), rd.cmd)
            wiring.connect(m, rd.rows, wiring.flipped(getattr(self, f"{name}_rows")))
            wiring.connect(m, rd.axi, getattr(arbiter, f"p{i}"))
            m.d.comb += getattr(self, f"{name}_busy").eq(rd.busy)
        for i, name in enumerate(WRITERS):
            m.submodules[name] = wr = DmaWrite(self.cfg, sizes[name])
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_cmd")), wr.cmd)
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_rows")), wr.rows)
            wiring.connect(m, wr.axi, getattr(mux, f"p{i}"))
            m.d.comb += [getattr(self, f"{name}_done").eq(wr.done), getattr(self, f"{name}_busy").eq(wr.busy)]
        m.d.comb += mux.sel.eq(self.wr_sel)
        _join(m, self.m_axi, arbiter.axi)
        _join(m, self.m_axi, mux.axi)
        return m
