"""How an activation tensor sits in DRAM for the accelerator.

``rows``: the logical tensor row-major, its last dimension contiguous (a GEMM's M x K matrix).
``nhwc``: a 4-D (N, C, H, W) tensor stored channels-last with a border of ``pad`` pixels on
each side filled with the input zero point, so a convolution's im2col reads padded windows
with plain strided LOADs and padding adds nothing to the accumulators; the producer of the
tensor writes only the interior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYOUTS = ("rows", "nhwc")


@dataclass(frozen=True)
class TensorLayout:
    name: str
    shape: tuple[int, ...]  # logical (PyTorch) shape
    dtype: str  # "int8" or "int32"
    kind: str = "rows"
    pad: tuple[int, int] = (0, 0)  # nhwc: border rows (top/bottom) and columns (left/right)
    fill: int = 0  # border value
    addr: int = 0
    tail: int = 0  # bytes reserved after the buffer: a wide im2col's last windows read past its end

    def __post_init__(self) -> None:
        if self.kind not in LAYOUTS:
            raise ValueError(f"{self.name}: layout {self.kind!r} is not one of {LAYOUTS}")
        if self.kind == "nhwc" and len(self.shape) != 4:
            raise ValueError(f"{self.name}: an nhwc layout needs a 4-D tensor, got {self.shape}")

    @property
    def elem_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def buffer_shape(self) -> tuple[int, ...]:
        if self.kind == "rows":
            return self.shape
        n, c, h, w = self.shape
        return n, h + 2 * self.pad[0], w + 2 * self.pad[1], c

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.buffer_shape)) * self.elem_bytes

    def pack(self, x: np.ndarray) -> np.ndarray:
        """Logical tensor -> the DRAM buffer's contents (border included)."""
        x = np.asarray(x)
        if tuple(x.shape) != self.shape:
            raise ValueError(f"{self.name}: expected shape {self.shape}, got {tuple(x.shape)}")
        if self.kind == "rows":
            return np.ascontiguousarray(x, self.dtype)
        buf = np.full(self.buffer_shape, self.fill, self.dtype)
        ph, pw = self.pad
        n, c, h, w = self.shape
        buf[:, ph : ph + h, pw : pw + w, :] = x.transpose(0, 2, 3, 1)
        return buf

    def unpack(self, buf: np.ndarray) -> np.ndarray:
        """The DRAM buffer's contents -> logical tensor."""
        buf = np.asarray(buf).view(self.dtype).reshape(self.buffer_shape)
        if self.kind == "rows":
            return buf.copy()
        ph, pw = self.pad
        n, c, h, w = self.shape
        return buf[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2).copy()

    def pixel_addr(self, n: int, y: int, x: int) -> int:
        """Byte address of channel 0 of pixel (n, y, x) in padded coordinates (nhwc)."""
        _, hp, wp, c = self.buffer_shape
        return self.addr + ((n * hp + y) * wp + x) * c * self.elem_bytes

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "kind": self.kind,
                "pad": list(self.pad), "fill": self.fill, "addr": self.addr, "tail": self.tail}

    @classmethod
    def from_json(cls, d: dict) -> TensorLayout:
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d["kind"], tuple(d["pad"]), d["fill"], d["addr"],
                   d.get("tail", 0))
