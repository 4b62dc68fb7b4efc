"""The one storage interface every layer above reads and writes through; local disk and S3 implement it."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import StoreError

# One segment of a key: printable, never "." or "..", which a file system (or a copy of an
# object store on one) would read as a step up.
_SEGMENT = re.compile(r"[^\x00-\x1f\x7f/\\]+")


def check_key(key: str) -> str:
    """`key` when it is a plain relative name ('/'-separated segments, none of them empty, '.' or
    '..'); else StoreError: it could escape the storage's root."""
    if key and not all(_SEGMENT.fullmatch(s) and s not in {".", ".."} for s in key.split("/")):
        raise StoreError(f"{key[:80]!r} is not a plain relative name: refusing a key that could escape its root")
    return key


def join_key(*parts: str) -> str:
    """Keys joined with '/', empty parts left out."""
    return "/".join(part.strip("/") for part in parts if part.strip("/"))


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object, as a listing gives it.

    `tag` names the object's content as the backend knows it without reading it: the ETag on
    object storage; on disk the inode, size and change times (which no ordinary write leaves
    alone), so that an unchanged tag means unchanged bytes."""

    key: str
    size: int
    modified: datetime  # UTC
    tag: str


@dataclass(frozen=True, slots=True)
class Listing:
    """What a listing found: the objects, and what it passed over with the reason (a link that
    leads outside the root, a FIFO, a name that cannot be a key)."""

    objects: list[ObjectInfo]
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Lease(Protocol):
    """A held writer lock."""

    def check(self) -> None:
        """StoreLockedError when the lock is no longer this holder's (its lease ran out)."""
        ...


class Storage(Protocol):
    """Where a dataset's (or a raw folder's) objects live, by key: a relative, '/'-separated name.

    Every rule of the store is written once over these operations; the local disk and S3 are two
    implementations. Writes are whole: a reader sees an object complete or not at all.
    `put_if_absent` never overwrites and has one winner among racing writers (``O_EXCL``-style
    on disk, ``If-None-Match: *`` on S3): the primitive a version's commit rests on.
    """

    @property
    def url(self) -> str:
        """The root, as a path or URL (for messages and for tools that take one)."""
        ...

    def where(self, key: str) -> str:
        """`key` as a path or URL, for messages."""
        ...

    def uri(self, key: str = "") -> str:
        """`key` as other tools take it: an absolute path on disk, the URL elsewhere."""
        ...

    def child(self, prefix: str) -> Storage:
        """The same storage rooted at `prefix` under this root."""
        ...

    def within(self, other: Storage) -> bool:
        """True when this root is `other`'s or lies under it (links resolved); never across kinds."""
        ...

    def parent(self) -> Storage:
        """The same storage rooted one level up (a folder's parent, a prefix without its last part)."""
        ...

    @property
    def name(self) -> str:
        """The last part of the root's path or prefix (a version folder's id, say)."""
        ...

    def get(self, key: str) -> bytes | None:
        """The whole object, or None when there is none."""
        ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes of the object from byte `start` (fewer at its end)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, date and tag, or None when there is none."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """An object at `key` holding `data`, replacing one there."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` unless an object is there (then False); never overwrites."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """The local file `path` as the object `key` (replacing one there), streamed. The file is
        taken: it may be moved into place (on disk) rather than copied."""
        ...

    @property
    def reads_in_place(self) -> bool:
        """True when `local_file` returns the stored file itself, not a download: a copy kept
        elsewhere (the readers' cache) must then never be read in its place, or damage to the
        stored file would go unseen."""
        ...

    def local_file(self, key: str, into: Path) -> Path:
        """A local file holding the object: on disk the file itself, read in place (`into` is not
        used); elsewhere a download into the file `into`. FileNotFoundError when there is none."""
        ...

    def list(self, prefix: str = "") -> Listing:
        """Every object under `prefix`, recursively, sorted by key."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects; what is already gone is not an error."""
        ...

    def lock(
        self, key: str, timeout_s: float, on_wait: Callable[[str], None] | None = None
    ) -> AbstractContextManager[Lease]:
        """Hold the exclusive lock `key`, waiting up to `timeout_s` seconds, then StoreLockedError
        naming its holder (`on_wait` is told the holder once, when the caller must wait)."""
        ...

    def workspace(self) -> AbstractContextManager[Path]:
        """A local folder for files about to be `put_file` (on disk on the same file system, so
        that they move into place), removed on the way out."""
        ...

    def alias(self, key: str, target: str) -> None:
        """Make `key` a cheap alias of the folder `target` where the backend has such a thing (a
        symbolic link on disk, swapped at once); elsewhere nothing."""
        ...

    def check_usable(self) -> None:
        """StoreError, in one line with the cause, unless the root can be written."""
        ...

    def cleanup(self) -> builtins.list[str]:
        """Remove what writers that died left of their own unfinished writes (never a live
        writer's); return what was removed, for the log."""
        ...

    def options(self) -> dict[str, Any] | None:
        """The settings another object_store client needs to reach this root (deltalake's
        `storage_options`); None where none are needed. The values are secrets: never show them."""
        ...
