"""The bundles between the controller's units, and between the controller and its engines.

Each is a ``wiring.Signature`` seen from the side that drives its ``Out`` members, so a parent
joins two units with one ``wiring.connect``. ``Entry`` is the record a queue holds.
"""

from __future__ import annotations

from amaranth import Const
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import scratchpad
from hw.config import AccelConfig
from hw.isa import INSN_BITS, Buffer, ErrorCode
from hw.matmul import MatmulCmd
from hw.postproc import PostprocCmd

__all__ = [
    "PC_BITS", "ActivitySignature", "Entry", "ErrorSlot", "MatmulControl", "PortGroup", "PostprocControl",
    "RunSignature", "RunState", "WaitingSignature",
]

PC_BITS = 32

# A queued instruction: its word, its index and the verdict of its operand checks (decode's
# second stage) and, for a MATMUL, the end of its accumulator rows (acc_addr + m), for
# dispatch's check against the rows a POSTPROC still reads.
Entry = data.StructLayout({"word": INSN_BITS, "pc": PC_BITS, "fault": 1, "code": ErrorCode, "acc_end": 17})


class RunSignature(wiring.Signature):
    """Run control, seen from the CSRs: ``start`` (a pulse), the program's base and length in;
    ``busy``, and the halt's ``error`` and ``error_pc`` back."""

    def __init__(self):
        super().__init__({
            "start": Out(1), "prog_base": Out(32), "prog_len": Out(32),
            "busy": In(1), "error": In(ErrorCode), "error_pc": In(PC_BITS),
        })


class RunState(wiring.Signature):
    """The run's state, from ``hw.control.run.RunControl`` to every unit: ``clear`` (a run starts this
    cycle: every unit resets), ``running``, ``halting`` (an error was raised: nothing new is
    dispatched, running work finishes) and the program's base and length."""

    def __init__(self):
        super().__init__({
            "clear": Out(1), "running": Out(1), "halting": Out(1), "prog_base": Out(32), "prog_len": Out(32),
        })


class ErrorSlot(wiring.Signature):
    """One place that can halt a run: ``raised`` with the error's ``code`` and instruction ``pc``."""

    def __init__(self):
        super().__init__({"raised": Out(1), "code": Out(ErrorCode), "pc": Out(PC_BITS)})


class ActivitySignature(wiring.Signature):
    """A unit's part in ending a run and in the watchdog: ``idle`` (nothing of the run left in it),
    ``moved`` (it took, passed on or finished an instruction this cycle)."""

    def __init__(self):
        super().__init__({"idle": Out(1), "moved": Out(1)})


class WaitingSignature(wiring.Signature):
    """The instruction a unit holds, for the watchdog's DEADLOCK report: ``valid`` and its ``pc``."""

    def __init__(self):
        super().__init__({"valid": Out(1), "pc": Out(PC_BITS)})


class MatmulControl(wiring.Signature):
    """The MATMUL engine as the controller drives it: commands, ``retire`` (a tile's last
    accumulator row written), ``idle`` and ``fault`` (a grouped tile names a datatype the hardware
    lacks; bit-serial PE only)."""

    def __init__(self):
        super().__init__({"cmd": Out(stream.Signature(MatmulCmd)), "retire": In(1), "idle": In(1), "fault": In(1)})


class PostprocControl(wiring.Signature):
    """The POSTPROC engine as the controller drives it: commands, ``done`` (a command's last output
    row written), and the accumulator rows ``acc_lo`` .. ``acc_hi`` it still reads while
    ``reading`` (for dispatch's write-after-read check).

    *Parameters*: ``acc_bits``, the width of an accumulator row index plus one."""

    def __init__(self, cfg: AccelConfig):
        self._acc_bits = scratchpad.addr_bits(cfg, Buffer.ACC) + 1
        super().__init__({
            "cmd": Out(stream.Signature(PostprocCmd)), "done": In(1), "reading": In(1),
            "acc_lo": In(self._acc_bits), "acc_hi": In(self._acc_bits),
        })

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    def __eq__(self, other) -> bool:
        return isinstance(other, PostprocControl) and other.acc_bits == self.acc_bits

    def __hash__(self) -> int:
        return hash(self._acc_bits)


class PortGroup:
    """Ports of a block seen as one interface of ``signature`` (the block's view), so that a
    parent joins them with ``wiring.connect``. For blocks whose own signatures are flat: the CSR
    bank, the MATMUL and POSTPROC engines. ``missing`` names members the block lacks, tied to 0
    (a bit-parallel MATMUL engine has no ``fault``)."""

    def __init__(self, block, signature: wiring.Signature, missing: tuple[str, ...] = ()):
        self.signature = signature
        for name, member in signature.members.items():
            value = Const(0, member.shape) if name in missing else getattr(block, name)
            setattr(self, name, value)
