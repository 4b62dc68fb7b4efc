"""A version published as one transaction: files written unlisted, made visible by `commit` alone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.assembled.generations import Part
from pipeline.errors import StoreError
from pipeline.published.layout import (
    CONTRACT_FILES,
    OWN_FILES,
    file_key,
    manifest_key,
    version_key,
)
from pipeline.published.manifest import DataFile, manifest_bytes, parse_manifest, version_manifest
from pipeline.published.store import PublishOutcome, Store
from pipeline.published.writer import BatchCheck, TableSpec, write_generation
from pipeline.storage import Lease
from pipeline.storage.files import bytes_digest, write_error
from schemas.contract import contract_json, data_dictionary, schema_fingerprint
from schemas.tables import MODELS


class VersionTransaction:
    """One new version of `store`, the child of `parent` (latest, read under the writer lock)::

        with store.lock(timeout) as lease, VersionTransaction(store, parent, lease) as tx:
            files, rows, failures = tx.write(spec, batches, check)
            tx.set_table(spec, parent_files + files, live_rows)
            tx.add_file(REPORT_FILE, html)
            outcome = tx.commit(run_manifest, created_at)

    Files are written into a workspace, then stored under names no manifest lists until the
    commit: a reader never sees them, and a writer that dies leaves only files that retention
    collects. `commit` is the only step that makes the version visible: the version's own files
    first, its manifest last, created only if absent, while the writer's lease still holds; then
    the pointers. Leaving the block by an exception (or without a commit) deletes what it stored.
    """

    def __init__(self, store: Store, parent_id: str | None, lease: Lease) -> None:
        self.store = store
        self.parent_id = parent_id
        self.lease = lease
        existing = store.version_ids()
        self.version_id = f"{int(existing[-1]) + 1 if existing else 1:06d}"
        self.generation = int(self.version_id)
        self.tables: dict[str, tuple[DataFile, ...]] = {}
        self.index: dict[str, tuple[DataFile, ...]] = {}
        self.row_counts: dict[str, int] = {}
        self.index_rows: dict[str, int] = {}
        self.index_recipe: str | None = None
        self.own: dict[str, Any] = {}
        self._stored: list[str] = []
        self._local: dict[str, Path] = {}
        self._workspace: contextlib.ExitStack | None = None
        self.folder: Path | None = None
        self._committed = False

    def __enter__(self) -> VersionTransaction:
        self._workspace = contextlib.ExitStack()
        self.folder = self._workspace.enter_context(self.store.storage.workspace())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if not self._committed and (error is None or isinstance(error, Exception)):
                self._roll_back()  # an interrupt is left as a crash is, for the next writer to clean up
        finally:
            if self._workspace is not None:
                self._workspace.close()
        if isinstance(error, OSError) and not isinstance(error, StoreError):
            raise write_error(self.store.storage.url, error) from None  # a full or read-only disk: one line

    # --- files ----------------------------------------------------------------------------------------

    def write(
        self,
        spec: TableSpec,
        batches: Iterable[pa.RecordBatch],
        check: BatchCheck,
        *,
        generation: int | None = None,
        first_part: int = 0,
        offset: int = 0,
        empty_file: bool = False,
        share: Sequence[DataFile] = (),
    ) -> tuple[list[DataFile], int, list[pd.DataFrame]]:
        """Write rows of one table as files of `generation` (this version's by default) and store
        them; return the files, the rows and what the checks found (nothing stored then). When
        they come out byte for byte as the files `share` (a table written whole that did not
        change), those are returned instead, and nothing is stored."""
        assert self.folder is not None, "use the transaction in a with block"
        written, rows, failures = write_generation(spec, batches, self.folder, check, first_part=first_part,
                                                   offset=offset, empty_file=empty_file)  # fmt: skip
        if failures:
            return [], rows, failures
        if share and [w.sha256 for w in written] == [f.sha256 for f in share]:
            return list(share), rows, []
        gen = self.generation if generation is None else generation
        files = []
        for done in written:
            key = file_key(spec.area, spec.name, gen, done.part, done.sha256)
            self._stored.append(key)
            self.store.storage.put_file(key, done.path)
            if done.path.is_file():  # still here (uploaded, not moved): read from here
                self._local[key] = done.path
            files.append(DataFile(key, done.sha256, done.bytes, done.rows, gen))
        return files, rows, []

    def parts(self, files: Sequence[DataFile]) -> list[Part]:
        """Files of this version (written by it, or shared with older ones) as local parts."""
        return [Part(self._local[f.key], f.generation) if f.key in self._local else self.store.parts([f])[0]
                for f in files]  # fmt: skip

    def set_table(self, spec: TableSpec, files: Sequence[DataFile], rows: int) -> None:
        """The files of a table (or an index) in this version, in generation order, and its rows."""
        listed = tuple(sorted(files, key=lambda f: f.key))
        if spec.area == "index":
            self.index[spec.name] = listed
        else:
            self.tables[spec.name] = listed
            self.row_counts[spec.name] = rows

    def add_file(self, relative: str, text: str) -> None:
        """A file of the version beside its tables (its report), listed in its manifest."""
        if relative not in OWN_FILES:
            raise ValueError(f"{relative!r} is not a file of a version")
        data = text.encode("utf-8")
        key = version_key(self.version_id, relative)
        self._stored.append(key)
        self.store.storage.put(key, data)
        self.own[relative] = bytes_digest(data)

    # --- the commit -------------------------------------------------------------------------------------

    def commit(self, run: Mapping[str, Any], created_at: datetime) -> PublishOutcome:
        """Make the version visible: its contract, then its manifest (the commit: created only
        where none is), then LATEST_ID and `latest`."""
        for relative, text in zip(CONTRACT_FILES, (contract_json(), data_dictionary()), strict=True):
            self.add_file(relative, text)
        order = {name: number for number, name in enumerate(MODELS)}
        tables = dict(sorted(self.tables.items(), key=lambda item: order.get(item[0], len(order))))
        row_counts = {name: self.row_counts[name] for name in tables if name in self.row_counts}
        document = version_manifest(
            run, version_id=self.version_id, parent_id=self.parent_id, created_at=created_at,
            schema_fingerprint=schema_fingerprint(), row_counts=row_counts, tables=tables,
            index=self.index, index_rows=self.index_rows, index_recipe=self.index_recipe, own=self.own,
        )  # fmt: skip
        data = manifest_bytes(document)
        parse_manifest(data, self.version_id)  # what readers will check, checked before anyone can read it
        self.lease.check()
        if not self.store.storage.put_if_absent(manifest_key(self.version_id), data):
            raise StoreError(f"version {self.version_id} was committed under {self.store.url} by another writer: "
                             "nothing was published by this run")  # fmt: skip
        self._committed = True
        self.store.point_latest(self.version_id)
        # Uploaded, not moved: kept in this machine's readers' cache, so that its next refresh (and
        # its readers) find them without downloading them again.
        for files in (*self.tables.values(), *self.index.values()):
            for file in files:
                if file.key in self._local:
                    self.store.keep_in_cache(self._local.pop(file.key), file.sha256)
        return PublishOutcome(self.version_id, self.store.version_url(self.version_id), True, self.parent_id)

    def _roll_back(self) -> None:
        """Delete what this transaction stored, but what another writer's manifest of the same id
        lists (a writer that lost its lease may find its id taken)."""
        with contextlib.suppress(StoreError, OSError):
            theirs = self.store.storage.get(manifest_key(self.version_id))
            keep: set[str] = set()
            if theirs is not None:
                listed = parse_manifest(theirs, self.version_id)
                keep = {f.key for f in listed.data_files()} | {version_key(self.version_id, n) for n in listed.own}
            self.store.storage.delete([k for k in self._stored if k not in keep])
