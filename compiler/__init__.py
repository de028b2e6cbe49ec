"""The compiler: quantized torch.export graphs -> tiled instruction streams (docs/compiler.md)."""

import logging

# On a CPU-only machine torchao logs a warning for every optional GPU kernel library it cannot
# load, and torch one for an enum torchao registers; neither concerns the compiler.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
