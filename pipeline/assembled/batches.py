"""An assembly read back for publishing: each table in its published order, batch by batch; a refused run's rejects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.assembled.captures import CaptureFiles, ordered_captures, select, staged_view
from pipeline.db import connect, reading, sql_text
from pipeline.settings import READER_MEMORY
from schemas import arrow_schema

# Rows per batch read back for publishing: papers and rejects carry ~2.6 KB of text a row, so
# fewer of them keep a batch (and what DuckDB buffers ahead of it) near 40 MB.
BATCH_ROWS = 65_536


TEXT_BATCH_ROWS = 16_384


_TEXT_TABLES = frozenset({"papers", "rejects"})


ORDINAL_COLUMN = "capture_ordinal"  # the winning capture of a papers row, read beside it to check the order


def table_batches(database: Path, table: str, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """One assembled table, in its published order, batch by batch."""
    if table == "papers":
        yield from papers_batches(database, 0, batch_rows)
        return
    rows = batch_rows or (TEXT_BATCH_ROWS if table in _TEXT_TABLES else BATCH_ROWS)
    with reading(), connect(database, memory_limit=READER_MEMORY, threads=1, read_only=True) as con:
        reader = con.sql(f"SELECT * FROM {table}").to_arrow_reader(rows)
        yield from reader


def papers_batches(database: Path, start_row: int, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The papers table from row `start_row` on, in batches of `batch_rows` (the last shorter).

    Rows come in capture, then line order, which is what row positions (and so the parent rows a
    refresh keeps) are counted in. A join does not keep its input's order, so each staged part is
    joined and sorted on its own (a few MB); a batch out of order raises RuntimeError, never
    publishes."""
    rows = batch_rows or TEXT_BATCH_ROWS
    with reading(), connect(database, memory_limit=READER_MEMORY, threads=1, read_only=True) as con:
        found = con.execute("SELECT ordinal, source_line FROM now_rows WHERE position = ?", [start_row]).fetchall()
        if not found:
            return
        first = found[0]
        last: tuple[int, int] | None = None
        for batch in _rechunked(_papers_pieces(con, int(first[0]), int(first[1]), rows), rows):
            last = check_order(batch, last)
            yield batch.drop_columns([ORDINAL_COLUMN])


def _papers_pieces(con: Any, ordinal: int, line: int, rows: int) -> Iterator[pa.RecordBatch]:
    """Papers rows from line `line` of capture `ordinal` on, part by part, each part in line order."""

    def select(source_file: str) -> str:
        sources = {"first_seen": 'n."first_seen"', "last_seen": 'n."last_seen"',
                   "source_file": f"{sql_text(source_file)} AS source_file"}  # fmt: skip
        return ", ".join(sources.get(name, f's."{name}"') for name in arrow_schema("papers").names)

    parts = con.execute(
        "SELECT p.ordinal, p.path, p.first_line, p.last_line, c.source_file FROM capture_parts p "
        "JOIN captures c USING (ordinal) WHERE p.ordinal > ? OR (p.ordinal = ? AND p.last_line >= ?) "
        "ORDER BY p.ordinal, p.part",
        [ordinal, ordinal, line],
    ).fetchall()
    for part_ordinal, path, first_line, last_line, source_file in parts:
        low = max(first_line, line) if part_ordinal == ordinal else first_line
        query = (
            f"SELECT {select(source_file)}, {part_ordinal} AS {ORDINAL_COLUMN} "
            f"FROM read_parquet({sql_text(path)}) s JOIN (SELECT paper_id, source_line, first_seen, last_seen "
            f"FROM now_rows WHERE ordinal = {part_ordinal} AND source_line BETWEEN {low} AND {last_line}) n "
            "ON s.paper_id = n.paper_id AND s.source_line = n.source_line ORDER BY s.source_line"
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
