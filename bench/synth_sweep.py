"""FPGA cost of the two PE families over array sizes, at the same peak INT4 throughput.

A bit-parallel PE does one INT8 x INT4 MAC per cycle; a bit-serial PE takes one mantissa bit per
cycle, so four cycles per INT4 weight. A bit-serial array of 2N x 2N PEs therefore has the same
peak INT4 MACs per cycle as a bit-parallel N x N array, and each pair below is compared at equal
peak throughput. The parallel points use the `default` preset's datatypes (INT8 x INT2/INT4/INT8,
8x8-bit multipliers), the serial points the `serial` preset's (every datatype, per-group types).

What it runs by default (8 to 12 minutes on two busy cores, WebAssembly tools; a point whose
report in bitstreams/build/sweep/ is from the identical run is not run again):

- the systolic array alone (``SystolicArray`` in the 7-pin wrapper of host/fpga/wrapper.py,
  ``unit="array"``) for parallel 4x4, 8x8, 16x16 and serial 8x8, 16x16, synthesized for the
  ECP5-85F (LUTs, FFs, MULT18X18D DSP blocks; multipliers beyond the 156 DSP blocks go to LUTs);
- place-and-route (nextpnr-ecp5 at 100 MHz, Fmax) for the points of at most ``PNR_MAX_PES`` PEs;
- the same arrays on the generic target (Yosys 4-LUT synthesis, every multiplier in logic) for
  technology-independent LUT counts (``generic=False`` skips it). As the parallel points put
  their multipliers in DSP blocks on the ECP5, the generic counts are the fair LUT comparison.

Derived per point: ``int4_macs_per_cycle``, ``luts_per_int4_mac`` (DSP blocks not counted, see
``dsps_per_int4_mac``), and ``peak_gops_per_klut`` = 2 x INT4 MACs/cycle x Fmax / 1000 LUTs
(at the measured Fmax where place-and-route ran, else null; ``peak_gops_per_klut_at_100mhz``
for every point). Results go to bench/results/synth-sweep.json and synth-sweep.png; each
point's reports stay in bitstreams/build/sweep/.
"""

from __future__ import annotations

from pathlib import Path

from hw.config import AccelConfig, from_dict, load_config
from hw.datatypes import datatype

DESCRIPTION = "FPGA sweep: array sizes x PE family (same peak INT4 throughput): LUTs, DSPs, Fmax, LUTs/MAC"

PARALLEL_SIZES = (4, 8, 16)
SERIAL_SIZES = (8, 16)
PNR_MAX_PES = 64
TARGET = "ecp5-85k"
CLOCK_MHZ = 100.0


def sweep_config(family: str, n: int) -> AccelConfig:
    base = load_config("default" if family == "parallel" else "serial")
    return from_dict({**base.model_dump(), "name": f"sweep-{family}-{n}x{n}", "rows": n, "cols": n,
                      "clock_mhz": CLOCK_MHZ}, source=f"synth-sweep {family} {n}x{n}")


def int4_macs_per_cycle(cfg: AccelConfig) -> float:
    """Peak INT4 MACs per cycle: one per PE, divided by INT4's bit planes for the serial PE."""
    planes = datatype("int4").mant_bits if cfg.pe == "serial" else 1
    return cfg.rows * cfg.cols / planes


def point(cfg: AccelConfig, place: bool, generic: bool, log) -> dict:
    from host.fpga.flow import synthesize
    from host.fpga.options import flow_options
    from host.fpga.targets import BUILD_DIR

    out = BUILD_DIR / "sweep"
    log(f"{cfg.name}: synthesis for {TARGET}" + (" + place-and-route" if place else ""))
    r = synthesize(cfg, TARGET, flow_options(out_dir=out / f"{cfg.name}-{TARGET}", place=place, unit="array"),
                   status=lambda msg: log(f"{cfg.name}: {msg}"))
    macs = int4_macs_per_cycle(cfg)
    row = {
        "family": cfg.pe, "rows": cfg.rows, "cols": cfg.cols, "pes": cfg.rows * cfg.cols,
        "int4_macs_per_cycle": macs, "luts": r.luts, "ffs": r.ffs, "dsps": r.dsps, "brams": r.brams,
        "fits": r.fits, "multipliers_in_luts": r.multipliers.get("in_luts", 0), "fmax_mhz": r.fmax_mhz,
        "constraint_mhz": r.constraint_mhz, "critical_path": r.critical_path,
        "luts_per_int4_mac": round(r.luts / macs, 1), "dsps_per_int4_mac": round(r.dsps / macs, 3),
        "peak_gops_per_klut": (round(2 * macs * r.fmax_mhz / r.luts, 3) if r.fmax_mhz else None),
        "peak_gops_per_klut_at_100mhz": round(2 * macs * 100.0 / r.luts, 3),
        "seconds": r.seconds, "report": r.report,
    }
    if generic:
        log(f"{cfg.name}: generic 4-LUT synthesis")
        g = synthesize(cfg, "generic", flow_options(out_dir=out / f"{cfg.name}-generic", unit="array"),
                       status=lambda msg: log(f"{cfg.name}: {msg}"))
        row.update({"generic_luts": g.luts, "generic_ffs": g.ffs, "generic_lut_levels": g.lut_levels,
                    "generic_luts_per_int4_mac": round(g.luts / macs, 1), "generic_seconds": g.seconds})
    return row


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    panels = [("luts", "LUTs (ECP5)"), ("dsps", "MULT18X18D DSP blocks"), ("fmax_mhz", "Fmax (MHz, nextpnr)"),
              ("luts_per_int4_mac", "LUTs per INT4 MAC/cycle")]
    for ax, (key, title) in zip(axes, panels):
        for family, marker in (("parallel", "o-"), ("serial", "s--")):
            pts = [p for p in points if p["family"] == family and p.get(key) is not None]
            ax.plot([p["int4_macs_per_cycle"] for p in pts], [p[key] for p in pts], marker, label=family)
            for p in pts:
                ax.annotate(f"{p['rows']}x{p['cols']}", (p["int4_macs_per_cycle"], p[key]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
        if key == "luts_per_int4_mac":  # the technology-independent count, every multiplier in LUTs
            for family, marker in (("parallel", "o:"), ("serial", "s:")):
                pts = [p for p in points if p["family"] == family and p.get("generic_luts_per_int4_mac")]
                ax.plot([p["int4_macs_per_cycle"] for p in pts], [p["generic_luts_per_int4_mac"] for p in pts],
                        marker, mfc="none", label=f"{family} (generic 4-LUT)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("peak INT4 MACs per cycle")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"systolic array on {TARGET}: bit-parallel NxN vs bit-serial 2Nx2N (same INT4 throughput)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(parallel: tuple[int, ...] = PARALLEL_SIZES, serial: tuple[int, ...] = SERIAL_SIZES,
        pnr_max_pes: int = PNR_MAX_PES, generic: bool = True) -> dict:
    from rich.console import Console

    from host.benchmarks import RESULTS_DIR

    console = Console(stderr=True)
    points = []
    for family, sizes in (("parallel", parallel), ("serial", serial)):
        for n in sizes:
            points.append(point(sweep_config(family, n), n * n <= pnr_max_pes, generic, console.log))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    png = RESULTS_DIR / "synth-sweep.png"
    plot(points, png)
    pairs = []
    for p in (p for p in points if p["family"] == "parallel"):
        twin = next((s for s in points if s["family"] == "serial"
                     and s["int4_macs_per_cycle"] == p["int4_macs_per_cycle"]), None)
        if twin:
            pairs.append({"int4_macs_per_cycle": p["int4_macs_per_cycle"],
                          "parallel": f"{p['rows']}x{p['cols']}", "serial": f"{twin['rows']}x{twin['cols']}",
                          "lut_ratio_serial_to_parallel": round(twin["luts"] / p["luts"], 2),
                          "parallel_dsps": p["dsps"], "serial_dsps": twin["dsps"],
                          "generic_lut_ratio_serial_to_parallel": (
                              round(twin["generic_luts"] / p["generic_luts"], 2) if generic else None)})
    return {"target": TARGET, "unit": "array", "clock_mhz": CLOCK_MHZ, "pnr_max_pes": pnr_max_pes,
            "points": points, "pairs": pairs, "plot": str(png)}
