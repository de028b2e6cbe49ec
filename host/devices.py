"""Devices that run a compiled model's accelerator stages: ``golden`` (the NumPy ISA model) and
``verilator`` (the RTL, through cocotb and Verilator, models cached by configuration).

A device runs one stage at a time: it is given the logical tensors the stage reads, puts them
into DRAM in their layout, sets the buffers of the padded tensors the stage writes to their
border value (the stage's ``fills``: the compiler reuses DRAM by liveness, so that space may hold
an earlier tensor, and a producer writes only the interior), runs the stage's instructions, and
returns the tensors it wrote with what the run cost (RTL cycle and busy/stall counters, MACs,
DMA bytes).
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


def border_image(lay: TensorLayout) -> np.ndarray:
    """A padded tensor's buffer before its producer runs: every element the border value."""
    return np.full(lay.buffer_shape, lay.fill, lay.dtype)


def stage_program(program: Program, stage: dict, tensors: dict[str, np.ndarray]) -> Program:
    """One accelerator stage as a standalone program: its instructions, the DRAM image with the
    tensors it reads (logical arrays by value name) and its fills already written, and what it
    writes as outputs."""
    layouts = layouts_of(program)
    first = stage["insn_start"]
    fills = tuple(Segment(f"fill:{n}", layouts[n].addr, border_image(layouts[n]).tobytes())
                  for n in stage.get("fills", ()))
    inputs = fills + tuple(Segment(f"in:{n}", layouts[n].addr, layouts[n].pack(tensors[n]).tobytes())
                           for n in stage["reads"])
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
    """The ISA-level golden model; DRAM persists across stages as on the hardware.

    With ``resident=True`` a tensor that an earlier stage of this device wrote is not written
    again before a stage that reads it: the stage reads what is in DRAM, as on a host that
    leaves activations on the device, so a DRAM plan that lets a later tensor overwrite a live
    one (or a border that is not rewritten) shows as wrong results. Only the tensors the host
    computes (graph inputs, host ops' outputs) are written. By default every tensor a stage
    reads is written before it."""

    name = "golden"

    def __init__(self, program: Program, resident: bool = False):
        super().__init__(program)
        self.sim = Golden.for_program(program)
        self.resident = resident
        self.on_device: set[str] = set()  # tensors written by stages run here (resident mode)

    def _write(self, lay: TensorLayout, buf: np.ndarray) -> None:
        raw = buf.view(np.uint8).ravel()
        self.sim.dram[lay.addr : lay.addr + raw.size] = raw

    def run_stage(self, stage: dict, tensors: dict[str, np.ndarray]) -> StageRun:
        for name in stage.get("fills", ()):
            self._write(self.layouts[name], border_image(self.layouts[name]))
        for name in stage["reads"]:
            if not (self.resident and name in self.on_device):
                self._write(self.layouts[name], self.layouts[name].pack(tensors[name]))
        res = self.sim.run(self.program.text_addr + stage["insn_start"] * INSN_BYTES, stage["insn_count"])
        outputs = {}
        if res.ok:
            self.on_device |= set(stage["writes"])
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
        return GoldenDevice(program, **kwargs)
    if backend == "verilator":
        return VerilatorDevice(program, **kwargs)
    raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
