"""Delta Lake export: each published version, in order, as one Delta commit per table (optional extra)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.assembled.generations import REPLACED_BY, Part, live_sql
from pipeline.consume.delta_target import DeltaTarget, TablePlace
from pipeline.db import connect, reading
from pipeline.errors import ExportError, StoreError, VersionDamagedError
from pipeline.published import DataFile, Manifest, Store, version_parts
from pipeline.published.layout import DATA, INDEX, REJECTED, STAGED, VERSION_ID, VERSIONS
from pipeline.settings import DEFAULT_LOCK_TIMEOUT_S, METADATA_PREFIX, READER_MEMORY
from pipeline.storage import Location, open_storage
from schemas.tables import MODELS, arrow_schema, plain_schema

if TYPE_CHECKING:
    from deltalake import DeltaTable

INSTALL_HINT = "pip install 'paper-listings[delta]'"
# Commit metadata written with every commit: the project version it holds and where it came from.
VERSION_KEY = f"{METADATA_PREFIX}version_id"
PARENT_KEY = f"{METADATA_PREFIX}parent_id"
CREATED_KEY = f"{METADATA_PREFIX}created_at"
TABLE_KEY = f"{METADATA_PREFIX}table"
SHA256_KEY = f"{METADATA_PREFIX}sha256"  # of the files of the table the commit was made from (`table_digest`)
ROWS_KEY = f"{METADATA_PREFIX}rows"
SCHEMA_KEY = f"{METADATA_PREFIX}schema_fingerprint"
# OUT's own folders: a table inside one would be written into a version, or deleted by a run.
_OUT_FOLDERS = (VERSIONS, DATA, STAGED, INDEX, REJECTED)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export did.

    `exported`: the project versions committed by this run (to at least one table), oldest first;
    `already`: the versions of OUT that every table held before it; `commits`: Delta commits made;
    `shifted`: tables whose newest Delta version is not its project version − 1 (versions pruned
    from OUT before they were exported: the commit metadata still names each one).
    """

    target: str
    tables: tuple[str, ...]
    exported: tuple[str, ...]
    already: tuple[str, ...]
    commits: int
    shifted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Held:
    """The newest project version a Delta table holds, as its commit metadata records it."""

    version_id: str
    sha256: str


def export_delta(
    out: Location,
    target: Location,
    on_progress: Callable[[str], None] | None = None,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> ExportResult:
    """Export every version of the dataset at `out` to Delta tables ``target/<table>`` (a folder,
    or an s3:// prefix written with deltalake's conditional put), adding only the versions that
    each table does not hold yet.

    Each version, oldest first, becomes one commit per table holding that table's rows at that
    version, so that Delta version k−1 is project version k when every version from 000001 was
    still in OUT when it was exported. Where a version only adds rows to the one before it (its
    files are the earlier version's and new ones, no row of which replaces an older one), the
    commit appends those rows alone; otherwise it overwrites the table (Delta has no way to mark
    rows of a file as replaced that deltalake writes). Every commit's metadata names its version
    (`VERSION_KEY`), the version's parent, creation time, and the sha256 of the files it was made
    from; what a table already holds is read from its newest commit that carries that metadata,
    never by counting commits. A table left behind by an interrupted export is completed on its own.

    Each version's files are checked against its manifest's sha256 before any of them is committed:
    a damaged version stops the export (VersionDamagedError) with the versions before it exported.
    ExportError when deltalake is missing, when `target` overlaps OUT's own folders, or when a table
    there is not this dataset's export (no such metadata, a version OUT does not have, or files
    other than OUT's). One export writes to `target` at a time (``target/.lock``, a leased lock
    object on S3): another waits up to `lock_timeout_s` seconds, then
    pipeline.errors.StoreLockedError. `on_progress` gets one line per commit.
    """
    deltalake = _deltalake()
    say = on_progress or (lambda _line: None)
    tables = tuple(MODELS)
    store = Store.open(out)
    place = DeltaTarget.at(open_storage(target))
    place.check_apart_from(store.storage, tables, _OUT_FOLDERS)
    ids = store.version_ids()
    if not ids and not store.storage.list().objects:
        raise ExportError(f"no dataset at {store.url} (pass --out DIR)")  # as `versions` says it
    if not ids:
        raise ExportError(f"no version has been published under {store.url}: nothing to export")

    def waiting(holder: str) -> None:
        say(f"waiting for another export to {place} ({holder})")

    # Two exports creating the same table at once could both commit its first version.
    with place.locked(lock_timeout_s, waiting):
        return _export_under_lock(deltalake, store, place, ids, tables, say)


def table_digest(files: Sequence[DataFile]) -> str:
    """The sha256 of a table's files, as one value: what a Delta commit records it was made from."""
    return hashlib.sha256("\n".join(f.sha256 for f in files).encode()).hexdigest()


def _export_under_lock(
    deltalake: ModuleType,
    store: Store,
    target: DeltaTarget,
    ids: list[str],
    tables: tuple[str, ...],
    say: Callable[[str], None],
) -> ExportResult:
    """`export_delta` once its arguments are checked and the target is locked."""
    handles: dict[str, DeltaTable | None] = {}
    pending: dict[str, list[str]] = {}
    held_by: dict[str, str | None] = {}
    for name in tables:
        handle, held = _opened(deltalake, target.table(name), name)
        if held is not None:
            _check_held(store, ids, target.table(name), name, held)
        handles[name] = handle
        held_by[name] = held.version_id if held is not None else None
        pending[name] = [v for v in ids if held is None or v > held.version_id]
    todo = sorted(set[str]().union(*pending.values()))
    already = tuple(v for v in ids if v not in todo)
    if todo:
        say(f"{target}: {len(todo)} version(s) to export ({todo[0]} to {todo[-1]}), {len(already)} already there")
    shifted: set[str] = set()
    commits = 0
    for version_id in todo:
        manifest = store.manifest(version_id)
        wanted = [name for name in tables if version_id in pending[name]]
        # Types are not compared with today's contract: a version published under an earlier
        # one is exported with its own columns.
        parts = version_parts(store, manifest, wanted, check_types=False)
        for name in wanted:
            metadata = _commit_metadata(name, manifest)
            added = _added_files(store, held_by[name], manifest, name) if handles[name] is not None else None
            rows = parts[name] if added is None else [p for p, f in zip(parts[name], manifest.tables[name], strict=True)
                                                       if f in added]  # fmt: skip
            handle = _committed(deltalake, target.table(name), handles[name], name, rows, metadata, added is not None)
            handles[name] = handle
            held_by[name] = version_id
            commits += 1
            delta_version = handle.version()
            how = f"{len(added)} new file(s) appended" if added is not None else "overwritten"
            say(f"{version_id} {name}: {metadata[ROWS_KEY]} rows ({how}) → Delta version {delta_version}")
            if delta_version != int(version_id) - 1 and name not in shifted:
                shifted.add(name)
                say(
                    f"note: {target.table(name)} holds {version_id} as Delta version {delta_version}, not "
                    f"{int(version_id) - 1}: versions before it were not exported while OUT had them; "
                    f"each commit's {VERSION_KEY} names its version"
                )
    return ExportResult(target.storage.url, tables, tuple(todo), already, commits,
                        tuple(n for n in tables if n in shifted))  # fmt: skip


def _added_files(store: Store, held: str | None, manifest: Manifest, name: str) -> list[DataFile] | None:
    """The files a version adds to the one a Delta table holds, when it only adds rows (its files
    are the held version's and new ones, and its rows are theirs plus all of the new ones'); None
    when it replaces or removes any (or the held version is no longer in the store)."""
    if held is None or held not in store.version_ids():
        return None
    before = store.manifest(held)
    old, now = set(before.tables[name]), manifest.tables[name]
    if not old <= set(now):
        return None
    added = [f for f in now if f not in old]
    if before.row_counts.get(name, -1) + sum(f.rows for f in added) != manifest.row_counts.get(name):
        return None
    return added


def _commit_metadata(table: str, manifest: Manifest) -> dict[str, Any]:
    """The metadata of the commit that holds `table` at the version `manifest` describes."""
    return {
        VERSION_KEY: manifest.id,
        PARENT_KEY: manifest.parent_id,
        CREATED_KEY: manifest.created_at,
        TABLE_KEY: table,
        SHA256_KEY: table_digest(manifest.tables[table]),
        ROWS_KEY: manifest.row_counts[table],
        SCHEMA_KEY: manifest.schema_fingerprint,
    }


def _deltalake() -> ModuleType:
    """The deltalake package, imported here only: the rest of the pipeline never needs it."""
    try:
        import deltalake
    except ImportError:
        raise ExportError(f"the Delta Lake export needs the deltalake package: {INSTALL_HINT}") from None
    return deltalake


def _opened(deltalake: ModuleType, place: TablePlace, name: str) -> tuple[DeltaTable | None, _Held | None]:
    """The Delta table at `place` and the newest version it holds; (None, None) when there is none
    yet. ExportError when `place` holds something else, or a table this export did not write."""
    if not place.exists():
        return None, None
    if not deltalake.DeltaTable.is_deltatable(place.uri, storage_options=place.options):
        foreign = place.foreign()
        if foreign:
            raise ExportError(f"{place} holds files ({foreign[0]}, ...) but no Delta table: refusing to write into it")
        return None, None
    try:
        table = deltalake.DeltaTable(place.uri, storage_options=place.options)
        history = sorted(table.history(), key=lambda commit: int(commit.get("version", -1)), reverse=True)
    except deltalake.exceptions.DeltaError as err:
        raise ExportError(f"{place} cannot be read as a Delta table: {_first_line(err)}") from None
    # The newest commit of ours: maintenance commits after it (OPTIMIZE, VACUUM) change no version.
    ours = next((commit for commit in history if VERSION_KEY in commit), None)
    if ours is None:
        raise ExportError(
            f"{place} is a Delta table that this export did not write (no commit carries {VERSION_KEY}); "
            "export to a new folder"
        )
    version_id, recorded, sha256 = ours.get(VERSION_KEY), ours.get(TABLE_KEY), ours.get(SHA256_KEY)
    if not isinstance(version_id, str) or not VERSION_ID.fullmatch(version_id) or not isinstance(sha256, str):
        raise ExportError(f"{place}: its commit {ours.get('version')} does not record a version id and sha256")
    if recorded != name:
        raise ExportError(f"{place} holds the export of table {recorded!r}, not {name!r}: refusing to mix them")
    return table, _Held(version_id, sha256)


def _check_held(store: Store, ids: Sequence[str], path: TablePlace, name: str, held: _Held) -> None:
    """ExportError unless the version `path` holds is one of this dataset's: no newer than OUT's
    newest, and made from the very files OUT holds when OUT still has that version."""
    if held.version_id > ids[-1]:
        raise ExportError(
            f"{path} holds version {held.version_id}, newer than the newest under {store.url} ({ids[-1]}): "
            "it is the export of another dataset, or the dataset was rebuilt; export to a new folder"
        )
    if held.version_id not in ids:
        return  # pruned from OUT since it was exported: nothing left to compare it with
    files = store.manifest(held.version_id).tables[name]
    # An export made before tables were lists of files recorded its one file's sha256.
    if held.sha256 not in (table_digest(files), *(f.sha256 for f in files if len(files) == 1)):
        raise ExportError(
            f"{path} holds a version {held.version_id} made from other files than {store.url}'s "
            "(their sha256 differs): it is the export of another dataset; export to a new folder"
        )


def _committed(
    deltalake: ModuleType, place: TablePlace, table: DeltaTable | None, name: str, parts: Sequence[Part],
    metadata: Mapping[str, Any], append: bool,
) -> DeltaTable:  # fmt: skip
    """Commit the rows of `parts` (the table `name` at a version) to the Delta table at `place`:
    as its whole content (created when `table` is None), or appended to it; return the table, at
    its new version."""
    failures: list[BaseException] = []
    schema = plain_schema(pq.read_schema(parts[0].path)) if parts else arrow_schema(name)
    reader = pa.RecordBatchReader.from_batches(schema, _checked_batches(name, parts, schema, failures))
    created: dict[str, Any] = {}
    if table is None:
        created = {"name": metadata[TABLE_KEY], "description": _description(metadata),
                   "storage_options": place.options}  # fmt: skip
    try:
        deltalake.write_deltalake(
            table if table is not None else place.uri,
            reader,
            mode="append" if append else "overwrite",
            schema_mode=None if append else "overwrite",  # a version under another contract has other columns
            commit_properties=deltalake.CommitProperties(custom_metadata=dict(metadata)),
            **created,
        )
    except (deltalake.exceptions.DeltaError, OSError, pa.ArrowException) as err:
        # deltalake turns what the reader raised (damage, Ctrl-C) into its own error: raise the cause.
        if failures:
            raise failures[0] from None
        raise ExportError(f"cannot write {place}: {_first_line(err)}") from None
    return table if table is not None else deltalake.DeltaTable(place.uri, storage_options=place.options)


def _checked_batches(
    name: str, parts: Sequence[Part], schema: pa.Schema, failures: list[BaseException]
) -> Iterator[pa.RecordBatch]:
    """The table's rows from `parts` (the newest generation of each key), in `schema`; what stops
    the reading is kept in `failures` (deltalake would report it only as text)."""
    if not parts:
        return
    sql = live_sql(parts, REPLACED_BY[name], union_by_name=True)
    try:
        with reading(), connect(memory_limit=READER_MEMORY, threads=1) as con:
            for batch in con.sql(sql).to_arrow_reader(16_384):
                yield pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (StoreError, OSError, pa.ArrowException, ValueError) as err:
        failures.append(VersionDamagedError(f"{name} cannot be read: {str(err)[:300]}"))
        raise
    except BaseException as err:
        failures.append(err)
        raise


def _description(metadata: Mapping[str, Any]) -> str:
    return (
        f"paper-listings table {metadata[TABLE_KEY]}: one overwrite commit per published version, "
        f"named by the commit metadata {VERSION_KEY}"
    )


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
