"""Columnar assembly: staged captures (and the parent version) → the tables of a new version, in DuckDB.

Set operations over Parquet, never one Python object per paper: DuckDB reads the staged files,
works within a memory limit (spilling to disk beyond it) and keeps the result in a database file
that the publish step streams from. Reads input files; writes only its own scratch database.
"""

from __future__ import annotations

import errno
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset

from pipeline.reference import Reference
from pipeline.store import StoreError, StoreWriteError
from pipeline.tables import CHANGE_INPUTS, LINEAGE_COLUMNS, categories_table, registry_table, staged_schema
from schemas import FOREIGN_KEYS, MODELS, arrow_schema
from schemas.validate import REPORT_COLUMNS

# DuckDB's share of the run's memory: beyond it, joins and sorts spill to the scratch folder.
# A reader (publishing streams two tables at once) needs only the join of papers with `seen`.
DEFAULT_MEMORY_LIMIT = "384MB"
READER_MEMORY_LIMIT = "192MB"
# Rows per batch read back for publishing: papers and rejects carry ~2.6 KB of text a row, so
# fewer of them keep a batch (and what DuckDB buffers ahead of it) near 40 MB.
BATCH_ROWS = 65_536
TEXT_BATCH_ROWS = 16_384
_TEXT_TABLES = frozenset({"papers", "rejects"})
# Order of each light published table: by its key (papers and rejects keep capture, then line order).
ORDER_BY: dict[str, str] = {
    "authors": "author_id",
    "paper_authors": "paper_id, position",
    "organizations": "org_id",
    "paper_organizations": "paper_id, position",
    "categories": "category",
    "rejects": "ordinal, source_line",
    "changes": "paper_id",
}
_SEPARATOR = "chr(31)"  # between the authors (and organisations) of a paper when they are compared


@dataclass(frozen=True, slots=True)
class CaptureFiles:
    """One staged capture as assembly sees it: its name, date and Parquet files per table."""

    source_file: str
    capture_date: date
    files: Mapping[str, Sequence[Path]]


@dataclass(frozen=True, slots=True)
class Assembled:
    """What assembly built: the database that holds the version's tables, and their counts."""

    database: Path
    row_counts: dict[str, int]
    changes: dict[str, int]
    parent_papers: int
    removed_by_origin: dict[str, int]


class UnreadableInputError(StoreError):
    """A staged or published Parquet file holds values DuckDB cannot read (damaged or tampered)."""


# What DuckDB says (in its message only) when the disk refuses a write.
_WRITE_ERRNOS = (("No space left", errno.ENOSPC), ("Read-only file system", errno.EROFS),
                 ("Permission denied", errno.EACCES), ("Disk quota", errno.EDQUOT))  # fmt: skip


@contextmanager
def _reading() -> Iterator[None]:
    """DuckDB's errors as the store's: a file's values it cannot read (invalid UTF-8, say) are
    damage; a database or spill file it cannot write is a write error with its cause (a full or
    read-only disk: exit 2, one line), never a crash."""
    try:
        yield
    except duckdb.InvalidInputException as err:
        raise UnreadableInputError(f"a Parquet file cannot be read: {str(err)[:300]}") from None
    except (duckdb.IOException, duckdb.TransactionException) as err:
        code = next((number for text, number in _WRITE_ERRNOS if text in str(err)), None)
        raise StoreWriteError(f"assembly could not write its working files: {str(err)[:300]}", code) from None


@contextmanager
def connect(database: Path, memory_limit: str = DEFAULT_MEMORY_LIMIT, read_only: bool = False) -> Iterator[Any]:
    """A DuckDB connection to the assembly database, limited in memory, spilling beside it."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "preserve_insertion_order": True,
    }
    if read_only:
        config["threads"] = 1  # a reader streams in order: more threads only buffer ahead
    else:
        config["temp_directory"] = str(database.with_suffix(".spill"))
    connection = duckdb.connect(str(database), read_only=read_only, config=config)
    try:
        yield connection
    finally:
        connection.close()


def sql_files(paths: Sequence[Path]) -> str:
    """A list of paths as a DuckDB list literal (for read_parquet)."""
    return "[" + ", ".join(_quote(str(p)) for p in paths) + "]"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _count(con: Any, query: str) -> int:
    row = con.execute(query).fetchone()
    return int(row[0]) if row else 0


def _staged_view(con: Any, table: str, captures: Sequence[CaptureFiles]) -> None:
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


def build_version(
    database: Path,
    captures: Sequence[CaptureFiles],
    reference: Reference,
    parent: Mapping[str, Path] | None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Assembled:
    """Assemble every capture into one dataset in `database`: one row per paper, the latest
    capture winning.

    Captures are ordered by capture date, then file name; a paper's fields come from the last
    capture that shows it, and first_seen/last_seen span all captures that show it. An author is
    shown in the richest spelling any capture gives (most non-ASCII letters, then the most
    frequent, then the greatest). Changes are against `parent` (its Parquet files by table; all
    papers are added when there is none).

    The light tables are built in the database, sorted by key. Papers and rejects, which carry
    the long texts, are views over the staged files that the publish step streams (in capture,
    then line order): copying or sorting ~1.3 KB of text per paper would cost more than all the
    rest of assembly. Changes compare hashes of those texts, never the texts side by side.
    """
    ordered = ordered_captures(captures)
    with _reading(), connect(database, memory_limit) as con:
        con.register(
            "capture_list",
            pa.table({
                "ordinal": list(range(len(ordered))),
                "source_file": [c.source_file for c in ordered],
                "capture_date": pa.array([c.capture_date for c in ordered], pa.date32()),
            }),
        )  # fmt: skip
        con.execute("CREATE TABLE captures AS SELECT * FROM capture_list")
        for table in ("papers", "paper_authors", "paper_organizations", "rejects"):
            _staged_view(con, table, ordered)
        _build_tables(con, reference)
        _build_changes(con, parent)
        counts = {name: _count(con, f"SELECT count(*) FROM {name}") for name in MODELS}
        changes = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
        parent_papers, removed = 0, {}
        if parent is not None:
            parent_papers = _count(con, "SELECT count(*) FROM parent_papers")
            removed = dict(
                con.execute(
                    "SELECT p.source_file, count(*) FROM changes c JOIN parent_papers p USING (paper_id) "
                    "WHERE c.change = 'removed' GROUP BY p.source_file"
                ).fetchall()
            )
    return Assembled(database, counts, changes, parent_papers, removed)


def _select(table: str, sources: Mapping[str, str]) -> str:
    """The select list of a published table, in the contract's column order: each column from
    the source named for it in `sources`, else from `s` (the staged row)."""
    return ", ".join(f'{sources.get(name, "s")}."{name}"' for name in arrow_schema(table).names)


def _build_tables(con: Any, reference: Reference) -> None:
    con.execute(
        "CREATE TABLE seen AS SELECT paper_id, max(ordinal) AS ordinal, "
        "min(c.capture_date) AS first_seen, max(c.capture_date) AS last_seen "
        "FROM s_papers JOIN captures c USING (ordinal) GROUP BY paper_id"
    )
    paper_columns = _select("papers", {"source_file": "c", "first_seen": "w", "last_seen": "w"})
    con.execute(
        f"CREATE VIEW papers AS SELECT {paper_columns} FROM s_papers s "
        "JOIN seen w ON s.paper_id = w.paper_id AND s.ordinal = w.ordinal "
        "JOIN captures c ON c.ordinal = s.ordinal"
    )
    winners = "JOIN seen w ON s.paper_id = w.paper_id AND s.ordinal = w.ordinal"
    for table in ("paper_authors", "paper_organizations"):
        con.execute(
            f"CREATE TABLE {table} AS SELECT {_select(table, {})} FROM s_{table} s {winners} ORDER BY {ORDER_BY[table]}"
        )
    # Diacritics carry information that folding removes, so the richest spelling is shown.
    con.execute(
        "CREATE TABLE authors AS SELECT author_id, name, name_key, given_name, family_name FROM ("
        "  SELECT author_id, name, any_value(name_key) AS name_key, any_value(given_name) AS given_name,"
        "         any_value(family_name) AS family_name, count(*) AS listed,"
        "         length(regexp_replace(name, '[\\x00-\\x7F]', '', 'g')) AS non_ascii"
        "  FROM s_paper_authors GROUP BY author_id, name"
        ") WHERE author_id IN (SELECT author_id FROM paper_authors) "
        "QUALIFY row_number() OVER (PARTITION BY author_id ORDER BY non_ascii DESC, listed DESC, name DESC) = 1 "
        f"ORDER BY {ORDER_BY['authors']}"
    )
    con.register("registry", registry_table(reference))
    con.execute(
        "CREATE TABLE organizations AS SELECT * FROM ("
        "  SELECT org_id, name, ror_id FROM registry UNION ALL"
        "  SELECT DISTINCT org_id, NULL, NULL FROM paper_organizations"
        "  WHERE org_id NOT IN (SELECT org_id FROM registry)"
        f") ORDER BY {ORDER_BY['organizations']}"
    )
    con.register("taxonomy", categories_table(reference))
    con.execute("CREATE TABLE categories AS SELECT * FROM taxonomy")
    reject_columns = _select("rejects", {"source_file": "c"})
    con.execute(f"CREATE VIEW rejects AS SELECT {reject_columns} FROM s_rejects s JOIN captures c USING (ordinal)")


def _content_table(con: Any, name: str, papers: str, authors: str, orgs: str, columns: Sequence[str]) -> None:
    """`name`: per paper, a hash of every field that defines it (lineage excluded), of its author
    and organisation lists, and of all of them (`whole`). Hashes of long texts compare as the texts
    do, and make narrow tables: built step by step, each fits DuckDB's memory or spills."""
    sep = _SEPARATOR
    con.execute(
        f"CREATE TEMP TABLE {name}_authors AS SELECT paper_id, "
        f"hash(string_agg(name_as_listed, {sep} ORDER BY position)) AS authors FROM {authors} GROUP BY paper_id"
    )
    con.execute(
        f"CREATE TEMP TABLE {name}_orgs AS SELECT paper_id, "
        f"hash(string_agg(org_id, {sep} ORDER BY position)) AS organizations FROM {orgs} GROUP BY paper_id"
    )
    fields = ", ".join(f'hash("{c}") AS "{c}"' for c in columns)
    organizations = "coalesce(o.organizations, hash(''))"
    whole = ", ".join([*(f'p."{c}"' for c in columns), "a.authors", organizations])
    con.execute(
        f"CREATE TEMP TABLE {name} AS SELECT p.*, a.authors, {organizations} AS organizations, hash({whole}) AS whole "
        f"FROM (SELECT paper_id, {fields} FROM {papers}) p "
        f"LEFT JOIN {name}_authors a USING (paper_id) LEFT JOIN {name}_orgs o USING (paper_id)"
    )


def _check_dates(con: Any, view: str, table: str) -> None:
    """UnreadableInputError when a date of a published table lies past what readers take (pandas
    and Python stop at year 9999): such a value is damage, never a date a listing gave."""
    dates = [f.name for f in arrow_schema(table) if pa.types.is_date(f.type)]
    if not dates:
        return
    late = " OR ".join(f"\"{c}\" > DATE '9999-12-31'" for c in dates)
    found = _count(con, f"SELECT count(*) FROM {view} WHERE {late}")
    if found:
        raise UnreadableInputError(f"{view} holds {found} date(s) past the year 9999: damaged or edited")


def _build_changes(con: Any, parent: Mapping[str, Path] | None) -> None:
    """`changes`: papers added, updated (with the fields that differ) or removed against the parent."""
    if parent is None:
        con.execute(
            "CREATE TABLE changes AS SELECT paper_id, 'added' AS change, '' AS changed_fields FROM papers "
            "ORDER BY paper_id"
        )
        return
    for table in CHANGE_INPUTS:
        con.execute(f"CREATE TEMP VIEW parent_{table} AS SELECT * FROM read_parquet({_quote(str(parent[table]))})")
        _check_dates(con, f"parent_{table}", table)
    parent_columns = {row[0] for row in con.execute("DESCRIBE parent_papers").fetchall()}
    columns = [
        c for c in arrow_schema("papers").names if c not in LINEAGE_COLUMNS and c != "paper_id" and c in parent_columns
    ]
    _content_table(con, "now_content", "papers", "paper_authors", "paper_organizations", columns)
    _content_table(con, "then_content", "parent_papers", "parent_paper_authors", "parent_paper_organizations", columns)
    # Which papers differ, from two narrow columns; then, for those only, which fields.
    con.execute(
        "CREATE TEMP TABLE differing AS SELECT coalesce(n.paper_id, t.paper_id) AS paper_id, "
        "t.paper_id IS NULL AS added, n.paper_id IS NULL AS removed "
        "FROM (SELECT paper_id, whole FROM now_content) n "
        "FULL OUTER JOIN (SELECT paper_id, whole FROM then_content) t ON n.paper_id = t.paper_id "
        "WHERE n.paper_id IS NULL OR t.paper_id IS NULL OR n.whole <> t.whole"
    )
    compared = [*columns, "authors", "organizations"]
    differs = [f'CASE WHEN n."{c}" IS DISTINCT FROM t."{c}" THEN {_quote(c)} END' for c in compared]
    con.execute(
        "CREATE TABLE changes AS SELECT d.paper_id, "
        "CASE WHEN d.added THEN 'added' WHEN d.removed THEN 'removed' ELSE 'updated' END AS change, "
        f"CASE WHEN d.added OR d.removed THEN '' ELSE concat_ws(',', {', '.join(differs)}) END AS changed_fields "
        "FROM differing d LEFT JOIN now_content n ON n.paper_id = d.paper_id "
        "LEFT JOIN then_content t ON t.paper_id = d.paper_id ORDER BY d.paper_id"
    )


def changes_between(old: Mapping[str, Path], new: Mapping[str, Path]) -> tuple[pd.DataFrame, int, int]:
    """The changes from one version to another (their Parquet files by table), each with the
    paper's title; and the papers in each."""
    spill = tempfile.TemporaryDirectory(prefix="pipeline-diff-")
    con = duckdb.connect(config={"memory_limit": DEFAULT_MEMORY_LIMIT, "temp_directory": spill.name})
    try:
        with _reading():
            for table in CHANGE_INPUTS:
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({_quote(str(new[table]))})")
                _check_dates(con, table, table)
            _build_changes(con, old)
            changes = con.sql(
                "SELECT c.*, coalesce(n.title, o.title) AS title FROM changes c LEFT JOIN papers n USING (paper_id) "
                "LEFT JOIN parent_papers o USING (paper_id) ORDER BY paper_id"
            ).df()
            before = _count(con, "SELECT count(*) FROM parent_papers")
            after = _count(con, "SELECT count(*) FROM papers")
    finally:
        con.close()
        spill.cleanup()
    return changes, before, after


# --- checks that need the whole table: keys and foreign keys ----------------------------------


def _unique_sets(table: str) -> list[list[str]]:
    schema = MODELS[table].to_schema()
    sets = [[name] for name, column in schema.columns.items() if column.unique]
    if schema.unique:
        sets.append(list(schema.unique))
    return sets


def key_failures(database: Path) -> pd.DataFrame:
    """Rows that break a uniqueness rule of the contract or have a foreign key without a parent
    row, one report row each (row: its 0-based position in the published table)."""
    with _reading(), connect(database, read_only=True) as con:
        return _key_failures(con)


def file_key_failures(files: Mapping[str, Path]) -> pd.DataFrame:
    """`key_failures` of a version's Parquet files (every table of the contract, by name).

    The files are handed over as Arrow datasets, never as paths: a version folder handed over
    for checking may sit anywhere, under a path DuckDB would read as a pattern."""
    with tempfile.TemporaryDirectory(prefix="pipeline-keys-") as spill:
        con = duckdb.connect(config={"memory_limit": READER_MEMORY_LIMIT, "threads": 1, "temp_directory": spill})
        try:
            with _reading():
                for table, file in files.items():
                    con.register(table, pyarrow.dataset.dataset(str(file), format="parquet"))
                return _key_failures(con)
        finally:
            con.close()


def _key_failures(con: Any) -> pd.DataFrame:
    frames = []
    for table in MODELS:
        numbered = f"(SELECT *, row_number() OVER () - 1 AS row FROM {table})"
        for columns in _unique_sets(table):
            keys = ", ".join(columns)
            frames.append(
                con.execute(
                    f'SELECT {_quote(table)} AS "table", {_quote(keys)} AS "column", '
                    f'\'unique({keys})\' AS "check", CAST(row AS VARCHAR) AS "row", '
                    f"CAST(concat_ws(',', {keys}) AS VARCHAR) AS failure_case FROM ("
                    f"  SELECT row, {keys}, count(*) OVER (PARTITION BY {keys}) AS n FROM {numbered}"
                    ") WHERE n > 1 ORDER BY row"
                ).df()
            )
    for (child, column), (parent, parent_column) in FOREIGN_KEYS.items():
        numbered = f"(SELECT {column}, row_number() OVER () - 1 AS row FROM {child})"
        frames.append(
            con.execute(
                f'SELECT {_quote(child)} AS "table", {_quote(column)} AS "column", '
                f'{_quote(f"foreign_key({parent}.{parent_column})")} AS "check", '
                f'CAST(row AS VARCHAR) AS "row", CAST({column} AS VARCHAR) AS failure_case '
                f"FROM {numbered} WHERE {column} NOT IN (SELECT {parent_column} FROM {parent}) ORDER BY row"
            ).df()
        )
    found = [f for f in frames if len(f)]
    return pd.concat(found, ignore_index=True)[REPORT_COLUMNS] if found else pd.DataFrame(columns=REPORT_COLUMNS)


def table_batches(database: Path, table: str, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """One assembled table, in its published order, batch by batch."""
    rows = batch_rows or (TEXT_BATCH_ROWS if table in _TEXT_TABLES else BATCH_ROWS)
    with _reading(), connect(database, READER_MEMORY_LIMIT, read_only=True) as con:
        reader = con.sql(f"SELECT * FROM {table}").to_arrow_reader(rows)
        yield from reader


def staged_rejects(captures: Sequence[CaptureFiles], limit: int | None = None) -> Iterator[pa.RecordBatch]:
    """Every reject of every capture as published rows (capture order, then line), without
    assembling anything else: for a refused run. `limit`: only the first rows.

    Read in the staged files' own order (parts in line order, one thread) rather than sorted: a
    refused run is the one with the most rejects, and sorting them all would take their size in
    memory."""
    ordered = ordered_captures(captures)
    with tempfile.TemporaryDirectory(prefix="pipeline-rejects-") as spill:
        con = duckdb.connect(config={"memory_limit": READER_MEMORY_LIMIT, "threads": 1, "temp_directory": spill})
        try:
            con.register(
                "captures",
                pa.table({"ordinal": list(range(len(ordered))), "source_file": [c.source_file for c in ordered]}),
            )
            _staged_view(con, "rejects", ordered)
            tail = f" LIMIT {int(limit)}" if limit is not None else ""
            columns = _select("rejects", {"source_file": "c"})
            query = f"SELECT {columns} FROM s_rejects s JOIN captures c USING (ordinal){tail}"
            with _reading():
                yield from con.sql(query).to_arrow_reader(TEXT_BATCH_ROWS)
        finally:
            con.close()
