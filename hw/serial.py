"""The bit-serial processing element (BitMoD style) and the weight-term representation it reads.

Every weight value of every datatype is v = (-1)^sign * mant * 2^exp (``Datatype.terms``).
The PE holds (sign, mant, exp) per weight bank and takes one mantissa bit per cycle: in
bit-plane t it adds (-1)^sign * mant[t] * (a << (exp + t)) to the partial sum, so one
activation row costs as many cycles as the widest mantissa among the tile's columns
(INT8: 8, INT4: 4, INT2: 2, FP4 E2M1: 2, FP3: 1), and datatypes mix freely per column.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.config import AccelConfig
from hw.datapath import delay
from hw.datatypes import DATATYPES, Datatype

ACT_BITS = 8


def terms(dt: Datatype) -> list[tuple[int, int, int]]:
    """(sign, mant, exp) of every code of a datatype."""
    sign, mant, exp = dt.terms(list(range(1 << dt.bits)))
    return list(zip((int(x) for x in sign), (int(x) for x in mant), (int(x) for x in exp)))


def mant_bits(cfg: AccelConfig) -> int:
    """Bit planes of the widest mantissa among the configuration's datatypes."""
    return max(DATATYPES[d].mant_bits for d in cfg.weight_dtypes)


def exp_bits(cfg: AccelConfig) -> int:
    return max(max(DATATYPES[d].exp_bits for d in cfg.weight_dtypes), 1)


def term_layout(cfg: AccelConfig) -> data.StructLayout:
    """One decoded weight in a serial PE."""
    return data.StructLayout({"sign": 1, "mant": mant_bits(cfg), "exp": exp_bits(cfg)})


def max_shift(cfg: AccelConfig) -> int:
    return max(max(e for _, m, e in terms(DATATYPES[d])) + max(DATATYPES[d].mant_bits - 1, 0)
               for d in cfg.weight_dtypes)


def serial_weight_bits(cfg: AccelConfig) -> int:
    """Signed width of the largest weight magnitude of the configuration."""
    top = max(max(abs(v) for v in DATATYPES[d].values) for d in cfg.weight_dtypes)
    return top.bit_length() + 1


class SerialPE(wiring.Component):
    """psum_out = psum_in + (-1)^sign * mant[plane] * (a_in << (exp + plane)), with the weight
    term of bank ``bank_in``; weights are written as decoded terms."""

    def __init__(self, cfg: AccelConfig, psum_bits: int):
        self.cfg = cfg
        super().__init__({
            "a_in": In(signed(ACT_BITS)), "bank_in": In(1), "plane_in": In(range(mant_bits(cfg))),
            "psum_in": In(signed(psum_bits)),
            "w_we": In(1), "w_bank": In(1), "w_data": In(term_layout(cfg)),
            "a_out": Out(signed(ACT_BITS)), "bank_out": Out(1), "plane_out": Out(range(mant_bits(cfg))),
            "psum_out": Out(signed(psum_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        w = [Signal(term_layout(self.cfg), name=f"w{b}", reset_less=True) for b in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_bank):
                m.d.sync += w[1].eq(self.w_data)
            with m.Else():
                m.d.sync += w[0].eq(self.w_data)
        t = Signal(term_layout(self.cfg))
        m.d.comb += t.eq(Mux(self.bank_in, w[1], w[0]))
        shifted = Signal(signed(ACT_BITS + max_shift(self.cfg) + 1))
        m.d.comb += shifted.eq(self.a_in << (t.exp + self.plane_in))
        term = Mux(t.mant.bit_select(self.plane_in, 1), Mux(t.sign, -shifted, shifted), 0)
        m.d.comb += [
            self.a_out.eq(delay(m, self.a_in, "a")), self.bank_out.eq(delay(m, self.bank_in, "bank", keep=True)),
            self.plane_out.eq(delay(m, self.plane_in, "plane", keep=True)),
            self.psum_out.eq(delay(m, self.psum_in + term, "psum")),
        ]
        return m
