"""The MATMUL engine and systolic array in RTL against the golden model's MATMUL."""

from pathlib import Path

import pytest

from sim.harness import cocotb_tests, testbench_results
from sim.tb.matmul_top import MatmulTop

TB = Path(__file__).resolve().parent.parent / "sim" / "tb" / "test_matmul.py"


@pytest.fixture(scope="module")
def results(tiny):
    return testbench_results(MatmulTop, tiny, "matmul_top", "sim.tb.test_matmul")


@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_matmul_rtl(results, case):
    assert results[case].passed, results[case].message
