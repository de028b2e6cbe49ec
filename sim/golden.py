"""ISA-level golden model: a NumPy interpreter over a DRAM image and the scratchpads.

It runs the decoupled load/compute/store queues with their dependency tokens, so a program
whose tokens do not order its buffer accesses gives different results under different
schedules (``schedule=``) and a program that can never finish ends in DEADLOCK, as the
hardware's watchdog would. Arithmetic comes from ``hw.numerics`` and is bit exact by design.
Every executed instruction's work (MACs, DRAM bytes, scratchpad rows) is recorded.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from hw.config import AccelConfig
from hw.datatypes import DATATYPES, Datatype, by_code, unpack
from hw.isa import (
    BUFFER_SIZE_FIELD,
    INSN_BYTES,
    LOADABLE,
    NEXT_QUEUE,
    PREV_QUEUE,
    STORABLE,
    Buffer,
    ChannelParams,
    ErrorCode,
    GroupParams,
    Instruction,
    IsaError,
    Opcode,
    Queue,
    decode,
)
from hw.numerics import matmul_tile, requantize, wrap
from hw.program import Program
from hw.records import unpack_records

# Neighbours of each queue in the load -> compute -> store pipeline (hw/isa.py).
PREV, NEXT = PREV_QUEUE, NEXT_QUEUE

SCHEDULES = {
    # each round drains the first queue as far as tokens allow, then the next
    "load-first": (Queue.LOAD, Queue.COMPUTE, Queue.STORE),
    "store-first": (Queue.STORE, Queue.COMPUTE, Queue.LOAD),
}


class ExecError(RuntimeError):
    def __init__(self, code: ErrorCode, pc: int | None, message: str):
        super().__init__(f"{code.name} at pc {pc}: {message}" if pc is not None else message)
        self.code, self.pc = code, pc


@dataclass(frozen=True)
class InsnWork:
    """What one executed instruction did."""

    pc: int
    opcode: Opcode
    macs: int = 0
    dram_bytes: int = 0
    sram_rows: int = 0


@dataclass
class RunResult:
    status: ErrorCode
    pc: int | None
    message: str
    trace: list[InsnWork] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is ErrorCode.OK

    def raise_for_status(self) -> RunResult:
        if not self.ok:
            raise ExecError(self.status, self.pc, self.message)
        return self

    @property
    def counts(self) -> Counter:
        return Counter(w.opcode.name.lower() for w in self.trace)

    @property
    def macs(self) -> int:
        return sum(w.macs for w in self.trace)

    @property
    def load_bytes(self) -> int:
        return sum(w.dram_bytes for w in self.trace if w.opcode is Opcode.LOAD)

    @property
    def store_bytes(self) -> int:
        return sum(w.dram_bytes for w in self.trace if w.opcode is Opcode.STORE)


class Golden:
    """The accelerator's architectural state and an interpreter for its instructions."""

    def __init__(self, config: AccelConfig, dram: np.ndarray | None = None):
        self.cfg = config
        self.dram = np.zeros(config.dram_bytes, np.uint8) if dram is None else np.array(dram, np.uint8)
        if self.dram.size != config.dram_bytes:
            raise ValueError(f"DRAM image has {self.dram.size} bytes, config says {config.dram_bytes}")
        self.sram = {
            b: np.zeros((config.buffer_depth(f), config.buffer_row_bytes(f)), np.uint8)
            for b, f in BUFFER_SIZE_FIELD.items()
            if b is not Buffer.ACC
        }
        self.acc = np.zeros((config.buffer_depth("acc_buf_bytes"), config.cols), np.int64)
        self._handlers = {
            Opcode.LOAD: self._load,
            Opcode.STORE: self._store,
            Opcode.MATMUL: self._matmul,
            Opcode.POSTPROC: self._postproc,
            Opcode.SYNC: lambda pc, insn: InsnWork(pc, insn.opcode),
        }

    @classmethod
    def for_program(cls, program: Program) -> Golden:
        return cls(program.config, program.dram_image())

    def run_program(self, program: Program, schedule: str = "load-first") -> RunResult:
        return self.run(program.text_addr, len(program.insns), schedule)

    def read(self, addr: int, shape: tuple[int, ...], dtype: str = "int8") -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.dram[addr : addr + n].view(dtype).reshape(shape).copy()

    # ---- scheduling ---------------------------------------------------------------------

    def run(self, insn_addr: int, insn_count: int, schedule: str = "load-first") -> RunResult:
        """Fetch, dispatch and execute until END, an error, or deadlock."""
        order = SCHEDULES[schedule]
        queues: dict[Queue, deque[tuple[int, Instruction]]] = {q: deque() for q in Queue}
        tokens: Counter = Counter()  # (from_queue, to_queue) -> tokens waiting
        trace: list[InsnWork] = []
        pc, ended = 0, False
        try:
            while True:
                progress = False
                while not ended and pc < insn_count:
                    insn = self._fetch(insn_addr, pc)
                    if insn.opcode is Opcode.END:
                        ended, pc, progress = True, pc + 1, True
                        break
                    if len(queues[insn.queue]) >= self.cfg.insn_queue_depth:
                        break
                    self._check_deps(insn, pc)
                    queues[insn.queue].append((pc, insn))
                    pc, progress = pc + 1, True
                for q in order:
                    while queues[q] and self._ready(q, queues[q][0][1], tokens):
                        at, insn = queues[q].popleft()
                        self._take_tokens(q, insn, tokens)
                        trace.append(self._execute(at, insn))
                        progress = True
                if ended and not any(queues.values()):
                    return RunResult(ErrorCode.OK, None, "", trace)
                if not progress:
                    if pc >= insn_count and not ended:
                        raise ExecError(ErrorCode.PROGRAM_OVERRUN, pc, f"no END in {insn_count} instructions")
                    waiting = {q.name.lower(): queues[q][0][0] for q in Queue if queues[q]}
                    raise ExecError(ErrorCode.DEADLOCK, min(waiting.values(), default=pc),
                                    f"queues blocked on tokens at pcs {waiting}")
        except ExecError as exc:
            return RunResult(exc.code, exc.pc, str(exc), trace)

    def _fetch(self, base: int, pc: int) -> Instruction:
        addr = base + pc * INSN_BYTES
        if addr + INSN_BYTES > self.dram.size:
            raise ExecError(ErrorCode.DRAM_RANGE, pc, f"instruction fetch at {addr:#x} past DRAM")
        word = int.from_bytes(self.dram[addr : addr + INSN_BYTES].tobytes(), "little")
        try:
            return decode(word)
        except IsaError as exc:
            raise ExecError(exc.code, pc, str(exc)) from None

    def _check_deps(self, insn: Instruction, pc: int) -> None:
        q = insn.queue
        for flag, neighbour in (("pop_prev", PREV), ("push_prev", PREV), ("pop_next", NEXT), ("push_next", NEXT)):
            if flag in insn.deps and neighbour[q] is None:
                raise ExecError(ErrorCode.BAD_DEPS, pc, f"{insn.opcode.name.lower()} in the {q.name.lower()} "
                                f"queue has {flag}, but that queue has no such neighbour")

    def _ready(self, q: Queue, insn: Instruction, tokens: Counter) -> bool:
        """Tokens to pop are there, and tokens to push have room (a full channel stalls)."""
        depth = self.cfg.dep_queue_depth
        if "pop_prev" in insn.deps and tokens[PREV[q], q] == 0:
            return False
        if "pop_next" in insn.deps and tokens[NEXT[q], q] == 0:
            return False
        if "push_prev" in insn.deps and tokens[q, PREV[q]] >= depth:
            return False
        return not ("push_next" in insn.deps and tokens[q, NEXT[q]] >= depth)

    def _take_tokens(self, q: Queue, insn: Instruction, tokens: Counter) -> None:
        if "pop_prev" in insn.deps:
            tokens[PREV[q], q] -= 1
        if "pop_next" in insn.deps:
            tokens[NEXT[q], q] -= 1
        if "push_prev" in insn.deps:
            tokens[q, PREV[q]] += 1
        if "push_next" in insn.deps:
            tokens[q, NEXT[q]] += 1

    # ---- instructions -------------------------------------------------------------------

    def _execute(self, pc: int, insn: Instruction) -> InsnWork:
        return self._handlers[insn.opcode](pc, insn)

    def _rows_of(self, buf: Buffer) -> np.ndarray:
        return self.acc if buf is Buffer.ACC else self.sram[buf]

    def _row_bytes(self, buf: Buffer) -> int:
        return self.cfg.buffer_row_bytes(BUFFER_SIZE_FIELD[buf])

    def _check_sram(self, pc: int, buf: Buffer, start: int, count: int) -> None:
        depth = self._rows_of(buf).shape[0]
        if start + count > depth:
            raise ExecError(ErrorCode.SRAM_RANGE, pc, f"{buf.name.lower()} rows {start}..{start + count - 1} "
                            f"past its {depth} rows")

    def _transfer_geometry(self, pc: int, insn: Instruction) -> tuple[np.ndarray, int]:
        """DRAM byte addresses (rows x row_bytes) and scratchpad rows per DRAM row, checked."""
        if insn.rows == 0 or insn.row_bytes == 0:
            raise ExecError(ErrorCode.BAD_LENGTH, pc, f"rows = {insn.rows}, row_bytes = {insn.row_bytes}")
        last = insn.dram_addr + (insn.rows - 1) * insn.dram_stride + insn.row_bytes
        if last > self.dram.size:
            raise ExecError(ErrorCode.DRAM_RANGE, pc, f"DRAM access up to {last:#x} past {self.dram.size:#x}")
        per_row = -(-insn.row_bytes // self._row_bytes(insn.buffer))
        self._check_sram(pc, insn.buffer, insn.sram_addr, insn.rows * per_row)
        addrs = insn.dram_addr + np.arange(insn.rows)[:, None] * insn.dram_stride + np.arange(insn.row_bytes)
        return addrs, per_row

    def _load(self, pc: int, insn: Instruction) -> InsnWork:
        if insn.buffer not in LOADABLE:
            raise ExecError(ErrorCode.BAD_BUFFER, pc, f"cannot LOAD into {insn.buffer.name.lower()}")
        addrs, per_row = self._transfer_geometry(pc, insn)
        width = self._row_bytes(insn.buffer)
        block = np.zeros((insn.rows, per_row * width), np.uint8)  # short rows are zero-filled
        block[:, : insn.row_bytes] = self.dram[addrs]
        rows = insn.rows * per_row
        self.sram[insn.buffer][insn.sram_addr : insn.sram_addr + rows] = block.reshape(rows, width)
        return InsnWork(pc, insn.opcode, dram_bytes=addrs.size, sram_rows=rows)

    def _store(self, pc: int, insn: Instruction) -> InsnWork:
        if insn.buffer not in STORABLE:
            raise ExecError(ErrorCode.BAD_BUFFER, pc, f"cannot STORE from {insn.buffer.name.lower()}")
        addrs, per_row = self._transfer_geometry(pc, insn)
        rows = insn.rows * per_row
        if insn.buffer is Buffer.ACC:
            vals = self.acc[insn.sram_addr : insn.sram_addr + rows]
            shifts = 8 * np.arange(self.cfg.acc_bytes)
            data = ((vals[..., None] >> shifts) & 0xFF).astype(np.uint8)
        else:
            data = self.sram[insn.buffer][insn.sram_addr : insn.sram_addr + rows]
        block = data.reshape(insn.rows, -1)[:, : insn.row_bytes]
        self.dram[addrs.ravel()] = block.ravel()  # rows are written in order
        return InsnWork(pc, insn.opcode, dram_bytes=addrs.size, sram_rows=rows)

    def weight_tile(self, dtype_code: int, w_addr: int) -> np.ndarray:
        """The rows x cols weight values of the packed tile at w_addr."""
        dt = by_code(dtype_code)
        n = self.cfg.weight_tile_rows(dt)
        codes = unpack(self.sram[Buffer.WEIGHT][w_addr : w_addr + n], dt.bits, self.cfg.rows * self.cfg.cols)
        return dt.decode(codes).reshape(self.cfg.rows, self.cfg.cols)

    def _matmul(self, pc: int, insn: Instruction) -> InsnWork:
        dt = by_code(insn.dtype.value)
        if dt.name not in self.cfg.weight_dtypes:
            raise ExecError(ErrorCode.BAD_DTYPE, pc, f"{dt.name} weights; config runs {list(self.cfg.weight_dtypes)}")
        if 8 % dt.bits:
            raise ExecError(ErrorCode.BAD_DTYPE, pc, f"{dt.name} tiles: tiles are stored in 1-, 2-, 4- or 8-bit "
                            "codes (a grouped tile of 4-bit storage carries 3-bit datatypes)")
        if insn.m == 0:
            raise ExecError(ErrorCode.BAD_LENGTH, pc, "m = 0")
        self._check_sram(pc, Buffer.INPUT, insn.in_addr, insn.m)
        self._check_sram(pc, Buffer.WEIGHT, insn.w_addr, self.cfg.weight_tile_rows(dt))
        self._check_sram(pc, Buffer.ACC, insn.acc_addr, insn.m)
        acts = self.sram[Buffer.INPUT][insn.in_addr : insn.in_addr + insn.m].view(np.int8)
        rows = slice(insn.acc_addr, insn.acc_addr + insn.m)
        prev = self.acc[rows] if insn.accumulate else None
        if insn.grouped:
            weights, scale = self._group_tile(pc, dt, insn)
            prod = np.asarray(acts, np.int64) @ weights * scale
            self.acc[rows] = wrap(prod if prev is None else prev + prod, self.cfg.acc_bits)
        else:
            self.acc[rows] = matmul_tile(acts, self.weight_tile(dt.code, insn.w_addr), prev, self.cfg.acc_bits)
        return InsnWork(pc, insn.opcode, macs=insn.m * self.cfg.rows * self.cfg.cols, sram_rows=insn.m)

    def _group_tile(self, pc: int, storage: Datatype, insn: Instruction) -> tuple[np.ndarray, np.ndarray]:
        """A grouped MATMUL's weights (each column's codes read in its own datatype, minus the
        column's zero point) and the per-column group scales, from the GroupParams row at group_addr."""
        if self.cfg.pe != "serial":
            raise ExecError(ErrorCode.BAD_DTYPE, pc, "grouped MATMUL needs the bit-serial PE (pe = serial)")
        self._check_sram(pc, Buffer.PARAM, insn.group_addr, 1)
        gp = unpack_records(GroupParams, self.sram[Buffer.PARAM][insn.group_addr])
        R, C = self.cfg.rows, self.cfg.cols
        n = self.cfg.weight_tile_rows(storage)
        codes = unpack(self.sram[Buffer.WEIGHT][insn.w_addr : insn.w_addr + n], storage.bits, R * C).reshape(R, C)
        weights = np.zeros((R, C), np.int64)
        for tag in np.unique(gp["dtype"]):
            dt = by_code(int(tag)) if tag < len(DATATYPES) else None
            if dt is None or dt.name not in self.cfg.weight_dtypes or dt.bits > storage.bits:
                name = dt.name if dt else f"code {int(tag)}"
                raise ExecError(ErrorCode.BAD_DTYPE, pc, f"group datatype {name}: not one of "
                                f"{list(self.cfg.weight_dtypes)} with at most {storage.bits} bits")
            cols = gp["dtype"] == tag
            weights[:, cols] = dt.decode(codes[:, cols] & ((1 << dt.bits) - 1))  # upper storage bits unused
        return weights - gp["zero_point"], gp["scale"]

    def _postproc(self, pc: int, insn: Instruction) -> InsnWork:
        if insn.m == 0:
            raise ExecError(ErrorCode.BAD_LENGTH, pc, "m = 0")
        self._check_sram(pc, Buffer.ACC, insn.acc_addr, insn.m)
        self._check_sram(pc, Buffer.OUTPUT, insn.out_addr, insn.m)
        self._check_sram(pc, Buffer.PARAM, insn.param_addr, 1)
        p = unpack_records(ChannelParams, self.sram[Buffer.PARAM][insn.param_addr])
        acc = self.acc[insn.acc_addr : insn.acc_addr + insn.m]
        y = requantize(acc, p["bias"], p["multiplier"], p["shift"], insn.zero_point, bool(insn.relu),
                       self.cfg.act_bits)
        self.sram[Buffer.OUTPUT][insn.out_addr : insn.out_addr + insn.m] = y.astype(np.int8).view(np.uint8)
        return InsnWork(pc, insn.opcode, sram_rows=insn.m)


def run_program(program: Program, schedule: str = "load-first") -> tuple[Golden, RunResult]:
    """Load a program's DRAM image, run it, and return the final state with the result."""
    sim = Golden.for_program(program)
    return sim, sim.run_program(program, schedule)

