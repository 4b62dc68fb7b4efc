"""Content hashes of papers: equal for equal papers however they were made (a parsed part, or a
version's published files), different when a compared field differs, blind to lineage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.assembled.changes import table_views
from pipeline.db import connect
from pipeline.parse.content import (
    LINEAGE_COLUMNS,
    content_columns,
    content_schema,
    create_content_table,
    hash_columns,
)
from pipeline.parse.tables import CHANGE_INPUTS, chunk_tables
from schemas.tables import arrow_schema
from tests.assembly import assembled, write_parent

CAPTURE = date(2026, 1, 1)
HEADER, TITLE_LINE, ABSTRACT = "LGMar 1, 2024", "A Study of GraphsAnn Lee, Bo Chen, Cy Wu · openai", "Abstract A."
OTHER = "CVMar 2, 2024\nVision ModelsŁukasz Kaiser\nAbstract with $\\alpha$.\n"  # no organisation


def listing(header: str = HEADER, title_line: str = TITLE_LINE, abstract: str = ABSTRACT) -> str:
    return f"{header}\n{title_line}\n{abstract}\n"


def content_rows(text: str, reference, capture: date = CAPTURE, first_line: int = 1) -> dict[str, dict]:
    """paper_id → its content row, as staging hashes a parsed part."""
    table = chunk_tables(text, capture, reference, first_line=first_line)["paper_content"]
    assert table.schema.equals(content_schema())
    return {row["paper_id"]: row for row in table.to_pylist()}


def test_a_content_table_holds_a_hash_per_compared_column_then_the_lists_and_the_whole() -> None:
    papers = arrow_schema("papers").names
    assert set(content_columns()) == set(papers) - set(LINEAGE_COLUMNS) - {"paper_id"}
    assert [c for c in papers if c in content_columns()] == content_columns()  # in the contract's order
    assert hash_columns() == [*content_columns(), "authors", "organizations", "whole"]
    assert content_schema().names == ["paper_id", *hash_columns()]


def test_hashes_are_equal_for_equal_papers_whether_staged_or_published(tmp_path: Path, reference) -> None:
    """Staging hashes each parsed part; a parent without a paper index is hashed from its published
    files: an unchanged paper must have the same hashes both ways, or every paper would be updated."""
    text = listing() + OTHER
    staged = content_rows(text, reference)
    tables = assembled(tmp_path, [("listing_2026-01-01.txt", CAPTURE, text)])
    parent = write_parent(tmp_path / "published", tables)
    with connect() as con:
        # as assembly reads a parent without a paper index: its tables' parts, newest generation of a key
        table_views(con, parent.tables(CHANGE_INPUTS), prefix="parent_")
        create_content_table(con, "published", "parent_papers", "parent_paper_authors",
                             "parent_paper_organizations")  # fmt: skip
        published = con.sql("SELECT * FROM published ORDER BY paper_id").to_arrow_table()
    assert len(staged) == published.num_rows == 2
    rows = {row["paper_id"]: row for row in published.cast(content_schema()).to_pylist()}
    assert rows == staged


@pytest.mark.parametrize(
    ("variant", "differing"),
    [
        ({"header": "91.0LGMar 1, 2024"}, {"score"}),
        ({"header": "LGMar 1, 2024Code"}, {"has_code"}),
        ({"header": "LGMar 2, 2024"}, {"published"}),
        ({"header": "CLMar 1, 2024"}, {"category", "category_suffix"}),
        ({"abstract": "Abstract $B$."}, {"abstract", "abstract_text"}),
        ({"title_line": "A Study of GraphsAnn Lee, Bo Chen, Di Park · openai"}, {"authors"}),
        ({"title_line": "A Study of GraphsAnn Lee, Cy Wu, Bo Chen · openai"}, {"authors"}),  # their order
        ({"title_line": "A Study of GraphsAnn Lee, Bo Chen, Cy Wu · mila"}, {"organizations"}),
        ({"title_line": "A Study of GraphsAnn Lee, Bo Chen, Cy Wu"}, {"organizations"}),
        ({"title_line": "A Study of GraphsAnn Lee, Bo Chen, Cy Wu et al. · openai"}, {"authors_truncated"}),
    ],
)
def test_a_compared_field_that_differs_changes_its_hash_and_the_whole(
    reference, variant: dict[str, str], differing: set[str]
) -> None:
    (before,) = content_rows(listing(), reference).values()
    (after,) = content_rows(listing(**variant), reference).values()
    assert after["paper_id"] == before["paper_id"]  # the same paper (title and first author), changed
    changed = {column for column in hash_columns() if after[column] != before[column]}
    assert changed == differing | {"whole"}


def test_lineage_is_not_compared(reference) -> None:
    """The same paper at another line of another capture, listed after other papers: the same content."""
    later, text = date(2026, 3, 1), OTHER + "a stray line\n" + listing()
    first = content_rows(listing(), reference)
    again = content_rows(text, reference, capture=later, first_line=101)
    (paper_id,) = first
    assert again[paper_id] == first[paper_id]
    papers = chunk_tables(text, later, reference, first_line=101)["papers"].to_pylist()
    assert [p["source_line"] for p in papers if p["paper_id"] == paper_id] == [105]  # its lineage did differ
