"""The roofline of an accelerator layer: the fewest cycles any schedule can take on a configuration.

- ``compute_bound`` = MACs x planes / (rows x cols): every PE busy on a useful MAC, where
  ``planes`` is the cycles an activation row takes through the array (the bit-serial PE's bit
  planes of the layer's widest weight datatype; 1 on the bit-parallel PE). So the serial PE's
  compute roof is the parallel peak divided by its planes.
- ``memory_bound`` = the DRAM bytes the layer must move at least once (its input activations, its
  weights at their stored width, its per-channel parameters, its output) / the bus's bytes per
  cycle (``axi_data_bits / 8``).
- ``bound_cycles`` = the larger of the two; ``efficiency`` = bound_cycles / cycles (1 is the roof).

A layer compiled as several GEMM jobs (the channel blocks of a grouped convolution) gets each
job's share of the bytes, in proportion to its output channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir import Graph, Op
from hw.config import AccelConfig
from hw.datatypes import by_code, datatype
from hw.isa import PARAM_BYTES


@dataclass(frozen=True)
class Roofline:
    compute_bound: float
    memory_bound: float

    @property
    def bound_cycles(self) -> float:
        return max(self.compute_bound, self.memory_bound)

    @property
    def limit(self) -> str:
        """What bounds the layer: "compute" or "memory"."""
        return "compute" if self.compute_bound >= self.memory_bound else "memory"

    def efficiency(self, cycles: float | None) -> float | None:
        return self.bound_cycles / cycles if cycles else None


def planes(cfg: AccelConfig, op: Op) -> int:
    """Cycles per activation row on the array: the widest mantissa among the layer's weight
    datatypes on the bit-serial PE (docs/rtl.md), 1 on the bit-parallel one."""
    if cfg.pe != "serial":
        return 1
    return max(by_code(int(c)).mant_bits for c in np.unique(op.attrs["weight"].dtype_codes))


def min_bytes(graph: Graph, op: Op, cfg: AccelConfig, weight_dtype: str, grouped: bool) -> int:
    """The DRAM bytes a qgemm must move at least once: input, weights at ``weight_dtype``'s width,
    per-channel parameters (and per-group ones when ``grouped``), output."""
    w = op.attrs["weight"]
    n = w.shape[0]
    x = int(np.prod(graph.values[op.inputs[0]].shape))
    out_bytes = 1 if op.attrs["out_q"] is not None else cfg.acc_bytes
    y = int(np.prod(graph.values[op.output].shape)) * out_bytes
    weights = -(-int(np.prod(w.shape)) * datatype(weight_dtype).bits // 8)
    params = n * PARAM_BYTES * (1 + (w.dtype_codes.shape[1] if grouped else 0))
    return x + weights + params + y


def roofline(cfg: AccelConfig, macs: int, planes_: int, nbytes: float) -> Roofline:
    return Roofline(macs * planes_ / (cfg.rows * cfg.cols), nbytes / (cfg.axi_data_bits // 8))
