"""Layer shapes of reference networks as GEMMs, derived from their layer definitions.

A convolution becomes a GEMM by im2col: one row per output pixel (``M = batch * out_h *
out_w``), one column per weight of a filter (``K = cin / groups * kh * kw``) and one output
channel per column (``N = cout / groups``), ``groups`` such GEMMs per layer. A linear layer
applied to T tokens is ``T x in x out``. Only GEMMs are listed; pooling, normalization,
softmax and residual additions have no weights to tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compiler.tiling import Gemm


@dataclass(frozen=True)
class Conv2d:
    """A square-kernel convolution (torch.nn.Conv2d's arguments)."""

    name: str
    cin: int
    cout: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def out_size(self, size: int) -> int:
        return (size + 2 * self.padding - self.kernel) // self.stride + 1

    def gemm(self, h: int, w: int, batch: int = 1) -> Gemm:
        """The im2col GEMM of this layer on an ``h x w`` input (output rows read and written in
        runs of one output-image row)."""
        if self.cin % self.groups or self.cout % self.groups:
            raise ValueError(f"{self.name}: {self.groups} groups do not divide cin={self.cin}, cout={self.cout}")
        return Gemm(self.name, batch * self.out_size(h) * self.out_size(w),
                    self.cin // self.groups * self.kernel * self.kernel, self.cout // self.groups, self.groups,
                    row_runs=self.out_size(w))


@dataclass(frozen=True)
class Pool2d:
    """A max/average pooling window: changes the spatial size, no GEMM."""

    kernel: int
    stride: int
    padding: int = 0

    def out_size(self, size: int) -> int:
        return (size + 2 * self.padding - self.kernel) // self.stride + 1


@dataclass(frozen=True)
class Linear:
    name: str
    in_features: int
    out_features: int

    def gemm(self, tokens: int) -> Gemm:
        return Gemm(self.name, tokens, self.in_features, self.out_features)


RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, first block's stride)


def resnet18(image: int = 224, batch: int = 1, classes: int = 1000) -> list[Gemm]:
    """ResNet-18 (torchvision layout: BasicBlocks, 1x1 downsample on stride or width change)."""
    gemms: list[Gemm] = []

    def conv(layer: Conv2d, size: int) -> int:
        gemms.append(layer.gemm(size, size, batch))
        return layer.out_size(size)

    size = conv(Conv2d("conv1", 3, 64, 7, stride=2, padding=3), image)
    size = Pool2d(3, 2, 1).out_size(size)
    cin = 64
    for stage, (cout, stride) in enumerate(RESNET18_STAGES, start=1):
        for block in range(2):
            s = stride if block == 0 else 1
            name = f"layer{stage}.{block}"
            out = conv(Conv2d(f"{name}.conv1", cin, cout, 3, stride=s, padding=1), size)
            conv(Conv2d(f"{name}.conv2", cout, cout, 3, padding=1), out)
            if s != 1 or cin != cout:
                conv(Conv2d(f"{name}.downsample", cin, cout, 1, stride=s), size)
            size, cin = out, cout
    gemms.append(Linear("fc", cin, classes).gemm(batch))  # after global average pooling
    return gemms


def bert_base_layer(seq: int = 128, hidden: int = 768, heads: int = 12, ffn: int = 3072,
                    batch: int = 1) -> list[Gemm]:
    """One BERT-base encoder layer: Q, K, V projections, per-head scores and context, output
    projection, feed-forward in and out. Scores and context multiply two activations."""
    if hidden % heads:
        raise ValueError(f"hidden = {hidden} is not a multiple of heads = {heads}")
    tokens, head_dim = batch * seq, hidden // heads
    proj = [Linear(f"attn.{x}", hidden, hidden).gemm(tokens) for x in "qkv"]
    attention = [
        Gemm("attn.scores", seq, head_dim, seq, batch * heads, b_from_activations=True),  # Q K^T
        Gemm("attn.context", seq, seq, head_dim, batch * heads, b_from_activations=True),  # softmax(.) V
    ]
    rest = [Linear("attn.out", hidden, hidden).gemm(tokens), Linear("ffn.in", hidden, ffn).gemm(tokens),
            Linear("ffn.out", ffn, hidden).gemm(tokens)]
    return proj + attention + rest


NETWORKS: dict[str, Callable[[], list[Gemm]]] = {"resnet18": resnet18, "bert_base_layer": bert_base_layer}
