"""Placement seeds raced: one tool run per seed, ``jobs`` of them at a time, the lowest seed that
finishes kept.

Whether nextpnr's router converges on a full device depends on the placement, and so on the seed
(docs/fpga.md, Seeds). ``race`` starts a run for each seed in turn, each in its own folder, at most
``jobs`` at once, a later one only once the runs going have had ``STAGGER_SECONDS`` to themselves
(so that a small design, done in seconds, costs one run). It reads each run's log every few
seconds and stops a run its ``watch`` objects to (a diverging router), starting the next seed in
its place. The race is decided when the lowest seed not given up has finished: that run is kept,
whatever finished or still runs above it is not. So the seed kept is the one running the seeds one
after another would keep; more jobs only get there sooner.
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

WATCH_SECONDS = 5.0  # how often each running tool's log is read
STAGGER_SECONDS = 60.0  # a run starts beside others only once the last one started has run this long


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
         time_limit: float | None = None, say: Callable[[str], None] = lambda _msg: None,
         progress: Callable[[str], str] | None = None) -> Finish:
    """Run ``command(seed, folder(seed))`` in ``folder(seed)`` for the seeds in order, ``jobs`` at a
    time, each one's output in ``folder(seed)/log``. A run that ``watch`` objects to (given its log
    so far) is stopped and the next seed started. The race ends when the lowest seed not given up
    has exited (Finish; its exit status may be any), the runs of higher seeds stopped or left; a
    run longer than ``time_limit`` seconds stops the race (RaceError with its seed and log), and so
    does the last seed given up (RaceError, seed None). With ``progress`` (a run's log so far to a
    few words), ``say`` hears where every running seed stands at each look."""
    if jobs < 1:
        raise ValueError(f"jobs = {jobs}: at least one run at a time")
    if not seeds:
        raise ValueError("no seed to run")
    t0 = time.perf_counter()
    pending, running, given_up = deque(seeds), [], []
    finished: dict[int, tuple[int, Path]] = {}  # seed -> (exit status, folder)

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

    def decided() -> int | None:
        """The lowest seed not given up, once it has finished."""
        out = {d["seed"] for d in given_up}
        lowest = next((seed for seed in seeds if seed not in out), None)
        return lowest if lowest in finished else None

    def sort(entries: list[dict]) -> list[dict]:
        return sorted(entries, key=lambda d: d["seed"])

    try:
        while pending or running:
            # a seed above one that has finished cannot be kept: none is started then
            if pending and len(running) < jobs and not finished and (
                    not running or time.perf_counter() - running[-1].started >= STAGGER_SECONDS):
                running.append(start(pending.popleft()))
            try:
                running[0].proc.wait(timeout=WATCH_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            stands = []  # where each running seed is, for `progress`
            for run in list(running):
                code = run.proc.poll()
                if code is not None:
                    running.remove(run)
                    run.stop()
                    finished[run.seed] = (code, run.folder)
                    continue
                if time_limit is not None and time.perf_counter() - run.started > time_limit:
                    others = [{"seed": r.seed, "why": "stopped: the time limit"} for r in running if r is not run]
                    raise RaceError(f"{Path(run.proc.args[0]).name} (seed {run.seed}) stopped after the time "
                                    f"limit of {time_limit:g} s", run.seed, run.log, sort(given_up + others))
                text = run.log.read_text(errors="replace") if watch or progress else ""
                why = watch(text) if watch else None
                if why:
                    running.remove(run)
                    run.stop()
                    given_up.append({"seed": run.seed, "why": why})
                    say(f"seed {run.seed}: {why}" + (f"; placing with seed {pending[0]}" if pending else ""))
                elif progress:
                    stands.append(f"seed {run.seed}: {progress(text)}")
            if stands:
                say("; ".join(stands))
            kept = decided()
            if kept is not None:  # the runs above it are stopped on the way out
                others = [{"seed": r.seed, "why": f"stopped: seed {kept} finished"} for r in running]
                others += [{"seed": s, "why": f"finished too; seed {kept}, the lowest, kept"}
                           for s in finished if s != kept]
                code, where = finished[kept]
                return Finish(kept, code, where, sort(given_up + others), time.perf_counter() - t0)
        raise RaceError(f"no run finished with seeds {', '.join(str(s) for s in seeds)}: "
                        + "; ".join(f"seed {d['seed']}: {d['why']}" for d in sort(given_up)),
                        given_up=sort(given_up))
    finally:  # whatever still runs when the race ends, however it ends
        for run in running:
            run.stop()
