"""The ``lowbit::dequantize_weight`` torch custom op: low-bit weight codes with per-group
datatypes, zero points and integer scales and a float32 per-channel scale -> float32 weights,
so an exported program carries the weights exactly as the accelerator stores them.

Importing this module registers the op (needed before ``torch.export.load`` of such a program).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hw.datatypes import DATATYPES

OP_NAME = "lowbit::dequantize_weight"


def _value_table() -> np.ndarray:
    """[num_datatypes, 256] int64: row ``dt.code`` holds ``dt.values`` (unused codes are 0)."""
    lut = np.zeros((len(DATATYPES), 256), np.int64)
    for dt in DATATYPES.values():
        lut[dt.code, : len(dt.values)] = dt.values
    return lut


VALUE_TABLE = _value_table()
_TORCH_TABLE = torch.from_numpy(VALUE_TABLE)


def _group_index(channels: int, group_size: int, groups: int) -> np.ndarray:
    """Group of each index along axis 1; the last group may be partial."""
    if group_size < 1:
        raise ValueError(f"group_size must be positive, got {group_size}")
    if -(-channels // group_size) != groups:
        raise ValueError(f"{channels} input channels in groups of {group_size} need {-(-channels // group_size)} "
                         f"groups, the parameters have {groups}")
    return np.arange(channels) // group_size


def _check_shapes(codes_shape: tuple[int, ...], params: dict[str, tuple[int, ...]],
                  scales: tuple[int, ...] | None = None) -> None:
    """Codes [N, K, ...], per-group parameters [N, G], channel scales [N]."""
    if len(codes_shape) < 2:
        raise ValueError(f"codes must be [N, K, ...], got shape {list(codes_shape)}")
    n = codes_shape[0]
    first = next(iter(params.values()), None)
    for name, shape in params.items():
        if len(shape) != 2 or shape[0] != n or shape != first:
            raise ValueError(f"{name} must be [N={n}, G] like the others, got {list(shape)}")
    if scales is not None and tuple(scales) != (n,):
        raise ValueError(f"channel_scales must be [N={n}], got {list(scales)}")


def dequantize_weight_np(codes: np.ndarray, dtype_codes: np.ndarray, zero_points: np.ndarray,
                         group_scales: np.ndarray, channel_scales: np.ndarray, group_size: int) -> np.ndarray:
    """NumPy twin of ``lowbit::dequantize_weight``: the same integers, the same float32 multiply."""
    integer = integer_weight_np(codes, dtype_codes, zero_points, group_scales, group_size)
    cs = np.asarray(channel_scales, np.float32)
    _check_shapes(integer.shape, {}, cs.shape)
    return integer.astype(np.float32) * cs.reshape((-1,) + (1,) * (integer.ndim - 1))


def integer_weight_np(codes: np.ndarray, dtype_codes: np.ndarray, zero_points: np.ndarray,
                      group_scales: np.ndarray, group_size: int) -> np.ndarray:
    """int64 ``(value - zero_point) * group_scale`` of every weight, without the channel scale."""
    codes = np.asarray(codes)
    shapes = {"dtype_codes": np.shape(dtype_codes), "zero_points": np.shape(zero_points),
              "group_scales": np.shape(group_scales)}
    _check_shapes(codes.shape, shapes)
    g = _group_index(codes.shape[1], group_size, shapes["dtype_codes"][1])
    bcast = (slice(None), g) + (None,) * (codes.ndim - 2)
    values = VALUE_TABLE[np.asarray(dtype_codes, np.int64)[bcast], codes.astype(np.int64)]
    zp = np.asarray(zero_points, np.int64)[bcast]
    return (values - zp) * np.asarray(group_scales, np.int64)[bcast]


def _dequantize_weight(codes: torch.Tensor, dtype_codes: torch.Tensor, zero_points: torch.Tensor,
                       group_scales: torch.Tensor, channel_scales: torch.Tensor, group_size: int) -> torch.Tensor:
    shapes = {"dtype_codes": tuple(dtype_codes.shape), "zero_points": tuple(zero_points.shape),
              "group_scales": tuple(group_scales.shape)}
    _check_shapes(tuple(codes.shape), shapes, tuple(channel_scales.shape))
    g = torch.from_numpy(_group_index(codes.shape[1], group_size, dtype_codes.shape[1])).to(codes.device)
    bcast = (slice(None), g) + (None,) * (codes.dim() - 2)
    table = _TORCH_TABLE.to(codes.device)
    values = table[dtype_codes.long()[bcast], codes.long()]
    # exact in int64; |(value - zp) * scale| <= 255 * 65535 < 2**24, so the float32 cast is exact
    # too and the channel-scale multiply is the only rounding, as on the accelerator's host side
    integer = (values - zero_points.long()[bcast]) * group_scales.long()[bcast]
    cs = channel_scales.to(torch.float32).reshape((-1,) + (1,) * (codes.dim() - 1))
    return integer.to(torch.float32) * cs


def _registered() -> bool:
    try:
        torch.ops.lowbit.dequantize_weight.default  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


if not _registered():  # a reload (importlib.reload) must not register the op twice
    dequantize_weight = torch.library.custom_op(OP_NAME, mutates_args=())(_dequantize_weight)

    @dequantize_weight.register_fake
    def _(codes, dtype_codes, zero_points, group_scales, channel_scales, group_size):
        return torch.empty(codes.shape, dtype=torch.float32, device=codes.device)


def dequantize_weight_op(codes: torch.Tensor, dtype_codes: torch.Tensor, zero_points: torch.Tensor,
                         group_scales: torch.Tensor, channel_scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """Call the registered op (``torch.ops.lowbit.dequantize_weight``)."""
    return torch.ops.lowbit.dequantize_weight(codes, dtype_codes, zero_points, group_scales, channel_scales,
                                              group_size)


@dataclass(frozen=True)
class LowbitWeight:
    """One layer's low-bit weight in the accelerator's form: uint8 codes shaped like the float
    weight, [N, G] int32 datatype codes, zero points and u16 group scales, [N] float32 channel scales."""

    codes: np.ndarray
    dtype_codes: np.ndarray
    zero_points: np.ndarray
    group_scales: np.ndarray
    channel_scales: np.ndarray
    group_size: int

    def integer_values(self) -> np.ndarray:
        """int64 ``(value - zero_point) * group_scale``: the weights the integer datapath multiplies by."""
        return integer_weight_np(self.codes, self.dtype_codes, self.zero_points, self.group_scales, self.group_size)

    def dequantize(self) -> np.ndarray:
        """The float32 weights, as ``lowbit::dequantize_weight`` computes them."""
        return dequantize_weight_np(self.codes, self.dtype_codes, self.zero_points, self.group_scales,
                                    self.channel_scales, self.group_size)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The op's tensor arguments, in order (codes, dtype_codes, zero_points, group_scales, channel_scales)."""
        return (torch.from_numpy(np.array(self.codes, np.uint8)),
                torch.from_numpy(np.array(self.dtype_codes, np.int32)),
                torch.from_numpy(np.array(self.zero_points, np.int32)),
                torch.from_numpy(np.array(self.group_scales, np.int32)),
                torch.from_numpy(np.array(self.channel_scales, np.float32)))
