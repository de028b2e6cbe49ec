"""Weight and activation datatypes: the value set of each type, its integer codes, bit packing
and round-to-nearest quantization with per-tensor, per-channel and per-group scales.

Every datatype is a table entry: ``values[code]`` is the integer that the code stands for.
Integer types fill that table arithmetically; value-set types (FP4, FP3, BitMoD's ER/EA
variants, FLINT4, ternary, binary) list it, and the same encode/decode/pack/quantize functions
serve both. Every value is also written as ``(-1)^sign * mant * 2^exp`` (:meth:`Datatype.terms`),
the one integer form the bit-serial PE consumes (docs/datatypes.md).
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
    _terms: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.values) != 1 << self.bits:
            raise ValueError(f"{self.name}: {1 << self.bits} codes need as many values")
        object.__setattr__(self, "_sorted", np.unique(np.asarray(self.values, np.int64)))
        object.__setattr__(self, "_terms", _decompose(np.asarray(self.values, np.int64), self.is_integer_range))

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
        """Integer values -> codes; every value must be representable. A value that two codes
        stand for (0 and -0 of sign-magnitude types) takes the lower code."""
        values = np.asarray(values, np.int64)
        bad = ~np.isin(values, self._sorted)
        if bad.any():
            raise ValueError(f"{self.name} cannot represent {values[bad][:5].tolist()}")
        table = np.asarray(self.values, np.int64)
        first = np.unique(table, return_index=True)[1]  # lowest code of each sorted value
        return first[np.searchsorted(self._sorted, values)].astype(np.uint8)

    def terms(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Codes -> ``(sign, mant, exp)`` with ``value = (-1)^sign * mant * 2^exp``.

        Integer ranges keep ``exp = 0, mant = |value|``; value sets take the smallest mant
        (odd, or 0 for zero), so a weight costs ``mant_bits`` bit-serial cycles.
        """
        codes = np.asarray(codes, np.int64)
        return tuple(t[codes] for t in self._terms)

    @property
    def mant_bits(self) -> int:
        """Bit length of the largest mant: the bit-serial cycles one weight takes."""
        return int(self._terms[1].max()).bit_length()

    @property
    def exp_bits(self) -> int:
        """Bit length of the largest exp (0 when every exp is 0)."""
        return int(self._terms[2].max()).bit_length()

    def round(self, x: np.ndarray) -> np.ndarray:
        """Nearest representable value (ties to even for integer ranges, as torch.round)."""
        x = np.asarray(x, np.float64)
        if self.is_integer_range:
            return np.clip(np.rint(x), self.qmin, self.qmax).astype(np.int64)
        mids = (self._sorted[1:] + self._sorted[:-1]) / 2
        idx = self._mid_index(x, mids)  # a tie goes to the lower value ...
        # ... or, below zero, to the upper one: the value of smaller magnitude
        idx += (x < 0) & (mids[np.minimum(idx, len(mids) - 1)] == x)
        return self._sorted[idx]

    @staticmethod
    def _mid_index(x: np.ndarray, mids: np.ndarray) -> np.ndarray:
        """``searchsorted(mids, x, "left")`` by table: the values are integers, so every midpoint
        is a multiple of 1/2 and the count of midpoints below x depends only on floor(2x) and on
        whether x sits exactly on one (several times faster on the quantizer's large arrays)."""
        two = 2 * x
        j = np.floor(two)
        lo, hi = int(2 * mids[0]) - 1, int(2 * mids[-1])
        jc = np.clip(j, lo, hi).astype(np.int64)
        halves = np.arange(lo, hi + 1) / 2
        le = np.searchsorted(mids, halves, "right")  # midpoints <= j / 2
        on_mid = np.isin(halves, mids)
        k = jc - lo
        return le[k] - ((two == jc) & on_mid[k])

    @property
    def is_integer_range(self) -> bool:
        return len(self._sorted) == self.qmax - self.qmin + 1


def _decompose(values: np.ndarray, integer_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value as (sign, mant, exp); value sets strip the factors of two from mant into exp."""
    sign = (values < 0).astype(np.int64)
    mag = np.abs(values)
    exp = np.zeros_like(mag)
    if not integer_range:
        # trailing zeros of mag: mag & -mag isolates the lowest set bit (0 stays 0)
        low = mag & -mag
        exp = np.where(mag > 0, np.log2(np.maximum(low, 1)).astype(np.int64), 0)
    return sign, mag >> exp, exp


def _int_type(bits: int, signed: bool) -> Datatype:
    if signed:
        values = tuple(c - (1 << bits) if c >> (bits - 1) else c for c in range(1 << bits))
        pe = ("parallel", "serial") if bits in (2, 4, 8) else ("serial",)
        return Datatype(f"int{bits}", bits, values, pe, f"signed two's complement {bits}-bit")
    return Datatype(f"uint{bits}", bits, tuple(range(1 << bits)), ("serial",), f"unsigned {bits}-bit")


def _minifloat(exp_bits: int, man_bits: int) -> tuple[int, ...]:
    """Magnitudes of an ExMy float with subnormals and no inf/NaN, in code order, scaled so the
    smallest subnormal is 1: E2M1 -> 0, 1, 2, 3, 4, 6, 8, 12 (0, 0.5, ..., 6 times 2)."""
    out = []
    for e in range(1 << exp_bits):
        for m in range(1 << man_bits):
            out.append(m if e == 0 else ((1 << man_bits) + m) << (e - 1))
    return tuple(out)


def _sign_magnitude(name: str, bits: int, magnitudes: tuple[int, ...], special: int | None = None,
                    description: str = "") -> Datatype:
    """Top code bit = sign, low bits index ``magnitudes``; the code of -0 stands for 0, or for
    ``special``, the one value BitMoD's ER/EA variants add. Serial PE only."""
    negatives = tuple(-m for m in magnitudes)
    if special is not None:
        negatives = (special, *negatives[1:])
    return Datatype(name, bits, tuple(magnitudes) + negatives, ("serial",), description)


FP3 = _minifloat(2, 0)
FP4 = _minifloat(2, 1)
FLINT4 = (*FP4[:-1], 16)  # ANT's 4-bit flint: E2M1's top value 12 becomes 16
# BitMoD's special values (the value the -0 code is redefined to); ER = extra resolution
# between the two largest magnitudes, EA = extra asymmetry beyond the largest magnitude.
SPECIAL_VALUES = {
    "fp3": {"er": 3, "ea": 6},
    "fp4": {"er": 10, "ea": 16},
}


def _value_set_types() -> list[Datatype]:
    types = [_sign_magnitude("fp3", 3, FP3, description="FP3 E2M0 (sign, 2 exponent bits)")]
    for kind, v in SPECIAL_VALUES["fp3"].items():
        for sign, sv in (("pos", v), ("neg", -v)):
            types.append(_sign_magnitude(f"fp3_{kind}_{sign}", 3, FP3, sv, f"BitMoD FP3 with {sv:+d}"))
    types.append(_sign_magnitude("fp4", 4, FP4, description="FP4 E2M1 (OCP MX FP4) times 2"))
    for kind, v in SPECIAL_VALUES["fp4"].items():
        for sign, sv in (("pos", v), ("neg", -v)):
            types.append(_sign_magnitude(f"fp4_{kind}_{sign}", 4, FP4, sv, f"BitMoD FP4 with {sv:+d}"))
    types.append(_sign_magnitude("flint4", 4, FLINT4, description="ANT's signed 4-bit flint"))
    types.append(_sign_magnitude("ternary", 2, (0, 1), description="BitNet b1.58 ternary {-1, 0, +1}"))
    types.append(_sign_magnitude("binary", 1, (1,), description="binary {-1, +1}"))
    return types


def _table() -> dict[str, Datatype]:
    # codes are table positions: new types go last so that existing codes stay
    types = [_int_type(b, True) for b in range(1, 9)] + [_int_type(b, False) for b in range(1, 9)]
    return {t.name: t for t in types + _value_set_types()}


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
