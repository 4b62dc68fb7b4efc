"""Reading a run's inputs: raw listing files, their capture dates, and the code fingerprint."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from pipeline import __version__, store
from pipeline.listing import Reject
from pipeline.reference import Reference
from pipeline.tables import ListingResult, listing_result

DATE_IN_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
LISTING_GLOB = "*.txt"


@dataclass(frozen=True, slots=True)
class Source:
    """One raw listing to read, with the capture date that applies to it."""

    path: Path
    name: str  # relative to the raw folder: the value of source_file
    capture_date: date
    capture_date_from: str  # "file name", "--as-of" or "modification time"
    size_bytes: int


class InputError(Exception):
    """The run's inputs cannot be used at all (missing folder, no listings)."""


def capture_date_in_name(name: str) -> date | None:
    """The first valid YYYY-MM-DD in a file name, if any."""
    for m in DATE_IN_NAME.finditer(name):
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
    return None


def discover_sources(raw_dir: Path, as_of: date | None) -> list[Source]:
    """Every listing under `raw_dir` (recursively, sorted), with its capture date.

    The date comes from a YYYY-MM-DD in the file name; else `as_of`; else the file's
    modification date (UTC), which the caller should warn about.
    """
    if not raw_dir.is_dir():
        raise InputError(f"raw folder {raw_dir} does not exist (pass --raw DIR)")
    sources = []
    for path in sorted(raw_dir.rglob(LISTING_GLOB)):
        if not path.is_file():
            continue
        name = path.relative_to(raw_dir).as_posix()
        size = path.stat().st_size
        from_name = capture_date_in_name(path.name)
        if from_name is not None:
            sources.append(Source(path, name, from_name, "file name", size))
        elif as_of is not None:
            sources.append(Source(path, name, as_of, "--as-of", size))
        else:
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date()
            sources.append(Source(path, name, modified, "modification time", size))
    if not sources:
        raise InputError(f"no listings ({LISTING_GLOB}) under {raw_dir}")
    return sources


def listing_cache_key(source: Source, content_sha256: str, code: str) -> str:
    """Key of a parsed listing: its content, name and capture date, and the code that parsed it."""
    identity = f"{content_sha256}|{source.name}|{source.capture_date.isoformat()}|{code}"
    return hashlib.sha256(identity.encode()).hexdigest()


def load_source(
    source: Source, reference: Reference, cache_dir: Path | None, refresh: bool
) -> tuple[ListingResult, bool]:
    """The parsed listing and whether it came from the cache (keyed on the file's sha256).

    With `refresh`, the cache is not read (but is rewritten); with no `cache_dir`, not used.
    The file is read and hashed once, whether it is then parsed or found in the cache.
    """
    data = source.path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if cache_dir is None:
        return listing_from_bytes(source, data, sha256, reference), False
    key = listing_cache_key(source, sha256, code_fingerprint())
    if not refresh:
        cached = store.read_cached_listing(cache_dir, key)
        if cached is not None:
            return cached, True
    result = listing_from_bytes(source, data, sha256, reference)
    store.write_cached_listing(cache_dir, key, result)
    return result, False


def listing_from_bytes(source: Source, data: bytes, sha256: str, reference: Reference) -> ListingResult:
    """Decode and parse the bytes of one listing.

    A file that is not UTF-8 becomes a single ``invalid_encoding`` reject: guessing an encoding
    would publish corrupted names.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        reject = Reject(
            line,
            "invalid_encoding",
            f"the file is not UTF-8 (byte {err.start} on line {line}); nothing in it was used",
            data[:2000].decode("utf-8", errors="replace"),
        )
        return ListingResult(source.name, sha256, len(data), source.capture_date, (), (reject,))
    return listing_result(text, source.name, sha256, len(data), source.capture_date, reference)


@cache
def code_fingerprint() -> str:
    """sha256 of the package's code and reference data: a new version follows any change."""
    digest = hashlib.sha256(__version__.encode())
    roots = [Path(__file__).parent, Path(__file__).parent.parent / "schemas"]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in {".py", ".csv"} and path.is_file():
                digest.update(path.relative_to(root.parent).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()
