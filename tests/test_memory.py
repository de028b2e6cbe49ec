"""DRAM planning by liveness (compiler/memory.py): the allocator never lets two live tensors share a
byte, models take less DRAM than one buffer per tensor, a padded tensor placed where an earlier
tensor was gets its border rewritten (golden model with activations left in DRAM, and each stage
as a standalone program as the RTL runs it), and a model that does not fit says what it needs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from compiler import memory
from compiler.layout import TensorLayout
from compiler.lowering import CompileError
from compiler.pipeline import compile_model
from compiler.reference import evaluate
from host.devices import GoldenDevice, stage_program
from host.runtime import run_model
from hw.config import from_dict, load_config
from sim.golden import Golden

# ---- the allocator -------------------------------------------------------------------------------


def _random_buffers(rng: np.random.Generator, n: int, stages: int) -> list[memory.Buffer]:
    out = []
    for i in range(n):
        first = int(rng.integers(0, stages))
        last = int(rng.integers(first, min(stages, first + int(rng.integers(1, stages + 1)))))
        size = int(rng.choice([0, int(rng.integers(1, 64)), int(rng.integers(1, 5000)), int(rng.integers(1, 100_000))]))
        out.append(memory.Buffer(f"t{i}", size, first, last))
    return out


@pytest.mark.parametrize("align", [1, 64])
def test_live_buffers_never_overlap(align):
    rng = np.random.default_rng(1234 + align)
    for _ in range(300):
        bufs = _random_buffers(rng, int(rng.integers(1, 40)), int(rng.integers(1, 30)))
        p = memory.plan(bufs, align)
        sized = {b.name: -(-max(b.size, 1) // align) * align for b in bufs}
        for i, a in enumerate(bufs):
            assert p.offsets[a.name] % align == 0
            assert p.offsets[a.name] + sized[a.name] <= p.arena
            for b in bufs[i + 1 :]:
                if a.overlaps(b):
                    lo_a, lo_b = p.offsets[a.name], p.offsets[b.name]
                    assert lo_a + sized[a.name] <= lo_b or lo_b + sized[b.name] <= lo_a, (a, b, p.offsets)
        memory.check(p, bufs)
        assert p.live_peak <= p.arena <= p.total == sum(sized.values())
        # deterministic, whatever order the buffers come in
        assert memory.plan([bufs[k] for k in rng.permutation(len(bufs))], align) == p


def test_dead_space_is_reused():
    # a chain: each tensor is read by the next stage only; a padded one is bigger
    bufs = [memory.Buffer("a", 1000, 0, 1), memory.Buffer("b", 600, 1, 2), memory.Buffer("c", 1000, 2, 3),
            memory.Buffer("d", 300, 3, 4)]
    p = memory.plan(bufs)
    assert p.offsets["c"] == p.offsets["a"]  # a is dead when c is written
    assert p.arena == p.live_peak == 1600 and p.total == 2900
    overlapping = [memory.Buffer("x", 10, 0, 5), memory.Buffer("y", 10, 5, 9)]  # both live at stage 5
    assert memory.plan(overlapping).arena == 20


def test_check_catches_an_overlap():
    bufs = [memory.Buffer("a", 100, 0, 2), memory.Buffer("b", 100, 1, 3)]
    with pytest.raises(AssertionError, match="a and b are live at once"):
        memory.check(memory.MemoryPlan({"a": 0, "b": 50}, 150, 200, 200), bufs)


# ---- compiled models -----------------------------------------------------------------------------


class Chain(nn.Module):
    """Padded 3x3 convolutions one after another: each conv's input lives for two stages, so the
    third conv's (padded) input takes the space of the first's."""

    def __init__(self, depth: int = 4, channels: int = 8):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else channels, channels, 3, padding=1) for i in range(depth))

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x


@pytest.fixture(scope="module")
def chain():
    from compiler.quantizer import quantize_model

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(1, 3, 12, 12, generator=gen),)
    calib = [(torch.randn(1, 3, 12, 12, generator=gen),) for _ in range(3)]
    ep = quantize_model(Chain().eval(), x, calib, weights="int8")
    program, graph = compile_model(ep, load_config("tiny"))
    ref = evaluate(graph, {graph.inputs[0]: x[0].numpy()})
    return x, program, graph, ref


def _layouts(program) -> dict[str, TensorLayout]:
    return {n: TensorLayout.from_json(d) for n, d in program.meta["layouts"].items()}


def _span(lay: TensorLayout) -> tuple[int, int]:
    return lay.addr, lay.addr + lay.nbytes + lay.tail


def test_model_takes_less_dram_than_one_buffer_per_tensor(chain):
    _, program, _, _ = chain
    d = program.meta["dram"]
    end = max(s.dram_addr + len(s.data) for s in program.all_segments)
    assert end <= d["needed"] <= program.config.dram_bytes
    assert d["activations"] == d["activations_live_peak"] < d["activations_unshared"]
    before = d["activations_unshared"] + d["constants"] + d["instructions"]  # the bump allocator's image
    assert d["needed"] < before
    # the constants sit above the activations and never share their space
    lays = _layouts(program)
    assert all(_span(lay)[1] <= d["activations"] for lay in lays.values())
    assert all(s.dram_addr >= d["activations"] for s in program.all_segments)


def _reused_padded(program) -> list[str]:
    """Padded tensors an accelerator stage writes into space an earlier, dead tensor had."""
    lays = _layouts(program)
    stages = program.meta["stages"]
    seen: list[str] = []
    reused = []
    for st in stages:
        if st["kind"] != "accel":
            continue
        for name in st["fills"]:
            lo, hi = _span(lays[name])
            if any(_span(lays[o])[0] < hi and lo < _span(lays[o])[1] for o in seen):
                reused.append(name)
        seen += st["reads"] + st["writes"]
    return reused


def test_reused_padded_tensor_gets_its_border(chain):
    x, program, graph, ref = chain
    reused = _reused_padded(program)
    assert reused, "the chain should put a padded conv input where an earlier tensor was"
    lays = _layouts(program)
    assert all(lays[n].fill != 0 and any(lays[n].pad) for n in reused)
    for resident in (False, True):
        run = run_model(program, list(x), GoldenDevice(program, resident=resident))
        for name, want in ref.items():
            assert np.array_equal(run.values[name], want), (resident, name)
    # the fills matter: with activations left in DRAM and no border rewritten, the result is wrong
    unfilled = type(program)(program.config, program.insns, program.text_addr, program.segments, program.tensors,
                             {**program.meta, "stages": [{**s, "fills": []} for s in program.meta["stages"]]})
    run = run_model(unfilled, list(x), GoldenDevice(unfilled, resident=True))
    assert not all(np.array_equal(run.values[n], ref[n]) for n in graph.outputs)


def test_each_stage_as_a_standalone_program_is_right(chain):
    """What the RTL device runs: one stage, its DRAM image built from the constants, its fills and
    its inputs only."""
    _, program, _, ref = chain
    lays = _layouts(program)
    filled = 0
    for st in program.meta["stages"]:
        if st["kind"] != "accel":
            continue
        prog = stage_program(program, st, ref)
        assert sum(s.name.startswith("fill:") for s in prog.segments) == len(st["fills"])
        filled += len(st["fills"])
        sim = Golden.for_program(prog)
        assert sim.run_program(prog).ok
        for name in st["writes"]:
            lay = lays[name]
            assert np.array_equal(lay.unpack(sim.dram[lay.addr : lay.addr + lay.nbytes]), ref[name]), name
    assert filled


@pytest.mark.parametrize("model, weights", [("cnn", "int4"), ("mlp", "int8"), ("transformer-block", "int8")])
def test_example_models_with_activations_left_in_dram(model, weights):
    """Residual adds, pooling and host ops between accelerator stages: every tensor the golden model
    reads from DRAM is still there, bit exact against the reference."""
    from compiler.examples import example_program

    ep, inputs = example_program(model, quantizer="lowbit", weights=weights)
    program, graph = compile_model(ep, load_config("tiny"))
    ref = evaluate(graph, {n: x.numpy() for n, x in zip(graph.inputs, inputs)})
    run = run_model(program, list(inputs), GoldenDevice(program, resident=True))
    for name, want in ref.items():
        assert np.array_equal(run.values[name], want), name
    d = program.meta["dram"]
    assert d["activations_live_peak"] <= d["activations"] <= d["activations_unshared"]


def test_model_too_large_names_the_bytes_it_needs(chain):
    x, program, _, _ = chain
    from compiler.quantizer import quantize_model

    need = program.meta["dram"]["needed"]
    small = from_dict({**load_config("tiny").model_dump(), "name": "tiny_small", "dram_bytes": 16384})
    assert need > 16384
    ep = quantize_model(Chain().eval(), x, [x], weights="int8")
    with pytest.raises(CompileError) as err:
        compile_model(ep, small)
    msg = str(err.value)
    got = int(re.search(r"the program needs (\d+) bytes of DRAM", msg).group(1))
    assert got > 16384 and "dram_bytes = 16384" in msg and "config 'tiny_small'" in msg
    assert f"raise dram_bytes to at least {1 << (got - 1).bit_length()}" in msg
    assert "lowbit compile --config FILE" in msg
