"""Post-processing unit: requantizes one accumulator row (one lane per array column) per cycle.

Per lane: y = clamp(round_shift((acc + bias) * multiplier, shift) + zero_point, lo, qmax),
lo = max(zero_point, qmin) with ReLU else qmin (docs/numerics.md; NumPy twin:
``sim.arith.requantize``). A four-stage pipeline; the whole pipe stalls while the output
is valid and not taken, so rows are never lost or duplicated under back-pressure.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import AccelConfig
from hw.isa import LAYOUTS, ChannelParams, Opcode

OUT_BITS = 8  # activations are stored one per byte


def postproc_layouts(cfg: AccelConfig) -> tuple[data.StructLayout, data.ArrayLayout]:
    """Input row (accumulators, per-lane parameters, the instruction's relu/zero point)
    and output row layouts."""
    insn = LAYOUTS[Opcode.POSTPROC]
    row_in = data.StructLayout(
        {
            "acc": data.ArrayLayout(signed(cfg.acc_bits), cfg.cols),
            "params": data.ArrayLayout(ChannelParams, cfg.cols),
            "relu": insn["relu"].shape,
            "zero_point": insn["zero_point"].shape,
        }
    )
    return row_in, data.ArrayLayout(signed(OUT_BITS), cfg.cols)


class PostProcess(wiring.Component):
    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        row_in, row_out = postproc_layouts(cfg)
        super().__init__({"i": In(stream.Signature(row_in)), "o": Out(stream.Signature(row_out))})

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, lanes = self.cfg, self.cfg.cols
        qmin, qmax = cfg.act_min, cfg.act_max
        x_bits = max(cfg.acc_bits, ChannelParams["bias"].width) + 1
        p_bits = x_bits + ChannelParams["multiplier"].width + 1
        shift_w = ChannelParams["shift"].width

        # pipeline registers, one set per lane, and the stage valid bits
        x = [Signal(signed(x_bits), name=f"x{i}") for i in range(lanes)]
        p = [Signal(signed(p_bits), name=f"p{i}") for i in range(lanes)]
        r = [Signal(signed(p_bits + 1), name=f"r{i}") for i in range(lanes)]
        mult = [Signal(ChannelParams["multiplier"].width, name=f"mult{i}") for i in range(lanes)]
        sh1 = [Signal(shift_w, name=f"sh1_{i}") for i in range(lanes)]
        sh2 = [Signal(shift_w, name=f"sh2_{i}") for i in range(lanes)]
        zp = [Signal(signed(8), name=f"zp{s}") for s in range(3)]
        relu = [Signal(name=f"relu{s}") for s in range(3)]
        valid = [Signal(name=f"valid{s}") for s in range(3)]

        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i.valid), valid[1].eq(valid[0]), valid[2].eq(valid[1]),
                         self.o.valid.eq(valid[2])]
            m.d.sync += [zp[0].eq(self.i.payload.zero_point), relu[0].eq(self.i.payload.relu)]
            for s in (1, 2):
                m.d.sync += [zp[s].eq(zp[s - 1]), relu[s].eq(relu[s - 1])]
            lo = Mux(relu[2] & (zp[2] > qmin), zp[2], qmin)
            for i in range(lanes):
                prm = self.i.payload.params[i]
                # stage 1: bias
                m.d.sync += [x[i].eq(self.i.payload.acc[i] + prm.bias), mult[i].eq(prm.multiplier),
                             sh1[i].eq(prm.shift)]
                # stage 2: fixed-point multiplier
                m.d.sync += [p[i].eq(x[i] * mult[i]), sh2[i].eq(sh1[i])]
                # stage 3: rounding shift, ties towards +infinity
                top = 1 << shift_w
                half = (Const(1, top) << sh2[i])[1 : top + 1]  # 2**(shift-1), 0 for shift 0
                m.d.sync += r[i].eq((p[i] + half) >> sh2[i])
                # stage 4: zero point, ReLU, saturation
                y = r[i] + zp[2]
                m.d.sync += self.o.payload[i].eq(Mux(y < lo, lo, Mux(y > qmax, qmax, y)))
        return m
