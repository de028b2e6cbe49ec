"""Weight and activation datatypes: the value set of each type, its integer codes, bit packing
and round-to-nearest quantization with per-tensor, per-channel and per-group scales.

Every datatype is a table entry: ``values[code]`` is the integer that the code stands for.
Integer types fill that table arithmetically; value-set types (FP4, FP3, ...) list it, and the
same encode/decode/pack/quantize functions serve both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PE_KINDS = ("parallel", "serial")


@dataclass(frozen=True)
class Datatype:
    """One datatype: ``bits``-wide codes; ``values[code]`` is the integer each code stands for."""

    name: str
    bits: int
    values: tuple[int, ...]
    pe_kinds: tuple[str, ...] = PE_KINDS
    description: str = ""
    _sorted: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.values) != 1 << self.bits:
            raise ValueError(f"{self.name}: {1 << self.bits} codes need as many values")
        object.__setattr__(self, "_sorted", np.unique(np.asarray(self.values, np.int64)))

    @property
    def qmin(self) -> int:
        return int(self._sorted[0])

    @property
    def qmax(self) -> int:
        return int(self._sorted[-1])

    @property
    def signed(self) -> bool:
        return self.qmin < 0

    @property
    def code(self) -> int:
        """The type's number in the table; the ISA's dtype field carries it."""
        return list(DATATYPES).index(self.name)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> integer values."""
        return np.asarray(self.values, np.int64)[np.asarray(codes, np.int64)]

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integer values -> codes; every value must be representable."""
        values = np.asarray(values, np.int64)
        lut = {v: c for c, v in enumerate(self.values)}
        flat = values.ravel()
        bad = ~np.isin(flat, self._sorted)
        if bad.any():
            raise ValueError(f"{self.name} cannot represent {flat[bad][:5].tolist()}")
        return np.array([lut[v] for v in flat.tolist()], np.uint8).reshape(values.shape)

    def round(self, x: np.ndarray) -> np.ndarray:
        """Nearest representable value (ties to even for integer ranges, as torch.round)."""
        x = np.asarray(x, np.float64)
        if self.is_integer_range:
            return np.clip(np.rint(x), self.qmin, self.qmax).astype(np.int64)
        mids = (self._sorted[1:] + self._sorted[:-1]) / 2
        # a tie goes to the value of smaller magnitude
        idx = np.where(x < 0, np.searchsorted(mids, x, "right"), np.searchsorted(mids, x, "left"))
        return self._sorted[idx]

    @property
    def is_integer_range(self) -> bool:
        return len(self._sorted) == self.qmax - self.qmin + 1


def _int_type(bits: int, signed: bool) -> Datatype:
    if signed:
        values = tuple(c - (1 << bits) if c >> (bits - 1) else c for c in range(1 << bits))
        pe = ("parallel", "serial") if bits in (2, 4, 8) else ("serial",)
        return Datatype(f"int{bits}", bits, values, pe, f"signed two's complement {bits}-bit")
    return Datatype(f"uint{bits}", bits, tuple(range(1 << bits)), ("serial",), f"unsigned {bits}-bit")


def _table() -> dict[str, Datatype]:
    types = [_int_type(b, True) for b in range(1, 9)] + [_int_type(b, False) for b in range(1, 9)]
    return {t.name: t for t in types}


DATATYPES: dict[str, Datatype] = _table()


def datatype(name: str) -> Datatype:
    try:
        return DATATYPES[name]
    except KeyError:
        raise ValueError(f"unknown datatype {name!r}; known: {', '.join(DATATYPES)}") from None


def by_code(code: int) -> Datatype:
    return list(DATATYPES.values())[code]


# ---- packing ----------------------------------------------------------------------------


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack codes LSB-first into bytes: code i occupies bits [i*bits, (i+1)*bits) of the stream."""
    codes = np.asarray(codes, np.uint8).ravel()
    if codes.size and int(codes.max()) >> bits:
        raise ValueError(f"code {int(codes.max())} does not fit {bits} bits")
    if (codes.size * bits) % 8:
        raise ValueError(f"{codes.size} codes of {bits} bits do not fill whole bytes")
    bitplane = (codes[:, None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(bitplane.ravel(), bitorder="little")


def unpack(data: np.ndarray, bits: int, count: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack`."""
    stream = np.unpackbits(np.asarray(data, np.uint8).ravel(), bitorder="little")
    n = stream.size // bits if count is None else count
    planes = stream[: n * bits].reshape(n, bits).astype(np.uint8)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=1, dtype=np.uint8)


# ---- quantization -----------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer values with their scales: ``real ~= (values - zero_point) * scale``.

    ``scale``/``zero_point`` broadcast against ``values``: a scalar (per tensor), a vector
    along ``axis`` (per channel), or one entry per group of ``group_size`` along ``group_axis``.
    """

    values: np.ndarray
    dtype: Datatype
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    group_axis: int | None = None
    group_size: int | None = None

    @property
    def codes(self) -> np.ndarray:
        return self.dtype.encode(self.values)

    def dequantize(self) -> np.ndarray:
        s = _expand(self.scale, self)
        z = _expand(self.zero_point, self)
        return (self.values - z) * s


def _expand(p: np.ndarray, q: QuantizedTensor) -> np.ndarray:
    """Broadcast a per-tensor/per-channel/per-group parameter to the values' shape."""
    p = np.asarray(p)
    if p.ndim == 0:
        return p
    if q.group_size is not None:
        return np.repeat(p, q.group_size, axis=q.group_axis)
    shape = [1] * q.values.ndim
    shape[q.axis] = -1
    return p.reshape(shape)


def _grouped(x: np.ndarray, axis: int, group_size: int) -> np.ndarray:
    """View x with `axis` split into (groups, group_size), groups then reduced over later."""
    if x.shape[axis] % group_size:
        raise ValueError(
            f"axis {axis} of length {x.shape[axis]} is not a multiple of group_size {group_size}"
        )
    shape = list(x.shape)
    shape[axis : axis + 1] = [x.shape[axis] // group_size, group_size]
    return x.reshape(shape)


def choose_params(
    x: np.ndarray,
    dtype: Datatype,
    axis: int | None = None,
    group_axis: int | None = None,
    group_size: int | None = None,
    symmetric: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point from the data's range.

    Symmetric: ``scale = absmax / ((qmax - qmin) / 2)`` (unsigned: ``/ qmax``), zero point 0.
    Asymmetric (integer types):
    the range [min, max] (widened to contain 0) maps onto [qmin, qmax].
    """
    x = np.asarray(x, np.float64)
    if group_size is not None:
        xs = _grouped(x, group_axis, group_size)
        lo, hi = xs.min(axis=group_axis + 1), xs.max(axis=group_axis + 1)
    elif axis is not None:
        red = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        lo, hi = x.min(axis=red), x.max(axis=red)
    else:
        lo, hi = np.asarray(x.min()), np.asarray(x.max())
    tiny = np.finfo(np.float64).tiny
    if symmetric:
        # as PyTorch's symmetric observers: absmax maps to half the code range
        span = (dtype.qmax - dtype.qmin) / 2 if dtype.signed else dtype.qmax
        scale = np.maximum(np.maximum(np.abs(lo), np.abs(hi)) / span, tiny)
        return scale, np.zeros_like(scale, dtype=np.int64)
    if not dtype.is_integer_range:
        raise ValueError(f"{dtype.name}: asymmetric quantization needs an integer type")
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    scale = np.maximum((hi - lo) / (dtype.qmax - dtype.qmin), tiny)
    zp = np.clip(np.rint(dtype.qmin - lo / scale), dtype.qmin, dtype.qmax).astype(np.int64)
    return scale, zp


def quantize(
    x: np.ndarray,
    dtype: Datatype | str,
    scale: np.ndarray | float | None = None,
    zero_point: np.ndarray | int | None = None,
    axis: int | None = None,
    group_axis: int | None = None,
    group_size: int | None = None,
    symmetric: bool = True,
) -> QuantizedTensor:
    """Round-to-nearest quantization; scales are chosen from the data unless given.

    Give ``axis`` for per-channel scales, ``group_axis`` + ``group_size`` for per-group.
    """
    dt = datatype(dtype) if isinstance(dtype, str) else dtype
    x = np.asarray(x, np.float64)
    if group_size is not None and group_axis is None:
        raise ValueError("group_size needs group_axis")
    if scale is None:
        scale, auto_zp = choose_params(x, dt, axis, group_axis, group_size, symmetric)
        zero_point = auto_zp if zero_point is None else zero_point
    scale = np.asarray(scale, np.float64)
    zero_point = np.asarray(0 if zero_point is None else zero_point, np.int64)
    if np.any(scale <= 0):
        raise ValueError("scales must be positive")
    proto = QuantizedTensor(x, dt, scale, zero_point, axis, group_axis, group_size)
    s, z = _expand(scale, proto), _expand(zero_point, proto)
    if dt.is_integer_range:
        values = dt.round(x / s + z)
    else:
        values = dt.round(x / s) + z
    return QuantizedTensor(values, dt, scale, zero_point, axis, group_axis, group_size)
