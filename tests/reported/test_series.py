"""The report's series: a time axis that fits the data's span, and a name's co-author groups."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.reported.series import MAX_BARS, coauthor_groups, time_bins


def _month(year: int, month: int) -> int:
    return year * 12 + month - 1


def test_a_short_span_is_drawn_month_by_month() -> None:
    bins = time_bins({_month(2024, 1): 3, _month(2026, 12): 1})
    assert bins is not None
    assert (bins.unit, bins.windowed, len(bins.labels)) == ("month", False, 36)
    assert (bins.labels[0], bins.labels[-1]) == ("2024-01", "2026-12")
    assert time_bins({}) is None


def test_a_long_span_with_few_old_papers_keeps_a_window_of_recent_months() -> None:
    recent = {_month(2024, m): 100 for m in range(1, 13)} | {_month(2026, m): 100 for m in range(1, 13)}
    bins = time_bins(recent | {_month(2001, 5): 20})  # 120 of 2,420 papers are older than the window
    assert bins is not None
    assert (bins.unit, bins.windowed, bins.before, len(bins.labels)) == ("month", True, 120, MAX_BARS)
    assert bins.labels[:2] == ("before 2024-02", "2024-02")
    assert (bins.bar(_month(2001, 5)), bins.bar(_month(2024, 1)), bins.bar(_month(2024, 2))) == (0, 0, 1)


def test_a_long_history_is_drawn_by_quarter_or_by_year() -> None:
    """A backfill: most papers are older than any window of 35 months, so the bins grow instead."""
    decade = {_month(y, m): 10 for y in range(2017, 2026) for m in (1, 7)}
    bins = time_bins(decade)
    assert bins is not None
    assert (bins.unit, bins.windowed, bins.labels[0], bins.labels[-1]) == ("quarter", False, "2017 Q1", "2025 Q3")
    assert bins.bar(_month(2017, 3)) == 0
    assert bins.bar(_month(2017, 4)) == 1
    decades = {_month(y, 6): 10 for y in range(1991, 2027)}
    bins = time_bins(decades)
    assert bins is not None
    assert (bins.unit, bins.windowed, len(bins.labels), bins.labels[-1]) == ("year", False, 36, "2026")
    centuries = {_month(y, 6): 10 for y in range(1800, 2027)}
    bins = time_bins(centuries)
    assert bins is not None  # years always fit: the oldest share the first bar
    assert (bins.unit, bins.windowed, len(bins.labels), bins.labels[0]) == ("year", True, MAX_BARS, "before 1992")


@given(st.dictionaries(st.integers(_month(1900, 1), _month(2100, 12)), st.integers(1, 1000), min_size=1))
def test_every_paper_falls_in_one_bar_of_at_most_max_bars(papers_by_month: dict[int, int]) -> None:
    bins = time_bins(papers_by_month)
    assert bins is not None
    assert len(bins.labels) <= MAX_BARS
    bars = [0] * len(bins.labels)
    for month, n in papers_by_month.items():
        bars[bins.bar(month)] += n
    assert sum(bars) == sum(papers_by_month.values())
    assert bins.before == (bars[0] if bins.windowed else 0)
    assert bars[-1] > 0  # the axis ends at the last paper


def test_papers_that_share_a_co_author_are_one_group() -> None:
    links = [("p1", "ann"), ("p2", "ann"), ("p2", "bo"), ("p3", "bo"), ("p4", "cy"), ("p5", "dee")]
    assert coauthor_groups(links) == 3  # p1-p2-p3 (through ann, then bo), p4, p5
    assert coauthor_groups([]) == 0
    assert coauthor_groups([("p1", "ann"), ("p1", "bo")]) == 1


def test_max_bars_leaves_room_for_a_window() -> None:
    with pytest.raises(ValueError, match="max_bars must be 2 or more"):
        time_bins({1: 1}, max_bars=1)
