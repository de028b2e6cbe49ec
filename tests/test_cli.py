"""The `lowbit` command line, run as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler.gemm import Requant, gemm_program
from hw.asm import assemble
from hw.isa import ISA_VERSION

REPO = Path(__file__).resolve().parent.parent


def lowbit(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "host.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.rtl
def test_gen_tiny_writes_verilog_and_manifest(tmp_path, tiny):
    out = tmp_path / "out"
    res = lowbit("gen", "--config", "tiny", "-o", out)
    assert res.returncode == 0, res.stderr
    verilog = list(out.glob("*.v"))
    assert len(verilog) == 1 and "module lowbit_top" in verilog[0].read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["isa_version"] == ISA_VERSION
    assert manifest["config_hash"] == tiny.hash and manifest["config"]["rows"] == tiny.rows
    assert manifest["generator"].startswith("lowbit")
    ports = {p["name"]: p for p in manifest["ports"]}
    assert {"clk", "rst", "irq", "s_axil__awaddr", "m_axi__araddr", "m_axi__rdata"} <= set(ports)
    assert ports["m_axi__rdata"]["width"] == tiny.axi_data_bits and ports["m_axi__rdata"]["direction"] == "in"
    for name in ports:
        assert name in verilog[0].read_text()
    from hw.csr import REGISTERS
    assert [r["name"] for r in manifest["csr"]] == [r.name for r in REGISTERS]
    assert {r["name"]: r["reset"] for r in manifest["csr"]}["CONFIG_HASH"] == int(tiny.hash[:8], 16)


def test_gen_unknown_config_is_a_clear_error(tmp_path):
    res = lowbit("gen", "--config", "nope", "-o", tmp_path)
    assert res.returncode != 0
    assert "no configuration named 'nope'" in res.stderr and "tiny" in res.stderr
    assert not list(tmp_path.iterdir())


def test_gen_invalid_config_file_names_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = 0\n")
    res = lowbit("gen", "--config", bad, "-o", tmp_path / "o")
    assert res.returncode != 0 and "rows" in res.stderr and "bad.toml" in res.stderr


@pytest.mark.slow
def test_bench_lists_benchmarks():
    res = lowbit("bench")
    assert res.returncode == 0 and "golden" in res.stdout


@pytest.mark.slow
def test_bench_unknown_name():
    res = lowbit("bench", "nope")
    assert res.returncode != 0 and "no benchmark named 'nope'" in res.stderr


@pytest.mark.slow
def test_disasm_lists_a_program_that_assembles_back(tmp_path, tiny):
    rng = np.random.default_rng(3)
    prog = gemm_program(tiny, rng.integers(-128, 128, (9, 10)), rng.integers(-2, 2, (10, 7)), "int2",
                        Requant(np.zeros(7), np.full(7, 1 << 20), np.full(7, 24)))
    prog.save(tmp_path / "g.lbp")
    res = lowbit("disasm", tmp_path / "g.lbp")
    assert res.returncode == 0, res.stderr
    assert f"ISA {ISA_VERSION}" in res.stdout
    assert tuple(assemble(res.stdout)) == prog.insns
    (tmp_path / "broken.lbp").write_bytes(b"garbage")
    res = lowbit("disasm", tmp_path / "broken.lbp")
    assert res.returncode != 0 and "not a lowbit program" in res.stderr


@pytest.mark.slow
def test_isa_matches_docs():
    res = lowbit("isa")
    assert res.returncode == 0 and res.stdout == (REPO / "docs" / "isa.md").read_text()


@pytest.mark.slow
def test_help_lists_every_command():
    res = lowbit("--help")
    for cmd in ("gen", "config", "isa", "disasm", "compile", "run", "report", "synth", "bench", "demo"):
        assert cmd in res.stdout


def test_bench_tables_flatten_nested_figures():
    from host.cli import flat_rows

    rows = flat_rows({"config": "serial", "runs": {"int4": {"cycles": 10, "bit_exact": True}},
                      "layers": [{"name": "a"}, {"name": "b"}], "shape": [2, 3]})
    assert rows == [("config", "serial"), ("runs.int4.cycles", "10"), ("runs.int4.bit_exact", "True"),
                    ("layers", "2 entries (see the JSON file)"), ("shape", "[2, 3]")]


@pytest.mark.slow
def test_compile_saved_pt2_with_report_and_disasm(tmp_path):
    import torch

    from compiler.examples import example_program
    from compiler.pipeline import compile_model
    from hw.config import load_config
    from hw.program import Program

    ep, _ = example_program("cnn", quantizer="lowbit", weights="int4")
    model = tmp_path / "cnn.pt2"
    torch.export.save(ep, model)
    out, report = tmp_path / "cnn.lbp", tmp_path / "cnn.md"
    res = lowbit("compile", model, "--config", "tiny", "-o", out, "--report", report)
    assert res.returncode == 0, res.stderr
    program = Program.load(out)
    direct, _ = compile_model(ep, load_config("tiny"))
    assert program.insns == direct.insns and program.meta["report"] == direct.meta["report"]
    text = report.read_text()
    for row in program.meta["report"]:
        assert f"| {row['layer']} | {row['kind']} | {row['placement']} |" in text
    assert "conv2d" in text and "accel" in text and "pooling: the array has no pooling unit" in text
    dram = program.meta["dram"]
    assert f"DRAM: {dram['needed']} of {load_config('tiny').dram_bytes} bytes" in res.stdout
    listing = lowbit("disasm", out, "--pc")
    assert listing.returncode == 0, listing.stderr
    assert "# stage 0: host quantize" in listing.stdout and "accelerator" in listing.stdout
    assert listing.stdout.count("matmul dtype=int4") == sum(
        1 for w in program.insns if (w & 0xF) == 3)
    js = lowbit("compile", "mlp", "--config", "tiny", "-o", tmp_path / "mlp.lbp", "--json")
    assert js.returncode == 0, js.stderr
    summary = json.loads(js.stdout)
    assert summary["accelerator_layers"] == 3 and summary["estimated_cycles"] > 0
    assert 0 < summary["dram"]["activations"] <= summary["dram"]["activations_unshared"] < summary["dram"]["needed"]


@pytest.mark.slow
def test_compile_errors_name_the_problem(tmp_path):
    missing = lowbit("compile", tmp_path / "nope.pt2", "-o", tmp_path / "x.lbp")
    assert missing.returncode == 2 and "nope.pt2: no such model file" in missing.stderr
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a zip archive")
    bad = lowbit("compile", junk, "-o", tmp_path / "x.lbp")
    assert bad.returncode == 2 and "junk.pt2: not a torch.export program" in bad.stderr
    unknown = lowbit("compile", "resnet-999", "-o", tmp_path / "x.lbp")
    assert unknown.returncode == 2 and "neither a .pt2 file nor a built-in example" in unknown.stderr


def test_tables_print_whole_when_piped(capsys):
    """Piped to a file or a CI log, a table is not wrapped into cells at 80 columns."""
    from rich.table import Table

    from host.terminal import table_console

    t = Table(title="wide")
    for c in ("layer", "note"):
        t.add_column(c)
    note = "float output (no quantize after the GEMM): the host scales its accumulators " * 3
    t.add_row("encoder.layer.0.attention.self.query", note.strip())
    table_console().print(t)
    lines = capsys.readouterr().out.splitlines()
    assert any("encoder.layer.0.attention.self.query" in line and note.strip() in line for line in lines)
