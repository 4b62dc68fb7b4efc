"""The paper index of a version: where each papers row came from and its content hashes; what a refresh reuses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.captures import CaptureFiles, ParentVersion, count, ordered_captures
from pipeline.assembled.changes import compare, compare_files, parent_views, shared_columns
from pipeline.db import sql_files, sql_text
from pipeline.parse.content import content_columns, content_recipe, content_schema, create_content_table, hash_columns
from pipeline.settings import METADATA_PREFIX

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


def index_schema() -> pa.Schema:
    """Arrow schema of a paper index: `INDEX_IDENTITY`, then the content hashes of the paper
    (`pipeline.parse.content.hash_columns`)."""
    return pa.schema([*INDEX_IDENTITY, *(f for f in content_schema() if f.name != "paper_id")])


def index_recipe() -> str:
    """What a paper index depends on: indexes are read only when this is the same."""
    recipe = {"index": index_schema().to_string(), **content_recipe()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


INDEX_RECIPE_KEY, INDEX_PAPERS_KEY, INDEX_CAPTURES_KEY = (
    f"{METADATA_PREFIX}{name}".encode() for name in ("index_recipe", "papers_sha256", "captures")
)


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
        complete = count(con, f"SELECT count(*) FROM read_parquet({sql_text(str(parent.index))})")
        if count(con, "SELECT count(*) FROM then_index") != complete:
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
    return count(
        con,
        "SELECT coalesce(min(coalesce(n.position, t.position)), (SELECT count(*) FROM now_rows)) "
        "FROM now_rows n FULL OUTER JOIN then_index t ON n.position = t.position "
        f"WHERE n.position IS NULL OR t.position IS NULL OR {differs}",
    )


def build_changes_and_index(con: Any, captures: Sequence[CaptureFiles], parent: ParentVersion | None) -> int:
    """`changes` against the parent and `paper_index` of the new version; return how many leading
    papers rows are the parent's own (0 unless the parent's index is usable)."""
    _now_rows(con)
    kept = 0
    hashes = ", ".join(f'"{h}"' for h in hash_columns())
    if parent is not None and _load_index(con, parent):
        kept = _kept_rows(con)
        _index_from_parent(con, captures, kept)
        con.execute(f"CREATE TEMP VIEW then_content AS SELECT paper_id, {hashes} FROM then_index")
        compare(con)
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
    parent_views(con, parent.files())
    con.execute("CREATE TEMP VIEW then_origin AS SELECT paper_id, source_file FROM parent_papers")
    columns = content_columns()
    shared = shared_columns(con, columns)
    if shared == columns:
        create_content_table(con, "then_content", "parent_papers", "parent_paper_authors", "parent_paper_organizations")
        compare(con)
    else:  # the parent's contract lacks a column: both sides are hashed without it
        compare_files(con, shared)
    return kept
