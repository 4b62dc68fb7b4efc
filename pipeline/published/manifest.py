"""The manifest of a version: its shape (layouts 1 and 2) read into one model, every key checked, and written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.assembled.generations import REPLACED_BY
from pipeline.errors import VersionDamagedError
from pipeline.published.layout import (
    DATA,
    INDEX,
    LAYOUT,
    LAYOUT1_FILES,
    OWN_FILES,
    check_file_key,
    version_key,
)
from schemas.tables import MODELS

MAX_MANIFEST_BYTES = 64 << 20
_SHA256_HEX = frozenset("0123456789abcdef")

# What readers of a manifest rely on: each key present (or optional) with its JSON type.
_MANIFEST_SHAPE: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "created_at": (str, True),
    "row_counts": (dict, True),
    "files": (dict, True),
    "layout": (int, False),
    "tables": (dict, False),
    "index": (dict, False),
    "index_recipe": (str, False),
    "parent_id": (str, False),
    "fingerprint": (str, False),
    "schema_fingerprint": (str, False),
    "inputs": (list, False),
    "skipped_inputs": (list, False),
    "records": (int, False),
    "rejects": (int, False),
}


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file of a table: its key in the store, sha256, size, rows and generation."""

    key: str
    sha256: str
    bytes: int
    rows: int
    generation: int

    def to_json(self) -> dict[str, Any]:
        """The file as its manifest lists it."""
        return {"path": self.key, "sha256": self.sha256, "bytes": self.bytes, "rows": self.rows,
                "generation": self.generation}  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    """A version as its manifest describes it, whatever the layout that wrote it: each table a
    list of files (`tables`, in generation order), the indexes a refresh reads (`index`, empty
    for layout 1), and the version's own files (contract, report) by their name in its folder."""

    id: str
    layout: int
    tables: dict[str, tuple[DataFile, ...]]
    index: dict[str, tuple[DataFile, ...]]
    own: dict[str, dict[str, Any]]
    document: dict[str, Any]

    @property
    def parent_id(self) -> str | None:
        value = self.document.get("parent_id")
        return value if isinstance(value, str) else None

    @property
    def created_at(self) -> str:
        return str(self.document["created_at"])

    @property
    def row_counts(self) -> dict[str, int]:
        return dict(self.document["row_counts"])

    @property
    def fingerprint(self) -> str | None:
        value = self.document.get("fingerprint")
        return str(value) if value is not None else None

    @property
    def schema_fingerprint(self) -> str | None:
        value = self.document.get("schema_fingerprint")
        return str(value) if value is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        """A key of the manifest's JSON document."""
        return self.document.get(key, default)

    @property
    def index_counts(self) -> dict[str, int]:
        """The rows that count of each index (layout 2)."""
        listed = self.document.get("index") or {}
        return {name: int(entry.get("rows", 0)) for name, entry in listed.items() if isinstance(entry, dict)}

    @property
    def index_recipe(self) -> str | None:
        value = self.document.get("index_recipe")
        return value if isinstance(value, str) else None

    def data_files(self) -> list[DataFile]:
        """Every table and index file the version lists."""
        return [f for files in (*self.tables.values(), *self.index.values()) for f in files]


def manifest_problems(document: Mapping[str, Any]) -> list[str]:
    """What is missing from a manifest or of the wrong type (empty when its shape is right)."""
    problems = []
    for key, (kind, required) in _MANIFEST_SHAPE.items():
        value = document.get(key)
        if value is None:
            if required:
                problems.append(f"{key!r} is missing")
        elif not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"{key!r} is not a JSON {kind.__name__}")
    counts = document.get("row_counts")
    if isinstance(counts, dict) and not all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values()):
        problems.append("'row_counts' holds a value that is not a whole number")
    files = document.get("files")
    layout = document.get("layout", 1)
    if layout not in (1, LAYOUT):
        problems.append(f"'layout' {str(layout)[:10]} is not one this code reads (1 or {LAYOUT})")
    if isinstance(files, dict):
        allowed = LAYOUT1_FILES if layout == 1 else OWN_FILES
        unknown = sorted(set(files) - allowed)
        if unknown:
            problems.append(f"'files' names what is no part of a version: {unknown[0][:80]!r}")
        if not all(_digest_shape(f) for f in files.values()):
            problems.append("'files' holds an entry without a sha256 and size")
    return problems


def _digest_shape(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and len(entry["sha256"]) == 64
        and set(entry["sha256"]) <= _SHA256_HEX
        and isinstance(entry.get("bytes"), int)
        and not isinstance(entry.get("bytes"), bool)
    )


def _listed_files(area: str, name: str, listed: object) -> tuple[DataFile, ...]:
    """The files of one table as a layout-2 manifest lists them; VersionDamagedError when the list
    is not of its shape (a key elsewhere than the table's own files, no sha256, out of order)."""
    if not isinstance(listed, dict) or not isinstance(listed.get("files"), list):
        raise VersionDamagedError(f"{area} {name!r} does not list its files")
    files = []
    for entry in listed["files"]:
        if not _digest_shape(entry) or not isinstance(entry.get("path"), str):
            raise VersionDamagedError(f"{area} {name!r} lists a file without a path, sha256 and size")
        rows, generation = entry.get("rows"), entry.get("generation")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise VersionDamagedError(f"{area} {name!r} lists a file without its rows")
        try:
            named = check_file_key(entry["path"], area, name)
        except Exception as err:
            raise VersionDamagedError(str(err)) from None
        if generation != named:
            raise VersionDamagedError(f"{entry['path'][:120]!r}: its generation is not the one its name gives")
        if entry["path"].rpartition("-")[2] != f"{entry['sha256']}.parquet":
            raise VersionDamagedError(f"{entry['path'][:120]!r}: its name is not its sha256")
        files.append(DataFile(entry["path"], entry["sha256"], entry["bytes"], rows, generation))
    if not files:
        raise VersionDamagedError(f"{area} {name!r} lists no file")
    if [f.key for f in files] != sorted(f.key for f in files):
        raise VersionDamagedError(f"{area} {name!r} lists its files out of generation order")
    return tuple(files)


def parse_manifest(data: bytes, version_id: str | None, folder: str | None = None) -> Manifest:
    """The manifest of version `version_id` from its bytes; VersionDamagedError when it is not
    readable JSON of a manifest's shape, or names another version, or lists a file that is none
    of its tables' (never a path outside the store). `version_id` None: a version handed over in
    a folder of any name. `folder`: where a layout-1 version's files are (its own folder in the
    store by default)."""
    where = f"the manifest of version {version_id}" if version_id else "the manifest"
    if len(data) > MAX_MANIFEST_BYTES:
        raise VersionDamagedError(f"{where} has more than {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise VersionDamagedError(f"{where} cannot be read: {str(err)[:200]}") from None
    if not isinstance(document, dict):
        raise VersionDamagedError(f"{where} is not a JSON object")
    problems = manifest_problems(document)
    if version_id is not None and document.get("id") != version_id:
        problems.append(f"its id {str(document.get('id'))[:20]!r} is not its folder's name {version_id!r}")
    if problems:
        raise VersionDamagedError(f"{where}: {'; '.join(problems)}")
    layout = int(document.get("layout", 1))
    files = document["files"]
    version_id = str(document["id"])
    own = {name: entry for name, entry in files.items() if name in OWN_FILES}
    if layout == 1:
        counts = document["row_counts"]
        tables: dict[str, tuple[DataFile, ...]] = {}
        for name in MODELS:
            entry = files.get(f"{name}.parquet")
            if not isinstance(entry, dict) or not isinstance(counts.get(name), int):
                raise VersionDamagedError(f"{where}: table {name!r} has no sha256 or row count")
            base = version_key(version_id) if folder is None else folder
            key = f"{base}/{name}.parquet" if base else f"{name}.parquet"
            generation = int(version_id) if version_id.isdigit() else 1
            tables[name] = (DataFile(key, entry["sha256"], entry["bytes"], counts[name], generation),)
        return Manifest(version_id, 1, tables, {}, own, document)
    listed, hidden = document.get("tables") or {}, document.get("index") or {}
    missing = [name for name in MODELS if name not in listed]
    if missing or set(listed) - set(MODELS):
        raise VersionDamagedError(f"{where}: its tables are not the contract's ({', '.join(missing) or 'extra'})")
    if set(hidden) - set(REPLACED_BY):
        raise VersionDamagedError(f"{where}: it lists an index this code does not know")
    tables = {name: _listed_files(DATA, name, listed[name]) for name in MODELS}
    index = {name: _listed_files(INDEX, name, hidden[name]) for name in sorted(hidden)}
    return Manifest(version_id, layout, tables, index, own, document)


def version_manifest(
    run: Mapping[str, Any],
    *,
    version_id: str,
    parent_id: str | None,
    created_at: datetime,
    schema_fingerprint: str,
    row_counts: Mapping[str, int],
    tables: Mapping[str, tuple[DataFile, ...]],
    index: Mapping[str, tuple[DataFile, ...]],
    index_rows: Mapping[str, int],
    index_recipe: str | None,
    own: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest of a new version, the one place it is put together: its id, parent and time,
    then what the run says of its inputs and code (`run`), the fingerprint of the contract written
    beside the tables, its tables' row counts and every file with its sha256, size and rows."""

    def listed(files: Mapping[str, tuple[DataFile, ...]], rows: Mapping[str, int]) -> dict[str, Any]:
        return {name: {"key": list(REPLACED_BY[name]), "rows": rows[name], "files": [f.to_json() for f in found]}
                for name, found in files.items()}  # fmt: skip

    return {
        "layout": LAYOUT,
        "id": version_id,
        "parent_id": parent_id,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        **run,
        "schema_fingerprint": schema_fingerprint,
        "row_counts": dict(row_counts),
        "tables": listed(tables, row_counts),
        "index": listed(index, index_rows),
        "index_recipe": index_recipe,
        "files": dict(own),
    }


def manifest_bytes(document: Mapping[str, Any]) -> bytes:
    """A manifest as its file holds it: indented JSON, UTF-8."""
    return (json.dumps(dict(document), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
