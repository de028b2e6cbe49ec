"""The simulation-only DRAM (sim/hdl/sim_dram.sv) from the Python side: its timing parameters,
the Verilog parameters for an accelerator configuration, a parameterized top level for
`sim.harness.build_verilog`, and backdoor access to its memory from cocotb.

Backdoor speed (cocotb 2.1 + Verilator 5.48, 128-bit words, 16 MiB memory): one VPI handle per
word (`mem[i]`) costs about 10 us, so word-by-word access runs at roughly 0.07-0.1 M words/s
(16 MiB would take about 15 s each way; cocotb's `ArrayObject.value = [...]` also goes element by
element, and its `Immediate` writes are slower still, about 0.02 M words/s). The bulk path has
sim_dram itself run $readmemh / $writememh on a temporary hex file: about 0.5 M words/s loading
and 1.2 M words/s reading back, i.e. 64 KiB in about 10 ms and 16 MiB in 2 s (load) / 0.9 s (read).
It needs the sim_dram instance handle (`dut.u_dram`); given only its `mem` array, or for fewer
than BULK_MIN_WORDS words, the functions go word by word.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hw.axi import ID_BITS
from hw.config import AccelConfig

SIM_DRAM_SV = Path(__file__).resolve().parent / "hdl" / "sim_dram.sv"
MODULE = "sim_dram"
INSTANCE = "u_dram"  # the instance name in wrapper_verilog(): the backdoor is dut.u_dram.mem
_NO_DELAY = 3  # cocotb's _GPISetAction.NO_DELAY: a deposit that takes effect at once
BD_PATH_BYTES = 512  # room for the file name in sim_dram's bd_file
BULK_MIN_WORDS = 64  # from this many words on, a hex file round trip beats per-word VPI


class SimDramConfig(BaseModel):
    """Timing of the simulated DRAM. Cycles are cycles of the AXI clock.

    - read_latency: cycles from the AR handshake to the first R beat of that burst: an AR taken
      in cycle c gives RVALID in cycle c + read_latency (at least 1).
    - write_latency: extra cycles from the last W beat to BVALID: the last beat in cycle c gives
      BVALID in cycle c + 1 + write_latency (0 = the next cycle).
    - beat_gap: idle cycles after each R beat and each accepted W beat; the bandwidth per
      direction is axi_data_bits/8 / (1 + beat_gap) bytes per cycle.
    - max_outstanding: bursts accepted ahead: AW bursts waiting behind the one whose W data comes
      next, and read bursts waiting behind a busy R channel beyond the read_latency ones in the
      latency pipeline (so back-to-back single-beat bursts stream at full rate whatever the
      latency, even with max_outstanding = 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    read_latency: Annotated[int, Field(ge=1, le=4096)] = 20
    write_latency: Annotated[int, Field(ge=0, le=4096)] = 10
    beat_gap: Annotated[int, Field(ge=0, le=65535)] = 0
    max_outstanding: Annotated[int, Field(ge=1, le=256)] = 8

    def bytes_per_cycle(self, cfg: AccelConfig) -> float:
        return cfg.axi_data_bits / 8 / (1 + self.beat_gap)


def verilog_parameters(cfg: AccelConfig, dram: SimDramConfig) -> dict[str, int]:
    """Parameters of sim_dram for the accelerator `cfg`, with `cfg.dram_bytes` of memory."""
    return {
        "DATA_BITS": cfg.axi_data_bits,
        "ADDR_BITS": cfg.axi_addr_bits,
        "ID_BITS": ID_BITS,
        "WORDS": cfg.dram_bytes // (cfg.axi_data_bits // 8),
        "READ_LATENCY": dram.read_latency,
        "WRITE_LATENCY": dram.write_latency,
        "BEAT_GAP": dram.beat_gap,
        "MAX_OUTSTANDING": dram.max_outstanding,
    }


def ports(params: dict[str, int]) -> list[tuple[str, str, int]]:
    """sim_dram's ports as (name, direction, width) for the given parameters."""
    d, a, i = params["DATA_BITS"], params["ADDR_BITS"], params.get("ID_BITS", 1)
    ins = {"clk": 1, "rst": 1,
           "s_axi_awid": i, "s_axi_awaddr": a, "s_axi_awlen": 8, "s_axi_awsize": 3, "s_axi_awburst": 2,
           "s_axi_awvalid": 1, "s_axi_wdata": d, "s_axi_wstrb": d // 8, "s_axi_wlast": 1, "s_axi_wvalid": 1,
           "s_axi_bready": 1,
           "s_axi_arid": i, "s_axi_araddr": a, "s_axi_arlen": 8, "s_axi_arsize": 3, "s_axi_arburst": 2,
           "s_axi_arvalid": 1, "s_axi_rready": 1}
    outs = {"s_axi_awready": 1, "s_axi_wready": 1, "s_axi_bid": i, "s_axi_bresp": 2, "s_axi_bvalid": 1,
            "s_axi_arready": 1, "s_axi_rid": i, "s_axi_rdata": d, "s_axi_rresp": 2, "s_axi_rlast": 1,
            "s_axi_rvalid": 1, "rd_beats": 32, "wr_beats": 32}
    return [(n, "input", w) for n, w in ins.items()] + [(n, "output", w) for n, w in outs.items()]


def wrapper_verilog(top: str, params: dict[str, int]) -> str:
    """A parameterless module `top` with sim_dram's ports around one sim_dram instance (`u_dram`)
    set to `params`: build_verilog([SIM_DRAM_SV, wrapper], top) takes no -G options."""
    decls = ",\n".join(f"    {d} wire {f'[{w - 1}:0] ' if w > 1 else ''}{n}" for n, d, w in ports(params))
    conns = ",\n".join(f"        .{n}({n})" for n, _, _ in ports(params))
    binds = ", ".join(f".{k}({v})" for k, v in params.items())
    return (f"// generated by sim.dram.wrapper_verilog\nmodule {top} (\n{decls}\n);\n"
            f"    {MODULE} #({binds}) {INSTANCE} (\n{conns}\n    );\nendmodule\n")


# ---- backdoor --------------------------------------------------------------------------------

def _split(dram: Any) -> tuple[Any, Any]:
    """(mem array handle, sim_dram instance handle or None) from either handle."""
    from cocotb.handle import ArrayObject

    return (dram, None) if isinstance(dram, ArrayObject) else (dram.mem, dram)


def _words(mem: Any, data_bits: int, addr: int, n: int) -> tuple[int, int, int]:
    """(bytes per word, first word, word count) covering bytes [addr, addr + n) of `mem`."""
    width = len(mem[0])
    if width != data_bits:
        raise ValueError(f"{mem._path} holds {width}-bit words, not {data_bits}-bit ones")
    nb = data_bits // 8
    first, end = addr // nb, -(-(addr + n) // nb)
    if addr < 0 or n < 0 or end > len(mem):
        raise ValueError(f"bytes [{addr:#x}, {addr + n:#x}) lie outside {mem._path} "
                         f"({len(mem) * nb:#x} bytes)")
    return nb, first, end - first


def _get(mem: Any, index: int) -> int:
    return int(mem._handle.get_handle_by_index(index).get_signal_val_binstr(), 2)


def _put(mem: Any, index: int, value: int, bits: int) -> None:
    mem._handle.get_handle_by_index(index).set_signal_val_binstr(_NO_DELAY, format(value, f"0{bits}b"))


async def _transfer(ctl: Any, path: Path, first: int, count: int, load: bool) -> None:
    """Have sim_dram copy `count` words from word `first` between `mem` and the hex file `path`
    (see the backdoor block of sim_dram.sv); returns once the copy is done."""
    from cocotb.handle import Immediate
    from cocotb.triggers import ReadWrite

    name = str(path).encode()
    if len(name) > BD_PATH_BYTES:
        raise ValueError(f"backdoor file path longer than {BD_PATH_BYTES} bytes: {path}")
    # Each request is a change of bd_req, which the simulator evaluates before the next ReadWrite
    # phase of this time step. A request deposited at time 0 before the first evaluation is lost
    # to sim_dram's initial block, so a request that did not run is made again.
    for _ in range(3):
        ctl.bd_file.value = Immediate(int.from_bytes(name, "big"))
        ctl.bd_first.value = Immediate(first)
        ctl.bd_last.value = Immediate(first + count - 1)
        ctl.bd_load.value = Immediate(int(load))
        req = (int(ctl.bd_done.value) + 1) & 0xFFFF_FFFF
        ctl.bd_req.value = Immediate(req)
        await ReadWrite()
        if int(ctl.bd_done.value) == req:
            return
    raise RuntimeError(f"{ctl._path}: backdoor transfer did not run")


def _to_hex(buf: bytes, nb: int) -> bytes:
    """Words of `nb` little-endian bytes -> $readmemh text, one most-significant-first word a line."""
    count = len(buf) // nb
    digits = np.frombuffer(buf, np.uint8).reshape(count, nb)[:, ::-1].tobytes().hex().encode()
    lines = np.empty((count, 2 * nb + 1), np.uint8)
    lines[:, :-1] = np.frombuffer(digits, np.uint8).reshape(count, 2 * nb)
    lines[:, -1] = ord("\n")
    return lines.tobytes()


def _from_hex(text: bytes, nb: int, count: int) -> bytes:
    """$writememh text of `count` words (fixed width, no address marks) -> little-endian bytes."""
    if len(text) != count * (2 * nb + 1):
        raise RuntimeError(f"$writememh wrote {len(text)} bytes, expected {count} lines of {2 * nb} digits")
    digits = np.frombuffer(text, np.uint8).reshape(count, 2 * nb + 1)[:, :-1].tobytes().decode()
    return np.frombuffer(bytes.fromhex(digits), np.uint8).reshape(count, nb)[:, ::-1].tobytes()


@contextmanager
def _scratch_file() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="sim_dram_", suffix=".hex")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        os.unlink(name)


async def read_bytes(dram: Any, data_bits: int, addr: int, n: int) -> bytes:
    """Bytes [addr, addr + n) of the simulated DRAM, without advancing simulation time. `dram` is
    the sim_dram instance (`dut.u_dram`: bulk path) or its `mem` array (word-by-word VPI only).
    Byte k of a word is bits [8k + 7 : 8k], as on the AXI data bus. Not from a ReadOnly phase."""
    if n == 0:
        return b""
    mem, ctl = _split(dram)
    nb, first, count = _words(mem, data_bits, addr, n)
    if ctl is not None and count >= BULK_MIN_WORDS:
        with _scratch_file() as path:
            await _transfer(ctl, path, first, count, load=False)
            out = _from_hex(path.read_bytes(), nb, count)
    else:
        out = b"".join(_get(mem, first + k).to_bytes(nb, "little") for k in range(count))
    lo = addr - first * nb
    return out[lo:lo + n]


async def write_bytes(dram: Any, data_bits: int, addr: int, blob: bytes) -> None:
    """Write `blob` at byte address `addr` of the simulated DRAM, without advancing simulation
    time (`dram` as for read_bytes). Only the words covering the range are touched; partly
    covered edge words are read, merged and written back."""
    if not blob:
        return
    mem, ctl = _split(dram)
    nb, first, count = _words(mem, data_bits, addr, len(blob))
    lo = addr - first * nb
    buf = bytearray(count * nb)
    if lo:
        buf[:nb] = _get(mem, first).to_bytes(nb, "little")
    if (lo + len(blob)) % nb and (count > 1 or not lo):
        buf[-nb:] = _get(mem, first + count - 1).to_bytes(nb, "little")
    buf[lo:lo + len(blob)] = blob
    if ctl is not None and count >= BULK_MIN_WORDS:
        with _scratch_file() as path:
            path.write_bytes(_to_hex(bytes(buf), nb))
            await _transfer(ctl, path, first, count, load=True)
    else:
        for k in range(count):
            _put(mem, first + k, int.from_bytes(buf[k * nb:(k + 1) * nb], "little"), data_bits)
