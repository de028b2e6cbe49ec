"""The FPGA flow's records and steps (host/fpga/): target files and flow options validated with
messages naming the file and the field, unknown keys refused, the netlist passes behind one
interface, and resuming from a step whose products are not in the folder refused. No tool runs
here (the runs are in test_synth.py: resumed from the analysis and from the bitstream step)."""

from __future__ import annotations

import dataclasses

import pytest

from host.fpga.flow import FLOW, synthesize
from host.fpga.options import STEPS, FlowOptions, flow_options
from host.fpga.passes import PASSES, enabled_passes
from host.fpga.report import SynthResult
from host.fpga.targets import TARGETS_DIR, FlowConfigError, load_target, target_names

ICE40 = (TARGETS_DIR / "ice40-up5k.toml").read_text()


def bad_target(tmp_path, text: str) -> str:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(FlowConfigError) as err:
        load_target("bad", tmp_path)
    return str(err.value)


def test_every_shipped_target_loads():
    for name in target_names():
        t = load_target(name)
        assert t.name == name and (t.places == (t.family != "generic"))


def test_a_bad_target_file_names_the_file_and_the_field(tmp_path):
    where = str(tmp_path / "bad.toml")
    msg = bad_target(tmp_path, ICE40.replace('family = "ice40"', 'family = "xilinx"'))
    assert msg.startswith(f"{where}: family: Input should be 'ecp5', 'ice40' or 'generic'")
    msg = bad_target(tmp_path, ICE40.replace("luts = 5280", 'luts = "many"'))
    assert msg.startswith(f"{where}: capacity.luts: Input should be a valid integer")
    msg = bad_target(tmp_path, ICE40.replace("sprams = 4", "lut6 = 4"))
    assert f"{where}: capacity.lut6.[key]: Input should be 'luts'" in msg
    msg = bad_target(tmp_path, ICE40.replace('rst = "active-low"', 'rst = "low"'))
    assert msg.startswith(f"{where}: pin_polarity.rst: Input should be 'active-high' or 'active-low'")
    assert "not valid TOML" in bad_target(tmp_path, ICE40 + "\n[pins\n")


def test_a_target_file_with_an_unknown_key_is_refused(tmp_path):
    msg = bad_target(tmp_path, 'colour = "blue"\n' + ICE40)
    assert msg.startswith(f"{tmp_path / 'bad.toml'}: colour: unknown key; valid keys: name, description, family")
    msg = bad_target(tmp_path, ICE40.replace("[pin_polarity]", "[dsp_sites]\ncell = 'SB_MAC16'\nrow = [1]\n"
                                                                "[pin_polarity]"))
    assert "dsp_sites.rows: Field required" in msg and "dsp_sites.row: unknown key" in msg


def test_a_placing_target_needs_every_wrapper_pin(tmp_path):
    msg = bad_target(tmp_path, ICE40.replace('scan_out = "45"', ""))
    assert msg.endswith("an ice40 target needs device, package and [pins] for clk, rst, scan_in, scan_en, "
                        "scan_update, scan_out, irq (missing pins: scan_out)")
    msg = bad_target(tmp_path, ICE40.replace('irq = "11"', 'irq = "11"\nled = "12"'))
    assert "pins: no wrapper pin named led" in msg


def test_flow_options_name_the_field():
    assert flow_options() == FlowOptions() and FlowOptions().max_fanout == 64
    with pytest.raises(FlowConfigError, match="^flow options: tries: Input should be greater than or equal to 1"):
        flow_options(tries=0)
    with pytest.raises(FlowConfigError, match="^flow options: seeds: unknown key; valid keys: out_dir, unit"):
        flow_options(seeds=3)
    with pytest.raises(FlowConfigError, match="^lowbit synth: pnr_args: nextpnr option --pack-only stops before"):
        flow_options("lowbit synth", pnr_args=("--pack-only",))
    with pytest.raises(FlowConfigError, match="resume_from: Input should be 'generate', 'synthesis'"):
        flow_options(resume_from="yosys")
    with pytest.raises(ValueError, match="frozen"):
        FlowOptions().seed = 2


def test_the_flow_is_a_list_of_named_steps():
    assert tuple(s.name for s in FLOW) == STEPS
    assert [s.name for s in FLOW if s.reusable] == ["synthesis"]  # the one step reused by key alone


def test_netlist_passes_share_one_interface():
    fields = {f.name for f in dataclasses.fields(SynthResult)}
    assert [p.name for p in PASSES] == ["floorplan", "dsp_registers", "replication"]
    assert all(p.name in fields for p in PASSES)  # each pass's report goes to its field of the result
    ecp5, ice40 = load_target("ecp5-25k"), load_target("ice40-up5k")
    assert [p.name for p in enabled_passes(ecp5, FlowOptions())] == ["floorplan", "dsp_registers", "replication"]
    off = flow_options(floorplan=False, dsp_registers=False, max_fanout=0)
    assert enabled_passes(ecp5, off) == [] and enabled_passes(ice40, FlowOptions()) == []


def test_resuming_needs_the_steps_before(tiny, tmp_path):
    with pytest.raises(FlowConfigError, match=r"cannot take step generate from .*: its record in flow.json missing"):
        synthesize(tiny, "ecp5-25k", flow_options(out_dir=tmp_path, resume_from="place-and-route"))
    with pytest.raises(FlowConfigError, match="resume_from: bitstream is past this run's last step, analysis"):
        synthesize(tiny, "generic", flow_options(out_dir=tmp_path, resume_from="bitstream"))
