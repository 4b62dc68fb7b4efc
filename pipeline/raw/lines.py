"""Lines too long to hold: kept as their start and the facts the parser needs of the rest."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from pipeline.parse.listing import MAX_ABSTRACT_CHARS, TRAILING_SPACE, is_blank, is_header

# A line of more bytes than this is over every line limit of a record whatever it holds (a
# character takes at most 4 bytes), so its text past its start can change no outcome but its
# length, its encoding and whether it is blank or a header with trailing spaces: those are counted
# as the rest streams by, and only the start is held.
LONG_LINE_BYTES = 4 * MAX_ABSTRACT_CHARS + 8
# Stands in for the text left out of a long line that the parser must see as neither blank nor a
# header; it lies past the first RAW_LINE_PREVIEW_CHARS characters, so no reject ever shows it.
ELISION = "\ufffd".encode()
_BOM = codecs.BOM_UTF8


def line_breaks(data: bytes | bytearray, end: int | None = None, start: int = 0) -> int:
    """Lines ended in `data[start:end]`, as `split_lines` counts them (LF, CRLF or a lone CR)."""
    end = len(data) if end is None else end
    lf = data.count(b"\n", start, end)
    if data.find(b"\r", start, end) < 0:  # the common case: one fast pass, not three
        return lf
    return lf + data.count(b"\r", start, end) - data.count(b"\r\n", start, end)


def held_until(data: bytes | bytearray, start: int) -> int:
    """Where the held start of a long line beginning at `start` in `data` ends: LONG_LINE_BYTES on, or
    up to 3 bytes earlier so as not to split a UTF-8 character."""
    end = start + LONG_LINE_BYTES
    for back in range(4):
        if end - back >= len(data) or data[end - back] & 0xC0 != 0x80:
            return end - back
    return end


@dataclass(frozen=True, slots=True)
class LongLineFacts:
    """A long line as the parser sees it: its start, plus `ELISION` when the rest matters."""

    number: int
    elided: bool  # the parser sees start + ELISION; otherwise the start alone reads the same
    length: int  # characters the parser would count in the whole line
    valid: bool  # the whole line is UTF-8
    blank: bool
    header: bool


class LongLine:
    """Reads a long line: its start once, then the rest in pieces as they stream by (the pieces
    are never kept); `facts()` once the line has ended."""

    def __init__(self, number: int, start: bytes, file_start: bool = False) -> None:
        self._number = number
        self._start = start
        self._replace = codecs.getincrementaldecoder("utf-8")("replace")
        self._strict = codecs.getincrementaldecoder("utf-8")("strict")
        self._valid = True
        self._chars = 0
        self._trailing = 0  # characters at the end that clean_lines strips
        self._blank = True
        self._rest_trailing_only = True  # the rest holds nothing but what clean_lines strips
        self._bom = file_start and number == 1 and start.startswith(_BOM)  # clean_lines drops it
        self._take(start, rest=False)

    def _take(self, data: bytes | bytearray | memoryview, rest: bool = True, final: bool = False) -> None:
        text = self._replace.decode(data, final)
        if self._valid:
            try:
                self._strict.decode(data, final)
            except UnicodeDecodeError:
                self._valid = False
        if not text:
            return
        self._chars += len(text)
        core = text.rstrip(TRAILING_SPACE)
        self._trailing = self._trailing + len(text) if not core else len(text) - len(core)
        self._blank = self._blank and is_blank(text)
        self._rest_trailing_only = self._rest_trailing_only and not (rest and core)

    def feed(self, piece: bytes | bytearray | memoryview) -> None:
        """The next piece of the line's rest (no line break in it)."""
        self._take(piece)

    def facts(self) -> LongLineFacts:
        self._take(b"", final=True)
        elided = not (self._blank or self._rest_trailing_only)
        start = self._start.decode("utf-8", "replace").rstrip(TRAILING_SPACE)
        if self._bom:
            start = start.removeprefix("\ufeff")
        header = not elided and not self._blank and is_header(start)
        length = self._chars - self._trailing - self._bom
        return LongLineFacts(self._number, elided, length, self._valid, self._blank, header)


_BREAK = re.compile(rb"[\r\n]")
_WINDOW = LONG_LINE_BYTES // 2  # a line longer than LONG_LINE_BYTES holds a whole aligned window


@dataclass(frozen=True, slots=True)
class HeldPart:
    """A part's bytes with each long line held as its start (and `ELISION` where the rest
    matters), and what the parser needs to know of those lines."""

    data: bytes
    undecodable: frozenset[int]  # long lines whose rest was not UTF-8
    line_lengths: dict[int, int]  # the full length of the lines that end in ELISION


class PartHolder:
    """Takes a part's bytes in pieces, as read, and holds each line of more than LONG_LINE_BYTES
    as `LongLine` reads it, so that a part holding an endless line costs little memory."""

    def __init__(self, first_line: int, file_start: bool) -> None:
        self._kept = bytearray()
        self._checked = 0  # a line start in kept: the long lines before it are held
        self._held_end = 0  # where the last held line ends in kept: nothing before it changes
        self._counted = (0, first_line)  # a line start in kept, and its line's number
        self._file_start = file_start
        self._long: LongLine | None = None  # the long line being read, kept up to its start
        self._facts: list[LongLineFacts] = []

    def _number(self, at: int) -> int:
        counted, number = self._counted
        number += line_breaks(self._kept, at, counted)
        self._counted = (at, number)
        return number

    def _line_start(self, at: int) -> int:
        """The start of the line holding kept[at], found in time proportional to its length."""
        span = LONG_LINE_BYTES
        while True:
            low = max(0, at - span)
            last = max(self._kept.rfind(b"\n", low, at), self._kept.rfind(b"\r", low, at))
            if last >= 0 or low == 0:
                return last + 1
            span *= 2

    def feed(self, piece: bytes) -> None:
        """The next bytes of the part."""
        if self._long is not None:
            end = _BREAK.search(piece)
            self._long.feed(piece[: end.start() if end else len(piece)])
            if end is None:
                return
            self._checked = self._put(self._long, len(self._kept))
            self._long = None
            piece = piece[end.start() :]
        self._kept += piece
        self._hold(final=False)

    def _put(self, reading: LongLine, at: int) -> int:
        """Note a long line that has ended, its start held up to `at`; where its line end goes."""
        facts = reading.facts()
        self._facts.append(facts)
        if facts.elided:
            self._kept[at:at] = ELISION
            at += len(ELISION)
        self._held_end = at
        return at

    def _hold(self, final: bool) -> None:
        """Hold the long lines in kept past `_checked` (on the final call, the last line has ended)."""
        kept, at = self._kept, self._checked
        while at + _WINDOW <= len(kept):
            if _BREAK.search(kept, at, at + _WINDOW):
                at += _WINDOW
                continue
            start = self._line_start(at)
            found = _BREAK.search(kept, at + _WINDOW)
            end = found.start() if found else len(kept)
            if end - start <= LONG_LINE_BYTES:
                at = end
                continue
            cut = held_until(kept, start)
            reading = LongLine(self._number(start), bytes(kept[start:cut]), self._file_start)
            with memoryview(kept) as view, view[cut:end] as rest:  # read in place, not copied
                reading.feed(rest)
            del kept[cut:end]
            if found is None and not final:  # the line goes on in the next pieces
                self._long, self._checked = reading, cut
                return
            at = self._put(reading, cut)
        self._checked = max(self._line_start(min(at, len(kept))), self._held_end)

    def held(self) -> HeldPart:
        """The part, once all of it has been fed."""
        if self._long is not None:
            self._put(self._long, len(self._kept))
            self._long = None
        else:
            self._hold(final=True)
        return HeldPart(
            bytes(self._kept),
            frozenset(f.number for f in self._facts if not f.valid),
            {f.number: f.length for f in self._facts if f.elided},
        )
