"""Columnar assembly: one row per paper, the latest capture winning, author identity, organisations, changes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.assembly import assembled

A = "LGMar 1, 2024\nA Study of GraphsSébastien Bubeck, Ann Lee\nAbstract A.\n"
A_UPDATED = "91.0LGMar 1, 2024Code\nA Study of GraphsSebastien Bubeck, Ann Lee\nAbstract A.\n"
B = "CVMar 2, 2024\nVision ModelsŁukasz Kaiser · openai, newlab\nAbstract B.\n"
C = "CLMar 3, 2024\nLanguage ModelsLukasz Kaiser, Bo Chen, Cy Wu et al.\nAbstract C.\n"


FIRST = ("listing_2026-01-01.txt", date(2026, 1, 1), A + B)
SECOND = ("listing_2026-02-01.txt", date(2026, 2, 1), A_UPDATED + C)


def test_one_row_per_paper_latest_capture_wins(tmp_path: Path) -> None:
    tables = assembled(tmp_path, [SECOND, FIRST])  # input order must not matter
    papers = tables["papers"].set_index("title")
    assert len(papers) == 3
    graphs = papers.loc["A Study of Graphs"]
    assert (graphs["score"], graphs["has_code"], graphs["source_file"]) == (91.0, True, "listing_2026-02-01.txt")
    assert (graphs["first_seen"], graphs["last_seen"]) == (date(2026, 1, 1), date(2026, 2, 1))
    vision = papers.loc["Vision Models"]
    assert (vision["first_seen"], vision["last_seen"]) == (date(2026, 1, 1), date(2026, 1, 1))
    # published in the order the papers were listed: capture, then line
    assert list(tables["papers"]["title"]) == ["Vision Models", "A Study of Graphs", "Language Models"]
    assert list(tables["authors"]["author_id"]) == sorted(tables["authors"]["author_id"])  # light tables: key order


def test_author_identity_folds_spellings_and_displays_diacritics(tmp_path: Path) -> None:
    # The winning capture spells "Sebastien"; the older one "Sébastien": the display keeps the accent.
    tables = assembled(tmp_path, [FIRST, SECOND])
    authors = tables["authors"].set_index("name_key")
    assert authors.loc["lukasz kaiser", "name"] == "Łukasz Kaiser"
    assert authors.loc["sebastien bubeck", "name"] == "Sébastien Bubeck"
    assert (authors.loc["sebastien bubeck", "given_name"], authors.loc["sebastien bubeck", "family_name"]) == (
        "Sébastien", "Bubeck",
    )  # fmt: skip
    links = tables["paper_authors"]
    assert links["author_id"].isin(tables["authors"]["author_id"]).all()
    # name_as_listed keeps the spelling of the winning capture
    assert "Sebastien Bubeck" in set(links["name_as_listed"])


def test_the_most_frequent_spelling_wins_among_equally_rich_ones(tmp_path: Path) -> None:
    one = "LGMar 1, 2024\nPaper OneAnn-Marie Lee\nAbstract.\n"
    two = "LGMar 1, 2024\nPaper TwoAnn Marie Lee\nAbstract.\n"
    three = "LGMar 1, 2024\nPaper ThreeAnn Marie Lee\nAbstract.\n"
    tables = assembled(tmp_path, [("a.txt", date(2026, 1, 1), one + two + three)])
    assert list(tables["authors"]["name"]) == ["Ann Marie Lee"]


def test_organisations_keep_unknown_slugs_unnamed(tmp_path: Path) -> None:
    tables = assembled(tmp_path, [FIRST, SECOND])
    orgs = tables["organizations"].set_index("org_id")
    assert orgs.loc["openai", "name"] == "OpenAI"
    assert orgs.loc["newlab"].isna().all()
    assert list(tables["paper_organizations"]["org_id"]) == ["openai", "newlab"]


def test_changes_against_parent(tmp_path: Path) -> None:
    parent = assembled(tmp_path, [FIRST])
    child = assembled(tmp_path, [FIRST, SECOND], parent=parent)
    changes = child["changes"].set_index("paper_id")
    titles = child["papers"].set_index("paper_id")["title"]
    kinds = {titles[pid]: row["change"] for pid, row in changes.iterrows()}
    assert kinds == {"A Study of Graphs": "updated", "Language Models": "added"}
    updated = changes[changes["change"] == "updated"].iloc[0]
    assert set(updated["changed_fields"].split(",")) == {"score", "has_code", "authors"}


def test_removed_papers_and_first_version(tmp_path: Path) -> None:
    both = assembled(tmp_path, [FIRST, SECOND])
    only_second = assembled(tmp_path, [SECOND], parent=both)
    assert list(only_second["changes"]["change"]) == ["removed"]
    assert set(both["changes"]["change"]) == {"added"}


def test_lineage_alone_is_no_change(tmp_path: Path) -> None:
    """A paper seen again in a later capture, as it was, is not updated: lineage is not content."""
    parent = assembled(tmp_path, [FIRST])
    again = assembled(tmp_path, [FIRST, ("listing_2026-03-01.txt", date(2026, 3, 1), A + B)], parent=parent)
    assert len(again["changes"]) == 0
    assert set(again["papers"]["last_seen"]) == {date(2026, 3, 1)}


def test_first_and_last_seen_span_the_captures_that_show_a_paper(tmp_path: Path) -> None:
    """A paper missing from a capture between two that show it: seen from the first to the last;
    its fields are the last one's."""
    march = ("listing_2026-03-01.txt", date(2026, 3, 1), A_UPDATED)
    tables = assembled(tmp_path, [march, ("listing_2026-02-01.txt", date(2026, 2, 1), C), FIRST])
    papers = tables["papers"].set_index("title")
    seen = {title: (row["first_seen"], row["last_seen"]) for title, row in papers.iterrows()}
    assert seen == {
        "A Study of Graphs": (date(2026, 1, 1), date(2026, 3, 1)),
        "Vision Models": (date(2026, 1, 1), date(2026, 1, 1)),
        "Language Models": (date(2026, 2, 1), date(2026, 2, 1)),
    }
    graphs = papers.loc["A Study of Graphs"]
    assert (graphs["source_file"], graphs["score"], graphs["source_line"]) == ("listing_2026-03-01.txt", 91.0, 1)


@pytest.mark.parametrize("order", [1, -1], ids=["in order", "reversed"])
def test_on_one_capture_date_the_later_file_name_wins(tmp_path: Path, order: int) -> None:
    day = date(2026, 1, 1)
    for plain, updated in (("a.txt", "b.txt"), ("b.txt", "a.txt")):
        captures = [(plain, day, A), (updated, day, A_UPDATED)][::order]
        (paper,) = assembled(tmp_path, captures)["papers"].to_dict("records")
        assert paper["source_file"] == "b.txt"
        assert (paper["score"] == 91.0) is (updated == "b.txt")


def test_the_richest_spelling_wins_then_the_most_frequent_then_the_greatest(tmp_path: Path) -> None:
    rich = "LGMar 1, 2024\nPaper OneJosé Núñez\nAbstract.\n"
    plain = "LGMar 1, 2024\nPaper TwoJose Nunez\nAbstract.\nLGMar 1, 2024\nPaper ThreeJose Nunez\nAbstract.\n"
    tables = assembled(tmp_path, [("a.txt", date(2026, 1, 1), plain + rich)])
    assert list(tables["authors"]["name"]) == ["José Núñez"]  # rarer, but richer
    assert sorted(tables["paper_authors"]["name_as_listed"]) == ["Jose Nunez", "Jose Nunez", "José Núñez"]  # as listed
    # Equally rich, each once: the greatest ("-" sorts after " "), whatever the order of listing.
    hyphen = "LGMar 1, 2024\nPaper FourAnn-Marie Lee\nAbstract.\n"
    space = "LGMar 1, 2024\nPaper FiveAnn Marie Lee\nAbstract.\n"
    for text in (hyphen + space, space + hyphen):
        assert list(assembled(tmp_path, [("b.txt", date(2026, 1, 1), text)])["authors"]["name"]) == ["Ann-Marie Lee"]


def test_organisations_are_the_registry_plus_the_unknown_slugs_listed(tmp_path: Path, reference) -> None:
    unknown = "LGMar 4, 2024\nGraphs AgainAnn Lee · 9lab, openai\nAbstract D.\n"
    tables = assembled(tmp_path, [FIRST, ("listing_2026-02-01.txt", date(2026, 2, 1), unknown)])
    orgs = tables["organizations"][["org_id", "name", "ror_id"]]
    got = [tuple(None if pd.isna(value) else value for value in row) for row in orgs.itertuples(index=False)]
    registry = [(o.org_id, o.name, o.ror_id) for o in reference.organizations.values()]
    expected = sorted([*registry, ("9lab", None, None), ("newlab", None, None)])
    assert got == expected  # each once (openai listed twice, in the registry too), by key
    assert set(tables["paper_organizations"]["org_id"]) == {"openai", "newlab", "9lab"}


def test_changes_name_each_paper_added_updated_or_removed_with_its_fields(tmp_path: Path) -> None:
    parent = assembled(tmp_path, [FIRST])  # A and B
    child = assembled(tmp_path, [SECOND], parent=parent)  # A updated, C added; B no longer captured
    titles = {
        **parent["papers"].set_index("paper_id")["title"].to_dict(),
        **child["papers"].set_index("paper_id")["title"].to_dict(),
    }
    changes = {titles[row.paper_id]: (row.change, row.changed_fields) for row in child["changes"].itertuples()}
    assert set(changes) == {"A Study of Graphs", "Language Models", "Vision Models"}
    kind, fields = changes["A Study of Graphs"]
    assert (kind, sorted(fields.split(","))) == ("updated", ["authors", "has_code", "score"])
    assert changes["Language Models"] == ("added", "")
    assert changes["Vision Models"] == ("removed", "")
    assert list(child["changes"]["paper_id"]) == sorted(child["changes"]["paper_id"])
    assert "Vision Models" not in set(child["papers"]["title"])


def test_an_assembly_past_its_memory_limit_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    """It once ended a first run of 1M papers as "internal error (a bug)" with DuckDB's traceback."""
    from pipeline.errors import OutOfMemoryError
    from pipeline.settings import ASSEMBLY_MEMORY_SETTING

    monkeypatch.setenv(ASSEMBLY_MEMORY_SETTING, "64KB")
    with pytest.raises(OutOfMemoryError, match=f"give it more with {ASSEMBLY_MEMORY_SETTING}$"):
        assembled(tmp_path, [FIRST])
