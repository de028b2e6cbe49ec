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

import json
import re
from dataclasses import dataclass
from pathlib import Path

PE_NAME = re.compile(r"(?:^|\.)pe_(\d+)_(\d+)\.")


@dataclass(frozen=True)
class DspSites:
    """A device's DSP sites: ``rows`` (tile Y), ``columns`` (tile X of each site along a row)
    and ``bels`` (the site names, repeating along the row: the k-th site is ``bels[k % len]``)."""

    cell: str  # the DSP cell type the sites hold (MULT18X18D)
    rows: tuple[int, ...]
    columns: tuple[int, ...]
    bels: tuple[str, ...]

    @classmethod
    def from_toml(cls, raw: dict, where: str) -> DspSites:
        try:
            sites = cls(cell=str(raw["cell"]), rows=tuple(int(r) for r in raw["rows"]),
                        columns=tuple(int(c) for c in raw["columns"]), bels=tuple(str(b) for b in raw["bels"]))
        except (KeyError, TypeError, ValueError) as e:
            raise KeyError(f"{where}: [dsp_sites] needs cell, rows, columns and bels ({e})") from None
        if not (sites.rows and sites.columns and sites.bels):
            raise KeyError(f"{where}: [dsp_sites] rows, columns and bels must not be empty")
        return sites

    def __len__(self) -> int:
        return len(self.rows) * len(self.columns)

    def path(self) -> list[str]:
        """Every site once, row after row, alternating direction (nextpnr BEL names)."""
        out = []
        for n, y in enumerate(self.rows):
            ks = range(len(self.columns))
            for k in (reversed(ks) if n % 2 else ks):
                out.append(f"X{self.columns[k]}/Y{y}/{self.bels[k % len(self.bels)]}")
        return out


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


def apply_floorplan(netlist: Path, top: str, sites: DspSites, enabled: bool = True) -> dict:
    """Fix the PEs' DSP cells of the synthesized ``netlist`` (Yosys JSON) to their sites, in
    place, or with ``enabled`` False free every DSP cell of such a fix again. Returns what the
    report records: how many PE DSP blocks were fixed, and the first and last site."""
    design = json.loads(netlist.read_text())
    cells = design["modules"][top]["cells"]
    names = [name for name, cell in cells.items() if cell["type"] == sites.cell]
    placement = plan(names, sites) if enabled else {}
    for name in names:
        cells[name]["attributes"].pop("BEL", None)
    for name, site in placement.items():
        cells[name]["attributes"]["BEL"] = site
    netlist.write_text(json.dumps(design))
    ordered = list(placement.values())
    return {"pe_dsps": len(placement), "dsps": len(names), "sites": len(sites),
            "first": ordered[0] if ordered else None, "last": ordered[-1] if ordered else None}
