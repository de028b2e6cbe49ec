"""The control/status register bank: an AXI4-Lite slave the host uses to start, poll and profile runs.

``REGISTERS`` is the one definition of the register map. The RTL decoder (``CsrBank``), the
manifest entry (``csr_map``) and docs/csr.md (``csr_markdown``) are all derived from it, and each
register's bit fields are an ``amaranth.lib.data.StructLayout``, so no offset is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hw.axi import AXIL_DATA_BITS, CSR_ADDR_BITS, AxiResp, axil
from hw.config import AccelConfig
from hw.isa import ERROR_MEANINGS, ISA_VERSION, RESERVED, ErrorCode

LANE_BITS = 8
REG_BYTES = AXIL_DATA_BITS // LANE_BITS


def word(addr: Value) -> Value:
    """Register index of a byte address (the low bits pick byte lanes, which WSTRB already gives)."""
    return addr[exact_log2(REG_BYTES):]


class Access(StrEnum):
    RO = "ro"  # writes are dropped with SLVERR
    RW = "rw"  # writes honour WSTRB
    WO = "wo"  # a field that acts when written and always reads 0


@dataclass(frozen=True)
class Field:
    name: str
    shape: Any  # anything Shape.cast accepts, an enum included
    description: str
    access: Access | None = None  # None: the register's access


Reset = int | dict[str, Any] | Callable[[AccelConfig], int | dict[str, Any]]


@dataclass(frozen=True)
class Register:
    """One 32-bit register. ``reset`` is its value after reset: an integer, field values, or a
    function of the configuration for constants that describe the hardware."""

    name: str
    offset: int  # bytes
    access: Access
    description: str
    fields: tuple[Field, ...] = ()
    reset: Reset = 0

    @property
    def layout(self) -> data.StructLayout:
        """Fields LSB first, reserved bits up to the register width."""
        members = {f.name: f.shape for f in self.fields} or {"value": unsigned(AXIL_DATA_BITS)}
        used = data.StructLayout(members).size
        assert used <= AXIL_DATA_BITS, f"{self.name}: fields take {used} > {AXIL_DATA_BITS} bits"
        if used < AXIL_DATA_BITS:
            members[RESERVED] = unsigned(AXIL_DATA_BITS - used)
        return data.StructLayout(members)

    def field_access(self, f: Field) -> Access:
        return f.access or self.access

    def mask(self, *names: str) -> int:
        """Bits of the named fields."""
        return sum(((1 << self.layout[n].width) - 1) << self.layout[n].offset for n in names)

    @property
    def writable_mask(self) -> int:
        """Bits a write stores: the rw fields, or the whole register when it has no fields."""
        if not self.fields:
            return (1 << AXIL_DATA_BITS) - 1 if self.access is Access.RW else 0
        return self.mask(*(f.name for f in self.fields if self.field_access(f) is Access.RW))

    @property
    def config_dependent(self) -> bool:
        return callable(self.reset)

    def value(self, cfg: AccelConfig | None = None) -> int:
        """Reset value; a configuration constant needs ``cfg``."""
        v = self.reset
        if callable(v):
            if cfg is None:
                raise ValueError(f"{self.name} depends on the configuration")
            v = v(cfg)
        return self.layout.const(v).as_value().value if isinstance(v, dict) else v


def _isa_version() -> dict[str, int]:
    major, minor = (int(x) for x in ISA_VERSION.split("."))
    return {"major": major, "minor": minor}


HW_DIM_FIELDS = ("rows", "cols", "act_bits", "acc_bits")  # named after the AccelConfig fields

# (counter, what makes it count in a cycle); the order gives the offsets and the event bits
_COUNTER_DOCS = (
    ("cycles", "cycles while BUSY"),
    ("insns", "instructions decoded (END included)"),
    ("dma_busy", "cycles the DMA has a transfer in progress"),
    ("dma_stall", "cycles the DMA has data to move but the bus does not take it (valid and not ready "
                  "on an AXI channel it drives) or it waits for read data"),
    ("array_busy", "cycles an activation row enters the systolic array"),
    ("array_stall", "cycles no activation row enters the array while a MATMUL waits for it (at the compute "
                    "queue head: tokens, a hazard, a busy engine; or in the engine: its weights)"),
    ("postproc_busy", "cycles a row, or a slice of one, enters post-processing"),
    ("postproc_stall", "cycles post-processing waits"),
)
COUNTERS = tuple(name for name, _ in _COUNTER_DOCS)
COUNTER_BASE = 0x040


def counter_register(counter: str) -> str:
    return f"PERF_{counter.upper()}"


REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x000, Access.RO, 'Identifies a lowbit accelerator: ASCII "LBIT".',
             reset=int.from_bytes(b"LBIT", "big")),
    Register("VERSION", 0x004, Access.RO, "ISA version the hardware implements (`hw.isa.ISA_VERSION`).",
             fields=(Field("minor", unsigned(8), "minor version"), Field("major", unsigned(8), "major version")),
             reset=_isa_version()),
    Register("CTRL", 0x008, Access.RW, "Run control.", fields=(
        Field("start", unsigned(1), "write 1 to start a run when not BUSY (ignored while BUSY); reads 0",
              Access.WO),
        Field("irq_enable", unsigned(1), "drive the irq output while DONE is set"),
    )),
    Register("STATUS", 0x00C, Access.RO, "Run status.", fields=(
        Field("busy", unsigned(1), "a run is in progress"),
        Field("done", unsigned(1), "a run has ended since the last START (sticky; cleared by START)"),
        Field("error", unsigned(1), "the last run ended with a nonzero error code"),
    )),
    Register("ERROR", 0x010, Access.RO, "Why the last run halted.", fields=(
        Field("code", ErrorCode, "`hw.isa.ErrorCode` of the last run"),
    )),
    Register("ERROR_PC", 0x014, Access.RO, "Index of the instruction that caused the last run's error."),
    Register("PROG_BASE", 0x018, Access.RW, "DRAM byte address of the first instruction."),
    Register("PROG_LEN", 0x01C, Access.RW, "Number of instructions in the program."),
    Register("HW_DIMS", 0x020, Access.RO, "Array and datapath sizes of this configuration.",
             fields=tuple(Field(n, unsigned(8), f"`{n}` of the configuration") for n in HW_DIM_FIELDS),
             reset=lambda cfg: {n: getattr(cfg, n) for n in HW_DIM_FIELDS}),
    Register("CONFIG_HASH", 0x024, Access.RO, "First 8 hex digits of the configuration hash (`AccelConfig.hash`).",
             reset=lambda cfg: int(cfg.hash[:8], 16)),
    *(Register(counter_register(name), COUNTER_BASE + REG_BYTES * i, Access.RO,
               f"Performance counter `{name}` (event bit {i}): {doc}.")
      for i, (name, doc) in enumerate(_COUNTER_DOCS)),
)
REG = {r.name: r for r in REGISTERS}


def csr_map(cfg: AccelConfig | None = None) -> list[dict]:
    """The register map for manifest.json. Without ``cfg`` the reset value of a configuration
    constant is None."""
    out = []
    for r in REGISTERS:
        out.append({
            "name": r.name, "offset": r.offset, "access": str(r.access), "width": AXIL_DATA_BITS,
            "reset": None if r.config_dependent and cfg is None else r.value(cfg),
            "description": r.description,
            "fields": [{"name": f.name, "lsb": r.layout[f.name].offset, "width": r.layout[f.name].width,
                        "access": str(r.field_access(f)), "description": f.description} for f in r.fields],
        })
    return out


def _hex(v: int) -> str:
    return f"0x{v:03X}"


def csr_markdown() -> str:
    """The register map as Markdown (docs/csr.md is this text)."""
    ctrl, status, error = REG["CTRL"], REG["STATUS"], REG["ERROR"]
    at = {r.name: _hex(r.offset) for r in REGISTERS}
    out = ["# lowbit control and status registers", "",
           "Generated from `hw/csr.py` (`csr_markdown()`); do not edit by hand.", ""]
    out += [
        f"The host reaches the accelerator through an AXI4-Lite slave of {AXIL_DATA_BITS}-bit registers "
        f"({1 << CSR_ADDR_BITS} bytes of address space). To start a run, write the DRAM byte address of the "
        f"first instruction to PROG_BASE ({at['PROG_BASE']}), the number of instructions to PROG_LEN "
        f"({at['PROG_LEN']}), then 1 to CTRL.START ({at['CTRL']}); START is ignored while STATUS.BUSY is set, "
        "and it clears STATUS.DONE and the performance counters. Poll STATUS.DONE "
        f"({at['STATUS']}), or set CTRL.IRQ_ENABLE and wait for the irq output (DONE and IRQ_ENABLE). "
        "When a run ends, STATUS.ERROR tells whether it failed, ERROR "
        f"({at['ERROR']}) holds its `hw.isa.ErrorCode` and ERROR_PC ({at['ERROR_PC']}) the index of the "
        "instruction that caused it; these keep their values until the next run ends.",
        "",
        "Reads of unmapped addresses return 0 with SLVERR; writes to unmapped addresses or to read-only "
        "registers are dropped with SLVERR. Writes honour WSTRB; reserved bits read 0. A read is answered "
        "two cycles after its address is taken (the address is registered before the register file's read "
        "multiplexer), one read at a time.",
        "",
        f"## Error codes (ERROR.code, {error.layout['code'].width} bits)", "",
        "| code | name | meaning |", "|---|---|---|",
    ]
    out += [f"| {c.value} | {c.name} | {text} |" for c, text in ERROR_MEANINGS.items()]
    out += ["", "## Registers", "", "| offset | name | access | reset | description |", "|---|---|---|---|---|"]
    for r in REGISTERS:
        reset = "config" if r.config_dependent else f"0x{r.value():08X}"
        out.append(f"| {at[r.name]} | {r.name} | {r.access} | {reset} | {r.description} |")
    out += ["", f"Performance counters count clock cycles and wrap; {ctrl.name}.START clears them all. "
            f"{status.name}.DONE, {status.name}.ERROR, ERROR and ERROR_PC are captured when BUSY falls.", ""]
    out += ["## Fields", ""]
    for r in REGISTERS:
        if not r.fields:
            continue
        out += [f"### {r.name} ({at[r.name]})", "", "| bits | field | access | description |", "|---|---|---|---|"]
        for f in r.fields:
            lsb, width = r.layout[f.name].offset, r.layout[f.name].width
            bits = f"{lsb}" if width == 1 else f"{lsb + width - 1}..{lsb}"
            out.append(f"| {bits} | {f.name.upper()} | {r.field_access(f)} | {f.description} |")
        out.append("")
    return "\n".join(out)


class CsrBank(wiring.Component):
    """The register file behind an AXI4-Lite slave; one outstanding read and one outstanding
    write, AW and W taken in either order."""

    def __init__(self, cfg: AccelConfig):
        self.cfg = cfg
        super().__init__({
            "bus": In(axil()),
            "start": Out(1),  # one-cycle pulse: START written while not busy
            "prog_base": Out(AXIL_DATA_BITS),
            "prog_len": Out(AXIL_DATA_BITS),
            "busy": In(1),  # high from the cycle after start until the run halts
            "error": In(ErrorCode),  # sampled in the cycle busy falls, as is error_pc
            "error_pc": In(AXIL_DATA_BITS),
            "events": In(len(COUNTERS)),  # bit i: counter COUNTERS[i] counts this cycle
            "irq": Out(1),  # DONE & IRQ_ENABLE
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        bus, cfg = self.bus, self.cfg

        # ---- register file: what each register reads as ----------------------------------------
        ctrl = Signal(REG["CTRL"].layout)  # START is never stored, so it reads 0
        status = Signal(REG["STATUS"].layout)
        error = Signal(REG["ERROR"].layout)
        error_pc = Signal(AXIL_DATA_BITS)
        done, failed = Signal(), Signal()
        counters = [Signal(AXIL_DATA_BITS, name=f"count_{c}") for c in COUNTERS]

        def constant(name: str) -> Const:
            return Const(REG[name].value(cfg), AXIL_DATA_BITS)

        reads = {
            "ID": constant("ID"),
            "VERSION": constant("VERSION"),
            "CTRL": ctrl,
            "STATUS": status,
            "ERROR": error,
            "ERROR_PC": error_pc,
            "PROG_BASE": self.prog_base,
            "PROG_LEN": self.prog_len,
            "HW_DIMS": constant("HW_DIMS"),
            "CONFIG_HASH": constant("CONFIG_HASH"),
            **{counter_register(c): count for c, count in zip(COUNTERS, counters)},
        }
        writes = {r.name: reads[r.name] for r in REGISTERS if r.access is Access.RW}
        assert reads.keys() == REG.keys(), "every register needs a read value"
        m.d.comb += [status.busy.eq(self.busy), status.done.eq(done), status.error.eq(failed),
                     self.irq.eq(done & ctrl.irq_enable)]

        # ---- AXI4-Lite read: one register per AR, answered two cycles later (the address is
        # registered before the register file's read multiplexer) ----------------------------------
        ar_pending = Signal()
        ar_word = Signal.like(word(bus.araddr))
        m.d.comb += bus.arready.eq(~bus.rvalid & ~ar_pending)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [ar_pending.eq(1), ar_word.eq(word(bus.araddr))]
        with m.If(ar_pending):
            m.d.sync += [ar_pending.eq(0), bus.rvalid.eq(1)]
            with m.Switch(ar_word):
                for r in REGISTERS:
                    with m.Case(r.offset // REG_BYTES):
                        m.d.sync += [bus.rdata.eq(reads[r.name]), bus.rresp.eq(AxiResp.OKAY)]
                with m.Default():
                    m.d.sync += [bus.rdata.eq(0), bus.rresp.eq(AxiResp.SLVERR)]
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        # ---- AXI4-Lite write: AW and W are held until both have arrived --------------------------
        aw_full, awaddr = Signal(), Signal.like(bus.awaddr)
        w_full, wdata, wstrb = Signal(), Signal.like(bus.wdata), Signal.like(bus.wstrb)
        m.d.comb += [bus.awready.eq(~aw_full), bus.wready.eq(~w_full)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), awaddr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), wdata.eq(bus.wdata), wstrb.eq(bus.wstrb)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        write = Signal()
        lanes = Cat(b.replicate(LANE_BITS) for b in wstrb)  # byte strobes as a bit mask
        selected = {r.name: word(awaddr) == r.offset // REG_BYTES for r in REGISTERS}
        m.d.comb += write.eq(aw_full & w_full & ~bus.bvalid)
        with m.If(write):
            writable = Cat(selected[name] for name in writes).any()  # unmapped and ro: SLVERR
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.bvalid.eq(1),
                         bus.bresp.eq(Mux(writable, AxiResp.OKAY, AxiResp.SLVERR))]
            for name, reg in writes.items():
                old, keep = Value.cast(reg), lanes & REG[name].writable_mask
                with m.If(selected[name]):
                    m.d.sync += reg.eq((old & ~keep) | (wdata & keep))

        # ---- run control: START, capture when busy falls, counters -------------------------------
        start_written = write & selected["CTRL"] & (wdata & lanes & REG["CTRL"].mask("start")).any()
        go = start_written & ~self.busy & ~self.start  # the cycle of the pulse counts as busy
        m.d.sync += self.start.eq(go)

        busy_q = Signal()
        m.d.sync += busy_q.eq(self.busy)
        with m.If(busy_q & ~self.busy):
            m.d.sync += [done.eq(1), failed.eq(self.error != ErrorCode.OK),
                         error.code.eq(self.error), error_pc.eq(self.error_pc)]

        for i, count in enumerate(counters):
            m.d.sync += count.eq(count + self.events[i])
        with m.If(go):
            m.d.sync += [done.eq(0), *(count.eq(0) for count in counters)]
        return m
