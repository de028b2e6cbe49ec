"""cocotb testbench of the DMA engines (hw.dma) in the rtl.dma_top wrapper, against a NumPy
model of LOAD/STORE transfers (sim.golden): read rows are compared one by one, DRAM after
every write command's ``done``. The memory is cocotbext-axi's RAM with random back-pressure on
all five channels and, for reads, a pipelined first-beat latency."""

from __future__ import annotations

from collections import deque

import cocotb
import numpy as np
from cocotb.simtime import convert, get_sim_time
from cocotb.triggers import Event, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiRamRead, AxiRamWrite

from hw.axi import BOUNDARY_BYTES, MAX_BURST_BEATS, AxiBurst, beat_bytes
from hw.dma import DmaCmd, dma_row, sized_cmd
from rtl.dma_top import READERS, WRITERS, mover_sizes
from sim.tb.common import config, rng, start

MEM_BYTES = 1 << 18  # the part of DRAM the tests use
PERIOD_NS = 10
LATENCY = 20  # memory cycles from AR to the first beat in the throughput test
SLACK = 30  # cycles of pipeline fill and drain the throughput bounds allow
# cycles from a burst's last beat to the AR of the burst that takes its slot (the outstanding
# counter, the AR register, the read arbiter's skid buffer and register slice, the memory model's
# AR), measured: compiler/tiling.py's CostParams.slot_turnaround is the same
TURNAROUND = 5


# ---- memory model ----------------------------------------------------------------------------

class LatencyRamRead(AxiRamRead):
    """AxiRamRead that returns a burst's first beat `latency` cycles after its AR and keeps later
    bursts in flight behind it (the stock model serves one burst at a time), checking each AR."""

    def __init__(self, bus, clock, mem, latency: int):
        self.latency_steps = convert(latency * PERIOD_NS, "ns", to="step")  # integer steps: no rounding
        self.pending: deque = deque()
        self.arrived = Event()
        self.bursts = 0
        super().__init__(bus, clock, mem=mem)

    async def _process_read(self):
        cocotb.start_soon(self._serve())
        while True:
            ar = await self.ar_channel.recv()
            self.pending.append((get_sim_time() + self.latency_steps, ar))
            self.arrived.set()

    async def _serve(self):
        width = self.byte_lanes
        while True:
            while not self.pending:
                self.arrived.clear()
                await self.arrived.wait()
            due, ar = self.pending.popleft()
            addr, beats = int(ar.araddr), int(ar.arlen) + 1
            assert int(ar.arid) == 0 and int(ar.arburst) == AxiBurst.INCR, f"AR {ar}: id 0, INCR only"
            assert 1 << int(ar.arsize) == width and addr % width == 0, f"AR {ar}: aligned full-width beats"
            assert addr // BOUNDARY_BYTES == (addr + beats * width - 1) // BOUNDARY_BYTES, f"AR {ar} crosses 4 KiB"
            self.bursts += 1
            now = get_sim_time()
            if due > now:
                await Timer(due - now, unit="step")
            for n in range(beats):
                r = self.r_channel._transaction_obj()
                r.rid, r.rresp, r.rlast = 0, 0, int(n == beats - 1)
                r.rdata = int.from_bytes(self.read(addr + n * width, width), "little")
                await self.r_channel.send(r)


def pauses(r: np.random.Generator, p: float):
    while True:
        yield bool(r.random() < p)


def make_ram(dut, r: np.random.Generator, pause: float = 0.0, latency: int = 0):
    """A random-filled RAM on m_axi; returns the (write side, read side, NumPy view of its bytes)."""
    mem = bytearray(r.integers(0, 256, MEM_BYTES, dtype=np.uint8).tobytes())
    bus = AxiBus.from_prefix(dut, "m_axi_")
    wr = AxiRamWrite(bus.write, dut.clk, mem=mem)
    rd = LatencyRamRead(bus.read, dut.clk, mem, latency)
    if pause:
        for ch in (wr.aw_channel, wr.w_channel, wr.b_channel, rd.ar_channel, rd.r_channel):
            ch.set_pause_generator(pauses(r, pause))
    return wr, rd, np.frombuffer(mem, np.uint8)


# ---- transfers and their NumPy model -----------------------------------------------------------

def geometry(c: dict, B: int) -> tuple[np.ndarray, int]:
    """DRAM byte addresses (rows x row_bytes) and scratchpad rows per DRAM row."""
    addrs = c["dram_addr"] + np.arange(c["rows"])[:, None] * c["dram_stride"] + np.arange(c["row_bytes"])
    return addrs, -(-c["row_bytes"] // B)


def read_model(dram: np.ndarray, c: dict, B: int) -> list[tuple[int, int]]:
    """(row data, last) of every scratchpad row a read command delivers."""
    addrs, per_row = geometry(c, B)
    block = np.zeros((c["rows"], per_row * B), np.uint8)  # short rows are zero-filled
    block[:, : c["row_bytes"]] = dram[addrs]
    rows = block.reshape(-1, B)
    return [(int.from_bytes(row.tobytes(), "little"), int(i == len(rows) - 1)) for i, row in enumerate(rows)]


def write_model(dram: np.ndarray, c: dict, rows: np.ndarray) -> None:
    addrs, _ = geometry(c, rows.shape[1])
    dram[addrs.ravel()] = rows.reshape(c["rows"], -1)[:, : c["row_bytes"]].ravel()  # rows in order


def random_cmd(r: np.random.Generator, W: int, lo: int, hi: int, big: bool = False) -> dict:
    """Any alignment, odd lengths, stride 0 / overlapping / gapped, sometimes next to 4 KiB."""
    if big:  # longer than 4 KiB: several bursts per row
        n, rows = int(r.integers(BOUNDARY_BYTES + 1, 2 * BOUNDARY_BYTES + 3 * W)), int(r.integers(1, 3))
    else:
        n = int(r.choice([r.integers(1, 2 * W + 2), r.integers(1, 200), r.integers(1, 700)]))
        rows = int(r.integers(1, 41))
        rows = max(1, min(rows, max(3000, 200 * W) // n))  # keep the simulation short
    stride = int(r.choice([0, n, n + r.integers(1, 2 * W), r.integers(1, n + 1), r.integers(0, 3 * BOUNDARY_BYTES)]))
    while rows > 1 and (rows - 1) * stride + n > hi - lo:
        rows -= 1
    span = (rows - 1) * stride + n
    addr = int(r.integers(lo, hi - span + 1))
    if r.random() < 0.3:  # start just below a 4 KiB boundary
        near = (addr // BOUNDARY_BYTES + 1) * BOUNDARY_BYTES - int(r.integers(1, 2 * W))
        addr = near if lo <= near <= hi - span else addr
    return {"dram_addr": addr, "rows": rows, "row_bytes": n, "dram_stride": stride}


def edge_cmds(W: int, base: int) -> list[dict]:
    """Corner cases at a 4 KiB-aligned base with 64 KiB + 16 KiB of room."""
    k4 = BOUNDARY_BYTES
    cases = [
        (base, 1, 1, 0),  # one byte
        (base + W - 1, 3, 1, W + 1),  # single bytes at the end of a beat
        (base + 1, 4, 2 * W, 0),  # stride 0: the same row four times
        (base + k4 - 1, 2, 2, k4),  # each row straddles a 4 KiB boundary by one byte
        (base + 3, 2, 2 * k4 + 5, 2 * k4 + 7),  # rows longer than 4 KiB
        (base, 1, MAX_BURST_BEATS * W, 0),  # exactly one 256-beat burst (W <= 16)
        (base + 5, 3, 3 * W, 3 * W - 1),  # overlapping rows
        (base + k4 - W, 5, W, W),  # aligned single beats across a boundary
        (base + 7, 40, 3, 5),
        (base + W // 2, 6, W // 2 + 1, 2 * W),
        (base + 1, 1, (1 << DmaCmd["row_bytes"].width) - 1, 0),  # the longest row
    ]
    return [{"dram_addr": a, "rows": rows, "row_bytes": n, "dram_stride": s} for a, rows, n, s in cases]


def cmd_word(c: dict, n_sizes: int = 1) -> int:
    """A command's payload bits; ``size`` (the row width's index) only for a mover of several."""
    fields = {k: v for k, v in c.items() if k != "size" or n_sizes > 1}
    return sized_cmd(n_sizes).const(fields).as_value().value


def sizes(name: str) -> tuple[int, ...]:
    return mover_sizes(config())[name]


def width_of(name: str, c: dict) -> int:
    """Bytes of the scratchpad rows a command on this mover takes."""
    return sizes(name)[c.get("size", 0)]


def sized(name: str, cmds: list[dict], r: np.random.Generator | None = None) -> list[dict]:
    """The commands with a row width each (random, or in turn without r) on a mover of several."""
    n = len(sizes(name))
    if n == 1:
        return cmds
    return [{**c, "size": int(r.integers(0, n)) if r is not None else i % n} for i, c in enumerate(cmds)]


def cost(c: dict, W: int, B: int) -> int:
    """Cycles a command takes at full speed: beats, or rows when rows are the narrower stream."""
    addrs, per_row = geometry(c, B)
    beats = int(((addrs[:, -1] // W) - (addrs[:, 0] // W) + 1).sum())
    return max(beats, c["rows"] * per_row * max(1, B // W))


def read_bound(beats: int, bursts: int, in_flight: int) -> int:
    """Cycles a read of ``beats`` beats in ``bursts`` equal bursts takes after the first latency,
    at most ``in_flight`` bursts outstanding: a beat a cycle, or, when the bursts in flight do not
    cover the latency, one round of ``in_flight`` bursts per latency plus a burst's beats (the
    slot is free again once its last beat is in)."""
    rounds = -(-bursts // in_flight)
    return max(beats, (rounds - 1) * (LATENCY + beats // bursts + TURNAROUND) + beats // bursts)


# ---- stream drivers -----------------------------------------------------------------------------

class Port:
    def __init__(self, dut, name: str):
        self.valid, self.ready, self.payload = (getattr(dut, f"{name}__{s}") for s in ("valid", "ready", "payload"))


async def drive(clk, port: Port, items: list[int], r: np.random.Generator, p_valid: float) -> None:
    """Offer items in order with random gaps; an offered item stays until taken."""
    for item in items:
        await RisingEdge(clk)
        while r.random() >= p_valid:
            port.valid.value = 0
            await RisingEdge(clk)
        port.valid.value, port.payload.value = 1, item
        await ReadOnly()
        while not port.ready.value:
            await RisingEdge(clk)
            await ReadOnly()
    await RisingEdge(clk)
    port.valid.value = 0


async def collect(clk, port: Port, n: int, r: np.random.Generator, p_ready: float, limit: int) -> list[int]:
    """Take n items with random stalls, then hold ready for a while to catch extra ones."""
    got, cycles = [], 0
    while len(got) < n + 1 and cycles < limit:
        await RisingEdge(clk)
        cycles += 1
        port.ready.value = int(len(got) >= n or r.random() < p_ready)
        await ReadOnly()
        if port.valid.value and port.ready.value:
            got.append(int(port.payload.value))
        if len(got) == n:
            limit = min(limit, cycles + 200)
    assert len(got) >= n, f"watchdog: {len(got)}/{n} rows after {cycles} cycles"
    await RisingEdge(clk)
    port.ready.value = 0
    return got


async def pulses(clk, sig, n: int, limit: int, on_pulse=None) -> int:
    """Count one-cycle pulses of sig until n have come (and 200 quiet cycles more)."""
    seen, cycles = 0, 0
    while cycles < limit:
        await RisingEdge(clk)
        await ReadOnly()
        cycles += 1
        if sig.value:
            if on_pulse:
                on_pulse(seen)
            seen += 1
            if seen == n:
                limit = min(limit, cycles + 200)
    assert seen >= n, f"watchdog: {seen}/{n} pulses after {cycles} cycles"
    return seen


# ---- the checks ---------------------------------------------------------------------------------

def watchdog(name: str, cmds: list[dict], W: int, slow: bool) -> int:
    return (40 if slow else 4) * sum(cost(c, W, width_of(name, c)) + LATENCY for c in cmds) + 2000


async def check_reads(dut, name: str, cmds: list[dict], dram: np.ndarray, r, slow: bool) -> None:
    """Every row of every command once, in order, bit-exact (a row narrower than the mover's
    widest in the low bytes, the bytes above it not compared) and ``last`` on each command's end."""
    W, n_sizes = beat_bytes(config()), len(sizes(name))
    per_cmd = [read_model(dram, c, width_of(name, c)) for c in cmds]
    expect = [row for rows in per_cmd for row in rows]
    masks = [(1 << (8 * width_of(name, c))) - 1 for c, rows in zip(cmds, per_cmd) for _ in rows]
    cocotb.start_soon(drive(dut.clk, Port(dut, f"{name}_cmd"), [cmd_word(c, n_sizes) for c in cmds], r,
                            0.5 if slow else 1))
    got = await collect(dut.clk, Port(dut, f"{name}_rows"), len(expect), r, 0.6 if slow else 1,
                        watchdog(name, cmds, W, slow))
    last_at = dma_row(max(sizes(name)))["last"].offset
    assert len(got) == len(expect), f"{name}: {len(got) - len(expect)} rows more than the {len(expect)} expected"
    got = [(v & mask, v >> last_at) for v, mask in zip(got, masks)]
    starts = np.cumsum([0] + [len(rows) for rows in per_cmd])
    for i, (g, e) in enumerate(zip(got, expect)):
        if g != e:
            k = int(np.searchsorted(starts, i, "right") - 1)
            raise AssertionError(f"{name} row {i} (command {k}: {cmds[k]}, its row {i - starts[k]}): "
                                 f"got {g[0]:#x} last {g[1]}, expected {e[0]:#x} last {e[1]}")
    dut._log.info("%s: %d commands, %d rows checked", name, len(cmds), len(expect))


async def check_writes(dut, name: str, cmds: list[dict], dram: np.ndarray, r, slow: bool) -> None:
    """Run the commands on one writer; at each `done`, DRAM holds that command's bytes (where no
    later command writes) and at the end it equals the model everywhere. A row narrower than the
    writer's widest comes in the low bytes, random bytes above it (which must not be written)."""
    W, n_sizes, widest = beat_bytes(config()), len(sizes(name)), max(sizes(name))
    data = [r.integers(0, 256, (c["rows"] * geometry(c, width_of(name, c))[1], width_of(name, c)), dtype=np.uint8)
            for c in cmds]
    after, model = [], dram.copy()
    for c, rows in zip(cmds, data):
        write_model(model, c, rows)
        after.append(model.copy())
    mine = [geometry(c, width_of(name, c))[0].ravel() for c in cmds]
    later = [np.unique(np.concatenate(mine[k + 1 :])) if k + 1 < len(cmds) else np.zeros(0, int)
             for k in range(len(cmds))]

    def on_done(k: int) -> None:
        assert k < len(cmds), f"{name}: done pulse {k} for {len(cmds)} commands"
        addrs = np.setdiff1d(mine[k], later[k])
        bad = addrs[dram[addrs] != after[k][addrs]]
        assert not bad.size, f"{name}: at done of command {k} ({cmds[k]}) {bad.size} bytes wrong, first at {bad[0]:#x}"

    flat = [int.from_bytes(row.tobytes() + r.integers(0, 256, widest - len(row), dtype=np.uint8).tobytes(), "little")
            for rows in data for row in rows]
    cocotb.start_soon(drive(dut.clk, Port(dut, f"{name}_cmd"), [cmd_word(c, n_sizes) for c in cmds], r,
                            0.5 if slow else 1))
    feeder = cocotb.start_soon(drive(dut.clk, Port(dut, f"{name}_rows"), flat, r, 0.6 if slow else 1))
    seen = await pulses(dut.clk, getattr(dut, f"{name}_done"), len(cmds), watchdog(name, cmds, W, slow), on_done)
    assert seen == len(cmds), f"{name}: {seen} done pulses for {len(cmds)} commands"
    assert feeder.done(), f"{name}: not all {len(flat)} scratchpad rows were taken"
    assert not int(getattr(dut, f"{name}_busy").value), f"{name}: busy after its last done"
    bad = np.flatnonzero(dram != after[-1])
    assert not bad.size, f"{name}: {bad.size} DRAM bytes differ from the model, first at {bad[0]:#x}"
    dut._log.info("%s: %d commands, %d scratchpad rows written", name, len(cmds), len(flat))


async def setup(dut) -> None:
    await start(dut, PERIOD_NS)
    for name in READERS + WRITERS:
        getattr(dut, f"{name}_cmd__valid").value = 0
    for name in READERS:
        getattr(dut, f"{name}_rows__ready").value = 0
    for name in WRITERS:
        getattr(dut, f"{name}_rows__valid").value = 0
    dut.wr_sel.value = 0


def random_cmds(r, n: int, lo: int, hi: int) -> list[dict]:
    W = beat_bytes(config())
    return [random_cmd(r, W, lo, hi, big=r.random() < 0.08) for _ in range(n)]


async def run_writers(dut, r, lo: int, hi: int, n: int, dram: np.ndarray, slow: bool) -> None:
    """Each writer in turn, switching the write mux while both are idle."""
    for i, name in enumerate(WRITERS):
        await RisingEdge(dut.clk)
        dut.wr_sel.value = i
        await check_writes(dut, name, sized(name, random_cmds(r, n, lo, hi), r), dram, r, slow)


@cocotb.test(timeout_time=60, timeout_unit="ms")
async def random_reads_under_backpressure(dut):
    """All readers at once through the arbiter, random commands (of random row widths on the
    reader of several), pauses on AR and R, random memory latency and random rows.ready: every
    row arrives once, in order, bit-exact."""
    r = rng(dut)
    await setup(dut)
    _, _, dram = make_ram(dut, r, pause=0.3, latency=int(r.integers(0, 8)))
    tasks = [cocotb.start_soon(check_reads(dut, name, sized(name, random_cmds(r, 14, 0, MEM_BYTES), r), dram, r,
                                           slow=True))
             for name in READERS]
    for t in tasks:
        await t


@cocotb.test(timeout_time=60, timeout_unit="ms")
async def random_writes_under_backpressure(dut):
    """Random commands on each writer, pauses on AW, W and B, rows offered with gaps: DRAM
    matches the model at every done, WSTRB touches nothing else."""
    r = rng(dut)
    await setup(dut)
    _, _, dram = make_ram(dut, r, pause=0.3)
    await run_writers(dut, r, 0, MEM_BYTES, 14, dram, slow=True)


@cocotb.test(timeout_time=60, timeout_unit="ms")
async def edge_case_transfers(dut):
    """One-byte rows, stride 0, overlaps, rows straddling or longer than 4 KiB, a full
    256-beat burst and the longest row, on every mover (the row widths in turn on a mover of
    several), without pauses."""
    r = rng(dut)
    await setup(dut)
    _, _, dram = make_ram(dut, r, latency=3)
    cmds = edge_cmds(beat_bytes(config()), 2 * BOUNDARY_BYTES)
    for name in READERS:
        await check_reads(dut, name, sized(name, cmds), dram, r, slow=False)
    for i, name in enumerate(WRITERS):
        await RisingEdge(dut.clk)
        dut.wr_sel.value = i
        await check_writes(dut, name, sized(name, cmds), dram, r, slow=False)


@cocotb.test(timeout_time=60, timeout_unit="ms")
async def reads_and_writes_together(dut):
    """Reads of the lower half while the writers fill the upper half, all channels paused at
    random: the read and write halves of the master do not disturb each other."""
    r = rng(dut)
    await setup(dut)
    _, _, dram = make_ram(dut, r, pause=0.2, latency=2)
    half = MEM_BYTES // 2
    readers = [cocotb.start_soon(check_reads(dut, name, sized(name, random_cmds(r, 8, 0, half), r), dram.copy(), r,
                                             slow=True))
               for name in READERS]
    await run_writers(dut, r, half, MEM_BYTES, 8, dram, slow=True)
    for t in readers:
        await t


async def timed(dut, start_port: Port, end_sig) -> int:
    """Cycles from start_port's handshake to the first cycle end_sig() is true."""
    cycles, started = 0, False
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if started:
            cycles += 1
            if end_sig():
                return cycles
            assert cycles < 100_000, "watchdog"
        elif start_port.valid.value and start_port.ready.value:
            started = True


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def streaming_throughput(dut):
    """256 aligned 16-byte rows, 64 bytes apart, with a 20-cycle memory latency and no pauses:
    reads and writes run at one beat (or one narrow row) per cycle after the latency, unless the
    reader's ``dma_outstanding`` bursts in flight do not cover the latency: then each burst slot
    turns over once per latency plus the burst's beats (``read_bound``)."""
    r = rng(dut)
    await setup(dut)
    cfg = config()
    W = beat_bytes(cfg)
    _, ram_rd, dram = make_ram(dut, r, latency=LATENCY)
    cmd = {"dram_addr": BOUNDARY_BYTES, "rows": 256, "row_bytes": 16, "dram_stride": 64}

    name = READERS[0]
    B = sizes(name)[0]
    cmd_port, rows_port = Port(dut, f"{name}_cmd"), Port(dut, f"{name}_rows")
    expect = read_model(dram, cmd, B)
    last_at = dma_row(B)["last"].offset
    rows_port.ready.value = 1
    cocotb.start_soon(drive(dut.clk, cmd_port, [cmd_word(cmd)], r, 1))
    timer = cocotb.start_soon(timed(dut, cmd_port,
                                    lambda: rows_port.valid.value and int(rows_port.payload.value) >> last_at))
    got = await collect(dut.clk, rows_port, len(expect), r, 1, 10 * cost(cmd, W, B) + 1000)
    assert [(v & ((1 << last_at) - 1), v >> last_at) for v in got] == expect
    read_cycles = await timer
    ideal = read_bound(cost(cmd, W, B), ram_rd.bursts, cfg.dma_outstanding)
    bound = ideal + LATENCY + SLACK
    dut._log.info("read: %d rows of %d bytes, %d-bit bus, B = %d: %d cycles (ideal %d + latency %d), %d bursts, "
                  "%d in flight", cmd["rows"], cmd["row_bytes"], 8 * W, B, read_cycles, ideal, LATENCY,
                  ram_rd.bursts, cfg.dma_outstanding)
    assert read_cycles <= bound, f"read took {read_cycles} cycles, bound {bound}"

    name = WRITERS[0]
    B = sizes(name)[0]
    dut.wr_sel.value = 0
    cmd_port = Port(dut, f"{name}_cmd")
    rows = r.integers(0, 256, (cmd["rows"] * geometry(cmd, B)[1], B), dtype=np.uint8)
    model = dram.copy()
    write_model(model, cmd, rows)
    done = getattr(dut, f"{name}_done")
    cocotb.start_soon(drive(dut.clk, Port(dut, f"{name}_rows"),
                            [int.from_bytes(row.tobytes(), "little") for row in rows], r, 1))
    cocotb.start_soon(drive(dut.clk, cmd_port, [cmd_word(cmd)], r, 1))
    write_cycles, bound = await timed(dut, cmd_port, lambda: done.value), cost(cmd, W, B) + SLACK
    dut._log.info("write: %d rows of %d bytes, %d-bit bus, B = %d: %d cycles to done (ideal %d)",
                  cmd["rows"], cmd["row_bytes"], 8 * W, B, write_cycles, cost(cmd, W, B))
    assert np.array_equal(dram, model), "write throughput run wrote wrong bytes"
    assert write_cycles <= bound, f"write took {write_cycles} cycles, bound {bound}"
