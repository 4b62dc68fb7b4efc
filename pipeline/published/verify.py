"""Verified reads of a version: files checked against the manifest, read as the newest generation of each key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.generations import REPLACED_BY, Part, live_sql
from pipeline.db import connect, reading
from pipeline.errors import UnreadableInputError, VersionDamagedError
from pipeline.published.manifest import Manifest
from pipeline.published.store import Store
from pipeline.settings import READER_MEMORY
from schemas.tables import MODELS, SORTED_BY, arrow_schema, plain_schema, published_schema

_BATCH_ROWS = 16_384


def version_parts(
    store: Store, manifest: Manifest, tables: Sequence[str] | None = None, check_types: bool = True
) -> dict[str, list[Part]]:
    """The verified local parts of some tables of a version (all when None): every file checked
    against the manifest's sha256 and size, and, unless `check_types` is False (a version written
    under an older contract), against the contract's columns and types."""
    names = list(tables) if tables is not None else list(MODELS)
    found = {}
    for name in names:
        if name not in MODELS:
            raise ValueError(f"unknown table {name!r}: one of {', '.join(MODELS)}")
        parts = store.parts(manifest.tables[name])
        if check_types:
            for part in parts:
                _check_types(part.path, name)
        found[name] = parts
    return found


def _check_types(path: Path, table: str) -> None:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise VersionDamagedError(f"{path} cannot be read: {str(err)[:200]}") from None
    if not plain_schema(schema).equals(arrow_schema(table)):
        raise VersionDamagedError(f"{path} does not have the contract's columns and types")


def table_sql(table: str, parts: Sequence[Part], ordered: bool = True, union_by_name: bool = False) -> str:
    """The query of one table of a version from its parts: the rows of the newest generation of
    each key, `ordered` as a version written whole holds them: by its key for a table that
    declares one (`SORTED_BY`), else as written (capture, then line, for papers and rejects)."""
    if ordered and table in SORTED_BY:
        rows = live_sql(parts, REPLACED_BY[table], union_by_name=union_by_name)
        return f"SELECT * FROM ({rows}) ORDER BY {', '.join(SORTED_BY[table])}"
    return live_sql(parts, REPLACED_BY[table], ordered=ordered, union_by_name=union_by_name)


def reader() -> AbstractContextManager[Any]:
    """An in-memory DuckDB connection with the readers' settings. Opening one costs ~15 ms: a
    reader of several tables reads them all through one."""
    return connect(memory_limit=READER_MEMORY, threads=1)


def table_batches(
    table: str, parts: Sequence[Part], rows: int = _BATCH_ROWS, through: Any = None
) -> Iterator[pa.RecordBatch]:
    """One table of a version, batch by batch, in the contract's types (dictionaries as plain);
    read `through` a `reader()` connection when given, else through one of its own."""
    schema = arrow_schema(table)
    connection = contextlib.nullcontext(through) if through is not None else reader()
    with reading(), connection as con:
        for batch in con.sql(table_sql(table, parts)).to_arrow_reader(rows):
            yield _typed(batch, schema)


def _typed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (KeyError, pa.ArrowException) as err:
        raise VersionDamagedError(f"a table's rows are not of the contract's types: {str(err)[:200]}") from None


def table_arrow(table: str, parts: Sequence[Part]) -> pa.Table:
    """One table of a version, whole, as stored (its coded columns as dictionaries)."""
    batches = list(table_batches(table, parts, 65_536))
    plain = pa.Table.from_batches(batches, schema=arrow_schema(table))
    stored = published_schema(table)
    columns = [
        plain.column(f.name).dictionary_encode() if pa.types.is_dictionary(f.type) else plain.column(f.name)
        for f in stored
    ]
    return pa.Table.from_arrays(columns, schema=stored)


def read_tables(store: Store, version_id: str, tables: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """A version's tables in pandas (dates stay `datetime.date`), each file verified against the
    manifest's sha256 and size and the contract's types first."""
    manifest = store.manifest(version_id)
    frames = {}
    with reader() as con:
        for name, parts in version_parts(store, manifest, tables).items():
            table = pa.Table.from_batches(list(table_batches(name, parts, through=con)), schema=arrow_schema(name))
            try:
                frames[name] = table.to_pandas(date_as_object=True)
            except (pa.ArrowException, ValueError, OverflowError) as err:  # e.g. a date32 past year 9999
                raise VersionDamagedError(f"{name} holds values pandas cannot read: {str(err)[:200]}") from None
    return frames


def all_parts(store: Store, manifest: Manifest) -> Mapping[str, list[Part]]:
    """Every table of a version as verified parts (types checked)."""
    try:
        return version_parts(store, manifest)
    except UnreadableInputError as err:
        raise VersionDamagedError(str(err)) from None
