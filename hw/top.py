"""The top-level design that ``lowbit gen`` emits for a configuration."""

from __future__ import annotations

from amaranth.lib import wiring

from hw.accelerator import Accelerator
from hw.config import AccelConfig

TOP_NAME = "lowbit_top"


def build_top(cfg: AccelConfig) -> wiring.Component:
    return Accelerator(cfg)
