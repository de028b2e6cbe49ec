"""The DSP floorplan (host/floorplan.py): the snake path over a device's DSP sites, the PEs'
column-major order along it, the netlist edit, and nextpnr placing a real array accordingly."""

from __future__ import annotations

import json
import re

import pytest

from host import synth
from host.floorplan import DspSites, apply_floorplan, pe_position, plan
from host.synth import load_target

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


def test_netlist_edit_sets_and_clears_the_sites(tmp_path):
    cells = {"core.pe_0_0.$2_MULT18X18D_P9": {"type": "MULT18X18D", "attributes": {}},
             "core.pe_1_0.$2_MULT18X18D_P9": {"type": "MULT18X18D", "attributes": {}},
             "core.postproc.$5_MULT18X18D_P9": {"type": "MULT18X18D", "attributes": {}},
             "core.pe_0_0.w0_TRELLIS_FF_Q": {"type": "TRELLIS_FF", "attributes": {}}}
    netlist = tmp_path / "netlist.json"
    netlist.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    info = apply_floorplan(netlist, "top", SITES)
    assert info == {"pe_dsps": 2, "dsps": 3, "sites": 6, "first": "X4/Y10/MULT18_0", "last": "X5/Y10/MULT18_1"}
    got = json.loads(netlist.read_text())["modules"]["top"]["cells"]
    assert [c["attributes"].get("BEL") for c in got.values()] == ["X4/Y10/MULT18_0", "X5/Y10/MULT18_1", None, None]
    assert apply_floorplan(netlist, "top", SITES, enabled=False)["pe_dsps"] == 0
    got = json.loads(netlist.read_text())["modules"]["top"]["cells"]
    assert all("BEL" not in c["attributes"] for c in got.values())


def test_bad_dsp_sites_are_named():
    with pytest.raises(KeyError, match=r"where.toml: \[dsp_sites\] needs cell, rows, columns and bels"):
        DspSites.from_toml({"rows": [1]}, "where.toml")
    with pytest.raises(KeyError, match="must not be empty"):
        DspSites.from_toml({"cell": "MULT18X18D", "rows": [], "columns": [1], "bels": ["A"]}, "where.toml")


def test_nextpnr_places_the_tiny_array_on_the_planned_sites(tiny, tmp_path):
    """The tiny config's 4x4 array on the ECP5-25F: its 16 PE multipliers fixed in array order
    (the placed netlist nextpnr writes shows each on its planned site), routed to a bitstream;
    then without the floorplan, placed again."""
    r = synth.synthesize(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", pnr_args=("--write=placed.json",))
    assert r.stage == "bitstream" and r.dsps == 16
    assert r.floorplan["pe_dsps"] == 16 and r.floorplan["constrained_cells"] == 16 + len(synth.WRAPPER_PINS)
    sites = load_target("ecp5-25k").dsp_sites.path()
    placed = json.loads((tmp_path / "placed.json").read_text())["modules"]["top"]["cells"]  # nextpnr names it top
    got = {pe_position(n): c["attributes"]["NEXTPNR_BEL"] for n, c in placed.items() if c["type"] == "MULT18X18D"}
    assert got == {(i, j): sites[j * tiny.rows + i] for i in range(tiny.rows) for j in range(tiny.cols)}
    # every PE's 16-bit product register is the DSP block's own (host/dsp_registers.py)
    assert r.dsp_registers == {"enabled": True, "dsps": 16, "ffs": 16 * 16, "left": {}}
    assert all(c["parameters"]["REG_OUTPUT_CLK"] == "CLK0" for c in placed.values() if c["type"] == "MULT18X18D")
    md = (tmp_path / "report.md").read_text()
    assert "DSP output registers | 256 product flip-flops moved into 16 DSP blocks |" in md
    assert "DSP floorplan | 16 PE DSP blocks" in md
    free = synth.synthesize(tiny, "ecp5-25k", out_dir=tmp_path, unit="array", pnr_args=("--write=placed.json",),
                            floorplan=False)
    assert free.floorplan == {} and "nextpnr" in free.tool_seconds and "yosys" not in free.tool_seconds
    cells = json.loads((tmp_path / "netlist.json").read_text())["modules"][synth.WRAPPER_TOP]["cells"]
    assert not any("BEL" in c["attributes"] for c in cells.values())
