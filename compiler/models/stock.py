"""Stock models as users write them: torchvision's classification CNNs, timm's ViT-Tiny, a PyTorch
``nn.TransformerEncoder`` classifier and a 1-D convolutional keyword-spotting net, with seeded
random weights (no downloads) and seeded inputs. The compiler takes them unmodified; the model
zoo benchmark (``lowbit bench zoo``) and its tests run them.

torchvision comes from PyPI without its dependencies (the CPU torch stays): its wheel's C
extension is built against a CUDA torch and does not load beside the CPU build. Its
classification models are pure Python; the import only needs the two operator schemas the
extension would register (``torchvision::nms`` and ``torchvision::qnms``), which
``import_torchvision`` defines first when they are missing. timm (also without its
dependencies; it imports torchvision) provides the vision transformer.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

SEED = 0
IMAGE = 64  # input height and width of the vision models

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY: list = []  # keeps the schema library alive


def import_torchvision():
    """``torchvision``, importable beside the CPU torch (module docstring)."""
    if "torchvision" not in sys.modules and not _LIBRARY:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS.values():
            try:
                lib.define(schema)
            except RuntimeError:  # already defined, by an extension that did load
                pass
        _LIBRARY.append(lib)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*image.so.*|.*torchvision.io.*|.*Failed to load image.*")
        try:
            return importlib.import_module("torchvision")
        except ImportError as exc:
            raise ImportError("the model zoo needs torchvision (pip install --no-deps 'torchvision==0.28.*'); "
                              f"importing it failed: {exc}") from None


@dataclass(frozen=True)
class StockModel:
    name: str
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    calibration: tuple[tuple[torch.Tensor, ...], ...]
    family: str  # "cnn" (image input, CNNs and the ViT), "transformer" (token ids), "conv1d"


class TransformerClassifier(nn.Module):
    """Token embedding, a stock ``nn.TransformerEncoder`` (two post-LN layers, GELU), mean pool,
    a linear head."""

    def __init__(self, vocab: int = 256, d_model: int = 64, heads: int = 4, layers: int = 2, classes: int = 10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.1,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)).mean(dim=1))


class KeywordSpotter(nn.Module):
    """A 1-D convolutional net over 40 mel bands (conv1d, BatchNorm1d, ReLU, max and average
    pooling, dropout, a linear head), as keyword-spotting models are written."""

    def __init__(self, bands: int = 40, channels: int = 64, classes: int = 12):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(bands, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
            nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
            nn.Conv1d(channels, channels, 3, padding=2, dilation=2, groups=channels),
            nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2))
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _randomize_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    """Running statistics and affine parameters away from identity, as a trained model has them
    (fresh ones would hide a BatchNorm that is not folded)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) * 1.0 + 0.5)
                m.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)


def _vision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return getattr(import_torchvision().models, name)(weights=None)
    return build


def _vit_tiny() -> nn.Module:
    import_torchvision()
    import timm

    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=IMAGE)


BUILDERS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "resnet18": ("cnn", _vision("resnet18")),
    "mobilenet_v2": ("cnn", _vision("mobilenet_v2")),
    "mobilenet_v3_small": ("cnn", _vision("mobilenet_v3_small")),
    "efficientnet_b0": ("cnn", _vision("efficientnet_b0")),
    "vit_tiny": ("cnn", _vit_tiny),
    "transformer_encoder": ("transformer", TransformerClassifier),
    "keyword_spotter": ("conv1d", KeywordSpotter),
}


def stock_model(name: str, batch: int = 1, calibration_batches: int = 4, image: int = IMAGE) -> StockModel:
    """A stock model by name (``BUILDERS``) with seeded weights, inputs and calibration batches."""
    if name not in BUILDERS:
        raise ValueError(f"no stock model named {name!r}; known: {', '.join(BUILDERS)}")
    family, build = BUILDERS[name]
    torch.manual_seed(SEED)
    model = build()
    gen = torch.Generator().manual_seed(SEED)
    _randomize_batchnorm(model, gen)
    model.eval()

    def sample() -> torch.Tensor:
        if family == "cnn":
            return torch.randn(batch, 3, image, image, generator=gen)
        if family == "conv1d":
            return torch.randn(batch, 40, 49, generator=gen)
        return torch.randint(0, 256, (batch, 16), generator=gen)

    example = (sample(),)
    calib = tuple((sample(),) for _ in range(calibration_batches))
    return StockModel(name, model, example, calib, family)
