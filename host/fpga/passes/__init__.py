"""Netlist passes: changes to Yosys' netlist before nextpnr places it, each of one shape.

A pass (:class:`NetlistPass`) says whether it applies to a target and run, changes the netlist
(Yosys JSON, in memory) in place and returns what the report records under its ``name`` (a
field of ``SynthResult``). ``run_passes`` applies the passes in ``PASSES`` order to ``netlist.json``
and writes the result to ``netlist_pnr.json``, which nextpnr reads; Yosys' netlist stays as it
was, so a later run with other choices starts from it again.

- ``floorplan``: the PEs' DSP blocks fixed to the device's DSP sites in array order.
- ``dsp_registers``: the flip-flops behind a DSP block's product moved into its output register.
- ``replication``: copies of registers and LUTs with many sinks, the reset on a global network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from host.fpga.passes.dsp_registers import DspRegisterPass
from host.fpga.passes.fanout import FanoutPass
from host.fpga.passes.floorplan import FloorplanPass

if TYPE_CHECKING:
    from host.fpga.options import FlowOptions
    from host.fpga.targets import Target

__all__ = ["NetlistPass", "PASSES", "enabled_passes", "run_passes"]


class NetlistPass(Protocol):
    name: str  # the SynthResult field its report goes to

    def enabled(self, target: Target, options: FlowOptions) -> bool:
        """Whether the pass applies to this target and run."""

    def apply(self, design: dict, target: Target, options: FlowOptions) -> dict:
        """Change ``design`` (Yosys JSON) in place; what the report records."""

    def describe(self, report: dict) -> str:
        """One status line about what ``apply`` did."""


PASSES: tuple[NetlistPass, ...] = (FloorplanPass(), DspRegisterPass(), FanoutPass())


def enabled_passes(target: Target, options: FlowOptions) -> list[NetlistPass]:
    return [p for p in PASSES if p.enabled(target, options)]


def run_passes(work: Path, target: Target, options: FlowOptions,
               say: Callable[[str], None] = lambda _msg: None) -> tuple[str, dict[str, dict]]:
    """The enabled passes on ``work/netlist.json``, written to ``work/netlist_pnr.json``. Returns
    the netlist nextpnr is to read and each pass's report by name."""
    passes = enabled_passes(target, options)
    if not passes:
        return "netlist.json", {}
    design = json.loads((work / "netlist.json").read_text())
    reports = {}
    for p in passes:
        reports[p.name] = p.apply(design, target, options)
        say(p.describe(reports[p.name]))
    (work / "netlist_pnr.json").write_text(json.dumps(design))
    return "netlist_pnr.json", reports
