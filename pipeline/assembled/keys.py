"""Checks of keys: uniqueness and foreign keys, in DuckDB, of the rows an assembly writes or of a version's tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.assembled.batches import read_assembly
from pipeline.assembled.captures import count
from pipeline.assembled.generations import REPLACED_BY, Part, live_sql
from pipeline.db import connect, reading, sql_text
from pipeline.settings import READER_MEMORY
from schemas.tables import FOREIGN_KEYS, MODELS
from schemas.validate import REPORT_COLUMNS


def _unique_sets(table: str) -> list[list[str]]:
    schema = MODELS[table].to_schema()
    sets = [[name] for name, column in schema.columns.items() if column.unique]
    if schema.unique:
        sets.append(list(schema.unique))
    return sets


def key_failures(database: Path, incremental: bool) -> pd.DataFrame:
    """Rows an assembly writes that break a uniqueness rule of the contract or have a foreign key
    without a parent row, one report row each (row: its 0-based position among the rows written).

    A refresh writes only what changes, and checks that against what the version will hold: a
    paper's child rows against the papers written with them, an author named against the authors
    whose rows name them (`authors_now`), the rest against the tables written whole."""
    with reading(), read_assembly(database) as con:
        papers = (
            "(SELECT paper_id, category, row_number() OVER (ORDER BY ordinal, source_line) - 1 AS row FROM now_rows)"
        )
        return _key_failures(
            con, {"papers": papers}, {"authors": "authors_now"} if incremental else {},
        )  # fmt: skip


def version_key_failures(parts: Mapping[str, Sequence[Part]]) -> pd.DataFrame:
    """`key_failures` of a version's tables (every table of the contract, by name, from its parts)."""
    with connect(memory_limit=READER_MEMORY, threads=1) as con, reading():
        for table, found in parts.items():
            con.execute(f"CREATE TEMP VIEW {table} AS {live_sql(found, REPLACED_BY[table])}")
        return _key_failures(con)


def _key_failures(
    con: Any, numbered_as: Mapping[str, str] | None = None, parents_as: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Key failures of the tables `con` holds by the contract's names; `numbered_as`: a relation
    to check in place of a table, with its key columns and `row` (its position); `parents_as`: a
    relation a foreign key is looked up in, in place of a table.

    Each rule is first checked without numbering rows (an aggregate, an anti-join), and only a
    rule that fails numbers them to name its bad rows."""
    numbered_as = numbered_as or {}
    parents_as = parents_as or {}

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
        target = parents_as.get(parent, plain(parent))
        orphans = f"{column} NOT IN (SELECT {parent_column} FROM {target})"
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
