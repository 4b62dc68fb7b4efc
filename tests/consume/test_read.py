"""What consumers read: `pipeline.load` per engine with proper dtypes, and `load_duckdb`'s views."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from pipeline import load, load_duckdb
from pipeline.consume.read import LINEAGE, TABLES
from pipeline.errors import StoreError, VersionDamagedError
from pipeline.published import Store

pytestmark = pytest.mark.flow


@pytest.fixture
def out(flow_versions: Path) -> Path:
    """Two versions published by the flow (`flow_versions`): P1, P2, P4 and a reject, then P2
    re-captured with a score, P4 re-captured as it was and P3 added."""
    return flow_versions


def test_pandas_gets_proper_dtypes(out: Path) -> None:
    papers = load("papers", out=out)
    assert len(papers) == 4
    assert papers["published"].dt.year.tolist() == [2025] * 4  # .dt works on dates
    assert papers["first_seen"].dtype.kind == "M"
    assert papers["has_code"].dtype == "boolean"
    assert papers["score"].dtype == "Float64"
    assert papers["score"].isna().sum() == 3  # nullable: a missing score is <NA>, not NaN
    assert papers["source_line"].dtype == "Int64"
    assert isinstance(papers["category"].dtype, pd.CategoricalDtype)
    rejects = load("rejects", version="000001", out=out)
    assert isinstance(rejects["rule"].dtype, pd.CategoricalDtype)
    assert rejects["rule"].tolist() == ["stray_lines"]
    changes = load("changes", out=out)
    assert dict(zip(changes["change"].astype(str), changes["changed_fields"], strict=True))["added"] == ""


def test_every_engine_reads_the_same_rows(out: Path) -> None:
    arrow = load("paper_authors", engine="arrow", out=out)
    assert isinstance(arrow, pa.Table)
    polars = load("paper_authors", engine="polars", out=out)
    assert isinstance(polars, pl.DataFrame)
    relation = load("paper_authors", engine="duckdb", out=out)
    frame = load("paper_authors", out=out)
    expected = sorted(zip(arrow["paper_id"].to_pylist(), arrow["position"].to_pylist(), strict=True))
    assert sorted(zip(polars["paper_id"], polars["position"], strict=True)) == expected
    assert sorted(relation.select("paper_id, position").fetchall()) == expected
    assert sorted(zip(frame["paper_id"], frame["position"], strict=True)) == expected
    assert len(expected) == 6


def test_a_version_id_reads_that_version(out: Path) -> None:
    assert len(load("papers", version="000001", out=out)) == 3
    assert len(load("papers", version="latest", out=out)) == 4
    assert load("papers", version="000002", engine="arrow", out=out).equals(load("papers", engine="arrow", out=out))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"table": "nope"}, ValueError, "unknown table 'nope'"),
        ({"table": "papers", "engine": "spark"}, ValueError, "unknown engine 'spark'"),
        ({"table": "papers", "version": "000009"}, StoreError, "version 000009 does not exist"),
        ({"table": "papers", "version": "../000001"}, StoreError, "is not a version id"),
        ({"table": "papers", "version": "1"}, StoreError, "is not a version id"),
    ],
)
def test_bad_arguments_get_clear_errors(out: Path, kwargs: dict[str, str], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        load(**kwargs, out=out)  # type: ignore[arg-type]


def test_a_damaged_file_is_never_read(out: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(out, copy, symlinks=True)
    store = Store.open(copy)
    (listed,) = store.manifest("000001").tables["changes"]
    assert listed not in store.manifest("000002").tables["changes"]  # each version's own changes
    file = copy / listed.key
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(VersionDamagedError, match="differs from the sha256"):
        load("changes", version="000001", out=copy)
    assert len(load("changes", out=copy)) > 0  # the other version still reads
    (shared,) = store.manifest("000001").tables["categories"]
    assert shared in store.manifest("000002").tables["categories"]  # a file both versions list
    (copy / shared.key).unlink()
    for version in ("000001", "000002"):
        with pytest.raises(VersionDamagedError, match="is missing"):
            load("categories", version=version, out=copy)
    with pytest.raises(VersionDamagedError):
        load_duckdb(version="000001", out=copy)


def test_load_duckdb_has_every_table_and_all_versions(out: Path) -> None:
    con = load_duckdb(out=out)
    views = {row[0] for row in con.sql("select view_name from duckdb_views() where not internal").fetchall()}
    assert views == {*TABLES, "all_versions"}
    assert con.sql("select count(*) from papers").fetchall() == [(4,)]
    counts = con.sql("select version, count(*) from all_versions group by 1 order by 1").fetchall()
    assert counts == [("000001", 3), ("000002", 4)]
    old = load_duckdb(version="000001", out=out)
    assert old.sql("select count(*) from papers").fetchall() == [(3,)]


def test_the_documented_diff_statement_finds_only_real_changes(out: Path) -> None:
    """P2 was re-captured with a new score, P3 is new, P4 was re-captured as it was (only its
    lineage moved), P1 is untouched. The statement in load_duckdb's docstring (and the README)
    flags P2 and P3 only."""
    con = load_duckdb(out=out)
    excluded = ", ".join(["version", *LINEAGE])
    statement = (
        f"SELECT * EXCLUDE ({excluded}) FROM all_versions WHERE version = '000002' EXCEPT "
        f"SELECT * EXCLUDE ({excluded}) FROM all_versions WHERE version = '000001'"
    )
    assert load_duckdb.__doc__ is not None
    assert " ".join(statement.split()) in " ".join(load_duckdb.__doc__.split())
    titles = sorted(row[0] for row in con.sql(f"select title from ({statement})").fetchall())
    assert titles == ["Language Models Revisited", "Vision at Scale"]
    # With the lineage columns, the paper re-captured unchanged is flagged too: why they are left out.
    naive = statement.replace(f"EXCLUDE ({excluded})", "EXCLUDE (version)")
    flagged = sorted(row[0] for row in con.sql(f"select title from ({naive})").fetchall())
    assert flagged == ["Language Models Revisited", "Robots Without Change", "Vision at Scale"]
