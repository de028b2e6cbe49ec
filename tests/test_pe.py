"""One bit-parallel processing element in RTL against Python arithmetic."""

from pathlib import Path

import pytest

from hw.array import ParallelPE
from sim.harness import build_amaranth, cocotb_tests, run_cocotb
from sim.tb.common import config_env

pytestmark = pytest.mark.rtl  # every test here builds or runs a Verilator model

TB = Path(__file__).resolve().parent / "rtl" / "tb_pe.py"


def half_pe(cfg) -> ParallelPE:
    """The PE with its multiply in two LUT halves, as the FPGA flow writes it with pe_halves."""
    return ParallelPE(cfg, halves=True)


def booth_pe(cfg) -> ParallelPE:
    """The PE with Booth-encoded weights, as the FPGA flow writes the PEs without a DSP block."""
    return ParallelPE(cfg, booth=True)


@pytest.mark.parametrize("config", ["tiny", "default"])
@pytest.mark.parametrize("form", [ParallelPE, half_pe, booth_pe], ids=["one_product", "lut_halves", "booth"])
@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_pe_rtl(request, config, form, case):
    cfg = request.getfixturevalue(config)
    model = build_amaranth(form, cfg, "parallel_pe")
    [result] = run_cocotb(model, "rtl.tb_pe", testcase=case, extra_env=config_env(cfg))
    assert result.passed, result.message
