"""Refreshes that reuse the parent: its paper index and its papers row groups, copied as they are.

Each scenario publishes a first version, then a second from other inputs twice: once with the
parent's paper index (the fast path) and once without it (everything hashed and encoded again).
Both must publish the same tables, row for row and in the same order; where the fast path kept
leading row groups of the parent, their bytes must be the parent's own.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline.published.parquet_footer import footer_layout
from pipeline.published.splice import footer_bytes
from pipeline.published.versions import latest_id

from pipeline.assembled import batches
from pipeline.errors import VersionDamagedError
from pipeline.orchestrate import steps
from pipeline.published.layout import INDEX
from schemas import MODELS
from tests.conftest import SAMPLE
from tests.conftest import run_flow as run

pytestmark = pytest.mark.flow

GROUP_ROWS = 4  # papers rows per row group in these tests: a 50-paper sample makes a dozen
RECORDS = [
    "\n".join(lines) + "\n" for lines in zip(*[iter(SAMPLE.read_text(encoding="utf-8").splitlines())] * 3, strict=True)
]
FIRST = 30  # records of the sample in the first version of most scenarios


def whole_groups(rows: int) -> int:
    """The leading rows of `rows` that fill whole row groups: what a refresh can copy of the parent."""
    return rows // GROUP_ROWS * GROUP_ROWS


@pytest.fixture(autouse=True)
def small_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "TEXT_BATCH_ROWS", GROUP_ROWS)


@pytest.fixture
def encoded_from(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row from which each publish encoded papers (0: all of them; more: the rest were kept)."""
    starts: list[int] = []
    real = batches.papers_batches

    def recorded(database: Path, start_row: int, batch_rows: int | None = None):
        starts.append(start_row)
        return real(database, start_row, batch_rows)

    monkeypatch.setattr(batches, "papers_batches", recorded)
    monkeypatch.setattr(steps, "papers_batches", recorded)
    return starts


def _write_raw(raw: Path, listings: dict[str, list[str]]) -> None:
    if raw.exists():
        shutil.rmtree(raw)
    raw.mkdir(parents=True)
    for name, records in listings.items():
        (raw / name).write_text("".join(records), encoding="utf-8")


def _tables(version: Path) -> dict[str, pa.Table]:
    return {name: pq.read_table(version / f"{name}.parquet") for name in MODELS}


def _kept_bytes(parent: Path, child: Path) -> int:
    """How many leading bytes of the child's papers file are the parent's, whole row groups only."""
    layout = footer_layout(footer_bytes(parent)[0])
    old, new = parent.read_bytes(), child.read_bytes()
    return max([0, *(end for end in layout.ends if old[:end] == new[:end])])


def _refresh_both_ways(
    tmp_path: Path, first: dict[str, list[str]], second: dict[str, list[str]], **overrides: object
) -> tuple[Path, Path]:
    """The second version's folder with the parent's index, and without it."""
    raw, out = tmp_path / "raw", tmp_path / "fast"
    _write_raw(raw, first)
    assert run(raw, out, **overrides).version_id == "000001"
    assert [p.name for p in (out / INDEX).iterdir()] == ["000001.parquet"]
    slow = tmp_path / "slow"
    shutil.copytree(out, slow, symlinks=True)
    shutil.rmtree(slow / INDEX)
    _write_raw(raw, second)
    for folder in (out, slow):
        summary = run(raw, folder, **overrides)
        assert (summary.published, summary.version_id) == (True, "000002")
    # Only latest's index is kept; the slow run wrote one too.
    assert [p.name for p in (out / INDEX).iterdir()] == ["000002.parquet"]
    assert [p.name for p in (slow / INDEX).iterdir()] == ["000002.parquet"]
    fast, full = out / "versions" / "000002", slow / "versions" / "000002"
    for name, table in _tables(fast).items():
        assert table.equals(_tables(full)[name]), name
    return out, slow


def test_a_new_capture_appends_and_keeps_the_parent_row_groups(tmp_path: Path, encoded_from: list[int]) -> None:
    out, slow = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-26.txt": RECORDS[:FIRST]},
        {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]},
    )
    parent, fast = out / "versions" / "000001", out / "versions" / "000002"
    # 30 parent rows: 7 whole groups of 4 are copied; the short 8th is written again with the rest.
    kept = whole_groups(FIRST)
    groups = kept // GROUP_ROWS + math.ceil((len(RECORDS) - kept) / GROUP_ROWS)
    assert pq.read_metadata(fast / "papers.parquet").num_row_groups == groups
    layout = footer_layout(footer_bytes(parent / "papers.parquet")[0])
    assert _kept_bytes(parent / "papers.parquet", fast / "papers.parquet") == layout.ends[kept // GROUP_ROWS - 1]
    # First version, then the refresh with the index (28 rows kept), then the one without.
    assert encoded_from == [0, kept, 0]
    # Encoding is deterministic: the slow path wrote the very same bytes.
    assert (fast / "papers.parquet").read_bytes() == (slow / "versions" / "000002" / "papers.parquet").read_bytes()
    changes = pq.read_table(fast / "changes.parquet").to_pylist()
    assert {c["change"] for c in changes} == {"added"}
    assert len(changes) == len(RECORDS[FIRST:])
    assert pq.read_table(fast / "papers.parquet").num_rows == len(RECORDS)
    # The same as one run over both files from nothing, but for the changes.
    scratch = tmp_path / "scratch"
    run(tmp_path / "raw", scratch)
    for name, table in _tables(scratch / "versions" / "000001").items():
        if name != "changes":
            assert table.equals(_tables(fast)[name]), name


def test_a_paper_captured_again_with_a_new_abstract_is_updated(tmp_path: Path, encoded_from: list[int]) -> None:
    row = 5
    head, body, _abstract = RECORDS[row].split("\n", 2)
    edited = f"{head}\n{body}\nA rewritten abstract.\n"
    out, _ = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-26.txt": RECORDS[:FIRST]},
        {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": [edited, *RECORDS[FIRST:40]]},
    )
    fast = out / "versions" / "000002"
    changes = {c["paper_id"]: c for c in pq.read_table(fast / "changes.parquet").to_pylist()}
    updated = [c for c in changes.values() if c["change"] == "updated"]
    assert len(updated) == 1
    assert updated[0]["changed_fields"] == "abstract,abstract_text"
    # Row 5 left the first capture's run of rows: only the first group (rows 0-3) is the parent's.
    assert encoded_from == [0, whole_groups(row), 0]


def test_a_removed_capture_removes_its_papers(tmp_path: Path) -> None:
    out, _ = _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-26.txt": RECORDS[:20], "listing_2026-11-27.txt": RECORDS[20:40]},
        {"listing_2026-11-26.txt": RECORDS[:20]},
        max_removed_rate=1.0,
    )
    fast = out / "versions" / "000002"
    changes = pq.read_table(fast / "changes.parquet").to_pylist()
    assert len(changes) == len(RECORDS[20:40])
    assert {c["change"] for c in changes} == {"removed"}
    assert pq.read_metadata(fast / "papers.parquet").num_rows == len(RECORDS[:20])


def test_an_earlier_capture_added_later_reorders_and_keeps_nothing(tmp_path: Path, encoded_from: list[int]) -> None:
    _refresh_both_ways(
        tmp_path,
        {"listing_2026-11-27.txt": RECORDS[20:40]},
        {"listing_2026-11-26.txt": RECORDS[:20], "listing_2026-11-27.txt": RECORDS[20:40]},
    )
    assert encoded_from == [0, 0, 0]


def test_an_unusable_index_is_ignored(tmp_path: Path, encoded_from: list[int]) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    index = out / INDEX / "000001.parquet"
    index.write_bytes(b"PAR1 not an index PAR1")
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    summary = run(raw, out)
    assert summary.changes == {"added": len(RECORDS[FIRST:])}
    assert encoded_from == [0, 0]


def test_a_parent_papers_file_edited_behind_its_manifest_is_refused(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    papers = out / "versions" / "000001" / "papers.parquet"
    data = bytearray(papers.read_bytes())
    data[100] ^= 0x01  # inside the first row group, which the refresh would copy
    papers.chmod(0o644)
    papers.write_bytes(bytes(data))
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    with pytest.raises(VersionDamagedError, match="differs from the sha256 in its manifest"):
        run(raw, out)
    assert latest_id(out) == "000001"
    assert not any(p.name.startswith(".tmp") for p in (out / "versions").iterdir())


def test_a_listing_edited_in_place_is_compared_not_kept(tmp_path: Path, encoded_from: list[int]) -> None:
    """The same name, other bytes: a new staged capture, none of whose rows is the parent's."""
    head, body, _abstract = RECORDS[2].split("\n", 2)
    edited = [*RECORDS[:2], f"{head}\n{body}\nA rewritten abstract.\n", *RECORDS[3:FIRST]]
    out, _ = _refresh_both_ways(
        tmp_path, {"listing_2026-11-26.txt": RECORDS[:FIRST]}, {"listing_2026-11-26.txt": edited}
    )
    assert encoded_from == [0, 0, 0]
    changes = pq.read_table(out / "versions" / "000002" / "changes.parquet").to_pylist()
    assert [(c["change"], c["changed_fields"]) for c in changes] == [("updated", "abstract,abstract_text")]


def test_other_code_keeps_nothing_of_the_parent(
    tmp_path: Path, encoded_from: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other code makes other staged keys: its rows may differ, so none is copied."""
    from pipeline.raw import sources
    from pipeline.staged import stage

    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    for module in (steps, stage, sources):
        if hasattr(module, "code_fingerprint"):
            monkeypatch.setattr(module, "code_fingerprint", lambda: "other code")
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    summary = run(raw, out)
    assert summary.changes == {"added": len(RECORDS[FIRST:])}
    assert encoded_from == [0, 0]


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_missing_or_truncated_parent_is_damage_not_a_write_error(
    tmp_path: Path, encoded_from: list[int], damage: str
) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST]})
    run(raw, out)
    papers = out / "versions" / "000001" / "papers.parquet"
    papers.chmod(0o644)
    if damage == "deleted":
        papers.unlink()
    else:
        papers.write_bytes(papers.read_bytes()[:-100])
    _write_raw(raw, {"listing_2026-11-26.txt": RECORDS[:FIRST], "listing_2026-11-27.txt": RECORDS[FIRST:]})
    with pytest.raises(VersionDamagedError, match=r"papers\.parquet"):
        run(raw, out)
    assert latest_id(out) == "000001"
    assert not [p for p in (out / "versions").iterdir() if p.name.startswith(".tmp")]
    assert not [p for p in (out / INDEX).iterdir() if p.name.startswith(".tmp")]
