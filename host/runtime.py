"""Running a compiled model program: accelerator stages on a device, host ops in NumPy.

The runtime loads the program's DRAM image once, then walks its stages: before an accelerator
stage it writes every tensor that stage reads and the host produced (packed in its DRAM layout),
runs the stage's instructions, and reads back what later host ops or the graph outputs need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.layout import TensorLayout
from compiler.reference import qgemm, run_host_op
from compiler.serialize import graph_from_json
from hw.isa import INSN_BYTES
from hw.program import Program, ProgramError, Segment, TensorDesc
from sim.golden import ExecError, Golden, RunResult


class GoldenDevice:
    """The ISA-level golden model as a device: a DRAM image and a run of instructions."""

    name = "golden"

    def __init__(self, program: Program):
        self.sim = Golden.for_program(program)

    def write(self, addr: int, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).view(np.uint8).ravel()
        self.sim.dram[addr : addr + raw.size] = raw

    def read(self, addr: int, nbytes: int) -> np.ndarray:
        return self.sim.dram[addr : addr + nbytes].copy()

    def run(self, insn_addr: int, insn_count: int) -> RunResult:
        return self.sim.run(insn_addr, insn_count)


@dataclass
class Execution:
    """Every value a run computed, and what each accelerator stage did."""

    values: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    stage_results: list[RunResult] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.stage_results)


def run_model(program: Program, inputs: list[np.ndarray] | dict[str, np.ndarray], device=None) -> Execution:
    """Run a model program on float inputs (in graph order, or by name)."""
    if program.meta.get("kind") != "model":
        raise ProgramError("this program is not a compiled model (it has no stages); run it with the golden model")
    graph = graph_from_json(program.meta["graph"])
    layouts = {n: TensorLayout.from_json(d) for n, d in program.meta["layouts"].items()}
    ops = {op.name: op for op in graph.ops}
    if not isinstance(inputs, dict):
        inputs = list(inputs)
        if len(inputs) != len(graph.inputs):
            raise ValueError(f"the model takes {len(graph.inputs)} inputs ({', '.join(graph.inputs)}), "
                             f"got {len(inputs)}")
        inputs = dict(zip(graph.inputs, inputs))
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        x = np.asarray(inputs[name], np.float32)
        if tuple(x.shape) != graph.values[name].shape:
            raise ValueError(f"input {name}: expected shape {graph.values[name].shape}, got {tuple(x.shape)}")
        env[name] = x
    device = device or GoldenDevice(program)
    in_dram: set[str] = set()  # values whose current copy is in DRAM only
    results = []
    for stage in program.meta["stages"]:
        if stage["kind"] == "host":
            op = ops[stage["op"]]
            args = [_fetch(n, env, in_dram, layouts, device) for n in op.inputs]
            out = qgemm(op, args[0]) if op.kind == "qgemm" else run_host_op(op, args, graph.consts)
            env[op.output] = out
            continue
        for name in stage["reads"]:
            if name not in in_dram:
                lay = layouts[name]
                device.write(lay.addr, lay.pack(env[name]))
        res = device.run(program.text_addr + stage["insn_start"] * INSN_BYTES, stage["insn_count"])
        if not res.ok:
            raise ExecError(res.status, res.pc, f"stage {stage['ops']}: {res.message}")
        results.append(res)
        in_dram |= set(stage["writes"])
    for name in graph.outputs:
        _fetch(name, env, in_dram, layouts, device)
    for name in list(in_dram):
        _fetch(name, env, in_dram, layouts, device)
    return Execution(env, [env[n] for n in graph.outputs], results)


def stage_program(program: Program, stage: dict, tensors: dict[str, np.ndarray]) -> Program:
    """One accelerator stage as a standalone program: its instructions, the DRAM image with the
    tensors it reads (logical arrays by value name) already written, and what it writes as outputs."""
    layouts = {n: TensorLayout.from_json(d) for n, d in program.meta["layouts"].items()}
    first = stage["insn_start"]
    inputs = tuple(Segment(f"in:{n}", layouts[n].addr, layouts[n].pack(tensors[n]).tobytes()) for n in stage["reads"])
    outputs = tuple(TensorDesc(n, "output", layouts[n].addr, layouts[n].buffer_shape, layouts[n].dtype,
                               {"layout": layouts[n].to_json()}) for n in stage["writes"])
    return Program(program.config, program.insns[first : first + stage["insn_count"]],
                   program.text_addr + first * INSN_BYTES, program.segments + inputs, outputs,
                   {"kind": "stage", "ops": stage["ops"]})


def _fetch(name: str, env: dict, in_dram: set, layouts: dict[str, TensorLayout], device) -> np.ndarray:
    if name in in_dram:
        lay = layouts[name]
        env[name] = lay.unpack(device.read(lay.addr, lay.nbytes))
        in_dram.discard(name)
    return env[name]
