"""Progress of a long step: a bar on a terminal, a log line every few seconds otherwise, nothing with --quiet."""

from __future__ import annotations

import contextvars
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn

# In logs, a line this often: often enough to see a run move, rarely enough not to flood Prefect's database.
LOG_EVERY_S = 5.0
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Tally:
    """Where a step stands: `done` of `total` units (bytes or rows), `items` made, `seconds` taken."""

    done: int
    total: int
    items: int
    seconds: float

    def rate(self) -> float:
        """Items per second so far (0 before any time has passed)."""
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def seconds_left(self) -> float | None:
        """Time left at the pace so far; None before anything is done."""
        if self.done <= 0 or self.seconds <= 0:
            return None
        return self.seconds * max(self.total - self.done, 0) / self.done


def duration_text(seconds: float | None) -> str:
    """`seconds` as a person reads a wait: "about 1 min 40 s", "about 8 s", "unknown"."""
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"about {minutes} min {rest} s" if minutes else f"about {rest} s"


def amount_text(value: int, unit: str) -> str:
    """A count of `unit`s, bytes in MB."""
    return f"{value / MB:,.0f} MB" if unit == "bytes" else f"{value:,} {unit}"


def progress_line(what: str, tally: Tally, unit: str, items_name: str) -> str:
    """One line of progress: share done, amount, items and their rate, time left.

    ``parsing: 31% (412 MB of 1,330 MB), 310,000 papers at 5,900 papers/s, about 1 min 40 s left``
    """
    share = min(tally.done / tally.total, 1.0) if tally.total > 0 else 1.0
    return (
        f"{what}: {share:.0%} ({amount_text(tally.done, unit)} of {amount_text(tally.total, unit)}), "
        f"{tally.items:,} {items_name} at {tally.rate():,.0f} {items_name}/s, "
        f"{duration_text(tally.seconds_left())} left"
    )


class _Display:
    """The one bar display of this process, shared by the steps that run at once (Prefect's
    thread pool may run several staging tasks): rich allows one live display at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._progress: Progress | None = None

    @contextmanager
    def task(self, what: str, total: int) -> Iterator[tuple[Progress, TaskID]]:
        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[items]}"), TimeRemainingColumn(),
                    console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False,
                )  # fmt: skip
                self._progress.start()
            self._users += 1
            progress = self._progress
            task_id = progress.add_task(what, total=total, items="")
        try:
            yield progress, task_id
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    progress.stop()
                    self._progress = None


_DISPLAY = _Display()


class Meter:
    """Counts a step's progress from any thread and shows it: `show` receives a `Tally` at the
    first advance `every_s` seconds after the start or the last one shown (every advance for a
    bar). A step shorter than that shows nothing; its end is logged by the step itself."""

    def __init__(
        self, total: int, show: Callable[[Tally], None], every_s: float, clock: Callable[[], float]
    ) -> None:  # fmt: skip
        self.total, self._show, self._every_s, self._clock = total, show, every_s, clock
        self._lock = threading.Lock()
        self._started = self._shown_at = clock()
        self.done = self.items = 0

    def advance(self, done: int, items: int) -> None:
        """`done` more units and `items` more items are finished."""
        with self._lock:
            self.done += done
            self.items += items
            now = self._clock()
            if now - self._shown_at < self._every_s:
                return
            self._shown_at = now
            tally = Tally(self.done, self.total, self.items, now - self._started)
        self._show(tally)


def _logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow (a test of the task's function)
        return logging.getLogger("pipeline")


def on_terminal() -> bool:
    """True when progress goes to a person's terminal: stderr is a TTY and this is the run's own
    process (not a Dask worker or a forked parser, whose stderr may be the same TTY)."""
    return sys.stderr.isatty() and multiprocessing.parent_process() is None


@contextmanager
def progress_meter(what: str, unit: str, items_name: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """`advance(done, items)` for a step of `total` units ("bytes" or a name such as "rows"): a
    bar on a terminal, a log line every LOG_EVERY_S seconds otherwise, and nothing when the run
    logs warnings only (--quiet)."""
    logger = _logger()
    if not logger.isEnabledFor(logging.INFO) or total <= 0:
        yield lambda done, items: None
        return
    if not on_terminal():
        # Parts end on a pool's thread. Prefect's log handler finds the run's API in context
        # variables: outside the step's context, a line would start a temporary server of its own.
        context = contextvars.copy_context()

        def log(tally: Tally) -> None:
            context.copy().run(logger.info, progress_line(what, tally, unit, items_name))

        yield Meter(total, log, LOG_EVERY_S, time.monotonic).advance
        return
    with _DISPLAY.task(what, total) as (bar, task_id):

        def show(tally: Tally) -> None:
            bar.update(task_id, completed=tally.done, items=f"{tally.items:,} {items_name} ({tally.rate():,.0f}/s)")

        yield Meter(total, show, 0.0, time.monotonic).advance
