"""DRAM planning by liveness: where each activation tensor lives, reusing the space of tensors
that are dead.

A compiled model runs in stages (one per op, in graph order). An activation tensor is *live*
from the stage that writes it to the last stage that reads it (both included); two tensors whose
lifetimes overlap must not share a byte, two that do not may. Placing them is the offline
dynamic-storage-allocation problem (NP-hard in general); ``plan`` uses the greedy-by-size
heuristic of TFLite's ``GreedyMemoryPlanner`` and TVM's memory planner (Pisarchyk and Lee,
"Efficient Memory Management for Deep Neural Net Inference", 2020):

1. sort the tensors by size, largest first (ties: earlier first stage, then name);
2. place each at the best-fitting gap, i.e. the smallest free gap that holds it (lowest address
   on a tie), among the tensors already placed whose lifetimes overlap its own, or above all of
   them when no gap is large enough.

The result is deterministic and never below ``live_peak``, the largest total size of the tensors
live at one stage (a lower bound for any placement); ``arena`` is the space it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    """One tensor to place: ``size`` bytes live from stage ``first`` through stage ``last``."""

    name: str
    size: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.size < 0 or self.first > self.last:
            raise ValueError(f"{self.name}: size {self.size} live {self.first}..{self.last} is not a buffer")

    def overlaps(self, other: Buffer) -> bool:
        """Both live at some stage."""
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    """Offsets (from the arena's start) of every buffer, and the space they take."""

    offsets: dict[str, int]
    arena: int  # bytes from the arena's start to the end of the highest buffer
    live_peak: int  # the most bytes live at one stage (a lower bound for ``arena``)
    total: int  # every buffer's size, summed (what one buffer each for the whole program takes)


ALIGN = 64  # bytes: where every DRAM buffer of a program starts (tensors, weights, parameters, text)


def align(x: int, to: int = ALIGN) -> int:
    """x rounded up to a multiple of ``to``."""
    return -(-x // to) * to


def live_peak(buffers: Iterable[Buffer]) -> int:
    """The largest sum of sizes of the buffers live at one stage."""
    events: dict[int, int] = {}
    for b in buffers:
        events[b.first] = events.get(b.first, 0) + b.size
        events[b.last + 1] = events.get(b.last + 1, 0) - b.size
    peak = level = 0
    for stage in sorted(events):
        level += events[stage]
        peak = max(peak, level)
    return peak


def plan(buffers: Iterable[Buffer], alignment: int = 1) -> MemoryPlan:
    """Offsets for ``buffers`` (each size rounded up to ``alignment``, every offset a multiple of it)
    such that no two buffers whose lifetimes overlap overlap in memory (module docstring)."""
    bufs = [Buffer(b.name, align(max(b.size, 1), alignment), b.first, b.last) for b in buffers]
    names = [b.name for b in bufs]
    if len(set(names)) != len(names):
        raise ValueError("buffer names must be unique")
    placed: list[tuple[int, Buffer]] = []
    offsets: dict[str, int] = {}
    for b in sorted(bufs, key=lambda b: (-b.size, b.first, b.name)):
        busy = sorted((off, off + p.size) for off, p in placed if p.overlaps(b))
        best: tuple[int, int] | None = None  # (gap size, offset)
        top = 0
        for lo, hi in busy:
            if lo - top >= b.size and (best is None or lo - top < best[0]):
                best = (lo - top, top)
            top = max(top, hi)
        offset = best[1] if best else top
        offsets[b.name] = offset
        placed.append((offset, b))
    arena = max((off + b.size for off, b in placed), default=0)
    return MemoryPlan({n: offsets[n] for n in names}, arena, live_peak(bufs), sum(b.size for b in bufs))


def check(plan_: MemoryPlan, buffers: Iterable[Buffer]) -> None:
    """Raise if two buffers live at once share a byte (an independent check of a plan)."""
    bufs = sorted(buffers, key=lambda b: plan_.offsets[b.name])
    for i, a in enumerate(bufs):
        a_end = plan_.offsets[a.name] + a.size
        for b in bufs[i + 1 :]:
            if plan_.offsets[b.name] >= a_end:
                break
            if a.overlaps(b) and a.size and b.size:
                raise AssertionError(f"{a.name} and {b.name} are live at once and overlap in memory")
