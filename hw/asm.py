"""Assembler and disassembler for the ISA's text form, both derived from the layouts.

One instruction per line: a mnemonic, then ``field=value`` for every field of its layout,
then optionally ``deps=flag|flag``. ``#`` starts a comment. Example::

    load buffer=input sram_addr=0 dram_addr=0x1000 rows=37 row_bytes=16 dram_stride=53 deps=push_next
    matmul dtype=int4 accumulate=0 in_addr=0 w_addr=0 acc_addr=0 m=37 deps=pop_prev
"""

from __future__ import annotations

from typing import Any

from hw.isa import (
    DEP_FLAGS,
    LAYOUTS,
    RESERVED,
    ErrorCode,
    Instruction,
    IsaError,
    Opcode,
    decode,
    encode,
    is_enum_shape,
)

MNEMONICS = {op.name.lower(): op for op in Opcode}
HEX_FIELDS = {"dram_addr"}


def _parse_value(op: Opcode, name: str, text: str) -> Any:
    shape = LAYOUTS[op][name].shape
    if is_enum_shape(shape):
        try:
            return shape[text.upper()]
        except KeyError:
            allowed = ", ".join(m.name.lower() for m in shape)
            raise ValueError(f"{name}={text}: expected one of {allowed}") from None
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{name}={text}: not an integer") from None


def parse_line(line: str) -> Instruction | None:
    """One line of assembly -> Instruction (None for blank/comment lines)."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    mnemonic, *operands = text.split()
    op = MNEMONICS.get(mnemonic.lower())
    if op is None:
        raise ValueError(f"unknown mnemonic {mnemonic!r}; known: {', '.join(MNEMONICS)}")
    deps: frozenset[str] = frozenset()
    args: dict[str, Any] = {}
    for operand in operands:
        name, sep, value = operand.partition("=")
        if not sep or not value:
            raise ValueError(f"operand {operand!r} is not field=value")
        if name == "deps":
            deps = frozenset(value.split("|"))
            bad = deps - set(DEP_FLAGS)
            if bad:
                raise ValueError(f"unknown deps flag(s) {sorted(bad)}; known: {', '.join(DEP_FLAGS)}")
        elif name in args:
            raise ValueError(f"field {name!r} given twice")
        elif name not in LAYOUTS[op].members or name in ("opcode", "deps", RESERVED):
            fields = [n for n, _ in LAYOUTS[op] if n not in ("opcode", "deps", RESERVED)]
            raise ValueError(f"{mnemonic} has no field {name!r}; fields: {', '.join(fields)}")
        else:
            args[name] = _parse_value(op, name, value)
    encode(op, deps, **args)  # range and completeness checks
    return Instruction(op, deps, args)


def assemble(source: str, origin: str = "<asm>") -> list[int]:
    """Assembly text -> instruction words. Errors name the origin and line."""
    words = []
    for lineno, line in enumerate(source.splitlines(), 1):
        try:
            insn = parse_line(line)
        except (ValueError, IsaError) as exc:
            raise IsaError(getattr(exc, "code", ErrorCode.ILLEGAL_OPCODE), f"{origin}:{lineno}: {exc}") from None
        if insn is not None:
            words.append(insn.encode())
    return words


def format_insn(insn: Instruction) -> str:
    parts = [insn.opcode.name.lower()]
    for name, value in insn.args.items():
        if is_enum_shape(type(value)):
            parts.append(f"{name}={value.name.lower()}")
        elif name in HEX_FIELDS:
            parts.append(f"{name}={value:#010x}")
        else:
            parts.append(f"{name}={value}")
    if insn.deps:
        parts.append("deps=" + "|".join(f for f in DEP_FLAGS if f in insn.deps))
    return " ".join(parts)


def disassemble(words: list[int], with_addresses: bool = False) -> str:
    """Instruction words -> assembly text that assembles back to the same words."""
    lines = []
    for pc, word in enumerate(words):
        text = format_insn(decode(word))
        lines.append(f"{text:<110} # {pc:5d}" if with_addresses else text)
    return "\n".join(lines) + "\n"
