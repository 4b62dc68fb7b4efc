"""The report's data: aggregates of a version's files in DuckDB, checked against its tables in pandas."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.assembled.generations import Part
from pipeline.errors import VersionDamagedError
from pipeline.published import Store, version_parts
from pipeline.reported.report_data import OTHER, Category, ReportData, papers_by_period, report_data
from pipeline.reported.version_report import render_report
from schemas.tables import CHANGE_KINDS, MODELS, arrow_schema
from tests.assembly import publish_frames
from tests.listings import RECORDS, variant
from tests.refreshes import refresh
from tests.report_versions import expected_top_authors, folder_report_data, ranked
from tests.validation import validate_dataset


def stored_parts(folder: Path) -> tuple[dict[str, list[Part]], dict[str, int]]:
    """The verified parts and row counts of the version whose folder is `folder` (OUT/versions/<id>)."""
    store = Store.open(folder.parent.parent)
    manifest = store.manifest(folder.name)
    return version_parts(store, manifest), manifest.row_counts


def test_report_data_of_a_version_agrees_with_its_tables(data: ReportData, versions) -> None:
    folder, tables = versions
    assert (data.version_id, data.parent_id) == ("000002", "000001")
    assert data.row_counts == Store.open(folder.parent.parent).manifest(folder.name).row_counts
    assert list(data.row_counts) == list(MODELS)
    assert data.changes == {"added": 0, "updated": 1, "removed": 1}

    papers = tables["papers"]
    assert sum(map(sum, data.papers_per_period)) == len(papers)
    by_category = papers["category"].value_counts()
    drawn = {c.code: sum(row[j] for row in data.papers_per_period) for j, c in enumerate(data.categories)}
    named = {code: n for code, n in drawn.items() if code != OTHER}
    assert named == {code: int(by_category[code]) for code in named}
    assert drawn.get(OTHER, 0) == len(papers) - sum(named.values())
    assert min(named.values()) >= max(by_category.drop(list(named)), default=0)

    got = [(r.name, r.papers, r.coauthor_groups, r.organizations) for r in data.top_authors]
    assert got == expected_top_authors(tables)
    orgs = tables["organizations"].set_index("org_id")
    org_names = orgs["name"].fillna(pd.Series(orgs.index, index=orgs.index))
    assert [(r.name, r.papers) for r in data.top_organizations] == ranked(
        tables["paper_organizations"], "org_id", org_names
    )

    rejects = tables["rejects"]
    assert {r.rule: r.records for r in data.rejects} == rejects["rule"].value_counts().to_dict()
    assert {"stray_lines", "unknown_category"} <= {r.rule for r in data.rejects}
    for cause in data.rejects:
        assert cause.example == rejects.loc[rejects["rule"] == cause.rule, "reason"].min()

    expected = [(t, c, int(tables[t][c].isna().sum()), len(tables[t])) for t in MODELS for c in tables[t].columns]
    assert [(n.table, n.column, n.nulls, n.rows) for n in data.nulls] == expected
    assert any(n.nulls for n in data.nulls)  # the sample's scores are mostly missing


def test_the_top_names_of_a_large_version_tell_their_people_apart(large) -> None:
    """At 200k papers the top names are ones that many people share: the report counts each name's
    co-author groups, and they are many where the papers of one person fall into one or two."""
    tables, data = large
    got = [(r.name, r.papers, r.coauthor_groups, r.organizations) for r in data.top_authors]
    assert got == expected_top_authors(tables)
    shared = [r for r in data.top_authors if r.name.startswith(("Yang", "Hao", "Chang", "Wei"))]
    assert len(shared) == 5
    assert min(r.coauthor_groups for r in shared) > 10


def test_a_store_whose_path_duckdb_would_read_as_a_pattern_gives_the_same_report(
    tmp_path: Path, data: ReportData, versions, monkeypatch
) -> None:
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "reader-cache"))  # where the plain copies go
    odd = tmp_path / "out[1]" / "v*"
    shutil.copytree(versions[0].parent.parent, odd, symlinks=True)
    assert folder_report_data(odd / "versions" / versions[0].name) == data


def test_null_shares_need_no_statistics_and_follow_the_contract(tmp_path: Path, data: ReportData, versions) -> None:
    """Null shares are never read from the files' statistics: 0 for a column the contract declares
    non-nullable (every row was checked as it was written), counted by DuckDB in the nullable ones,
    so files written without statistics give the same report."""
    parts, row_counts = stored_parts(versions[0])
    for name in ("papers", "organizations"):
        bare = []
        for number, part in enumerate(parts[name]):
            path = tmp_path / f"{name}-{number}.parquet"
            pq.write_table(pq.read_table(part.path), path, write_statistics=False)
            assert pq.read_metadata(path).row_group(0).column(0).statistics is None
            bare.append(Part(path, part.generation))
        parts[name] = bare
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert report_data(parts, "000002", "000001", row_counts, scratch=scratch) == data
    assert list(scratch.iterdir()) == []  # its spill folder is gone
    tables = versions[1]
    for n in data.nulls:
        nullable = arrow_schema(n.table).field(n.column).nullable
        assert n.nulls == (int(tables[n.table][n.column].isna().sum()) if nullable else 0), (n.table, n.column)
    assert any(n.nulls for n in data.nulls if n.table == "papers")  # counted: the sample's scores are mostly missing


def test_a_damaged_version_is_refused(tmp_path: Path, versions, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "reader-cache"))  # no verified copy of it elsewhere
    copy = tmp_path / "out"
    shutil.copytree(versions[0].parent.parent, copy, symlinks=True)
    folder = copy / "versions" / versions[0].name
    rejects = Store.open(copy).manifest(folder.name).tables["rejects"][-1]
    with (copy / rejects.key).open("r+b") as handle:
        handle.seek(10)
        handle.write(b"\0\0\0\0")
    with pytest.raises(VersionDamagedError, match="differs from the sha256"):
        folder_report_data(folder)


def test_an_empty_version_reports_zeros(tmp_path: Path, sample_tables, reference) -> None:
    tables = {name: frame if name == "categories" else frame.iloc[0:0] for name, frame in sample_tables.items()}
    outcome = publish_frames(tmp_path / "out", validate_dataset(tables), {"fingerprint": "empty"})
    parts, row_counts = stored_parts(Path(outcome.path))
    data = report_data(parts, outcome.version_id, None, row_counts)
    # a version without papers still has every category of the taxonomy
    assert data.row_counts == {name: len(reference.categories) if name == "categories" else 0 for name in MODELS}
    assert data.changes == dict.fromkeys(CHANGE_KINDS, 0)
    assert (data.time, data.categories, data.papers_per_period) == (None, (), ())
    assert (data.top_authors, data.top_organizations, data.rejects) == ((), (), ())
    assert all(n.nulls == 0 and n.rate == 0 for n in data.nulls if n.table != "categories")
    page = render_report(data)
    assert "no papers" in page
    assert "no record was rejected" in page


def test_report_data_needs_every_table(versions) -> None:
    parts, row_counts = stored_parts(versions[0])
    del parts["changes"]
    with pytest.raises(ValueError, match="changes"):
        report_data(parts, "000002", "000001", row_counts)


def _month(year: int, month: int) -> int:
    return year * 12 + month - 1


def test_papers_by_period_keeps_the_largest_categories_and_fits_the_span() -> None:
    counts = [
        (_month(2025, 11), "cs.CL", 5),
        (_month(2025, 11), "cs.LG", 8),
        (_month(2026, 1), "math.OC", 1),
        (_month(2026, 1), "cs.LG", 2),
        (_month(2026, 1), "stat.ML", 1),
    ]
    names = {"cs.CL": "Computation and Language", "cs.LG": "Machine Learning"}
    time, categories, grid = papers_by_period(counts, names, top_categories=2)
    assert time is not None
    assert (time.unit, time.labels) == ("month", ("2025-11", "2025-12", "2026-01"))
    assert categories == (
        Category("cs.LG", "Machine Learning"),
        Category("cs.CL", "Computation and Language"),
        Category(OTHER, "all other categories"),
    )
    assert grid == ((8, 5, 0), (0, 0, 0), (2, 0, 2))
    assert papers_by_period([], names) == (None, (), ())
    # Eight years of papers: too many months, too many papers before a window of them; quarters.
    decade = [(_month(2018, 1), "cs.CL", 4), *counts]
    time, _, grid = papers_by_period(decade, names, top_categories=2)
    assert time is not None
    assert time.unit == "quarter"
    assert not time.windowed
    assert (time.labels[0], time.labels[-1], grid[0], grid[-1]) == ("2018 Q1", "2026 Q1", (0, 4, 0), (2, 0, 2))


def test_a_report_from_the_indexes_equals_one_from_the_tables(tmp_path: Path) -> None:
    """What a refresh's report reads of papers (the paper index) and of authors' rows (the author
    index) gives the report the tables give, across generations that replace earlier rows."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(RECORDS[:40]), encoding="utf-8")
    refresh(raw, out)
    later = RECORDS[40:] + [variant(RECORDS[n], kind) for n, kind in ((1, 2), (2, 3), (3, 4), (4, 1))]
    (raw / "listing_2026-01-02.txt").write_text("".join(later), encoding="utf-8")
    assert refresh(raw, out).incremental
    store = Store.open(out)
    manifest = store.manifest("000002")
    assert max(f.generation for f in manifest.index["paper_index"]) == 2  # rows of generation 1 replaced
    parts = version_parts(store, manifest)
    index = {name: store.parts(files) for name, files in manifest.index.items()}
    for top in (1, 20):  # names that could rank beyond those read first, and within them
        from_tables = report_data(parts, "000002", "000001", manifest.row_counts, top=top)
        with_index = report_data({**parts, "papers": []}, "000002", "000001", manifest.row_counts, top=top, index=index)
        assert with_index == from_tables
        assert len(from_tables.top_authors) == top
