"""The report's derived series, pure: a time axis fitted to the data's span, and a name's co-author groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_BARS = 36  # bars of the time axis, the "before" bar included
# A window of the most recent bars (and one "before" bar for the rest) is drawn only when the rest
# holds at most this share of the papers: otherwise one bar would dwarf the others, and a coarser
# unit that shows the whole span is chosen instead.
WINDOW_TAIL_SHARE = 0.05
UNITS = ("month", "quarter", "year")


def _bin(month: int, unit: str) -> int:
    """The bin of a month index (year * 12 + month - 1) in `unit`."""
    if unit == "month":
        return month
    if unit == "quarter":
        return month // 12 * 4 + month % 12 // 3
    return month // 12


def _label(index: int, unit: str) -> str:
    if unit == "month":
        return f"{index // 12:04d}-{index % 12 + 1:02d}"
    if unit == "quarter":
        return f"{index // 4:04d} Q{index % 4 + 1}"
    return f"{index:04d}"


@dataclass(frozen=True, slots=True)
class TimeBins:
    """The time axis: bins of one unit from `start` to `end`; with `windowed`, a first bar holds
    every paper published before `start` (`before` of them, out of `total`)."""

    unit: str  # one of UNITS
    start: int
    end: int
    windowed: bool
    before: int
    total: int

    @property
    def labels(self) -> tuple[str, ...]:
        drawn = tuple(_label(i, self.unit) for i in range(self.start, self.end + 1))
        return (f"before {drawn[0]}", *drawn) if self.windowed else drawn

    def bar(self, month: int) -> int:
        """The bar a paper published in `month` (a month index) falls in."""
        index = _bin(month, self.unit)
        if self.windowed:
            return 0 if index < self.start else index - self.start + 1
        return index - self.start


def time_bins(
    papers_by_month: Mapping[int, int], max_bars: int = MAX_BARS, tail_share: float = WINDOW_TAIL_SHARE
) -> TimeBins | None:
    """The finest unit that shows the whole span of `papers_by_month` (month index → papers) in at
    most `max_bars` bars; before a coarser unit, a window of the last bars of this one when the
    papers before it are at most `tail_share` of all. Years always fit: past `max_bars` of them, the
    oldest share the "before" bar. None without papers."""
    if not papers_by_month:
        return None
    if max_bars < 2:
        raise ValueError("max_bars must be 2 or more: a window needs its 'before' bar and one more")
    total = sum(papers_by_month.values())
    first, last = min(papers_by_month), max(papers_by_month)
    for unit in UNITS:
        low, high = _bin(first, unit), _bin(last, unit)
        if high - low < max_bars:
            return TimeBins(unit, low, high, False, 0, total)
        start = high - max_bars + 2  # one bar is the "before" bar
        before = sum(n for month, n in papers_by_month.items() if _bin(month, unit) < start)
        if before <= tail_share * total or unit == UNITS[-1]:
            return TimeBins(unit, start, high, True, before, total)
    raise AssertionError("unreachable: the last unit always returns")


def coauthor_groups(links: Iterable[tuple[str, str]]) -> int:
    """How many groups the papers of one name fall into, from its (paper, co-author) pairs: two
    papers are in one group when a chain of shared co-authors links them. Papers without a listed
    co-author have no pair and are not counted."""
    parent: dict[str, str] = {}

    def root(paper: str) -> str:
        while parent[paper] != paper:
            parent[paper] = parent[parent[paper]]
            paper = parent[paper]
        return paper

    first_paper: dict[str, str] = {}
    for paper, coauthor in links:
        parent.setdefault(paper, paper)
        other = first_paper.setdefault(coauthor, paper)
        parent[root(paper)] = root(other)
    return sum(1 for paper in parent if root(paper) == paper)
