"""The committed sample listing parses exactly as its hand-checked gold file says."""

from __future__ import annotations

import json
from datetime import date

import pytest

from pipeline.tables import listing_result
from tests.conftest import GOLD

CAPTURE = date(2026, 11, 26)
GOLD_RECORDS = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def papers(sample_text, reference):
    result = listing_result(sample_text, "listing_2026-11-26.txt", "0" * 64, len(sample_text), CAPTURE, reference)
    assert result.rejects == ()
    return {p.source_line: p for p in result.papers}


def test_every_gold_record_is_parsed(papers) -> None:
    assert sorted(papers) == [g["source_line"] for g in GOLD_RECORDS]
    assert len(papers) == 50


@pytest.mark.parametrize("gold", GOLD_RECORDS, ids=lambda g: f"line{g['source_line']}")
def test_every_field_matches_gold(papers, gold: dict) -> None:
    paper = papers[gold["source_line"]]
    got = {
        "source_line": paper.source_line,
        "category": paper.category,
        "category_suffix": paper.category_suffix,
        "published": paper.published.isoformat(),
        "year_inferred": paper.published_year_inferred,
        "score": paper.score,
        "has_code": paper.has_code,
        "title": paper.title,
        "authors": [listed for listed, _ in paper.authors],
        "authors_truncated": paper.authors_truncated,
        "affiliations": list(paper.organizations),
        "abstract": paper.abstract,
    }
    assert got == gold
    assert not paper.author_split_ambiguous
