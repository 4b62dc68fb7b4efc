"""A refresh assembled incrementally equals a full assembly of the same captures: every table, row by row,
value by value, for random sequences of captures (new papers, papers seen again, updated, removed, rejects)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.published import Store, read_tables
from schemas.tables import MODELS
from tests.listings import RECORDS, variant
from tests.refreshes import refresh

# A capture: (paper, edition) records; a stray line among them when asked (a reject).
records = st.lists(st.tuples(st.integers(0, len(RECORDS) - 1), st.integers(0, 4)), min_size=1, max_size=8)
capture = st.tuples(records, st.booleans())
# What happens to the raw folder before a refresh: a capture added after all (the common case),
# one added on the same day under a later name, one added before the others (a backfill), one
# removed, or one edited.
event = st.one_of(
    st.tuples(st.just("add"), capture),
    st.tuples(st.just("same_day"), capture),
    st.tuples(st.just("backfill"), capture),
    st.tuples(st.just("remove"), st.integers(0, 10)),
    st.tuples(st.just("edit"), st.integers(0, 10)),
)


def listing(chosen: list[tuple[int, int]], stray: bool) -> str:
    text = "".join(variant(RECORDS[i], kind) for i, kind in chosen)
    return ("a line that belongs to no record\n" + text) if stray else text


def apply(raw: Path, day: list[int], step: tuple) -> None:
    """One event on the raw folder (`day`: the last capture day used)."""
    kind, value = step
    present = sorted(raw.iterdir())
    if kind in ("remove", "edit") and present:
        target = present[value % len(present)]
        if kind == "remove":
            target.unlink()
        else:
            target.write_text(target.read_text(encoding="utf-8") + RECORDS[value % len(RECORDS)], encoding="utf-8")
        return
    chosen, stray = value if kind != "remove" and kind != "edit" else ([(value % len(RECORDS), 0)], False)
    if kind == "backfill":
        name = f"listing_2025-12-{len(present) + 1:02d}.txt"
    elif kind == "same_day" and present:
        name = f"listing_2026-01-{day[0]:02d}_{len(present):02d}.txt"  # after that day's first
    else:
        day[0] += 1
        name = f"listing_2026-01-{day[0]:02d}.txt"
    (raw / name).write_text(listing(chosen, stray), encoding="utf-8")


def tables_of(out: Path) -> dict[str, pd.DataFrame]:
    store = Store.open(out)
    return read_tables(store, store.resolve(None))


def assert_same_tables(incremental: Path, whole: Path) -> None:
    left, right = tables_of(incremental), tables_of(whole)
    for name in MODELS:
        pd.testing.assert_frame_equal(left[name], right[name], check_dtype=True, obj=name)
    counts = Store.open(incremental).manifest(Store.open(incremental).resolve(None)).row_counts
    assert counts == {name: len(frame) for name, frame in left.items()}


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=capture, steps=st.lists(event, min_size=1, max_size=4))
def test_a_refresh_equals_a_full_assembly_of_the_same_captures(tmp_path_factory, first, steps) -> None:
    work = tmp_path_factory.mktemp("refreshes")
    raw, incremental, whole = work / "raw", work / "incremental", work / "whole"
    raw.mkdir()
    day = [1]
    (raw / "listing_2026-01-01.txt").write_text(listing(*first), encoding="utf-8")
    refresh(raw, incremental)
    refresh(raw, whole, whole=True)
    for step in steps:
        apply(raw, day, step)
        if not any(raw.iterdir()):
            break
        refresh(raw, incremental)
        refresh(raw, whole, whole=True)
        assert_same_tables(incremental, whole)
    shutil.rmtree(work)


def test_adding_a_later_capture_is_assembled_incrementally_and_writes_only_the_change(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "listing_2026-01-01.txt").write_text("".join(RECORDS[:40]), encoding="utf-8")
    first = refresh(raw, tmp_path / "out")
    refresh(raw, tmp_path / "whole", whole=True)
    assert not first.incremental
    # 5 new papers, 3 listed again as they were, 1 with a new abstract, 1 with its organisations dropped
    again = RECORDS[40:45] + RECORDS[:3] + [variant(RECORDS[3], 1)]
    dropped = next(i for i in range(4, 40) if " · " in RECORDS[i])
    (raw / "listing_2026-01-02.txt").write_text("".join(again) + variant(RECORDS[dropped], 3), encoding="utf-8")
    second = refresh(raw, tmp_path / "out")
    assert second.incremental
    assert second.tables["papers"].count == 10  # every paper of the new capture: its lineage moved
    assert second.tables["paper_organizations"].dropped_count == 1
    assert second.changes == {"added": 5, "updated": 2}
    store = Store.open(tmp_path / "out")
    before, after = store.manifest("000001"), store.manifest("000002")
    for name in ("papers", "paper_authors", "authors"):  # the first version's files, shared as they are
        assert set(before.tables[name]) <= set(after.tables[name])
    refresh(raw, tmp_path / "whole", whole=True)
    assert_same_tables(tmp_path / "out", tmp_path / "whole")
