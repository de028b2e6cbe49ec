"""DSP floorplan: the systolic array's DSP blocks laid on the device's DSP sites in array order.

An ECP5's MULT18X18D sites stand in a few rows that cross the whole chip (three rows of 52 on
the 85F, 24 tiles apart; one row of 28 on the 25F). Left to itself, the placer spreads the PEs'
DSP blocks over those rows in no particular order, so the neighbours of the systolic mesh end up
far apart and the mesh's nets cross the chip (docs/fpga.md, "DSP floorplan").

The floorplan fixes each PE's DSP block to a site (nextpnr's ``BEL`` attribute, set in the
synthesized netlist): the PEs that have one, column by column of the array and down each column,
along a path that runs through the DSP rows in turn, left to right and then right to left
(a snake). A PE's partial sum, the widest of its connections, then goes to the next site; its
activation (8 bits and the bank bit) to the same row of the next column, one column's run of
sites further. The other multipliers' DSP blocks (requantization, address arithmetic) are left
to the placer on the sites the path does not use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from host.fpga.wrapper import WRAPPER_TOP

if TYPE_CHECKING:
    from host.fpga.options import FlowOptions
    from host.fpga.targets import DspSites, Target

PE_NAME = re.compile(r"(?:^|\.)pe_(\d+)_(\d+)\.")


def pe_position(cell_name: str) -> tuple[int, int] | None:
    """(row, column) of the PE a cell belongs to, from its hierarchical name."""
    m = PE_NAME.search(cell_name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def plan(cell_names: list[str], sites: DspSites) -> dict[str, str]:
    """The site of each PE DSP cell among ``cell_names``: column-major array order along the
    snake path. A PE with several DSP cells (a multiplier wider than one block) keeps them
    together, in name order."""
    pe_cells = sorted((pos[1], pos[0], name) for name in cell_names if (pos := pe_position(name)))
    path = sites.path()
    if len(pe_cells) > len(path):
        raise ValueError(f"{len(pe_cells)} PE DSP blocks for {len(path)} {sites.cell} sites")
    return {name: site for (_, _, name), site in zip(pe_cells, path)}


def fix_pe_dsps(design: dict, top: str, sites: DspSites) -> dict:
    """Fix the PEs' DSP cells of ``design`` (Yosys JSON) to their sites, in place (nextpnr's
    ``BEL`` attribute; any earlier one on a DSP cell is dropped). Returns what the report records:
    how many PE DSP blocks were fixed, and the first and last site."""
    cells = design["modules"][top]["cells"]
    names = [name for name, cell in cells.items() if cell["type"] == sites.cell]
    placement = plan(names, sites)
    for name in names:
        cells[name]["attributes"].pop("BEL", None)
    for name, site in placement.items():
        cells[name]["attributes"]["BEL"] = site
    ordered = list(placement.values())
    return {"pe_dsps": len(placement), "dsps": len(names), "sites": len(sites),
            "first": ordered[0] if ordered else None, "last": ordered[-1] if ordered else None}


class FloorplanPass:
    """The netlist pass (host/fpga/passes): on targets that list their DSP sites, unless turned off."""

    name = "floorplan"

    def enabled(self, target: Target, options: FlowOptions) -> bool:
        return options.floorplan and target.dsp_sites is not None

    def apply(self, design: dict, target: Target, options: FlowOptions) -> dict:
        return fix_pe_dsps(design, WRAPPER_TOP, target.dsp_sites)

    def describe(self, report: dict) -> str:
        return f"DSP floorplan: {report['pe_dsps']} PE DSP blocks fixed to sites, {report['first']} to {report['last']}"
