"""The instruction set: every format is one ``amaranth.lib.data.StructLayout``.

The RTL decoder slices instructions with these layouts, and the Python encoder, decoder,
assembler and golden model read the same layouts, so no bit offset is written twice.
Instructions are ``INSN_BITS`` wide, little-endian in DRAM, fields LSB first.

Execution is decoupled (see docs/architecture.md): LOAD goes to the load queue, MATMUL and
POSTPROC to the compute queue, STORE to the store queue, SYNC to the queue it names. The
``deps`` flags of each instruction pop a token from a neighbouring queue before it starts and
push one after it finishes; that is the only ordering between queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth import Shape, signed, unsigned
from amaranth.lib import data, enum

from hw.datatypes import DATATYPES
from hw.records import field_range

ISA_VERSION = "1.1"
INSN_BITS = 128
INSN_BYTES = INSN_BITS // 8


class Opcode(enum.Enum, shape=4):
    """Zero is not an opcode, so that zeroed memory faults instead of running."""

    LOAD = 1
    STORE = 2
    MATMUL = 3
    POSTPROC = 4
    SYNC = 5
    END = 6


class Buffer(enum.Enum, shape=3):
    INPUT = 0
    WEIGHT = 1
    PARAM = 2
    ACC = 3
    OUTPUT = 4


class Queue(enum.Enum, shape=2):
    LOAD = 0
    COMPUTE = 1
    STORE = 2


class ErrorCode(enum.Enum, shape=4):
    """Why a run halted; the hardware's error CSR and the golden model report the same code."""

    OK = 0
    ILLEGAL_OPCODE = 1
    RESERVED_BITS = 2
    BAD_BUFFER = 3
    SRAM_RANGE = 4
    DRAM_RANGE = 5
    BAD_LENGTH = 6
    BAD_DTYPE = 7
    BAD_DEPS = 8
    PROGRAM_OVERRUN = 9
    DEADLOCK = 10
    BUS_ERROR = 11


ERROR_MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.OK: "no error: the run reached END",
    ErrorCode.ILLEGAL_OPCODE: "opcode not in Opcode",
    ErrorCode.RESERVED_BITS: "a reserved field is not zero, or an enum field holds no member",
    ErrorCode.BAD_BUFFER: "LOAD into / STORE from a buffer that does not allow it",
    ErrorCode.SRAM_RANGE: "a scratchpad access past the buffer's last row",
    ErrorCode.DRAM_RANGE: "a DRAM access past dram_bytes (instruction fetch included)",
    ErrorCode.BAD_LENGTH: "rows, row_bytes or m is zero",
    ErrorCode.BAD_DTYPE: "MATMUL weight datatype not in the configuration",
    ErrorCode.BAD_DEPS: "a dependency flag towards a queue that does not exist (e.g. LOAD pop_prev)",
    ErrorCode.PROGRAM_OVERRUN: "the program ran past its length without END",
    ErrorCode.DEADLOCK: "no queue can make progress (waiting on tokens nobody will push)",
    ErrorCode.BUS_ERROR: "the memory answered a fetch, LOAD or STORE with SLVERR or DECERR (hardware only)",
}


def _weight_type_enum() -> type[enum.Enum]:
    """Datatype codes as an enum shape, generated from the datatype table."""
    ns = enum.EnumType.__prepare__("WeightType", (enum.Enum,), shape=5)
    for name, dt in DATATYPES.items():
        ns[name.upper()] = dt.code
    return enum.EnumType("WeightType", (enum.Enum,), ns, shape=5)


WeightType = _weight_type_enum()

Deps = data.StructLayout(
    {"pop_prev": unsigned(1), "pop_next": unsigned(1), "push_prev": unsigned(1), "push_next": unsigned(1)}
)
DEP_FLAGS = tuple(name for name, _ in Deps)

RESERVED = "_reserved"


def _insn_layout(fields: dict[str, Any]) -> data.StructLayout:
    """Header (opcode, deps), then the fields, then reserved bits up to INSN_BITS."""
    layout = {"opcode": Opcode, "deps": Deps, **fields}
    used = data.StructLayout(layout).size
    assert used <= INSN_BITS, f"instruction fields take {used} > {INSN_BITS} bits"
    if used < INSN_BITS:
        layout[RESERVED] = unsigned(INSN_BITS - used)
    return data.StructLayout(layout)


Header = data.StructLayout({"opcode": Opcode, "deps": Deps})

_MEM_FIELDS = {
    "buffer": Buffer,
    "sram_addr": unsigned(16),  # first scratchpad row
    "dram_addr": unsigned(32),  # byte address of the first DRAM row
    "rows": unsigned(16),  # DRAM rows moved
    "row_bytes": unsigned(16),  # bytes per DRAM row
    "dram_stride": unsigned(32),  # bytes between DRAM row starts
}

LAYOUTS: dict[Opcode, data.StructLayout] = {
    Opcode.LOAD: _insn_layout(_MEM_FIELDS),
    Opcode.STORE: _insn_layout(_MEM_FIELDS),
    Opcode.MATMUL: _insn_layout(
        {
            "dtype": WeightType,  # weight datatype of the tile
            "accumulate": unsigned(1),  # 1: acc += product, 0: acc = product
            "in_addr": unsigned(16),  # first input row (one activation vector of `rows` bytes)
            "w_addr": unsigned(16),  # first weight row of the packed rows x cols tile
            "acc_addr": unsigned(16),  # first accumulator row
            "m": unsigned(16),  # activation vectors streamed through the array
            # 1: per-column datatype tags and scales from the GroupParams row at group_addr of
            # PARAM (weights of a quantization group); `dtype` is then the storage width
            "grouped": unsigned(1),
            "group_addr": unsigned(16),
        }
    ),
    Opcode.POSTPROC: _insn_layout(
        {
            "acc_addr": unsigned(16),
            "out_addr": unsigned(16),
            "param_addr": unsigned(16),  # parameter row: one ChannelParams per column
            "m": unsigned(16),
            "relu": unsigned(1),
            "zero_point": signed(8),  # output zero point, added after the rounding shift
        }
    ),
    Opcode.SYNC: _insn_layout({"queue": Queue}),
    Opcode.END: _insn_layout({}),
}

# The queue that executes each opcode (SYNC names its queue; END has none).
QUEUE_OF = {
    Opcode.LOAD: Queue.LOAD,
    Opcode.MATMUL: Queue.COMPUTE,
    Opcode.POSTPROC: Queue.COMPUTE,
    Opcode.STORE: Queue.STORE,
}

# The queue topology: a chain load - compute - store. A queue's ``*_prev`` dependency flags
# talk to PREV_QUEUE[q], its ``*_next`` flags to NEXT_QUEUE[q] (None: that flag is BAD_DEPS).
PREV_QUEUE: dict[Queue, Queue | None] = {Queue.LOAD: None, Queue.COMPUTE: Queue.LOAD, Queue.STORE: Queue.COMPUTE}
NEXT_QUEUE: dict[Queue, Queue | None] = {Queue.LOAD: Queue.COMPUTE, Queue.COMPUTE: Queue.STORE, Queue.STORE: None}
# one token channel (source, destination) each way between neighbours
TOKEN_CHANNELS: tuple[tuple[Queue, Queue], ...] = tuple(
    (q, nb) for q in Queue for nb in (PREV_QUEUE[q], NEXT_QUEUE[q]) if nb is not None
)

LOADABLE = (Buffer.INPUT, Buffer.WEIGHT, Buffer.PARAM)
STORABLE = (Buffer.OUTPUT, Buffer.ACC)

BUFFER_SIZE_FIELD = {
    Buffer.INPUT: "input_buf_bytes",
    Buffer.WEIGHT: "weight_buf_bytes",
    Buffer.PARAM: "param_buf_bytes",
    Buffer.ACC: "acc_buf_bytes",
    Buffer.OUTPUT: "out_buf_bytes",
}

# Per-output-channel post-processing parameters, one entry per array column in a PARAM row.
ChannelParams = data.StructLayout(
    {
        "bias": signed(32),
        "multiplier": unsigned(24),
        "shift": unsigned(6),
        RESERVED: unsigned(2),
    }
)
PARAM_BYTES = ChannelParams.size // 8

# Per-column group parameters of a grouped MATMUL, one entry per array column in a PARAM row
# (the same row size as ChannelParams): the datatype the column's codes are read in, the
# group's unsigned fixed-point scale and its zero point (docs/numerics.md).
GroupParams = data.StructLayout(
    {
        "dtype": WeightType,
        "scale": unsigned(16),
        "zero_point": unsigned(8),  # subtracted from every value of the group (asymmetric uintN)
        RESERVED: unsigned(ChannelParams.size - 24 - Shape.cast(WeightType).width),
    }
)
assert GroupParams.size == ChannelParams.size

# fields an assembly line or encode() may leave out; they are then 0
OPTIONAL_FIELDS = {Opcode.MATMUL: ("grouped", "group_addr")}


class IsaError(ValueError):
    """An instruction word or text that is not a legal instruction."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code


def is_enum_shape(shape: Any) -> bool:
    return isinstance(shape, type) and issubclass(shape, enum.Enum)


@dataclass(frozen=True)
class Instruction:
    """A decoded instruction: opcode, dependency flags and the opcode's own fields."""

    opcode: Opcode
    deps: frozenset[str]
    args: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.args[name]
        except KeyError:
            raise AttributeError(f"{self.opcode.name} has no field {name!r}") from None

    @property
    def queue(self) -> Queue | None:
        """The queue that executes this instruction (None for END)."""
        return self.args["queue"] if self.opcode is Opcode.SYNC else QUEUE_OF.get(self.opcode)

    def encode(self) -> int:
        return encode(self.opcode, self.deps, **self.args)


def _field_encoders(layout: data.StructLayout) -> dict[str, tuple[int, int, Any]]:
    """name -> (offset, width, shape) of each field, read off the layout once per opcode."""
    return {name: (f.offset, f.width, f.shape) for name, f in layout if name not in ("opcode", "deps", RESERVED)}


_ENCODERS = {op: _field_encoders(layout) for op, layout in LAYOUTS.items()}
_RANGES = {op: {n: field_range(sh) for n, (_, _, sh) in enc.items() if not is_enum_shape(sh)}
           for op, enc in _ENCODERS.items()}
_DEPS_OFFSET = Header["deps"].offset


def encode(opcode: Opcode, deps: frozenset[str] | set[str] | tuple = (), **fields: Any) -> int:
    """Instruction fields -> INSN_BITS-wide integer, with every value range-checked.

    The word is assembled from the layout's field offsets (the compiler encodes every
    instruction of a model); ``encode_const`` builds the same word through ``layout.const``."""
    unknown = set(deps) - set(DEP_FLAGS)
    if unknown:
        raise IsaError(ErrorCode.RESERVED_BITS, f"unknown dependency flag(s) {sorted(unknown)}")
    word = opcode.value << Header["opcode"].offset
    for flag in deps:
        word |= 1 << (_DEPS_OFFSET + Deps[flag].offset)
    enc = _ENCODERS[opcode]
    for name in fields:
        if name not in enc:
            raise IsaError(ErrorCode.RESERVED_BITS, f"{opcode.name.lower()} has no field {name!r}")
    for name, (offset, width, shape) in enc.items():
        if name not in fields:
            if name in OPTIONAL_FIELDS.get(opcode, ()):
                continue
            raise IsaError(ErrorCode.RESERVED_BITS, f"{opcode.name.lower()}: missing field {name!r}")
        value = fields[name]
        if is_enum_shape(shape):
            if not isinstance(value, shape):
                raise IsaError(
                    ErrorCode.RESERVED_BITS, f"{opcode.name.lower()}.{name}: {value!r} is not a {shape.__name__}"
                )
            value = value.value
        else:
            lo, hi = _RANGES[opcode][name]
            if not isinstance(value, int) or not lo <= value <= hi:
                raise IsaError(
                    ErrorCode.RESERVED_BITS,
                    f"{opcode.name.lower()}.{name} = {value!r}: out of range {lo}..{hi}",
                )
        word |= (value & ((1 << width) - 1)) << offset
    return word


def encode_const(opcode: Opcode, deps: frozenset[str] | set[str] | tuple = (), **fields: Any) -> int:
    """``encode`` through ``layout.const`` (the slow, obviously-right path; tests compare the two)."""
    layout = LAYOUTS[opcode]
    unknown = set(deps) - set(DEP_FLAGS)
    if unknown:
        raise IsaError(ErrorCode.RESERVED_BITS, f"unknown dependency flag(s) {sorted(unknown)}")
    init: dict[str, Any] = {"opcode": opcode, "deps": {f: int(f in deps) for f in DEP_FLAGS}}
    names = [n for n, _ in layout if n not in ("opcode", "deps", RESERVED)]
    for name in fields:
        if name not in names:
            raise IsaError(ErrorCode.RESERVED_BITS, f"{opcode.name.lower()} has no field {name!r}")
    for name in names:
        if name not in fields and name in OPTIONAL_FIELDS.get(opcode, ()):
            fields = {**fields, name: 0}
        if name not in fields:
            raise IsaError(ErrorCode.RESERVED_BITS, f"{opcode.name.lower()}: missing field {name!r}")
        shape = layout[name].shape
        value = fields[name]
        if is_enum_shape(shape):
            if not isinstance(value, shape):
                raise IsaError(
                    ErrorCode.RESERVED_BITS, f"{opcode.name.lower()}.{name}: {value!r} is not a {shape.__name__}"
                )
        else:
            lo, hi = field_range(shape)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise IsaError(
                    ErrorCode.RESERVED_BITS,
                    f"{opcode.name.lower()}.{name} = {value!r}: out of range {lo}..{hi}",
                )
        init[name] = value
    return layout.const(init).as_value().value


def _field_decoders(layout: data.StructLayout) -> list[tuple[str, int, int, Any]]:
    """(name, offset, width, converter) per field, read off the layout once per opcode."""
    out = []
    for name, f in layout:
        if name in ("opcode", "deps"):
            continue
        if is_enum_shape(f.shape):
            conv = f.shape
        elif Shape.cast(f.shape).signed:
            half = 1 << (f.width - 1)
            conv = lambda raw, half=half: raw - 2 * half if raw >= half else raw  # noqa: E731
        else:
            conv = int
        out.append((name, f.offset, f.width, conv))
    return out


_DECODERS = {op: _field_decoders(layout) for op, layout in LAYOUTS.items()}


def decode(word: int) -> Instruction:
    """INSN_BITS-wide integer -> Instruction; illegal words raise IsaError with its code."""
    raw_op = word & ((1 << Header["opcode"].width) - 1)
    try:
        opcode = Opcode(raw_op)
    except ValueError:
        raise IsaError(ErrorCode.ILLEGAL_OPCODE, f"illegal opcode {raw_op}") from None
    args = {}
    for name, offset, width, conv in _DECODERS[opcode]:
        raw = (word >> offset) & ((1 << width) - 1)
        try:
            args[name] = conv(raw)
        except ValueError:
            raise IsaError(
                ErrorCode.RESERVED_BITS, f"{opcode.name.lower()}.{name}: {raw} is not a valid value"
            ) from None
    if args.pop(RESERVED, 0):
        raise IsaError(ErrorCode.RESERVED_BITS, f"{opcode.name.lower()}: reserved bits set")
    deps = frozenset(f for f in DEP_FLAGS if (word >> (_DEPS_OFFSET + Deps[f].offset)) & 1)
    return Instruction(opcode, deps, args)


def to_bytes(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(INSN_BYTES, "little") for w in words)


def from_bytes(blob: bytes) -> list[int]:
    if len(blob) % INSN_BYTES:
        raise IsaError(ErrorCode.PROGRAM_OVERRUN, f"{len(blob)} bytes is not a whole number of instructions")
    return [int.from_bytes(blob[i : i + INSN_BYTES], "little") for i in range(0, len(blob), INSN_BYTES)]


def layout_table(layout: data.StructLayout) -> list[tuple[str, int, int, str]]:
    """(field, lsb, width, kind) rows for documentation and manifests."""
    rows = []
    for name, f in layout:
        if isinstance(f.shape, data.Layout):
            kind = "flags"
        elif is_enum_shape(f.shape):
            kind = f.shape.__name__
        else:
            kind = "signed" if Shape.cast(f.shape).signed else "unsigned"
        rows.append((name, f.offset, f.width, kind))
    return rows


def isa_markdown() -> str:
    """The instruction formats as Markdown (docs/isa.md is this text)."""
    out = [f"# lowbit ISA {ISA_VERSION}", ""]
    out += [f"Instructions are {INSN_BITS} bits, stored little-endian; fields are listed LSB first.",
            "Generated from `hw/isa.py` by `lowbit isa`; do not edit by hand.", ""]
    for op, layout in LAYOUTS.items():
        out += [f"## {op.name} (opcode {op.value})", "", "| field | bits | width | kind |", "|---|---|---|---|"]
        for name, lsb, width, kind in layout_table(layout):
            out.append(f"| {name} | {lsb}..{lsb + width - 1} | {width} | {kind} |")
        out.append("")
    out += ["## Dependency flags (`deps`)", "", "| flag | bit |", "|---|---|"]
    out += [f"| {n} | {f.offset} |" for n, f in Deps] + [""]
    out += [f"## ChannelParams ({ChannelParams.size} bits per output channel in a PARAM row)", "",
            "| field | bits | width | kind |", "|---|---|---|---|"]
    out += [f"| {n} | {lsb}..{lsb + w - 1} | {w} | {k} |" for n, lsb, w, k in layout_table(ChannelParams)]
    out += ["", f"## GroupParams ({GroupParams.size} bits per column in a PARAM row, grouped MATMUL)", "",
            "| field | bits | width | kind |", "|---|---|---|---|"]
    out += [f"| {n} | {lsb}..{lsb + w - 1} | {w} | {k} |" for n, lsb, w, k in layout_table(GroupParams)]
    out += ["", "## Enumerations", ""]
    for e in (Buffer, Queue, WeightType, ErrorCode):
        out.append(f"- **{e.__name__}**: " + ", ".join(f"{m.name.lower()} = {m.value}" for m in e))
    return "\n".join(out) + "\n"
