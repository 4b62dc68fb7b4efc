"""The staged layer: each listing parsed once, in parts on worker processes, verified before reuse."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.parse.tables import STAGED_TABLES
from pipeline.published.cleanup import remove_legacy_cache
from pipeline.published.layout import LEGACY_CACHE, STAGED
from pipeline.raw.scan import read_chunk, scan_listing
from pipeline.raw.sources import InputError, Source, discover_sources
from pipeline.settings import DEFAULT_CHUNK_BYTES
from pipeline.staged.capture import StagedCapture
from pipeline.staged.stage import stage_sources
from pipeline.storage.local import file_digest
from tests.conftest import ONE_RECORD as LISTING


def record(n: int) -> str:
    return f"LGMar {1 + n % 28}, 2025\nStudy Number {n} of GraphsAnn Lee, Bo Chen\nAbstract of study {n}: $x^{n}$.\n"


def stage(
    source: Source, staged: Path, workers: int = 1, chunk_bytes: int = DEFAULT_CHUNK_BYTES, refresh: bool = False
) -> StagedCapture:
    (capture,) = stage_sources([source], staged, refresh, workers, chunk_bytes)
    return capture


@pytest.fixture
def pool_for_any_size(monkeypatch):
    """Worker processes even for the small listings of these tests."""
    from pipeline import settings

    monkeypatch.setattr(settings, "MIN_PARALLEL_BYTES", 0)


def contents(capture: StagedCapture) -> dict[str, pa.Table]:
    """A staged capture's tables, its parts concatenated in line order."""
    return {t: pa.concat_tables([pq.read_table(f) for f in capture.files(t)]) for t in STAGED_TABLES}


def only_source(raw: Path) -> Source:
    (source,) = discover_sources(raw, None).sources
    return source


# --- parts: cut at record headers, numbered as in the file, the same result however many ------


def test_parts_start_at_record_headers_and_number_lines_as_the_file_does(raw: Path) -> None:
    path = raw / "listing_2026-01-01.txt"
    path.write_text("".join(record(n) for n in range(200)), encoding="utf-8")
    scanned = scan_listing(only_source(raw), 2_000)
    assert len(scanned.chunks) > 5
    data = path.read_bytes()
    assert sum(c.length for c in scanned.chunks) == len(data) == scanned.size_bytes
    for chunk in scanned.chunks:
        assert data[chunk.offset : chunk.offset + chunk.length].startswith(b"LGMar")
        assert chunk.first_line == data[: chunk.offset].count(b"\n") + 1


def test_a_listing_in_parts_gives_what_it_gives_whole_on_one_worker_or_two(
    raw: Path, tmp_path: Path, pool_for_any_size
) -> None:
    # CRLF line ends, blank lines, a stray line, a truncated record and a bad date among them.
    text = "\ufeff" + "".join(record(n) for n in range(300)).replace("\n", "\r\n")
    text += "stray line\r\n\r\n" + "LGMar 3, 2025\r\n" + "LGFeb 30, 2025\r\nA TitleAnn Lee\r\nAbs.\r\n"
    text += "".join(record(n) for n in range(300, 330))
    (raw / "listing_2026-01-01.txt").write_text(text, encoding="utf-8", newline="")
    source = only_source(raw)
    whole = contents(stage(source, tmp_path / "whole"))
    in_parts = stage(source, tmp_path / "parts-1", workers=1, chunk_bytes=3_000)
    assert in_parts.parts > 5
    on_two = stage(source, tmp_path / "parts-2", workers=2, chunk_bytes=3_000)
    for table in STAGED_TABLES:
        assert contents(in_parts)[table].equals(whole[table]), table
        assert contents(on_two)[table].equals(whole[table]), table
    assert whole["papers"].num_rows == 330
    assert sorted(whole["rejects"].column("rule").to_pylist()) == ["invalid_date", "stray_lines", "truncated_record"]
    assert in_parts.counts == stage(source, tmp_path / "whole").counts


def test_a_paper_repeated_in_a_later_part_is_a_duplicate_there(raw: Path, tmp_path: Path, pool_for_any_size) -> None:
    text = "".join(record(n) for n in range(40)) + record(3) + "".join(record(n) for n in range(40, 60)) + record(3)
    (raw / "listing_2026-01-01.txt").write_text(text, encoding="utf-8")
    source = only_source(raw)
    whole = contents(stage(source, tmp_path / "whole"))
    parts = stage(source, tmp_path / "parts", workers=2, chunk_bytes=1_000)
    assert parts.parts > 3
    for table in STAGED_TABLES:
        assert contents(parts)[table].equals(whole[table]), table
    rejects = whole["rejects"].to_pylist()
    assert [(r["source_line"], r["rule"]) for r in rejects] == [(121, "duplicate_paper"), (184, "duplicate_paper")]
    assert all("line 10" in r["reason"] for r in rejects)
    assert parts.counts.rejects_by_rule == {"duplicate_paper": 2}


def test_a_file_without_headers_is_still_cut_into_bounded_parts(raw: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text("no header here\n" * 2_000, encoding="utf-8")
    scanned = scan_listing(only_source(raw), 1_000)
    assert max(c.length for c in scanned.chunks) <= 4 * 1_000 + 100
    assert sum(c.length for c in scanned.chunks) == 2_000 * 15


def test_an_empty_listing_is_one_empty_part(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_bytes(b"")
    capture = stage(only_source(raw), tmp_path / "staged")
    assert (capture.parts, capture.counts.records, capture.counts.size_bytes) == (1, 0, 0)


def test_a_listing_changed_after_its_scan_is_an_input_error(raw: Path) -> None:
    source = only_source(raw)
    (chunk,) = scan_listing(source, DEFAULT_CHUNK_BYTES).chunks
    source.path.write_text(LISTING.replace("Graphs", "Trees"), encoding="utf-8")
    with pytest.raises(InputError, match="changed while it was being read"):
        read_chunk(source, chunk)


def test_big_inputs_are_parsed_on_worker_processes(raw: Path, tmp_path: Path, monkeypatch) -> None:
    from pipeline import settings
    from pipeline.staged import stage as staging

    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(100)), encoding="utf-8")
    used: list[int] = []
    real_pool = staging.worker_pool

    def spy(workers: int):
        used.append(workers)
        return real_pool(workers)

    monkeypatch.setattr(staging, "worker_pool", spy)
    monkeypatch.setattr(settings, "MIN_PARALLEL_BYTES", 1_000)
    (capture,) = stage_sources([only_source(raw)], tmp_path / "staged", False, 2, 2_000)
    assert used == [2]
    assert capture.counts.papers == 100
    monkeypatch.setattr(settings, "MIN_PARALLEL_BYTES", 10**9)
    stage_sources([only_source(raw)], tmp_path / "again", False, 2, 2_000)
    assert used == [2, 1]  # a small input is parsed in this process


# --- the staged layer: data, never code; verified before use ----------------------------------


def test_a_staged_capture_is_reused_and_a_tampered_one_parsed_again(raw: Path, tmp_path: Path) -> None:
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    assert not first.from_cache
    assert stage(source, staged).from_cache
    papers = first.files("papers")[0]
    data = bytearray(papers.read_bytes())
    data[len(data) // 2] ^= 0x01
    papers.write_bytes(bytes(data))

    again = stage(source, staged)
    assert not again.from_cache
    assert again.note is not None
    assert "staged parse ignored" in again.note
    assert contents(again)["papers"].equals(contents(stage(source, tmp_path / "fresh"))["papers"])
    assert stage(source, staged).from_cache  # rewritten, verified again


def test_refresh_parses_again_and_new_content_has_a_new_key(raw: Path, tmp_path: Path) -> None:
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    assert not stage(source, staged, refresh=True).from_cache
    source.path.write_text(LISTING + "\n", encoding="utf-8")
    changed = stage(only_source(raw), staged)
    assert (changed.from_cache, changed.key != first.key) == (False, True)


class Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_is_never_loaded(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "pwned"
    source = only_source(raw)
    staged = out / STAGED
    first = stage(source, staged)
    # Where an earlier release kept its cache, and in place of every staged file.
    legacy = out / LEGACY_CACHE
    legacy.mkdir()
    (legacy / f"{first.key}.pickle").write_bytes(pickle.dumps(Payload(marker)))
    for file in first.folder.iterdir():
        file.write_bytes(pickle.dumps(Payload(marker)))

    loaded = stage(source, staged)
    assert remove_legacy_cache(out)
    assert not marker.exists()
    assert not legacy.exists()
    assert not loaded.from_cache
    assert loaded.counts.records == 1


def test_a_staged_entry_that_is_a_file_is_replaced(raw: Path, tmp_path: Path) -> None:
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    shutil.rmtree(first.folder)
    first.folder.write_text("not a folder", encoding="utf-8")
    again = stage(source, staged)
    assert (again.from_cache, again.note is not None) == (False, True)
    assert stage(source, staged).from_cache


def test_a_staged_capture_missing_a_part_is_parsed_again(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(30)), encoding="utf-8")
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged, chunk_bytes=500)
    first.files("rejects")[-1].unlink()
    again = stage(source, staged, chunk_bytes=500)
    assert not again.from_cache
    assert "missing" in (again.note or "")


def test_refresh_replaces_what_is_staged(raw: Path, tmp_path: Path) -> None:
    """A staged entry edited in place (its digests rewritten too, so that it verifies) is not used
    by --refresh: the fresh parse takes its place."""
    import json

    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    papers = first.files("papers")[0]
    table = pq.read_table(papers)
    edited = table.set_column(1, "title", pa.array(["STALE TITLE"], pa.string()).cast(table.schema.field(1).type))
    pq.write_table(edited.cast(table.schema), papers)
    meta_file = first.folder / "capture.json"
    meta = json.loads(meta_file.read_text())
    meta["files"][papers.name] = file_digest(papers)
    meta_file.write_text(json.dumps(meta))
    assert contents(stage(source, staged))["papers"].column("title").to_pylist() == ["STALE TITLE"]  # trusted

    fresh = stage(source, staged, refresh=True)
    assert not fresh.from_cache
    assert contents(fresh)["papers"].column("title").to_pylist() == ["A Study of Graphs"]
    assert contents(stage(source, staged))["papers"].column("title").to_pylist() == ["A Study of Graphs"]


def test_old_mac_line_ends_are_cut_into_parts_too(raw: Path, tmp_path: Path, pool_for_any_size) -> None:
    text = "".join(record(n) for n in range(120)).replace("\n", "\r")
    (raw / "listing_2026-01-01.txt").write_text(text, encoding="utf-8", newline="")
    source = only_source(raw)
    parts = stage(source, tmp_path / "parts", workers=2, chunk_bytes=1_000)
    assert parts.parts > 5
    whole = contents(stage(source, tmp_path / "whole"))
    assert whole["papers"].num_rows == 120
    for table in STAGED_TABLES:
        assert contents(parts)[table].equals(whole[table]), table


def test_one_endless_line_is_cut_at_the_limit_not_held_whole(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text(LISTING + "x" * 50_000 + "\n" + LISTING, encoding="utf-8")
    scanned = scan_listing(only_source(raw), 1_000)
    assert max(c.length for c in scanned.chunks) <= 4 * 1_000
    capture = stage(only_source(raw), tmp_path / "staged", chunk_bytes=1_000)
    assert capture.counts.papers == 1  # the first record; the line is stray lines, the copy a duplicate
    assert capture.counts.rejects_by_rule.get("duplicate_paper") == 1


def test_a_listing_changed_between_its_digest_and_its_scan_is_an_input_error(raw: Path, tmp_path, monkeypatch) -> None:
    from pipeline.staged import stage as staging

    monkeypatch.setattr(staging, "listing_digest", lambda source: ("0" * 64, 0))  # what was read first
    with pytest.raises(InputError, match="changed while it was being read"):
        stage(only_source(raw), tmp_path / "staged")
