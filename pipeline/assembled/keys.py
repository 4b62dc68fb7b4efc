"""Checks over whole tables: uniqueness and foreign keys, in DuckDB, of an assembly or of a version's files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset

from pipeline.assembled.captures import count
from pipeline.db import connect, reading, sql_text
from pipeline.settings import READER_MEMORY
from schemas import FOREIGN_KEYS, MODELS
from schemas.validate import REPORT_COLUMNS


def _unique_sets(table: str) -> list[list[str]]:
    schema = MODELS[table].to_schema()
    sets = [[name] for name, column in schema.columns.items() if column.unique]
    if schema.unique:
        sets.append(list(schema.unique))
    return sets


def key_failures(database: Path) -> pd.DataFrame:
    """Rows that break a uniqueness rule of the contract or have a foreign key without a parent
    row, one report row each (row: its 0-based position in the published table)."""
    # The readers' settings: the checks run beside the publishing readers, on one shared instance.
    with reading(), connect(database, memory_limit=READER_MEMORY, threads=1, read_only=True) as con:
        # Papers' keys from `now_rows`, which holds them in publish order, not from the staged texts.
        return _key_failures(con, {"papers": "(SELECT paper_id, category, position AS row FROM now_rows)"})


def file_key_failures(files: Mapping[str, Path]) -> pd.DataFrame:
    """`key_failures` of a version's Parquet files (every table of the contract, by name).

    The files are handed over as Arrow datasets, never as paths: a version folder handed over
    for checking may sit anywhere, under a path DuckDB would read as a pattern."""
    with connect(memory_limit=READER_MEMORY, threads=1) as con, reading():
        for table, file in files.items():
            con.register(table, pyarrow.dataset.dataset(str(file), format="parquet"))
        return _key_failures(con)


def _key_failures(con: Any, numbered_as: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Key failures of the tables `con` holds by the contract's names; `numbered_as`: a relation
    to check in place of a table, with its key columns and `row` (its position).

    Each rule is first checked without numbering rows (an aggregate, an anti-join), and only a
    rule that fails numbers them to name its bad rows."""
    numbered_as = numbered_as or {}

    def numbered(table: str) -> str:
        return numbered_as.get(table, f"(SELECT *, row_number() OVER () - 1 AS row FROM {table})")

    def plain(table: str) -> str:
        return numbered_as.get(table, table)

    frames = []
    for table in MODELS:
        for columns in _unique_sets(table):
            keys = ", ".join(columns)
            repeated = f"SELECT {keys} FROM {plain(table)} GROUP BY ALL HAVING count(*) > 1"
            if not count(con, f"SELECT count(*) FROM ({repeated})"):
                continue
            frames.append(
                con.execute(
                    f'SELECT {sql_text(table)} AS "table", {sql_text(keys)} AS "column", '
                    f'\'unique({keys})\' AS "check", CAST(row AS VARCHAR) AS "row", '
                    f"CAST(concat_ws(',', {keys}) AS VARCHAR) AS failure_case FROM ("
                    f"  SELECT row, {keys}, count(*) OVER (PARTITION BY {keys}) AS n FROM {numbered(table)}"
                    ") WHERE n > 1 ORDER BY row"
                ).df()
            )
    for (child, column), (parent, parent_column) in FOREIGN_KEYS.items():
        orphans = f"{column} NOT IN (SELECT {parent_column} FROM {plain(parent)})"
        if not count(con, f"SELECT count(*) FROM (SELECT {column} FROM {plain(child)} WHERE {orphans})"):
            continue
        frames.append(
            con.execute(
                f'SELECT {sql_text(child)} AS "table", {sql_text(column)} AS "column", '
                f'{sql_text(f"foreign_key({parent}.{parent_column})")} AS "check", '
                f'CAST(row AS VARCHAR) AS "row", CAST({column} AS VARCHAR) AS failure_case '
                f"FROM {numbered(child)} WHERE {orphans} ORDER BY row"
            ).df()
        )
    found = [f for f in frames if len(f)]
    return pd.concat(found, ignore_index=True)[REPORT_COLUMNS] if found else pd.DataFrame(columns=REPORT_COLUMNS)
