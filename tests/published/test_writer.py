"""Writing a table of a version: files that describe themselves (footer metadata), declare and hold
their sort order, and keep low-cardinality strings as dictionaries for every reader."""

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
from pipeline.published.manifest import read_manifest
from pipeline.published.versions import version_ids
from schemas import arrow_schema
from schemas.contract import table_contract_json
from schemas.tables import SORTED_BY

pytestmark = pytest.mark.flow


@pytest.fixture
def out(flow_versions: Path) -> Path:
    """Two versions published by the flow (`flow_versions`), the second a refresh of the first."""
    return flow_versions


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
