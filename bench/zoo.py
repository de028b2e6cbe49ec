"""The model zoo: stock torchvision CNNs (resnet18, mobilenet_v2, mobilenet_v3_small,
efficientnet_b0 at 64x64, random weights), timm's ViT-Tiny, an ``nn.TransformerEncoder`` classifier and a 1-D
convolutional keyword spotter, each quantized by lowbit's quantizer (INT8 weights per channel)
and by torchao's PT2E X86 quantizer, compiled unmodified for ``default`` and run on the golden
model against its float model (host/zoo.py); the keyword spotter also runs on the RTL.

Keys: ``models.MODEL.QUANTIZER`` with ``quantizer``, ``compiled``, ``error``, ``accel_ops``,
``host_ops``, ``cosine_to_float``, ``top1_agree`` (over a batch of 4 inputs), ``estimated_cycles``,
plus ``cosine_to_export`` (golden model against the quantized PyTorch program), ``host_kinds``,
``compile_s``, ``golden_s``; ``rtl`` with the RTL run's ``bit_exact`` and ``cycles``.
"""

from __future__ import annotations

import sys
import time

from host.zoo import QUANTIZERS, evaluate_all, rtl_check
from hw.config import load_config

DESCRIPTION = "stock CNNs, a TransformerEncoder and a 1-D conv net through both quantizers: compiled, cosine to float"
CONFIG = "default"
RTL_MODEL = "keyword_spotter"


def _progress(what: str, done: int, total: int) -> None:
    print(f"[zoo {done + 1}/{total}] {what}", file=sys.stderr, flush=True)


def run() -> dict:
    cfg = load_config(CONFIG)
    t0 = time.perf_counter()
    result = evaluate_all(quantizers=QUANTIZERS, cfg=cfg, progress=_progress)
    print(f"[zoo] {RTL_MODEL} on the RTL", file=sys.stderr, flush=True)
    result["rtl"] = rtl_check(RTL_MODEL, "lowbit", cfg)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result
