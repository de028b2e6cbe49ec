"""Geometry of the on-chip scratchpads (one ``amaranth.lib.memory.Memory`` each).

Every buffer is rows of bytes: ``cfg.buffer_row_bytes(field)`` wide and
``cfg.buffer_depth(field)`` deep, read and written a whole row per cycle. Double buffering
is by halves: with ``double_buffer`` the compiler ping-pongs tiles between the two halves of
each buffer and dependency tokens keep the DMA on one half while the array works on the other.
"""

from __future__ import annotations

from amaranth.lib import memory

from hw.config import AccelConfig
from hw.isa import BUFFER_SIZE_FIELD, Buffer


def row_bytes(cfg: AccelConfig, buf: Buffer) -> int:
    return cfg.buffer_row_bytes(BUFFER_SIZE_FIELD[buf])


def depth(cfg: AccelConfig, buf: Buffer) -> int:
    return cfg.buffer_depth(BUFFER_SIZE_FIELD[buf])


def addr_bits(cfg: AccelConfig, buf: Buffer) -> int:
    return max(1, (depth(cfg, buf) - 1).bit_length())


def read_port(cfg: AccelConfig, buf: Buffer) -> memory.ReadPort.Signature:
    """A read port of the buffer as its user sees it (``In(...)`` of this drives addr/en)."""
    return memory.ReadPort.Signature(addr_width=addr_bits(cfg, buf), shape=8 * row_bytes(cfg, buf))


def write_port(cfg: AccelConfig, buf: Buffer) -> memory.WritePort.Signature:
    return memory.WritePort.Signature(addr_width=addr_bits(cfg, buf), shape=8 * row_bytes(cfg, buf))


def make_memory(cfg: AccelConfig, buf: Buffer) -> memory.Memory:
    """The buffer's memory. A buffer of one row gets a second that no access reaches (every
    address is checked against ``depth``), so that its ports keep a 1-bit address."""
    return memory.Memory(shape=8 * row_bytes(cfg, buf), depth=max(2, depth(cfg, buf)), init=[])
