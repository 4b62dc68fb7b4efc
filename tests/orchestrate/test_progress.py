"""Progress of long steps: the line a log gets, how often it gets one, and silence with --quiet."""

from __future__ import annotations

import contextvars
import logging
import threading

import pytest

from pipeline.orchestrate import progress
from pipeline.orchestrate.progress import LOG_EVERY_S, Meter, Tally, duration_text, progress_line, progress_meter


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_gives_share_amount_rate_and_time_left() -> None:
    tally = Tally(done=412_000_000, total=1_330_000_000, items=310_000, seconds=52.5)
    line = progress_line("parsing", tally, "bytes", "papers")
    assert line == "parsing: 31% (412 MB of 1,330 MB), 310,000 papers at 5,905 papers/s, about 1 min 57 s left"


def test_rows_are_counted_as_rows_and_nothing_done_has_no_estimate() -> None:
    assert progress_line("publishing", Tally(0, 2_000, 0, 0.0), "rows", "rows") == (
        "publishing: 0% (0 rows of 2,000 rows), 0 rows at 0 rows/s, unknown left"
    )
    assert Tally(2_500, 2_000, 2_500, 5.0).seconds_left() == 0.0
    assert progress_line("publishing", Tally(2_500, 2_000, 2_500, 5.0), "rows", "rows").startswith("publishing: 100%")


@pytest.mark.parametrize(("seconds", "text"), [(None, "unknown"), (0.4, "about 0 s"), (59.6, "about 1 min 0 s"),
                                               (125, "about 2 min 5 s")])  # fmt: skip
def test_durations_read_as_a_wait(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_a_meter_shows_one_line_per_interval_from_the_start() -> None:
    clock, shown = Clock(), []
    meter = Meter(100, shown.append, 5.0, clock)
    clock.now += 1
    meter.advance(10, 7)  # 1 s after the start: none
    clock.now += 4
    meter.advance(10, 7)  # 5 s after it: one
    clock.now += 3
    meter.advance(10, 7)  # 3 s after the last line: none
    clock.now += 2
    meter.advance(10, 7)
    assert shown == [Tally(20, 100, 14, 5.0), Tally(40, 100, 28, 10.0)]


def test_a_bar_shows_every_advance() -> None:
    clock, shown = Clock(), []
    meter = Meter(100, shown.append, 0.0, clock)
    meter.advance(10, 7)
    meter.advance(10, 7)
    assert [t.done for t in shown] == [10, 20]


def test_a_meter_counts_every_advance_from_many_threads() -> None:
    meter = Meter(8_000, lambda tally: None, 0.0, Clock())
    threads = [threading.Thread(target=lambda: [meter.advance(1, 2) for _ in range(1_000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (meter.done, meter.items) == (8_000, 16_000)


def test_in_a_log_a_line_comes_once_an_interval_has_passed(caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger="pipeline")
    with progress_meter("parsing", "bytes", "papers", 10_000_000) as advance:
        advance(2_000_000, 1_500)  # at once: too early for a line (the test's run is not 5 s long)
    assert LOG_EVERY_S >= 1
    assert not [r for r in caplog.records if r.name == "pipeline"]
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with progress_meter("parsing", "bytes", "papers", 10_000_000) as advance:
        advance(2_000_000, 1_500)
        advance(2_000_000, 1_500)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline"]
    assert [line.split(",")[0] for line in lines] == ["parsing: 20% (2 MB of 10 MB)", "parsing: 40% (4 MB of 10 MB)"]
    assert all(" papers at " in line and line.endswith(" left") for line in lines)


def test_a_line_from_a_pool_thread_is_logged_in_the_step_s_context(monkeypatch) -> None:
    # Prefect keeps the run's settings (its API, a temporary server's URL) in context variables.
    run = contextvars.ContextVar("run")
    seen: list[str | None] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(run.get(None))

    logger = logging.getLogger("pipeline")
    handler = Seen()
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    run.set("the step's run")
    try:
        with progress_meter("parsing", "bytes", "papers", 10) as advance:
            pool_thread = threading.Thread(target=advance, args=(5, 1))
            pool_thread.start()
            pool_thread.join()
    finally:
        logger.removeHandler(handler)
    assert seen == ["the step's run"]


def test_quiet_shows_nothing(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pipeline")
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    try:
        with progress_meter("parsing", "bytes", "papers", 10_000_000) as advance:
            advance(2_000_000, 1_500)
    finally:
        logging.getLogger("pipeline").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name == "pipeline"]
