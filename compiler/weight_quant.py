"""Weight-only per-group quantization: every group of ``group_size`` weights along K gets its
own scale and, from a candidate set, the datatype that quantizes it with the least error
(BitMoD's mixture of datatypes; ANT's per-group INT/FLINT choice is the baseline it is
compared with). The choice is stored as a small tag next to the group's scale.

Scales: for each group and candidate, a grid of clipping ratios of the no-clip scale, then
least-squares refinement of the best one (docs/datatypes.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hw.datatypes import Datatype, datatype

# Candidate sets by name. ANT's 3-bit flint has FP3's value set {0, +-1, +-2, +-4}
# (flint_value() in ANT's quant_modules.py), so its 3-bit choice is INT3 or FP3, as in BitMoD.
MIXTURES: dict[str, tuple[str, ...]] = {
    "mixture3": ("fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg"),
    "mixture4": ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg"),
    "ant3": ("int3", "fp3"),
    "ant4": ("int4", "flint4"),
}

# Fractions of the no-clip scale tried per group: 1.00, 0.95, ..., 0.25 (the low end serves
# binary and ternary, whose best scale is near the group's mean magnitude).
CLIP_RATIOS: tuple[float, ...] = tuple(round(1 - 0.05 * i, 2) for i in range(16))
# Least-squares rescalings after the grid: s = <x, q> / <q, q> for the codes q at the best
# scale, then re-round; each step can only lower the group's error.
REFINE_STEPS = 2


@dataclass(frozen=True)
class GroupQuantized:
    """K x N weights quantized in groups of ``group_size`` along K, each group (g, n) in the
    datatype ``candidates[tags[g, n]]``: ``w[k, n] ~= (values[k, n] - zero_point[g, n]) * scale[g, n]``
    with ``g = k // group_size``. Arrays cover the padded K; errors cover only the real weights.
    """

    codes: np.ndarray  # (K_padded, N) uint8, each in its group's datatype
    tags: np.ndarray  # (groups, N) uint8 index into candidates
    scale: np.ndarray  # (groups, N) float64
    zero_point: np.ndarray  # (groups, N) int64; nonzero only for unsigned (asymmetric) candidates
    candidates: tuple[str, ...]
    group_size: int
    shape: tuple[int, int]  # (K, N) of the weights before padding
    group_sse: np.ndarray  # (groups, N) squared error of each group in its chosen datatype
    candidate_sse: np.ndarray  # (candidates, groups, N) the same, had the group used each candidate
    signal: float  # sum of the squared weights

    @property
    def dtypes(self) -> tuple[Datatype, ...]:
        return tuple(datatype(c) for c in self.candidates)

    @property
    def dtype_codes(self) -> np.ndarray:
        """Per-group datatype as table codes (the ISA's WeightType), for GroupParams."""
        return np.array([dt.code for dt in self.dtypes], np.uint8)[self.tags]

    @cached_property
    def values(self) -> np.ndarray:
        """(K_padded, N) integer values: each code decoded in its group's datatype."""
        lut = np.zeros((len(self.candidates), 1 << max(dt.bits for dt in self.dtypes)), np.int64)
        for i, dt in enumerate(self.dtypes):
            lut[i, : 1 << dt.bits] = dt.values
        return lut[np.repeat(self.tags, self.group_size, axis=0), self.codes]

    def dequantize(self) -> np.ndarray:
        """The (K, N) real weights the codes stand for."""
        z = np.repeat(self.zero_point, self.group_size, axis=0)
        s = np.repeat(self.scale, self.group_size, axis=0)
        return ((self.values - z) * s)[: self.shape[0]]

    @property
    def mse(self) -> float:
        return float(self.group_sse.sum() / (self.shape[0] * self.shape[1]))

    @property
    def sqnr_db(self) -> float:
        return _sqnr_db(self.signal, float(self.group_sse.sum()))

    def candidate_errors(self) -> dict[str, dict[str, float]]:
        """Error of each candidate alone (every group in that datatype, same scale search)."""
        n = self.shape[0] * self.shape[1]
        sse = self.candidate_sse.reshape(len(self.candidates), -1).sum(axis=1)
        return {c: {"mse": float(e / n), "sqnr_db": _sqnr_db(self.signal, float(e))}
                for c, e in zip(self.candidates, sse)}

    def tag_share(self) -> dict[str, float]:
        """Fraction of groups that chose each candidate."""
        counts = np.bincount(self.tags.ravel(), minlength=len(self.candidates))
        return {c: float(k / self.tags.size) for c, k in zip(self.candidates, counts)}


def _sqnr_db(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise))


def resolve_candidates(candidates: Sequence[str] | str) -> tuple[str, ...]:
    """A mixture name (``MIXTURES``), one datatype name, or a list of datatype names."""
    if isinstance(candidates, str):
        candidates = MIXTURES.get(candidates, (candidates,))
    names = tuple(candidates)
    if not names:
        raise ValueError("no candidate datatypes")
    if len(set(names)) != len(names):
        raise ValueError(f"candidate datatypes listed twice in {list(names)}")
    for n in names:
        datatype(n)  # names the known types when n is not one
    return names


def quantize_groups(
    w: np.ndarray,
    group_size: int,
    candidates: Sequence[str] | str,
    *,
    pad: bool = False,
    ratios: Sequence[float] = CLIP_RATIOS,
    refine: int = REFINE_STEPS,
) -> GroupQuantized:
    """Quantize K x N weights per group of ``group_size`` along K, choosing per group the
    candidate datatype (and its scale) with the least squared error.

    K must be a multiple of ``group_size`` unless ``pad``: the last group is then zero-padded
    (as the compiler pads K) and the padding is left out of every error.
    Unsigned integer candidates (``uintN``) are asymmetric, with a per-group zero point.
    """
    names = resolve_candidates(candidates)
    x, valid = _group_rows(w, group_size, pad)
    k, n = np.shape(w)
    groups = x.shape[0] // n
    search = [_search_scale(x, valid, datatype(c), ratios, refine) for c in names]
    cand_sse = np.stack([s[0] for s in search])
    tags = np.argmin(cand_sse, axis=0)  # ties go to the earlier candidate
    scale = np.take_along_axis(np.stack([s[1] for s in search]), tags[None], axis=0)[0]
    zp = np.take_along_axis(np.stack([s[2] for s in search]), tags[None], axis=0)[0]
    values = np.zeros(x.shape, np.int64)
    codes = np.zeros(x.shape, np.uint8)
    for i, c in enumerate(names):
        rows = tags == i
        dt = datatype(c)
        values[rows] = _round(x[rows], scale[rows], zp[rows], dt)
        codes[rows] = dt.encode(values[rows])
    sse = _sse(x, valid, values, scale, zp)

    def per_group(a: np.ndarray) -> np.ndarray:
        return a.reshape(*a.shape[:-1], groups, n)

    return GroupQuantized(
        codes=codes.reshape(groups, n, group_size).transpose(0, 2, 1).reshape(groups * group_size, n),
        tags=per_group(tags).astype(np.uint8),
        scale=per_group(scale),
        zero_point=per_group(zp),
        candidates=names,
        group_size=group_size,
        shape=(k, n),
        group_sse=per_group(sse),
        candidate_sse=per_group(cand_sse),
        signal=float(np.square(np.asarray(w, np.float64)).sum()),
    )


def _group_rows(w: np.ndarray, group_size: int, pad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The weights as one row per group, (groups * N, group_size) with row g * N + n, and the
    mask of real (not padding) weights, or None without padding."""
    w = np.asarray(w, np.float64)
    if w.ndim != 2:
        raise ValueError(f"weights must be a K x N matrix, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    if group_size < 1:
        raise ValueError(f"group_size must be positive, got {group_size}")
    k, n = w.shape
    rem = k % group_size
    valid = None
    if rem:
        if not pad:
            raise ValueError(
                f"K = {k} is not a multiple of group_size = {group_size}; pad=True zero-pads the last group"
            )
        extra = group_size - rem
        valid = np.concatenate([np.ones((k, n), bool), np.zeros((extra, n), bool)])
        w = np.concatenate([w, np.zeros((extra, n))])
    groups = w.shape[0] // group_size

    def rows(a: np.ndarray) -> np.ndarray:
        return a.reshape(groups, group_size, n).transpose(0, 2, 1).reshape(groups * n, group_size)

    return rows(w), None if valid is None else rows(valid)


def _is_asymmetric(dt: Datatype) -> bool:
    return dt.is_integer_range and not dt.signed


def _noclip_scale(x: np.ndarray, dt: Datatype) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the smallest scale that clips nothing, and the zero point."""
    lo, hi = np.minimum(x.min(axis=1), 0.0), np.maximum(x.max(axis=1), 0.0)
    if _is_asymmetric(dt):
        s = (hi - lo) / (dt.qmax - dt.qmin)
    else:
        # each side against the type's extreme on that side (EA/ER sets are lopsided)
        s = np.maximum(hi / dt.qmax if dt.qmax > 0 else 0.0, lo / dt.qmin if dt.qmin < 0 else 0.0)
    s = np.where(s > 0, s, np.finfo(np.float64).tiny)  # an all-zero group
    zp = np.zeros(len(x), np.int64)
    if _is_asymmetric(dt):
        zp = np.clip(np.rint(dt.qmin - lo / s), dt.qmin, dt.qmax).astype(np.int64)
    return s, zp


def _round(x: np.ndarray, s: np.ndarray, zp: np.ndarray, dt: Datatype) -> np.ndarray:
    return dt.round(x / s[:, None] + zp[:, None])


def _sse(x: np.ndarray, valid: np.ndarray | None, q: np.ndarray, s: np.ndarray, zp: np.ndarray) -> np.ndarray:
    err = (q - zp[:, None]) * s[:, None] - x
    if valid is not None:
        err = np.where(valid, err, 0.0)
    return np.square(err).sum(axis=1)


def _search_scale(
    x: np.ndarray, valid: np.ndarray | None, dt: Datatype, ratios: Sequence[float], refine: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the (sse, scale, zero point) of the best scale found for datatype dt."""
    s0, zp = _noclip_scale(x, dt)
    best = np.full(len(x), np.inf)
    best_s = s0
    for r in ratios:
        s = s0 * r
        e = _sse(x, valid, _round(x, s, zp, dt), s, zp)
        better = e < best
        best, best_s = np.where(better, e, best), np.where(better, s, best_s)
    for _ in range(refine):
        v = _round(x, best_s, zp, dt) - zp[:, None]
        if valid is not None:
            v = np.where(valid, v, 0)
        num, den = (x * v).sum(axis=1), np.square(v).sum(axis=1)
        ok = (den > 0) & (num > 0)
        s = np.where(ok, num / np.where(ok, den, 1), best_s)
        e = _sse(x, valid, _round(x, s, zp, dt), s, zp)
        better = e < best
        best, best_s = np.where(better, e, best), np.where(better, s, best_s)
    return best, best_s, zp
