"""What assembly reads and returns: staged captures, the parent version, the assembled result; shared SQL helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.db import sql_files
from pipeline.errors import UnreadableInputError
from pipeline.parse.tables import ASSEMBLED_COLUMNS, staged_schema
from schemas import arrow_schema


@dataclass(frozen=True, slots=True)
class CaptureFiles:
    """One staged capture as assembly sees it: its name, date, staged key and Parquet files per table."""

    source_file: str
    capture_date: date
    key: str
    files: Mapping[str, Sequence[Path]]


@dataclass(frozen=True, slots=True)
class ParentVersion:
    """The version a new one is compared with: `files` gives its Parquet files of `CHANGE_INPUTS`
    (verified against its manifest: read only when its paper index cannot serve); the sha256 of
    its papers file, as its manifest gives it; and the paper index written with it, if any."""

    files: Callable[[], Mapping[str, Path]]
    papers_sha256: str
    index: Path | None = None


@dataclass(frozen=True, slots=True)
class Assembled:
    """What assembly built: the database that holds the version's tables, and their counts."""

    database: Path
    row_counts: dict[str, int]
    changes: dict[str, int]
    parent_papers: int
    removed_by_origin: dict[str, int]
    # Leading papers rows that are the parent's own, row for row (0 without a usable index).
    parent_rows_kept: int = 0


def count(con: Any, query: str) -> int:
    rows = con.execute(query).fetchall()  # all of them: a result left open blocks the connection
    return int(rows[0][0]) if rows else 0


def staged_view(con: Any, table: str, captures: Sequence[CaptureFiles]) -> None:
    """`s_<table>`: the staged rows of every capture, each tagged with its capture's ordinal."""
    columns = ", ".join(f'"{name}"' for name in staged_schema(table).names)
    parts = [
        f"SELECT {columns}, {ordinal} AS ordinal FROM read_parquet({sql_files(c.files[table])})"
        for ordinal, c in enumerate(captures)
    ]
    con.execute(f"CREATE OR REPLACE VIEW s_{table} AS " + " UNION ALL ".join(parts))


def ordered_captures(captures: Sequence[CaptureFiles]) -> list[CaptureFiles]:
    """Captures in the order in which the latest wins: capture date, then file name."""
    return sorted(captures, key=lambda c: (c.capture_date, c.source_file))


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
