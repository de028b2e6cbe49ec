"""The top-level design that ``lowbit gen`` emits for a configuration."""

from __future__ import annotations

from amaranth.lib import wiring

from hw.accelerator import Accelerator
from hw.array import ONE_PRODUCT, PeForms
from hw.config import AccelConfig

TOP_NAME = "lowbit_top"


def build_top(cfg: AccelConfig, forms: PeForms = ONE_PRODUCT) -> wiring.Component:
    """The accelerator; ``forms`` (the FPGA flow's) picks the PEs whose multiply is two LUT halves
    or in the Booth form rather than one product, and travels as one record to the array."""
    return Accelerator(cfg, forms)
