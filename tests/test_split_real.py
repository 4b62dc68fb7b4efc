"""Replays 9,010 real arXiv records rendered as a listing: the split must stay ≥ 99.5% exact."""

from __future__ import annotations

from benchmarks.render import load_records
from benchmarks.split_accuracy import miss_cause, split_accuracy

THRESHOLD = 0.995


def test_real_corpus_split_accuracy() -> None:
    records = load_records()
    assert len(records) == 9010
    exact, misses = split_accuracy(records)
    rate = exact / len(records)
    causes = sorted({miss_cause(t, g) for t, g in misses})
    assert rate >= THRESHOLD, f"{rate:.4%} exact; causes: {causes}"
    # No record may vanish: every miss is a wrong split or a reject, never a lost record.
    assert "record lost" not in causes
