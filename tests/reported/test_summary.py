"""The run report on plain data: a warning per capture that contributes nothing, and the Markdown
summary of what a run did, however it ended."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.published.layout import REPORT_FILE
from pipeline.reported.summary import RunSummary, input_warnings, report_markdown
from pipeline.staged.capture import CaptureCounts


def counts(name: str, size: int, papers: int, rejects: dict[str, int], headed: int) -> CaptureCounts:
    return CaptureCounts(name, size, papers, rejects, headed)


def test_a_capture_that_contributes_nothing_is_warned_about_once() -> None:
    captures = [
        counts("good.txt", 900, 3, {"unknown_category": 1}, 4),
        counts("empty.txt", 0, 0, {}, 0),
        counts("chrome.txt", 40, 0, {"stray_lines": 2}, 0),
        counts("blank.txt", 3, 0, {}, 0),
        counts("all-bad.txt", 200, 0, {"invalid_date": 1, "unknown_category": 2}, 3),
    ]
    assert input_warnings(captures) == [
        "empty.txt: empty file (0 bytes): no records",
        "chrome.txt: no record header ('[score]SUFFIXMon D[, YYYY][Code]') in it: all 2 group(s) of lines rejected",
        "blank.txt: no records (only blank lines)",
        "all-bad.txt: none of its 3 records could be used",
    ]
    assert input_warnings(captures[:1]) == []


def published(**changes: object) -> RunSummary:
    """A second version published from two inputs, one from the staged layer."""
    summary = RunSummary(
        version_id="000002",
        path=Path("/data/out/versions/000002"),
        published=True,
        parent_id="000001",
        records=8,
        rejects=2,
        rejects_by_rule={"unknown_category": 1, "stray_lines": 1},
        row_counts={"papers": 6, "authors": 9},
        inputs=[
            {"path": "listing_2026-01-01.txt", "capture_date": "2026-01-01", "records": 5, "rejects": 1},
            {"path": "odd | name\n.txt", "capture_date": "2026-01-02", "records": 3, "rejects": 1},
        ],
        changes={"added": 2, "removed": 1},
        pruned=["000000"],
        parsed_files=["odd | name\n.txt"],
        cached_files=["listing_2026-01-01.txt"],
        warnings=["odd | name\n.txt: renamed\n  to one line"],
    )
    return dataclasses.replace(summary, **changes)  # type: ignore[arg-type]


def test_a_published_run_reports_everything_it_did() -> None:
    lines = report_markdown(published()).splitlines()
    assert lines[:3] == ["# Listings refresh", "", "**published new version 000002 at /data/out/versions/000002**"]
    assert "- inputs: 2 file(s), 1 parsed, 1 from cache" in lines
    assert "- records: 8" in lines
    assert "- rejects: 2 (25.0%)" in lines
    assert "- parent version: 000001" in lines
    assert f"- report: /data/out/versions/000002/{REPORT_FILE} (open it in a browser; it needs no network)" in lines
    assert "- changes since the parent: 2 added, 0 updated, 1 removed" in lines  # every kind, in order
    assert "- pruned versions: 000000" in lines
    assert "**1 warning(s)**" in lines
    assert "- odd | name .txt: renamed to one line" in lines  # one line per warning
    rules = lines.index("| reject rule | records |")
    assert lines[rules + 1 : rules + 4] == ["|---|---:|", "| unknown_category | 1 |", "| stray_lines | 1 |"]
    assert "| papers | 6 |" in lines
    assert "| authors | 9 |" in lines
    # one table row per input, its name on one line and its pipe escaped; where it was read from
    assert "| listing_2026-01-01.txt | 2026-01-01 | 5 | 1 | cache |" in lines
    assert "| odd \\| name .txt | 2026-01-02 | 3 | 1 | parsed |" in lines


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"published": False}, "**up to date: latest is version 000002 at /data/out/versions/000002**"),
        ({"published": False, "refused": "3 of 8 records rejected"}, "**nothing published: 3 of 8 records rejected**"),
    ],
    ids=["up to date", "refused"],
)
def test_a_run_that_published_nothing_says_why_and_points_at_no_report(changes: dict, outcome: str) -> None:
    text = report_markdown(published(**changes))
    assert text.splitlines()[2] == outcome
    assert "- report:" not in text
    assert "- parent version:" not in text


def test_a_run_without_records_reports_no_rate_and_no_empty_tables() -> None:
    nothing = {"records": 0, "rejects": 0, "rejects_by_rule": {}, "row_counts": {}, "inputs": [], "changes": {},
               "pruned": [], "warnings": [], "parsed_files": [], "cached_files": []}  # fmt: skip
    text = report_markdown(published(**nothing))
    assert "- rejects: 0\n" in text
    assert "- inputs: 0 file(s), 0 parsed, 0 from cache" in text
    assert "|" not in text
    assert "warning" not in text
    assert "changes since the parent" not in text
    assert text.endswith("\n")
