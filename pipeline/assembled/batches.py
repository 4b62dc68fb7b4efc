"""An assembly read back for publishing: each table's rows to write, batch by batch; a refused run's rejects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.assembled.captures import CaptureFiles, ordered_captures, select, staged_view
from pipeline.assembled.rules import papers_select
from pipeline.db import connect, reading, sql_text
from pipeline.settings import READER_MEMORY

# Rows per batch read back for publishing: papers and rejects carry ~2.6 KB of text a row, so
# fewer of them keep a batch (and what DuckDB buffers ahead of it) near 40 MB.
BATCH_ROWS = 65_536
TEXT_BATCH_ROWS = 16_384
_TEXT_TABLES = frozenset({"papers", "rejects", "new_papers", "new_rejects"})

ORDINAL_COLUMN = "capture_ordinal"  # the winning capture of a papers row, read beside it to check the order


def read_assembly(database: Path) -> AbstractContextManager[Any]:
    """A read-only connection to the assembly database, with the readers' settings. While one is
    open, every other reader in this process joins its database rather than opening the file
    again (DuckDB keeps one instance per file and settings): ~0.3 ms instead of ~20 ms each."""
    return connect(database, memory_limit=READER_MEMORY, threads=1, read_only=True)


def relation_batches(database: Path, relation: str, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of a table or view of the assembly database, as stored, batch by batch."""
    rows = batch_rows or (TEXT_BATCH_ROWS if relation in _TEXT_TABLES else BATCH_ROWS)
    with reading(), read_assembly(database) as con:
        yield from con.sql(f"SELECT * FROM {relation}").to_arrow_reader(rows)


def papers_batches(database: Path, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The papers rows to write (those of `now_rows`), in batches of `batch_rows` (the last shorter).

    Rows come in capture, then line order. A join does not keep its input's order, so each staged
    part is joined and sorted on its own (a few MB); a batch out of order raises RuntimeError,
    never publishes."""
    rows = batch_rows or TEXT_BATCH_ROWS
    with reading(), read_assembly(database) as con:
        last: tuple[int, int] | None = None
        for batch in _rechunked(_papers_pieces(con, rows), rows):
            last = check_order(batch, last)
            yield batch.drop_columns([ORDINAL_COLUMN])


def _papers_pieces(con: Any, rows: int) -> Iterator[pa.RecordBatch]:
    """Papers rows to write, part by part, each part in line order."""
    parts = con.execute(
        "SELECT p.ordinal, p.path, p.first_line, p.last_line FROM capture_parts p "
        "WHERE EXISTS (SELECT 1 FROM now_rows n WHERE n.ordinal = p.ordinal AND n.source_line BETWEEN "
        "p.first_line AND p.last_line) ORDER BY p.ordinal, p.part"
    ).fetchall()
    for ordinal, path, first_line, last_line in parts:
        query = (
            f"SELECT {papers_select()}, {ordinal} AS {ORDINAL_COLUMN} "
            f"FROM (SELECT *, {ordinal} AS ordinal FROM read_parquet({sql_text(path)})) s "
            f"JOIN (SELECT * FROM now_rows WHERE ordinal = {ordinal} AND source_line BETWEEN {first_line} AND "
            f"{last_line}) n ON s.paper_id = n.paper_id AND s.source_line = n.source_line "
            f"JOIN captures c ON c.ordinal = n.ordinal ORDER BY s.source_line"
        )
        yield from con.sql(query).to_arrow_reader(rows)


def _rechunked(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly `rows` (the last one shorter): one row group each."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(held)
            yield table.slice(0, rows).combine_chunks().to_batches()[0]
            rest = table.slice(rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def check_order(batch: pa.RecordBatch, last: tuple[int, int] | None) -> tuple[int, int] | None:
    """The (capture, line) of the batch's last row; RuntimeError unless strictly after `last`."""
    if not batch.num_rows:
        return last
    ordinal = np.asarray(batch.column(ORDINAL_COLUMN).to_numpy(zero_copy_only=False), dtype=np.int64)
    line = np.asarray(batch.column("source_line").to_numpy(zero_copy_only=False), dtype=np.int64)
    if last is not None:
        ordinal, line = np.concatenate([[last[0]], ordinal]), np.concatenate([[last[1]], line])
    later = (ordinal[1:] > ordinal[:-1]) | ((ordinal[1:] == ordinal[:-1]) & (line[1:] > line[:-1]))
    if not later.all():
        raise RuntimeError("assembly read papers out of capture and line order: nothing is published")
    return int(ordinal[-1]), int(line[-1])


def staged_rejects(captures: Sequence[CaptureFiles], limit: int | None = None) -> Iterator[pa.RecordBatch]:
    """Every reject of every capture as published rows (capture order, then line), without
    assembling anything else: for a refused run. `limit`: only the first rows.

    Read in the staged files' own order (parts in line order, one thread) rather than sorted: a
    refused run is the one with the most rejects, and sorting them all would take their size in
    memory."""
    ordered = ordered_captures(captures)
    with connect(memory_limit=READER_MEMORY, threads=1) as con:
        con.register(
            "captures",
            pa.table({"ordinal": list(range(len(ordered))), "source_file": [c.source_file for c in ordered]}),
        )
        staged_view(con, "rejects", ordered)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        columns = select("rejects", {"source_file": "c"})
        query = f"SELECT {columns} FROM s_rejects s JOIN captures c USING (ordinal){tail}"
        with reading():
            yield from con.sql(query).to_arrow_reader(TEXT_BATCH_ROWS)
