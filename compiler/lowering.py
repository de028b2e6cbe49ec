"""Lowering of quantized GEMM ops (``qgemm``: linear or conv2d on int8 activations) to the array.

- ``place``: an op goes to the accelerator when the configuration can run it exactly, else to
  the host with the reason (``Op.reason``), never silently.
- ``requant``: the fixed-point post-processing parameters of an int8-output GEMM
  (docs/numerics.md): the integer bias with the input zero point folded in, and per-channel
  multiplier and shift for ``s_x * s_w / s_y``.
- ``lower_qgemm``: one op -> ``GemmJob``s (compiler/codegen.py). Linear is one GEMM; a
  convolution is a GEMM over im2col rows whose LOADs read the padded NHWC input directly
  (compiler/layout.py), one k-tile per kernel position and ``rows`` input channels; grouped
  convolutions go in blocks of groups whose outputs fill the array's columns, with
  block-diagonal weights. A depthwise convolution is one job on its own schedule
  (``_lower_depthwise``; compiler/tiling.py, "depthwise convolutions"): diagonal weight tiles per
  kernel tap, input rows loaded once per block of output rows and read by every tap's pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compiler.codegen import DepthwiseJob, GemmJob, Transfer
from compiler.gemm import Requant, WeightGroups, pack_code_tiles, pack_group_params, pack_params
from compiler.ir import Graph, Op, QWeight
from compiler.layout import TensorLayout
from compiler.tiling import Depthwise, DwPlane, Gemm, depthwise_fits
from hw.config import AccelConfig
from hw.datatypes import DATATYPES, by_code, datatype
from hw.isa import ChannelParams, GroupParams
from hw.records import field_range


class CompileError(ValueError):
    """A model or configuration the compiler cannot turn into a program; names the layer."""


MULT_MAX = field_range(ChannelParams["multiplier"].shape)[1]
SHIFT_MAX = field_range(ChannelParams["shift"].shape)[1]
BIAS_MIN, BIAS_MAX = field_range(ChannelParams["bias"].shape)
GROUP_SCALE_MAX = field_range(GroupParams["scale"].shape)[1]
GROUP_ZP_MAX = field_range(GroupParams["zero_point"].shape)[1]


@dataclass(frozen=True)
class Requantization:
    bias: np.ndarray  # int64 per output channel, input zero point folded in
    multiplier: np.ndarray
    shift: np.ndarray


def fixed_point(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers -> (multiplier, shift) with m ~= multiplier / 2**shift, the largest shift
    whose multiplier fits its field (relative error below 2**-23 for m >= 2**-40)."""
    m = np.asarray(m, np.float64)
    if np.any(m <= 0) or np.any(m * 2.0**0 > MULT_MAX):
        raise ValueError(f"requantization multipliers {m.min():.3g}..{m.max():.3g} out of range")
    shift = np.clip(np.floor(np.log2(MULT_MAX / m)), 0, SHIFT_MAX).astype(np.int64)
    mult = np.rint(m * np.exp2(shift)).astype(np.int64)
    over = mult > MULT_MAX
    shift = np.where(over, shift - 1, shift)
    mult = np.where(over, np.rint(m * np.exp2(shift)).astype(np.int64), mult)
    return mult, shift


def colsum(weight: QWeight) -> np.ndarray:
    """Per output channel, the sum of its integer weights."""
    return weight.integer().reshape(weight.shape[0], -1).sum(axis=1)


def requant(op: Op) -> Requantization:
    """The post-processing parameters of an int8-output qgemm."""
    a = op.attrs
    w: QWeight = a["weight"]
    acc_scale = a["x_q"].scale * w.channel_scales
    bias = np.zeros(w.shape[0]) if a["bias"] is None else a["bias"]
    b = np.rint(bias / acc_scale).astype(np.int64) - a["x_q"].zero_point * colsum(w)
    mult, shift = fixed_point(acc_scale / a["out_q"].scale)
    return Requantization(b, mult, shift)


# ---- placement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightPlan:
    """How a qgemm's weights go to the array: one datatype, or grouped (serial PE) in a storage width."""

    dtype: str
    grouped: bool


def weight_plan(op: Op, cfg: AccelConfig) -> WeightPlan | str:
    """The weight plan, or the reason the configuration cannot run these weights."""
    w: QWeight = op.attrs["weight"]
    plain = w.plain_dtype
    if plain is not None and plain in cfg.weight_dtypes and 8 % DATATYPES[plain].bits == 0:
        return WeightPlan(plain, False)
    names = sorted({by_code(int(c)).name for c in np.unique(w.dtype_codes)})
    if cfg.pe != "serial":
        return f"{'/'.join(names)} {w.describe()} weights need the bit-serial PE; config {cfg.name!r} runs " \
               f"{', '.join(cfg.weight_dtypes)} per channel"
    missing = [n for n in names if n not in cfg.weight_dtypes]
    if missing:
        return f"config {cfg.name!r} has no {', '.join(missing)} weights"
    bits = max(DATATYPES[n].bits for n in names)
    storage = [n for n in cfg.weight_dtypes if DATATYPES[n].is_integer_range and DATATYPES[n].signed
               and DATATYPES[n].bits >= bits and 8 % DATATYPES[n].bits == 0]
    if not storage:
        return f"config {cfg.name!r} has no integer storage width for {bits}-bit codes"
    storage.sort(key=lambda n: DATATYPES[n].bits)
    groups = w.dtype_codes.shape[1]
    conv_groups = op.attrs.get("groups", 1)
    if groups > 1 and w.group_size % cfg.rows:
        return f"quantization groups of {w.group_size} input channels: a multiple of rows = {cfg.rows} is needed"
    if conv_groups > 1 and (groups > 1 or np.any(w.zero_points)):
        return "a grouped convolution with per-group weight scales or zero points"
    if np.any(w.group_scales > GROUP_SCALE_MAX) or np.any(w.group_scales < 0):
        return f"group scales beyond {GROUP_SCALE_MAX}"
    if np.any(w.zero_points < 0) or np.any(w.zero_points > GROUP_ZP_MAX):
        return f"weight zero points outside 0..{GROUP_ZP_MAX}"
    return WeightPlan(storage[0], True)


def why_host(op: Op, cfg: AccelConfig) -> str | None:
    """Why a qgemm cannot run on the accelerator of `cfg`, or None when it can."""
    plan = weight_plan(op, cfg)
    if isinstance(plan, str):
        return plan
    if op.attrs["out_q"] is not None:
        try:
            r = requant(op)
        except ValueError as exc:
            return str(exc)
        if r.bias.min() < BIAS_MIN or r.bias.max() > BIAS_MAX:
            return "the integer bias does not fit ChannelParams.bias"
    return None


def place(graph: Graph, cfg: AccelConfig) -> Graph:
    """Decide where every qgemm runs; host ops stay on the host."""
    ops = []
    for op in graph.ops:
        if op.kind == "qgemm":
            reason = why_host(op, cfg)
            op = replace(op, placement="host" if reason else "accel", reason=reason or "")
        ops.append(op)
    return graph.with_ops(ops)


# ---- layouts ---------------------------------------------------------------------------------------


def plan_layouts(graph: Graph, accel_ops: list[Op]) -> dict[str, TensorLayout]:
    """The DRAM layout of every value an accelerator op reads or writes (addresses still 0)."""
    layouts: dict[str, TensorLayout] = {}
    pads: dict[str, tuple[int, int]] = {}
    convs = set()
    for op in accel_ops:
        if op.attrs["kind"] == "conv2d":
            x = op.inputs[0]
            convs |= {x, op.output}
            ph, pw = pads.get(x, (0, 0))
            pads[x] = (max(ph, op.attrs["padding"][0]), max(pw, op.attrs["padding"][1]))
    for op in accel_ops:
        for name in (*op.inputs, *op.outputs):
            v = graph.values[name]
            q = v.q
            if name in convs:
                pad = pads.get(name, (0, 0))
                layouts[name] = TensorLayout(name, v.shape, v.dtype, "nhwc", pad, q.zero_point if q else 0,
                                             tail=_wide_tail(accel_ops, name, v.shape, pad))
            else:
                layouts[name] = TensorLayout(name, v.shape, v.dtype, "rows")
    return layouts


def _wide_tail(accel_ops: list[Op], name: str, shape: tuple[int, ...], pad: tuple[int, int]) -> int:
    """Bytes a wide im2col of this tensor's last image reads past its end (module docstring)."""
    wp = shape[3] + 2 * pad[1]
    tails = [(op.attrs["stride"][1] * wp + op.attrs["weight"].shape[3] * op.attrs["dilation"][1]) * shape[1]
             for op in accel_ops if op.attrs["kind"] == "conv2d" and op.inputs[0] == name]
    return max(tails, default=0)


# ---- GEMM jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoweredJob:
    """A GemmJob with its constant data still to be placed in DRAM."""

    job: GemmJob
    w_blob: bytes
    p_blob: bytes
    gemm_k: int  # K as the tiling search sees it (k-tiles x rows)
    row_runs: int = 0  # Gemm.row_runs: a convolution's output width (or padded image, wide)
    out_row_runs: int = 0  # Gemm.out_row_runs
    im2col: str = ""  # a convolution's "rows" or "wide" im2col


def _params(op: Op, n: int, cols: int, out0: int, plan: WeightPlan, hw_codes_groups) -> bytes:
    if op.attrs["out_q"] is not None:
        r = requant(op)
        sl = slice(out0, out0 + n)
        rq = Requant(bias=r.bias[sl], multiplier=r.multiplier[sl], shift=r.shift[sl])
    else:
        rq = Requant(bias=np.zeros(n, np.int64), multiplier=np.zeros(n, np.int64), shift=np.zeros(n, np.int64))
    nt = -(-n // cols)
    rows = pack_params(rq, n, cols).reshape(nt, 1, -1)
    if plan.grouped:  # each n-tile's ChannelParams row, then its GroupParams row per group
        g = pack_group_params(hw_codes_groups, datatype(plan.dtype), cols).reshape(-1, nt, rows.shape[-1])
        rows = np.concatenate([rows, g.transpose(1, 0, 2)], axis=1)
    return rows.tobytes()


def _groups_for(w: QWeight, out0: int, n: int) -> WeightGroups:
    sl = slice(out0, out0 + n)
    tags = np.vectorize(lambda c: by_code(int(c)).name)(w.dtype_codes[sl].T)
    return WeightGroups(size=w.group_size, tags=tags, scales=w.group_scales[sl].T,
                        zero_points=w.zero_points[sl].T)


def _pack_weights(mat: np.ndarray, codes: np.ndarray | None, plan: WeightPlan, cfg: AccelConfig) -> bytes:
    """K_hw x N integer weights (or, grouped, their codes) -> packed tiles, tile (i, j) at j * kt + i."""
    dt = datatype(plan.dtype)
    c = codes if plan.grouped else dt.encode(mat)
    return pack_code_tiles(c, dt.bits, cfg.rows, cfg.cols).tobytes()


IM2COL = ("auto", "rows", "wide")


def lower_qgemm(op: Op, graph: Graph, cfg: AccelConfig, layouts: dict[str, TensorLayout],
                im2col: str = "auto") -> list[list[LoweredJob]]:
    """The op's GEMM jobs (a convolution's blocks of groups), each as its alternative lowerings
    (a convolution's ``rows`` and ``wide`` im2col; the compiler keeps the cheaper)."""
    if im2col not in IM2COL:
        raise ValueError(f"im2col {im2col!r}: choose one of {', '.join(IM2COL)}")
    plan = weight_plan(op, cfg)
    assert not isinstance(plan, str), plan
    if op.attrs["kind"] == "linear":
        return [[_lower_linear(op, graph, cfg, layouts, plan)]]
    if im2col == "auto":
        dw = _lower_depthwise(op, cfg, layouts, plan)
        if dw:
            return [dw]
    return _lower_conv(op, graph, cfg, layouts, plan, im2col)


def _lower_linear(op: Op, graph: Graph, cfg: AccelConfig, layouts: dict[str, TensorLayout],
                  plan: WeightPlan) -> LoweredJob:
    R, C = cfg.rows, cfg.cols
    w: QWeight = op.attrs["weight"]
    xl, ol = layouts[op.inputs[0]], layouts[op.output]
    if xl.kind != "rows" or ol.kind != "rows":
        raise CompileError(f"{op.source}: linear on a channels-last tensor is not supported")
    n, k = w.shape
    m = int(np.prod(xl.shape[:-1]))
    kt = -(-k // R)
    mat = w.integer().T if not plan.grouped else None
    codes = w.codes.T.astype(np.int64) if plan.grouped else None
    eb = ol.elem_bytes

    def a_loads(m0: int, rows: int, i: int) -> list[Transfer]:
        k0 = i * R
        return [Transfer(xl.addr + m0 * k + k0, rows, min(R, k - k0), k)]

    def stores(m0: int, rows: int, j: int) -> list[Transfer]:
        n0 = j * C
        return [Transfer(ol.addr + (m0 * n + n0) * eb, rows, min(C, n - n0) * eb, n * eb)]

    groups = _groups_for(w, 0, n) if plan.grouped else None
    gk = tuple((i * R) // w.group_size for i in range(kt)) if plan.grouped else None
    job = GemmJob(name=op.name, m=m, kt=kt, n=n, dtype=plan.dtype, w_addr=0, p_addr=0,
                  param_rows=-(-n // C) * (1 + (w.dtype_codes.shape[1] if plan.grouped else 0)),
                  a_loads=a_loads, stores=stores, relu=bool(op.attrs["relu"]),
                  zero_point=op.attrs["out_q"].zero_point if op.attrs["out_q"] else 0,
                  int32_out=op.attrs["out_q"] is None, group_of_ktile=gk)
    return LoweredJob(job, _pack_weights(mat, codes, plan, cfg), _params(op, n, C, 0, plan, groups), kt * R)


def _conv_geometry(op: Op, xl: TensorLayout) -> tuple[int, int, int, int, int, int]:
    n, cin, h, w = xl.shape
    cout, _, kh, kw = op.attrs["weight"].shape
    (sh, sw), (ph, pw), (dh, dw) = op.attrs["stride"], op.attrs["padding"], op.attrs["dilation"]
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return n, ho, wo, kh, kw, cout


def _runs(m0: int, rows: int, ho: int, wo: int) -> list[tuple[int, int, int, int, int]]:
    """Output pixels m0 .. m0+rows as runs within one output row: (n, oy, x0, count, offset)."""
    out, m, off = [], m0, 0
    while off < rows:
        n, rem = divmod(m, ho * wo)
        oy, ox = divmod(rem, wo)
        cnt = min(wo - ox, rows - off)
        out.append((n, oy, ox, cnt, off))
        m += cnt
        off += cnt
    return out


def _lower_conv(op: Op, graph: Graph, cfg: AccelConfig, layouts: dict[str, TensorLayout],
                plan: WeightPlan, im2col: str) -> list[list[LoweredJob]]:
    R, C = cfg.rows, cfg.cols
    w: QWeight = op.attrs["weight"]
    xl, ol = layouts[op.inputs[0]], layouts[op.output]
    nb_, ho, wo, kh, kw, cout = _conv_geometry(op, xl)
    cin = xl.shape[1]
    g = op.attrs["groups"]
    cin_g, cout_g = cin // g, cout // g
    (sh, sw), (ph, pw), (dh, dw) = op.attrs["stride"], op.attrs["padding"], op.attrs["dilation"]
    w_int = w.integer()
    w_codes = w.codes.astype(np.int64)
    per_block = max(1, C // cout_g) if g > 1 else 1
    jobs = []
    for g0 in range(0, g, per_block):
        g1 = min(g, g0 + per_block)
        in0, in1 = g0 * cin_g, g1 * cin_g
        out0, out1 = g0 * cout_g, g1 * cout_g
        ktiles = _conv_ktiles(kh, kw, in0, in1, cin, R, dw == 1 and in1 - in0 == cin
                              and not (plan.grouped and w.dtype_codes.shape[1] > 1))
        kt = len(ktiles)
        nblk = out1 - out0
        mat = np.zeros((kt * R, nblk), np.int64)
        codes = np.zeros((kt * R, nblk), np.int64)
        cols = np.arange(nblk)
        grp = (out0 + cols) // cout_g
        for i, (dy, entries) in enumerate(ktiles):
            for r, (dx, c) in enumerate(entries):
                own = (grp * cin_g <= c) & (c < (grp + 1) * cin_g)  # block-diagonal for grouped convs
                local = np.clip(c - grp * cin_g, 0, cin_g - 1)
                mat[i * R + r] = np.where(own, w_int[out0 + cols, local, dy, dx], 0)
                codes[i * R + r] = np.where(own, w_codes[out0 + cols, local, dy, dx], 0)
        groups = _groups_for(w, out0, nblk) if plan.grouped else None
        blobs = (_pack_weights(mat, codes, plan, cfg), _params(op, nblk, C, out0, plan, groups))
        kinds = [k for k in ("rows", "wide") if im2col in (k, "auto")]
        if sh != sw and "wide" in kinds:  # a wide row of outputs must map onto whole input rows
            kinds.remove("wide")
            if not kinds:
                raise CompileError(f"{op.source}: wide im2col needs equal strides, got {(sh, sw)}")
        alts = []
        for kind in kinds:
            wide = kind == "wide"
            wp = xl.buffer_shape[2]
            job = _conv_job(op, cfg, plan, w, xl, ol, ktiles, (ho, wo), (sh, sw), (ph, pw), (dh, dw), out0, nblk,
                            nb_ * ho * (wp if wide else wo), cin, cout, wide)
            alts.append(LoweredJob(job, *blobs, kt * R, ho * wp if wide else wo, wp if wide else 0, kind))
        jobs.append(alts)
    return jobs


def _conv_ktiles(kh: int, kw: int, in0: int, in1: int, cin: int, rows: int,
                 whole_rows: bool) -> list[tuple[int, list[tuple[int, int]]]]:
    """The k-tiles of a convolution block: (kernel row dy, the (dx, channel) of each array row).

    With ``whole_rows`` (all channels, no horizontal dilation) a kernel row's ``kw x cin`` inputs
    are contiguous bytes of the NHWC window, so they are cut into k-tiles of ``rows`` regardless
    of where one kernel position ends (a 3-channel 3x3 conv takes 3 k-tiles, not 9); otherwise
    each kernel position's channels are cut separately."""
    if whole_rows:
        row = [(dx, c) for dx in range(kw) for c in range(cin)]
        return [(dy, row[s : s + rows]) for dy in range(kh) for s in range(0, len(row), rows)]
    return [(dy, [(dx, c) for c in range(c0, min(in1, c0 + rows))])
            for dy in range(kh) for dx in range(kw) for c0 in range(in0, in1, rows)]


def _wide_runs(m0: int, rows: int, ho: int, wp: int, wo: int) -> tuple[list, list]:
    """Virtual pixels m0 .. m0+rows of a wide im2col (``ho x wp`` per image, the last ``wp - wo`` of
    each row not outputs): (n, first virtual pixel in the image, count, offset) per image for the
    LOADs, and (n, oy, x0, count, offset) per output row for the STOREs."""
    per_image = ho * wp
    loads, stores = [], []
    v, end = m0, m0 + rows
    while v < end:
        n, r = divmod(v, per_image)
        cnt = min(per_image - r, end - v)
        loads.append((n, r, cnt, v - m0))
        v += cnt
    first_row, last_row = m0 // wp, (end - 1) // wp
    for row in range(first_row, last_row + 1):
        n, oy = divmod(row, ho)
        lo, hi = max(m0, row * wp), min(end, row * wp + wo)
        if lo < hi:
            stores.append((n, oy, lo - row * wp, hi - lo, lo - m0))
    return loads, stores


def _conv_job(op, cfg, plan, w, xl, ol, ktiles, out_hw, stride, padding, dilation, out0, nblk, m, cin, cout,
              wide: bool = False):
    """A convolution block's GEMM job. ``rows`` im2col: one GEMM row per output pixel, one LOAD per
    output-image row. ``wide``: one GEMM row per pixel of the padded input width (equal strides),
    so consecutive rows read consecutive windows and one LOAD covers a whole image; the rows past
    the output width are computed and never stored."""
    C = cfg.cols
    ho, wo = out_hw
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oph, opw = ol.pad if ol.kind == "nhwc" else (0, 0)
    xeb, eb = xl.elem_bytes, ol.elem_bytes
    wp = xl.buffer_shape[2]
    if wide:
        return _wide_job(op, cfg, plan, w, xl, ol, ktiles, ho, wo, wp, sh, (ph, pw), (dh, dw), out0, nblk, m, cin,
                         cout)

    def a_loads(m0: int, rows: int, i: int) -> list[Transfer]:
        dy, entries = ktiles[i]
        dx, c0 = entries[0]
        cw = len(entries)
        out = []
        for n, oy, x0, cnt, _ in _runs(m0, rows, ho, wo):
            y = oy * sh + dy * dh - ph + xl.pad[0]
            x = x0 * sw + dx * dw - pw + xl.pad[1]
            out.append(Transfer(xl.pixel_addr(n, y, x) + c0 * xeb, cnt, cw * xeb, sw * cin * xeb))
        return out

    def stores(m0: int, rows: int, j: int) -> list[Transfer]:
        n0 = out0 + j * C
        cnt_c = min(C, nblk - j * C)
        return [Transfer(ol.pixel_addr(n, oy + oph, x0 + opw) + n0 * eb, cnt, cnt_c * eb, cout * eb)
                for n, oy, x0, cnt, _ in _runs(m0, rows, ho, wo)]

    return _job(op, cfg, plan, w, ktiles, m, nblk, a_loads, stores)


def _job(op, cfg, plan, w, ktiles, m, nblk, a_loads, stores) -> GemmJob:
    gk = tuple(entries[0][1] // w.group_size for _, entries in ktiles) if plan.grouped else None
    groups = w.dtype_codes.shape[1] if plan.grouped else 0
    return GemmJob(name=op.name, m=m, kt=len(ktiles), n=nblk, dtype=plan.dtype, w_addr=0, p_addr=0,
                   param_rows=-(-nblk // cfg.cols) * (1 + groups), a_loads=a_loads, stores=stores,
                   relu=bool(op.attrs["relu"]), zero_point=op.attrs["out_q"].zero_point if op.attrs["out_q"] else 0,
                   int32_out=op.attrs["out_q"] is None, group_of_ktile=gk)


def _wide_job(op, cfg, plan, w, xl, ol, ktiles, ho, wo, wp, s, padding, dilation, out0, nblk, m, cin, cout):
    C = cfg.cols
    (ph, pw), (dh, dw) = padding, dilation
    oph, opw = ol.pad if ol.kind == "nhwc" else (0, 0)
    xeb, eb = xl.elem_bytes, ol.elem_bytes

    def a_loads(m0: int, rows: int, i: int) -> list[Transfer]:
        dy, entries = ktiles[i]
        dx, c0 = entries[0]
        out = []
        for n, r, cnt, off in _wide_runs(m0, rows, ho, wp, wo)[0]:
            oy, x = divmod(r, wp)
            # virtual pixel (oy, x) reads input row oy*s + dy*dh, column x*s + dx*dw (past the row's
            # end for x >= wo: those rows are never stored); consecutive pixels are s pixels apart
            y = oy * s + dy * dh - ph + xl.pad[0]
            col = x * s + dx * dw - pw + xl.pad[1]
            out.append(Transfer(xl.pixel_addr(n, y, 0) + (col * cin + c0) * xeb, cnt, len(entries) * xeb,
                                s * cin * xeb, off))
        return out

    def stores(m0: int, rows: int, j: int) -> list[Transfer]:
        n0 = out0 + j * C
        cnt_c = min(C, nblk - j * C)
        return [Transfer(ol.pixel_addr(n, oy + oph, x0 + opw) + n0 * eb, cnt, cnt_c * eb, cout * eb, off)
                for n, oy, x0, cnt, off in _wide_runs(m0, rows, ho, wp, wo)[1]]

    return _job(op, cfg, plan, w, ktiles, m, nblk, a_loads, stores)


# ---- depthwise convolutions ------------------------------------------------------------------------


def _depthwise_geometry(op: Op, cfg: AccelConfig, xl: TensorLayout, flat: bool) -> Depthwise | None:
    """The stride-phase planes and taps of a depthwise convolution (compiler/tiling.py), or None when
    the op is not one (input channels per group other than 1, unequal strides).

    ``flat``: a plane is one stride phase of the padded image taken as one sequence of pixels
    (``wq`` = the buffer width, so output row oy is virtual rows ``oy * wq ..``, of which the first
    ``wo`` are stored); a block's plane is one LOAD. Otherwise (stride > 1) plane (a, b) holds the
    pixels (s*r + a, s*q + b) with ``wq = wo +`` the largest column offset, one LOAD per plane row,
    and fewer virtual rows go to waste."""
    n, cin, _, _ = xl.shape
    cout, cin_g, kh, kw = op.attrs["weight"].shape
    (sh, sw), (ph, pw), (dh, dw) = op.attrs["stride"], op.attrs["padding"], op.attrs["dilation"]
    if op.attrs["groups"] != cin or cin_g != 1 or sh != sw or xl.kind != "nhwc":
        return None
    s = sh
    _, ho, wo, _, _, _ = _conv_geometry(op, xl)
    hb, wb = xl.buffer_shape[1:3]
    shift = (xl.pad[0] - ph) * wb + xl.pad[1] - pw  # buffer pixel of the op's padded origin
    if flat or s == 1:
        wq = wb
        offs = [dy * dh * wb + dx * dw for dy in range(kh) for dx in range(kw)]
        taps = [(o % s, 0, o // s // wq, o // s % wq) for o in offs]
    else:
        taps = [(dy * dh % s, dx * dw % s, dy * dh // s, dx * dw // s) for dy in range(kh) for dx in range(kw)]
        wq = wo + max(t[3] for t in taps)
    keys = sorted({t[:2] for t in taps})
    planes = []
    for a, b in keys:
        mine = [t for t in taps if t[:2] == (a, b)]
        if flat or s == 1:  # the last plane row that starts inside the buffer
            last = (hb * wb - 1 - a - shift) // (s * wq)
        else:
            last = (hb - 1 - a + ph - xl.pad[0]) // s
        planes.append(DwPlane(a, b, min(t[2] for t in mine), max(t[2] for t in mine), max(t[3] for t in mine), last))
    block = min(cfg.rows, cfg.cols)
    mult = cout // cin
    widths = [(min(o + block, cout) - 1) // mult + 1 - o // mult for o in range(0, cout, block)]
    return Depthwise(images=n, ho=ho, wo=wo, wq=wq, stride=s, contiguous=flat or s == 1, planes=tuple(planes),
                     taps=tuple((keys.index(t[:2]), t[2], t[3]) for t in taps), channels=cout, block=block,
                     in_bytes=max(widths) * xl.elem_bytes, in_total=sum(widths) * xl.elem_bytes)


def _lower_depthwise(op: Op, cfg: AccelConfig, layouts: dict[str, TensorLayout], plan: WeightPlan) -> list[LoweredJob]:
    """A depthwise convolution as one job of its own schedule (compiler/tiling.py, "depthwise
    convolutions"): channel blocks of ``min(rows, cols)`` output channels, each kernel tap a diagonal
    weight tile and an array pass over input rows loaded once per block of output rows; with stride
    > 1 both plane shapes (flat and per row) as alternatives. Empty when the op is not depthwise or
    no block fits, and the grouped-convolution lowering takes it."""
    if plan.grouped:
        return []
    xl = layouts[op.inputs[0]]
    alts = []
    for flat in (True, False) if op.attrs["stride"][0] > 1 else (True,):
        geo = _depthwise_geometry(op, cfg, xl, flat)
        if geo is None:
            return []
        lj = _depthwise_job(op, cfg, layouts, plan, geo)
        if lj is not None:
            alts.append(lj)
    return alts


def _depthwise_job(op: Op, cfg: AccelConfig, layouts: dict[str, TensorLayout], plan: WeightPlan,
                   geo: Depthwise) -> LoweredJob | None:
    xl, ol = layouts[op.inputs[0]], layouts[op.output]
    R, C = cfg.rows, cfg.cols
    w: QWeight = op.attrs["weight"]
    cout, _, kh, kw = w.shape
    cin = xl.shape[1]
    mult = cout // cin
    ph, pw = op.attrs["padding"]
    s, wq, B = geo.stride, geo.wq, geo.block
    kt = len(geo.taps)
    nb = geo.blocks
    xeb, eb = xl.elem_bytes, ol.elem_bytes
    oph, opw = ol.pad if ol.kind == "nhwc" else (0, 0)
    w_int = w.integer()
    mat = np.zeros((kt * R, nb * C), np.int64)
    params = []
    for j in range(nb):
        o0, o1 = j * B, min(cout, (j + 1) * B)
        cols = np.arange(o1 - o0)
        rows_ = (o0 + cols) // mult - o0 // mult
        for i, (dy, dx) in enumerate((dy, dx) for dy in range(kh) for dx in range(kw)):
            mat[i * R + rows_, j * C + cols] = w_int[o0 + cols, 0, dy, dx]
        params.append(_params(op, o1 - o0, C, o0, plan, None))
    w_blob = _pack_weights(mat, None, plan, cfg)

    def loads(n: int, oy0: int, oy1: int, j: int, bases: list[int]) -> list[Transfer]:
        i0 = (j * B) // mult
        cw = (min(cout, (j + 1) * B) - 1) // mult + 1 - i0
        out = []
        for pi, p in enumerate(geo.planes):
            r0, r1 = geo.plane_rows(pi, oy0, oy1)
            x = p.b - pw + xl.pad[1]
            if geo.contiguous:  # plane element u is buffer pixel s*u + a + shift of the image
                if r1 > r0:
                    px = s * r0 * wq + p.a + (xl.pad[0] - ph) * xl.buffer_shape[2] + xl.pad[1] - pw
                    out.append(Transfer(xl.pixel_addr(n, 0, 0) + (px * cin + i0) * xeb, (r1 - r0) * wq,
                                        cw * xeb, s * cin * xeb, bases[pi]))
                continue
            for r in range(r0, r1):
                out.append(Transfer(xl.pixel_addr(n, s * r + p.a - ph + xl.pad[0], x) + i0 * xeb, wq, cw * xeb,
                                    s * cin * xeb, bases[pi] + (r - r0) * wq))
        return out

    def stores(n: int, oy0: int, oy1: int, j: int) -> list[Transfer]:
        o0 = j * B
        nc = min(cout, o0 + B) - o0
        return [Transfer(ol.pixel_addr(n, oy + oph, opw) + o0 * eb, geo.wo, nc * eb, cout * eb, (oy - oy0) * wq)
                for oy in range(oy0, oy1)]

    def unused(*_):
        raise AssertionError("a depthwise job is emitted by codegen.emit_depthwise")

    job = GemmJob(name=op.name, m=geo.images * geo.ho * geo.wo, kt=kt, n=cout, dtype=plan.dtype, w_addr=0, p_addr=0,
                  param_rows=nb, a_loads=unused, stores=unused, relu=bool(op.attrs["relu"]),
                  zero_point=op.attrs["out_q"].zero_point if op.attrs["out_q"] else 0,
                  int32_out=op.attrs["out_q"] is None, depthwise=DepthwiseJob(geo, loads, stores))
    gemm = Gemm(op.name, job.m, kt * R, cout, depthwise=geo,
                out_bytes=cfg.acc_bytes if job.int32_out else 1)
    if not depthwise_fits(cfg, gemm, datatype(plan.dtype).bits):
        return None
    return LoweredJob(job, w_blob, b"".join(params), kt * R, geo.wo, geo.wo, "depthwise")
