"""Replays two real corpora rendered as listings: the split must stay ≥ 99.9% exact on each."""

from __future__ import annotations

import pytest

from benchmarks.split_accuracy import corpora, miss_cause, split_accuracy

THRESHOLD = 0.999
SIZES = {"9,010 arXiv records": 9010, "20,108 papers of 2025-26": 20108}


@pytest.mark.parametrize("name", list(SIZES))
def test_real_corpus_split_accuracy(name: str) -> None:
    records = corpora()[name]
    assert len(records) == SIZES[name]
    exact, misses = split_accuracy(records)
    rate = exact / len(records)
    causes = sorted({miss_cause(t, g) for t, g in misses})
    assert rate >= THRESHOLD, f"{rate:.4%} exact; causes: {causes}"
    # No record may vanish: every miss is a wrong split or a reject, never a lost record.
    assert "record lost" not in causes
