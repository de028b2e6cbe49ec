"""Post-processing unit: requantizes accumulator rows, ``cfg.pp_lanes`` columns per cycle (one
row per cycle with a lane per array column, the default; ``cols / pp_lanes`` cycles per row with
fewer lanes, which saves a DSP-block multiplier and its rounding logic per lane left out).

Per lane: y = clamp(round_shift((acc + bias) * multiplier, shift) + zero_point, lo, qmax),
lo = max(zero_point, qmin) with ReLU else qmin (docs/numerics.md; NumPy twin:
``hw.numerics.requantize``). An eight-stage pipeline (``LATENCY``); the whole pipe stalls while
the output is valid and not taken, so rows are never lost or duplicated under back-pressure.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.config import AccelConfig
from hw.isa import LAYOUTS, Buffer, ChannelParams, Opcode

OUT_BITS = 8  # activations are stored one per byte


def postproc_layouts(cfg: AccelConfig) -> tuple[data.StructLayout, data.ArrayLayout]:
    """Input (accumulators, per-lane parameters, the instruction's relu/zero point) and output
    layouts of one pass through the ``cfg.pp_lanes`` lanes."""
    insn = LAYOUTS[Opcode.POSTPROC]
    lanes = cfg.pp_lanes
    row_in = data.StructLayout(
        {
            "acc": data.ArrayLayout(signed(cfg.acc_bits), lanes),
            "params": data.ArrayLayout(ChannelParams, lanes),
            "relu": insn["relu"].shape,
            "zero_point": insn["zero_point"].shape,
        }
    )
    return row_in, data.ArrayLayout(signed(OUT_BITS), lanes)


LATENCY = 8  # PostProcess's pipeline stages: cycles from a row in to its result row out
OUT_RANGE_BITS = OUT_BITS + 2  # r is saturated to this before the zero point: |zp| < 2**(OUT_BITS-1)
SPLIT = 17  # the 33x24-bit product is four partial products of at most 18x18 bits (one DSP block each)


class PostProcess(wiring.Component):
    """Requantizes one row per cycle in ``LATENCY`` register stages, every one of them short
    enough for a 100 MHz FPGA clock (at most one carry chain, one multiplier or one shifter):

    1. x = acc + bias
    2. four partial products of x (signed, 17-bit low part) and the multiplier (17-bit low part),
       each no wider than an 18x18 DSP block
    3. the partial products summed in pairs
    4. p = x * multiplier, the pairs summed
    5. t = p + 2**(shift-1) (round half up)
    6. r = t >> shift
    7. r saturated to ``OUT_RANGE_BITS`` (exact: the final clamp to 8 bits of r + zero_point
       gives the same result for every r beyond that range)
    8. y = clamp(r + zero_point, lo, qmax)
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        row_in, row_out = postproc_layouts(cfg)
        super().__init__({"i": In(stream.Signature(row_in)), "o": Out(stream.Signature(row_out))})

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, lanes = self.cfg, self.cfg.pp_lanes
        qmin, qmax = cfg.act_min, cfg.act_max
        x_bits = max(cfg.acc_bits, ChannelParams["bias"].width) + 1
        m_bits = ChannelParams["multiplier"].width
        p_bits = x_bits + m_bits + 1
        shift_w = ChannelParams["shift"].width
        top = 1 << shift_w
        n_stages = LATENCY

        # the instruction's fields and the stage valid bits travel with the row
        valid = [Signal(name=f"valid{s}") for s in range(n_stages - 1)]
        zp = [Signal(signed(8), name=f"zp{s}") for s in range(n_stages - 1)]
        relu = [Signal(name=f"relu{s}") for s in range(n_stages - 1)]

        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i.valid), zp[0].eq(self.i.payload.zero_point),
                         relu[0].eq(self.i.payload.relu), self.o.valid.eq(valid[-1])]
            for s in range(1, n_stages - 1):
                m.d.sync += [valid[s].eq(valid[s - 1]), zp[s].eq(zp[s - 1]), relu[s].eq(relu[s - 1])]
            zp_last, relu_last = zp[-1], relu[-1]
            lo = Mux(relu_last & (zp_last > qmin), zp_last, qmin)
            for i in range(lanes):
                def reg(shape, name, _i=i):
                    return Signal(shape, name=f"{name}{_i}")

                prm = self.i.payload.params[i]
                sh = [reg(shift_w, f"sh{s}_") for s in range(5)]
                # 1: bias
                x, mult = reg(signed(x_bits), "x"), reg(m_bits, "mult")
                m.d.sync += [x.eq(self.i.payload.acc[i] + prm.bias), mult.eq(prm.multiplier), sh[0].eq(prm.shift)]
                # 2: partial products (x = x_hi * 2**SPLIT + x_lo, mult = m_hi * 2**SPLIT + m_lo)
                x_lo, x_hi = x[:SPLIT], x[SPLIT:].as_signed()
                m_lo, m_hi = mult[:SPLIT], mult[SPLIT:]
                ll, lh = reg(2 * SPLIT, "ll"), reg(SPLIT + m_bits - SPLIT, "lh")
                hl = reg(signed(x_bits - SPLIT + SPLIT + 1), "hl")
                hh = reg(signed(x_bits - SPLIT + m_bits - SPLIT + 1), "hh")
                m.d.sync += [ll.eq(x_lo * m_lo), lh.eq(x_lo * m_hi), hl.eq(x_hi * m_lo), hh.eq(x_hi * m_hi),
                             sh[1].eq(sh[0])]
                # 3: pairs
                s_lo = reg(2 * SPLIT + m_bits - SPLIT + 1, "s_lo")
                s_hi = reg(signed(x_bits - SPLIT + m_bits + 2), "s_hi")
                m.d.sync += [s_lo.eq(ll + (lh << SPLIT)), s_hi.eq(hl + (hh << SPLIT)), sh[2].eq(sh[1])]
                # 4: the product
                p = reg(signed(p_bits), "p")
                m.d.sync += [p.eq(s_lo + (s_hi << SPLIT)), sh[3].eq(sh[2])]
                # 5: rounding term, ties towards +infinity
                half = (Const(1, top) << sh[3])[1 : top + 1]  # 2**(shift-1), 0 for shift 0
                t = reg(signed(top + 2), "t")
                m.d.sync += [t.eq(p + half), sh[4].eq(sh[3])]
                # 6: rounding shift
                r = reg(signed(p_bits + 1), "r")
                m.d.sync += r.eq(t >> sh[4])
                # 7: saturate r to OUT_RANGE_BITS
                r_max = (1 << (OUT_RANGE_BITS - 1)) - 1
                rc = reg(signed(OUT_RANGE_BITS), "rc")
                m.d.sync += rc.eq(Mux(r > r_max, r_max, Mux(r < -r_max - 1, -r_max - 1, r)))
                # 8: zero point, ReLU, saturation
                y = rc + zp_last
                m.d.sync += self.o.payload[i].eq(Mux(y < lo, lo, Mux(y > qmax, qmax, y)))
        return m


POSTPROC_FIELDS = ("acc_addr", "out_addr", "param_addr", "m", "relu", "zero_point")
WAIT_BITS = 5  # MATMULs a POSTPROC may have to wait for (the controller's in-flight limit)
PostprocCmd = data.StructLayout({**{n: LAYOUTS[Opcode.POSTPROC][n].shape for n in POSTPROC_FIELDS},
                                 "wait": WAIT_BITS})


class PostprocEngine(wiring.Component):
    """Runs a POSTPROC instruction: waits until the ``wait`` MATMULs still in flight when it
    was dispatched (not counting one retiring in that cycle) have retired, so that its
    accumulator rows are final, reads the parameter row, then streams the accumulator rows
    through :class:`PostProcess` into the output buffer: one row per ``cfg.pp_row_cycles``
    cycles, ``pp_lanes`` columns a cycle (the slices after the first come from a register that
    holds the row, since the store engine reads through the same ACC port in between), each
    output row written once its last slice is out.

    While it has rows left to read it reports their range (``reading``, ``acc_lo``,
    ``acc_hi``) so that a later MATMUL does not overwrite them first.
    """

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        acc_aw = scratchpad.addr_bits(cfg, Buffer.ACC)
        super().__init__({
            "cmd": In(stream.Signature(PostprocCmd)),
            "mm_retire": In(1),
            "acc_rd": In(scratchpad.read_port(cfg, Buffer.ACC)),
            "param_rd": In(scratchpad.read_port(cfg, Buffer.PARAM)),
            "out_wr": In(scratchpad.write_port(cfg, Buffer.OUTPUT)),
            "done": Out(1),
            "reading": Out(1),
            "acc_lo": Out(acc_aw + 1),
            "acc_hi": Out(acc_aw + 1),
            "row_in": Out(1),  # a row (or a slice of one, with fewer lanes than columns) enters the pipeline
            "waiting": Out(1),  # a command waits for its MATMULs
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        m.submodules.pp = pp = PostProcess(cfg)
        row_in, _ = postproc_layouts(cfg)

        cmd = Signal(PostprocCmd)
        wait = Signal(WAIT_BITS)
        left = Signal(16)  # rows still to read
        pending = Signal(17)  # rows still to write
        rd_addr = Signal.like(self.acc_rd.addr)
        wr_addr = Signal.like(self.out_wr.addr)
        # the parameter row stays in the read port's data register (read once, in PARAMS)
        params = data.View(data.ArrayLayout(ChannelParams, cfg.cols), self.param_rd.data)
        feed = Signal()  # a slice of the acc row read last goes into the pipeline now
        ratio, lanes = cfg.pp_row_cycles, cfg.pp_lanes
        phase = Signal(range(max(2, ratio)))  # slice of the row being read (0: a new row may be read)
        feed_slice = Signal(range(max(2, ratio)))  # slice fed into the pipeline this cycle
        out_slice = Signal(range(max(2, ratio)))  # slice leaving the pipeline
        out_row = Signal(data.ArrayLayout(signed(OUT_BITS), cfg.cols))  # slices collected so far

        # the range still to read, from registers: acc_hi (rd_addr + left) does not change while
        # the rows are read, and `reading` is left != 0
        reading = Signal()
        acc_hi = Signal.like(self.acc_hi)
        m.d.comb += [self.reading.eq(reading), self.acc_lo.eq(rd_addr), self.acc_hi.eq(acc_hi)]
        m.d.comb += self.acc_rd.en.eq(0)
        m.d.comb += self.param_rd.addr.eq(cmd.param_addr)  # read when en is high; the address is a register
        m.d.sync += feed.eq(0)
        with m.If(feed & (feed_slice != ratio - 1)):  # the row's other slices follow from the held read data
            m.d.sync += [feed.eq(1), feed_slice.eq(feed_slice + 1)]
        with m.Elif(feed):
            m.d.sync += feed_slice.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    p = self.cmd.payload
                    m.d.sync += [cmd.eq(p), wait.eq(p.wait), left.eq(p.m), pending.eq(p.m),
                                 rd_addr.eq(p.acc_addr), wr_addr.eq(p.out_addr), reading.eq(p.m != 0),
                                 acc_hi.eq(p.acc_addr[:len(rd_addr)] + p.m)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.waiting.eq(1)
                with m.If(self.mm_retire):
                    m.d.sync += wait.eq(wait - 1)
                with m.If((wait == 0) | ((wait == 1) & self.mm_retire)):
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                # the read's enable comes from the state register, not from the MATMUL retire
                m.d.comb += self.param_rd.en.eq(1)
                m.d.sync += phase.eq(0)
                m.next = "STREAM"
            with m.State("STREAM"):
                if ratio > 1:
                    m.d.sync += phase.eq(Mux(phase == ratio - 1, 0, phase + 1))
                with m.If(reading & (phase == 0)):  # reading is left != 0, from a register
                    m.d.comb += [self.acc_rd.addr.eq(rd_addr), self.acc_rd.en.eq(1)]
                    m.d.sync += [rd_addr.eq(rd_addr + 1), left.eq(left - 1), feed.eq(1), reading.eq(left != 1)]
                with m.If(self.out_wr.en & (pending == 1)):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

        # the pipeline never stalls: a row is written to the buffer as soon as its last slice is out;
        # the first slice comes straight from the read port, the others from a copy of the row
        # made in that cycle (the port may be read for the store engine meanwhile)
        view = data.View(row_in, pp.i.payload)
        acc_layout = data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)
        if ratio > 1:
            held = Signal(acc_layout, name="held_row")
            with m.If(feed & (feed_slice == 0)):
                m.d.sync += held.eq(self.acc_rd.data)
            acc_row = data.View(acc_layout, Mux(feed_slice == 0, self.acc_rd.data, held.as_value()))
        else:
            acc_row = data.View(acc_layout, self.acc_rd.data)
        for k in range(ratio):
            with m.If(feed_slice == k):
                for i in range(lanes):
                    m.d.comb += [view.acc[i].eq(acc_row[k * lanes + i]), view.params[i].eq(params[k * lanes + i])]
        m.d.comb += [pp.i.valid.eq(feed), view.relu.eq(cmd.relu), view.zero_point.eq(cmd.zero_point),
                     self.row_in.eq(feed), pp.o.ready.eq(1)]
        row_done = pp.o.valid & (out_slice == ratio - 1)
        with m.If(pp.o.valid):
            for k in range(ratio - 1):
                with m.If(out_slice == k):
                    m.d.sync += [out_row[k * lanes + i].eq(pp.o.payload[i]) for i in range(lanes)]
            if ratio > 1:
                m.d.sync += out_slice.eq(Mux(out_slice == ratio - 1, 0, out_slice + 1))
        last_slice = Cat(*(pp.o.payload[i] for i in range(lanes)))
        m.d.comb += [self.out_wr.addr.eq(wr_addr), self.out_wr.en.eq(row_done),
                     self.out_wr.data.eq(Cat(out_row.as_value()[: 8 * (cfg.cols - lanes)], last_slice))]
        with m.If(row_done):
            m.d.sync += [wr_addr.eq(wr_addr + 1), pending.eq(pending - 1)]
        return m
