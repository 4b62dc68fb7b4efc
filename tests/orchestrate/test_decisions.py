"""The decisions a run takes, as pure functions: each tested on plain data, no flow, no disk."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.orchestrate.decisions import (
    ParentFacts,
    RunFacts,
    empty_first_version,
    file_batches,
    parent_facts,
    run_facts,
    run_fingerprint,
    too_many_rejects,
    too_many_removed,
    up_to_date,
    whole_assembly,
)
from pipeline.raw.sources import InputNotice, Source, listing_cache_key
from pipeline.staged.capture import CaptureCounts, StagedCapture
from pipeline.storage import LocalStorage
from schemas.rules import HEADERLESS_RULES

RAW = LocalStorage(Path("raw"))


def facts(records: int, rejects: int, fingerprint: str = "f") -> RunFacts:
    return RunFacts({"records": records, "rejects": rejects, "fingerprint": fingerprint, "inputs": []})


def staged(name: str, papers: int, rejects: dict[str, int], cached: bool = False) -> StagedCapture:
    source = Source(RAW, name, name, date(2026, 1, 1), "file name", 100, "tag")
    headed = papers + sum(n for rule, n in rejects.items() if rule not in HEADERLESS_RULES)
    counts = CaptureCounts(name, 100, papers, rejects, headed)
    return StagedCapture(source, f"key-{name}", "0" * 64, 1, counts, cached)


def test_run_facts_count_every_capture_and_fingerprint_inputs_code_and_contract() -> None:
    captures = [staged("a.txt", 3, {"unknown_category": 1}), staged("b.txt", 0, {"stray_lines": 2}, cached=True)]
    notices = [InputNotice("c.txt", "skipped", "not a regular file")]
    run = run_facts(captures, notices, code="code", schema="schema")
    assert (run.records, run.rejects) == (6, 3)
    assert run.manifest["skipped_inputs"] == ["c.txt: skipped: not a regular file"]
    assert run.summary["rejects_by_rule"] == {"stray_lines": 2, "unknown_category": 1}
    assert (run.summary["parsed_files"], run.summary["cached_files"]) == (["a.txt"], ["b.txt"])
    # b.txt holds no record header: the run warns of it, after the notices
    assert run.summary["warnings"][0] == "c.txt: skipped: not a regular file"
    assert any(w.startswith("b.txt: no record header") for w in run.summary["warnings"])
    assert run.fingerprint == run_fingerprint(run.manifest["inputs"], "code", "schema")
    assert run_facts(captures, notices, code="other", schema="schema").fingerprint != run.fingerprint
    assert run_facts(captures, notices, code="code", schema="other").fingerprint != run.fingerprint


@pytest.mark.parametrize(
    ("records", "rejects", "limit", "refused"),
    [(100, 5, 0.05, False), (100, 6, 0.05, True), (0, 0, 0.0, False), (10, 10, 1.0, False), (10, 1, 0.0, True)],
)
def test_too_many_rejects_is_a_share_over_the_limit(records: int, rejects: int, limit: float, refused: bool) -> None:
    why = too_many_rejects(facts(records, rejects), limit)
    assert (why is not None) == refused
    if why:
        assert why.startswith(f"{rejects} of {records} records rejected")


def test_up_to_date_only_for_the_same_fingerprint_unforced_and_not_refused() -> None:
    run = facts(100, 0, "same")
    assert up_to_date(run, "same", force=False, max_reject_rate=0.05)
    assert not up_to_date(run, "other", force=False, max_reject_rate=0.05)
    assert not up_to_date(run, None, force=False, max_reject_rate=0.05)  # nothing published yet
    assert not up_to_date(run, "same", force=True, max_reject_rate=0.05)
    # a run to be refused for its rejects is refused, even with latest's content
    assert not up_to_date(facts(100, 50, "same"), "same", force=False, max_reject_rate=0.05)


def test_an_empty_version_is_refused_only_as_the_first() -> None:
    assert empty_first_version(None, 0) is not None
    assert empty_first_version(None, 1) is None
    assert empty_first_version("000001", 0) is None  # removing every paper is the removal guard's call


def test_too_many_removed_names_each_capture_and_what_became_of_it() -> None:
    inputs = [{"path": "kept.txt", "bytes": 0, "records": 0, "rejects": 0},
              {"path": "cut.txt", "bytes": 10, "records": 2, "rejects": 1}]  # fmt: skip
    removed = {"gone.txt": 5, "kept.txt": 3, "cut.txt": 1}
    why = too_many_removed(100, removed, inputs, 0.05)
    assert why is not None
    assert why.startswith("9 of 100 papers (9.0%) would be removed")
    assert "gone.txt (5 paper(s); no longer in the raw folder)" in why
    assert "kept.txt (3 paper(s); now empty (0 bytes))" in why
    assert "cut.txt (1 paper(s); now 2 record(s), 1 rejected)" in why
    assert too_many_removed(100, removed, inputs, 0.09) is None
    assert too_many_removed(0, {}, inputs, 0.0) is None  # a first version removes nothing


def test_file_batches_never_split_a_file_and_feed_every_worker() -> None:
    sources = [Source(RAW, f"{i}.txt", f"{i}.txt", date(2026, 1, 1), "file name", 10, "t") for i in range(6)]
    assert [len(b) for b in file_batches(sources, 25)] == [3, 3]
    assert [len(b) for b in file_batches(sources, 1_000, min_batches=3)] == [2, 2, 2]
    assert [s for batch in file_batches(sources, 1, min_batches=1) for s in batch] == sources


def test_file_batches_group_small_files_and_keep_order() -> None:
    sources = [Source(RAW, f"{n}.txt", f"{n}.txt", date(2026, 1, 1), "file name", size, "t") for n, size in
               enumerate([5, 5, 5, 20, 1, 1])]  # fmt: skip
    batches = file_batches(sources, 10)
    assert [[s.name for s in b] for b in batches] == [["0.txt", "1.txt"], ["2.txt", "3.txt"], ["4.txt", "5.txt"]]
    assert len(file_batches(sources, 1)) == 6
    assert file_batches([], 10) == []
    # min_batches shrinks the batches so that every worker gets work
    assert len(file_batches(sources, 1000, min_batches=3)) == 3
    assert len(file_batches(sources, 1000, min_batches=100)) == 6


def test_fingerprint_ignores_input_order() -> None:
    a = {"path": "a.txt", "sha256": "1", "capture_date": "2026-01-01"}
    b = {"path": "b.txt", "sha256": "2", "capture_date": "2026-01-02"}
    assert run_fingerprint([a, b], "c", "s") == run_fingerprint([b, a], "c", "s")
    assert run_fingerprint([a], "c", "s") != run_fingerprint([a], "c2", "s")


# --- the choice of assembly: incremental only where a full one would give the same ---------------

JAN = {"a": (date(2026, 1, 1), "listing_2026-01-01.txt"), "b": (date(2026, 1, 2), "listing_2026-01-02.txt")}


def test_a_refresh_that_only_adds_later_captures_is_assembled_incrementally() -> None:
    parent = ParentFacts(2, True, "code", dict(JAN))
    later = {**JAN, "c": (date(2026, 1, 3), "listing_2026-01-03.txt")}
    assert whole_assembly(parent, later, "code") is None
    same_day_later_name = {**JAN, "c": (date(2026, 1, 2), "listing_2026-01-02_b.txt")}
    assert whole_assembly(parent, same_day_later_name, "code") is None
    assert whole_assembly(parent, dict(JAN), "code") is None  # nothing new (a forced run): nothing to add


@pytest.mark.parametrize(
    ("parent", "captures", "why"),
    [
        (None, JAN, "a first version"),
        (ParentFacts(1, False, "code", dict(JAN)), JAN, "no index"),
        (ParentFacts(2, False, "code", dict(JAN)), JAN, "no index"),
        (ParentFacts(2, True, "old code", dict(JAN)), JAN, "code"),
        (ParentFacts(2, True, "code", dict(JAN)), {"b": JAN["b"]}, "gone or changed (listing_2026-01-01.txt)"),
        (ParentFacts(2, True, "code", dict(JAN)), {**JAN, "c": (date(2025, 12, 31), "x.txt")}, "before"),
        (ParentFacts(2, True, "code", dict(JAN)), {**JAN, "c": (date(2026, 1, 2), "early.txt")}, "before"),
        (ParentFacts(2, True, "code", dict(JAN), "x.parquet is missing"), JAN, "index cannot be read (x.parquet"),
    ],
    ids=["first", "layout 1", "no index", "new code", "removed", "backfill", "same day, earlier name", "damaged"],
)
def test_a_version_is_assembled_whole_when_a_refresh_could_not_equal_a_full_assembly(parent, captures, why) -> None:
    reason = whole_assembly(parent, captures, "code")
    assert reason is not None
    assert why in reason


def test_a_parents_captures_are_keyed_as_staging_keys_them() -> None:
    manifest = {"code_fingerprint": "code",
                "inputs": [{"path": "a.txt", "sha256": "1" * 64, "capture_date": "2026-01-01"}]}  # fmt: skip
    found = parent_facts(manifest, 2, True)
    key = listing_cache_key("a.txt", date(2026, 1, 1), "1" * 64, "code")
    assert found == ParentFacts(2, True, "code", {key: (date(2026, 1, 1), "a.txt")})
    assert parent_facts({"inputs": [{"path": 1}]}, 2, True).captures == {}  # damaged: no capture is the parent's
