"""The three instruction queues and their dispatch to the engines.

Each queue holds what decode appended to it and looks at its head every cycle. The head goes
when the tokens it pops are there, the channels it pushes have room (counting tokens promised
to instructions still running), its engine can take it and there is no hazard; if decode found
its operands out of range, the run halts instead. SYNC waits until its queue's earlier work is
complete and moves tokens only. The tokens an instruction pushes arrive when its work is
complete: at the engine's ``done`` for LOAD and STORE, in program order through ``Retire`` for
the compute queue. While the run halts, the queues are emptied without dispatching.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import AccelConfig
from hw.control.retire import Retire
from hw.control.signatures import (
    PC_BITS,
    ActivitySignature,
    Entry,
    ErrorSlot,
    MatmulControl,
    PostprocControl,
    RunState,
    WaitingSignature,
)
from hw.control.tokens import TokenDeliver, TokenPop, TokenReserve
from hw.isa import INSN_BITS, LAYOUTS, NEXT_QUEUE, PREV_QUEUE, Deps, ErrorCode, Header, Opcode, Queue
from hw.matmul import MATMUL_FIELDS
from hw.postproc import POSTPROC_FIELDS, WAIT_BITS
from hw.transfer import MEM_FIELDS, TransferControl

__all__ = ["ComputeQueue", "TransferQueue", "token_sides"]


def token_sides(q: Queue) -> list[str]:
    """The sides (``prev``, ``next``) on which queue q has a neighbour to exchange tokens with."""
    return [side for side, nb in (("prev", PREV_QUEUE), ("next", NEXT_QUEUE)) if nb[q] is not None]


def _token_members(q: Queue) -> dict:
    """A queue's token ports: per side, pop (tokens in), reserve (at dispatch) and deliver
    (at completion)."""
    members = {}
    for side in token_sides(q):
        members |= {f"{side}_pop": Out(TokenPop()), f"{side}_reserve": Out(TokenReserve()),
                    f"{side}_deliver": Out(TokenDeliver())}
    return members


class _Queue(wiring.Component):
    """What every queue shares: the FIFO of ``Entry`` that decode appends to, and its tokens.

    *Members*: ``run``; ``insn``, from decode (ready: fewer than ``insn_queue_depth`` entries a
    cycle ago); per neighbour ``*_pop``, ``*_reserve``, ``*_deliver``; ``errors``; ``activity``;
    ``waiting``, the head's pc."""

    def __init__(self, cfg: AccelConfig, q: Queue, members: dict, n_errors: int):
        self.cfg, self.queue = cfg, q
        super().__init__({
            "run": In(RunState()), "insn": In(stream.Signature(Entry)),
            "errors": Out(ErrorSlot()).array(n_errors), "activity": Out(ActivitySignature()),
            "waiting": Out(WaitingSignature()),
        } | _token_members(q) | members)

    def _fifo(self, m: Module) -> fifo.SyncFIFOBuffered:
        """The queue's FIFO, written on a flag registered the cycle before (``has_room``), not on
        its own w_rdy, so that its level is not on the path through decode's second stage; it
        therefore has one entry more than ``insn_queue_depth`` and still takes that many. At
        ``insn_queue_depth = 1`` it holds three: a two-entry SyncFIFOBuffered is one memory row
        and its output register, and its memory is still full in the cycle after a write into
        it empty, when the registered flag lets a second write through; that write would be
        dropped. While the run halts, the FIFO is emptied (``pop`` is dispatch's read)."""
        depth = self.cfg.insn_queue_depth
        m.submodules.fifo = qf = fifo.SyncFIFOBuffered(width=Entry.size, depth=max(depth + 1, 3))
        has_room = Signal()
        m.d.sync += has_room.eq(qf.level < depth)
        m.d.comb += [self.insn.ready.eq(has_room), qf.w_en.eq(self.insn.valid & has_room),
                     qf.w_data.eq(self.insn.payload)]
        return qf

    def _head(self, qf) -> tuple:
        e = data.View(Entry, qf.r_data)
        return e, data.View(Header, e.word[:Header.size])

    def _tokens_ready(self, deps) -> object:
        ok = Const(1)
        for side in token_sides(self.queue):
            pop, reserve = getattr(self, f"{side}_pop"), getattr(self, f"{side}_reserve")
            ok = ok & (~deps[f"pop_{side}"] | pop.available) & (~deps[f"push_{side}"] | reserve.room)
        return ok

    def _take_tokens(self, m: Module, deps, promise: bool) -> None:
        """Pop the tokens the head waits for; reserve room for those it pushes when done
        (``promise``), or push them now (SYNC)."""
        for side in token_sides(self.queue):
            pop, reserve = getattr(self, f"{side}_pop"), getattr(self, f"{side}_reserve")
            m.d.comb += pop.pop.eq(deps[f"pop_{side}"])
            m.d.comb += (reserve.promise if promise else reserve.push_now).eq(deps[f"push_{side}"])


class TransferQueue(_Queue):
    """The LOAD or STORE queue and its engine (``engine``). Error slots: an operand fault at
    dispatch, a BUS_ERROR of the transfer in flight (it still completes; the run then halts)."""

    def __init__(self, cfg: AccelConfig, q: Queue):
        super().__init__(cfg, q, {"engine": Out(TransferControl())}, n_errors=2)

    def elaborate(self, platform) -> Module:
        m = Module()
        run, engine, port = self.run, self.engine, self.engine.cmd
        qf = self._fifo(m)
        e, h = self._head(qf)
        v = data.View(LAYOUTS[Opcode.LOAD], e.word)  # LOAD and STORE share one layout
        flags = Signal(Deps)  # the running instruction's push flags
        in_flight_pc = Signal(PC_BITS)
        pop = Signal()
        fault, bus_error = self.errors
        for n in MEM_FIELDS:
            m.d.comb += getattr(port.payload, n).eq(v[n])
        with m.If(run.running & ~run.halting & qf.r_rdy & self._tokens_ready(h.deps)):
            with m.If(h.opcode.as_value() == Opcode.SYNC.value):
                with m.If(~engine.busy):
                    m.d.comb += pop.eq(1)
                    self._take_tokens(m, h.deps, promise=False)
            with m.Elif(e.fault):
                m.d.comb += fault.raised.eq(1)
            with m.Else():
                m.d.comb += port.valid.eq(1)
                with m.If(port.ready):
                    m.d.comb += pop.eq(1)
                    self._take_tokens(m, h.deps, promise=True)
                    m.d.sync += [flags.eq(h.deps), in_flight_pc.eq(e.pc)]
        with m.If(engine.done):
            for side in token_sides(self.queue):
                m.d.comb += getattr(self, f"{side}_deliver").push.eq(flags[f"push_{side}"])
        m.d.comb += [
            fault.code.eq(e.code), fault.pc.eq(e.pc),
            bus_error.raised.eq(engine.bus_error), bus_error.code.eq(ErrorCode.BUS_ERROR),
            bus_error.pc.eq(in_flight_pc),
            qf.r_en.eq(pop | (run.halting & qf.r_rdy)),
            self.activity.idle.eq(~qf.r_rdy & ~engine.busy), self.activity.moved.eq(qf.r_en),
            self.waiting.valid.eq(qf.r_rdy), self.waiting.pc.eq(e.pc),
        ]
        return m


class ComputeQueue(_Queue):
    """The compute queue, its MATMUL (``mm``) and POSTPROC (``pp``) engines and its ``Retire``.

    Dispatch moves the head into an issue register (taking its tokens and a reorder entry) when
    that register is empty; the engines take their command from it. The engines' ready is then
    not on the path through the token, reorder and queue logic, for one cycle more per compute
    instruction (each keeps an engine busy for many). The issue register holds one instruction,
    so a MATMUL's write-after-read check still sees every POSTPROC before it running. A POSTPROC
    waits for the MATMULs dispatched before it (``wait``, counted here). Error slots: BAD_DTYPE
    from the MATMUL engine (a grouped tile's datatypes, at the MATMUL it took last), an operand
    fault at dispatch. ``mm_waiting``: a MATMUL waits to enter the engine (for the counters)."""

    def __init__(self, cfg: AccelConfig):
        super().__init__(cfg, Queue.COMPUTE, {"mm": Out(MatmulControl()), "pp": Out(PostprocControl(cfg)),
                                              "mm_waiting": Out(1)}, n_errors=2)

    def elaborate(self, platform) -> Module:
        m = Module()
        run, mm, pp = self.run, self.mm, self.pp
        dispatching = run.running & ~run.halting
        qf = self._fifo(m)
        e, h = self._head(qf)
        op = h.opcode.as_value()
        m.submodules.retire = retire = Retire()
        for side in token_sides(self.queue):
            wiring.connect(m, wiring.flipped(getattr(self, f"{side}_deliver")), getattr(retire, f"{side}_deliver"))
        m.d.comb += [retire.mm_retire.eq(mm.retire), retire.pp_done.eq(pp.done)]

        # the issue register and the engines' commands
        iss_valid = Signal()
        iss_pp = Signal()  # the issued instruction is a POSTPROC (else a MATMUL)
        iss_word = Signal(INSN_BITS)
        iss_pc = Signal(PC_BITS)
        iss_mm, iss_pp_view = data.View(LAYOUTS[Opcode.MATMUL], iss_word), data.View(LAYOUTS[Opcode.POSTPROC], iss_word)
        for n in MATMUL_FIELDS:
            m.d.comb += getattr(mm.cmd.payload, n).eq(iss_mm[n])
        for n in POSTPROC_FIELDS:
            m.d.comb += getattr(pp.cmd.payload, n).eq(iss_pp_view[n])
        m.d.comb += [mm.cmd.valid.eq(iss_valid & ~iss_pp), pp.cmd.valid.eq(iss_valid & iss_pp)]
        accepted = (mm.cmd.valid & mm.cmd.ready) | (pp.cmd.valid & pp.cmd.ready)
        mm_dispatch = Signal()
        mm_inflight = Signal(WAIT_BITS)
        mm_pc = Signal(PC_BITS)  # the MATMUL the engine took last: a BAD_DTYPE is its
        m.d.comb += mm_dispatch.eq(mm.cmd.valid & mm.cmd.ready)
        m.d.sync += mm_inflight.eq(mm_inflight + mm_dispatch - mm.retire)
        with m.If(mm_dispatch):
            m.d.sync += mm_pc.eq(iss_pc)
        m.d.comb += pp.cmd.payload.wait.eq(mm_inflight - mm.retire)

        # dispatch from the head into the issue register
        dtype_fault, fault = self.errors
        pop = Signal()
        issue = Signal()  # the head goes to the issue register if the reorder FIFO has room
        head_mm = data.View(LAYOUTS[Opcode.MATMUL], e.word)
        overlap = pp.reading & (head_mm.acc_addr < pp.acc_hi) & (pp.acc_lo < e.acc_end)
        m.d.comb += [retire.entry.valid.eq(issue),
                     retire.entry.payload.eq(Cat(op == Opcode.POSTPROC.value, h.deps.push_prev, h.deps.push_next))]
        with m.If(accepted):
            m.d.sync += iss_valid.eq(0)
        with m.If(dispatching & qf.r_rdy & ~iss_valid):
            with m.If(self._tokens_ready(h.deps)):
                with m.If(op == Opcode.SYNC.value):
                    with m.If(retire.drained & mm.idle):
                        m.d.comb += pop.eq(1)
                        self._take_tokens(m, h.deps, promise=False)
                with m.Elif(e.fault):
                    m.d.comb += fault.raised.eq(1)
                with m.Elif((op != Opcode.MATMUL.value) | ~overlap):
                    m.d.comb += issue.eq(1)
                    with m.If(retire.entry.ready):
                        m.d.comb += pop.eq(1)
                        self._take_tokens(m, h.deps, promise=True)
                        m.d.sync += [iss_valid.eq(1), iss_pp.eq(op == Opcode.POSTPROC.value), iss_word.eq(e.word),
                                     iss_pc.eq(e.pc)]
        with m.If(run.clear):
            m.d.sync += iss_valid.eq(0)

        m.d.comb += [
            dtype_fault.raised.eq(mm.fault), dtype_fault.code.eq(ErrorCode.BAD_DTYPE), dtype_fault.pc.eq(mm_pc),
            fault.code.eq(e.code), fault.pc.eq(e.pc),
            qf.r_en.eq(pop | (run.halting & qf.r_rdy)),
            self.mm_waiting.eq((dispatching & qf.r_rdy & (op == Opcode.MATMUL.value) & ~qf.r_en)
                               | (mm.cmd.valid & ~mm.cmd.ready)),
            self.activity.idle.eq(~qf.r_rdy & mm.idle & retire.activity.idle),
            self.activity.moved.eq(qf.r_en | accepted | retire.activity.moved),
            self.waiting.valid.eq(qf.r_rdy), self.waiting.pc.eq(e.pc),
        ]
        return m
