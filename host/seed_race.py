"""Placement seeds raced: one tool run per seed, ``jobs`` of them at a time, the first to finish kept.

Whether nextpnr's router converges on a full device depends on the placement, and so on the seed
(docs/fpga.md, Seeds). ``race`` starts a run for each seed in turn, each in its own folder, at most
``jobs`` at once; it reads each run's log every few seconds and stops a run its ``watch`` objects
to (a diverging router), starting the next seed in its place. The first run to exit ends the race:
the others are stopped. With ``jobs = 1`` the seeds run one after another.
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

WATCH_SECONDS = 5.0  # how often each running tool's log is read


class RaceError(Exception):
    """A run ran out of time (``seed``, ``log``), or every seed was given up (``seed`` None); the
    seeds given up or stopped so far in ``given_up``."""

    def __init__(self, message: str, seed: int | None = None, log: Path | None = None,
                 given_up: list[dict] | None = None):
        super().__init__(message)
        self.seed, self.log, self.given_up = seed, log, given_up or []


@dataclass
class Finish:
    """How a race ended: the seed whose run exited, its exit status and folder, the seeds given up
    or stopped (``{"seed", "why"}`` in seed order), and the race's wall-clock seconds."""

    seed: int
    code: int
    folder: Path
    given_up: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Run:
    seed: int
    folder: Path
    proc: subprocess.Popen
    log_file: object
    started: float

    @property
    def log(self) -> Path:
        return Path(self.log_file.name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


def race(seeds: Sequence[int], jobs: int, command: Callable[[int, Path], list[str]],
         folder: Callable[[int], Path], log: str, watch: Callable[[str], str | None] | None = None,
         time_limit: float | None = None, say: Callable[[str], None] = lambda _msg: None) -> Finish:
    """Run ``command(seed, folder(seed))`` in ``folder(seed)`` for each seed, ``jobs`` at a time, its
    output in ``folder(seed)/log``; the first run to exit wins (Finish; its exit status may be any).
    A run that ``watch`` objects to (given its log so far) is stopped and the next seed started; a
    run longer than ``time_limit`` seconds stops the race (RaceError with its seed and log), and so
    does the last seed given up (RaceError, seed None)."""
    if jobs < 1:
        raise ValueError(f"jobs = {jobs}: at least one run at a time")
    if not seeds:
        raise ValueError("no seed to run")
    t0 = time.perf_counter()
    pending, running, given_up = deque(seeds), [], []

    def start(seed: int) -> _Run:
        where = folder(seed)
        where.mkdir(parents=True, exist_ok=True)
        args = command(seed, where)
        out = open(where / log, "w")
        try:
            proc = subprocess.Popen(args, cwd=where, stdout=out, stderr=subprocess.STDOUT)
        except BaseException:
            out.close()
            raise
        return _Run(seed, where, proc, out, time.perf_counter())

    def stopped(runs: list[_Run], why: str) -> list[dict]:
        for r in runs:
            r.stop()
        return [{"seed": r.seed, "why": why} for r in runs]

    try:
        while pending or running:
            while pending and len(running) < jobs:
                running.append(start(pending.popleft()))
            try:
                running[0].proc.wait(timeout=WATCH_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            for run in list(running):
                code = run.proc.poll()
                if code is not None:
                    running.remove(run)
                    run.stop()
                    others = stopped(running, f"stopped: seed {run.seed} finished first")
                    running.clear()
                    given_up = sorted(given_up + others, key=lambda d: d["seed"])
                    return Finish(run.seed, code, run.folder, given_up, time.perf_counter() - t0)
                if time_limit is not None and time.perf_counter() - run.started > time_limit:
                    others = stopped([r for r in running if r is not run], "stopped: the time limit")
                    running.clear()
                    run.stop()
                    raise RaceError(f"{Path(run.proc.args[0]).name} (seed {run.seed}) stopped after the time "
                                    f"limit of {time_limit:g} s", run.seed, run.log,
                                    sorted(given_up + others, key=lambda d: d["seed"]))
                why = watch(run.log.read_text(errors="replace")) if watch else None
                if why:
                    running.remove(run)
                    run.stop()
                    given_up.append({"seed": run.seed, "why": why})
                    say(f"seed {run.seed}: {why}" + (f"; placing with seed {pending[0]}" if pending else ""))
        given_up.sort(key=lambda d: d["seed"])
        raise RaceError(f"no run finished with seeds {', '.join(str(s) for s in seeds)}: "
                        + "; ".join(f"seed {d['seed']}: {d['why']}" for d in given_up), given_up=given_up)
    finally:
        for run in running:
            run.stop()
