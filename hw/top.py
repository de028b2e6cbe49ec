"""The top-level design that ``lowbit gen`` emits for a configuration.

Today the emitted top is the post-processing unit (one accumulator row per cycle through
bias, fixed-point requantization, ReLU and saturation); the controller, DMA, scratchpads and
array join it under the same name as they are built.
"""

from __future__ import annotations

from amaranth.lib import wiring

from hw.config import AccelConfig
from hw.postproc import PostProcess

TOP_NAME = "lowbit_top"


def build_top(cfg: AccelConfig) -> wiring.Component:
    return PostProcess(cfg)
