"""The datapath's integer arithmetic, as NumPy: the definitions docs/numerics.md writes down
and the RTL implements, defined once for the golden model (sim/golden.py), the compiler's kernel
reference (compiler/gemm.py), the configuration's activation range and the RTL testbenches.
Every function is exact on int64. (compiler/reference.py re-derives the requantization on its
own on purpose, so that a mistake here shows up as a difference there.)"""

from __future__ import annotations

import numpy as np


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap-around to `bits` (what a `bits`-wide register keeps)."""
    x = np.asarray(x, np.int64)
    half = np.int64(1) << (bits - 1)
    return ((x + half) & ((np.int64(1) << bits) - 1)) - half


def matmul_tile(acts: np.ndarray, weights: np.ndarray, acc: np.ndarray | None, acc_bits: int) -> np.ndarray:
    """One array pass: acc (+)= acts @ weights, wrapped to the accumulator width."""
    prod = np.asarray(acts, np.int64) @ np.asarray(weights, np.int64)
    return wrap(prod if acc is None else acc + prod, acc_bits)


def rounding_shift(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """x / 2**shift rounded to nearest, ties towards +infinity: (x + 2**(shift-1)) >> shift."""
    x = np.asarray(x, np.int64)
    shift = np.asarray(shift, np.int64)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    return np.right_shift(x + half, shift)


def act_range(act_bits: int) -> tuple[int, int]:
    """The signed activation range of ``act_bits``-bit codes: (qmin, qmax)."""
    return -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1


def requantize(
    acc: np.ndarray,
    bias: np.ndarray,
    multiplier: np.ndarray,
    shift: np.ndarray,
    zero_point: int,
    relu: bool,
    act_bits: int,
) -> np.ndarray:
    """Post-processing of accumulators to activations (per-column bias/multiplier/shift):
    y = clamp(round_shift((acc + bias) * multiplier, shift) + zero_point, lo, qmax),
    lo = max(zero_point, qmin) with ReLU, else qmin."""
    x = np.asarray(acc, np.int64) + np.asarray(bias, np.int64)
    r = rounding_shift(x * np.asarray(multiplier, np.int64), shift)
    qmin, qmax = act_range(act_bits)
    lo = max(zero_point, qmin) if relu else qmin
    return np.clip(r + zero_point, lo, qmax).astype(np.int64)
