"""Registers of pure datapaths.

The systolic array carries data whose validity its caller tracks cycle by cycle, so none of its
flip-flops needs a reset value. Leaving the reset off them keeps the reset net to the control
logic: on an FPGA the reset otherwise reaches every PE flip-flop (about 18,500 of them in the
16x16 array), and flip-flops with and without a reset cannot share a slice's reset line.
"""

from __future__ import annotations

from amaranth import Module, Signal


def delay(m: Module, value, name: str, keep: bool = False) -> Signal:
    """``value`` one cycle later, from a flip-flop without reset (its initial value is 0).

    ``keep`` marks the register with the `keep` attribute: a pipeline register that must stay
    where it is, one per place it is made, even where another register holds the same value
    (synthesis would otherwise merge them into one with the fanout of all; see
    docs/fpga.md, "Registers that stay apart")."""
    r = Signal.like(value, name=name, reset_less=True, attrs={"keep": 1} if keep else {})
    m.d.sync += r.eq(value)
    return r
