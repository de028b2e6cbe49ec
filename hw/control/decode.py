"""Decode: one instruction per cycle in two stages, into the queue that executes it.

The first stage (d0, the fetch FIFO's head) raises ILLEGAL_OPCODE, RESERVED_BITS (a reserved
field not zero, or an enumeration field with no member) and BAD_DEPS (a flag towards a queue
that does not exist, ``hw.isa.PREV_QUEUE`` / ``NEXT_QUEUE``) once the instruction before has left
the second stage, so errors stay in program order; END stops decoding. Everything else moves to
the second stage (d1) with the products of its range checks (``hw/extents.py``); there the
operand checks finish (the golden model's, in its order) and the instruction is appended, with
its index, the checks' verdict and (for a MATMUL) the end of its accumulator rows, to its queue.
Dispatch then only reads the verdict.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.config import AccelConfig
from hw.control.fetch import FetchStatus
from hw.control.signatures import PC_BITS, ActivitySignature, Entry, ErrorSlot, RunState, WaitingSignature
from hw.datatypes import DATATYPES
from hw.extents import SPAN_BITS, SRAM_ROWS_BITS, Extents
from hw.isa import (
    INSN_BITS,
    LAYOUTS,
    LOADABLE,
    NEXT_QUEUE,
    PREV_QUEUE,
    QUEUE_OF,
    RESERVED,
    STORABLE,
    Buffer,
    ErrorCode,
    Header,
    Opcode,
    Queue,
    is_enum_shape,
)
from hw.matmul import storage_dtypes

__all__ = ["DECODE_ERRORS", "Decode"]

# decode's error slots, in the arbiter's order (a tie goes to the later)
DECODE_ERRORS = (ErrorCode.BUS_ERROR, ErrorCode.ILLEGAL_OPCODE, ErrorCode.RESERVED_BITS, ErrorCode.BAD_DEPS,
                 ErrorCode.DRAM_RANGE)


def _view(op: Opcode, word):
    return data.View(LAYOUTS[op], word)


def _enum_ok(value, shape) -> object:
    """True when an enum-shaped field holds one of its members."""
    raw = value.as_value() if hasattr(value, "as_value") else value
    return Cat(*(raw == member.value for member in shape)).any()


class Decode(wiring.Component):
    """*Members*: ``run``; ``words``, fetched words with their extents; ``fetch``, fetch's status;
    ``queues``, one stream of ``Entry`` per queue (indexed by ``Queue``; ready: the queue has room);
    ``errors``, a slot per code of ``DECODE_ERRORS`` (a fetch's BUS_ERROR and an instruction past
    DRAM are reported here, at the first instruction not yet decoded); ``overrun``, the program
    ran past its length without END (the run ends with it once the queues drain); ``decoded``
    (an instruction left d0, for the counter); ``activity`` and ``waiting`` (the lowest pc not yet
    queued)."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "run": In(RunState()), "words": In(stream.Signature(Extents)), "fetch": In(FetchStatus()),
            "queues": Out(stream.Signature(Entry)).array(len(Queue)),
            "errors": Out(ErrorSlot()).array(len(DECODE_ERRORS)), "overrun": Out(ErrorSlot()),
            "decoded": Out(1), "activity": Out(ActivitySignature()), "waiting": Out(WaitingSignature()),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        run = self.run
        pc = Signal(PC_BITS)  # index of the instruction at the FIFO head
        ended = Signal()
        overrun = Signal()
        raised = {code: slot.raised for code, slot in zip(DECODE_ERRORS, self.errors, strict=True)}
        for code, slot in zip(DECODE_ERRORS, self.errors, strict=True):
            m.d.comb += [slot.code.eq(code), slot.pc.eq(pc)]
        m.d.comb += raised[ErrorCode.BUS_ERROR].eq(self.fetch.bus_error)  # ERROR_PC: first not yet decoded
        head = self.words.payload
        opcode, legal, fields_ok, deps_ok, queue_of = self._first_stage(m, head.word)

        # d1: the instruction a cycle later, with the products of its range checks registered
        d1_valid = Signal()
        d1_word = Signal(INSN_BITS)
        d1_pc = Signal(PC_BITS)
        d1_queue = Signal(Queue)
        d1_span = Signal(SPAN_BITS)
        d1_sram_rows = Signal(SRAM_ROWS_BITS)
        d1_fault, d1_code = self._operand_checks(m, d1_word, d1_span, d1_sram_rows)
        d1_mm = _view(Opcode.MATMUL, d1_word)
        d1_full = Signal()  # d1's queue has no room
        for q in Queue:
            port = self.queues[q.value]
            with m.If(d1_queue == q):
                m.d.comb += d1_full.eq(~port.ready)
            m.d.comb += [port.payload.word.eq(d1_word), port.payload.pc.eq(d1_pc), port.payload.fault.eq(d1_fault),
                         port.payload.code.eq(d1_code), port.payload.acc_end.eq(d1_mm.acc_addr + d1_mm.m),
                         port.valid.eq(d1_valid & ~run.halting & (d1_queue == q))]
        d1_leave = Signal()
        m.d.comb += d1_leave.eq(d1_valid & ~d1_full & ~run.halting)
        d1_free = ~d1_valid | d1_leave

        # d0: its errors and END wait until d1 is empty
        decoding = Signal()
        m.d.comb += decoding.eq(run.running & ~run.halting & ~ended & self.words.valid)
        is_end = opcode == Opcode.END.value
        take = Signal()  # d0's instruction moves to d1
        with m.If(decoding):
            with m.If(~legal):
                m.d.comb += raised[ErrorCode.ILLEGAL_OPCODE].eq(~d1_valid)
            with m.Elif(~fields_ok):
                m.d.comb += raised[ErrorCode.RESERVED_BITS].eq(~d1_valid)
            with m.Elif(is_end):
                with m.If(~d1_valid):
                    m.d.comb += [self.words.ready.eq(1), self.decoded.eq(1)]
                    m.d.sync += [ended.eq(1), pc.eq(pc + 1)]
            with m.Elif(~deps_ok):
                m.d.comb += raised[ErrorCode.BAD_DEPS].eq(~d1_valid)
            with m.Elif(d1_free):
                m.d.comb += [self.words.ready.eq(1), self.decoded.eq(1), take.eq(1)]
                m.d.sync += pc.eq(pc + 1)
        # d1's registers load whenever d1 is free, whatever d0 holds: their enable does not wait
        # for the decode of the fetched word, and their contents matter only while d1_valid
        with m.If(d1_free):
            m.d.sync += [d1_word.eq(head.word), d1_pc.eq(pc), d1_queue.eq(queue_of),
                         d1_span.eq(head.span), d1_sram_rows.eq(head.sram_rows)]
        with m.If(take):
            m.d.sync += d1_valid.eq(1)
        with m.Elif(d1_leave | run.halting | run.clear):
            m.d.sync += d1_valid.eq(0)

        # the word at `pc` never comes: past DRAM, or past the program without END. The two pc
        # compares are registers, a cycle late: pc and asked only move while words are on their
        # way (decode took one, so it was there; fetch asked, so it is not settled), and a cycle
        # later the flags are current again; `clear` sets them for pc = asked = 0.
        pc_at_asked = Signal()
        pc_at_end = Signal()
        with m.If(run.clear):
            m.d.sync += [pc_at_asked.eq(1), pc_at_end.eq(run.prog_len == 0)]
        with m.Else():
            m.d.sync += [pc_at_asked.eq(pc == self.fetch.asked), pc_at_end.eq(pc == run.prog_len)]
        with m.If(run.running & ~run.halting & ~ended & ~self.words.valid & self.fetch.settled & pc_at_asked):
            with m.If(self.fetch.fault):
                m.d.comb += raised[ErrorCode.DRAM_RANGE].eq(1)
            with m.Elif(pc_at_end):
                m.d.comb += overrun.eq(1)
        with m.If(run.clear):
            m.d.sync += [pc.eq(0), ended.eq(0)]

        m.d.comb += [
            self.overrun.raised.eq(overrun & ~ended), self.overrun.code.eq(ErrorCode.PROGRAM_OVERRUN),
            self.overrun.pc.eq(pc),
            self.activity.idle.eq(~d1_valid & (run.halting | ended | overrun)),
            self.activity.moved.eq(self.decoded | d1_leave),
            self.waiting.valid.eq(1), self.waiting.pc.eq(Mux(d1_valid, d1_pc, pc)),
        ]
        return m

    def _first_stage(self, m: Module, word):
        """d0's checks of a word: a legal opcode, reserved fields zero and enum fields members,
        dependency flags towards queues that exist; and the queue that executes it."""
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
                elif op in QUEUE_OF:
                    m.d.comb += queue_of.eq(QUEUE_OF[op])
        deps = hdr.deps
        no_prev = Cat(*(queue_of == q for q in Queue if PREV_QUEUE[q] is None)).any()
        no_next = Cat(*(queue_of == q for q in Queue if NEXT_QUEUE[q] is None)).any()
        m.d.comb += deps_ok.eq(~(no_prev & (deps.pop_prev | deps.push_prev))
                               & ~(no_next & (deps.pop_next | deps.push_next)))
        return opcode, legal, fields_ok, deps_ok, queue_of

    def _operand_checks(self, m: Module, word, span, sram_rows):
        """d1's verdict on an instruction's operands: (fault, code)."""
        fault = Signal()
        code = Signal(ErrorCode)
        op = data.View(Header, word[:Header.size]).opcode.as_value()
        mem = _view(Opcode.LOAD, word)  # LOAD and STORE share one layout
        for kind, allowed in ((Opcode.LOAD, LOADABLE), (Opcode.STORE, STORABLE)):
            f, c = _check_transfer(m, self.cfg, mem, allowed, kind.name.lower(), span, sram_rows)
            with m.If(op == kind.value):
                m.d.comb += [fault.eq(f), code.eq(c)]
        f, c = _check_compute(m, self.cfg, _view(Opcode.MATMUL, word), _view(Opcode.POSTPROC, word), op)
        with m.If((op == Opcode.MATMUL.value) | (op == Opcode.POSTPROC.value)):
            m.d.comb += [fault.eq(f), code.eq(c)]
        return fault, code


# ---- operand checks (the golden model's, in its order) ------------------------------------

def _check_transfer(m: Module, cfg: AccelConfig, v, allowed, tag: str, span, sram_rows):
    """BAD_BUFFER, BAD_LENGTH, DRAM_RANGE and SRAM_RANGE for a LOAD or STORE, given its
    (rows - 1) * dram_stride (``span``) and rows * scratchpad rows per DRAM row (``sram_rows``)."""
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


def _check_compute(m: Module, cfg: AccelConfig, mm, pp, op):
    """BAD_DTYPE, BAD_LENGTH and SRAM_RANGE for a MATMUL or POSTPROC."""
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
