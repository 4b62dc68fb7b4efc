"""Writing a table: files that describe themselves (footer metadata), declare and hold their sort order,
keep low-cardinality strings as dictionaries for every reader, and are cut between keys."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import __version__, load
from pipeline.consume.read import TABLES
from pipeline.published import Store
from pipeline.published.publish import table_specs
from pipeline.published.writer import write_generation
from schemas.contract import table_contract_json
from schemas.tables import SORTED_BY, arrow_schema
from schemas.validate import batch_failures
from tests.assembly import frame_batches


@pytest.fixture
def out(published: Path) -> Path:
    return published


def test_every_file_names_its_table_contract_and_pipeline(out: Path) -> None:
    store = Store.open(out)
    for version_id in store.version_ids():
        manifest = store.manifest(version_id)
        for table in TABLES:
            for file in manifest.tables[table]:
                said = pq.read_metadata(out / file.key).metadata
                footer = {k.decode(): v.decode() for k, v in said.items() if k.startswith(b"paper_listings.")}
                # No version id: a file is every version's that lists it.
                assert footer == {
                    "paper_listings.table": table,
                    "paper_listings.pipeline_version": __version__,
                    "paper_listings.schema_fingerprint": manifest.schema_fingerprint,
                    "paper_listings.contract": table_contract_json(table),
                }
                assert json.loads(footer["paper_listings.contract"])["columns"].keys() == set(arrow_schema(table).names)


def test_sorted_tables_declare_their_order_and_hold_it(out: Path) -> None:
    manifest = Store.open(out).manifest("000001")
    for table in TABLES:
        for file in manifest.tables[table]:
            path = out / file.key
            metadata = pq.read_metadata(path)
            declared = metadata.row_group(0).sorting_columns if metadata.num_row_groups else ()
            columns = SORTED_BY.get(table, ())
            data = pq.read_table(path)
            assert [data.schema.names[c.column_index] for c in declared or ()] == list(columns), table
            assert all(not c.descending for c in declared or ())
            if columns:
                rows = list(zip(*(data.column(c).to_pylist() for c in columns), strict=True))
                assert rows == sorted(rows), table


def test_low_cardinality_strings_are_dictionaries_for_every_reader(out: Path) -> None:
    (file,) = Store.open(out).manifest("000001").tables["papers"]
    path = out / file.key
    schema = pq.read_schema(path)
    assert pa.types.is_dictionary(schema.field("category").type)
    assert not pa.types.is_dictionary(schema.field("title").type)
    assert isinstance(pd.read_parquet(path)["category"].dtype, pd.CategoricalDtype)
    assert pl.read_parquet(path)["category"].dtype == pl.Categorical
    assert isinstance(load("papers", out=out)["category"].dtype, pd.CategoricalDtype)
    assert load("papers", engine="polars", out=out)["category"].dtype == pl.Categorical
    assert pa.types.is_dictionary(load("papers", engine="arrow", out=out).schema.field("category").type)
    categories = sorted(load("papers", out=out)["category"].astype(str))
    assert sorted(c for (c,) in load("papers", engine="duckdb", out=out).select("category").fetchall()) == categories


def test_files_are_cut_past_the_target_size_never_inside_a_papers_rows(tables, tmp_path: Path) -> None:
    spec = table_specs()["paper_authors"]
    frame = tables["paper_authors"]
    # Batches of 7 rows: a paper's rows (up to 3) often straddle two of them.
    batches = [
        b for batch in frame_batches("paper_authors", frame) for b in pa.Table.from_batches([batch]).to_batches(7)
    ]
    written, rows, failures = write_generation(spec, batches, tmp_path, batch_failures, target_bytes=1)
    assert (rows, failures) == (len(frame), [])
    assert len(written) > 3
    assert [w.part for w in written] == list(range(len(written)))
    seen: set[str] = set()
    for file in written:
        papers = set(pq.read_table(file.path).column("paper_id").to_pylist())
        assert not papers & seen  # a paper's rows are all in one file
        seen |= papers
    assert sum(w.rows for w in written) == len(frame)


def test_an_empty_table_is_one_empty_file_with_its_columns(tmp_path: Path) -> None:
    spec = table_specs()["rejects"]
    (written,), rows, _ = write_generation(spec, iter(()), tmp_path, batch_failures, empty_file=True)
    assert rows == 0
    assert pq.read_table(written.path).num_rows == 0
    assert pq.read_schema(written.path).names == arrow_schema("rejects").names
