"""The compiler, end to end: quantized torch.export program -> graph IR -> placement -> lowering
-> tiling search -> code -> one program file (``.lbp``).

A program runs in *stages*: each accelerator op is one instruction stream ending in END (its
GEMM jobs, e.g. the channel blocks of a grouped convolution, separated by barriers), so the
hardware's counters measure every layer; activations stay in DRAM between them, sharing space by
liveness (compiler/memory.py). Each host op is a stage of its own, which the runtime evaluates
in NumPy (host/runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from compiler import memory
from compiler.codegen import Emitter, emit_gemm
from compiler.frontend import import_program, load_exported
from compiler.ir import Graph, Op
from compiler.layout import TensorLayout
from compiler.lowering import CompileError, LoweredJob, lower_qgemm, place, plan_layouts, weight_plan
from compiler.memory import ALIGN, align
from compiler.roofline import Roofline, min_bytes, planes, roofline
from compiler.serialize import encode, graph_to_json
from compiler.tiling import Choice, Gemm, Tiling, fits, search, tiling_cost
from hw.config import AccelConfig
from hw.datatypes import datatype
from hw.isa import INSN_BYTES, Opcode
from hw.program import Program, Segment, TensorDesc

PROGRAM_KIND = "model"




@dataclass
class _Dram:
    """The DRAM image: the activations' arena at address 0 (planned by liveness, compiler/memory.py),
    then the constants (weight and parameter blobs, the instruction text) one after another, each
    keeping its space for the whole program; collects the initial contents."""

    top: int = 0
    segments: list[Segment] = field(default_factory=list)

    def alloc(self, nbytes: int) -> int:
        addr = self.top
        self.top = align(addr + max(nbytes, 1))
        return addr

    def place(self, name: str, data: bytes) -> int:
        addr = self.alloc(len(data))
        self.segments.append(Segment(name, addr, data))
        return addr


def _lifetimes(graph: Graph, stages: list[list[Op]], names) -> dict[str, tuple[int, int]]:
    """Each named tensor's first and last stage in DRAM: from the stage that writes it (a host op's
    output is written by the host before the accelerator stage that reads it, never earlier than
    its own stage) to the last stage that reads it. Graph inputs are there from the start and
    graph outputs stay to the end."""
    last = max(len(stages) - 1, 0)
    first: dict[str, int] = {}
    end: dict[str, int] = {}
    for s, ops in enumerate(stages):
        for op in ops:
            for n in op.outputs:
                first.setdefault(n, s)
                end[n] = max(end.get(n, s), s)
            for n in op.inputs:
                end[n] = max(end.get(n, s), s)
    for n in graph.inputs:
        first[n], end[n] = 0, last
    for n in graph.outputs:
        end[n] = last
    return {n: (first.get(n, 0), max(end.get(n, last), first.get(n, 0))) for n in names}


def _plan_activations(graph: Graph, stages: list[list[Op]], layouts: dict[str, TensorLayout]) -> memory.MemoryPlan:
    """Arena offsets of the tensors the accelerator reads or writes, by liveness. A tensor's span
    keeps its layout's tail (a wide im2col reads past its end)."""
    spans = _lifetimes(graph, stages, layouts)
    buffers = [memory.Buffer(n, lay.nbytes + lay.tail, *spans[n]) for n, lay in layouts.items()]
    return memory.plan(buffers, ALIGN)


def _fills(ops: list[Op], layouts: dict[str, TensorLayout]) -> list[str]:
    """The padded nhwc tensors an accelerator stage writes: its producer writes only the interior,
    and the space may have held another tensor, so the whole buffer is set to the border value
    (the layout's ``fill``) before the stage runs."""
    return [o for op in ops for o in op.outputs
            if o in layouts and layouts[o].kind == "nhwc" and any(layouts[o].pad)]


def _check_fits(cfg: AccelConfig, need: int, parts: dict[str, int]) -> None:
    if need <= cfg.dram_bytes:
        return
    pow2 = 1 << (need - 1).bit_length()
    detail = ", ".join(f"{v} for {k}" for k, v in parts.items())
    addr = ("" if pow2 <= 1 << cfg.axi_addr_bits else
            f", and axi_addr_bits to at least {pow2.bit_length() - 1}")
    raise CompileError(
        f"the program needs {need} bytes of DRAM ({detail}) but config '{cfg.name}' has "
        f"dram_bytes = {cfg.dram_bytes}: raise dram_bytes to at least {pow2} (a power of two){addr} "
        f"in the configuration's TOML file (e.g. a copy of hw/presets/{cfg.name}.toml) and give it "
        f"with `lowbit compile --config FILE`")


@dataclass(frozen=True)
class LayerReport:
    """One line of the compile report."""

    layer: str
    source: str
    kind: str
    placement: str
    shape: str = ""
    weights: str = ""
    tiling: str = ""
    cycles: int | None = None
    dma_bytes: int | None = None
    utilization: float | None = None
    candidates: int | None = None
    macs: int | None = None  # useful MACs of the GEMM (no padding)
    reason: str = ""
    bound_cycles: float | None = None  # the layer's roofline (compiler/roofline.py)
    bound: str = ""  # what bounds it: "compute" or "memory"
    efficiency: float | None = None  # bound_cycles / estimated cycles
    planes: int | None = None  # cycles an activation row takes through the array (compiler/roofline.py)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _stages(graph: Graph) -> list[list[Op]]:
    """One stage per op, in graph order."""
    return [[op] for op in graph.ops]


def _choose(cfg: AccelConfig, lj: LoweredJob, index: int, op: Op, pinned: Tiling | None) -> Choice:
    """The tiling search's choice for one GEMM job, or the pinned tiling with its cost."""
    nt = -(-lj.job.n // cfg.cols)
    gemm = Gemm(f"{op.name}" + (f"[{index}]" if index else ""), lj.job.m, lj.gemm_k, lj.job.n,
                param_rows=lj.job.param_rows // nt, row_runs=lj.row_runs, out_row_runs=lj.out_row_runs,
                out_bytes=cfg.acc_bytes if lj.job.int32_out else 1, row_cycles=planes(cfg, op),
                depthwise=lj.job.depthwise.geom if lj.job.depthwise else None)
    bits = datatype(lj.job.dtype).bits
    try:
        if pinned is None:
            return search(cfg, gemm, bits)
        if not fits(cfg, gemm, bits, pinned):
            raise ValueError(f"the pinned tiling {pinned} does not fit its buffers")
        return Choice(gemm, bits, pinned, tiling_cost(cfg, gemm, bits, pinned), 1, 0.0)
    except ValueError as exc:
        raise CompileError(f"layer {op.name} ({op.source}): {exc}") from None


def compile_graph(graph: Graph, cfg: AccelConfig, tilings: dict[str, Tiling] | None = None,
                  im2col: str = "auto") -> Program:
    """A graph IR -> program for `cfg` (placement decided here); ``tilings`` pins the tiling of
    layers by op name instead of searching; ``im2col`` ("auto", "rows", "wide") chooses how
    convolutions read their windows (auto: whichever the cost model finds cheaper per layer)."""
    graph = place(graph, cfg).check()
    stages = _stages(graph)
    accel_ops = [op for op in graph.ops if op.placement == "accel"]
    layouts = plan_layouts(graph, accel_ops)
    mplan = _plan_activations(graph, stages, layouts)
    layouts = {n: replace(lay, addr=mplan.offsets[n]) for n, lay in layouts.items()}
    dram = _Dram(top=align(mplan.arena))
    words: list[int] = []
    stage_meta: list[dict] = []
    report: list[LayerReport] = []
    for ops in stages:
        if ops[0].placement == "host":
            op = ops[0]
            stage_meta.append({"kind": "host", "op": op.name})
            report.append(LayerReport(op.name, op.source, _kind(op), "host", _shape_of(graph, op),
                                      _weights(op), reason=op.reason))
            continue
        em = Emitter()
        for op in ops:
            for index, alternatives in enumerate(lower_qgemm(op, graph, cfg, layouts, im2col)):
                pinned = (tilings or {}).get(op.name)
                lj, choice = min(((a, _choose(cfg, a, index, op, pinned)) for a in alternatives),
                                 key=lambda ac: ac[1].cost.cycles)
                job = replace(lj.job, w_addr=dram.place(f"w:{op.name}:{index}", lj.w_blob),
                              p_addr=dram.place(f"p:{op.name}:{index}", lj.p_blob))
                t = choice.tiling
                if em.insns:
                    em.barrier()
                emit_gemm(em, cfg, job, t.m_tile, t.k_tile, t.n_tile, t.order, t.double_buffer)
                macs = _useful_macs(graph, op, lj)
                roof = _roofline(cfg, graph, op, lj, macs)
                report.append(LayerReport(
                    op.name + (f"[{index}]" if index else ""), op.source, _kind(op), "accel",
                    f"{job.m}x{lj.gemm_k}x{job.n}", _weights(op),
                    _tiling_text(t) + (" wide" if lj.im2col == "wide" else ""), choice.cost.cycles,
                    choice.cost.dma_bytes, round(macs / (cfg.rows * cfg.cols * choice.cost.cycles), 4),
                    choice.candidates, macs, bound_cycles=round(roof.bound_cycles, 1), bound=roof.limit,
                    efficiency=round(roof.efficiency(choice.cost.cycles), 4), planes=planes(cfg, op)))
        em.add(Opcode.END)
        reads = sorted({i for op in ops for i in op.inputs} - {o for op in ops for o in op.outputs})
        writes = sorted({o for op in ops for o in op.outputs})
        stage_meta.append({"kind": "accel", "ops": [op.name for op in ops], "insn_start": len(words),
                           "insn_count": len(em.insns), "reads": reads, "writes": writes,
                           "fills": _fills(ops, layouts)})
        words += em.words()
    consts_top = dram.top
    text_addr = dram.alloc(len(words) * INSN_BYTES)
    usage = {"activations": align(mplan.arena), "weights and parameters": consts_top - align(mplan.arena),
             "instructions": dram.top - consts_top}
    _check_fits(cfg, dram.top, usage)
    written = {o for op in graph.ops if op.placement == "host" for o in op.outputs}
    tensors = tuple(TensorDesc(name, "input" if name in written else "output", lay.addr, lay.buffer_shape, lay.dtype,
                               {"layout": lay.to_json()}) for name, lay in layouts.items())
    meta = {
        "kind": PROGRAM_KIND,
        "graph": graph_to_json(graph, keep_weights=False),
        "stages": stage_meta,
        "layouts": {n: lay.to_json() for n, lay in layouts.items()},
        "report": [r.to_json() for r in report],
        "dram": {"needed": dram.top, "activations": usage["activations"],
                 "activations_live_peak": mplan.live_peak, "activations_unshared": mplan.total,
                 "constants": usage["weights and parameters"], "instructions": usage["instructions"]},
    }
    return Program(config=cfg, insns=tuple(words), text_addr=text_addr, segments=tuple(dram.segments),
                   tensors=tensors, meta=meta)


def _roofline(cfg: AccelConfig, graph: Graph, op: Op, lj: LoweredJob, macs: int) -> Roofline:
    """One GEMM job's roofline: its MACs, and its share (by output channels) of the bytes its layer
    must move at least once."""
    plan = weight_plan(op, cfg)
    share = lj.job.n / op.attrs["weight"].shape[0]
    return roofline(cfg, macs, planes(cfg, op), share * min_bytes(graph, op, cfg, plan.dtype, plan.grouped))


def _useful_macs(graph: Graph, op: Op, lj: LoweredJob) -> int:
    """The MACs of one job's own arithmetic: its output channels at every output position, times
    (K / groups) x kernel positions (no padding, block-diagonal zeros or wide-im2col extra rows)."""
    w = op.attrs["weight"]
    out = graph.values[op.output].shape
    channels = out[1] if op.attrs["kind"] == "conv2d" else out[-1]
    return int(np.prod(out)) // channels * lj.job.n * int(np.prod(w.shape[1:]))


def _tiling_text(t: Tiling) -> str:
    """A tiling in a report cell: tile sizes, loop order, buffering."""
    order = {"weight_stationary": "WS", "input_stationary": "IS", "stream": "stream"}[t.order]
    return f"{t.m_tile}x{t.k_tile}x{t.n_tile} {order}{' x2' if t.double_buffer else ''}"


def _kind(op: Op) -> str:
    return op.attrs.get("kind", op.kind) if op.kind == "qgemm" else op.kind


def _weights(op: Op) -> str:
    w = op.attrs.get("weight")
    return w.describe() if hasattr(w, "describe") else ""


def _shape_of(graph: Graph, op: Op) -> str:
    return "x".join(map(str, graph.values[op.output].shape))


def compile_model(model: torch.export.ExportedProgram | str | Path, cfg: AccelConfig) -> tuple[Program, Graph]:
    """A quantized ExportedProgram (or a saved ``.pt2``) -> (program, placed graph IR). The
    program keeps the export's example inputs, so ``lowbit run`` has something to run."""
    if isinstance(model, str | Path):
        model = load_exported(model)
    graph = import_program(model)
    program = compile_graph(graph, cfg)
    examples = _example_inputs(model, graph)
    if examples:
        program = replace(program, meta={**program.meta, "example_inputs": encode(examples)})
    return program, place(graph, cfg)


def _example_inputs(model, graph: Graph) -> list[np.ndarray] | None:
    args = getattr(model, "example_inputs", None)
    if not args or args[1] or len(args[0]) != len(graph.inputs):
        return None
    return [a.detach().cpu().numpy() for a in args[0]]


def report_markdown(program: Program) -> str:
    """The compile report as a Markdown table."""
    rows = program.meta.get("report", [])
    head = ["layer", "kind", "placement", "shape", "weights", "tiling", "cycles", "bound_cycles", "efficiency",
            "dma_bytes", "utilization", "note"]
    out = [f"# Compile report: {len(rows)} layers on config `{program.config.name}`", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(str(x) if x is not None else "" for x in (
            r["layer"], r["kind"], r["placement"], r["shape"], r["weights"], r["tiling"], r["cycles"],
            f"{r['bound_cycles']:g} ({r['bound']})" if r.get("bound_cycles") is not None else None,
            r.get("efficiency"), r["dma_bytes"], r["utilization"], r["reason"])) + " |")
    accel = [r for r in rows if r["placement"] == "accel"]
    host = [r for r in rows if r["placement"] == "host"]
    total = sum(r["cycles"] for r in accel)
    bound = sum(r.get("bound_cycles") or 0 for r in accel)
    out += ["", f"Accelerator: {len(accel)} GEMMs, {total} estimated cycles "
            f"({total / program.config.clock_mhz:.1f} us at {program.config.clock_mhz:g} MHz; roofline {bound:.0f} "
            f"cycles, efficiency {bound / max(total, 1):.3f}), "
            f"{sum(r['dma_bytes'] for r in accel)} DMA bytes. Host: {len(host)} ops "
            f"({', '.join(sorted({r['kind'] for r in host}))}).", ""]
    return "\n".join(out)
