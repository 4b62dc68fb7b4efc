"""Pure table builders: a parsed listing (or part of one) → its staged Arrow tables; reference tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache

import pyarrow as pa

from pipeline.parse.content import content_hashes, content_schema
from pipeline.parse.listing import Reject, parse_listing
from pipeline.parse.normalize import NormalizedPaper, normalize_listing
from pipeline.parse.reference import Reference

# The tables of a version that changes are computed from.
CHANGE_INPUTS = ("papers", "paper_authors", "paper_organizations")


# --- the staged layer: one capture's parse as plain columnar tables -----------------------------

STAGED_TABLES = ("papers", "paper_authors", "paper_organizations", "rejects", "paper_content")
# What a published row holds but a single capture cannot know: assembly adds it, by table.
ASSEMBLED_COLUMNS: dict[str, tuple[str, ...]] = {
    "papers": ("source_file", "first_seen", "last_seen"),
    "rejects": ("source_file",),
}


@cache
def staged_schema(table: str) -> pa.Schema:
    """Arrow schema of a staged table, derived from the published models.

    Papers and rejects drop what assembly adds (source_file, first/last seen); paper_authors
    carries its author's fields, so that a staged capture needs no other table; paper_content
    holds the content hashes of its papers (`pipeline.parse.content`).
    """
    # Imported here, not above: the parsers' processes are given these schemas (`staged_schemas`)
    # and never load pandera (~2 s and ~85 MB each).
    from schemas.tables import arrow_schema

    if table == "paper_content":
        return content_schema()
    if table == "paper_authors":
        author_fields = [f for f in arrow_schema("authors") if f.name != "author_id"]
        return pa.schema([*arrow_schema("paper_authors"), *author_fields])
    return pa.schema([f for f in arrow_schema(table) if f.name not in ASSEMBLED_COLUMNS.get(table, ())])


def staged_schemas() -> dict[str, pa.Schema]:
    """Every staged table's Arrow schema (`staged_schema`), by table."""
    return {table: staged_schema(table) for table in STAGED_TABLES}


# Rows held as Python objects before they become Arrow: a part's papers would hold each of their
# fields as an object at once (~20 MiB per 8 MiB part), beside their Arrow copy.
_BATCH_ROWS = 1024


class _Columns:
    """A table's rows as they are added, turned into Arrow every `_BATCH_ROWS` rows."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: dict[str, list[object]] = {name: [] for name in schema.names}
        self.batches: list[pa.RecordBatch] = []

    def append(self, row: Mapping[str, object]) -> None:
        if len(row) != len(self.columns):  # a key the table does not declare, or one missing
            raise ValueError(f"row keys {sorted(row)} are not the columns {sorted(self.columns)}")
        for name, values in self.columns.items():
            values.append(row[name])
        if len(values) >= _BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        self.batches.append(pa.RecordBatch.from_pydict(self.columns, schema=self.schema))
        self.columns = {name: [] for name in self.schema.names}

    def table(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self.batches, schema=self.schema)


def staged_tables(
    items: Iterable[NormalizedPaper | Reject], schemas: Mapping[str, pa.Schema] | None = None
) -> dict[str, pa.Table]:
    """Normalised papers and rejects as the staged tables, with `schemas` (default: `staged_schemas`)."""
    schemas = staged_schemas() if schemas is None else schemas
    papers, authors = _Columns(schemas["papers"]), _Columns(schemas["paper_authors"])
    organizations, rejects = _Columns(schemas["paper_organizations"]), _Columns(schemas["rejects"])
    for item in items:
        if isinstance(item, Reject):
            rejects.append({"source_line": item.source_line, "rule": item.rule, "reason": item.reason,
                            "raw": item.raw})  # fmt: skip
            continue
        papers.append(item.row)
        for position, (listed, a) in enumerate(item.authors, start=1):
            authors.append({"paper_id": item.paper_id, "position": position, "author_id": a.author_id,
                            "name_as_listed": listed, "name": a.name, "name_key": a.name_key,
                            "given_name": a.given_name, "family_name": a.family_name,
                            "is_organization": a.is_organization})  # fmt: skip
        for position, slug in enumerate(item.organizations, start=1):
            organizations.append({"paper_id": item.paper_id, "position": position, "org_id": slug})
    built = {"papers": papers, "paper_authors": authors, "paper_organizations": organizations, "rejects": rejects}
    tables = {name: columns.table() for name, columns in built.items()}
    tables["paper_content"] = content_hashes(tables["papers"], tables["paper_authors"], tables["paper_organizations"])
    if not tables["paper_content"].schema.equals(schemas["paper_content"]):
        raise ValueError("the content hashes' columns are not those of the staged paper_content schema")
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
    schemas: Mapping[str, pa.Schema] | None = None,
) -> dict[str, pa.Table]:
    """Parse and normalise a listing, or a part of one that starts on line `first_line`, into its
    staged tables (`undecodable`: lines that were not UTF-8; `line_lengths`: the full length of
    lines given by their start only; `earlier`: papers listed in earlier parts of the capture, by
    id, with their line; `schemas`: the staged tables' schemas, default `staged_schemas`)."""
    items = parse_listing(text, undecodable, first_line, line_lengths)
    return staged_tables(normalize_listing(items, capture_date, reference, earlier), schemas)
