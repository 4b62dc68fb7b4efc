"""Reference data shipped with the package: the arXiv taxonomy (aliases included), the suffixes listings
use, and the organisation registry, read as strings and never as missing values."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.given_names import LEXICON, corpus, given_words, lexicon, lexicon_csv
from pipeline.parse.reference import Category, Organization, load_reference

TAXONOMY_CODES = 155  # the arXiv taxonomy's codes, its aliases among them


def test_the_taxonomy_has_every_code_aliases_included(reference) -> None:
    assert len(reference.categories) == TAXONOMY_CODES
    assert all(code == category.code for code, category in reference.categories.items())
    aliases = {c.code: c.alias_of for c in reference.categories.values() if c.alias_of is not None}
    assert aliases["cs.NA"] == "math.NA"
    assert aliases["q-fin.EC"] == "econ.GN"
    assert set(aliases.values()) <= set(reference.categories)  # an alias names a code of the taxonomy
    assert not set(aliases.values()) & set(aliases)  # and never another alias
    assert reference.categories["cs.LG"] == Category("cs.LG", "Machine Learning", "cs", "Computer Science", None)


def test_the_suffix_na_is_a_string_not_a_missing_value(reference) -> None:
    """NA (Numerical Analysis) is what a CSV reader like pandas' reads as a missing value by default."""
    assert "NA" in reference.suffixes
    assert reference.suffixes["NA"] == ("cs.NA", "math.NA")
    assert all(isinstance(suffix, str) and suffix for suffix in reference.suffixes)
    assert reference.categories["math.NA"].name == "Numerical Analysis"


def test_every_suffix_lists_codes_of_the_taxonomy(reference) -> None:
    for suffix, codes in reference.suffixes.items():
        assert codes, suffix
        assert set(codes) <= set(reference.categories), suffix


def test_registry_rows_have_a_name_and_a_ror_id_only_when_known(reference) -> None:
    organizations = reference.organizations
    assert organizations["berkeley"] == Organization("berkeley", "University of California, Berkeley", "01an7q238")
    assert organizations["openai"] == Organization("openai", "OpenAI", None)  # an empty ROR id is None, not ""
    assert all(org_id == o.org_id and o.name for org_id, o in organizations.items())
    assert all(o.ror_id is None or len(o.ror_id) == 9 for o in organizations.values())


def test_the_reference_is_loaded_once_and_cannot_be_changed() -> None:
    reference = load_reference()
    assert load_reference() is reference
    with pytest.raises(TypeError):
        reference.categories["cs.XX"] = reference.categories["cs.LG"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        reference.organizations["openai"].name = "Closed AI"  # type: ignore[misc]


def test_the_given_name_lexicon_is_what_the_corpora_give_and_holds_no_title_word(reference) -> None:
    built = lexicon(corpus("both"))
    assert LEXICON.read_text(encoding="utf-8") == lexicon_csv(built)  # rebuilt: make given-names
    assert reference.given_names == frozenset(built)
    assert {"Amir", "Hossein", "Sai", "Kiran"} <= reference.given_names
    # Words titles use in lower case never read as names: a title end must not become an author.
    assert not {"Long", "Young", "Deep", "Net", "Model"} & reference.given_names


def test_given_words_are_the_words_before_the_family_name() -> None:
    assert given_words("Amir Hossein Safdarian") == ["Amir", "Hossein"]
    assert given_words("Hsiao-Yuan Lin") == ["Hsiao", "Yuan"]
    assert given_words("KarimReza Tavan") == ["Karim", "Reza"]
    assert given_words("J. P. Doe") == []  # initials are no given names
    assert given_words("Ludwig van Beethoven") == ["Ludwig"]
    assert given_words("Gemma Team") == []  # an organisation
    assert given_words("Plato") == []
