"""The DSP floorplan (host/fpga/passes/floorplan.py): the snake path over a device's DSP sites, the PEs'
column-major order along it, the netlist edit, and nextpnr placing a real array accordingly."""

from __future__ import annotations

import json
import re

import pytest

from host.fpga.flow import synthesize
from host.fpga.options import flow_options
from host.fpga.passes.floorplan import fix_pe_dsps, pe_position, plan
from host.fpga.targets import DspSites, FlowConfigError, load_target, validated
from host.fpga.wrapper import WRAPPER_PINS, WRAPPER_TOP

SITES = DspSites(cell="MULT18X18D", rows=(10, 34), columns=(4, 5, 8), bels=("MULT18_0", "MULT18_1"))


def test_path_snakes_through_the_rows():
    assert SITES.path() == ["X4/Y10/MULT18_0", "X5/Y10/MULT18_1", "X8/Y10/MULT18_0",
                            "X8/Y34/MULT18_0", "X5/Y34/MULT18_1", "X4/Y34/MULT18_0"]
    assert len(SITES) == 6


@pytest.mark.parametrize("name", ["ecp5-85k", "ecp5-25k"])
def test_ecp5_targets_list_every_dsp_site_once(name):
    t = load_target(name)
    path = t.dsp_sites.path()
    assert len(path) == len(set(path)) == t.capacity["dsps"]
    assert all(re.fullmatch(r"X\d+/Y\d+/MULT18_[0145]", p) for p in path)


def test_pe_dsp_blocks_go_column_by_column_down_each_column():
    cells = [f"core.matmul.array.pe_{i}_{j}.$2_MULT18X18D_P9" for i in (1, 0, 10) for j in (1, 0)]
    cells += ["core.postproc.pp.$36_MULT18X18D_P9", "core.ctrl.span_MULT18X18D_P9"]
    placed = plan(cells, SITES)
    order = sorted(placed, key=lambda c: SITES.path().index(placed[c]))
    assert [pe_position(c) for c in order] == [(0, 0), (1, 0), (10, 0), (0, 1), (1, 1), (10, 1)]
    assert pe_position("core.postproc.pp.$36_MULT18X18D_P9") is None
    with pytest.raises(ValueError, match="7 PE DSP blocks for 6 MULT18X18D sites"):
        plan(cells + ["core.pe_3_3.$9_MULT18X18D_P9"], SITES)


def test_netlist_edit_sets_the_sites():
    cells = {"core.pe_0_0.$2_MULT18X18D_P9": {"type": "MULT18X18D", "attributes": {"BEL": "X8/Y10/MULT18_0"}},
             "core.pe_1_0.$2_MULT18X18D_P9": {"type": "MULT18X18D", "attributes": {}},
             "core.postproc.$5_MULT18X18D_P9": {"type": "MULT18X18D", "attributes": {"BEL": "X4/Y34/MULT18_0"}},
             "core.pe_0_0.w0_TRELLIS_FF_Q": {"type": "TRELLIS_FF", "attributes": {}}}
    design = {"modules": {"top": {"cells": cells}}}
    info = fix_pe_dsps(design, "top", SITES)
    assert info == {"pe_dsps": 2, "dsps": 3, "sites": 6, "first": "X4/Y10/MULT18_0", "last": "X5/Y10/MULT18_1"}
    # the PEs' on the path, an earlier site on another DSP block dropped
    assert [c["attributes"].get("BEL") for c in cells.values()] == ["X4/Y10/MULT18_0", "X5/Y10/MULT18_1", None, None]


def test_bad_dsp_sites_are_named():
    with pytest.raises(FlowConfigError, match=r"where.toml: cell: Field required"):
        validated(DspSites, {"rows": [1], "columns": [1], "bels": ["A"]}, "where.toml")
    with pytest.raises(FlowConfigError, match=r"where.toml: rows: .*at least 1 item"):
        validated(DspSites, {"cell": "MULT18X18D", "rows": [], "columns": [1], "bels": ["A"]}, "where.toml")


@pytest.mark.fpga
def test_nextpnr_places_the_tiny_array_on_the_planned_sites(tiny, tmp_path):
    """The tiny config's 4x4 array on the ECP5-25F: its 16 PE multipliers fixed in array order
    (the placed netlist nextpnr writes shows each on its planned site), routed to a bitstream;
    then without the floorplan, placed again."""
    r = synthesize(tiny, "ecp5-25k", flow_options(out_dir=tmp_path, unit="array", pnr_args=("--write=placed.json",)))
    assert r.stage == "bitstream" and r.dsps == 16
    assert r.floorplan["pe_dsps"] == 16 and r.floorplan["constrained_cells"] == 16 + len(WRAPPER_PINS)
    sites = load_target("ecp5-25k").dsp_sites.path()
    placed = json.loads((tmp_path / "placed.json").read_text())["modules"]["top"]["cells"]  # nextpnr names it top
    got = {pe_position(n): c["attributes"]["NEXTPNR_BEL"] for n, c in placed.items() if c["type"] == "MULT18X18D"}
    assert got == {(i, j): sites[j * tiny.rows + i] for i in range(tiny.rows) for j in range(tiny.cols)}
    # every PE's 16-bit product register is the DSP block's own (host/fpga/passes/dsp_registers.py)
    assert r.dsp_registers == {"enabled": True, "dsps": 16, "ffs": 16 * 16, "left": {}}
    assert all(c["parameters"]["REG_OUTPUT_CLK"] == "CLK0" for c in placed.values() if c["type"] == "MULT18X18D")
    md = (tmp_path / "report.md").read_text()
    assert "DSP output registers | 256 product flip-flops moved into 16 DSP blocks |" in md
    assert "DSP floorplan | 16 PE DSP blocks" in md
    free = synthesize(tiny, "ecp5-25k", flow_options(out_dir=tmp_path, unit="array", floorplan=False,
                                                     pnr_args=("--write=placed.json",)))
    assert free.floorplan == {} and "nextpnr" in free.tool_seconds and "yosys" not in free.tool_seconds
    for netlist in ("netlist.json", "netlist_pnr.json"):  # Yosys' netlist is never changed, the placed one is free
        cells = json.loads((tmp_path / netlist).read_text())["modules"][WRAPPER_TOP]["cells"]
        assert not any("BEL" in c["attributes"] for c in cells.values()), netlist
