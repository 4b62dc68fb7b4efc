"""Columnar assembly: staged captures (and the parent version) → the tables of a new version, in DuckDB.

Set operations over Parquet, never one Python object per paper: DuckDB reads the staged files,
works within a memory limit (spilling to disk beyond it) and keeps the result in a database file
that the publish step streams from. Reads input files; writes only its own scratch database.
"""

from __future__ import annotations

import errno
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset
import pyarrow.parquet as pq

from pipeline.content import content_columns, content_recipe, content_schema, create_content_table, hash_columns
from pipeline.reference import Reference
from pipeline.sql import sql_files, sql_text
from pipeline.store import StoreError, StoreWriteError
from pipeline.tables import CHANGE_INPUTS, categories_table, registry_table, staged_schema
from schemas import FOREIGN_KEYS, MODELS, arrow_schema
from schemas.tables import SORTED_BY
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
    **{table: ", ".join(columns) for table, columns in SORTED_BY.items()},
    "rejects": "ordinal, source_line",
}
_ORDINAL = "capture_ordinal"  # the winning capture of a papers row, read beside it to check the order

# The paper index of a version, written beside it (outside the version folder) for the next run:
# where each papers row came from (its position in papers.parquet, staged capture, line and first
# and last seen) and the hashes changes are computed from (those of `index_schema`).
INDEX_IDENTITY = pa.schema([
    pa.field("position", pa.int64(), nullable=False),
    pa.field("paper_id", pa.string(), nullable=False),
    pa.field("capture", pa.int32(), nullable=False),  # into the captures of the footer (`index_metadata`)
    pa.field("source_line", pa.int64(), nullable=False),
    pa.field("first_seen", pa.date32(), nullable=False),
    pa.field("last_seen", pa.date32(), nullable=False),
])  # fmt: skip


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


def _count(con: Any, query: str) -> int:
    rows = con.execute(query).fetchall()  # all of them: a result left open blocks the connection
    return int(rows[0][0]) if rows else 0


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
    parent: ParentVersion | None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Assembled:
    """Assemble every capture into one dataset in `database`: one row per paper, the latest
    capture winning.

    Captures are ordered by capture date, then file name; a paper's fields come from the last
    capture that shows it, and first_seen/last_seen span all captures that show it. An author is
    shown in the richest spelling any capture gives (most non-ASCII letters, then the most
    frequent, then the greatest). Changes are against `parent` (all papers are added when there
    is none).

    The light tables are built in the database, sorted by key. Papers and rejects, which carry
    the long texts, are views over the staged files that the publish step streams (in capture,
    then line order): copying or sorting ~1.3 KB of text per paper would cost more than all the
    rest of assembly. Changes compare hashes of those texts, never the texts side by side.

    The database also holds `paper_index`, the new version's paper index (`INDEX_SCHEMA`). With
    the parent's index, only papers whose winning capture is new to the parent are hashed, and
    `parent_rows_kept` counts the leading papers rows that the parent holds as they are.
    """
    ordered = ordered_captures(captures)
    with _reading(), connect(database, memory_limit) as con:
        con.register(
            "capture_list",
            pa.table({
                "ordinal": list(range(len(ordered))),
                "source_file": [c.source_file for c in ordered],
                "capture_date": pa.array([c.capture_date for c in ordered], pa.date32()),
                "capture_key": [c.key for c in ordered],
            }),
        )  # fmt: skip
        con.execute("CREATE TABLE captures AS SELECT * FROM capture_list")
        for table in ("papers", "paper_authors", "paper_organizations", "rejects", "paper_content"):
            _staged_view(con, table, ordered)
        _capture_parts(con, ordered)
        _build_tables(con, reference)
        kept = _build_changes_and_index(con, ordered, parent)
        counts = {name: _count(con, f"SELECT count(*) FROM {name}") for name in MODELS}
        changes = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
        parent_papers, removed = 0, {}
        if parent is not None:
            parent_papers = _count(con, "SELECT count(*) FROM then_origin")
            removed = dict(
                con.execute(
                    "SELECT p.source_file, count(*) FROM changes c JOIN then_origin p USING (paper_id) "
                    "WHERE c.change = 'removed' GROUP BY p.source_file"
                ).fetchall()
            )
    return Assembled(database, counts, changes, parent_papers, removed, kept)


def _capture_parts(con: Any, captures: Sequence[CaptureFiles]) -> None:
    """`capture_parts`: the staged papers files of every capture in line order, with the first
    and last line each holds (what publishing papers in order reads part by part)."""
    con.execute(
        "CREATE TABLE capture_parts (ordinal INTEGER, part INTEGER, path VARCHAR, first_line BIGINT, last_line BIGINT)"
    )
    for ordinal, capture in enumerate(captures):
        files = list(capture.files["papers"])
        if not files:
            continue
        con.register("part_paths", pa.table({"part": list(range(len(files))), "path": [str(f) for f in files]}))
        con.execute(
            f"INSERT INTO capture_parts SELECT {ordinal}, p.part, p.path, min(s.source_line), max(s.source_line) "
            f"FROM read_parquet({sql_files(files)}, filename = true) s JOIN part_paths p ON s.filename = p.path "
            "GROUP BY p.part, p.path"
        )
        con.unregister("part_paths")


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
    # The rows a later capture supersedes: few or none in a refresh, so that keeping the winning
    # rows is a scan, not a join of every row with every paper.
    con.execute(
        "CREATE TEMP TABLE superseded AS SELECT s.paper_id, s.ordinal FROM s_papers s "
        "JOIN seen w ON s.paper_id = w.paper_id WHERE s.ordinal < w.ordinal"
    )
    winners = "ANTI JOIN superseded x ON s.paper_id = x.paper_id AND s.ordinal = x.ordinal"
    for table in ("paper_authors", "paper_organizations"):
        # Join, then sort: in one statement the two can need more than the memory limit (DuckDB
        # 2.0 at 2.8M author rows ran out of 384 MB one time in three); apart, each spills.
        con.execute(f"CREATE TEMP TABLE {table}_winners AS SELECT {_select(table, {})} FROM s_{table} s {winners}")
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_winners ORDER BY {ORDER_BY[table]}")
        con.execute(f"DROP TABLE {table}_winners")
    # Diacritics carry information that folding removes, so the richest spelling is shown.
    con.execute(
        f"CREATE TABLE authors AS SELECT {', '.join(arrow_schema('authors').names)} FROM ("
        "  SELECT author_id, name, any_value(name_key) AS name_key, any_value(given_name) AS given_name,"
        "         any_value(family_name) AS family_name, any_value(is_organization) AS is_organization,"
        "         count(*) AS listed,"
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
    con.execute(f"CREATE TABLE categories AS SELECT * FROM taxonomy ORDER BY {ORDER_BY['categories']}")
    reject_columns = _select("rejects", {"source_file": "c"})
    con.execute(f"CREATE VIEW rejects AS SELECT {reject_columns} FROM s_rejects s JOIN captures c USING (ordinal)")


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


def index_schema() -> pa.Schema:
    """Arrow schema of a paper index: `INDEX_IDENTITY`, then the content hashes of the paper
    (`pipeline.content.hash_columns`)."""
    return pa.schema([*INDEX_IDENTITY, *(f for f in content_schema() if f.name != "paper_id")])


def index_recipe() -> str:
    """What a paper index depends on: indexes are read only when this is the same."""
    recipe = {"index": index_schema().to_string(), **content_recipe()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


INDEX_RECIPE_KEY, INDEX_PAPERS_KEY, INDEX_CAPTURES_KEY = (
    b"pipeline.index_recipe", b"pipeline.papers_sha256", b"pipeline.captures",
)  # fmt: skip


def index_metadata(captures: Sequence[CaptureFiles], papers_sha256: str) -> dict[bytes, bytes]:
    """The footer metadata of a paper index (the file's, not the Arrow schema's): its recipe, the
    papers file it describes, and the staged key and file name of each capture it numbers (in
    capture order)."""
    numbered = [[c.key, c.source_file] for c in ordered_captures(captures)]
    return {
        INDEX_RECIPE_KEY: index_recipe().encode(),
        INDEX_PAPERS_KEY: papers_sha256.encode(),
        INDEX_CAPTURES_KEY: json.dumps(numbered).encode(),
    }


def _index_captures(parent: ParentVersion) -> list[tuple[str, str]] | None:
    """The captures the parent's index numbers (staged key, file name), or None when the index
    does not describe the parent's papers file with today's recipe."""
    if parent.index is None:
        return None
    try:
        footer = pq.read_metadata(parent.index)
        if not footer.schema.to_arrow_schema().remove_metadata().equals(index_schema()):
            return None
        metadata = footer.metadata or {}
        if metadata.get(INDEX_RECIPE_KEY) != index_recipe().encode():
            return None
        if metadata.get(INDEX_PAPERS_KEY) != parent.papers_sha256.encode():
            return None
        numbered = json.loads(metadata.get(INDEX_CAPTURES_KEY, b"null"))
    except (OSError, pa.ArrowException, ValueError):
        return None
    if not isinstance(numbered, list) or not all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(v, str) for v in c) for c in numbered
    ):
        return None
    return [(key, name) for key, name in numbered]


def _now_rows(con: Any) -> None:
    """`now_rows`: every papers row in publish order (capture, then line), with its position, and
    the columns of its keys."""
    con.execute(
        "CREATE TEMP TABLE seen_again AS SELECT * FROM seen WHERE paper_id IN (SELECT paper_id FROM superseded)"
    )
    # A paper in one capture (most of them) was first and last seen on its date: only the others
    # are looked up, which spares joining every row with every paper.
    con.execute(
        "CREATE TABLE now_rows AS SELECT row_number() OVER (ORDER BY s.ordinal, s.source_line) - 1 AS position, "
        "s.paper_id, s.ordinal, s.source_line, coalesce(m.first_seen, c.capture_date) AS first_seen, "
        "coalesce(m.last_seen, c.capture_date) AS last_seen, s.category "
        "FROM s_papers s ANTI JOIN superseded x ON s.paper_id = x.paper_id AND s.ordinal = x.ordinal "
        "JOIN captures c ON c.ordinal = s.ordinal LEFT JOIN seen_again m ON m.paper_id = s.paper_id"
    )


def _load_index(con: Any, parent: ParentVersion) -> bool:
    """`then_index`: the parent's paper index, loaded, its captures numbered as this run numbers
    them (`ordinal`; null for a capture this run does not have), and `then_origin`, the file
    each of its papers came from. False (nothing loaded) when it is unusable or cannot be read
    whole: the changes are then computed from the parent's files."""
    numbered = _index_captures(parent)
    if numbered is None:
        return False
    assert parent.index is not None
    con.register(
        "then_capture_list",
        pa.table({
            "capture": pa.array(range(len(numbered)), pa.int32()),
            "capture_key": [key for key, _ in numbered],
            "source_file": [name for _, name in numbered],
        }),
    )  # fmt: skip
    try:
        con.execute(
            "CREATE TABLE then_index AS SELECT t.* EXCLUDE (capture), c.ordinal, l.source_file "
            f"FROM read_parquet({sql_text(str(parent.index))}) t JOIN then_capture_list l ON t.capture = l.capture "
            "LEFT JOIN captures c ON c.capture_key = l.capture_key"
        )
        complete = _count(con, f"SELECT count(*) FROM read_parquet({sql_text(str(parent.index))})")
        if _count(con, "SELECT count(*) FROM then_index") != complete:
            raise duckdb.InvalidInputException("the index numbers a capture its footer does not list")
    except duckdb.Error:
        con.execute("DROP TABLE IF EXISTS then_index")
        return False
    finally:
        con.unregister("then_capture_list")
    con.execute("CREATE TEMP VIEW then_origin AS SELECT paper_id, source_file FROM then_index")
    return True


def _index_select(rows: str, hashes: str) -> str:
    """The select list of `paper_index`: identity from `rows` (as `now_rows`), hashes from `hashes`."""
    identity = ", ".join(
        f"{rows}.ordinal AS capture" if c == "capture" else f"{rows}.{c}" for c in INDEX_IDENTITY.names
    )
    return identity + ", " + ", ".join(f'{hashes}."{h}"' for h in hash_columns())


def _index_from_parent(con: Any, captures: Sequence[CaptureFiles], kept: int) -> None:
    """`paper_index` from the parent's index: its rows as they are for the `kept` leading rows,
    its hashes for every other paper whose winning row is the one the parent has (same paper,
    same staged capture), and the staged hashes for the rest, read from their captures only."""
    # The kept rows are read from the parent's index when the index is written, never copied.
    con.execute(
        f"CREATE TABLE index_rest AS SELECT {_index_select('n', 't')} FROM now_rows n "
        f"JOIN then_index t ON n.paper_id = t.paper_id AND n.ordinal = t.ordinal WHERE n.position >= {kept}"
    )
    con.execute(
        f"CREATE VIEW paper_index AS SELECT {_index_select('t', 't')} FROM then_index t WHERE t.position < {kept} "
        "UNION ALL SELECT * FROM index_rest"
    )
    con.execute(
        "CREATE TEMP TABLE fresh_rows AS SELECT paper_id, ordinal FROM now_rows n "
        f"WHERE n.position >= {kept} AND paper_id NOT IN (SELECT paper_id FROM index_rest)"
    )
    ordinals = [row[0] for row in con.execute("SELECT DISTINCT ordinal FROM fresh_rows ORDER BY 1").fetchall()]
    if ordinals:
        staged = " UNION ALL ".join(
            f"SELECT *, {o} AS ordinal FROM read_parquet({sql_files(captures[o].files['paper_content'])})"
            for o in ordinals
        )
        con.execute(
            f"INSERT INTO index_rest SELECT {_index_select('n', 'c')} FROM ({staged}) c "
            "JOIN fresh_rows f ON c.paper_id = f.paper_id AND c.ordinal = f.ordinal "
            "JOIN now_rows n ON n.paper_id = c.paper_id"
        )
    hashes = ", ".join(f'"{h}"' for h in hash_columns())
    con.execute(f"CREATE TEMP VIEW now_content AS SELECT paper_id, {hashes} FROM paper_index")


def _kept_rows(con: Any) -> int:
    """How many leading papers rows are the parent's, row for row: same paper from the same
    staged row of the same capture, with the same lineage, at the same position."""
    identity = [c for c in INDEX_IDENTITY.names if c not in ("position", "capture")] + ["ordinal"]
    # IS DISTINCT FROM: a parent row whose capture this run does not have (its ordinal is null:
    # the file was edited, renamed or parsed by other code) differs; `<>` would call it unknown.
    differs = " OR ".join(f"n.{c} IS DISTINCT FROM t.{c}" for c in identity)
    return _count(
        con,
        "SELECT coalesce(min(coalesce(n.position, t.position)), (SELECT count(*) FROM now_rows)) "
        "FROM now_rows n FULL OUTER JOIN then_index t ON n.position = t.position "
        f"WHERE n.position IS NULL OR t.position IS NULL OR {differs}",
    )


def _build_changes_and_index(con: Any, captures: Sequence[CaptureFiles], parent: ParentVersion | None) -> int:
    """`changes` against the parent and `paper_index` of the new version; return how many leading
    papers rows are the parent's own (0 unless the parent's index is usable)."""
    _now_rows(con)
    kept = 0
    hashes = ", ".join(f'"{h}"' for h in hash_columns())
    if parent is not None and _load_index(con, parent):
        kept = _kept_rows(con)
        _index_from_parent(con, captures, kept)
        con.execute(f"CREATE TEMP VIEW then_content AS SELECT paper_id, {hashes} FROM then_index")
        _compare(con)
        return kept
    # The staged hashes of every winning row.
    con.execute(
        "CREATE TABLE paper_index AS SELECT {select} FROM s_paper_content c "
        "JOIN now_rows n ON n.paper_id = c.paper_id AND n.ordinal = c.ordinal".format(select=_index_select("n", "c"))
    )
    con.execute(f"CREATE TEMP VIEW now_content AS SELECT paper_id, {hashes} FROM paper_index")
    if parent is None:
        con.execute(
            "CREATE TABLE changes AS SELECT paper_id, 'added' AS change, '' AS changed_fields FROM now_rows "
            "ORDER BY paper_id"
        )
        return kept
    _parent_views(con, parent.files())
    con.execute("CREATE TEMP VIEW then_origin AS SELECT paper_id, source_file FROM parent_papers")
    columns = content_columns()
    shared = _shared_columns(con, columns)
    if shared == columns:
        create_content_table(con, "then_content", "parent_papers", "parent_paper_authors", "parent_paper_organizations")
        _compare(con)
    else:  # the parent's contract lacks a column: both sides are hashed without it
        _compare_files(con, shared)
    return kept


def _parent_views(con: Any, files: Mapping[str, Path]) -> None:
    for table in CHANGE_INPUTS:
        con.execute(f"CREATE TEMP VIEW parent_{table} AS SELECT * FROM read_parquet({sql_text(str(files[table]))})")
        _check_dates(con, f"parent_{table}", table)


def _shared_columns(con: Any, columns: Sequence[str]) -> list[str]:
    parent_columns = {row[0] for row in con.execute("DESCRIBE parent_papers").fetchall()}
    return [c for c in columns if c in parent_columns]


def _compare_files(con: Any, columns: Sequence[str]) -> None:
    """`changes` from the published tables (`papers`, ...) against the parent's (`parent_*`),
    both hashed over `columns`."""
    create_content_table(con, "now_compared", "papers", "paper_authors", "paper_organizations", columns)
    create_content_table(con, "then_compared", "parent_papers", "parent_paper_authors",
                         "parent_paper_organizations", columns)  # fmt: skip
    _compare(con, columns, "now_compared", "then_compared")


def _compare(
    con: Any, columns: Sequence[str] | None = None, now: str = "now_content", then: str = "then_content"
) -> None:
    """`changes`: papers added, updated (with the fields that differ) or removed, from two
    content tables (`pipeline.content`) over `columns` (default: all compared columns)."""
    compared = [*(content_columns() if columns is None else columns), "authors", "organizations"]
    # Which papers differ, from two narrow columns; then, for those only, which fields.
    con.execute(
        "CREATE TEMP TABLE differing AS SELECT coalesce(n.paper_id, t.paper_id) AS paper_id, "
        "t.paper_id IS NULL AS added, n.paper_id IS NULL AS removed "
        f"FROM (SELECT paper_id, whole FROM {now}) n "
        f"FULL OUTER JOIN (SELECT paper_id, whole FROM {then}) t ON n.paper_id = t.paper_id "
        "WHERE n.paper_id IS NULL OR t.paper_id IS NULL OR n.whole <> t.whole"
    )
    differs = [f'CASE WHEN n."{c}" IS DISTINCT FROM t."{c}" THEN {sql_text(c)} END' for c in compared]
    con.execute(
        "CREATE TABLE changes AS SELECT d.paper_id, "
        "CASE WHEN d.added THEN 'added' WHEN d.removed THEN 'removed' ELSE 'updated' END AS change, "
        f"CASE WHEN d.added OR d.removed THEN '' ELSE concat_ws(',', {', '.join(differs)}) END AS changed_fields "
        f"FROM differing d LEFT JOIN {now} n ON n.paper_id = d.paper_id "
        f"LEFT JOIN {then} t ON t.paper_id = d.paper_id ORDER BY d.paper_id"
    )


def changes_between(old: Mapping[str, Path], new: Mapping[str, Path]) -> tuple[pd.DataFrame, int, int]:
    """The changes from one version to another (their Parquet files by table), each with the
    paper's title; and the papers in each."""
    spill = tempfile.TemporaryDirectory(prefix="pipeline-diff-")
    con = duckdb.connect(config={"memory_limit": DEFAULT_MEMORY_LIMIT, "temp_directory": spill.name})
    try:
        with _reading():
            for table in CHANGE_INPUTS:
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_text(str(new[table]))})")
                _check_dates(con, table, table)
            _parent_views(con, old)
            _compare_files(con, _shared_columns(con, content_columns()))
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
    # The readers' settings: the checks run beside the publishing readers, on one shared instance.
    with _reading(), connect(database, READER_MEMORY_LIMIT, read_only=True) as con:
        # Papers' keys from `now_rows`, which holds them in publish order, not from the staged texts.
        return _key_failures(con, {"papers": "(SELECT paper_id, category, position AS row FROM now_rows)"})


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
            if not _count(con, f"SELECT count(*) FROM ({repeated})"):
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
        if not _count(con, f"SELECT count(*) FROM (SELECT {column} FROM {plain(child)} WHERE {orphans})"):
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


def table_batches(database: Path, table: str, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """One assembled table, in its published order, batch by batch."""
    if table == "papers":
        yield from papers_batches(database, 0, batch_rows)
        return
    rows = batch_rows or (TEXT_BATCH_ROWS if table in _TEXT_TABLES else BATCH_ROWS)
    with _reading(), connect(database, READER_MEMORY_LIMIT, read_only=True) as con:
        reader = con.sql(f"SELECT * FROM {table}").to_arrow_reader(rows)
        yield from reader


def papers_batches(database: Path, start_row: int, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The papers table from row `start_row` on, in batches of `batch_rows` (the last shorter).

    Rows come in capture, then line order, which is what row positions (and so the parent rows a
    refresh keeps) are counted in. A join does not keep its input's order, so each staged part is
    joined and sorted on its own (a few MB); a batch out of order raises RuntimeError, never
    publishes."""
    rows = batch_rows or TEXT_BATCH_ROWS
    with _reading(), connect(database, READER_MEMORY_LIMIT, read_only=True) as con:
        found = con.execute("SELECT ordinal, source_line FROM now_rows WHERE position = ?", [start_row]).fetchall()
        if not found:
            return
        first = found[0]
        last: tuple[int, int] | None = None
        for batch in _rechunked(_papers_pieces(con, int(first[0]), int(first[1]), rows), rows):
            last = _check_order(batch, last)
            yield batch.drop_columns([_ORDINAL])


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
            f"SELECT {select(source_file)}, {part_ordinal} AS {_ORDINAL} "
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


def _check_order(batch: pa.RecordBatch, last: tuple[int, int] | None) -> tuple[int, int] | None:
    """The (capture, line) of the batch's last row; RuntimeError unless strictly after `last`."""
    if not batch.num_rows:
        return last
    ordinal = np.asarray(batch.column(_ORDINAL).to_numpy(zero_copy_only=False), dtype=np.int64)
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
