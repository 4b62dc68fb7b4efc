"""Reading a raw listing: once, in parts cut at record headers and numbered as in the file, each part
checked again when read, never through a link swapped in."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.parse.listing import decode_listing, parse_listing
from pipeline.raw.lines import LONG_LINE_BYTES
from pipeline.raw.scan import read_part
from pipeline.raw.sources import InputError
from pipeline.settings import DEFAULT_CHUNK_BYTES
from tests.conftest import ONE_RECORD as LISTING
from tests.listings import contents, only_source, parse_in_parts, record, scan_listing, stage


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
        read_part(source, chunk)


@pytest.mark.parametrize(
    ("line", "lengths"),
    [("x" * 60_000_000, {4: 60_000_000}), ("LGMar 5" + " " * 60_000_000, {})],
    ids=["text", "a header with endless spaces"],
)
def test_one_endless_line_is_held_as_its_start_by_the_scan_and_by_its_reader(
    raw: Path, line: str, lengths: dict[int, int]
) -> None:
    (raw / "listing_2026-01-01.txt").write_text(LISTING + line + "\n" + LISTING, encoding="utf-8")
    tracemalloc.start()
    try:
        chunks = scan_listing(only_source(raw), 20).chunks  # the line starts past the first part's target
        _, scan_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        (long_part,) = [c for c in chunks if c.length > 1_000_000]
        part = read_part(only_source(raw), long_part)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert max(scan_peak, read_peak) < 24_000_000  # a few read blocks, not the 60 MB line
    assert len(part.data) < 2 * LONG_LINE_BYTES
    assert part.line_lengths == lengths


def test_a_link_swapped_in_after_discovery_is_not_followed(raw: Path, tmp_path: Path) -> None:
    source = only_source(raw)
    source.path.unlink()
    source.path.symlink_to(tmp_path / "anything.txt")
    with pytest.raises(InputError, match=r"cannot read listing_2026-01-01\.txt"):
        scan_listing(source, 1 << 20)


# Lines a hostile or damaged capture may hold, each a pattern rather than a record: records and
# their pieces, stray text, blank lines of every kind, lines too long to hold (with text, spaces or
# bad bytes past their start), bytes that are not UTF-8, and every kind of line end.
_LONG = LONG_LINE_BYTES + 10
_LINES = st.sampled_from(
    [
        b"LGMar 3, 2024",
        b"87.4CVJan 12Code",
        b"A Study of GraphsAnn Lee, Bo Chen",
        b"Learning to RankAmirHossein Karimi et al.MIT",
        b"An abstract, with $x^2$ and May in it.",
        b"Mar 3",
        b"stray page chrome",
        b"",
        b"   ",
        "\u2003\u00a0".encode(),
        b"\xef\xbb\xbfLGMar 4",
        b"\xef\xbb\xbf" + b"w" * _LONG,
        b"caf\xe9 latin-1",
        b"x" * _LONG,
        b"y" * 2_500,
        b"LGMar 5" + b" " * _LONG,
        b" " * _LONG + b"z",
        "é".encode() * (_LONG // 2) + b"\xff",
        "\u2003".encode() * (_LONG // 3 + 1),
        b"t" * (_LONG - 5) + "\u00a0".encode() * 8 + b"u",
    ]
)
_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"])


@st.composite
def _hostile_listings(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_LINES, _ENDS), min_size=1, max_size=40))
    ending = draw(st.booleans())
    data = b"".join(text + end for text, end in lines)
    return data if ending else data.rstrip(b"\r\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(listing=_hostile_listings(), chunk_bytes=st.one_of(st.integers(1, 64), st.integers(65, 3 * _LONG)))
def test_a_listing_reads_the_same_in_any_parts(listing: bytes, chunk_bytes: int) -> None:
    """Rejects and records do not depend on where the parts are cut, down to parts of one byte (no
    record or group of stray lines is split, a line too long to hold is one reject), nor on long
    lines being held as their start."""
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder)
        (raw / "listing_2026-01-01.txt").write_bytes(listing)
        source = only_source(raw)
        whole = list(parse_listing(*decode_listing(listing)))  # every line held whole
        assert parse_in_parts(source, 1 << 30) == whole
        assert parse_in_parts(source, chunk_bytes) == whole


def test_a_header_less_line_bigger_than_several_parts_is_one_reject(raw: Path, tmp_path: Path) -> None:
    """Issue 21: a 5 MB line without a header, read in 1 kB parts, was one reject per part, with
    the same line number, and failed the run's validation."""
    (raw / "listing_2026-01-01.txt").write_text(LISTING + "x" * 5_000_000 + "\n" + LISTING, encoding="utf-8")
    capture = stage(only_source(raw), tmp_path / "staged", chunk_bytes=1_000)
    rejects = contents(capture, tmp_path / "staged")["rejects"].to_pylist()
    assert [(r["rule"], r["source_line"]) for r in rejects] == [("stray_lines", 4), ("duplicate_paper", 5)]
    assert rejects[0]["raw"].endswith("[truncated: 5,000,000 characters in all]")
