"""Finding inputs safely: links out of the raw folder, FIFOs, undecodable names, capture dates."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from pipeline.raw.sources import InputError, Inputs, find_listings
from pipeline.storage import LocalStorage
from tests.conftest import ONE_RECORD as LISTING
from tests.listings import scan_listing


def discover(raw: Path, as_of: date | None) -> Inputs:
    """The listings of a local raw folder."""
    return find_listings(LocalStorage(raw), as_of)


def test_links_that_leave_the_raw_folder_are_skipped_and_reported(raw: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "listing_2026-02-01.txt").write_text(LISTING, encoding="utf-8")
    (raw / "y.txt").symlink_to(secret)
    (raw / "sub").symlink_to(outside, target_is_directory=True)
    (raw / "inside.txt").symlink_to(raw / "listing_2026-01-01.txt")  # stays inside: read

    found = discover(raw, date(2026, 1, 1))
    assert [s.name for s in found.sources] == ["inside.txt", "listing_2026-01-01.txt"]
    assert {(n.name, n.action) for n in found.notices} == {("y.txt", "skipped"), ("sub", "skipped")}
    assert all("outside the root" in n.reason for n in found.notices)


def test_a_fifo_is_skipped_not_read(raw: Path) -> None:
    os.mkfifo(raw / "pipe.txt")  # reading it would block the run forever
    found = discover(raw, None)
    assert [s.name for s in found.sources] == ["listing_2026-01-01.txt"]
    assert [(n.name, n.reason) for n in found.notices] == [("pipe.txt", "not a regular file")]


def test_a_name_that_is_not_utf8_is_read_under_an_escaped_name(raw: Path) -> None:
    raw_bytes = os.fsencode(raw)
    with open(raw_bytes + b"/caf\xe9_2026-01-02.txt", "wb") as handle:  # noqa: PTH123 - a bytes path
        handle.write(LISTING.replace("Graphs", "Cafés").encode())
    found = discover(raw, None)
    names = [s.name for s in found.sources]
    assert names == ["caf\\xe9_2026-01-02.txt", "listing_2026-01-01.txt"]
    assert names[0].encode("utf-8")  # printable, storable in JSON and Parquet
    assert found.sources[0].capture_date == date(2026, 1, 2)
    assert [(n.name, n.action) for n in found.notices] == [("caf\\xe9_2026-01-02.txt", "renamed")]
    assert scan_listing(found.sources[0].with_local_copy(raw), 1 << 20).size_bytes == len(
        LISTING.replace("Graphs", "Cafés").encode()
    )


def test_no_listing_at_all_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no listings"):
        discover(tmp_path, None)


def test_capture_dates_outside_what_readers_can_hold_are_not_used(raw: Path) -> None:
    """Year 0001 or 2300 would overflow pandas' timestamps (1677–2262) and fail validation."""
    (raw / "listing_0001-01-01.txt").write_text(LISTING, encoding="utf-8")  # falls back to --as-of
    future = raw / "undated.txt"
    future.write_text(LISTING, encoding="utf-8")
    os.utime(future, (0, 10_500_000_000))  # modified in the year 2302
    found = discover(raw, None)
    dates = {s.name: (s.capture_date, s.capture_date_from) for s in found.sources}
    assert dates["listing_0001-01-01.txt"][1] == "modification time"
    assert "undated.txt" not in dates
    assert [(n.name, n.action) for n in found.notices if n.action == "skipped"] == [("undated.txt", "skipped")]
    assert discover(raw, date(2026, 1, 1)).sources[0].capture_date == date(2026, 1, 1)


def test_link_loops_are_skipped(raw: Path) -> None:
    (raw / "self.txt").symlink_to("self.txt")
    (raw / "a.txt").symlink_to("b.txt")
    (raw / "b.txt").symlink_to("a.txt")
    found = discover(raw, None)
    assert [s.name for s in found.sources] == ["listing_2026-01-01.txt"]
    assert sorted((n.name, n.reason) for n in found.notices) == [
        ("a.txt", "a link that loops: not followed"),
        ("b.txt", "a link that loops: not followed"),
        ("self.txt", "a link that loops: not followed"),
    ]


def test_names_with_control_characters_are_escaped_to_one_safe_line(raw: Path) -> None:
    hostile = "cap\nerror: all good\x1b[32m OK\u202e_2026-01-03.txt"
    (raw / hostile).write_text(LISTING, encoding="utf-8")
    found = discover(raw, None)
    (renamed,) = [s for s in found.sources if s.name.startswith("cap")]
    assert renamed.name == "cap\\nerror: all good\\x1b[32m OK\\u202e_2026-01-03.txt"
    assert renamed.capture_date == date(2026, 1, 3)
    assert [n.action for n in found.notices] == ["renamed"]


def test_only_ascii_digits_make_a_capture_date(raw: Path) -> None:
    (raw / "listing_٢٠٢٦-٠١-٠٥.txt").write_text(LISTING, encoding="utf-8")  # Arabic-Indic digits
    (source,) = [s for s in discover(raw, date(2026, 2, 1)).sources if s.name != "listing_2026-01-01.txt"]
    assert (source.capture_date, source.capture_date_from) == (date(2026, 2, 1), "--as-of")


def test_two_files_never_share_one_name(raw: Path) -> None:
    """A file literally named like another's escaped name: the second is skipped, not merged."""
    (raw / "a\nb_2026-01-04.txt").write_text(LISTING, encoding="utf-8")
    (raw / "a\\nb_2026-01-04.txt").write_text(LISTING, encoding="utf-8")
    found = discover(raw, None)
    names = [s.name for s in found.sources]
    assert names.count("a\\nb_2026-01-04.txt") == 1
    assert [(n.name, n.action) for n in found.notices if n.action == "skipped"] == [("a\\nb_2026-01-04.txt", "skipped")]


def test_the_code_fingerprint_covers_the_libraries_that_shape_the_data(monkeypatch) -> None:
    from importlib import metadata

    from pipeline.raw import sources

    before = sources.code_fingerprint()
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0.1" if name == "anyascii" else real_version(name))
    sources.code_fingerprint.cache_clear()
    try:
        assert sources.code_fingerprint() != before
    finally:
        monkeypatch.undo()
        sources.code_fingerprint.cache_clear()
