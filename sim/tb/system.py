"""cocotb testbench of the whole accelerator: run one program file to the end.

The DRAM is either cocotbext-axi's AxiRam on the accelerator's AXI master (every beat through
Python, with optional random stalls on all five channels) or the HDL-side simulation DRAM
(``sim/hdl/sim_dram.sv``, preloaded and read back through its backdoor, so Python is idle
while the program runs). Either way the CSRs are driven by cocotbext-axi's AxiLiteMaster,
the clock is a GPI clock, and Python waits for the interrupt. With LOWBIT_FAULT_RANGE the
AxiRam answers SLVERR inside that address range. The run's status, counters,
wall time and the bytes of the program's output tensors go to a JSON file that the caller
(``sim.system.run_rtl``) checks against the golden model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hw.csr import COUNTERS, REG, counter_register
from hw.isa import ErrorCode
from hw.program import Program
from sim.dram import read_bytes, write_bytes

CLOCK_NS = 10


def pause_generator(r: np.random.Generator, p: float):
    while True:
        yield bool(r.random() < p)


class Memory:
    """The two DRAM models behind one interface."""

    def __init__(self, dut, kind: str, prog: Program, pause: float, seed: int):
        self.dut, self.kind, self.cfg = dut, kind, prog.config
        if kind == "axi_ram":
            self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=self.cfg.dram_bytes)
            if pause:
                r = np.random.default_rng(seed)
                for ch in (self.ram.write_if.aw_channel, self.ram.write_if.w_channel, self.ram.write_if.b_channel,
                           self.ram.read_if.ar_channel, self.ram.read_if.r_channel):
                    ch.set_pause_generator(pause_generator(r, pause))
            fault = os.environ.get("LOWBIT_FAULT_RANGE")
            if fault:  # answer SLVERR for any beat in [lo, hi): cocotbext-axi turns an exception into it
                lo, hi = (int(x, 0) for x in fault.split(":"))
                for port, method in ((self.ram.read_if, "_read"), (self.ram.write_if, "_write")):
                    setattr(port, method, self._faulty(getattr(port, method), lo, hi))
        elif kind != "sim_dram":
            raise ValueError(f"unknown memory model {kind!r}")

    @staticmethod
    def _faulty(access, lo: int, hi: int):
        async def wrapped(address, *args):
            if lo <= address < hi:
                raise OSError(f"bus error at {address:#x}")
            return await access(address, *args)
        return wrapped

    async def write(self, addr: int, blob: bytes) -> None:
        if self.kind == "axi_ram":
            self.ram.write(addr, blob)
        else:
            await write_bytes(self.dut.u_dram, self.cfg.axi_data_bits, addr, blob)

    async def read(self, addr: int, n: int) -> bytes:
        if self.kind == "axi_ram":
            return bytes(self.ram.read(addr, n))
        return await read_bytes(self.dut.u_dram, self.cfg.axi_data_bits, addr, n)


@cocotb.test()
async def run_program(dut):
    prog = Program.load(os.environ["LOWBIT_PROGRAM"])
    out = Path(os.environ["LOWBIT_RESULT"])
    kind = os.environ.get("LOWBIT_MEMORY", "sim_dram")
    limit = int(os.environ.get("LOWBIT_MAX_CYCLES", "10000000"))
    seed = cocotb.RANDOM_SEED

    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    mem = Memory(dut, kind, prog, float(os.environ.get("LOWBIT_PAUSE", "0")), seed)
    csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    for seg in prog.all_segments:
        await mem.write(seg.dram_addr, seg.data)

    ctrl = REG["CTRL"]
    await csr.write_dword(REG["PROG_BASE"].offset, prog.text_addr)
    await csr.write_dword(REG["PROG_LEN"].offset, int(os.environ.get("LOWBIT_PROG_LEN", len(prog.insns))))
    t0, wall0 = get_sim_time("ns"), time.perf_counter()
    await csr.write_dword(ctrl.offset, ctrl.mask("start", "irq_enable"))
    await First(RisingEdge(dut.irq), Timer(limit * CLOCK_NS, "ns"))
    wall = time.perf_counter() - wall0
    sim_cycles = round((get_sim_time("ns") - t0) / CLOCK_NS)
    finished = bool(dut.irq.value)

    status = await csr.read_dword(REG["STATUS"].offset)
    code = await csr.read_dword(REG["ERROR"].offset)
    result = {
        "finished": finished,
        "status": status,
        "error": ErrorCode(code).name,
        "error_pc": await csr.read_dword(REG["ERROR_PC"].offset),
        "counters": {n: await csr.read_dword(REG[counter_register(n)].offset) for n in COUNTERS},
        "sim_cycles": sim_cycles,
        "wall_s": wall,
        "memory": kind,
        "seed": seed,
        "tensors": {},
    }
    for t in prog.tensors:
        result["tensors"][t.name] = (await mem.read(t.dram_addr, t.nbytes)).hex()
    out.write_text(json.dumps(result, indent=1))
    assert finished, f"no interrupt within {limit} cycles (watchdog)"
