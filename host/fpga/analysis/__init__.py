"""Reading a design's netlist and nextpnr's timing report for the flow's report.

- ``depth``: the deepest register-to-register paths of a synthesized ECP5 netlist, by logic
  levels, before place-and-route (seconds, where nextpnr names one critical path after minutes).
- ``slack``: every timing endpoint's slack after routing, from nextpnr's detailed report,
  grouped by shape.
- ``area``: the synthesized netlist's LUTs, flip-flops, DSP blocks and block RAMs per module.
"""

from __future__ import annotations

import json
from pathlib import Path

from host.fpga.analysis.area import area_by_unit
from host.fpga.analysis.depth import deepest_paths

__all__ = ["DEEP_PATHS", "SLACK_GROUPS", "netlist_analysis"]

DEEP_PATHS = 16  # how many shapes of deepest path the report lists (ECP5 targets)
SLACK_GROUPS = 30  # how many groups of failing endpoints the report lists


def netlist_analysis(netlist: Path, top: str, family: str, resources: dict[str, dict[str, int]]
                     ) -> tuple[list[dict], list[dict]]:
    """(the deepest paths, one per shape, on ECP5; the area of each unit) of a synthesized
    netlist; ([], []) without one (the generic target keeps none)."""
    if not netlist.exists():
        return [], []
    design = json.loads(netlist.read_text())
    deep = [p.as_dict() for p in deepest_paths(design, top, DEEP_PATHS, group=True)] if family == "ecp5" else []
    return deep, area_by_unit(design, top, resources)
