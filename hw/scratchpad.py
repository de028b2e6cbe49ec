"""Geometry of the on-chip scratchpads (one ``amaranth.lib.memory.Memory`` each).

Every buffer is rows of bytes: ``cfg.buffer_row_bytes(field)`` wide and
``cfg.buffer_depth(field)`` deep, read and written a whole row per cycle, except the PARAM
buffer of a bit-parallel array with fewer requantization lanes than columns: the memory holds
each of its rows as ``pieces`` physical rows of ``pp_lanes`` channels (row r, piece q at
r * pieces + q), since the post-processing unit takes one piece a cycle. The ports below are the
memory's (physical rows); ``row_bytes``, ``depth`` and ``addr_bits`` are the ISA's. Double buffering
is by halves: with ``double_buffer`` the compiler ping-pongs tiles between the two halves of
each buffer and dependency tokens keep the DMA on one half while the array works on the other.
"""

from __future__ import annotations

from amaranth.lib import memory

from hw.axi import beat_bytes
from hw.config import AccelConfig
from hw.isa import BUFFER_SIZE_FIELD, Buffer


def row_bytes(cfg: AccelConfig, buf: Buffer) -> int:
    return cfg.buffer_row_bytes(BUFFER_SIZE_FIELD[buf])


def depth(cfg: AccelConfig, buf: Buffer) -> int:
    return cfg.buffer_depth(BUFFER_SIZE_FIELD[buf])


def addr_bits(cfg: AccelConfig, buf: Buffer) -> int:
    return max(1, (depth(cfg, buf) - 1).bit_length())


def pieces(cfg: AccelConfig, buf: Buffer) -> int:
    """Physical rows one row of the buffer is stored as: for PARAM on a bit-parallel array,
    pp_row_cycles (a piece holds pp_lanes channels), at most one per AXI beat of the row (the
    DMA reader fills a piece from whole beats); 1 for every other buffer."""
    if buf is not Buffer.PARAM or cfg.pe == "serial":  # MATMUL reads GroupParams rows whole
        return 1
    return max(1, min(cfg.pp_row_cycles, row_bytes(cfg, buf) // beat_bytes(cfg)))


def piece_bytes(cfg: AccelConfig, buf: Buffer) -> int:
    """Bytes of one physical row of the buffer (its ports' width)."""
    return row_bytes(cfg, buf) // pieces(cfg, buf)


def port_addr_bits(cfg: AccelConfig, buf: Buffer) -> int:
    return addr_bits(cfg, buf) + (pieces(cfg, buf) - 1).bit_length()


def read_port(cfg: AccelConfig, buf: Buffer) -> memory.ReadPort.Signature:
    """A read port of the buffer as its user sees it (``In(...)`` of this drives addr/en)."""
    return memory.ReadPort.Signature(addr_width=port_addr_bits(cfg, buf), shape=8 * piece_bytes(cfg, buf))


def write_port(cfg: AccelConfig, buf: Buffer) -> memory.WritePort.Signature:
    return memory.WritePort.Signature(addr_width=port_addr_bits(cfg, buf), shape=8 * piece_bytes(cfg, buf))


def make_memory(cfg: AccelConfig, buf: Buffer) -> memory.Memory:
    return memory.Memory(shape=8 * piece_bytes(cfg, buf), depth=depth(cfg, buf) * pieces(cfg, buf), init=[])
