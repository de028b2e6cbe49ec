"""Running a compiled model program: accelerator stages on a device (host/devices.py), host ops
in NumPy, in the program's order.

The runtime keeps every tensor as a logical array: before an accelerator stage it hands the
device the tensors the stage reads, and takes back those it writes. Statistics come per
accelerator layer (one layer is one stage): RTL cycles and busy/stall counters on the
Verilator backend, the compiler's estimate beside them, MACs and DMA bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.reference import qgemm, run_host_op
from compiler.serialize import decode, graph_from_json
from host.devices import Device, StageRun, make_device
from hw.program import Program, ProgramError
from sim.golden import ExecError

# graph value dtype -> NumPy dtypes an input of it may be given in
_INPUT_KINDS = {"float32": "f", "int64": "iu"}


@dataclass
class LayerRun:
    """One accelerator layer of a run."""

    layer: str
    source: str
    macs: int  # useful MACs (the layer's GEMM, no padding)
    estimated_cycles: int
    dma_bytes: int
    cycles: int | None = None  # measured on the RTL
    counters: dict[str, int] = field(default_factory=dict)
    bound_cycles: float = 0.0  # the layer's roofline (compiler/roofline.py)
    planes: int = 1  # cycles an activation row takes through the array: the compute roof is peak / planes

    @property
    def efficiency(self) -> float | None:
        """bound_cycles / measured cycles (None on the golden model)."""
        return self.bound_cycles / self.cycles if self.cycles and self.bound_cycles else None

    @property
    def estimated_efficiency(self) -> float | None:
        return self.bound_cycles / self.estimated_cycles if self.estimated_cycles and self.bound_cycles else None


@dataclass
class Execution:
    """Every value a run computed, and what the accelerator stages did."""

    backend: str
    values: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    output_names: list[str]
    layers: list[LayerRun] = field(default_factory=list)
    stage_runs: list[StageRun] = field(default_factory=list)
    rows_cols: int = 1

    @property
    def cycles(self) -> int | None:
        """RTL cycles of all accelerator stages (None on the golden model)."""
        if any(layer.cycles is None for layer in self.layers):
            return None
        return sum(layer.cycles for layer in self.layers)

    @property
    def estimated_cycles(self) -> int:
        return sum(layer.estimated_cycles for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def utilization(self) -> float | None:
        """Useful MACs / (rows x cols x cycles), on measured cycles."""
        c = self.cycles
        return self.macs / (self.rows_cols * c) if c else None

    @property
    def bound_cycles(self) -> float:
        return sum(layer.bound_cycles for layer in self.layers)

    @property
    def efficiency(self) -> float | None:
        """The layers' rooflines over their measured cycles (None on the golden model)."""
        c = self.cycles
        return self.bound_cycles / c if c else None

    @property
    def estimated_efficiency(self) -> float | None:
        c = self.estimated_cycles
        return self.bound_cycles / c if c else None


@dataclass(frozen=True)
class Mismatch:
    """The first difference between two runs."""

    tensor: str
    index: tuple[int, ...]
    got: float
    want: float
    count: int  # differing elements in that tensor

    def __str__(self) -> str:
        return (f"tensor {self.tensor} differs at {list(self.index)}: {self.got} vs {self.want} "
                f"({self.count} elements differ)")


def example_inputs(program: Program) -> list[np.ndarray]:
    """The inputs the model was compiled with (stored in the program), in graph order."""
    stored = program.meta.get("example_inputs")
    if not stored:
        raise ProgramError("the program stores no example inputs; give them with --inputs")
    return [decode(x) for x in stored]


def check_inputs(program: Program, inputs: list | dict) -> dict[str, np.ndarray]:
    """Inputs (NumPy or torch, in graph order or by name) checked against the graph: count,
    shape and kind of dtype; each error names the input and what it expected."""
    g = program.meta["graph"]
    names, values = g["inputs"], g["values"]
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; the model takes {names}")
    else:
        inputs = list(inputs)
        if len(inputs) != len(names):
            raise ValueError(f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(inputs)}")
        inputs = dict(zip(names, inputs))
    out = {}
    for name in names:
        if name not in inputs:
            raise ValueError(f"missing input {name!r}")
        x = inputs[name]
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        want_shape, want_dtype = tuple(values[name]["shape"]), values[name]["dtype"]
        if tuple(x.shape) != want_shape:
            raise ValueError(f"input {name}: expected shape {want_shape}, got {tuple(x.shape)}")
        if x.dtype.kind not in _INPUT_KINDS[want_dtype]:
            raise ValueError(f"input {name}: expected {want_dtype} values, got {x.dtype}")
        out[name] = x.astype(want_dtype)
    return out


def run_model(program: Program, inputs: list | dict, device: Device | str = "golden",
              progress: Callable[[str, int, int], None] | None = None) -> Execution:
    """Run a model program on its inputs; ``progress(what, done, total)`` is told of each stage."""
    if program.meta.get("kind") != "model":
        raise ProgramError("this program is not a compiled model (it has no stages)")
    graph = graph_from_json(program.meta["graph"])
    env: dict[str, np.ndarray] = dict(check_inputs(program, inputs))
    dev = make_device(device, program) if isinstance(device, str) else device
    ops = {op.name: op for op in graph.ops}
    report = {}
    for r in program.meta["report"]:
        if r["placement"] == "accel":
            base = r["layer"].split("[")[0]
            prev = report.get(base, (0, 0, 0, 0.0, 1))
            report[base] = (prev[0] + r["macs"], prev[1] + r["cycles"], prev[2] + r["dma_bytes"],
                            prev[3] + (r.get("bound_cycles") or 0.0), max(prev[4], r.get("planes") or 1))
    stages = program.meta["stages"]
    layers, runs = [], []
    for k, stage in enumerate(stages):
        if progress:
            progress(stage.get("op") or ", ".join(stage["ops"]), k, len(stages))
        if stage["kind"] == "host":
            op = ops[stage["op"]]
            args = [env[n] for n in op.inputs]
            env[op.output] = qgemm(op, args[0]) if op.kind == "qgemm" else run_host_op(op, args, graph.consts)
            continue
        run = dev.run_stage(stage, env)
        if not run.ok:
            raise ExecError(run.status, run.pc, f"stage {k} ({', '.join(stage['ops'])}) on {dev.name}: {run.message}")
        env.update(run.outputs)
        runs.append(run)
        for name in stage["ops"]:
            macs, est, dma, bound, planes = report[name]
            layers.append(LayerRun(name, ops[name].source, macs, est, run.dma_bytes, run.cycles, run.counters,
                                   round(bound, 1), planes))
    if progress:
        progress("done", len(stages), len(stages))
    cfg = program.config
    return Execution(dev.name, env, [env[n] for n in graph.outputs], list(graph.outputs), layers, runs,
                     cfg.rows * cfg.cols)


def first_mismatch(a: Execution, b: Execution) -> Mismatch | None:
    """The first tensor (in computation order) where two runs differ, and its first element."""
    for name in a.values:
        if name not in b.values:
            continue
        x, y = np.asarray(a.values[name]), np.asarray(b.values[name])
        if x.shape != y.shape or not np.array_equal(x, y):
            if x.shape != y.shape:
                return Mismatch(name, (), float("nan"), float("nan"), max(x.size, y.size))
            diff = np.argwhere(x != y)
            idx = tuple(int(i) for i in diff[0])
            return Mismatch(name, idx, float(x[idx]), float(y[idx]), len(diff))
    return None
