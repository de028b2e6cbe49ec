"""The controller: its units joined together.

``Fetch`` reads the program into a FIFO; ``Decode`` checks each instruction and appends it to
the queue that executes it; the queues (``TransferQueue`` for LOAD and STORE, ``ComputeQueue``
with its ``Retire`` for MATMUL and POSTPROC) dispatch to the engines, exchanging dependency
tokens through a ``TokenChannel`` each way between neighbours (``hw.isa.TOKEN_CHANNELS``);
every place that can halt a run has an error slot in the ``ErrorArbiter``; the ``Watchdog``
ends a run in which nothing moves; ``RunControl`` starts, halts and ends runs for the CSRs.
docs/rtl.md#controller describes the behaviour.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.axi import axi4_read
from hw.config import AccelConfig
from hw.control.decode import Decode
from hw.control.dispatch import ComputeQueue, TransferQueue
from hw.control.errors import ErrorArbiter
from hw.control.fetch import Fetch
from hw.control.run import RunControl
from hw.control.signatures import MatmulControl, PostprocControl, RunSignature
from hw.control.tokens import TokenChannel
from hw.control.watchdog import Watchdog
from hw.isa import NEXT_QUEUE, PREV_QUEUE, TOKEN_CHANNELS, Queue
from hw.transfer import TransferControl

__all__ = ["Controller"]


class Controller(wiring.Component):
    """*Members*: ``run``, from the CSRs; ``fetch_axi``, instruction fetch's AXI4 read port;
    ``load``, ``store``, ``mm``, ``pp``, the engines; ``decoded`` and ``mm_waiting`` for the
    counters; ``activity``, progress outside the controller, for the watchdog."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "run": In(RunSignature()), "fetch_axi": Out(axi4_read(cfg)),
            "load": Out(TransferControl()), "store": Out(TransferControl()),
            "mm": Out(MatmulControl()), "pp": Out(PostprocControl(cfg)),
            "decoded": Out(1), "mm_waiting": Out(1), "activity": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        m.submodules.run = run = RunControl(n_units=2 + len(Queue))
        m.submodules.fetch = fetch = Fetch(cfg)
        m.submodules.decode = decode = Decode(cfg)
        queues = {Queue.LOAD: TransferQueue(cfg, Queue.LOAD), Queue.COMPUTE: ComputeQueue(cfg),
                  Queue.STORE: TransferQueue(cfg, Queue.STORE)}
        for q, unit in queues.items():
            m.submodules[f"{q.name.lower()}_queue"] = unit
        channels = {(s, d): TokenChannel(cfg.dep_queue_depth) for s, d in TOKEN_CHANNELS}
        for (s, d), channel in channels.items():
            m.submodules[f"{s.name.lower()}_to_{d.name.lower()}"] = channel
        m.submodules.watchdog = watchdog = Watchdog(n_units=2 + len(Queue), n_waiting=1 + len(Queue))
        # error slots in program order: fetch and decode, the queues, the watchdog
        slots = [*decode.errors, *queues[Queue.LOAD].errors, *queues[Queue.STORE].errors,
                 *queues[Queue.COMPUTE].errors, watchdog.error]
        m.submodules.errors = errors = ErrorArbiter(len(slots))

        wiring.connect(m, wiring.flipped(self.run), run.csr)
        wiring.connect(m, run.state, fetch.run, decode.run, *(u.run for u in queues.values()),
                       *(c.run for c in channels.values()), errors.run, watchdog.run)

        # instructions: fetch -> decode -> the queues -> the engines
        wiring.connect(m, wiring.flipped(self.fetch_axi), fetch.axi)
        wiring.connect(m, fetch.words, decode.words)
        wiring.connect(m, fetch.status, decode.fetch)
        for q, unit in queues.items():
            wiring.connect(m, decode.queues[q.value], unit.insn)
        wiring.connect(m, wiring.flipped(self.load), queues[Queue.LOAD].engine)
        wiring.connect(m, wiring.flipped(self.store), queues[Queue.STORE].engine)
        wiring.connect(m, wiring.flipped(self.mm), queues[Queue.COMPUTE].mm)
        wiring.connect(m, wiring.flipped(self.pp), queues[Queue.COMPUTE].pp)

        # tokens: the source queue reserves and delivers, the destination pops
        for (s, d), channel in channels.items():
            src_side = "next" if NEXT_QUEUE[s] is d else "prev"
            dst_side = "prev" if PREV_QUEUE[d] is s else "next"
            wiring.connect(m, getattr(queues[s], f"{src_side}_reserve"), channel.reserve)
            wiring.connect(m, getattr(queues[s], f"{src_side}_deliver"), channel.deliver)
            wiring.connect(m, getattr(queues[d], f"{dst_side}_pop"), channel.pop)

        # halting, the end of a run, the watchdog
        for k, slot in enumerate(slots):
            wiring.connect(m, slot, errors.slots[k])
        wiring.connect(m, errors.verdict, run.verdict)
        wiring.connect(m, decode.overrun, run.overrun)
        for k, unit in enumerate([fetch, decode, *queues.values()]):
            wiring.connect(m, unit.activity, run.units[k], watchdog.units[k])
        for k, unit in enumerate([decode, *queues.values()]):
            wiring.connect(m, unit.waiting, watchdog.waiting[k])
        m.d.comb += [self.decoded.eq(decode.decoded), self.mm_waiting.eq(queues[Queue.COMPUTE].mm_waiting),
                     watchdog.activity.eq(self.activity)]
        return m
