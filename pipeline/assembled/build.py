"""Columnar assembly: staged captures (and the parent version) → the rows of a new version, in DuckDB.

Set operations over Parquet, never one Python object per paper: DuckDB reads the staged files,
works within a memory limit (spilling to disk beyond it) and keeps the result in a database file
that the publish step streams from. Reads input files; writes only its own scratch database.

A version is assembled whole (`build_version`: every capture, every row written anew) for a first
version, after a capture was removed, edited or added out of order, or under new code; a refresh
that only adds newer captures is assembled incrementally (`pipeline.assembled.incremental`) with
the same rules (`pipeline.assembled.rules`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.assembled.batches import papers_batches, relation_batches
from pipeline.assembled.captures import (
    Assembled,
    CaptureFiles,
    ParentVersion,
    TableRows,
    count,
    ordered_captures,
    staged_view,
)
from pipeline.assembled.changes import compare, compare_files, shared_columns, table_views
from pipeline.assembled.generations import REPLACED_BY, live_sql
from pipeline.assembled.index import INDEX_NAMES
from pipeline.assembled.rules import (
    authors_select,
    create_child_rows,
    create_content,
    create_paper_index,
    create_winners,
    organizations_select,
    papers_select,
    refs_select,
    rejects_select,
    spellings_select,
    staged_sightings,
)
from pipeline.db import connect, reading, sql_files
from pipeline.parse.content import content_columns, create_content_table, hash_columns
from pipeline.parse.reference import Reference
from pipeline.parse.reference_tables import categories_table, registry_table
from pipeline.parse.tables import CHANGE_INPUTS, STAGED_TABLES
from pipeline.settings import ASSEMBLY_MEMORY_SETTING, assembly_memory
from schemas.tables import MODELS


@contextmanager
def assembly_database(database: Path, memory_limit: str | None = None) -> Iterator[Any]:
    """A connection to the assembly database `database`, within `memory_limit` (None: the
    operator's PIPELINE_ASSEMBLY_MEMORY, else the default), spilling beside it; DuckDB's errors as
    the pipeline's, running out of memory naming the setting that raises the limit."""
    limit = memory_limit or assembly_memory()
    with (
        reading(ASSEMBLY_MEMORY_SETTING),
        connect(database, memory_limit=limit, spill=database.with_suffix(".spill")) as con,
    ):
        yield con


def open_assembly(con: Any, captures: Sequence[CaptureFiles], reference: Reference) -> list[CaptureFiles]:
    """Load what every assembly starts from: `captures` (numbered in the order the latest wins),
    a view of each staged table over them, their parts, and the reference tables."""
    ordered = ordered_captures(captures)
    con.register(
        "capture_list",
        pa.table({
            "ordinal": pa.array(range(len(ordered)), pa.int32()),
            "source_file": [c.source_file for c in ordered],
            "capture_date": pa.array([c.capture_date for c in ordered], pa.date32()),
            "capture_key": [c.key for c in ordered],
        }),
    )  # fmt: skip
    con.execute("CREATE TABLE captures AS SELECT * FROM capture_list")
    for table in STAGED_TABLES:
        staged_view(con, table, ordered)
    _capture_parts(con, ordered)
    con.register("registry", registry_table(reference))
    con.register("taxonomy", categories_table(reference))
    con.execute("CREATE TABLE categories AS SELECT * FROM taxonomy ORDER BY category")
    return ordered


def build_version(
    database: Path,
    captures: Sequence[CaptureFiles],
    reference: Reference,
    parent: ParentVersion | None,
    reason: str = "",
    memory_limit: str | None = None,
) -> Assembled:
    """Assemble every capture into one dataset in `database`: one row per paper, the latest
    capture winning; every table and index written whole.

    Captures are ordered by capture date, then file name; a paper's fields come from the last
    capture that shows it, and first_seen/last_seen span all captures that show it. An author is
    shown in the richest spelling any capture gives (most non-ASCII letters, then the most
    frequent, then the greatest). Changes are against `parent` (all papers are added when there
    is none), from its paper index when it has one, else from its tables.
    """
    with assembly_database(database, memory_limit) as con:
        open_assembly(con, captures, reference)
        create_winners(con, staged_sightings())
        create_child_rows(con, "paper_authors", "paper_authors")
        create_child_rows(con, "paper_organizations", "paper_organizations")
        create_content(con)
        con.execute(f"CREATE TABLE author_spellings AS {spellings_select('s_paper_authors')} ORDER BY author_id, name")
        con.execute(f"CREATE TABLE author_refs AS {refs_select('paper_authors', 'author_id')} ORDER BY author_id")
        con.execute(f"CREATE TABLE org_refs AS {refs_select('paper_organizations', 'org_id')} ORDER BY org_id")
        con.execute(f"CREATE TABLE authors AS {authors_select('author_spellings', 'author_refs')} ORDER BY author_id")
        con.execute(f"CREATE TABLE organizations AS {organizations_select('org_refs')}")
        con.execute(f"CREATE VIEW rejects AS {rejects_select()}")
        create_paper_index(con, "paper_index", "paper_authors", "paper_organizations")
        parent_papers, removed = _changes_against(con, parent)
        counts = {name: count(con, f"SELECT count(*) FROM {'now_rows' if name == 'papers' else name}")
                  for name in MODELS}  # fmt: skip
        index_counts = {name: count(con, f"SELECT count(*) FROM {name}") for name in INDEX_NAMES}
        changes = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
    tables = {name: TableRows(_reader(database, name), counts[name], whole=True) for name in MODELS}
    index = {name: TableRows(_reader(database, name), index_counts[name], whole=True) for name in INDEX_NAMES}
    return Assembled(database, False, tables, index, counts, index_counts, changes, parent_papers, removed,
                     reason=reason)  # fmt: skip


def _reader(database: Path, name: str) -> partial[Any]:
    if name == "papers":
        return partial(papers_batches, database)
    return partial(relation_batches, database, name)


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


def _changes_against(con: Any, parent: ParentVersion | None) -> tuple[int, dict[str, int]]:
    """`changes` of the whole new version against `parent`; its papers, and those that would be
    removed by the capture that held them in the parent."""
    if parent is None:
        con.execute(
            "CREATE TABLE changes AS SELECT paper_id, 'added' AS change, '' AS changed_fields FROM now_rows "
            "ORDER BY paper_id"
        )
        return 0, {}
    if "paper_index" in parent.index:
        hashes = ", ".join(f'"{h}"' for h in hash_columns())
        index = live_sql(parent.index["paper_index"], REPLACED_BY["paper_index"])
        con.execute(f"CREATE TEMP TABLE then_index AS {index}")
        con.execute(f"CREATE TEMP VIEW then_content AS SELECT paper_id, {hashes} FROM then_index")
        compare(con)
        origin = "then_index"
    else:  # a parent of another layout or recipe: compared by its tables, hashed here
        table_views(con, parent.tables(CHANGE_INPUTS), prefix="parent_")
        columns = content_columns()
        shared = shared_columns(con, columns)
        if shared == columns:
            create_content_table(con, "then_content", "parent_papers", "parent_paper_authors",
                                 "parent_paper_organizations")  # fmt: skip
            compare(con)
        else:  # the parent's contract lacks a column: both sides are hashed without it
            con.execute(f"CREATE TEMP VIEW papers_now AS {_published_papers_sql()}")
            compare_files(con, shared, now=("papers_now", "paper_authors", "paper_organizations"))
        origin = "parent_papers"
    removed = dict(
        con.execute(
            f"SELECT p.source_file, count(*) FROM changes c JOIN {origin} p USING (paper_id) "
            "WHERE c.change = 'removed' GROUP BY p.source_file"
        ).fetchall()
    )
    return count(con, f"SELECT count(*) FROM {origin}"), removed


def _published_papers_sql() -> str:
    """The papers rows to write, as a query (unordered): what a comparison by columns hashes."""
    return (
        f"SELECT {papers_select()} FROM s_papers s JOIN now_rows n ON s.paper_id = n.paper_id "
        "AND s.ordinal = n.ordinal JOIN captures c ON c.ordinal = n.ordinal"
    )
