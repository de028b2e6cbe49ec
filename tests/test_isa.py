from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.asm import assemble, disassemble, parse_line
from hw.isa import (
    DEP_FLAGS,
    INSN_BITS,
    LAYOUTS,
    RESERVED,
    ErrorCode,
    IsaError,
    Opcode,
    decode,
    encode,
    encode_const,
    is_enum_shape,
    isa_markdown,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def random_fields(op: Opcode, rng) -> dict:
    fields = {}
    for name, f in LAYOUTS[op]:
        if name in ("opcode", "deps", RESERVED):
            continue
        if is_enum_shape(f.shape):
            fields[name] = list(f.shape)[rng.integers(len(f.shape))]
        else:
            lo = -(1 << (f.width - 1)) if f.shape.signed else 0
            fields[name] = int(rng.integers(lo, lo + (1 << f.width), dtype=np.int64))
    return fields


def random_deps(rng) -> frozenset:
    return frozenset(f for f in DEP_FLAGS if rng.random() < 0.5)


def test_every_format_is_exactly_insn_bits():
    for layout in LAYOUTS.values():
        assert layout.size == INSN_BITS


@pytest.mark.parametrize("op", list(Opcode))
def test_encode_decode_text_round_trip(rng, op):
    for _ in range(200):
        fields, deps = random_fields(op, rng), random_deps(rng)
        word = encode(op, deps, **fields)
        assert 0 <= word < 1 << INSN_BITS
        insn = decode(word)
        assert (insn.opcode, insn.deps, insn.args) == (op, deps, fields)
        text = disassemble([word])
        assert assemble(text) == [word]


def test_program_text_round_trip(rng):
    words = [encode(op, random_deps(rng), **random_fields(op, rng))
             for op in rng.choice(list(Opcode), 300)]
    assert assemble(disassemble(words)) == words
    assert assemble(disassemble(words, with_addresses=True)) == words


def test_illegal_words():
    with pytest.raises(IsaError) as e:
        decode(0)
    assert e.value.code is ErrorCode.ILLEGAL_OPCODE
    with pytest.raises(IsaError) as e:
        decode(Opcode.END.value | 1 << (INSN_BITS - 1))
    assert e.value.code is ErrorCode.RESERVED_BITS
    buffer = LAYOUTS[Opcode.LOAD]["buffer"]
    with pytest.raises(IsaError, match="buffer: 7 is not a valid value") as e:
        decode(Opcode.LOAD.value | 7 << buffer.offset)
    assert e.value.code is ErrorCode.RESERVED_BITS


@pytest.mark.parametrize(
    "line, needle",
    [
        ("jump to=3", "unknown mnemonic 'jump'"),
        ("end foo=1", "end has no field 'foo'"),
        ("sync", "missing field 'queue'"),
        ("sync queue=dram", "expected one of load, compute, store"),
        ("sync queue=load deps=push_later", "unknown deps flag"),
        ("matmul dtype=int4 accumulate=2 in_addr=0 w_addr=0 acc_addr=0 m=1", "accumulate = 2: out of range 0..1"),
        ("postproc acc_addr=0 out_addr=0 param_addr=0 m=1 relu=0 zero_point=200", "zero_point = 200"),
        ("end end", "not field=value"),
    ],
)
def test_assembler_errors(line, needle):
    with pytest.raises(IsaError) as e:
        assemble(f"end\n{line}\n", "prog.s")
    assert "prog.s:2:" in str(e.value) and needle in str(e.value)


def test_comments_and_blank_lines():
    assert parse_line("   # nothing") is None
    assert assemble("\nend  # done\n\n") == [encode(Opcode.END)]


def test_rtl_slices_fields_like_the_python_decoder(rng):
    """An Amaranth view over the MATMUL layout reads the same fields as decode()."""
    layout = LAYOUTS[Opcode.MATMUL]
    m = Module()
    word = Signal(INSN_BITS)
    view = data.View(layout, word)
    outs = {n: Signal(layout[n].shape, name=f"o_{n}") for n in ("in_addr", "w_addr", "acc_addr", "m")}
    m.d.comb += [outs[n].eq(view[n]) for n in outs]
    words = [encode(Opcode.MATMUL, random_deps(rng), **random_fields(Opcode.MATMUL, rng)) for _ in range(20)]
    seen = []

    async def bench(ctx):
        for w in words:
            ctx.set(word, w)
            seen.append({n: ctx.get(s) for n, s in outs.items()})

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for w, got in zip(words, seen):
        insn = decode(w)
        assert got == {n: insn.args[n] for n in outs}


def test_docs_isa_is_generated_from_the_layouts():
    assert (DOCS / "isa.md").read_text() == isa_markdown(), "regenerate with `lowbit isa > docs/isa.md`"


@pytest.mark.parametrize("op", list(LAYOUTS), ids=lambda o: o.name)
def test_fast_encoder_equals_layout_const(rng, op):
    for _ in range(50):
        fields, deps = random_fields(op, rng), random_deps(rng)
        assert encode(op, deps, **fields) == encode_const(op, deps, **fields)
    with pytest.raises(IsaError, match="no field 'nope'"):
        encode(op, (), nope=1)
    with pytest.raises(IsaError, match="unknown dependency"):
        encode(op, {"push_sideways"})
