"""Raw listings on object storage: found by listing a prefix, read from a local copy of each."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from datetime import date
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError, StoreError
from pipeline.parse.normalize import plausible_capture_date
from pipeline.raw.sources import (
    LISTING_GLOB,
    InputNotice,
    Inputs,
    Source,
    capture_date_in_name,
    discover_sources,
    printable_name,
)
from pipeline.storage.s3 import S3Location, S3Storage, check_relative


def find_listings(raw: Path | S3Location, as_of: date | None) -> Inputs:
    """The listings of a local raw folder or of an s3:// prefix (`discover_sources`)."""
    return discover_remote_sources(raw, as_of) if isinstance(raw, S3Location) else discover_sources(raw, as_of)


def discover_remote_sources(location: S3Location, as_of: date | None) -> Inputs:
    """Every listing under the s3:// `location` (recursively, sorted), dated as local listings
    are; an object's last-modified date stands in for a file's modification time. S3 has no
    links: nothing outside the prefix is ever listed."""
    storage = S3Storage(location)
    sources: list[Source] = []
    notices: list[InputNotice] = []
    for name, (size, modified) in sorted(storage.tree_dated("").items()):
        if not fnmatch.fnmatchcase(name.rsplit("/", 1)[-1], LISTING_GLOB):
            continue
        shown = printable_name(name)
        try:
            check_relative(name)
        except StoreError:
            notices.append(InputNotice(shown, "skipped", "its key is not a plain relative name: not read"))
            continue
        if shown != name:
            notices.append(InputNotice(shown, "skipped", "its key holds control characters: rename it"))
            continue
        source = _remote_source(location, name, size, modified, as_of)
        if not plausible_capture_date(source.capture_date):
            why = (f"no usable capture date: its {source.capture_date_from} gives {source.capture_date}; "
                   "put a YYYY-MM-DD in its name or pass --as-of")  # fmt: skip
            notices.append(InputNotice(shown, "skipped", why))
            continue
        if source.capture_date_from == "modification time":
            notices.append(InputNotice(shown, "dated", f"no valid YYYY-MM-DD in its name and no --as-of: captured "
                                       f"on its last-modified date {source.capture_date}"))  # fmt: skip
        sources.append(source)
    if not sources:
        raise InputError(f"no listings ({LISTING_GLOB}) under {location.url}")
    return Inputs(sources, notices)


def _remote_source(location: S3Location, name: str, size: int, modified: date, as_of: date | None) -> Source:
    path = PurePosixPath(name)
    from_name = capture_date_in_name(path.name)
    if from_name is not None:
        return Source(Path(name), name, from_name, "file name", size, location)
    if as_of is not None:
        return Source(Path(name), name, as_of, "--as-of", size, location)
    return Source(Path(name), name, modified, "modification time", size, location)


def local_copies(sources: Sequence[Source], folder: Path) -> list[Source]:
    """The sources, those on object storage downloaded into `folder` (under names of their own,
    never their keys) and read from there; InputError when one changed size since it was listed."""
    copies = []
    for number, source in enumerate(sources):
        if source.location is None:
            copies.append(source)
            continue
        target = folder / f"listing-{number:06d}.txt"
        S3Storage(source.location).download(source.name, target)
        if target.stat().st_size != source.size_bytes:
            raise InputError(f"{source.location.child(source.name).url} changed while the run read it: run again")
        copies.append(dataclasses.replace(source, path=target, location=None))
    return copies
