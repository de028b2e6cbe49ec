"""The golden model against direct NumPy references, its scheduling and its error codes."""

import numpy as np
import pytest

from compiler.gemm import Requant, gemm_program
from hw.asm import assemble, disassemble
from hw.config import from_dict
from hw.datatypes import DATATYPES
from hw.isa import ISA_VERSION, Buffer, ErrorCode, to_bytes
from hw.program import Program, ProgramError, Segment
from sim.golden import SCHEDULES, Golden, run_program


def numpy_gemm(a, w, req: Requant):
    """requant(A @ W) written out directly (docs/numerics.md), without hw.numerics."""
    acc = a.astype(np.int64) @ w.astype(np.int64)
    x = (acc + req.bias) * req.multiplier
    y = np.array([[(int(v) + (1 << (int(s) - 1) if s else 0)) >> int(s) for v, s in zip(row, req.shift)]
                  for row in x]) + req.zero_point
    lo = max(req.zero_point, -128) if req.relu else -128
    return np.clip(y, lo, 127)


def random_case(rng, m, k, n, dtype, relu):
    dt = DATATYPES[dtype]
    a = rng.integers(-128, 128, (m, k))
    w = rng.integers(dt.qmin, dt.qmax + 1, (k, n))
    spread = np.sqrt(k) * 74 * max(-dt.qmin, dt.qmax)
    req = Requant(bias=rng.integers(-3000, 3000, n),
                  multiplier=rng.integers(1 << 22, 1 << 24, n),
                  shift=np.full(n, int(np.log2(spread * (1 << 23) / 80))),
                  zero_point=int(rng.integers(-20, 20)), relu=relu)
    return a, w, req


@pytest.mark.parametrize("config", ["tiny", "default"])
@pytest.mark.parametrize("dtype", ["int4", "int2", "int8"])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("kernel", ["stream", "resident"])
def test_tiled_gemm_37x53x29_matches_numpy(request, rng, config, dtype, relu, kernel):
    cfg = request.getfixturevalue(config)
    a, w, req = random_case(rng, 37, 53, 29, dtype, relu)
    prog = gemm_program(cfg, a, w, dtype, req, kernel=kernel)
    assert prog.meta["kernel"] == f"gemm-{kernel}"
    ref = numpy_gemm(a, w, req)
    assert len(np.unique(ref)) > 20  # the outputs really span the INT8 range
    for schedule in SCHEDULES:
        sim, res = run_program(prog, schedule)
        res.raise_for_status()
        assert np.array_equal(sim.read(prog.tensor("out").dram_addr, (37, 29)), ref), schedule


def test_gemm_larger_than_every_buffer_counts_its_work(tiny, rng):
    m, k, n = 300, 70, 29
    a, w, req = random_case(rng, m, k, n, "int4", True)
    prog = gemm_program(tiny, a, w, "int4", req, kernel="stream")
    sim, res = run_program(prog)
    res.raise_for_status()
    assert np.array_equal(sim.read(prog.tensor("out").dram_addr, (m, n)), numpy_gemm(a, w, req))
    R, C = tiny.rows, tiny.cols
    kt, nt, mt = -(-k // R), -(-n // C), prog.meta["m_tile"]
    assert mt < m  # really tiled along M
    assert res.macs == nt * kt * m * R * C
    tile_bytes = R * C * 4 // 8
    param_bytes = nt * C * 8
    assert res.load_bytes == nt * m * k + nt * -(-m // mt) * kt * tile_bytes + param_bytes
    assert res.store_bytes == m * n
    assert res.counts["matmul"] == nt * -(-m // mt) * kt


def _text(prog: Program) -> str:
    return disassemble(list(prog.insns))


def _with_text(prog: Program, text: str) -> Program:
    insns = tuple(assemble(text))
    assert len(insns) == len(prog.insns)
    return Program(prog.config, insns, prog.text_addr, prog.segments, prog.tensors, prog.meta)


def test_missing_tokens_are_a_visible_race(tiny, rng):
    """Without the tokens that protect buffer reuse, an eager load schedule overwrites tiles
    before compute reads them: the schedules stop agreeing with the reference."""
    a, w, req = random_case(rng, 37, 53, 29, "int4", False)
    prog = gemm_program(tiny, a, w, "int4", req, kernel="stream")
    text = _text(prog).replace(" deps=pop_next|push_next", " deps=push_next").replace("|push_prev", "")
    text = text.replace(" deps=pop_next\n", "\n")
    racy = _with_text(prog, text)
    ref = numpy_gemm(a, w, req)
    sim, res = run_program(racy, "load-first")
    res.raise_for_status()
    assert not np.array_equal(sim.read(prog.tensor("out").dram_addr, (37, 29)), ref)


def run_text(cfg, text: str, data: bytes = b"", data_addr: int = 0x1000):
    prog = Program(cfg, tuple(assemble(text)), 0, (Segment("d", data_addr, data),))
    return run_program(prog)


LOAD_IN = "load buffer=input sram_addr=0 dram_addr=0x1000 rows=1 row_bytes=4 dram_stride=4"


@pytest.mark.parametrize(
    "text, code",
    [
        (f"{LOAD_IN}\nsync queue=load deps=pop_prev\nend", ErrorCode.BAD_DEPS),
        ("matmul dtype=int4 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m=1 deps=pop_prev\nend", ErrorCode.DEADLOCK),
        (LOAD_IN.replace("input", "acc") + "\nend", ErrorCode.BAD_BUFFER),
        ("store buffer=input sram_addr=0 dram_addr=0 rows=1 row_bytes=4 dram_stride=4\nend", ErrorCode.BAD_BUFFER),
        (LOAD_IN.replace("rows=1", "rows=0") + "\nend", ErrorCode.BAD_LENGTH),
        (LOAD_IN.replace("sram_addr=0", "sram_addr=255") .replace("row_bytes=4", "row_bytes=8") + "\nend",
         ErrorCode.SRAM_RANGE),
        (LOAD_IN.replace("0x1000", "0xffffe") + "\nend", ErrorCode.DRAM_RANGE),
        ("matmul dtype=int3 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m=1\nend", ErrorCode.BAD_DTYPE),
        ("matmul dtype=int4 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m=0\nend", ErrorCode.BAD_LENGTH),
        ("postproc acc_addr=60 out_addr=0 param_addr=0 m=8 relu=0 zero_point=0\nend", ErrorCode.SRAM_RANGE),
        (LOAD_IN, ErrorCode.PROGRAM_OVERRUN),
    ],
)
def test_error_codes(tiny, text, code):
    _, res = run_text(tiny, text, bytes(16))
    assert res.status is code, res.message
    assert res.pc is not None


def test_illegal_opcode_halts_at_its_pc(tiny):
    prog = Program(tiny, tuple(assemble(f"{LOAD_IN}\nend")) + (0,), 0, (Segment("d", 0x1000, bytes(4)),))
    prog = Program(tiny, (prog.insns[0], 0, prog.insns[1]), 0, prog.segments)
    _, res = run_program(prog)
    assert (res.status, res.pc) == (ErrorCode.ILLEGAL_OPCODE, 1)
    assert len(res.trace) <= 1


def test_store_accumulators_as_int32(tiny, rng):
    """MATMUL then STORE from ACC: raw accumulators, little-endian int32, equal A @ W."""
    a = rng.integers(-128, 128, (5, 4))
    w = rng.integers(-128, 128, (4, 4))
    data = a.astype(np.int8).tobytes() + w.astype(np.int8).tobytes()
    text = "\n".join([
        "load buffer=input sram_addr=0 dram_addr=0x1000 rows=5 row_bytes=4 dram_stride=4",
        "load buffer=weight sram_addr=0 dram_addr=0x1014 rows=1 row_bytes=16 dram_stride=16 deps=push_next",
        "matmul dtype=int8 accumulate=0 in_addr=0 w_addr=0 acc_addr=3 m=5 deps=pop_prev",
        "matmul dtype=int8 accumulate=1 in_addr=0 w_addr=0 acc_addr=3 m=5 deps=push_next",
        "store buffer=acc sram_addr=3 dram_addr=0x2000 rows=5 row_bytes=16 dram_stride=16 deps=pop_prev",
        "end",
    ])
    sim, res = run_text(tiny, text, data)
    res.raise_for_status()
    assert np.array_equal(sim.read(0x2000, (5, 4), "<i4"), 2 * (a @ w))


def test_accumulator_wraps_at_acc_bits(rng):
    cfg = from_dict({"rows": 4, "cols": 4, "acc_bits": 16, "input_buf_bytes": 64, "weight_buf_bytes": 64,
                     "acc_buf_bytes": 64, "out_buf_bytes": 64, "param_buf_bytes": 32, "group_size": 32})
    sim = Golden(cfg)
    a = np.full((1, 4), -128)
    w = np.full((4, 4), -128)
    sim.sram[Buffer.INPUT][0] = a.astype(np.int8).view(np.uint8)
    sim.sram[Buffer.WEIGHT][:4] = w.astype(np.int8).view(np.uint8)
    sim.dram[:32] = np.frombuffer(to_bytes(assemble("matmul dtype=int8 accumulate=0 in_addr=0 w_addr=0 "
                                                     "acc_addr=0 m=1\nend")), np.uint8)
    sim.run(0, 2).raise_for_status()
    assert sim.acc[0, 0] == ((4 * 128 * 128 + (1 << 15)) % (1 << 16)) - (1 << 15)


def test_program_file_round_trip_and_corruption(tiny, rng, tmp_path):
    a, w, req = random_case(rng, 9, 10, 7, "int2", True)
    prog = gemm_program(tiny, a, w, "int2", req)
    path = tmp_path / "g.lbp"
    prog.save(path)
    back = Program.load(path)
    assert back.insns == prog.insns and back.config == prog.config and back.tensors == prog.tensors
    assert np.array_equal(back.dram_image(), prog.dram_image())
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ProgramError, match="corrupted"):
        Program.load(path)
    path.write_bytes(b"PK\3\4" + bytes(raw[4:]))
    with pytest.raises(ProgramError, match="not a lowbit program"):
        Program.load(path)
    text = prog.to_bytes().replace(f'"isa_version": "{ISA_VERSION}"'.encode(), b'"isa_version": "0.9"')
    with pytest.raises(ProgramError, match="ISA 0.9"):
        Program.from_bytes(text)
