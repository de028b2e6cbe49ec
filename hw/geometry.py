"""Timing geometry of the array that follows from the configuration alone, for the RTL
(hw/array.py) and for those who plan around it (the compiler's cost model, the manifest)
without importing RTL modules."""

from __future__ import annotations

from hw.config import AccelConfig


def pe_stages(cfg: AccelConfig) -> int:
    """Register stages of one PE: the bit-parallel PE registers its product before the add
    (multiply, then accumulate), the bit-serial PE does its shift-and-add in one."""
    return 1 if cfg.pe == "serial" else 2


def array_latency(cfg: AccelConfig) -> int:
    """Cycles from an activation row at the array input to its result row at the output."""
    return cfg.rows + cfg.cols - 2 + pe_stages(cfg)
