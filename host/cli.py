"""The `lowbit` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from compiler.frontend import FrontendError
from compiler.lowering import CompileError
from host.fpga import cli as synth_cli
from host.terminal import table_console
from hw.config import ConfigError, load_config, preset_names
from hw.isa import IsaError
from hw.program import ProgramError
from sim.golden import ExecError

console = Console(stderr=True)


def flat_rows(rows: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested figures as dotted keys (``runs.int4.cycles``); a list of records is summarized,
    its entries are in the JSON file."""
    out = []
    for k, v in rows.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flat_rows(v, f"{key}.")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out.append((key, f"{len(v)} entries (see the JSON file)"))
        else:
            out.append((key, json.dumps(v) if isinstance(v, list) else str(v)))
    return out


def print_table(title: str, rows: dict, columns: tuple[str, str]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for k, v in flat_rows(rows):
        t.add_row(k, v)
    table_console().print(t)


def cmd_gen(args: argparse.Namespace) -> int:
    from hw.emit import generate
    from sim.toolchain import lint

    cfg = load_config(args.config)
    with console.status(f"generating Verilog for {cfg.name}"):
        manifest = generate(cfg, args.out)
    files = [Path(args.out) / f for f in manifest["files"]]
    if not args.no_lint:
        with console.status("verilator --lint-only -Wall"):
            lint(files, manifest["top"])
    manifest["lint_clean"] = None if args.no_lint else True
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        print(f"wrote {', '.join(map(str, files))} and {Path(args.out) / 'manifest.json'}")
        print(f"config {cfg.name} ({cfg.hash}), ISA {manifest['isa_version']}, "
              f"top {manifest['top']} ({manifest['top_component']}), lint "
              f"{'skipped' if args.no_lint else 'clean'}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if not args.config:
        for name in preset_names():
            cfg = load_config(name)
            print(f"{name:10} {cfg.hash}  {cfg.description}")
        return 0
    cfg = load_config(args.config)
    info = {**cfg.model_dump(mode="json"), "hash": cfg.hash,
            "buffer_rows": {f: cfg.buffer_depth(f) for f in cfg.min_buffer_bytes()}}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_table(f"{cfg.name} ({cfg.hash})", info, ("field", "value"))
    return 0


def cmd_isa(args: argparse.Namespace) -> int:
    from hw.isa import isa_markdown

    print(isa_markdown(), end="")
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    from hw.asm import disassemble
    from hw.program import Program

    prog = Program.load(args.program)
    text = (f"# {args.program}: ISA {prog.isa_version}, config {prog.config.name} ({prog.config.hash}), "
            f"{len(prog.insns)} instructions at {prog.text_addr:#x}\n")
    text += "".join(f"# tensor {t.name} ({t.role}) {t.dtype}{list(t.shape)} at {t.dram_addr:#x}\n"
                    for t in prog.tensors)
    stages = prog.meta.get("stages")
    if not stages:
        text += disassemble(list(prog.insns), with_addresses=args.pc)
    ops = {o["name"]: o for o in prog.meta.get("graph", {}).get("ops", [])}
    for k, st in enumerate(stages or []):
        if st["kind"] == "host":
            o = ops.get(st["op"], {})
            text += (f"# stage {k}: host {o.get('kind')} %{', %'.join(o.get('inputs', []))} -> "
                     f"%{', %'.join(o.get('outputs', []))}  ({o.get('source')})\n")
            continue
        first, n = st["insn_start"], st["insn_count"]
        text += f"# stage {k}: accelerator {', '.join(st['ops'])}: instructions {first}..{first + n - 1}\n"
        lines = disassemble(list(prog.insns[first : first + n]), with_addresses=False).splitlines()
        text += "".join((f"{first + i:6d}: " if args.pc else "") + line + "\n" for i, line in enumerate(lines))
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from compiler.examples import EXAMPLES, example_program
    from compiler.pipeline import compile_model, report_markdown

    cfg = load_config(args.config)
    with console.status(f"compiling {args.model} for {cfg.name}"):
        if args.model in EXAMPLES:
            model, _ = example_program(args.model, quantizer=args.quantizer, weights=args.weights,
                                       group_size=args.group_size)
        elif Path(args.model).suffix == ".pt2" or Path(args.model).exists():
            model = args.model
        else:
            raise FileNotFoundError(f"{args.model}: neither a .pt2 file nor a built-in example "
                                    f"({', '.join(EXAMPLES)})")
        program, _ = compile_model(model, cfg)
    program.save(args.out)
    report = report_markdown(program)
    if args.report:
        if str(args.report).endswith(".json"):
            Path(args.report).write_text(json.dumps(program.meta["report"], indent=1))
        else:
            Path(args.report).write_text(report)
    rows = program.meta["report"]
    summary = {"program": str(args.out), "config": cfg.name, "instructions": len(program.insns),
               "stages": len(program.meta["stages"]),
               "accelerator_layers": sum(r["placement"] == "accel" for r in rows),
               "host_ops": sum(r["placement"] == "host" for r in rows),
               "estimated_cycles": sum(r["cycles"] or 0 for r in rows),
               "dram": program.meta.get("dram", {})}
    if args.json:
        print(json.dumps({**summary, "layers": rows}, indent=2))
        return 0
    t = Table(title=f"{args.model} on {cfg.name}")
    for c in ("layer", "kind", "where", "shape", "weights", "tiling", "cycles", "bound", "eff", "util", "note"):
        t.add_column(c)
    for r in rows:
        bound = f"{r['bound_cycles']:g} {r['bound']}" if r.get("bound_cycles") is not None else ""
        t.add_row(r["layer"], r["kind"], r["placement"], r["shape"], r["weights"], r["tiling"],
                  str(r["cycles"] or ""), bound, f"{r['efficiency']:.3f}" if r.get("efficiency") is not None else "",
                  f"{r['utilization']:.3f}" if r["utilization"] is not None else "", r["reason"])
    table_console().print(t)
    print(report.strip().splitlines()[-1])
    dram = summary["dram"]
    if dram:
        print(f"DRAM: {dram['needed']} of {cfg.dram_bytes} bytes (activations {dram['activations']}, shared by "
              f"liveness from {dram['activations_unshared']}; weights and parameters {dram['constants']}; "
              f"instructions {dram['instructions']})")
    print(f"wrote {args.out} ({len(program.insns)} instructions, {summary['stages']} stages)"
          + (f" and {args.report}" if args.report else ""))
    return 0


def _load_inputs(paths: list[str] | None, program) -> list | dict:
    """--inputs files (.npy each in graph order, or one .npz by input name), else the program's own."""
    import numpy as np

    from host.runtime import example_inputs

    if not paths:
        return example_inputs(program)
    if len(paths) == 1 and paths[0].endswith(".npz"):
        with np.load(paths[0]) as z:
            return {k: z[k] for k in z.files}
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: no such input file")
        out.append(np.load(p))
    return out


def _progress_runner(program, inputs, backend: str, label: str, work_dir: Path | None = None):
    """run_model with a rich progress bar over the stages."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from host.devices import make_device
    from host.runtime import run_model

    kwargs = {"work_dir": work_dir} if backend == "verilator" else {}
    device = make_device(backend, program, **kwargs)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=len(program.meta["stages"]))

        def tell(what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, description=f"{label}: {what}"[:70])

        return run_model(program, inputs, device, progress=tell)


def cmd_run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from host.runtime import first_mismatch
    from hw.program import Program

    program = Program.load(args.program)
    inputs = _load_inputs(args.inputs, program)
    t0 = time.perf_counter()
    run = _progress_runner(program, inputs, args.backend, f"{args.backend}")
    wall = time.perf_counter() - t0
    mismatch, bit_exact = None, None
    if args.check:
        golden = _progress_runner(program, inputs, "golden", "golden (check)")
        m = first_mismatch(run, golden)
        bit_exact, mismatch = m is None, (str(m) if m else None)
    out_dir = Path(args.out or Path(args.program).with_suffix(".out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, arr in zip(run.output_names, run.outputs):
        path = out_dir / f"{name}.npy"
        np.save(path, arr)
        files.append(str(path))
    util = run.utilization

    def r4(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    summary = {"backend": run.backend, "cycles": run.cycles, "estimated_cycles": run.estimated_cycles,
               "utilization": r4(util), "bound_cycles": round(run.bound_cycles, 1), "efficiency": r4(run.efficiency),
               "estimated_efficiency": r4(run.estimated_efficiency), "bit_exact": bit_exact,
               "mismatch": mismatch, "outputs": files, "macs": run.macs, "wall_s": round(wall, 2),
               "layers": [{"layer": lr.layer, "macs": lr.macs, "estimated_cycles": lr.estimated_cycles,
                           "cycles": lr.cycles, "bound_cycles": lr.bound_cycles, "efficiency": r4(lr.efficiency),
                           "estimated_efficiency": r4(lr.estimated_efficiency), "dma_bytes": lr.dma_bytes,
                           "counters": lr.counters}
                          for lr in run.layers]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        t = Table(title=f"{args.program} on {run.backend}")
        for c in ("layer", "MACs", "estimate", "cycles", "bound", "efficiency", "utilization", "DMA bytes"):
            t.add_column(c)
        rc = program.config.rows * program.config.cols
        for lr in run.layers:
            eff = lr.efficiency if lr.cycles else lr.estimated_efficiency
            t.add_row(lr.layer, str(lr.macs), str(lr.estimated_cycles), str(lr.cycles or ""), f"{lr.bound_cycles:g}",
                      "" if eff is None else f"{eff:.3f}" + ("" if lr.cycles else " (est.)"),
                      f"{lr.macs / (rc * lr.cycles):.3f}" if lr.cycles else "", str(lr.dma_bytes))
        table_console().print(t)
        if run.cycles is None:
            cyc = f"n/a on the golden model (estimated efficiency {run.estimated_efficiency:.3f})"
        else:
            cyc = f"{run.cycles} (efficiency {run.efficiency:.3f} of the roofline, utilization {util:.3f})"
        print(f"cycles {cyc}; estimated {run.estimated_cycles}; roofline {run.bound_cycles:.0f}; "
              f"outputs in {out_dir}")
        if args.check:
            print("bit exact against the golden model" if bit_exact else f"MISMATCH: {mismatch}")
    return 0 if bit_exact is not False else 1


def cmd_report(args: argparse.Namespace) -> int:
    from host.report import LayerStat, write_report
    from hw.program import Program

    program = Program.load(args.program)
    run = _progress_runner(program, _load_inputs(args.inputs, program), args.backend, args.backend)
    name = Path(args.program).stem
    stats = LayerStat.of(name, run)
    cycles = run.cycles if run.cycles is not None else run.estimated_cycles
    lines = [f"Program `{args.program}` on config `{program.config.name}`, backend `{run.backend}`: "
             f"{len(run.layers)} accelerator layers, {run.macs} MACs, {cycles} cycles "
             f"({'measured on the RTL' if run.cycles is not None else 'estimated'})."]
    path = write_report(args.out, program.config, stats, f"lowbit report: {name}", lines)
    print(f"wrote {path} and its plots")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from host import benchmarks

    if not args.name:
        benches = benchmarks.available()
        if not benches:
            print("no benchmarks yet")
        for name, mod in benches.items():
            print(f"{name:16} {mod.DESCRIPTION}")
        return 0
    with console.status(f"running benchmark {args.name}"):
        result, path = benchmarks.run(args.name)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(f"bench {args.name}", result, ("figure", "value"))
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from host.demo import render, run_demo

    summary = run_demo(args.config, args.out, console)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary, table_console())
    return 0 if summary["ok"] else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lowbit", description="Low-bit neural-network accelerator generator.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("gen", help="write the Verilog of a configuration and its manifest.json")
    g.add_argument("--config", default="default", help="preset name (tiny, default, large) or TOML path")
    g.add_argument("-o", "--out", default="build/gen", help="output folder (default: build/gen)")
    g.add_argument("--no-lint", action="store_true", help="skip verilator --lint-only -Wall")
    g.add_argument("--json", action="store_true", help="print the manifest as JSON")
    g.set_defaults(func=cmd_gen)

    c = sub.add_parser("config", help="list presets, or show one validated configuration")
    c.add_argument("config", nargs="?", help="preset name or TOML path")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config)

    i = sub.add_parser("isa", help="print the instruction formats (Markdown)")
    i.set_defaults(func=cmd_isa)

    d = sub.add_parser("disasm", help="disassemble a .lbp program file")
    d.add_argument("program", help="program file (.lbp)")
    d.add_argument("-o", "--out", help="write the listing here instead of stdout")
    d.add_argument("--pc", action="store_true", help="annotate each line with its instruction index")
    d.set_defaults(func=cmd_disasm)

    k = sub.add_parser("compile", help="compile a quantized model (.pt2 or built-in example) to a .lbp program")
    k.add_argument("model", help="a torch.export .pt2 file of a quantized model, or an example: cnn, mlp, "
                   "transformer-block")
    k.add_argument("--config", default="default", help="preset name or TOML path (default: default)")
    k.add_argument("-o", "--out", required=True, help="program file to write (.lbp)")
    k.add_argument("--report", help="write the per-layer report here (Markdown, or JSON if it ends in .json)")
    k.add_argument("--quantizer", choices=("pt2e", "lowbit"), default="pt2e",
                   help="examples only: torchao PT2E (X86InductorQuantizer) or lowbit's weight quantizer")
    k.add_argument("--weights", default="int4", help="examples with --quantizer lowbit: datatype or mixture "
                   "(default: int4)")
    k.add_argument("--group-size", type=int, help="examples with --quantizer lowbit: input channels per "
                   "weight group (default: per channel)")
    k.add_argument("--json", action="store_true", help="print the summary and per-layer report as JSON")
    k.set_defaults(func=cmd_compile)

    r = sub.add_parser("run", help="run a compiled model (.lbp) on the golden model or the RTL")
    r.add_argument("program", help="program file from lowbit compile")
    r.add_argument("--backend", choices=("golden", "verilator"), default="golden",
                   help="golden: NumPy ISA model; verilator: the RTL (cocotb + Verilator, cached builds)")
    r.add_argument("--inputs", action="append", metavar="X.npy",
                   help="an input array per graph input, in order (or one .npz by name); default: the "
                   "example inputs stored at compile time")
    r.add_argument("--check", action="store_true", help="also run the golden model and report the first mismatch")
    r.add_argument("-o", "--out", help="folder for the output arrays (default: PROGRAM.out/)")
    r.add_argument("--json", action="store_true", help="print one JSON object (backend, cycles, utilization, "
                   "bit_exact, outputs, layers)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("report", help="run a compiled model and write a Markdown report with plots")
    rp.add_argument("program", help="program file from lowbit compile")
    rp.add_argument("--backend", choices=("golden", "verilator"), default="golden",
                    help="verilator measures cycles on the RTL; golden reports the compiler's estimates")
    rp.add_argument("--inputs", action="append", metavar="X.npy", help="as for lowbit run")
    rp.add_argument("-o", "--out", default="build/report", help="output folder (default: build/report)")
    rp.set_defaults(func=cmd_report)

    synth_cli.register(sub)

    b = sub.add_parser("bench", help="list benchmarks, or run one and write bench/results/NAME.json")
    b.add_argument("name", nargs="?")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    m = sub.add_parser("demo", help="the whole flow on real models: RTL, compile, run on golden and RTL, report")
    m.add_argument("--config", default="default", help="configuration of the generated RTL and the digits CNN "
                   "(default: default; the transformer runs on the bit-serial preset 'serial')")
    m.add_argument("-o", "--out", default="build/demo", help="output folder (default: build/demo)")
    m.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    m.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ProgramError, IsaError, KeyError, FileNotFoundError, CompileError, FrontendError,
            ExecError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"lowbit {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
