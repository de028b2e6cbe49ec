"""cocotb testbench of hw.csr.CsrBank: the register map over AXI4-Lite against a Python model,
run control (START, DONE, ERROR, irq) against a stand-in accelerator, and the counters
against NumPy sums of random event patterns."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from hw.axi import CSR_ADDR_BITS
from hw.csr import COUNTERS, REG, REGISTERS, Access, counter_register
from hw.isa import ISA_VERSION, ErrorCode
from sim.tb.common import config, rng, start

WORD = 4
LANE_BITS = 8
UNMAPPED = sorted(set(range(0, 1 << CSR_ADDR_BITS, WORD)) - {r.offset for r in REGISTERS})
PC_BITS = 32


def expected_constants() -> dict[str, int]:
    """What the constant registers must read, from the specification, the config and hw.isa."""
    cfg = config()
    major, minor = (int(x) for x in ISA_VERSION.split("."))
    return {
        "ID": int.from_bytes(b"LBIT", "big"),
        "VERSION": major << 8 | minor,
        "HW_DIMS": cfg.rows | cfg.cols << 8 | cfg.act_bits << 16 | cfg.acc_bits << 24,
        "CONFIG_HASH": int(cfg.hash[:8], 16),
    }


async def setup(dut) -> AxiLiteMaster:
    """Quiet accelerator inputs, clock, reset, and an AXI4-Lite master on the bus."""
    for name in ("busy", "error", "error_pc", "events"):
        getattr(dut, name).value = 0
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "bus_"), dut.clk, dut.rst)
    await start(dut)
    return axil


async def read(axil: AxiLiteMaster, name: str) -> int:
    resp = await axil.read(REG[name].offset, WORD)
    assert resp.resp == AxiResp.OKAY, f"read {name}: {resp.resp!r}"
    return int.from_bytes(resp.data, "little")


async def write(axil: AxiLiteMaster, name: str, value: int) -> None:
    resp = await axil.write(REG[name].offset, value.to_bytes(WORD, "little"))
    assert resp.resp == AxiResp.OKAY, f"write {name}: {resp.resp!r}"


async def read_all(axil: AxiLiteMaster) -> dict[str, int]:
    return {r.name: await read(axil, r.name) for r in REGISTERS}


async def status(axil: AxiLiteMaster):
    return REG["STATUS"].layout.from_bits(await read(axil, "STATUS"))


async def wait_done(axil: AxiLiteMaster, polls: int = 1000):
    """Poll STATUS like a host until DONE."""
    for _ in range(polls):
        st = await status(axil)
        if st.done:
            return st
    raise AssertionError(f"DONE not set after {polls} polls")


def start_value() -> int:
    return REG["CTRL"].mask("start")


def irq_enable_value() -> int:
    return REG["CTRL"].mask("irq_enable")


class StartMonitor:
    """Records every cycle in which the start output is high."""

    def __init__(self, dut):
        self.cycles: list[int] = []
        cocotb.start_soon(self._run(dut))

    async def _run(self, dut) -> None:
        cycle = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            if dut.start.value:
                self.cycles.append(cycle)

    def pulses(self) -> int:
        """Pulses seen, after checking that each one lasted exactly one cycle."""
        assert all(b - a > 1 for a, b in zip(self.cycles, self.cycles[1:])), f"start held high: {self.cycles}"
        return len(self.cycles)


class Accelerator:
    """Stands in for the controller: busy from the cycle after start for the run's length, then
    error and error_pc valid in the cycle busy falls and random noise in every other cycle."""

    def __init__(self, dut, r: np.random.Generator):
        self.dut, self.r = dut, r
        self.plan: list[tuple[int, ErrorCode, int]] = []  # (busy cycles, code, pc) per run
        self.finished: list[tuple[ErrorCode, int]] = []
        cocotb.start_soon(self._run())

    def random_run(self, max_len: int = 50) -> tuple[int, ErrorCode, int]:
        codes = list(ErrorCode)
        return (int(self.r.integers(1, max_len)), codes[self.r.integers(len(codes))],
                int(self.r.integers(0, 1 << PC_BITS)))

    def noise(self) -> None:
        self.dut.error.value = int(self.r.integers(0, 1 << len(self.dut.error)))
        self.dut.error_pc.value = int(self.r.integers(0, 1 << PC_BITS))

    async def _run(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if not dut.start.value:
                continue
            length, code, pc = self.plan.pop(0) if self.plan else self.random_run()
            await RisingEdge(dut.clk)
            dut.busy.value = 1
            for _ in range(length):
                self.noise()
                await RisingEdge(dut.clk)
            dut.busy.value = 0
            dut.error.value = code.value
            dut.error_pc.value = pc
            await RisingEdge(dut.clk)
            self.noise()
            self.finished.append((code, pc))


class RegisterModel:
    """The register file as the host must see it while no run is in progress."""

    def __init__(self):
        consts = expected_constants()
        self.words = {r.offset: consts.get(r.name, 0) for r in REGISTERS}
        self.by_offset = {r.offset: r for r in REGISTERS}
        self.starts = 0

    @staticmethod
    def lanes(addr: int, length: int) -> int:
        first = addr % WORD
        return sum(0xFF << (LANE_BITS * i) for i in range(first, first + length))

    def write(self, addr: int, data: bytes) -> AxiResp:
        reg = self.by_offset.get(addr - addr % WORD)
        if reg is None or reg.access is not Access.RW:
            return AxiResp.SLVERR
        value = int.from_bytes(data, "little") << (LANE_BITS * (addr % WORD))
        lanes = self.lanes(addr, len(data))
        if reg.name == "CTRL" and value & lanes & start_value():
            self.starts += 1
        keep = lanes & reg.writable_mask
        self.words[reg.offset] = self.words[reg.offset] & ~keep | value & keep
        return AxiResp.OKAY

    def read(self, addr: int, length: int) -> tuple[bytes, AxiResp]:
        word = addr - addr % WORD
        if word not in self.words:
            return bytes(length), AxiResp.SLVERR
        raw = self.words[word].to_bytes(WORD, "little")
        return raw[addr % WORD: addr % WORD + length], AxiResp.OKAY

    def value(self, name: str) -> int:
        return self.words[REG[name].offset]


def random_span(r: np.random.Generator, word: int) -> tuple[int, int]:
    """A byte address inside a word and a length that stays inside it (contiguous strobes)."""
    first = int(r.integers(0, WORD))
    return word + first, int(r.integers(1, WORD - first + 1))


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def constants_and_reset_values(dut):
    """ID, VERSION, HW_DIMS and CONFIG_HASH read their values; everything else resets to 0."""
    axil = await setup(dut)
    consts = expected_constants()
    got = await read_all(axil)
    for r in REGISTERS:
        assert got[r.name] == consts.get(r.name, 0), f"{r.name} = {got[r.name]:#x}"
    assert (dut.prog_base.value, dut.prog_len.value, dut.irq.value, dut.start.value) == (0, 0, 0, 0)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def rw_registers_honour_strobes(dut):
    """Random partial writes to the rw registers change exactly the written byte lanes, and
    only the rw fields; prog_base/prog_len follow their registers."""
    r = rng(dut)
    axil = await setup(dut)
    model = RegisterModel()
    rw = [reg for reg in REGISTERS if reg.access is Access.RW]
    for _ in range(300):
        reg = rw[r.integers(len(rw))]
        addr, length = random_span(r, reg.offset)
        data = r.integers(0, 256, length, dtype=np.uint8).tobytes()
        resp = await axil.write(addr, data)
        assert resp.resp == model.write(addr, data) == AxiResp.OKAY
        assert await read(axil, reg.name) == model.value(reg.name), f"{reg.name} after {data.hex()} at {addr:#x}"
        assert dut.prog_base.value == model.value("PROG_BASE")
        assert dut.prog_len.value == model.value("PROG_LEN")


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def readonly_and_unmapped_give_slverr(dut):
    """Writes to ro registers and to unmapped addresses answer SLVERR and change nothing;
    unmapped reads answer 0 with SLVERR."""
    r = rng(dut)
    axil = await setup(dut)
    starts = StartMonitor(dut)
    before = await read_all(axil)
    for reg in REGISTERS:
        if reg.access is Access.RO:
            for _ in range(4):
                addr, length = random_span(r, reg.offset)
                resp = await axil.write(addr, r.integers(0, 256, length, dtype=np.uint8).tobytes())
                assert resp.resp == AxiResp.SLVERR, f"write {reg.name}: {resp.resp!r}"
    for word in UNMAPPED:
        resp = await axil.read(*random_span(r, word))
        assert resp.resp == AxiResp.SLVERR and not any(resp.data), f"read {word:#x}: {resp}"
    for word in map(int, r.choice(UNMAPPED, 200)):
        resp = await axil.write(word, (0xFFFFFFFF).to_bytes(WORD, "little"))
        assert resp.resp == AxiResp.SLVERR, f"write {word:#x}: {resp.resp!r}"
    assert await read_all(axil) == before
    assert starts.pulses() == 0


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def start_pulses_once_and_is_ignored_while_busy(dut):
    """START gives one one-cycle pulse when not busy; START while busy, writes without the START
    bit and writes whose strobes miss it give none."""
    r = rng(dut)
    axil = await setup(dut)
    starts = StartMonitor(dut)
    acc = Accelerator(dut, r)
    acc.plan = [(300, ErrorCode.OK, 0), (20, ErrorCode.OK, 0)]
    await write(axil, "CTRL", irq_enable_value())
    resp = await axil.write(REG["CTRL"].offset + 1, b"\xff")  # a lane START does not live in
    assert resp.resp == AxiResp.OKAY and starts.pulses() == 0
    assert await read(axil, "CTRL") == irq_enable_value(), "reserved bits read 0"
    await write(axil, "CTRL", start_value())
    assert starts.pulses() == 1
    assert (await status(axil)).busy
    for _ in range(5):
        await write(axil, "CTRL", start_value() | irq_enable_value())
    assert (await status(axil)).busy, "the run ended before the test could write START while busy"
    assert await read(axil, "CTRL") == irq_enable_value(), "START reads back 0"
    await wait_done(axil)
    assert starts.pulses() == 1 and len(acc.finished) == 1
    await write(axil, "CTRL", start_value())
    await wait_done(axil)
    assert starts.pulses() == 2 and len(acc.finished) == 2


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def status_captured_when_busy_falls(dut):
    """Over random runs: BUSY follows busy, DONE is set when it falls and cleared by START,
    ERROR/ERROR_PC hold the code and pc of the cycle busy fell, STATUS.ERROR = code != OK."""
    r = rng(dut)
    axil = await setup(dut)
    acc = Accelerator(dut, r)
    failed = False
    for code in [*ErrorCode, *(acc.random_run()[1] for _ in range(20))]:
        length, _, pc = acc.random_run()
        acc.plan.append((length + 30, code, pc))  # long enough to read STATUS while busy
        await write(axil, "CTRL", start_value())
        st = await status(axil)
        assert (st.busy, st.done, st.error) == (1, 0, failed), f"during a run: {st}"
        st = await wait_done(axil)
        failed = code is not ErrorCode.OK
        assert (st.busy, st.error) == (0, failed), f"after {code}: {st}"
        got = REG["ERROR"].layout.from_bits(await read(axil, "ERROR")).code
        assert (got, await read(axil, "ERROR_PC")) == (code, pc)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def counters_count_event_cycles(dut):
    """Each counter counts exactly the cycles its event bit was high; START clears them all,
    START while busy does not."""
    r = rng(dut)
    axil = await setup(dut)
    n = len(COUNTERS)
    weights = 1 << np.arange(n)

    async def drive(cycles: int) -> np.ndarray:
        density = r.choice([0.0, 1.0, *r.random(n)], n)  # some bits never or always high
        pattern = (r.random((cycles, n)) < density).astype(np.int64)
        for row in pattern:
            await RisingEdge(dut.clk)
            dut.events.value = int(row @ weights)
        await RisingEdge(dut.clk)
        dut.events.value = 0
        return pattern.sum(axis=0)

    async def counts() -> np.ndarray:
        return np.array([await read(axil, counter_register(c)) for c in COUNTERS])

    total = await drive(int(r.integers(100, 2000)))
    assert (await counts() == total).all(), f"{await counts()} != {total}"
    total += await drive(int(r.integers(100, 2000)))
    assert (await counts() == total).all(), "counters keep counting"

    dut.busy.value = 1
    await write(axil, "CTRL", start_value())  # ignored while busy
    assert (await counts() == total).all(), "START while busy cleared the counters"
    dut.busy.value = 0

    await write(axil, "CTRL", start_value())
    assert not (await counts()).any(), "START clears the counters"
    total = await drive(int(r.integers(100, 2000)))
    assert (await counts() == total).all(), "counting again after START"


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def irq_follows_done_and_enable(dut):
    """irq is DONE & IRQ_ENABLE whichever of the two changes."""
    r = rng(dut)
    axil = await setup(dut)
    acc = Accelerator(dut, r)

    async def check(expect: bool) -> None:
        st, ctrl = await status(axil), await read(axil, "CTRL")
        assert bool(st.done and ctrl & irq_enable_value()) == expect
        assert dut.irq.value == expect, f"irq = {dut.irq.value}, DONE = {st.done}, CTRL = {ctrl:#x}"

    await check(False)
    await write(axil, "CTRL", irq_enable_value())
    await check(False)
    await write(axil, "CTRL", irq_enable_value() | start_value())
    await wait_done(axil)
    await check(True)
    await write(axil, "CTRL", 0)
    await check(False)
    await write(axil, "CTRL", irq_enable_value())
    await check(True)
    await write(axil, "CTRL", 0)
    await write(axil, "CTRL", start_value())
    await wait_done(axil)
    await check(False)
    acc.plan.append((200, ErrorCode.OK, 0))  # long enough to check irq while it runs
    await write(axil, "CTRL", irq_enable_value() | start_value())  # START clears DONE, so irq drops
    await check(False)
    await wait_done(axil)
    await check(True)


class HandshakeMonitor:
    """Records the cycles of AW and W handshakes, to show both arrival orders were exercised."""

    def __init__(self, dut):
        self.aw: list[int] = []
        self.w: list[int] = []
        cocotb.start_soon(self._run(dut))

    async def _run(self, dut) -> None:
        cycle = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            if dut.bus__awvalid.value and dut.bus__awready.value:
                self.aw.append(cycle)
            if dut.bus__wvalid.value and dut.bus__wready.value:
                self.w.append(cycle)

    def orders(self) -> set[str]:
        return {"aw first" if a < w else "w first" if w < a else "together" for a, w in zip(self.aw, self.w)}


def pauses(r: np.random.Generator, p: float):
    while True:
        yield bool(r.random() < p)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def random_accesses_under_backpressure(dut):
    """Random reads and writes anywhere in the address space, concurrent on both directions,
    with random stalls on all five channels, against the Python register model."""
    r = rng(dut)
    axil = await setup(dut)
    starts = StartMonitor(dut)
    shakes = HandshakeMonitor(dut)
    for channel in (axil.write_if.aw_channel, axil.write_if.w_channel, axil.write_if.b_channel,
                    axil.read_if.ar_channel, axil.read_if.r_channel):
        channel.set_pause_generator(pauses(r, float(r.uniform(0.2, 0.6))))
    model = RegisterModel()
    mapped = [reg.offset for reg in REGISTERS]

    async def access(word: int) -> None:
        addr, length = random_span(r, word)
        if r.random() < 0.5:
            data = r.integers(0, 256, length, dtype=np.uint8).tobytes()
            resp = await axil.write(addr, data)
            assert resp.resp == model.write(addr, data), f"write {data.hex()} at {addr:#x}: {resp.resp!r}"
        else:
            expect = model.read(addr, length)
            resp = await axil.read(addr, length)
            assert (resp.data, resp.resp) == expect, f"read {addr:#x}: {resp}, expected {expect}"

    for _ in range(600):
        # a batch touches distinct words, so the model does not depend on the order they land in
        words = {int(r.choice(mapped)) if r.random() < 0.8 else int(r.choice(UNMAPPED))
                 for _ in range(r.integers(1, 5))}
        tasks = [cocotb.start_soon(access(w)) for w in words]
        for t in tasks:
            await t
    for reg in REGISTERS:
        assert await read(axil, reg.name) == model.value(reg.name), reg.name
    assert starts.pulses() == model.starts
    assert shakes.orders() == {"aw first", "w first", "together"}, shakes.orders()
