"""The compiler's graph IR: values (tensors with shape, dtype and quantization) and ops, in
topological order, plus the constant arrays the ops read. Plain frozen dataclasses; ``str()``
prints a listing.

Quantized activations are kept in the accelerator's signed domain: a PyTorch ``uint8`` tensor
with zero point ``z`` is the ``int8`` tensor ``q - 128`` with zero point ``z - 128`` (same real
values), so every op sees signed INT8 codes; ``QParams.offset`` remembers the shift for the
boundary with PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hw.datatypes import DATATYPES, by_code

# What a value holds: quantized activations, raw accumulators, or real numbers.
DTYPES = ("int8", "int32", "float32", "int64")  # int64: token ids, masks
PLACEMENTS = ("accel", "host")


@dataclass(frozen=True)
class QParams:
    """Per-tensor affine quantization in the signed domain: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int
    qmin: int = -128
    qmax: int = 127
    offset: int = 0  # what PyTorch's codes are minus ours: 128 for a uint8 tensor, 0 for int8

    def __str__(self) -> str:
        return f"s={self.scale:.6g} z={self.zero_point}"


@dataclass(frozen=True)
class Value:
    """A tensor: logical (PyTorch) shape, dtype and, for int8, its quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    q: QParams | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"value {self.name}: dtype {self.dtype!r} is not one of {DTYPES}")
        if (self.dtype == "int8") != (self.q is not None):
            raise ValueError(f"value {self.name}: an int8 value needs QParams and only an int8 value has them")

    def __str__(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        return f"%{self.name}: {self.dtype}[{shape}]" + (f" ({self.q})" if self.q else "")


@dataclass(frozen=True, eq=False)
class Op:
    """One operation. ``kind`` names what it computes (see compiler/hostops.py for host kinds and
    compiler/lowering.py for the accelerator's); ``source`` is the graph node it came from
    (``node.name: target``) so reports and errors can name it."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    placement: str = "host"
    source: str = ""
    reason: str = ""  # why a host op is not on the accelerator

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"op {self.name}: placement {self.placement!r} is not one of {PLACEMENTS}")

    @property
    def output(self) -> str:
        return self.outputs[0]

    def __str__(self) -> str:
        attrs = " ".join(f"{k}={_short(v)}" for k, v in self.attrs.items()
                         if v is not None and not (isinstance(v, dict) and not v))
        outs = ", ".join(f"%{o}" for o in self.outputs)
        ins = ", ".join(f"%{i}" for i in self.inputs)
        where = f"[{self.placement}]"
        tail = f"  # {self.reason}" if self.reason else ""
        return f"{outs} = {self.kind}({ins}) {attrs} {where}".replace("  [", " [") + tail


@dataclass(frozen=True)
class Ref:
    """A host op's argument: its i-th input value."""

    index: int


@dataclass(frozen=True)
class CRef:
    """A host op's argument: the graph constant of this name."""

    name: str


def _short(v: Any) -> str:
    """A compact attribute: arrays by dtype and shape, references to inputs as $i and constants as @name."""
    if isinstance(v, np.ndarray):
        return f"<{v.dtype}{list(v.shape)}>"
    if hasattr(v, "describe"):
        return v.describe()
    if isinstance(v, Ref):
        return f"${v.index}"
    if isinstance(v, CRef):
        return f"@{v.name}"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple | list):
        return "(" + ",".join(_short(x) for x in v) + ")"
    return str(v)


@dataclass(frozen=True)
class Graph:
    """Ops in topological order over named values; ``consts`` holds the arrays ops refer to by name."""

    values: dict[str, Value]
    ops: tuple[Op, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    consts: dict[str, np.ndarray] = field(default_factory=dict)

    def value(self, name: str) -> Value:
        return self.values[name]

    def producer(self, name: str) -> Op | None:
        for op in self.ops:
            if name in op.outputs:
                return op
        return None

    def users(self, name: str) -> list[Op]:
        return [op for op in self.ops if name in op.inputs]

    def with_ops(self, ops: Iterable[Op], values: dict[str, Value] | None = None,
                 consts: dict[str, np.ndarray] | None = None) -> Graph:
        """The same graph with new ops (and optionally values and constants); unused values are dropped."""
        ops = tuple(ops)
        vals = dict(self.values if values is None else values)
        used = set(self.inputs) | set(self.outputs)
        for op in ops:
            used |= set(op.inputs) | set(op.outputs)
        return replace(self, ops=ops, values={k: v for k, v in vals.items() if k in used},
                       consts=self.consts if consts is None else consts)

    def check(self) -> Graph:
        """Every op reads values defined before it; raises naming the op otherwise."""
        defined = set(self.inputs)
        for op in self.ops:
            missing = [i for i in op.inputs if i not in defined]
            if missing:
                raise ValueError(f"op {op.name} ({op.source}) reads {missing} before they are defined")
            defined |= set(op.outputs)
        lost = [o for o in self.outputs if o not in defined]
        if lost:
            raise ValueError(f"graph outputs {lost} are never computed")
        return self

    def __str__(self) -> str:
        lines = ["graph(" + ", ".join(str(self.values[i]) for i in self.inputs) + "):"]
        for op in self.ops:
            lines.append("  " + str(op))
            for o in op.outputs:
                lines.append("      " + str(self.values[o]))
        lines.append("  return " + ", ".join(f"%{o}" for o in self.outputs))
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class QWeight:
    """A quantized weight of PyTorch shape (N, K/groups, ...): each code is read in its group's
    datatype; the integer weight is ``(value - zero_point) * group_scale`` and the real weight that
    times ``channel_scales[n]``. Group g of channel n covers axis-1 indices
    ``[g * group_size, (g + 1) * group_size)`` (all kernel positions of those input channels)."""

    codes: np.ndarray  # uint8, the weight's shape
    dtype_codes: np.ndarray  # (N, G) hw.datatypes codes
    zero_points: np.ndarray  # (N, G)
    group_scales: np.ndarray  # (N, G) unsigned integers
    channel_scales: np.ndarray  # (N,) float64
    group_size: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    def _per_element(self, a: np.ndarray) -> np.ndarray:
        """(N, G) -> the weight's shape, each element taking its group's entry."""
        idx = np.arange(self.codes.shape[1]) // self.group_size
        out = np.asarray(a)[:, idx]
        return out.reshape(out.shape + (1,) * (self.codes.ndim - 2))

    def values(self) -> np.ndarray:
        """Each code decoded in its group's datatype (int64, the weight's shape)."""
        lut = np.zeros((len(DATATYPES), 256), np.int64)
        for i, dt in enumerate(DATATYPES.values()):
            lut[i, : 1 << dt.bits] = dt.values
        return lut[np.broadcast_to(self._per_element(self.dtype_codes), self.codes.shape), self.codes]

    def integer(self) -> np.ndarray:
        """The integer weights the hardware multiplies by."""
        zp = self._per_element(np.asarray(self.zero_points, np.int64))
        gs = self._per_element(np.asarray(self.group_scales, np.int64))
        return (self.values() - zp) * gs

    @property
    def plain_dtype(self) -> str | None:
        """The one datatype of a plain per-channel weight (no zero points, unit group scales), else None."""
        codes = np.unique(self.dtype_codes)
        if len(codes) != 1 or np.any(self.zero_points) or np.any(np.asarray(self.group_scales) != 1):
            return None
        return by_code(int(codes[0])).name

    def describe(self) -> str:
        names = sorted({by_code(int(c)).name for c in np.unique(self.dtype_codes)})
        groups = self.dtype_codes.shape[1]
        gran = "per-channel" if groups == 1 else f"groups of {self.group_size}"
        return f"{'/'.join(names)} {gran}"
