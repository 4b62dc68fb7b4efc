"""Finding a run's inputs: raw listing files, their capture dates, cache keys and the code fingerprint."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import metadata
from pathlib import Path

from pipeline.errors import InputError
from pipeline.parse.normalize import plausible_capture_date
from pipeline.settings import VERSION
from pipeline.storage.local import inside
from pipeline.storage.s3 import S3Location

DATE_IN_NAME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
LISTING_GLOB = "*.txt"


@dataclass(frozen=True, slots=True)
class Source:
    """One raw listing to read, with the capture date that applies to it."""

    path: Path
    name: str  # relative to the raw folder: the value of source_file
    capture_date: date
    capture_date_from: str  # "file name", "--as-of" or "modification time"
    size_bytes: int
    location: S3Location | None = None  # the raw prefix on object storage; `path` is then the key


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


def discover_sources(raw_dir: Path, as_of: date | None) -> Inputs:
    """Every listing under `raw_dir` (recursively, sorted), with its capture date.

    The date comes from a YYYY-MM-DD in the file name; else `as_of`; else the file's
    modification date (UTC), which the caller should warn about.

    Hostile folders are read safely: a link that leads outside `raw_dir` is not followed and
    neither is anything that is not a regular file (a FIFO would block the run); both are
    reported as skipped. A name that is not UTF-8 is read under an escaped name (``caf\\xe9.txt``),
    reported as renamed. A file dated by its modification time is reported too.
    """
    if not raw_dir.is_dir():
        raise InputError(f"raw folder {raw_dir} does not exist (pass --raw DIR)")
    root = raw_dir.resolve()
    sources: list[Source] = []
    notices: list[InputNotice] = []
    names: set[str] = set()
    for folder, dirnames, filenames in os.walk(raw_dir, followlinks=False):
        dirnames.sort()
        for dirname in dirnames:
            link = Path(folder) / dirname
            if link.is_symlink() and not inside(link.resolve(strict=False), root):
                name = printable_name(link.relative_to(raw_dir).as_posix())
                notices.append(InputNotice(name, "skipped", "a link to a folder outside the raw folder: not followed"))
        for filename in sorted(filenames):
            if not fnmatch.fnmatchcase(filename, LISTING_GLOB):
                continue
            source = _listing(Path(folder) / filename, raw_dir, root, as_of, names, notices)
            if source is not None:
                names.add(source.name)
                sources.append(source)
    if not sources:
        raise InputError(f"no listings ({LISTING_GLOB}) under {raw_dir}")
    sources.sort(key=lambda s: s.name)
    return Inputs(sources, notices)


def _listing(
    path: Path, raw_dir: Path, root: Path, as_of: date | None, names: set[str], notices: list[InputNotice]
) -> Source | None:
    """The listing at `path` as a source, or None (with a notice saying why) when it is not read:
    a link that loops or leads outside the raw folder, not a regular file, an escaped name that
    is another file's, no plausible capture date. `names`: the names already taken."""
    relative = path.relative_to(raw_dir).as_posix()
    name = printable_name(relative)

    def skipped(reason: str) -> Source | None:
        notices.append(InputNotice(name, "skipped", reason))
        return None

    try:
        real = path.resolve()
    except (RuntimeError, OSError):  # a link loop (RuntimeError up to Python 3.12)
        return skipped("a link that loops: not followed")
    if not inside(real, root):
        return skipped("a link that leads outside the raw folder: not followed")
    try:
        info = real.stat()
    except OSError as err:
        return skipped(f"cannot be read ({err.strerror})")
    if not stat.S_ISREG(info.st_mode):
        return skipped("not a regular file")
    if name in names:  # an escaped name equal to a file's real one: never two files under one name
        return skipped("its escaped name is that of another file: rename it")
    if name != relative:
        notices.append(InputNotice(name, "renamed", "its name is not UTF-8 or holds control characters; "
                                   "read under this escaped name"))  # fmt: skip
    source = _source(real, name, info, as_of)
    if not plausible_capture_date(source.capture_date):
        return skipped(f"no usable capture date: its {source.capture_date_from} gives {source.capture_date}; "
                       "put a YYYY-MM-DD in its name or pass --as-of")  # fmt: skip
    if source.capture_date_from == "modification time":
        notices.append(InputNotice(name, "dated", f"no valid YYYY-MM-DD in its name and no --as-of: captured on "
                                   f"its modification date {source.capture_date}"))  # fmt: skip
    return source


def _source(path: Path, name: str, info: os.stat_result, as_of: date | None) -> Source:
    from_name = capture_date_in_name(name.rsplit("/", 1)[-1])
    if from_name is not None:
        return Source(path, name, from_name, "file name", info.st_size)
    if as_of is not None:
        return Source(path, name, as_of, "--as-of", info.st_size)
    modified = datetime.fromtimestamp(info.st_mtime, tz=UTC).date()
    return Source(path, name, modified, "modification time", info.st_size)


def listing_cache_key(source: Source, content_sha256: str, code: str) -> str:
    """Key of a parsed listing: its content, name and capture date, and the code that parsed it."""
    identity = f"{content_sha256}|{source.name}|{source.capture_date.isoformat()}|{code}"
    return hashlib.sha256(identity.encode()).hexdigest()


# Libraries whose output is part of the data: anyascii folds names into keys and ids, pylatexenc
# renders abstracts. A new release of either must re-parse every capture.
DATA_LIBRARIES = ("anyascii", "pylatexenc")


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
