"""Verilog emission and the manifest that describes what was emitted."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from amaranth import Value
from amaranth.back import verilog
from amaranth.lib import wiring

from hw.array import ONE_PRODUCT, PeForms
from hw.axi import AXIL_DATA_BITS, CSR_ADDR_BITS, ID_BITS
from hw.config import AccelConfig
from hw.csr import csr_map
from hw.geometry import array_latency
from hw.isa import ISA_VERSION
from hw.top import TOP_NAME, build_top


def generator_version() -> str:
    try:
        return f"lowbit {version('lowbit')}"
    except PackageNotFoundError:
        return "lowbit (not installed)"


def to_verilog(component: wiring.Component, name: str) -> str:
    """Amaranth component -> Verilog text (deterministic: no source paths in it)."""
    return verilog.convert(component, name=name, emit_src=False)


def ports(component: wiring.Component) -> list[dict]:
    """The top level's ports as Verilog sees them (Amaranth joins paths with '__')."""
    out = [{"name": "clk", "direction": "in", "width": 1}, {"name": "rst", "direction": "in", "width": 1}]
    for path, member, value in component.signature.flatten(component):
        out.append({
            "name": "__".join(str(p) for p in path),
            "direction": "in" if member.flow == wiring.Flow.In else "out",
            "width": len(Value.cast(value)),
        })
    return out


def generate(cfg: AccelConfig, out_dir: str | Path, forms: PeForms = ONE_PRODUCT) -> dict:
    """Write <top>.v and manifest.json for one configuration; returns the manifest. ``forms``: the
    PEs whose multiply is written as two LUT halves or in the Booth form (the FPGA flow's choice,
    hw/array.py)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = build_top(cfg, forms)
    vfile = out / f"{TOP_NAME}.v"
    vfile.write_text(to_verilog(top, TOP_NAME))
    manifest = {
        "generator": generator_version(),
        "isa_version": ISA_VERSION,
        "top": TOP_NAME,
        "top_component": type(top).__name__,
        "config_name": cfg.name,
        "config_hash": cfg.hash,
        "config": cfg.model_dump(mode="json"),
        "files": [vfile.name],
        "ports": ports(top),
        "clock": {"port": "clk", "target_mhz": cfg.clock_mhz},
        "reset": {"port": "rst", "polarity": "active-high", "synchronous": True},
        "interfaces": {
            "s_axil": {"protocol": "AXI4-Lite slave", "role": "control/status registers",
                       "addr_bits": CSR_ADDR_BITS, "data_bits": AXIL_DATA_BITS},
            "m_axi": {"protocol": "AXI4 master", "role": "DRAM: instruction fetch and DMA",
                      "addr_bits": cfg.axi_addr_bits, "data_bits": cfg.axi_data_bits, "id_bits": ID_BITS},
            "irq": {"role": "level interrupt: STATUS.DONE and CTRL.IRQ_ENABLE"},
        },
        "array": {"rows": cfg.rows, "cols": cfg.cols, "dataflow": "weight-stationary",
                  "latency_cycles": array_latency(cfg), "half_pes": sorted(map(list, forms.halves)),
                  "booth_pes": sorted(map(list, forms.booth))},
        "csr": csr_map(cfg),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
