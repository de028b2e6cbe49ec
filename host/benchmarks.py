"""The benchmark registry: every module in bench/ with a DESCRIPTION and a run() is one.

``run()`` returns a flat-ish dict of figures; the registry prints it as a table and writes
it to bench/results/NAME.json. Benchmarks measure; they never pass or fail on time.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from types import ModuleType

import bench

RESULTS_DIR = Path(bench.__file__).resolve().parent / "results"


def available() -> dict[str, ModuleType]:
    """Benchmark name (module name with '-' for '_') -> module."""
    out = {}
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"bench.{info.name}")
        if hasattr(mod, "run") and hasattr(mod, "DESCRIPTION"):
            out[info.name.replace("_", "-")] = mod
    return dict(sorted(out.items()))


def run(name: str) -> tuple[dict, Path]:
    benches = available()
    if name not in benches:
        known = ", ".join(benches) or "none"
        raise KeyError(f"no benchmark named {name!r}; available: {known}")
    result = benches[name].run()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result, path
