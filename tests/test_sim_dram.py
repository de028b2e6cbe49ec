"""The simulation DRAM: lint, configuration, and its cocotb testbench on three parameter sets."""

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError
from rtl.tb_sim_dram import PARAMS_ENV

from hw.config import load_config
from sim.dram import SIM_DRAM_SV, SimDramConfig, verilog_parameters, wrapper_verilog
from sim.harness import build_verilog, cocotb_tests, run_cocotb
from sim.toolchain import toolchain_env, verilator_root

TB = Path(__file__).resolve().parent / "rtl" / "tb_sim_dram.py"
TOP = "sim_dram_test_top"

# narrow: slow and gappy; wide: the default timing on a 128-bit bus; minimal: the shortest
# latencies and one outstanding burst, where responses bypass the empty queues.
PARAM_SETS = {
    "narrow": {"DATA_BITS": 32, "ADDR_BITS": 16, "ID_BITS": 1, "WORDS": 4096, "READ_LATENCY": 5,
               "WRITE_LATENCY": 3, "BEAT_GAP": 1, "MAX_OUTSTANDING": 4},
    "wide": {"DATA_BITS": 128, "ADDR_BITS": 32, "ID_BITS": 1, "WORDS": 4096, "READ_LATENCY": 20,
             "WRITE_LATENCY": 10, "BEAT_GAP": 0, "MAX_OUTSTANDING": 8},
    "minimal": {"DATA_BITS": 64, "ADDR_BITS": 32, "ID_BITS": 1, "WORDS": 3000, "READ_LATENCY": 1,
                "WRITE_LATENCY": 0, "BEAT_GAP": 0, "MAX_OUTSTANDING": 1},
}


def lint_wall(files: list[Path], top: str, *options: str) -> subprocess.CompletedProcess:
    """`verilator --lint-only -Wall` without the Amaranth waivers."""
    cmd = [str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "--top-module", top,
           *options, *map(str, files)]
    return subprocess.run(cmd, env=toolchain_env(), capture_output=True, text=True)


@pytest.fixture(scope="module", params=list(PARAM_SETS))
def dram_results(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(f"sim_dram_{name}")
    wrapper = folder / f"{TOP}.sv"
    wrapper.write_text(wrapper_verilog(TOP, PARAM_SETS[name]))
    model = build_verilog([SIM_DRAM_SV, wrapper], TOP)
    results = run_cocotb(model, "rtl.tb_sim_dram", extra_env={PARAMS_ENV: json.dumps(PARAM_SETS[name])},
                         test_dir=folder / "run")
    return {r.name: r for r in results}


@pytest.mark.rtl
@pytest.mark.parametrize("case", cocotb_tests(TB))
def test_sim_dram_rtl(dram_results, case):
    result = dram_results[case]
    assert result.passed, result.message
    assert result.sim_time_ns > 0


@pytest.mark.rtl
@pytest.mark.parametrize("params", [{}, *PARAM_SETS.values()], ids=["defaults", *PARAM_SETS])
def test_lint_clean(params, tmp_path):
    res = lint_wall([SIM_DRAM_SV], "sim_dram", *(f"-G{k}={v}" for k, v in params.items()))
    assert res.returncode == 0 and not res.stderr, res.stderr
    if params:
        wrapper = tmp_path / f"{TOP}.sv"
        wrapper.write_text(wrapper_verilog(TOP, params))
        res = lint_wall([SIM_DRAM_SV, wrapper], TOP)
        assert res.returncode == 0 and not res.stderr, res.stderr


def test_bad_parameters_fail_elaboration():
    res = lint_wall([SIM_DRAM_SV], "sim_dram", "-GREAD_LATENCY=0")
    assert res.returncode != 0 and "READ_LATENCY must be at least 1" in res.stderr


@pytest.mark.parametrize("preset", ["tiny", "default", "large"])
def test_verilog_parameters_follow_the_config(preset):
    cfg = load_config(preset)
    p = verilog_parameters(cfg, SimDramConfig())
    assert p["DATA_BITS"] == cfg.axi_data_bits and p["ADDR_BITS"] == cfg.axi_addr_bits
    assert p["WORDS"] * p["DATA_BITS"] // 8 == cfg.dram_bytes
    assert (p["READ_LATENCY"], p["WRITE_LATENCY"], p["BEAT_GAP"], p["MAX_OUTSTANDING"]) == (20, 10, 0, 8)


def test_sim_dram_config_validates():
    assert SimDramConfig(read_latency=1, write_latency=0).read_latency == 1
    for bad in ({"read_latency": 0}, {"write_latency": -1}, {"beat_gap": -1}, {"max_outstanding": 0},
                {"latency": 3}):
        with pytest.raises(ValidationError):
            SimDramConfig(**bad)
    assert SimDramConfig(beat_gap=1).bytes_per_cycle(load_config("default")) == 8
