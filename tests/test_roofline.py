"""The roofline of every accelerator layer: compute and memory bounds next to the cycles."""

import json

import numpy as np
import pytest
from test_cli import lowbit

from compiler.examples import conv_graph, gemm_graph
from compiler.pipeline import compile_graph
from hw.config import load_config


@pytest.mark.parametrize("m, k, n, weights, int8_out", [(64, 256, 96, "int4", True), (1, 384, 1536, "int4", True),
                                                        (300, 40, 20, "int8", False)])
def test_gemm_bound_is_the_larger_of_compute_and_memory(m, k, n, weights, int8_out):
    cfg = load_config("default")
    program = compile_graph(gemm_graph(m, k, n, weights, int8_out), cfg)
    [row] = [r for r in program.meta["report"] if r["placement"] == "accel"]
    bits = {"int4": 4, "int8": 8}[weights]
    compute = m * k * n / 256
    nbytes = m * k + k * n * bits / 8 + n * 8 + m * n * (1 if int8_out else 4)
    memory = nbytes / 16
    assert row["bound_cycles"] == pytest.approx(max(compute, memory), abs=0.05)
    assert row["bound"] == ("compute" if compute >= memory else "memory")
    assert row["efficiency"] == pytest.approx(row["bound_cycles"] / row["cycles"], abs=1e-4)
    assert 0 < row["efficiency"] <= 1  # no schedule beats the roofline, the cost model's included


def test_serial_compute_roof_is_divided_by_its_planes():
    """A 4-bit integer weight takes 4 bit planes on the bit-serial PE (the magnitude of -8), INT8 8:
    the serial compute roof is the parallel peak over the planes."""
    cfg = load_config("serial")
    for weights, planes in (("int4", 4), ("int8", 8)):
        program = compile_graph(gemm_graph(256, 256, 256, weights), cfg)
        [row] = [r for r in program.meta["report"] if r["placement"] == "accel"]
        assert row["bound"] == "compute"
        assert row["bound_cycles"] == pytest.approx(256**3 * planes / (cfg.rows * cfg.cols), abs=0.05)


def test_grouped_conv_jobs_share_their_layer_bytes():
    cfg = load_config("default")
    g = conv_graph(np.random.default_rng(0), cin=48, cout=48, h=9, w=9, k=1, pad=0, groups=3, weights="int8")
    rows = [r for r in compile_graph(g, cfg, im2col="rows").meta["report"] if r["placement"] == "accel"]
    nbytes = 48 * 81 + 48 * 16 + 48 * 8 + 48 * 81  # input, weights, params, output; memory-bound
    assert len(rows) > 1 and {r["bound"] for r in rows} == {"memory"}
    assert sum(r["bound_cycles"] for r in rows) == pytest.approx(nbytes / 16, rel=1e-3)


def test_run_json_gives_bound_and_efficiency(tmp_path):
    prog = tmp_path / "mlp.lbp"
    assert lowbit("compile", "mlp", "--config", "tiny", "-o", prog).returncode == 0
    res = lowbit("run", prog, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["efficiency"] is None and 0 < out["estimated_efficiency"] <= 1  # golden: no measured cycles
    assert out["bound_cycles"] == pytest.approx(sum(lr["bound_cycles"] for lr in out["layers"]), abs=0.2)
    for lr in out["layers"]:
        assert lr["bound_cycles"] > 0 and lr["efficiency"] is None
        assert lr["estimated_efficiency"] == pytest.approx(lr["bound_cycles"] / lr["estimated_cycles"], abs=1e-4)


def test_measured_efficiency_uses_the_rtl_cycles():
    from host.runtime import LayerRun

    lr = LayerRun("fc", "", 1000, 50, 10, cycles=80, bound_cycles=40.0)
    assert lr.efficiency == 0.5 and lr.estimated_efficiency == 0.8
