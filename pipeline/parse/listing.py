"""Pure listing parser: text of a captured listing → parsed records and rejects."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import AnyStr

from pipeline.parse.split import Split, split_title_authors
from schemas.tables import RejectRule

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
# headers counts as many lost records as it holds, not as one.
STRAY_GROUP_LINES = 3

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


def clip(line: str, limit: int = RAW_LINE_PREVIEW_CHARS) -> str:
    """`line`, or its first `limit` characters and a note of its full length when it is longer."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]}… [truncated: {len(line):,} characters in all]"


def clean_lines(text: str, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) with BOM and trailing spaces removed (lines as `split_lines`
    cuts them); numbers start at `first_line`, the number of the text's first line in its file."""
    if first_line == 1 and text.startswith("\ufeff"):
        text = text[1:]
    for number, line in enumerate(split_lines(text), start=first_line):
        yield number, line.rstrip(" \t\u00a0")


def is_header(line: str) -> bool:
    """True when `line` has the shape of a record header."""
    return len(line) <= MAX_HEADER_CHARS and HEADER.match(line) is not None


# The header needs no limit here: a line longer than MAX_HEADER_CHARS is never read as one.
_LINE_LIMITS = (("title/author line", MAX_TITLE_LINE_CHARS), ("abstract", MAX_ABSTRACT_CHARS))


def _raw_text(lines: Iterable[tuple[int, str]]) -> str:
    return "\n".join(clip(text) for _, text in lines)


def _undecodable_reject(lines: list[tuple[int, str]], undecodable: frozenset[int]) -> Reject | None:
    bad = [number for number, _ in lines if number in undecodable]
    if not bad:
        return None
    where = ", ".join(str(n) for n in bad)
    return Reject(
        lines[0][0],
        RejectRule.INVALID_ENCODING,
        f"line(s) {where} are not valid UTF-8 (is the file in another encoding?); the text was not used",
        _raw_text(lines),
    )


def _stray_rejects(lines: list[tuple[int, str]], why: str, undecodable: frozenset[int]) -> Iterator[Reject]:
    for start in range(0, len(lines), STRAY_GROUP_LINES):
        group = lines[start : start + STRAY_GROUP_LINES]
        bad = _undecodable_reject(group, undecodable)
        yield bad or Reject(group[0][0], RejectRule.STRAY_LINES, f"{len(group)} line(s) {why}", _raw_text(group))


def _record_or_reject(block: list[tuple[int, str]], undecodable: frozenset[int]) -> RawRecord | Reject:
    first = block[0][0]
    bad = _undecodable_reject(block, undecodable)
    if bad is not None:
        return bad
    if len(block) < 3:
        missing = "title/author line and abstract" if len(block) == 1 else "abstract"
        return Reject(
            first, RejectRule.TRUNCATED_RECORD, f"the record ends after its header: no {missing}", _raw_text(block)
        )
    for (_, text), (what, limit) in zip(block[1:], _LINE_LIMITS, strict=True):
        if len(text) > limit:
            return Reject(
                first,
                RejectRule.OVERSIZED_RECORD,
                f"its {what} has {len(text):,} characters, over the limit of {limit:,}",
                _raw_text(block),
            )
    return RawRecord(first, block[0][1], block[1][1], block[2][1])


def raw_records(
    lines: Iterable[tuple[int, str]], undecodable: frozenset[int] = frozenset()
) -> Iterator[RawRecord | Reject]:
    """Group lines into three-line records, resynchronising on every header.

    Blank lines are skipped. Lines before the first header or after a record's abstract are
    rejected in groups of up to three (rule ``stray_lines``); a header followed by fewer than two
    lines before the next header is rejected as ``truncated_record``; a record with a line past
    its size limit as ``oversized_record``; any text on a line listed in `undecodable` as
    ``invalid_encoding``.
    """
    block: list[tuple[int, str]] = []

    def flush() -> Iterator[RawRecord | Reject]:
        if not block:
            return
        first, head = block[0]
        if not is_header(head):
            yield from _stray_rejects(
                block,
                "do not belong to any record: no header ('[score]SUFFIXMon D[, YYYY][Code]') precedes them",
                undecodable,
            )
        else:
            yield _record_or_reject(block[:3], undecodable)
            if len(block) > 3:
                yield from _stray_rejects(
                    block[3:],
                    f"after the abstract of the record at line {first}: a record has exactly three lines",
                    undecodable,
                )
        block.clear()

    for number, line in lines:
        if not line.strip():
            continue
        if is_header(line):
            yield from flush()
        block.append((number, line))
    yield from flush()


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
    text: str, undecodable: frozenset[int] = frozenset(), first_line: int = 1
) -> Iterator[ParsedRecord | Reject]:
    """Parse a whole listing, or a part of one that starts at a record header on line
    `first_line`, record by record, in line order (`undecodable`: see `decode_listing`, numbered
    in the same file)."""
    for item in raw_records(clean_lines(text, first_line), undecodable):
        yield item if isinstance(item, Reject) else parse_record(item)
