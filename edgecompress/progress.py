"""Progress of long work: the `Progress` callback type every stage takes, and how the CLI shows it.

A stage calls `progress(stage, done, total)`. On a terminal the CLI draws one bar per stage; in a log file it
prints plain lines, at least one a minute (a heartbeat covers single steps that run long).
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable

Progress = Callable[[str, int, int], None]

PROGRESS_INTERVAL_S = 30.0


@contextlib.contextmanager
def progress_reporter():
    """A callback `(stage, done, total)` drawing one rich progress bar per stage on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file: plain lines, at least one a minute, instead of bars at exit
        with PlainProgress(console) as report:
            yield report
        return
    bars = Bars(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)
    tasks: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield report


class PlainProgress:
    """Progress as plain lines: one per finished stage, and a line with an estimate of the time left whenever
    `interval_s` passed without one (a heartbeat thread covers steps that take longer than that)."""

    def __init__(self, console, interval_s: float = PROGRESS_INTERVAL_S):
        self.console, self.interval_s = console, interval_s
        self.started: dict[str, float] = {}
        self.current: tuple[str, int, int] | None = None
        self.last_line = time.perf_counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            self.started.setdefault(stage, time.perf_counter())
            self.current = (stage, done, total)
            if done >= total:
                self._say(f"  {stage}: {done}/{total} in {time.perf_counter() - self.started.pop(stage):.1f} s")
                self.current = None
            elif time.perf_counter() - self.last_line >= self.interval_s:
                self._say(self._status())

    def _status(self) -> str:
        stage, done, total = self.current
        elapsed_s = time.perf_counter() - self.started[stage]
        left = f", about {elapsed_s / done * (total - done):.0f} s left" if done else ""
        return f"  {stage}: {done}/{total} after {elapsed_s:.0f} s{left}"

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False)
        self.last_line = time.perf_counter()

    def _heartbeat(self) -> None:
        while not self.stop.wait(self.interval_s / 4):
            with self.lock:
                if self.current and time.perf_counter() - self.last_line >= self.interval_s:
                    self._say(self._status())

    def __enter__(self):
        threading.Thread(target=self._heartbeat, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()


@contextlib.contextmanager
def one_step(progress: Progress | None, stage: str):
    """A stage of one step (a conversion, a run on a target): reported when it starts and when it ends, so a
    heartbeat covers it while it runs."""
    if progress:
        progress(stage, 0, 1)
    yield
    if progress:
        progress(stage, 1, 1)
