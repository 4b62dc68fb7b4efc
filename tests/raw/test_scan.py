"""Reading a raw listing: once, in parts cut at record headers and numbered as in the file, each part
checked again when read, never through a link swapped in."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.raw.scan import read_chunk
from pipeline.raw.sources import InputError, discover_sources
from pipeline.settings import DEFAULT_CHUNK_BYTES
from tests.conftest import ONE_RECORD as LISTING
from tests.listings import only_source, record, scan_listing, stage


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


def test_a_file_without_headers_is_still_cut_into_bounded_parts(raw: Path) -> None:
    line = "no header here\n"
    (raw / "listing_2026-01-01.txt").write_text(line * 2_000, encoding="utf-8")
    scanned = scan_listing(only_source(raw), 1_000)
    assert max(c.length for c in scanned.chunks) <= 4 * 1_000 + 100
    assert sum(c.length for c in scanned.chunks) == 2_000 * len(line)


def test_a_listing_changed_after_its_scan_is_an_input_error(raw: Path) -> None:
    source = only_source(raw)
    (chunk,) = scan_listing(source, DEFAULT_CHUNK_BYTES).chunks
    source.path.write_text(LISTING.replace("Graphs", "Trees"), encoding="utf-8")
    with pytest.raises(InputError, match="changed while it was being read"):
        read_chunk(source, chunk)


def test_one_endless_line_is_cut_at_the_limit_not_held_whole(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text(LISTING + "x" * 50_000 + "\n" + LISTING, encoding="utf-8")
    scanned = scan_listing(only_source(raw), 1_000)
    assert max(c.length for c in scanned.chunks) <= 4 * 1_000
    capture = stage(only_source(raw), tmp_path / "staged", chunk_bytes=1_000)
    assert capture.counts.papers == 1  # the first record; the line is stray lines, the copy a duplicate
    assert capture.counts.rejects_by_rule.get("duplicate_paper") == 1


def test_a_link_swapped_in_after_discovery_is_not_followed(raw: Path, tmp_path: Path) -> None:
    (source,) = discover_sources(raw, None).sources
    source.path.unlink()
    source.path.symlink_to(tmp_path / "anything.txt")
    with pytest.raises(InputError, match=r"cannot read listing_2026-01-01\.txt"):
        scan_listing(source, 1 << 20)
