"""The Prefect flow end to end, in process, against one session-wide temporary server."""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path

import pytest

from pipeline.consume.read import load_duckdb
from pipeline.orchestrate import progress
from pipeline.raw.sources import find_listings
from pipeline.storage import open_storage
from tests.assembly import version_tables
from tests.conftest import run_flow as run
from tests.listings import record

pytestmark = pytest.mark.flow


def test_sample_end_to_end(prefect_server, raw_dir: Path, tmp_path: Path, gold) -> None:
    out = tmp_path / "processed"
    summary = run(raw_dir, out)
    assert summary.published
    assert summary.version_id == "000001"
    assert (summary.records, summary.rejects) == (gold.papers, 0)
    assert summary.row_counts["papers"] == gold.papers

    latest = out / "latest"
    con = load_duckdb(out=out)  # every table of latest as a DuckDB view, each file checked first
    count = con.sql("select count(*) from papers").fetchall()
    assert count == [(gold.papers,)]
    joined = con.sql(
        """select p.title, a.name, pa.position
            from papers p
            join paper_authors pa using (paper_id)
            join authors a using (author_id)"""
    ).df()
    assert len(joined) == gold.paper_authors
    # "Sebastien" in one paper, folded together
    assert (joined["name"] == "Sébastien Bubeck").sum() == gold.papers_of("Sébastien Bubeck")

    tables = version_tables(latest)
    merged = tables["papers"].merge(tables["paper_authors"], on="paper_id").merge(tables["authors"], on="author_id")
    assert len(merged) == gold.paper_authors
    assert merged.groupby("paper_id")["position"].min().eq(1).all()

    again = run(raw_dir, out)
    assert (again.published, again.version_id) == (False, "000001")


def test_rejects_and_capture_date_fallbacks(prefect_server, raw_dir: Path, tmp_path: Path) -> None:
    (raw_dir / "extra.txt").write_text(
        "XXMar 1, 2024\nSome TitleAnn Lee\nAbstract.\n"
        "LGMar 2\nAnother Study of GraphsBo Chen, Cy Wu\nAbstract.\n"
        "LGMar 3, 2024\n",
        encoding="utf-8",
    )
    (raw_dir / "latin1.txt").write_bytes("LGMar 1, 2024\nTitleJosé Núñez\nAbs.\n".encode("latin-1"))  # line 2
    out = tmp_path / "processed"
    summary = run(raw_dir, out, as_of=date(2026, 1, 3), max_reject_rate=1.0)
    inputs = {i["path"]: i for i in summary.inputs}
    assert inputs["extra.txt"]["capture_date"] == "2026-01-03"
    assert inputs["extra.txt"]["capture_date_from"] == "--as-of"
    assert summary.rejects_by_rule == {"unknown_category": 1, "truncated_record": 1, "invalid_encoding": 1}
    rejects = version_tables(out / "latest", ["rejects"])["rejects"]
    assert set(zip(rejects["source_file"], rejects["rule"], strict=True)) == {
        ("extra.txt", "unknown_category"), ("extra.txt", "truncated_record"), ("latin1.txt", "invalid_encoding"),
    }  # fmt: skip
    papers = version_tables(out / "latest", ["papers"])["papers"].set_index("title")
    # captured (per --as-of) on 2026-01-03, "Mar 2" without a year is the previous March
    assert papers.loc["Another Study of Graphs", "published"] == date(2025, 3, 2)

    os.utime(raw_dir / "extra.txt", (0, 1_577_836_800))  # 2020-01-01
    no_as_of = find_listings(open_storage(raw_dir), None).sources
    assert {s.name: (s.capture_date, s.capture_date_from) for s in no_as_of}["extra.txt"] == (
        date(2020, 1, 1), "modification time",
    )  # fmt: skip


def test_a_long_stage_reports_progress_before_it_ends(
    prefect_server, raw: Path, tmp_path: Path, caplog, monkeypatch
) -> None:
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(300)), encoding="utf-8")
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # a line at every part: the test's run is short
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in loggers:  # Prefect's loggers do not propagate to the root, where caplog listens
        logger.addHandler(caplog.handler)
    try:
        summary = run(raw, tmp_path / "processed", chunk_bytes=2_000, workers=1)
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)
    assert summary.published
    lines = [r.getMessage() for r in caplog.records]
    parsed = next(i for i, line in enumerate(lines) if "parsed in" in line)
    parsing = [line for line in lines[:parsed] if line.startswith("parsing: ")]
    assert len(parsing) > 3, lines
    # Shown part by part while the listing is parsed, with the rate and the time left.
    assert 0 < int(parsing[0].split(":")[1].split("%")[0]) < 100
    assert " papers at " in parsing[0]
    assert parsing[0].endswith(" left")
    assert parsing[-1].startswith("parsing: 100%")
    assert any(line.startswith("validating and publishing: ") for line in lines[parsed:])
