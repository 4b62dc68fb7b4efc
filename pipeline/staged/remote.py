"""The staged layer on object storage: each machine stages into a folder of its own and shares whole entries."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StagedEntryInvalidError
from pipeline.raw.remote import local_copies
from pipeline.raw.scan import listing_digest
from pipeline.raw.sources import Source, code_fingerprint, listing_cache_key
from pipeline.staged.capture import StagedCapture
from pipeline.staged.stage import OpenMeter, stage_sources
from pipeline.staged.store import STAGED, STAGED_META, discard_staged, read_staged, staged_present
from pipeline.storage.local import HOST, remove, temporary_folder
from pipeline.storage.s3 import S3Location, S3Storage, concurrently


def this_process() -> str:
    """This process, as a staging task compares it with the run's driver."""
    return f"{HOST}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class StagedPlace:
    """Where a run's staged captures go: `local`, the driver's staged folder; with `remote`, the
    dataset's staged layer on object storage, shared by machines that share no disk. A task that
    runs in the driver's process (`driver`) stages straight into `local`; any other into a
    temporary folder of its own machine, then uploads."""

    local: Path
    remote: S3Location | None = None
    driver: str = ""


class RemoteStaged:
    """``staged/<key>/`` on object storage: the parts of an entry first, its capture.json last,
    so that an entry with a capture.json is whole (each file is checked against it when pulled)."""

    def __init__(self, location: S3Location) -> None:
        self.storage = S3Storage(location)

    def present(self, key: str) -> bool:
        """True when the entry `key` has its description (a cheap check, not of integrity)."""
        return self.storage.size(f"{STAGED}/{key}/{STAGED_META}") is not None

    def push(self, folder: Path, key: str) -> None:
        """Upload the staged entry in `folder` as `key`: parts, then capture.json."""
        parts = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != STAGED_META)
        concurrently(lambda name: self.storage.upload(folder / name, f"{STAGED}/{key}/{name}"), parts)
        self.storage.upload(folder / STAGED_META, f"{STAGED}/{key}/{STAGED_META}")

    def pull(self, key: str, staged_dir: Path) -> bool:
        """Download the entry `key` into ``staged_dir/<key>`` (verified there, as every local
        entry is, by `read_staged`); False when there is none."""
        names = self.storage.tree(f"{STAGED}/{key}")
        if STAGED_META not in names:
            return False
        with temporary_folder(staged_dir, f"pull-{key}") as folder:
            files = [n for n in names if "/" not in n]
            concurrently(lambda n: self.storage.download(f"{STAGED}/{key}/{n}", folder / n), files)
            remove(staged_dir / key)
            folder.rename(staged_dir / key)
        return True

    def discard(self, key: str) -> None:
        """Remove the entry `key` (its description first: a half-deleted entry is never whole)."""
        self.storage.delete(f"{STAGED}/{key}/{STAGED_META}")
        self.storage.delete(f"{STAGED}/{key}")

    def prune(self, keep: set[str]) -> int:
        """Delete the entries whose key is not in `keep`."""
        stale = [key for key in self.storage.list(STAGED) if key not in keep]
        for key in stale:
            self.discard(key)
        return len(stale)


@contextlib.contextmanager
def _staging_dir(place: StagedPlace) -> Iterator[Path]:
    if place.driver == this_process():
        place.local.mkdir(parents=True, exist_ok=True)
        yield place.local
    else:
        with tempfile.TemporaryDirectory(prefix="paper-listings-staged-") as own:
            yield Path(own)


def stage_at(
    sources: Sequence[Source], place: StagedPlace, refresh: bool, workers: int, chunk_bytes: int, meter: OpenMeter
) -> list[StagedCapture]:
    """Every listing of `sources` in the staged layer of `place` (see `stage_sources`): raw
    listings on object storage are read from local copies, entries staged elsewhere are pulled,
    and what this call parses is pushed for every other machine."""
    if place.remote is None:
        return stage_sources(sources, place.local, refresh, workers, chunk_bytes, meter)
    remote = RemoteStaged(place.remote)
    with tempfile.TemporaryDirectory(prefix="paper-listings-raw-") as raw, _staging_dir(place) as staged_dir:
        local = local_copies(sources, Path(raw))
        if not refresh:
            for source in local:
                key = listing_cache_key(source, listing_digest(source)[0], code_fingerprint())
                if not staged_present(staged_dir, key):
                    remote.pull(key, staged_dir)
        captures = stage_sources(local, staged_dir, refresh, workers, chunk_bytes, meter)
        for capture in captures:
            if not capture.from_cache or not remote.present(capture.key):
                remote.push(capture.folder, capture.key)
    return [
        dataclasses.replace(c, source=s, folder=place.local / c.key) for c, s in zip(captures, sources, strict=True)
    ]


def pull_missing(captures: Sequence[StagedCapture], place: StagedPlace) -> list[Source]:
    """Make every capture's entry present and whole in the driver's staged folder, pulling what
    other machines staged; the sources whose entry is gone or damaged everywhere (to stage again)."""
    if place.remote is None:
        return [c.source for c in captures if not staged_present(place.local, c.key)]
    remote = RemoteStaged(place.remote)
    place.local.mkdir(parents=True, exist_ok=True)
    again = []
    for capture in captures:
        try:
            here = staged_present(place.local, capture.key) or remote.pull(capture.key, place.local)
            if here and read_staged(place.local, capture.key) is not None:
                continue
        except StagedEntryInvalidError:
            discard_staged(place.local, capture.key)
            remote.discard(capture.key)
        again.append(capture.source)
    return again
