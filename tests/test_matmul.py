"""The MATMUL engine and systolic array in RTL against the golden model's MATMUL."""

from pathlib import Path

import pytest
from rtl.matmul_top import MatmulTop, mixed_pes

from sim.harness import cocotb_results, cocotb_tests

pytestmark = pytest.mark.rtl  # every test here builds or runs a Verilator model

TB = Path(__file__).resolve().parent / "rtl" / "tb_matmul.py"


@pytest.fixture(scope="module", params=["tiny", "tiny_mixed_pes", "tiny_serial"])
def results(request):
    """The bit-parallel array (and with its PEs in the three forms, one product, LUT halves and
    Booth, as the FPGA flow may write them), and the bit-serial one with every datatype, grouped
    tiles (per-column datatypes and scales) and ungrouped ones."""
    if request.param == "tiny_mixed_pes":
        return cocotb_results(mixed_pes, request.getfixturevalue("tiny"), "matmul_top", "rtl.tb_matmul")
    cfg = request.getfixturevalue(request.param)
    return cocotb_results(MatmulTop, cfg, "matmul_top", "rtl.tb_matmul")


@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_matmul_rtl(results, case):
    assert results[case].passed, results[case].message
