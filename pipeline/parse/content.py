"""Content hashes of papers: what changes between versions compare, one narrow row per paper.

A paper is defined by its fields (lineage excluded), its author list and its organisation list.
Each is hashed (by DuckDB, which hashes long texts fast), and all of them together (`whole`), so
that changes compare two narrow tables and never the texts side by side. Staging hashes each
parsed part once (`content_hashes`); assembly hashes a parent version that has no paper index
from its published files (`create_content_table`): both with the same SQL, so that the hashes of
an unchanged paper are equal whichever way they were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.db import new_connection

# Columns that say where a row came from, not what the paper is: not compared for changes.
LINEAGE_COLUMNS = ("source_file", "source_line", "first_seen", "last_seen")
_SEPARATOR = "chr(31)"  # between the authors (and organisations) of a paper when they are hashed


def compared_columns(papers_columns: Sequence[str]) -> list[str]:
    """Of the columns of a papers table, those changes compare: all but the key and lineage."""
    return [c for c in papers_columns if c not in LINEAGE_COLUMNS and c != "paper_id"]


def content_columns() -> list[str]:
    """The papers columns changes compare, as the contract declares them (`compared_columns`)."""
    # Imported here, not above: the parsers' processes hash with the columns of the tables they
    # build, and never load pandera (~2 s and ~85 MB each).
    from schemas.tables import arrow_schema

    return compared_columns(arrow_schema("papers").names)


def hash_columns(compared: Sequence[str] | None = None) -> list[str]:
    """The hash columns of a content table, in order: one per compared column (default:
    `content_columns`), then the author list, the organisation list, and all of them together."""
    return [*(content_columns() if compared is None else compared), "authors", "organizations", "whole"]


def content_schema(compared: Sequence[str] | None = None) -> pa.Schema:
    """Arrow schema of a content table: the paper's id, then `hash_columns`."""
    hashes = [pa.field(name, pa.uint64(), nullable=False) for name in hash_columns(compared)]
    return pa.schema([pa.field("paper_id", pa.string(), nullable=False), *hashes])


def content_recipe() -> dict[str, str]:
    """What content hashes depend on: hashes made under another recipe never compare."""
    return {"schema": content_schema().to_string(), "duckdb": duckdb.__version__, "separator": _SEPARATOR}


def create_content_table(
    con: Any, name: str, papers: str, authors: str, orgs: str, columns: Sequence[str] | None = None
) -> None:
    """Create the table `name` in `con`: the content hashes of the papers of the relation
    `papers` (with the author and organisation rows of `authors` and `orgs`), over `columns`
    (default: all of `content_columns`; fewer only to compare with an older contract). Built step
    by step, each step fits DuckDB's memory or spills."""
    sep = _SEPARATOR
    compared = content_columns() if columns is None else list(columns)
    con.execute(
        f"CREATE TEMP TABLE {name}_authors AS SELECT paper_id, "
        f"hash(string_agg(name_as_listed, {sep} ORDER BY position)) AS authors FROM {authors} GROUP BY paper_id"
    )
    con.execute(
        f"CREATE TEMP TABLE {name}_orgs AS SELECT paper_id, "
        f"hash(string_agg(org_id, {sep} ORDER BY position)) AS organizations FROM {orgs} GROUP BY paper_id"
    )
    fields = ", ".join(f'hash("{c}") AS "{c}"' for c in compared)
    organizations = "coalesce(o.organizations, hash(''))"
    whole = ", ".join([*(f'p."{c}"' for c in compared), "a.authors", organizations])
    con.execute(
        f"CREATE TEMP TABLE {name} AS SELECT p.*, a.authors, {organizations} AS organizations, hash({whole}) AS whole "
        f"FROM (SELECT paper_id, {fields} FROM {papers}) p "
        f"LEFT JOIN {name}_authors a USING (paper_id) LEFT JOIN {name}_orgs o USING (paper_id)"
    )


def content_hashes(papers: pa.Table, paper_authors: pa.Table, paper_organizations: pa.Table) -> pa.Table:
    """The content table (`content_schema`) of one parsed part: its staged papers, authors and
    organisations, hashed in an in-memory database (no file is read or written)."""
    compared = compared_columns(papers.schema.names)
    con = new_connection(memory_limit=None, threads=1)
    try:
        con.register("part_papers", papers)
        con.register("part_authors", paper_authors)
        con.register("part_organizations", paper_organizations)
        create_content_table(con, "part_content", "part_papers", "part_authors", "part_organizations", compared)
        # In no particular order: content rows are only ever joined on paper_id.
        table: pa.Table = con.sql("SELECT * FROM part_content").to_arrow_table()
    finally:
        con.close()
    return table.cast(content_schema(compared))
