"""Showing a running job: a live bar on a terminal, a plain line per change anywhere else."""

from __future__ import annotations

import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def describe_progress(progress: dict[str, Any]) -> str:
    total = progress.get("databases_total")
    text = f"{progress['databases_done']}/{'?' if total is None else total} databases"
    if progress.get("databases_errored"):
        text += f" ({progress['databases_errored']} errored)"
    return text + f", {progress['rows_so_far']:,} rows"


class JobDisplay(Protocol):
    def update(self, progress: dict[str, Any] | None) -> None: ...

    def close(self) -> None: ...


class _RateColumn(ProgressColumn):
    """Databases per second, from rich's moving estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f} db/s", style="progress.data.speed")


class _ErroredColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        errored = task.fields.get("errored", 0)
        return Text(f"{errored} errored" if errored else "", style="red")


class TerminalDisplay:
    """A rich progress bar: databases done/total, rate, ETA, rows so far."""

    def __init__(self, console: Console, job_id: str) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn(f"job {job_id[:8]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("databases"),
            _ErroredColumn(),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rows]} rows"),
            console=console,
        )
        self._task = self._progress.add_task("query", total=None, rows="0", errored=0)
        self._progress.start()

    def update(self, progress: dict[str, Any] | None) -> None:
        if progress is None:
            return
        self._progress.update(self._task, total=progress.get("databases_total"),
                              completed=progress["databases_done"], errored=progress["databases_errored"],
                              rows=f"{progress['rows_so_far']:,}")

    def close(self) -> None:
        self._progress.stop()


class PlainDisplay:
    """No terminal (a pipe, a file, CI): one plain line whenever the progress changed, nothing else."""

    def __init__(self, console: Console, job_id: str) -> None:
        self._console = console
        self._job_id = job_id
        self._started = time.monotonic()
        self._last: dict[str, Any] | None = None

    def update(self, progress: dict[str, Any] | None) -> None:
        if progress is None or progress == self._last:
            return
        self._last = progress
        elapsed = time.monotonic() - self._started
        self._console.print(f"job {self._job_id}: {describe_progress(progress)} after {elapsed:.0f} s",
                            highlight=False, markup=False)

    def close(self) -> None:
        pass


def display_for(console: Console, job_id: str) -> JobDisplay:
    return TerminalDisplay(console, job_id) if console.is_terminal else PlainDisplay(console, job_id)
