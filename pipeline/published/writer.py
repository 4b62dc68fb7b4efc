"""Writing a table of a version: batches checked, then streamed to Parquet with the file's footer metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import DatasetInvalidError
from pipeline.settings import METADATA_PREFIX, PARQUET_OPTIONS, VERSION
from pipeline.storage.local import file_digest, fsync_file
from schemas import MODELS, arrow_schema
from schemas.contract import schema_fingerprint, table_contract_json
from schemas.tables import SORTED_BY, plain_schema, published_schema
from schemas.validate import REPORT_COLUMNS, report_row

# A source of one table's rows, read once, batch by batch: a version is written as it is read.
Batches = Callable[[], Iterable[pa.RecordBatch]]


# Checks one batch (table name, batch, number of rows before it); returns the failures it found
# in the report format of `schemas.validate` (empty when it conforms).
BatchCheck = Callable[[str, pa.RecordBatch, int], pd.DataFrame]


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with the contract's names, order and types (a missing or extra column is an error)."""
    if batch.schema.names != schema.names:
        raise DatasetInvalidError(
            pd.DataFrame([report_row(schema.names[0], "columns", f"{batch.schema.names} != {schema.names}")],
                         columns=REPORT_COLUMNS)
        )  # fmt: skip
    arrays = [column.cast(field.type) for column, field in zip(batch.columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with its dictionary columns as plain ones (what the checks and `arrow_schema` see)."""
    schema = plain_schema(batch.schema)
    if schema.equals(batch.schema):
        return batch
    return pa.RecordBatch.from_arrays(
        [c.cast(f.type) for c, f in zip(batch.columns, schema, strict=True)], schema=schema
    )


def _encoded(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` (of `arrow_schema`'s types) as `schema` writes it: dictionary columns encoded."""
    arrays = [
        column.dictionary_encode() if pa.types.is_dictionary(field.type) else column
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def footer_metadata(version_id: str) -> dict[str, dict[str, str]]:
    """What each published Parquet file of a version says about itself in its footer (key-value
    metadata), by table. Made once, before the files are written on several threads: pandera's
    contract export swaps the process's warning filters, which is not safe across threads."""
    fingerprint = schema_fingerprint()
    footers = {}
    for table in MODELS:
        values = {
            "version_id": version_id,
            "table": table,
            "pipeline_version": VERSION,
            "schema_fingerprint": fingerprint,
            "contract": table_contract_json(table),
        }
        footers[table] = {METADATA_PREFIX + key: value for key, value in values.items()}
    return footers


def _sorting_columns(table: str, schema: pa.Schema) -> tuple[Any, ...] | None:
    columns = SORTED_BY.get(table)
    return pq.SortingColumn.from_ordering(schema, [(c, "ascending") for c in columns]) if columns else None


def write_batches(
    table: str,
    batches: Iterable[pa.RecordBatch],
    path: Path,
    check: BatchCheck,
    footer: Mapping[str, str],
    offset: int = 0,
) -> tuple[dict[str, Any], int, list[pd.DataFrame]]:
    """Stream one table into a Parquet file, checking every batch before it is written; return
    the file's digest, its rows and the failures (after the first failure, batches are still
    checked, so that the report names every bad row, but no longer written). `offset`: the
    table's rows before these, for numbering rows in the report. `footer`: the file's key-value
    metadata (`footer_metadata`); its schema is `published_schema` and its sort order declared.

    A batch is written on a second thread while the next is read and checked: Arrow compresses
    without the GIL, so reading, checking and writing overlap instead of adding up.
    """
    schema, written = arrow_schema(table), published_schema(table)
    failures: list[pd.DataFrame] = []
    rows = 0
    with (
        pq.ParquetWriter(path, written, sorting_columns=_sorting_columns(table, written), **PARQUET_OPTIONS) as writer,
        ThreadPoolExecutor(1) as pool,
    ):
        writing: Future[None] | None = None
        for raw in batches:
            batch = conform(raw, schema)
            found = check(table, batch, offset + rows)
            if writing is not None:
                writing.result()  # in order, one at a time; raises what the write raised
                writing = None
            if len(found):
                failures.append(found)
            elif not failures:
                writing = pool.submit(writer.write_batch, _encoded(batch, written))
            rows += batch.num_rows
        if writing is not None:
            writing.result()
        writer.add_key_value_metadata(dict(footer))
    fsync_file(path)
    return file_digest(path), rows, failures
