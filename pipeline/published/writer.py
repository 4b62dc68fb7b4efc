"""Rows of a table written as files of one generation: checked, streamed to Parquet, cut between keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import DatasetInvalidError
from pipeline.settings import METADATA_PREFIX, PARQUET_OPTIONS, TARGET_FILE_BYTES, VERSION
from pipeline.storage.files import file_digest, fsync_file
from schemas.tables import plain_schema
from schemas.validate import REPORT_COLUMNS, report_row

# A source of one table's rows, read once, batch by batch: a version is written as it is read.
Batches = Callable[[], Iterable[pa.RecordBatch]]


# Checks one batch (table name, batch, number of rows before it); returns the failures it found
# in the report format of `schemas.validate` (empty when it conforms).
BatchCheck = Callable[[str, pa.RecordBatch, int], pd.DataFrame]


def no_check(table: str, batch: pa.RecordBatch, offset: int) -> pd.DataFrame:
    """A check that finds nothing: for rows that passed their checks when first written."""
    return pd.DataFrame(columns=REPORT_COLUMNS)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one table (or index) is written: its columns and their types (`schema`, and as stored:
    `stored`), the key a newer generation replaces it by, its declared sort order, and what each
    of its files says about itself in its footer."""

    name: str
    area: str
    schema: pa.Schema
    stored: pa.Schema
    key: tuple[str, ...]
    sorted_by: tuple[str, ...] | None
    footer: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file written into the workspace: its part number, sha256, size and rows."""

    path: Path
    part: int
    sha256: str
    bytes: int
    rows: int


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
    """`batch` (of the plain types) as `schema` stores it: dictionary columns encoded."""
    arrays = [
        column.dictionary_encode() if pa.types.is_dictionary(field.type) else column
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def footer(values: Mapping[str, str]) -> dict[str, str]:
    """A file's key-value footer: `values` under the pipeline's prefix, with the code's version."""
    return {METADATA_PREFIX + key: value for key, value in {**values, "pipeline_version": VERSION}.items()}


def _sorting_columns(spec: TableSpec) -> tuple[Any, ...] | None:
    if not spec.sorted_by:
        return None
    return pq.SortingColumn.from_ordering(spec.stored, [(c, "ascending") for c in spec.sorted_by])


def _first_other_key(batch: pa.RecordBatch, key: Sequence[str], last: tuple[Any, ...]) -> int:
    """The index of the first row of `batch` whose key is not `last` (the batch's length when none)."""
    same = None
    for column, value in zip(key, last, strict=True):
        equal = pc.fill_null(pc.equal(batch.column(column), pa.scalar(value, batch.schema.field(column).type)), False)
        same = equal if same is None else pc.and_(same, equal)
    assert same is not None
    found = pc.index(same, False).as_py()
    return batch.num_rows if found < 0 else int(found)


def _last_key(batch: pa.RecordBatch, key: Sequence[str]) -> tuple[Any, ...]:
    return tuple(batch.column(c)[batch.num_rows - 1].as_py() for c in key)


class _Files:
    """The files of one generation being written, one at a time, each cut past the target size
    at the first change of key (a key's rows never span two files)."""

    def __init__(self, spec: TableSpec, folder: Path, first_part: int, target_bytes: int) -> None:
        self.spec, self.folder, self.target = spec, folder, target_bytes
        self.part = first_part
        self.done: list[WrittenFile] = []
        self.writer: pq.ParquetWriter | None = None
        self.path: Path | None = None
        self.sink: Any = None
        self.rows = 0
        self.last: tuple[Any, ...] | None = None

    def _open(self) -> pq.ParquetWriter:
        if self.writer is None:
            self.path = self.folder / f"{self.spec.area}-{self.spec.name}-{self.part:04d}.parquet"
            self.sink = self.path.open("wb")
            self.writer = pq.ParquetWriter(self.sink, self.spec.stored, sorting_columns=_sorting_columns(self.spec),
                                           **PARQUET_OPTIONS)  # fmt: skip
            self.rows = 0
        return self.writer

    def write(self, batch: pa.RecordBatch) -> None:
        """Write `batch` (already conformed and checked), cutting files between keys."""
        if not batch.num_rows:
            return
        if self.writer is not None and self.sink.tell() >= self.target and self.last is not None:
            cut = _first_other_key(batch, self.spec.key, self.last)
            if cut:
                self._append(batch.slice(0, cut))
                batch = batch.slice(cut)
            if batch.num_rows:
                self.close()
        if batch.num_rows:
            self._append(batch)

    def _append(self, batch: pa.RecordBatch) -> None:
        self._open().write_batch(_encoded(batch, self.spec.stored))
        self.rows += batch.num_rows
        self.last = _last_key(batch, self.spec.key)

    def close(self) -> None:
        """Finish the open file, if any: its footer written, synced, hashed."""
        if self.writer is None or self.path is None:
            return
        self.writer.add_key_value_metadata(dict(self.spec.footer))
        self.writer.close()
        self.sink.close()
        fsync_file(self.path)
        digest = file_digest(self.path)
        self.done.append(WrittenFile(self.path, self.part, digest["sha256"], digest["bytes"], self.rows))
        self.writer, self.path, self.sink = None, None, None
        self.part += 1

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.writer = None


def write_generation(
    spec: TableSpec,
    batches: Iterable[pa.RecordBatch],
    folder: Path,
    check: BatchCheck,
    *,
    first_part: int = 0,
    offset: int = 0,
    target_bytes: int = TARGET_FILE_BYTES,
    empty_file: bool = False,
) -> tuple[list[WrittenFile], int, list[pd.DataFrame]]:
    """Stream rows of one table into files of one generation in `folder`, checking every batch
    before it is written; return the files, the rows and the failures (after the first failure,
    batches are still checked, so that the report names every bad row, but no longer written).
    `offset`: the table's rows before these, for numbering rows in the report. `empty_file`: write
    a file even when there is no row (a table must list one).

    A batch is written on a second thread while the next is read and checked: Arrow compresses
    without the GIL, so reading, checking and writing overlap instead of adding up.
    """
    files = _Files(spec, folder, first_part, target_bytes)
    failures: list[pd.DataFrame] = []
    rows = 0
    try:
        with ThreadPoolExecutor(1) as pool:
            writing: Future[None] | None = None
            for raw in batches:
                batch = conform(raw, spec.schema)
                found = check(spec.name, batch, offset + rows)
                if writing is not None:
                    writing.result()  # in order, one at a time; raises what the write raised
                    writing = None
                if len(found):
                    failures.append(found)
                elif not failures:
                    writing = pool.submit(files.write, batch)
                rows += batch.num_rows
            if writing is not None:
                writing.result()
        if failures:
            files.abort()
            return [], rows, failures
        if empty_file and not files.done and files.writer is None:
            files._open()
        files.close()
    except BaseException:
        files.abort()
        raise
    return files.done, rows, failures


def batches_of(table: pa.Table, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """A table's rows as record batches of at most `rows`."""
    yield from table.to_batches(max_chunksize=rows)
