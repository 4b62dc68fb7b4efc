"""Versions consumers can trust: accumulating refreshes, changes, time travel by folder, retention."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from pipeline.consume.read import load, load_duckdb
from pipeline.published import Store, check_version
from tests.assembly import version_tables
from tests.conftest import run_flow

pytestmark = pytest.mark.flow

P1 = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract one.\n"
P2 = "CLMar 2, 2025\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P2_NEW = "91.0CLMar 2, 2025Code\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P3 = "CVMar 3, 2025\nVision at ScaleŁukasz Kaiser · openai\nAbstract three.\n"


def changes_of(out: Path, version_id: str) -> dict[str, str]:
    """title → change, for one version's changes table."""
    tables = version_tables(out / "versions" / version_id, ["changes", "papers"])
    titles = dict(zip(tables["papers"]["paper_id"], tables["papers"]["title"], strict=True))
    if version_id != "000001":
        parent = version_tables(out / "versions" / f"{int(version_id) - 1:06d}", ["papers"])["papers"]
        titles.update({k: v for k, v in zip(parent["paper_id"], parent["title"], strict=True) if k not in titles})
    return {titles[row.paper_id]: row.change for row in tables["changes"].itertuples()}


def test_accumulating_refresh_changes_and_time_travel(prefect_server, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text(P1 + P2, encoding="utf-8")
    first = run_flow(raw, out)
    assert (first.version_id, first.changes) == ("000001", {"added": 2})

    # a second, overlapping capture: P2 again with new fields, P3 new
    (raw / "listing_2026-02-01.txt").write_text(P2_NEW + P3, encoding="utf-8")
    second = run_flow(raw, out)
    assert (second.version_id, second.parent_id) == ("000002", "000001")
    assert changes_of(out, "000002") == {"Language Models Revisited": "updated", "Vision at Scale": "added"}
    changes = version_tables(out / "latest", ["changes"])["changes"]
    assert set(changes.loc[changes["change"] == "updated", "changed_fields"].iloc[0].split(",")) == {
        "score",
        "has_code",
    }
    papers = version_tables(out / "latest", ["papers"])["papers"].set_index("title")
    assert papers.loc["Language Models Revisited", ["first_seen", "last_seen"]].tolist() == [
        date(2026, 1, 1), date(2026, 2, 1),
    ]  # fmt: skip
    assert papers.loc["Language Models Revisited", "score"] == 91.0

    # same inputs, same code: nothing new
    again = run_flow(raw, out)
    assert (again.published, again.version_id) == (False, "000002")
    assert Store.open(out).version_ids() == ["000001", "000002"]

    # a capture deleted: its papers go unless another capture has them (1 of 3: past the 10%
    # removal guard, so the removal is allowed explicitly)
    (raw / "listing_2026-01-01.txt").unlink()
    third = run_flow(raw, out, max_removed_rate=1.0)
    assert changes_of(out, "000003") == {"A Study of Graphs": "removed"}
    assert third.row_counts["papers"] == 2
    store = Store.open(out)
    manifest = store.manifest(store.resolve("latest"))
    assert [i["path"] for i in manifest.get("inputs")] == ["listing_2026-02-01.txt"]
    assert manifest.parent_id == "000002"

    # time travel by version id: every engine sees latest and an older version, offline
    latest = load("papers", engine="duckdb", out=out)
    assert latest.aggregate("count(*)").fetchall() == [(2,)]
    assert load("papers", version="000001", engine="duckdb", out=out).aggregate("count(*)").fetchall() == [(2,)]
    assert load("papers", engine="polars", out=out).height == 2
    old = load("papers", version="000001", engine="polars", out=out)
    assert old["published"].dtype == pl.Date
    assert set(old["title"]) == {"A Study of Graphs", "Language Models Revisited"}
    old_frame = load("papers", version="000001", out=out)
    assert isinstance(old_frame, pd.DataFrame)
    assert len(old_frame) == 2
    added = load_duckdb(version="000002", out=out).sql("select count(*) from changes where change = 'added'").fetchall()
    assert added == [(1,)]


def test_keep_prunes_old_versions_but_never_latest_or_its_parent(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_GC_GRACE_S", "0")  # files no kept version lists go at once
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    for n, text in enumerate([P1, P2, P3], start=1):
        (raw / f"listing_2026-01-0{n}.txt").write_text(text, encoding="utf-8")
        run_flow(raw, out)
    store = Store.open(out)
    assert store.version_ids() == ["000001", "000002", "000003"]
    (raw / "listing_2026-01-04.txt").write_text(P2_NEW, encoding="utf-8")
    summary = run_flow(raw, out, keep=1)
    assert summary.pruned == ["000001", "000002"]
    store = Store.open(out)
    assert store.version_ids() == ["000003", "000004"]
    assert store.latest_id() == "000004"
    # the kept versions share files with the pruned ones: collecting the garbage kept every one they list
    for version_id in ("000003", "000004"):
        assert check_version(store, version_id).empty, version_id
    listed = {f.key for v in ("000003", "000004") for f in store.manifest(v).data_files()}
    stored = {p.relative_to(out).as_posix() for area in ("data", "index") for p in (out / area).rglob("*")
              if p.is_file()}  # fmt: skip
    assert stored == listed
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["000003", "000004"]  # pruned folders go too
