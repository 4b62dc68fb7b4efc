"""Papers rows a version shares with its parent: the parent's row groups copied as they are, a new footer spliced on."""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import StoreError, VersionDamagedError
from pipeline.published.parquet_footer import MAGIC, FooterError, footer_layout, spliced_footer
from pipeline.published.writer import BatchCheck, write_batches
from pipeline.storage.local import file_digest, tmp_name


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


def footer_bytes(path: Path) -> tuple[bytes, int]:
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


def write_spliced_papers(
    kept: KeptRows, path: Path, check: BatchCheck, footer: Mapping[str, str]
) -> tuple[dict[str, Any], int, list[pd.DataFrame]] | None:
    """Papers as the parent's leading row groups, copied byte for byte, then the rest encoded
    (and checked) as usual; None when nothing of the parent's file can be kept.

    Kept rows are not checked again: they were checked when the parent was published, under the
    same contract (the caller makes sure), and are copied as they are."""
    try:
        head, _ = footer_bytes(kept.parent_papers)
        layout = footer_layout(head)
    except (FooterError, OSError):
        _check_parent(kept)  # a parent that cannot be spliced must still be the one published
        return None
    keep = _kept_groups(layout, kept.rows, kept.group_rows)
    if not keep:
        return None
    rows, end = sum(layout.rows[:keep]), layout.ends[keep - 1]
    tail_path = path.with_name(tmp_name(path.name))
    try:
        _, tail_rows, failures = write_batches("papers", kept.tail(rows), tail_path, check, footer, offset=rows)
        if failures:
            return {}, rows + tail_rows, failures
        tail, tail_start = footer_bytes(tail_path)
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
