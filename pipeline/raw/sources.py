"""Finding a run's inputs: raw listing files, their capture dates, cache keys and the code fingerprint."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import metadata
from pathlib import Path

from pipeline.errors import InputError
from pipeline.parse.normalize import plausible_capture_date
from pipeline.settings import VERSION
from pipeline.storage import ObjectInfo, Storage

DATE_IN_NAME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
LISTING_GLOB = "*.txt"


@dataclass(frozen=True, slots=True)
class Source:
    """One raw listing to read, with the capture date that applies to it.

    `raw` is the storage of the raw folder and `key` the listing's key there; `path` the local file
    it is read from, once there is one (`with_local_copy`): on disk the file itself."""

    raw: Storage
    key: str
    name: str  # relative to the raw folder, printable: the value of source_file
    capture_date: date
    capture_date_from: str  # "file name", "--as-of" or "modification time"
    size_bytes: int
    tag: str  # what the raw storage says of its content without reading it (size and times, or ETag)
    path: Path | None = None

    def with_local_copy(self, into: Path) -> Source:
        """This source with a local file to read it from (on disk the listing itself; else a
        download into `into`, whose size must be the listed one)."""
        if self.path is not None:
            return self
        try:
            path = self.raw.local_file(self.key, into)
        except FileNotFoundError:
            raise InputError(f"{self.name} is gone from the raw folder since the run listed it: run again") from None
        if path.stat().st_size != self.size_bytes:
            raise InputError(f"{self.name} changed while the run read it: run again when it is complete")
        return dataclasses.replace(self, path=path)


@dataclass(frozen=True, slots=True)
class InputNotice:
    """Something about an input file the operator must hear of: it was skipped, or renamed."""

    name: str  # relative to the raw folder, printable
    action: str  # "skipped", "renamed" or "dated" (by its modification time)
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.action}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Inputs:
    """The listings of a run and the notices about files that were not read as they are."""

    sources: list[Source]
    notices: list[InputNotice]


def capture_date_in_name(name: str) -> date | None:
    """The first valid and plausible YYYY-MM-DD in a file name, if any (not 0001-01-01)."""
    for m in DATE_IN_NAME.finditer(name):
        try:
            found = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
        if plausible_capture_date(found):
            return found
    return None


def printable_name(name: str) -> str:
    """A relative file name as one line of safe text: bytes that are not UTF-8, control and format
    characters (newlines, terminal escapes, bidirectional overrides) become ``\\xNN`` escapes."""
    text = os.fsencode(name).decode("utf-8", errors="backslashreplace")
    return "".join(
        ch if unicodedata.category(ch) not in _UNPRINTABLE else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def find_listings(raw: Storage, as_of: date | None) -> Inputs:
    """Every listing of the raw folder `raw` (recursively, sorted), with its capture date.

    The date comes from a YYYY-MM-DD in the file name; else `as_of`; else the file's
    modification date (UTC), which the caller should warn about.

    Hostile folders are read safely: what the storage passes over (a link that leads outside the
    folder, anything that is not a regular file, a key that could escape) is reported as
    skipped. A name that is not UTF-8 or holds control characters is read under an escaped name
    (``caf\\xe9.txt``), reported as renamed; a file dated by its modification time is reported too.
    """
    listing = raw.list()
    sources: list[Source] = []
    notices: list[InputNotice] = []
    names: set[str] = set()
    for key, reason in listing.skipped:
        if fnmatch.fnmatchcase(key.rsplit("/", 1)[-1], LISTING_GLOB) or "folder" in reason:
            notices.append(InputNotice(printable_name(key), "skipped", reason))
    for obj in listing.objects:
        if not fnmatch.fnmatchcase(obj.key.rsplit("/", 1)[-1], LISTING_GLOB):
            continue
        name = printable_name(obj.key)
        if name in names:  # an escaped name equal to a file's real one: never two files under one name
            notices.append(InputNotice(name, "skipped", "its escaped name is that of another file: rename it"))
            continue
        if name != obj.key:
            notices.append(InputNotice(name, "renamed", "its name is not UTF-8 or holds control characters; "
                                       "read under this escaped name"))  # fmt: skip
        source = _source(raw, obj, name, as_of)
        if not plausible_capture_date(source.capture_date):
            why = (
                f"no usable capture date: its {source.capture_date_from} gives {source.capture_date}; "
                "put a YYYY-MM-DD in its name or pass --as-of"
            )
            notices.append(InputNotice(name, "skipped", why))
            continue
        if source.capture_date_from == "modification time":
            notices.append(InputNotice(name, "dated", f"no valid YYYY-MM-DD in its name and no --as-of: captured on "
                                       f"its modification date {source.capture_date}"))  # fmt: skip
        names.add(name)
        sources.append(source)
    if not sources:
        raise InputError(f"no listings ({LISTING_GLOB}) under {raw.url} (pass --raw DIR)")
    sources.sort(key=lambda s: s.name)
    return Inputs(sources, notices)


def _source(raw: Storage, obj: ObjectInfo, name: str, as_of: date | None) -> Source:
    from_name = capture_date_in_name(name.rsplit("/", 1)[-1])
    if from_name is not None:
        dated, by = from_name, "file name"
    elif as_of is not None:
        dated, by = as_of, "--as-of"
    else:
        dated, by = obj.modified.date(), "modification time"
    return Source(raw, obj.key, name, dated, by, obj.size, obj.tag)


def listing_cache_key(name: str, capture_date: date, content_sha256: str, code: str) -> str:
    """Key of a parsed listing: its content, name and capture date, and the code that parsed it."""
    identity = f"{content_sha256}|{name}|{capture_date.isoformat()}|{code}"
    return hashlib.sha256(identity.encode()).hexdigest()


# Libraries whose output is part of the data: anyascii folds names into keys and ids, pylatexenc
# renders abstracts, DuckDB hashes content for changes. A new release of any must re-parse every capture.
DATA_LIBRARIES = ("anyascii", "pylatexenc", "duckdb")


@cache
def code_fingerprint() -> str:
    """sha256 of the package's code, reference data and the versions of the libraries that shape
    the data: a new version follows any change."""
    digest = hashlib.sha256(VERSION.encode())
    for library in DATA_LIBRARIES:
        digest.update(f"{library}=={metadata.version(library)}".encode())
    package = Path(__file__).parent.parent
    roots = [package, package.parent / "schemas"]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in {".py", ".csv"} and path.is_file():
                digest.update(path.relative_to(root.parent).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()
