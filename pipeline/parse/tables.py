"""Pure table builders: a parsed listing (or part of one) → its staged Arrow tables; reference tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import pyarrow as pa

from pipeline.parse.content import content_hashes, content_schema
from pipeline.parse.listing import Reject, parse_listing
from pipeline.parse.normalize import NormalizedPaper, normalize_listing
from pipeline.parse.reference import Reference
from schemas import arrow_schema

# The tables of a version that changes are computed from.
CHANGE_INPUTS = ("papers", "paper_authors", "paper_organizations")


# --- the staged layer: one capture's parse as plain columnar tables -----------------------------

STAGED_TABLES = ("papers", "paper_authors", "paper_organizations", "rejects", "paper_content")
# What a published row holds but a single capture cannot know: assembly adds it, by table.
ASSEMBLED_COLUMNS: dict[str, tuple[str, ...]] = {
    "papers": ("source_file", "first_seen", "last_seen"),
    "rejects": ("source_file",),
}


def staged_schema(table: str) -> pa.Schema:
    """Arrow schema of a staged table, derived from the published models.

    Papers and rejects drop what assembly adds (source_file, first/last seen); paper_authors
    carries its author's fields, so that a staged capture needs no other table; paper_content
    holds the content hashes of its papers (`pipeline.parse.content`).
    """
    if table == "paper_content":
        return content_schema()
    if table == "paper_authors":
        author_fields = [f for f in arrow_schema("authors") if f.name != "author_id"]
        return pa.schema([*arrow_schema("paper_authors"), *author_fields])
    return pa.schema([f for f in arrow_schema(table) if f.name not in ASSEMBLED_COLUMNS.get(table, ())])


def _empty_columns(table: str) -> dict[str, list[object]]:
    return {name: [] for name in staged_schema(table).names}


def _append(columns: dict[str, list[object]], row: Mapping[str, object]) -> None:
    if len(row) != len(columns):  # a key the table does not declare, or one missing
        raise ValueError(f"row keys {sorted(row)} are not the columns {sorted(columns)}")
    for name, values in columns.items():
        values.append(row[name])


def staged_tables(items: Iterable[NormalizedPaper | Reject]) -> dict[str, pa.Table]:
    """Normalised papers and rejects as the staged tables (columns as `staged_schema` declares)."""
    papers, authors = _empty_columns("papers"), _empty_columns("paper_authors")
    organizations, rejects = _empty_columns("paper_organizations"), _empty_columns("rejects")
    for item in items:
        if isinstance(item, Reject):
            _append(rejects, {"source_line": item.source_line, "rule": item.rule, "reason": item.reason,
                              "raw": item.raw})  # fmt: skip
            continue
        _append(papers, item.row)
        for position, (listed, a) in enumerate(item.authors, start=1):
            _append(authors, {"paper_id": item.paper_id, "position": position, "author_id": a.author_id,
                              "name_as_listed": listed, "name": a.name, "name_key": a.name_key,
                              "given_name": a.given_name, "family_name": a.family_name,
                              "is_organization": a.is_organization})  # fmt: skip
        for position, slug in enumerate(item.organizations, start=1):
            _append(organizations, {"paper_id": item.paper_id, "position": position, "org_id": slug})
    built = {"papers": papers, "paper_authors": authors, "paper_organizations": organizations, "rejects": rejects}
    tables = {name: pa.table(columns, schema=staged_schema(name)) for name, columns in built.items()}
    tables["paper_content"] = content_hashes(tables["papers"], tables["paper_authors"], tables["paper_organizations"])
    return tables


def chunk_tables(
    text: str,
    capture_date: date,
    reference: Reference,
    *,
    first_line: int = 1,
    undecodable: frozenset[int] = frozenset(),
    line_lengths: Mapping[int, int] | None = None,
    earlier: Mapping[str, int] | None = None,
) -> dict[str, pa.Table]:
    """Parse and normalise a listing, or a part of one that starts on line `first_line`, into its
    staged tables (`undecodable`: lines that were not UTF-8; `line_lengths`: the full length of
    lines given by their start only; `earlier`: papers listed in earlier parts of the capture, by
    id, with their line)."""
    items = parse_listing(text, undecodable, first_line, line_lengths)
    return staged_tables(normalize_listing(items, capture_date, reference, earlier))


def registry_table(reference: Reference) -> pa.Table:
    """The organisation registry as rows of the published ``organizations`` table."""
    rows = [{"org_id": o.org_id, "name": o.name, "ror_id": o.ror_id} for o in reference.organizations.values()]
    return pa.Table.from_pylist(rows, schema=arrow_schema("organizations"))


def categories_table(reference: Reference) -> pa.Table:
    """The arXiv taxonomy as the published ``categories`` table."""
    rows = [
        {"category": c.code, "name": c.name, "archive": c.archive, "group": c.group, "alias_of": c.alias_of}
        for c in reference.categories.values()
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema("categories"))
