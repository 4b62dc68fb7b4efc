"""A dataset on object storage: its committed versions, and whole verified files copied to and from local folders."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from pipeline.published.layout import INDEX, MANIFEST, POINTER, REJECTED, VERSION_ID, VERSIONS, check_version_id
from pipeline.published.manifest import read_manifest
from pipeline.published.versions import latest_id, version_path
from pipeline.staged.remote import RemoteStaged
from pipeline.storage.lease import Lease
from pipeline.storage.local import atomic_text, file_digest, remove
from pipeline.storage.s3 import S3Location, S3Storage, check_relative, concurrently, parse_location

CACHE_SETTING = "PIPELINE_CACHE_DIR"


def reader_cache() -> Path:
    """Where readers keep verified copies of remote versions (PIPELINE_CACHE_DIR, else
    ~/.cache/paper-listings): a file is downloaded once, and checked against its manifest."""
    configured = os.environ.get(CACHE_SETTING)
    return Path(configured) if configured else Path.home() / ".cache" / "paper-listings"


class RemoteStore:
    """The dataset at an s3:// location, laid out as on disk (``versions/<id>/``, ``LATEST_ID``,
    ``staged/``, ``index/``, ``rejected/``).

    A version exists once its manifest does: the manifest is written last, with create-if-absent,
    by the holder of the writer lock (`pipeline.storage.lease`). ``LATEST_ID`` (the newest
    committed id) stands in for the `latest` symlink; a writer killed before updating it leaves
    it one version behind, never on a partial one, and the next writer sets it right.
    """

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.storage = S3Storage(location)
        self.staged = RemoteStaged(location)

    @property
    def url(self) -> str:
        """The dataset's URL."""
        return self.location.url

    def version_ids(self) -> list[str]:
        """Ids of the committed versions (those with a manifest), oldest first."""
        names = self.storage.tree(VERSIONS)
        return sorted(
            name.split("/")[0] for name in names
            if name.count("/") == 1 and name.endswith(f"/{MANIFEST}") and VERSION_ID.fullmatch(name.split("/")[0])
        )  # fmt: skip

    def latest_id(self) -> str | None:
        """The newest committed version."""
        ids = self.version_ids()
        return ids[-1] if ids else None

    def version_url(self, version_id: str) -> str:
        """The URL of a version's folder."""
        return self.location.child(f"{VERSIONS}/{check_version_id(version_id)}").url

    def pull(self, version_id: str, into: Path, names: Iterable[str] | None = None) -> Path:
        """Version `version_id` as the local folder ``into/versions/<id>``: its manifest and the
        files `names` (every file of its manifest when None), each checked against the manifest's
        sha256 and size. A file already there and whole is not downloaded again."""
        check_version_id(version_id)
        prefix = f"{VERSIONS}/{version_id}"
        if self.storage.size(f"{prefix}/{MANIFEST}") is None:
            self.storage.check_bucket()
            raise StoreError(f"version {version_id} does not exist under {self.url}")
        folder = into / VERSIONS / version_id
        folder.mkdir(parents=True, exist_ok=True)
        self.storage.download(f"{prefix}/{MANIFEST}", folder / MANIFEST)
        files: dict[str, Any] = read_manifest(folder)["files"]
        wanted = files if names is None else {n: files[n] for n in names if n in files}
        self._download_all(prefix, folder, wanted)
        return folder

    def pull_all(self, version_id: str, into: Path) -> Path:
        """Every object of a version's folder, the manifest's and any other (for `validate`)."""
        folder = self.pull(version_id, into)
        extra = {name: None for name in self.storage.tree(f"{VERSIONS}/{version_id}") if name != MANIFEST}
        self._download_all(f"{VERSIONS}/{version_id}", folder, extra)
        return folder

    def _download_all(self, prefix: str, folder: Path, wanted: dict[str, Any]) -> None:
        def fetch(name: str) -> None:
            target = folder / check_relative(name)
            if target.is_file() and wanted[name] is not None and file_digest(target) == wanted[name]:
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            self.storage.download(f"{prefix}/{name}", target)
            if wanted[name] is not None and file_digest(target) != wanted[name]:
                remove(target)
                raise StoreError(f"{self.url}/{prefix}/{name} differs from its manifest's sha256: damaged or edited")

        concurrently(fetch, sorted(wanted))

    def clean_uncommitted(self) -> list[str]:
        """Delete what dead writers left: version folders without a manifest. Call under the
        writer lock only: the lock's holder is the one writer that could be writing there."""
        committed = set(self.version_ids())
        removed = []
        for name in self.storage.list(VERSIONS):
            if name not in committed:
                self.storage.delete(f"{VERSIONS}/{name}")
                removed.append(f"{self.url}/{VERSIONS}/{name}")
        return removed

    def commit(self, folder: Path, version_id: str, lease: Lease) -> None:
        """Publish the finished local version `folder` as `version_id`: every file but the manifest,
        then (while the lease holds) the manifest with create-if-absent, the commit; then LATEST_ID."""
        prefix = f"{VERSIONS}/{check_version_id(version_id)}"
        manifest_key = f"{prefix}/{MANIFEST}"
        if self.storage.size(manifest_key) is not None:
            raise StoreError(f"version {version_id} already exists under {self.url}: nothing was published")
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        concurrently(lambda n: self.storage.upload(folder / n, f"{prefix}/{n}"), [n for n in names if n != MANIFEST])
        lease.check()
        if not self.storage.create_if_absent(manifest_key, (folder / MANIFEST).read_bytes()):
            raise StoreError(f"version {version_id} was committed under {self.url} by another writer: "
                             "nothing was published by this run")  # fmt: skip
        self.storage.write_bytes(POINTER, f"{version_id}\n".encode())

    def pull_index(self, version_id: str, out_dir: Path) -> None:
        """The paper index of a version into ``out_dir/index``, when the store has one."""
        key = f"{INDEX}/{check_version_id(version_id)}.parquet"
        if self.storage.size(key) is not None:
            (out_dir / INDEX).mkdir(parents=True, exist_ok=True)
            self.storage.download(key, out_dir / INDEX / f"{version_id}.parquet")

    def push_index(self, path: Path, version_id: str) -> None:
        """A version's paper index, replacing every other (only latest's is ever read)."""
        self.storage.upload(path, f"{INDEX}/{check_version_id(version_id)}.parquet")
        for name in self.storage.list(INDEX):
            if name != f"{version_id}.parquet":
                self.storage.delete(f"{INDEX}/{name}")

    def push_rejected(self, folder: Path) -> str:
        """A refused run's rejects folder, under ``rejected/<name>/`` (its manifest last); its URL."""
        prefix = f"{REJECTED}/{folder.name}"
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
        for name in sorted(names, key=lambda n: n == MANIFEST):
            self.storage.upload(folder / name, f"{prefix}/{name}")
        return self.location.child(prefix).url

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest versions so that `keep` remain; never latest nor its parent. Each
        loses its manifest first, so that no reader takes a half-deleted version for a whole one."""
        if keep < 1:
            raise StoreError("--keep must be at least 1")
        ids = self.version_ids()
        protected = set(ids[-1:])
        if ids:
            parent = read_manifest(self.cached_version(ids[-1], names=[])).get("parent_id")
            if isinstance(parent, str) and VERSION_ID.fullmatch(parent):
                protected.add(parent)
        removable = [v for v in ids if v not in protected]
        removed = removable[: max(len(ids) - max(keep, len(protected)), 0)]
        for version_id in removed:
            self.storage.delete(f"{VERSIONS}/{version_id}/{MANIFEST}")
            self.storage.delete(f"{VERSIONS}/{version_id}")
        return removed

    def mirror(self, names: Iterable[str] | None = None) -> Path:
        """A local, read-only copy of the dataset for readers, in the reader cache: every committed
        version's manifest and its files `names` (all when None), verified, with LATEST_ID; what
        is no longer committed is dropped from it. Only what changed is downloaded."""
        root = reader_cache() / self._cache_name()
        ids = self.version_ids()
        for version_id in ids:
            self.pull(version_id, root, names)
        if (root / VERSIONS).is_dir():
            for stale in (root / VERSIONS).iterdir():
                if stale.name not in ids:
                    remove(stale)
        if ids:
            root.mkdir(parents=True, exist_ok=True)
            atomic_text(root / POINTER, f"{ids[-1]}\n")
        return root

    def _cache_name(self) -> str:
        return f"{self.location.bucket}/{self.location.prefix}".rstrip("/")

    def cached_version(self, version_id: str, names: Iterable[str] | None = None) -> Path:
        """A verified local copy of a version (or of some of its files), for readers."""
        return self.pull(version_id, reader_cache() / self._cache_name(), names)


@dataclass(frozen=True, slots=True)
class Output:
    """Where a run publishes: `local`, the folder it works in (OUT itself, or for an s3:// OUT
    a temporary working folder of this machine, never shared), and `remote`, the dataset on
    object storage when there is one."""

    local: Path
    remote: RemoteStore | None = None

    @property
    def name(self) -> str:
        """The dataset's folder or URL, for messages."""
        return self.remote.url if self.remote is not None else str(self.local)

    def latest_id(self) -> str | None:
        """The latest version: what `latest` names on disk; on object storage the newest committed."""
        return latest_id(self.local) if self.remote is None else self.remote.latest_id()

    def manifest(self, version_id: str) -> dict[str, Any]:
        """A version's manifest; on object storage first copied (verified) into the working folder."""
        if self.remote is None:
            return read_manifest(version_path(self.local, version_id))
        return read_manifest(self.remote.pull(version_id, self.local, names=[]))


@contextlib.contextmanager
def open_output(out: str | os.PathLike[str] | S3Location) -> Iterator[Output]:
    """The run's `Output` for `out` (a folder, or an s3:// URL); a working folder is removed at the end."""
    location = out if isinstance(out, S3Location) else parse_location(out)
    if isinstance(location, Path):
        yield Output(location)
        return
    with tempfile.TemporaryDirectory(prefix="paper-listings-work-") as work:
        yield Output(Path(work), RemoteStore(location))


def readable(out: Path | S3Location, names: Iterable[str] | None = None) -> Path:
    """A dataset folder to read: `out` itself, or for an s3:// dataset its verified local mirror
    holding the files `names` of every version (all when None)."""
    return out if isinstance(out, Path) else RemoteStore(out).mirror(names)
