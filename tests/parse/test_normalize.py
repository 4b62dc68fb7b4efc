"""Normalisers: dates, categories, author names, organisations and ids; the committed sample parsed
and normalised exactly as its hand-checked gold file says."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.parse.listing import Reject, parse_listing
from pipeline.parse.normalize import (
    NormalizationError,
    author_name,
    category_code,
    fold,
    normalize_listing,
    paper_id,
    published_date,
)
from tests.conftest import gold_records

# --- dates -----------------------------------------------------------------------------------


def test_year_less_date_rolls_back_across_new_year() -> None:
    assert published_date(12, 30, None, date(2026, 1, 3)) == (date(2025, 12, 30), True)
    assert published_date(1, 2, None, date(2026, 1, 3)) == (date(2026, 1, 2), True)


def test_year_less_date_on_the_capture_day_is_that_day() -> None:
    assert published_date(3, 12, None, date(2026, 3, 12)) == (date(2026, 3, 12), True)


def test_year_less_feb_29_takes_the_last_leap_year() -> None:
    assert published_date(2, 29, None, date(2026, 11, 26)) == (date(2024, 2, 29), True)


def test_explicit_year_is_kept_and_not_inferred() -> None:
    assert published_date(9, 11, 2023, date(2026, 11, 26)) == (date(2023, 9, 11), False)


@pytest.mark.parametrize(("month", "day", "year"), [(2, 30, 2024), (4, 31, None), (2, 29, 2023)])
def test_impossible_dates_are_rejected(month: int, day: int, year: int | None) -> None:
    with pytest.raises(NormalizationError) as err:
        published_date(month, day, year, date(2026, 11, 26))
    assert err.value.rule == "invalid_date"


def test_date_after_capture_is_rejected() -> None:
    with pytest.raises(NormalizationError) as err:
        published_date(12, 1, 2026, date(2026, 11, 26))
    assert err.value.rule == "future_date"


@given(st.integers(1, 12), st.integers(1, 31), st.dates(date(2000, 1, 1), date(2100, 12, 31)))
def test_inferred_dates_are_never_after_capture_nor_a_year_before(month: int, day: int, as_of: date) -> None:
    try:
        value, inferred = published_date(month, day, None, as_of)
    except NormalizationError:
        return
    assert inferred
    assert value <= as_of
    assert (value.month, value.day) == (month, day)
    if (month, day) != (2, 29):
        assert (as_of - value).days < 366


# --- categories ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "code", "ambiguous"),
    [
        ("LG", "cs.LG", False),
        ("CL", "cs.CL", False),
        ("ML", "stat.ML", False),
        ("OC", "math.OC", False),
        ("CV", "cs.CV", True),  # cs.CV or math.CV: cs preferred
        ("CO", "stat.CO", True),  # astro-ph.CO, math.CO or stat.CO: stat before math and astro-ph
        ("SP", "eess.SP", True),
        ("NA", "math.NA", False),  # cs.NA is an alias of math.NA: one canonical code
        ("SY", "eess.SY", False),
        ("EC", "econ.GN", False),  # q-fin.EC is an alias of econ.GN
        ("IT", "cs.IT", False),
        ("mes-hall", "cond-mat.mes-hall", False),
        ("quant-ph", "quant-ph", False),
        ("cs.LG", "cs.LG", False),
        ("math.IT", "cs.IT", False),
    ],
)
def test_category_codes(reference, suffix: str, code: str, ambiguous: bool) -> None:
    assert category_code(suffix, reference) == (code, ambiguous)


@pytest.mark.parametrize("suffix", ["XX", "lg", "cs.XX", ""])
def test_unknown_suffix_is_rejected(reference, suffix: str) -> None:
    with pytest.raises(NormalizationError) as err:
        category_code(suffix, reference)
    assert err.value.rule == "unknown_category"


def test_every_suffix_of_the_taxonomy_resolves_to_a_known_code(reference) -> None:
    for suffix in reference.suffixes:
        code, _ = category_code(suffix, reference)
        assert code in reference.categories


# --- authors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Sébastien Bubeck", "Sebastien Bubeck"),
        ("Łukasz Kaiser", "Lukasz Kaiser"),
        ("Stéphane d'Ascoli", "Stephane d’Ascoli"),
        ("J.P. Hague", "J. P. Hague"),
        ("Zeyuan Allen-Zhu", "Zeyuan  Allen-Zhu"),
        ("Øyvind Müller", "Oyvind Muller"),
        ("James O' Neill", "James O'Neill"),  # a stray space after an apostrophe
        ("Nikin~Matharaarachchi", "Nikin Matharaarachchi"),  # a tie
        ("Md Rahat-uz- Zaman", "Md Rahat-uz-Zaman"),
        ("GigaChat team", "GigaChat Team"),
    ],
)
def test_spellings_of_one_person_share_a_key_and_id(a: str, b: str) -> None:
    assert author_name(a).name_key == author_name(b).name_key
    assert author_name(a).author_id == author_name(b).author_id


def test_display_name_is_kept_as_listed() -> None:
    assert author_name("James O' Neill").name == "James O' Neill"
    assert author_name("Nikin~Matharaarachchi").name == "Nikin~Matharaarachchi"


@pytest.mark.parametrize(
    ("name", "organization"),
    [
        ("OpenAI", True), ("DeepSeek-AI", True), ("Gemma Team", True), ("Qwen Team", True),
        ("ByteDance Seed", True), ("KimiTeam", True), ("Essential AI", True), ("GigaChat team", True),
        ("Preferred Networks", True),  # only the registry says so
        ("NVIDIA", True), ("The BABAR Collaboration", True), ("MiniMax", True),
        ("Mistral AI", True),  # in the registry, with an organisation word too
        ("IBM Research", True), ("Anthropic", True),
        ("ZEPHYR TEAM", True), ("Team Lumina2D", True), ("ORCA 4D Team", True), ("Kappa Cloud X Team", True),
        ("InVista Team", True),
        ("MD. Tolan Rasheed", False), ("Marta dOrsini", False), ("PEdro Olsen", False), ("RKVNP Sudharan", False),
        ("Yuanzhi Li", False), ("Zahra TehraniNasab", False), ("Yoav HaCohen", False), ("Yuxi", False),
        ("JuneHyoung Kwon", False), ("Ai Chen", False),
    ],
)  # fmt: skip
def test_organisations_are_marked_and_have_no_name_parts(name: str, organization: bool) -> None:
    author = author_name(name)
    assert author.is_organization is organization
    if organization:
        assert (author.given_name, author.family_name) == (None, None)


def test_an_organisation_has_one_id_across_spellings_and_captures() -> None:
    assert author_name("OpenAI").author_id == author_name("openai").author_id
    assert author_name("Gemma Team").author_id == author_name("Gemma  Team").author_id


def test_different_people_differ() -> None:
    assert author_name("Yuanzhi Li").author_id != author_name("Yuchen Li").author_id


def test_display_name_keeps_diacritics_and_key_folds_them() -> None:
    name = author_name("Sébastien  Bubeck")
    assert (name.name, name.name_key) == ("Sébastien Bubeck", "sebastien bubeck")


@pytest.mark.parametrize(
    ("name", "given", "family"),
    [
        ("Yuanzhi Li", "Yuanzhi", "Li"),
        ("Tom M. Mitchell", "Tom M.", "Mitchell"),  # initials
        ("C.-P. Yuan", "C.-P.", "Yuan"),
        ("Stéphane d'Ascoli", "Stéphane", "d'Ascoli"),  # apostrophe particle
        ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),  # particle
        ("Jan van den Berg", "Jan", "van den Berg"),
        ("Zeyuan Allen-Zhu", "Zeyuan", "Allen-Zhu"),  # hyphen
        ("Sam O'Connor Russell", "Sam O'Connor", "Russell"),
        ("Martin Luther King Jr.", "Martin Luther", "King Jr."),
        ("Yuxi", None, "Yuxi"),  # single-word person
        ("NVIDIA", None, None),  # organisation
        ("The BABAR Collaboration", None, None),
        ("MiniCPM Team", None, None),
    ],
)
def test_name_parts(name: str, given: str | None, family: str | None) -> None:
    author = author_name(name)
    assert (author.given_name, author.family_name) == (given, family)


@given(st.text(min_size=1, max_size=40))
def test_fold_is_idempotent_and_ascii(text: str) -> None:
    key = fold(text)
    assert key == fold(key)
    assert key.isascii()


# --- ids -------------------------------------------------------------------------------------


def test_paper_id_ignores_whitespace_case_and_diacritics() -> None:
    first = author_name("Sébastien Bubeck").name_key
    assert paper_id("Sparks of  AGI: GPT-4", first) == paper_id(
        "sparks of agi: gpt-4 ", author_name("Sebastien BUBECK").name_key
    )
    assert paper_id("Sparks of AGI", first) != paper_id("Sparks of AGI 2", first)


# --- whole listings --------------------------------------------------------------------------


def papers_and_rejects(items):
    items = list(items)
    return [i for i in items if not isinstance(i, Reject)], [i for i in items if isinstance(i, Reject)]


def test_normalisation_rejects_carry_rule_and_raw_text(reference) -> None:
    text = (
        "XXMar 1, 2024\nA Title of SomethingAnn Lee\nAbstract.\n"
        "LGFeb 30, 2024\nAnother TitleBo Chen\nAbstract.\n"
        "LGMar 1, 2024\nA Title of SomethingAnn Lee\nAbstract.\n"
        "LGMar 2, 2024\nA  title of SOMETHINGAnn Lee\nAbstract.\n"
        "LGMar 1, 2024\nA Title of SomethingÁnn Lée\nAbstract again.\n"
    )
    papers, rejects = papers_and_rejects(normalize_listing(parse_listing(text), date(2026, 11, 26), reference))
    # Lines 10 and 13 differ from line 7 only by whitespace, case and diacritics: the same paper.
    assert [p.row["source_line"] for p in papers] == [7]
    assert [(r.source_line, r.rule) for r in rejects] == [
        (1, "unknown_category"), (4, "invalid_date"), (10, "duplicate_paper"), (13, "duplicate_paper"),
    ]  # fmt: skip
    assert rejects[0].raw.startswith("XXMar 1, 2024\nA Title of SomethingAnn Lee")
    assert "line 7" in rejects[3].reason


def test_value_problems_cost_their_record_not_the_run(reference) -> None:
    """A score past the contract's 0–100, or an author with nothing to identify them by, is a reject
    of that record: before, each made the whole dataset fail validation."""
    text = (
        "150LGMar 12, 2024\nA Study of GraphsAnn Lee\nAbstract.\n"
        "100.0LGMar 12, 2024\nAnother StudyAnn Lee\nAbstract.\n"
        "LGMar 12, 2024\nA Third StudyAnn Lee, ʔ\nAbstract.\n"
    )
    papers, rejects = papers_and_rejects(normalize_listing(parse_listing(text), date(2026, 11, 26), reference))
    assert [p.row["score"] for p in papers] == [100.0]
    assert [(r.source_line, r.rule) for r in rejects] == [(1, "score_out_of_range"), (7, "invalid_author")]
    assert "the score 150 is outside 0–100" in rejects[0].reason


@pytest.mark.parametrize(("year", "rule"), [(1, "invalid_date"), (1990, "invalid_date"), (2027, "future_date")])
def test_dates_before_arxiv_or_after_the_capture_are_rejected(year: int, rule: str) -> None:
    with pytest.raises(NormalizationError) as err:
        published_date(1, 1, year, date(2026, 11, 26))
    assert err.value.rule == rule


# --- the committed sample, as its hand-checked gold file says --------------------------------

CAPTURE = date(2026, 11, 26)
GOLD_RECORDS = gold_records()


@pytest.fixture(scope="module")
def gold_papers(sample_text, reference):
    items = list(normalize_listing(parse_listing(sample_text), CAPTURE, reference))
    assert [i for i in items if isinstance(i, Reject)] == []
    return {p.row["source_line"]: p for p in items}


def test_every_gold_record_is_parsed(gold_papers, gold) -> None:
    assert sorted(gold_papers) == [g["source_line"] for g in GOLD_RECORDS]
    assert len(gold_papers) == gold.papers


@pytest.mark.parametrize("gold_record", GOLD_RECORDS, ids=lambda g: f"line{g['source_line']}")
def test_every_field_matches_gold(gold_papers, gold_record: dict) -> None:
    paper = gold_papers[gold_record["source_line"]]
    row = paper.row
    got = {
        "source_line": row["source_line"],
        "category": row["category"],
        "category_suffix": row["category_suffix"],
        "published": row["published"].isoformat(),  # type: ignore[attr-defined]
        "year_inferred": row["published_year_inferred"],
        "score": row["score"],
        "has_code": row["has_code"],
        "title": row["title"],
        "authors": [listed for listed, _ in paper.authors],
        "authors_truncated": row["authors_truncated"],
        "affiliations": list(paper.organizations),
        "abstract": row["abstract"],
    }
    assert got == gold_record
    assert not row["author_split_ambiguous"]
