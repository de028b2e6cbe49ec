"""A hand-scheduled tiled GEMM kernel: ``out = requant(A @ W)`` as an assembly program.

A is M x K int8, W is K x N integer weights of one datatype, out is M x N int8 with
per-output-channel bias / multiplier / shift. Loop order: n-tiles, m-tiles, k-tiles; input
and weight tiles ping-pong between buffer halves (double buffering) and dependency tokens let
the next tile's loads overlap the current tile's compute, and stores overlap both.
The general compiler chooses tilings by search; this kernel is the fixed reference schedule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from compiler.memory import align
from hw.asm import assemble
from hw.config import AccelConfig
from hw.datatypes import Datatype, datatype, pack
from hw.isa import INSN_BYTES, PARAM_BYTES, ChannelParams, GroupParams
from hw.numerics import requantize
from hw.program import Program, Segment, TensorDesc
from hw.records import pack_records


@dataclass(frozen=True)
class Requant:
    """Per-output-channel post-processing parameters (see docs/numerics.md)."""

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int = 0
    relu: bool = False


def example_operands(m: int, k: int, n: int, weight_dtype: str = "int4", seed: int = 0,
                     relu: bool = False) -> tuple[np.ndarray, np.ndarray, Requant]:
    """Random int8 A, weights spanning the datatype, and requantization that keeps the outputs
    spread over the INT8 range: the operands of the benchmarks and the demo."""
    dt = datatype(weight_dtype)
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k))
    w = rng.integers(dt.qmin, dt.qmax + 1, (k, n))
    spread = np.sqrt(k) * 74 * max(abs(dt.qmin), dt.qmax) / 1.7  # ~ std of A @ W
    # y ~ 60 * acc / spread, with the largest shift that keeps the multiplier in its 24 bits
    shift = int(np.floor(np.log2(((1 << 24) - 1) * spread / 60)))
    mult = int(np.rint(60 / spread * 2.0**shift))
    req = Requant(bias=rng.integers(-1000, 1000, n), multiplier=np.full(n, mult), shift=np.full(n, shift),
                  zero_point=-5 if relu else 0, relu=relu)
    return a, w, req


def reference_gemm(a: np.ndarray, w: np.ndarray, req: Requant, act_bits: int,
                   groups: WeightGroups | None = None) -> np.ndarray:
    """What the kernel computes, evaluated directly in NumPy (docs/numerics.md); with groups,
    every weight is first (value - zero point) * scale of its group."""
    w = np.asarray(w, np.int64)
    if groups is not None:
        w = groups.effective(w)
    return requantize(np.asarray(a, np.int64) @ w, req.bias, req.multiplier, req.shift, req.zero_point, req.relu,
                      act_bits)


@dataclass(frozen=True)
class WeightGroups:
    """Per-group datatypes, scales and zero points of a K x N weight matrix (the bit-serial PE's
    grouped MATMUL): group g covers rows [g*size, (g+1)*size) of K; ``tags[g, n]`` names column
    n's datatype in that group, ``scales[g, n]`` its unsigned integer scale and
    ``zero_points[g, n]`` the value subtracted from its weights. The weight matrix holds the
    datatypes' values; the effective weight is ``(value - zero_point) * scale``."""

    size: int
    tags: np.ndarray  # (groups, N) datatype names
    scales: np.ndarray  # (groups, N) integers in GroupParams.scale's range
    zero_points: np.ndarray | None = None  # (groups, N) subtracted from the values (asymmetric uintN)

    def codes(self, w: np.ndarray) -> np.ndarray:
        """Each weight value as a code of its column-group's datatype."""
        codes = np.zeros(w.shape, np.int64)
        for name in np.unique(self.tags):
            dt = datatype(str(name))
            sel = np.repeat(self.tags == name, self.size, axis=0)[: w.shape[0]]
            codes[sel] = dt.encode(w[sel])
        return codes

    def scale_rows(self, k: int) -> np.ndarray:
        """The K x N scale that multiplies each weight."""
        return np.repeat(np.asarray(self.scales, np.int64), self.size, axis=0)[:k]

    def zero_point_rows(self, k: int) -> np.ndarray:
        """The K x N zero point subtracted from each weight value."""
        zp = np.zeros(self.tags.shape, np.int64) if self.zero_points is None else self.zero_points
        return np.repeat(np.asarray(zp, np.int64), self.size, axis=0)[:k]

    def effective(self, w: np.ndarray) -> np.ndarray:
        """The integer weights the hardware multiplies by: (value - zero point) * scale."""
        k = w.shape[0]
        return (np.asarray(w, np.int64) - self.zero_point_rows(k)) * self.scale_rows(k)


def pack_code_tiles(codes: np.ndarray, bits: int, rows: int, cols: int) -> np.ndarray:
    """K x N codes -> packed rows x cols tiles, k-tile major within each n-tile column
    order (tile (i, j) at index j * k_tiles + i), each tile zero-padded and row-major."""
    k, n = codes.shape
    kt, nt = -(-k // rows), -(-n // cols)
    padded = np.zeros((kt * rows, nt * cols), np.int64)
    padded[:k, :n] = codes
    tiles = padded.reshape(kt, rows, nt, cols).transpose(2, 0, 1, 3)  # (nt, kt, rows, cols)
    return np.concatenate([pack(t, bits) for t in tiles.reshape(-1, rows, cols)])


def pack_weight_tiles(w: np.ndarray, dt: Datatype, rows: int, cols: int) -> np.ndarray:
    """K x N weight values of one datatype -> packed tiles (see pack_code_tiles)."""
    return pack_code_tiles(dt.encode(w), dt.bits, rows, cols)


def pack_group_params(groups: WeightGroups, storage: Datatype, cols: int) -> np.ndarray:
    """GroupParams rows, one per (group, n-tile) at index g * n_tiles + j; padding columns get
    the storage datatype and scale 0."""
    g, n = groups.tags.shape
    nt = -(-n // cols)
    codes = np.full((g, nt * cols), storage.code, np.int64)
    codes[:, :n] = np.vectorize(lambda t: datatype(str(t)).code)(groups.tags)
    scales = np.zeros((g, nt * cols), np.int64)
    scales[:, :n] = groups.scales
    zps = np.zeros((g, nt * cols), np.int64)
    if groups.zero_points is not None:
        zps[:, :n] = groups.zero_points
    return pack_records(GroupParams, dtype=codes.ravel(), scale=scales.ravel(), zero_point=zps.ravel())


def pack_params(req: Requant, n: int, cols: int) -> np.ndarray:
    """Per-channel parameters, zero-padded to whole PARAM rows of `cols` entries."""
    nt = -(-n // cols)

    def pad(v: np.ndarray) -> np.ndarray:
        out = np.zeros(nt * cols, np.int64)
        out[:n] = np.broadcast_to(np.asarray(v, np.int64), (n,))
        return out

    return pack_records(ChannelParams, bias=pad(req.bias), multiplier=pad(req.multiplier), shift=pad(req.shift))


KERNELS = ("auto", "stream", "resident")


def gemm_program(
    config: AccelConfig,
    a: np.ndarray,
    w: np.ndarray,
    weight_dtype: str,
    req: Requant,
    m_tile: int | None = None,
    kernel: str = "auto",
    groups: WeightGroups | None = None,
) -> Program:
    """Assemble the tiled GEMM for one configuration, with its DRAM image.

    Two schedules: ``stream`` loads an input tile and a weight tile for every array pass
    (any size fits; DRAM traffic ~ N/cols x the input), ``resident`` keeps a block of input
    rows with all of K in one buffer half while it walks every n-tile, loading one weight
    column (all k-tiles) per output tile, so each input byte is read from DRAM once.
    ``auto`` takes ``resident`` when its input block is at least 2 x rows deep.
    With ``groups`` (bit-serial PE) every MATMUL is grouped: ``weight_dtype`` is the storage
    width and each tile's GroupParams row (after the ChannelParams rows in PARAM) gives each
    column's datatype and scale.
    """
    cfg = config
    dt = datatype(weight_dtype)
    if dt.name not in cfg.weight_dtypes:
        raise ValueError(f"{dt.name} weights: config {cfg.name!r} runs {list(cfg.weight_dtypes)}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel {kernel!r}: choose one of {', '.join(KERNELS)}")
    (m, k), (k2, n) = a.shape, w.shape
    if k != k2:
        raise ValueError(f"A is {m}x{k} but W is {k2}x{n}: inner dimensions differ")
    R, C, S = cfg.rows, cfg.cols, cfg.slots
    kt, nt = -(-k // R), -(-n // C)
    k_groups = 0
    if groups is not None:
        if cfg.pe != "serial":
            raise ValueError(f"grouped weights need the bit-serial PE; config {cfg.name!r} has pe = {cfg.pe!r}")
        if groups.size % R or groups.tags.shape != (-(-k // groups.size), n):
            raise ValueError(f"groups of {groups.size} along K = {k}: the size must be a multiple of rows = {R} "
                             f"and tags/scales must be ({-(-k // groups.size)}, {n}), got {groups.tags.shape}")
        k_groups = groups.tags.shape[0]
    param_rows = nt * (1 + k_groups)
    if param_rows > cfg.buffer_depth("param_buf_bytes"):
        raise ValueError(f"N = {n} needs {param_rows} PARAM rows; param_buf_bytes holds "
                         f"{cfg.buffer_depth('param_buf_bytes')}")
    w_rows = cfg.weight_tile_rows(dt)
    in_slot = cfg.buffer_depth("input_buf_bytes") // S
    w_slot = cfg.buffer_depth("weight_buf_bytes") // S
    out_slot = cfg.buffer_depth("out_buf_bytes") // S
    acc_depth = cfg.buffer_depth("acc_buf_bytes")
    fits = kt * w_rows <= w_slot
    mt_res = min(m, in_slot // kt, out_slot, acc_depth // 2) if fits else 0
    if kernel == "auto":
        kernel = "resident" if mt_res >= min(m, 2 * R) else "stream"
    if kernel == "resident":
        if mt_res < 1:
            raise ValueError(f"K = {k} is too deep for the resident kernel on {cfg.name!r}: it needs {kt} input "
                             f"rows per activation row ({in_slot} per buffer half) and {kt * w_rows} weight rows "
                             f"per column ({w_slot} per buffer half)")
        mt = mt_res
    else:
        mt = min(m, in_slot, out_slot, acc_depth)
    if m_tile is not None:
        mt = min(mt, m_tile)
    mtiles = -(-m // mt)

    n_outs = nt * mtiles
    if groups is None:
        w_blob = pack_weight_tiles(w, dt, R, C)
        p_blob = pack_params(req, n, C)
    else:
        w_blob = pack_code_tiles(groups.codes(np.asarray(w, np.int64)), dt.bits, R, C)
        p_blob = np.concatenate([pack_params(req, n, C), pack_group_params(groups, dt, C)])

    def grouped(ki: int, j: int) -> str:
        """The MATMUL fields that name tile (ki, j)'s GroupParams row."""
        if groups is None:
            return ""
        return f" grouped=1 group_addr={nt + (ki * R // groups.size) * nt + j}"

    tile_bytes = w_rows * C
    # DRAM layout: text at 0, then A, W tiles, params, output (text size known after emitting)
    lines: list[str] = []
    emit = lines.append
    addr: dict[str, int] = {}

    def a_load(sram: int, m0: int, rows: int, k0: int, extra: str = "") -> str:
        return (f"load buffer=input sram_addr={sram} dram_addr={{a+{m0 * k + k0}}} rows={rows} "
                f"row_bytes={min(R, k - k0)} dram_stride={k}{extra}")

    def w_load(sram: int, first_tile: int, tiles: int) -> str:
        return (f"load buffer=weight sram_addr={sram} dram_addr={{w+{first_tile * tile_bytes}}} rows={tiles} "
                f"row_bytes={tile_bytes} dram_stride={tile_bytes}")

    def with_deps(text: str, deps: list[str]) -> str:
        return f"{text} deps={'|'.join(deps)}" if deps else text

    def finish_tile(u: int, j: int, m0: int, rows: int, acc: int) -> None:
        oslot = u % S
        wait = ["pop_next"] if u >= S else []
        emit(with_deps(f"postproc acc_addr={acc} out_addr={oslot * mt} param_addr={j} m={rows} "
                       f"relu={int(req.relu)} zero_point={req.zero_point}", wait + ["push_next"]))
        free = ["push_prev"] if u + S < n_outs else []
        emit(with_deps(f"store buffer=output sram_addr={oslot * mt} dram_addr={{o+{m0 * n + j * C}}} rows={rows} "
                       f"row_bytes={min(C, n - j * C)} dram_stride={n}", ["pop_prev"] + free))

    param_load = (f"load buffer=param sram_addr=0 dram_addr={{p}} rows=1 row_bytes={p_blob.size} "
                  f"dram_stride={p_blob.size}")
    if kernel == "stream":
        passes = [(j, mi, ki) for j in range(nt) for mi in range(mtiles) for ki in range(kt)]
        for t, (j, mi, ki) in enumerate(passes):
            slot = t % S
            m0, k0 = mi * mt, ki * R
            rows = min(mt, m - m0)
            loads = [param_load] if t == 0 else []
            loads += [a_load(slot * mt, m0, rows, k0), w_load(slot * w_rows, j * kt + ki, 1)]
            # the group's first load waits until compute has freed the slot; its last one
            # tells compute the slot is full
            deps: list[list[str]] = [[] for _ in loads]
            if t >= S:
                deps[0].append("pop_next")
            deps[-1].append("push_next")
            lines += [with_deps(text, d) for text, d in zip(loads, deps)]
            frees = ["push_prev"] if t + S < len(passes) else []
            emit(with_deps(f"matmul dtype={dt.name} accumulate={int(ki > 0)} in_addr={slot * mt} "
                           f"w_addr={slot * w_rows} acc_addr=0 m={rows}{grouped(ki, j)}", ["pop_prev"] + frees))
            if ki == kt - 1:
                finish_tile(j * mtiles + mi, j, m0, rows, 0)
    else:
        # group t = (mi, j): the input block of m-tile mi (first group of the m-tile only) and
        # weight column j; its first load waits for the slots of group t - S to be free
        acc_halves = 2 if 2 * mt <= acc_depth else 1
        n_groups = mtiles * nt
        for t in range(n_groups):
            mi, j = divmod(t, nt)
            m0 = mi * mt
            rows = min(mt, m - m0)
            a_slot, w_at = (mi % S) * kt * mt, (t % S) * kt * w_rows
            loads = [param_load] if t == 0 else []
            if j == 0:
                loads += [a_load(a_slot + ki * mt, m0, rows, ki * R) for ki in range(kt)]
            loads.append(w_load(w_at, j * kt, kt))
            deps = [[] for _ in loads]
            if t >= S:
                deps[0].append("pop_next")
            deps[-1].append("push_next")
            lines += [with_deps(text, d) for text, d in zip(loads, deps)]
            acc = (t % acc_halves) * mt
            for ki in range(kt):
                d = (["pop_prev"] if ki == 0 else []) + (["push_prev"] if ki == kt - 1 and t + S < n_groups else [])
                emit(with_deps(f"matmul dtype={dt.name} accumulate={int(ki > 0)} in_addr={a_slot + ki * mt} "
                               f"w_addr={w_at + ki * w_rows} acc_addr={acc} m={rows}{grouped(ki, j)}", d))
            finish_tile(t, j, m0, rows, acc)
    emit("end")

    text_bytes = INSN_BYTES * len(lines)
    addr["a"] = align(text_bytes)
    addr["w"] = align(addr["a"] + a.size)
    addr["p"] = align(addr["w"] + w_blob.size)
    addr["o"] = align(addr["p"] + p_blob.size)
    text = "\n".join(lines)
    text = re.sub(r"\{(\w)(?:\+(\d+))?\}", lambda mt_: hex(addr[mt_.group(1)] + int(mt_.group(2) or 0)), text)
    insns = assemble(text, "gemm")
    return Program(
        config=cfg,
        insns=tuple(insns),
        text_addr=0,
        segments=(
            Segment("a", addr["a"], np.asarray(a, np.int8).tobytes()),
            Segment("w", addr["w"], w_blob.tobytes()),
            Segment("params", addr["p"], p_blob.tobytes()),
        ),
        tensors=(
            TensorDesc("a", "input", addr["a"], (m, k), "int8"),
            TensorDesc("out", "output", addr["o"], (m, n), "int8"),
        ),
        meta={"kernel": f"gemm-{kernel}", "m": m, "k": k, "n": n, "weight_dtype": dt.name, "m_tile": mt,
              "param_bytes": PARAM_BYTES},
    )
