"""The staged layer's storage: data, never code; each staged capture verified before it is reused."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from pipeline.published.cleanup import remove_legacy_cache
from pipeline.published.layout import LEGACY_CACHE, STAGED
from pipeline.staged.stage import worth_starting_parsers
from pipeline.staged.store import STAGED_META, staged_listings
from tests.listings import contents, only_source, record, stage


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


def test_what_the_staged_layer_holds_is_hinted_by_name_and_size(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text(record(1) + record(2), encoding="utf-8")
    source = only_source(raw)
    staged = tmp_path / "staged"
    assert staged_listings(staged) == frozenset()
    capture = stage(source, staged)
    assert staged_listings(staged) == {("listing_2026-01-01.txt", source.size_bytes)}
    # An entry whose description cannot be read is no hint, and never an error.
    (capture.folder / STAGED_META).write_text('{"source_file": 7', encoding="utf-8")
    (staged / "other").mkdir()
    (staged / "other" / STAGED_META).write_bytes(b"\xff\xfe")
    assert staged_listings(staged) == frozenset()


@pytest.mark.parametrize(("unstaged", "workers", "worth"), [(8 << 20, 2, True), ((8 << 20) - 1, 2, False),
                                                           (1 << 30, 1, False), (0, 8, False)])  # fmt: skip
def test_parsers_start_early_only_for_enough_to_parse_on_several(unstaged: int, workers: int, worth: bool) -> None:
    assert worth_starting_parsers(unstaged, workers) is worth
