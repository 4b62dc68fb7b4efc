"""The staged layer's storage: data, never code; an entry read only once every part matches, on disk or S3."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pipeline.errors import StagedEntryInvalidError
from pipeline.parse.tables import STAGED_TABLES
from pipeline.staged.stage import no_meter, stage_sources, worth_starting_parsers
from pipeline.staged.store import (
    STAGED_META,
    KnownInput,
    discard_staged,
    known_inputs,
    local_entry,
    prune_staged,
    remember_inputs,
)
from pipeline.storage import LocalStorage, open_storage
from tests.listings import contents, only_source, record, stage


def test_a_staged_capture_is_reused_and_a_tampered_one_refused_when_read(raw: Path, tmp_path: Path) -> None:
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    assert not first.from_cache
    assert stage(source, staged).from_cache
    papers = staged / first.key / "papers-00000.parquet"
    data = bytearray(papers.read_bytes())
    data[len(data) // 2] ^= 0x01
    papers.write_bytes(bytes(data))
    with pytest.raises(StagedEntryInvalidError, match="differs from the sha256"):
        local_entry(LocalStorage(staged), first.key, tmp_path / "cache")
    discard_staged(LocalStorage(staged), first.key)  # what the flow does before staging it again
    again = stage(source, staged)
    assert not again.from_cache
    assert contents(again, staged)["papers"].equals(
        contents(stage(source, tmp_path / "fresh"), tmp_path / "fresh")["papers"]
    )


class Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_is_never_loaded(raw: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    for file in (staged / first.key).iterdir():
        file.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(StagedEntryInvalidError):
        local_entry(LocalStorage(staged), first.key, tmp_path / "cache")
    assert not marker.exists()


def test_a_staged_capture_missing_a_part_is_refused(raw: Path, tmp_path: Path) -> None:
    (raw / "listing_2026-01-01.txt").write_text("".join(record(n) for n in range(30)), encoding="utf-8")
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged, chunk_bytes=500)
    assert first.parts > 1
    sorted((staged / first.key).glob("rejects-*.parquet"))[-1].unlink()
    with pytest.raises(StagedEntryInvalidError, match="missing"):
        local_entry(LocalStorage(staged), first.key, tmp_path / "cache")


def test_an_entry_without_its_description_is_not_staged(raw: Path, tmp_path: Path) -> None:
    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    (staged / first.key / STAGED_META).write_text('{"format": 2, "key": "another"}', encoding="utf-8")
    assert not stage(source, staged).from_cache  # described as another key's: parsed again


@pytest.mark.server
def test_an_entry_on_s3_is_downloaded_once_and_checked_on_every_use(raw: Path, tmp_path: Path, s3, s3_prefix) -> None:
    staged = open_storage(f"{s3_prefix}/staged")
    cache = tmp_path / "cache"
    (capture,) = stage_sources([only_source(raw)], staged, False, 1, 1 << 20, no_meter, tmp_path / "writer-cache")
    entry = local_entry(staged, capture.key, cache)
    assert set(entry.files) == set(STAGED_TABLES)
    assert all(path.is_relative_to(cache) for paths in entry.files.values() for path in paths)
    downloaded = {p: p.stat().st_mtime_ns for paths in entry.files.values() for p in paths}
    again = local_entry(staged, capture.key, cache)
    assert {p: p.stat().st_mtime_ns for paths in again.files.values() for p in paths} == downloaded  # not again
    first = next(iter(downloaded))
    first.write_bytes(b"tampered in the cache")
    assert local_entry(staged, capture.key, cache).files  # a bad copy is dropped and fetched anew
    (capture2,) = stage_sources([only_source(raw)], staged, False, 1, 1 << 20, no_meter, tmp_path / "writer-cache")
    assert capture2.from_cache
    assert prune_staged(staged, set()) == 1
    assert not staged.list().objects


def test_the_listings_a_run_read_are_remembered_by_their_tag(tmp_path: Path) -> None:
    staged = LocalStorage(tmp_path / "staged")
    assert known_inputs(staged) == {}
    remember_inputs(staged, [("a.txt", KnownInput("1:2:3", 10, "f" * 64))])
    assert known_inputs(staged) == {"a.txt": KnownInput("1:2:3", 10, "f" * 64)}
    staged.put("inputs.json", b"\xff not json")
    assert known_inputs(staged) == {}  # only ever spares reading: an unreadable record is none


def test_a_listing_whose_tag_is_unchanged_is_not_read_again(raw: Path, tmp_path: Path, monkeypatch) -> None:
    from pipeline.staged import stage as staging

    source, staged = only_source(raw), tmp_path / "staged"
    first = stage(source, staged)
    remember_inputs(LocalStorage(staged), [(source.name, KnownInput(source.tag, source.size_bytes, first.sha256))])
    read: list[str] = []
    real = staging.listing_digest
    monkeypatch.setattr(staging, "listing_digest", lambda s: read.append(s.name) or real(s))
    assert stage(source, staged).from_cache
    assert read == []
    (raw / "listing_2026-01-01.txt").write_text(record(9), encoding="utf-8")  # new content: a new tag
    changed = stage(only_source(raw), staged)
    assert (changed.from_cache, read) == (False, [source.name])


@pytest.mark.parametrize(("unstaged", "workers", "worth"), [(8 << 20, 2, True), ((8 << 20) - 1, 2, False),
                                                           (1 << 30, 1, False), (0, 8, False)])  # fmt: skip
def test_parsers_start_early_only_for_enough_to_parse_on_several(unstaged: int, workers: int, worth: bool) -> None:
    assert worth_starting_parsers(unstaged, workers) is worth
