"""The flow as data plus steps: generate -> synthesis -> analysis -> netlist-passes ->
place-and-route -> bitstream, for one configuration on one target with one ``FlowOptions``.

A :class:`Step` has a name, the inputs that make its cache key (beyond the key of the step
before it, so one key names everything up to that step), what it does (``run``) and, where it
makes something the later steps read, how to take that from the output folder instead
(``load``). The keys of a run and what the steps recorded go to ``flow.json`` in the output
folder after each step.

Two things are reused (``reuse``): the synthesis, when the folder's synthesis key is this run's
(place-and-route again at another frequency, seed or nextpnr option costs no Yosys run), and
the whole run, when the folder's report was made with this run's last key (reported again
without running any tool). ``resume_from`` takes the steps before it from the folder as they
are, whatever their keys, and runs it and every step after it: e.g. place-and-route again
after editing netlist_pnr.json by hand, or the bitstream packed again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host.fpga.analysis import SLACK_GROUPS, netlist_analysis
from host.fpga.analysis.slack import endpoint_slacks, summary
from host.fpga.nextpnr import PNR_BELS, pack, parse_pnr_report, place_with_retries, placed_fmax
from host.fpga.options import STEPS, FlowOptions
from host.fpga.passes import enabled_passes, run_passes
from host.fpga.report import SynthResult, report_markdown
from host.fpga.targets import BUILD_DIR, FlowConfigError, Target, load_target
from host.fpga.wrapper import WRAPPER_TOP, emit, wrapper_verilog
from host.fpga.yosys import CELLS, FLOW_VERSION, count_resources, run_synthesis
from hw.config import AccelConfig

__all__ = ["FLOW", "Step", "default_out_dir", "synthesize"]


@dataclass
class Run:
    """What the steps of one run share: its inputs, and what the steps before produced."""

    cfg: AccelConfig
    target: Target
    options: FlowOptions
    work: Path
    say: Callable[[str], None]
    record: dict  # flow.json: each step's key and what it recorded, from earlier runs and this one
    times: dict[str, float] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    generated: bool = False  # whether this run wrote the core's Verilog
    result: SynthResult | None = None
    netlist: str = "netlist.json"  # what nextpnr reads

    @property
    def freq(self) -> float:
        return float(self.options.freq_mhz or self.cfg.clock_mhz)

    @property
    def budget(self) -> int | None:
        return self.target.capacity.get("dsps") if self.options.dsp_budget is None else self.options.dsp_budget

    def add_times(self, times: dict[str, float]) -> None:
        for k, v in times.items():
            self.times[k] = self.times.get(k, 0.0) + v

    def need(self, step: str, *files: str, recorded: bool = False) -> None:
        """Refuse to take ``step`` from the folder without its files (and its record in flow.json)."""
        missing = [f for f in files if not (self.work / f).exists()]
        missing += ["its record in flow.json"] if recorded and step not in self.record else []
        if missing:
            raise FlowConfigError(f"cannot take step {step} from {self.work}: {', '.join(missing)} missing "
                                  "(resume from an earlier step)")


@dataclass(frozen=True)
class Step:
    name: str
    inputs: Callable[[Run], list]  # what the step reads beyond the step before: its cache key
    run: Callable[[Run], None]
    load: Callable[[Run], None] | None = None  # None: nothing to take, run it again (it only reads the folder)
    reusable: Callable[[Run], bool] | None = None  # whether the folder holds this step's products


def generate(run: Run) -> None:
    run.say(f"generating Verilog for {run.cfg.name}")
    t = time.perf_counter()
    # every PE with one product first; with another lut_pe form the DSP budget then picks the
    # PEs that get a DSP block, and the synthesis writes the others again in that form
    manifest = emit(run.cfg, run.work, run.options.unit)
    text, wrapper = wrapper_verilog(manifest, run.target.pin_polarity)
    (run.work / f"{WRAPPER_TOP}.v").write_text(text)
    run.add_times({"generate": time.perf_counter() - t})
    run.generated = True
    core = {k: manifest[k] for k in ("top", "config_name", "config_hash", "ports")}
    run.record["generate"] = {"manifest": core, "wrapper": wrapper}


def verilog_hash(run: Run) -> list:
    h = hashlib.sha256()
    for f in (f"{run.record['generate']['manifest']['top']}.v", f"{WRAPPER_TOP}.v"):
        h.update((run.work / f).read_bytes())
    return [h.hexdigest()]


def synthesis(run: Run) -> None:
    top = run.record["generate"]["manifest"]["top"]
    info, redone, times = run_synthesis(run.cfg, run.target, run.work, run.options.unit, top, run.budget,
                                        run.options.lut_pe, run.say)
    run.add_times(times)
    (run.work / "synth.json").write_text(json.dumps({"multipliers": info, "lut_pe": run.options.lut_pe,
                                                     "lut_pes": sorted(map(list, redone))}) + "\n")


def load_synthesis(run: Run) -> None:
    run.need("synthesis", "synth.json", "stat.json")
    redone = frozenset(map(tuple, json.loads((run.work / "synth.json").read_text())["lut_pes"]))
    if redone and run.generated:  # the Verilog beside a reused netlist is the one it came from
        emit(run.cfg, run.work, run.options.unit, redone, run.options.lut_pe)


def synthesized(run: Run) -> bool:
    files = ["synth.json", "stat.json"] + ([] if run.target.family == "generic" else ["netlist.json"])
    return all((run.work / f).exists() for f in files)


def analysis(run: Run) -> None:
    """Counts, the fit check, the deepest paths and the area by unit: the result so far."""
    cfg, target, work = run.cfg, run.target, run.work
    counts, cells, mem_bits, levels = count_resources(work, target)
    overflow = [f"{k}: {counts[k]} > {cap}" for k, cap in target.capacity.items() if k in counts and counts[k] > cap]
    deep, by_unit = netlist_analysis(work / "netlist.json", WRAPPER_TOP, target.family, CELLS[target.family])
    run.result = SynthResult(
        target=target.name, config=cfg.name, config_hash=cfg.hash, device=target.device, unit=run.options.unit,
        fits=not overflow, overflow=overflow, luts=counts["luts"], ffs=counts["ffs"], dsps=counts["dsps"],
        brams=counts["brams"], fmax_mhz=None, constraint_mhz=run.freq, timing_met=None, bitstream=None,
        seconds=0.0, stage="synthesis", capacity=dict(target.capacity), cells=cells,
        multipliers=json.loads((work / "synth.json").read_text())["multipliers"], memory_bits=mem_bits,
        lut_levels=levels, wrapper=run.record["generate"]["wrapper"], out_dir=str(work), deep_paths=deep,
        area_by_unit=by_unit, seed=run.options.seed)


def netlist_passes(run: Run) -> None:
    run.netlist, reports = run_passes(run.work, run.target, run.options, run.say)
    run.record["netlist-passes"] = {"netlist": run.netlist, "reports": reports}
    load_netlist_passes(run)


def load_netlist_passes(run: Run) -> None:
    run.need("netlist-passes", recorded=True)
    done = run.record["netlist-passes"]
    run.need("netlist-passes", done["netlist"])
    run.netlist = done["netlist"]
    for name, report in done["reports"].items():
        setattr(run.result, name, dict(report))


def place_and_route(run: Run) -> None:
    o = run.options
    run.say(f"nextpnr-{run.target.family}: {'place and route' if o.route else 'place'} at {run.freq:g} MHz")
    report, seconds, overflow, used, tried = place_with_retries(
        run.target, run.work, run.freq, o.seed, o.tries, o.pnr_args, o.pnr_time_limit, o.route, run.say,
        run.netlist, o.jobs)
    run.add_times({"nextpnr": seconds})
    run.record["place-and-route"] = {"seed": used, "seeds_tried": tried, "overflow": overflow}
    load_place_and_route(run)


def load_place_and_route(run: Run) -> None:
    """The result of place-and-route: nextpnr's counts, Fmax, critical path and endpoint slack."""
    run.need("place-and-route", "nextpnr.log", recorded=True)
    done, r, route = run.record["place-and-route"], run.result, run.options.route
    r.stage, r.seed, r.seeds_tried = ("place-and-route" if route else "placement"), done["seed"], done["seeds_tried"]
    if done["overflow"]:
        r.fits, r.overflow = False, done["overflow"]
        return
    run.need("place-and-route", "nextpnr_report.json")
    report = json.loads((run.work / "nextpnr_report.json").read_text())
    util, fmax, crit = parse_pnr_report(report)
    log = (run.work / "nextpnr.log").read_text(errors="replace")
    r.fmax_placed_mhz = placed_fmax(log)
    if r.floorplan:  # what nextpnr placed from constraints: the fixed DSP blocks and the pins
        m = re.search(r"Placed (\d+) cells based on constraints", log)
        r.floorplan["constrained_cells"] = int(m.group(1)) if m else 0
    r.utilization.update(util)
    r.critical_path = crit
    if route:
        r.fmax_mhz = round(fmax, 2) if fmax is not None else None
        r.timing_met = fmax is not None and fmax >= run.freq
    if route and "detailed_net_timings" in report:
        r.endpoint_slack = summary(endpoint_slacks(report, 1000.0 / run.freq), SLACK_GROUPS)
    bels = PNR_BELS[run.target.family]
    for res in ("luts", "ffs", "dsps", "brams"):  # nextpnr's counts are the placed design's
        if res in bels and bels[res] in util:
            setattr(r, res, util[bels[res]]["used"])


def bitstream(run: Run) -> None:
    run.say("packing the bitstream")
    bit, seconds = pack(run.target, run.work, default_out_dir(run.cfg, run.target, run.options.unit).name)
    run.add_times({"pack": seconds})
    run.result.bitstream, run.result.stage = str(bit), "bitstream"


def pnr_inputs(run: Run) -> list:
    return [run.target.nextpnr, run.target.pins, run.options.seed, run.options.pnr_args, run.options.route]


def pass_inputs(run: Run) -> list:
    on = [p.name for p in enabled_passes(run.target, run.options)]
    return [on, run.target.dsp_sites and run.target.dsp_sites.model_dump(), run.options.max_fanout]


FLOW = (
    Step("generate", verilog_hash, generate, load=lambda run: run.need("generate", recorded=True)),
    Step("synthesis", lambda run: [FLOW_VERSION, run.target.family, run.target.yosys, run.budget,
                                   run.target.lut_width, run.options.lut_pe], synthesis, load_synthesis, synthesized),
    Step("analysis", lambda run: [run.freq, run.target.capacity], analysis),
    Step("netlist-passes", pass_inputs, netlist_passes, load_netlist_passes),
    Step("place-and-route", pnr_inputs, place_and_route, load_place_and_route),
    Step("bitstream", lambda run: [], bitstream),
)
assert tuple(s.name for s in FLOW) == STEPS


def default_out_dir(cfg: AccelConfig, target: Target, unit: str = "accelerator") -> Path:
    return BUILD_DIR / (f"{cfg.name}-{target.name}" + ("" if unit == "accelerator" else f"-{unit}"))


def last_step(target: Target, options: FlowOptions) -> int:
    if not (options.place and target.places):
        return STEPS.index("analysis")
    return STEPS.index("bitstream" if options.route else "place-and-route")


def chain_keys(run: Run, start: int, last: int) -> None:
    """Every step's key up to ``last``: the recorded one for a step taken from the folder."""
    prev = ""
    for i, step in enumerate(FLOW[:last + 1]):
        recorded = run.record.get("keys", {}).get(step.name)
        if i < start and recorded:
            run.keys[step.name] = recorded
        else:
            what = json.dumps([prev, step.name, step.inputs(run)], default=str)
            run.keys[step.name] = hashlib.sha256(what.encode()).hexdigest()[:16]
        prev = run.keys[step.name]


def reusable(run: Run, step: Step) -> bool:
    """Whether the folder holds ``step``'s products for this run's key."""
    return (step.reusable is not None and run.record.get("keys", {}).get(step.name) == run.keys[step.name]
            and step.reusable(run))


def synthesize(cfg: AccelConfig, target: Target | str, options: FlowOptions | None = None,
               status: Callable[[str], None] | None = None) -> SynthResult:
    """Run the flow for one configuration on one target; writes report.md/report.json (and the
    bitstream) to ``options.out_dir`` (default bitstreams/build/CONFIG-TARGET[-array]).
    ``status`` hears what the flow is doing, a line at a time."""
    options = options or FlowOptions()
    target = load_target(target) if isinstance(target, str) else target
    budget, cap = options.dsp_budget, target.capacity.get("dsps")
    if budget is not None and cap is not None and budget > cap:
        raise FlowConfigError(f"DSP budget {budget} is outside 0..{cap} (the DSP blocks of {target.name})")
    work = Path(options.out_dir) if options.out_dir else default_out_dir(cfg, target, options.unit)
    work.mkdir(parents=True, exist_ok=True)
    previous = json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else {}
    for stale in ("report.json", "report.md"):
        (work / stale).unlink(missing_ok=True)
    record = json.loads((work / "flow.json").read_text()) if (work / "flow.json").exists() else {}
    reported = record.pop("report", None)  # the last key of the run that wrote report.json
    run = Run(cfg, target, options, work, status or (lambda _msg: None), record)
    start = STEPS.index(options.resume_from) if options.resume_from else 0
    last = last_step(target, options)
    if start > last:
        raise FlowConfigError(f"flow options: resume_from: {options.resume_from} is past this run's last step, "
                              f"{STEPS[last]}")
    t0 = time.perf_counter()
    reuse = options.reuse and not options.resume_from
    keys = record.setdefault("keys", {})
    for i, step in enumerate(FLOW[:last + 1]):
        if i < start:
            (step.load or step.run)(run)
        elif i > 0 and reuse and reusable(run, step):
            run.say(f"reusing the {step.name} result of an identical design")
            step.load(run)
        else:
            keys.pop(step.name, None)  # until it has run: a run that stops here leaves no stale key
            (work / "flow.json").write_text(json.dumps(record, indent=1) + "\n")
            step.run(run)
        if i == 0:  # every later step's key: none of their inputs is the output of a step
            chain_keys(run, start, last)
        keys[step.name] = run.keys[step.name]
        (work / "flow.json").write_text(json.dumps(record, indent=1) + "\n")
        if i == 0 and reuse and previous and reported == run.keys[STEPS[last]] \
                and (not previous.get("bitstream") or Path(previous["bitstream"]).exists()):
            if reusable(run, FLOW[1]):  # the Verilog beside the netlist is the one it came from
                FLOW[1].load(run)
            run.say("reusing the finished run of an identical design")
            record["report"] = reported
            return finish(run, SynthResult(**previous))
        if run.result is not None and not run.result.fits:
            break
    r = run.result
    r.pnr_args, r.synth_key = list(options.pnr_args), run.keys["synthesis"]
    r.tool_seconds = {k: round(v, 2) for k, v in run.times.items()}
    r.seconds = round(time.perf_counter() - t0, 2)
    r.report = str(work / "report.md")
    record["report"] = run.keys[STEPS[last]]
    return finish(run, r)


def finish(run: Run, result: SynthResult) -> SynthResult:
    (run.work / "flow.json").write_text(json.dumps(run.record, indent=1) + "\n")
    (run.work / "report.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    (run.work / "report.md").write_text(report_markdown(result))
    return result
