"""Register and LUT replication: cap the fanout of a synthesized netlist's nets before placement.

nextpnr places and routes the netlist as Yosys wrote it and never duplicates a cell. A register
whose output reaches a thousand flip-flop enables or LUT-RAM addresses across the device then
costs one long, branching route per cycle. Replication gives such a cell copies with the same
inputs and parameters, each driving one group of the sinks, so the placer can put every copy near
its group. A copy computes what the original computes, so the design is unchanged.

Sinks are grouped by name, digits compared as numbers: the bits of one register or one memory
lie next to each other in that order, and so, usually, on the device.

Only the cell types a family's flow can freely duplicate are replicated: on ECP5 a ``TRELLIS_FF``,
a ``LUT4``, and a ``PFUMX`` with the two LUTs it selects between (sinks that are a ``PFUMX``/
``L6MUX21`` data input, which must sit in the driving LUT's slice, stay with the original).
Carry chains (``CCU2C``) are not copied. Module ports stay on the original as well.

The reset is not copied but moved: its flip-flop reset inputs (10,621 on ``default``) go onto
one of the device's global networks through a clock buffer (ECP5 ``DCCA``), which reaches every
logic tile with the same short delay and takes the net off the general routing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from host.fpga.options import DEFAULT_FANOUT
from host.fpga.wrapper import WRAPPER_TOP
from host.fpga.yosys import natural_key

if TYPE_CHECKING:
    from host.fpga.options import FlowOptions
    from host.fpga.targets import Target

# cell type -> its output port, per FPGA family
REPLICABLE = {"ecp5": {"TRELLIS_FF": "Q", "LUT4": "Z", "PFUMX": "Z"}}
# a wide-function mux's data inputs, whose LUTs are copied with it (they share its slice)
MUX_INPUTS = {"ecp5": {"PFUMX": ("ALUT", "BLUT")}}
# sink ports that must stay with the original driver: wide-function muxes take their data inputs
# from the LUTs of their own slice
PINNED_SINKS = {"ecp5": {("PFUMX", "ALUT"), ("PFUMX", "BLUT"), ("L6MUX21", "D0"), ("L6MUX21", "D1")}}


@dataclass
class Replication:
    limit: int
    cells: int = 0  # cells that got copies
    copies: int = 0  # copies added
    widest: int = 0  # the largest fanout before
    widest_net: str = ""
    global_net: dict = field(default_factory=dict)  # the reset moved onto a global network

    def as_dict(self) -> dict:
        return {"limit": self.limit, "cells": self.cells, "copies": self.copies,
                "widest_fanout": self.widest, "widest_net": self.widest_net, "global_reset": self.global_net}


def replicate(design: dict, top: str, family: str, limit: int = DEFAULT_FANOUT, passes: int = 4) -> Replication:
    """Copy every replicable cell of ``top`` whose output has more than ``limit`` sinks, each copy
    taking at most ``limit`` of them; ``design`` (Yosys JSON) is changed in place. A copied sink
    adds a sink to its driver, so this runs again on the result, ``passes`` times at most."""
    if limit < 1:
        raise ValueError(f"fanout limit {limit}: must be at least 1")
    if family not in REPLICABLE:
        raise ValueError(f"no replication rules for the {family!r} family; families: {sorted(REPLICABLE)}")
    result = Replication(limit)
    for _ in range(passes):
        if not _one_pass(design["modules"][top], family, limit, result):
            break
    return result


def free_bit(module: dict) -> int:
    """The first net bit number above every bit ``module``'s cells and net names use."""
    bits = [b for c in module["cells"].values() for conn in c["connections"].values() for b in conn
            if isinstance(b, int)]
    bits += [b for n in module.get("netnames", {}).values() for b in n["bits"] if isinstance(b, int)]
    return max(bits, default=1) + 1


def _one_pass(module: dict, family: str, limit: int, result: Replication) -> int:
    kinds, pinned, groups_of = REPLICABLE[family], PINNED_SINKS.get(family, set()), MUX_INPUTS.get(family, {})
    cells = module["cells"]
    netnames = module.setdefault("netnames", {})
    port_bits = {b for p in module.get("ports", {}).values() for b in p["bits"] if isinstance(b, int)}
    sinks: dict[int, list[tuple[str, str, int]]] = {}
    driver: dict[int, str] = {}
    for cname, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, conn in cell["connections"].items():
            for i, b in enumerate(conn):
                if not isinstance(b, int):
                    continue
                if dirs.get(port) == "output":
                    driver[b] = cname
                else:
                    sinks.setdefault(b, []).append((cname, port, i))
    names: dict[int, str] = {}
    for nname, net in netnames.items():
        for b in net["bits"]:
            if isinstance(b, int):
                if b not in names or len(nname) < len(names[b]):
                    names[b] = nname
    next_bit = free_bit(module)

    def clone(cname: str, suffix: str) -> tuple[str, int]:
        """A copy of cell ``cname`` (with copies of the LUTs a mux takes its data from); its name
        and its new output bit."""
        nonlocal next_bit
        cell = cells[cname]
        dup = json.loads(json.dumps(cell))
        for port in groups_of.get(cell["type"], ()):
            src = dup["connections"][port][0]
            if isinstance(src, int) and src in driver:
                dup["connections"][port] = [clone(driver[src], suffix)[1]]
        new_bit, next_bit = next_bit, next_bit + 1
        dup["connections"][kinds.get(cell["type"], "Z")] = [new_bit]
        name = f"{cname}{suffix}"
        while name in cells:
            name += "_"
        cells[name] = dup
        return name, new_bit

    copies = 0
    for cname in list(cells):
        cell = cells[cname]
        out = kinds.get(cell["type"])
        if out is None or len(cell["connections"].get(out, ())) != 1:
            continue
        bit = cell["connections"][out][0]
        if not isinstance(bit, int) or bit in port_bits:
            continue
        fanout = len(sinks.get(bit, ()))
        if fanout > result.widest:
            result.widest, result.widest_net = fanout, names.get(bit, cname)
        movable = [s for s in sinks.get(bit, ()) if (cells[s[0]]["type"], s[1]) not in pinned]
        if fanout <= limit or not movable:
            continue
        movable.sort(key=lambda s: (natural_key(s[0]), s[1], s[2]))
        size = math.ceil(fanout / math.ceil(fanout / limit))
        start = max(size - (fanout - len(movable)), 0)  # the original keeps the pinned sinks and the first group
        made = 0
        while start < len(movable):
            made += 1
            group, start = movable[start:start + size], start + size
            _, new_bit = clone(cname, f"$dup{made}")
            for sname, port, i in group:
                cells[sname]["connections"][port][i] = new_bit
            netnames[f"{names.get(bit, cname)}$dup{made}"] = {"hide_name": 0, "bits": [new_bit], "attributes": {}}
        if made:
            result.cells += 1
            result.copies += made
            copies += made
    return copies


# the flip-flop ports a global (clock) network reaches in every logic tile, and the buffer that
# drives one; a net with at least GLOBAL_MIN_SINKS of them (the reset) goes onto a global
GLOBAL_PORTS = {"ecp5": (("TRELLIS_FF", "LSR"), "DCCA", "CLKI", "CLKO", {"CE": "1"})}
GLOBAL_MIN_SINKS = 1000


def reset_to_global(design: dict, top: str, family: str, min_sinks: int = GLOBAL_MIN_SINKS) -> dict:
    """Move the flip-flop reset inputs of the net with the most of them (at least
    ``min_sinks``) onto a global network, through a clock buffer cell; its other sinks stay.
    Returns {"net", "sinks"} of what moved, or {}."""
    if family not in GLOBAL_PORTS:
        return {}
    (ctype, cport), buf, buf_in, buf_out, tied = GLOBAL_PORTS[family]
    module = design["modules"][top]
    cells = module["cells"]
    sinks: dict[int, list[str]] = {}
    for cname, cell in cells.items():
        if cell["type"] == ctype:
            b = cell["connections"].get(cport, [None])[0]
            if isinstance(b, int):
                sinks.setdefault(b, []).append(cname)
    if not sinks:
        return {}
    bit, users = max(sinks.items(), key=lambda kv: len(kv[1]))
    if len(users) < min_sinks:
        return {}
    new = free_bit(module)
    name = next((n for n, d in module.get("netnames", {}).items() if d["bits"] == [bit]), f"net{bit}")
    cells[f"{name}$global"] = {"type": buf, "parameters": {}, "attributes": {},
                               "port_directions": {buf_in: "input", buf_out: "output", **dict.fromkeys(tied, "input")},
                               "connections": {buf_in: [bit], buf_out: [new], **{p: [v] for p, v in tied.items()}}}
    for cname in users:
        cells[cname]["connections"][cport] = [new]
    module.setdefault("netnames", {})[f"{name}$global"] = {"hide_name": 0, "bits": [new], "attributes": {}}
    return {"net": name, "sinks": len(users)}


def cap_fanout(design: dict, top: str, family: str, limit: int = DEFAULT_FANOUT,
               global_reset: bool = False) -> Replication:
    """:func:`replicate` on ``design`` in place, after :func:`reset_to_global` with ``global_reset``."""
    moved = reset_to_global(design, top, family) if global_reset else {}
    result = replicate(design, top, family, limit)
    result.global_net = moved
    return result


def replicate_file(src: Path, dst: Path, top: str, family: str, limit: int = DEFAULT_FANOUT,
                   global_reset: bool = False) -> Replication:
    """:func:`cap_fanout` on the netlist in ``src``, written to ``dst`` (``src`` is left as it is)."""
    design = json.loads(src.read_text())
    result = cap_fanout(design, top, family, limit, global_reset)
    dst.write_text(json.dumps(design))
    return result


class FanoutPass:
    """The netlist pass (host/fpga/passes): on families with replication rules, unless the limit is 0."""

    name = "replication"

    def enabled(self, target: Target, options: FlowOptions) -> bool:
        return options.max_fanout > 0 and target.family in REPLICABLE

    def apply(self, design: dict, target: Target, options: FlowOptions) -> dict:
        return cap_fanout(design, WRAPPER_TOP, target.family, options.max_fanout, global_reset=True).as_dict()

    def describe(self, report: dict) -> str:
        return f"fanout capped at {report['limit']}: {report['copies']} copies of {report['cells']} cells"
