"""cocotb testbench of sim/hdl/sim_dram.sv (through the wrapper of sim.dram.wrapper_verilog):
AXI traffic from cocotbext-axi against a NumPy copy of the memory, exact latency and bandwidth
from a per-cycle handshake log, and the backdoor against the bus.

The wrapper's parameters arrive as JSON in SIM_DRAM_PARAMS."""

from __future__ import annotations

import json
import os
import time
from functools import cache

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiMaster, AxiResp

from hw.axi import AxiBurst
from sim.dram import read_bytes, write_bytes
from sim.tb.common import rng, start

PARAMS_ENV = "SIM_DRAM_PARAMS"


@cache
def params() -> dict[str, int]:
    return json.loads(os.environ[PARAMS_ENV])


def beat_bytes() -> int:
    return params()["DATA_BITS"] // 8


def mem_bytes() -> int:
    return params()["WORDS"] * beat_bytes()


def period() -> int:
    """Cycles between beats at full rate."""
    return 1 + params()["BEAT_GAP"]


INPUTS = ("awid", "awaddr", "awlen", "awsize", "awburst", "awvalid", "wdata", "wstrb", "wlast", "wvalid", "bready",
          "arid", "araddr", "arlen", "arsize", "arburst", "arvalid", "rready")


async def setup(dut, r: np.random.Generator, axi: bool = True) -> tuple[AxiMaster | None, np.ndarray]:
    """Idle inputs, clock, reset; random memory contents loaded through the backdoor. Returns the
    bus master (or None for tests that drive the pins) and the NumPy copy of the memory."""
    for name in INPUTS:
        getattr(dut, f"s_axi_{name}").value = 0
    master = AxiMaster(AxiBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst) if axi else None
    model = r.integers(0, 256, mem_bytes(), dtype=np.uint8)
    await write_bytes(dram(dut), params()["DATA_BITS"], 0, model.tobytes())
    await start(dut)
    return master, model


def dram(dut):
    return dut.u_dram


def random_span(r: np.random.Generator, limit: int) -> tuple[int, int]:
    """An address and a length, mostly short, sometimes several bursts long, at any byte offset."""
    n = int(r.integers(1, 65)) if r.random() < 0.7 else int(r.integers(65, min(limit, 4 * 256 * beat_bytes())))
    return int(r.integers(0, limit - n + 1)), n


async def check_read(axi: AxiMaster, model: np.ndarray, addr: int, n: int) -> None:
    resp = await axi.read(addr, n)
    assert resp.resp == AxiResp.OKAY
    want = model[addr:addr + n].tobytes()
    assert resp.data == want, f"read [{addr:#x}, +{n}) differs at byte {first_diff(resp.data, want)}"


def first_diff(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# ---- whole transactions through cocotbext-axi --------------------------------------------------

@cocotb.test(timeout_time=20, timeout_unit="ms")
async def random_reads_and_writes(dut):
    """Random unaligned reads and writes (the master splits them into bursts and strobes): every
    read returns what the NumPy copy holds."""
    r = rng(dut)
    axi, model = await setup(dut, r)
    for _ in range(200):
        addr, n = random_span(r, mem_bytes())
        if r.random() < 0.5:
            data = r.integers(0, 256, n, dtype=np.uint8)
            resp = await axi.write(addr, data.tobytes())
            assert resp.resp == AxiResp.OKAY
            model[addr:addr + n] = data
        else:
            await check_read(axi, model, addr, n)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def concurrent_readers(dut):
    """Four readers at once: their bursts queue up in the slave (more than one AR outstanding) and
    each still gets its own data."""
    r = rng(dut)
    axi, model = await setup(dut, r)
    log = Timeline(dut)

    async def reader(seed: int) -> None:
        rr = np.random.default_rng(seed)
        for _ in range(40):
            await check_read(axi, model, *random_span(rr, mem_bytes()))

    tasks = [cocotb.start_soon(reader(int(s))) for s in r.integers(0, 1 << 31, 4)]
    for t in tasks:
        await t
    assert log.max_outstanding_reads() >= 2, "never more than one read burst outstanding"


@cocotb.test(timeout_time=40, timeout_unit="ms")
async def backpressure_everywhere(dut):
    """Random stalls on all five channels (ready low on R and B, valid gaps on AR, AW and W) while
    a writer and two readers run at once on disjoint halves: nothing is lost or duplicated."""
    r = rng(dut)
    axi, model = await setup(dut, r)
    for ch, p in ((axi.read_if.r_channel, 0.5), (axi.write_if.b_channel, 0.6), (axi.read_if.ar_channel, 0.3),
                  (axi.write_if.aw_channel, 0.3), (axi.write_if.w_channel, 0.4)):
        ch.set_pause_generator(pauses(np.random.default_rng(int(r.integers(1 << 31))), p))
    half = mem_bytes() // 2
    written = model[:half].copy()

    async def writer() -> None:
        for _ in range(60):
            addr, n = random_span(r, half)
            data = r.integers(0, 256, n, dtype=np.uint8)
            assert (await axi.write(addr, data.tobytes())).resp == AxiResp.OKAY
            written[addr:addr + n] = data

    async def reader(seed: int) -> None:
        rr = np.random.default_rng(seed)
        for _ in range(30):
            addr, n = random_span(rr, half)
            await check_read(axi, model, half + addr, n)

    tasks = [cocotb.start_soon(writer())] + [cocotb.start_soon(reader(int(s))) for s in r.integers(0, 1 << 31, 2)]
    for t in tasks:
        await t
    model[:half] = written
    await check_read(axi, model, 0, half)


def pauses(r: np.random.Generator, p: float):
    """Endless pause pattern: runs of stalls with probability `p` per cycle."""
    while True:
        yield bool(r.random() < p)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def addresses_wrap_around(dut):
    """A write that runs off the end of the memory continues at address 0; reads alias likewise."""
    r = rng(dut)
    axi, model = await setup(dut, r)
    size, nb = mem_bytes(), beat_bytes()
    data = r.integers(0, 256, 4 * nb, dtype=np.uint8)
    await axi.write(size - 2 * nb, data.tobytes())
    bits = params()["DATA_BITS"]
    got = await read_bytes(dram(dut), bits, size - 2 * nb, 2 * nb) + await read_bytes(dram(dut), bits, 0, 2 * nb)
    assert got == data.tobytes()
    model[size - 2 * nb:] = data[:2 * nb]
    model[:2 * nb] = data[2 * nb:]
    if (1 << params()["ADDR_BITS"]) >= 2 * size:
        resp = await axi.read(size + 3, 2 * nb)
        assert resp.data == model[3:3 + 2 * nb].tobytes()


# ---- timing, from a per-cycle log of handshakes ------------------------------------------------

class Timeline:
    """Handshakes on every channel, sampled each cycle after the clock edge settles: entry
    (k, ...) means the handshake completes at the (k+1)-th rising edge after the log started."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.ar: list[tuple[int, int]] = []
        self.r: list[tuple[int, int, int]] = []
        self.aw: list[int] = []
        self.w: list[int] = []
        self.b: list[int] = []
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        d = self.dut
        while True:
            await ReadOnly()
            if d.s_axi_arvalid.value and d.s_axi_arready.value:
                self.ar.append((self.cycle, int(d.s_axi_arlen.value)))
            if d.s_axi_rvalid.value and d.s_axi_rready.value:
                self.r.append((self.cycle, int(d.s_axi_rdata.value), int(d.s_axi_rlast.value)))
            if d.s_axi_awvalid.value and d.s_axi_awready.value:
                self.aw.append(self.cycle)
            if d.s_axi_wvalid.value and d.s_axi_wready.value:
                self.w.append(self.cycle)
            if d.s_axi_bvalid.value and d.s_axi_bready.value:
                self.b.append(self.cycle)
            await RisingEdge(d.clk)
            self.cycle += 1

    def max_outstanding_reads(self) -> int:
        """Most read bursts accepted and not yet finished at any cycle."""
        events = [(c, 1) for c, _ in self.ar] + [(c, -1) for c, _, last in self.r if last]
        level = peak = 0
        for _, step in sorted(events):
            level += step
            peak = max(peak, level)
        return peak


async def hold(dut, ready: str) -> None:
    """Wait for the clock edge that completes a handshake on the channel whose ready is `ready`."""
    while True:
        await ReadOnly()
        fire = bool(getattr(dut, ready).value)
        await RisingEdge(dut.clk)
        if fire:
            return


async def drive_ar(dut, bursts: list[tuple[int, int, int]]) -> None:
    """Offer (address, beats, burst type) on AR back to back, from right after a clock edge."""
    size = beat_bytes().bit_length() - 1
    for addr, beats, kind in bursts:
        dut.s_axi_araddr.value = addr
        dut.s_axi_arlen.value = beats - 1
        dut.s_axi_arburst.value = kind
        dut.s_axi_arsize.value = size
        dut.s_axi_arvalid.value = 1
        await hold(dut, "s_axi_arready")
    dut.s_axi_arvalid.value = 0


async def drive_aw(dut, bursts: list[tuple[int, int]]) -> None:
    size = beat_bytes().bit_length() - 1
    for addr, beats in bursts:
        dut.s_axi_awaddr.value = addr
        dut.s_axi_awlen.value = beats - 1
        dut.s_axi_awburst.value = AxiBurst.INCR
        dut.s_axi_awsize.value = size
        dut.s_axi_awvalid.value = 1
        await hold(dut, "s_axi_awready")
    dut.s_axi_awvalid.value = 0


async def drive_w(dut, words: list[int], lasts: list[bool]) -> None:
    dut.s_axi_wstrb.value = (1 << beat_bytes()) - 1
    for word, last in zip(words, lasts):
        dut.s_axi_wdata.value = word
        dut.s_axi_wlast.value = int(last)
        dut.s_axi_wvalid.value = 1
        await hold(dut, "s_axi_wready")
    dut.s_axi_wvalid.value = 0


def word(model: np.ndarray, index: int) -> int:
    nb = beat_bytes()
    return int.from_bytes(model[index * nb:(index + 1) * nb].tobytes(), "little")


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def read_and_write_latency(dut):
    """From idle, the first R beat comes READ_LATENCY cycles after its AR handshake; BVALID comes
    1 + WRITE_LATENCY cycles after the last W beat; a 4-beat burst's beats are 1 + BEAT_GAP apart."""
    r = rng(dut)
    _, model = await setup(dut, r, axi=False)
    p, nb = params(), beat_bytes()
    dut.s_axi_rready.value = 1
    dut.s_axi_bready.value = 1
    await RisingEdge(dut.clk)
    log = Timeline(dut)
    await drive_ar(dut, [(40 * nb, 1, AxiBurst.INCR)])
    await ClockCycles(dut.clk, p["READ_LATENCY"] + 4)
    assert len(log.r) == 1 and log.r[0][0] - log.ar[0][0] == p["READ_LATENCY"], (log.ar, log.r)
    assert log.r[0][1:] == (word(model, 40), 1)

    start_r = len(log.r)
    await drive_ar(dut, [(7 * nb, 4, AxiBurst.INCR)])
    await ClockCycles(dut.clk, p["READ_LATENCY"] + 4 * period() + 4)
    beats = log.r[start_r:]
    assert [c - log.ar[1][0] for c, _, _ in beats] == [p["READ_LATENCY"] + k * period() for k in range(4)], beats
    assert [(d, last) for _, d, last in beats] == [(word(model, 7 + k), int(k == 3)) for k in range(4)]

    data = [int.from_bytes(r.bytes(nb), "little") for _ in range(2)]
    aw = cocotb.start_soon(drive_aw(dut, [(100 * nb, 2)]))
    await drive_w(dut, data, [False, True])
    await aw
    await ClockCycles(dut.clk, p["WRITE_LATENCY"] + 4)
    assert len(log.b) == 1 and log.b[0] - log.w[-1] == 1 + p["WRITE_LATENCY"], (log.w, log.b)
    assert log.w[1] - log.w[0] == period()
    got = await read_bytes(dram(dut), p["DATA_BITS"], 100 * nb, 2 * nb)
    assert got == b"".join(d.to_bytes(nb, "little") for d in data)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def back_to_back_single_beat_reads(dut):
    """64 single-beat bursts offered one per cycle stream out one beat every 1 + BEAT_GAP cycles:
    the last beat arrives READ_LATENCY + 63 * (1 + BEAT_GAP) cycles after the first AR."""
    r = rng(dut)
    _, model = await setup(dut, r, axi=False)
    p, nb, n = params(), beat_bytes(), 64
    idx = [int(i) for i in r.integers(0, p["WORDS"], n)]
    dut.s_axi_rready.value = 1
    await RisingEdge(dut.clk)
    log = Timeline(dut)
    await drive_ar(dut, [(i * nb, 1, AxiBurst.INCR) for i in idx])
    await ClockCycles(dut.clk, p["READ_LATENCY"] + n * period() + 4)
    cycles = [c for c, _, _ in log.r]
    assert [d for _, d, _ in log.r] == [word(model, i) for i in idx]
    assert cycles[0] - log.ar[0][0] == p["READ_LATENCY"]
    assert np.all(np.diff(cycles) == period()), cycles
    assert cycles[-1] - log.ar[0][0] == p["READ_LATENCY"] + (n - 1) * period()
    assert int(dut.rd_beats.value) == n
    dut._log.info("%d single-beat reads: %d cycles from first AR to last R", n, cycles[-1] - log.ar[0][0] + 1)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def back_to_back_bursts_of_mixed_kinds(dut):
    """INCR, FIXED and WRAP bursts of 1 to 8 beats back to back keep the R channel busy; FIXED
    repeats its word, WRAP counts up like INCR."""
    r = rng(dut)
    _, model = await setup(dut, r, axi=False)
    p, nb = params(), beat_bytes()
    bursts = [(int(r.integers(0, p["WORDS"] - 8)) * nb, int(r.integers(1, 9)), int(r.choice([0, 1, 1, 2])))
              for _ in range(24)]
    dut.s_axi_rready.value = 1
    await RisingEdge(dut.clk)
    log = Timeline(dut)
    await drive_ar(dut, bursts)
    total = sum(b for _, b, _ in bursts)
    await ClockCycles(dut.clk, p["READ_LATENCY"] + total * period() + 4)
    want = [(word(model, a // nb + (0 if kind == AxiBurst.FIXED else k)), int(k == beats - 1))
            for a, beats, kind in bursts for k in range(beats)]
    assert [(d, last) for _, d, last in log.r] == want
    assert np.all(np.diff([c for c, _, _ in log.r]) == period())


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def back_to_back_single_beat_writes(dut):
    """64 single-beat write bursts: W taken every 1 + BEAT_GAP cycles, 64 responses, the last one
    1 + WRITE_LATENCY cycles after the last W beat; the data land in memory."""
    r = rng(dut)
    await setup(dut, r, axi=False)
    p, nb, n = params(), beat_bytes(), 64
    idx = [int(i) for i in r.choice(p["WORDS"], n, replace=False)]
    data = [int.from_bytes(r.bytes(nb), "little") for _ in range(n)]
    dut.s_axi_bready.value = 1
    await RisingEdge(dut.clk)
    log = Timeline(dut)
    aw = cocotb.start_soon(drive_aw(dut, [(i * nb, 1) for i in idx]))
    await drive_w(dut, data, [True] * n)
    await aw
    await ClockCycles(dut.clk, p["WRITE_LATENCY"] + 4)
    assert np.all(np.diff(log.w) == period()), log.w
    assert log.w[0] - log.aw[0] == 1
    assert len(log.b) == n and log.b[-1] - log.w[-1] == 1 + p["WRITE_LATENCY"]
    assert int(dut.wr_beats.value) == n
    image = await read_bytes(dram(dut), p["DATA_BITS"], 0, mem_bytes())
    for i, d in zip(idx, data):
        assert image[i * nb:(i + 1) * nb] == d.to_bytes(nb, "little")


# ---- backdoor -----------------------------------------------------------------------------------

@cocotb.test(timeout_time=20, timeout_unit="ms")
async def backdoor_agrees_with_the_bus(dut):
    """write_bytes at random byte ranges, through the bulk path (instance handle) or word by word
    (`mem` handle), is what AXI reads see; AXI writes are what read_bytes sees; bytes next to a
    backdoor write keep their value."""
    r = rng(dut)
    axi, model = await setup(dut, r)
    bits = params()["DATA_BITS"]
    for _ in range(60):
        addr, n = random_span(r, mem_bytes())
        data = r.integers(0, 256, n, dtype=np.uint8)
        handle = dram(dut) if r.random() < 0.5 else dram(dut).mem
        if r.random() < 0.5:
            await write_bytes(handle, bits, addr, data.tobytes())
            model[addr:addr + n] = data
            lo, hi = max(0, addr - beat_bytes()), min(mem_bytes(), addr + n + beat_bytes())
            await check_read(axi, model, lo, hi - lo)
        else:
            await axi.write(addr, data.tobytes())
            model[addr:addr + n] = data
            lo, hi = max(0, addr - 3), min(mem_bytes(), addr + n + 3)
            assert await read_bytes(handle, bits, lo, hi - lo) == model[lo:hi].tobytes()
    assert await read_bytes(dram(dut), bits, 0, mem_bytes()) == model.tobytes()
    assert await read_bytes(dram(dut).mem, bits, 0, mem_bytes()) == model.tobytes()


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def backdoor_speed(dut):
    """Load and read back 64 KiB (or the whole memory if smaller) through the backdoor, bulk and
    word by word, and log the rates in words per second."""
    r = rng(dut)
    await setup(dut, r, axi=False)
    bits, n = params()["DATA_BITS"], min(64 * 1024, mem_bytes())
    words = n // (bits // 8)
    for name, handle in (("bulk ($readmemh/$writememh)", dram(dut)), ("per-word VPI", dram(dut).mem)):
        blob = r.bytes(n)
        t0 = time.perf_counter()
        await write_bytes(handle, bits, 0, blob)
        t1 = time.perf_counter()
        back = await read_bytes(handle, bits, 0, n)
        t2 = time.perf_counter()
        assert back == blob
        dut._log.info("backdoor %s: %d words of %d bits: write %.0f words/s, read %.0f words/s",
                      name, words, bits, words / (t1 - t0), words / (t2 - t1))
