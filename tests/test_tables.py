"""Table building: one row per paper, latest capture wins, author identity, changes."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.tables import build_tables, changes_table, listing_from_staged, listing_result, staged_tables
from schemas import validate_dataset

A = "LGMar 1, 2024\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract A.\n"
A_UPDATED = "91.0LGMar 1, 2024Code\nA Study of GraphsSebastien Bubeck, Ann Lee\nAbstract A.\n"
B = "CVMar 2, 2024\nVision ModelsŁukasz Kaiser · openai, newlab\nAbstract B.\n"
C = "CLMar 3, 2024\nLanguage ModelsLukasz Kaiser, Bo Chen, Cy Wu et al.\nAbstract C.\n"


def result(text: str, name: str, capture: date, reference):
    return listing_result(text, name, "0" * 64, len(text), capture, reference)


@pytest.fixture
def two_captures(reference):
    first = result(A + B, "listing_2026-01-01.txt", date(2026, 1, 1), reference)
    second = result(A_UPDATED + C, "listing_2026-02-01.txt", date(2026, 2, 1), reference)
    return first, second


def test_one_row_per_paper_latest_capture_wins(two_captures, reference) -> None:
    tables = build_tables(list(reversed(two_captures)), reference)  # input order must not matter
    papers = tables["papers"].set_index("title")
    assert len(papers) == 3
    graphs = papers.loc["A Study of Graphs"]
    assert (graphs["score"], graphs["has_code"], graphs["source_file"]) == (91.0, True, "listing_2026-02-01.txt")
    assert (graphs["first_seen"], graphs["last_seen"]) == (date(2026, 1, 1), date(2026, 2, 1))
    vision = papers.loc["Vision Models"]
    assert (vision["first_seen"], vision["last_seen"]) == (date(2026, 1, 1), date(2026, 1, 1))


def test_author_identity_folds_spellings_and_displays_diacritics(two_captures, reference) -> None:
    # The winning capture spells "Sebastien"; the older one "Sébastien": the display keeps the accent.
    tables = build_tables(two_captures, reference)
    authors = tables["authors"].set_index("name_key")
    assert authors.loc["lukasz kaiser", "name"] == "Łukasz Kaiser"
    assert authors.loc["sebastien bubeck", "name"] == "Sébastien Bubeck"
    links = tables["paper_authors"]
    assert links["author_id"].isin(tables["authors"]["author_id"]).all()
    # name_as_listed keeps the spelling of the winning capture
    assert "Sebastien Bubeck" in set(links["name_as_listed"])


def test_organisations_keep_unknown_slugs_unnamed(two_captures, reference) -> None:
    tables = build_tables(two_captures, reference)
    orgs = tables["organizations"].set_index("org_id")
    assert orgs.loc["openai", "name"] == "OpenAI"
    assert orgs.loc["newlab"].isna().all()
    assert list(tables["paper_organizations"]["org_id"]) == ["openai", "newlab"]


def test_changes_against_parent(two_captures, reference) -> None:
    first, second = two_captures
    parent = build_tables([first], reference)
    child = build_tables([first, second], reference)
    changes = changes_table(parent, child).set_index("paper_id")
    titles = child["papers"].set_index("paper_id")["title"]
    kinds = {titles[pid]: row["change"] for pid, row in changes.iterrows()}
    assert kinds == {"A Study of Graphs": "updated", "Language Models": "added"}
    updated = changes[changes["change"] == "updated"].iloc[0]
    assert set(updated["changed_fields"].split(",")) == {"score", "has_code", "authors"}


def test_removed_papers_and_first_version(two_captures, reference) -> None:
    first, second = two_captures
    both = build_tables([first, second], reference)
    only_second = build_tables([second], reference)
    changes = changes_table(both, only_second)
    assert list(changes["change"]) == ["removed"]
    assert set(changes_table(None, both)["change"]) == {"added"}


def test_inputs_are_not_mutated(two_captures, reference) -> None:
    parent = build_tables([two_captures[0]], reference)
    snapshot = {name: frame.copy() for name, frame in parent.items()}
    changes_table(parent, build_tables(list(two_captures), reference))
    for name, frame in parent.items():
        assert frame.equals(snapshot[name])


def test_staged_tables_round_trip(two_captures) -> None:
    for captured in two_captures:
        rebuilt = listing_from_staged(
            captured.source_file, captured.sha256, captured.size_bytes, captured.capture_date, staged_tables(captured)
        )
        assert rebuilt == captured


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
def test_any_listing_gives_a_dataset_that_validates(reference, records: list[tuple[str, str, str]]) -> None:
    """Whatever the listing holds, each bad value is a reject and the rest validates: a data
    problem never fails the validation that guards publishing."""
    text = "\n".join(line for record in records for line in record)
    result = listing_result(text, "hostile.txt", "0" * 64, len(text), date(2026, 11, 26), reference)
    tables = build_tables([result], reference)
    tables["changes"] = changes_table(None, tables)
    validate_dataset(tables)


def test_a_50_mb_abstract_is_rejected_before_any_rendering(reference) -> None:
    """It once ran for minutes in the LaTeX renderer; past the size limit it never gets there."""
    listing = "LGMar 1, 2024\nA Study of GraphsAnn Lee\n$" + "x^{2} " * 8_500_000 + "$\n" + B
    result = listing_result(listing, "big.txt", "0" * 64, len(listing), date(2026, 11, 26), reference)
    assert [r.rule for r in result.rejects] == ["oversized_record"]
    assert len(result.rejects[0].raw) < 3_000
    assert [p.title for p in result.papers] == ["Vision Models"]
