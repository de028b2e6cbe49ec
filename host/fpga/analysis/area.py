"""Area by unit: the cells of a synthesized netlist grouped by the module they come from.

Yosys flattens the design, so a cell keeps no module of its own, but it is named after the net it
drives, and the nets keep their hierarchical names (``core.store.fifo.r_data``). A cell belongs
to the unit of the first public net on its outputs (``slack.unit_of``: ``core.store.dma``,
``core.matmul.array``, ...); a cell whose outputs have only internal names (``$auto$...``) goes to
the unit of the cell's own name. Each unit's cells are then counted the way the flow counts the
whole design (``count_cells`` with the target family's patterns), so the units add up to the
design's LUTs, flip-flops, DSP blocks and block RAMs.
"""

from __future__ import annotations

from collections import Counter

from host.fpga.analysis.slack import signal_name, unit_of


def count_cells(cells: dict[str, int], patterns: dict[str, int]) -> int:
    """Weighted count of the cell types matching ``patterns`` (type or ``prefix*`` -> weight)."""
    total = 0
    for ctype, n in cells.items():
        for pat, weight in patterns.items():
            if ctype == pat or (pat.endswith("*") and ctype.startswith(pat[:-1])):
                total += n * weight
                break
    return total


def cells_by_unit(design: dict, top: str, depth: int = 3) -> dict[str, Counter]:
    """Cell type counts per unit of the netlist's ``top`` module."""
    module = design["modules"][top]
    names: dict[int, str] = {}  # net bit -> a name for it, public names first
    for name, net in module["netnames"].items():
        for bit in net["bits"]:
            if isinstance(bit, int) and (bit not in names or (names[bit].startswith("$") and not name.startswith("$"))):
                names[bit] = name
    units: dict[str, Counter] = {}
    for cell_name, cell in module["cells"].items():
        name = None
        for port, direction in cell.get("port_directions", {}).items():
            if direction == "output":
                name = next((names[b] for b in cell["connections"].get(port, []) if isinstance(b, int)
                             and b in names and not names[b].startswith("$")), None)
                if name:
                    break
        unit = unit_of(signal_name(name or cell_name), depth)
        units.setdefault(unit, Counter())[cell["type"]] += 1
    return units


def area_by_unit(design: dict, top: str, resources: dict[str, dict[str, int]], depth: int = 3) -> list[dict]:
    """One row per unit: ``unit`` and a count per resource (``luts``, ``ffs``, ...; ``resources``
    maps each to its cell patterns), most LUTs first."""
    rows = []
    for unit, cells in cells_by_unit(design, top, depth).items():
        row = {"unit": unit, **{res: count_cells(cells, pats) for res, pats in resources.items()}}
        if any(v for k, v in row.items() if k != "unit"):
            rows.append(row)
    return sorted(rows, key=lambda r: (-r.get("luts", 0), -r.get("ffs", 0), r["unit"]))
