"""Build Amaranth designs (or Verilog files) into cached Verilator models and run cocotb
test modules against them.

A model is cached under build/sim/<top>-<key>, where the key hashes the configuration, the
sources of hw/ (or the Verilog files), the waveform setting and the Verilator version, so a
second build of the same design does not run Verilator or the C++ compiler again.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import inspect
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib import wiring

from hw.config import AccelConfig
from hw.emit import to_verilog
from sim.toolchain import (
    LINT_WAIVERS,
    ToolchainError,
    check_fst_support,
    toolchain_environ,
    verilator_version,
)

REPO = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("LOWBIT_BUILD_DIR", REPO / "build")) / "sim"
HW_DIR = REPO / "hw"
HARNESS_VERSION = 1


class SimulationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Model:
    """A built Verilator model: its folder, top-level name and whether it came from cache."""

    build_dir: Path
    top: str
    waves: bool
    key: str
    cached: bool

    @property
    def binary(self) -> Path:
        return self.build_dir / self.top


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    message: str
    sim_time_ns: float


def source_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def hw_sources() -> list[Path]:
    return sorted(HW_DIR.rglob("*.py")) + [LINT_WAIVERS]


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock on a build folder (parallel test processes share the cache)."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cache_key(parts: dict) -> str:
    """Short stable hash of what a build depends on; names its folder under build/sim."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def build_amaranth(
    factory: Callable[[AccelConfig], wiring.Component],
    config: AccelConfig,
    top: str,
    waves: bool = False,
    ports_only: bool = False,
) -> Model:
    """Build `factory(config)` into a Verilator model, or reuse the cached one. The cache key
    covers hw/ and, for a test wrapper defined elsewhere, the wrapper's own source file.
    ``ports_only``: see :func:`build_verilog`."""
    factory_src = Path(inspect.getsourcefile(factory) or HW_DIR)
    sources = hw_sources() + ([factory_src] if factory_src.is_file() and HW_DIR not in factory_src.parents else [])
    key = cache_key({"top": top, "factory": f"{factory.__module__}.{factory.__qualname__}",
                "config": config.hash, "hw": source_hash(sources), "waves": waves, "ports_only": ports_only,
                "verilator": verilator_version(), "harness": HARNESS_VERSION})
    return _build(top, key, waves, lambda d: _emit(factory(config), top, d), ports_only)


def build_verilog(files: list[Path], top: str, waves: bool = False, ports_only: bool = False) -> Model:
    """Build Verilog files into a Verilator model, or reuse the cached one.

    cocotb's runner makes every signal visible to VPI (``--public-flat-rw``), which keeps
    Verilator from optimizing the design (about 6x slower on the accelerator). With
    ``ports_only`` only the top module's own signals (and whatever the sources mark public
    themselves) are visible: the build for long whole-program runs."""
    files = [Path(f).resolve() for f in files]
    key = cache_key({"top": top, "files": source_hash(files), "waves": waves, "ports_only": ports_only,
                "verilator": verilator_version(), "harness": HARNESS_VERSION})
    return _build(top, key, waves, lambda d: files, ports_only)


def _emit(component: wiring.Component, top: str, out: Path) -> list[Path]:
    path = out / f"{top}.v"
    path.write_text(to_verilog(component, top))
    return [path]


def _build(top: str, key: str, waves: bool, sources: Callable[[Path], list[Path]], ports_only: bool = False) -> Model:
    from cocotb_tools.runner import get_runner

    build_dir = BUILD_ROOT / f"{top}-{key}"
    stamp = build_dir / "built.json"
    with locked(build_dir):
        if stamp.exists() and (build_dir / top).exists():
            return Model(build_dir, top, waves, key, cached=True)
        files = sources(build_dir)
        args = ["-Wno-fatal", str(LINT_WAIVERS)]
        if waves:
            check_fst_support()
            args += ["--trace-fst", "--trace-structs"]
        if ports_only:
            vlt = build_dir / "public.vlt"
            vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n')
            args.append(str(vlt))
        with toolchain_environ():
            runner = get_runner("verilator")
            if ports_only:
                _without_public_flat_rw(runner)
            try:
                runner.build(sources=files, hdl_toplevel=top, build_dir=build_dir, build_args=args,
                             waves=waves, log_file=build_dir / "build.log")
            except (SystemExit, Exception) as exc:
                log = build_dir / "build.log"
                raise ToolchainError(f"Verilator build of {top} failed ({exc}); see {log}") from None
        stamp.write_text(json.dumps({"top": top, "key": key, "sources": [str(f) for f in files]}))
    return Model(build_dir, top, waves, key, cached=False)


def _without_public_flat_rw(runner) -> None:
    """Drop the runner's --public-flat-rw from its Verilator command line."""
    build_command = runner._build_command

    def patched():
        cmds = build_command()
        cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
        return cmds

    runner._build_command = patched


def run_cocotb(
    model: Model,
    test_module: str,
    testcase: str | list[str] | None = None,
    seed: int | None = None,
    extra_env: dict[str, str] | None = None,
    waves: bool = False,
    test_dir: Path | None = None,
) -> list[CaseResult]:
    """Run a cocotb test module against a built model; returns one result per test."""
    from cocotb_tools.runner import get_runner

    if waves and not model.waves:
        raise SimulationError("waveforms need a model built with waves=True")
    test_dir = Path(test_dir or model.build_dir / "run" / test_module.rsplit(".", 1)[-1])
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    results.unlink(missing_ok=True)
    with toolchain_environ():
        os.environ.pop("PYTEST_CURRENT_TEST", None)  # we read the results ourselves
        runner = get_runner("verilator")
        try:
            runner.test(test_module=test_module, hdl_toplevel=model.top, hdl_toplevel_lang="verilog",
                        build_dir=model.build_dir,
                        test_dir=test_dir, testcase=testcase, seed=seed, extra_env=extra_env or {},
                        waves=waves, results_xml=str(results), log_file=test_dir / "sim.log")
        except SystemExit as exc:
            if not results.exists():
                log = test_dir / "sim.log"
                raise SimulationError(f"simulation of {model.top} exited with {exc.code}; see {log}") from None
    if not results.exists():
        raise SimulationError(f"simulation of {model.top} wrote no results; see {test_dir / 'sim.log'}")
    return parse_results(results)


def cocotb_results(factory: Callable[[AccelConfig], wiring.Component], config: AccelConfig, top: str,
                      test_module: str) -> dict[str, CaseResult]:
    """Build a design for a configuration and run a cocotb testbench module on it; results by test name."""
    from sim.tb.common import config_env

    model = build_amaranth(factory, config, top)
    return {r.name: r for r in run_cocotb(model, test_module, extra_env=config_env(config))}


def cocotb_tests(path: Path) -> list[str]:
    """Names of the @cocotb.test functions of a testbench module (pytest parametrizes on them)."""
    tree = ast.parse(Path(path).read_text())
    return [f.name for f in tree.body if isinstance(f, ast.AsyncFunctionDef)
            and any("cocotb.test" in ast.unparse(d) for d in f.decorator_list)]


def parse_results(path: Path) -> list[CaseResult]:
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out.append(CaseResult(
            name=case.get("name", "?"),
            passed=bad is None,
            message="" if bad is None else (bad.get("message") or bad.text or "failed"),
            sim_time_ns=float(props.get("sim_time_duration") or 0),
        ))
    return out
