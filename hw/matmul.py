"""The MATMUL engine: weight loader, activation streamer, systolic array and accumulator update.

A MATMUL moves through three stages, each holding one tile, so tiles follow each other with
no gap in the array:
1. load: unpack the tile's packed weights (INT2/INT4/INT8, several to a byte) into the
   weight bank the previous-but-one tile used, one PE row per cycle, as soon as that tile's
   last activation has passed the bank's PEs;
2. stream: read one activation row from the input buffer per cycle into the array;
3. update: ``latency`` cycles later the result row meets its accumulator row, read two cycles
   earlier into a register, and acc = (accumulate ? acc : 0) + psum is written back; the
   updates of the same row in between are forwarded, so back-to-back updates of one row see
   each other.
``retire`` pulses when a tile's last accumulator row is written, in instruction order.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.array import ACT_BITS, ONE_PRODUCT, WEIGHT_WRITE_CYCLES, PeForms, SystolicArray, planes
from hw.config import AccelConfig
from hw.datatypes import DATATYPES
from hw.isa import LAYOUTS, Buffer, GroupParams, Opcode
from hw.serial import terms as serial_terms

MATMUL_FIELDS = ("dtype", "accumulate", "in_addr", "w_addr", "acc_addr", "m", "grouped", "group_addr")
MatmulCmd = data.StructLayout({n: LAYOUTS[Opcode.MATMUL][n].shape for n in MATMUL_FIELDS})


def storage_dtypes(cfg: AccelConfig) -> list[str]:
    """The configuration's datatypes a tile can be stored in: codes of 1, 2, 4 or 8 bits, so that
    a weight-buffer row holds whole PE rows (a 3-bit datatype travels in 4-bit storage)."""
    return [d for d in cfg.weight_dtypes if 8 % DATATYPES[d].bits == 0]


def _check_twos_complement(name: str) -> None:
    dt = DATATYPES[name]
    expect = tuple(c - (1 << dt.bits) if c >> (dt.bits - 1) else c for c in range(1 << dt.bits))
    if dt.values != expect:
        raise ValueError(f"the bit-parallel PE decodes weights as two's complement; {name} is not")


class MatmulEngine(wiring.Component):
    def __init__(self, cfg: AccelConfig, forms: PeForms = ONE_PRODUCT):
        self.cfg = cfg
        self.forms = forms  # how the array's PEs write their multiply (a netlist choice only)
        self.serial = cfg.pe == "serial"
        if not self.serial:
            for name in cfg.weight_dtypes:
                _check_twos_complement(name)
        acc_row = data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)
        self.acc_row = acc_row
        members = {
            "cmd": In(stream.Signature(MatmulCmd)),
            "in_rd": In(scratchpad.read_port(cfg, Buffer.INPUT)),
            "w_rd": In(scratchpad.read_port(cfg, Buffer.WEIGHT)),
            "acc_rd": In(scratchpad.read_port(cfg, Buffer.ACC)),
            "acc_wr": In(scratchpad.write_port(cfg, Buffer.ACC)),
            "retire": Out(1),  # a tile's last accumulator row was written
            "row_in": Out(1),  # an activation row (or bit plane of one) enters the array this cycle
            "pending": Out(1),  # a tile is loading, waiting or streaming
            "idle": Out(1),
        }
        if self.serial:
            members["param_rd"] = In(scratchpad.read_port(cfg, Buffer.PARAM))  # GroupParams rows
            members["fault"] = Out(1)  # a grouped tile names a datatype the hardware lacks
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        """Three stages (class docstring): the weight loader, the activation streamer and the
        accumulator update, each in its own method; ``s`` carries the signals they share."""
        m = Module()
        cfg = self.cfg
        R = cfg.rows
        m.submodules.array = array = SystolicArray(cfg, self.forms)
        L = array.latency
        P = planes(cfg)
        acc_aw = scratchpad.addr_bits(cfg, Buffer.ACC)
        in_aw = scratchpad.addr_bits(cfg, Buffer.INPUT)
        scale_w = GroupParams["scale"].width

        Tile = data.StructLayout({"bank": 1, "in_addr": in_aw, "acc_addr": acc_aw, "m": 16, "accumulate": 1,
                                  "planes": range(P + 1)})
        rowsum_bits = ACT_BITS + R.bit_length()
        Meta = data.StructLayout({"valid": 1, "acc_row": acc_aw, "accumulate": 1, "last": 1, "bank": 1,
                                  "first_plane": 1, "rowsum": signed(rowsum_bits)})

        s = SimpleNamespace(array=array, L=L, P=P, Tile=Tile, Meta=Meta, scale_w=scale_w)
        self._weight_loader(m, s)
        self._streamer(m, s)
        self._accumulator(m, s)
        return m

    def _weight_loader(self, m: Module, s: SimpleNamespace) -> None:
        """Stage 1: each MATMUL's weight tile from the weight buffer into a free PE bank (decoded
        into terms on the bit-serial PE), then handed to the streamer's waiting slot."""
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        array, L, P, Tile, scale_w = s.array, s.L, s.P, s.Tile, s.scale_w
        # ---- stage 1: weight loader -------------------------------------------------------
        ld = Signal(MatmulCmd)
        ld_busy = Signal()
        ld_ready = Signal()  # group parameters known (at once for an ungrouped tile)
        ld_loading = Signal()
        ld_row = Signal(range(R + 1))
        ld_bank = Signal()
        ld_planes = Signal(range(P + 1))
        next_bank = Signal()
        # a bank takes new weights once its last row has crossed the PEs (parallel) or, when
        # the bank also holds the scales the accumulator update reads, left the array (serial)
        hold = L + 3 if self.serial else C + 1
        cooldown = [Signal(range(hold + 1), name=f"cooldown{b}") for b in range(2)]
        nx = Signal(Tile)
        nx_valid = Signal()
        st = Signal(Tile)
        st_valid = Signal()

        def bank_in_use(b):
            cooling = Mux(b, cooldown[1] != 0, cooldown[0] != 0)
            return cooling | (st_valid & (st.bank == b)) | (nx_valid & (nx.bank == b))

        m.d.comb += self.cmd.ready.eq(~ld_busy)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [ld.eq(self.cmd.payload), ld_busy.eq(1), ld_row.eq(0), ld_bank.eq(next_bank),
                         next_bank.eq(~next_bank), ld_ready.eq(~self.cmd.payload.grouped if self.serial else 1)]

        if self.serial:  # per-column datatype, scale and zero point: of the tile being loaded, of each bank
            col_dtype = [Signal(range(32), name=f"col_dtype{j}") for j in range(C)]
            bank_scale = [[Signal(scale_w, name=f"scale{b}_{j}", init=1) for j in range(C)] for b in range(2)]
            zp_w = GroupParams["zero_point"].width
            bank_zp = [[Signal(zp_w, name=f"zp{b}_{j}") for j in range(C)] for b in range(2)]
            self._group_params(m, ld, ld_busy, ld_ready, ld_planes, col_dtype)
            s.bank_scale, s.bank_zp = bank_scale, bank_zp

        # PE row i of a b-bit tile is slot i % (8 // b) of weight-buffer row w_addr + i // (8 // b)
        w_addr = Signal.like(self.w_rd.addr)
        w_slot = Signal(range(8))
        for name in storage_dtypes(cfg):
            dt = DATATYPES[name]
            per_row = 8 // dt.bits
            with m.If(ld.dtype.as_value() == dt.code):
                m.d.comb += [w_addr.eq(ld.w_addr + (ld_row >> (per_row.bit_length() - 1))),
                             w_slot.eq(ld_row & (per_row - 1))]
        issue_w = Signal()
        m.d.comb += issue_w.eq(ld_busy & ld_ready & (ld_row < R) & (ld_loading | ~bank_in_use(ld_bank)))
        m.d.comb += [self.w_rd.addr.eq(w_addr), self.w_rd.en.eq(issue_w)]
        with m.If(issue_w):
            m.d.sync += [ld_loading.eq(1), ld_row.eq(ld_row + 1)]
        if self.serial:
            with m.If(issue_w & (ld_row == 0)):  # the bank is free: its scales go with its weights
                for b in range(2):
                    with m.If(ld_bank == b):
                        m.d.sync += [bank_scale[b][j].eq(self._col_scale[j]) for j in range(C)]
                        m.d.sync += [bank_zp[b][j].eq(self._col_zp[j]) for j in range(C)]

        # one cycle later the buffer row is there: decode the slot into PE row `wr_row`
        wr = Signal()
        wr_row = Signal(range(R))
        wr_slot = Signal(range(8))
        wr_dtype = Signal.like(ld.dtype.as_value())
        wr_bank = Signal()
        codes = [Signal(8, name=f"code{j}") for j in range(C)]  # column j's code, zero-extended
        m.d.sync += [wr.eq(issue_w), wr_row.eq(ld_row), wr_slot.eq(w_slot), wr_dtype.eq(ld.dtype.as_value()),
                     wr_bank.eq(ld_bank)]
        for name in storage_dtypes(cfg):
            b = DATATYPES[name].bits
            per_row = 8 // b
            chunk = (self.w_rd.data.word_select(wr_slot[:per_row.bit_length() - 1], C * b) if per_row > 1
                     else self.w_rd.data)
            with m.If(wr_dtype == DATATYPES[name].code):
                for j in range(C):
                    m.d.comb += codes[j].eq(chunk[j * b:(j + 1) * b])
                    if not self.serial:
                        m.d.comb += array.w_data[j].eq(chunk[j * b:(j + 1) * b].as_signed())
        if self.serial:
            for j in range(C):
                self._decode_term(m, array.w_data[j], codes[j], col_dtype[j])
        m.d.comb += [array.w_we.eq(wr), array.w_row.eq(wr_row), array.w_bank.eq(wr_bank)]

        # hand the loaded tile to the stream stage's waiting slot. PE row i is requested R-1-i
        # cycles before the last `wr` and lands WEIGHT_WRITE_CYCLES later; the tile's first
        # activation reaches row i 4+i cycles after the last `wr` at the earliest (input skew)
        if WEIGHT_WRITE_CYCLES > R + 2:
            raise ValueError("the array would write a tile's weights after its first activation arrives")
        loaded = Signal()
        m.d.comb += loaded.eq(ld_busy & (ld_row == R) & ~wr)
        take_nx = Signal()  # the stream stage takes the waiting tile this cycle

        s.__dict__.update(ld=ld, ld_busy=ld_busy, ld_ready=ld_ready, ld_loading=ld_loading, ld_row=ld_row,
                          ld_bank=ld_bank, ld_planes=ld_planes, hold=hold, cooldown=cooldown, nx=nx,
                          nx_valid=nx_valid, st=st, st_valid=st_valid, loaded=loaded, take_nx=take_nx)

    def _streamer(self, m: Module, s: SimpleNamespace) -> None:
        """Stage 2: each activation row of the tile into the array, once per bit plane."""
        R = self.cfg.rows
        array, P, ld, ld_busy, ld_loading, ld_bank = s.array, s.P, s.ld, s.ld_busy, s.ld_loading, s.ld_bank
        ld_planes, hold, cooldown, nx, nx_valid, st = s.ld_planes, s.hold, s.cooldown, s.nx, s.nx_valid, s.st
        st_valid, loaded, take_nx = s.st_valid, s.loaded, s.take_nx
        # ---- stage 2: activation streamer (each row once per bit plane) -----------------------
        issue = Signal()
        plane = Signal(range(max(P, 2)))  # always 0 on the bit-parallel PE
        last_plane = Signal()
        last = Signal()
        m.d.comb += [issue.eq(st_valid), last_plane.eq(plane == st.planes - 1),
                     last.eq((st.m == 1) & last_plane)]
        m.d.comb += [self.in_rd.addr.eq(st.in_addr), self.in_rd.en.eq(issue), self.row_in.eq(issue)]
        with m.If(issue):
            m.d.sync += plane.eq(Mux(last_plane, 0, plane + 1))
            with m.If(last_plane):
                m.d.sync += [st.in_addr.eq(st.in_addr + 1), st.acc_addr.eq(st.acc_addr + 1), st.m.eq(st.m - 1)]
        m.d.comb += take_nx.eq(nx_valid & (~st_valid | last))
        with m.If(take_nx):
            m.d.sync += [st.eq(nx), st_valid.eq(1), nx_valid.eq(0)]
        with m.Elif(issue & last):
            m.d.sync += st_valid.eq(0)
        with m.If(loaded & (~nx_valid | take_nx)):
            m.d.sync += [
                nx.bank.eq(ld_bank), nx.in_addr.eq(ld.in_addr), nx.acc_addr.eq(ld.acc_addr), nx.m.eq(ld.m),
                nx.accumulate.eq(ld.accumulate), nx.planes.eq(ld_planes if self.serial else 1),
                nx_valid.eq(1), ld_busy.eq(0), ld_loading.eq(0),
            ]

        for b in range(2):
            with m.If(issue & (st.bank == b)):
                m.d.sync += cooldown[b].eq(hold)
            with m.Elif(cooldown[b] != 0):
                m.d.sync += cooldown[b].eq(cooldown[b] - 1)

        # the row read this cycle enters the array next cycle, with its bank and plane
        a_bank = Signal()
        m.d.sync += a_bank.eq(st.bank)
        for i in range(R):
            m.d.comb += array.a[i].eq(self.in_rd.data[i * ACT_BITS:(i + 1) * ACT_BITS].as_signed())
        m.d.comb += array.bank.eq(a_bank)
        if self.serial:
            a_plane = Signal.like(plane)
            m.d.sync += a_plane.eq(plane)
            m.d.comb += array.plane.eq(a_plane)

        s.__dict__.update(issue=issue, plane=plane, last=last)

    def _accumulator(self, m: Module, s: SimpleNamespace) -> None:
        """Stage 3: each result row into its accumulator row (dequantized with its group's zero
        point and scale on the bit-serial PE), with the engine's status."""
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        array, L, Meta = s.array, s.L, s.Meta
        ld_busy, nx_valid, st, st_valid, issue, plane = s.ld_busy, s.nx_valid, s.st, s.st_valid, s.issue, s.plane
        last = s.last
        if self.serial:
            bank_scale, bank_zp = s.bank_scale, s.bank_zp
        # ---- stage 3: accumulator update (with the group scale on the serial PE) -------------
        meta = [Signal(Meta, name=f"meta{d}") for d in range(L + 2)]
        m.d.comb += [meta[0].valid.eq(issue), meta[0].acc_row.eq(st.acc_addr), meta[0].bank.eq(st.bank),
                     meta[0].accumulate.eq(st.accumulate | (plane != 0)), meta[0].last.eq(last),
                     meta[0].first_plane.eq(plane == 0)]
        for d in range(1, L + 2):
            m.d.sync += meta[d].eq(meta[d - 1])
        if self.serial:  # the activation row's sum, for the zero point, once the row is read
            rowsum = sum(array.a[i] for i in range(R))
            m.d.sync += meta[2].rowsum.eq(rowsum)
        # the accumulator row is read two cycles before the result row (meta[L+1]) leaves the
        # array and held in `old`, so neither the block RAM's output nor a bypass lies before the
        # adder. The two updates between that read and its use are forwarded instead: hit_now is
        # the update of this cycle to the same row (its sum, straight from the adder), hit_prev
        # that of the cycle before (kept in `last_sum`); both compares are registered a cycle ahead.
        assert L >= 2, "the accumulator read needs two cycles of array latency"
        rd, hold, upd = meta[L - 1], meta[L], meta[L + 1]
        m.d.comb += [self.acc_rd.addr.eq(rd.acc_row), self.acc_rd.en.eq(rd.valid)]
        hit_now, hit_prev = Signal(), Signal()
        m.d.sync += [hit_now.eq(hold.valid & (rd.acc_row == hold.acc_row)),
                     hit_prev.eq(upd.valid & (rd.acc_row == upd.acc_row))]
        old = Signal(self.acc_row)
        last_sum = Signal(self.acc_row)
        read = data.View(self.acc_row, self.acc_rd.data)
        new = data.View(self.acc_row, self.acc_wr.data)
        m.d.sync += [last_sum.eq(new), old.eq(Mux(hit_now, new, Mux(hit_prev, last_sum, read)))]
        for j in range(C):
            psum = array.psum[j]
            if self.serial:  # dequant: (psum - zero_point * rowsum, once per row) * scale
                zp = Mux(upd.bank, bank_zp[1][j], bank_zp[0][j])
                psum = (psum - Mux(upd.first_plane, zp * upd.rowsum, 0)) * Mux(upd.bank, bank_scale[1][j],
                                                                              bank_scale[0][j])
            m.d.comb += new[j].eq(psum + Mux(upd.accumulate, old[j], 0))
        m.d.comb += [self.acc_wr.addr.eq(upd.acc_row), self.acc_wr.en.eq(upd.valid),
                     self.retire.eq(upd.valid & upd.last)]

        # any row in the array: a register, set from what meta[1..L+1] will hold next cycle (the
        # OR of L+1 bits is not on the path from `idle` into the controller)
        in_flight = Signal()
        m.d.sync += in_flight.eq(Cat(*(meta[d].valid for d in range(0, L + 1))).any())
        m.d.comb += [self.pending.eq(ld_busy | nx_valid | st_valid),
                     self.idle.eq(~ld_busy & ~nx_valid & ~st_valid & ~in_flight)]


    # ---- bit-serial PE: group parameters and weight terms ------------------------------------

    def _group_params(self, m: Module, ld, ld_busy, ld_ready, ld_planes, col_dtype) -> None:
        """Each column's datatype and scale, and the tile's bit planes (its widest mantissa):
        from the instruction for an ungrouped tile, else from the GroupParams row, whose
        datatypes are checked (``fault``)."""
        cfg, C = self.cfg, self.cfg.cols
        scale_w = GroupParams["scale"].width
        self._col_scale = [Signal(scale_w, name=f"col_scale{j}") for j in range(C)]
        self._col_zp = [Signal(GroupParams["zero_point"].width, name=f"col_zp{j}") for j in range(C)]

        def planes_of(tag, storage, name: str):
            ok, pl = Signal(name=f"{name}_ok"), Signal(range(planes(cfg) + 1), name=f"{name}_planes")
            for dname in cfg.weight_dtypes:
                dt = DATATYPES[dname]
                with m.If((tag == dt.code) & (storage >= dt.bits)):
                    m.d.comb += [ok.eq(1), pl.eq(dt.mant_bits)]
            return ok, pl

        accept = self.cmd.valid & self.cmd.ready
        p = self.cmd.payload
        _, cmd_planes = planes_of(p.dtype.as_value(), 8, "cmd")
        with m.If(accept):
            m.d.sync += ld_planes.eq(cmd_planes)
            m.d.sync += [col_dtype[j].eq(p.dtype.as_value()) for j in range(C)]
            m.d.sync += [self._col_scale[j].eq(1) for j in range(C)]
            m.d.sync += [self._col_zp[j].eq(0) for j in range(C)]

        asked = Signal()
        m.d.comb += [self.param_rd.addr.eq(ld.group_addr), self.param_rd.en.eq(ld_busy & ~ld_ready & ~asked)]
        with m.If(ld_busy & ~ld_ready & ~asked):
            m.d.sync += asked.eq(1)
        got = ld_busy & ~ld_ready & asked
        gp = data.View(data.ArrayLayout(GroupParams, C), self.param_rd.data)
        storage = Signal(4)
        for name in cfg.weight_dtypes:
            with m.If(ld.dtype.as_value() == DATATYPES[name].code):
                m.d.comb += storage.eq(DATATYPES[name].bits)
        bad = []
        widest = Const(0)
        for j in range(C):
            ok, pl = planes_of(gp[j].dtype.as_value(), storage, f"col{j}")
            bad.append(~ok)
            running_max = Signal(range(planes(cfg) + 1), name=f"widest{j}")  # a signal per step: no tree blow-up
            m.d.comb += running_max.eq(Mux(pl > widest, pl, widest))
            widest = running_max
        with m.If(got):
            m.d.sync += [ld_ready.eq(1), asked.eq(0), ld_planes.eq(widest)]
            m.d.sync += [col_dtype[j].eq(gp[j].dtype.as_value()) for j in range(C)]
            m.d.sync += [self._col_scale[j].eq(gp[j].scale) for j in range(C)]
            m.d.sync += [self._col_zp[j].eq(gp[j].zero_point) for j in range(C)]
            m.d.comb += self.fault.eq(Cat(*bad).any())

    def _decode_term(self, m: Module, target, code, tag) -> None:
        """A column's code -> its (sign, mant, exp) term in the column's datatype. Integer ranges
        decode arithmetically (two's complement or unsigned), value sets through a table of
        ``Datatype.terms``; codes use the low bits of their storage."""
        for name in self.cfg.weight_dtypes:
            dt = DATATYPES[name]
            raw = code[:dt.bits]
            with m.If(tag == dt.code):
                if dt.values == tuple(range(1 << dt.bits)):  # unsigned
                    m.d.comb += [target.sign.eq(0), target.mant.eq(raw), target.exp.eq(0)]
                elif dt.values == tuple(c - (1 << dt.bits) if c >> (dt.bits - 1) else c
                                        for c in range(1 << dt.bits)):  # two's complement
                    v = raw.as_signed()
                    m.d.comb += [target.sign.eq(v < 0), target.mant.eq(Mux(v < 0, -v, v)), target.exp.eq(0)]
                else:
                    with m.Switch(raw):
                        for c, (sg, mt, ex) in enumerate(serial_terms(dt)):
                            with m.Case(c):
                                m.d.comb += [target.sign.eq(sg), target.mant.eq(mt), target.exp.eq(ex)]
