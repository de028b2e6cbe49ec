"""Graph IR <-> JSON, for the program file: arrays as base64 with dtype and shape, the IR's
dataclasses tagged by type, so a loaded program's host ops are the compiled ones exactly."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from compiler.ir import CRef, Graph, Op, QParams, QWeight, Ref, Value


def encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__nd__": obj.dtype.str, "shape": list(obj.shape),
                "b64": base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Ref):
        return {"__ref__": obj.index}
    if isinstance(obj, CRef):
        return {"__cref__": obj.name}
    if isinstance(obj, QParams):
        return {"__q__": [obj.scale, obj.zero_point, obj.qmin, obj.qmax, obj.offset]}
    if isinstance(obj, QWeight):
        return {"__qw__": {k: encode(getattr(obj, k)) for k in (
            "codes", "dtype_codes", "zero_points", "group_scales", "channel_scales", "group_size")}}
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__nd__" in obj:
        return np.frombuffer(base64.b64decode(obj["b64"]), np.dtype(obj["__nd__"])).reshape(obj["shape"]).copy()
    if "__ref__" in obj:
        return Ref(obj["__ref__"])
    if "__cref__" in obj:
        return CRef(obj["__cref__"])
    if "__q__" in obj:
        return QParams(*obj["__q__"])
    if "__qw__" in obj:
        return QWeight(**{k: decode(v) for k, v in obj["__qw__"].items()})
    return {k: decode(v) for k, v in obj.items()}


_TUPLE_ATTRS = ("stride", "padding", "dilation")


def graph_to_json(graph: Graph, keep_weights: bool = True) -> dict:
    """The graph as JSON-able data; without `keep_weights`, accelerator ops drop their weights
    (they live in the program's DRAM image)."""
    ops = []
    for op in graph.ops:
        attrs = dict(op.attrs)
        if op.placement == "accel" and not keep_weights:
            attrs["weight"] = attrs["weight"].describe()
            attrs.pop("bias", None)
        ops.append({"name": op.name, "kind": op.kind, "inputs": list(op.inputs), "outputs": list(op.outputs),
                    "attrs": encode(attrs), "placement": op.placement, "source": op.source, "reason": op.reason})
    return {
        "values": {n: {"shape": list(v.shape), "dtype": v.dtype, "q": encode(v.q)} for n, v in graph.values.items()},
        "ops": ops, "inputs": list(graph.inputs), "outputs": list(graph.outputs),
        "consts": {k: encode(v) for k, v in graph.consts.items()},
    }


def graph_from_json(d: dict) -> Graph:
    values = {n: Value(n, tuple(v["shape"]), v["dtype"], decode(v["q"])) for n, v in d["values"].items()}
    ops = []
    for o in d["ops"]:
        attrs = decode(o["attrs"])
        for k in _TUPLE_ATTRS:
            if k in attrs:
                attrs[k] = tuple(attrs[k])
        ops.append(Op(o["name"], o["kind"], tuple(o["inputs"]), tuple(o["outputs"]), attrs, o["placement"],
                      o["source"], o["reason"]))
    return Graph(values, tuple(ops), tuple(d["inputs"]), tuple(d["outputs"]),
                 {k: decode(v) for k, v in d["consts"].items()})
