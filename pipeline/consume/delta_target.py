"""Where the Delta export writes: a folder or an s3:// prefix, as deltalake and our lock reach it."""

from __future__ import annotations

import contextlib
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ExportError
from pipeline.storage import Storage

# deltalake 1.x reads a local path as a URL: a character that a URL escapes (a space, `#`, `%`,
# any non-ASCII letter) makes it write or look for the files elsewhere, or panic
# (delta-io/delta-rs#2425). These are the characters it was seen to write and read back as given.
DELTA_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/!$&'()*+,-.:;=@_~")
DELTA_LOG = "_delta_log"
LOCK = ".lock"


def _orphan_data_file(name: str) -> bool:
    """A data file an interrupted first commit wrote before its log entry: no reader sees it."""
    return name.startswith("part-") and name.endswith(".parquet")


@dataclass(frozen=True, slots=True)
class TablePlace:
    """One Delta table's place: its storage, and the options deltalake is given (secrets: kept
    out of the repr)."""

    storage: Storage
    options: Mapping[str, str] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        """The table as deltalake takes it: an absolute path on disk, the URL elsewhere."""
        return self.storage.uri()

    def __str__(self) -> str:
        return self.storage.url

    def exists(self) -> bool:
        """True when anything is there (a file, or objects under the prefix)."""
        return bool(self.storage.list().objects)

    def foreign(self) -> list[str]:
        """What is there besides a Delta log and the orphan data files of an interrupted first commit."""
        names = {o.key.split("/", 1)[0]: "/" not in o.key for o in self.storage.list().objects}
        return sorted(n for n, is_file in names.items() if n != DELTA_LOG and not (is_file and _orphan_data_file(n)))


@dataclass(frozen=True, slots=True)
class DeltaTarget:
    """The export's target: ``<place>/<table>`` for each table, one export at a time."""

    storage: Storage
    options: Mapping[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def at(cls, storage: Storage) -> DeltaTarget:
        """The target at `storage`, with the settings deltalake needs to reach it."""
        return cls(storage, storage.options())

    def __str__(self) -> str:
        return self.storage.url

    def table(self, name: str) -> TablePlace:
        """The Delta table `name` of the target."""
        return TablePlace(self.storage.child(name), self.options)

    @contextlib.contextmanager
    def locked(self, timeout_s: float, on_wait: Callable[[str], None]) -> Iterator[None]:
        """Hold the target's lock (``<place>/.lock``: a file lock, or a leased lock object)."""
        with self.storage.lock(LOCK, timeout_s, on_wait):
            yield

    def check_apart_from(self, out: Storage, tables: tuple[str, ...], out_folders: tuple[str, ...]) -> None:
        """ExportError when the target is one deltalake would misread, is OUT itself (its lock is
        OUT's writer lock), or a table of it (links resolved) would lie in one of OUT's own folders
        or hold OUT."""
        unsafe = sorted(set(self.storage.uri().removeprefix("s3://")) - DELTA_PATH_CHARACTERS)
        if unsafe:
            listed = " ".join(repr(c) for c in unsafe)
            raise ExportError(
                f"{self.storage.url}: its path holds {listed}, which deltalake reads as part of a URL "
                "(delta-io/delta-rs#2425); "
                "use a folder whose path has only ASCII letters, digits and / ! $ & ' ( ) * + , - . : ; = @ _ ~"
            )
        if self.storage.within(out) and out.within(self.storage):
            raise ExportError(f"{self.storage.url} is the dataset folder itself: export to a folder of its own")
        for name in tables:
            table = self.table(name).storage
            if out.within(table) or any(table.within(out.child(folder)) for folder in out_folders):
                raise ExportError(
                    f"{table.url} would be written inside the dataset's own folders ({out.url}); "
                    "export to a folder outside its versions, data, index, staged and rejected folders"
                )
