"""The top-level design that ``lowbit gen`` emits for a configuration."""

from __future__ import annotations

from collections.abc import Collection

from amaranth.lib import wiring

from hw.accelerator import Accelerator
from hw.array import PeForms
from hw.config import AccelConfig

TOP_NAME = "lowbit_top"


def build_top(cfg: AccelConfig, half_pes: Collection[tuple[int, int]] = (),
              booth_pes: Collection[tuple[int, int]] = ()) -> wiring.Component:
    """The accelerator; ``half_pes`` and ``booth_pes`` (the FPGA flow's) pick the PEs whose
    multiply is two LUT halves or in the Booth form rather than one product: one ``PeForms``
    record, built here, carries them to the array (hw/array.py)."""
    return Accelerator(cfg, PeForms(frozenset(half_pes), frozenset(booth_pes)))
