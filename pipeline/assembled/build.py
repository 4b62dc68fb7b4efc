"""Columnar assembly: staged captures (and the parent version) → the tables of a new version, in DuckDB.

Set operations over Parquet, never one Python object per paper: DuckDB reads the staged files,
works within a memory limit (spilling to disk beyond it) and keeps the result in a database file
that the publish step streams from. Reads input files; writes only its own scratch database.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.assembled.captures import (
    Assembled,
    CaptureFiles,
    ParentVersion,
    count,
    ordered_captures,
    select,
    staged_view,
)
from pipeline.assembled.index import build_changes_and_index
from pipeline.db import connect, reading, sql_files
from pipeline.parse.reference import Reference
from pipeline.parse.tables import STAGED_TABLES, categories_table, registry_table
from pipeline.settings import ASSEMBLY_MEMORY
from schemas import MODELS, arrow_schema
from schemas.tables import SORTED_BY

# Order of each light published table: by its key (papers and rejects keep capture, then line order).
ORDER_BY: dict[str, str] = {
    **{table: ", ".join(columns) for table, columns in SORTED_BY.items()},
    "rejects": "ordinal, source_line",
}


def build_version(
    database: Path,
    captures: Sequence[CaptureFiles],
    reference: Reference,
    parent: ParentVersion | None,
    memory_limit: str = ASSEMBLY_MEMORY,
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
    with reading(), connect(database, memory_limit=memory_limit, spill=database.with_suffix(".spill")) as con:
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
        for table in STAGED_TABLES:
            staged_view(con, table, ordered)
        _capture_parts(con, ordered)
        _build_tables(con, reference)
        kept = build_changes_and_index(con, ordered, parent)
        counts = {name: count(con, f"SELECT count(*) FROM {name}") for name in MODELS}
        changes = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
        parent_papers, removed = 0, {}
        if parent is not None:
            parent_papers = count(con, "SELECT count(*) FROM then_origin")
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


def _build_tables(con: Any, reference: Reference) -> None:
    con.execute(
        "CREATE TABLE seen AS SELECT paper_id, max(ordinal) AS ordinal, "
        "min(c.capture_date) AS first_seen, max(c.capture_date) AS last_seen "
        "FROM s_papers JOIN captures c USING (ordinal) GROUP BY paper_id"
    )
    paper_columns = select("papers", {"source_file": "c", "first_seen": "w", "last_seen": "w"})
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
        con.execute(f"CREATE TEMP TABLE {table}_winners AS SELECT {select(table, {})} FROM s_{table} s {winners}")
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
    reject_columns = select("rejects", {"source_file": "c"})
    con.execute(f"CREATE VIEW rejects AS SELECT {reject_columns} FROM s_rejects s JOIN captures c USING (ordinal)")
