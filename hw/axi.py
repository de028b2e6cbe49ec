"""AXI4 and AXI4-Lite interfaces as Amaranth signatures, seen from the master.

Flattened into Verilog ports they read ``<prefix>__awaddr`` and so on, which cocotbext-axi
finds with ``AxiBus.from_prefix(dut, "<prefix>_")`` (its bus separator is one more ``_``).
Every master in the design uses one ID (0), so responses return in request order.
"""

from __future__ import annotations

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from hw.config import AccelConfig

__all__ = [
    "AXIL_DATA_BITS", "BOUNDARY_BYTES", "CSR_ADDR_BITS", "ID_BITS", "LEN_BITS", "MAX_BURST_BEATS", "AxiBurst",
    "AxiResp", "axi4", "axi4_members", "axi4_read", "axi4_write", "axil", "beat_bytes", "connect_channels",
    "size_code",
]

ID_BITS = 1
LEN_BITS = 8  # AxLEN: beats - 1
MAX_BURST_BEATS = 1 << LEN_BITS  # the longest INCR burst
BOUNDARY_BYTES = 4096  # an INCR burst never crosses a 4 KiB boundary
AXIL_DATA_BITS = 32
CSR_ADDR_BITS = 12


class AxiBurst(enum.IntEnum, shape=2):
    """AxBURST: the address sequence of a burst (the accelerator issues INCR only)."""

    FIXED = 0
    INCR = 1
    WRAP = 2


class AxiResp(enum.IntEnum, shape=2):
    """xRESP: OKAY, or why a transfer failed (SLVERR, DECERR end a run with BUS_ERROR)."""

    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


def _read_members(addr_bits: int, data_bits: int) -> dict:
    return {
        "arid": Out(ID_BITS), "araddr": Out(addr_bits), "arlen": Out(LEN_BITS), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(ID_BITS), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    }


def _write_members(addr_bits: int, data_bits: int) -> dict:
    return {
        "awid": Out(ID_BITS), "awaddr": Out(addr_bits), "awlen": Out(LEN_BITS), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(ID_BITS), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


def axi4_read(cfg: AccelConfig) -> wiring.Signature:
    """The AR and R channels of the accelerator's AXI4 master."""
    return wiring.Signature(_read_members(cfg.axi_addr_bits, cfg.axi_data_bits))


def axi4_write(cfg: AccelConfig) -> wiring.Signature:
    """The AW, W and B channels of the accelerator's AXI4 master."""
    return wiring.Signature(_write_members(cfg.axi_addr_bits, cfg.axi_data_bits))


def axi4_members(addr_bits: int, data_bits: int) -> dict:
    """All five channels' members, master view (also what a slave model's ports derive from)."""
    return _read_members(addr_bits, data_bits) | _write_members(addr_bits, data_bits)


def axi4(cfg: AccelConfig) -> wiring.Signature:
    """The whole AXI4 master: all five channels."""
    return wiring.Signature(axi4_members(cfg.axi_addr_bits, cfg.axi_data_bits))


def axil(addr_bits: int = CSR_ADDR_BITS, data_bits: int = AXIL_DATA_BITS) -> wiring.Signature:
    """AXI4-Lite, master view (a slave port is ``In(axil())``)."""
    return wiring.Signature({
        "awaddr": Out(addr_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def beat_bytes(cfg: AccelConfig) -> int:
    return cfg.axi_data_bits // 8


def size_code(cfg: AccelConfig) -> int:
    """AxSIZE for full-width beats: log2(bytes per beat)."""
    return beat_bytes(cfg).bit_length() - 1


def connect_channels(m, master, slave, signature: wiring.Signature) -> None:
    """Wire the members of `signature` (master view) from a master-side interface to a
    slave-side one: Out members flow master -> slave, In members slave -> master."""
    for name, member in signature.members.items():
        if member.flow == wiring.Flow.Out:
            m.d.comb += getattr(slave, name).eq(getattr(master, name))
        else:
            m.d.comb += getattr(master, name).eq(getattr(slave, name))
