"""`lowbit synth`: the FPGA flow on one configuration and target (host/fpga/flow.py, docs/fpga.md).

``register(subparsers)`` adds the subcommand to the `lowbit` parser of host/cli.py.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from host.fpga.options import DEFAULT_FANOUT, DEFAULT_JOBS, DEFAULT_TRIES, LUT_PE_FORMS, UNITS
from host.fpga.targets import target_names
from hw.config import load_config

console = Console(stderr=True)

EPILOG = """targets: ecp5-85k (LFE5U-85F, ULX3S), ecp5-25k (LFE5U-25F, ULX3S), ice40-up5k (iCE40UP5K,
iCEBreaker), generic (Yosys 4-LUT synthesis, no device). Outputs go to bitstreams/build/CONFIG-TARGET:
the Verilog, the wrapper lowbit_fpga_top.v, the tool logs, report.md, report.json and the bitstream
(.bit for ECP5, .bin for iCE40). Exit status 0 when the design fits (timing met or not; see
timing_met), 1 when it does not fit, 2 on bad input or a tool failure."""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth", help="synthesize, place and route for an FPGA: bitstream + LUT/FF/DSP/BRAM/Fmax report",
        description="Run Yosys, nextpnr and ecppack/icepack (yowasp, from PyPI) on a configuration's "
                    "Verilog inside a 7-pin wrapper, and report resources, Fmax against the clock "
                    "constraint, the critical path and every endpoint short of the clock, grouped.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="default", help="preset name (tiny, default, large, serial) or TOML path "
                   "(default: default)")
    p.add_argument("--target", default="ecp5-85k", choices=target_names(), metavar="TARGET",
                   help=f"FPGA target: {', '.join(target_names())} (default: ecp5-85k)")
    p.add_argument("-o", "--out", help="output folder (default: bitstreams/build/CONFIG-TARGET[-array])")
    p.add_argument("--freq", type=float, help="clock constraint in MHz (default: the config's clock_mhz)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    p.add_argument("--tries", type=int, default=DEFAULT_TRIES, metavar="N",
                   help="seeds to try: seeds --seed, --seed + 1, ..., N in all; when the router diverges on a "
                        "placement (overused wires climbing for 10 iterations) or is stuck (no fewer for 50), "
                        "nextpnr is stopped and the next seed placed; those given up are listed in the report "
                        f"(default: {DEFAULT_TRIES})")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N",
                   help="nextpnr runs at a time, each on its own seed, a second one starting after the first has "
                        "run a minute; the lowest seed that routes is kept, as with one at a time, and the runs "
                        f"above it stopped (default: {DEFAULT_JOBS}, the cores here up to 2; about 1 GB of memory "
                        "each on ecp5-85k)")
    p.add_argument("--pnr-arg", action="append", default=[], metavar="OPTION",
                   help="an option for nextpnr after the target's own (repeatable; an option with a value is one "
                        "argument, e.g. --pnr-arg=--placer-heap-beta=0.7; --pnr-arg=--router=router1 replaces "
                        "the flow's router2); recorded in the report")
    p.add_argument("--dsp-budget", type=int, metavar="N",
                   help="DSP blocks the multipliers may take, widest products first (default: all of the "
                        "target's); the rest become Booth-encoded LUT logic")
    p.add_argument("--pnr-time-limit", type=float, metavar="SECONDS",
                   help="stop nextpnr after this many seconds and report it as an error, its log kept "
                        "(default: no limit; a congested design can route for hours)")
    p.add_argument("--no-floorplan", action="store_true",
                   help="leave the PEs' DSP blocks to the placer instead of fixing them to the target's DSP "
                        "sites in array order (ECP5 targets; see docs/fpga.md, DSP floorplan)")
    p.add_argument("--pe-halves", action="store_true",
                   help="write the PEs the DSP budget leaves without a DSP block with their multiply in two "
                        "LUT halves registered apart (shallower, more LUTs and flip-flops; two synthesis passes); "
                        "the same as --lut-pe halves")
    p.add_argument("--lut-pe", choices=LUT_PE_FORMS, default="product",
                   help="how the PEs the DSP budget leaves without a DSP block multiply: product (Yosys' Booth "
                        "multiplier, 8 logic levels), halves (see --pe-halves) or booth (weights stored as Booth "
                        "digits, partial products added in pairs before the register; two synthesis passes) "
                        "(default: product)")
    p.add_argument("--max-fanout", type=int, default=None, metavar="N",
                   help="before placement, copy each register or LUT whose output has more than N sinks so "
                        "that no copy drives more than N, and put the reset on a global network (ECP5 targets; "
                        "0: neither; default: 64)")
    p.add_argument("--no-dsp-registers", action="store_true",
                   help="keep each DSP block's product register in the fabric instead of moving it into the "
                        "block's own output register (ECP5 targets; see docs/fpga.md, DSP output registers)")
    p.add_argument("--unit", choices=UNITS, default="accelerator",
                   help="what to place: the whole accelerator (default) or its systolic array alone, in the "
                        "same 7-pin wrapper")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--synth-only", action="store_true", help="stop after synthesis: resource counts and the "
                      "fit check, no place-and-route, no Fmax, no bitstream")
    stop.add_argument("--place-only", action="store_true", help="stop after placement: nextpnr's utilisation "
                      "and its Fmax estimate before routing (fmax_placed_mhz), no routed Fmax, no bitstream; "
                      "for a design that does not route in reasonable time")
    p.add_argument("--no-reuse", action="store_true", help="synthesize again even if the output folder holds "
                   "the synthesis of the identical design")
    p.add_argument("--json", action="store_true", help="print the report as JSON (keys target, fits, luts, ffs, "
                   "dsps, brams, fmax_mhz, constraint_mhz, bitstream, seconds, ...)")
    p.set_defaults(func=cmd_synth)
    return p


def cmd_synth(args: argparse.Namespace) -> int:
    from host.fpga.flow import synthesize
    from host.fpga.options import flow_options
    from host.fpga.targets import FlowConfigError, load_target
    from host.fpga.tools import SynthError

    cfg = load_config(args.config)
    if args.max_fanout is not None and args.max_fanout < 0:
        print(f"lowbit synth: error: --max-fanout {args.max_fanout}: 0 (no copies) or a positive fanout",
              file=sys.stderr)
        return 2
    for flag, value in (("--tries", args.tries), ("--jobs", args.jobs)):
        if value < 1:
            print(f"lowbit synth: error: {flag} {value}: at least 1", file=sys.stderr)
            return 2
    try:
        options = flow_options(
            out_dir=args.out, freq_mhz=args.freq, place=not args.synth_only,
            route=not args.place_only, reuse=not args.no_reuse, unit=args.unit, seed=args.seed, tries=args.tries,
            jobs=args.jobs, pnr_args=tuple(args.pnr_arg), pnr_time_limit=args.pnr_time_limit,
            dsp_budget=args.dsp_budget, lut_pe="halves" if args.pe_halves else args.lut_pe,
            floorplan=not args.no_floorplan, dsp_registers=not args.no_dsp_registers,
            max_fanout=DEFAULT_FANOUT if args.max_fanout is None else args.max_fanout)
        target = load_target(args.target)
        with console.status(f"synth {cfg.name} for {target.name}") as status:
            result = synthesize(cfg, target, options,
                                status=lambda msg: status.update(f"{cfg.name} on {target.name}: {msg}"))
    except (SynthError, FlowConfigError) as exc:
        print(f"lowbit synth: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render(result)
    return 0 if result.fits else 1


def render(r) -> None:
    t = Table(title=f"{r.config} on {r.target} ({r.device or 'generic'})")
    t.add_column("figure")
    t.add_column("value")

    def of(key: str, value: int) -> str:
        cap = r.capacity.get(key)
        return f"{value} / {cap} ({100 * value / cap:.1f}%)" if cap else str(value)

    t.add_row("fits", "yes" if r.fits else "NO: " + "; ".join(r.overflow))
    t.add_row("LUTs", of("luts", r.luts))
    t.add_row("flip-flops", of("ffs", r.ffs))
    t.add_row("DSP blocks", of("dsps", r.dsps))
    t.add_row("block RAMs", of("brams", r.brams))
    m = r.multipliers
    t.add_row("multipliers", f"{m.get('total', 0)} ({m.get('in_dsps', 0)} in DSPs, {m.get('in_luts', 0)} in LUTs)")
    if r.fmax_mhz is not None:
        verdict = "met" if r.timing_met else f"missed by {r.constraint_mhz - r.fmax_mhz:.1f} MHz"
        t.add_row("Fmax", f"{r.fmax_mhz:.1f} MHz vs {r.constraint_mhz:g} MHz constraint: {verdict}")
    elif r.fmax_placed_mhz is not None:
        t.add_row("Fmax", f"not routed; {r.fmax_placed_mhz:.1f} MHz estimated after placement, "
                          f"vs {r.constraint_mhz:g} MHz constraint")
    else:
        t.add_row("Fmax", f"not measured ({r.stage} only); constraint {r.constraint_mhz:g} MHz")
    if r.replication:
        f = r.replication
        t.add_row("fanout", f"capped at {f['limit']}: {f['copies']} copies of {f['cells']} registers and LUTs "
                            f"(widest before {f['widest_fanout']} sinks)")
    if r.memory_bits:
        t.add_row("memory bits", f"{r.memory_bits} (block RAMs above: 18-kbit equivalents, one per memory at least)")
    if r.lut_levels is not None:
        t.add_row("longest LUT path", f"{r.lut_levels} levels")
    if r.critical_path:
        c = r.critical_path
        t.add_row("critical path", f"{c['from']} -> {c['to']}: {c['delay_ns']} ns, {c['logic_levels']} logic levels")
    if r.endpoint_slack:
        e = r.endpoint_slack
        worst = e["groups"][0] if e["groups"] else None
        t.add_row("endpoints short", f"{e['failing']} of {e['endpoints']} (total negative slack "
                  f"{e['total_negative_slack_ns']} ns)" + (f"; worst group {worst['end']}: {worst['failing']} failing"
                                                           if worst else "") + "; see report.md")
    if r.stage != "synthesis":
        t.add_row("nextpnr seed", str(r.seed) + "".join(f"; seed {d['seed']}: {d['why']}"
                                                         for d in r.seeds_tried))
    t.add_row("bitstream", r.bitstream or "none")
    t.add_row("tool seconds", ", ".join(f"{k} {v}" for k, v in r.tool_seconds.items()) + f" (total {r.seconds})")
    Console(width=None if sys.stdout.isatty() else 160).print(t)
    print(f"wrote {r.report}")
