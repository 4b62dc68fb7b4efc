"""The indexes a version is published with: what a refresh reads instead of its tables, and their recipe.

- `paper_index`: one row per paper: where its row came from (file, line, first and last seen),
  how many author and organisation rows it has, the content hashes changes compare, and what the
  version's report shows of it (date, category, score): a report need not read the papers' texts.
- `author_spellings`: one row per author and spelling: how often any capture listed it (the
  display name is the richest, then the most frequent spelling) and the name parts it gives.
- `author_refs`: one row per author: how many rows of paper_authors name them (an author no row
  names is not published).
- `org_refs`: one row per organisation slug: how many rows of paper_organizations name it.

They are stored as tables are (files in generations, `pipeline.assembled.generations`), listed in
the version's manifest beside its tables, and shared from version to version in the same way.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from pipeline.parse.content import content_recipe, content_schema
from schemas.tables import arrow_schema

INDEX_NAMES = ("paper_index", "author_spellings", "author_refs", "org_refs")
# What the report reads of papers: their date and category, and every column that may be null;
# kept in the index under these names (the content hashes are named after the columns).
REPORTED_PAPER_COLUMNS = {"published": "published_value", "category": "category_value", "score": "score_value"}


def _author_fields() -> list[pa.Field]:
    return [f for f in arrow_schema("authors") if f.name not in ("author_id", "name")]


INDEX_SCHEMAS: dict[str, pa.Schema] = {
    "paper_index": pa.schema([
        pa.field("paper_id", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("first_seen", pa.date32(), nullable=False),
        pa.field("last_seen", pa.date32(), nullable=False),
        pa.field("author_rows", pa.int64(), nullable=False),
        pa.field("org_rows", pa.int64(), nullable=False),
        *(
            f.with_name(REPORTED_PAPER_COLUMNS[f.name])
            for f in arrow_schema("papers")
            if f.name in REPORTED_PAPER_COLUMNS
        ),
        *(f for f in content_schema() if f.name != "paper_id"),
    ]),
    "author_spellings": pa.schema([
        pa.field("author_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("listed", pa.int64(), nullable=False),
        pa.field("non_ascii", pa.int64(), nullable=False),
        *_author_fields(),
    ]),
    "author_refs": pa.schema([pa.field("author_id", pa.string(), nullable=False),
                              pa.field("refs", pa.int64(), nullable=False)]),
    "org_refs": pa.schema([pa.field("org_id", pa.string(), nullable=False),
                           pa.field("refs", pa.int64(), nullable=False)]),
}  # fmt: skip

# The order each index is written in.
INDEX_ORDER: dict[str, tuple[str, ...]] = {
    "paper_index": ("paper_id",),
    "author_spellings": ("author_id", "name"),
    "author_refs": ("author_id",),
    "org_refs": ("org_id",),
}


def index_recipe() -> str:
    """What the indexes depend on (their columns, and how content is hashed): a parent's indexes
    are read only when they were written with the same recipe."""
    recipe = {name: schema.to_string() for name, schema in INDEX_SCHEMAS.items()}
    recipe.update(content_recipe())
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def reported_papers_sql(paper_index: str) -> str:
    """What the report reads of papers, from a query of the paper index: their id, and the
    columns of `REPORTED_PAPER_COLUMNS` under their names in papers."""
    columns = ", ".join(f'"{kept}" AS "{name}"' for name, kept in REPORTED_PAPER_COLUMNS.items())
    return f"SELECT paper_id, {columns} FROM ({paper_index})"
