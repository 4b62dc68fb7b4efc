"""Staged tables: a listing (or a part of one) → its staged Arrow tables; whatever the listing holds,
a dataset that validates."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.parse.listing import parse_listing
from pipeline.parse.normalize import normalize_record
from pipeline.parse.tables import chunk_tables, staged_schema
from tests.assembly import assembled
from tests.listings import record
from tests.validation import validate_dataset

A = "LGMar 1, 2024\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract A.\n"
B = "CVMar 2, 2024\nVision ModelsŁukasz Kaiser · openai, newlab\nAbstract B.\n"


def test_staged_papers_have_the_declared_columns(reference) -> None:
    """The row a normalised record makes is keyed by exactly the staged schema's columns."""
    (record,) = parse_listing(A)
    assert list(normalize_record(record, date(2026, 1, 1), reference).row) == staged_schema("papers").names
    tables = chunk_tables(A + B, date(2026, 1, 1), reference)
    assert {name: t.num_rows for name, t in tables.items()} == {
        "papers": 2, "paper_authors": 3, "paper_organizations": 2, "rejects": 0, "paper_content": 2,
    }  # fmt: skip
    assert all(t.schema.equals(staged_schema(name)) for name, t in tables.items())


def test_rows_past_a_batch_are_all_kept_in_their_order(reference) -> None:
    """Rows are turned into Arrow in batches as they come: past a batch, nothing is lost or moved."""
    tables = chunk_tables("".join(record(n) for n in range(2_500)), date(2026, 1, 1), reference)
    papers = tables["papers"]
    assert papers.column("title").to_pylist() == [f"Study Number {n} of Graphs" for n in range(2_500)]
    assert papers.column("source_line").to_pylist() == [1 + 3 * n for n in range(2_500)]
    paper_ids = papers.column("paper_id").to_pylist()
    assert tables["paper_authors"].column("paper_id").to_pylist() == [p for p in paper_ids for _ in ("Ann", "Bo")]
    assert tables["paper_authors"].column("name").to_pylist() == ["Ann Lee", "Bo Chen"] * 2_500
    assert sorted(tables["paper_content"].column("paper_id").to_pylist()) == sorted(paper_ids)
    assert all(t.schema.equals(staged_schema(name)) for name, t in tables.items())


def test_a_part_numbers_its_lines_from_its_first_line(reference) -> None:
    tables = chunk_tables(A + "stray\n" + B, date(2026, 1, 1), reference, first_line=101)
    assert tables["papers"].column("source_line").to_pylist() == [101, 105]
    assert tables["rejects"].column("source_line").to_pylist() == [104]


def test_earlier_parts_make_a_repeat_a_duplicate(reference) -> None:
    first = chunk_tables(A, date(2026, 1, 1), reference)
    (paper_id,) = first["papers"].column("paper_id").to_pylist()
    later = chunk_tables(A + B, date(2026, 1, 1), reference, first_line=40, earlier={paper_id: 1})
    assert later["papers"].column("title").to_pylist() == ["Vision Models"]
    assert later["rejects"].column("rule").to_pylist() == ["duplicate_paper"]
    assert "line 1" in later["rejects"].column("reason")[0].as_py()


# Hostile pieces of a listing: values past the contract's ranges, odd Unicode, broken shapes.
HEADERS = st.builds(
    "{}{}{} {}{}{}".format,
    st.sampled_from(["", "0", "87.4", "100", "100.5", "150", "999.99"]),
    st.sampled_from(["LG", "CV", "NA", "XX", "mes-hall", "cs.LG", "quant-ph"]),
    st.sampled_from(["Jan", "Feb", "Mar", "Dec"]),
    st.integers(0, 32),
    st.sampled_from(["", ", 2024", ", 0001", ", 9999", ", 2026"]),
    st.sampled_from(["", "Code", " Code"]),
)
NAME_PIECES = st.sampled_from(
    ["Ann Lee", "ʔ", "ʼ", "Łukasz Kaiser", "J.P.Hague", "de la Cruz", "O'Neil", "X", "Æ Ø", "Ann\u200bLee", "Ωμέγα"]
)
TITLE_LINES = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["A Study of Graphs", "", " ", "ʔ", "GPT-4", "Title\u00a0with\ttabs", "x" * 1200]),
    st.lists(NAME_PIECES, min_size=1, max_size=5).map(", ".join),
    st.sampled_from(["", " et al."]),
    st.sampled_from(["", " · openai", " · a.b-c, 9lab", " · UPPER"]),
    st.text(max_size=3),
)
ABSTRACTS = st.one_of(st.text(max_size=60), st.sampled_from(["$x$", "\\textbf{", "%", "{" * 50, "a" * 11_000]))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(HEADERS, TITLE_LINES, ABSTRACTS), min_size=1, max_size=6))
def test_any_listing_gives_a_dataset_that_validates(records: list[tuple[str, str, str]]) -> None:
    """Whatever the listing holds, each bad value is a reject and the rest validates: a data
    problem never fails the validation that guards publishing."""
    text = "\n".join(line for record in records for line in record)
    with tempfile.TemporaryDirectory() as work:
        validate_dataset(assembled(Path(work), [("hostile.txt", date(2026, 11, 26), text)]))


def test_a_50_mb_abstract_is_rejected_before_any_rendering(reference) -> None:
    """It once ran for minutes in the LaTeX renderer; past the size limit it never gets there."""
    listing = "LGMar 1, 2024\nA Study of GraphsAnn Lee\n$" + "x^{2} " * 8_500_000 + "$\n" + B
    tables = chunk_tables(listing, date(2026, 11, 26), reference)
    assert tables["rejects"].column("rule").to_pylist() == ["oversized_record"]
    assert len(tables["rejects"].column("raw")[0].as_py()) < 3_000
    assert tables["papers"].column("title").to_pylist() == ["Vision Models"]
