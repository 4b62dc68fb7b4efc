"""Where the Delta export writes: a local folder or an s3:// prefix, as deltalake and our lock reach it."""

from __future__ import annotations

import contextlib
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ExportError
from pipeline.storage.lease import object_lock
from pipeline.storage.local import inside
from pipeline.storage.lock import LOCK_FILE, writer_lock
from pipeline.storage.s3 import S3Location, S3Storage, object_store_options

# deltalake 1.x reads a local path as a URL: a character that a URL escapes (a space, `#`, `%`,
# any non-ASCII letter) makes it write or look for the files elsewhere, or panic
# (delta-io/delta-rs#2425). These are the characters it was seen to write and read back as given.
DELTA_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/!$&'()*+,-.:;=@_~")
DELTA_LOG = "_delta_log"


def _orphan_data_file(name: str) -> bool:
    """A data file an interrupted first commit wrote before its log entry: no reader sees it."""
    return name.startswith("part-") and name.endswith(".parquet")


@dataclass(frozen=True, slots=True)
class TablePlace:
    """One Delta table's place: `uri` as deltalake is given it, with its storage options (secrets:
    kept out of the repr)."""

    place: Path | S3Location
    options: Mapping[str, str] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return self.place.url if isinstance(self.place, S3Location) else str(self.place.absolute())

    def __str__(self) -> str:
        return str(self.place)

    def exists(self) -> bool:
        """True when anything is there (a file, a folder, a link, or objects under the prefix)."""
        if isinstance(self.place, S3Location):
            return bool(S3Storage(self.place).tree(""))
        return self.place.exists() or self.place.is_symlink()

    def foreign(self) -> list[str]:
        """What is there besides a Delta log and the orphan data files of an interrupted first
        commit. ExportError when the place is a file rather than a folder."""
        if isinstance(self.place, S3Location):
            names = {name.split("/", 1)[0]: "/" not in name for name in S3Storage(self.place).tree("")}
            return sorted(
                n for n, is_file in names.items() if n != DELTA_LOG and not (is_file and _orphan_data_file(n))
            )
        if not self.place.is_dir():
            raise ExportError(f"{self.place} is not a folder: refusing to export there")
        return sorted(
            p.name
            for p in self.place.iterdir()
            if p.name != DELTA_LOG and not (p.is_file() and not p.is_symlink() and _orphan_data_file(p.name))
        )


@dataclass(frozen=True, slots=True)
class DeltaTarget:
    """The export's target: ``<place>/<table>`` for each table, one export at a time."""

    place: Path | S3Location
    options: Mapping[str, str] | None = field(default=None, repr=False)

    @classmethod
    def at(cls, place: Path | S3Location) -> DeltaTarget:
        """The target at `place`; on S3 with this process's AWS configuration and conditional put."""
        return cls(place, object_store_options() if isinstance(place, S3Location) else None)

    def __str__(self) -> str:
        return str(self.place)

    def table(self, name: str) -> TablePlace:
        """The Delta table `name` of the target."""
        if isinstance(self.place, S3Location):
            return TablePlace(self.place.child(name), self.options)
        return TablePlace(self.place / name)

    @contextlib.contextmanager
    def locked(self, timeout_s: float, on_wait: Callable[[str], None]) -> Iterator[None]:
        """Hold the target's lock (``<place>/.lock``: a file lock, or a leased lock object on S3)."""
        if isinstance(self.place, S3Location):
            with object_lock(S3Storage(self.place), LOCK_FILE, timeout_s, on_wait):
                yield
        else:
            with writer_lock(self.place, timeout_s, on_wait=on_wait):
                yield

    def check_apart_from(self, out: Path | S3Location, tables: tuple[str, ...], out_folders: tuple[str, ...]) -> None:
        """ExportError when the target is one deltalake would misread, is OUT itself (its lock is
        OUT's writer lock), or a table of it (links resolved) would lie in one of OUT's own folders
        or hold OUT."""
        shown = str(self.place) if isinstance(self.place, S3Location) else str(self.place.absolute())
        unsafe = sorted(set(shown.removeprefix("s3://")) - DELTA_PATH_CHARACTERS)
        if unsafe:
            listed = " ".join(repr(c) for c in unsafe)
            raise ExportError(
                f"{self.place}: its path holds {listed}, which deltalake reads as part of a URL "
                "(delta-io/delta-rs#2425); "
                "use a folder whose path has only ASCII letters, digits and / ! $ & ' ( ) * + , - . : ; = @ _ ~"
            )
        if isinstance(self.place, S3Location) != isinstance(out, S3Location):
            return
        if _same(self.place, out):
            raise ExportError(f"{self.place} is the dataset folder itself: export to a folder of its own")
        for name in tables:
            table = self.table(name).place
            if _within(table, out) or any(_within(_child(out, folder), table) for folder in out_folders):
                raise ExportError(
                    f"{table} would be written inside the dataset's own folders ({out}); "
                    "export to a folder outside its versions, staged, index and rejected folders"
                )


def _child(place: Path | S3Location, name: str) -> Path | S3Location:
    return place.child(name) if isinstance(place, S3Location) else place / name


def _same(left: Path | S3Location, right: Path | S3Location) -> bool:
    if isinstance(left, S3Location) and isinstance(right, S3Location):
        return left == right
    return isinstance(left, Path) and isinstance(right, Path) and left.resolve() == right.resolve()


def _within(root: Path | S3Location, place: Path | S3Location) -> bool:
    """True when `place` is `root` or lies below it."""
    if isinstance(root, S3Location) and isinstance(place, S3Location):
        top, key = root.prefix, place.prefix
        return root.bucket == place.bucket and (not top or key == top or key.startswith(top + "/"))
    return isinstance(root, Path) and isinstance(place, Path) and inside(place.resolve(), root.resolve())
