"""Whole programs on the accelerator RTL, bit for bit against the golden model: random GEMMs
under random AXI back-pressure, both DRAM models, and every error code."""

import numpy as np
import pytest

from compiler.gemm import Requant, gemm_program
from hw.asm import assemble
from hw.datatypes import DATATYPES
from hw.isa import INSN_BYTES, ErrorCode, Opcode, Queue, encode
from hw.program import Program, Segment, TensorDesc
from sim.system import run_rtl


def random_gemm(cfg, rng, m, k, n, dtype, relu, kernel="auto"):
    dt = DATATYPES[dtype]
    a = rng.integers(-128, 128, (m, k))
    w = rng.integers(dt.qmin, dt.qmax + 1, (k, n))
    spread = np.sqrt(k) * 74 * max(-dt.qmin, dt.qmax)
    req = Requant(bias=rng.integers(-3000, 3000, n), multiplier=rng.integers(1 << 22, 1 << 24, n),
                  shift=rng.integers(int(np.log2(spread * (1 << 23) / 80)) - 1,
                                     int(np.log2(spread * (1 << 23) / 80)) + 2, n),
                  zero_point=int(rng.integers(-20, 20)), relu=relu)
    return gemm_program(cfg, a, w, dtype, req, kernel=kernel)


def check(run) -> None:
    assert run.result["finished"], "no interrupt"
    assert run.golden.ok, run.golden.message
    assert run.error is ErrorCode.OK, f"RTL stopped with {run.error.name} at {run.result['error_pc']}"
    got, want = run.output(), np.frombuffer(run.golden_tensors["out"], np.int8).reshape(run.output().shape)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} output bytes differ from the golden model, first at {bad[0].tolist()}"
    assert len(np.unique(want)) > 10  # the outputs really span the INT8 range
    c = run.result["counters"]
    assert c["array_busy"] == run.golden.macs // (run.program.config.rows * run.program.config.cols)
    assert c["insns"] == len(run.program.insns)


@pytest.mark.parametrize("m, k, n, dtype, relu, kernel", [
    (37, 53, 29, "int4", True, "resident"),
    (37, 53, 29, "int2", False, "stream"),
    (21, 17, 30, "int8", True, "auto"),
    (9, 40, 5, "int8", False, "resident"),
    # A (10.5 KiB), W (2.2 KiB) and the accumulators (8 KiB) are each larger than their buffer
    (70, 150, 29, "int4", False, "stream"),
])
def test_gemm_under_axi_backpressure(tiny, rng, tmp_path, m, k, n, dtype, relu, kernel):
    """AxiRam with 30% random stalls on all five AXI channels."""
    prog = random_gemm(tiny, rng, m, k, n, dtype, relu, kernel)
    check(run_rtl(prog, "axi_ram", pause=0.3, work_dir=tmp_path))


def test_memory_models_give_the_same_bytes(tiny, rng, tmp_path):
    """The Python AxiRam and the HDL-side DRAM produce identical outputs (and counters agree
    on the work done)."""
    prog = random_gemm(tiny, rng, 45, 64, 27, "int4", True)
    runs = [run_rtl(prog, mem, work_dir=tmp_path / mem) for mem in ("axi_ram", "sim_dram")]
    for run in runs:
        check(run)
    assert runs[0].tensors["out"] == runs[1].tensors["out"]
    for name in ("insns", "array_busy", "postproc_busy"):
        assert runs[0].result["counters"][name] == runs[1].result["counters"][name]


def test_default_config_gemm(default, rng, tmp_path):
    """The default 16x16 array on its 128-bit bus, through the HDL-side DRAM."""
    check(run_rtl(random_gemm(default, rng, 50, 70, 40, "int4", True), "sim_dram", work_dir=tmp_path))


LOAD_IN = "load buffer=input sram_addr=0 dram_addr=0x1000 rows=1 row_bytes=4 dram_stride=4"
MATMUL = "matmul dtype=int4 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m=1"
BAD_PROGRAMS = {
    # name: (program text, or raw instruction words; the error the run must end with)
    "illegal_opcode": ([encode(Opcode.SYNC, queue=Queue.LOAD), 0xF], ErrorCode.ILLEGAL_OPCODE),
    "reserved_bits": ([encode(Opcode.END) | (1 << 100)], ErrorCode.RESERVED_BITS),
    "bad_buffer": (LOAD_IN.replace("input", "acc") + "\nend", ErrorCode.BAD_BUFFER),
    "store_from_input": ("store buffer=input sram_addr=0 dram_addr=0x2000 rows=1 row_bytes=4 dram_stride=4\nend",
                         ErrorCode.BAD_BUFFER),
    "zero_rows": (LOAD_IN.replace("rows=1", "rows=0") + "\nend", ErrorCode.BAD_LENGTH),
    "zero_m": (MATMUL.replace("m=1", "m=0") + "\nend", ErrorCode.BAD_LENGTH),
    "sram_range": (LOAD_IN.replace("sram_addr=0", "sram_addr=255").replace("row_bytes=4", "row_bytes=8") + "\nend",
                   ErrorCode.SRAM_RANGE),
    "matmul_past_acc": (MATMUL.replace("acc_addr=0", "acc_addr=60").replace("m=1", "m=5") + "\nend",
                        ErrorCode.SRAM_RANGE),
    "dram_range": (LOAD_IN.replace("dram_addr=0x1000", "dram_addr=0xfffff").replace("rows=1", "rows=2") + "\nend",
                   ErrorCode.DRAM_RANGE),
    "bad_dtype": (MATMUL.replace("int4", "int3") + "\nend", ErrorCode.BAD_DTYPE),
    "bad_deps": (f"{LOAD_IN}\nsync queue=load deps=pop_prev\nend", ErrorCode.BAD_DEPS),
    "no_end": (f"{LOAD_IN}\n{LOAD_IN}", ErrorCode.PROGRAM_OVERRUN),
    "deadlock": (f"{LOAD_IN}\n{MATMUL} deps=pop_prev\nend", ErrorCode.DEADLOCK),
    "error_after_work": (f"{LOAD_IN} deps=push_next\n{MATMUL} deps=pop_prev\n"
                         "postproc acc_addr=0 out_addr=0 param_addr=9 m=1 relu=0 zero_point=0\nend",
                         ErrorCode.SRAM_RANGE),
}


@pytest.mark.parametrize("name", BAD_PROGRAMS)
def test_bad_program_halts_with_its_error_code(tiny, tmp_path, name):
    """The run ends (no hang) with the golden model's error code and instruction index."""
    text, code = BAD_PROGRAMS[name]
    insns = tuple(assemble(text)) if isinstance(text, str) else tuple(text)
    data = Segment("d", 0x1000, bytes(range(256)) * 4)
    prog = Program(tiny, insns, 0, (data,), (TensorDesc("d", "input", 0x1000, (16,), "int8"),))
    run = run_rtl(prog, "sim_dram", work_dir=tmp_path, max_cycles=100_000)
    assert run.golden.status is code, run.golden.message
    assert run.result["finished"], "the run did not end"
    assert run.error is code and run.result["error_pc"] == run.golden.pc, \
        f"RTL: {run.error.name} at {run.result['error_pc']}, golden: {code.name} at {run.golden.pc}"
    assert run.result["status"] & 0b111 == 0b110  # not busy, done, error


def test_program_past_the_end_of_dram_is_a_dram_range_error(tiny, tmp_path):
    """PROG_LEN reaches past DRAM: the first instruction outside is a DRAM_RANGE fault."""
    text_addr = tiny.dram_bytes - 2 * INSN_BYTES
    prog = Program(tiny, tuple(assemble(f"{LOAD_IN}\n{LOAD_IN}")), text_addr, ())
    run = run_rtl(prog, "sim_dram", work_dir=tmp_path, max_cycles=100_000, insn_count=3)
    assert run.golden.status is ErrorCode.DRAM_RANGE and run.golden.pc == 2
    assert run.error is ErrorCode.DRAM_RANGE and run.result["error_pc"] == 2
