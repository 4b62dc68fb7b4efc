"""The reading API: one table of one published version as pandas, Polars, Arrow or DuckDB."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.db import new_connection, sql_text
from pipeline.errors import StoreError
from pipeline.parse.content import LINEAGE_COLUMNS
from pipeline.published.layout import check_version_id
from pipeline.published.remote import RemoteStore, readable
from pipeline.published.verify import verified_files
from pipeline.published.versions import version_ids, version_path
from pipeline.settings import DEFAULT_OUT
from pipeline.storage.s3 import parse_location
from schemas.tables import MODELS, low_cardinality_columns

Engine = Literal["pandas", "polars", "arrow", "duckdb"]
ENGINES: tuple[str, ...] = get_args(Engine)
TABLES: tuple[str, ...] = tuple(MODELS)
# Columns of `papers` that say where a row came from (file, line, capture dates), not what the
# paper is: a re-captured paper moves them. Leave them out when comparing versions.
LINEAGE: tuple[str, ...] = LINEAGE_COLUMNS
ALL_VERSIONS = "all_versions"


def version_folder(version: str = "latest", out: str | os.PathLike[str] = DEFAULT_OUT) -> Path:
    """The folder of `version` (an id such as ``000003``, or ``"latest"``) of the dataset `out`:
    a folder, or an ``s3://bucket/prefix`` URL, whose version is then copied (each file checked
    against its manifest) into the reader cache (``PIPELINE_CACHE_DIR``, else ~/.cache/paper-listings).

    Raises `pipeline.errors.StoreError` when the id is not six digits or no such version exists.
    """
    return _version_folder(version, out, None)


def _version_folder(version: str, out: str | os.PathLike[str], names: list[str] | None) -> Path:
    chosen = None if version == "latest" else check_version_id(version)
    location = parse_location(out)
    if isinstance(location, Path):
        return version_path(location, chosen)
    store = RemoteStore(location)
    chosen = chosen or store.latest_id()
    if chosen is None:
        raise StoreError(f"no version has been published under {store.url}")
    return store.cached_version(chosen, names)


def _table_file(table: str, folder: Path) -> Path:
    if table not in MODELS:
        raise ValueError(f"unknown table {table!r}: one of {', '.join(TABLES)}")
    return verified_files(folder, [table])[table]


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

    The file is first checked against the version's manifest (sha256, read in blocks) and the
    contract's types: a damaged or edited file raises `pipeline.errors.VersionDamagedError`, never reads.
    An unknown version raises `pipeline.errors.StoreError`; an unknown table or engine, ValueError.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if table not in MODELS:
        raise ValueError(f"unknown table {table!r}: one of {', '.join(TABLES)}")
    file = _table_file(table, _version_folder(version, out, [f"{table}.parquet"]))
    if engine == "duckdb":
        return new_connection(memory_limit=None).read_parquet(str(file.absolute()))
    if engine == "polars":
        try:
            import polars as pl
        except ImportError:
            raise ImportError("engine='polars' needs polars: pip install polars") from None
        return pl.read_parquet(file)
    data = pq.read_table(file)
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

    Every file a view reads is first checked against its version's manifest (sha256), so
    opening reads each papers file once: ~1 s per GB.
    """
    out_dir = readable(parse_location(out), ["papers.parquet"])
    folder = version_folder(version, out)
    files = verified_files(folder, list(TABLES))
    con = new_connection(memory_limit=None)
    for table, file in files.items():
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_text(str(file.absolute()))})")
    con.execute(f"CREATE VIEW {ALL_VERSIONS} AS {_all_versions_query(out_dir)}")
    return con


def _all_versions_query(out_dir: Path) -> str:
    """papers of every complete version, each checked against its manifest, with its id."""
    selects = []
    for version_id in version_ids(out_dir):
        # An older version may hold an older contract: UNION BY NAME aligns its columns.
        folder = version_path(out_dir, version_id)
        file = verified_files(folder, ["papers"], check_types=False)["papers"]
        selects.append(
            f"SELECT *, {sql_text(version_id)} AS version FROM read_parquet({sql_text(str(file.absolute()))})"
        )
    if not selects:  # unreachable after version_folder, which needs a version: kept total
        return "SELECT NULL AS version WHERE false"
    return " UNION ALL BY NAME ".join(selects)
