"""DSP output registers: the flip-flops behind an ECP5 multiplier moved into its DSP block.

Yosys maps a multiplier to an ECP5 ``MULT18X18D`` without any of the block's own registers (its
``lattice/dsp_map_18x18.v`` leaves ``REG_*`` at ``NONE``) and keeps the product's register in
the logic fabric. The product then leaves the DSP block unregistered, crosses the routing to a
slice's flip-flop, and that path holds the block's whole multiply and two routes; the register
costs a flip-flop per product bit, placed beside the block.

:func:`absorb_output_registers` moves those flip-flops into the block: for a ``MULT18X18D`` each
of whose used product bits goes to exactly one flip-flop's data input, all of them on one
clock, without a clock enable, and either without a reset or with one synchronous reset to 0 on
one net, the flip-flops are removed, the product bits drive the nets their outputs drove, and
the block's output register is switched on (``REG_OUTPUT_CLK = CLK0``, clock enable tied to 1,
``RST0`` the flip-flops' reset or 0). A cycle of the design is the same as before: the product
is registered once, in the block instead of beside it. nextpnr then times the block as
``MULT18X18D_REGS_OUTPUT``: the multiply ends at the block's register, and its product leaves
the block at a clock-to-output delay.

Every PE with a DSP block registers its product (hw/array.py), so on ``default`` this takes
136 x 16 flip-flops out of the fabric; the requantization's and the extents' products too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from host.fpga.wrapper import WRAPPER_TOP

if TYPE_CHECKING:
    from host.fpga.options import FlowOptions
    from host.fpga.targets import Target

DSP_CELLS = {"ecp5": "MULT18X18D"}  # the families whose DSP blocks this knows
PRODUCT_PREFIX = "P"


@dataclass
class DspRegisters:
    dsps: int = 0  # DSP blocks whose output register is now used
    ffs: int = 0  # fabric flip-flops removed
    left: dict = field(default_factory=dict)  # why the other DSP blocks were left as they are: reason -> count

    def as_dict(self) -> dict:
        return {"dsps": self.dsps, "ffs": self.ffs, "left": dict(self.left)}


def _const(bits: list | None, value: str) -> bool:
    return bits is None or bits == [value]


def _plain_register(ff: dict) -> tuple[bool, object]:
    """(usable, reset bit) for a ``TRELLIS_FF``: rising clock, no clock enable, and no reset or a
    synchronous reset to 0. The reset bit is None for a flip-flop without one."""
    p, c = ff["parameters"], ff["connections"]
    if p.get("CLKMUX", "CLK") != "CLK":
        return False, None
    if p.get("CEMUX", "1").strip() != "1" and not _const(c.get("CE"), "1"):
        return False, None
    if p.get("LSRMUX", "LSR") != "LSR":  # an inverted reset
        return False, None
    lsr = c.get("LSR")
    if _const(lsr, "0"):
        return True, None
    if not isinstance(lsr[0], int) or p.get("SRMODE", "LSR_OVER_CE") != "LSR_OVER_CE" \
            or p.get("REGSET", "RESET") != "RESET":
        return False, None  # tied to 1, an asynchronous reset, or a reset to 1
    return True, lsr[0]


def absorb_output_registers(design: dict, top: str, family: str) -> DspRegisters:
    """Move each DSP block's product flip-flops into the block's output register (see the
    module's docstring); ``design`` (Yosys JSON) is changed in place."""
    result = DspRegisters()
    dsp_type = DSP_CELLS.get(family)
    if dsp_type is None:
        return result
    module = design["modules"][top]
    cells = module["cells"]
    sinks: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for cname, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "output":
                for b in bits:
                    if isinstance(b, int):
                        sinks[b].append((cname, port))
    for port_name, bits in module.get("ports", {}).items():
        if port_name and bits.get("direction") == "output":
            for b in bits["bits"]:
                if isinstance(b, int):
                    sinks[b].append(("", port_name))

    def leave(reason: str) -> None:
        result.left[reason] = result.left.get(reason, 0) + 1

    for cname in sorted(c for c, cell in cells.items() if cell["type"] == dsp_type):
        dsp = cells[cname]
        conn = dsp["connections"]
        if any(dsp["parameters"].get(p, "NONE") != "NONE" for p in ("REG_OUTPUT_CLK", "REG_PIPELINE_CLK")):
            leave("already registered")
            continue
        products = [p for p in conn if p.startswith(PRODUCT_PREFIX) and p[1:].isdigit()]
        regs: dict[str, str] = {}
        clocks, resets, why = set(), set(), None
        for port in products:
            bit = conn[port][0]
            if not isinstance(bit, int) or not sinks[bit]:
                continue  # an unused product bit
            users = sinks[bit]
            ff = cells.get(users[0][0])
            if len(users) != 1 or users[0][1] != "DI" or ff is None or ff["type"] != "TRELLIS_FF":
                why = "a product bit goes to logic"
                break
            usable, reset = _plain_register(ff)
            if not usable:
                why = "a product register with a clock enable or another reset"
                break
            clocks.add(ff["connections"]["CLK"][0])
            resets.add(reset)
            regs[port] = users[0][0]
        if why is None and not regs:
            why = "no product bit used"
        if why is None and (len(clocks) != 1 or len(resets) != 1):
            why = "product registers on several clocks or resets"
        if why is not None:
            leave(why)
            continue
        (clock,), (reset,) = clocks, resets
        gsr = {cells[f]["parameters"].get("GSR", "DISABLED") for f in regs.values()}
        for port, ff_name in regs.items():
            conn[port] = [cells[ff_name]["connections"]["Q"][0]]
            del cells[ff_name]
        dsp["parameters"].update({
            "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE0", "REG_OUTPUT_RST": "RST0",
            "RESETMODE": "SYNC", "GSR": "ENABLED" if gsr == {"ENABLED"} else "DISABLED",
        })
        conn.update({"CLK0": [clock], "CE0": ["1"], "RST0": [reset if reset is not None else "0"]})
        dsp["port_directions"].update({"CLK0": "input", "CE0": "input", "RST0": "input"})
        result.dsps += 1
        result.ffs += len(regs)
    return result


def absorb_file(src: Path, dst: Path, top: str, family: str) -> DspRegisters:
    """:func:`absorb_output_registers` on the netlist in ``src``, written to ``dst``."""
    design = json.loads(src.read_text())
    result = absorb_output_registers(design, top, family)
    dst.write_text(json.dumps(design))
    return result


class DspRegisterPass:
    """The netlist pass (host/fpga/passes): on families whose DSP blocks this knows, unless turned off."""

    name = "dsp_registers"

    def enabled(self, target: Target, options: FlowOptions) -> bool:
        return options.dsp_registers and target.family in DSP_CELLS

    def apply(self, design: dict, target: Target, options: FlowOptions) -> dict:
        return {"enabled": True, **absorb_output_registers(design, WRAPPER_TOP, target.family).as_dict()}

    def describe(self, report: dict) -> str:
        return f"DSP output registers: {report['ffs']} flip-flops moved into {report['dsps']} DSP blocks"
