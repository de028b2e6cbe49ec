"""The host runtime: compiled models on the golden and Verilator backends, input validation, the
golden cross-check and its mismatch report, `lowbit run` and `lowbit report`, the real models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_cli import lowbit

from compiler.examples import example, example_program, quantize_pt2e
from compiler.pipeline import compile_model
from compiler.reference import evaluate
from host.devices import GoldenDevice, StageRun
from host.runtime import check_inputs, example_inputs, first_mismatch, run_model
from hw.config import load_config


@pytest.fixture(scope="module")
def mlp_tiny():
    ep, inputs = example_program("mlp", quantizer="lowbit", weights="int4")
    program, graph = compile_model(ep, load_config("tiny"))
    return ep, inputs, program, graph


def test_golden_backend_runs_numpy_or_torch_inputs(mlp_tiny):
    ep, inputs, program, graph = mlp_tiny
    from_torch = run_model(program, list(inputs))
    from_numpy = run_model(program, {"x": inputs[0].numpy()})
    ref = evaluate(graph, {"x": inputs[0].numpy()})
    assert np.array_equal(from_torch.outputs[0], from_numpy.outputs[0])
    assert np.array_equal(from_torch.outputs[0], ref[graph.outputs[0]])
    assert [lr.layer for lr in from_torch.layers] == [op.name for op in graph.ops if op.placement == "accel"]
    assert from_torch.macs == 64 * 128 + 128 * 128 + 128 * 10
    assert from_torch.cycles is None and from_torch.estimated_cycles > 0
    assert all(lr.dma_bytes > 0 for lr in from_torch.layers)


@pytest.mark.rtl
def test_verilator_backend_matches_golden_with_counters(mlp_tiny, tmp_path):
    _, inputs, program, _ = mlp_tiny
    from host.devices import VerilatorDevice

    rtl = run_model(program, list(inputs), VerilatorDevice(program, work_dir=tmp_path))
    golden = run_model(program, list(inputs))
    assert first_mismatch(rtl, golden) is None
    assert rtl.backend == "verilator" and rtl.cycles > 0 and 0 < rtl.utilization <= 1
    for lr in rtl.layers:
        assert lr.cycles == lr.counters["cycles"] and lr.counters["array_busy"] > 0 and lr.counters["insns"] > 0


def test_input_validation_names_the_problem(mlp_tiny):
    _, inputs, program, _ = mlp_tiny
    x = inputs[0].numpy()
    with pytest.raises(ValueError, match=r"takes 1 input\(s\) \(x\), got 2"):
        check_inputs(program, [x, x])
    with pytest.raises(ValueError, match=r"input x: expected shape \(1, 64\), got \(2, 64\)"):
        check_inputs(program, [np.zeros((2, 64), np.float32)])
    with pytest.raises(ValueError, match="input x: expected float32 values, got int64"):
        check_inputs(program, [np.zeros((1, 64), np.int64)])
    with pytest.raises(ValueError, match=r"unknown input\(s\) \['y'\]"):
        check_inputs(program, {"y": x})
    assert np.array_equal(example_inputs(program)[0], x)


class FaultyDevice(GoldenDevice):
    """The golden model with one element of one stage's output changed: a hardware fault."""

    def __init__(self, program, stage_index: int, index: tuple[int, ...]):
        super().__init__(program)
        self.stage_index, self.index, self.seen = stage_index, index, 0

    def run_stage(self, stage: dict, tensors: dict) -> StageRun:
        run = super().run_stage(stage, tensors)
        if self.seen == self.stage_index:
            name = stage["writes"][0]
            bad = run.outputs[name].copy()
            bad[self.index] += 1
            run.outputs[name] = bad
        self.seen += 1
        return run


def test_check_reports_the_first_mismatching_tensor_and_element(mlp_tiny):
    _, inputs, program, graph = mlp_tiny
    golden = run_model(program, list(inputs))
    faulty = run_model(program, list(inputs), FaultyDevice(program, 1, (0, 7)))
    m = first_mismatch(faulty, golden)
    second = [op.output for op in graph.ops if op.placement == "accel"][1]
    assert m is not None and m.tensor == second and m.index == (0, 7)
    assert m.got == m.want + 1 and f"tensor {second} differs at [0, 7]" in str(m)


@pytest.mark.slow
def test_run_and_report_commands(tmp_path, mlp_tiny):
    _, _, program, _ = mlp_tiny
    path = tmp_path / "mlp.lbp"
    program.save(path)
    res = lowbit("run", path, "--check", "--json", "-o", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["backend"] == "golden" and summary["bit_exact"] is True and summary["cycles"] is None
    assert summary["utilization"] is None and summary["estimated_cycles"] > 0
    out = np.load(summary["outputs"][0])
    assert np.array_equal(out, run_model(program, example_inputs(program)).outputs[0])
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64), np.float32))
    res = lowbit("run", path, "--inputs", x, "--json", "-o", tmp_path / "out2")
    assert res.returncode == 0 and json.loads(res.stdout)["outputs"]
    np.save(x, np.zeros((3, 64), np.float32))
    bad = lowbit("run", path, "--inputs", x)
    assert bad.returncode == 2 and "input x: expected shape (1, 64), got (3, 64)" in bad.stderr
    rep = lowbit("report", path, "-o", tmp_path / "report")
    assert rep.returncode == 0, rep.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "![roofline](roofline_tiny.png)" in text and (tmp_path / "report" / "layers_tiny.png").stat().st_size > 0
    assert "| mlp | " in text and "estimate" in text


def test_digits_cnn_keeps_its_accuracy_when_quantized():
    from compiler.models import digits

    ex = example("digits-cnn")
    data = digits.load_digits_split()
    with torch.no_grad():
        float_acc = digits.accuracy(ex.model(data.x_test), data.y_test)
    assert float_acc > 0.93
    ep = quantize_pt2e(ex.model, ex.example_inputs, ex.calibration())
    program, graph = compile_model(ep, load_config("default"))
    run = run_model(program, [data.x_test.numpy()])
    ref = evaluate(graph, {graph.inputs[0]: data.x_test.numpy()})
    assert all(np.array_equal(v, ref[k]) for k, v in run.values.items())
    assert digits.accuracy(run.outputs[0], data.y_test) >= float_acc - 0.02


@pytest.mark.slow
def test_minilm_layer_on_the_serial_array_tracks_the_float_model():
    """The pretrained MiniLM cut to its first layer, W4 mixtures in groups of 64 on the bit-serial
    configuration: bit exact against the reference, embeddings close to the float model's."""
    from compiler.models import minilm
    from compiler.quantizer import quantize_model

    ex = example("minilm")
    ex.model.layers = ex.model.layers[:1]
    with torch.no_grad():
        want = ex.model(*ex.example_inputs).numpy()
    ep = quantize_model(ex.model, ex.example_inputs, ex.calibration(), "mixture4", 64)
    program, graph = compile_model(ep, load_config("serial"))
    assert sum(op.kind == "qgemm" and op.placement == "accel" for op in graph.ops) == 6
    arrays = [x.numpy() for x in ex.example_inputs]
    run = run_model(program, arrays)
    ref = evaluate(graph, dict(zip(graph.inputs, arrays)))
    assert all(np.array_equal(v, ref[k]) for k, v in run.values.items())
    assert minilm.cosine(run.outputs[0], want).min() > 0.95


def test_demo_table_gives_efficiency_next_to_utilization():
    from host.demo import HEADER, TRANSFORMER_WEIGHTS, summary_rows

    rtl = {"golden_accuracy": 0.9, "rtl_accuracy": 0.9, "bit_exact": True, "cycles": 1000, "efficiency": 0.42,
           "utilization": 0.1, "per_second": 1e5}
    t = {v: {"weights": "mixture4", "golden_cosine": 0.97} for v, _ in TRANSFORMER_WEIGHTS}
    summary = {"config": "default", "cnn": {"float_accuracy": 0.95, "int8": rtl, "w4a8": rtl},
               "transformer": {"config": "serial", "group_size": 64, **t}}
    rows = summary_rows(summary)
    i, j = HEADER.index("efficiency"), HEADER.index("utilization")
    assert j == i + 1 and all(len(r) == len(HEADER) for r in rows)
    assert rows[0][i] == "42.0%" and rows[0][j] == "10.0%" and rows[-1][i] == "-"
