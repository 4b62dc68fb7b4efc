"""Reading a raw listing safely: once, in blocks, cut into parts that start at a record header, each checked again."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pipeline.errors import InputError
from pipeline.parse.listing import MAX_HEADER_CHARS, MONTHS, is_header
from pipeline.raw.sources import Source

_READ_BLOCK = 4 << 20
# A part is cut at the start of a record header; when none comes for this many parts' worth of
# bytes (a file without headers, all stray lines), it is cut at a line end instead, so that one
# hostile file never needs more memory than this.
_MAX_PART_FACTOR = 4


@dataclass(frozen=True, slots=True)
class Chunk:
    """A byte range of a listing that starts at a record header (or the file's start)."""

    offset: int
    length: int
    first_line: int  # number of its first line in the file
    sha256: str


def _line_breaks(data: bytes | bytearray, end: int | None = None) -> int:
    """Lines ended in `data` (up to `end`), as `split_lines` counts them (LF, CRLF or a lone CR)."""
    end = len(data) if end is None else end
    lf = data.count(b"\n", 0, end)
    if data.find(b"\r", 0, end) < 0:  # the common case: one fast pass, not three
        return lf
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)


def _starts_record(line: bytes) -> bool:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return is_header(text.rstrip(" \t\u00a0"))


_LINE_END = re.compile(rb"\r\n|\r|\n")  # as split_lines reads them


# A line end followed, within a header's length, by a month name: the places where a record
# header may start, found at the regex engine's speed; each is then checked as a header.
_MAY_START_RECORD = re.compile(
    rb"(?:\r\n|\r|\n)(?=[^\r\n]{0,%d}?(?:%s))" % (MAX_HEADER_CHARS, "|".join(MONTHS).encode())
)


_LOOKAHEAD_BYTES = 4 * MAX_HEADER_CHARS + 8  # a header of 100 characters takes at most this many bytes


def _cut(buffer: bytearray, position: int, target: int, at_end: bool) -> tuple[int | None, int]:
    """Where to end a part of `buffer`, and where the next call resumes the search when more bytes
    are needed to tell (the cut is then None): after the first line end at or past `target` that a
    record header follows. When none comes before `_MAX_PART_FACTOR` times `target`, the part ends
    at the last line end before that limit, or at the limit itself inside a line that long."""
    limit = _MAX_PART_FACTOR * target
    position = max(position, target - 1)
    while (found := _MAY_START_RECORD.search(buffer, position)) is not None and found.start() < limit:
        end = found.end()
        following = _LINE_END.search(buffer, end)
        if following is None and not at_end:
            return None, found.start()
        if _starts_record(bytes(buffer[end : following.start() if following else len(buffer)])):
            return end, 0
        position = end
    if at_end:
        return len(buffer), 0
    if len(buffer) < limit:
        return None, max(position, len(buffer) - _LOOKAHEAD_BYTES)
    last = max(buffer.rfind(b"\n", target, limit), buffer.rfind(b"\r", target, limit - 1))
    return (last + 1 if last >= 0 else limit), 0


def _open_listing(source: Source) -> int:
    """A read-only descriptor of a listing, never through a link put in its place since discovery."""
    try:
        fd = os.open(source.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise InputError(f"cannot read {source.name}: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"cannot read {source.name}: not a regular file")
    return fd


@contextmanager
def _listing_fd(source: Source) -> Iterator[int]:
    """A listing's descriptor (`_open_listing`) for the block; a failed read is an InputError."""
    fd = _open_listing(source)
    try:
        yield fd
    except OSError as err:
        raise InputError(f"cannot read {source.name}: {err.strerror}") from None
    finally:
        os.close(fd)


def changed_error(source: Source) -> InputError:
    return InputError(f"{source.name} changed while it was being read; run again when it is complete")


def scan(source: Source, chunk_bytes: int) -> Generator[Chunk, None, tuple[str, int]]:
    """Read a listing once, in blocks, yielding parts of about `chunk_bytes` that each start at a
    record header as they are found (the file is never held whole in memory); return its sha256
    and size."""
    whole = hashlib.sha256()
    buffer = bytearray()
    offset, line, resume = 0, 1, 0

    def take(length: int) -> Chunk:
        nonlocal offset, line, buffer
        with memoryview(buffer) as view:  # hashed in place, not copied first
            digest = hashlib.sha256(view[:length]).hexdigest()
        chunk = Chunk(offset, length, line, digest)
        offset += length
        line += _line_breaks(buffer, length)
        del buffer[:length]
        return chunk

    taken = False
    with _listing_fd(source) as fd:
        while True:
            block = os.read(fd, _READ_BLOCK)
            whole.update(block)
            buffer += block
            at_end = not block
            while len(buffer) >= chunk_bytes:
                cut, resume = _cut(buffer, resume, chunk_bytes, at_end)
                if cut is None or (cut == len(buffer) and not at_end):
                    break
                yield take(cut)
                taken, resume = True, 0
            if at_end:
                break
    if buffer or not taken:
        yield take(len(buffer))
    return whole.hexdigest(), offset


def each_chunk(scanning: Generator[Chunk, None, tuple[str, int]], handle: Callable[[Chunk], object]) -> tuple[str, int]:
    """Hand every part of a scan to `handle` as it is found; the scan's sha256 and size."""
    while True:
        try:
            chunk = next(scanning)
        except StopIteration as end:
            return end.value
        handle(chunk)


def listing_digest(source: Source) -> tuple[str, int]:
    """The sha256 and size of a listing, read in blocks: what finds it in the staged layer. Only a
    listing not found there is scanned for its parts (`scan`)."""
    digest, size = hashlib.sha256(), 0
    with _listing_fd(source) as fd:
        while block := os.read(fd, _READ_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_chunk(source: Source, chunk: Chunk) -> bytes:
    """The bytes of one part, checked against the digest taken when the file was scanned."""
    parts, got = [], 0
    with _listing_fd(source) as fd:
        while got < chunk.length:
            piece = os.pread(fd, chunk.length - got, chunk.offset + got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
    data = b"".join(parts)
    if hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise changed_error(source)
    return data
