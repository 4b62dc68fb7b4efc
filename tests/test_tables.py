"""Table building: one row per paper, latest capture wins, author identity, changes."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.tables import build_tables, changes_table, listing_result

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
