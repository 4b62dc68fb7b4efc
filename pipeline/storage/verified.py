"""Verified local copies: a stored object as a local file, read only once it matches its sha256 and size."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from pipeline.storage.files import file_digest
from pipeline.storage.interface import Storage
from pipeline.storage.local import PATTERN_CHARACTERS


class DigestMismatchError(ValueError):
    """A stored object is not the one it was listed as (another size, another sha256)."""


def cache_path(cache: Path, sha256: str) -> Path:
    """Where a copy of the object with this sha256 is kept: by content, whatever its key or store."""
    return cache / "objects" / sha256[:2] / sha256


def verified_copy(storage: Storage, key: str, sha256: str, size: int, cache: Path) -> Path:
    """A local file holding the object `key`, checked against `sha256` and `size` before it is
    returned: the stored file itself where the storage reads in place (the disk); otherwise a copy
    in `cache`, by sha256, downloaded once and checked again on every use. FileNotFoundError when
    it is missing; DigestMismatchError when it differs (a bad copy in the cache is dropped);
    OSError when it cannot be read."""
    cached = cache_path(cache, sha256)
    expected = {"sha256": sha256, "bytes": size}
    if not storage.reads_in_place:
        with contextlib.suppress(OSError):
            if cached.is_file() and file_digest(cached) == expected:
                return cached
    path = storage.local_file(key, cached)
    found = file_digest(path)
    if found != expected:
        if path == cached:
            cached.unlink(missing_ok=True)
        raise DigestMismatchError(f"{found['bytes']} bytes (listed: {size}); content differs from its sha256")
    if not plain_path(path):  # DuckDB would read it as a pattern: read a copy under a plain name
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, cached)
        return cached
    return path


def plain_path(path: Path) -> bool:
    """True when DuckDB (or a glob) reads the absolute path of `path` as itself."""
    return not set(str(path.absolute())) & PATTERN_CHARACTERS
