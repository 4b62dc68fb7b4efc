"""The committed sample listing parses exactly as its hand-checked gold file says."""

from __future__ import annotations

import json
from datetime import date

import pytest

from pipeline.parse.listing import Reject, parse_listing
from pipeline.parse.normalize import normalize_listing
from tests.conftest import GOLD

CAPTURE = date(2026, 11, 26)
GOLD_RECORDS = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def papers(sample_text, reference):
    items = list(normalize_listing(parse_listing(sample_text), CAPTURE, reference))
    assert [i for i in items if isinstance(i, Reject)] == []
    return {p.row["source_line"]: p for p in items}


def test_every_gold_record_is_parsed(papers) -> None:
    assert sorted(papers) == [g["source_line"] for g in GOLD_RECORDS]
    assert len(papers) == 50


@pytest.mark.parametrize("gold", GOLD_RECORDS, ids=lambda g: f"line{g['source_line']}")
def test_every_field_matches_gold(papers, gold: dict) -> None:
    paper = papers[gold["source_line"]]
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
    assert got == gold
    assert not row["author_split_ambiguous"]
