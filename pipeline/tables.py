"""Pure table builder: normalised listings → the related tables of one dataset version."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa

from pipeline.listing import Reject, parse_listing
from pipeline.normalize import AuthorName, Paper, author_name, normalize_listing
from pipeline.reference import Reference
from schemas import arrow_schema

# The tables of a version that `changes_table` compares.
CHANGE_INPUTS = ("papers", "paper_authors", "paper_organizations")
# Columns that say where a row came from, not what the paper is: not compared for changes.
LINEAGE_COLUMNS = ("source_file", "source_line", "first_seen", "last_seen")


@dataclass(frozen=True, slots=True)
class ListingResult:
    """What one raw listing contributes: its identity, papers and rejects."""

    source_file: str
    sha256: str
    size_bytes: int
    capture_date: date
    papers: tuple[Paper, ...]
    rejects: tuple[Reject, ...]

    @property
    def records(self) -> int:
        """Records found in the file: parsed papers plus rejects."""
        return len(self.papers) + len(self.rejects)


def listing_result(
    text: str,
    source_file: str,
    sha256: str,
    size_bytes: int,
    capture_date: date,
    reference: Reference,
    undecodable: frozenset[int] = frozenset(),
) -> ListingResult:
    """Parse and normalise one listing's text (`undecodable`: lines that were not UTF-8)."""
    papers, rejects = normalize_listing(parse_listing(text, undecodable), capture_date, reference)
    return ListingResult(source_file, sha256, size_bytes, capture_date, tuple(papers), tuple(rejects))


# --- the staged layer: one listing's parse as plain columnar tables ----------------------------

STAGED_TABLES = ("papers", "paper_authors", "paper_organizations", "rejects")
# What a published row holds but a single capture cannot know: it comes from assembly.
_ASSEMBLED_COLUMNS = frozenset({"source_file", "first_seen", "last_seen"})


def staged_schema(table: str) -> pa.Schema:
    """Arrow schema of a staged table, derived from the published models.

    Papers and rejects drop what assembly adds (source_file, first/last seen); paper_authors
    carries its author's fields, so that a staged capture needs no other table.
    """
    if table == "paper_authors":
        author_fields = [f for f in arrow_schema("authors") if f.name != "author_id"]
        return pa.schema([*arrow_schema("paper_authors"), *author_fields])
    return pa.schema([f for f in arrow_schema(table) if f.name not in _ASSEMBLED_COLUMNS])


def staged_tables(result: ListingResult) -> dict[str, pa.Table]:
    """One listing's papers, authors, organisations and rejects as staged Arrow tables."""
    paper_columns = staged_schema("papers").names
    papers = {name: [getattr(p, name) for p in result.papers] for name in paper_columns}
    author_rows = [
        {"paper_id": p.paper_id, "position": position, "author_id": a.author_id, "name_as_listed": listed,
         "name": a.name, "name_key": a.name_key, "given_name": a.given_name, "family_name": a.family_name}
        for p in result.papers
        for position, (listed, a) in enumerate(p.authors, start=1)
    ]  # fmt: skip
    org_rows = [
        {"paper_id": p.paper_id, "position": position, "org_id": slug}
        for p in result.papers
        for position, slug in enumerate(p.organizations, start=1)
    ]
    reject_rows = [
        {"source_line": j.source_line, "rule": j.rule, "reason": j.reason, "raw": j.raw} for j in result.rejects
    ]
    return {
        "papers": pa.table(papers, schema=staged_schema("papers")),
        "paper_authors": pa.Table.from_pylist(author_rows, schema=staged_schema("paper_authors")),
        "paper_organizations": pa.Table.from_pylist(org_rows, schema=staged_schema("paper_organizations")),
        "rejects": pa.Table.from_pylist(reject_rows, schema=staged_schema("rejects")),
    }


def listing_from_staged(
    source_file: str, sha256: str, size_bytes: int, capture_date: date, tables: Mapping[str, pa.Table]
) -> ListingResult:
    """The listing that `staged_tables` stored, rebuilt from its tables."""
    authors: dict[str, list[tuple[str, AuthorName]]] = defaultdict(list)
    for row in tables["paper_authors"].sort_by([("paper_id", "ascending"), ("position", "ascending")]).to_pylist():
        person = AuthorName(row["author_id"], row["name"], row["name_key"], row["given_name"], row["family_name"])
        authors[row["paper_id"]].append((row["name_as_listed"], person))
    organizations: dict[str, list[str]] = defaultdict(list)
    for row in (
        tables["paper_organizations"].sort_by([("paper_id", "ascending"), ("position", "ascending")]).to_pylist()
    ):
        organizations[row["paper_id"]].append(row["org_id"])
    papers = tuple(
        Paper(**row, authors=tuple(authors[row["paper_id"]]), organizations=tuple(organizations[row["paper_id"]]))
        for row in tables["papers"].to_pylist()
    )
    rejects = tuple(Reject(**row) for row in tables["rejects"].to_pylist())
    return ListingResult(source_file, sha256, size_bytes, capture_date, papers, rejects)


def _display_preference(spelling: str, count: int) -> tuple[int, int, str]:
    # Diacritics carry information that folding removes, so the richest spelling is shown.
    return (sum(1 for ch in spelling if ord(ch) > 127), count, spelling)


def build_tables(results: Sequence[ListingResult], reference: Reference) -> dict[str, pd.DataFrame]:
    """Assemble every listing into one dataset: one row per paper, the latest capture winning.

    Captures are ordered by capture date, then file name; a paper's fields come from the last
    capture that shows it, and first_seen/last_seen span all captures that show it.
    """
    ordered = sorted(results, key=lambda r: (r.capture_date, r.source_file))
    winner: dict[str, tuple[Paper, ListingResult]] = {}
    first_seen: dict[str, date] = {}
    last_seen: dict[str, date] = {}
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for result in ordered:
        for paper in result.papers:
            winner[paper.paper_id] = (paper, result)
            for _, author in paper.authors:
                spellings[author.author_id][author.name] += 1
            first_seen.setdefault(paper.paper_id, result.capture_date)
            last_seen[paper.paper_id] = result.capture_date

    paper_rows = []
    author_rows = []
    org_rows: list[dict[str, str | int]] = []
    people: dict[str, AuthorName] = {}
    for paper_id, (paper, result) in winner.items():
        paper_rows.append(
            {
                "paper_id": paper_id,
                "title": paper.title,
                "published": paper.published,
                "published_year_inferred": paper.published_year_inferred,
                "category": paper.category,
                "category_suffix": paper.category_suffix,
                "category_ambiguous": paper.category_ambiguous,
                "has_code": paper.has_code,
                "score": paper.score,
                "authors_truncated": paper.authors_truncated,
                "author_split_ambiguous": paper.author_split_ambiguous,
                "abstract": paper.abstract,
                "abstract_text": paper.abstract_text,
                "source_file": result.source_file,
                "source_line": paper.source_line,
                "first_seen": first_seen[paper_id],
                "last_seen": last_seen[paper_id],
            }
        )
        for position, (listed, author) in enumerate(paper.authors, start=1):
            author_rows.append(
                {"paper_id": paper_id, "position": position, "author_id": author.author_id, "name_as_listed": listed}
            )
            people.setdefault(author.author_id, author)
        for position, slug in enumerate(paper.organizations, start=1):
            org_rows.append({"paper_id": paper_id, "position": position, "org_id": slug})

    authors = []
    for author_id, person in people.items():
        # Spellings from every capture compete, so an accent seen once is not lost.
        shown = max(spellings[author_id].items(), key=lambda item: _display_preference(*item))[0]
        if shown != person.name:
            # The parts of the displayed spelling, so that name and parts agree.
            person = author_name(shown)
        authors.append(
            {
                "author_id": author_id,
                "name": person.name,
                "name_key": person.name_key,
                "given_name": person.given_name,
                "family_name": person.family_name,
            }
        )

    seen_slugs = sorted({str(row["org_id"]) for row in org_rows} - set(reference.organizations))
    organizations = [
        {"org_id": org.org_id, "name": org.name, "ror_id": org.ror_id} for org in reference.organizations.values()
    ] + [{"org_id": slug, "name": None, "ror_id": None} for slug in seen_slugs]

    categories = [
        {"category": c.code, "name": c.name, "archive": c.archive, "group": c.group, "alias_of": c.alias_of}
        for c in reference.categories.values()
    ]
    return {
        "papers": _frame(paper_rows, PAPER_COLUMNS).sort_values("paper_id", ignore_index=True),
        "authors": _frame(authors, AUTHOR_COLUMNS).sort_values("author_id", ignore_index=True),
        "paper_authors": _frame(author_rows, ["paper_id", "position", "author_id", "name_as_listed"]).sort_values(
            ["paper_id", "position"], ignore_index=True
        ),
        "organizations": _frame(organizations, ["org_id", "name", "ror_id"]).sort_values("org_id", ignore_index=True),
        "paper_organizations": _frame(org_rows, ["paper_id", "position", "org_id"]).sort_values(
            ["paper_id", "position"], ignore_index=True
        ),
        "categories": _frame(categories, ["category", "name", "archive", "group", "alias_of"]),
        "rejects": rejects_table(ordered),
    }


def rejects_table(results: Sequence[ListingResult]) -> pd.DataFrame:
    """Every reject of every listing, in file and line order."""
    rows = (
        {"source_file": r.source_file, "source_line": j.source_line, "rule": j.rule, "reason": j.reason, "raw": j.raw}
        for r in sorted(results, key=lambda r: (r.capture_date, r.source_file))
        for j in r.rejects
    )
    return _frame(rows, ["source_file", "source_line", "rule", "reason", "raw"])


PAPER_COLUMNS = [
    "paper_id", "title", "published", "published_year_inferred", "category", "category_suffix",
    "category_ambiguous", "has_code", "score", "authors_truncated", "author_split_ambiguous",
    "abstract", "abstract_text", "source_file", "source_line", "first_seen", "last_seen",
]  # fmt: skip
AUTHOR_COLUMNS = ["author_id", "name", "name_key", "given_name", "family_name"]
CHANGE_COLUMNS = ["paper_id", "change", "changed_fields"]


def _frame(rows: Iterable[Mapping[str, object]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=columns)


def paper_content(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per paper, every field that defines it (lineage excluded) plus its author and org lists."""
    papers = tables["papers"].drop(columns=list(LINEAGE_COLUMNS)).set_index("paper_id")
    authors = (
        tables["paper_authors"]
        .sort_values(["paper_id", "position"])
        .groupby("paper_id")["name_as_listed"]
        .agg("\x1f".join)
    )
    orgs = (
        tables["paper_organizations"]
        .sort_values(["paper_id", "position"])
        .groupby("paper_id")["org_id"]
        .agg("\x1f".join)
    )
    content = papers.assign(authors=authors, organizations=orgs)
    content["organizations"] = content["organizations"].fillna("")
    return content.astype("string")


def changes_table(parent: Mapping[str, pd.DataFrame] | None, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Papers added, updated or removed against the parent version (all added when there is none)."""
    current = paper_content(tables)
    if parent is None:
        return _frame(
            ({"paper_id": pid, "change": "added", "changed_fields": ""} for pid in sorted(current.index)),
            CHANGE_COLUMNS,
        )
    previous = paper_content(parent)
    rows = [
        {"paper_id": pid, "change": "added", "changed_fields": ""} for pid in current.index.difference(previous.index)
    ]
    rows += [
        {"paper_id": pid, "change": "removed", "changed_fields": ""} for pid in previous.index.difference(current.index)
    ]
    common = current.index.intersection(previous.index)
    columns = [c for c in current.columns if c in previous.columns]
    left = current.loc[common, columns].fillna("\x00")
    right = previous.loc[common, columns].fillna("\x00")
    differs = left.ne(right)
    changed = differs[differs.any(axis=1)]
    for pid, flags in zip(changed.index, changed.to_numpy(), strict=True):
        fields = [c for c, flag in zip(columns, flags, strict=True) if flag]
        rows.append({"paper_id": pid, "change": "updated", "changed_fields": ",".join(fields)})
    return _frame(rows, CHANGE_COLUMNS).sort_values("paper_id", ignore_index=True)
