"""lowbit's own post-training quantizer: static per-tensor INT8 activations through torchao's
PT2E flow, and weight-only low-bit weights (any datatype of hw/datatypes.py or a mixture of
compiler/weight_quant.py, per output channel or per group of input channels) in the
accelerator's form, carried in the exported program by ``lowbit::dequantize_weight``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.observer import HistogramObserver, PerChannelMinMaxObserver
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import (
    QuantizationAnnotation,
    QuantizationSpec,
    Quantizer,
    SharedQuantizationSpec,
)
from torchao.quantization.pt2e.utils import _fuse_conv_bn_

import compiler.torch_ops  # noqa: F401  (registers lowbit::dequantize_weight)
from compiler.torch_ops import LowbitWeight
from compiler.weight_quant import quantize_groups, resolve_candidates
from hw.datatypes import datatype
from hw.isa import GroupParams
from hw.records import field_range

ACT_DTYPE = datatype("int8")  # the array's activation operand
GROUP_SCALE_MAX = field_range(GroupParams["scale"].shape)[1]
# Group scales are integers on a 255-step grid under the channel's largest group (not the full u16
# field): the array multiplies each weight by its group scale before accumulating, and 8 bits keep
# int8 x (value x scale) sums of a few thousand terms inside a 32-bit accumulator.
GROUP_SCALE_STEPS = min(255, GROUP_SCALE_MAX)

aten = torch.ops.aten
QD = torch.ops.quantized_decomposed
LAYERS = (aten.conv2d.default, aten.conv1d.default, aten.linear.default)
# a ReLU, or a clamp at 0..max (ReLU6) that the compiler fuses where int8 saturation implies it
RELUS = (aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default)
MATMULS = (aten.matmul.default, aten.bmm.default)
ADDS = (aten.add.Tensor,)
# ops whose output keeps the input's int8 quantization (a max or mean of int8 values, a reshape)
SHARED = (aten.max_pool2d.default, aten.avg_pool2d.default, aten.adaptive_avg_pool2d.default,
          aten.flatten.using_ints)


# ---- weights ----------------------------------------------------------------------------


def quantize_weight(w: np.ndarray, weights: str, group_size: int | None = None) -> LowbitWeight:
    """A float conv ([Cout, Cin/groups, kh, kw]) or linear ([N, K]) weight -> low-bit codes with
    per-group datatypes and integer group scales (GROUP_SCALE_STEPS) under a float32 per-channel scale."""
    w = np.asarray(w, np.float64)
    n, channels = w.shape[:2]
    positions = int(np.prod(w.shape[2:], dtype=np.int64))
    size = channels if group_size is None else min(group_size, channels)
    # K rows run (input channel, kernel position), so a group of K rows is `size` whole channels
    gq = quantize_groups(w.reshape(n, -1).T, size * positions, weights, pad=True)
    codes = gq.codes[: channels * positions].T.reshape(w.shape)
    scale = gq.scale.T  # [N, G] float64
    if scale.shape[1] == 1:
        group_scales = np.ones(scale.shape, np.int32)
        channel_scales = scale[:, 0].astype(np.float32)
    else:
        channel_scales = (scale.max(axis=1) / GROUP_SCALE_STEPS).astype(np.float32)
        channel_scales = np.maximum(channel_scales, np.finfo(np.float32).tiny)  # all-zero channels
        ratio = scale / channel_scales.astype(np.float64)[:, None]
        group_scales = np.clip(np.rint(ratio), 1, GROUP_SCALE_STEPS).astype(np.int32)
    return LowbitWeight(codes=codes.astype(np.uint8), dtype_codes=gq.dtype_codes.T.astype(np.int32),
                        zero_points=gq.zero_point.T.astype(np.int32), group_scales=group_scales,
                        channel_scales=channel_scales, group_size=size)


# ---- activations: the PT2E quantizer ----------------------------------------------------


ACT_SPEC = QuantizationSpec(dtype=torch.int8, quant_min=ACT_DTYPE.qmin, quant_max=ACT_DTYPE.qmax,
                            qscheme=torch.per_tensor_affine,
                            observer_or_fake_quant_ctr=HistogramObserver.with_args(eps=2**-12))
# per-channel symmetric int8: a placeholder that quantize_model replaces with the low-bit weights
WEIGHT_SPEC = QuantizationSpec(dtype=torch.int8, quant_min=-ACT_DTYPE.qmax, quant_max=ACT_DTYPE.qmax,
                               qscheme=torch.per_channel_symmetric, ch_axis=0,
                               observer_or_fake_quant_ctr=PerChannelMinMaxObserver.with_args(eps=2**-12))


def _is_float_tensor(node: object) -> bool:
    val = node.meta.get("val") if isinstance(node, Node) else None
    return isinstance(val, torch.Tensor) and val.is_floating_point()


def _from_quantized_op(node: object) -> bool:
    """A float tensor that an annotated op (conv, linear, matmul, add, pool; or a ReLU after one) produced."""
    if not (isinstance(node, Node) and _is_float_tensor(node)):
        return False
    if node.target in RELUS:
        node = node.args[0]
    return node.op == "call_function" and node.target in LAYERS + MATMULS + ADDS + SHARED


RESHAPES = (aten.reshape.default, aten.view.default, aten.transpose.int, aten.permute.default,
            aten.flatten.using_ints)


def _feeds_quantized_ops(node: Node) -> bool:
    """Every reader of node (through a fused ReLU and reshapes) quantizes its input: a conv,
    linear, matmul or pool, or an add of two quantized branches."""
    readers, seen = list(node.users), set()
    while readers:
        user = readers.pop()
        if user in seen:
            continue
        seen.add(user)
        if user.target in RELUS or user.target in RESHAPES:
            readers += list(user.users)
        elif user.target in ADDS:
            if not all(_from_quantized_op(a) for a in user.args[:2]):
                return False
        elif user.target not in LAYERS + MATMULS + SHARED:
            return False
    return bool(seen)


class LowbitQuantizer(Quantizer):
    """Static per-tensor INT8 activations on conv2d/linear (with a following ReLU fused),
    matmul, add (+ReLU) of two such results (a residual of quantized branches), and pools and
    flatten sharing their input's quantization. An add with any other operand (an attention
    mask, a residual stream) stays float: one int8 scale for both would lose the smaller."""

    def annotate(self, model: GraphModule) -> GraphModule:
        act = ACT_SPEC
        for node in model.graph.nodes:
            if node.op != "call_function":
                continue
            if node.target in LAYERS:
                # the output is int8 only where quantized ops read it; a result that goes on in
                # float (into a residual stream, a layer norm, the graph output) keeps the
                # accumulators' precision
                out = act if _feeds_quantized_ops(node) else None
                self._mark(node, {node.args[0]: act, node.args[1]: WEIGHT_SPEC}, out, fuse_relu=True)
            elif node.target in ADDS and not all(_from_quantized_op(a) for a in node.args[:2]):
                continue  # e.g. an attention-mask bias or a residual stream into a layer norm stays float
            elif node.target in ADDS + MATMULS and _is_float_tensor(node):
                inputs = {a: act for a in node.args[:2] if _is_float_tensor(a)}
                self._mark(node, inputs, act, fuse_relu=node.target in ADDS)
            elif node.target in SHARED and _is_float_tensor(node.args[0]):
                src = node.args[0]
                self._mark(node, {src: act}, SharedQuantizationSpec((src, node)), fuse_relu=False)
        return model

    @staticmethod
    def _mark(node: Node, inputs: dict, output: object, fuse_relu: bool) -> None:
        """Quantize node's inputs; quantize its output, or that of the ReLU it alone feeds."""
        if "quantization_annotation" in node.meta:
            return
        users = list(node.users)
        relu = users[0] if fuse_relu and len(users) == 1 and users[0].target in RELUS else None
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map=inputs, output_qspec=None if relu else output, _annotated=True)
        if relu is not None:
            relu.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=output, _annotated=True)

    def validate(self, model: GraphModule) -> None:
        pass


# ---- the flow ---------------------------------------------------------------------------


def _check_args(weights: str, group_size: int | None) -> None:
    if not isinstance(weights, str):
        raise ValueError(f"weights must be a datatype or mixture name, got {weights!r}")
    resolve_candidates(weights)  # a ValueError naming the known datatypes
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be a positive integer or None (per output channel), got {group_size!r}")


def _fetch(gm: torch.nn.Module, target: str) -> torch.Tensor:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _layer_weights(gm: GraphModule) -> dict[str, tuple[str, torch.Tensor]]:
    """Each conv2d/linear node's name -> (weight attribute, float weight)."""
    out = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in LAYERS:
            w = node.args[1]
            if not (isinstance(w, Node) and w.op == "get_attr"):
                raise ValueError(f"{node.name} ({node.target}): weight {w} is computed, not a parameter; "
                                 "the accelerator needs constant weights")
            out[node.name] = (w.target, _fetch(gm, w.target).detach())
    if not out:
        raise ValueError("the model has no conv2d or linear layer to quantize")
    return out


def _attach_weights(gm: GraphModule, layers: dict[str, tuple[str, torch.Tensor]],
                    lowbit: dict[str, LowbitWeight]) -> None:
    """Replace each layer's int8 placeholder weight with lowbit::dequantize_weight on new buffers."""
    done: dict[str, Node] = {}
    nodes = {n.name: n for n in gm.graph.nodes}
    for name, (target, _) in layers.items():
        node = nodes.get(name)
        if node is None:
            raise RuntimeError(f"layer {name} ({target}) is missing after convert_pt2e")
        base = target.replace(".", "_") + "_lowbit"
        with gm.graph.inserting_before(node):
            if target not in done:
                args = []
                for field, t in zip(("codes", "dtype_codes", "zero_points", "group_scales", "channel_scales"),
                                    lowbit[target].tensors()):
                    gm.register_buffer(f"{base}_{field}", t)
                    args.append(gm.graph.get_attr(f"{base}_{field}"))
                done[target] = gm.graph.call_function(torch.ops.lowbit.dequantize_weight.default,
                                                      (*args, lowbit[target].group_size))
            node.replace_input_with(node.args[1], done[target])
            _snap_bias(gm, node, base, lowbit[target])
    gm.graph.eliminate_dead_code()
    drop_unused_attributes(gm)
    gm.recompile()


def _snap_bias(gm: GraphModule, node: Node, base: str, weight: LowbitWeight) -> None:
    """Put a layer's bias on its accumulator grid (input scale x channel scale), as an int32 bias
    of integer inference is: the accelerator adds it to the accumulators exactly."""
    bias = node.args[2] if len(node.args) > 2 else None
    x = node.args[0]
    if not (isinstance(bias, Node) and bias.op == "get_attr" and isinstance(x, Node)
            and x.target in (QD.dequantize_per_tensor.default,)):
        return
    step = float(x.args[1]) * np.asarray(weight.channel_scales, np.float64)
    b = _fetch(gm, bias.target).detach().numpy().astype(np.float64)
    snapped = torch.from_numpy((np.rint(b / step) * step).astype(np.float32))
    gm.register_buffer(f"{base}_bias_{node.name}", snapped)
    with gm.graph.inserting_before(node):
        node.replace_input_with(bias, gm.graph.get_attr(f"{base}_bias_{node.name}"))


def drop_unused_attributes(gm: GraphModule) -> None:
    """Delete parameters and buffers no get_attr reads (the float and int8 weights replaced)."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in [*gm.named_parameters(), *gm.named_buffers()]:
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)


def quantize_model(model: torch.nn.Module, example_inputs: tuple, calibration: Iterable[tuple],
                   weights: str = "int4", group_size: int | None = None) -> torch.export.ExportedProgram:
    """Export ``model`` with static INT8 activations calibrated on ``calibration`` and low-bit
    ``weights`` (a datatype or mixture name) per output channel or per ``group_size`` input channels."""
    _check_args(weights, group_size)
    gm = torch.export.export(model.eval(), tuple(example_inputs)).module()
    # BatchNorm folds into the conv before its weights are read: prepare_pt2e folds it too, and the
    # quantized weights must be the folded ones that go with the folded bias it keeps
    _fuse_conv_bn_(gm)
    layers = _layer_weights(gm)
    lowbit = {target: quantize_weight(w.numpy(), weights, group_size) for target, w in layers.values()}
    prepared = prepare_pt2e(gm, LowbitQuantizer())
    batches = 0
    with torch.no_grad():
        for batch in calibration:
            prepared(*batch)
            batches += 1
    if not batches:
        raise ValueError("calibration gave no input batches; the INT8 activation scales need at least one")
    converted = convert_pt2e(prepared)
    _attach_weights(converted, layers, lowbit)
    return torch.export.export(converted, tuple(example_inputs))
