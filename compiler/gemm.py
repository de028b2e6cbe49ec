"""A hand-scheduled tiled GEMM kernel: ``out = requant(A @ W)`` as an assembly program.

A is M x K int8, W is K x N integer weights of one datatype, out is M x N int8 with
per-output-channel bias / multiplier / shift. Loop order: n-tiles, m-tiles, k-tiles; input
and weight tiles ping-pong between buffer halves (double buffering) and dependency tokens let
the next tile's loads overlap the current tile's compute, and stores overlap both.
The general compiler chooses tilings by search; this kernel is the fixed reference schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.asm import assemble
from hw.config import AccelConfig
from hw.datatypes import Datatype, datatype, pack
from hw.isa import INSN_BYTES, PARAM_BYTES, ChannelParams
from hw.program import Program, Segment, TensorDesc
from hw.records import pack_records

ALIGN = 64


def _align(x: int) -> int:
    return -(-x // ALIGN) * ALIGN


@dataclass(frozen=True)
class Requant:
    """Per-output-channel post-processing parameters (see docs/numerics.md)."""

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int = 0
    relu: bool = False


def reference_gemm(a: np.ndarray, w: np.ndarray, req: Requant, act_bits: int) -> np.ndarray:
    """What the kernel computes, evaluated directly in NumPy (docs/numerics.md)."""
    x = (np.asarray(a, np.int64) @ np.asarray(w, np.int64) + req.bias) * req.multiplier
    half = np.where(req.shift > 0, np.left_shift(1, np.maximum(req.shift - 1, 0)), 0)
    y = ((x + half) >> req.shift) + req.zero_point
    qmin, qmax = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    return np.clip(y, max(req.zero_point, qmin) if req.relu else qmin, qmax)


def pack_weight_tiles(w: np.ndarray, dt: Datatype, rows: int, cols: int) -> np.ndarray:
    """K x N weight values -> packed rows x cols tiles, k-tile major within each n-tile column
    order (tile (i, j) at index j * k_tiles + i), each tile zero-padded and row-major."""
    k, n = w.shape
    kt, nt = -(-k // rows), -(-n // cols)
    padded = np.zeros((kt * rows, nt * cols), np.int64)
    padded[:k, :n] = w
    tiles = padded.reshape(kt, rows, nt, cols).transpose(2, 0, 1, 3)  # (nt, kt, rows, cols)
    return np.concatenate([pack(dt.encode(t), dt.bits) for t in tiles.reshape(-1, rows, cols)])


def pack_params(req: Requant, n: int, cols: int) -> np.ndarray:
    """Per-channel parameters, zero-padded to whole PARAM rows of `cols` entries."""
    nt = -(-n // cols)

    def pad(v: np.ndarray) -> np.ndarray:
        out = np.zeros(nt * cols, np.int64)
        out[:n] = np.broadcast_to(np.asarray(v, np.int64), (n,))
        return out

    return pack_records(ChannelParams, bias=pad(req.bias), multiplier=pad(req.multiplier), shift=pad(req.shift))


def gemm_program(
    config: AccelConfig,
    a: np.ndarray,
    w: np.ndarray,
    weight_dtype: str,
    req: Requant,
    m_tile: int | None = None,
) -> Program:
    """Assemble the tiled GEMM for one configuration, with its DRAM image."""
    cfg = config
    dt = datatype(weight_dtype)
    if dt.name not in cfg.weight_dtypes:
        raise ValueError(f"{dt.name} weights: config {cfg.name!r} runs {list(cfg.weight_dtypes)}")
    (m, k), (k2, n) = a.shape, w.shape
    if k != k2:
        raise ValueError(f"A is {m}x{k} but W is {k2}x{n}: inner dimensions differ")
    R, C, S = cfg.rows, cfg.cols, cfg.slots
    kt, nt = -(-k // R), -(-n // C)
    if nt > cfg.buffer_depth("param_buf_bytes"):
        raise ValueError(f"N = {n} needs {nt} PARAM rows; param_buf_bytes holds "
                         f"{cfg.buffer_depth('param_buf_bytes')}")
    w_rows = cfg.weight_tile_rows(dt)
    in_slot = cfg.buffer_depth("input_buf_bytes") // S
    out_slot = cfg.buffer_depth("out_buf_bytes") // S
    mt = min(m, in_slot, out_slot, cfg.buffer_depth("acc_buf_bytes"))
    if m_tile is not None:
        mt = min(mt, m_tile)
    mtiles = -(-m // mt)

    groups = [(j, mi, ki) for j in range(nt) for mi in range(mtiles) for ki in range(kt)]
    n_outs = nt * mtiles
    # DRAM layout: text at 0, then A, W tiles, params, output.
    text_bytes = INSN_BYTES * (1 + 3 * len(groups) + 2 * n_outs + 1)
    a_addr = _align(text_bytes)
    w_addr = _align(a_addr + a.size)
    w_blob = pack_weight_tiles(w, dt, R, C)
    p_addr = _align(w_addr + w_blob.size)
    p_blob = pack_params(req, n, C)
    o_addr = _align(p_addr + p_blob.size)
    tile_bytes = w_rows * C

    lines: list[str] = []
    emit = lines.append
    for t, (j, mi, ki) in enumerate(groups):
        slot = t % S
        m0, k0 = mi * mt, ki * R
        rows = min(mt, m - m0)
        loads = []
        if t == 0:
            loads.append(f"load buffer=param sram_addr=0 dram_addr={p_addr:#x} rows=1 "
                         f"row_bytes={p_blob.size} dram_stride={p_blob.size}")
        loads.append(f"load buffer=input sram_addr={slot * mt} dram_addr={a_addr + m0 * k + k0:#x} "
                     f"rows={rows} row_bytes={min(R, k - k0)} dram_stride={k}")
        tile_at = w_addr + (j * kt + ki) * tile_bytes
        loads.append(f"load buffer=weight sram_addr={slot * w_rows} dram_addr={tile_at:#x} "
                     f"rows=1 row_bytes={tile_bytes} dram_stride={tile_bytes}")
        # the group's first load waits until compute has freed the slot; its last one
        # tells compute the slot is full
        deps = [[] for _ in loads]
        if t >= S:
            deps[0].append("pop_next")
        deps[-1].append("push_next")
        lines += [f"{text} deps={'|'.join(d)}" if d else text for text, d in zip(loads, deps)]
        frees = "|push_prev" if t + S < len(groups) else ""
        emit(f"matmul dtype={dt.name} accumulate={int(ki > 0)} in_addr={slot * mt} "
             f"w_addr={slot * w_rows} acc_addr=0 m={rows} deps=pop_prev{frees}")
        if ki == kt - 1:
            u = j * mtiles + mi
            oslot = u % S
            wait = "pop_next|" if u >= S else ""
            emit(f"postproc acc_addr=0 out_addr={oslot * mt} param_addr={j} m={rows} "
                 f"relu={int(req.relu)} zero_point={req.zero_point} deps={wait}push_next")
            ofree = "|push_prev" if u + S < n_outs else ""
            emit(f"store buffer=output sram_addr={oslot * mt} dram_addr={o_addr + m0 * n + j * C:#x} "
                 f"rows={rows} row_bytes={min(C, n - j * C)} dram_stride={n} deps=pop_prev{ofree}")
    emit("end")
    insns = assemble("\n".join(lines), "gemm")
    assert len(insns) * INSN_BYTES == text_bytes
    return Program(
        config=cfg,
        insns=tuple(insns),
        text_addr=0,
        segments=(
            Segment("a", a_addr, np.asarray(a, np.int8).tobytes()),
            Segment("w", w_addr, w_blob.tobytes()),
            Segment("params", p_addr, p_blob.tobytes()),
        ),
        tensors=(
            TensorDesc("a", "input", a_addr, (m, k), "int8"),
            TensorDesc("out", "output", o_addr, (m, n), "int8"),
        ),
        meta={"kernel": "gemm", "m": m, "k": k, "n": n, "weight_dtype": dt.name, "m_tile": mt,
              "param_bytes": PARAM_BYTES},
    )
