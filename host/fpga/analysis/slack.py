"""Slack of every timing endpoint of a routed design, grouped by shape.

nextpnr names one critical path per clock. With ``--detailed-timing-report`` its JSON report
also lists every timing endpoint (a flip-flop's data, clock-enable or reset input, a block
RAM's or registered DSP block's input, a distributed RAM's write port) with the latest arrival
time at it, from the launching clock edge through the whole path, and the cell driving its last
net. That is the slack of every endpoint against the clock period, where nextpnr's log shows
only a histogram.

The endpoints are then grouped like ``depth``'s paths: endpoints whose register names, and
the names of the cells driving them, differ only in their indices are one group (the 256
PEs' products, the 512 bits of a FIFO register behind one enable), so that the thousands of
endpoints short of the clock read as a few dozen structures, each with its worst slack and how
many of its endpoints fail.

Names: Yosys names a cell after the net it drives (``core.store.fifo.r_data_TRELLIS_FF_Q_307``
drives ``core.store.fifo.r_data``), the fanout step's copies end in ``$dupN``, and nextpnr names
the parts of a distributed RAM after it (``mem.0.0$DPRAM_COMB3``); ``signal_name`` undoes all three.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from host.fpga.analysis.depth import shape

ASYNC = "<async>"
_PRIMITIVE = re.compile(r"_(TRELLIS_FF|TRELLIS_DPR16X4|LUT4|PFUMX|L6MUX21|CCU2C|MULT18X18D|DP16KD|ALU54B|DCCA"
                        r"|SB_DFF[A-Z]*|SB_LUT4|SB_CARRY|SB_RAM40_4K|SB_MAC16|SB_SPRAM256KA)_")


def signal_name(cell: str) -> str:
    """The signal a cell drives, from its name: ``core.ctrl.d1_span_TRELLIS_FF_Q_12`` ->
    ``core.ctrl.d1_span``; ``x_LUT4_D$dup3`` -> ``x``; ``mem.0.0$DPRAM_COMB3`` -> ``mem.0.0``."""
    name = cell.split("$", 1)[0] or cell
    m = _PRIMITIVE.search(name)
    name = name[:m.start()] if m else name
    return re.sub(r"\[\d+\]$", "", name)


def unit_of(name: str, depth: int = 3) -> str:
    """The module a signal belongs to: its first ``depth`` dotted components, the signal's
    own name left off (``core.store.fifo.r_data`` -> ``core.store.fifo``)."""
    parts = name.split(".")
    return ".".join(parts[:min(depth, len(parts) - 1)]) or name


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: the signal it captures, its port, the signal driving its last net (the
    register itself on a register-to-register path), the latest arrival and the slack (ns)."""

    end: str
    port: str
    via: str
    arrival_ns: float
    slack_ns: float


@dataclass
class SlackGroup:
    """Endpoints of one shape (end and via names equal but for their indices)."""

    end: str  # the worst endpoint's signal
    via: str  # what drives it
    worst_slack_ns: float
    failing: int = 0  # endpoints of this shape with negative slack
    endpoints: int = 0  # endpoints of this shape in all
    ports: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {"end": self.end, "via": self.via, "worst_slack_ns": round(self.worst_slack_ns, 3),
                "failing": self.failing, "endpoints": self.endpoints, "ports": sorted(self.ports)}


def endpoint_slacks(report: dict, period_ns: float) -> list[Endpoint]:
    """Every endpoint clocked from a clock (not from a pin), with its latest arrival and its
    slack against ``period_ns``, worst first. ``report`` is nextpnr's JSON report written with
    ``--detailed-timing-report``."""
    nets = report.get("detailed_net_timings")
    if nets is None:
        raise ValueError("nextpnr report has no detailed_net_timings (nextpnr was run without "
                         "--detailed-timing-report)")
    latest: dict[tuple[str, str], tuple[float, str]] = {}
    for net in nets:
        if net.get("event") == ASYNC:  # launched from a pin: not a register-to-register path
            continue
        via = signal_name(net["driver"])
        for ep in net["endpoints"]:
            if ep.get("event") == ASYNC:
                continue
            pin = (ep["cell"], ep["port"])
            late = float(ep["delay"][1])
            if pin not in latest or late > latest[pin][0]:
                latest[pin] = (late, via)
    out = [Endpoint(end=signal_name(cell), port=port, via=via, arrival_ns=late, slack_ns=period_ns - late)
           for (cell, port), (late, via) in latest.items()]
    out.sort(key=lambda e: (e.slack_ns, e.end, e.port))
    return out


def failing_groups(endpoints: list[Endpoint], count: int = 30) -> list[SlackGroup]:
    """The endpoints grouped by shape of (end, via), only groups with a failing endpoint, worst
    slack first; ``count`` groups at most."""
    groups: dict[tuple[str, str], SlackGroup] = {}
    for e in sorted(endpoints, key=lambda e: e.slack_ns):  # a group's first endpoint is its worst
        key = (shape(e.end), shape(e.via))
        g = groups.get(key)
        if g is None:
            g = groups[key] = SlackGroup(end=e.end, via=e.via, worst_slack_ns=e.slack_ns)
        g.endpoints += 1
        g.failing += e.slack_ns < 0
        g.ports.add(e.port)
    ranked = sorted((g for g in groups.values() if g.failing), key=lambda g: g.worst_slack_ns)
    return ranked[:count]


def failing_by_unit(endpoints: list[Endpoint], depth: int = 3) -> dict[str, int]:
    """Failing endpoints per module (``unit_of`` their signal), most first."""
    counts = Counter(unit_of(e.end, depth) for e in endpoints if e.slack_ns < 0)
    return dict(counts.most_common())


def summary(endpoints: list[Endpoint], count: int = 30) -> dict:
    """What the flow reports: how many endpoints, how many fail, the worst and the total
    negative slack, failing endpoints per module, and the worst groups."""
    failing = [e for e in endpoints if e.slack_ns < 0]
    return {"endpoints": len(endpoints), "failing": len(failing),
            "worst_slack_ns": round(min(e.slack_ns for e in endpoints), 3) if endpoints else None,
            "total_negative_slack_ns": round(sum(e.slack_ns for e in failing), 1),
            "by_unit": failing_by_unit(endpoints),
            "groups": [g.as_dict() for g in failing_groups(endpoints, count)]}


def slack_summary_file(report_path: str | Path, period_ns: float, count: int = 30) -> dict:
    return summary(endpoint_slacks(json.loads(Path(report_path).read_text()), period_ns), count)
