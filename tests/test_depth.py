"""Logic depth of a synthesized ECP5 netlist (host/fpga/analysis/depth.py), on small hand-built netlists
whose deepest paths are known, and on a real one: the tiny config's array."""

from __future__ import annotations

import pytest

from host.fpga.analysis import DEEP_PATHS
from host.fpga.analysis.depth import DSP_LEVELS, deepest_paths
from host.fpga.flow import synthesize
from host.fpga.options import flow_options


def _cell(kind: str, ins: dict, outs: dict, **params) -> dict:
    return {"type": kind, "parameters": params, "attributes": {},
            "port_directions": {**{p: "input" for p in ins}, **{p: "output" for p in outs}},
            "connections": {**{p: [b] for p, b in ins.items()}, **{p: [b] for p, b in outs.items()}}}


def _netlist(cells: dict, nets: dict) -> dict:
    return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"}, "cells": cells,
                                "netnames": {n: {"hide_name": 0, "bits": b} for n, b in nets.items()}}}}


def _ff(d, q) -> dict:
    return _cell("TRELLIS_FF", {"CLK": 1, "DI": d}, {"Q": q})


def _example() -> dict:
    """a -> LUT -> LUT (with b) -> LUT -> carry chain of two CCU2Cs -> c; the chain's first sum -> d;
    c -> unregistered DSP -> e; c -> a registered DSP (a block: the path ends at its input)."""
    cells = {
        "a_ff": _ff(20, 2), "b_ff": _ff(21, 3),
        "l0": _cell("LUT4", {"A": 2}, {"Z": 10}),
        "l1": _cell("LUT4", {"A": 10, "B": 3}, {"Z": 4}),
        "l2": _cell("LUT4", {"A": 4}, {"Z": 5}),
        "mux": _cell("PFUMX", {"ALUT": 5, "BLUT": 3, "C0": 2}, {"Z": 12}),
        "cc0": _cell("CCU2C", {"A0": 12, "CIN": "0"}, {"S0": 6, "COUT": 7}),
        "cc1": _cell("CCU2C", {"CIN": 7}, {"S0": 8}),
        "c_ff": _ff(8, 9), "d_ff": _ff(6, 13),
        "mul": _cell("MULT18X18D", {"A0": 9}, {"P0": 11}, REG_OUTPUT_CLK="NONE"),
        "e_ff": _ff(11, 14),
        "mul_reg": _cell("MULT18X18D", {"A0": 9}, {"P0": 15}, REG_OUTPUT_CLK="CLK0"),
        "f_ff": _ff(15, 16),
    }
    nets = {"clk": [1], "a": [2], "b": [3], "c": [9], "d": [13], "e": [14], "f": [16], "x": [4, 5],
            "$auto$hidden": [10]}
    return _netlist(cells, nets)


def test_levels_carry_and_starts_of_the_deepest_paths():
    paths = {p.end: p for p in deepest_paths(_example())}
    # three LUTs and the carry chain's entry; the chain ripples through two cells to c
    assert (paths["c"].start, paths["c"].levels, paths["c"].carry) == ("a", 4, 2)
    assert (paths["d"].start, paths["d"].levels, paths["d"].carry) == ("a", 4, 0)
    assert (paths["e"].start, paths["e"].levels) == ("c", DSP_LEVELS)
    # the registered DSP block ends c's path with no logic and starts f's: neither is listed
    assert set(paths) == {"c", "d", "e"}
    assert [p.end for p in deepest_paths(_example(), count=2)] == ["e", "c"]  # DSP_LEVELS > 4


def test_paths_are_ranked_deepest_first_one_per_register():
    ranked = deepest_paths(_example())
    assert [(p.levels, p.carry) for p in ranked] == sorted(((p.levels, p.carry) for p in ranked), reverse=True)
    assert len({p.end for p in ranked}) == len(ranked)


def test_paths_of_one_shape_are_grouped_under_the_deepest():
    """Two PEs' product registers (one LUT and two LUTs deep) and one other register: grouped,
    the PEs are one entry, the deeper one's, standing for both."""
    cells = {"a_ff": _ff(30, 2), "b_ff": _ff(31, 3),
             "l0": _cell("LUT4", {"A": 2}, {"Z": 20}), "p0_ff": _ff(20, 21),
             "l1": _cell("LUT4", {"A": 3}, {"Z": 22}), "l2": _cell("LUT4", {"A": 22}, {"Z": 23}), "p1_ff": _ff(23, 24),
             "l3": _cell("LUT4", {"A": 2}, {"Z": 25}), "x_ff": _ff(25, 26)}
    nets = {"clk": [1], "pe_0.a": [2], "pe_1.a": [3], "pe_0.product": [21], "pe_1.product": [24], "x": [26]}
    ungrouped = deepest_paths(_netlist(cells, nets))
    assert [(p.end, p.levels, p.alike) for p in ungrouped] == [("pe_1.product", 2, 1), ("pe_0.product", 1, 1),
                                                                ("x", 1, 1)]
    grouped = deepest_paths(_netlist(cells, nets), group=True)
    assert [(p.end, p.start, p.levels, p.alike) for p in grouped] == [("pe_1.product", "pe_1.a", 2, 2),
                                                                       ("x", "pe_0.a", 1, 1)]


def test_combinational_loop_and_unknown_top_are_named():
    cells = {"l0": _cell("LUT4", {"A": 5}, {"Z": 6}), "l1": _cell("LUT4", {"A": 6}, {"Z": 5}),
             "ff": _ff(6, 7)}
    with pytest.raises(ValueError, match="combinational loop in top through"):
        deepest_paths(_netlist(cells, {"loop": [5, 6]}))
    with pytest.raises(ValueError, match="netlist has no module 'nope'"):
        deepest_paths(_example(), top="nope")


@pytest.mark.fpga
def test_tiny_array_report_lists_the_pe_products_deepest(tiny, tmp_path):
    """Synthesis only of the tiny array for the ECP5-25F: the deepest paths end in the PEs'
    product registers (the Booth or DSP multiply), and the report lists them."""
    r = synthesize(tiny, "ecp5-25k", flow_options(out_dir=tmp_path, unit="array", place=False))
    assert r.deep_paths and len(r.deep_paths) <= DEEP_PATHS
    # one entry per shape, deepest first: the products, all 16 PEs' of them, come first
    assert r.deep_paths[0]["levels"] >= DSP_LEVELS and ".product" in r.deep_paths[0]["end"]
    products = [p for p in r.deep_paths if p["end"].endswith(".product")]
    assert sum(p["alike"] for p in products) == tiny.rows * tiny.cols
    assert "## Deepest paths" in (tmp_path / "report.md").read_text()
