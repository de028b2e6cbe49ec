"""Where tables are printed: a terminal gets rich's tables at its width; a pipe, a file or a CI
log gets them whole, never wrapped into unreadable cells at rich's default 80 columns."""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 10_000  # wide enough for any table row: a table is as wide as its content, not the console


def table_console(stderr: bool = False) -> Console:
    """A console for tables on standard output (or ``stderr``)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=PIPE_WIDTH)
