"""The versioned Parquet store: the only module that writes output.

Layout under OUT::

    versions/000001/  <table>.parquet ..., manifest.json, contract/{schema.json,data_dictionary.md}
    latest -> versions/000001     (symlink, swapped atomically with rename)
    LATEST_ID                     (pointer file with the id, for readers without symlinks)
    staged/<key>/                 (one parsed capture as Parquet, keyed on its content)
    index/<id>.parquet            (the paper index of the latest version: what the next run reuses)
    rejected/<run>/               (rejects of a run refused by --max-reject-rate)
    .lock                         (one writer at a time)

A version is written into ``versions/.tmp-<id>-<pid>`` and renamed into place only when complete,
then ``latest`` is swapped. A crash leaves at worst a ``.tmp-*`` folder, removed by the next writer;
a failed write (full or read-only disk) removes its own and raises `StoreWriteError`.

Everything read back is verified: version ids must be six digits and resolve inside
``OUT/versions``; Parquet pages carry checksums that are checked on every read; the manifest lists
each file's sha256 and size, which `check_version_folder` compares.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.parquet_footer import MAGIC, FooterError, footer_layout, spliced_footer
from pipeline.tables import STAGED_TABLES, staged_schema
from pipeline.version_report import REPORT_FILE, render_report, report_data
from schemas import MODELS, DatasetInvalidError, arrow_schema
from schemas.contract import contract_json, data_dictionary, schema_fingerprint, table_contract_json
from schemas.tables import SORTED_BY, plain_schema, published_schema
from schemas.validate import REPORT_COLUMNS, batch_failures

VERSIONS = "versions"
LATEST = "latest"
# Not "LATEST": on a case-insensitive file system (macOS) that is the `latest` link itself.
POINTER = "LATEST_ID"
MANIFEST = "manifest.json"
CONTRACT = "contract"
CONTRACT_FILES = (f"{CONTRACT}/schema.json", f"{CONTRACT}/data_dictionary.md")
VERSION_FILES = frozenset({f"{name}.parquet" for name in MODELS} | set(CONTRACT_FILES) | {REPORT_FILE})
TMP_PREFIX = ".tmp-"
REJECTED = "rejected"  # rejects of runs refused by --max-reject-rate
STAGED = "staged"  # parsed captures, keyed on content: OUT/staged/<key>/
STAGED_META = "capture.json"
INDEX = "index"  # OUT/index/<id>.parquet: where each papers row of version <id> came from, hashed
LEGACY_CACHE = ".cache"  # pickles of an earlier release: deleted unread
VERSION_ID = re.compile(r"[0-9]{6}")
# Errors that a retry cannot cure: the task fails at once with a clear message.
PERMANENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG}
)
# What creating a symlink raises where the file system has none (FAT, some network shares).
_NO_SYMLINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOTSUP})
_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_page_checksum": True}


class StoreError(Exception):
    """The store cannot be read or written as asked."""


class StoreLockedError(StoreError):
    """Another run holds the writer lock."""


class StoreWriteError(StoreError):
    """Writing failed (full or read-only disk, permissions); nothing partial was left behind."""

    def __init__(self, message: str, errno_code: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_code

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help (no space, read-only, no permission)."""
        return self.errno in PERMANENT_ERRNOS


class VersionDamagedError(StoreError):
    """A version's files cannot be read as published (damaged, tampered or missing)."""


class StagedEntryInvalidError(StoreError):
    """A staged capture failed verification; it is parsed again."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What a publish did: the version that is now latest, and whether it is new."""

    version_id: str
    path: Path
    published: bool
    parent_id: str | None


_ARROW_ERRNO = re.compile(r"\[errno (\d+)\]")


def _write_error(path: Path, err: OSError) -> StoreWriteError:
    """One line naming the path and the cause; Arrow's errors carry the errno in their text only."""
    code = err.errno
    if code is None and (found := _ARROW_ERRNO.search(str(err))):
        code = int(found[1])
    cause = os.strerror(code) if code is not None else str(err)
    return StoreWriteError(f"cannot write {err.filename or path}: {cause}", code)


def _remove(path: Path) -> None:
    """Remove a file, link or folder, ignoring what is already gone (cleanup must not fail)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _tmp_name(what: str) -> str:
    """Name of a temporary entry, carrying its writer's host and pid so that cleanup can tell a
    live run's work in progress from a dead run's leftovers."""
    return f"{TMP_PREFIX}{what}-h{_HOST}-pid{os.getpid()}-t{threading.get_ident()}"


_TMP_OWNER = re.compile(r"-h([0-9a-f]{8})-pid(\d+)-t(\d+)\Z")


def _owner_alive(name: str) -> bool:
    """True when the temporary entry `name` may belong to a run still in progress: one of
    another host (OUT shared between machines or containers: it cannot be checked), or a live
    process here other than this thread."""
    found = _TMP_OWNER.search(name)
    if found is None:
        return False  # no owner recorded: a leftover
    host, pid, thread = found[1], int(found[2]), int(found[3])
    if host != _HOST:
        return True
    if pid == os.getpid():
        return thread != threading.get_ident()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The kind each of OUT's own entries must be: writing through a link would act outside OUT, and
# a `latest` that is a real folder (copied with `cp -rL`) would keep readers on stale data.
_LAYOUT = ((VERSIONS, "folder"), (STAGED, "folder"), (REJECTED, "folder"), (INDEX, "folder"), (LATEST, "link"),
           (POINTER, "file"), (".lock", "file"))  # fmt: skip


def check_layout(out_dir: Path) -> None:
    """StoreError naming every entry of `out_dir` that is of the wrong kind (a link, a folder...)."""
    problems = []
    for name, kind in _LAYOUT:
        path = out_dir / name
        if not path.exists() and not path.is_symlink():
            continue
        if kind == "link":
            right = path.is_symlink()
        else:
            right = not path.is_symlink() and (path.is_dir() if kind == "folder" else path.is_file())
        if not right:
            problems.append(f"{path} is not a {kind}")
    if problems:
        raise StoreError(f"{'; '.join(problems)}: refusing to write through it. Move it away and run again")


# What DuckDB, which reads the staged layer and the parent version, takes for a file pattern
# (*, ?, [...], {...}) or an option (? in a database path), or turns into a slash (\\).
_PATTERN_CHARACTERS = frozenset("*?[]{}\\")


def check_plain_path(path: Path) -> None:
    """StoreError when the absolute path of `path` holds a character DuckDB would not read as
    itself: another folder's files could be read in its place."""
    found = sorted(set(str(path.absolute())) & _PATTERN_CHARACTERS)
    if found:
        raise StoreError(
            f"{path}: its path holds {' '.join(found)}, which DuckDB reads as a file pattern or option; "
            "use a dataset folder whose path has none of * ? [ ] { } \\"
        )


def check_writable(out_dir: Path) -> None:
    """Fail early, with the cause, when `out_dir` cannot be created or written, holds entries of
    the wrong kind (`check_layout`), or has a path DuckDB would misread (`check_plain_path`)."""
    check_plain_path(out_dir)
    check_layout(out_dir)
    probe = out_dir / _tmp_name("probe")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"probe")
            os.fsync(handle.fileno())
    except OSError as err:
        raise _write_error(out_dir, err) from None
    finally:
        _remove(probe)


@contextlib.contextmanager
def writer_lock(out_dir: Path, timeout_s: float, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the store's exclusive writer lock; wait up to `timeout_s` seconds for it.

    `on_wait` is called once, with the holder, when the lock is taken and the run must wait.
    """
    lock_path = out_dir / ".lock"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a+")
    except OSError as err:
        raise _write_error(lock_path, err) from None
    with handle:
        deadline = time.monotonic() + timeout_s
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"another run ({holder}) is publishing to {out_dir}; waited {timeout_s:.0f} s. "
                        "Retry when it has finished."
                    ) from None
                if not waiting and on_wait is not None:
                    on_wait(holder)
                waiting = True
                time.sleep(0.2)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
        except OSError as err:
            raise _write_error(lock_path, err) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()  # so that a later holder that writes nothing is not named after us
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- reading versions: ids in their exact shape, paths inside OUT/versions ----------------------


def check_version_id(version_id: str) -> str:
    """`version_id` when it has the exact shape of one (six digits); else a StoreError."""
    if not VERSION_ID.fullmatch(version_id):
        raise StoreError(f"{version_id!r} is not a version id (six digits, e.g. 000001)")
    return version_id


def version_ids(out_dir: Path) -> list[str]:
    """Ids of the complete versions, oldest first (real folders named by six digits only)."""
    root = out_dir / VERSIONS
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if VERSION_ID.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def latest_id(out_dir: Path) -> str | None:
    """The id that `latest` points at (symlink first, then the pointer file).

    A pointer that leads anywhere but ``versions/<six digits>`` is an error, not followed; with
    no pointer at all, the newest complete version is the latest.
    """
    link = out_dir / LATEST
    if link.is_symlink():
        target = link.readlink()
        if len(target.parts) != 2 or target.parts[0] != VERSIONS or not VERSION_ID.fullmatch(target.parts[1]):
            raise StoreError(f"{link} points to {target}, not to {VERSIONS}/<id>; refusing to follow it")
        return target.parts[1]
    pointer = out_dir / POINTER
    if pointer.is_file() and not pointer.is_symlink():
        text = pointer.read_text(encoding="utf-8", errors="replace").strip()
        if text and not VERSION_ID.fullmatch(text):
            raise StoreError(f"{pointer} holds {text[:40]!r}, not a version id; refusing to follow it")
        if text:
            return text
    # No pointer, yet versions: pointers deleted by hand, or a crash between the first version's
    # rename and its pointer's creation. The newest complete version is the latest.
    ids = version_ids(out_dir)
    return ids[-1] if ids else None


def version_path(out_dir: Path, version_id: str | None = None) -> Path:
    """Folder of a version (`latest` when no id is given), always inside ``OUT/versions``."""
    chosen = version_id or latest_id(out_dir)
    if chosen is None:
        raise StoreError(f"no version has been published under {out_dir}")
    check_version_id(chosen)
    root = out_dir / VERSIONS
    path = root / chosen
    if path.is_symlink() or not (path / MANIFEST).is_file() or path.resolve().parent != root.resolve():
        if version_id is None:
            raise StoreError(
                f"latest points to version {chosen}, which does not exist under {out_dir}: point it at an "
                f"existing version (ln -sfn {VERSIONS}/<id> {out_dir / LATEST}) or remove {LATEST} and {POINTER}"
            )
        raise StoreError(f"version {chosen} does not exist under {out_dir}")
    return path


# What readers of a manifest rely on: each key present (or optional) with its JSON type.
_MANIFEST_SHAPE: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "created_at": (str, True),
    "row_counts": (dict, True),
    "files": (dict, True),
    "parent_id": (str, False),
    "fingerprint": (str, False),
    "schema_fingerprint": (str, False),
    "inputs": (list, False),
    "skipped_inputs": (list, False),
    "records": (int, False),
    "rejects": (int, False),
}
MAX_MANIFEST_BYTES = 64 << 20


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What is missing from a manifest or of the wrong type (empty when its shape is right)."""
    problems = []
    for key, (kind, required) in _MANIFEST_SHAPE.items():
        value = manifest.get(key)
        if value is None:
            if required:
                problems.append(f"{key!r} is missing")
        elif not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"{key!r} is not a JSON {kind.__name__}")
    counts = manifest.get("row_counts")
    if isinstance(counts, dict) and not all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values()):
        problems.append("'row_counts' holds a value that is not a whole number")
    files = manifest.get("files")
    if isinstance(files, dict):
        unknown = sorted(set(files) - VERSION_FILES)
        if unknown:
            problems.append(f"'files' names what is no part of a version: {unknown[0][:80]!r}")
        if not all(isinstance(f, dict) for f in files.values()):
            problems.append("'files' holds an entry that is not a JSON object")
    return problems


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the version folder `path`; VersionDamagedError when it is not readable JSON
    of the manifest's shape."""
    file = path / MANIFEST
    try:
        if file.is_symlink():
            raise VersionDamagedError(f"{file} is a link, not a file")
        if file.stat().st_size > MAX_MANIFEST_BYTES:
            raise VersionDamagedError(f"{file} has more than {MAX_MANIFEST_BYTES >> 20} MiB")
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise VersionDamagedError(f"{file} cannot be read: {str(err)[:200]}") from None
    if not isinstance(manifest, dict):
        raise VersionDamagedError(f"{file} is not a JSON object")
    problems = manifest_problems(manifest)
    if VERSION_ID.fullmatch(path.name) and manifest.get("id") != path.name:
        problems.append(f"its id {str(manifest.get('id'))[:20]!r} is not its folder's name {path.name!r}")
    if problems:
        raise VersionDamagedError(f"{file}: {'; '.join(problems)}")
    return manifest


def fingerprint(out_dir: Path, version_id: str) -> str | None:
    """The content fingerprint recorded in a version's manifest."""
    value = read_manifest(version_path(out_dir, version_id)).get("fingerprint")
    return str(value) if value is not None else None


def _read_parquet(file: Path, schema: pa.Schema | None = None, expected: object = None) -> pa.Table:
    """A Parquet file, read once: equal to its `expected` digest (`file_digest`'s shape) when one
    is given, every page checksum verified, every string valid UTF-8, of `schema` when one is
    given. VersionDamagedError when it is missing, a link, damaged, edited or of another shape."""
    try:
        if file.is_symlink():
            raise VersionDamagedError(f"{file} is a link, not a file")
        data = file.read_bytes()
    except OSError as err:
        raise VersionDamagedError(f"{file} cannot be read: {err.strerror}") from None
    if expected is not None and _digest(data) != expected:
        raise VersionDamagedError(f"{file} differs from the sha256 in its manifest: damaged or edited")
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
        table.validate(full=True)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise VersionDamagedError(f"{file} cannot be read: {str(err)[:300]}") from None
    if schema is not None and not plain_schema(table.schema).equals(schema):
        raise VersionDamagedError(f"{file} does not have the expected columns and types")
    return table


def _to_pandas(file: Path, table: pa.Table) -> pd.DataFrame:
    try:
        return table.to_pandas(date_as_object=True)
    except (pa.ArrowException, ValueError, OverflowError) as err:  # e.g. a date32 past year 9999
        raise VersionDamagedError(f"{file} holds values pandas cannot read: {str(err)[:200]}") from None


def read_tables(path: Path, tables: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read a version folder's tables into pandas (dates stay `datetime.date`), each verified
    against the manifest's sha256 and size, its page checksums and the contract's types."""
    names = list(tables) if tables is not None else list(MODELS)
    listed = read_manifest(path)["files"]
    frames = {}
    for name in names:
        file = path / f"{name}.parquet"
        if file.name not in listed:
            raise VersionDamagedError(f"{file} has no sha256 in its manifest")
        frames[name] = _to_pandas(file, _read_parquet(file, arrow_schema(name), listed[file.name]))
    return frames


def verified_files(path: Path, tables: Sequence[str], check_types: bool = True) -> dict[str, Path]:
    """The Parquet files of some tables of a version folder, for a reader that scans them itself
    (DuckDB): each a regular file equal to the manifest's sha256 (read in blocks, never whole),
    with the contract's types in its footer (unless `check_types` is False: a version written
    under an older contract); VersionDamagedError otherwise."""
    listed = read_manifest(path)["files"]
    files = {}
    for name in tables:
        file = path / f"{name}.parquet"
        try:
            if file.is_symlink() or not file.is_file():
                raise VersionDamagedError(f"{file} is missing or not a regular file")
            if file_digest(file) != listed.get(file.name):
                raise VersionDamagedError(f"{file} differs from the sha256 in its manifest: damaged or edited")
            if check_types and not plain_schema(pq.read_schema(file)).equals(arrow_schema(name)):
                raise VersionDamagedError(f"{file} does not have the contract's columns and types")
        except (OSError, pa.ArrowException) as err:
            raise VersionDamagedError(f"{file} cannot be read: {str(err)[:200]}") from None
        files[name] = file
    return files


def _digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def file_digest(path: Path) -> dict[str, Any]:
    """sha256 and size of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}


# --- checking a version folder (the receiving side of a hand-off) -------------------------------


def _failure(table: str, check: str, case: object = None, column: str | None = None) -> dict[str, Any]:
    return {"table": table, "column": column, "check": check, "row": None, "failure_case": case}


def _integrity_failures(path: Path, manifest: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Missing, linked, resized or altered files, against the manifest's sha256 and sizes."""
    failures = []
    listed = manifest.get("files") if manifest is not None else None
    # Only the version's own files are opened, whatever else a damaged manifest names.
    for relative in sorted(VERSION_FILES):
        file = path / relative
        try:
            if file.is_symlink():
                failures.append(_failure(relative, "regular_file", "a link, not a file"))
            elif not file.is_file():
                failures.append(_failure(relative, "file_present", str(file)))
            elif listed is not None:
                want = listed.get(relative)
                got = file_digest(file)
                if not isinstance(want, dict):
                    failures.append(_failure(relative, "listed_in_manifest", "the manifest has no sha256 for it"))
                elif got != want:
                    case = f"{got['bytes']} bytes (manifest: {want.get('bytes')}); content differs from its sha256"
                    failures.append(_failure(relative, "sha256", case))
        except OSError as err:
            failures.append(_failure(relative, "readable", err.strerror or str(err)))
    return failures


def _contract_failures(path: Path) -> list[dict[str, Any]]:
    """Contract files that are not the contract this pipeline publishes (their sha256 may match
    a manifest that was rewritten with them)."""
    failures = []
    for relative, current in zip(CONTRACT_FILES, (contract_json(), data_dictionary()), strict=True):
        try:
            text = (path / relative).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # reported as missing or unreadable by the integrity check
        if text != current:
            failures.append(_failure(relative, "contract_current", "differs from this pipeline's contract"))
    return failures


def _type_failures(name: str, file_schema: pa.Schema) -> list[dict[str, Any]]:
    failures = []
    schema = plain_schema(file_schema)
    for field in arrow_schema(name):
        if field.name not in schema.names:
            failures.append(_failure(name, "column_present", column=field.name))
        elif not schema.field(field.name).type.equals(field.type):
            failures.append(
                _failure(name, f"arrow_type({field.type})", str(schema.field(field.name).type), column=field.name)
            )
    return failures


_CHECK_BATCH_ROWS = 16_384


def _table_failures(name: str, file: Path) -> tuple[int | None, list[dict[str, Any]], list[pd.DataFrame]]:
    """One table of a version folder read batch by batch (never whole): its rows (None when it
    cannot be read through), what keeps it from being read, and what its model rejects."""
    try:
        parquet = pq.ParquetFile(file, page_checksum_verification=True)
    except (OSError, pa.ArrowException, ValueError) as err:
        return None, [_failure(name, "readable", f"{file} cannot be read: {str(err)[:300]}")], []
    with parquet:
        typed = _type_failures(name, parquet.schema_arrow)
        if typed:
            return None, typed, []
        rows, found = 0, []
        try:
            for batch in parquet.iter_batches(batch_size=_CHECK_BATCH_ROWS):
                batch.validate(full=True)  # e.g. strings that are not UTF-8
                failures = batch_failures(name, decoded(batch), rows)
                if len(failures):
                    found.append(failures)
                rows += batch.num_rows
        except (OSError, pa.ArrowException, ValueError, OverflowError) as err:  # a date32 past year 9999, say
            return None, [_failure(name, "readable", f"{file} cannot be read: {str(err)[:300]}")], found
    return rows, [], found


def _footer_failures(name: str, file: Path, manifest: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """What a table file's footer says about itself that its manifest does not (`footer_metadata`)."""
    try:
        stored = pq.read_metadata(file).metadata or {}
    except (OSError, pa.ArrowException, ValueError):
        return []  # unreadable: `_table_failures` says so
    said = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in stored.items()}
    expected = {FOOTER_PREFIX + "table": name, FOOTER_PREFIX + "contract": table_contract_json(name)}
    if manifest is not None:
        expected[FOOTER_PREFIX + "version_id"] = str(manifest.get("id"))
        expected[FOOTER_PREFIX + "schema_fingerprint"] = str(manifest.get("schema_fingerprint"))
    return [
        _failure(name, f"footer({key}={value[:40]})", said.get(key, "missing")[:80])
        for key, value in expected.items()
        if said.get(key) != value
    ]


def check_version_folder(path: Path) -> pd.DataFrame:
    """Everything wrong with a version folder, for the receiving side of a hand-off.

    Requires the manifest and the contract; checks every file's sha256 and size against the
    manifest, that every table reads with its page checksums and has the contract's Arrow
    types, that its footer names this version, table, contract and schema fingerprint, that the
    tables pass the pandera models (batch by batch, so that memory does not grow with the
    version), keys and foreign keys, that row counts match the manifest and that the
    contract is this pipeline's. Returns the failures in the report format of `schemas.validate`
    (empty when the folder conforms); never raises on damaged input.
    """
    from pipeline.assemble import UnreadableInputError, file_key_failures

    failures: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    if not (path / MANIFEST).is_file():
        failures.append(_failure(MANIFEST, "file_present", str(path / MANIFEST)))
    else:
        try:
            manifest = read_manifest(path)
        except VersionDamagedError as err:
            failures.append(_failure(MANIFEST, "readable", str(err)))
    failures += _integrity_failures(path, manifest)
    # A file that is there is still checked when its sha256 differs: the report then says what changed.
    unusable = {f["table"] for f in failures if f["check"] in ("file_present", "regular_file")}
    rows: dict[str, int] = {}
    model_failures: list[pd.DataFrame] = []
    for name in MODELS:
        if f"{name}.parquet" in unusable:
            continue
        counted, problems, found = _table_failures(name, path / f"{name}.parquet")
        failures += problems or _footer_failures(name, path / f"{name}.parquet", manifest)
        model_failures += found
        if counted is not None:
            rows[name] = counted
    failures += _contract_failures(path)
    report = pd.concat([pd.DataFrame(failures, columns=REPORT_COLUMNS), *model_failures], ignore_index=True)
    if len(rows) == len(MODELS):
        try:
            keys = file_key_failures({name: path / f"{name}.parquet" for name in MODELS})
        except UnreadableInputError as err:
            keys = pd.DataFrame([_failure("keys", "readable", str(err))], columns=REPORT_COLUMNS)
        report = pd.concat([report, keys], ignore_index=True)
    extra = []
    if manifest is not None:
        counts = manifest["row_counts"]
        for name, counted in rows.items():
            if counts.get(name) != counted:
                extra.append(_failure(name, f"manifest_row_count({counts.get(name)})", str(counted)))
        if manifest.get("schema_fingerprint") != schema_fingerprint():
            extra.append(_failure(MANIFEST, "schema_fingerprint", "the version was published under another contract"))
    if extra:
        report = pd.concat([report, pd.DataFrame(extra, columns=REPORT_COLUMNS)], ignore_index=True)
    return report


# --- writing --------------------------------------------------------------------------------


# A source of one table's rows, read once, batch by batch: a version is written as it is read.
Batches = Callable[[], Iterable[pa.RecordBatch]]
# Checks one batch (table name, batch, number of rows before it); returns the failures it found
# in the report format of `schemas.validate` (empty when it conforms).
BatchCheck = Callable[[str, pa.RecordBatch, int], pd.DataFrame]


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with the contract's names, order and types (a missing or extra column is an error)."""
    if batch.schema.names != schema.names:
        raise DatasetInvalidError(
            pd.DataFrame([_failure(schema.names[0], "columns", f"{batch.schema.names} != {schema.names}")],
                         columns=REPORT_COLUMNS)
        )  # fmt: skip
    arrays = [column.cast(field.type) for column, field in zip(batch.columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with its dictionary columns as plain ones (what the checks and `arrow_schema` see)."""
    schema = plain_schema(batch.schema)
    if schema.equals(batch.schema):
        return batch
    return pa.RecordBatch.from_arrays(
        [c.cast(f.type) for c, f in zip(batch.columns, schema, strict=True)], schema=schema
    )


def _encoded(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` (of `arrow_schema`'s types) as `schema` writes it: dictionary columns encoded."""
    arrays = [
        column.dictionary_encode() if pa.types.is_dictionary(field.type) else column
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


FOOTER_PREFIX = "paper_listings."


def footer_metadata(version_id: str) -> dict[str, dict[str, str]]:
    """What each published Parquet file of a version says about itself in its footer (key-value
    metadata), by table. Made once, before the files are written on several threads: pandera's
    contract export swaps the process's warning filters, which is not safe across threads."""
    from pipeline import __version__

    fingerprint = schema_fingerprint()
    footers = {}
    for table in MODELS:
        values = {
            "version_id": version_id,
            "table": table,
            "pipeline_version": __version__,
            "schema_fingerprint": fingerprint,
            "contract": table_contract_json(table),
        }
        footers[table] = {FOOTER_PREFIX + key: value for key, value in values.items()}
    return footers


def _sorting_columns(table: str, schema: pa.Schema) -> tuple[Any, ...] | None:
    columns = SORTED_BY.get(table)
    return pq.SortingColumn.from_ordering(schema, [(c, "ascending") for c in columns]) if columns else None


def _write_batches(
    table: str,
    batches: Iterable[pa.RecordBatch],
    path: Path,
    check: BatchCheck,
    footer: Mapping[str, str],
    offset: int = 0,
) -> tuple[dict[str, Any], int, list[pd.DataFrame]]:
    """Stream one table into a Parquet file, checking every batch before it is written; return
    the file's digest, its rows and the failures (after the first failure, batches are still
    checked, so that the report names every bad row, but no longer written). `offset`: the
    table's rows before these, for numbering rows in the report. `footer`: the file's key-value
    metadata (`footer_metadata`); its schema is `published_schema` and its sort order declared.

    A batch is written on a second thread while the next is read and checked: Arrow compresses
    without the GIL, so reading, checking and writing overlap instead of adding up.
    """
    schema, written = arrow_schema(table), published_schema(table)
    failures: list[pd.DataFrame] = []
    rows = 0
    with (
        pq.ParquetWriter(path, written, sorting_columns=_sorting_columns(table, written), **_PARQUET_OPTIONS) as writer,
        ThreadPoolExecutor(1) as pool,
    ):
        writing: Future[None] | None = None
        for raw in batches:
            batch = _conform(raw, schema)
            found = check(table, batch, offset + rows)
            if writing is not None:
                writing.result()  # in order, one at a time; raises what the write raised
                writing = None
            if len(found):
                failures.append(found)
            elif not failures:
                writing = pool.submit(writer.write_batch, _encoded(batch, written))
            rows += batch.num_rows
        if writing is not None:
            writing.result()
        writer.add_key_value_metadata(dict(footer))
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return file_digest(path), rows, failures


@dataclass(frozen=True, slots=True)
class KeptRows:
    """Leading papers rows of a new version that its parent holds as they are: `rows` of them, in
    the parent `parent_id`'s papers file `parent_papers` (whose manifest gives `parent_sha256`,
    checked as it is copied); `tail`
    gives the new version's papers from a row number on, in batches of `group_rows`: only row
    groups of that size are kept, so that a file refreshed often never fills with small ones."""

    parent_id: str
    parent_papers: Path
    parent_sha256: str
    rows: int
    tail: Callable[[int], Iterable[pa.RecordBatch]]
    group_rows: int


@dataclass(frozen=True, slots=True)
class IndexSource:
    """The paper index of a new version: its batches, schema, and footer metadata for the sha256
    of the papers file it describes."""

    batches: Batches
    schema: pa.Schema
    metadata: Callable[[str], dict[bytes, bytes]]


def _footer(path: Path) -> tuple[bytes, int]:
    """A Parquet file's footer and the offset at which it starts (FooterError when there is none)."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size < 12:
            raise FooterError(f"{path.name} is too short for Parquet")
        handle.seek(size - 8)
        tail = handle.read(8)
        length = struct.unpack("<I", tail[:4])[0]
        if tail[4:] != MAGIC or length > size - 12:
            raise FooterError(f"{path.name} has no Parquet footer")
        handle.seek(size - 8 - length)
        return handle.read(length), size - 8 - length


_COPY_BLOCK = 16 << 20


def _copy_range(source: Path, sink: Any, stop: int) -> None:
    """Append the first `stop` bytes of `source` to the open file `sink`: in the kernel (one call
    per GiB, without the GIL) where the file system can, else through a buffer."""
    with source.open("rb") as handle:
        done = 0
        try:
            while done < stop:
                copied = os.copy_file_range(handle.fileno(), sink.fileno(), stop - done, done)
                if not copied:
                    break
                done += copied
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            handle.seek(done)
            while done < stop and (block := handle.read(min(_COPY_BLOCK, stop - done))):
                sink.write(block)
                done += len(block)
    if done != stop:
        raise OSError(errno.EIO, f"{source} ended before byte {stop}")


def _hashed(path: Path, digest: Any, start: int = 0, stop: int | None = None) -> int:
    """Add bytes `start` to `stop` (the end) of a file to `digest`; return how many there were."""
    buffer = bytearray(_COPY_BLOCK)
    view = memoryview(buffer)
    done = 0
    with path.open("rb", buffering=0) as handle:
        handle.seek(start)
        while stop is None or start + done < stop:
            wanted = _COPY_BLOCK if stop is None else min(_COPY_BLOCK, stop - start - done)
            got = handle.readinto(view[:wanted])
            if not got:
                break
            digest.update(view[:got])
            done += got
    return done


def _spliced_file(kept: KeptRows, end: int, tail: Path, tail_stop: int, footer: bytes, path: Path) -> dict[str, Any]:
    """Write `path`: the parent's papers up to `end`, the tail file's row groups, then `footer`;
    return its sha256 and size.

    The copied bytes are hashed as they landed in the new file, and the rest of the parent's
    file after them: VersionDamagedError when that differs from the sha256 its manifest gives
    (the rows copied are then not the ones it published)."""
    closing = footer + struct.pack("<I", len(footer)) + MAGIC
    with path.open("wb") as sink:
        _copy_range(kept.parent_papers, sink, end)
        with tail.open("rb") as handle:
            handle.seek(len(MAGIC))
            sink.write(handle.read(tail_stop - len(MAGIC)))
        sink.write(closing)
        sink.flush()
        os.fsync(sink.fileno())
    prefix = hashlib.sha256()
    _hashed(path, prefix, 0, end)
    parent = prefix.copy()
    _hashed(kept.parent_papers, parent, end)
    if parent.hexdigest() != kept.parent_sha256:
        raise VersionDamagedError(f"{kept.parent_papers} differs from the sha256 in its manifest: damaged or edited")
    written = prefix.copy()
    size = end + _hashed(path, written, end)
    return {"sha256": written.hexdigest(), "bytes": size}


def _kept_groups(layout: Any, rows: int, full: int) -> int:
    """How many leading row groups of the parent's papers to keep: whole ones of `full` rows (a
    short one is written again with the new rows, so that row groups stay full), ending within
    the `rows` that are the parent's."""
    keep = total = 0
    for count in layout.rows:
        if count != full or total + count > rows:
            break
        keep, total = keep + 1, total + count
    return keep


def _check_parent(kept: KeptRows) -> None:
    """VersionDamagedError unless the parent's papers file is there, with its manifest's sha256."""
    try:
        same = file_digest(kept.parent_papers)["sha256"] == kept.parent_sha256
    except OSError:
        same = False
    if not same:
        raise VersionDamagedError(f"{kept.parent_papers} is missing or differs from the sha256 in its manifest")


def _write_spliced_papers(
    kept: KeptRows, path: Path, check: BatchCheck, footer: Mapping[str, str]
) -> tuple[dict[str, Any], int, list[pd.DataFrame]] | None:
    """Papers as the parent's leading row groups, copied byte for byte, then the rest encoded
    (and checked) as usual; None when nothing of the parent's file can be kept.

    Kept rows are not checked again: they were checked when the parent was published, under the
    same contract (the caller makes sure), and are copied as they are."""
    try:
        head, _ = _footer(kept.parent_papers)
        layout = footer_layout(head)
    except (FooterError, OSError):
        _check_parent(kept)  # a parent that cannot be spliced must still be the one published
        return None
    keep = _kept_groups(layout, kept.rows, kept.group_rows)
    if not keep:
        return None
    rows, end = sum(layout.rows[:keep]), layout.ends[keep - 1]
    tail_path = path.with_name(_tmp_name(path.name))
    try:
        _, tail_rows, failures = _write_batches("papers", kept.tail(rows), tail_path, check, footer, offset=rows)
        if failures:
            return {}, rows + tail_rows, failures
        tail, tail_start = _footer(tail_path)
        digest = _spliced_file(kept, end, tail_path, tail_start, spliced_footer(head, keep, tail, end), path)
        written = pq.read_metadata(path)
        groups = keep + pq.read_metadata(tail_path).num_row_groups
        if written.num_rows != rows + tail_rows or written.num_row_groups != groups:
            raise FooterError(f"{path.name} does not hold the rows it was written from")
    except FooterError:
        path.unlink(missing_ok=True)  # written in full instead: slower, never wrong
        return None
    except StoreError:
        path.unlink(missing_ok=True)
        raise
    finally:
        tail_path.unlink(missing_ok=True)
    return digest, rows + tail_rows, []


def _open_index(source: IndexSource, path: Path) -> pq.ParquetWriter:
    """The paper index of a version written into `path` but left open: its footer is to name the
    papers file it describes (`_close_index`), which may still be being written."""
    # Hashes never repeat: a dictionary would be tried on every page, and dropped.
    writer = pq.ParquetWriter(path, source.schema, **_PARQUET_OPTIONS, use_dictionary=False)
    try:
        for batch in source.batches():
            writer.write_batch(_conform(batch, source.schema))
    except BaseException:
        writer.close()
        raise
    return writer


def _close_index(writer: pq.ParquetWriter, metadata: Mapping[bytes, bytes], path: Path) -> None:
    writer.add_key_value_metadata(dict(metadata))
    writer.close()
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def index_path(out_dir: Path, version_id: str) -> Path:
    """Where the paper index of a version is (or would be)."""
    return out_dir / INDEX / f"{version_id}.parquet"


def paper_index(out_dir: Path, version_id: str) -> Path | None:
    """The paper index of a version when there is one (a regular file), for assembly to check."""
    path = index_path(out_dir, version_id)
    return path if path.is_file() and not path.is_symlink() else None


def _place_index(out_dir: Path, written: Path, version_id: str) -> None:
    """Rename a written index into place and drop every other: only latest's is ever read. An
    index that cannot be placed costs the next run time, never data: it is dropped."""
    try:
        written.rename(index_path(out_dir, version_id))
        for other in (out_dir / INDEX).iterdir():
            if other.name != f"{version_id}.parquet" and not other.name.startswith(TMP_PREFIX):
                _remove(other)
    except OSError:
        _remove(written)


def _write_arrow(table: pa.Table, path: Path) -> dict[str, Any]:
    pq.write_table(table, path, **_PARQUET_OPTIONS)
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return file_digest(path)


def _write_text(path: Path, text: str) -> dict[str, Any]:
    path.write_text(text, encoding="utf-8")
    return file_digest(path)


def _write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(dict(manifest), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _move_into_place(tmp: Path, folder: Path) -> None:
    """Rename a finished folder into place; when another run put the same content there first
    (its name is its content's key), keep theirs and drop ours."""
    try:
        tmp.rename(folder)
    except OSError as err:
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        _remove(tmp)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(_tmp_name(path.name))
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError:
        _remove(tmp)
        raise


def _point_latest(out_dir: Path, version_id: str) -> None:
    tmp_link = out_dir / _tmp_name("latest")
    try:
        tmp_link.symlink_to(Path(VERSIONS) / version_id, target_is_directory=True)
    except OSError as err:
        if err.errno not in _NO_SYMLINKS:
            raise
    else:
        try:
            tmp_link.replace(out_dir / LATEST)  # a failure here must not pass for "no symlinks"
        except OSError:
            _remove(tmp_link)
            raise
    _atomic_text(out_dir / POINTER, version_id + "\n")
    _fsync_dir(out_dir)


def _unpoint_latest(out_dir: Path, parent: str | None) -> None:
    """Best-effort return of `latest` to `parent` after a failed publish."""
    with contextlib.suppress(OSError):
        if parent is not None:
            _point_latest(out_dir, parent)
        else:
            _remove(out_dir / LATEST)
            _remove(out_dir / POINTER)


def clean_incomplete(out_dir: Path, only_versions: bool = False) -> list[Path]:
    """Remove what interrupted runs left (temporary folders, links and files) in OUT, or only in
    its versions folder; return them.

    Safe at any time: the work in progress of a run that is still alive is left alone (a
    thread's own temporary entries count as leftovers: call it before making any).
    """
    removed = []
    roots = (
        (out_dir / VERSIONS,)
        if only_versions
        else (out_dir, out_dir / VERSIONS, out_dir / REJECTED, out_dir / STAGED, out_dir / INDEX)
    )
    for root in roots:
        if not root.is_dir() or root.is_symlink():
            continue
        for path in root.iterdir():
            if path.name.startswith(TMP_PREFIX) and not _owner_alive(path.name):
                _remove(path)
                removed.append(path)
    return removed


def remove_legacy_cache(out_dir: Path) -> bool:
    """Delete, unread, the pickle cache of an earlier release (unpickling can run code)."""
    legacy = out_dir / LEGACY_CACHE
    if not legacy.exists() and not legacy.is_symlink():
        return False
    _remove(legacy)
    return True


def write_rejected(out_dir: Path, rejects: Iterable[pa.RecordBatch], manifest: Mapping[str, Any]) -> Path:
    """Write the rejects of a run that was refused, outside any version; return the folder.

    ``OUT/rejected/<fingerprint>/`` holds rejects.parquet, rejects.csv and the run's manifest.
    """
    folder = out_dir / REJECTED / str(manifest["fingerprint"])[:16]
    staging = folder.with_name(_tmp_name(folder.name))
    schema = arrow_schema("rejects")
    try:
        staging.mkdir(parents=True)
        with (
            pq.ParquetWriter(staging / "rejects.parquet", schema, **_PARQUET_OPTIONS) as parquet,
            pa_csv.CSVWriter(staging / "rejects.csv", schema) as csv,
        ):
            for raw in rejects:
                batch = _conform(raw, schema)
                parquet.write_batch(batch)
                csv.write_batch(batch)
        _write_manifest(staging, manifest)
        _move_into_place(staging, folder)  # the same fingerprint: the same rejects
    except OSError as err:
        _remove(staging)
        raise _write_error(staging, err) from None
    return folder


def prune_versions(out_dir: Path, keep: int) -> list[str]:
    """Delete the oldest versions so that `keep` remain; never `latest` nor its parent.

    Call under `writer_lock`. Returns the ids removed.
    """
    if keep < 1:
        raise StoreError("--keep must be at least 1")
    current = latest_id(out_dir)
    protected = {current} if current else set()
    if current:
        parent = read_manifest(version_path(out_dir, current)).get("parent_id")
        if isinstance(parent, str) and VERSION_ID.fullmatch(parent):
            protected.add(parent)
    ids = version_ids(out_dir)
    removable = [v for v in ids if v not in protected]
    excess = max(len(ids) - max(keep, len(protected)), 0)
    removed = removable[:excess]
    for version_id in removed:
        # Rename first so that a reader never sees a half-deleted version under its id.
        doomed = out_dir / VERSIONS / _tmp_name(f"deleting-{version_id}")
        try:
            (out_dir / VERSIONS / version_id).rename(doomed)
        except OSError as err:
            raise _write_error(out_dir / VERSIONS / version_id, err) from None
        _remove(doomed)
    return removed


def publish_version(
    out_dir: Path,
    tables: Mapping[str, Batches],
    manifest: Mapping[str, Any],
    created_at: datetime,
    check: BatchCheck,
    force: bool = False,
    kept: KeptRows | None = None,
    index: IndexSource | None = None,
    gate: Callable[[], None] | None = None,
) -> PublishOutcome:
    """Write `tables` (every table of the contract, each read batch by batch) as a new immutable
    version and point `latest` at it.

    Call under `writer_lock`. Every batch is checked with `check` before it is written; when any
    fails, nothing is published and DatasetInvalidError names every failure. When
    `manifest["fingerprint"]` equals latest's and `force` is false, nothing is written and the
    outcome says so. A failed write (full disk, read-only folder) removes everything it wrote,
    leaves `latest` as it was and raises StoreWriteError.

    `kept`: papers rows the parent holds as they are, whose row groups are copied rather than
    encoded again, when the parent is latest and was published under the same contract.
    `index`: the version's paper index, written to ``OUT/index/<id>.parquet`` once the version is
    in place (replacing the parent's). `gate`: called once every file is written and before
    anything is published; what it raises (checks that ran beside the writing) publishes nothing.
    """
    clean_incomplete(out_dir, only_versions=True)  # the caller's scratch folder, in OUT, is in use
    parent = latest_id(out_dir)
    if not force and parent is not None and fingerprint(out_dir, parent) == manifest.get("fingerprint"):
        return PublishOutcome(parent, out_dir / VERSIONS / parent, False, parent)
    existing = version_ids(out_dir)
    version_id = f"{int(existing[-1]) + 1 if existing else 1:06d}"
    root = out_dir / VERSIONS
    staging = root / _tmp_name(version_id)
    final = root / version_id
    moved = False
    index_written: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        files: dict[str, Any] = {}
        counts: dict[str, int] = {}
        failures: list[pd.DataFrame] = []

        reusable = kept if kept is not None and _may_keep(out_dir, parent, kept) else None

        footers = footer_metadata(version_id)

        def write(name: str) -> tuple[dict[str, Any], int, list[pd.DataFrame]]:
            path = staging / f"{name}.parquet"
            footer = footers[name]
            if name == "papers" and reusable is not None:
                spliced = _write_spliced_papers(reusable, path, check, footer)
                if spliced is not None:
                    return spliced
            return _write_batches(name, tables[name](), path, check, footer)

        # Papers, by far the largest, on a thread of its own beside the other tables and the index
        # (a failure there is raised once that thread is done: the pool's exit waits for it).
        with ThreadPoolExecutor(1) as pool, contextlib.ExitStack() as open_index:
            papers = pool.submit(write, "papers")
            written = {name: write(name) for name in MODELS if name != "papers"}
            index_writer = None
            if index is not None:
                (out_dir / INDEX).mkdir(exist_ok=True)
                index_written = out_dir / INDEX / _tmp_name(version_id)
                index_writer = _open_index(index, index_written)
                open_index.callback(index_writer.close)
            written["papers"] = papers.result()
            for name in MODELS:
                files[f"{name}.parquet"], counts[name], found = written[name]
                failures += found
            if index is not None and index_writer is not None and index_written is not None and not failures:
                open_index.pop_all()  # closed below, with the papers file's sha256 in its footer
                _close_index(index_writer, index.metadata(files["papers.parquet"]["sha256"]), index_written)
        if failures:
            raise DatasetInvalidError(pd.concat(failures, ignore_index=True))
        if gate is not None:
            gate()
        # Spills (if any) inside the version's temporary folder: a crash leaves nothing elsewhere.
        summary = report_data({n: staging / f"{n}.parquet" for n in MODELS}, version_id, parent, scratch=staging)
        files[REPORT_FILE] = _write_text(staging / REPORT_FILE, render_report(summary))
        (staging / CONTRACT).mkdir()
        files[CONTRACT_FILES[0]] = _write_text(staging / CONTRACT_FILES[0], contract_json())
        files[CONTRACT_FILES[1]] = _write_text(staging / CONTRACT_FILES[1], data_dictionary())
        full_manifest = {
            "id": version_id,
            "parent_id": parent,
            "created_at": created_at.isoformat().replace("+00:00", "Z"),
            **manifest,
            "schema_fingerprint": schema_fingerprint(),  # of the contract written beside the tables
            "row_counts": counts,
            "files": files,
        }
        _write_manifest(staging, full_manifest)
        _fsync_dir(staging)
        staging.rename(final)
        moved = True
        _fsync_dir(root)
        _point_latest(out_dir, version_id)
    except (DatasetInvalidError, StoreError):
        _remove(staging)
        if index_written is not None:
            _remove(index_written)
        raise
    except OSError as err:
        if index_written is not None:
            _remove(index_written)
        if moved:
            _unpoint_latest(out_dir, parent)
            doomed = root / _tmp_name(f"deleting-{version_id}")
            with contextlib.suppress(OSError):
                final.rename(doomed)
            _remove(doomed)
        _remove(staging)
        raise _write_error(staging, err) from None
    except Exception:
        # Any other error (a bug) before the version moved: nothing is left behind. An interrupt
        # is left as a crash is, for the next writer to clean up.
        if not moved:
            _remove(staging)
            if index_written is not None:
                _remove(index_written)
        raise
    if index_written is not None:
        _place_index(out_dir, index_written, version_id)
    return PublishOutcome(version_id, final, True, parent)


def _may_keep(out_dir: Path, parent: str | None, kept: KeptRows) -> bool:
    """True when rows of `kept` may be copied: its parent is latest, and was published under the
    contract of this version (so its rows passed today's checks)."""
    if parent is None or kept.parent_id != parent or kept.rows <= 0:
        return False
    try:
        return read_manifest(out_dir / VERSIONS / parent).get("schema_fingerprint") == schema_fingerprint()
    except (StoreError, OSError, ValueError):
        return False


# --- the staged layer ---------------------------------------------------------------------------


def staged_part_name(table: str, index: int) -> str:
    """File name of one part of a staged table (parts are numbered in line order)."""
    return f"{table}-{index:05d}.parquet"


def write_staged_part(folder: Path, index: int, tables: Mapping[str, pa.Table]) -> dict[str, dict[str, Any]]:
    """Write one parsed part of a capture into its staging folder (replacing an earlier write of
    the same part); return each file's sha256 and size."""
    files = {}
    for name in STAGED_TABLES:
        path = folder / staged_part_name(name, index)
        try:
            files[path.name] = _write_arrow(tables[name], path)
        except OSError as err:
            raise _write_error(path, err) from None
    return files


@contextlib.contextmanager
def _temporary_folder(parent: Path, what: str) -> Iterator[Path]:
    """A folder named as temporary (with its owner), removed on the way out unless moved away."""
    tmp = parent / _tmp_name(what)
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise _write_error(tmp, err) from None
    try:
        yield tmp
    finally:
        _remove(tmp)


def staging_folder(staged_dir: Path, key: str) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder for a capture being staged; removed unless `commit_staged` moved it."""
    return _temporary_folder(staged_dir, key)


def commit_staged(folder: Path, staged_dir: Path, key: str, meta: Mapping[str, Any]) -> None:
    """Describe a fully staged capture in ``capture.json`` and rename its folder into place under
    its key (another run that staged the same key first keeps its folder: the same content)."""
    document = {"format": 2, "key": key, **meta}
    try:
        (folder / STAGED_META).write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        _fsync_dir(folder)
        _move_into_place(folder, staged_dir / key)
    except OSError as err:
        raise _write_error(folder, err) from None


def read_staged(staged_dir: Path, key: str) -> dict[str, Any] | None:
    """The description of a staged capture, verified, or None when there is none.

    Verification: the folder is a real one named by the key; ``capture.json`` names the same key,
    its parts and each file's sha256; every part of every staged table is there, a regular file
    equal to its sha256, with the staged schema in its footer. Raises StagedEntryInvalidError,
    naming the first failure, otherwise.
    """
    folder = staged_dir / key
    if not folder.exists() and not folder.is_symlink():
        return None
    if folder.is_symlink() or not folder.is_dir():
        raise StagedEntryInvalidError(f"{folder} is not a folder")
    try:
        meta = json.loads((folder / STAGED_META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise StagedEntryInvalidError(f"{STAGED_META} cannot be read: {str(err)[:200]}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != 2
        or meta.get("key") != key
        or not isinstance(meta.get("files"), dict)
        or not isinstance(meta.get("parts"), int)
        or not isinstance(meta.get("counts"), dict)
        or meta["parts"] < 1
    ):
        raise StagedEntryInvalidError(f"{STAGED_META} does not describe key {key} in this format")
    tables = [name for name in STAGED_TABLES for _ in range(meta["parts"])]
    files = [folder / staged_part_name(name, i) for name in STAGED_TABLES for i in range(meta["parts"])]
    # Hashing releases the GIL: two threads check a large entry in half the time.
    with ThreadPoolExecutor(2) as pool:
        for problem in pool.map(partial(_staged_part_problem, digests=meta["files"]), tables, files):
            if problem:
                raise StagedEntryInvalidError(problem)
    return meta


def _staged_part_problem(table: str, file: Path, digests: Mapping[str, Any]) -> str | None:
    """Why a staged part cannot be used (missing, edited, other columns), or None."""
    try:
        if file.is_symlink() or not file.is_file():
            return f"{file.name} is missing or not a file"
        if file_digest(file) != digests.get(file.name):
            return f"{file.name} differs from the sha256 in {STAGED_META}"
        if not pq.read_schema(file).equals(staged_schema(table)):
            return f"{file.name} does not have the staged columns and types"
    except (OSError, pa.ArrowException) as err:
        return f"{file.name} cannot be read: {str(err)[:200]}"
    return None


def staged_present(staged_dir: Path, key: str) -> bool:
    """True when a staged capture is in place (a folder with its description): a cheap check of
    presence, not of integrity (`read_staged` verifies)."""
    folder = staged_dir / key
    return folder.is_dir() and not folder.is_symlink() and (folder / STAGED_META).is_file()


def discard_staged(staged_dir: Path, key: str) -> None:
    """Remove a staged capture that failed verification, so that a fresh parse can take its place."""
    doomed = staged_dir / _tmp_name(f"discard-{key}")
    try:
        (staged_dir / key).rename(doomed)
    except OSError:
        return  # already gone (another run discarded it), or not ours to move: a parse follows anyway
    _remove(doomed)


def prune_staged(staged_dir: Path, keep: set[str]) -> int:
    """Delete staged captures whose key is not in `keep` (files no longer in the raw folder)."""
    if not staged_dir.is_dir():
        return 0
    stale = [p for p in staged_dir.iterdir() if not p.name.startswith(TMP_PREFIX) and p.name not in keep]
    for path in stale:
        _remove(path)
    return len(stale)


def scratch_folder(out_dir: Path) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder under OUT for a run's working files (the assembly database, what it
    spills), removed at the end; a crashed run's is removed by the next writer."""
    return _temporary_folder(out_dir, "scratch")
