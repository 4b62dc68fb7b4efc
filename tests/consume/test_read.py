"""What consumers read: `pipeline.load` per engine with proper dtypes, `load_duckdb`'s views,
and Parquet files that describe themselves (footer metadata, sort order, dictionaries)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import __version__, load, load_duckdb
from pipeline.consume.read import LINEAGE, TABLES
from pipeline.errors import StoreError, VersionDamagedError
from pipeline.published.manifest import read_manifest
from pipeline.published.validate import check_version_folder
from pipeline.published.versions import version_ids
from pipeline.storage.local import file_digest
from schemas import arrow_schema
from schemas.contract import table_contract_json
from schemas.tables import SORTED_BY
from tests.conftest import run_flow

pytestmark = pytest.mark.flow

P1 = "LGMar 1, 2025\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract one.\n"
P2 = "CLMar 2, 2025\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P2_NEW = "91.0CLMar 2, 2025Code\nLanguage Models RevisitedBo Chen, Cy Wu\nAbstract two.\n"
P3 = "CVMar 3, 2025\nVision at ScaleŁukasz Kaiser · openai\nAbstract three.\n"
P4 = "ROMar 4, 2025\nRobots Without ChangeDee Park\nAbstract four.\n"
STRAY = "a stray line\n"


@pytest.fixture(scope="module")
def out(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions: 000001 (P1, P2, P4 and a reject), 000002 (P2 re-captured with a score, P4
    re-captured as it was, P3 added)."""
    root = tmp_path_factory.mktemp("read")
    raw, out = root / "raw", root / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text(P1 + P2 + P4 + STRAY, encoding="utf-8")
    run_flow(raw, out, max_reject_rate=1.0)
    (raw / "listing_2026-02-01.txt").write_text(P2_NEW + P3 + P4, encoding="utf-8")
    run_flow(raw, out, max_reject_rate=1.0)
    assert version_ids(out) == ["000001", "000002"]
    return out


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
    file = copy / "versions" / "000001" / "authors.parquet"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(VersionDamagedError, match="differs from the sha256"):
        load("authors", version="000001", out=copy)
    assert len(load("authors", out=copy)) > 0  # the other version still reads
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


# --- files that describe themselves -----------------------------------------------------------


def test_every_file_names_its_version_table_contract_and_pipeline(out: Path) -> None:
    for version_id in version_ids(out):
        folder = out / "versions" / version_id
        manifest = read_manifest(folder)
        for table in TABLES:
            said = pq.read_metadata(folder / f"{table}.parquet").metadata
            footer = {k.decode(): v.decode() for k, v in said.items() if k.startswith(b"paper_listings.")}
            assert footer == {
                "paper_listings.version_id": version_id,
                "paper_listings.table": table,
                "paper_listings.pipeline_version": __version__,
                "paper_listings.schema_fingerprint": manifest["schema_fingerprint"],
                "paper_listings.contract": table_contract_json(table),
            }
            assert json.loads(footer["paper_listings.contract"])["columns"].keys() == set(arrow_schema(table).names)


def test_sorted_tables_declare_their_order_and_hold_it(out: Path) -> None:
    folder = out / "latest"
    for table in TABLES:
        file = folder / f"{table}.parquet"
        declared = pq.read_metadata(file).row_group(0).sorting_columns if pq.read_metadata(file).num_row_groups else ()
        columns = SORTED_BY.get(table, ())
        data = pq.read_table(file)
        assert [data.schema.names[c.column_index] for c in declared or ()] == list(columns), table
        assert all(not c.descending for c in declared or ())
        if columns:
            rows = list(zip(*(data.column(c).to_pylist() for c in columns), strict=True))
            assert rows == sorted(rows), table


def test_low_cardinality_strings_are_dictionaries_for_every_reader(out: Path) -> None:
    file = out / "latest" / "papers.parquet"
    schema = pq.read_schema(file)
    assert pa.types.is_dictionary(schema.field("category").type)
    assert not pa.types.is_dictionary(schema.field("title").type)
    assert isinstance(pd.read_parquet(file)["category"].dtype, pd.CategoricalDtype)
    assert pl.read_parquet(file)["category"].dtype == pl.Categorical
    assert sorted(load("papers", engine="duckdb", out=out).select("category").fetchall())[0] == ("cs.CL",)


def test_validate_checks_each_footer_against_the_manifest(out: Path, tmp_path: Path) -> None:
    """A file moved in from another version (its sha256 put in the manifest, as a careless
    hand-off would) is caught by what its footer says."""
    assert check_version_folder(out / "versions" / "000002").empty
    copy = tmp_path / "000002"
    shutil.copytree(out / "versions" / "000002", copy)
    moved = copy / "categories.parquet"
    shutil.copyfile(out / "versions" / "000001" / "categories.parquet", moved)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["categories.parquet"] = file_digest(moved)
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    report = check_version_folder(copy)
    assert report["check"].tolist() == ["footer(paper_listings.version_id=000002)"]
    assert report["failure_case"].tolist() == ["000001"]
