"""torch.export front-end: an ExportedProgram of a quantized model -> graph IR.

Recognises the quantized patterns the PT2E flow (torchao ``prepare_pt2e/convert_pt2e``, any
quantizer) and lowbit's own quantizer leave in the graph::

    dequantize_per_tensor(x_q) -> conv2d | linear (weight: dequantize_per_channel(int8 const)
        or lowbit.dequantize_weight(codes ...)) [-> relu] [-> quantize_per_tensor]

and turns each into one ``qgemm`` op on int8 activations: with the quantize it requantizes to
int8 (relu fused), without it yields raw accumulators that a host ``dequantize_acc`` op turns
into the float tensor the graph continues with. Everything else becomes a host op
(compiler/hostops.py) on the values it reads; an op that neither runs is an error naming the node.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.ao.quantization.fx._decomposed  # noqa: E402,F401  (registers quantized_decomposed ops)

from compiler.hostops import ATEN_KINDS, HOST_OPS, HOST_REASONS
from compiler.ir import CRef, Graph, Op, QParams, QWeight, Ref, Value
from compiler.lowering import colsum
from compiler.reference import run_host_op
from hw.datatypes import DATATYPES

QD = torch.ops.quantized_decomposed
QUANTIZE = {QD.quantize_per_tensor.default, QD.quantize_per_tensor.tensor}
DEQUANTIZE = {QD.dequantize_per_tensor.default, QD.dequantize_per_tensor.tensor}
DEQUANTIZE_CHANNEL = {QD.dequantize_per_channel.default}
aten = torch.ops.aten
CONV = {aten.conv2d.default}
CONV1D = {aten.conv1d.default}
LINEAR = {aten.linear.default}
RELU = {aten.relu.default, aten.relu_.default}
HARDTANH = {aten.hardtanh.default, aten.hardtanh_.default}  # ReLU6 and other clamps
# ops with several tensor outputs, each read through operator.getitem: the piece becomes a
# single-output host op (a slice or select of the input, or the batch norm's first output)
PIECES = {aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default, aten.unbind.int,
          aten.split.sizes, aten._native_batch_norm_legit_no_training.default}
ASSERTS = {torch.ops.aten._assert_tensor_metadata.default, torch.ops.aten._assert_scalar.default}
INT8_CODE = DATATYPES["int8"].code


class FrontendError(ValueError):
    """A model the compiler cannot take, with the node (or file) that is the reason."""


class UnsupportedOps(FrontendError):
    """Every op of a model that neither the accelerator nor the host can run, in one error."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} op(s) that neither the accelerator nor the host runs:\n{lines}")


def lowbit_dequantize_ops() -> set:
    """lowbit's weight dequantize op, once compiler.torch_ops has registered it."""
    try:
        import compiler.torch_ops  # noqa: F401  (registers torch.ops.lowbit)
    except ImportError:
        return set()
    return {torch.ops.lowbit.dequantize_weight.default}


def load_exported(path: str | Path) -> torch.export.ExportedProgram:
    """A saved ``.pt2`` file -> ExportedProgram, with a clear error for anything else."""
    lowbit_dequantize_ops()
    path = Path(path)
    if not path.is_file():
        raise FrontendError(f"{path}: no such model file")
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # torch raises many types for a bad archive
        raise FrontendError(f"{path}: not a torch.export program (.pt2): {type(exc).__name__}: {exc}") from None


# ---- what each fx node stands for while importing -----------------------------------------------


@dataclass(frozen=True)
class _Val:
    name: str  # an IR value


@dataclass(frozen=True)
class _Const:
    array: torch.Tensor


@dataclass(frozen=True)
class _Dq:
    """The float view of an int8 IR value (a dequantize not yet materialised)."""

    name: str


@dataclass(frozen=True)
class _Weight:
    weight: QWeight
    node: Any


_CONSUMED = object()  # a relu / quantize folded into the qgemm before it


@dataclass(frozen=True)
class _Pieces:
    """An op with several tensor outputs, read piece by piece through getitem."""

    node: Any


_UNSUPPORTED = object()  # an op already reported as unsupported (and everything computed from it)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _qparams(scale: Any, zero_point: Any, qmin: int, qmax: int, dtype: torch.dtype, where: str) -> QParams:
    if dtype not in (torch.int8, torch.uint8):
        raise FrontendError(f"{where}: {dtype} activations; the accelerator runs int8 (or uint8) tensors")
    offset = 128 if dtype == torch.uint8 else 0
    scale = float(scale.item() if isinstance(scale, torch.Tensor) else scale)
    zp = int(zero_point.item() if isinstance(zero_point, torch.Tensor) else zero_point)
    return QParams(scale, zp - offset, int(qmin) - offset, int(qmax) - offset, offset)


class _Importer:
    def __init__(self, ep: torch.export.ExportedProgram | torch.fx.GraphModule):
        self.gm = ep.graph_module if isinstance(ep, torch.export.ExportedProgram) else ep
        self.ep = ep if isinstance(ep, torch.export.ExportedProgram) else None
        self.values: dict[str, Value] = {}
        self.ops: list[Op] = []
        self.consts: dict[str, np.ndarray] = {}
        self.env: dict[torch.fx.Node, Any] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.dq_cache: dict[str, str] = {}
        self.weight_ops = DEQUANTIZE_CHANNEL | lowbit_dequantize_ops()
        self.quantized = False
        self.problems: list[str] = []  # unsupported ops and arguments, reported together
        self.layer_names: set[str] = set()
        self.node_names = {n.name for n in self.gm.graph.nodes}

    # -- bookkeeping --

    def _value(self, name: str, shape, dtype: str, q: QParams | None = None) -> str:
        if name in self.values:
            raise FrontendError(f"value {name} defined twice")
        self.values[name] = Value(name, tuple(int(s) for s in shape), dtype, q)
        return name

    def _shape(self, node: torch.fx.Node) -> tuple[int, ...]:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise FrontendError(f"node {node.name} ({node.target}): no tensor shape recorded (is this a "
                                "torch.export graph?)")
        return tuple(int(s) for s in val.shape)

    def _const_of(self, node: torch.fx.Node) -> torch.Tensor | None:
        if self.ep is not None and node.op == "placeholder":
            sig = self.ep.graph_signature
            for table, source in ((sig.inputs_to_parameters, self.ep.state_dict),
                                  (sig.inputs_to_buffers, {**self.ep.state_dict, **self.ep.constants}),
                                  (sig.inputs_to_lifted_tensor_constants, self.ep.constants)):
                if node.name in table:
                    return source[table[node.name]]
            return None
        if node.op == "get_attr":
            obj = self.gm
            for part in str(node.target).split("."):
                obj = getattr(obj, part)
            return obj
        return None

    # -- resolving arguments --

    def float_value(self, ref: Any, node: torch.fx.Node) -> str:
        """The IR value holding a node's float tensor, materialising a pending dequantize."""
        if isinstance(ref, _Val):
            return ref.name
        if isinstance(ref, _Dq):
            if ref.name not in self.dq_cache:
                q = self.values[ref.name].q
                out = self._value(f"{ref.name}_dq", self.values[ref.name].shape, "float32")
                self.ops.append(Op(out, "dequantize", (ref.name,), (out,), {"args": [Ref(0), q.scale, q.zero_point]},
                                   source=f"{node.name}: dequantize_per_tensor", reason=HOST_REASONS["dequantize"]))
                self.dq_cache[ref.name] = out
            return self.dq_cache[ref.name]
        raise FrontendError(f"node {node.name}: expected a tensor value, got {ref!r}")

    def _template(self, arg: Any, node: torch.fx.Node, inputs: list[str]) -> Any:
        """An argument as a host-op template: values become Ref(i), constants named arrays."""
        if isinstance(arg, torch.fx.Node):
            ref = self.env[arg]
            if isinstance(ref, _Const):
                name = f"{node.name}_c{len(self.consts)}"
                self.consts[name] = _np(ref.array)
                return CRef(name)
            if isinstance(ref, _Weight):
                name = f"{node.name}_w{len(self.consts)}"
                self.consts[name] = ref.weight.integer() * ref.weight.channel_scales.reshape(
                    (-1,) + (1,) * (ref.weight.codes.ndim - 1))
                self.consts[name] = self.consts[name].astype(np.float32)
                return CRef(name)
            inputs.append(self.float_value(ref, node) if not isinstance(ref, _Val) else ref.name)
            return Ref(len(inputs) - 1)
        if isinstance(arg, list | tuple):
            return [self._template(a, node, inputs) for a in arg]
        if isinstance(arg, torch.dtype):
            return str(arg).removeprefix("torch.")
        if isinstance(arg, torch.device | torch.layout | torch.memory_format):
            return None
        return arg

    # -- node kinds --

    def run(self) -> Graph:
        for node in self.gm.graph.nodes:
            if node in self.env:
                continue
            if node.op in ("placeholder", "get_attr"):
                self._leaf(node)
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                self._output(node)
            else:
                raise FrontendError(f"node {node.name}: {node.op} nodes are not supported ({node.target})")
        if self.problems:
            raise UnsupportedOps(self.problems)
        if not self.quantized:
            raise FrontendError("the model has no quantize/dequantize nodes: quantize it first (PT2E "
                                "prepare_pt2e/convert_pt2e, or compiler.quantizer.quantize_model)")
        return Graph(dict(self.values), tuple(self.ops), tuple(self.inputs), tuple(self.outputs),
                     dict(self.consts)).check()

    def _leaf(self, node: torch.fx.Node) -> None:
        const = self._const_of(node)
        if const is not None:
            self.env[node] = _Const(const)
            return
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dtype not in (torch.float32, torch.int64):
            raise FrontendError(f"input {node.name}: float32 or int64 tensor inputs are supported, got {val!r}")
        self.inputs.append(self._value(node.name, val.shape, "float32" if val.dtype.is_floating_point else "int64"))
        self.env[node] = _Val(node.name)

    def _output(self, node: torch.fx.Node) -> None:
        outs = node.args[0]
        for arg in outs if isinstance(outs, tuple | list) else [outs]:
            ref = self.env.get(arg)
            if ref is _UNSUPPORTED:
                continue
            if isinstance(ref, _Val) and self.values[ref.name].dtype == "int8":
                self.outputs.append(self.float_value(_Dq(ref.name), arg))
            elif isinstance(ref, _Val | _Dq):
                self.outputs.append(self.float_value(ref, arg))
            else:
                raise FrontendError(f"output {arg}: a constant or non-tensor output is not supported")

    def _call(self, node: torch.fx.Node) -> None:
        target = node.target
        refs = [self.env.get(a) for a in node.all_input_nodes]
        if any(r is _CONSUMED for r in refs):
            raise FrontendError(f"node {node.name} reads a value folded into a fused GEMM")
        if any(r is _UNSUPPORTED for r in refs):
            self.env[node] = _UNSUPPORTED  # its input is reported already
        elif target in ASSERTS:
            self.env[node] = None  # a shape/dtype assertion: nothing to compute
        elif target in self.weight_ops:
            self._weight(node)
        elif all(isinstance(r, _Const) for r in refs) and refs:
            self._fold(node)
        elif target in QUANTIZE:
            self._quantize(node)
        elif target in DEQUANTIZE:
            self._dequantize(node)
        elif target in CONV | CONV1D | LINEAR and self._fuse_gemm(node):
            pass
        elif target in PIECES:
            self.env[node] = _Pieces(node)
        elif target is operator.getitem and isinstance(self.env.get(node.args[0]), _Pieces):
            self._piece(node)
        else:
            self._host(node)

    def _fold(self, node: torch.fx.Node) -> None:
        """An op on constants only is evaluated now (e.g. an unfolded weight quantize)."""
        args = torch.fx.node.map_arg(node.args, lambda n: self.env[n].array)
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: self.env[n].array)
        self.env[node] = _Const(target_result(node, args, kwargs))

    def _weight(self, node: torch.fx.Node) -> None:
        self.quantized = True
        args = [self.env[a].array if isinstance(a, torch.fx.Node) and isinstance(self.env.get(a), _Const) else a
                for a in node.args]
        if any(isinstance(a, torch.fx.Node) for a in args):
            raise FrontendError(f"node {node.name} ({target_name(node)}): weight quantization of a computed tensor "
                                "(only constant weights are supported)")
        if node.target in DEQUANTIZE_CHANNEL:
            w, scales, zps, axis, qmin, qmax, dtype = args[:7]
            if axis != 0:
                raise FrontendError(f"node {node.name}: per-channel weight quantization along axis {axis}; "
                                    "output channels (axis 0) are supported")
            if dtype != torch.int8:
                raise FrontendError(f"node {node.name}: {dtype} weights; per-channel weights must be int8")
            n = w.shape[0]
            zp = np.zeros(n, np.int64) if zps is None else _np(zps).astype(np.int64)
            weight = QWeight(
                codes=DATATYPES["int8"].encode(_np(w).astype(np.int64)).reshape(w.shape),
                dtype_codes=np.full((n, 1), INT8_CODE), zero_points=zp.reshape(n, 1),
                group_scales=np.ones((n, 1), np.int64), channel_scales=_np(scales).astype(np.float64),
                group_size=int(w.shape[1]))
        else:
            codes, dcodes, zps, gscales, cscales, group_size = args[:6]
            weight = QWeight(codes=_np(codes).astype(np.uint8), dtype_codes=_np(dcodes).astype(np.int64),
                             zero_points=_np(zps).astype(np.int64), group_scales=_np(gscales).astype(np.int64),
                             channel_scales=_np(cscales).astype(np.float64), group_size=int(group_size))
        self.env[node] = _Weight(weight, node)

    def _quantize(self, node: torch.fx.Node) -> None:
        self.quantized = True
        x, scale, zp, qmin, qmax, dtype = node.args[:6]
        q = _qparams(scale, zp, qmin, qmax, dtype, f"node {node.name}")
        ref = self.env[x]
        if isinstance(ref, _Dq) and self.values[ref.name].q == q:
            self.env[node] = _Val(ref.name)  # dequantize -> quantize with the same parameters
            return
        src = self.float_value(ref, node)
        out = self._value(node.name, self._shape(node), "int8", q)
        self.ops.append(Op(out, "quantize", (src,), (out,), {"args": [Ref(0), q.scale, q.zero_point, q.qmin, q.qmax]},
                           source=f"{node.name}: {target_name(node)}", reason=HOST_REASONS["quantize"]))
        self.env[node] = _Val(out)

    def _dequantize(self, node: torch.fx.Node) -> None:
        self.quantized = True
        x, scale, zp, qmin, qmax, dtype = node.args[:6]
        ref = self.env[x]
        q = _qparams(scale, zp, qmin, qmax, dtype, f"node {node.name}")
        if not isinstance(ref, _Val) or self.values[ref.name].dtype != "int8":
            raise FrontendError(f"node {node.name}: dequantize of a value that is not a quantized tensor")
        if self.values[ref.name].q != q:
            raise FrontendError(f"node {node.name}: dequantize with {q}, but {ref.name} was quantized with "
                                f"{self.values[ref.name].q}")
        self.env[node] = _Dq(ref.name)

    def _host(self, node: torch.fx.Node, kind: str | None = None, args: list | None = None,
              kwargs: dict | None = None) -> None:
        """A host op for the node (its ATen op's kind, or ``kind`` on ``args``/``kwargs`` given by a
        rewrite), checked at compile time by running it once on zeros of its inputs' shapes: an
        argument the host cannot take is reported with the node, not found at run time."""
        name = target_name(node)
        where = f"node {node.name} ({name}{_in_module(node)})"
        kind = kind or ATEN_KINDS.get(name.split(".")[1] if name.startswith("aten.") else "")
        if kind not in HOST_OPS:
            self._unsupported(node, f"{where}: no host op and no accelerator pattern for it")
            return
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            self._unsupported(node, f"{where}: an op with several outputs that no getitem splits")
            return
        inputs: list[str] = []
        args = self._template(list(node.args) if args is None else args, node, inputs)
        kwargs = {k: self._template(v, node, inputs) for k, v in (node.kwargs if kwargs is None else kwargs).items()}
        dtype = "float32" if val.dtype.is_floating_point else "int64"
        op = Op(node.name, kind, tuple(inputs), (node.name,), {"args": args, "kwargs": kwargs},
                source=f"{node.name}: {name}{_in_module(node)}", reason=HOST_REASONS[kind])
        problem = self._dry_run(op, tuple(val.shape))
        if problem:
            self._unsupported(node, f"{where}: {problem}")
            return
        out = self._value(node.name, val.shape, dtype)
        self.ops.append(op)
        self.env[node] = _Val(out)

    def _unsupported(self, node: torch.fx.Node, problem: str) -> None:
        self.problems.append(problem)
        self.env[node] = _UNSUPPORTED

    def _dry_run(self, op: Op, shape: tuple[int, ...]) -> str | None:
        """Why the host cannot run ``op`` (an argument it does not take, a shape it gets wrong), or None."""
        zeros = [np.zeros(self.values[i].shape, np.dtype(self.values[i].dtype)) for i in op.inputs]
        try:
            with np.errstate(all="ignore"):
                got = run_host_op(op, zeros, self.consts)
        except (NotImplementedError, ValueError, TypeError, IndexError) as exc:
            return f"the host op {op.kind!r} cannot run it: {exc}"
        if tuple(np.shape(got)) != shape:
            return f"the host op {op.kind!r} gives shape {tuple(np.shape(got))}, PyTorch {shape}"
        return None

    def _piece(self, node: torch.fx.Node) -> None:
        """``getitem(op, i)`` of an op with several outputs, as one single-output host op."""
        parent, index = node.args
        x = parent.args[0]
        target = parent.target
        if target == aten._native_batch_norm_legit_no_training.default:
            if index != 0:
                self._unsupported(node, f"node {node.name}: output {index} (the batch statistics) of {parent.name}")
                return
            _, weight, bias, mean, var, momentum, eps = (list(parent.args) + [None] * 7)[:7]
            self._host(node, "batch_norm", [x, weight, bias, mean, var, False, momentum, eps, False], {})
            return
        dim = parent.args[1] if target == aten.unbind.int and len(parent.args) > 1 else parent.kwargs.get("dim", 0)
        if target == aten.unbind.int:
            self._host(node, ATEN_KINDS["select"], [x, dim, index], {})
            return
        dim = parent.args[2] if len(parent.args) > 2 else parent.kwargs.get("dim", 0)
        pieces = parent.meta["val"]
        dim = dim % pieces[index].dim()
        start = sum(int(p.shape[dim]) for p in pieces[:index])
        self._host(node, ATEN_KINDS["slice"], [x, dim, start, start + int(pieces[index].shape[dim]), 1], {})

    # -- the quantized GEMM pattern --

    def _fuse_gemm(self, node: torch.fx.Node) -> bool:
        """conv2d / conv1d / linear on a dequantized int8 input and a quantized constant weight -> a
        qgemm (relu or a ReLU6-like clamp and the quantize after it fused when exact), else False."""
        kind = "conv1d" if node.target in CONV1D else "conv2d" if node.target in CONV else "linear"
        x, w = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        xr, wr = self.env.get(x), self.env.get(w)
        br = self.env.get(bias) if isinstance(bias, torch.fx.Node) else None
        if not isinstance(xr, _Dq) or not isinstance(wr, _Weight):
            return False
        if bias is not None and not isinstance(br, _Const):
            return False
        xq = self.values[xr.name].q
        weight, x_name = wr.weight, xr.name
        attrs: dict[str, Any] = {"weight": weight, "x_q": xq,
                                 "bias": None if br is None else _np(br.array).astype(np.float64)}
        shape = self._shape(node)
        if kind == "linear":
            attrs.update(kind="linear")
        else:
            stride, padding, dilation, groups = (list(node.args[3:7]) + [None] * 4)[:4]
            if isinstance(padding, str):
                return False  # padding="same"/"valid" overloads: the host op takes them
            if kind == "conv1d":  # a conv2d of height 1: [N, C, L] -> [N, C, 1, L], kernel [Cout, Cin, 1, k]
                stride, padding, dilation = ([1, _pair(v, d)[0]] for v, d in ((stride, 1), (padding, 0), (dilation, 1)))
                padding[0] = 0
                weight = replace(weight, codes=weight.codes[:, :, None, :])
                x_name = self._reshaped_int8(x_name, (*self.values[x_name].shape[:2], 1, self.values[x_name].shape[2]),
                                             "unsqueeze", [Ref(0), 2], node)
                shape = (shape[0], shape[1], 1, shape[2])
            attrs.update(kind="conv2d", weight=weight, stride=_pair(stride, 1), padding=_pair(padding, 0),
                         dilation=_pair(dilation, 1), groups=int(groups or 1))
        source = f"{node.name}: {target_name(node)}{_in_module(node)}"
        # relu (or a clamp at 0..max that int8 saturation already implies) and the quantize after
        # it fold in when nothing else reads the float result
        tail, relu = node, False
        users = list(node.users)
        if len(users) == 1 and (users[0].target in RELU or self._clamp_is_relu(users[0])):
            tail, relu = users[0], True
        quants = list(tail.users)
        qs = {_qparams(*q.args[1:6], f"node {q.name}") if q.target in QUANTIZE else None for q in quants}
        if quants and len(qs) == 1 and None not in qs:
            (out_q,) = qs
            out_name = quants[0].name
            out = self._value(out_name + ("_2d" if kind == "conv1d" else ""), shape, "int8", out_q)
            attrs.update(relu=relu, out_q=out_q)
            self.ops.append(Op(self._layer_name(node, out), "qgemm", (x_name,), (out,), attrs, placement="accel",
                               source=source))
            if kind == "conv1d":
                out = self._reshaped_int8(out, self._shape(node), "squeeze", [Ref(0), 2], node, out_name)
            for n in quants:
                self.env[n] = _Val(out)
            if relu:
                self.env[tail] = _CONSUMED
            self.env[node] = _CONSUMED
            return True
        acc = self._value(f"{node.name}_acc", shape, "int32")
        attrs.update(relu=False, out_q=None)
        self.ops.append(Op(self._layer_name(node, acc), "qgemm", (x_name,), (acc,), attrs, placement="accel",
                           source=source))
        offset = -xq.zero_point * colsum(weight)
        out = self._value(node.name + ("_2d" if kind == "conv1d" else ""), shape, "float32")
        axis = 1 if kind != "linear" else len(shape) - 1
        self.ops.append(Op(out, "dequantize_acc", (acc,), (out,), {
            "args": [Ref(0), offset, xq.scale * weight.channel_scales, attrs["bias"], axis]},
            source=source, reason=HOST_REASONS["dequantize_acc"]))
        if kind == "conv1d":
            flat = self._value(node.name, self._shape(node), "float32")
            self.ops.append(Op(flat, "squeeze", (out,), (flat,), {"args": [Ref(0), 2]}, source=source,
                               reason=HOST_REASONS["squeeze"]))
            out = flat
        self.env[node] = _Val(out)
        return True

    def _reshaped_int8(self, name: str, shape: tuple[int, ...], kind: str, args: list, node: torch.fx.Node,
                       out: str | None = None) -> str:
        """An int8 value viewed in another shape by a host op, keeping its quantization (no
        dequantize and requantize around a reshape)."""
        out = out or f"{name}_{kind}"
        if out not in self.values:
            self._value(out, shape, "int8", self.values[name].q)
            self.ops.append(Op(out, kind, (name,), (out,), {"args": args},
                               source=f"{node.name}: {target_name(node)}{_in_module(node)}",
                               reason=HOST_REASONS[kind]))
        return out

    def _clamp_is_relu(self, node: torch.fx.Node) -> bool:
        """A hardtanh(0, hi) (ReLU6) whose quantize after it saturates at or below hi: the clamp is
        then a ReLU followed by int8 saturation, exactly what the requantization does."""
        if node.target not in HARDTANH:
            return False
        lo, hi = (list(node.args[1:3]) + [-1.0, 1.0])[:2]
        lo, hi = node.kwargs.get("min_val", lo), node.kwargs.get("max_val", hi)
        quants = list(node.users)
        if lo != 0 or not quants or any(q.target not in QUANTIZE for q in quants):
            return False
        for q in quants:
            p = _qparams(*q.args[1:6], f"node {q.name}")
            if np.round(np.float32(hi) * np.float32(1.0 / p.scale)) + p.zero_point < p.qmax:
                return False
        return True

    def _layer_name(self, node: torch.fx.Node, fallback: str) -> str:
        """A GEMM layer's name: its module path as the user wrote it (``layer1.0.conv1``), made
        unique with ``#2``, ``#3`` (a module called more than once, or a path that is also a node's
        name); ``fallback`` (its output value's name) for a node traced outside any module."""
        base = module_path(node)
        if not base:
            return fallback
        name, k = base, 1
        while name in self.layer_names or name in self.node_names:
            k += 1
            name = f"{base}#{k}"
        self.layer_names.add(name)
        return name


def _pair(v: Any, default: int) -> tuple[int, int]:
    if v is None:
        return default, default
    if isinstance(v, int):
        return v, v
    v = [int(x) for x in v]
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])




def module_path(node: torch.fx.Node) -> str:
    """The path of the module the node was traced in, as the user wrote it (``layer1.0.conv1``)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path if isinstance(path, str) else ""


def _in_module(node: torch.fx.Node) -> str:
    path = module_path(node)
    return f" in {path}" if path else ""


def target_name(node: torch.fx.Node) -> str:
    t = node.target
    name = getattr(t, "name", None)
    if callable(name):
        return str(name()).replace("::", ".")
    return str(t)


def target_result(node: torch.fx.Node, args, kwargs) -> torch.Tensor:
    try:
        return node.target(*args, **kwargs)
    except Exception as exc:
        raise FrontendError(f"node {node.name} ({target_name(node)}): evaluating it on constants failed: "
                            f"{exc}") from None


def import_program(program: torch.export.ExportedProgram | torch.fx.GraphModule) -> Graph:
    """A quantized torch.export program (or its GraphModule) -> graph IR with host and accelerator ops."""
    if not isinstance(program, torch.export.ExportedProgram | torch.fx.GraphModule):
        raise FrontendError(f"expected a torch.export.ExportedProgram, got {type(program).__name__}")
    return _Importer(program).run()
