"""What assembly reads and returns: staged captures, the parent version, the rows a new version writes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.assembled.generations import Part
from pipeline.db import sql_files
from pipeline.errors import UnreadableInputError
from pipeline.parse.tables import ASSEMBLED_COLUMNS, staged_schema
from schemas.tables import arrow_schema

# A source of rows, read once, batch by batch.
Batches = Callable[[], Iterable[pa.RecordBatch]]


@dataclass(frozen=True, slots=True)
class CaptureFiles:
    """One staged capture as assembly sees it: its name, date, staged key and Parquet files per table."""

    source_file: str
    capture_date: date
    key: str
    files: Mapping[str, Sequence[Path]]

    @property
    def order(self) -> tuple[date, str]:
        """Where the capture falls among others: the latest capture's rows win (`ordered_captures`)."""
        return (self.capture_date, self.source_file)


@dataclass(frozen=True)
class ParentVersion:
    """The version a new one is assembled against.

    `index`: the parts of the indexes it was published with (`pipeline.assembled.index`), by
    name, when they are whole and of today's recipe (else empty: it is then compared by its
    tables); `tables`: the parts of its tables, read only when needed (verified when called);
    `row_counts`: its tables' rows, `index_counts` its indexes' (the rows of each that count)."""

    version_id: str
    index: Mapping[str, list[Part]]
    tables: Callable[[Sequence[str]], Mapping[str, list[Part]]]
    row_counts: Mapping[str, int]
    index_counts: Mapping[str, int]


@dataclass(frozen=True)
class TableRows:
    """What a new version writes of one table (or index): `rows` in the order to write them, and
    how they meet the parent's: `whole`, they are the table (no file of the parent is kept); else
    they are added as a newer generation that supersedes `replaced` of the parent's rows, and
    `dropped` gives the keys of the parent's rows that go with nothing in their place."""

    rows: Batches
    count: int
    whole: bool
    replaced: int = 0
    dropped: Batches | None = None
    dropped_count: int = 0


@dataclass(frozen=True)
class Assembled:
    """What assembly built: the database that holds the rows to write (None when they come from
    elsewhere), by table and index, and what the run reports and guards with."""

    database: Path | None
    incremental: bool
    tables: dict[str, TableRows]
    index: dict[str, TableRows]
    row_counts: dict[str, int]
    index_counts: dict[str, int]
    changes: dict[str, int]
    parent_papers: int
    removed_by_origin: dict[str, int] = field(default_factory=dict)
    reason: str = ""  # why the version was assembled whole, when it was


def count(con: Any, query: str) -> int:
    rows = con.execute(query).fetchall()  # all of them: a result left open blocks the connection
    return int(rows[0][0]) if rows else 0


def staged_view(con: Any, table: str, captures: Sequence[CaptureFiles], first_ordinal: int = 0) -> None:
    """`s_<table>`: the staged rows of every capture, each tagged with its capture's ordinal."""
    columns = ", ".join(f'"{name}"' for name in staged_schema(table).names)
    parts = [
        f"SELECT {columns}, {first_ordinal + ordinal} AS ordinal FROM read_parquet({sql_files(c.files[table])})"
        for ordinal, c in enumerate(captures)
    ]
    if not parts:
        schema = ", ".join(f'NULL::{_sql_type(f.type)} AS "{f.name}"' for f in staged_schema(table))
        parts = [f"SELECT {schema}, NULL::INTEGER AS ordinal WHERE false"]
    con.execute(f"CREATE OR REPLACE VIEW s_{table} AS " + " UNION ALL ".join(parts))


_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.bool_(): "BOOLEAN",
              pa.float64(): "DOUBLE", pa.date32(): "DATE", pa.uint64(): "UBIGINT"}  # fmt: skip


def _sql_type(kind: pa.DataType) -> str:
    return _SQL_TYPES[kind]


def ordered_captures(captures: Sequence[CaptureFiles]) -> list[CaptureFiles]:
    """Captures in the order in which the latest wins: capture date, then file name."""
    return sorted(captures, key=lambda c: c.order)


def select(table: str, sources: Mapping[str, str]) -> str:
    """The select list of a published table, in the contract's column order: each column from
    the source named for it in `sources` (every column assembly adds must be named), else from
    `s` (the staged row)."""
    missing = set(ASSEMBLED_COLUMNS.get(table, ())) - set(sources)
    if missing:
        raise ValueError(f"no source for the assembled column(s) {sorted(missing)} of {table}")
    return ", ".join(f'{sources.get(name, "s")}."{name}"' for name in arrow_schema(table).names)


def check_dates(con: Any, view: str, table: str) -> None:
    """UnreadableInputError when a date of a published table lies past what readers take (pandas
    and Python stop at year 9999): such a value is damage, never a date a listing gave."""
    dates = [f.name for f in arrow_schema(table) if pa.types.is_date(f.type)]
    if not dates:
        return
    late = " OR ".join(f"\"{c}\" > DATE '9999-12-31'" for c in dates)
    found = count(con, f"SELECT count(*) FROM {view} WHERE {late}")
    if found:
        raise UnreadableInputError(f"{view} holds {found} date(s) past the year 9999: damaged or edited")
