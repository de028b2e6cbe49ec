"""Registers of pure datapaths.

The systolic array carries data whose validity its caller tracks cycle by cycle, so none of its
flip-flops needs a reset value. Leaving the reset off them keeps the reset net to the control
logic: on an FPGA the reset otherwise reaches every PE flip-flop (about 18,500 of them in the
16x16 array), and flip-flops with and without a reset cannot share a slice's reset line.
"""

from __future__ import annotations

from amaranth import Module, Signal


def delay(m: Module, value, name: str) -> Signal:
    """``value`` one cycle later, from a flip-flop without reset (its initial value is 0)."""
    r = Signal.like(value, name=name, reset_less=True)
    m.d.sync += r.eq(value)
    return r
