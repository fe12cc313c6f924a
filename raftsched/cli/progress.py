"""Progress of long operations a person waits for (`snapshot save`, `snapshot restore`, `make bench`,
`make chaos`), drawn with rich on stderr.

Only on a terminal: piped or captured output (scripts, CI, the tests) gets no progress lines at
all, so stdout stays what the command prints (JSON included) and logs stay plain. A daemon (a node
catching up by snapshot) logs its progress instead (raftsched.transport.snapshots).

    transfer(description)          bytes so far, rate and elapsed time; the callback takes a byte count
    steps(description)             a spinner naming the current step; the callback takes the step's name
    timed(description, seconds)    a bar over a fixed duration; update(elapsed, status) redraws it
    phases(description, names)     a bar over named phases; the callback starts the next one
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def _progress(*columns: ProgressColumn, console: Console | None = None) -> Progress:
    console = console or Console(stderr=True)
    return Progress(*columns, console=console, transient=False, disable=not console.is_terminal)


@contextmanager
def transfer(description: str, *, console: Console | None = None) -> Iterator[Callable[[int], None]]:
    with _progress(SpinnerColumn(), TextColumn("{task.description}"), DownloadColumn(), TransferSpeedColumn(),
                   TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done: progress.update(task, completed=done)


@contextmanager
def steps(description: str, *, console: Console | None = None) -> Iterator[Callable[[str], None]]:
    with _progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                   console=console) as progress:
        task = progress.add_task(description, total=None)
        yield lambda step: progress.update(task, description=f"{description}: {step}")


class Timed:
    def __init__(self, progress: Progress, task: TaskID, description: str) -> None:
        self._progress, self._task, self._description = progress, task, description

    def update(self, elapsed: float, status: str = "") -> None:
        text = f"{self._description} ({status})" if status else self._description
        self._progress.update(self._task, completed=elapsed, description=text)


@contextmanager
def timed(description: str, seconds: float, *, console: Console | None = None) -> Iterator[Timed]:
    with _progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("of"),
                   TextColumn(f"{seconds:.0f} s"), TimeRemainingColumn(), console=console) as progress:
        yield Timed(progress, progress.add_task(description, total=seconds), description)


@contextmanager
def phases(description: str, names: Sequence[str], *, console: Console | None = None
           ) -> Iterator[Callable[[str], None]]:
    with _progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console) as progress:
        task = progress.add_task(description, total=len(names))
        started = 0

        def begin(name: str) -> None:
            nonlocal started
            progress.update(task, completed=started, description=f"{description}: {name}")
            started += 1

        yield begin
        progress.update(task, completed=started, description=f"{description}: done")
