"""What one run of the flow found (``SynthResult``, the JSON report's schema) and its Markdown report.

``lowbit synth --json`` prints ``SynthResult.to_dict()`` and the flow writes it to report.json;
``report_markdown`` writes report.md. The JSON keys are documented in docs/fpga.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["AREA_ROWS", "SynthResult", "report_markdown"]

AREA_ROWS = 25  # how many units the Markdown report lists by area (the JSON has them all)


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
    deep_paths: list[dict] = field(default_factory=list)  # the deepest paths by logic levels (analysis/depth.py)
    area_by_unit: list[dict] = field(default_factory=list)  # the synthesized cells per module (analysis/area.py)
    endpoint_slack: dict = field(default_factory=dict)  # every endpoint's slack, grouped (analysis/slack.py)
    fmax_placed_mhz: float | None = None  # nextpnr's estimate after placement, before routing
    floorplan: dict = field(default_factory=dict)  # the PEs' DSP blocks fixed to sites (passes/floorplan.py)
    replication: dict = field(default_factory=dict)  # cells copied to cap fanout (passes/fanout.py)
    dsp_registers: dict = field(default_factory=dict)  # product registers into DSP blocks (passes/dsp_registers.py)
    wrapper: dict = field(default_factory=dict)
    out_dir: str = ""
    report: str = ""
    seed: int = 1  # the placement seed of the routed design
    seeds_tried: list[dict] = field(default_factory=list)  # the other seeds started: {"seed", "why"}
    pnr_args: list[str] = field(default_factory=list)  # nextpnr options beyond the target's
    synth_key: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


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
                  "Cells counted as above, each in the module of the net it drives (host/fpga/analysis/area.py).", "",
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
