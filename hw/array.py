"""The weight-stationary systolic array of bit-parallel processing elements.

PE (i, j) holds weight W[i][j] of the current rows x cols tile (two weight banks, so the
next tile loads while the current one computes). Activation row vectors enter at the left
edge, row i delayed by i cycles (input skew), and move one PE right per cycle; partial sums
move one PE down per cycle; column j leaves the bottom edge j cycles after column 0 and is
delayed by cols-1-j cycles (output deskew), so a whole result row appears ``latency`` cycles
after its activation row entered. Every activation carries the bank its tile's weights are
in, so rows of two tiles can be in flight at once and the array never drains between tiles.

Partial sums are ``psum_bits`` wide: exact when that is less than the accumulator width, and
otherwise wrapped exactly as the accumulator wraps (two's complement is modular), so the
result equals ``hw.numerics.matmul_tile`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw import serial
from hw.config import AccelConfig
from hw.datapath import delay
from hw.datatypes import DATATYPES
from hw.geometry import array_latency

ACT_BITS = serial.ACT_BITS  # activations are stored and multiplied as bytes (act_bits sets the clamp range)


def weight_bits(cfg: AccelConfig) -> int:
    """Width of a decoded weight register: the widest weight datatype of the config."""
    return max(DATATYPES[d].bits for d in cfg.weight_dtypes)


def psum_bits(cfg: AccelConfig) -> int:
    """Partial-sum width: exact (product width + log2(rows) + 1) or the accumulator width."""
    w = serial.serial_weight_bits(cfg) if cfg.pe == "serial" else weight_bits(cfg)
    return min(ACT_BITS + w + cfg.rows.bit_length(), cfg.acc_bits)


def weight_shape(cfg: AccelConfig):
    """What a PE's weight register holds: a two's complement weight, or a serial PE's term."""
    return serial.term_layout(cfg) if cfg.pe == "serial" else signed(weight_bits(cfg))


def planes(cfg: AccelConfig) -> int:
    """Bit planes an activation row may take (1 for the bit-parallel PE)."""
    return serial.mant_bits(cfg) if cfg.pe == "serial" else 1


WEIGHT_WRITE_CYCLES = 2  # a weight write request to the PE's weight register holding it (register stages)


@dataclass(frozen=True)
class PeForms:
    """How the bit-parallel PEs write their multiply: a netlist choice only, never a result or a
    cycle. The FPGA flow builds one record and it travels as one argument from the top level to
    the array (``Accelerator`` -> ``MatmulEngine`` -> ``SystolicArray``).

    *Parameters*: ``halves``, the PEs (row, column) whose multiply is two LUT halves (ParallelPE's
    ``halves``; the flow's ``pe_halves`` names those its DSP budget leaves without a DSP block);
    ``booth``, those in the Booth form (ParallelPE's ``booth``). Every other PE is one product.
    """

    halves: frozenset[tuple[int, int]] = frozenset()
    booth: frozenset[tuple[int, int]] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "halves", frozenset(map(tuple, self.halves)))
        object.__setattr__(self, "booth", frozenset(map(tuple, self.booth)))
        if self.halves & self.booth:
            raise ValueError(f"PEs {sorted(self.halves & self.booth)} are in two forms: halves and booth")

    def pe(self, cfg: AccelConfig, i: int, j: int) -> ParallelPE:
        """PE (i, j) in its form."""
        return ParallelPE(cfg, halves=(i, j) in self.halves, booth=(i, j) in self.booth)


ONE_PRODUCT = PeForms()  # every PE one product


LO_BITS = ACT_BITS // 2  # the activation's low half, multiplied apart from its high half


def booth_digits(wb: int) -> int:
    """Radix-4 Booth digits of a ``wb``-bit two's complement weight."""
    return (wb + 1) // 2


def booth_encode(w, wb: int):
    """The weight's radix-4 Booth digits, (one, two, neg) for each, lowest digit first: digit k
    is -2 w[2k+1] + w[2k] + w[2k-1] (w[-1] = 0, w sign-extended), one of -2..2, and
    sum(digit_k 4^k) = w. ``neg`` is 0 for the digit 0."""
    n = booth_digits(wb)
    bits = Cat(C(0, 1), w, w[wb - 1].replicate(2 * n - wb))
    out = []
    for k in range(n):
        b0, b1, b2 = bits[2 * k], bits[2 * k + 1], bits[2 * k + 2]
        out += [b1 ^ b0, (b2 & ~b1 & ~b0) | (~b2 & b1 & b0), b2 & ~(b1 & b0)]
    return Cat(*out)


class ParallelPE(wiring.Component):
    """One multiply-accumulate cell, one MAC per cycle in two stages: the product
    a_in * w[bank_in] is registered (an FPGA's DSP block or a LUT multiplier ends in a flip-flop),
    then psum_out = psum_in + product. With ``halves`` (for a PE whose multiplier is LUT logic)
    the first stage registers the weight times each half of the activation apart,
    lo = a[:LO_BITS] (unsigned) * w and hi = a[LO_BITS:] (signed) * w, two short multipliers, and
    the second adds both: psum_out = psum_in + lo + (hi << LO_BITS). Both forms have the same
    timing: the partial sum arrives one cycle after the activation, as it does for every PE of a
    column, so the whole array is one cycle deeper (``array_latency``) and still takes one row
    per cycle.

    With ``booth`` (the other form for a LUT multiplier) the weight registers hold the weight's
    radix-4 Booth digits, encoded when it is written (the weight is stationary, so the encoding
    costs nothing per multiply). The first stage selects each digit's partial product, 0, a or
    2a, inverted for a negative digit (its +1 is the digit's own ``neg`` bit, added in the next
    stage at the digit's weight), and adds them in pairs; the second stage adds the pairs, the
    ``neg`` bits and psum_in. Three logic levels and two adder levels before the first register
    instead of a Booth multiplier's eight; the same timing and result."""

    def __init__(self, cfg: AccelConfig, halves: bool = False, booth: bool = False):
        if halves and booth:
            raise ValueError("a PE is written in one form: halves or booth, not both")
        self.halves, self.booth = halves, booth
        super().__init__({
            "a_in": In(signed(ACT_BITS)), "bank_in": In(1), "psum_in": In(signed(psum_bits(cfg))),
            "w_we": In(1), "w_bank": In(1), "w_data": In(signed(weight_bits(cfg))),
            "a_out": Out(signed(ACT_BITS)), "bank_out": Out(1), "psum_out": Out(signed(psum_bits(cfg))),
        })
        self.cfg = cfg

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.booth:
            return self._elaborate_booth(m)
        w = [Signal(signed(weight_bits(self.cfg)), name=f"w{b}", reset_less=True) for b in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_bank):
                m.d.sync += w[1].eq(self.w_data)
            with m.Else():
                m.d.sync += w[0].eq(self.w_data)
        w_now = Mux(self.bank_in, w[1], w[0])
        if self.halves:
            lo = delay(m, self.a_in[:LO_BITS] * w_now, "product_lo")  # unsigned half x signed weight
            hi = delay(m, self.a_in[LO_BITS:].as_signed() * w_now, "product_hi")
            product = lo + (hi << LO_BITS)
        else:
            product = delay(m, self.a_in * w_now, "product")
        m.d.comb += [
            self.a_out.eq(delay(m, self.a_in, "a")),
            self.bank_out.eq(delay(m, self.bank_in, "bank", keep=True)),
            self.psum_out.eq(delay(m, self.psum_in + product, "psum")),
        ]
        return m

    def _elaborate_booth(self, m: Module) -> Module:
        wb = weight_bits(self.cfg)
        n = booth_digits(wb)
        enc = [Signal(3 * n, name=f"w{b}_booth", reset_less=True) for b in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_bank):
                m.d.sync += enc[1].eq(booth_encode(self.w_data, wb))
            with m.Else():
                m.d.sync += enc[0].eq(booth_encode(self.w_data, wb))
        digits = Mux(self.bank_in, enc[1], enc[0])
        pw = ACT_BITS + 2  # a partial product: -2a .. 2a, inverted
        pps = []
        for k in range(n):
            one, two, neg = digits[3 * k], digits[3 * k + 1], digits[3 * k + 2]
            x = Signal(signed(pw), name=f"pp{k}_mag")
            m.d.comb += x.eq(Mux(two, self.a_in << 1, Mux(one, self.a_in, 0)))
            pps.append((x.as_unsigned() ^ neg.replicate(pw)).as_signed())
        # first stage: the partial products added in pairs (digits 2p and 2p + 1), and the neg bits
        pairs = [delay(m, pps[k] + (pps[k + 1] << 2) if k + 1 < n else pps[k], f"booth_pair{k // 2}")
                 for k in range(0, n, 2)]
        negs = delay(m, Cat(*(digits[3 * k + 2] for k in range(n))), "booth_neg")
        # second stage: the pairs, each inverted digit's +1 (neg_k at bit 2k) and the partial sum
        ones = Cat(*(Cat(negs[k], C(0, 1)) for k in range(n)))
        total = pairs[0]
        for p in range(1, len(pairs)):
            total = total + (pairs[p] << (4 * p))
        m.d.comb += [
            self.a_out.eq(delay(m, self.a_in, "a")),
            self.bank_out.eq(delay(m, self.bank_in, "bank", keep=True)),
            self.psum_out.eq(delay(m, (self.psum_in + ones) + total, "psum")),
        ]
        return m


class SystolicArray(wiring.Component):
    """rows x cols ParallelPEs with input skew and output deskew.

    ``a``/``bank`` (and for the bit-serial PE ``plane``, the mantissa bit): one activation row
    per cycle (the caller tracks which cycles are valid); ``w_*``: writes PE row ``w_row`` of
    weight bank ``w_bank``, ``WEIGHT_WRITE_CYCLES`` later; ``psum``: the result row of the
    activation row that entered ``array_latency(cfg)`` cycles earlier.

    ``forms``: how each bit-parallel PE writes its multiply (``PeForms``; a netlist choice only).
    """

    def __init__(self, cfg: AccelConfig, forms: PeForms = ONE_PRODUCT):
        self.cfg = cfg
        self.forms = forms
        self.latency = array_latency(cfg)
        members = {
            "a": In(data.ArrayLayout(signed(ACT_BITS), cfg.rows)),
            "bank": In(1),
            "w_we": In(1),
            "w_bank": In(1),
            "w_row": In(range(cfg.rows)),
            "w_data": In(data.ArrayLayout(weight_shape(cfg), cfg.cols)),
            "psum": Out(data.ArrayLayout(signed(psum_bits(cfg)), cfg.cols)),
        }
        if cfg.pe == "serial":
            members["plane"] = In(range(planes(cfg)))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        R, C = self.cfg.rows, self.cfg.cols
        is_serial = self.cfg.pe == "serial"

        def make_pe(i: int, j: int):
            if is_serial:
                return serial.SerialPE(self.cfg, psum_bits(self.cfg))
            return self.forms.pe(self.cfg, i, j)

        pe = [[make_pe(i, j) for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(C):
                m.submodules[f"pe_{i}_{j}"] = pe[i][j]

        # input skew: row i waits i cycles (activation, bank and plane travel together)
        for i in range(R):
            a, bank, plane = self.a[i], self.bank, (self.plane if is_serial else None)
            for d in range(i):
                a, bank = delay(m, a, f"skew_a{i}_{d}"), delay(m, bank, f"skew_b{i}_{d}", keep=True)
                if is_serial:
                    plane = delay(m, plane, f"skew_p{i}_{d}", keep=True)
            m.d.comb += [pe[i][0].a_in.eq(a), pe[i][0].bank_in.eq(bank)]
            if is_serial:
                m.d.comb += pe[i][0].plane_in.eq(plane)

        # weight writes land two cycles after the request, through two register stages: one per
        # column (the request's row, enable, bank and the column's data), then one per PE (its
        # write enable, decoded from its column's registers, and its bank). A column's PEs sit
        # together on the FPGA (docs/fpga.md, DSP floorplan), an array row spans the chip, so no
        # net of the write path reaches further than from the array's edge to one column. The
        # per-PE flip-flops are kept apart (synthesis would merge those of a row).
        col_row = [delay(m, self.w_row, f"w_row{j}", keep=True) for j in range(C)]
        col_we = [delay(m, self.w_we, f"w_we{j}", keep=True) for j in range(C)]
        col_bank = [delay(m, self.w_bank, f"w_bank{j}", keep=True) for j in range(C)]
        w_data = [delay(m, delay(m, self.w_data[j], f"w_data{j}_0"), f"w_data{j}_1") for j in range(C)]
        w_we = [[delay(m, col_we[j] & (col_row[j] == i), f"w_we_{i}_{j}", keep=True) for j in range(C)]
                for i in range(R)]
        w_bank = [[delay(m, col_bank[j], f"w_bank_{i}_{j}", keep=True) for j in range(C)] for i in range(R)]

        # mesh: activations right, partial sums down; weights written one PE row at a time
        for i in range(R):
            for j in range(C):
                p = pe[i][j]
                if j + 1 < C:
                    m.d.comb += [pe[i][j + 1].a_in.eq(p.a_out), pe[i][j + 1].bank_in.eq(p.bank_out)]
                    if is_serial:
                        m.d.comb += pe[i][j + 1].plane_in.eq(p.plane_out)
                m.d.comb += p.psum_in.eq(pe[i - 1][j].psum_out if i else 0)
                m.d.comb += [p.w_we.eq(w_we[i][j]), p.w_bank.eq(w_bank[i][j]), p.w_data.eq(w_data[j])]

        # output deskew: column j waits cols-1-j cycles
        for j in range(C):
            s = pe[R - 1][j].psum_out
            for d in range(C - 1 - j):
                s = delay(m, s, f"deskew{j}_{d}")
            m.d.comb += self.psum[j].eq(s)
        return m
