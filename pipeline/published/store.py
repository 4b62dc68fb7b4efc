"""The versioned store over one storage: versions and latest, verified reads, the lock, the readers' cache."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.assembled.generations import Part
from pipeline.errors import StoreError, VersionDamagedError
from pipeline.published.layout import (
    LATEST,
    LOCK,
    MANIFEST,
    POINTER,
    STAGED,
    VERSION_ID,
    VERSIONS,
    check_version_id,
    manifest_key,
    version_key,
    version_of_key,
)
from pipeline.published.manifest import DataFile, Manifest, parse_manifest
from pipeline.settings import cache_dir
from pipeline.storage import Lease, Location, Storage, open_storage
from pipeline.storage.verified import DigestMismatchError, cache_path, verified_copy


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What a publish did: the version that is now latest, and whether it is new."""

    version_id: str
    path: str  # the version's folder, as a path or URL
    published: bool
    parent_id: str | None


class Store:
    """The dataset at one place (a folder or an ``s3://`` prefix), over its `Storage`.

    Every rule of the store is here, once, whatever the storage: a version exists once its
    manifest does (`versions/<id>/manifest.json`, created only if absent, under the writer lock);
    the newest manifest is latest (``LATEST_ID`` and, where the storage has links, ``latest``
    follow it, advisory); a file a manifest lists is read only once its sha256 is checked, and on
    storage that is not a local disk through the readers' cache, where each file is downloaded
    once, by its sha256, whatever the number of versions that list it.
    """

    def __init__(self, storage: Storage, cache: Path | None = None) -> None:
        self.storage = storage
        # A cache of this store's own: a copy is never read in place of a store's file of the same
        # sha256 elsewhere (a local file damaged is refused, not served from another's copy).
        root = cache if cache is not None else cache_dir()
        self.cache = root / "stores" / hashlib.sha256(storage.uri().encode()).hexdigest()[:16]
        self._manifests: dict[str, Manifest] = {}
        self._verified: dict[tuple[str, str], Path] = {}

    @classmethod
    def open(cls, location: Location | Storage | Store) -> Store:
        """The store at `location`: a folder, an ``s3://bucket/prefix`` URL, or a Storage."""
        if isinstance(location, Store):
            return location
        return cls(open_storage(location))

    @property
    def url(self) -> str:
        """The dataset's folder or URL, for messages."""
        return self.storage.url

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def staged(self) -> Storage:
        """The staged layer (parsed captures, by content key)."""
        return self.storage.child(STAGED)

    # --- versions --------------------------------------------------------------------------------------

    def version_ids(self) -> list[str]:
        """Ids of the committed versions (those with a manifest), oldest first."""
        found = set()
        for obj in self.storage.list(VERSIONS).objects:
            parts = obj.key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST and VERSION_ID.fullmatch(parts[1]):
                found.add(parts[1])
        return sorted(found)

    def latest_id(self) -> str | None:
        """The newest committed version (what ``LATEST_ID`` and ``latest`` point at, or will)."""
        ids = self.version_ids()
        return ids[-1] if ids else None

    def resolve(self, version: str | None) -> str:
        """The id `version` names: an id in its exact shape, or None / "latest" for the newest;
        StoreError when there is no such version."""
        if version in (None, "latest"):
            chosen = self.latest_id()
            if chosen is None:
                raise StoreError(f"no version has been published under {self.url}")
            return chosen
        assert version is not None
        check_version_id(version)
        if self.storage.head(manifest_key(version)) is None:
            raise StoreError(f"version {version} does not exist under {self.url}")
        return version

    def manifest(self, version_id: str) -> Manifest:
        """A version's manifest, checked (VersionDamagedError when damaged; StoreError when missing)."""
        check_version_id(version_id)
        if version_id not in self._manifests:
            data = self.storage.get(manifest_key(version_id))
            if data is None:
                raise StoreError(f"version {version_id} does not exist under {self.url}")
            self._manifests[version_id] = parse_manifest(data, version_id)
        return self._manifests[version_id]

    def version_url(self, version_id: str) -> str:
        """The folder (or URL) of a version."""
        return self.storage.where(version_key(version_id))

    # --- verified reads --------------------------------------------------------------------------------

    def local_file(self, file: DataFile) -> Path:
        """A local copy of a file a manifest lists, checked against its sha256 and size first:
        on disk the file itself; otherwise a download into the readers' cache, by sha256, made
        once and checked again on every use. VersionDamagedError when it is missing or differs."""
        return self.local_object(file.key, file.sha256, file.bytes)

    def local_object(self, key: str, sha256: str, size: int) -> Path:
        """`local_file` of any object a manifest names by its key, sha256 and size (checked once
        per Store object: a file that several versions share is read once)."""
        if (key, sha256) in self._verified:
            return self._verified[key, sha256]
        try:
            found = verified_copy(self.storage, key, sha256, size, self.cache)
            self._verified[key, sha256] = found
            return found
        except FileNotFoundError:
            raise VersionDamagedError(f"{self.storage.where(key)} is missing") from None
        except DigestMismatchError:
            raise VersionDamagedError(f"{self.storage.where(key)} differs from the sha256 in its manifest: "
                                      "damaged or edited") from None  # fmt: skip
        except OSError as err:
            raise VersionDamagedError(f"{self.storage.where(key)} cannot be read: {err.strerror or err}") from None

    def check_stored(self, files: Sequence[DataFile]) -> None:
        """VersionDamagedError unless each of `files` is stored with the size its manifest lists:
        what a refresh checks of the files it shares without reading them (one listing per
        folder). Their bytes are checked against their sha256 by whoever reads them."""
        sizes: dict[str, int] = {}
        for folder in sorted({f.key.rsplit("/", 1)[0] for f in files}):
            sizes.update((o.key, o.size) for o in self.storage.list(folder).objects)
        for file in files:
            size = sizes.get(file.key)
            if size is None:
                raise VersionDamagedError(f"{self.storage.where(file.key)} is missing")
            if size != file.bytes:
                where = self.storage.where(file.key)
                raise VersionDamagedError(f"{where} differs from the sha256 in its manifest: {size} bytes, "
                                          f"not the {file.bytes} it lists; damaged or edited")  # fmt: skip

    def keep_in_cache(self, path: Path, sha256: str) -> None:
        """Keep a local file just written (and uploaded) in the readers' cache, so that the next
        run on this machine does not download it; a file no longer there (moved into a local
        store) is left alone."""
        if not path.is_file():
            return
        cached = cache_path(self.cache, sha256)
        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True)
            Path(path).replace(cached)

    def parts(self, files: Sequence[DataFile]) -> list[Part]:
        """The files of a table as verified local parts, in generation order."""
        return [Part(self.local_file(f), f.generation) for f in files]

    def own_file(self, version_id: str, name: str) -> bytes:
        """One of a version's own files (its contract, its report), checked against its manifest."""
        listed = self.manifest(version_id).own.get(name)
        if listed is None:
            raise VersionDamagedError(f"version {version_id} lists no {name}")
        return self.local_object(version_key(version_id, name), listed["sha256"], listed["bytes"]).read_bytes()

    # --- writing ----------------------------------------------------------------------------------------

    def check_usable(self) -> None:
        """StoreError, in one line, unless the store can be written (and is of the right shape)."""
        self.storage.check_usable()

    @contextlib.contextmanager
    def lock(self, timeout_s: float, on_wait: Callable[[str], None] | None = None) -> Iterator[Lease]:
        """Hold the writer lock: one writer at a time, wherever the writers run."""
        with self.storage.lock(LOCK, timeout_s, on_wait) as lease:
            yield lease

    def point_latest(self, version_id: str) -> None:
        """Point ``LATEST_ID`` (and ``latest``, where the storage has links) at a committed version."""
        self.storage.put(POINTER, f"{version_id}\n".encode())
        self.storage.alias(LATEST, version_key(version_id))

    def clean_uncommitted(self) -> list[str]:
        """Remove what writers that died left: their unfinished writes, and the folders of versions
        newer than the newest manifest (a writer's that never committed). Call under the writer
        lock only: the lock's holder is the one writer that could be writing there. (Their table
        files, and what pruned versions leave, are `pipeline.published.retention`'s.)"""
        removed = self.storage.cleanup()
        latest = self.latest_id() or ""
        doomed = [o.key for o in self.storage.list(VERSIONS).objects
                  if (v := version_of_key(o.key)) is not None and v > latest]  # fmt: skip
        if doomed:
            self.storage.delete(doomed)
            removed += sorted({self.storage.where(version_key(v)) for k in doomed if (v := version_of_key(k))})
        return removed

    def forget(self, version_id: str) -> None:
        """Drop a manifest from this object's memory (after it was deleted)."""
        self._manifests.pop(version_id, None)
