"""A version published as one transaction: written out of sight, made visible by `commit` alone, else rolled back."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from pipeline.errors import DatasetInvalidError, StoreError
from pipeline.published.cleanup import clean_incomplete
from pipeline.published.index import IndexSource, close_index, index_path, open_index, place_index
from pipeline.published.layout import CONTRACT, CONTRACT_FILES, INDEX, MANIFEST, VERSIONS
from pipeline.published.manifest import manifest_bytes, read_manifest, version_manifest
from pipeline.published.pointer import point_latest, unpoint_latest
from pipeline.published.remote import RemoteStore
from pipeline.published.splice import KeptRows, write_spliced_papers
from pipeline.published.versions import version_ids
from pipeline.published.writer import BatchCheck, Batches, footer_metadata, write_batches
from pipeline.storage.lease import Lease
from pipeline.storage.local import LocalStorage, bytes_digest, fsync_dir, remove, tmp_name, write_error
from schemas import MODELS
from schemas.contract import contract_json, data_dictionary, schema_fingerprint

# What writing one table returns: the file's digest, its rows and the failures its checks found.
Written = tuple[dict[str, Any], int, list[pd.DataFrame]]


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What a publish did: the version that is now latest, and whether it is new."""

    version_id: str
    path: Path | str  # a local folder, or the URL of a version on object storage
    published: bool
    parent_id: str | None


class VersionTransaction:
    """One new version of the dataset at `out_dir`, whose parent is `parent_id` (latest, read
    under the writer lock by the caller)::

        with VersionTransaction(out_dir, parent_id) as tx:
            tx.write_tables(tables, check, kept=kept, index=index)
            tx.add_file(REPORT_FILE, html)
            outcome = tx.commit(run_manifest, created_at)

    Files are written into a temporary folder of OUT's versions folder, named for its owner so
    that a later run can tell a live writer's work from a dead one's leftovers. `commit` is the
    only step that makes the version visible: the manifest is written last, the folder renamed
    into place (the one atomic step the local disk needs) and `latest` pointed at it. Leaving
    the block by an exception rolls everything back; a failed write (full or read-only disk)
    becomes StoreWriteError. An interrupt is left as a crash is, for the next writer to clean up.
    """

    def __init__(
        self, out_dir: Path, parent_id: str | None, remote: RemoteStore | None = None, lease: Lease | None = None
    ) -> None:
        self.out_dir = out_dir
        self.parent_id = parent_id
        # With `remote`, `out_dir` is this machine's working copy of the remote dataset: the
        # version is committed there first (under `lease`, the remote writer lock), then here.
        self.remote, self.lease = remote, lease
        self.storage = LocalStorage(out_dir)
        existing = version_ids(out_dir)
        self.version_id = f"{int(existing[-1]) + 1 if existing else 1:06d}"
        self.folder = out_dir / VERSIONS / tmp_name(self.version_id)
        self.final = out_dir / VERSIONS / self.version_id
        self._key = f"{VERSIONS}/{self.folder.name}"  # the folder, as the storage names it
        self.files: dict[str, Any] = {}
        self.row_counts: dict[str, int] = {}
        self._index: Path | None = None
        self._moved = False
        self._committed = False

    def __enter__(self) -> VersionTransaction:
        clean_incomplete(self.out_dir, only_versions=True)  # the caller's scratch folder, in OUT, is in use
        try:
            self.folder.mkdir(parents=True)
        except OSError as err:
            raise write_error(self.folder, err) from None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            if not self._committed:
                self._roll_back()
            return
        if isinstance(error, DatasetInvalidError | StoreError):
            self._roll_back()
        elif isinstance(error, OSError):
            self._roll_back()
            raise write_error(self.folder, error) from None
        elif isinstance(error, Exception) and not self._moved:
            self._roll_back()  # a bug: nothing is left behind

    def table_files(self) -> dict[str, Path]:
        """The Parquet file of every table written so far, by table (for the report)."""
        return {name: self.folder / f"{name}.parquet" for name in self.row_counts}

    def write_tables(
        self, tables: Mapping[str, Batches], check: BatchCheck, kept: KeptRows | None = None,
        index: IndexSource | None = None,
    ) -> None:  # fmt: skip
        """Write every table of the contract, each read batch by batch and every batch checked
        with `check` before it is written; DatasetInvalidError naming every failure when any.

        `kept`: papers rows the parent holds as they are, whose row groups are copied rather
        than encoded again (when the parent is latest, under the same contract). `index`: the
        version's paper index, placed in ``OUT/index`` once the version is committed.
        Papers, by far the largest, are written on a thread of their own beside the rest."""
        reusable = kept if kept is not None and may_keep(self.out_dir, self.parent_id, kept) else None
        footers = footer_metadata(self.version_id)

        def write(name: str) -> Written:
            path = self.folder / f"{name}.parquet"
            if name == "papers" and reusable is not None:
                spliced = write_spliced_papers(reusable, path, check, footers[name])
                if spliced is not None:
                    return spliced
            return write_batches(name, tables[name](), path, check, footers[name])

        # A failure on the papers thread is raised once that thread is done: the pool's exit waits.
        with ThreadPoolExecutor(1) as pool, contextlib.ExitStack() as open_writer:
            papers = pool.submit(write, "papers")
            written = {name: write(name) for name in MODELS if name != "papers"}
            index_writer = None
            if index is not None:
                (self.out_dir / INDEX).mkdir(exist_ok=True)
                self._index = self.out_dir / INDEX / tmp_name(self.version_id)
                index_writer = open_index(index, self._index)
                open_writer.callback(index_writer.close)
            written["papers"] = papers.result()
            failures = self._record(written)
            if index is not None and index_writer is not None and self._index is not None and not failures:
                open_writer.pop_all()  # closed here, with the papers file's sha256 in its footer
                close_index(index_writer, index.metadata(self.files["papers.parquet"]["sha256"]), self._index)
        if failures:
            raise DatasetInvalidError(pd.concat(failures, ignore_index=True))

    def _record(self, written: Mapping[str, Written]) -> list[pd.DataFrame]:
        failures: list[pd.DataFrame] = []
        for name in MODELS:
            self.files[f"{name}.parquet"], self.row_counts[name], found = written[name]
            failures += found
        return failures

    def add_file(self, relative: str, text: str) -> None:
        """A file of the version beside its tables (its report, say), listed in its manifest."""
        data = text.encode("utf-8")
        self.storage.write_bytes(f"{self._key}/{relative}", data)
        self.files[relative] = bytes_digest(data)  # of the bytes written, not read back

    def commit(self, run: Mapping[str, Any], created_at: datetime) -> PublishOutcome:
        """Make the version visible: its contract and manifest written last, the folder moved into
        place, `latest` pointed at it; then its paper index placed (replacing the parent's)."""
        (self.folder / CONTRACT).mkdir(exist_ok=True)
        for relative, text in zip(CONTRACT_FILES, (contract_json(), data_dictionary()), strict=True):
            self.add_file(relative, text)
        manifest = version_manifest(run, version_id=self.version_id, parent_id=self.parent_id,
                                    created_at=created_at, row_counts=self.row_counts, files=self.files)  # fmt: skip
        # The manifest last, created only where none is: the version's own commit marker (on
        # object storage, put-if-absent on it is what lets exactly one writer win an id).
        if not self.storage.create_if_absent(f"{self._key}/{MANIFEST}", manifest_bytes(manifest)):
            raise StoreError(f"{self.folder} holds another writer's manifest: nothing was published")
        fsync_dir(self.folder)
        if self.remote is not None and self.lease is not None:
            self.remote.commit(self.folder, self.version_id, self.lease)
        self.storage.rename(self._key, f"{VERSIONS}/{self.version_id}")
        self._moved = True
        point_latest(self.out_dir, self.version_id)
        self._committed = True
        if self._index is not None:
            place_index(self.out_dir, self._index, self.version_id)
            if self.remote is not None and index_path(self.out_dir, self.version_id).is_file():
                with contextlib.suppress(StoreError):  # costs the next run time, never data
                    self.remote.push_index(index_path(self.out_dir, self.version_id), self.version_id)
        if self.remote is not None:
            return PublishOutcome(self.version_id, self.remote.version_url(self.version_id), True, self.parent_id)
        return PublishOutcome(self.version_id, self.final, True, self.parent_id)

    def _roll_back(self) -> None:
        """Remove what the transaction wrote, and when its version was already in place, put
        `latest` back on the parent first."""
        if self._index is not None:
            remove(self._index)
        if self._moved and not self._committed:
            unpoint_latest(self.out_dir, self.parent_id)
            doomed = self.out_dir / VERSIONS / tmp_name(f"deleting-{self.version_id}")
            with contextlib.suppress(OSError):
                self.final.rename(doomed)
            remove(doomed)
        remove(self.folder)


def may_keep(out_dir: Path, parent: str | None, kept: KeptRows) -> bool:
    """True when rows of `kept` may be copied: its parent is latest, and was published under the
    contract of this version (so its rows passed today's checks)."""
    if parent is None or kept.parent_id != parent or kept.rows <= 0:
        return False
    try:
        return read_manifest(out_dir / VERSIONS / parent).get("schema_fingerprint") == schema_fingerprint()
    except (StoreError, OSError, ValueError):
        return False
