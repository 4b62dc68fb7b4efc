"""Reading a raw listing safely: once, in blocks, cut into parts that start at a record header, each checked again."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline.errors import InputError
from pipeline.parse.listing import (
    MAX_HEADER_CHARS,
    MONTHS,
    TRAILING_SPACE,
    is_blank,
    is_header,
    stray_group,
    takes_record_line,
)
from pipeline.raw.lines import LONG_LINE_BYTES, HeldPart, LongLine, LongLineFacts, PartHolder, held_until, line_breaks
from pipeline.raw.sources import Source

_READ_BLOCK = 4 << 20
# A part ends at the start of a record header found past its target size. When none comes within
# this many times the target (a file without headers, or a record larger than the target), the
# lines are walked instead to find the first place past the target where a record or a group of
# stray lines starts, so that a listing reads the same in any parts; lines too long to hold are
# streamed through rather than buffered (`pipeline.raw.lines`).
_MAX_PART_FACTOR = 4
_WALK = -1  # `_cut`'s answer when the part must be ended by walking its lines


@dataclass(frozen=True, slots=True)
class Chunk:
    """A byte range of a listing that starts at a record header, at a group of stray lines after
    a record, or at the file's start."""

    offset: int
    length: int
    first_line: int  # number of its first line in the file
    sha256: str


def _classify(line: bytes | bytearray, first_line: bool = False) -> tuple[bool, bool]:
    """Whether a line is blank, and whether it is a record header, as `raw_records` reads it (a
    line that is not UTF-8 is never a header; the file's first line is read without its BOM)."""
    text = line.decode("utf-8", "replace").rstrip(TRAILING_SPACE)
    if first_line:
        text = text.removeprefix("\ufeff")
    return is_blank(text), is_header(text)


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
    record header follows. When none comes before `_MAX_PART_FACTOR` times `target`, `_WALK`, and
    where the search stopped: no line end before it (from `target` - 1 on) starts a header."""
    limit = _MAX_PART_FACTOR * target
    position = max(position, target - 1)
    while (found := _MAY_START_RECORD.search(buffer, position)) is not None and found.start() < limit:
        end = found.end()
        following = _LINE_END.search(buffer, end)
        if following is None and not at_end:
            # A header followed by endless spaces is still a header: the walk streams it through.
            return (_WALK, found.start()) if len(buffer) - end > LONG_LINE_BYTES else (None, found.start())
        if _classify(buffer[end : following.start() if following else len(buffer)])[1]:
            return end, 0
        position = end
    if at_end:
        return len(buffer), 0
    if len(buffer) < limit:
        return None, max(position, len(buffer) - _LOOKAHEAD_BYTES)
    return _WALK, limit


def _open_listing(source: Source) -> int:
    """A read-only descriptor of a listing, never through a link put in its place since discovery."""
    if source.path is None:
        raise InputError(f"cannot read {source.name}: it has no local copy")
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


class _Scanner:
    """One pass over a listing's descriptor: the bytes of the part being cut (`buffer`), the
    digest of those of its bytes already let go, and the whole file's digest."""

    def __init__(self, fd: int, chunk_bytes: int) -> None:
        self.fd, self.target = fd, chunk_bytes
        self.whole = hashlib.sha256()
        self.buffer = bytearray()
        self.at_end, self.taken = False, False
        self.offset, self.line = 0, 1  # of buffer[0]: its place in the file and its line's number
        self.part_offset, self.part_line, self.part_hash = 0, 1, hashlib.sha256()
        # Line ends (file offsets, from, to) already found to start no header: a hostile file without
        # headers is searched once, not again for each part cut in it.
        self.searched = (0, 0)

    def read(self) -> None:
        block = os.read(self.fd, _READ_BLOCK)
        self.whole.update(block)
        self.buffer += block
        self.at_end = not block

    def _let_go(self, length: int, *hashes: Any) -> None:
        """Hand the first `length` bytes of the buffer to the part's digest (and `hashes`)."""
        with memoryview(self.buffer) as view:  # hashed in place, not copied first
            for digest in (self.part_hash, *hashes):
                digest.update(view[:length])
        self.offset += length
        self.line += line_breaks(self.buffer, length)
        del self.buffer[:length]

    def take(self, length: int) -> Chunk:
        """End the part after the buffer's first `length` bytes."""
        self._let_go(length)
        chunk = Chunk(self.part_offset, self.offset - self.part_offset, self.part_line, self.part_hash.hexdigest())
        self.part_offset, self.part_line, self.part_hash = self.offset, self.line, hashlib.sha256()
        self.taken = True
        return chunk

    def parts(self) -> Iterator[Chunk]:
        resume = 0
        while not self.at_end:
            self.read()
            while len(self.buffer) >= self.target:
                cut, resume = _cut(self.buffer, self._unsearched(resume), self.target, self.at_end)
                if cut == _WALK:
                    self.searched = (self.offset + self.target - 1, self.offset + resume)
                    yield from self.walk()
                    resume = 0
                    continue
                if cut is None or (cut == len(self.buffer) and not self.at_end):
                    break
                yield self.take(cut)
                resume = 0
        if self.buffer or not self.taken:
            yield self.take(len(self.buffer))

    def walk(self) -> Iterator[Chunk]:
        """End the part that starts at buffer[0], where no header comes within the limit, at the
        first line past its target where a record header or a group of stray lines after a
        record starts (`takes_record_line`, `stray_group`): the parser reads the lines on either
        side of it as it would with no cut. Long lines are streamed, and the part then ends at the
        first such place."""
        at, number = 0, self.line
        header_line, taken, streamed = 0, 3, False  # the part starts at a header or among stray lines
        while True:
            size = self.offset - self.part_offset + at
            may_end = size > 0 and (size >= self.target or streamed)
            stray = not takes_record_line(header_line, taken, number)
            if may_end and stray and stray_group(number) != stray_group(number - 1):
                yield self.take(at)
                return
            if stray and at > 0 and not streamed and size < self.target and (skip := self._skip_stray(at)) > at:
                number += line_breaks(self.buffer, skip, at)
                at = skip
                continue
            line = self._line_at(at)
            if line is None:  # the end of the file
                if size > 0:
                    yield self.take(at)
                return
            if line is _LONG:
                facts = yield from self._stream(at, number, cut_before_header=may_end)
                blank, header, at, streamed = facts.blank, facts.header, 0, True
                line = self._line_at(0) or (0, 0)  # the buffer now starts at the line's end
            else:
                assert isinstance(line, tuple)
                blank, header = _classify(self.buffer[at : line[0]], first_line=number == 1)
                if header and may_end:
                    yield self.take(at)
                    return
            assert isinstance(line, tuple)
            if header:
                header_line, taken = number, 1
            elif not blank and not stray:
                taken += 1
            at, number = line[1], number + 1

    def _unsearched(self, position: int) -> int:
        """`position` in the buffer, or past the line ends from it on already searched for headers."""
        low, high = self.searched
        return high - self.offset if low <= self.offset + position < high else position

    def _skip_stray(self, at: int) -> int:
        """The first line start past `at`, among stray lines before the target, that may hold a
        header or holds the target: the lines between are stray whatever they hold."""
        target = self.target - (self.offset - self.part_offset)
        ahead = min(len(self.buffer), target + _LOOKAHEAD_BYTES)
        candidate = _MAY_START_RECORD.search(self.buffer, self._unsearched(max(at - 1, 0)), ahead)
        stop = min(candidate.end(), target) if candidate else target
        last = max(self.buffer.rfind(b"\n", at, stop), self.buffer.rfind(b"\r", at, stop))
        if last < 0 or (self.buffer[last] == 0x0D and last + 1 >= len(self.buffer)):
            return at  # no line starts there, or a CR whose LF may still come
        return last + 2 if self.buffer[last : last + 2] == b"\r\n" else last + 1

    def _line_at(self, at: int) -> tuple[int, int] | object | None:
        """The line starting at `at`: where its text ends and the next line starts, reading on as
        needed; `_LONG` when more than LONG_LINE_BYTES come without a line end; None at the end."""
        while True:
            end = _LINE_END.search(self.buffer, at)
            if end is not None and (end.group() != b"\r" or end.end() < len(self.buffer) or self.at_end):
                return end.start(), end.end()
            if self.at_end:
                return (len(self.buffer), len(self.buffer)) if at < len(self.buffer) else None
            if end is None and len(self.buffer) - at > LONG_LINE_BYTES:
                return _LONG
            self.read()

    def _stream(self, at: int, number: int, cut_before_header: bool) -> Generator[Chunk, None, LongLineFacts]:
        """Read the long line starting at `at` through, holding only its start; the buffer then
        starts at its line end. A header (one followed by spaces) ends the part before it when
        `cut_before_header`: the part's digest is the one taken at the line's start."""
        self._let_go(at)
        before, line_hash, line_offset = self.part_hash.copy(), hashlib.sha256(), self.offset
        start = held_until(self.buffer, 0)
        reading = LongLine(number, bytes(self.buffer[:start]), file_start=line_offset == 0)
        self._let_go(start, line_hash)
        while True:
            end = _LINE_END.search(self.buffer)
            piece = end.start() if end else len(self.buffer)
            with memoryview(self.buffer) as view, view[:piece] as rest:  # read in place, not copied
                reading.feed(rest)
            self._let_go(piece, line_hash)
            if end or self.at_end:
                break
            self.read()
        facts = reading.facts()
        if facts.header and cut_before_header:
            yield Chunk(self.part_offset, line_offset - self.part_offset, self.part_line, before.hexdigest())
            self.part_offset, self.part_line, self.part_hash = line_offset, number, line_hash
            self.taken = True
        return facts


_LONG = object()  # `_Scanner._line_at`: a line too long to hold


def scan(source: Source, chunk_bytes: int) -> Generator[Chunk, None, tuple[str, int]]:
    """Read a listing once, in blocks, yielding parts of about `chunk_bytes` as they are found,
    each starting where the parser needs nothing before it (the file is never held whole in
    memory); return its sha256 and size."""
    with _listing_fd(source) as fd:
        scanner = _Scanner(fd, chunk_bytes)
        yield from scanner.parts()
    return scanner.whole.hexdigest(), scanner.offset


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


def read_part(source: Source, chunk: Chunk) -> HeldPart:
    """The bytes of one part, checked against the digest taken when the file was scanned, each
    line too long to hold held as its start (`PartHolder`)."""
    digest, got = hashlib.sha256(), 0
    holder = PartHolder(chunk.first_line, file_start=chunk.offset == 0)
    with _listing_fd(source) as fd:
        while got < chunk.length:
            piece = os.pread(fd, min(_READ_BLOCK, chunk.length - got), chunk.offset + got)
            if not piece:
                break
            digest.update(piece)
            holder.feed(piece)
            got += len(piece)
    if digest.hexdigest() != chunk.sha256:
        raise changed_error(source)
    return holder.held()
