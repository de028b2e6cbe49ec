"""The DMA engines in RTL: tests/rtl/tb_dma.py on a 32-bit (tiny), 128-bit (default) and 256-bit
bus, so scratchpad rows come narrower than, as wide as and wider than a beat."""

from pathlib import Path

import pytest
from rtl.dma_top import DmaTop

from hw.config import from_dict
from sim.harness import cocotb_results, cocotb_tests

pytestmark = pytest.mark.rtl  # every test here builds or runs a Verilator model

TB = Path(__file__).resolve().parent / "rtl" / "tb_dma.py"
CONFIGS = ("tiny", "default", "axi256")


@pytest.fixture(scope="module", params=CONFIGS)
def dma_results(request, tiny, default):
    cfg = {"tiny": tiny, "default": default,
           "axi256": from_dict({**default.model_dump(), "name": "axi256", "axi_data_bits": 256})}[request.param]
    return cocotb_results(DmaTop, cfg, "dma_top", "rtl.tb_dma")


@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_dma_rtl(dma_results, case):
    result = dma_results[case]
    assert result.passed, result.message
    assert result.sim_time_ns > 0
