"""The reading API: one table of one published version as pandas, Polars, Arrow or DuckDB, from a folder or a URL."""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.db import new_connection
from pipeline.parse.content import LINEAGE_COLUMNS
from pipeline.published import Store, table_arrow, table_sql, version_parts
from pipeline.settings import DEFAULT_OUT
from schemas.tables import MODELS, low_cardinality_columns

Engine = Literal["pandas", "polars", "arrow", "duckdb"]
ENGINES: tuple[str, ...] = get_args(Engine)
TABLES: tuple[str, ...] = tuple(MODELS)
# Columns of `papers` that say where a row came from (file, line, capture dates), not what the
# paper is: a re-captured paper moves them. Leave them out when comparing versions.
LINEAGE: tuple[str, ...] = LINEAGE_COLUMNS
ALL_VERSIONS = "all_versions"


def _pandas_type(arrow_type: pa.DataType) -> Any:
    """pandas' nullable dtype for an Arrow type (None: pandas' default, e.g. str for strings)."""
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_floating(arrow_type):
        return pd.Float64Dtype()
    return None


def to_pandas(table: str, data: pa.Table) -> pd.DataFrame:
    """`data` (rows of `table`) as pandas with proper dtypes: dates as datetime64 (`.dt` works),
    booleans as `boolean`, numbers as nullable `Int64`/`Float64`, codes as `category`."""
    frame = data.to_pandas(date_as_object=False, types_mapper=_pandas_type)
    coded = [c for c in low_cardinality_columns(table) if c in frame.columns]
    return frame.astype(dict.fromkeys(coded, "category")) if coded else frame


def load(
    table: str,
    version: str = "latest",
    engine: Engine = "pandas",
    out: str | os.PathLike[str] = DEFAULT_OUT,
) -> Any:
    """Table `table` of a published version, as `engine` reads it.

    Args:
        table: one of `TABLES` (papers, authors, paper_authors, organizations,
            paper_organizations, categories, rejects, changes).
        version: a version id such as ``"000003"``, or ``"latest"``.
        engine: ``"pandas"`` (a DataFrame with proper dtypes, see `to_pandas`), ``"polars"`` (a
            polars DataFrame; needs ``pip install polars``), ``"arrow"`` (a `pyarrow.Table`) or
            ``"duckdb"`` (a lazy `duckdb.DuckDBPyRelation` on its own connection).
        out: the dataset folder or ``s3://bucket/prefix`` URL (`--out` of the CLI).

    Every file of the table is first checked against the version's manifest (sha256, read in
    blocks) and the contract's types: a damaged or edited file raises
    `pipeline.errors.VersionDamagedError`, never reads. From object storage each file is read
    through the readers' cache (``PIPELINE_CACHE_DIR``, else ~/.cache/paper-listings): downloaded
    once, whatever the number of versions that share it. An unknown version raises
    `pipeline.errors.StoreError`; an unknown table or engine, ValueError.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if table not in MODELS:
        raise ValueError(f"unknown table {table!r}: one of {', '.join(TABLES)}")
    store = Store.open(out)
    manifest = store.manifest(store.resolve(version))
    parts = version_parts(store, manifest, [table])[table]
    if engine == "duckdb":
        return new_connection(memory_limit=None).sql(table_sql(table, parts))
    data = table_arrow(table, parts)
    if engine == "polars":
        try:
            import polars as pl
        except ImportError:
            raise ImportError("engine='polars' needs polars: pip install polars") from None
        return pl.from_arrow(data)
    return data if engine == "arrow" else to_pandas(table, data)


def load_duckdb(version: str = "latest", out: str | os.PathLike[str] = DEFAULT_OUT) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every table of `version` as a view of the same name,
    and `all_versions`: the papers of every published version, with a `version` column.

    A diff between two versions is then one statement (leave out the `LINEAGE` columns, which a
    re-captured paper moves):

        SELECT * EXCLUDE (version, source_file, source_line, first_seen, last_seen)
        FROM all_versions WHERE version = '000002'
        EXCEPT
        SELECT * EXCLUDE (version, source_file, source_line, first_seen, last_seen)
        FROM all_versions WHERE version = '000001'

    Every file a view reads is first checked against its version's manifest (sha256), each file
    once however many versions share it: ~1 s per GB of distinct files.
    """
    store = Store.open(out)
    manifest = store.manifest(store.resolve(version))
    con = new_connection(memory_limit=None)
    for table, parts in version_parts(store, manifest).items():
        con.execute(f"CREATE VIEW {table} AS {table_sql(table, parts)}")
    con.execute(f"CREATE VIEW {ALL_VERSIONS} AS {_all_versions_query(store)}")
    return con


def _all_versions_query(store: Store) -> str:
    """papers of every committed version, each file checked against its manifest, with its id."""
    selects = []
    for version_id in store.version_ids():
        # An older version may hold an older contract: UNION BY NAME aligns its columns.
        parts = version_parts(store, store.manifest(version_id), ["papers"], check_types=False)["papers"]
        papers = table_sql("papers", parts, ordered=False, union_by_name=True)
        selects.append(f"SELECT *, '{version_id}' AS version FROM ({papers})")
    if not selects:  # unreachable after `resolve`, which needs a version: kept total
        return "SELECT NULL AS version WHERE false"
    return " UNION ALL BY NAME ".join(selects)
