"""Logic depth of a synthesized ECP5 netlist: the deepest register-to-register paths, before
place-and-route.

nextpnr reports one critical path per clock, after 5 to 25 minutes of placement and routing.
Most of the accelerator's paths are routing-dominated (70-80% of the delay), and their delay
grows with the number of LUTs on them, so the number of logic levels of every path, read from
Yosys' netlist in seconds, ranks the paths well enough to find all the deep ones at once.

The model: a path starts at a flip-flop's Q, a block RAM's output (registered in the RAM) or
a top-level input, and ends at a flip-flop's data, clock-enable or reset input, or any input
of a block RAM, DSP block or distributed RAM's write port. Each LUT4 on it and each entry into a
carry chain (a CCU2C's A/B/C/D inputs) is one level, an unregistered DSP block ``DSP_LEVELS``. A carry
chain's ripple (CIN to COUT or S) adds no level but is counted separately in ``carry`` cells,
and the PFUMX/L6MUX21 wide-function muxes after a LUT add none (they sit in the LUT's slice).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

# cell type -> {input port: {output port: (levels, carry cells)}}, for the combinational arcs
_CCU_IN = ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1")
ARCS: dict[str, dict[str, dict[str, tuple[int, int]]]] = {
    "LUT4": {p: {"Z": (1, 0)} for p in "ABCD"},
    "PFUMX": {p: {"Z": (0, 0)} for p in ("ALUT", "BLUT", "C0")},
    "L6MUX21": {p: {"Z": (0, 0)} for p in ("D0", "D1", "SD")},
    "CCU2C": {**{p: {"S0": (1, 0), "S1": (1, 0), "COUT": (1, 1)} for p in _CCU_IN},
              "CIN": {"S0": (0, 1), "S1": (0, 1), "COUT": (0, 1)}},
    # distributed RAM: the read address to the data out is a LUT
    "TRELLIS_DPR16X4": {**{f"RAD{i}": {f"DO{j}": (1, 0) for j in range(4)} for i in range(4)}},
}
# an unregistered DSP block (3.9 ns in nextpnr's ECP5 model, and long routes to and from its DSP
# row) counts as this many LUT levels
DSP_LEVELS = 6
_MULT_REGS = ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_PIPELINE_CLK", "REG_OUTPUT_CLK")


@dataclass(frozen=True)
class DeepPath:
    """One register-to-register path: its end (a register, or a block's input), where it
    starts, its logic levels and the carry cells it ripples through."""

    end: str
    start: str
    levels: int
    carry: int
    alike: int = 1  # paths of the same shape (names equal but for their indices) it stands for

    def as_dict(self) -> dict:
        return {"end": self.end, "start": self.start, "levels": self.levels, "carry": self.carry,
                "alike": self.alike}


def shape(name: str) -> str:
    """`core.matmul.array.pe_10_3.product` -> `core.matmul.array.pe_#_#.product`."""
    return re.sub(r"\d+", "#", name)


def _bit_names(module: dict) -> dict[int, str]:
    """A readable name for each net bit: the shortest visible net name holding it."""
    names: dict[int, str] = {}
    for name, net in module["netnames"].items():
        hidden = net.get("hide_name", 0)
        bits = net["bits"]
        for i, b in enumerate(bits):
            if isinstance(b, str):
                continue
            label = name if len(bits) == 1 else f"{name}[{i}]"
            key = (hidden, len(label))
            old = names.get(b)
            if old is None or key < old[0]:
                names[b] = (key, label)
    return {b: label for b, (_, label) in names.items()}


def _register_name(label: str) -> str:
    """`core.ctrl.d1_span[12]` -> `core.ctrl.d1_span`: paths are grouped by register."""
    return re.sub(r"\[\d+\]$", "", label)


def _combinational(cell: dict) -> dict[str, dict[str, tuple[int, int]]] | None:
    arcs = ARCS.get(cell["type"])
    if arcs is not None:
        return arcs
    if cell["type"] == "MULT18X18D":
        params = cell.get("parameters", {})
        if all(str(params.get(p, "NONE")) == "NONE" for p in _MULT_REGS):
            outs = [p for p, d in cell["port_directions"].items() if d == "output" and p.startswith("P")]
            ins = [p for p, d in cell["port_directions"].items()
                   if d == "input" and (p.startswith("A") or p.startswith("B")) and p[1:].isdigit()]
            return {i: {o: (DSP_LEVELS, 0) for o in outs} for i in ins}
    return None


def deepest_paths(netlist: dict, top: str | None = None, count: int = 20, group: bool = False) -> list[DeepPath]:
    """The ``count`` deepest paths of the netlist's top module (or ``top``), one per end
    register, deepest first (levels, then carry cells). With ``group``, one per shape of
    (end, start) (the 256 PEs' products are one entry), ``alike`` counting the ends it stands for."""
    modules = netlist["modules"]
    if top is None:
        tops = [n for n, mod in modules.items() if str(mod.get("attributes", {}).get("top", "0")).strip("0") != ""]
        top = tops[0] if tops else max(modules, key=lambda n: len(modules[n].get("cells", {})))
    if top not in modules:
        raise ValueError(f"netlist has no module {top!r} (modules: {', '.join(sorted(modules))})")
    module = modules[top]
    names = _bit_names(module)

    # arcs: driver bit -> [(sink bit, levels, carry)], through each cell's combinational arcs
    fanout: dict[int, list[tuple[int, int, int]]] = {}
    indeg: dict[int, int] = {}
    ends: list[tuple[int, str]] = []  # (bit, end name) for sequential and block inputs
    for cname, cell in module["cells"].items():
        conns, dirs = cell["connections"], cell["port_directions"]
        arcs = _combinational(cell)
        if arcs is None:  # sequential or block: its inputs end paths, its outputs start them
            label = cname  # a block RAM or DSP block: its cell
            if cell["type"] == "TRELLIS_FF":
                q = conns.get("Q", [None])[0]
                label = _register_name(names.get(q, cname)) if q is not None else cname
            for port, d in dirs.items():
                if d == "input" and port not in ("CLK", "CLKA", "CLKB", "WCK"):
                    for b in conns.get(port, []):
                        if not isinstance(b, str):
                            ends.append((b, label))
            continue
        if cell["type"] == "TRELLIS_DPR16X4":  # its write port ends paths too
            for port, d in dirs.items():
                if d == "input" and not port.startswith("RAD") and port != "WCK":
                    for b in conns.get(port, []):
                        if not isinstance(b, str):
                            ends.append((b, cname))
        for port, outs in arcs.items():
            for a in conns.get(port, []):
                if isinstance(a, str):
                    continue
                for out, (lv, cy) in outs.items():
                    for z in conns.get(out, []):
                        if isinstance(z, str):
                            continue
                        fanout.setdefault(a, []).append((z, lv, cy))
                        indeg[z] = indeg.get(z, 0) + 1

    # longest path by levels (then carry) from any source, in topological order
    best: dict[int, tuple[int, int, int]] = {}  # bit -> (levels, carry, start bit)
    ready = [b for b in fanout if indeg.get(b, 0) == 0]
    for b in ready:
        best[b] = (0, 0, b)
    remaining = dict(indeg)
    while ready:
        a = ready.pop()
        la, ca, sa = best[a]
        for z, lv, cy in fanout.get(a, ()):
            cand = (la + lv, ca + cy, sa)
            old = best.get(z)
            if old is None or cand[:2] > old[:2]:
                best[z] = cand
            remaining[z] -= 1
            if remaining[z] == 0:
                ready.append(z)
    if any(v > 0 for v in remaining.values()):
        loop = next(names.get(b, str(b)) for b, v in remaining.items() if v > 0)
        raise ValueError(f"combinational loop in {top} through {loop}")

    worst: dict[str, DeepPath] = {}
    for b, end in ends:
        lv, cy, start = best.get(b, (0, 0, b))
        if lv == 0:
            continue
        p = DeepPath(end=end, start=_register_name(names.get(start, str(start))), levels=lv, carry=cy)
        old = worst.get(end)
        if old is None or (p.levels, p.carry) > (old.levels, old.carry):
            worst[end] = p
    ranked = sorted(worst.values(), key=lambda p: (-p.levels, -p.carry, p.end))
    if group:
        kinds: dict[tuple[str, str], DeepPath] = {}
        for p in ranked:  # the deepest of each shape comes first
            key = (shape(p.end), shape(p.start))
            old = kinds.get(key)
            kinds[key] = p if old is None else replace(old, alike=old.alike + 1)
        ranked = list(kinds.values())
    return ranked[:count]


def deepest_paths_file(path: str | Path, top: str | None = None, count: int = 20,
                       group: bool = False) -> list[DeepPath]:
    return deepest_paths(json.loads(Path(path).read_text()), top, count, group)
