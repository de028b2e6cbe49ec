"""Direct NumPy evaluation of a graph IR: what a compiled program must compute.

Quantized GEMMs are evaluated straight from their definition, with none of the compiler's
machinery (no im2col, tiling, packing or DRAM layout): a convolution is a sum over kernel
positions of shifted input windows, padded with the input zero point, times the integer
weights; int8 outputs go through the requantization arithmetic of docs/numerics.md written out
here, deliberately not through hw/numerics.py (which the golden model and the RTL's testbenches
use), so that a mistake there shows up as a difference against this re-derivation. Host ops
run their compiler/hostops.py functions, as the runtime does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.hostops import HOST_OPS
from compiler.ir import CRef, Graph, Op, QWeight, Ref
from compiler.lowering import requant
from hw.numerics import act_range


def _resolve(template: Any, inputs: list[np.ndarray], consts: dict[str, np.ndarray]) -> Any:
    if isinstance(template, Ref):
        return inputs[template.index]
    if isinstance(template, CRef):
        return consts[template.name]
    if isinstance(template, list):
        return [_resolve(t, inputs, consts) for t in template]
    return template


def run_host_op(op: Op, inputs: list[np.ndarray], consts: dict[str, np.ndarray]) -> np.ndarray:
    """One host op on its input arrays."""
    fn = HOST_OPS[op.kind]
    args = _resolve(op.attrs.get("args", [Ref(i) for i in range(len(inputs))]), inputs, consts)
    kwargs = {k: _resolve(v, inputs, consts) for k, v in op.attrs.get("kwargs", {}).items()}
    return fn(*args, **kwargs)


def qgemm_accumulators(op: Op, x: np.ndarray) -> np.ndarray:
    """Sum over K of int8 codes x integer weights (conv padding holds the input zero point),
    in the output's logical layout."""
    w: QWeight = op.attrs["weight"]
    wi = w.integer()
    x = np.asarray(x, np.int64)
    if op.attrs["kind"] == "linear":
        return x @ wi.T
    (sh, sw), (ph, pw), (dh, dw), groups = (op.attrs[k] for k in ("stride", "padding", "dilation", "groups"))
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = wi.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.full((n, cin, h + 2 * ph, wd + 2 * pw), op.attrs["x_q"].zero_point, np.int64)
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    out = np.zeros((n, cout, ho, wo), np.int64)
    cout_g = cout // groups
    for dy in range(kh):
        for dx in range(kw):
            win = xp[:, :, dy * dh : dy * dh + sh * (ho - 1) + 1 : sh, dx * dw : dx * dw + sw * (wo - 1) + 1 : sw]
            for g in range(groups):
                xs = win[:, g * cin_g : (g + 1) * cin_g]
                ws = wi[g * cout_g : (g + 1) * cout_g, :, dy, dx]
                out[:, g * cout_g : (g + 1) * cout_g] += np.einsum("ncyx,oc->noyx", xs, ws)
    return out


def qgemm(op: Op, x: np.ndarray, act_bits: int = 8) -> np.ndarray:
    """A qgemm's output: raw int32 accumulators, or int8 after requantization."""
    acc = qgemm_accumulators(op, x)
    out_q = op.attrs["out_q"]
    if out_q is None:
        return acc.astype(np.int32)
    r = requant(op)
    axis = 1 if op.attrs["kind"] == "conv2d" else acc.ndim - 1
    shape = [1] * acc.ndim
    shape[axis] = -1
    bias, mult, shift = (np.asarray(a, np.int64).reshape(shape) for a in (r.bias, r.multiplier, r.shift))
    # round half up: (x * m + 2^(shift-1)) >> shift
    prod = (acc + bias) * mult
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    y = ((prod + half) >> shift) + out_q.zero_point
    qmin, qmax = act_range(act_bits)
    lo = max(out_q.zero_point, qmin) if op.attrs["relu"] else qmin
    return np.clip(y, lo, qmax).astype(np.int8)


def evaluate(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of the graph for the given float inputs (by input name)."""
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in inputs:
            raise ValueError(f"missing graph input {name!r}")
        x = np.asarray(inputs[name], np.float32)
        if tuple(x.shape) != graph.values[name].shape:
            raise ValueError(f"input {name}: expected shape {graph.values[name].shape}, got {tuple(x.shape)}")
        env[name] = x
    for op in graph.ops:
        args = [env[i] for i in op.inputs]
        env[op.output] = qgemm(op, args[0]) if op.kind == "qgemm" else run_host_op(op, args, graph.consts)
    return env
