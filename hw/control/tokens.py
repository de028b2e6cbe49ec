"""A dependency-token channel: tokens from one queue to a neighbour (``hw.isa.TOKEN_CHANNELS``).

The receiving queue pops a token before an instruction with ``pop_*`` starts. The sending queue
reserves room for a ``push_*`` when it dispatches the instruction (``promise``) and the token
arrives when the instruction's work is complete (``push``), so a channel never holds more than
its depth; a SYNC pushes at once (``push_now``). ``room`` counts promised tokens as taken.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.control.signatures import RunState

__all__ = ["TokenChannel", "TokenDeliver", "TokenPop", "TokenReserve"]


class TokenPop(wiring.Signature):
    """The receiving queue's side: ``available`` (a token is there) and ``pop``."""

    def __init__(self):
        super().__init__({"pop": Out(1), "available": In(1)})


class TokenReserve(wiring.Signature):
    """The sending queue's side at dispatch: ``promise`` a token for later, or ``push_now`` one
    (SYNC), while there is ``room``."""

    def __init__(self):
        super().__init__({"promise": Out(1), "push_now": Out(1), "room": In(1)})


class TokenDeliver(wiring.Signature):
    """The sending queue's side at completion: a promised token arrives (``push``)."""

    def __init__(self):
        super().__init__({"push": Out(1)})


class TokenChannel(wiring.Component):
    """Tokens from one queue to another: ``count`` available, ``promised`` to running work.

    *Parameters*: ``depth``, the tokens the channel holds (``cfg.dep_queue_depth``).

    *Members*: ``run`` (cleared when a run starts), ``pop``, ``reserve`` and ``deliver``, the
    three sides above.
    """

    def __init__(self, depth: int):
        self.depth = depth
        super().__init__({"run": In(RunState()), "pop": In(TokenPop()), "reserve": In(TokenReserve()),
                          "deliver": In(TokenDeliver())})

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self.depth
        count = Signal(range(depth + 1))
        promised = Signal(range(depth + 1))
        # count + promised, kept in its own register so that `room` is a compare of a register
        used = Signal(range(depth + 1))
        pop, promise, push, push_now = self.pop.pop, self.reserve.promise, self.deliver.push, self.reserve.push_now
        m.d.comb += [self.pop.available.eq(count != 0), self.reserve.room.eq(used < depth)]
        with m.If(self.run.clear):
            m.d.sync += [count.eq(0), promised.eq(0), used.eq(0)]
        with m.Else():
            m.d.sync += [count.eq(count - pop + push + push_now),
                         promised.eq(promised + promise - push),
                         used.eq(used - pop + push_now + promise)]
        return m
