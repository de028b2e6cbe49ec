"""The MATMUL engine and systolic array in RTL against the golden model's MATMUL."""

from pathlib import Path

import pytest

from sim.harness import build_amaranth, cocotb_tests, run_cocotb
from sim.tb.common import config_env
from sim.tb.matmul_top import MatmulTop

TB = Path(__file__).resolve().parent.parent / "sim" / "tb" / "test_matmul.py"


@pytest.fixture(scope="module")
def results(tiny):
    model = build_amaranth(MatmulTop, tiny, "matmul_top")
    return {r.name: r for r in run_cocotb(model, "sim.tb.test_matmul", extra_env=config_env(tiny))}


@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_matmul_rtl(results, case):
    assert results[case].passed, results[case].message
