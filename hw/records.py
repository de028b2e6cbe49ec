"""NumPy packing of ``amaranth.lib.data`` struct records (e.g. ChannelParams) to and from
bytes, read off the layout so the RTL and the software agree on every bit offset."""

from __future__ import annotations

import numpy as np
from amaranth import Shape
from amaranth.lib import data


def field_range(shape) -> tuple[int, int]:
    """Smallest and largest integer a field of this shape holds."""
    s = Shape.cast(shape)
    return (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)


def _fields(layout: data.StructLayout):
    for name, f in layout:
        yield name, f.offset, f.width, Shape.cast(f.shape).signed


def record_bytes(layout: data.StructLayout) -> int:
    if layout.size % 8 or layout.size > 64:
        raise ValueError(f"records of {layout.size} bits are not handled (need whole bytes, <= 64)")
    return layout.size // 8


def pack_records(layout: data.StructLayout, **fields: np.ndarray) -> np.ndarray:
    """Arrays of field values (missing fields are zero) -> little-endian record bytes."""
    nbytes = record_bytes(layout)
    n = len(next(iter(fields.values())))
    word = np.zeros(n, np.uint64)
    for name, offset, width, _ in _fields(layout):
        v = np.asarray(fields.pop(name, np.zeros(n)), np.int64)
        lo, hi = field_range(layout[name].shape)
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"{name}: values outside {lo}..{hi}")
        word |= (v.astype(np.uint64) & np.uint64((1 << width) - 1)) << np.uint64(offset)
    if fields:
        raise ValueError(f"unknown field(s) {sorted(fields)}")
    return word.astype("<u8").view(np.uint8).reshape(n, 8)[:, :nbytes].ravel()


def unpack_records(layout: data.StructLayout, raw: np.ndarray) -> dict[str, np.ndarray]:
    """Record bytes -> one int64 array per field (signed fields sign-extended)."""
    nbytes = record_bytes(layout)
    raw = np.asarray(raw, np.uint8).reshape(-1, nbytes)
    padded = np.zeros((raw.shape[0], 8), np.uint8)
    padded[:, :nbytes] = raw
    word = padded.view("<u8").ravel()
    out = {}
    for name, offset, width, signed in _fields(layout):
        v = ((word >> np.uint64(offset)) & np.uint64((1 << width) - 1)).astype(np.int64)
        if signed:
            v = np.where(v >> (width - 1), v - (1 << width), v)
        out[name] = v
    return out
