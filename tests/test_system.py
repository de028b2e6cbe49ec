"""Whole programs on the accelerator RTL, bit for bit against the golden model: random GEMMs
under random AXI back-pressure, both DRAM models, and every error code."""

from pathlib import Path

import numpy as np
import pytest

from compiler.gemm import Requant, WeightGroups, gemm_program, reference_gemm
from hw import scratchpad
from hw.asm import assemble
from hw.config import from_dict, load_config
from hw.datatypes import DATATYPES
from hw.isa import INSN_BYTES, Buffer, ChannelParams, ErrorCode, Opcode, Queue, encode
from hw.program import Program, Segment, TensorDesc
from hw.records import pack_records
from sim.system import run_rtl

pytestmark = pytest.mark.rtl  # every test here builds or runs a Verilator model


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
    c, cfg = run.result["counters"], run.program.config
    rows_in = run.golden.macs // (cfg.rows * cfg.cols)
    if cfg.pe == "serial":  # each activation row enters once per bit plane of its tile
        assert rows_in <= c["array_busy"] <= rows_in * max(DATATYPES[d].mant_bits for d in cfg.weight_dtypes)
    else:
        assert c["array_busy"] == rows_in
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


@pytest.mark.parametrize("lanes", [2, 4])
def test_gemm_with_more_postproc_lanes(tiny, rng, tmp_path, lanes):
    """Post-processing a row in 2 slices or whole (2 or 4 requantization lanes for 4 columns;
    `tiny` has one, 4 slices) gives the same bytes, under AXI back-pressure."""
    cfg = from_dict({**tiny.model_dump(), "name": f"tiny-pp{lanes}", "postproc_lanes": lanes})
    assert cfg.pp_row_cycles == 4 // lanes
    check(run_rtl(random_gemm(cfg, rng, 37, 53, 29, "int4", True, "resident"), "axi_ram", pause=0.3,
                  work_dir=tmp_path))


def test_gemm_with_a_dma_mover_per_buffer(tiny, rng, tmp_path):
    """`dma_movers = "per_buffer"`: a reader for each loadable buffer behind the read arbiter and a
    writer for each storable one behind the write multiplexer give the same bytes, under AXI
    back-pressure."""
    cfg = from_dict({**tiny.model_dump(), "name": "tiny-movers", "dma_movers": "per_buffer"})
    check(run_rtl(random_gemm(cfg, rng, 37, 53, 29, "int4", True, "stream"), "axi_ram", pause=0.3,
                  work_dir=tmp_path))


def test_default_config_gemm(default, rng, tmp_path):
    """The default 16x16 array on its 128-bit bus, through the HDL-side DRAM."""
    check(run_rtl(random_gemm(default, rng, 50, 70, 40, "int4", True), "sim_dram", work_dir=tmp_path))


@pytest.mark.parametrize("m, k, n, dtype", [(13, 20, 4, "int8"), (21, 40, 3, "int4")])
def test_smallest_configuration_gemm(rng, tmp_path, m, k, n, dtype):
    """Every size at its least (bitstreams/configs/floor-4x4.toml, the configuration docs/fpga.md
    measures on the iCE40): single-buffered one-tile buffers, a PARAM buffer of one row,
    instruction queues and token channels of one, one burst in flight, 16-bit accumulators and
    AXI addresses, under AXI back-pressure."""
    cfg = load_config(Path(__file__).parents[1] / "bitstreams" / "configs" / "floor-4x4.toml")
    assert cfg.buffer_depth("param_buf_bytes") == 1 and cfg.insn_queue_depth == 1
    check(run_rtl(random_gemm(cfg, rng, m, k, n, dtype, True), "axi_ram", pause=0.3, work_dir=tmp_path))


def mixed_groups(cfg, rng, k, n, size):
    """Per-group datatypes covering every datatype of the config, random values of each group's
    datatype, random 8-bit scales."""
    g = -(-k // size)
    types = list(cfg.weight_dtypes)
    tags = np.array((types * (g * n // len(types) + 1))[: g * n])
    rng.shuffle(tags)
    tags = tags.reshape(g, n)
    w = np.zeros((k, n), np.int64)
    for gi in range(g):
        rows = slice(gi * size, min((gi + 1) * size, k))
        for j in range(n):
            w[rows, j] = rng.choice(DATATYPES[tags[gi, j]].values, rows.stop - rows.start)
    # asymmetric groups: unsigned datatypes get a zero point inside their range
    zps = np.vectorize(lambda t: int(rng.integers(0, DATATYPES[t].qmax + 1)) if t.startswith("uint") else 0)(tags)
    return w, WeightGroups(size, tags, rng.integers(1, 256, (g, n)), zps)


@pytest.mark.parametrize("m, k, n, size, kernel", [(21, 150, 10, 32, "stream"), (19, 150, 7, 128, "auto")])
def test_grouped_mixed_datatype_gemm(tiny_serial, rng, tmp_path, m, k, n, size, kernel):
    """The bit-serial array with a datatype and a scale per (group, column), every datatype of
    the table present, under AXI back-pressure: bit exact against the golden model."""
    w, groups = mixed_groups(tiny_serial, rng, k, n, size)
    if size == 32:
        assert set(groups.tags.ravel()) == set(tiny_serial.weight_dtypes)
    a = rng.integers(-128, 128, (m, k))
    acc = a @ groups.effective(w)
    shift = int(np.floor(np.log2(((1 << 24) - 1) * (acc.std() + 1) / 60)))
    mult = int(np.rint(60 / (acc.std() + 1) * 2.0**shift))
    req = Requant(bias=rng.integers(-1000, 1000, n), multiplier=np.full(n, mult), shift=np.full(n, shift),
                  zero_point=3, relu=bool(size == 32))
    prog = gemm_program(tiny_serial, a, w, "int8", req, kernel=kernel, groups=groups)
    run = run_rtl(prog, "axi_ram", pause=0.2, work_dir=tmp_path)
    check(run)
    assert np.array_equal(run.output(), reference_gemm(a, w, req, tiny_serial.act_bits, groups))


def test_grouped_tile_with_a_datatype_wider_than_its_storage(tiny_serial, rng, tmp_path):
    """A GroupParams row naming a datatype wider than the tile's storage ends the run with
    BAD_DTYPE at that MATMUL, as in the golden model."""
    tags = np.full((2, 4), "int4", dtype=object)
    tags[1, 2] = "uint8"
    groups = WeightGroups(8, tags, np.ones((2, 4), int))
    prog = gemm_program(tiny_serial, rng.integers(-128, 128, (5, 16)), rng.integers(0, 8, (16, 4)), "int4",
                        Requant(np.zeros(4, int), np.ones(4, int), np.zeros(4, int)), groups=groups)
    run = run_rtl(prog, "sim_dram", work_dir=tmp_path, max_cycles=100_000)
    assert run.golden.status is ErrorCode.BAD_DTYPE
    assert run.error is ErrorCode.BAD_DTYPE and run.result["error_pc"] == run.golden.pc


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


@pytest.mark.parametrize("text, pc", [
    (f"{LOAD_IN}\n{LOAD_IN.replace('0x1000', '0x8000')}\nend", 1),
    ("store buffer=output sram_addr=0 dram_addr=0x8010 rows=2 row_bytes=4 dram_stride=8\nend", 0),
])
def test_bus_error_response_halts_with_bus_error(tiny, tmp_path, text, pc):
    """A SLVERR from memory on a LOAD or STORE is not dropped: the run ends with BUS_ERROR at
    that instruction (the golden model's memory never fails, so it ends well)."""
    prog = Program(tiny, tuple(assemble(text)), 0, (Segment("d", 0x1000, bytes(range(256))),))
    run = run_rtl(prog, "axi_ram", work_dir=tmp_path, max_cycles=100_000, fault_range=(0x8000, 0x9000))
    assert run.golden.ok
    assert run.result["finished"]
    assert run.error is ErrorCode.BUS_ERROR and run.result["error_pc"] == pc


def test_program_past_the_end_of_dram_is_a_dram_range_error(tiny, tmp_path):
    """PROG_LEN reaches past DRAM: the first instruction outside is a DRAM_RANGE fault."""
    text_addr = tiny.dram_bytes - 2 * INSN_BYTES
    prog = Program(tiny, tuple(assemble(f"{LOAD_IN}\n{LOAD_IN}")), text_addr, ())
    run = run_rtl(prog, "sim_dram", work_dir=tmp_path, max_cycles=100_000, insn_count=3)
    assert run.golden.status is ErrorCode.DRAM_RANGE and run.golden.pc == 2
    assert run.error is ErrorCode.DRAM_RANGE and run.result["error_pc"] == 2


@pytest.mark.parametrize("model, quantizer, weights, group_size, config, memory", [
    ("cnn", "lowbit", "int4", None, "tiny", "sim_dram"),
    ("mlp", "pt2e", "int8", None, "tiny", "axi_ram"),
    ("mlp", "lowbit", "mixture4", 16, "tiny_serial", "sim_dram"),
])
def test_compiled_model_stages_on_rtl(request, tmp_path, model, quantizer, weights, group_size, config, memory):
    """Every accelerator stage of a compiled model, run on the RTL with the tensors it reads, writes
    what the NumPy reference of the quantized graph says, byte for byte."""
    from compiler.examples import example_program
    from compiler.layout import TensorLayout
    from compiler.pipeline import compile_model
    from compiler.reference import evaluate
    from host.devices import stage_program

    cfg = request.getfixturevalue(config)
    ep, inputs = example_program(model, quantizer=quantizer, weights=weights, group_size=group_size)
    program, graph = compile_model(ep, cfg)
    ref = evaluate(graph, {n: x.numpy() for n, x in zip(graph.inputs, inputs)})
    stages = [s for s in program.meta["stages"] if s["kind"] == "accel"]
    assert stages
    for k, stage in enumerate(stages):
        run = run_rtl(stage_program(program, stage, ref), memory=memory, pause=0.3 if memory == "axi_ram" else 0.0,
                      work_dir=tmp_path / f"stage{k}")
        assert run.error is ErrorCode.OK, run.result
        for name in stage["writes"]:
            lay = TensorLayout.from_json(program.meta["layouts"][name])
            got = lay.unpack(np.frombuffer(run.tensors[name], np.uint8))
            assert np.array_equal(got, ref[name]), f"stage {k}: {name} differs from the reference"
            assert run.tensors[name] == run.golden_tensors[name]


@pytest.mark.parametrize("lanes", [4, 1])
def test_store_of_accumulators_alongside_postproc(tiny, rng, tmp_path, lanes):
    """A STORE of accumulator rows while a POSTPROC streams the same rows: the two share the ACC
    read port (the POSTPROC first, reading every cycle with 4 lanes, every fourth with 1), and
    both the int32 accumulators and the int8 outputs match the golden model byte for byte."""
    cfg = from_dict({**tiny.model_dump(), "name": f"tiny-pp{lanes}", "postproc_lanes": lanes})
    m = 24
    a = rng.integers(-128, 128, (m, cfg.rows)).astype(np.int8)
    w = rng.integers(-128, 128, (cfg.rows, cfg.cols)).astype(np.int8)
    params = pack_records(ChannelParams, bias=rng.integers(-3000, 3000, cfg.cols),
                          multiplier=rng.integers(1 << 22, 1 << 24, cfg.cols), shift=np.full(cfg.cols, 35))
    prow = scratchpad.row_bytes(cfg, Buffer.PARAM)
    acc_row, out_row = 4 * cfg.cols, cfg.cols
    text = f"""load buffer=input sram_addr=0 dram_addr=0x1000 rows={m} row_bytes={cfg.rows} dram_stride={cfg.rows}
load buffer=weight sram_addr=0 dram_addr=0x2000 rows={cfg.rows} row_bytes={cfg.cols} dram_stride={cfg.cols}
load buffer=param sram_addr=0 dram_addr=0x3000 rows=1 row_bytes={len(params)} dram_stride={prow} deps=push_next
matmul dtype=int8 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m={m} deps=pop_prev|push_next
postproc acc_addr=0 out_addr=0 param_addr=0 m={m} relu=0 zero_point=3 deps=push_next
store buffer=acc sram_addr=0 dram_addr=0x4000 rows={m} row_bytes={acc_row} dram_stride={acc_row} deps=pop_prev
store buffer=output sram_addr=0 dram_addr=0x5000 rows={m} row_bytes={out_row} dram_stride={out_row} deps=pop_prev
end"""
    segments = (Segment("a", 0x1000, a.tobytes()), Segment("w", 0x2000, w.tobytes()),
                Segment("p", 0x3000, params.tobytes()))
    tensors = (TensorDesc("acc", "output", 0x4000, (m, cfg.cols), "int32"),
               TensorDesc("out", "output", 0x5000, (m, cfg.cols), "int8"))
    run = run_rtl(Program(cfg, tuple(assemble(text)), 0, segments, tensors), "axi_ram", pause=0.2,
                  work_dir=tmp_path, max_cycles=200_000)
    assert run.golden.ok, run.golden.message
    assert run.result["finished"] and run.error is ErrorCode.OK
    want = a.astype(np.int64) @ w.astype(np.int64)
    assert np.array_equal(np.frombuffer(run.golden_tensors["acc"], np.int32).reshape(m, cfg.cols), want)
    assert run.tensors["acc"] == run.golden_tensors["acc"]
    assert run.tensors["out"] == run.golden_tensors["out"] and len(set(run.tensors["out"])) > 10


@pytest.mark.parametrize("movers", ["per_engine", "per_buffer"])
def test_stores_of_odd_shapes(tiny, rng, tmp_path, movers):
    """STOREs whose DRAM rows are not whole scratchpad rows, under AXI back-pressure: accumulator
    rows (wider than a beat, so read a beat-wide word at a time) cut short inside a word, DRAM rows
    spanning two and a part scratchpad rows, one byte, unaligned addresses and strides; and an
    output-row store of the same kind, through one DMA writer for both buffers or one each. Every
    byte of the regions matches the golden model."""
    cfg = from_dict({**tiny.model_dump(), "name": f"tiny-{movers}", "dma_movers": movers})
    m = 24
    a = rng.integers(-128, 128, (m, cfg.rows)).astype(np.int8)
    w = rng.integers(-128, 128, (cfg.rows, cfg.cols)).astype(np.int8)
    params = pack_records(ChannelParams, bias=rng.integers(-3000, 3000, cfg.cols),
                          multiplier=rng.integers(1 << 22, 1 << 24, cfg.cols), shift=np.full(cfg.cols, 35))
    prow, acc_row = scratchpad.row_bytes(cfg, Buffer.PARAM), scratchpad.row_bytes(cfg, Buffer.ACC)
    assert acc_row > cfg.axi_data_bits // 8  # the case this is about
    text = f"""load buffer=input sram_addr=0 dram_addr=0x1000 rows={m} row_bytes={cfg.rows} dram_stride={cfg.rows}
load buffer=weight sram_addr=0 dram_addr=0x2000 rows={cfg.rows} row_bytes={cfg.cols} dram_stride={cfg.cols}
load buffer=param sram_addr=0 dram_addr=0x3000 rows=1 row_bytes={len(params)} dram_stride={prow} deps=push_next
matmul dtype=int8 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m={m} deps=pop_prev
postproc acc_addr=0 out_addr=0 param_addr=0 m={m} relu=0 zero_point=3 deps=push_next
store buffer=acc sram_addr=1 dram_addr=0x4003 rows=5 row_bytes=7 dram_stride=9 deps=pop_prev
store buffer=acc sram_addr=2 dram_addr=0x4101 rows=3 row_bytes={2 * acc_row + 5} dram_stride={2 * acc_row + 9}
store buffer=acc sram_addr=23 dram_addr=0x41ff rows=1 row_bytes=1 dram_stride=1
store buffer=acc sram_addr=0 dram_addr=0x4280 rows=2 row_bytes={acc_row} dram_stride={acc_row + 2}
store buffer=output sram_addr=3 dram_addr=0x4301 rows=4 row_bytes=3 dram_stride=5
end"""
    segments = (Segment("a", 0x1000, a.tobytes()), Segment("w", 0x2000, w.tobytes()),
                Segment("p", 0x3000, params.tobytes()))
    tensors = (TensorDesc("out", "output", 0x4000, (0x400,), "int8"),)
    run = run_rtl(Program(cfg, tuple(assemble(text)), 0, segments, tensors), "axi_ram", pause=0.3,
                  work_dir=tmp_path, max_cycles=200_000)
    assert run.golden.ok, run.golden.message
    assert run.result["finished"] and run.error is ErrorCode.OK
    want = np.frombuffer(run.golden_tensors["out"], np.uint8)
    acc = (a.astype(np.int64) @ w.astype(np.int64)).astype("<i4").tobytes()
    assert bytes(want[0x101:0x101 + 2 * acc_row + 5]) == acc[2 * acc_row: 4 * acc_row + 5]  # the reference
    got = np.frombuffer(run.tensors["out"], np.uint8)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} bytes differ from the golden model, first at 0x{0x4000 + bad[0]:x}"
