"""The CSR bank: the register table (pure Python), docs/csr.md in sync, and the RTL under cocotb."""

import json
from pathlib import Path

import pytest

from hw.axi import AXIL_DATA_BITS, CSR_ADDR_BITS
from hw.csr import COUNTERS, REG, REGISTERS, Access, CsrBank, counter_register, csr_map, csr_markdown
from hw.emit import to_verilog
from hw.isa import ErrorCode
from sim.harness import cocotb_results, cocotb_tests
from sim.toolchain import lint

REPO = Path(__file__).resolve().parent.parent
TB = REPO / "tests" / "rtl" / "tb_csr.py"
WORD = AXIL_DATA_BITS // 8


def test_offsets_are_distinct_aligned_and_in_the_window():
    offsets = [r.offset for r in REGISTERS]
    assert len(set(offsets)) == len(offsets)
    assert len(REG) == len(REGISTERS), "register names are unique"
    assert all(o % WORD == 0 and 0 <= o < 1 << CSR_ADDR_BITS for o in offsets)


def test_fields_fit_and_do_not_overlap():
    for r in REGISTERS:
        assert r.layout.size == AXIL_DATA_BITS, r.name
        masks = [r.mask(f.name) for f in r.fields]
        assert sum(masks) == r.mask(*(f.name for f in r.fields)), f"{r.name}: fields overlap"
        assert r.writable_mask == 0 or r.access is Access.RW, r.name


def test_counters_follow_one_another_in_order():
    offsets = [REG[counter_register(c)].offset for c in COUNTERS]
    assert offsets == list(range(offsets[0], offsets[0] + WORD * len(COUNTERS), WORD))
    assert all(REG[counter_register(c)].access is Access.RO for c in COUNTERS)


def test_every_register_and_field_is_documented():
    doc = csr_markdown()
    for r in REGISTERS:
        assert r.description.strip(), r.name
        assert all(f.description.strip() for f in r.fields), r.name
        assert f"| {r.name} |" in doc
        assert all(f"| {f.name.upper()} |" in doc for f in r.fields), r.name
    assert all(f"| {c.name} |" in doc for c in ErrorCode)


def test_csr_map_is_json_and_resolves_constants_with_a_config(tiny):
    plain, resolved = csr_map(), csr_map(tiny)
    json.dumps(resolved)
    assert [e["name"] for e in plain] == [r.name for r in REGISTERS]
    assert {e["name"] for e in plain if e["reset"] is None} == {"HW_DIMS", "CONFIG_HASH"}
    assert all(isinstance(e["reset"], int) for e in resolved)
    by_name = {e["name"]: e for e in resolved}
    dims = {f["name"]: by_name["HW_DIMS"]["reset"] >> f["lsb"] & (1 << f["width"]) - 1
            for f in by_name["HW_DIMS"]["fields"]}
    assert dims == {"rows": tiny.rows, "cols": tiny.cols, "act_bits": tiny.act_bits, "acc_bits": tiny.acc_bits}


def test_docs_csr_is_generated_from_the_table():
    assert (REPO / "docs" / "csr.md").read_text() == csr_markdown(), (
        "regenerate with `python -c \"from hw.csr import csr_markdown; print(csr_markdown(), end='')\" > docs/csr.md`")


@pytest.mark.rtl
def test_verilog_lints_clean(tiny, tmp_path):
    path = tmp_path / "csr_bank.v"
    path.write_text(to_verilog(CsrBank(tiny), "csr_bank"))
    lint([path], "csr_bank")


@pytest.fixture(scope="module")
def csr_results(tiny):
    return cocotb_results(CsrBank, tiny, "csr_bank", "rtl.tb_csr")


@pytest.mark.rtl
@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_csr_rtl(csr_results, case):
    result = csr_results[case]
    assert result.passed, result.message
    assert result.sim_time_ns > 0
