"""Devices that run a compiled model's accelerator stages: ``golden`` (the NumPy ISA model) and
``verilator`` (the RTL, through cocotb and Verilator, models cached by configuration).

A device runs one stage at a time: it is given the logical tensors the stage reads, puts them
into DRAM in their layout, runs the stage's instructions, and returns the tensors it wrote
with what the run cost (RTL cycle and busy/stall counters, MACs, DMA bytes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.layout import TensorLayout
from hw.isa import INSN_BYTES, ErrorCode, Opcode
from hw.program import Program, Segment, TensorDesc
from sim.golden import Golden

BACKENDS = ("golden", "verilator")


@dataclass
class StageRun:
    """What one accelerator stage did."""

    outputs: dict[str, np.ndarray]
    status: ErrorCode
    pc: int | None = None
    message: str = ""
    counters: dict[str, int] = field(default_factory=dict)  # RTL counters (empty on the golden model)
    array_macs: int = 0  # MACs the array performed, padding included
    dma_bytes: int = 0
    golden_outputs: dict[str, np.ndarray] | None = None  # the golden model's, where the device ran it too

    @property
    def ok(self) -> bool:
        return self.status is ErrorCode.OK

    @property
    def cycles(self) -> int | None:
        return self.counters.get("cycles")


def layouts_of(program: Program) -> dict[str, TensorLayout]:
    return {n: TensorLayout.from_json(d) for n, d in program.meta["layouts"].items()}


def stage_program(program: Program, stage: dict, tensors: dict[str, np.ndarray]) -> Program:
    """One accelerator stage as a standalone program: its instructions, the DRAM image with the
    tensors it reads (logical arrays by value name) already written, and what it writes as outputs."""
    layouts = layouts_of(program)
    first = stage["insn_start"]
    inputs = tuple(Segment(f"in:{n}", layouts[n].addr, layouts[n].pack(tensors[n]).tobytes()) for n in stage["reads"])
    outputs = tuple(TensorDesc(n, "output", layouts[n].addr, layouts[n].buffer_shape, layouts[n].dtype,
                               {"layout": layouts[n].to_json()}) for n in stage["writes"])
    return Program(program.config, program.insns[first : first + stage["insn_count"]],
                   program.text_addr + first * INSN_BYTES, program.segments + inputs, outputs,
                   {"kind": "stage", "ops": stage["ops"]})


class Device(ABC):
    name: str

    def __init__(self, program: Program):
        self.program = program
        self.layouts = layouts_of(program)

    @abstractmethod
    def run_stage(self, stage: dict, tensors: dict[str, np.ndarray]) -> StageRun:
        """Run one accelerator stage on the tensors it reads."""


class GoldenDevice(Device):
    """The ISA-level golden model; DRAM persists across stages as on the hardware."""

    name = "golden"

    def __init__(self, program: Program):
        super().__init__(program)
        self.sim = Golden.for_program(program)

    def run_stage(self, stage: dict, tensors: dict[str, np.ndarray]) -> StageRun:
        for name in stage["reads"]:
            lay = self.layouts[name]
            raw = lay.pack(tensors[name]).view(np.uint8).ravel()
            self.sim.dram[lay.addr : lay.addr + raw.size] = raw
        res = self.sim.run(self.program.text_addr + stage["insn_start"] * INSN_BYTES, stage["insn_count"])
        outputs = {}
        if res.ok:
            for name in stage["writes"]:
                lay = self.layouts[name]
                outputs[name] = lay.unpack(self.sim.dram[lay.addr : lay.addr + lay.nbytes])
        return StageRun(outputs, res.status, res.pc, res.message, {}, res.macs,
                        sum(w.dram_bytes for w in res.trace if w.opcode in (Opcode.LOAD, Opcode.STORE)))


class VerilatorDevice(Device):
    """The accelerator's RTL in Verilator, one cocotb run per stage (the model is built once per
    configuration and cached). Each run also runs the golden model on the same stage, so every
    stage comes with the golden model's bytes to compare."""

    name = "verilator"

    def __init__(self, program: Program, memory: str = "sim_dram", work_dir: str | Path | None = None,
                 max_cycles: int = 50_000_000):
        super().__init__(program)
        self.memory, self.max_cycles = memory, max_cycles
        self.work_dir = Path(work_dir) if work_dir else None
        self.count = 0

    def run_stage(self, stage: dict, tensors: dict[str, np.ndarray]) -> StageRun:
        from sim.system import run_rtl

        work = self.work_dir / f"stage{self.count}" if self.work_dir else None
        self.count += 1
        run = run_rtl(stage_program(self.program, stage, tensors), memory=self.memory, work_dir=work,
                      max_cycles=self.max_cycles)
        status = run.error
        outputs, golden = {}, {}
        for name in stage["writes"]:
            lay = self.layouts[name]
            if name in run.result.get("tensors", {}):
                outputs[name] = lay.unpack(np.frombuffer(run.tensors[name], np.uint8))
            golden[name] = lay.unpack(np.frombuffer(run.golden_tensors[name], np.uint8)) if run.golden.ok else None
        if not run.result.get("finished", True):
            status = ErrorCode.DEADLOCK
        return StageRun(outputs, status, run.result.get("error_pc"), run.result.get("error", ""),
                        dict(run.result.get("counters", {})), run.golden.macs,
                        run.golden.load_bytes + run.golden.store_bytes, golden)


def make_device(backend: str, program: Program, **kwargs) -> Device:
    if backend == "golden":
        return GoldenDevice(program)
    if backend == "verilator":
        return VerilatorDevice(program, **kwargs)
    raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
