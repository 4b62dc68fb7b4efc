"""Storage: the one interface every layer above reads and writes through, and its two implementations.

`open_storage` is the one place that tells a folder from an ``s3://`` URL; everything above it
holds a `Storage` and never asks which.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.storage.interface import Lease, Listing, ObjectInfo, Storage, check_key, join_key
from pipeline.storage.local import LocalStorage
from pipeline.storage.s3 import S3Location, S3Storage, is_s3_url, parse_s3_url

Location = str | os.PathLike[str]


def open_storage(location: Location | Storage) -> Storage:
    """The storage at `location`: an ``s3://bucket/prefix`` URL, or else a local folder (which
    need not exist yet). A `Storage` is returned as it is."""
    if isinstance(location, LocalStorage | S3Storage):
        return location
    if isinstance(location, S3Location):
        return S3Storage(location)
    if isinstance(location, str) and is_s3_url(location):
        return S3Storage(parse_s3_url(location))
    return LocalStorage(Path(location))  # type: ignore[arg-type]


def location_text(location: Location | Storage) -> str:
    """A location as the text a user gave or would give (a path or a URL)."""
    return open_storage(location).url


__all__ = [
    "Lease",
    "Listing",
    "LocalStorage",
    "Location",
    "ObjectInfo",
    "S3Storage",
    "Storage",
    "check_key",
    "join_key",
    "location_text",
    "open_storage",
]
