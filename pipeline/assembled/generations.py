"""A table stored as files in generations: per key, the rows of the newest generation that holds it are the table's.

A version lists, for each table, its Parquet files, each of a generation (the version that wrote
it; a compaction's output keeps the generation of the first file it replaced). A refresh adds the
rows it changes as files of a new generation and shares every older file as it is: a row is
superseded by any row of a newer generation with the same key (`REPLACED_BY`), so nothing older is
ever rewritten. Within one generation the keys of its files never meet. This module declares the
keys and renders the rule as SQL, the one way every reader (the readers' API, `validate`, the
report, assembly, compaction) reads a table.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from pipeline.db import sql_text

# The key whose newest generation wins, by table. A child table is replaced a paper at a time:
# all of a paper's rows are written together, so the newest generation that holds the paper holds
# all of its rows (a row is never mixed with an older list's).
REPLACED_BY: dict[str, tuple[str, ...]] = {
    "papers": ("paper_id",),
    "authors": ("author_id",),
    "paper_authors": ("paper_id",),
    "organizations": ("org_id",),
    "paper_organizations": ("paper_id",),
    "categories": ("category",),
    "rejects": ("source_file", "source_line"),
    "changes": ("paper_id",),
    # the indexes a refresh reads instead of the tables (`pipeline.assembled.index`)
    "paper_index": ("paper_id",),
    "author_spellings": ("author_id", "name"),
    "author_refs": ("author_id",),
    "org_refs": ("org_id",),
}

# Columns a reader adds to tell where a row came from, for order (dropped before it is returned).
ORDER_COLUMNS = ("_generation", "_file", "file_row_number")


@dataclass(frozen=True, slots=True)
class Part:
    """One file of a table as a reader reads it: a verified local copy, and its generation."""

    path: Path
    generation: int


def live_sql(
    parts: Sequence[Part],
    key: Sequence[str],
    *,
    ordered: bool = False,
    union_by_name: bool = False,
    only: Collection[int] | None = None,
) -> str:
    """A query of the table stored in `parts` (in generation order): every row but those whose
    `key` a newer generation holds. `ordered`: rows in the order they were written (generation,
    file, row), the order a version's papers are in (capture, then line); else as DuckDB reads
    them. `union_by_name`: files of older contracts, with other columns, aligned by name.
    `only`: the rows of these generations alone (the others count only as newer)."""
    if not parts:
        raise ValueError("a table needs at least one file")
    keys = ", ".join(f'"{k}"' for k in key)
    by_generation = [list(group) for _, group in groupby(parts, key=lambda p: p.generation)]
    selects = []
    for index, group in enumerate(by_generation):
        if only is not None and group[0].generation not in only:
            continue
        newer = [p for later in by_generation[index + 1 :] for p in later]
        files = []
        for number, part in enumerate(group):
            source = f"read_parquet({sql_text(str(part.path))}{', file_row_number = true' if ordered else ''})"
            extra = f", {part.generation} AS _generation, {number} AS _file" if ordered else ""
            files.append(f"SELECT *{extra} FROM {source}")
        rows = f" UNION ALL {'BY NAME ' if union_by_name else ''}".join(files)
        if newer:
            # One scan of every newer file: as a UNION ALL of a scan each, the join's build side
            # held memory that DuckDB would not spill (a 1M-paper report ran out of 192 MB after ten
            # refreshes; one scan of the same files needs a few MB).
            listed = ", ".join(sql_text(str(p.path)) for p in newer)
            by_name = ", union_by_name = true" if union_by_name else ""
            newer_keys = f"SELECT {keys} FROM read_parquet([{listed}]{by_name})"
            rows = f"SELECT * FROM ({rows}) ANTI JOIN ({newer_keys}) USING ({keys})"
        selects.append(f"SELECT * FROM ({rows})")
    if not selects:
        raise ValueError("none of the generations asked for is stored")
    union = f" UNION ALL {'BY NAME ' if union_by_name else ''}".join(selects)
    if ordered:
        return f"SELECT * EXCLUDE ({', '.join(ORDER_COLUMNS)}) FROM ({union}) ORDER BY {', '.join(ORDER_COLUMNS)}"
    return union
