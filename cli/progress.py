"""Progress for long operator commands (rich), on stderr so that what a command prints stays clean.

``working(label)``: a spinner with the time elapsed, for a step whose size is not known in advance (an
indicator rebuild, a province report). ``counting(label, total)``: a bar with done/total, elapsed and time
left (a replay of the feed). Both disappear when the step ends; on a non-terminal they print nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr = Console(stderr=True)


@contextmanager
def working(label: str) -> Iterator[None]:
    columns = (SpinnerColumn(), TextColumn(label), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as p:
        p.add_task(label, total=None)
        yield


@contextmanager
def counting(label: str, total: int | None) -> Iterator[tuple[Progress, TaskID]]:
    columns = (SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("còn / left"), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as p:
        yield p, p.add_task(label, total=total)
