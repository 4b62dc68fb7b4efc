"""Pure listing parser: text of a captured listing → parsed records and rejects."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import AnyStr

from pipeline.parse.split import Split, split_title_authors
from schemas.rules import RejectRule

# Size limits: a record past any of them is rejected as ``oversized_record`` before the splitter
# or the LaTeX renderer sees it, which bounds the time and memory one record can take. Real
# listings stay far below them (arXiv caps abstracts at 1,920 characters; of 29k real papers, the
# 9,010 and 20,108 of the test corpora, the longest title has 229 characters, the longest author 155).
MAX_HEADER_CHARS = 100
MAX_TITLE_LINE_CHARS = 2_000
MAX_ABSTRACT_CHARS = 10_000
MAX_TITLE_CHARS = 1_000
MAX_AUTHOR_CHARS = 300
# A rejected line longer than this is kept in `raw` as its first characters and a length note.
RAW_LINE_PREVIEW_CHARS = 1_000
# Stray lines are rejected in groups of at most a record's three lines, so that a file without
# headers counts as many lost records as it holds, not as one. The groups are fixed by line number
# (lines 1-3, 4-6, ...), not by where a run of stray lines starts, so that a listing read in parts
# groups its stray lines as it does when read whole.
STRAY_GROUP_LINES = 3
# A record's title/author line and abstract come within this many lines of its header (blank lines
# between them are allowed); a header without them by then is a truncated record, and what follows
# is stray. It bounds what the reader must hold to know where a record ends.
RECORD_SPAN_LINES = 30
# The trailing characters a line is read without (see `clean_lines`).
TRAILING_SPACE = " \t\u00a0"

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# [score] suffix date [Code]: "87.4LGMar 12", "CLSep 11, 2023Code", "quant-phJan 2, 2024".
# The suffix is matched lazily so that "MAMar 3" gives suffix MA, date Mar 3.
HEADER = re.compile(
    r"(?P<score>\d{1,3}(?:\.\d+)?)?"
    r"(?P<suffix>[A-Za-z][A-Za-z.-]*?)"
    rf"(?P<month>{'|'.join(MONTHS)})\s(?P<day>\d{{1,2}})(?:,\s?(?P<year>\d{{4}}))?"
    r"(?P<code>\s?Code)?\Z"
)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record exactly as found: its three lines and where it starts (1-based)."""

    source_line: int
    header: str
    title_line: str
    abstract: str


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """The fields of one record, still as listed (no dates, codes or ids yet)."""

    source_line: int
    score: float | None
    category_suffix: str
    month: int
    day: int
    year: int | None
    has_code: bool
    split: Split  # title, authors, et al., affiliations
    abstract: str
    raw: str  # the record's lines as found, for a reject raised after parsing


@dataclass(frozen=True, slots=True)
class Reject:
    """A record (or stray block of lines) that could not be used, with a rule code and a reason."""

    source_line: int
    rule: str
    reason: str
    raw: str


def decode_listing(data: bytes, first_line: int = 1) -> tuple[str, frozenset[int]]:
    """The text of a listing's bytes, and the numbers of the lines that are not UTF-8 (counted
    from `first_line`, the number of the first line of `data` in its file).

    A file that is UTF-8 throughout decodes as usual. Otherwise each line is decoded on its own:
    the valid lines are kept, the others are decoded with U+FFFD replacements and reported, so
    that the records holding them are rejected one by one (``invalid_encoding``) and the rest
    of the file is still used.
    """
    try:
        return data.decode("utf-8"), frozenset()
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    undecodable: set[int] = set()
    for number, raw in enumerate(split_lines(data), start=first_line):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            undecodable.add(number)
            lines.append(raw.decode("utf-8", errors="replace"))
    return "\n".join(lines), frozenset(undecodable)


def split_lines(text: AnyStr) -> list[AnyStr]:
    """Lines ending at LF, CRLF or a lone CR (old Mac exports), as in Python's universal newlines.

    One rule for the bytes `decode_listing` numbers and the text `clean_lines` numbers, so that
    an undecodable line is reported under the number its record has.
    """
    lf, cr = ("\n", "\r") if isinstance(text, str) else (b"\n", b"\r")
    return text.replace(cr + lf, lf).replace(cr, lf).split(lf)


def clip(line: str, limit: int = RAW_LINE_PREVIEW_CHARS, length: int | None = None) -> str:
    """`line`, or its first `limit` characters and a note of its full length when it is longer
    (`length`: the full length of a line given by its start only, see `pipeline.raw.lines`)."""
    length = len(line) if length is None else length
    if length <= limit:
        return line
    return f"{line[:limit]}… [truncated: {length:,} characters in all]"


def clean_lines(text: str, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) with BOM and trailing spaces removed (lines as `split_lines`
    cuts them); numbers start at `first_line`, the number of the text's first line in its file."""
    if first_line == 1 and text.startswith("\ufeff"):
        text = text[1:]
    for number, line in enumerate(split_lines(text), start=first_line):
        yield number, line.rstrip(TRAILING_SPACE)


def is_header(line: str) -> bool:
    """True when `line` has the shape of a record header."""
    return len(line) <= MAX_HEADER_CHARS and HEADER.match(line) is not None


def is_blank(line: str) -> bool:
    """True when `line` holds nothing but white space: it is skipped wherever it stands."""
    return not line.strip()


def stray_group(number: int) -> int:
    """The group a stray line on line `number` is rejected in (see STRAY_GROUP_LINES)."""
    return (number - 1) // STRAY_GROUP_LINES


def takes_record_line(header_line: int, taken: int, number: int) -> bool:
    """Whether the record whose header is on `header_line`, holding `taken` lines so far (its
    header included), takes the next non-blank line, on line `number`; if not, that line is stray."""
    return taken < 3 and number < header_line + RECORD_SPAN_LINES


# The header needs no limit here: a line longer than MAX_HEADER_CHARS is never read as one.
_LINE_LIMITS = (("title/author line", MAX_TITLE_LINE_CHARS), ("abstract", MAX_ABSTRACT_CHARS))

STRAY_REASON = (
    "belong to no record: a record is a header ('[score]SUFFIXMon D[, YYYY][Code]') and the two lines "
    f"after it (within {RECORD_SPAN_LINES} lines); lines before the first header or after an abstract are stray"
)


@dataclass(frozen=True, slots=True)
class _Lines:
    """What is known of a listing's lines besides their text: which were not UTF-8, and the full
    length of those given by their start only (`pipeline.raw.lines`)."""

    undecodable: frozenset[int]
    lengths: Mapping[int, int]

    def length(self, number: int, text: str) -> int:
        return self.lengths.get(number, len(text))

    def raw(self, lines: Iterable[tuple[int, str]]) -> str:
        return "\n".join(clip(text, length=self.length(number, text)) for number, text in lines)

    def undecodable_reject(self, lines: list[tuple[int, str]]) -> Reject | None:
        bad = [number for number, _ in lines if number in self.undecodable]
        if not bad:
            return None
        where = ", ".join(str(n) for n in bad)
        return Reject(
            lines[0][0],
            RejectRule.INVALID_ENCODING,
            f"line(s) {where} are not valid UTF-8 (is the file in another encoding?); the text was not used",
            self.raw(lines),
        )

    def stray_reject(self, group: list[tuple[int, str]]) -> Reject:
        bad = self.undecodable_reject(group)
        reason = f"{len(group)} line(s) {STRAY_REASON}"
        return bad or Reject(group[0][0], RejectRule.STRAY_LINES, reason, self.raw(group))

    def record_or_reject(self, block: list[tuple[int, str]]) -> RawRecord | Reject:
        first = block[0][0]
        bad = self.undecodable_reject(block)
        if bad is not None:
            return bad
        if len(block) < 3:
            missing = "title/author line and abstract" if len(block) == 1 else "abstract"
            return Reject(
                first, RejectRule.TRUNCATED_RECORD, f"the record ends after its header: no {missing}", self.raw(block)
            )
        for (number, text), (what, limit) in zip(block[1:], _LINE_LIMITS, strict=True):
            if (size := self.length(number, text)) > limit:
                return Reject(
                    first,
                    RejectRule.OVERSIZED_RECORD,
                    f"its {what} has {size:,} characters, over the limit of {limit:,}",
                    self.raw(block),
                )
        return RawRecord(first, block[0][1], block[1][1], block[2][1])


def raw_records(
    lines: Iterable[tuple[int, str]],
    undecodable: frozenset[int] = frozenset(),
    line_lengths: Mapping[int, int] | None = None,
) -> Iterator[RawRecord | Reject]:
    """Group lines into three-line records, resynchronising on every header.

    Blank lines are skipped. A record is a header and the next two lines within RECORD_SPAN_LINES
    of it; a header without them is rejected as ``truncated_record``, a record with a line past its
    size limit as ``oversized_record``, any text on a line listed in `undecodable` as
    ``invalid_encoding``. Lines before the first header or after a record are rejected as
    ``stray_lines``, in fixed groups of up to three (`stray_group`). `line_lengths`: the full
    length of lines given by their start only.
    """
    notes = _Lines(undecodable, line_lengths or {})
    record: list[tuple[int, str]] = []
    strays: list[tuple[int, str]] = []
    for number, line in lines:
        if is_blank(line):
            continue
        header = is_header(line)
        if record and (header or not takes_record_line(record[0][0], len(record), number)):
            yield notes.record_or_reject(record)
            record = []
        if strays and (header or stray_group(strays[-1][0]) != stray_group(number)):
            yield notes.stray_reject(strays)
            strays = []
        (record if header or record else strays).append((number, line))
    if record:
        yield notes.record_or_reject(record)
    if strays:
        yield notes.stray_reject(strays)


def parse_record(raw: RawRecord) -> ParsedRecord | Reject:
    """Parse one raw record's header and title/author line; the abstract is kept as listed."""
    m = HEADER.match(raw.header)
    if m is None:  # raw_records only builds records on header lines
        raise ValueError(f"line {raw.source_line} is not a header: {raw.header!r}")
    split = split_title_authors(raw.title_line)
    if not isinstance(split, Split):
        return Reject(raw.source_line, split.rule, split.reason, _record_text(raw))
    longest = max(split.authors, key=len)
    if len(split.title) > MAX_TITLE_CHARS or len(longest) > MAX_AUTHOR_CHARS:
        what, size, limit = (
            ("title", len(split.title), MAX_TITLE_CHARS)
            if len(split.title) > MAX_TITLE_CHARS
            else ("author", len(longest), MAX_AUTHOR_CHARS)
        )
        return Reject(
            raw.source_line,
            RejectRule.OVERSIZED_RECORD,
            f"its {what} has {size:,} characters, over the limit of {limit:,}",
            "\n".join(clip(line) for line in (raw.header, raw.title_line, raw.abstract)),
        )
    return ParsedRecord(
        source_line=raw.source_line,
        score=float(m["score"]) if m["score"] else None,
        category_suffix=m["suffix"],
        month=MONTHS.index(m["month"]) + 1,
        day=int(m["day"]),
        year=int(m["year"]) if m["year"] else None,
        has_code=m["code"] is not None,
        split=split,
        abstract=raw.abstract.strip(),
        raw=_record_text(raw),
    )


def _record_text(raw: RawRecord) -> str:
    return "\n".join((raw.header, raw.title_line, raw.abstract))


def parse_listing(
    text: str,
    undecodable: frozenset[int] = frozenset(),
    first_line: int = 1,
    line_lengths: Mapping[int, int] | None = None,
) -> Iterator[ParsedRecord | Reject]:
    """Parse a whole listing, or a part of one that starts on line `first_line` at a record header
    or a stray group's first line after a record, record by record, in line order (`undecodable`:
    see `decode_listing`; `line_lengths`: see `raw_records`; both numbered in the same file)."""
    for item in raw_records(clean_lines(text, first_line), undecodable, line_lengths):
        yield item if isinstance(item, Reject) else parse_record(item)
