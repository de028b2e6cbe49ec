"""The controller: instruction fetch and decode, the load / compute / store queues, their
dependency tokens, dispatch to the engines, in-order retirement, error halts and a watchdog.

Fetch reads the program through its own DMA reader into a FIFO, asking only for as many
instructions as the FIFO has room for, so fetched data never blocks the shared read channel.
Decode checks each word (ILLEGAL_OPCODE, RESERVED_BITS, BAD_DEPS) and appends it, with its
index, to the queue that executes it. Each queue dispatches its head when the tokens it pops
are there, the channels it pushes have room (counting pushes promised to instructions still
running), the engine can take it and its operands are in range; otherwise the run halts with
the error code (BAD_BUFFER, BAD_LENGTH, DRAM_RANGE, SRAM_RANGE, BAD_DTYPE). Tokens are pushed
when the work is complete, in program order per queue. After an error nothing new is
dispatched; the run ends once the running work has finished, so no transfer is cut short.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.axi import axi4_read
from hw.config import AccelConfig
from hw.datatypes import DATATYPES
from hw.dma import DmaRead
from hw.extents import SPAN_BITS, SRAM_ROWS_BITS, Extents, TransferExtents
from hw.isa import (
    INSN_BITS,
    INSN_BYTES,
    LAYOUTS,
    LOADABLE,
    RESERVED,
    STORABLE,
    Buffer,
    Deps,
    ErrorCode,
    Header,
    Opcode,
    Queue,
    is_enum_shape,
)
from hw.matmul import MATMUL_FIELDS, MatmulCmd, storage_dtypes
from hw.postproc import POSTPROC_FIELDS, WAIT_BITS, PostprocCmd
from hw.transfer import MEM_FIELDS, MemCmd

FETCH_DEPTH = 16  # instructions the fetch FIFO holds
FETCH_BURST = 8  # instructions asked for at a time
ROB_DEPTH = 8  # compute instructions dispatched and not yet retired
WATCHDOG_CYCLES = 4096  # cycles without any progress before a run ends in DEADLOCK
PC_BITS = 32

# token channels: (from, to); a queue pops from (neighbour -> self) and pushes (self -> neighbour)
CHANNELS = ((Queue.LOAD, Queue.COMPUTE), (Queue.COMPUTE, Queue.LOAD),
            (Queue.COMPUTE, Queue.STORE), (Queue.STORE, Queue.COMPUTE))
PREV = {Queue.LOAD: None, Queue.COMPUTE: Queue.LOAD, Queue.STORE: Queue.COMPUTE}
NEXT = {Queue.LOAD: Queue.COMPUTE, Queue.COMPUTE: Queue.STORE, Queue.STORE: None}

# a queued instruction: its word, its index and the verdict of its operand checks (decode stage 2)
# and, for a MATMUL, the end of its accumulator rows (acc_addr + m), for dispatch's check against
# the rows a POSTPROC still reads
Entry = data.StructLayout({"word": INSN_BITS, "pc": PC_BITS, "fault": 1, "code": ErrorCode, "acc_end": 17})


def _enum_ok(value, shape) -> object:
    """True when an enum-shaped field holds one of its members."""
    raw = value.as_value() if hasattr(value, "as_value") else value
    return Cat(*(raw == member.value for member in shape)).any()


def _view(op: Opcode, word):
    return data.View(LAYOUTS[op], word)


class TokenChannel:
    """Tokens from one queue to another: ``count`` available, ``promised`` to running work."""

    def __init__(self, src: Queue, dst: Queue, depth: int):
        name = f"{src.name.lower()}_to_{dst.name.lower()}"
        self.count = Signal(range(depth + 1), name=f"{name}_count")
        self.promised = Signal(range(depth + 1), name=f"{name}_promised")
        self.pop = Signal(name=f"{name}_pop")
        self.promise = Signal(name=f"{name}_promise")  # reserve room at dispatch
        self.push = Signal(name=f"{name}_push")  # a promised token arrives
        self.push_now = Signal(name=f"{name}_push_now")  # SYNC: push without a promise
        self.depth = depth
        # count + promised, kept in its own register so that `room` is a compare of a register
        self.used = Signal(range(depth + 1), name=f"{name}_used")

    @property
    def available(self):
        return self.count != 0

    @property
    def room(self):
        return self.used < self.depth

    def elaborate(self, m: Module, clear) -> None:
        with m.If(clear):
            m.d.sync += [self.count.eq(0), self.promised.eq(0), self.used.eq(0)]
        with m.Else():
            m.d.sync += [self.count.eq(self.count - self.pop + self.push + self.push_now),
                         self.promised.eq(self.promised + self.promise - self.push),
                         self.used.eq(self.used - self.pop + self.push_now + self.promise)]


class Controller(wiring.Component):
    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            # run control (from the CSRs)
            "start": In(1), "prog_base": In(32), "prog_len": In(32),
            "busy": Out(1), "error": Out(ErrorCode), "error_pc": Out(PC_BITS),
            # instruction fetch
            "fetch_axi": Out(axi4_read(cfg)),
            # engines
            "load": Out(stream.Signature(MemCmd)), "load_done": In(1), "load_busy": In(1), "load_error": In(1),
            "store": Out(stream.Signature(MemCmd)), "store_done": In(1), "store_busy": In(1), "store_error": In(1),
            "mm": Out(stream.Signature(MatmulCmd)), "mm_retire": In(1), "mm_idle": In(1), "mm_fault": In(1),
            "pp": Out(stream.Signature(PostprocCmd)), "pp_done": In(1),
            "pp_reading": In(1), "pp_acc_lo": In(scratchpad.addr_bits(cfg, Buffer.ACC) + 1),
            "pp_acc_hi": In(scratchpad.addr_bits(cfg, Buffer.ACC) + 1),
            # for the counters and the watchdog
            "decoded": Out(1), "mm_waiting": Out(1), "activity": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        running = Signal()
        halting = Signal()  # an error happened: dispatch nothing new, wait for running work
        clear = Signal()
        m.d.comb += [clear.eq(self.start & ~running), self.busy.eq(running)]

        # Each place that can raise an error registers it (with its code and pc) in a slot of its
        # own; a cycle later the first slot raised, in the order of the places below (the last
        # wins a tie, as before), sets ERROR and halting. The checks and the choice among them
        # are then two short paths instead of one long one across the controller; a run does not
        # end while a slot is raised.
        err = Signal(ErrorCode)
        err_pc = Signal(PC_BITS)
        raise_err = Signal()  # a slot is raised (from registers)
        new_err = Signal(ErrorCode)
        new_pc = Signal(PC_BITS)
        slots: list[tuple[Signal, Signal, Signal]] = []
        m.d.comb += [self.error.eq(err), self.error_pc.eq(err_pc)]
        with m.If(clear):
            m.d.sync += [running.eq(1), halting.eq(0), err.eq(ErrorCode.OK), err_pc.eq(0)]
        with m.Elif(raise_err & ~halting):
            m.d.sync += [halting.eq(1), err.eq(new_err), err_pc.eq(new_pc)]

        def fail(code: ErrorCode, pc) -> None:
            k = len(slots)
            slot = (Signal(name=f"fail{k}"), Signal(ErrorCode, name=f"fail{k}_code"),
                    Signal(PC_BITS, name=f"fail{k}_pc"))
            slots.append(slot)
            m.d.comb += [slot[0].eq(1), slot[1].eq(code), slot[2].eq(pc)]

        # ---- fetch ----------------------------------------------------------------------------
        m.submodules.fetcher = fetcher = DmaRead(cfg, INSN_BYTES)
        wiring.connect(m, wiring.flipped(self.fetch_axi), fetcher.axi)
        # fetched words pass through the transfer-extents pipeline (hw/extents.py) into the FIFO;
        # `owed` counts the words asked for and not yet in the FIFO, those in the pipeline included
        m.submodules.extents = extents = TransferExtents(cfg)
        m.submodules.fetched = fetched = fifo.SyncFIFOBuffered(width=Extents.size, depth=FETCH_DEPTH)
        asked = Signal(PC_BITS)  # instructions requested so far
        owed = Signal(range(FETCH_DEPTH + 1))  # requested, not yet arrived
        fetch_fault = Signal()  # the instruction at `asked` lies past the end of DRAM
        want = Signal(range(FETCH_BURST + 1))
        # kept as registers, updated by each request, so that sizing the next request takes
        # one short compare: instructions left, the next address and the DRAM bytes beyond it
        left = Signal(PC_BITS)  # prog_len - asked
        fetch_addr = Signal(PC_BITS + 5)  # prog_base + asked * INSN_BYTES
        dram_left = Signal(signed(PC_BITS + 7))  # dram_bytes - fetch_addr
        room = Signal(range(FETCH_DEPTH + 2))
        m.d.comb += room.eq(FETCH_DEPTH - fetched.level - owed)
        m.d.comb += want.eq(Mux(left < FETCH_BURST, left, FETCH_BURST))
        # near the end of DRAM, ask one instruction at a time; the first one outside is a fault
        past_dram = dram_left < want * INSN_BYTES
        outside = dram_left < INSN_BYTES
        # the request's size is computed in the cycle after `left` and `dram_left` change and
        # kept in registers (`sized`): a request goes out at most every other cycle, 8
        # instructions at a time, and its handshake is a compare away from a register
        sized = Signal()
        n_ask = Signal(range(FETCH_BURST + 1))
        any_left = Signal()
        outside_r = Signal()
        m.d.comb += [
            fetcher.cmd.payload.dram_addr.eq(fetch_addr),
            fetcher.cmd.payload.rows.eq(1),
            fetcher.cmd.payload.row_bytes.eq(n_ask * INSN_BYTES),
            fetcher.cmd.payload.dram_stride.eq(0),
            fetcher.cmd.valid.eq(running & ~halting & ~fetch_fault & sized & any_left & ~outside_r
                                 & (room >= n_ask)),
        ]
        got = Signal()  # a word enters the FIFO
        m.d.comb += [extents.valid.eq(fetcher.rows.valid), extents.word.eq(fetcher.rows.payload.data),
                     fetcher.rows.ready.eq(1), got.eq(extents.out_valid),
                     fetched.w_data.eq(extents.out), fetched.w_en.eq(got & ~halting)]
        asked_now = Signal()
        m.d.comb += asked_now.eq(fetcher.cmd.valid & fetcher.cmd.ready)
        with m.If(clear):
            m.d.sync += [asked.eq(0), owed.eq(0), fetch_fault.eq(0), left.eq(self.prog_len),
                         fetch_addr.eq(self.prog_base), dram_left.eq(cfg.dram_bytes - self.prog_base),
                         sized.eq(0)]
        with m.Else():
            m.d.sync += owed.eq(owed + Mux(asked_now, n_ask, 0) - got)
            with m.If(asked_now):
                m.d.sync += [asked.eq(asked + n_ask), left.eq(left - n_ask),
                             fetch_addr.eq(fetch_addr + n_ask * INSN_BYTES),
                             dram_left.eq(dram_left - n_ask * INSN_BYTES), sized.eq(0)]
            with m.Else():
                m.d.sync += [sized.eq(1), n_ask.eq(Mux(past_dram, 1, want)), any_left.eq(want != 0),
                             outside_r.eq(outside)]
            with m.If(running & ~halting & sized & any_left & outside_r):
                m.d.sync += fetch_fault.eq(1)

        # ---- decode ---------------------------------------------------------------------------
        pc = Signal(PC_BITS)  # index of the instruction at the FIFO head
        with m.If(fetcher.bus_error):  # ERROR_PC: the first instruction not yet decoded
            fail(ErrorCode.BUS_ERROR, pc)
        ended = Signal()
        overrun = Signal()
        head_entry = data.View(Extents, fetched.r_data)
        word = head_entry.word
        hdr = data.View(Header, word[:Header.size])
        opcode = hdr.opcode.as_value()
        queue_of = Signal(Queue)
        legal = Signal()
        fields_ok = Signal()
        deps_ok = Signal()
        for op in Opcode:
            with m.If(opcode == op.value):
                m.d.comb += legal.eq(1)
                v = _view(op, word)
                ok = Const(1)
                for name, f in LAYOUTS[op]:
                    if name == RESERVED:
                        ok = ok & (v[name] == 0)
                    elif name not in ("opcode", "deps") and is_enum_shape(f.shape):
                        ok = ok & _enum_ok(v[name], f.shape)
                m.d.comb += fields_ok.eq(ok)
                if op is Opcode.SYNC:
                    m.d.comb += queue_of.eq(v.queue)
                elif op is not Opcode.END:
                    m.d.comb += queue_of.eq({Opcode.LOAD: Queue.LOAD, Opcode.STORE: Queue.STORE}.get(op, Queue.COMPUTE))
        deps = hdr.deps
        no_prev = queue_of == Queue.LOAD
        no_next = queue_of == Queue.STORE
        m.d.comb += deps_ok.eq(~(no_prev & (deps.pop_prev | deps.push_prev))
                               & ~(no_next & (deps.pop_next | deps.push_next)))

        # Each queue holds one entry more than insn_queue_depth: d1 writes to it on a flag
        # registered the cycle before (`has_room`: at most insn_queue_depth - 1 entries then), not
        # on the FIFO's own w_rdy, so the queues' levels are no longer on the path through d1,
        # d0 and the instruction FIFO's read. A queue still takes insn_queue_depth entries.
        # At insn_queue_depth = 1 the FIFO holds three: a two-entry SyncFIFOBuffered is one
        # memory row and its output register, and its memory is still full in the cycle after
        # a write into it empty, when the registered flag lets a second write through; that
        # write would be dropped.
        queues = {}
        has_room = {}
        for q in Queue:
            qf = fifo.SyncFIFOBuffered(width=Entry.size, depth=max(cfg.insn_queue_depth + 1, 3))
            m.submodules[f"{q.name.lower()}_queue"] = queues[q] = qf
            has_room[q] = Signal(name=f"{q.name.lower()}_queue_has_room")
            m.d.sync += has_room[q].eq(qf.level < cfg.insn_queue_depth)

        # A second decode stage (d1) takes the instruction a cycle later, with the products of
        # its range checks registered, finishes the checks and writes the instruction, the
        # verdict included, to its queue; dispatch then only reads the verdict. d0's own errors
        # and END wait until d1 is empty, so errors are raised in program order.
        d1_valid = Signal()
        d1_word = Signal(INSN_BITS)
        d1_pc = Signal(PC_BITS)
        d1_queue = Signal(Queue)
        # a transfer's (rows - 1) * dram_stride and rows * scratchpad rows per DRAM row, computed
        # on the way into the FIFO
        span, sram_rows = head_entry.span, head_entry.sram_rows
        d1_span = Signal(SPAN_BITS)
        d1_sram_rows = Signal(SRAM_ROWS_BITS)

        d1_fault = Signal()
        d1_code = Signal(ErrorCode)
        d1_op = data.View(Header, d1_word[:Header.size]).opcode.as_value()
        d1_mem = _view(Opcode.LOAD, d1_word)
        for op, allowed in ((Opcode.LOAD, LOADABLE), (Opcode.STORE, STORABLE)):
            f, c = self._check_transfer(m, d1_mem, allowed, op.name.lower(), d1_span, d1_sram_rows)
            with m.If(d1_op == op.value):
                m.d.comb += [d1_fault.eq(f), d1_code.eq(c)]
        f, c = self._check_compute(m, _view(Opcode.MATMUL, d1_word), _view(Opcode.POSTPROC, d1_word), d1_op)
        with m.If((d1_op == Opcode.MATMUL.value) | (d1_op == Opcode.POSTPROC.value)):
            m.d.comb += [d1_fault.eq(f), d1_code.eq(c)]
        d1_acc_end = Signal(17)
        d1_mm = _view(Opcode.MATMUL, d1_word)
        m.d.comb += d1_acc_end.eq(d1_mm.acc_addr + d1_mm.m)
        d1_full = Signal()  # d1's queue has no room
        for q in Queue:
            with m.If(d1_queue == q):
                m.d.comb += d1_full.eq(~has_room[q])
            m.d.comb += queues[q].w_data.eq(Cat(d1_word, d1_pc, d1_fault, d1_code, d1_acc_end))
        d1_leave = Signal()
        m.d.comb += d1_leave.eq(d1_valid & ~d1_full & ~halting)
        with m.If(d1_leave):
            for q in Queue:
                with m.If(d1_queue == q):
                    m.d.comb += queues[q].w_en.eq(1)
        d1_free = ~d1_valid | d1_leave

        decoding = Signal()
        m.d.comb += decoding.eq(running & ~halting & ~ended & fetched.r_rdy)
        is_end = opcode == Opcode.END.value
        take = Signal()  # d0's instruction moves to d1
        with m.If(decoding):
            with m.If(~legal):
                with m.If(~d1_valid):
                    fail(ErrorCode.ILLEGAL_OPCODE, pc)
            with m.Elif(~fields_ok):
                with m.If(~d1_valid):
                    fail(ErrorCode.RESERVED_BITS, pc)
            with m.Elif(is_end):
                with m.If(~d1_valid):
                    m.d.comb += [fetched.r_en.eq(1), self.decoded.eq(1)]
                    m.d.sync += [ended.eq(1), pc.eq(pc + 1)]
            with m.Elif(~deps_ok):
                with m.If(~d1_valid):
                    fail(ErrorCode.BAD_DEPS, pc)
            with m.Elif(d1_free):
                m.d.comb += [fetched.r_en.eq(1), self.decoded.eq(1), take.eq(1)]
                m.d.sync += pc.eq(pc + 1)
        # d1's registers load whenever d1 is free, whatever d0 holds: their enable does not wait
        # for the decode of the fetched word, and their contents matter only while d1_valid
        with m.If(d1_free):
            m.d.sync += [d1_word.eq(word), d1_pc.eq(pc), d1_queue.eq(queue_of),
                         d1_span.eq(span), d1_sram_rows.eq(sram_rows)]
        with m.If(take):
            m.d.sync += d1_valid.eq(1)
        with m.Elif(d1_leave | halting | clear):
            m.d.sync += d1_valid.eq(0)
        # the word at `pc` never comes: past DRAM, or past the program without END. The two pc
        # compares are registers, a cycle late: pc and asked only move while words are on their
        # way (decode took one, so it was there; fetch asked, so owed != 0), and a cycle later
        # the flags are current again; `clear` sets them for pc = asked = 0.
        pc_at_asked = Signal()
        pc_at_end = Signal()
        with m.If(clear):
            m.d.sync += [pc_at_asked.eq(1), pc_at_end.eq(self.prog_len == 0)]
        with m.Else():
            m.d.sync += [pc_at_asked.eq(pc == asked), pc_at_end.eq(pc == self.prog_len)]
        with m.If(running & ~halting & ~ended & ~fetched.r_rdy & (owed == 0) & pc_at_asked):
            with m.If(fetch_fault):
                fail(ErrorCode.DRAM_RANGE, pc)
            with m.Elif(pc_at_end):
                m.d.comb += overrun.eq(1)
        with m.If(clear):
            m.d.sync += [pc.eq(0), ended.eq(0)]

        # ---- tokens ---------------------------------------------------------------------------
        chan = {(s, d): TokenChannel(s, d, cfg.dep_queue_depth) for s, d in CHANNELS}
        for c in chan.values():
            c.elaborate(m, clear)

        def head(q: Queue):
            e = data.View(Entry, queues[q].r_data)
            return e, data.View(Header, e.word[:Header.size])

        def token_ready(q: Queue, deps) -> object:
            ok = Const(1)
            if PREV[q] is not None:
                ok = ok & (~deps.pop_prev | chan[PREV[q], q].available) & (~deps.push_prev | chan[q, PREV[q]].room)
            if NEXT[q] is not None:
                ok = ok & (~deps.pop_next | chan[NEXT[q], q].available) & (~deps.push_next | chan[q, NEXT[q]].room)
            return ok

        def take_tokens(q: Queue, deps, promise: bool) -> None:
            for nb, pop, push in ((PREV[q], deps.pop_prev, deps.push_prev), (NEXT[q], deps.pop_next, deps.push_next)):
                if nb is None:
                    continue
                m.d.comb += chan[nb, q].pop.eq(pop)
                if promise:
                    m.d.comb += chan[q, nb].promise.eq(push)
                else:
                    m.d.comb += chan[q, nb].push_now.eq(push)

        def deliver(q: Queue, flags) -> None:
            """A completed instruction's promised tokens arrive."""
            if PREV[q] is not None:
                m.d.comb += chan[q, PREV[q]].push.eq(flags.push_prev)
            if NEXT[q] is not None:
                m.d.comb += chan[q, NEXT[q]].push.eq(flags.push_next)

        dispatching = running & ~halting

        # ---- load and store queues ------------------------------------------------------------
        for q, port, done, engine_busy, bus_error in (
            (Queue.LOAD, self.load, self.load_done, self.load_busy, self.load_error),
            (Queue.STORE, self.store, self.store_done, self.store_busy, self.store_error),
        ):
            qf = queues[q]
            e, h = head(q)
            v = _view(Opcode.LOAD, e.word)  # LOAD and STORE share one layout
            flags = Signal(Deps, name=f"{q.name.lower()}_flags")
            in_flight_pc = Signal(PC_BITS, name=f"{q.name.lower()}_pc")
            tokens = token_ready(q, h.deps)
            is_sync = h.opcode.as_value() == Opcode.SYNC.value
            fault, code = e.fault, e.code
            for n in MEM_FIELDS:
                m.d.comb += getattr(port.payload, n).eq(v[n])
            with m.If(dispatching & qf.r_rdy & tokens):
                with m.If(is_sync):
                    with m.If(~engine_busy):
                        m.d.comb += qf.r_en.eq(1)
                        take_tokens(q, h.deps, promise=False)
                with m.Elif(fault):
                    fail(code, e.pc)
                with m.Else():
                    m.d.comb += port.valid.eq(1)
                    with m.If(port.ready):
                        m.d.comb += qf.r_en.eq(1)
                        take_tokens(q, h.deps, promise=True)
                        m.d.sync += [flags.eq(h.deps), in_flight_pc.eq(e.pc)]
            with m.If(bus_error):  # the transfer still completes; the run then halts
                fail(ErrorCode.BUS_ERROR, in_flight_pc)
            with m.If(done):
                deliver(q, flags)

        # ---- compute queue --------------------------------------------------------------------
        # Dispatch moves the head into an issue register (taking its tokens and a ROB entry) when
        # that register is empty; the engines take their command from it. The engines' ready is
        # then no longer on the path through the token, ROB and queue logic, for one cycle more per
        # compute instruction (each keeps an engine busy for many). The issue register holds one
        # instruction, so a MATMUL's overlap check still sees every POSTPROC before it running.
        qf = queues[Queue.COMPUTE]
        e, h = head(Queue.COMPUTE)
        op = h.opcode.as_value()
        mm = _view(Opcode.MATMUL, e.word)
        iss_valid = Signal()
        iss_pp = Signal()  # the issued instruction is a POSTPROC (else a MATMUL)
        iss_word = Signal(INSN_BITS)
        iss_pc = Signal(PC_BITS)
        iss_mm, iss_pp_view = _view(Opcode.MATMUL, iss_word), _view(Opcode.POSTPROC, iss_word)
        for n in MATMUL_FIELDS:
            m.d.comb += getattr(self.mm.payload, n).eq(iss_mm[n])
        for n in POSTPROC_FIELDS:
            m.d.comb += getattr(self.pp.payload, n).eq(iss_pp_view[n])
        m.d.comb += [self.mm.valid.eq(iss_valid & ~iss_pp), self.pp.valid.eq(iss_valid & iss_pp)]
        accepted = (self.mm.valid & self.mm.ready) | (self.pp.valid & self.pp.ready)

        # in-order retirement: a FIFO of (is_postproc, push flags) per dispatched MATMUL/POSTPROC
        Rob = data.StructLayout({"postproc": 1, "push_prev": 1, "push_next": 1})
        m.submodules.rob = rob = fifo.SyncFIFOBuffered(width=Rob.size, depth=ROB_DEPTH)
        rob_head = data.View(Rob, rob.r_data)
        mm_done = Signal(range(ROB_DEPTH + 2))
        pp_done = Signal(range(ROB_DEPTH + 2))
        mm_inflight = Signal(WAIT_BITS)
        retire_mm = rob.r_rdy & ~rob_head.postproc & (mm_done != 0)
        retire_pp = rob.r_rdy & rob_head.postproc & (pp_done != 0)
        m.d.comb += rob.r_en.eq(retire_mm | retire_pp)
        with m.If(rob.r_en):
            deliver(Queue.COMPUTE, rob_head)
        m.d.sync += [mm_done.eq(mm_done + self.mm_retire - retire_mm), pp_done.eq(pp_done + self.pp_done - retire_pp)]

        mm_dispatch = Signal()
        m.d.comb += mm_dispatch.eq(self.mm.valid & self.mm.ready)
        m.d.sync += mm_inflight.eq(mm_inflight + mm_dispatch - self.mm_retire)
        # the engine checks a grouped tile's datatypes once it has read them: a fault belongs to
        # the MATMUL it took last
        mm_pc = Signal(PC_BITS)
        with m.If(mm_dispatch):
            m.d.sync += mm_pc.eq(iss_pc)
        with m.If(self.mm_fault):
            fail(ErrorCode.BAD_DTYPE, mm_pc)
        m.d.comb += self.pp.payload.wait.eq(mm_inflight - self.mm_retire)

        tokens = token_ready(Queue.COMPUTE, h.deps)
        fault, code = e.fault, e.code
        overlap = (self.pp_reading & (mm.acc_addr < self.pp_acc_hi) & (self.pp_acc_lo < e.acc_end))
        m.d.comb += rob.w_data.eq(Cat(op == Opcode.POSTPROC.value, h.deps.push_prev, h.deps.push_next))
        m.d.comb += self.mm_waiting.eq((dispatching & qf.r_rdy & (op == Opcode.MATMUL.value) & ~qf.r_en)
                                       | (self.mm.valid & ~self.mm.ready))
        with m.If(accepted):
            m.d.sync += iss_valid.eq(0)
        with m.If(dispatching & qf.r_rdy & ~iss_valid):
            with m.If(tokens):
                with m.If(op == Opcode.SYNC.value):
                    with m.If(~rob.r_rdy & self.mm_idle & (mm_done == 0) & (pp_done == 0)):
                        m.d.comb += qf.r_en.eq(1)
                        take_tokens(Queue.COMPUTE, h.deps, promise=False)
                with m.Elif(fault):
                    fail(code, e.pc)
                with m.Elif(rob.w_rdy & ((op != Opcode.MATMUL.value) | ~overlap)):
                    m.d.comb += [qf.r_en.eq(1), rob.w_en.eq(1)]
                    take_tokens(Queue.COMPUTE, h.deps, promise=True)
                    m.d.sync += [iss_valid.eq(1), iss_pp.eq(op == Opcode.POSTPROC.value), iss_word.eq(e.word),
                                 iss_pc.eq(e.pc)]
        with m.If(clear):
            m.d.sync += iss_valid.eq(0)

        # ---- end of run -----------------------------------------------------------------------
        queues_empty = Cat(*(~queues[q].r_rdy for q in Queue)).all() & ~d1_valid
        engines_idle = (~self.load_busy & ~self.store_busy & self.mm_idle & ~rob.r_rdy & (owed == 0)
                        & ~raise_err)
        idle_cycles = Signal(range(WATCHDOG_CYCLES + 1))
        with m.If(~running | self.activity | self.decoded | d1_leave | qf.r_en | queues[Queue.LOAD].r_en
                  | queues[Queue.STORE].r_en | rob.r_en | accepted):
            m.d.sync += idle_cycles.eq(0)
        with m.Else():
            m.d.sync += idle_cycles.eq(idle_cycles + 1)
        # the lowest pc waiting (in decode or at a queue head), one compare per cycle: a register
        # per step, as the watchdog only reads it after WATCHDOG_CYCLES cycles in which none of
        # these has changed
        waiting_pc = Signal(PC_BITS, name="waiting_pc_decode")
        m.d.sync += waiting_pc.eq(Mux(d1_valid, d1_pc, pc))
        for q in Queue:
            e, _ = head(q)
            lowest = Signal(PC_BITS, name=f"waiting_pc_{q.name.lower()}")
            m.d.sync += lowest.eq(Mux(queues[q].r_rdy & (e.pc < waiting_pc), e.pc, waiting_pc))
            waiting_pc = lowest
        with m.If(running & (idle_cycles == WATCHDOG_CYCLES)):
            fail(ErrorCode.DEADLOCK, waiting_pc)
        fetch_drained = ~fetched.r_rdy & (owed == 0)
        with m.If(running & engines_idle & ~clear):
            with m.If(halting):
                with m.If(queues_empty & fetch_drained):
                    m.d.sync += running.eq(0)
            with m.Elif(queues_empty & (ended | overrun)):
                m.d.sync += running.eq(0)
                with m.If(overrun & ~ended):
                    m.d.sync += [err.eq(ErrorCode.PROGRAM_OVERRUN), err_pc.eq(pc)]
        # after an error, what was fetched and queued is dropped before the run ends
        with m.If(halting):
            m.d.comb += fetched.r_en.eq(fetched.r_rdy)
            for q in Queue:
                m.d.comb += queues[q].r_en.eq(queues[q].r_rdy)

        # ---- the error slots, a cycle after the checks ----------------------------------------
        # the choice is an AND-OR multiplexer of the slots, each masked by the slots after it:
        # a few levels, where a chain of 13 priority multiplexers would be 13
        raised, later, picked_err, picked_pc = [], Const(0), [], []
        for k, (hit, code, at) in reversed(list(enumerate(slots))):
            r, c, p = Signal(name=f"failed{k}"), Signal(ErrorCode, name=f"failed{k}_code"), \
                Signal(PC_BITS, name=f"failed{k}_pc")
            m.d.sync += [r.eq(hit & ~halting & ~clear), c.eq(code), p.eq(at)]
            wins = r & ~later
            picked_err.append(Mux(wins, c.as_value(), 0))
            picked_pc.append(Mux(wins, p, 0))
            raised.append(r)
            later = later | r
        m.d.comb += [raise_err.eq(Cat(*raised).any()), new_err.eq(reduce(operator.or_, picked_err)),
                     new_pc.eq(reduce(operator.or_, picked_pc))]
        return m

    # ---- operand checks (the golden model's, in its order) --------------------------------

    def _check_transfer(self, m: Module, v, allowed, tag: str, span, sram_rows):
        """BAD_BUFFER, BAD_LENGTH, DRAM_RANGE and SRAM_RANGE for a LOAD or STORE, given its
        (rows - 1) * dram_stride (``span``) and rows * scratchpad rows per DRAM row (``sram_rows``)."""
        cfg = self.cfg
        fault = Signal(name=f"{tag}_fault")
        code = Signal(ErrorCode, name=f"{tag}_code")
        last = Signal(49, name=f"{tag}_last_byte")
        m.d.comb += last.eq(v.dram_addr + span + v.row_bytes)
        sram_end = Signal(34, name=f"{tag}_sram_end")
        depth = Signal(17, name=f"{tag}_depth")
        m.d.comb += sram_end.eq(v.sram_addr + sram_rows)
        for buf in allowed:
            with m.If(v.buffer == buf):
                m.d.comb += depth.eq(scratchpad.depth(cfg, buf))
        is_allowed = Cat(*(v.buffer == b for b in allowed)).any()
        with m.If(~is_allowed):
            m.d.comb += [fault.eq(1), code.eq(ErrorCode.BAD_BUFFER)]
        with m.Elif((v.rows == 0) | (v.row_bytes == 0)):
            m.d.comb += [fault.eq(1), code.eq(ErrorCode.BAD_LENGTH)]
        with m.Elif(last > cfg.dram_bytes):
            m.d.comb += [fault.eq(1), code.eq(ErrorCode.DRAM_RANGE)]
        with m.Elif(sram_end > depth):
            m.d.comb += [fault.eq(1), code.eq(ErrorCode.SRAM_RANGE)]
        return fault, code

    def _check_compute(self, m: Module, mm, pp, op):
        """BAD_DTYPE, BAD_LENGTH and SRAM_RANGE for a MATMUL or POSTPROC."""
        cfg = self.cfg
        fault = Signal(name="compute_fault")
        code = Signal(ErrorCode, name="compute_code")
        w_rows = Signal(16)
        dtype_ok = Signal()
        for name in storage_dtypes(cfg):
            dt = DATATYPES[name]
            with m.If(mm.dtype.as_value() == dt.code):
                m.d.comb += [dtype_ok.eq(1), w_rows.eq(cfg.weight_tile_rows(dt))]

        def past(start, count, buf: Buffer):
            return (start + count) > scratchpad.depth(cfg, buf)

        with m.If(op == Opcode.MATMUL.value):
            with m.If(~dtype_ok):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.BAD_DTYPE)]
            with m.Elif(mm.m == 0):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.BAD_LENGTH)]
            with m.Elif(past(mm.in_addr, mm.m, Buffer.INPUT) | past(mm.w_addr, w_rows, Buffer.WEIGHT)
                        | past(mm.acc_addr, mm.m, Buffer.ACC)):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.SRAM_RANGE)]
            with m.Elif(mm.grouped & (cfg.pe != "serial")):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.BAD_DTYPE)]
            with m.Elif(mm.grouped & past(mm.group_addr, 1, Buffer.PARAM)):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.SRAM_RANGE)]
        with m.Elif(op == Opcode.POSTPROC.value):
            with m.If(pp.m == 0):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.BAD_LENGTH)]
            with m.Elif(past(pp.acc_addr, pp.m, Buffer.ACC) | past(pp.out_addr, pp.m, Buffer.OUTPUT)
                        | past(pp.param_addr, 1, Buffer.PARAM)):
                m.d.comb += [fault.eq(1), code.eq(ErrorCode.SRAM_RANGE)]
        return fault, code
