"""Changes between two versions: papers added, updated (with the fields that differ) or removed, from content hashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.assembled.captures import check_dates, count
from pipeline.assembled.generations import REPLACED_BY, Part, live_sql
from pipeline.db import connect, reading, sql_text
from pipeline.parse.content import content_columns, create_content_table
from pipeline.parse.tables import CHANGE_INPUTS
from pipeline.settings import ASSEMBLY_MEMORY


def table_views(con: Any, parts: Mapping[str, Sequence[Part]], prefix: str = "") -> None:
    """Views `<prefix><table>` of the tables changes are computed from, each read from its parts
    (the newest generation of a key wins), their dates checked."""
    for table in CHANGE_INPUTS:
        view = f"{prefix}{table}"
        sql = live_sql(parts[table], REPLACED_BY[table], union_by_name=True)
        con.execute(f"CREATE TEMP VIEW {view} AS {sql}")
        check_dates(con, view, table)


def shared_columns(con: Any, columns: Sequence[str]) -> list[str]:
    parent_columns = {row[0] for row in con.execute("DESCRIBE parent_papers").fetchall()}
    return [c for c in columns if c in parent_columns]


def compare_files(con: Any, columns: Sequence[str], now: Sequence[str] = CHANGE_INPUTS) -> None:
    """`changes` from published tables (`now`: papers, paper_authors, paper_organizations) against
    the parent's (`parent_*`), both hashed over `columns`."""
    papers, authors, orgs = now
    create_content_table(con, "now_compared", papers, authors, orgs, columns)
    create_content_table(con, "then_compared", "parent_papers", "parent_paper_authors",
                         "parent_paper_organizations", columns)  # fmt: skip
    compare(con, columns, "now_compared", "then_compared")


def compare(
    con: Any, columns: Sequence[str] | None = None, now: str = "now_content", then: str = "then_content"
) -> None:
    """`changes`: papers added, updated (with the fields that differ) or removed, from two
    content tables (`pipeline.parse.content`) over `columns` (default: all compared columns)."""
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


def changes_between(
    old: Mapping[str, Sequence[Part]], new: Mapping[str, Sequence[Part]]
) -> tuple[pd.DataFrame, int, int]:
    """The changes from one version to another (the parts of their tables), each with the
    paper's title; and the papers in each."""
    with connect(memory_limit=ASSEMBLY_MEMORY) as con, reading():
        table_views(con, new)
        table_views(con, old, prefix="parent_")
        compare_files(con, shared_columns(con, content_columns()))
        changes = con.sql(
            "SELECT c.*, coalesce(n.title, o.title) AS title FROM changes c LEFT JOIN papers n USING (paper_id) "
            "LEFT JOIN parent_papers o USING (paper_id) ORDER BY paper_id"
        ).df()
        before = count(con, "SELECT count(*) FROM parent_papers")
        after = count(con, "SELECT count(*) FROM papers")
    return changes, before, after
