"""Compaction: runs of whole consecutive generations merged past a threshold; what versions read never changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import settings
from pipeline.published import Store, read_tables
from pipeline.published.compaction import compaction_runs
from pipeline.published.manifest import DataFile
from tests.listings import RECORDS, variant
from tests.refreshes import refresh


def file(generation: int, part: int = 0, size: int = 1_000, rows: int = 10) -> DataFile:
    key = f"data/papers/{generation:06d}-{part:04d}-{generation:064x}.parquet"
    return DataFile(key, f"{generation:064x}", size, rows, generation)


def test_small_generations_are_merged_in_runs_once_there_are_too_many() -> None:
    base = [file(1, 0, size=100 << 20, rows=1000)]
    daily = [file(g) for g in range(2, 2 + 16)]
    assert compaction_runs(base + daily, 1000 + 160, max_small=16) == []  # 16 small files: not yet
    more = base + daily + [file(18)]
    (run,) = compaction_runs(more, 1000 + 170, max_small=16)
    assert run.files == tuple(more[1:])
    assert (run.generation, run.reason) == (2, "small files")


def test_a_run_never_takes_part_of_a_generation_nor_jumps_a_large_one() -> None:
    small = [file(2, 0), file(2, 1), file(3)]  # generation 2 in two files
    large = [file(4, size=100 << 20)]
    later = [file(5), file(6)]
    runs = compaction_runs([*small, *large, *later], 10_000, max_small=3)
    assert [r.files for r in runs] == [tuple(small), tuple(later)]


def test_a_table_mostly_superseded_is_rewritten_whole() -> None:
    files = [file(1, rows=100), file(2, rows=100)]
    assert compaction_runs(files, 160, max_superseded=0.25) == []  # 20% superseded
    (run,) = compaction_runs(files, 140, max_superseded=0.25)  # 30%
    assert (run.files, run.reason) == (tuple(files), "superseded rows")


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3)), min_size=1, max_size=30), st.integers(1, 6))
def test_every_run_is_whole_consecutive_generations(shape: list[tuple[int, int]], max_small: int) -> None:
    """Whatever the files: a run starts and ends at generation boundaries and holds consecutive
    files, so that its output (the generation of its first file) supersedes exactly what it replaces."""
    files = []
    for generation, (parts, big) in enumerate(shape, start=1):
        files += [file(generation, p, size=(100 << 20) if big == 0 else 1_000) for p in range(parts)]
    for run in compaction_runs(files, sum(f.rows for f in files), max_small=max_small):
        start = files.index(run.files[0])
        assert list(run.files) == files[start : start + len(run.files)]
        generations = {f.generation for f in run.files}
        assert {f for f in files if f.generation in generations} == set(run.files)
        assert len(generations) >= 2


def test_a_compaction_changes_no_version_and_later_refreshes_read_through_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(settings, "MAX_SMALL_FILES", 2)
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(RECORDS[:20]), encoding="utf-8")
    refresh(raw, out)
    seen = {}
    for day in range(2, 7):  # each day a new paper, one listed again and one updated
        listing = RECORDS[18 + day] + RECORDS[day] + variant(RECORDS[day + 5], 1)
        (raw / f"listing_2026-01-{day:02d}.txt").write_text(listing, encoding="utf-8")
        refresh(raw, out)
        store = Store.open(out)
        seen[store.latest_id()] = read_tables(store, store.latest_id())
    store = Store.open(out)
    generations = {f.generation for f in store.manifest(store.latest_id()).tables["papers"]}
    assert len(generations) < 6  # small generations were merged
    for version_id, tables in seen.items():  # every version reads as it did when it was published
        again = read_tables(Store.open(out), version_id)
        for name, frame in tables.items():
            assert again[name].equals(frame), (version_id, name)
    whole = tmp_path / "whole"
    refresh(raw, whole, whole=True)
    latest = read_tables(store, store.latest_id())
    for name, frame in read_tables(Store.open(whole), "000001").items():
        if name != "changes":
            assert latest[name].equals(frame), name


@pytest.mark.parametrize("share", [0.0])
def test_a_table_past_its_superseded_share_is_rewritten_to_its_live_rows(tmp_path: Path, monkeypatch, share) -> None:
    monkeypatch.setattr(settings, "MAX_SUPERSEDED_SHARE", share)
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(RECORDS[:10]), encoding="utf-8")
    refresh(raw, out)
    (raw / "listing_2026-01-02.txt").write_text(RECORDS[0] + RECORDS[11], encoding="utf-8")
    refresh(raw, out)
    store = Store.open(out)
    papers = store.manifest("000002").tables["papers"]
    assert sum(f.rows for f in papers) == store.manifest("000002").row_counts["papers"]  # no superseded row kept
    assert {f.generation for f in papers} == {1}  # rewritten as the generation of its first file
